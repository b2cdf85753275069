//! Issue 15 items 3 and 5 with the real binary: Ctrl-C (SIGINT) or SIGTERM stops a run gracefully and every
//! output is written, complete and true to its format: the `.hlog` read back by the `hdrhistogram` crate's
//! log reader (header once, interval counts summing to the JSON's count, the merged histogram giving the JSON's
//! percentiles) and the `.hgrm` giving the JSON's percentile rows. A second Ctrl-C exits at once.

mod common;
mod fake_servers;

use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{args, loadgen, Hlog};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).expect("signal the load generator");
}

/// Waits up to `limit` for `child` to exit; kills it and fails the test otherwise.
fn wait(child: &mut Child, limit: Duration) -> (ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the load generator did not exit within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Checks the `.hlog` against the JSON: readable by the crate's reader, header once, counts and percentiles
/// equal.
fn check_hlog(path: &Path, v: &Value) {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        text.matches("#[MaxValueDivisor").count(),
        1,
        "header once:\n{text}"
    );
    assert_eq!(text.matches("#[StartTime").count(), 1);
    let hlog = Hlog::read(text.as_bytes());
    let (intervals, sum) = (hlog.intervals.len(), hlog.count());
    let corrected = &v["latency"]["corrected"];
    assert!(intervals >= 2, "{intervals} intervals");
    assert_eq!(
        sum,
        corrected["count"].as_u64().unwrap(),
        "interval counts sum to the JSON's"
    );
    assert_eq!(sum, v["summary"]["requests"].as_u64().unwrap());
    let m = hlog.merged();
    for (q, key) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99_9")] {
        assert_eq!(
            m.value_at_quantile(q) as f64 / 1e3,
            corrected[key].as_f64().unwrap(),
            "{key} from the .hlog"
        );
    }
    assert_eq!(m.max() as f64 / 1e3, corrected["max"].as_f64().unwrap());
}

/// Checks the `.hgrm` against the JSON's percentile rows and count.
fn check_hgrm(path: &Path, v: &Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let rows: Vec<(f64, f64, u64)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.contains("Value"))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (
                c[0].parse().unwrap(),
                c[1].parse().unwrap(),
                c[2].parse().unwrap(),
            )
        })
        .collect();
    let json_rows = v["latency"]["corrected"]["percentiles"].as_array().unwrap();
    assert_eq!(rows.len(), json_rows.len());
    for ((ms, q, count), j) in rows.iter().zip(json_rows) {
        let us = j["value_us"].as_f64().unwrap();
        assert!((ms - us / 1e3).abs() < 0.0006, "{ms} ms vs {us} µs");
        assert!((q * 100.0 - j["percentile"].as_f64().unwrap()).abs() < 1e-6);
        assert_eq!(*count, j["count"].as_u64().unwrap());
    }
    let count = v["latency"]["corrected"]["count"].as_u64().unwrap();
    assert!(
        text.contains(&format!("Total count    = {count:>12}]")),
        "{text}"
    );
    assert!(text.contains("SubBuckets     =         2048]"), "{text}");
}

#[test]
fn a_signal_after_2s_of_a_30s_run_keeps_every_report() {
    let addr = fake_servers::echo().to_string();
    for (what, sig, extra) in [
        (
            "closed loop, SIGINT",
            Signal::SIGINT,
            &["--connections", "4"][..],
        ),
        (
            "open loop, SIGTERM",
            Signal::SIGTERM,
            &["--rate", "2000", "--connections", "8"][..],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (json, hlog, hgrm) = (
            dir.path().join("r.json"),
            dir.path().join("r.hlog"),
            dir.path().join("r.hgrm"),
        );
        let mut child = loadgen()
            .args(args(
                "run --target {} --protocol echo --duration 30s --timeout 1s --quiet",
                &[&addr],
            ))
            .args(extra)
            .arg("--json")
            .arg(&json)
            .arg("--hlog")
            .arg(&hlog)
            .arg("--hgrm")
            .arg(&hgrm)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        signal(&child, sig);
        // In flight get up to --timeout (1 s); the rest is writing the files. Wide: the machine is shared.
        let (status, took) = wait(&mut child, Duration::from_secs(10));
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        eprintln!("{what}: exited {status} {took:?} after the signal");
        assert!(
            took < Duration::from_secs(2),
            "{what}: {took:?} > --timeout + 1s"
        );
        assert_eq!(status.code(), Some(0), "{what}: {stderr}");
        assert!(stderr.contains("interrupted"), "{what}: {stderr}");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(v["interrupted"], true, "{what}");
        let secs = v["summary"]["duration_s"].as_f64().unwrap();
        assert!(
            (1.0..4.0).contains(&secs),
            "{what}: measured {secs} s of a 30 s run"
        );
        assert_eq!(v["summary"]["errors"], 0, "{what}: {}", v["errors"]);
        check_hlog(&hlog, &v);
        check_hgrm(&hgrm, &v);
    }
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    // Nothing ever answers, and requests may wait 30 s: only the second Ctrl-C ends the run quickly.
    let addr = fake_servers::silent().to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut child = loadgen()
        .args(args(
            "run --target {} --protocol line --duration 60s --timeout 30s --connections 2 --quiet --json",
            &[&addr],
        ))
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first Ctrl-C waits for the requests in flight"
    );
    signal(&child, Signal::SIGINT);
    let (status, took) = wait(&mut child, Duration::from_secs(10));
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(status.code(), Some(130));
    assert!(!json.exists(), "no report after a second Ctrl-C");
}
