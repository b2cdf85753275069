//! `--slo 'p99<2ms'` and the open-loop rate search.
//!
//! The search takes one configuration and its closed-loop rate `C` (its capacity), then runs it open-loop at
//! rising rates — `C × 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5` — until a step breaks the SLO; it then
//! bisects twice between the last passing and the first failing rate.
//!
//! **A step** is `--repeat` runs at one rate. A run *passes* when the latency quantile is within the limit, no
//! request failed (requests still waiting for a slot when the duration ended, `unsent`, were never sent to the
//! server: they are no failure of it, and are recorded apart), and the achieved rate is at least [`super::defaults::SLO_MIN_ACHIEVED`] of the target (a
//! server that cannot keep up has not met anything). A run that did not pass while the load generator itself
//! fell behind its schedule (send lag p99 above [`crate::health::LAG_WARN`]: its own thread woke late, and that
//! lag is inside every corrected latency and every missed send) is *generator-limited* — unless the server's
//! failure is plain anyway: a request failed, or the quantile is over the limit by more than the generator's
//! worst lag. A generator-limited run says nothing about the server: neither a pass nor a failure. (A run that
//! passed with the generator behind is a pass: the lag only made it look worse.) The step's outcome is the
//! majority of its runs: generator-limited when more than half were, else pass when more than half of the
//! others passed, else fail.
//!
//! **Confirmation.** A step that did not pass is run again before the search turns on it; when the two
//! disagree a third decides (two out of three). One noisy step therefore does not end the search: its failure
//! is recorded, overruled, and the search goes on. A rate whose verdict is *generator-limited* stops the rise
//! like a failure (nothing above it can be measured on this machine) but is reported as the load generator's
//! limit ([`Limit::Generator`]), never as the server's.
//!
//! Every run set is a point of the latency-versus-rate curve, with its outcome and the step's verdict.

use std::time::Duration;

use serde::Serialize;

use super::{defaults, table::fmt_us, CellOutcome, CellResult, CellRunner, TuneError};
use crate::health::LAG_WARN;

/// A latency objective: the `quantile` of corrected latency must stay below `limit` (`p99<2ms`), or at most
/// reach it (`p99<=2ms`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Slo {
    /// 0.99 for `p99`, 0.999 for `p99.9`.
    pub quantile: f64,
    /// The bound, in microseconds.
    pub limit_us: f64,
    /// `<=`: a quantile equal to the limit meets the objective; `<` (false): only one below it.
    pub inclusive: bool,
}

impl Slo {
    /// Parses `p99<2ms`, `p99<=2ms`, `p99.9<10ms`, `p50<500us`. A latency objective is a bound from above:
    /// `>` and `>=` are refused, and so is anything else between the quantile and the limit.
    pub fn parse(s: &str) -> Result<Slo, TuneError> {
        let bad = |why: &str| {
            TuneError::Config(format!(
                "--slo {s:?}: {why} (expected e.g. p99<2ms, p99<=2ms or p99.9<10ms)"
            ))
        };
        let t = s.trim();
        let Some(at) = t.find(['<', '>', '=']) else {
            return Err(bad("no '<' or '<='"));
        };
        let (p, rest) = t.split_at(at);
        let (inclusive, limit) = if let Some(l) = rest.strip_prefix("<=") {
            (true, l)
        } else if let Some(l) = rest.strip_prefix('<') {
            (false, l)
        } else {
            return Err(bad(
                "a latency objective bounds the quantile from above: '<' or '<=', not '>', '>=' or '='",
            ));
        };
        let p = p
            .trim()
            .strip_prefix(['p', 'P'])
            .ok_or_else(|| bad("the quantile starts with p"))?;
        let pct: f64 = p.parse().map_err(|_| bad("not a percentile"))?;
        if !(pct > 0.0 && pct < 100.0) {
            return Err(bad("the percentile is between 0 and 100"));
        }
        let limit = limit.trim();
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
            inclusive,
        })
    }

    /// True when a quantile of `q_us` microseconds meets the objective: below the limit, or (`<=`) at it.
    pub fn met_by(&self, q_us: f64) -> bool {
        match self.inclusive {
            true => q_us <= self.limit_us,
            false => q_us < self.limit_us,
        }
    }

    /// `p99<2.00ms`, `p99<=2.00ms`.
    pub fn describe(&self) -> String {
        let pct = format!("{}", (self.quantile * 100.0 * 1000.0).round() / 1000.0);
        let op = if self.inclusive { "<=" } else { "<" };
        format!("p{pct}{op}{}", fmt_us(self.limit_us))
    }
}

