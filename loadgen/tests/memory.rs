//! Issue 4 item 4: memory does not grow with the run's length (per-second intervals are handed over and
//! merged, never kept): the peak RSS of a 60 s run is within 10% of a 10 s run's.

mod common;

use std::process::Stdio;
use std::time::Duration;

/// Runs the load generator for `secs` seconds at a low rate and returns its peak RSS (VmHWM) in KiB, read
/// from /proc while it runs.
fn peak_rss_kib(target: &str, secs: u64) -> u64 {
    let duration = format!("{secs}s");
    let child = common::loadgen()
        .args([
            "run",
            "--quiet",
            "--target",
            target,
            "--rate",
            "200",
            "--connections",
            "4",
        ])
        .args(["--duration", &duration])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (status, peak) =
        sockpool_testkit::process::wait_with_peak_rss_kib(child, Duration::from_secs(secs + 30));
    assert!(status.success(), "the {secs} s run failed: {status}");
    peak
}

#[test]
fn peak_memory_of_a_60s_run_is_within_10_percent_of_a_10s_run() {
    let (_server, target) = sockpool_testkit::server::one_worker_target("framed=127.0.0.1:0");
    // Both at once: the figures are per process, and the test takes 60 s instead of 70.
    let t2 = target.clone();
    let long = std::thread::spawn(move || peak_rss_kib(&t2, 60));
    let short = peak_rss_kib(&target, 10);
    let long = long.join().unwrap();
    eprintln!(
        "peak RSS: 10 s run {short} KiB, 60 s run {long} KiB ({:+.1}%)",
        (long as f64 / short as f64 - 1.0) * 100.0
    );
    assert!(short > 0 && long > 0);
    assert!(
        (long as f64) <= short as f64 * 1.10,
        "60 s run {long} KiB vs 10 s run {short} KiB"
    );
    assert!(
        (long as f64) >= short as f64 * 0.90,
        "60 s run {long} KiB vs 10 s run {short} KiB"
    );
}
