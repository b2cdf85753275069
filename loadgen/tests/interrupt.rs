//! Issue 15 items 3 and 5 with the real binary: Ctrl-C (SIGINT) or SIGTERM stops a run gracefully and every
//! output is written, complete and true to its format: the `.hlog` read back by the `hdrhistogram` crate's
//! log reader (header once, interval counts summing to the JSON's count, the merged histogram giving the JSON's
//! percentiles) and the `.hgrm` giving the JSON's percentile rows. A second Ctrl-C exits at once.

mod common;
mod fake_servers;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
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

/// The JSON, `.hlog` and `.hgrm` report paths in `dir`.
fn report_paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (dir.join("r.json"), dir.join("r.hlog"), dir.join("r.hgrm"))
}

/// The flags that write those three reports.
fn report_flags<'a>(json: &'a Path, hlog: &'a Path, hgrm: &'a Path) -> [&'a OsStr; 6] {
    [
        "--json".as_ref(),
        json.as_os_str(),
        "--hlog".as_ref(),
        hlog.as_os_str(),
        "--hgrm".as_ref(),
        hgrm.as_os_str(),
    ]
}

/// 1.5 s into a run against a silent server: a first Ctrl-C, which waits for the requests in flight (the run
/// goes on), then a second, which exits at once with 130.
fn interrupt_twice(child: &mut Child) {
    std::thread::sleep(Duration::from_millis(1500));
    signal(child, Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first Ctrl-C waits for the requests in flight"
    );
    signal(child, Signal::SIGINT);
    let (status, took) = wait(child, Duration::from_secs(10));
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(status.code(), Some(130));
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
        let (json, hlog, hgrm) = report_paths(dir.path());
        let mut child = loadgen()
            .args(args(
                "run --target {} --protocol echo --duration 30s --timeout 1s --quiet",
                &[&addr],
            ))
            .args(extra)
            .args(report_flags(&json, &hlog, &hgrm))
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
fn one_ctrl_c_delivered_twice_at_once_is_one_ctrl_c() {
    // `timeout 60 sockpool-loadgen …` killed with SIGINT sends it to the child, then to its process group: the
    // child gets two SIGINTs apart by less than a person's two presses. That is one Ctrl-C: the run stops
    // gracefully and keeps its report; it does not exit "interrupted twice" without one. Nothing answers, so
    // the graceful stop waits --timeout (1 s) for the requests in flight, and the second signal comes in it.
    let addr = fake_servers::silent().to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut child = loadgen()
        .args(args(
            "run --target {} --protocol line --duration 60s --timeout 1s --connections 2 --quiet --json",
            &[&addr],
        ))
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, Signal::SIGINT);
    // Back to back, the kernel merges the two while the first is pending; `timeout`'s second comes after the
    // handler ran. 20 ms apart (a real-clock gap, far under the 250 ms that make a second Ctrl-C).
    std::thread::sleep(Duration::from_millis(20));
    signal(&child, Signal::SIGINT);
    let (status, _) = wait(&mut child, Duration::from_secs(10));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("interrupted twice"), "{stderr}");
    assert_ne!(status.code(), Some(130), "{stderr}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
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
    interrupt_twice(&mut child);
    assert!(!json.exists(), "no report after a second Ctrl-C");
}

/// A second Ctrl-C during the shutdown exits at once: it left the `.hlog` it was writing behind, empty (the
/// header still in a buffer) yet named like a report. Now every output is written to a temporary file renamed
/// into place when complete: none is there, no temporary file is left, and what an earlier run left at the
/// output paths is removed too (it would pass for this run's report).
#[test]
fn a_second_ctrl_c_leaves_no_partial_or_stale_output_file() {
    let addr = fake_servers::silent().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (json, hlog, hgrm) = report_paths(dir.path());
    for p in [&json, &hlog, &hgrm] {
        std::fs::write(p, "an earlier run's report").unwrap();
    }
    let mut child = loadgen()
        .args(args(
            "run --target {} --protocol line --duration 60s --timeout 30s --connections 2 --quiet",
            &[&addr],
        ))
        .args(report_flags(&json, &hlog, &hgrm))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Past the first interval: the log has its header and a line (in the process's buffer, or on disk).
    interrupt_twice(&mut child);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.is_empty(),
        "files left after a second Ctrl-C: {left:?}"
    );
}

fn os_args(line: &str) -> Vec<std::ffi::OsString> {
    args(line, &[]).into_iter().map(Into::into).collect()
}

/// Starts `loadgen ARGS` with stderr read line by line on a thread; waits (up to 60 s) for a line containing
/// `marker`, and returns the child and every stderr line read so far and later.
fn start_until(
    args: &[std::ffi::OsString],
    marker: &str,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = loadgen()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60).saturating_sub(start.elapsed()))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no stderr line with {marker:?} within 60 s: {seen:#?}")
            });
        seen.push(line.clone());
        if line.contains(marker) {
            return (child, rx);
        }
    }
}

