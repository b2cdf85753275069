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

/// 16 connections, 96 requests each answered by a reply of this many bytes: a run that held each reply would
/// peak at 64 MiB on top of the process's own ~10 MiB.
const LARGE: u64 = 4 << 20;
const REQUESTS: u64 = 96;

/// `run --quiet --target target … --connections 16 --requests REQUESTS` with `args`: its exit status, its JSON
/// report and its peak RSS in KiB. Asserts that every byte of the 96 replies of `LARGE` bytes was counted and
/// that the peak stayed under 40 MiB.
fn run_large_replies(target: &str, args: &[&str]) -> (std::process::ExitStatus, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let child = common::loadgen()
        .args(["run", "--quiet", "--target", target])
        .args(args)
        .args(["--connections", "16", "--requests", &REQUESTS.to_string()])
        .args(["--json", json.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (status, peak) =
        sockpool_testkit::process::wait_with_peak_rss_kib(child, Duration::from_secs(120));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let summary = &doc["summary"];
    let received = summary["bytes_received"].as_u64().unwrap()
        + summary["drain_bytes_received"].as_u64().unwrap();
    assert_eq!(received, REQUESTS * LARGE, "every byte counted: {summary}");
    eprintln!("peak RSS reading 16 replies of 4 MiB at once ({args:?}): {peak} KiB");
    assert!(peak < 40 << 10, "peak RSS {peak} KiB");
    (status, doc)
}

/// A run downloading large HTTP bodies holds what it reads, not the bodies: without `--expect` a body is
/// counted as it arrives and dropped (wrk's way; 50 connections fetching a 20 MB file from nginx held ~950 MB),
/// and every byte of it is still in the count.
#[test]
fn downloading_large_bodies_holds_no_body_and_counts_every_byte() {
    let (_server, target) = sockpool_testkit::server::start_target(sockpool_server::ServerConfig {
        workers: 1,
        http_body_size: LARGE as usize,
        ..sockpool_testkit::server::config(sockpool_server::Model::Async, &["http=127.0.0.1:0"])
    });
    let (status, doc) = run_large_replies(&target, &["--protocol", "http"]);
    assert!(status.success(), "the run failed: {status}");
    assert_eq!(doc["summary"]["ok"], REQUESTS, "{}", doc["summary"]);
}

/// The same for RESP arrays: `LRANGE`s of a long list hold the first elements of each reply, not the reply,
/// and every element's bytes are counted (65,536 members of 64 bytes, 4 MiB a reply; without the keep each
/// connection held its reply's elements: a server answering with arrays of a million elements cost ~17 MB a
/// connection).
#[test]
fn listing_long_arrays_holds_no_array_and_counts_every_byte() {
    use std::io::{Read, Write};
    let (_server, target) = sockpool_testkit::server::start_target(sockpool_server::ServerConfig {
        workers: 1,
        ..sockpool_testkit::server::config(sockpool_server::Model::Async, &["resp=127.0.0.1:0"])
    });
    const MEMBER: u64 = 64;
    let members = LARGE / MEMBER;
    let mut push = std::net::TcpStream::connect(&target).unwrap();
    let value = format!("${MEMBER}\r\n{}\r\n", "m".repeat(MEMBER as usize));
    let mut batch = Vec::new();
    for _ in 0..members / 1024 {
        batch.extend_from_slice(b"*1026\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n");
        batch.extend_from_slice(value.repeat(1024).as_bytes());
    }
    batch.extend_from_slice(b"LLEN l\r\n");
    push.write_all(&batch).unwrap();
    let want = format!(":{members}\r\n");
    let mut got = Vec::new();
    while !got.ends_with(want.as_bytes()) {
        let mut buf = [0u8; 4096];
        let n = push.read(&mut buf).unwrap();
        assert!(n > 0, "closed while filling the list");
        got.extend_from_slice(&buf[..n]);
    }
    let (status, doc) = run_large_replies(
        &target,
        &["--protocol", "resp", "--command", "LRANGE l 0 -1"],
    );
    assert!(status.success(), "the run failed: {status}");
    assert_eq!(doc["summary"]["ok"], REQUESTS, "{}", doc["summary"]);
}

/// The same for RESP: `GET`s of a large value hold what they read, not the value (the first bytes are kept for
/// error examples), and every byte of it is counted. 20 connections `GET`ting a 200 MB value held 2.7 GB.
#[test]
fn getting_large_values_holds_no_value_and_counts_every_byte() {
    use std::io::{Read, Write};
    let (_server, target) = sockpool_testkit::server::start_target(sockpool_server::ServerConfig {
        workers: 1,
        ..sockpool_testkit::server::config(sockpool_server::Model::Async, &["resp=127.0.0.1:0"])
    });
    let mut set = std::net::TcpStream::connect(&target).unwrap();
    let header = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${LARGE}\r\n");
    set.write_all(header.as_bytes()).unwrap();
    set.write_all(&vec![b'v'; LARGE as usize]).unwrap();
    set.write_all(b"\r\n").unwrap();
    let mut ok = [0; 5];
    set.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    let (status, doc) = run_large_replies(&target, &["--protocol", "resp", "--command", "GET big"]);
    assert!(status.success(), "the run failed: {status}");
    assert_eq!(doc["summary"]["ok"], REQUESTS, "{}", doc["summary"]);
}

/// A line server whose every reply is a 4 MiB line: the load generator keeps a line's first 128 KiB (more than
/// any request line the default check compares it with, and any exact `--expect` text here) and counts the rest,
/// so memory does not follow what the server sends (one endless line held up to `--max-reply`, 1 GiB, on every
/// connection: 2.7 GB after 4 s over 20 connections). Each reply is not the request: a bad reply of 4 MiB.
#[test]
fn long_reply_lines_are_counted_not_held() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut line = vec![b'x'; LARGE as usize];
        line.push(b'\n');
        let line = std::sync::Arc::new(line);
        for conn in listener.incoming() {
            let (Ok(conn), line) = (conn, line.clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                let mut out = conn.try_clone().unwrap();
                for request in BufReader::new(conn).split(b'\n') {
                    if request.is_err() || out.write_all(&line).is_err() {
                        return;
                    }
                }
            });
        }
    });
    // Checked against the request (the default) or an exact `--expect` text (a longer line is not it): the same.
    for check in [&[][..], &["--expect", "STORED"][..]] {
        let args = [&["--protocol", "line"][..], check].concat();
        let (status, doc) = run_large_replies(&target, &args);
        assert!(!status.success(), "every reply was wrong: {status}");
        assert_eq!(doc["errors"]["bad_reply"], REQUESTS, "{}", doc["errors"]);
    }
}

/// The same for the framed protocol: `--op source` replies of 4 MiB are counted, their payloads not held.
#[test]
fn large_framed_replies_are_counted_not_held() {
    let (_server, target) = sockpool_testkit::server::one_worker_target("framed=127.0.0.1:0");
    let size = LARGE.to_string();
    let (status, doc) = run_large_replies(
        &target,
        &["--protocol", "framed", "--op", "source", "--payload", &size],
    );
    assert!(status.success(), "the run failed: {status}");
    assert_eq!(doc["summary"]["ok"], REQUESTS, "{}", doc["summary"]);
}
