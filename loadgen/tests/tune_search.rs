//! The SLO rate search a user can believe (fake runner): repeats per step, a failed step confirmed before the
//! search turns, a step where the load generator fell behind reported as its own limit; and `--recommend`'s
//! file, which the SDK reads back.

mod tune_common;

use std::cell::Cell;

use sockpool::ClientConfig;
use sockpool_loadgen::tune::slo::{Limit, Outcome};
use sockpool_loadgen::tune::{
    self, CellConfig, CellResult, CellRunner, Plan, SloSearch, TuneError,
};
use tune_common::{args, Fake};

/// The fake server, with one open-loop run (the `slow_run`-th, 1-based) twenty times slower: a burst of slow
/// service on the server during one step. `lag_above`: open-loop runs above this share of the capacity report
/// that the load generator fell behind (`lag_us`).
#[derive(Default)]
struct Injected {
    fake: Fake,
    slow_run: Option<usize>,
    lag_above: Option<f64>,
    /// The lag (p99 and max), µs; 0 = p99 5 ms, max 8 ms.
    lag_us: f64,
    /// This open-loop run (1-based) gets no reply at all.
    silent_run: Option<usize>,
    /// A run where the generator lags also ends with this many requests it never sent (`unsent`).
    unsent: u64,
    /// Every open-loop run ends with this many requests still waiting for a slot, never sent (`unsent`), the
    /// load generator on its schedule.
    held_at_end: u64,
    open_runs: Cell<usize>,
}

impl CellRunner for Injected {
    fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError> {
        let mut r = self.fake.run(cell)?;
        let Some(rate) = cell.rate else {
            return Ok(r);
        };
        self.open_runs.set(self.open_runs.get() + 1);
        if Some(self.open_runs.get()) == self.silent_run {
            return Ok(CellResult::empty(cell.duration));
        }
        r.errors += self.held_at_end;
        r.errors_by_kind.add_n(
            sockpool_loadgen::recorder::ErrorKind::Unsent,
            self.held_at_end,
        );
        if Some(self.open_runs.get()) == self.slow_run {
            r.corrected = tune_common::slowed(&r.corrected, 20);
        }
        if self
            .lag_above
            .is_some_and(|share| rate > share * Fake::capacity(cell))
        {
            let lag = if self.lag_us > 0.0 {
                self.lag_us
            } else {
                5_000.0
            };
            r.health.send_lag_p99_us = lag;
            r.health.send_lag_max_us = lag.max(8_000.0 * f64::from(self.lag_us == 0.0));
            r.health.bottleneck = true;
            r.errors += self.unsent;
            r.errors_by_kind
                .add_n(sockpool_loadgen::recorder::ErrorKind::Unsent, self.unsent);
        }
        Ok(r)
    }
}

fn report(runner: &Injected, repeat: usize) -> tune::TuneReport {
    // Fake p99 ≈ 199µs / (1 − rate/capacity): under 700µs up to 71.6 % of the capacity.
    let plan = Plan::from_args(&args(&["pipeline=1"], repeat, Some("p99<700us"))).unwrap();
    tune::run(runner, &plan, &mut |_| {}).unwrap()
}

fn search(runner: &Injected, repeat: usize) -> SloSearch {
    report(runner, repeat).slo.unwrap()
}

fn pct(s: &SloSearch, rate: f64) -> f64 {
    (rate / s.closed_rate * 100.0).round()
}

#[test]
fn one_slow_step_is_confirmed_away_and_the_search_finds_the_clean_rate() {
    let clean = search(&Injected::default(), 1);
    let clean_best = clean.best_rate.unwrap();
    assert_eq!(pct(&clean, clean_best), 70.0);
    assert_eq!(clean.overruled().count(), 0);

    // The third open-loop run (the 60 % step) is slow. Without confirmation the search would turn there and
    // bisect to 55 %, 21 % below the clean search.
    let noisy = Injected {
        slow_run: Some(3),
        ..Injected::default()
    };
    let report = report(&noisy, 1);
    let s = report.slo.clone().unwrap();
    let best = s.best_rate.unwrap();
    assert!(
        (best - clean_best).abs() <= 0.2 * clean_best,
        "with one slow step: {best:.0} req/s, clean: {clean_best:.0} req/s"
    );
    assert_eq!(best, clean_best);
    let at60: Vec<_> = s
        .points
        .iter()
        .filter(|p| pct(&s, p.target_rate) == 60.0)
        .collect();
    let outcomes: Vec<_> = at60.iter().map(|p| (p.attempt, p.outcome)).collect();
    assert_eq!(
        outcomes,
        vec![(1, Outcome::Fail), (2, Outcome::Pass), (3, Outcome::Pass)],
        "failed, confirmation disagreed, a third set decided"
    );
    assert!(at60.iter().all(|p| p.verdict == Outcome::Pass));
    assert!(at60[0].p99_us > 10.0 * at60[1].p99_us);
    assert_eq!(s.overruled().count(), 1);
    assert_eq!(s.limit, Limit::Server);
    // The terminal text shows the overruled set for what it was.
    let text = tune::recommend::render(&report.recommendation, Some(&s));
    assert!(text.contains("overruled: step pass"), "{text}");
    assert!(text.contains("(tie-breaker)"), "{text}");
}