fn stdout_of(child: &mut Child) -> String {
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    out
}

#[test]
fn ctrl_c_during_a_tune_reports_the_cells_finished_and_writes_no_recommendation() {
    let dir = tempfile::tempdir().unwrap();
    let (json, html, rec) = (
        dir.path().join("t.json"),
        dir.path().join("t.html"),
        dir.path().join("rec.json"),
    );
    // An earlier tune's recommendation is there: a partial tune writes none, and must not leave that one to be
    // read as its own (issue 32 item 2).
    std::fs::write(&rec, "{\"an earlier\": \"recommendation\"}").unwrap();
    let mut a = os_args("tune --vary connections=1,2,3 --duration 1500ms --warmup 100ms");
    for (flag, path) in [("--json", &json), ("--html", &html), ("--recommend", &rec)] {
        a.push(flag.into());
        a.push(path.into());
    }
    // The first cell's progress line: the second cell has just started when the signal comes.
    let (mut child, _stderr) = start_until(&a, "[1/3]");
    signal(&child, Signal::SIGINT);
    let (status, took) = wait(&mut child, Duration::from_secs(15));
    let stdout = stdout_of(&mut child);
    eprintln!("tune exited {status} {took:?} after the signal");
    // The embedded server answers what is in flight at once; the rest is writing the files.
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(
        stdout.contains("INTERRUPTED during the matrix after 1 of 3 runs"),
        "{stdout}"
    );
    assert!(
        stdout.contains("connections=1"),
        "the finished cell is in the table: {stdout}"
    );
    assert!(!stdout.contains("Recommendation"), "{stdout}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["interrupted"]["runs_finished"], 1);
    assert_eq!(v["interrupted"]["runs_planned"], 3);
    assert_eq!(v["cells"].as_array().unwrap().len(), 1);
    assert!(v["cells"][0]["rate"]["median"].as_f64().unwrap() > 0.0);
    assert!(v["recommendation"].is_null());
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("INTERRUPTED"));
    assert!(
        !rec.exists(),
        "no recommendation file from a partial tune, not even an earlier one"
    );
}

#[test]
fn ctrl_c_after_some_runs_of_the_first_cell_says_no_cell_finished_not_no_run() {
    let a = os_args("tune --vary connections=1,2 --repeat 3 --duration 1s --warmup 100ms");
    // The first run of the first cell has finished; its two other runs have not.
    let (mut child, stderr) = start_until(&a, "[1/6]");
    signal(&child, Signal::SIGINT);
    let (status, _) = wait(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(130));
    // The reader thread ends at the end of stderr, which the exit closed.
    let said: Vec<String> = stderr.iter().collect();
    assert!(
        said.iter().any(|l| l.starts_with(
            "sockpool-loadgen: no cell finished all its runs before the interrupt (a cell is reported with every \
             --repeat run or not at all)"
        )),
        "{said:#?}"
    );
    assert!(
        !said.iter().any(|l| l.contains("no run finished")),
        "{said:#?}"
    );
}

#[test]
fn ctrl_c_during_a_stream_keeps_the_sizes_measured() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    let mut a = os_args("stream --buffer 1K,16K,64K --duration 1500ms --json");
    a.push(json.clone().into());
    let (mut child, _stderr) = start_until(&a, "buffer=1K");
    signal(&child, Signal::SIGINT);
    let (status, took) = wait(&mut child, Duration::from_secs(15));
    let stdout = stdout_of(&mut child);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(
        stdout.contains("INTERRUPTED after 1 of 3 sizes"),
        "{stdout}"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0]["buffer"], 1024);
    assert!(cells[0]["bytes"].as_u64().unwrap() > 0);
}

#[test]
fn ctrl_c_before_the_measured_window_opens_ends_at_once_and_judges_nothing() {
    let addr = fake_servers::echo().to_string();
    let at = std::time::SystemTime::now() + Duration::from_secs(60);
    let at_ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    for (what, extra) in [
        ("waiting for --start-at", vec!["--start-at", at_ms.as_str()]),
        ("in the warm-up", vec!["--warmup", "60s"]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("r.json");
        let mut child = loadgen()
            .args(args(
                "run --target {} --protocol echo --duration 5s --quiet",
                &[&addr],
            ))
            .args(&extra)
            .arg("--json")
            .arg(&json)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        signal(&child, Signal::SIGINT);
        let (status, took) = wait(&mut child, Duration::from_secs(15));
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(took < Duration::from_secs(3), "{what}: {took:?}");
        // Not "the target never answered" (3): nothing was measured, and the status says interrupted.
        assert_eq!(status.code(), Some(130), "{what}: {stderr}");
        assert!(
            stderr.contains("before the measured window opened"),
            "{what}: {stderr}"
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(v["verdict"]["unmeasured"], true, "{what}");
        assert_eq!(v["verdict"]["no_answer"], false, "{what}");
        assert_eq!(v["summary"]["requests"], 0, "{what}");
    }
}