/// What one set of runs at a rate (or a step's final verdict) showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The SLO held.
    Pass,
    /// The server broke the SLO (latency, errors or a missed rate) while the load generator kept its schedule.
    Fail,
    /// The load generator fell behind its own schedule: not a verdict on the server.
    GeneratorLimited,
}

impl Outcome {
    /// `pass`, `FAIL`, `generator-limited`.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::GeneratorLimited => "generator-limited",
        }
    }
}

/// What ended the rise of the search above [`SloSearch::best_rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// A confirmed failure: the server's limit for this SLO.
    Server,
    /// The load generator could not keep its schedule: the server's limit is at or above this rate, unknown.
    Generator,
    /// Every rising step passed (up to 1.5× the closed-loop rate), or the search never ran.
    None,
}

/// One set of `--repeat` runs at one rate: a point on the latency-versus-rate curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RatePoint {
    /// The intended rate, requests/s.
    pub target_rate: f64,
    /// The achieved rate, replies/s (median over the runs).
    pub rate: f64,
    /// Corrected p50, µs (median over the runs).
    pub p50_us: f64,
    /// Corrected p99, µs (median over the runs).
    pub p99_us: f64,
    /// Corrected p99.9, µs (median over the runs).
    pub p99_9_us: f64,
    /// The SLO's quantile, µs (median over the runs).
    pub slo_us: f64,
    /// The SLO's quantile over the runs: max − min, µs (0 with one run).
    pub slo_spread_us: f64,
    /// Requests that failed, every run added up: sent and failed, or timed out waiting for a slot. The server's
    /// errors; the `unsent` are not among them.
    pub errors: u64,
    /// Requests the load generator still held when a run's duration ended (every slot busy; nothing is sent
    /// after the end), every run added up: never sent, so not the server's errors. (Included in `errors` before
    /// they were told apart.)
    pub unsent: u64,
    /// Runs in this set (`--repeat`).
    pub runs: usize,
    /// Runs in which the load generator fell behind its schedule.
    pub generator_limited_runs: usize,
    /// The load generator's send lag p99, µs: the worst run's.
    pub send_lag_p99_us: f64,
    /// The busiest load-generator thread's CPU use, share of one core: the worst run's.
    pub generator_cpu_share: f64,
    /// 1 for the first set at this rate, 2 for the confirmation, 3 for the tie-breaker.
    pub attempt: u32,
    /// What this set showed.
    pub outcome: Outcome,
    /// The step's verdict at this rate, over all its sets (the same on each of them).
    pub verdict: Outcome,
    /// `outcome == Pass` (kept for readers of the first schema).
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
    /// Runs per set (`--repeat`).
    pub repeat: usize,
    /// Every set of runs, in the order run.
    pub points: Vec<RatePoint>,
    /// The highest target rate whose verdict was a pass (`None` if none).
    pub best_rate: Option<f64>,
    /// What stopped the rise above `best_rate`.
    pub limit: Limit,
    /// The lowest rate above `best_rate` that did not pass (the rate `limit` is about), if any.
    pub limit_rate: Option<f64>,
}

impl SloSearch {
    /// The points sorted by target rate (the curve); sets at one rate keep their order.
    pub fn curve(&self) -> Vec<RatePoint> {
        let mut p = self.points.clone();
        p.sort_by(|a, b| a.target_rate.total_cmp(&b.target_rate));
        p
    }

    /// Why no rate met the objective, in one line (`None` when one did): what `tune --slo` says on stderr as it
    /// exits with status 1.
    pub fn not_met(&self) -> Option<String> {
        if self.best_rate.is_some() {
            return None;
        }
        let tried = self.points.iter().map(|p| p.target_rate);
        let lowest = tried.clone().fold(f64::INFINITY, f64::min);
        let highest = tried.fold(0.0, f64::max);
        let why = match self.limit {
            _ if self.points.is_empty() => format!(
                "the search did not run: the cell [{}] measured no closed-loop rate to start from",
                self.label
            ),
            Limit::Generator => format!(
                "the load generator fell behind its schedule at every rate tried ({lowest:.0} to {highest:.0} \
                 req/s), which says nothing of the server (more --threads, or a machine of its own)"
            ),
            _ => format!(
                "the server failed it at every rate tried, down to {lowest:.0} req/s (confirmed)"
            ),
        };
        Some(format!(
            "no rate met --slo {} on [{}]: {why}; see the table and the report",
            self.spec, self.label
        ))
    }

