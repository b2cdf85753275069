//! Graceful shutdown of the real `sockpool-server` binary (issue 2, "what it must show" 4): 50 clients have
//! requests in flight when SIGTERM arrives; every request the server accepted gets its reply, then the process
//! prints its `stats` line and exits 0 within the shutdown deadline.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use nix::sys::signal::{kill, Signal};
use sockpool::codec::framed::{ClientCodec, Request, Status};
use sockpool::codec::TokioUtilCodec;
use sockpool_testkit::process::ServerProcess;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Clients with a request in flight at SIGTERM.
const CLIENTS: u64 = 50;
/// How long each in-flight request sleeps on the server: well past the moment SIGTERM is sent.
const SLEEP: Duration = Duration::from_millis(1500);
/// The `--shutdown-deadline` given to the server; the process must be gone within it.
const DEADLINE: Duration = Duration::from_secs(5);

/// Starts the binary with a framed listener and `args`.
/// Every concurrency model.
const MODELS: [&str; 6] = [
    "async",
    "per-core",
    "threads",
    "event-loop",
    "processes",
    "uring",
];

/// A runtime for a test's own clients.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn start(args: &[&str]) -> ServerProcess {
    let mut all = vec!["--listen", "framed=127.0.0.1:0"];
    all.extend_from_slice(args);
    ServerProcess::start(env!("CARGO_BIN_EXE_sockpool-server"), &all)
}

#[test]
fn sigterm_answers_every_accepted_request_then_exits_0_within_the_deadline() {
    let deadline_arg = format!("{}s", DEADLINE.as_secs());
    let mut server = start(&["--workers", "2", "--shutdown-deadline", &deadline_arg]);
    let (addr, pid) = (server.addr("framed"), server.pid());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::channel::<()>(CLIENTS as usize);

    let results = rt.block_on(async move {
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let sent_tx = sent_tx.clone();
            tasks.push(tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await.expect("connect");
                let mut conn = Framed::new(stream, TokioUtilCodec::new(ClientCodec::default()));
                let id = 1_000 + c;
                let payload = Bytes::from(format!("client {c} in flight at SIGTERM"));
                conn.send(Request::sleep(
                    id,
                    SLEEP.as_micros() as u32,
                    payload.clone(),
                ))
                .await
                .expect("send SLEEP");
                let _ = sent_tx.send(()).await;
                let reply =
                    tokio::time::timeout(DEADLINE + Duration::from_secs(5), conn.next()).await;
                (
                    id,
                    payload,
                    reply.map(|r| r.map(|r| r.map_err(|e| e.to_string()))),
                )
            }));
        }
        drop(sent_tx);
        // Every request is written; give the server a moment to read them all (a small fraction of SLEEP), then
        // signal while all 50 are sleeping on the server.
        for _ in 0..CLIENTS {
            sent_rx.recv().await.expect("every client sent its request");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        kill(pid, Signal::SIGTERM).expect("send SIGTERM");
        // Real clock, on purpose: the deadline is the server's promise to its operator, counted from the signal.
        let signalled = Instant::now(); // real clock: the shutdown deadline is wall time (see above)
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("client task"));
        }
        (signalled, results)
    });
    let (signalled, results) = results;

    for (id, payload, reply) in &results {
        let reply = match reply {
            Ok(Some(Ok(r))) => r,
            other => panic!("request {id} was accepted before SIGTERM but got no reply: {other:?}"),
        };
        assert_eq!(reply.status, Status::Ok, "request {id}: {reply:?}");
        assert_eq!(reply.id, *id, "reply carries another request's id");
        assert_eq!(&reply.payload, payload, "request {id}: payload changed");
    }

    // The process exits 0 within the deadline, counted from the signal.
    let status = server
        .exit_within(DEADLINE.saturating_sub(signalled.elapsed()))
        .unwrap_or_else(|| panic!("sockpool-server still running {DEADLINE:?} after SIGTERM"));
    assert!(
        status.success(),
        "sockpool-server exited with {status} after SIGTERM"
    );

    // It printed its counters on the way out, and they count the 50 answered requests.
    let stats_line = std::iter::from_fn(|| server.lines.recv_timeout(Duration::from_secs(2)).ok())
        .find(|l| l.starts_with("stats "))
        .expect("a `stats <json>` line on stdout at exit");
    let stats: serde_json::Value =
        serde_json::from_str(&stats_line["stats ".len()..]).expect("stats is JSON");
    let requests = stats["requests"]
        .as_u64()
        .expect("stats.requests is an integer");
    assert!(
        requests >= CLIENTS,
        "stats.requests = {requests}, expected at least {CLIENTS}: {stats_line}"
    );
    assert_eq!(
        stats["connections_total"].as_u64(),
        Some(CLIENTS),
        "{stats_line}"
    );
}