/// The best rate's first set is slow (the server had a burst), the confirmation and the tie-breaker pass: the
/// step passes two out of three. The recommendation and `--recommend`'s evidence show that step as its verdict
/// judged it, the median over its three sets, with every run counted; they showed the first set that passed,
/// as if one set of runs were the evidence (`runs: 1`).
#[test]
fn the_evidence_at_the_best_rate_is_the_median_of_the_steps_sets_not_the_first_that_passed() {
    // Open-loop runs (repeat 1): 20 %, 40 %, 60 %, 80 % (fails), 80 % (confirmed), then 70 %: the sixth.
    let noisy = Injected {
        slow_run: Some(6),
        ..Injected::default()
    };
    let report = report(&noisy, 1);
    let s = report.slo.clone().unwrap();
    let best = s.best_rate.unwrap();
    assert_eq!(pct(&s, best), 70.0);
    let sets: Vec<_> = s.points.iter().filter(|p| p.target_rate == best).collect();
    let outcomes: Vec<_> = sets.iter().map(|p| p.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Fail, Outcome::Pass, Outcome::Pass],
        "{s:?}"
    );
    let median = |f: fn(&tune::slo::RatePoint) -> f64| {
        let mut v: Vec<f64> = sets.iter().map(|p| f(p)).collect();
        v.sort_by(f64::total_cmp);
        v[1]
    };
    let rec = &report.recommendation;
    assert_eq!(rec.measured, "open-loop");
    assert_eq!(rec.p99_us, median(|p| p.p99_us));
    let c = tune::recommend::recommendation_file(&report, Some("127.0.0.1:7000"), "framed");
    let e: serde_json::Value = c.evidence.unwrap().deserialize().unwrap();
    let at = &e["at_rate"];
    assert_eq!(at["p99_us"].as_f64(), Some(median(|p| p.p99_us)), "{at}");
    assert_eq!(at["p50_us"].as_f64(), Some(median(|p| p.p50_us)), "{at}");
    assert_eq!(
        at["p99_9_us"].as_f64(),
        Some(median(|p| p.p99_9_us)),
        "{at}"
    );
    assert_eq!(
        at["slo_quantile_us"].as_f64(),
        Some(median(|p| p.slo_us)),
        "{at}"
    );
    assert_eq!(at["runs"], 3, "every run of the step: {at}");
    assert_eq!(at["sets"], 3, "{at}");
    assert!(
        at["p99_us"].as_f64().unwrap() < 700.0,
        "the median set meets the SLO: {at}"
    );
}

#[test]
fn every_set_of_a_step_runs_repeat_times() {
    let runner = Injected::default();
    let s = search(&runner, 3);
    assert_eq!(s.repeat, 3);
    assert!(s.points.iter().all(|p| p.runs == 3));
    assert_eq!(runner.open_runs.get(), 3 * s.points.len());
    // The fake's repeats jitter by 0, 1 and 2 %: the SLO quantile's spread over a set is measured.
    assert!(s.points.iter().all(|p| p.slo_spread_us > 0.0), "{s:?}");
    assert_eq!(pct(&s, s.best_rate.unwrap()), 70.0);
}

#[test]
fn requests_a_lagging_generator_left_unsent_are_its_limit_not_the_servers_errors() {
    // Behind its schedule above 65 % of the capacity, the load generator also ends each such run with requests
    // it never sent (`unsent`): that is its own lag, and no step is the server's failure.
    let runner = Injected {
        lag_above: Some(0.65),
        unsent: 25,
        ..Injected::default()
    };
    let s = search(&runner, 1);
    assert_eq!(s.limit, Limit::Generator, "{s:#?}");
    assert!(
        s.points.iter().all(|p| p.verdict != Outcome::Fail),
        "{s:#?}"
    );
}

