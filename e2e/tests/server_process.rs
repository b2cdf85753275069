//! The load generator against a `sockpool-server` process it does not own: stopped with SIGSTOP for 500 ms
//! (issue 4 item 2: latency measured from the intended send time shows the stall that raw latency hides), and
//! killed and restarted mid-run (the outage is counted, connections reopen, the run goes on).
//!
//! Both programs run as separate processes (`e2e-server`, `e2e-loadgen`: see the crate docs), so the server can
//! be stopped or killed without stopping the test. These tests use real time on purpose: the stall and the
//! outage are real. They assert what a 500 ms stall or a 1 s outage must show with wide margins, never a window.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use serde_json::Value;
use sockpool_testkit::loadgen::num;
use sockpool_testkit::process::ServerProcess;

const SERVER: &str = env!("CARGO_BIN_EXE_e2e-server");

fn run_json(args: &[&str], limit: Duration) -> Value {
    sockpool_testkit::loadgen::run_json(Path::new(env!("CARGO_BIN_EXE_e2e-loadgen")), args, limit)
}

/// `--rate 1000 --duration 5s --connections 16` against `target`: the JSON report.
fn open_loop_1000_for_5s(target: &str) -> Value {
    run_json(
        &[
            "--target",
            target,
            "--rate",
            "1000",
            "--duration",
            "5s",
            "--connections",
            "16",
        ],
        Duration::from_secs(60),
    )
}

/// A one-worker server process with these `--listen` specs.
fn server(listen: &str) -> ServerProcess {
    ServerProcess::start(SERVER, &["--listen", listen, "--workers", "1"])
}

#[test]
fn a_500ms_stall_shows_in_corrected_p99_9_but_not_in_raw_p50() {
    let server = server("framed=127.0.0.1:0");
    let target = server.addr_text("framed").to_string();
    let pid = server.pid();
    let stall = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
        std::thread::sleep(Duration::from_millis(500));
        kill(pid, Signal::SIGCONT).expect("SIGCONT");
    });
    let v = open_loop_1000_for_5s(&target);
    stall.join().unwrap();
    let corrected_p999_us = num(&v, "latency.corrected.p99_9");
    let raw_p50_us = num(&v, "latency.raw.p50");
    eprintln!(
        "stall run: corrected p99.9 {corrected_p999_us} µs, raw p50 {raw_p50_us} µs, raw p99.9 {} µs, requests {}",
        num(&v, "latency.raw.p99_9"),
        num(&v, "summary.requests")
    );
    assert!(
        corrected_p999_us >= 400_000.0,
        "corrected p99.9 = {corrected_p999_us} µs"
    );
    assert!(raw_p50_us < 5_000.0, "raw p50 = {raw_p50_us} µs");
    assert_eq!(num(&v, "summary.errors"), 0.0);
    assert_eq!(
        num(&v, "summary.requests"),
        5000.0,
        "every scheduled request was sent and answered"
    );
}

#[test]
fn without_a_stall_the_achieved_rate_is_within_1_percent_of_the_target() {
    let server = server("framed=127.0.0.1:0");
    let target = server.addr_text("framed").to_string();
    let v = open_loop_1000_for_5s(&target);
    let rate = num(&v, "summary.rate");
    let target_rate = num(&v, "summary.target_rate");
    eprintln!(
        "steady run: rate {rate} req/s (target {target_rate}), ratio {}",
        num(&v, "summary.achieved_ratio")
    );
    assert_eq!(target_rate, 1000.0);
    assert!(
        (rate / target_rate - 1.0).abs() <= 0.01,
        "achieved {rate} req/s against {target_rate}"
    );
    assert_eq!(num(&v, "summary.errors"), 0.0);
}

#[test]
fn a_server_that_dies_mid_run_is_counted_reconnected_to_and_the_run_goes_on() {
    // Below the ephemeral range: the load generator's reconnects cannot take the port while the server is down.
    let listen = format!("framed={}", sockpool_testkit::ports::restartable_addr());
    let first = server(&listen);
    let target = first.addr_text("framed").to_string();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(first); // SIGKILL
        std::thread::sleep(Duration::from_millis(1000));
        server(&listen)
    });
    let (ok, v, _) = sockpool_testkit::loadgen::run_json_any(
        Path::new(env!("CARGO_BIN_EXE_e2e-loadgen")),
        &[
            "--target",
            &target,
            "--duration",
            "5s",
            "--connections",
            "4",
            "--timeout",
            "1s",
        ],
        Duration::from_secs(60),
    );
    // The report is complete, and the outage's failed requests fail the run (default threshold errors>0).
    assert!(!ok, "failed requests fail the run");
    let _second = restarter.join().unwrap();
    let errors = num(&v, "summary.errors");
    eprintln!(
        "errors {} reconnects {} series {}",
        v["errors"], v["health"]["reconnects"], v["intervals"]
    );
    assert!(errors > 0.0, "the outage is counted");
    assert!(num(&v, "errors.refused") + num(&v, "errors.reset") + num(&v, "errors.closed") > 0.0);
    assert!(
        num(&v, "health.reconnects") >= 1.0,
        "connections were reopened"
    );
    let series = v["intervals"].as_array().unwrap();
    let last = series.last().unwrap();
    assert!(
        last["requests"].as_u64().unwrap() > last["errors"].as_u64().unwrap(),
        "replies again after the restart"
    );
    assert!(v["health"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("reopened")));
}