/// Sends a framed SLEEP of `micros` (request `id`) on a new connection to `addr`, gives the server 200 ms to read
/// it, then sends SIGTERM to `pid`: the connection, and when the signal went (real clock, on purpose: the
/// shutdown deadline is wall time, counted from the signal).
async fn sleep_then_sigterm(
    addr: std::net::SocketAddr,
    pid: nix::unistd::Pid,
    id: u64,
    micros: u32,
) -> (Framed<TcpStream, TokioUtilCodec<ClientCodec>>, Instant) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut conn = Framed::new(stream, TokioUtilCodec::new(ClientCodec::default()));
    conn.send(Request::sleep(id, micros, Bytes::from_static(b"in flight")))
        .await
        .expect("send SLEEP");
    tokio::time::sleep(Duration::from_millis(200)).await;
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    (conn, Instant::now())
}

#[test]
fn after_sigterm_the_server_takes_no_new_connections() {
    let mut server = start(&["--shutdown-deadline", "5s"]);
    let (addr, pid) = (server.addr("framed"), server.pid());
    // One request in flight keeps the server in its shutdown phase long enough to try a new connection.
    let rt = runtime();
    rt.block_on(async {
        let (mut conn, _) = sleep_then_sigterm(addr, pid, 7, 1_000_000).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A new connection is refused, or accepted by the kernel backlog and then closed without service: a
        // request on it never gets an OK.
        if let Ok(stream) = TcpStream::connect(addr).await {
            let mut late = Framed::new(stream, TokioUtilCodec::new(ClientCodec::default()));
            let _ = late
                .send(Request::echo(8, Bytes::from_static(b"late")))
                .await;
            match tokio::time::timeout(Duration::from_secs(5), late.next()).await {
                Ok(Some(Ok(r))) => assert_ne!(
                    r.status,
                    Status::Ok,
                    "a connection made after SIGTERM was served"
                ),
                Ok(_) => {}
                Err(_) => {
                    panic!("a connection made after SIGTERM was neither served, refused nor closed")
                }
            }
        }
        let reply = conn.next().await.expect("a reply").expect("a valid reply");
        assert_eq!(
            (reply.status, reply.id),
            (Status::Ok, 7),
            "the in-flight request is still answered"
        );
    });
    let status = server
        .exit_within(Duration::from_secs(10))
        .expect("the server exits after its last reply");
    assert!(status.success(), "exit status {status}");
}

/// A request that outlasts `--shutdown-deadline` does not hold the process past it, under any model: the
/// connection is closed at the deadline and the process exits 0. (The `uring` and `event-loop` loops once slept
/// until their next sweep instead, and `uring` exited 1.2 s past a 3 s deadline.)
#[test]
fn a_request_past_the_shutdown_deadline_is_cut_off_at_it_under_every_model() {
    /// What the exit may take beyond the deadline: process exit and a loaded test machine, well under the
    /// second the loops could once oversleep by.
    const SLACK: Duration = Duration::from_millis(600);
    let rt = runtime();
    for model in MODELS {
        let mut server = start(&[
            "--model",
            model,
            "--workers",
            "1",
            "--shutdown-deadline",
            "1s",
        ]);
        let (addr, pid) = (server.addr("framed"), server.pid());
        let (_conn, signalled) = rt.block_on(sleep_then_sigterm(addr, pid, 9, 10_000_000));
        let status = server
            .exit_within((Duration::from_secs(1) + SLACK).saturating_sub(signalled.elapsed()))
            .unwrap_or_else(|| {
                panic!("--model {model}: still running 1 s + {SLACK:?} after SIGTERM with a 1 s deadline")
            });
        assert!(status.success(), "--model {model}: exit status {status}");
    }
}