    /// Points whose own outcome was overruled by the step's verdict (a failure not confirmed …).
    pub fn overruled(&self) -> impl Iterator<Item = &RatePoint> {
        self.points.iter().filter(|p| p.outcome != p.verdict)
    }
}

/// The rising steps, as multiples of the closed-loop rate.
pub const STEPS: [f64; 9] = [0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5];

/// True when the load generator fell behind its own schedule in `r` (send lag p99 above [`LAG_WARN`]).
pub fn generator_fell_behind(r: &CellResult) -> bool {
    r.health.send_lag_p99_us > LAG_WARN.as_secs_f64() * 1e6
}

/// The requests of `r` the load generator never sent: still waiting for a free slot when the duration ended.
fn unsent(r: &CellResult) -> u64 {
    r.errors_by_kind.get(crate::recorder::ErrorKind::Unsent)
}

/// The median of `v` (0 when empty).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One set of `runs` at `rate`, judged.
fn run_set(
    runner: &dyn CellRunner,
    cell: &CellOutcome,
    slo: &Slo,
    rate: f64,
    runs: usize,
    attempt: u32,
) -> Result<RatePoint, TuneError> {
    let mut config = cell.cell.config.clone();
    config.rate = Some(rate);
    let (mut passed, mut failed, mut behind, mut held) = (0, 0, 0, 0);
    let mut results = Vec::with_capacity(runs);
    for _ in 0..runs {
        // The runner knows the cell by its settings; the user by its label.
        let r = runner.run(&config).map_err(|e| match e {
            TuneError::Cell { reason, .. } => TuneError::Cell {
                cell: cell.cell.label.clone(),
                reason,
            },
            e => e,
        })?;
        if let Some(why) = super::connections_failed(&r).or_else(|| super::stray_replies(&r)) {
            return Err(TuneError::Cell {
                cell: cell.cell.label.clone(),
                reason: format!(
                    "at {rate:.0} req/s (the SLO search): {why}; tune stops rather than recommend"
                ),
            });
        }
        let q = r.quantile_us(slo.quantile);
        let slow = !slo.met_by(q);
        let short = r.rate() < rate * defaults::SLO_MIN_ACHIEVED;
        // Requests the load generator still held when the duration ended (`unsent`: every slot was busy, and
        // nothing is sent after the end) never reached the server: they are not its errors. What kept the
        // slots busy is in the corrected latency (their pool wait) and the achieved rate, which judge it.
        let server_errors = r.errors.saturating_sub(unsent(&r));
        if r.replies > 0 && server_errors == 0 && !slow && !short {
            passed += 1;
        } else if generator_fell_behind(&r)
            && server_errors == 0
            && q <= slo.limit_us + r.health.send_lag_max_us
        {
            // The load generator's own lag is inside the latency and the rate it missed: its failure.
            behind += 1;
        } else {
            failed += 1;
        }
        held += unsent(&r);
        results.push((r.sample(), q, r.health));
    }
    let outcome = if behind * 2 > runs {
        Outcome::GeneratorLimited
    } else if passed > failed {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    let m = |f: fn(&(super::Sample, f64, crate::health::Health)) -> f64| {
        median(results.iter().map(f).collect())
    };
    let max = |f: fn(&(super::Sample, f64, crate::health::Health)) -> f64| {
        results.iter().map(f).fold(0.0, f64::max)
    };
    let qs = results.iter().map(|r| r.1);
    let spread = qs.clone().fold(f64::MIN, f64::max) - qs.fold(f64::MAX, f64::min);
    Ok(RatePoint {
        target_rate: rate,
        rate: m(|r| r.0.rate),
        p50_us: m(|r| r.0.p50_us),
        p99_us: m(|r| r.0.p99_us),
        p99_9_us: m(|r| r.0.p99_9_us),
        slo_us: m(|r| r.1),
        slo_spread_us: spread.max(0.0),
        errors: results.iter().map(|r| r.0.errors).sum::<u64>() - held,
        unsent: held,
        runs,
        generator_limited_runs: behind,
        send_lag_p99_us: max(|r| r.2.send_lag_p99_us),
        generator_cpu_share: max(|r| r.2.max_worker_cpu_share),
        attempt,
        outcome,
        verdict: outcome,
        pass: outcome == Outcome::Pass,
    })
}

/// The verdict of up to three sets: two that agree decide; with three all different, the load generator's
/// limit (nothing was shown about the server twice).
fn verdict(sets: &[Outcome]) -> Option<Outcome> {
    for o in [Outcome::Pass, Outcome::Fail, Outcome::GeneratorLimited] {
        if sets.iter().filter(|s| **s == o).count() >= 2 {
            return Some(o);
        }
    }
    match sets {
        [Outcome::Pass] => Some(Outcome::Pass),
        [_, _, _] => Some(Outcome::GeneratorLimited),
        _ => None,
    }
}

/// Runs the search on `cell` with `repeat` runs per set (its index in the report is set by the caller).
pub fn search(
    runner: &dyn CellRunner,
    cell: &CellOutcome,
    slo: &Slo,
    repeat: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<SloSearch, TuneError> {
    let closed = cell.stats.rate.median;
    let repeat = repeat.max(1);
    let mut out = SloSearch {
        spec: slo.describe(),
        slo: *slo,
        cell: 0,
        label: cell.cell.label.clone(),
        closed_rate: closed,
        repeat,
        points: Vec::new(),
        best_rate: None,
        limit: Limit::None,
        limit_rate: None,
    };
    if closed <= 0.0 {
        return Ok(out);
    }
    // One step: a set of runs, confirmed when it did not pass; returns the verdict.
    let mut step = |rate: f64, out: &mut SloSearch| -> Result<Outcome, TuneError> {
        let first = out.points.len();
        let mut sets = Vec::new();
        loop {
            let attempt = sets.len() as u32 + 1;
            let p = run_set(runner, cell, slo, rate, repeat, attempt)?;
            sets.push(p.outcome);
            let decided = verdict(&sets);
            progress(&format!(
                "slo {} at {rate:.0} req/s{}: achieved {:.0}, p{} {}, send lag p99 {} → {}{}",
                out.spec,
                match attempt {
                    1 => "",
                    2 => " (confirming)",
                    _ => " (deciding)",
                },
                p.rate,
                slo.quantile * 100.0,
                fmt_us(p.slo_us),
                fmt_us(p.send_lag_p99_us),
                p.outcome.word(),
                match decided {
                    Some(v) if attempt > 1 => format!("; step {}", v.word()),
                    _ => String::new(),
                }
            ));
            out.points.push(p);
            if let Some(v) = decided {
                for p in &mut out.points[first..] {
                    p.verdict = v;
                }
                if v == Outcome::Pass {
                    out.best_rate = Some(out.best_rate.map_or(rate, |b: f64| b.max(rate)));
                }
                return Ok(v);
            }
        }
    };
    let mut last_pass: Option<f64> = None;
    let mut first_stop: Option<(f64, Outcome)> = None;
    for m in STEPS.iter().take(defaults::SLO_MAX_STEPS) {
        let rate = (closed * m).max(1.0);
        match step(rate, &mut out)? {
            Outcome::Pass => last_pass = Some(rate),
            v => {
                first_stop = Some((rate, v));
                break;
            }
        }
    }
    if let Some(stop) = first_stop {
        let mut lo = last_pass.unwrap_or(0.0);
        let mut hi = stop;
        for _ in 0..2 {
            // SLO_MAX_STEPS counts rates; confirmations come on top (at most two per rate).
            if out.points.iter().filter(|p| p.attempt == 1).count() >= defaults::SLO_MAX_STEPS {
                break;
            }
            let mid = (lo + hi.0) / 2.0;
            if mid < 1.0 {
                break;
            }
            match step(mid, &mut out)? {
                Outcome::Pass => lo = mid,
                v => hi = (mid, v),
            }
        }
        out.limit_rate = Some(hi.0);
        out.limit = match hi.1 {
            Outcome::GeneratorLimited => Limit::Generator,
            _ => Limit::Server,
        };
    }
    Ok(out)
}