#[test]
fn a_step_where_the_generator_fell_behind_is_its_limit_not_the_servers_failure() {
    // Above 65 % of the capacity the load generator cannot keep its schedule.
    let runner = Injected {
        lag_above: Some(0.65),
        ..Injected::default()
    };
    let s = search(&runner, 1);
    assert_eq!(s.limit, Limit::Generator);
    // The rise stopped at 80 % (p99 over the limit, by less than the generator's lag); the bisection passed
    // 70 % (a pass with the generator behind still counts: its lag only made the latency look worse) and
    // stopped at 75 %, again not the server's failure.
    let verdicts: Vec<(f64, Outcome)> = s
        .points
        .iter()
        .map(|p| (pct(&s, p.target_rate), p.verdict))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            (20.0, Outcome::Pass),
            (40.0, Outcome::Pass),
            (60.0, Outcome::Pass),
            (80.0, Outcome::GeneratorLimited),
            (80.0, Outcome::GeneratorLimited),
            (70.0, Outcome::Pass),
            (75.0, Outcome::GeneratorLimited),
            (75.0, Outcome::GeneratorLimited),
        ]
    );
    assert_eq!(s.limit_rate.map(|r| pct(&s, r)), Some(75.0));
    assert_eq!(pct(&s, s.best_rate.unwrap()), 70.0);
    for p in s
        .points
        .iter()
        .filter(|p| p.verdict == Outcome::GeneratorLimited)
    {
        assert_eq!(p.outcome, Outcome::GeneratorLimited, "{p:?}");
        assert_eq!(p.generator_limited_runs, 1);
        assert_eq!(p.send_lag_p99_us, 5_000.0);
        assert!(!p.pass);
    }
    assert!(
        s.points.iter().all(|p| p.verdict != Outcome::Fail),
        "no step is blamed on the server"
    );
    // A failure far beyond what the lag explains is the server's, lag or not: the generator is behind by up to
    // 600µs in every run, and the 60 % step is slow (p99 ≈ 10 ms).
    let runner = Injected {
        lag_above: Some(0.0),
        lag_us: 600.0,
        slow_run: Some(3),
        ..Injected::default()
    };
    let s = search(&runner, 1);
    let first60 = s
        .points
        .iter()
        .find(|p| pct(&s, p.target_rate) == 60.0)
        .unwrap();
    assert_eq!(first60.outcome, Outcome::Fail, "{first60:?}");
    assert_eq!(first60.verdict, Outcome::Pass, "confirmed away");
    let first80 = s
        .points
        .iter()
        .find(|p| pct(&s, p.target_rate) == 80.0)
        .unwrap();
    assert_eq!(first80.outcome, Outcome::GeneratorLimited, "{first80:?}");
    let report = report(&runner, 1);
    let text = tune::recommend::render(&report.recommendation, report.slo.as_ref());
    assert!(
        text.contains("limit: the load generator fell behind its schedule"),
        "{text}"
    );
    assert!(
        report.recommendation.reason.contains("unmeasured")
            && report.recommendation.reason.contains("(tune --threads N,"),
        "{}",
        report.recommendation.reason
    );
    assert_eq!(report.to_json()["slo"]["limit"], "generator");
}