/// docs/OPERATIONS.md: the connections still open at the shutdown deadline are closed before the `stats` line
/// is printed, so it says none is open. `threads` returned as soon as it had shut their sockets (its threads
/// were still tearing down: `connections_open: 1` every time), `async` dropped its tasks in the background
/// (4 runs in 6), and a `threads` SLEEP slept on through the cut. Two connections are cut here: a partial HTTP
/// request (the read timeout is far off) and a framed SLEEP of 10 s.
#[test]
fn the_stats_line_after_a_shutdown_deadline_cut_counts_no_connection_open_under_every_model() {
    let rt = runtime();
    for model in MODELS {
        let mut server = ServerProcess::start(
            env!("CARGO_BIN_EXE_sockpool-server"),
            &[
                "--listen",
                "framed=127.0.0.1:0",
                "--listen",
                "http=127.0.0.1:0",
                "--model",
                model,
                "--workers",
                "2",
                "--read-timeout",
                "30s",
                "--shutdown-deadline",
                "1s",
            ],
        );
        let (http, pid) = (server.addr("http"), server.pid());
        let mut partial = std::net::TcpStream::connect(http).expect("connect");
        std::io::Write::write_all(&mut partial, b"GET / HTTP/1.1\r\nHost: x\r\nX: 1\r\n")
            .expect("send");
        let (_conn, _) = rt.block_on(sleep_then_sigterm(
            server.addr("framed"),
            pid,
            1,
            10_000_000,
        ));
        let status = server
            .exit_within(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("--model {model}: still running 10 s after SIGTERM"));
        assert!(status.success(), "--model {model}: exit status {status}");
        let stats_line =
            std::iter::from_fn(|| server.lines.recv_timeout(Duration::from_secs(2)).ok())
                .find(|l| l.starts_with("stats "))
                .unwrap_or_else(|| panic!("--model {model}: no `stats <json>` line at exit"));
        let stats: serde_json::Value =
            serde_json::from_str(&stats_line["stats ".len()..]).expect("stats is JSON");
        assert_eq!(
            stats["connections_open"].as_u64(),
            Some(0),
            "--model {model}: {stats_line}"
        );
        assert_eq!(
            stats["connections_total"].as_u64(),
            Some(2),
            "--model {model}: {stats_line}"
        );
    }
}

/// What one churning client's connection came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Its ECHO came back.
    Answered,
    /// It was closed (end of file, a reset, a refused write) without a reply.
    Closed,
    /// It was neither answered nor closed within the bound: left behind by the shutdown.
    Stranded,
}

/// One connection of the churn: an ECHO on a new Unix connection, then its reply or its close, each bounded.
/// `None` when the connection itself is refused (the listener is gone).
fn churn_once(path: &std::path::Path, id: u64) -> Option<Outcome> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(8))).unwrap();
    let want = sockpool_testkit::wire::framed_response(0, id, b"churn");
    if s.write_all(&sockpool_testkit::wire::framed_request(1, id, 0, b"churn"))
        .is_err()
    {
        return Some(Outcome::Closed);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(Outcome::Closed),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() >= want.len() {
                    assert_eq!(got, want, "connection {id}: not its reply");
                    return Some(Outcome::Answered);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Some(Outcome::Stranded)
            }
            Err(_) => return Some(Outcome::Closed),
        }
    }
}

