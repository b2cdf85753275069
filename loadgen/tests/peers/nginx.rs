//! Issue 4 item 1, a real HTTP server: nginx answers every GET the load generator sends, pipelined or not,
//! and the body bytes add up.

use std::time::Duration;

use crate::common::{num, run_json_any_at, run_json_at};
use sockpool_testkit::peers::{start_nginx, start_nginx_closing_after};

pub fn nginx_get_closed_and_open_loop() {
    let body = "hello from nginx";
    let nginx = start_nginx(1, body);
    let target = nginx.addr.to_string();
    let runs = [
        ("closed loop", "--requests 5000 --connections 8"),
        (
            "pipelined",
            "--requests 5000 --connections 4 --pipeline 8 --header 'X-Test: 1'",
        ),
        ("open loop", "--rate 1000 --duration 2s --connections 8"),
    ];
    for (what, flags) in runs {
        let v = run_json_at(
            &target,
            &format!("--protocol http --path /index {flags}"),
            Duration::from_secs(60),
        );
        let n = num(&v, "summary.requests");
        eprintln!(
            "{what}: {n} requests, {:.0} req/s, p99 {} µs",
            num(&v, "summary.rate"),
            num(&v, "latency.corrected.p99")
        );
        assert_eq!(num(&v, "summary.errors"), 0.0, "{what}: {}", v["errors"]);
        assert_eq!(num(&v, "summary.ok"), n, "{what}");
        assert_eq!(
            num(&v, "summary.bytes_received"),
            n * body.len() as f64,
            "{what}"
        );
        if what == "open loop" {
            assert_eq!(n, 2000.0, "{what}");
        } else {
            assert_eq!(n, 5000.0, "{what}");
        }
    }
}

pub fn an_error_status_is_a_server_error() {
    let nginx = start_nginx(1, "x");
    let target = nginx.addr.to_string();
    // nginx answers `400 Bad Request` to an invalid Host header (and closes the connection; the next request
    // opens a new one).
    let (ok, v, stderr) = run_json_any_at(
        &target,
        "--protocol http --header 'Host: bad..host' --requests 50",
        Duration::from_secs(60),
    );
    // The server answered every request, each answer a server error: the run fails its default threshold
    // (errors>0, exit status 1), and the report is written.
    assert!(!ok, "{stderr}");
    assert_eq!(num(&v, "errors.server_error"), 50.0, "{}", v["errors"]);
    assert_eq!(num(&v, "summary.ok"), 0.0);
    assert_eq!(num(&v, "summary.replies"), 50.0);
}

/// nginx closes a connection after its `keepalive_requests`-th reply (1000 by default), announcing it with
/// `Connection: close`, and does not process the requests pipelined behind that reply. The load generator
/// sends those again on a new connection (RFC 9112 §9.3.1): a pipelined run against a stock nginx has no
/// errors. Before, every such request counted as a `closed` error (328 of them at `--pipeline 2`, 8,888 at 16,
/// and every pipelined `tune` cell against nginx failed).
pub fn pipelining_past_nginxs_keepalive_requests_loses_nothing() {
    let nginx = start_nginx_closing_after(1, "x", 100);
    let target = nginx.addr.to_string();
    let v = run_json_at(
        &target,
        "--protocol http --requests 5000 --connections 4 --pipeline 16",
        Duration::from_secs(60),
    );
    assert_eq!(num(&v, "summary.errors"), 0.0, "{}", v["errors"]);
    assert_eq!(num(&v, "summary.ok"), 5000.0);
    assert_eq!(num(&v, "summary.bytes_received"), 5000.0);
}
