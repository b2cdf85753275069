//! Issue 15 item 6: a timeout says where the time went, in the closed loop (the pipelined fast path) and the
//! open loop (through the SDK client) alike, and an open-loop request is never recorded much later than
//! `--timeout` after its intended send time.

mod common;
mod fake_servers;

use std::time::Duration;

use common::{num, run_json_any};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// The run's timeouts by kind (only the non-zero ones).
fn timeouts(v: &Value) -> Vec<(String, u64)> {
    v["errors"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, n)| k.starts_with("timeout_") && n.as_u64() != Some(0))
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect()
}

fn loops() -> [(&'static str, Vec<&'static str>); 2] {
    [
        ("closed loop", vec!["--requests", "6", "--connections", "2"]),
        (
            "open loop",
            vec!["--rate", "20", "--duration", "1s", "--connections", "30"],
        ),
    ]
}

/// Runs line requests with a 300 ms `--timeout` against `addr` in each loop of [`loops`], and asserts that every
/// request (at least 6) timed out, all as `kind`.
fn every_request_times_out_as(addr: &str, kind: &str) {
    for (what, extra) in loops() {
        let mut args = vec!["--target", addr, "--protocol", "line", "--timeout", "300ms"];
        args.extend_from_slice(&extra);
        let (_, v, _) = run_json_any(&args, LIMIT);
        let n = num(&v, "summary.requests") as u64;
        assert!(n >= 6, "{what}: {n}");
        assert_eq!(timeouts(&v), vec![(kind.to_string(), n)], "{what}");
    }
}

#[test]
fn a_server_that_never_answers_is_a_read_timeout() {
    every_request_times_out_as(&fake_servers::silent().to_string(), "timeout_read");
}

#[test]
fn a_server_that_stalls_after_half_a_reply_is_a_request_timeout() {
    every_request_times_out_as(&fake_servers::half_reply().to_string(), "timeout_request");
}

#[test]
fn a_request_that_cannot_be_written_is_a_write_timeout() {
    // 16 MiB requests to a server that never reads: the socket buffers fill long before the request is out.
    let addr = fake_servers::not_reading().to_string();
    let (_, v, _) = run_json_any(
        &[
            "--target",
            addr.as_str(),
            "--protocol",
            "echo",
            "--payload",
            "16MiB",
            "--send-buffer",
            "64KiB",
            "--timeout",
            "300ms",
            "--requests",
            "2",
            "--connections",
            "1",
        ],
        LIMIT,
    );
    assert_eq!(timeouts(&v), vec![("timeout_write".to_string(), 2)]);
    assert!(
        num(&v, "summary.bytes_sent") > 0.0,
        "a request partly written counts as sent"
    );
}

#[test]
fn open_loop_latencies_never_exceed_the_timeout_by_more_than_slack() {
    // 50 requests/s for 2 s on 2 connections to a server that never answers: the first two requests take the
    // connections, later ones wait for a slot, and each is recorded when its own deadline (intended send time +
    // --timeout) passes, not a second --timeout after it got a slot (or, when the duration ends first, is
    // counted as never sent). (Its kind names the phase its deadline
    // ran out in: most get a slot before it, and time out reading.)
    let addr = fake_servers::silent().to_string();
    let (_, v, _) = run_json_any(
        &[
            "--target",
            addr.as_str(),
            "--protocol",
            "line",
            "--rate",
            "50",
            "--duration",
            "2s",
            "--connections",
            "2",
            "--timeout",
            "300ms",
        ],
        LIMIT,
    );
    let n = num(&v, "summary.requests");
    assert!(n >= 90.0, "{n}");
    assert_eq!(num(&v, "errors.total"), n);
    let max_us = num(&v, "latency.corrected.max");
    let count = num(&v, "latency.corrected.count");
    // Those still waiting for a slot when the 2 s end are never sent (no load after --duration): counted as
    // unsent, with no latency. About the last --timeout's worth (300 ms × 50/s) of the schedule.
    let unsent = num(&v, "errors.unsent");
    assert!((10.0..=20.0).contains(&unsent), "unsent {unsent}");
    assert_eq!(count, n - unsent, "every timeout is recorded");
    // 300 ms + the driver's 50 ms backstop slack + scheduling on a shared machine: wide on purpose.
    assert!(
        max_us <= 450_000.0,
        "corrected max {max_us} µs > timeout + slack"
    );
    assert!(num(&v, "latency.corrected.p50") >= 290_000.0);
}
