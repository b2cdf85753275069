//! The recommendation: the settings that meet the SLO at the highest rate, and for each technique (each
//! varied key and value) how much it changed p99 and the rate against its baseline value.
//!
//! A technique's effect is measured on pairs of cells that differ only in that key (in the full matrix
//! there is one pair per combination of the other keys; one at a time there is one pair). The ratios are
//! the geometric means over the pairs, and the effect is "within noise" when every pair's difference is.

use std::fmt::Write as _;

use serde::Serialize;

use super::slo::{Slo, SloSearch};
use super::table::fmt_us;
use super::{CellOutcome, Vary};
use crate::recorder::quantile_us;

/// What one technique (a key set to a value) changed against the key's baseline value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Technique {
    /// The key, e.g. `pipeline`.
    pub key: String,
    /// The value tried, e.g. `16`.
    pub value: String,
    /// The key's baseline value, e.g. `1`.
    pub baseline_value: String,
    /// Rate with the value ÷ rate with the baseline value (geometric mean over pairs).
    pub rate_ratio: Option<f64>,
    /// p99 with the value ÷ p99 with the baseline value (geometric mean over pairs).
    pub p99_ratio: Option<f64>,
    /// True when every pair's rate and p99 differences are within noise; `None` with a single run.
    pub within_noise: Option<bool>,
    /// Number of cell pairs compared.
    pub pairs: usize,
}

/// The tune's conclusion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Index of the recommended cell.
    pub cell: usize,
    /// Its label.
    pub label: String,
    /// Its varied settings, `key=value`.
    pub settings: Vec<String>,
    /// The rate it sustains: the SLO search's best rate, or its closed-loop rate (median) otherwise.
    pub rate: f64,
    /// Its p99 at that rate, µs: measured in the open-loop step at `rate` when the SLO search found one,
    /// otherwise its closed-loop p99 (median). `measured` says which.
    pub p99_us: f64,
    /// How `rate` and `p99_us` were measured: `open-loop` (the SLO search's step at that rate) or
    /// `closed-loop` (the cell's own runs).
    pub measured: &'static str,
    /// Its closed-loop p99 (median), µs, whatever `measured` is.
    pub closed_loop_p99_us: f64,
    /// Whether it meets the SLO (`None` without one).
    pub meets_slo: Option<bool>,
    /// One sentence saying why this cell.
    pub reason: String,
    /// Each technique's effect.
    pub techniques: Vec<Technique>,
}

fn meets(c: &CellOutcome, slo: &Slo) -> bool {
    c.stats.errors.median == 0.0
        && !c.corrected.is_empty()
        && quantile_us(&c.corrected, slo.quantile) <= slo.limit_us
}

/// The cell the SLO search should start from: among the cells that meet the SLO in the closed loop, the one
/// with the highest rate; if none does, the one with the lowest latency at the SLO's quantile.
pub fn best_closed_loop(cells: &[CellOutcome], slo: &Slo) -> usize {
    let by_rate = |a: &&(usize, &CellOutcome), b: &&(usize, &CellOutcome)| {
        a.1.stats.rate.median.total_cmp(&b.1.stats.rate.median)
    };
    let all: Vec<(usize, &CellOutcome)> = cells.iter().enumerate().collect();
    if let Some((i, _)) = all.iter().filter(|(_, c)| meets(c, slo)).max_by(by_rate) {
        return *i;
    }
    all.iter()
        .min_by(|a, b| {
            quantile_us(&a.1.corrected, slo.quantile)
                .total_cmp(&quantile_us(&b.1.corrected, slo.quantile))
        })
        .map_or(0, |(i, _)| *i)
}

