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

/// A run downloading large HTTP bodies holds what it reads, not the bodies: without `--expect` a body is
/// counted as it arrives and dropped (wrk's way; 50 connections fetching a 20 MB file from nginx held ~950 MB),
/// and every byte of it is still in the count.
#[test]
fn downloading_large_bodies_holds_no_body_and_counts_every_byte() {
    const BODY: u64 = 4 << 20;
    const REQUESTS: u64 = 96;
    let (_server, target) = sockpool_testkit::server::start_target(sockpool_server::ServerConfig {
        workers: 1,
        http_body_size: BODY as usize,
        ..sockpool_testkit::server::config(sockpool_server::Model::Async, &["http=127.0.0.1:0"])
    });
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let child = common::loadgen()
        .args(["run", "--quiet", "--protocol", "http", "--target", &target])
        .args(["--connections", "16", "--requests", &REQUESTS.to_string()])
        .args(["--json", json.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (status, peak) =
        sockpool_testkit::process::wait_with_peak_rss_kib(child, Duration::from_secs(120));
    assert!(status.success(), "the run failed: {status}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let summary = &doc["summary"];
    assert_eq!(summary["ok"], REQUESTS, "{summary}");
    let received = summary["bytes_received"].as_u64().unwrap()
        + summary["drain_bytes_received"].as_u64().unwrap();
    assert_eq!(
        received,
        REQUESTS * BODY,
        "every body byte counted: {summary}"
    );
    // 16 connections each holding a 4 MiB body would be 64 MiB on top of the process's own ~10 MiB.
    eprintln!("peak RSS downloading 16 x 4 MiB bodies at once: {peak} KiB");
    assert!(peak < 40 << 10, "peak RSS {peak} KiB");
}

/// The same for RESP: `GET`s of a large value hold what they read, not the value (the first bytes are kept for
/// error examples), and every byte of it is counted. 20 connections `GET`ting a 200 MB value held 2.7 GB.
#[test]
fn getting_large_values_holds_no_value_and_counts_every_byte() {
    use std::io::{Read, Write};
    const VALUE: u64 = 4 << 20;
    const REQUESTS: u64 = 96;
    let (_server, target) = sockpool_testkit::server::start_target(sockpool_server::ServerConfig {
        workers: 1,
        ..sockpool_testkit::server::config(sockpool_server::Model::Async, &["resp=127.0.0.1:0"])
    });
    let mut set = std::net::TcpStream::connect(&target).unwrap();
    set.write_all(format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${VALUE}\r\n").as_bytes())
        .unwrap();
    set.write_all(&vec![b'v'; VALUE as usize]).unwrap();
    set.write_all(b"\r\n").unwrap();
    let mut ok = [0; 5];
    set.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");

    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let child = common::loadgen()
        .args(["run", "--quiet", "--protocol", "resp", "--target", &target])
        .args(["--command", "GET big"])
        .args(["--connections", "16", "--requests", &REQUESTS.to_string()])
        .args(["--json", json.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (status, peak) =
        sockpool_testkit::process::wait_with_peak_rss_kib(child, Duration::from_secs(120));
    assert!(status.success(), "the run failed: {status}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let summary = &doc["summary"];
    assert_eq!(summary["ok"], REQUESTS, "{summary}");
    let received = summary["bytes_received"].as_u64().unwrap()
        + summary["drain_bytes_received"].as_u64().unwrap();
    assert_eq!(
        received,
        REQUESTS * VALUE,
        "every value byte counted: {summary}"
    );
    // 16 connections each holding a 4 MiB value would be 64 MiB on top of the process's own ~10 MiB.
    eprintln!("peak RSS getting 16 x 4 MiB values at once: {peak} KiB");
    assert!(peak < 40 << 10, "peak RSS {peak} KiB");
}

/// A line server whose every reply is a 4 MiB line: without `--expect` the load generator keeps a line's first
/// 128 KiB (more than any request line the default check compares it with) and counts the rest as it arrives,
/// so memory does not follow what the server sends (one endless line held up to `--max-reply`, 1 GiB, on every
/// connection: 2.7 GB after 4 s over 20 connections). Each reply is not the request: a bad reply of 4 MiB.
#[test]
fn long_reply_lines_are_counted_not_held() {
    use std::io::{BufRead, BufReader, Write};
    const LINE: u64 = 4 << 20;
    const REQUESTS: u64 = 96;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut line = vec![b'x'; LINE as usize];
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
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let child = common::loadgen()
        .args(["run", "--quiet", "--protocol", "line", "--target", &target])
        .args(["--connections", "16", "--requests", &REQUESTS.to_string()])
        .args(["--json", json.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (status, peak) =
        sockpool_testkit::process::wait_with_peak_rss_kib(child, Duration::from_secs(120));
    assert!(!status.success(), "every reply was wrong: {status}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let summary = &doc["summary"];
    assert_eq!(doc["errors"]["bad_reply"], REQUESTS, "{}", doc["errors"]);
    let received = summary["bytes_received"].as_u64().unwrap()
        + summary["drain_bytes_received"].as_u64().unwrap();
    assert_eq!(received, REQUESTS * LINE, "every byte counted: {summary}");
    // 16 connections each holding a 4 MiB line would be 64 MiB on top of the process's own ~10 MiB.
    eprintln!("peak RSS reading 16 x 4 MiB lines at once: {peak} KiB");
    assert!(peak < 40 << 10, "peak RSS {peak} KiB");
}
