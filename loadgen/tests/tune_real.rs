//! Real tunes through the binary: 2×2 short cells against the embedded server, checking the table, the JSON
//! and the HTML (the same checks as with the fake runner, on measured data); timeouts as the SDK names them;
//! every protocol and target form `run` takes.

mod common;
mod tune_common;

use std::process::Command;

#[test]
fn a_real_two_by_two_tune_writes_a_consistent_table_json_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("tune.json");
    let html_path = dir.path().join("tune.html");
    let out = Command::new(env!("CARGO_BIN_EXE_sockpool-loadgen"))
        .args([
            "tune",
            "--vary",
            "pipeline=1,8",
            "--vary",
            "pool=pooled,per-request",
        ])
        .args([
            "--connections",
            "2",
            "--duration",
            "300ms",
            "--warmup",
            "50ms",
            "--quiet",
        ])
        .arg("--json")
        .arg(&json_path)
        .arg("--html")
        .arg(&html_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells {
        let label = c["label"].as_str().unwrap();
        let row = stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no row for {label}:\n{stdout}"));
        let s = &c["repeats"][0];
        assert!(s["requests"].as_u64().unwrap() > 0, "{label} sent nothing");
        assert_eq!(s["errors"], 0, "{label}");
        assert!(c["p99_us"]["median"].as_f64().unwrap() >= c["p50_us"]["median"].as_f64().unwrap());
        assert!(
            row.contains(&format!("{:.2}", c["ratio"]["rate"].as_f64().unwrap())),
            "{row}"
        );
    }
    // A connection per request costs a handshake each time: its connect-per-request cells are slower than
    // their pooled partners at the same pipeline depth (the effect is an order of magnitude, far above noise).
    let rate = |i: usize| cells[i]["rate"]["median"].as_f64().unwrap();
    assert!(
        rate(1) < rate(0) && rate(3) < rate(2),
        "per-request should be slower: {stdout}"
    );

    let html = std::fs::read_to_string(&html_path).unwrap();
    let (_, embedded) = tune_common::check_html(&html, false);
    assert!(tune_common::approx_eq(&embedded, &json));
}

/// A framed echo server that answers every request 300 ms after reading it (one connection at a time each, in
/// order), on a free loopback port. It serves a bounded number of connections.
fn slow_framed_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(5000) {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || loop {
                let mut len = [0u8; 4];
                if conn.read_exact(&mut len).is_err() {
                    return;
                }
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                if body.len() < 13 || conn.read_exact(&mut body).is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(300));
                // status OK, the request's id, its payload.
                let mut reply = Vec::with_capacity(4 + 9 + body.len() - 13);
                reply.extend_from_slice(&((9 + body.len() - 13) as u32).to_be_bytes());
                reply.push(0);
                reply.extend_from_slice(&body[1..9]);
                reply.extend_from_slice(&body[13..]);
                if conn.write_all(&reply).is_err() {
                    return;
                }
            });
        }
    });
    addr
}