fn geomean(v: &[f64]) -> Option<f64> {
    let v: Vec<f64> = v
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    (!v.is_empty()).then(|| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

/// Each technique's effect over pairs of cells that differ only in its key.
pub fn techniques(cells: &[CellOutcome], varies: &[Vary]) -> Vec<Technique> {
    let mut out = Vec::new();
    for v in varies {
        let base_value = &v.values[0];
        for value in &v.values[1..] {
            let mut rate = Vec::new();
            let mut p99 = Vec::new();
            let mut noise: Vec<Option<bool>> = Vec::new();
            for with in cells.iter().filter(|c| c.cell.value(v.key) == Some(value)) {
                let partner = cells.iter().find(|c| {
                    c.cell.value(v.key) == Some(base_value)
                        && c.cell.settings.iter().all(|(k, val)| {
                            *k == v.key || with.cell.value(*k) == Some(val.as_str())
                        })
                });
                let Some(base) = partner else { continue };
                if let Some(r) = with.stats.rate.ratio(&base.stats.rate) {
                    rate.push(r);
                }
                if let Some(r) = with.stats.p99_us.ratio(&base.stats.p99_us) {
                    p99.push(r);
                }
                noise.push(
                    match (
                        with.stats.rate.within_noise(&base.stats.rate),
                        with.stats.p99_us.within_noise(&base.stats.p99_us),
                    ) {
                        (Some(a), Some(b)) => Some(a && b),
                        _ => None,
                    },
                );
            }
            let within_noise = if noise.is_empty() || noise.iter().any(Option::is_none) {
                None
            } else {
                Some(noise.iter().all(|n| *n == Some(true)))
            };
            out.push(Technique {
                key: v.key.name().to_string(),
                value: value.clone(),
                baseline_value: base_value.clone(),
                rate_ratio: geomean(&rate),
                p99_ratio: geomean(&p99),
                within_noise,
                pairs: noise.len(),
            });
        }
    }
    out
}

/// The recommendation over the measured cells.
pub fn recommend(
    cells: &[CellOutcome],
    varies: &[Vary],
    slo: Option<&Slo>,
    search: Option<&SloSearch>,
) -> Recommendation {
    let (cell, rate, meets_slo, reason) = match (slo, search) {
        (Some(slo), Some(s)) => {
            let c = &cells[s.cell];
            match s.best_rate {
                Some(r) => (
                    s.cell,
                    r,
                    Some(true),
                    format!(
                        "meets {} up to {r:.0} req/s open-loop (the highest passing step of the rate search)",
                        s.spec
                    ),
                ),
                None => (
                    s.cell,
                    c.stats.rate.median,
                    Some(false),
                    format!(
                        "no rate met {}; this configuration came closest ({} at {})",
                        s.spec,
                        fmt_us(quantile_us(&c.corrected, slo.quantile)),
                        slo.describe().split('<').next().unwrap_or("")
                    ),
                ),
            }
        }
        (Some(slo), None) => {
            let i = best_closed_loop(cells, slo);
            let ok = meets(&cells[i], slo);
            (
                i,
                cells[i].stats.rate.median,
                Some(ok),
                format!("best closed-loop cell for {}", slo.describe()),
            )
        }
        _ => {
            let i = cells
                .iter()
                .enumerate()
                .filter(|(_, c)| c.stats.errors.median == 0.0)
                .max_by(|a, b| a.1.stats.rate.median.total_cmp(&b.1.stats.rate.median))
                .map_or(0, |(i, _)| i);
            (
                i,
                cells[i].stats.rate.median,
                None,
                "highest closed-loop rate without errors (no --slo given)".into(),
            )
        }
    };
    let c = &cells[cell];
    let closed_p99 = c.stats.p99_us.median;
    // With a passing SLO step, report the p99 measured at that very rate, not the closed loop's.
    let at_rate = search
        .filter(|_| meets_slo == Some(true))
        .and_then(|s| s.points.iter().find(|p| p.pass && p.target_rate == rate));
    let (p99_us, measured) = match at_rate {
        Some(p) => (p.p99_us, "open-loop"),
        None => (closed_p99, "closed-loop"),
    };
    Recommendation {
        cell,
        label: c.cell.label.clone(),
        settings: c
            .cell
            .settings
            .iter()
            .map(|(k, v)| format!("{}={v}", k.name()))
            .collect(),
        rate,
        p99_us,
        measured,
        closed_loop_p99_us: closed_p99,
        meets_slo,
        reason,
        techniques: techniques(cells, varies),
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}×"))
}

/// The recommendation as terminal text.
pub fn render(r: &Recommendation, search: Option<&SloSearch>) -> String {
    let mut s = String::new();
    if let Some(search) = search {
        let _ = writeln!(s, "SLO {} rate search on [{}]:", search.spec, search.label);
        let _ = writeln!(
            s,
            "  {:>10} {:>10} {:>9} {:>9} {:>7}  result",
            "target/s", "achieved/s", "p50", "p99", "errors"
        );
        for p in search.curve() {
            let _ = writeln!(
                s,
                "  {:>10.0} {:>10.0} {:>9} {:>9} {:>7}  {}",
                p.target_rate,
                p.rate,
                fmt_us(p.p50_us),
                fmt_us(p.p99_us),
                p.errors,
                if p.pass { "pass" } else { "FAIL" }
            );
        }
        let _ = writeln!(
            s,
            "  highest rate meeting the SLO: {}",
            search
                .best_rate
                .map_or("none".into(), |b| format!("{b:.0} req/s"))
        );
    }
    let _ = writeln!(s, "Recommendation: [{}] — {}", r.label, r.reason);
    if r.measured == "open-loop" {
        let _ = writeln!(
            s,
            "  at {:.0} req/s open-loop: p99 {} (closed loop, at its own rate: p99 {})",
            r.rate,
            fmt_us(r.p99_us),
            fmt_us(r.closed_loop_p99_us)
        );
    } else {
        let _ = writeln!(
            s,
            "  closed loop: {:.0} req/s, p99 {}",
            r.rate,
            fmt_us(r.p99_us)
        );
    }
    if !r.techniques.is_empty() {
        let _ = writeln!(
            s,
            "What each technique changed (against its baseline value):"
        );
        for t in &r.techniques {
            let noise = match t.within_noise {
                Some(true) => " (within noise)",
                Some(false) => "",
                None => " (single run: noise unknown)",
            };
            let _ = writeln!(
                s,
                "  {}={} vs {}: rate {}, p99 {}{noise}",
                t.key,
                t.value,
                t.baseline_value,
                ratio(t.rate_ratio),
                ratio(t.p99_ratio)
            );
        }
    }
    s
}
