//! The command line as a user meets it: the no-argument demo, bad flags, an unreachable target. (A server that
//! dies in the middle of a run: `e2e/tests/server_process.rs`.)

mod common;

use std::time::{Duration, Instant};

use common::{num, run_json, run_loadgen};

#[test]
fn no_arguments_runs_a_short_demo_against_the_embedded_server() {
    // Real clock, on purpose: the README promises a demo of a few seconds; 30 s is a bound, not a measurement.
    let started = Instant::now(); // real clock: a bound with wide slack (see above)
    let (ok, stdout, stderr) = run_loadgen(&[], Duration::from_secs(60));
    assert!(ok, "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a short benchmark"
    );
    for needle in [
        "embedded reference server",
        "req/s",
        "corrected",
        "raw",
        "p99.9",
        "--target HOST:PORT",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing from\n{stdout}");
    }
}

#[test]
fn run_without_target_uses_the_embedded_server_and_honours_flags() {
    let v = run_json(
        &["--requests", "500", "--connections", "2"],
        Duration::from_secs(60),
    );
    assert_eq!(v["embedded_server"], true);
    assert_eq!(num(&v, "summary.requests"), 500.0);
    assert_eq!(num(&v, "summary.errors"), 0.0);
}

#[test]
fn bad_or_conflicting_flags_get_one_clear_message_and_exit_2() {
    let cases: [(&[&str], &str); 20] = [
        // Checked before the search (against a port nothing listens on: no cell runs), not after it.
        (
            &[
                "tune",
                "--target",
                "127.0.0.1:1",
                "--vary",
                "pipeline=1,2",
                "--recommend",
                "/nonexistent-dir/r.json",
            ],
            "/nonexistent-dir/r.json: No such file",
        ),
        (
            &[
                "run",
                "--target",
                "127.0.0.1:1",
                "--rate",
                "10",
                "--ramp",
                "1..2:2:1s",
            ],
            "--rate and --ramp conflict",
        ),
        (
            &["run", "--target", "127.0.0.1:1", "--duration", "soon"],
            "--duration",
        ),
        // Shorter than anything can complete: the user's setting, refused as such (it exited 3, "no request
        // got a reply", blaming the target). With or without a target, and for a tune's cells.
        (
            &["run", "--target", "127.0.0.1:1", "--duration", "1ms"],
            "--duration 1ms: too short to measure anything",
        ),
        (&["run", "-d", "1ms"], "at least 10ms"),
        (&["tune", "-d", "1ms"], "--duration 1ms: too short"),
        // The SDK speaks TLS over TCP only: TLS over a Unix socket is refused however it is asked for, never
        // silently sent in plaintext.
        (
            &["run", "--tls", "--target", "unix:/tmp/sockpool-none.sock"],
            "TLS over a Unix socket is not supported",
        ),
        (
            &["run", "--target", "tls://unix:/tmp/sockpool-none.sock"],
            "TLS over a Unix socket is not supported",
        ),
        (
            &["run", "--target", "localhost", "--requests", "1"],
            "--target",
        ),
        (
            &[
                "run",
                "--target",
                "127.0.0.1:1",
                "--protocol",
                "http",
                "--command",
                "PING",
            ],
            "--command only applies",
        ),
        // Not answered by one reply: refused before anything connects (it ran the whole duration, opening a
        // connection per request, and exited 3 blaming the target).
        (
            &[
                "run",
                "-t",
                "127.0.0.1:1",
                "-p",
                "resp",
                "--command",
                "SUBSCRIBE x",
            ],
            "--command SUBSCRIBE is not answered by one reply",
        ),
        (
            &["run", "-p", "resp", "--command", "monitor"],
            "--command MONITOR is not answered by one reply",
        ),
        (
            &[
                "tune",
                "-t",
                "127.0.0.1:1",
                "-p",
                "resp",
                "--command",
                "CLIENT REPLY OFF",
                "--vary",
                "pipeline=1,2",
            ],
            "--command CLIENT REPLY is not answered by one reply",
        ),
        // The reply limit: 0 failed every request, above the SDK's 1 TiB it bounds nothing; refused before
        // anything connects, by `run` and by `tune`, as the SDK refuses such a client.
        (
            &["run", "-t", "127.0.0.1:1", "--max-reply", "0"],
            "--max-reply 0: from 1 byte to 1 TiB (1099511627776 bytes)",
        ),
        (
            &["run", "-t", "127.0.0.1:1", "--max-reply", "2048G"],
            "--max-reply 2048G: from 1 byte to 1 TiB (1099511627776 bytes)",
        ),
        // The CLI's sizes stop at G (as every size flag's): a TiB is written 1024G.
        (
            &["run", "-t", "127.0.0.1:1", "--max-reply", "2TiB"],
            "--max-reply: \"2TiB\": unknown size unit \"TiB\"",
        ),
        (
            &["run", "-t", "127.0.0.1:1", "--max-reply", "lots"],
            "--max-reply: \"lots\" is not a size",
        ),
        (
            &["run", "-t", "127.0.0.1:1", "--max-reply", "4 parsecs"],
            "unknown size unit",
        ),
        (
            &[
                "tune",
                "-t",
                "127.0.0.1:1",
                "--vary",
                "pipeline=1",
                "--max-reply",
                "0",
            ],
            "--max-reply 0: from 1 byte",
        ),
        (&["tune", "--max-reply", "2TiB"], "--max-reply"),
    ];
    for (args, needle) in cases {
        refused_in_one_line(args, needle);
    }
}