/// SIGTERM while clients keep connecting to a Unix listener, under every model that serves one: the process
/// exits 0 within the deadline, every connection the server took is answered or closed (none left waiting),
/// and the socket file is gone.
#[test]
fn sigterm_under_connection_churn_on_a_unix_listener_exits_cleanly_under_every_model() {
    const CHURNERS: u64 = 8;
    const DEADLINE: Duration = Duration::from_secs(3);
    for model in ["async", "per-core", "threads", "event-loop", "uring"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("churn.sock");
        let listen = format!("framed=unix:{}", path.display());
        let mut server = ServerProcess::start(
            env!("CARGO_BIN_EXE_sockpool-server"),
            &[
                "--model",
                model,
                "--workers",
                "1",
                "--listen",
                &listen,
                "--shutdown-deadline",
                "3s",
            ],
        );
        let pid = server.pid();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churners: Vec<_> = (0..CHURNERS)
            .map(|c| {
                let (path, stop) = (path.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut outcomes = Vec::new();
                    let mut id = c << 32;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        id += 1;
                        match churn_once(&path, id) {
                            Some(o) => outcomes.push(o),
                            None => std::thread::sleep(Duration::from_millis(1)),
                        }
                    }
                    outcomes
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        kill(pid, Signal::SIGTERM).expect("send SIGTERM");
        let signalled = Instant::now(); // real clock: the shutdown deadline is wall time
        let status = server.exit_within(DEADLINE + Duration::from_secs(1));
        let exit_took = signalled.elapsed();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let outcomes: Vec<Outcome> = churners
            .into_iter()
            .flat_map(|t| t.join().expect("churner"))
            .collect();
        let status = status.unwrap_or_else(|| {
            panic!("--model {model}: still running {exit_took:?} after SIGTERM (deadline {DEADLINE:?})")
        });
        assert!(status.success(), "--model {model}: exit status {status}");
        let count = |o| outcomes.iter().filter(|&&x| x == o).count();
        assert!(
            count(Outcome::Answered) > 0,
            "--model {model}: no churn served"
        );
        assert_eq!(
            count(Outcome::Stranded),
            0,
            "--model {model}: connections neither answered nor closed ({} answered, {} closed)",
            count(Outcome::Answered),
            count(Outcome::Closed)
        );
        assert!(
            !path.exists(),
            "--model {model}: the socket file {} is left behind",
            path.display()
        );
    }
}

/// SIGHUP (a closed terminal, a `kill -HUP` meant for nginx) neither kills nor stops the server, as
/// redis-server ignores it: it is said on stderr, the server goes on serving, and SIGTERM then stops it cleanly.
#[test]
fn sighup_is_ignored_and_the_server_goes_on_serving() {
    let mut server = start(&["--shutdown-deadline", "5s"]);
    let (addr, pid) = (server.addr("framed"), server.pid());
    kill(pid, Signal::SIGHUP).expect("SIGHUP");
    let rt = runtime();
    rt.block_on(async {
        // Served after the signal (its handler ran by then or never will: the reply proves the process lives).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stream = TcpStream::connect(addr).await.expect("still accepting");
        let mut conn = Framed::new(stream, TokioUtilCodec::new(ClientCodec::default()));
        conn.send(Request::echo(1, Bytes::from_static(b"after hup")))
            .await
            .unwrap();
        let reply = conn.next().await.expect("a reply").expect("a valid reply");
        assert_eq!((reply.status, reply.id), (Status::Ok, 1));
    });
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    let status = server
        .exit_within(Duration::from_secs(10))
        .expect("SIGTERM still stops it");
    assert!(status.success(), "exit status {status}");
}

/// A supervisor that read `ready` and then closed its end of stdout (a Python `Popen` that closes
/// `proc.stdout`, a `| head` that exited): SIGTERM still ends in exit status 0, as the stop is clean; the
/// `stats` line that found no reader (`EPIPE`) is not a failure of the server.
#[test]
fn a_closed_stdout_does_not_turn_a_clean_stop_into_a_failure() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let mut child = Command::new(env!("CARGO_BIN_EXE_sockpool-server"))
        .args(["--listen", "framed=127.0.0.1:0", "--workers", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sockpool-server");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    while line.trim_end() != "ready" {
        line.clear();
        assert!(
            stdout.read_line(&mut line).expect("read stdout") > 0,
            "stdout closed before ready"
        );
    }
    drop(stdout);
    kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the server did not exit within {DEADLINE:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "exit status; stderr: {stderr}");
    assert!(
        stderr.contains("stats line"),
        "the lost line is said on stderr: {stderr}"
    );
}
