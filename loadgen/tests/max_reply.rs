//! `--max-reply`: the most one reply may hold, passed to the SDK (`buffers.max_reply`) by `run` and `tune`.
//! Before it, the load generator kept the SDK's 1 GiB whatever the user needed: a `GET` of a larger value could
//! not be measured, and a tight bound could not be set. A reply over it is a `reply_too_large` error, and the
//! hint names the flag to raise instead of suspecting the protocol.

mod common;
mod fake_servers;

use std::io::{Read, Write};
use std::time::Duration;

use common::loadgen;
use sockpool_testkit::process::run_with_timeout;

/// `GET k` as the load generator sends it: `--command "GET k"`.
const GET_K: &[u8] = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";

/// A RESP peer that answers every `GET k` with a bulk of `n` bytes (the value `v` repeated), however the
/// commands are split across reads.
fn redis_with_value_of(n: usize) -> String {
    let reply = [format!("${n}\r\n").as_bytes(), &vec![b'v'; n], b"\r\n"].concat();
    answering(reply, |p| p.starts_with(GET_K).then_some(GET_K.len()))
}

/// The bytes of a reply that is one bulk of `n` bytes.
fn bulk_reply_len(n: usize) -> usize {
    format!("${n}\r\n").len() + n + 2
}

/// `run` of 20 `GET k` on one connection, with `extra` flags: (exit status, JSON report, stderr).
fn run_get(target: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    run_proto(target, "resp", &[&["--command", "GET k"], extra].concat())
}

#[test]
fn replies_over_the_limit_are_errors_named_with_the_flag_and_within_it_they_pass() {
    let value = 64 * 1024;
    // 4 KiB: every reply is refused, counted as an error of its own kind (not a success, not missing), and the
    // run says the target never answered (exit 3) with the flag to raise, not a protocol mismatch.
    let target = redis_with_value_of(value);
    let run = |limit: &str| run_get(&target, &["--max-reply", limit]);
    let (code, v, stderr) = run("4KiB");
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(v["errors"]["reply_too_large"], 20, "{}", v["errors"]);
    assert_eq!(v["errors"]["total"], 20, "{}", v["errors"]);
    assert_eq!(v["errors"]["protocol"], 0, "{}", v["errors"]);
    assert_eq!(v["summary"]["ok"], 0, "{}", v["summary"]);
    assert_eq!(v["config"]["max_reply"], 4096, "{}", v["config"]);
    assert!(
        stderr.contains("over the reply limit") && stderr.contains("raise --max-reply"),
        "{stderr}"
    );
    assert!(!stderr.contains("protocol mismatch"), "{stderr}");
    let example = v["error_examples"][0]["text"].as_str().unwrap_or_default();
    assert!(
        example.contains(&format!(
            "reply of {} bytes is over the limit of 4096",
            bulk_reply_len(value)
        )),
        "{}",
        v["error_examples"]
    );
    // Above the reply, the same run passes.
    let (code, v, stderr) = run("128KiB");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["summary"]["ok"], 20, "{}", v["summary"]);
    assert_eq!(v["errors"]["total"], 0, "{}", v["errors"]);
    // The edge: a limit of exactly the reply's bytes takes it, one less refuses it.
    let exact = bulk_reply_len(value);
    let (code, v, stderr) = run(&exact.to_string());
    assert_eq!((code, &v["summary"]["ok"]), (0, &20.into()), "{stderr}");
    let (code, v, stderr) = run(&(exact - 1).to_string());
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(v["errors"]["reply_too_large"], 20, "{}", v["errors"]);
}

/// Without the flag, the SDK's default (1 GiB) applies and the report says so; a pipelined run (several
/// requests in flight on the connection a refused reply ends) counts every request once: the one whose reply
/// was refused as `reply_too_large`, the ones behind it, never answered, as `closed`.
#[test]
fn the_default_and_a_pipelined_run() {
    let target = redis_with_value_of(64 * 1024);
    let (code, v, stderr) = run_get(&target, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["config"]["max_reply"], 1u64 << 30, "{}", v["config"]);
    let (code, v, stderr) = run_get(&target, &["--pipeline", "8", "--max-reply", "4KiB"]);
    assert_eq!(code, 3, "{stderr}");
    let errors = &v["errors"];
    assert_eq!(errors["total"], 20, "{errors}");
    let (over, closed) = (
        errors["reply_too_large"].as_u64().unwrap(),
        errors["closed"].as_u64().unwrap(),
    );
    assert_eq!(over + closed, 20, "{errors}");
    // Each connection takes 8 requests at once and ends at its first reply: one over the limit each.
    assert!(over >= 3 && closed >= 7, "{errors}");
    assert!(
        stderr.contains("over the reply limit") && stderr.contains("raise --max-reply"),
        "{stderr}"
    );
}