/// Runs the load generator with `args` and asserts that it exits 2 with one line on stderr containing `needle`.
/// Returns what it printed.
fn refused_in_one_line(args: &[&str], needle: &str) -> std::process::Output {
    let out = sockpool_testkit::process::run_with_timeout(
        common::loadgen().args(args),
        Duration::from_secs(20),
    )
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    out
}

#[test]
fn an_unreachable_target_is_one_line_and_a_failure() {
    let (_reserved, addr) = sockpool_testkit::ports::refused_addr();
    let target = addr.to_string();
    let (ok, stdout, stderr) = run_loadgen(
        &["run", "--target", &target, "--connect-timeout", "1s"],
        Duration::from_secs(30),
    );
    assert!(!ok);
    assert!(stdout.is_empty(), "no report: {stdout}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach {target}")),
        "{stderr}"
    );
    assert!(stderr.contains("connect timeout 1s"), "{stderr}");
}

#[test]
fn the_tour_refuses_flags_it_cannot_honour_in_one_line_and_checks_the_rest_first() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("t.json");
    let html = dir.path().join("t.html");
    let recommend = dir.path().join("r.json");
    let (json_s, html_s) = (json.to_str().unwrap(), html.to_str().unwrap());
    let recommend_s = recommend.to_str().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (
            &["tune", "--json", json_s, "--html", html_s, "-d", "300ms"],
            "--json: no report file",
        ),
        (&["tune", "--html", html_s], "--html: no report file"),
        // The tour recommends nothing: the file would silently not be written.
        (
            &["tune", "--recommend", recommend_s, "-d", "50ms"],
            "--recommend: nothing is recommended",
        ),
        (
            &["tune", "--repeat", "0", "-d", "200ms"],
            "--repeat must be at least 1",
        ),
        (&["tune", "-d", "soon"], "--duration"),
        (
            &["tune", "--connections", "4"],
            "--connections: each stop sets its own baseline",
        ),
        (&["tune", "--one-at-a-time"], "--one-at-a-time"),
        (
            &["tune", "--protocol", "resp"],
            "--protocol, TLS and the request flags",
        ),
    ];
    for (args, needle) in cases {
        let out = refused_in_one_line(args, needle);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !args.contains(&"--repeat") && !args.contains(&"soon") {
            assert!(
                stderr.contains("--vary"),
                "says how to run a tune instead: {stderr}"
            );
        }
        assert!(out.stdout.is_empty(), "the tour did not start: {args:?}");
    }
    assert!(!json.exists() && !html.exists() && !recommend.exists());
}

