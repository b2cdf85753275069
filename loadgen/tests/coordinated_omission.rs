//! Issue 4 item 2: latency measured from the intended send time shows a server stall that raw latency hides.
//!
//! The server is a `sockpool-server` child process (so it can be stopped with SIGSTOP without stopping the
//! test); see `common::server_binary` for how the binary is found or built.

mod common;

use std::time::Duration;

use common::{num, run_json, ServerChild};
use nix::sys::signal::{kill, Signal};

#[test]
fn a_500ms_stall_shows_in_corrected_p99_9_but_not_in_raw_p50() {
    let server = ServerChild::start(&["framed=127.0.0.1:0"], &["--workers", "1"]);
    let target = server.addr("framed");
    let pid = server.pid();
    let stall = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
        std::thread::sleep(Duration::from_millis(500));
        kill(pid, Signal::SIGCONT).expect("SIGCONT");
    });
    let v = run_json(
        &[
            "--target",
            &target,
            "--rate",
            "1000",
            "--duration",
            "5s",
            "--connections",
            "16",
        ],
        Duration::from_secs(60),
    );
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
    let server = ServerChild::start(&["framed=127.0.0.1:0"], &["--workers", "1"]);
    let target = server.addr("framed");
    let v = run_json(
        &[
            "--target",
            &target,
            "--rate",
            "1000",
            "--duration",
            "5s",
            "--connections",
            "16",
        ],
        Duration::from_secs(60),
    );
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
