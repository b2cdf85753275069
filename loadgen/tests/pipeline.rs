//! The closed loop's fast path (`loadgen/src/pipeline.rs`): every connection keeps `--pipeline` requests in
//! flight, never more, and a `--requests` budget is exact, also when requests time out.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{num, run_json_at};

/// What the test server saw on one connection.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Lines received.
    lines: u64,
    /// The most requests that were waiting for their replies at once.
    max_pending: usize,
    /// Batches of replies written, and how many of them were `depth` replies.
    batches: u64,
    full_batches: u64,
}

/// A `line` server that holds replies back until `depth` requests are waiting (or 100 ms pass without a new
/// one), then answers them in one write. A client that keeps `depth` requests in flight gets full batches;
/// one that waits for replies before sending gets 100 ms stalls. `silent`: never reply at all.
fn batching_server(depth: usize, silent: bool) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let all = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let all = all.clone();
            std::thread::spawn(move || serve(conn, depth, silent, &all));
        }
    });
    (addr, seen)
}

fn serve(conn: TcpStream, depth: usize, silent: bool, all: &Mutex<Vec<Seen>>) {
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut out = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    let mut seen = Seen::default();
    let mut pending: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut line = Vec::new();
        let idle = match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                seen.lines += 1;
                pending.push(line);
                seen.max_pending = seen.max_pending.max(pending.len());
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => true,
            Err(_) => break,
        };
        if silent || pending.is_empty() || (!idle && pending.len() < depth) {
            continue;
        }
        seen.batches += 1;
        seen.full_batches += u64::from(pending.len() == depth);
        let reply: Vec<u8> = pending.drain(..).flatten().collect();
        if out.write_all(&reply).is_err() {
            break;
        }
    }
    all.lock().unwrap().push(seen);
}

#[test]
fn every_connection_keeps_the_pipeline_full_and_the_budget_is_exact() {
    let (target, seen) = batching_server(4, false);
    let v = run_json_at(
        &target,
        "--protocol line --connections 3 --pipeline 4 --requests 1203 --timeout 5s",
        Duration::from_secs(60),
    );
    assert_eq!(num(&v, "summary.errors"), 0.0, "{}", v["errors"]);
    assert_eq!(num(&v, "summary.requests"), 1203.0);
    // The connections close when the run ends; give their server threads a moment to report. (The preflight
    // check opens one more connection that sends nothing.)
    let seen = (0..50)
        .find_map(|_| {
            let mut s = seen.lock().unwrap().clone();
            s.retain(|c| c.lines > 0);
            if s.len() == 3 {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
            None
        })
        .unwrap_or_else(|| panic!("3 connections expected: {:?}", seen.lock().unwrap()));
    eprintln!("{seen:?}");
    assert_eq!(
        seen.iter().map(|s| s.lines).sum::<u64>(),
        1203,
        "the server got exactly the budget"
    );
    for s in &seen {
        assert_eq!(
            s.max_pending, 4,
            "never more than --pipeline in flight: {s:?}"
        );
        // A batch is short only when the budget ran out (or the client stalled for 100 ms).
        assert!(
            s.full_batches * 10 >= s.batches * 9,
            "the pipeline stayed full: {s:?}"
        );
    }
}

#[test]
fn pipelined_requests_without_replies_time_out_and_are_counted_once() {
    let (target, _) = batching_server(4, true);
    // No reply at all makes the run itself a failure; the report is still written.
    let (_, v, _) = common::run_json_any(
        &[
            "--target",
            &target,
            "--protocol",
            "line",
            "--connections",
            "2",
            "--pipeline",
            "4",
            "--requests",
            "16",
            "--timeout",
            "200ms",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(num(&v, "summary.requests"), 16.0);
    assert_eq!(num(&v, "errors.timeout"), 16.0, "{}", v["errors"]);
    assert!(
        num(&v, "latency.corrected.min") >= 200_000.0,
        "recorded at the timeout: {}",
        v["latency"]["corrected"]
    );
    assert!(
        num(&v, "health.reconnects") >= 2.0,
        "each connection was reopened after its timeouts"
    );
}
