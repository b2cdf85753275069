//! Issue 15 item 2, with the real binary: one test per documented exit status (0 passed, 1 a threshold
//! crossed and named, 2 bad usage, 3 the target never answered), as `run --help` and the README list them.

mod common;
mod fake_servers;

use std::time::Duration;

use common::{args, loadgen};
use sockpool_testkit::ports::refused_addr;
use sockpool_testkit::process::run_with_timeout;

/// Runs `sockpool-loadgen run ARGS` and returns (exit status, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = run_with_timeout(loadgen().arg("run").args(args), Duration::from_secs(60))
        .expect("loadgen finished in time");
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_documents_every_exit_status() {
    let out = run_with_timeout(loadgen().args(["run", "--help"]), Duration::from_secs(30)).unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Exit status:",
        "0  passed",
        "1  a threshold was crossed",
        "2  bad usage",
        "3  the target never answered",
        "130  interrupted before anything was measured",
        "--fail-on",
        "--expect",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing in run --help:\n{help}"
        );
    }
}

#[test]
fn status_0_when_every_reply_is_right() {
    let addr = fake_servers::echo().to_string();
    let (code, stdout, stderr) = run(&args(
        "--target {} --protocol echo --requests 2000 --quiet --json -",
        &[&addr],
    ));
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["verdict"]["passed"], true);
    assert_eq!(v["verdict"]["thresholds"][0]["expr"], "errors>0");
    assert_eq!(v["verdict"]["thresholds"][0]["default"], true);
}

#[test]
fn status_1_for_failed_requests_by_default_and_names_the_threshold() {
    let addr = fake_servers::line_answering("WRONG").to_string();
    let (code, stdout, stderr) = run(&args(
        "--target {} --protocol line --requests 100",
        &[&addr],
    ));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("threshold crossed: errors>0: measured 100"),
        "{stderr}"
    );
    assert!(stdout.contains("verdict    FAILED: errors>0"), "{stdout}");
    // A share threshold of the user's own replaces the default one: 100% is over 50%.
    let line = "--target {} --protocol line --requests 100 --fail-on errors>50%";
    let (code, _, stderr) = run(&args(line, &[&addr]));
    assert_eq!(code, 1);
    assert!(stderr.contains("errors>50%: measured 100.000%"), "{stderr}");
}

