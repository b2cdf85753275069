//! `--repeat N`: the median and the spread (max − min) of each metric over a cell's runs, and the noise test:
//! a cell is "within noise" of the baseline when the ranges `[min, max]` of their runs overlap. Two ranges
//! that do not overlap are never called noise, however wide one of them is (a noisy cell whose every run is
//! slower than every baseline run is slower).

use serde::Serialize;
use serde_json::{json, Value};

use super::Sample;

/// One metric over the repeats of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// `max − min`: the noise band (0 with a single run).
    pub spread: f64,
    /// Number of runs.
    pub runs: usize,
}

impl Stat {
    /// Median and spread of `values` (all zero when empty).
    pub fn of(values: &[f64]) -> Stat {
        if values.is_empty() {
            return Stat {
                median: 0.0,
                min: 0.0,
                max: 0.0,
                spread: 0.0,
                runs: 0,
            };
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
            spread: v[n - 1] - v[0],
            runs: n,
        }
    }

    /// `self.median / base.median` (`None` when the baseline is 0).
    pub fn ratio(&self, base: &Stat) -> Option<f64> {
        (base.median != 0.0).then(|| self.median / base.median)
    }

    /// Whether the difference to `base` is within the noise: the runs' ranges `[min, max]` overlap. `None`
    /// when either side has a single run (no noise measured, so no verdict).
    pub fn within_noise(&self, base: &Stat) -> Option<bool> {
        if self.runs < 2 || base.runs < 2 {
            return None;
        }
        Some(self.min <= base.max && base.min <= self.max)
    }
}

/// Every metric of one cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CellStats {
    /// Replies per second.
    pub rate: Stat,
    /// Corrected p50, µs.
    pub p50_us: Stat,
    /// Corrected p99, µs.
    pub p99_us: Stat,
    /// Corrected p99.9, µs.
    pub p99_9_us: Stat,
    /// Errors per run.
    pub errors: Stat,
}

impl CellStats {
    /// The statistics of a cell's runs.
    pub fn of(samples: &[Sample]) -> CellStats {
        let st = |f: fn(&Sample) -> f64| Stat::of(&samples.iter().map(f).collect::<Vec<_>>());
        CellStats {
            rate: st(|s| s.rate),
            p50_us: st(|s| s.p50_us),
            p99_us: st(|s| s.p99_us),
            p99_9_us: st(|s| s.p99_9_us),
            errors: st(|s| s.errors as f64),
        }
    }

    /// Ratio of each metric's median to the baseline's.
    pub fn ratios(&self, base: &CellStats) -> Value {
        json!({
            "rate": self.rate.ratio(&base.rate),
            "p50": self.p50_us.ratio(&base.p50_us),
            "p99": self.p99_us.ratio(&base.p99_us),
            "p99_9": self.p99_9_us.ratio(&base.p99_9_us),
        })
    }

    /// Per metric, whether the difference to the baseline is within noise (null with a single run).
    pub fn within_noise(&self, base: &CellStats) -> Value {
        json!({
            "rate": self.rate.within_noise(&base.rate),
            "p50": self.p50_us.within_noise(&base.p50_us),
            "p99": self.p99_us.within_noise(&base.p99_us),
            "p99_9": self.p99_9_us.within_noise(&base.p99_9_us),
        })
    }
}
