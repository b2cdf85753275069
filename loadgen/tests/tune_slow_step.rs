//! The SLO rate search against the real embedded server with one injected slow step: during one open-loop
//! step the server's service time is fifty times longer (a server-side SLEEP burst), and the search still
//! finds a rate within 20 % of a clean search's, because the failed step is confirmed before the search turns.
//! Both searches scale from one closed-loop measurement, as `tune` runs one search from one.

use std::cell::Cell;

use sockpool_loadgen::args::ServiceArgs;
use sockpool_loadgen::tune::real::LoadRunner;
use sockpool_loadgen::tune::slo::{self, Outcome, Slo, SloSearch};
use sockpool_loadgen::tune::{
    self, CellConfig, CellOutcome, CellResult, CellRunner, Plan, TuneArgs, TuneError,
};

/// Framed `--op sleep` requests: the server takes `sleep` to answer each.
fn sleeping(sleep: &str) -> LoadRunner {
    let service = ServiceArgs {
        protocol: Some("framed".into()),
        op: Some("sleep".into()),
        sleep: Some(sleep.into()),
        ..ServiceArgs::default()
    };
    LoadRunner::new(None, service).unwrap()
}

/// The real runner, except that the `slow_run`-th open-loop run (1-based) is served fifty times slower (100 ms a request instead of 2 ms).
struct SlowStep {
    normal: LoadRunner,
    slow: LoadRunner,
    slow_run: Option<usize>,
    open_runs: Cell<usize>,
}

impl CellRunner for SlowStep {
    fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError> {
        if cell.rate.is_some() {
            self.open_runs.set(self.open_runs.get() + 1);
            if Some(self.open_runs.get()) == self.slow_run {
                return self.slow.run(cell);
            }
        }
        self.normal.run(cell)
    }
}

fn runner(slow_run: Option<usize>) -> SlowStep {
    SlowStep {
        normal: sleeping("2ms"),
        slow: sleeping("100ms"),
        slow_run,
        open_runs: Cell::new(0),
    }
}

/// The closed-loop measurement both searches scale from (so that they differ only by what happens during
/// their steps, not by two measurements of the capacity on a machine that may be busy with other work).
fn closed_loop() -> CellOutcome {
    // Four connections of 2 ms requests: about 2,000 req/s, far below what a debug build can send, so the
    // knee is the server's service time and not this machine's CPU.
    let args = TuneArgs {
        vary: vec!["pipeline=1".into()],
        connections: Some(4),
        duration: Some("400ms".into()),
        warmup: Some("100ms".into()),
        repeat: Some(1),
        quiet: true,
        ..TuneArgs::default()
    };
    let plan = Plan::from_args(&args).unwrap();
    let mut report = tune::run(&runner(None), &plan, &mut |_| {}).unwrap();
    report.cells.remove(0)
}

/// The search on `cell` with the `slow_run`-th open-loop run slow. The objective sits above a request's own
/// time and far below a 100 ms one, with room for a loaded machine's stalls.
fn search(cell: &CellOutcome, slow_run: Option<usize>) -> SloSearch {
    let slo = Slo::parse("p99<30ms").unwrap();
    slo::search(&runner(slow_run), cell, &slo, 1, &mut |_| {}).unwrap()
}

/// A clean search and one with the second open-loop run (the 40 % step) slow, from the same closed loop; the
/// injected step is asserted to have failed and been overruled. Returns both best rates.
fn pair(cell: &CellOutcome) -> (f64, f64, String) {
    let clean = search(cell, None);
    let clean_best = clean.best_rate.expect("the clean search found no rate");
    let noisy = search(cell, Some(2));
    let best = noisy
        .best_rate
        .expect("the search with a slow step found no rate");
    let slow = &noisy.points[1];
    // The injected step itself failed (over the objective, or its requests timed out or went unsent: `unsent`
    // is counted apart from `errors` now), where the clean search passed easily.
    assert!(
        slow.p99_us > 30_000.0 || slow.errors + slow.unsent > 0,
        "the injected step was not slow: {slow:?}"
    );
    eprintln!(
        "clean: {clean_best:.0} req/s ({:.0} % of the closed loop); with one slow step: {best:.0} req/s",
        clean_best / clean.closed_rate * 100.0
    );
    // It failed, and was overruled by its confirmation (a step near the knee may be overruled too: that is
    // the same mechanism meeting real noise).
    assert_eq!(slow.outcome, Outcome::Fail, "{noisy:#?}");
    assert_eq!(slow.verdict, Outcome::Pass, "{noisy:#?}");
    (clean_best, best, format!("{noisy:#?}\n{clean:#?}"))
}

/// The rates are compared on a second pair only when the first differ by more than 20 %: two searches run one
/// after the other on a shared 2-vCPU machine can straddle a change in its speed (CI, stop 44: the clean search
/// passed 80 % and 100 % of the closed loop, the one after it failed 80 % twice at p99 84–88 ms, well after its
/// injected step had been overruled). The mechanism under test is asserted on every pair.
#[test]
fn one_slow_server_step_is_confirmed_away_and_the_search_lands_within_20_percent_of_a_clean_one() {
    let cell = closed_loop();
    let mut pairs = Vec::new();
    for _ in 0..2 {
        let (clean_best, best, detail) = pair(&cell);
        if (best - clean_best).abs() <= 0.2 * clean_best {
            return;
        }
        pairs.push((clean_best, best, detail));
    }
    let rates: Vec<_> = pairs
        .iter()
        .map(|(c, b, _)| (c.round(), b.round()))
        .collect();
    panic!(
        "with one slow step the best rate was more than 20 % from a clean search's twice (clean, slow step): \
         {rates:?}\n{}",
        pairs[1].2
    );
}
