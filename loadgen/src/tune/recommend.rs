//! The recommendation: the settings that meet the SLO at the highest rate, and for each technique (each
//! varied key and value) how much it changed p99 and the rate against its baseline value.
//!
//! A technique's effect is measured on pairs of cells that differ only in that key (in the full matrix
//! there is one pair per combination of the other keys; one at a time there is one pair). The ratios are
//! the geometric means over the pairs, and the effect is "within noise" when every pair's difference is.
//!
//! `--recommend FILE` writes the recommended cell as the SDK's own [`ClientConfig`] (JSON, or TOML by the
//! `.toml` extension), which `sockpool::Client::from_config_file` builds a client from, with what was measured
//! under its `evidence` key: [`recommendation_file`].

use std::fmt::Write as _;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{json, Value};
use sockpool::config::Evidence;
use sockpool::ClientConfig;

use super::slo::{Limit, Outcome, RatePoint, Slo, SloSearch};
use super::table::fmt_us;
use super::{round3, CellConfig, CellOutcome, Stat, TuneError, TuneReport, Vary};
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
    /// How `rate` and `p99_us` were measured: `open-loop` (the SLO search's step at that rate),
    /// `closed-loop` (the cell's own runs) or `fixed-rate` (the cell's own runs, open-loop at its `--vary rate`).
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
        && slo.met_by(quantile_us(&c.corrected, slo.quantile))
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

/// How well a cell without errors served, for the recommendation without an SLO: a closed-loop cell by its rate;
/// a cell given a rate (`--vary rate`) by that rate when it kept up with it (achieved ≥ 95 %), else by what it
/// achieved. Equal rates (cells at the same offered rate, all kept up) go to the lower p99: there the achieved
/// rates differ only by noise.
struct Served {
    rate: f64,
    p99_us: f64,
}

impl Served {
    fn cmp_by(&self, other: &Served) -> std::cmp::Ordering {
        self.rate
            .total_cmp(&other.rate)
            .then(other.p99_us.total_cmp(&self.p99_us))
    }
}