#[test]
fn the_recommendation_file_is_the_sdks_config_with_the_evidence_beside_it() {
    let plan = Plan::from_args(&args(
        &["pipeline=1,4", "connections=2,8", "nodelay=on,off"],
        2,
        Some("p99<700us"),
    ))
    .unwrap();
    let report = tune::run(&Fake::default(), &plan, &mut |_| {}).unwrap();
    let rec = &report.recommendation;
    let cell = &report.cells[rec.cell].cell.config;
    let dir = tempfile::tempdir().unwrap();
    for name in ["tuned.json", "tuned.toml"] {
        let path = dir.path().join(name);
        tune::recommend::write_file(&report, Some("127.0.0.1:7000"), "framed", &path).unwrap();
        let c = ClientConfig::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.endpoints, vec!["127.0.0.1:7000".to_string()]);
        assert_eq!(c.pipeline_depth, cell.pipeline, "{name}");
        assert_eq!(c.pool.max_size, cell.connections);
        assert_eq!(c.socket.nodelay, cell.nodelay);
        assert_eq!(c.timeouts.request, cell.timeout);
        let e: serde_json::Value = c.evidence.unwrap().deserialize().unwrap();
        assert_eq!(e["schema"], tune::recommend::EVIDENCE_SCHEMA);
        assert_eq!(e["cell"], rec.label.as_str());
        assert_eq!(e["slo"], "p99<700µs");
        assert_eq!(e["meets_slo"], true);
        assert_eq!(e["rate"].as_f64(), Some(tune::round3(rec.rate)));
        assert_eq!(e["at_rate"]["p99_us"].as_f64(), Some(rec.p99_us));
        assert_eq!(e["at_rate"]["runs"], 2);
        assert_eq!(e["baseline"]["cell"], report.baseline().cell.label.as_str());
        assert_eq!(e["noise"]["repeat"], 2);
        assert!(e["noise"]["rate_spread_pct"].as_f64().unwrap() > 0.0);
        assert_eq!(e["search"]["limit"], "server");
        assert!(e["date"].as_str().unwrap().starts_with("20"));
    }
}

#[test]
fn the_rate_plot_marks_each_outcome_and_shows_values_beyond_its_log_axis() {
    // One set gets no reply (its latencies are 0: below any log axis), one is slow, and the generator falls
    // behind above 65 %: every marker shape, and values the axis cannot hold.
    let runner = Injected {
        silent_run: Some(2),
        slow_run: Some(5),
        lag_above: Some(0.65),
        ..Injected::default()
    };
    let report = report(&runner, 1);
    let s = report.slo.as_ref().unwrap();
    let outcomes: Vec<Outcome> = s.points.iter().map(|p| p.outcome).collect();
    for o in [Outcome::Pass, Outcome::Fail, Outcome::GeneratorLimited] {
        assert!(outcomes.contains(&o), "{outcomes:?}");
    }
    let html = tune::html::render(&report);
    let (doc, _) = tune_common::check_html(&html, true);
    let curve = doc
        .all("svg")
        .into_iter()
        .find(|s| s.attr("id") == Some("rate-curve"))
        .unwrap();
    let below: Vec<_> = curve
        .all("path")
        .into_iter()
        .filter(|p| p.attr("data-side") == Some("below"))
        .collect();
    assert_eq!(
        below.len(),
        2,
        "the silent set's p50 and p99 (0 µs) are marked below the axis"
    );
    assert!(html.contains("↓0"), "and their value is written out");
    for class in ["marker dot", "marker cross", "marker square"] {
        assert!(html.contains(class), "{class}");
    }
}

/// Answers nothing: every run ends with no reply and no error.
struct Mute;

impl CellRunner for Mute {
    fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError> {
        Ok(CellResult::empty(cell.duration))
    }
}

#[test]
fn a_cell_without_a_single_reply_stops_the_tune_instead_of_a_table_of_zeros() {
    let plan = Plan::from_args(&args(&["pipeline=1,4"], 1, Some("p99<700us"))).unwrap();
    let err = tune::run(&Mute, &plan, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "cell pipeline=1: no request finished in 1s (no reply, no error): the target stopped answering; tune \
         stops rather than report zeros"
    );
}

/// The server, killed after the first cell: from then on every connection is refused (or reset, for the
/// connections it had).
#[derive(Default)]
struct Killed {
    fake: Fake,
    runs: Cell<usize>,
}

impl CellRunner for Killed {
    fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError> {
        self.runs.set(self.runs.get() + 1);
        if self.runs.get() == 1 {
            return self.fake.run(cell);
        }
        let mut r = CellResult::empty(cell.duration);
        use sockpool_loadgen::recorder::ErrorKind;
        r.errors_by_kind.add_n(ErrorKind::Refused, 90);
        r.errors_by_kind.add_n(ErrorKind::Reset, 10);
        r.errors = 100;
        Ok(r)
    }
}