/// `tune` passes the limit to the pooled SDK client each cell measures: a first request refused over it is
/// named with the flag, and a tune within it recommends a client configuration that carries it.
#[test]
fn tune_takes_the_limit_and_its_recommendation_carries_it() {
    let target = redis_with_value_of(64 * 1024);
    let tune = |extra: &[&str]| {
        let mut a = vec![
            "tune",
            "--target",
            &target,
            "-p",
            "resp",
            "--command",
            "GET k",
        ];
        a.extend([
            "--vary",
            "pipeline=1",
            "-d",
            "100ms",
            "--warmup",
            "0s",
            "--quiet",
        ]);
        a.extend(extra);
        run_with_timeout(loadgen().args(&a), Duration::from_secs(60)).unwrap()
    };
    let out = tune(&["--max-reply", "4KiB"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("reply_too_large") && stderr.contains("raise --max-reply"),
        "{stderr}"
    );
    assert!(!stderr.contains("protocol mismatch"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tuned.json");
    let out = tune(&[
        "--max-reply",
        "128KiB",
        "--recommend",
        file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let config = sockpool::ClientConfig::from_file(&file).unwrap();
    assert_eq!(config.buffers.max_reply, 128 * 1024);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("buffers.max_reply"), "{text}");
}

/// A peer answering every request (a line, or an HTTP request's head) with `reply`, however requests are split
/// across reads: `per_request` finds where one request ends in what arrived.
fn answering(reply: Vec<u8>, per_request: fn(&[u8]) -> Option<usize>) -> String {
    fake_servers::spawn(move |mut s| {
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(got) = s.read(&mut buf) {
            if got == 0 {
                return;
            }
            pending.extend_from_slice(&buf[..got]);
            while let Some(end) = per_request(&pending) {
                pending.drain(..end);
                if s.write_all(&reply).is_err() {
                    return;
                }
            }
        }
    })
    .to_string()
}

/// 20 requests of `protocol` on one connection to `target` with `extra` flags: (exit status, JSON report,
/// stderr).
fn run_proto(target: &str, protocol: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut a = vec!["run", "--target", target, "--quiet", "--json", "-"];
    a.extend(["-p", protocol, "--connections", "1", "--requests", "20"]);
    a.extend(extra);
    let out = run_with_timeout(loadgen().args(&a), Duration::from_secs(60)).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    (out.status.code().expect("exited"), v, stderr)
}

/// The reply limit is the only bound on a reply, whatever the protocol: an HTTP body of 2 MiB (a static file)
/// and a 100 KiB line used to be refused by the codecs' own caps (1 MiB bodies, 64 KiB lines), counted as
/// `protocol` with "protocol mismatch?" and out of `--max-reply`'s reach. Now they pass under the default, and
/// a `--max-reply` below them refuses them as `reply_too_large`.
#[test]
fn http_bodies_and_lines_are_bounded_by_the_reply_limit_alone() {
    let body = 2 << 20;
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {body}\r\n\r\n");
    let http = answering([head.as_bytes(), &vec![b'b'; body]].concat(), |p| {
        p.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
    });
    // A line of 100 KiB for every request line (the load generator sends at most 64 KiB a line: `--expect`
    // instead of the echo).
    let line = answering([vec![b'l'; 100 << 10], b"\n".to_vec()].concat(), |p| {
        p.iter().position(|&b| b == b'\n').map(|i| i + 1)
    });
    let (http_flags, line_flags) = (&[][..], &["--expect", "re:^l+$"][..]);
    for (protocol, target, flags, tight) in [
        ("http", &http, http_flags, "1MiB"),
        ("line", &line, line_flags, "64KiB"),
    ] {
        let (code, v, stderr) = run_proto(target, protocol, flags);
        assert_eq!(code, 0, "{protocol}: {stderr} {}", v["errors"]);
        assert_eq!(v["summary"]["ok"], 20, "{protocol}: {}", v["errors"]);
        let (code, v, stderr) =
            run_proto(target, protocol, &[flags, &["--max-reply", tight]].concat());
        assert_eq!(code, 3, "{protocol}: {stderr}");
        assert_eq!(
            v["errors"]["reply_too_large"], 20,
            "{protocol}: {}",
            v["errors"]
        );
        assert!(stderr.contains("raise --max-reply"), "{protocol}: {stderr}");
    }
}