/// `tune` of 300 ms cells with no warm-up against a fresh [`slow_framed_server`], with `flags`: its JSON
/// document and its stderr (the table), once the tune exited 0.
fn tune_slow_server(flags: &[&str]) -> (serde_json::Value, String) {
    let target = slow_framed_server();
    let out = Command::new(env!("CARGO_BIN_EXE_sockpool-loadgen"))
        .args(["tune", "--target", &target])
        .args(flags)
        .args([
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--quiet",
            "--json",
            "-",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

#[test]
fn a_timeout_shorter_than_the_reply_time_fails_every_request_as_a_read_timeout() {
    // Every reply takes at least 300 ms (far beyond any scheduling stall of a loaded test machine: a reply
    // already read when a starved task runs again is taken before its timer). With timeout=5ms no request may
    // succeed, pooled or not; with 5s none may fail.
    let (json, stderr) = tune_slow_server(&[
        "--vary",
        "timeout=5s,5ms",
        "--vary",
        "pool=pooled,per-request",
        "--connections",
        "2",
        "--pipeline",
        "4",
    ]);
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells {
        let label = c["label"].as_str().unwrap();
        let run = &c["repeats"][0];
        let (requests, errors) = (
            run["requests"].as_u64().unwrap(),
            run["errors"].as_u64().unwrap(),
        );
        let by_kind = &c["errors_by_kind"];
        assert_eq!(
            by_kind["total"].as_u64(),
            Some(errors),
            "{label}: {by_kind}"
        );
        if c["settings"]["timeout"] == "5ms" {
            assert!(errors > 0, "{label}: nothing timed out: {c}");
            assert_eq!(errors, requests, "{label}: a reply beat a 5ms timeout: {c}");
            // Every failure is a timeout, and the SDK names where its time went: written with no byte of the
            // reply yet, or (per request, 8 slots on 2 connections) waiting for a connection, or opening it (a
            // connect counts against the request's own 5 ms, and on a loaded machine one can take that long:
            // CI saw it).
            assert_eq!(
                by_kind["timeout"].as_u64(),
                Some(errors),
                "{label}: {by_kind}"
            );
            assert!(
                by_kind["timeout_read"].as_u64() > Some(0),
                "{label}: {by_kind}"
            );
            let read_or_wait = by_kind["timeout_read"].as_u64().unwrap()
                + by_kind["timeout_pool_wait"].as_u64().unwrap()
                + by_kind["timeout_connect"].as_u64().unwrap();
            assert_eq!(read_or_wait, errors, "{label}: {by_kind}");
        } else {
            assert!(requests > 0, "{label}: {c}");
            assert_eq!(errors, 0, "{label}: {by_kind}");
        }
    }
    // The table shows the errors too.
    let row = stderr
        .lines()
        .find(|l| l.starts_with("timeout=5ms pool=pooled"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let pooled = cells
        .iter()
        .find(|c| c["label"] == "timeout=5ms pool=pooled")
        .unwrap();
    let errors = pooled["errors"]["median"].as_f64().unwrap();
    assert!(row.contains(&format!(" {errors:.0} ")), "{row}");
}

/// An open-loop cell far past what its pool can carry (2 connections of a server answering in 300 ms, offered
/// 20,000 requests/s): the open loop owns the schedule and hands the pool at most one request per slot
/// (connections × pipeline), so the SDK pool's waiter bound (`PoolConfig::max_waiters`, 1,024) is never
/// reached, however many requests are due: no request is refused by the pool (`PoolExhausted`, counted as
/// `other`), the excess stays in the schedule and is counted as the load generator's `unsent` when the duration
/// ends, and every scheduled request is counted once.
#[test]
fn an_open_loop_past_its_pool_never_overruns_the_pools_waiter_bound() {
    let (json, _) = tune_slow_server(&["--vary", "rate=20000", "--connections", "2"]);
    let cell = &json["cells"][0];
    let by_kind = &cell["errors_by_kind"];
    let n = |k: &str| by_kind[k].as_u64().unwrap();
    assert_eq!(n("other"), 0, "the pool refused requests: {by_kind}");
    let run = &cell["repeats"][0];
    let requests = run["requests"].as_u64().unwrap();
    // 6,000 scheduled (20,000/s × 300 ms), far past 1,024 waiters: a handful answered, the rest never handed to
    // the pool. (The probe's request is not in the cell.)
    assert!(n("unsent") > 5_000, "{by_kind}");
    assert_eq!(n("total"), n("unsent") + n("timeout"), "{by_kind}");
    assert!(
        (5_990..=6_010).contains(&requests),
        "{requests} requests: {cell}"
    );
}

/// A server on a free loopback port that runs `serve` on each connection, on a thread of its own; it serves a
/// bounded number of connections. Returns its address.
fn serve_each(serve: fn(std::net::TcpStream)) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(200_000) {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || serve(conn));
        }
    });
    addr
}

/// A server that answers everything as Redis answers a command it does not know.
fn redis_like_server() -> String {
    use std::io::{Read, Write};
    serve_each(|mut conn| {
        let mut buf = [0u8; 4096];
        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {
            if conn.write_all(b"-ERR unknown command\r\n").is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_target_that_does_not_speak_the_protocol_stops_the_tune_with_that_error() {
    let target = redis_like_server();
    let out = Command::new(env!("CARGO_BIN_EXE_sockpool-loadgen"))
        .args(["tune", "--target", &target, "--vary", "pipeline=1,4"])
        .args(["--duration", "300ms", "--warmup", "0s", "--quiet"])
        .args(["--slo", "p99<2ms"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("protocol mismatch?")
            && stderr.contains("does not answer --protocol framed")
            && stderr.contains("not framed (protocol)"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("Recommendation"),
        "no table of zeros, no recommendation: {stdout}"
    );
}

/// Runs `tune` with `flags` and a short 2-cell matrix; (exit code, stderr).
fn tune_failing(flags: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sockpool-loadgen"))
        .arg("tune")
        .args(flags)
        .args([
            "--vary",
            "pipeline=1,4",
            "--duration",
            "200ms",
            "--warmup",
            "0s",
        ])
        .arg("--quiet")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_first_request_that_fails_for_another_reason_than_the_protocol_says_what_failed() {
    // TLS spoken to a plain server: the handshake fails; the SDK's words, not a guess at the protocol.
    let (_server, plain) = common::serve("framed=127.0.0.1:0", None);
    let (code, stderr) = tune_failing(&["--target", &format!("tls://{plain}"), "--insecure"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "sockpool-loadgen: the first request to tls://{plain} failed (tls): e.g. tls: TLS error during TLS \
             handshake on tls://{plain}: "
        )) && !stderr.contains("protocol mismatch"),
        "{stderr}"
    );
    // The protocol is right and the server refuses the command: its error reply is quoted.
    let redis = redis_like_server();
    let (code, stderr) = tune_failing(&["--target", &redis, "--protocol", "resp"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "sockpool-loadgen: the first request to {redis} failed (server_error): e.g. server_error: [ERR] got \
             \"ERR unknown command\""
        )
    );
    // A RESP reply that is not what --expect asks for: the check failed, the protocol is right.
    let (_server, resp) = common::serve("resp=127.0.0.1:0", None);
    let flags = [
        "--target",
        &resp,
        "--protocol",
        "resp",
        "--command",
        "GET nokey",
        "--expect",
        "x",
    ];
    let (code, stderr) = tune_failing(&flags);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "sockpool-loadgen: the first request to {resp} failed (bad_reply): e.g. bad_reply: got \"(nil)\", \
             expected \"x\""
        )
    );
}

/// A cell that cannot run is refused before the first cell runs (exit 2), not after the cells before it ran
/// (exit 1): one the open-file limit cannot hold (ten million connections: more than any hard limit, Linux's
/// nr_open being 1,048,576 by default), and one whose client the SDK would refuse (a buffer over 1 GiB).
#[test]
fn a_cell_that_cannot_run_is_refused_before_the_first_cell_runs() {
    for (vary, said) in [
        (
            "connections=1,10000000",
            "sockpool-loadgen: cell connections=10000000: --connections 10000000 needs about 20000064 open files",
        ),
        (
            "read-buffer=4KiB,2GiB",
            "sockpool-loadgen: cell read-buffer=2GiB: invalid configuration",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sockpool-loadgen"))
            .args(["tune", "--vary", vary])
            .args(["--duration", "200ms", "--warmup", "0s"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{vary}: {stderr}");
        assert!(stderr.starts_with(said), "{vary}: {stderr}");
        assert!(!stderr.contains("[1/2]"), "{vary}: no cell ran: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sockpool-loadgen"))
        .args(["tune", "--vary", "read-buffer=2GiB"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 1073741824 bytes (1 GiB)"));
}

#[test]
fn tune_drives_every_protocol_and_target_run_takes() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, pem) = common::localhost_cert(dir.path());
    let sock = dir.path().join("line.sock");
    let cacert = format!("--cacert {}", cert.display());
    // (listener, TLS, tune flags)
    let cases = [
        ("framed+tls=127.0.0.1:0".to_string(), true, cacert.as_str()),
        (
            format!("line=unix:{}", sock.display()),
            false,
            "--protocol line",
        ),
        ("echo=127.0.0.1:0".into(), false, "--protocol echo"),
        ("http=127.0.0.1:0".into(), false, "--protocol http"),
        ("resp=127.0.0.1:0".into(), false, "--protocol resp"),
        ("udp=127.0.0.1:0".into(), false, "--protocol udp"),
    ];
    for (listen, tls, flags) in cases {
        let (_server, mut target) =
            common::serve(&listen, tls.then_some((cert.as_path(), pem.as_path())));
        if tls {
            target = format!("tls://localhost:{}", target.rsplit_once(':').unwrap().1);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_sockpool-loadgen"))
            .args(["tune", "--target", &target])
            .args(flags.split(' '))
            .args([
                "--vary",
                "connections=1,2",
                "--duration",
                "200ms",
                "--warmup",
                "0s",
            ])
            .args(["--quiet", "--json", "-"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{listen}: {stderr}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let cells = json["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 2, "{listen}");
        for c in cells {
            let run = &c["repeats"][0];
            assert!(run["requests"].as_u64().unwrap() > 0, "{listen}: {c}");
            assert_eq!(run["errors"], 0, "{listen}: {}", c["errors_by_kind"]);
        }
    }
}

/// A RESP server that answers each `PING` with `+PONG`, and the first of each connection twice: the second
/// comes with no request in flight, so which request each later reply answered is unknown. `run` fails on it
/// by default (`stray>0`); tune stops on it, naming it, instead of tabulating and recommending from replies
/// that may answer other requests.
#[test]
fn a_server_that_sends_replies_nobody_asked_for_stops_the_tune() {
    use std::io::{Read, Write};
    let target = serve_each(|mut conn| {
        let (mut buf, mut first) = ([0u8; 4096], true);
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            let pings = buf[..n].windows(4).filter(|w| w == b"PING").count();
            let extra = usize::from(std::mem::take(&mut first) && pings > 0);
            if conn.write_all(&b"+PONG\r\n".repeat(pings + extra)).is_err() {
                return;
            }
        }
    });
    let (code, stderr) = tune_failing(&["--target", &target, "--protocol", "resp"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("the server sent bytes with no request in flight on")
            && stderr.contains("tune stops rather than report its figures"),
        "{stderr}"
    );
}
