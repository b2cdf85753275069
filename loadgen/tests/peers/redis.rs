//! Issue 4 item 1, redis-server: the request count the load generator reports equals Redis's own count
//! (`INFO stats` `total_commands_processed` delta), for PING and for SET/GET with random keys.

use std::process::Command;
use std::time::Duration;

use crate::common::{num, run_json_at};
use sockpool_testkit::peers::{peer, start_redis, start_redis_with};
use sockpool_testkit::process::run_with_timeout;

fn commands_processed(cli: &std::path::Path, port: u16) -> u64 {
    let out = run_with_timeout(
        Command::new(cli).args(["-p", &port.to_string(), "info", "stats"]),
        Duration::from_secs(10),
    )
    .expect("redis-cli info");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total_commands_processed in {text}"))
}

pub fn ping_set_and_get_counts_match_redis() {
    let redis = start_redis(1);
    let cli = peer("redis-cli");
    let port = redis.addr.port();
    let target = redis.addr.to_string();
    let runs = [
        (
            "PING closed loop, pipelined",
            "--requests 20000 --connections 8 --pipeline 8",
        ),
        (
            "SET random keys",
            "--command 'SET key:{rand:1000} {payload}' --requests 5000 --payload 32",
        ),
        (
            "GET random keys",
            "--command 'GET key:{rand:1000}' --requests 5000 --threads 2",
        ),
        ("PING open loop", "--rate 2000 --duration 1s --warmup 500ms"),
    ];
    for (what, flags) in runs {
        let before = commands_processed(&cli, port);
        let v = run_json_at(
            &target,
            &format!("--protocol resp {flags}"),
            Duration::from_secs(60),
        );
        // The second INFO counts the first one.
        let redis_count = commands_processed(&cli, port) - before - 1;
        let ours = num(&v, "summary.requests") as u64;
        eprintln!(
            "{what}: loadgen {ours} requests, redis {redis_count} commands, {:.0} req/s",
            num(&v, "summary.rate")
        );
        assert_eq!(num(&v, "summary.errors"), 0.0, "{what}");
        assert!(ours > 0, "{what}");
        // Warm-up requests reach Redis but are excluded from the report: count them from the schedule.
        let warmup = if what.contains("open loop") { 1000 } else { 0 };
        assert_eq!(ours + warmup, redis_count, "{what}");
    }
}

/// redis-server with `timeout 1` closes a client connection idle for over a second, silently. An open loop of
/// one request every 2.5 s finds its connection closed each time one is due: the request goes out on a new
/// connection and is answered (before, it went into the closed connection and failed as closed).
pub fn an_open_loop_slower_than_redis_timeout_reconnects_without_failing() {
    let redis = start_redis_with(&["--timeout", "1"]);
    let target = redis.addr.to_string();
    let v = run_json_at(
        &target,
        "--protocol resp --connections 1 --rate 0.4 --duration 6s",
        Duration::from_secs(60),
    );
    assert_eq!(num(&v, "summary.errors"), 0.0, "{}", v["errors"]);
    assert_eq!(num(&v, "summary.ok"), 3.0, "{}", v["summary"]);
    assert_eq!(num(&v, "health.broken"), 0.0, "{}", v["health"]);
    assert!(num(&v, "health.closed_by_server") >= 2.0, "{}", v["health"]);
}
