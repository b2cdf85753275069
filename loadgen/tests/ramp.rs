//! `--ramp A..B:STEPS:DURATION`: an open-loop staircase, reported step by step.

mod common;

use std::time::Duration;

use common::{num, run_json, run_loadgen};

#[test]
fn a_ramp_sends_each_steps_schedule_and_reports_every_step() {
    let (_h, target) = sockpool_testkit::server::one_worker_target("framed=127.0.0.1:0");
    let v = run_json(
        &[
            "--target",
            &target,
            "--ramp",
            "200..600:3:1s",
            "--connections",
            "8",
            "--threads",
            "2",
        ],
        Duration::from_secs(60),
    );
    let steps = v["steps"].as_array().unwrap();
    let targets: Vec<f64> = steps
        .iter()
        .map(|s| s["target_rate"].as_f64().unwrap())
        .collect();
    assert_eq!(targets, vec![200.0, 400.0, 600.0]);
    let per_step: u64 = steps.iter().map(|s| s["requests"].as_u64().unwrap()).sum();
    assert_eq!(
        num(&v, "summary.requests"),
        1200.0,
        "200 + 400 + 600 scheduled"
    );
    assert_eq!(per_step, 1200, "every request belongs to a step");
    assert_eq!(num(&v, "summary.errors"), 0.0);
    assert_eq!(v["config"]["load"]["mode"], "ramp");

    let (ok, table, stderr) = run_loadgen(
        &[
            "run",
            "--target",
            &target,
            "--ramp",
            "100..200:2:1s",
            "--connections",
            "2",
        ],
        Duration::from_secs(60),
    );
    assert!(ok, "{stderr}");
    assert!(table.contains("target/s"), "{table}");
    assert!(
        table.contains("100.0") && table.contains("200.0"),
        "{table}"
    );
}
