//! Issue 4 item 1, sockpool-server: in every protocol, the request count the load generator reports equals the
//! server's own `requests` counter (the STATS figure).

mod common;

use std::time::Duration;

use common::{num, run_json};

/// Runs 3000 requests of `proto` against an in-process sockpool-server and compares the counts.
fn counts_match(proto: &str) {
    counts_match_with(proto, &["--requests", "3000"], 3000);
}

/// Runs `load` (which must send `expected` requests) of `proto` against an in-process sockpool-server and
/// compares the counts.
fn counts_match_with(proto: &str, load: &[&str], expected: u64) {
    let (handle, target) =
        sockpool_testkit::server::start_target(sockpool_testkit::server::config(
            sockpool_server::Model::Async,
            &[&format!("{proto}=127.0.0.1:0")],
        ));
    let stats = handle.stats();
    let extra: &[&str] = match proto {
        // A byte stream has no request boundaries: the server counts each read as a request, so pipelined
        // echo requests that arrive together count once. One in flight per connection keeps reads and
        // requests 1:1. Datagrams are their own boundaries: UDP takes 16 sockets, so that the open loop at
        // 2,000/s keeps free slots through a few milliseconds' stall of a loaded CI host (with 4, a stall at the
        // end left 3 scheduled datagrams unsent, an error).
        "udp" => &["--connections", "16"],
        "echo" => &["--connections", "4"],
        _ => &["--connections", "4", "--pipeline", "4"],
    };
    let before = stats.snapshot().requests;
    let mut args = vec!["--target", target.as_str(), "--protocol", proto];
    args.extend_from_slice(load);
    args.extend_from_slice(extra);
    let v = run_json(&args, Duration::from_secs(60));
    let counted = stats.snapshot().requests - before;
    let ours = num(&v, "summary.requests") as u64;
    eprintln!(
        "{proto}: loadgen {ours}, server {counted}, {:.0} req/s",
        num(&v, "summary.rate")
    );
    assert_eq!(num(&v, "summary.errors"), 0.0, "{proto}: {}", v["errors"]);
    assert_eq!(ours, expected, "{proto}");
    assert_eq!(counted, ours, "{proto}: the server's count");
    let _ = handle.shutdown();
}

#[test]
fn framed_count_matches_the_server() {
    counts_match("framed");
}

#[test]
fn echo_count_matches_the_server() {
    counts_match("echo");
}

#[test]
fn line_count_matches_the_server() {
    counts_match("line");
}

#[test]
fn http_count_matches_the_server() {
    counts_match("http");
}

#[test]
fn resp_count_matches_the_server() {
    counts_match("resp");
}

#[test]
fn udp_count_matches_the_server() {
    counts_match("udp");
}

/// The open loop over UDP runs on the same feed as over TCP (one sender per socket): every scheduled datagram
/// is sent once and answered.
#[test]
fn udp_open_loop_count_matches_the_server() {
    counts_match_with("udp", &["--rate", "2000", "--duration", "1s"], 2000);
}

#[test]
fn line_open_loop_count_matches_the_server() {
    counts_match_with("line", &["--rate", "2000", "--duration", "1s"], 2000);
}

#[test]
fn framed_ops_move_the_bytes_they_say() {
    let (_h, target) = sockpool_testkit::server::one_worker_target("framed=127.0.0.1:0");
    for (op, sent, received) in [
        ("echo", 100, 100),
        ("sink", 100, 0),
        ("source", 0, 100),
        ("sleep", 100, 100),
    ] {
        let v = run_json(
            &[
                "--target",
                &target,
                "--op",
                op,
                "--payload",
                "100",
                "--requests",
                "200",
                "--connections",
                "2",
            ],
            Duration::from_secs(60),
        );
        assert_eq!(num(&v, "summary.errors"), 0.0, "{op}");
        assert_eq!(num(&v, "summary.bytes_sent"), (sent * 200) as f64, "{op}");
        assert_eq!(
            num(&v, "summary.bytes_received"),
            (received * 200) as f64,
            "{op}"
        );
        if op == "sleep" {
            // The default service time is 1 ms: no reply can come sooner.
            assert!(
                num(&v, "latency.raw.min") >= 1000.0,
                "{op}: {}",
                v["latency"]["raw"]
            );
        }
    }
}

#[test]
fn slow_replies_time_out_and_are_recorded_at_their_timeout() {
    let (_h, target) = sockpool_testkit::server::one_worker_target("framed=127.0.0.1:0");
    let (_, v, stderr) = common::run_json_any(
        &[
            "--target",
            &target,
            "--op",
            "sleep",
            "--sleep",
            "300ms",
            "--timeout",
            "100ms",
            "--requests",
            "20",
            "--connections",
            "2",
        ],
        Duration::from_secs(60),
    );
    eprintln!("errors {}", v["errors"]);
    assert_eq!(num(&v, "summary.requests"), 20.0);
    // Issue 32 item 4: timing out on purpose is said as such, at the start and at the end, not blamed on the
    // protocol.
    assert!(
        stderr.contains("warning: --sleep 300ms is not below --timeout 100ms"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no request to") && stderr.contains("times out by design"),
        "{stderr}"
    );
    assert!(!stderr.contains("protocol mismatch"), "{stderr}");
    assert_eq!(num(&v, "errors.timeout"), 20.0, "{}", v["errors"]);
    assert_eq!(
        num(&v, "latency.corrected.count"),
        20.0,
        "every timeout is in the corrected histogram"
    );
    assert!(
        num(&v, "latency.corrected.min") >= 100_000.0,
        "{}",
        v["latency"]["corrected"]
    );
    assert_eq!(
        num(&v, "latency.raw.count"),
        0.0,
        "no reply, no raw latency"
    );
}
