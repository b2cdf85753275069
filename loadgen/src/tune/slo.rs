//! `--slo 'p99<2ms'` and the open-loop rate search.
//!
//! The search takes one configuration and its closed-loop rate `C` (its capacity), then runs it open-loop at
//! rising rates — `C × 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5` — until a step breaks the SLO; it then
//! bisects twice between the last passing and the first failing rate. A step passes when the latency
//! quantile is within the limit, no request failed, and the achieved rate is at least
//! [`super::defaults::SLO_MIN_ACHIEVED`] of the target (a server that cannot keep up has not met anything).
//! Every step is a point of the latency-versus-rate curve.

use std::time::Duration;

use serde::Serialize;

use super::{defaults, table::fmt_us, CellOutcome, CellRunner, TuneError};

/// A latency objective: the `quantile` of corrected latency must stay below `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Slo {
    /// 0.99 for `p99`, 0.999 for `p99.9`.
    pub quantile: f64,
    /// The bound, in microseconds.
    pub limit_us: f64,
}

impl Slo {
    /// Parses `p99<2ms`, `p99.9<10ms`, `p50<500us`.
    pub fn parse(s: &str) -> Result<Slo, TuneError> {
        let bad = |why: &str| {
            TuneError::Config(format!(
                "--slo {s:?}: {why} (expected e.g. p99<2ms or p99.9<10ms)"
            ))
        };
        let t = s.trim();
        let (p, limit) = t.split_once('<').ok_or_else(|| bad("no '<'"))?;
        let p = p
            .trim()
            .strip_prefix(['p', 'P'])
            .ok_or_else(|| bad("the quantile starts with p"))?;
        let pct: f64 = p.parse().map_err(|_| bad("not a percentile"))?;
        if !(pct > 0.0 && pct < 100.0) {
            return Err(bad("the percentile is between 0 and 100"));
        }
        let limit = limit.trim().trim_start_matches('=').trim();
        let limit: Duration = humantime::parse_duration(limit).map_err(|_| {
            bad(&format!(
                "the limit {limit:?} is not a duration with a unit (us, ms, s)"
            ))
        })?;
        if limit.is_zero() {
            return Err(bad("the limit must be above 0"));
        }
        Ok(Slo {
            quantile: pct / 100.0,
            limit_us: limit.as_secs_f64() * 1e6,
        })
    }

    /// `p99<2.00ms`.
    pub fn describe(&self) -> String {
        let pct = format!("{}", (self.quantile * 100.0 * 1000.0).round() / 1000.0);
        format!("p{pct}<{}", fmt_us(self.limit_us))
    }
}

/// One step of the search: a point on the latency-versus-rate curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RatePoint {
    /// The intended rate, requests/s.
    pub target_rate: f64,
    /// The achieved rate, replies/s.
    pub rate: f64,
    /// Corrected p50, µs.
    pub p50_us: f64,
    /// Corrected p99, µs.
    pub p99_us: f64,
    /// Corrected p99.9, µs.
    pub p99_9_us: f64,
    /// The SLO's quantile, µs.
    pub slo_us: f64,
    /// Errors.
    pub errors: u64,
    /// Whether this step met the SLO.
    pub pass: bool,
}

/// The search's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloSearch {
    /// The objective, as written back (`p99<2.00ms`).
    pub spec: String,
    /// The objective.
    pub slo: Slo,
    /// Index of the cell searched.
    pub cell: usize,
    /// The cell's label.
    pub label: String,
    /// The cell's closed-loop rate, the search's scale.
    pub closed_rate: f64,
    /// Every step, in the order run.
    pub points: Vec<RatePoint>,
    /// The highest target rate that met the SLO (`None` if none did).
    pub best_rate: Option<f64>,
}

impl SloSearch {
    /// The points sorted by target rate (the curve).
    pub fn curve(&self) -> Vec<RatePoint> {
        let mut p = self.points.clone();
        p.sort_by(|a, b| a.target_rate.total_cmp(&b.target_rate));
        p
    }
}

/// The rising steps, as multiples of the closed-loop rate.
pub const STEPS: [f64; 9] = [0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5];

/// Runs the search on `cell` (its index in the report is `cell_index`).
pub fn search(
    runner: &dyn CellRunner,
    cell: &CellOutcome,
    slo: &Slo,
    progress: &mut dyn FnMut(&str),
) -> Result<SloSearch, TuneError> {
    let closed = cell.stats.rate.median;
    let mut out = SloSearch {
        spec: slo.describe(),
        slo: *slo,
        cell: 0,
        label: cell.cell.label.clone(),
        closed_rate: closed,
        points: Vec::new(),
        best_rate: None,
    };
    if closed <= 0.0 {
        return Ok(out);
    }
    let mut step = |rate: f64, out: &mut SloSearch| -> Result<bool, TuneError> {
        let mut config = cell.cell.config.clone();
        config.rate = Some(rate);
        let r = runner.run(&config)?;
        let s = r.sample();
        let q = r.quantile_us(slo.quantile);
        let pass = r.replies > 0
            && q <= slo.limit_us
            && r.errors == 0
            && s.rate >= rate * defaults::SLO_MIN_ACHIEVED;
        progress(&format!(
            "slo {} at {rate:.0} req/s: achieved {:.0}, p{} {} → {}",
            out.spec,
            s.rate,
            slo.quantile * 100.0,
            fmt_us(q),
            if pass { "pass" } else { "FAIL" }
        ));
        out.points.push(RatePoint {
            target_rate: rate,
            rate: s.rate,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
            p99_9_us: s.p99_9_us,
            slo_us: q,
            errors: r.errors,
            pass,
        });
        if pass {
            out.best_rate = Some(out.best_rate.map_or(rate, |b: f64| b.max(rate)));
        }
        Ok(pass)
    };
    let mut last_pass: Option<f64> = None;
    let mut first_fail: Option<f64> = None;
    for m in STEPS.iter().take(defaults::SLO_MAX_STEPS) {
        let rate = (closed * m).max(1.0);
        if step(rate, &mut out)? {
            last_pass = Some(rate);
        } else {
            first_fail = Some(rate);
            break;
        }
    }
    if let Some(hi) = first_fail {
        let mut lo = last_pass.unwrap_or(0.0);
        let mut hi = hi;
        for _ in 0..2 {
            if out.points.len() >= defaults::SLO_MAX_STEPS {
                break;
            }
            let mid = (lo + hi) / 2.0;
            if mid < 1.0 {
                break;
            }
            if step(mid, &mut out)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    Ok(out)
}
