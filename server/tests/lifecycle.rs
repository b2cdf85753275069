//! Library lifecycle: `spawn().shutdown()` and `run(future)` under every model, with requests in flight at
//! the moment of shutdown: each one already sent gets its reply, then the connection closes and the final
//! counters come back.

mod support;

use std::time::Duration;

use sockpool_server::{Model, Proto, Server};
use sockpool_testkit::process::ServerProcess;
use support::{config, framed_request, framed_response, read_until_close, IO_LIMIT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_requests_in_flight_then_closes_under_every_model() {
    for model in Model::ALL {
        let server = Server::bind(config(model, &["framed=127.0.0.1:0"])).unwrap();
        let addr = server.tcp_addr(Proto::Framed).unwrap();
        let h = server.spawn();
        let mut clients = Vec::new();
        for c in 0..10u64 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // A 300 ms SLEEP and an ECHO behind it, both sent before the shutdown starts.
            let mut send = framed_request(4, c, 300_000, b"slow");
            send.extend(framed_request(1, 100 + c, 0, b"queued"));
            s.write_all(&send).await.unwrap();
            clients.push(s);
        }
        // Let every request reach the server, then stop it while the SLEEPs run.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopper = tokio::task::spawn_blocking(move || h.shutdown());
        for (c, mut s) in clients.into_iter().enumerate() {
            let c = c as u64;
            let (got, closed) = read_until_close(&mut s, IO_LIMIT).await;
            let mut want = framed_response(0, c, b"slow");
            want.extend(framed_response(0, 100 + c, b"queued"));
            assert_eq!(got, want, "{model}: client {c} got both replies");
            assert!(closed, "{model}: client {c} closed after its replies");
        }
        let stats = stopper.await.unwrap();
        assert_eq!(stats.requests, 20, "{model}");
        assert_eq!(stats.connections_open, 0, "{model}");
        // The listener is gone.
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "{model}: no longer accepting"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_until_its_shutdown_future_resolves() {
    let server = Server::bind(config(Model::Async, &["echo=127.0.0.1:0"])).unwrap();
    let addr = server.tcp_addr(Proto::Echo).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let mut s = TcpStream::connect(addr).await.unwrap();
    support::expect_reply(&mut s, b"ping", b"ping").await;
    drop(s);
    tx.send(()).unwrap();
    let stats = tokio::time::timeout(IO_LIMIT, running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((stats.requests, stats.connections_total), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_model_finds_the_server_executable_by_itself() {
    let mut c = config(Model::Processes, &["framed=127.0.0.1:0"]);
    // This test binary lives in target/<profile>/deps; sockpool-server is one directory up.
    c.worker_exe = None;
    let server = Server::bind(c).unwrap();
    let addr = server.tcp_addr(Proto::Framed).unwrap();
    let h = server.spawn();
    let mut s = TcpStream::connect(addr).await.unwrap();
    support::expect_reply(
        &mut s,
        &framed_request(1, 5, 0, b"w"),
        &framed_response(0, 5, b"w"),
    )
    .await;
    drop(s);
    let stats = tokio::task::spawn_blocking(move || h.shutdown())
        .await
        .unwrap();
    assert_eq!(stats.requests, 1);
}

/// This process's worker children (`--worker-config`) whose command line has `needle` (from
/// `/proc/self/task/*/children`).
fn children_with(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("--worker-config") && cmdline.contains(needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Issue 14: a `processes` worker that dies (here SIGKILL) is logged, counted and started again; with one
/// worker the port went dark for good before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_process_is_started_again_and_counted() {
    let mut c = config(Model::Processes, &["framed=127.0.0.1:0"]);
    c.workers = 1;
    let server = Server::bind(c).unwrap();
    let addr = server.tcp_addr(Proto::Framed).unwrap();
    let h = server.spawn();
    let served = || async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        support::expect_reply(
            &mut s,
            &framed_request(1, 5, 0, b"alive"),
            &framed_response(0, 5, b"alive"),
        )
        .await;
    };
    served().await;
    // Its worker's configuration names the port: other tests' workers run beside it.
    let mine = format!("127.0.0.1:{}", addr.port());
    let workers = children_with(&mine);
    assert_eq!(workers.len(), 1, "{workers:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(workers[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        sockpool_testkit::eventually(Duration::from_secs(20), || h
            .stats()
            .snapshot()
            .worker_restarts
            == 1)
        .await,
        "the dead worker was not started again"
    );
    // Counted when the exit is seen; served again once the new worker is ready.
    let mut listening = false;
    for _ in 0..400 {
        if TcpStream::connect(addr).await.is_ok() {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listening, "the new worker never listened");
    let now = children_with(&mine);
    assert!(
        now.len() == 1 && now[0] != workers[0],
        "{workers:?} -> {now:?}"
    );
    served().await;
    let stats = tokio::task::spawn_blocking(move || h.shutdown())
        .await
        .unwrap();
    assert_eq!(stats.worker_restarts, 1);
}

/// `--model uring` where io_uring is unavailable (forced here: the probe fails as on a kernel without it) starts
/// anyway, on `event-loop`, and says so on stderr: the cause and the model it falls back to.
#[test]
fn uring_falls_back_to_the_event_loop_with_a_warning_where_io_uring_is_unavailable() {
    use std::io::{Read, Write};
    let log = tempfile::NamedTempFile::new().unwrap();
    let server = ServerProcess::start_with_env(
        env!("CARGO_BIN_EXE_sockpool-server"),
        &["--model", "uring", "--listen", "echo=127.0.0.1:0"],
        &[("SOCKPOOL_URING_UNAVAILABLE", "1")],
        log.reopen().unwrap().into(),
    );
    let mut s = std::net::TcpStream::connect(server.addr("echo")).unwrap();
    s.set_read_timeout(Some(IO_LIMIT)).unwrap();
    s.write_all(b"still served").unwrap();
    let mut got = [0u8; 12];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"still served");
    let mut stderr = String::new();
    log.reopen().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(
        stderr.contains("WARNING: --model uring: io_uring is unavailable here (SOCKPOOL_URING_UNAVAILABLE is set)")
            && stderr.contains("falling back to --model event-loop"),
        "{stderr}"
    );
}