#[test]
fn status_1_when_p99_is_over_1us_names_the_threshold_in_the_json_too() {
    let addr = fake_servers::echo().to_string();
    let line = "--target {} --protocol echo --requests 500 --fail-on p99>1us --fail-on rate<1 --quiet --json -";
    let (code, stdout, stderr) = run(&args(line, &[&addr]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("threshold crossed: p99>1us: measured"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let t = v["verdict"]["thresholds"].as_array().unwrap();
    let by = |e: &str| {
        t.iter()
            .find(|j| j["expr"] == e)
            .unwrap_or_else(|| panic!("{e}: {t:?}"))
    };
    assert_eq!(by("p99>1us")["crossed"], true);
    assert_eq!(by("p99>1us")["unit"], "us");
    assert!(by("p99>1us")["value"].as_f64().unwrap() > 1.0);
    assert_eq!(by("rate<1")["crossed"], false);
    assert_eq!(
        by("errors>0")["crossed"],
        false,
        "the default stays beside latency thresholds"
    );
    assert_eq!(v["verdict"]["exit_status"], 1);
}

#[test]
fn status_2_for_bad_usage() {
    let addr = fake_servers::echo().to_string();
    for (args, says) in [
        (vec!["--target", &addr, "--fail-on", "p99"], "--fail-on"),
        (
            vec!["--target", &addr, "--fail-on", "latency>1ms"],
            "unknown metric",
        ),
        (
            vec!["--target", &addr, "--connections", "0"],
            "--connections",
        ),
        (
            vec!["--target", &addr, "--protocol", "http", "--body", "{rand}"],
            "column 1",
        ),
        (
            vec!["--target", &addr, "--protocol", "echo", "--expect", "x"],
            "--expect",
        ),
        (vec!["--target", "redis://127.0.0.1:6379/3"], "database"),
        (vec!["--target", "ftp://127.0.0.1:21"], "unknown scheme"),
        (vec!["--target", &addr, "--nodelay", "maybe"], "on or off"),
        (vec!["--no-such-flag"], "unexpected argument"),
        // clap said "unexpected argument '-5' found".
        (vec!["--target", &addr, "--rate", "-5"], "from 0.001 to"),
        // Each ran, every connect failing with EINVAL (os error 22).
        (
            vec!["--target", &addr, "--keepalive", "0s"],
            "whole seconds",
        ),
        (
            vec!["--target", &addr, "--keepalive", "500ms"],
            "whole seconds",
        ),
        // 192.0.2.1 is for documentation (RFC 5737): no machine has it, so nothing could be sent from it.
        (
            vec!["--target", &addr, "--bind", "192.0.2.1"],
            "not an address of this machine",
        ),
        (
            vec!["--target", &addr, "--bind", "::1"],
            "another address family",
        ),
        // A CA file without a certificate fails every handshake: a bad flag, not a target that never answered.
        (
            vec![
                "--target",
                &format!("tls://{addr}"),
                "--cacert",
                "/dev/null",
                "--requests",
                "1",
            ],
            "holds no certificate",
        ),
        (
            vec![
                "--target",
                &addr,
                "--json",
                "/nonexistent-dir/x.json",
                "--requests",
                "10",
            ],
            "nonexistent",
        ),
    ] {
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn status_3_when_the_target_never_answers() {
    let (_reserved, addr) = refused_addr();
    let addr = addr.to_string();
    // The reports of an earlier, passing run are at the output paths: no script may read them as this run's.
    let dir = tempfile::tempdir().unwrap();
    let (json, hgrm, hlog) = (
        dir.path().join("r.json"),
        dir.path().join("r.hgrm"),
        dir.path().join("r.hlog"),
    );
    for p in [&json, &hgrm, &hlog] {
        std::fs::write(p, "an earlier run's report").unwrap();
    }
    let (code, _, stderr) = run(&args(
        "--target {} --requests 10 --connect-timeout 300ms --json {} --hgrm {} --hlog {}",
        &[
            &addr,
            json.to_str().unwrap(),
            hgrm.to_str().unwrap(),
            hlog.to_str().unwrap(),
        ],
    ));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
    for p in [&json, &hgrm, &hlog] {
        assert!(!p.exists(), "{} left from the earlier run", p.display());
    }
    // Connections open, but no request ever gets a byte back.
    let silent = fake_servers::silent().to_string();
    let line =
        "--target {} --protocol line --requests 4 --connections 2 --timeout 200ms --quiet --json -";
    let (code, stdout, stderr) = run(&args(line, &[&silent]));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("got a reply"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["verdict"]["no_answer"], true);
    assert_eq!(v["errors"]["timeout_read"], 4, "{}", v["errors"]);
}

/// `run --json /dev/null` against a target that refuses, as root (a container), removed `/dev/null` as "a
/// report an earlier run left there", and a report written there replaced the device with a regular file. An
/// output path that is not a regular file (here a FIFO, which needs no root) is left alone.
#[test]
fn status_3_leaves_an_output_that_is_not_a_regular_file_alone() {
    use std::os::unix::fs::FileTypeExt;
    let (_reserved, addr) = refused_addr();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // (Not /dev/null itself: a test that failed would break the machine it runs on.)
    let (code, _, stderr) = run(&args(
        "--target {} --requests 10 --connect-timeout 300ms --json {}",
        &[&addr.to_string(), fifo.to_str().unwrap()],
    ));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
    let kind = std::fs::metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the FIFO was removed or replaced");
}

/// Issue 32 item 2: `tune` and `stream` that fail (a target that accepts and never answers) left an earlier
/// run's `--json`, `--recommend` and `--html` in place after exit 1, where `run` removes them: a script would
/// read that run's result as this one's. Bad flags (exit 2) still leave them alone.
#[test]
fn a_failed_tune_or_stream_leaves_no_earlier_output() {
    let silent = fake_servers::silent().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let (json, rec, html, sjson) = (
        path("f.json"),
        path("f.rec.json"),
        path("f.html"),
        path("s.json"),
    );
    let stale = || {
        for p in [&json, &rec, &html, &sjson] {
            std::fs::write(p, "an earlier run's output").unwrap();
        }
    };
    let status = |a: Vec<&str>| {
        let out =
            run_with_timeout(loadgen().args(a), Duration::from_secs(60)).expect("finished in time");
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let tune = "tune --target {} -p resp --vary pipeline=1,2 -d 200ms --warmup 0s \
                --recommend {} --json {} --html {} --quiet";
    stale();
    let (code, stderr) = status(args(tune, &[&silent, &rec, &json, &html]));
    assert_eq!(code, 1, "{stderr}");
    for p in [&json, &rec, &html] {
        assert!(
            !std::path::Path::new(p).exists(),
            "{p} left from the earlier tune: {stderr}"
        );
    }
    let stream = "stream --target {} --buffer 1K --duration 200ms --json {} --quiet";
    stale();
    let (code, stderr) = status(args(stream, &[&silent, &sjson]));
    assert_eq!(code, 1, "{stderr}");
    assert!(!std::path::Path::new(&sjson).exists(), "{stderr}");
    // Bad usage is refused before anything is touched, as `run`'s is.
    stale();
    let (code, stderr) = status(args(
        "tune --target {} --vary nonsense=1 --json {}",
        &[&silent, &json],
    ));
    assert_eq!(code, 2, "{stderr}");
    let (code, stderr) = status(args(
        "stream --target {} --buffer 0 --json {}",
        &[&silent, &sjson],
    ));
    assert_eq!(code, 2, "{stderr}");
    for p in [&json, &sjson] {
        assert!(std::path::Path::new(p).exists(), "{p}: {stderr}");
    }
}

/// Issue 32 item 3: against the wrong server, every pairing names the protocol mismatch. A framed listener
/// answers an echo, line or RESP request with a TOO_LARGE frame and closes: every request `closed`, and the
/// run said only "see the report", with the 13 bytes it sent nowhere. `-p udp` against a TCP-only port got
/// "connection refused" and no hint. `-p resp` (PING) against an echo server passed with exit 0: the echoed
/// command parses as a RESP array.
#[test]
fn a_protocol_mismatch_is_named_whatever_the_wrong_server_does() {
    let (_framed, framed) = sockpool_testkit::server::one_worker_target("framed=127.0.0.1:0");
    let (_echo, echo) = sockpool_testkit::server::one_worker_target("echo=127.0.0.1:0");
    let line = "--target {} --protocol {} --duration 300ms --connections 2 --timeout 1s --quiet";
    for p in ["echo", "line", "resp"] {
        let (code, _, stderr) = run(&args(line, &[&framed, p]));
        assert_eq!(code, 3, "{p}: {stderr}");
        assert!(stderr.contains("protocol mismatch?"), "{p}: {stderr}");
        assert!(
            stderr.contains(&format!("closed them without a {p} reply")),
            "{p}: {stderr}"
        );
        assert!(
            stderr.contains(r#"after 13 bytes that are not a whole reply: "\x00\x00\x00\t\x02"#),
            "{p}: what the server sent is shown: {stderr}"
        );
    }
    let (code, _, stderr) = run(&args(line, &[&framed, "udp"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("protocol mismatch?") && stderr.contains("nothing receives UDP"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run(&args(&format!("{line} --json -"), &[&echo, "resp"]));
    assert_eq!(code, 1, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["summary"]["ok"], 0, "{}", v["errors"]);
    assert!(
        v["errors"]["bad_reply"].as_u64().unwrap() > 0,
        "{}",
        v["errors"]
    );
    assert!(
        stderr.contains("no reply was right") && stderr.contains("protocol mismatch?"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"got "PING", expected "PONG""#),
        "{stderr}"
    );
    // The reference RESP server answers PONG: no false alarm.
    let (_resp, resp) = sockpool_testkit::server::one_worker_target("resp=127.0.0.1:0");
    let (code, _, stderr) = run(&args(line, &[&resp, "resp"]));
    assert_eq!(code, 0, "{stderr}");
    // Replies that decode and fail only what was asked of them (`GET` of a missing key against `--expect x`)
    // are no protocol mismatch: the message says they failed the check (it said "its replies are not resp").
    let (code, _, stderr) = run(&args(
        &format!("{line} --command 'GET nokey' --expect x"),
        &[&resp, "resp"],
    ));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("no reply was right: every reply failed the check")
            && !stderr.contains("protocol mismatch"),
        "{stderr}"
    );
}

/// A TLS handshake the server never answers (a plain TCP peer that reads and says nothing), for longer than
/// the run: no connection opens and no attempt fails before the end. The run still lasts its duration, the
/// report says why nothing was sent, and the status is 3.
#[test]
fn status_3_and_a_warning_when_every_connect_is_still_in_progress_at_the_end() {
    let silent = fake_servers::silent().to_string();
    let target = format!("tls://{silent}");
    let (code, stdout, stderr) = run(&args(
        "--target {} --insecure --duration 300ms --connect-timeout 2s --connections 2 --quiet --json -",
        &[&target],
    ));
    assert_eq!(code, 3, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["verdict"]["no_answer"], true);
    assert_eq!(v["summary"]["requests"], 0);
    let secs = v["summary"]["duration_s"].as_f64().unwrap();
    assert!(
        (0.299..0.5).contains(&secs),
        "measured for the run's duration: {secs}"
    );
    let share = v["health"]["max_worker_cpu_share"].as_f64().unwrap();
    assert!(share < 0.9, "CPU share of the time it was used in: {share}");
    let warnings = v["health"]["warnings"].to_string();
    assert!(warnings.contains("still in progress"), "{warnings}");
    // The one line on stderr says why too ("(0 errors); see the report" said nothing).
    assert!(stderr.contains("still in progress"), "{stderr}");
}

/// `prlimit --nofile=SOFT:HARD sockpool-loadgen run ARGS`: (exit status, stderr).
fn run_limited(nofile: &str, args: &[&str]) -> (i32, String) {
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg(format!("--nofile={nofile}"))
        .arg(common::bin())
        .arg("run")
        .args(args);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60)).expect("prlimit and loadgen");
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// More connections than the open-file limit can hold: a clear setup error (status 2) before the run, naming
/// `ulimit -n`, instead of a run of "Too many open files" errors; under a low soft limit with room in the hard
/// one, the limit is raised and the run is clean (the embedded server's side of each connection counted).
#[test]
fn status_2_when_the_open_file_limit_cannot_hold_the_connections() {
    let (code, stderr) = run_limited("128:128", &["-c", "1000", "-d", "1s", "-q"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("ulimit -n"), "{stderr}");
    let (code, stderr) = run_limited("128:4096", &["-c", "500", "-d", "1s", "-q"]);
    assert_eq!(code, 0, "{stderr}");
}

/// `tune --slo` that no rate meets exits 1 with a one-line reason on stderr, after the table and the files
/// (it exited 0, so a CI job asking for the SLO learnt nothing from the status).
#[test]
fn tune_status_1_when_no_rate_meets_the_slo_with_the_table_and_files_written() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("tune.json");
    let recommend = dir.path().join("tuned.json");
    let out = run_with_timeout(
        loadgen().args([
            "tune",
            "--vary",
            "pipeline=1",
            "--connections",
            "2",
            "--slo",
            "p99<1us",
            "-d",
            "50ms",
            "--warmup",
            "0s",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
            "--recommend",
            recommend.to_str().unwrap(),
        ]),
        Duration::from_secs(120),
    )
    .expect("tune finished in time");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("sockpool-loadgen: no rate met --slo p99<1µs on [pipeline=1]: "),
        "{stderr}"
    );
    assert!(
        stdout.contains("highest rate meeting the SLO: none"),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["slo"]["best_rate"], serde_json::Value::Null);
    assert!(
        recommend.exists(),
        "the recommendation (the closest cell) is written too"
    );
}

/// An open loop past what the server answers (2 connections of 10 ms requests: 200/s; 2,000/s offered): the
/// requests still waiting for a free connection when --duration ends are `unsent` errors, and the default
/// `errors>0` fails the run, but stderr says what they are: never sent, not the server's failures (the line
/// read `errors>0: measured N` alone, as if the server had failed them).
#[test]
fn status_1_with_unsent_requests_says_they_were_never_sent() {
    let (_server, target) = common::serve("framed=127.0.0.1:0", None);
    let (code, stdout, stderr) = run(&args(
        "--target {} --op sleep --sleep 10ms --rate 2000 -c 2 -d 300ms --quiet --json -",
        &[&target],
    ));
    assert_eq!(code, 1, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let unsent = v["errors"]["unsent"].as_u64().unwrap();
    let total = v["errors"]["total"].as_u64().unwrap();
    assert!(unsent > 300, "{}", v["errors"]);
    assert!(
        stderr.contains(&format!(
            "sockpool-loadgen: {unsent} of the {total} errors are unsent: requests still waiting for a free \
             connection (every one busy) when --duration ended, never sent to the server"
        )),
        "{stderr}"
    );
    // Without unsent requests among them, no such line.
    let addr = fake_servers::line_answering("WRONG").to_string();
    let (_, _, stderr) = run(&args(
        "--target {} --protocol line --requests 100",
        &[&addr],
    ));
    assert!(!stderr.contains("unsent"), "{stderr}");
}

/// A server that sends bytes with no request in flight breaks the protocol: every request here got a `+PONG`,
/// but RESP carries no tag, so which request each answered is unknown. The default `stray>0` fails the run and
/// stderr says why; a user's own `stray` threshold replaces it.
#[test]
fn status_1_when_the_server_sends_bytes_nobody_asked_for() {
    let addr = fake_servers::resp_answering_twice_at_first().to_string();
    let line = "--target {} --protocol resp -c 2 --requests 50 --quiet --json -";
    let (code, stdout, stderr) = run(&args(line, &[&addr]));
    assert_eq!(code, 1, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["summary"]["ok"], 50, "every request was answered");
    assert_eq!(v["errors"]["total"], 0);
    // Each connection breaks after its first reply: one stray connection per request, as each is reopened.
    let stray = v["health"]["stray"].as_u64().unwrap();
    assert!(stray >= 48, "{}", v["health"]);
    let t = v["verdict"]["thresholds"].as_array().unwrap();
    let default = t.iter().find(|j| j["expr"] == "stray>0").expect("stray>0");
    assert_eq!(default["crossed"], true);
    assert_eq!(default["default"], true);
    assert_eq!(default["unit"], "connections");
    assert!(
        stderr.contains(&format!("threshold crossed: stray>0: measured {stray}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{stray} connection(s) got bytes with no request in flight: the server sent replies nobody asked for"
        )),
        "{stderr}"
    );
    // Allowed by the user: the run passes, and the health still counts them.
    let line =
        "--target {} --protocol resp -c 2 --requests 50 --fail-on stray>1000 --quiet --json -";
    let (code, stdout, stderr) = run(&args(line, &[&addr]));
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["health"]["stray"].as_u64().unwrap() >= 48);
}

/// A server closes a keep-alive connection on which nothing came for its idle timeout: silently (nginx,
/// Apache, Redis's `timeout`) or after a `408 Request Timeout` (Node.js). An open loop slower than that timeout
/// finds each connection closed when its next request is due: the request goes out on a new connection, and the
/// run passes with every request answered (before, each went into the closed connection and failed as closed,
/// or took the `408` for its reply). The closes are counted as the server's, not as failures or stray bytes.
#[test]
fn an_open_loop_slower_than_the_servers_idle_timeout_reconnects_without_failing() {
    for notice in [false, true] {
        // A request every 500 ms on the one connection, which the server closes after 100 ms without one.
        let addr = fake_servers::http_closing_idle(Duration::from_millis(100), notice).to_string();
        let line = "--target {} --protocol http -c 1 --rate 2 --duration 2s --quiet --json -";
        let (code, stdout, stderr) = run(&args(line, &[&addr]));
        assert_eq!(code, 0, "408 notice {notice}: {stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let (ok, errors) = (&v["summary"]["ok"], &v["errors"]["total"]);
        assert_eq!((ok.as_u64(), errors.as_u64()), (Some(4), Some(0)), "{v}");
        let h = &v["health"];
        assert_eq!((&h["stray"], &h["broken"]), (&0.into(), &0.into()), "{h}");
        // Each request after the first found its connection closed by the server.
        assert!(h["closed_by_server"].as_u64().unwrap() >= 3, "{h}");
    }
}