#[test]
fn a_server_killed_mid_tune_stops_it_at_the_first_cell_without_a_reply() {
    let plan = Plan::from_args(&args(&["pipeline=1,4,8"], 1, None)).unwrap();
    let runner = Killed::default();
    let mut lines = Vec::new();
    let report = tune::run(&runner, &plan, &mut |l| lines.push(l.to_string())).unwrap();
    let stopped = report.interrupted.as_ref().expect("the tune stopped");
    let err = stopped.error().to_string();
    assert_eq!(
        err,
        "cell pipeline=4: every request failed without a reply (90 refused, 10 reset): the target refused or \
         dropped the connections (did it stop?); tune stops rather than report zeros"
    );
    assert_eq!(runner.runs.get(), 2, "no cell runs after it");
    // The cell measured before the server died is still reported (table, JSON, HTML), without a
    // recommendation: it would pick among the cells that happened to run.
    assert_eq!(report.cells.len(), 1);
    assert_eq!(report.cells[0].cell.label, "pipeline=1");
    assert_eq!((stopped.runs_finished, stopped.runs_planned), (1, 3));
    let json = report.to_json();
    assert_eq!(json["cells"].as_array().unwrap().len(), 1);
    assert!(json["recommendation"].is_null());
    assert_eq!(json["interrupted"]["failed_cell"], "pipeline=4");
    assert!(
        report
            .conclusion()
            .starts_with("STOPPED (cell pipeline=4: every request failed without a reply"),
        "{}",
        report.conclusion()
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
}

/// Replies that do not decode, in every request of a cell, name the protocol as the likely cause.
struct Garbled;

impl CellRunner for Garbled {
    fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError> {
        let mut r = CellResult::empty(cell.duration);
        use sockpool_loadgen::recorder::ErrorKind;
        r.errors_by_kind.add_n(ErrorKind::Protocol, 16);
        r.errors = 16;
        Ok(r)
    }
}

#[test]
fn a_cell_whose_replies_do_not_decode_points_at_the_protocol() {
    let plan = Plan::from_args(&args(&["pipeline=1,4"], 1, None)).unwrap();
    let err = tune::run(&Garbled, &plan, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "cell pipeline=1: no reply could be read (16 protocol): does the target speak the protocol tune sends \
         (--protocol and the request flags)?; tune stops rather than report zeros"
    );
}

/// A runner error names the cell by its label, as the table does, not by its settings.
struct Unreachable;

impl CellRunner for Unreachable {
    fn run(&self, _cell: &CellConfig) -> Result<CellResult, TuneError> {
        Err(TuneError::Cell {
            cell: "connections=16 pipeline=1 pool=pooled rate=closed".into(),
            reason: "cannot reach 127.0.0.1:9: connection refused".into(),
        })
    }
}

#[test]
fn a_cell_that_cannot_run_is_named_by_its_label() {
    let plan = Plan::from_args(&args(&["nodelay=off,on"], 1, None)).unwrap();
    let err = tune::run(&Unreachable, &plan, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "cell nodelay=off: cannot reach 127.0.0.1:9: connection refused"
    );
}

/// The server, killed during the SLO search: the matrix ran, the first open-loop step passed, then every
/// connection is refused.
#[derive(Default)]
struct KilledInSearch {
    fake: Fake,
    open_runs: Cell<usize>,
}

impl CellRunner for KilledInSearch {
    fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError> {
        if cell.rate.is_none() {
            return self.fake.run(cell);
        }
        self.open_runs.set(self.open_runs.get() + 1);
        if self.open_runs.get() == 1 {
            return self.fake.run(cell);
        }
        let mut r = CellResult::empty(cell.duration);
        r.errors_by_kind
            .add_n(sockpool_loadgen::recorder::ErrorKind::Refused, 500);
        r.errors = 500;
        Ok(r)
    }
}

#[test]
fn a_server_killed_during_the_slo_search_stops_the_tune_instead_of_a_recommendation() {
    let plan = Plan::from_args(&args(&["pipeline=1,4"], 1, Some("p99<700us"))).unwrap();
    let runner = KilledInSearch::default();
    let report = tune::run(&runner, &plan, &mut |_| {}).unwrap();
    let stopped = report.interrupted.as_ref().expect("the tune stopped");
    // The search runs the cell that met the SLO (pipeline=1, 10,000 req/s closed), its first step at 20 %.
    assert_eq!(
        stopped.error().to_string(),
        "cell pipeline=1: at 4000 req/s (the SLO search): every request failed without a reply (500 refused): \
         the target refused or dropped the connections (did it stop?); tune stops rather than recommend"
    );
    assert_eq!(stopped.during, "slo search");
    assert_eq!(runner.open_runs.get(), 2, "nothing runs after it");
    // The matrix measured before it is reported; no SLO rate and no recommendation.
    assert_eq!(report.cells.len(), 2);
    assert!(report.slo.is_none());
    assert!(report.to_json()["recommendation"].is_null());
    // A step whose run cannot start (the target unreachable) is named by the cell's label too.
    let report = tune::run(&SearchUnreachable(Fake::default()), &plan, &mut |_| {}).unwrap();
    assert_eq!(
        report.interrupted.unwrap().error().to_string(),
        "cell pipeline=1: cannot reach 127.0.0.1:9: connection refused"
    );
}

/// Closed-loop runs answer; no open-loop run can start.
struct SearchUnreachable(Fake);

impl CellRunner for SearchUnreachable {
    fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError> {
        match cell.rate {
            None => self.0.run(cell),
            Some(_) => Unreachable.run(cell),
        }
    }
}

/// `tune --slo` exits 1 when no rate met the objective (as `run` does on a crossed `--fail-on`); the one-line
/// reason says whose limit it was: the server's at every rate, or the load generator's (not the server's).
#[test]
fn a_search_where_nothing_met_the_slo_says_why_in_one_line() {
    assert_eq!(search(&Injected::default(), 1).not_met(), None);

    // Fake p99 ≥ 199µs at any rate: `p99<100us` is never met, and the search bisects down to the lowest rate.
    let plan = Plan::from_args(&args(&["pipeline=1"], 1, Some("p99<100us"))).unwrap();
    let s = tune::run(&Injected::default(), &plan, &mut |_| {})
        .unwrap()
        .slo
        .unwrap();
    assert_eq!(s.best_rate, None);
    let why = s.not_met().expect("nothing met the SLO");
    assert!(
        why.starts_with("no rate met --slo p99<100µs on [pipeline=1]: the server failed it at every rate tried, down to "),
        "{why}"
    );
    assert!(!why.contains('\n'), "{why}");

    // The load generator fell behind (5 ms) at every rate, where nothing met the objective: the reason says so,
    // not that the server failed.
    let lagging = Injected {
        lag_above: Some(0.0),
        ..Injected::default()
    };
    let s = tune::run(&lagging, &plan, &mut |_| {})
        .unwrap()
        .slo
        .unwrap();
    assert_eq!((s.best_rate, s.limit), (None, Limit::Generator));
    let why = s.not_met().unwrap();
    assert!(
        why.contains("the load generator fell behind its schedule at every rate tried")
            && why.contains("says nothing of the server"),
        "{why}"
    );
    assert!(!why.contains("the server failed"), "{why}");
}

/// Requests the load generator still held when a run's duration ended (`unsent`: every slot busy at that
/// moment, nothing sent after the end) never reached the server: a step whose runs all end with a few of them
/// is judged on its latency and rate, not failed as the server's errors. They failed every step, and the search
/// found no rate at all (against redis-server: 185 of 193k requests at 96.7k req/s).
#[test]
fn requests_left_unsent_at_the_end_are_not_the_servers_errors() {
    let clean = search(&Injected::default(), 1);
    let held = Injected {
        held_at_end: 40,
        ..Injected::default()
    };
    let s = search(&held, 1);
    assert_eq!(s.best_rate, clean.best_rate, "{:?}", s.points);
    assert_eq!(s.limit, Limit::Server);
    for p in &s.points {
        assert_eq!((p.errors, p.unsent), (0, 40), "{p:?}");
    }
    let text = tune::recommend::render(&report(&held, 1).recommendation, Some(&s));
    assert!(
        text.contains("(40 unsent at the end: not the server's)"),
        "{text}"
    );
    // A request that was sent and failed is still the server's: the step fails on it.
    let failing = Injected {
        held_at_end: 40,
        ..Injected::default()
    };
    let plan = Plan::from_args(&args(&["pipeline=1"], 1, Some("p99<700us"))).unwrap();
    struct OneFailed<'a>(&'a Injected);
    impl CellRunner for OneFailed<'_> {
        fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError> {
            let mut r = self.0.run(cell)?;
            if cell.rate.is_some() {
                r.errors += 1;
                r.errors_by_kind.add_n(
                    sockpool_loadgen::recorder::ErrorKind::Timeout(
                        sockpool_loadgen::recorder::Phase::Read,
                    ),
                    1,
                );
            }
            Ok(r)
        }
    }
    let s = tune::run(&OneFailed(&failing), &plan, &mut |_| {})
        .unwrap()
        .slo
        .unwrap();
    assert_eq!(s.best_rate, None);
    assert_eq!((s.points[0].errors, s.points[0].unsent), (1, 40));
}