fn served(c: &CellOutcome) -> Served {
    let achieved = c.stats.rate.median;
    let rate = match c.cell.config.rate {
        Some(offered) if achieved >= 0.95 * offered => offered,
        _ => achieved,
    };
    Served {
        rate,
        p99_us: c.stats.p99_us.median,
    }
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
                        "meets {} up to {r:.0} req/s open-loop (the highest passing step of the rate search){}",
                        s.spec,
                        limit_words(s)
                    ),
                ),
                None if s.limit == Limit::Generator && s.points.iter().all(|p| !p.pass) => (
                    s.cell,
                    c.stats.rate.median,
                    Some(false),
                    format!(
                        "no step of the {} search could be judged: the load generator fell behind its schedule \
                         at every rate tried ({:.0} to {:.0} req/s), which says nothing about the server; \
                         closed-loop figures shown",
                        s.spec,
                        s.points.iter().map(|p| p.target_rate).fold(f64::MAX, f64::min),
                        s.points.iter().map(|p| p.target_rate).fold(0.0, f64::max)
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
                .max_by(|a, b| served(a.1).cmp_by(&served(b.1)))
                .map_or(0, |(i, _)| i);
            let reason = match cells[i].cell.config.rate {
                Some(_) => {
                    "highest rate without errors of the rates offered (--vary rate; no --slo given)"
                }
                None => "highest closed-loop rate without errors (no --slo given)",
            };
            (i, cells[i].stats.rate.median, None, reason.into())
        }
    };
    let c = &cells[cell];
    let closed_p99 = c.stats.p99_us.median;
    // With a passing SLO step, report the p99 measured at that very rate, not the closed loop's.
    let at_rate = search
        .filter(|_| meets_slo == Some(true))
        .and_then(|s| passing_step(s, rate));
    let (p99_us, measured) = match at_rate {
        Some(p) => (p.p99_us, "open-loop"),
        // The cell's own runs, open-loop at the rate it was given.
        None if c.cell.config.rate.is_some() => (closed_p99, "fixed-rate"),
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

/// The step at `rate` when its verdict was a pass, as one point: each figure the median over the step's sets
/// (each set's own figure is the median of its `--repeat` runs), as the verdict is their majority. A step
/// confirmed after a failed set (fail, pass, pass) is thus shown by its median set, not by whichever set
/// passed first. `runs` counts every run of the step, `attempt` its sets; errors add up, the send lag and
/// CPU share are the worst set's, the spread the largest set's.
pub fn passing_step(search: &SloSearch, rate: f64) -> Option<RatePoint> {
    let sets: Vec<&RatePoint> = search
        .points
        .iter()
        .filter(|p| p.target_rate == rate && p.verdict == Outcome::Pass)
        .collect();
    let first = **sets.first()?;
    let median = |f: fn(&RatePoint) -> f64| super::slo::median(sets.iter().map(|p| f(p)).collect());
    let worst = |f: fn(&RatePoint) -> f64| sets.iter().map(|p| f(p)).fold(0.0, f64::max);
    Some(RatePoint {
        rate: median(|p| p.rate),
        p50_us: median(|p| p.p50_us),
        p99_us: median(|p| p.p99_us),
        p99_9_us: median(|p| p.p99_9_us),
        slo_us: median(|p| p.slo_us),
        slo_spread_us: worst(|p| p.slo_spread_us),
        errors: sets.iter().map(|p| p.errors).sum(),
        unsent: sets.iter().map(|p| p.unsent).sum(),
        runs: sets.iter().map(|p| p.runs).sum(),
        generator_limited_runs: sets.iter().map(|p| p.generator_limited_runs).sum(),
        send_lag_p99_us: worst(|p| p.send_lag_p99_us),
        generator_cpu_share: worst(|p| p.generator_cpu_share),
        attempt: sets.len() as u32,
        outcome: Outcome::Pass,
        ..first
    })
}

/// What stopped the search above its best rate, as the end of a sentence.
fn limit_words(s: &SloSearch) -> String {
    match (s.limit, s.limit_rate) {
        (Limit::Server, Some(r)) => format!("; the server failed it at {r:.0} req/s (confirmed)"),
        (Limit::Generator, Some(r)) => format!(
            "; at {r:.0} req/s the load generator fell behind its schedule, so the server's limit is higher \
             but unmeasured here (tune --threads N, or the load generator on a machine of its own)"
        ),
        _ => String::new(),
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}×"))
}

/// The recommendation as terminal text.
pub fn render(r: &Recommendation, search: Option<&SloSearch>) -> String {
    let mut s = String::new();
    if let Some(search) = search {
        let _ = writeln!(
            s,
            "SLO {} rate search on [{}] ({} run(s) per set; a set that did not pass is confirmed):",
            search.spec, search.label, search.repeat
        );
        let _ = writeln!(
            s,
            "  {:>10} {:>10} {:>9} {:>9} {:>7} {:>9}  result",
            "target/s", "achieved/s", "p50", "p99", "errors", "send lag"
        );
        for p in search.curve() {
            let mut note = match (p.attempt, p.outcome == p.verdict) {
                (1, true) => String::new(),
                (1, false) => format!(" (overruled: step {})", p.verdict.word()),
                (2, _) => " (confirmation)".into(),
                _ => " (tie-breaker)".into(),
            };
            if p.unsent > 0 {
                // Not in `errors`: the load generator's backlog at the end, never sent to the server.
                note.push_str(&format!(
                    " ({} unsent at the end: not the server's)",
                    p.unsent
                ));
            }
            let _ = writeln!(
                s,
                "  {:>10.0} {:>10.0} {:>9} {:>9} {:>7} {:>9}  {}{note}",
                p.target_rate,
                p.rate,
                fmt_us(p.p50_us),
                fmt_us(p.p99_us),
                p.errors,
                fmt_us(p.send_lag_p99_us),
                p.outcome.word()
            );
        }
        let _ = writeln!(
            s,
            "  highest rate meeting the SLO: {}",
            search
                .best_rate
                .map_or("none".into(), |b| format!("{b:.0} req/s"))
        );
        match (search.limit, search.limit_rate) {
            (Limit::Server, Some(r)) => {
                let _ = writeln!(s, "  limit: the server (confirmed failure at {r:.0} req/s)");
            }
            (Limit::Generator, Some(r)) => {
                let _ = writeln!(
                    s,
                    "  limit: the load generator fell behind its schedule at {r:.0} req/s (not the server's failure)"
                );
            }
            _ => {}
        }
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
        let how = match r.measured {
            "fixed-rate" => "open loop at its --vary rate",
            _ => "closed loop",
        };
        let _ = writeln!(s, "  {how}: {:.0} req/s, p99 {}", r.rate, fmt_us(r.p99_us));
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

/// The SDK settings a cell measured, as the SDK's own serde configuration ([`CellConfig::sdk_config`], the one
/// mapping from cells to the SDK's settings, which the real runner also builds each cell's client from), with
/// `endpoint`, the tuned target.
pub fn sdk_config(cell: &CellConfig, endpoint: Option<&str>) -> ClientConfig {
    cell.sdk_config()
        .with_endpoints(endpoint.map(str::to_string).into_iter().collect())
}

/// The configuration keys [`CellConfig::sdk_config`] sets from the cell.
pub const TUNED_KEYS: [&str; 16] = [
    "pool.max_size",
    "pool.min_idle",
    "pool.connection_per_request",
    "pipeline_depth",
    "socket.nodelay",
    "socket.send_buffer",
    "socket.recv_buffer",
    "buffers.read_capacity",
    "buffers.write_capacity",
    "buffers.max_write_batch",
    "buffers.max_reply",
    "timeouts.request_ms",
    "timeouts.pool_wait_ms",
    "timeouts.connect_ms",
    "timeouts.tls_handshake_ms",
    "retry.max_retries",
];

/// The settings of `cell` that the client configuration cannot hold: the embedded server's.
fn not_in_config(cell: &CellOutcome) -> Vec<String> {
    cell.cell
        .settings
        .iter()
        .filter(|(k, _)| !k.in_client_config())
        .map(|(k, v)| format!("{}={v}", k.name()))
        .collect()
}

/// Removes `null`s (TOML has none); an absent key means the same to a reader.
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        v => v,
    }
}

/// The share `spread / median` in percent, when there was more than one run.
fn spread_pct(s: &Stat) -> Option<f64> {
    (s.runs > 1 && s.median > 0.0).then(|| round3(s.spread / s.median * 100.0))
}

/// What `--recommend FILE` writes: the recommended cell as a [`ClientConfig`] with the evidence beside it
/// (under the SDK's documented `evidence` key, which the client ignores). `protocol`: what the tune spoke
/// (`resp`, `http` …), the protocol to build the client with.
pub fn recommendation_file(
    report: &TuneReport,
    target: Option<&str>,
    protocol: &str,
) -> ClientConfig {
    let cell = &report.cells[report.recommendation.cell];
    recommendation_of(
        report,
        target,
        protocol,
        sdk_config(&cell.cell.config, target),
    )
}

/// [`recommendation_file`] with `measured`, the client configuration the recommended cell's runs used
/// ([`crate::transport::client_config`]: TLS settings included), as the settings.
pub fn recommendation_of(
    report: &TuneReport,
    target: Option<&str>,
    protocol: &str,
    measured: ClientConfig,
) -> ClientConfig {
    let r = &report.recommendation;
    let cell = &report.cells[r.cell];
    let base = report.baseline();
    let search = report.slo.as_ref();
    let at_rate = search.and_then(|s| passing_step(s, s.best_rate?));
    let evidence = json!({
        "schema": EVIDENCE_SCHEMA,
        "tool": concat!("sockpool-loadgen ", env!("CARGO_PKG_VERSION"), " tune"),
        "date": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "target": target.unwrap_or("the embedded reference server (its address is not kept: add an endpoint)"),
        "protocol": protocol,
        "cell": r.label,
        "settings": r.settings,
        "tuned_keys": TUNED_KEYS,
        "not_in_config": not_in_config(cell),
        "slo": search.map(|s| s.spec.clone()),
        "meets_slo": r.meets_slo,
        "reason": r.reason,
        "rate": round3(r.rate),
        "measured": r.measured,
        "at_rate": at_rate.map(|p| json!({
            "target_rate": round3(p.target_rate),
            "achieved_rate": round3(p.rate),
            "p50_us": p.p50_us,
            "p99_us": p.p99_us,
            "p99_9_us": p.p99_9_us,
            "slo_quantile_us": p.slo_us,
            "slo_quantile_spread_us": p.slo_spread_us,
            "runs": p.runs,
            "sets": p.attempt,
            "send_lag_p99_us": round3(p.send_lag_p99_us),
        })),
        "closed_loop": {
            "rate": cell.stats.rate,
            "p50_us": cell.stats.p50_us,
            "p99_us": cell.stats.p99_us,
            "p99_9_us": cell.stats.p99_9_us,
        },
        "baseline": {
            "cell": base.cell.label,
            "rate": base.stats.rate,
            "p99_us": base.stats.p99_us,
        },
        "noise": {
            "repeat": report.repeat,
            "rate_spread_pct": spread_pct(&cell.stats.rate),
            "p99_spread_pct": spread_pct(&cell.stats.p99_us),
            "within_noise_of_baseline": cell.stats.within_noise(&base.stats),
        },
        "search": search.map(|s| json!({
            "closed_rate": round3(s.closed_rate),
            "best_rate": s.best_rate.map(round3),
            "limit": s.limit,
            "limit_rate": s.limit_rate.map(round3),
            "sets": s.points.len(),
            "overruled_sets": s.overruled().count(),
            "generator_limited_sets": s.points.iter().filter(|p| p.outcome == Outcome::GeneratorLimited).count(),
        })),
        "cell_duration_s": cell.cell.config.duration.as_secs_f64(),
    });
    let mut config = measured.with_endpoints(target.map(str::to_string).into_iter().collect());
    config.evidence =
        Some(Evidence::from_serialize(&strip_nulls(evidence)).expect("a JSON value is JSON"));
    config
}

/// The `evidence` section's schema name and version.
pub const EVIDENCE_SCHEMA: &str = "sockpool-tune-evidence/1";

/// Writes [`recommendation_file`] to `path`: TOML when it ends in `.toml`, JSON otherwise.
pub fn write_file(
    report: &TuneReport,
    target: Option<&str>,
    protocol: &str,
    path: &std::path::Path,
) -> Result<(), TuneError> {
    let cell = &report.cells[report.recommendation.cell];
    write_measured(
        report,
        target,
        protocol,
        sdk_config(&cell.cell.config, target),
        path,
    )
}

/// Writes [`recommendation_of`] `measured` to `path`: TOML when it ends in `.toml`, JSON otherwise.
pub fn write_measured(
    report: &TuneReport,
    target: Option<&str>,
    protocol: &str,
    measured: ClientConfig,
    path: &std::path::Path,
) -> Result<(), TuneError> {
    let out = |source| TuneError::Output {
        path: path.display().to_string(),
        source,
    };
    let text = recommendation_of(report, target, protocol, measured)
        .to_file_text(path)
        .map_err(|e| out(std::io::Error::other(e.to_string())))?;
    crate::outfile::write(path, text).map_err(out)
}