#[test]
fn the_tour_honours_duration_warmup_repeat_and_quiet() {
    let (ok, stdout, stderr) = run_loadgen(
        &[
            "tune", "-d", "50ms", "--warmup", "0s", "--repeat", "2", "--quiet",
        ],
        Duration::from_secs(300),
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Each cell runs 50ms after 0s of warm-up, 2 times"),
        "{stdout}"
    );
    assert!(stdout.contains("2 runs per cell"), "{stdout}");
    assert!(
        !stderr.contains("[1/"),
        "--quiet: no progress lines: {stderr}"
    );
    let summaries: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" vs ") && l.contains("p99 "))
        .collect();
    assert!(summaries.len() >= 3, "{stdout}");
    for l in summaries {
        assert!(
            !l.contains("noise unknown"),
            "two runs measure the noise: {l}"
        );
        assert!(
            l.contains("noise)"),
            "each summary gives its noise verdict: {l}"
        );
    }
    // One run: the summaries say that the noise is unknown rather than nothing.
    let (ok, stdout, stderr) = run_loadgen(
        &["tune", "-d", "50ms", "--warmup", "0s", "--quiet"],
        Duration::from_secs(300),
    );
    assert!(ok, "{stdout}\n{stderr}");
    let summaries: Vec<&str> = stdout.lines().filter(|l| l.contains(" vs ")).collect();
    assert!(summaries.len() >= 4, "{stdout}");
    assert!(
        summaries
            .iter()
            .all(|l| l.ends_with("(single run: noise unknown)")),
        "{stdout}"
    );
}

#[test]
fn tune_flag_conflicts_and_bad_slos_are_one_line_and_exit_2() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["tune", "--vary", "pipeline=1,2", "--pipeline", "8"],
            "--pipeline 8: pipeline is also varied",
        ),
        (
            &["tune", "--target", "127.0.0.1:9", "--slo", "p99<abc"],
            "expected e.g. p99<2ms",
        ),
        // A latency objective is a bound from above: `>=` was taken for `<` (the `=` dropped, the `>` not seen).
        (
            &["tune", "--target", "127.0.0.1:9", "--slo", "p99>=1ms"],
            "bounds the quantile from above: '<' or '<=', not '>', '>=' or '='",
        ),
        (
            &["tune", "--target", "127.0.0.1:9", "--slo", "p99<=<1ms"],
            "the limit \"<1ms\" is not a duration",
        ),
    ];
    for (args, needle) in cases {
        refused_in_one_line(args, needle);
    }
}

/// The same agent's report twice (the same file twice, or two reports of one `--agent-index`) would count its
/// load twice: refused, exit 2, one line naming both (it was merged with a warning, exit 0); so is a merge with
/// an agent's report missing. `--force` merges them anyway, and `merge --quiet` still says so on stderr.
#[test]
fn merge_refuses_an_agent_counted_twice_unless_forced_and_quiet_still_warns() {
    let (_server, target) = common::serve("framed=127.0.0.1:0", None);
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("agent0.json");
    let agent = agent.to_str().unwrap();
    let merged = dir.path().join("merged.json");
    let merged = merged.to_str().unwrap();
    let args = [
        "run",
        "--target",
        &target,
        "--agents",
        "2",
        "--agent-index",
        "0",
    ];
    let (ok, _, stderr) = run_loadgen(
        &[
            &args[..],
            &["--duration", "200ms", "--quiet", "--json", agent],
        ]
        .concat(),
        Duration::from_secs(60),
    );
    assert!(ok, "{stderr}");
    let out = refused_in_one_line(
        &["merge", "--quiet", "--json", merged, agent, agent],
        "merge: agent 0 appears 2 times",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "({agent}, {agent}): its load would be counted 2 times"
        )) && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(!std::path::Path::new(merged).exists(), "nothing merged");
    // Agent 1's report never came (its pod failed): the totals would be half the load, and a merge that
    // exits 0 passes a CI gate. Refused, exit 2, naming the missing agent.
    refused_in_one_line(
        &["merge", "--quiet", "--json", merged, agent],
        "merge: 1 of 2 agents reported: missing agent(s) 1: the totals would cover only these",
    );
    assert!(!std::path::Path::new(merged).exists(), "nothing merged");
    let (ok, stdout, stderr) = run_loadgen(
        &["merge", "--quiet", "--force", agent, agent],
        Duration::from_secs(60),
    );
    assert!(
        ok,
        "a forced merge with warnings is still a merge: {stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[..2.min(lines.len())],
        [
            "sockpool-loadgen merge: warning: 1 of 2 agents reported: missing agent(s) 1; the totals cover only these (merged because of --force)",
            "sockpool-loadgen merge: warning: agent 0 appears 2 times: its load is counted 2 times (merged because of --force)",
        ],
        "{stderr}"
    );
    // After them, only what the agent's run said of its own health, which depends on how busy the machine was
    // (tests run side by side: its thread may have waited for a CPU), once per copy.
    assert!(
        lines[2..]
            .iter()
            .all(|l| l.contains("agent 0 (vm) was the bottleneck (its own health: ")),
        "{stderr}"
    );
}
