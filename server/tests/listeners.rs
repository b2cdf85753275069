//! Listener kinds: Unix sockets (stale file removed on bind, file removed on exit unless a successor replaced
//! it), IPv6 loopback, UDP echo, several listeners in one server, and the admin endpoint.

mod support;

use std::os::unix::net::UnixListener as StdUnixListener;

use sockpool_server::{ListenAddr, Model, Proto, Server};
use support::{config, expect_reply, framed_request, framed_response, scrape, IO_LIMIT};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket, UnixStream};

/// The models that serve `unix:` listeners (`processes` refuses them at start).
const UNIX_MODELS: [Model; 5] = [
    Model::Async,
    Model::PerCore,
    Model::Threads,
    Model::EventLoop,
    Model::Uring,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_serves_under_every_model_that_has_it_and_is_removed_on_exit() {
    for model in UNIX_MODELS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sp.sock");
        // A stale socket file from a crashed server: nobody listens on it any more.
        drop(StdUnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let spec = format!("resp=unix:{}", path.display());
        let server = Server::bind(config(model, &[&spec])).expect("bind over a stale socket file");
        assert_eq!(server.unix_path(Proto::Resp), Some(path.as_path()));
        assert_eq!(server.local_addrs()[0].addr, ListenAddr::Unix(path.clone()));
        let h = server.spawn();
        let mut s = UnixStream::connect(&path).await.unwrap();
        expect_reply(&mut s, b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n").await;
        drop(s);
        let stats = tokio::task::spawn_blocking(move || h.shutdown())
            .await
            .unwrap();
        assert_eq!(stats.requests, 1, "{model}");
        assert!(!path.exists(), "{model}: socket file removed on exit");
    }
}

/// A restart on the same Unix path: the old server, stopped, drains a request in flight with its listener already
/// closed, so its file reads as stale and the new server binds the path meanwhile. The old server's exit must
/// leave the new one's socket file in place (it removed the path by name, and the new server, still running,
/// could no longer be reached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_leaves_its_successors_unix_socket_in_place() {
    for model in UNIX_MODELS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sp.sock");
        let spec = format!("framed=unix:{}", path.display());
        let old = Server::bind(config(model, &[&spec])).unwrap().spawn();
        // A SLEEP in flight keeps the old server draining after its stop. It is stopped only once it has read
        // the SLEEP: a request still unread in the socket when the stop comes may be lost (PROTOCOL.md).
        let mut s = UnixStream::connect(&path).await.unwrap();
        let sleep = framed_request(4, 2, 1_500_000, b"slow");
        s.write_all(&sleep).await.unwrap();
        let read_by = std::time::Instant::now() + IO_LIMIT;
        while old.stats().snapshot().bytes_in < sleep.len() as u64 {
            assert!(
                std::time::Instant::now() < read_by,
                "{model}: the SLEEP is read"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let stopping = tokio::task::spawn_blocking(move || old.shutdown());
        let stale_by = std::time::Instant::now() + IO_LIMIT;
        while std::os::unix::net::UnixStream::connect(&path).is_ok() {
            assert!(
                std::time::Instant::now() < stale_by,
                "{model}: the stopped server's listener closes"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let new = Server::bind(config(model, &[&spec]))
            .expect("bind over the draining server's stale file")
            .spawn();
        expect_reply(&mut s, b"", &framed_response(0, 2, b"slow")).await;
        drop(s);
        stopping.await.unwrap();
        assert!(
            path.exists(),
            "{model}: the successor's socket file is still there"
        );
        let mut c = UnixStream::connect(&path)
            .await
            .expect("the successor answers on the path");
        expect_reply(
            &mut c,
            &framed_request(1, 3, 0, b"hi"),
            &framed_response(0, 3, b"hi"),
        )
        .await;
        drop(c);
        tokio::task::spawn_blocking(move || new.shutdown())
            .await
            .unwrap();
        assert!(
            !path.exists(),
            "{model}: the successor removes its own file on exit"
        );
    }
}

#[test]
fn a_live_unix_socket_is_not_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.sock");
    let spec = format!("echo=unix:{}", path.display());
    let first = Server::bind(config(Model::Async, &[&spec])).unwrap();
    let err = Server::bind(config(Model::Async, &[&spec]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("in use"), "{err}");
    drop(first);
}

/// A TCP port another server listens on is refused under every model, whether the other one set SO_REUSEPORT
/// or not. The models with a listener per worker set it, and with it alone a second server said `ready` and
/// took part of the first one's connections (and, for RESP, its own key space).
#[test]
fn a_tcp_port_in_use_is_refused_under_every_model() {
    for first in [Model::Async, Model::PerCore] {
        let holder = Server::bind(config(first, &["resp=127.0.0.1:0"])).unwrap();
        let ListenAddr::Tcp(addr) = holder.local_addrs()[0].addr.clone() else {
            panic!("a TCP listener");
        };
        for model in Model::ALL {
            let spec = format!("resp={addr}");
            let err = match Server::bind(config(model, &[&spec])) {
                Ok(_) => panic!("{model} bound {addr}, which a {first} server holds"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("in use"), "{model} after {first}: {err}");
        }
        drop(holder);
    }
}

#[test]
fn a_regular_file_at_the_unix_path_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, b"precious").unwrap();
    let spec = format!("framed=unix:{}", path.display());
    let err = Server::bind(config(Model::Async, &[&spec]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn unix_sockets_are_refused_under_processes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("echo=unix:{}", dir.path().join("p.sock").display());
    let err = Server::bind(config(Model::Processes, &[&spec]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("processes"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_serves_under_every_model() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("!!!!!!!! IPv6 loopback is not available here; test SKIPPED");
        assert!(!sockpool_testkit::in_ci(), "IPv6 loopback missing under CI");
        return;
    }
    for model in Model::ALL {
        let server = Server::bind(config(model, &["framed=[::1]:0"])).unwrap();
        let addr = server.tcp_addr(Proto::Framed).unwrap();
        assert!(addr.is_ipv6() && addr.ip().is_loopback() && addr.port() != 0);
        assert_eq!(
            server.local_addrs()[0].addr.to_string(),
            format!("[::1]:{}", addr.port())
        );
        let h = server.spawn();
        let mut s = TcpStream::connect(addr).await.unwrap();
        expect_reply(
            &mut s,
            &framed_request(1, 6, 0, b"v6"),
            &framed_response(0, 6, b"v6"),
        )
        .await;
        drop(s);
        let stats = tokio::task::spawn_blocking(move || h.shutdown())
            .await
            .unwrap();
        assert_eq!(stats.requests, 1, "{model}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_beside_tcp_listeners_and_admin_metrics() {
    let mut c = config(
        Model::Async,
        &["udp=127.0.0.1:0", "echo=127.0.0.1:0", "framed=127.0.0.1:0"],
    );
    c.admin = Some("127.0.0.1:0".parse().unwrap());
    let server = Server::bind(c).unwrap();
    let udp = server.udp_addr().unwrap();
    let echo = server.tcp_addr(Proto::Echo).unwrap();
    let admin = server.admin_addr().unwrap();
    assert_eq!(server.local_addrs().len(), 3);
    let h = server.spawn();

    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for size in [1usize, 1000, 60_000] {
        let msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
        sock.send_to(&msg, udp).await.unwrap();
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(IO_LIMIT, sock.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &msg[..], "{size}-byte datagram echoed");
    }
    let mut s = TcpStream::connect(echo).await.unwrap();
    expect_reply(&mut s, b"tcp too", b"tcp too").await;
    drop(s);

    let text = scrape(admin).await;
    assert!(
        text.contains("\nsockpool_server_requests_total 4\n"),
        "{text}"
    );
    // A scrape config with `params` adds a query string: still the metrics, not a 404.
    let mut a = TcpStream::connect(admin).await.unwrap();
    a.write_all(b"GET /metrics?module=sockpool HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (reply, _) = support::read_until_close(&mut a, IO_LIMIT).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 200 OK") && reply.contains("sockpool_server_requests_total"),
        "{reply}"
    );
    assert!(
        text.contains("sockpool_server_errors_total{kind=\"io\"} 0"),
        "{text}"
    );
    let stats = tokio::task::spawn_blocking(move || h.shutdown())
        .await
        .unwrap();
    assert_eq!(stats.requests, 4);
}

/// Issue 14: a client that opens the admin port and dribbles a byte now and then neither blocks another
/// scrape nor holds up shutdown (it once held shutdown 36 s past a 2 s deadline). Asserted as an order: the
/// scrape is answered, and shutdown returns, while the slow client is still connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_admin_client_delays_neither_a_scrape_nor_shutdown() {
    let mut c = config(Model::Async, &["framed=127.0.0.1:0"]);
    c.admin = Some("127.0.0.1:0".parse().unwrap());
    c.shutdown_deadline = std::time::Duration::from_secs(1);
    let server = Server::bind(c).unwrap();
    let admin = server.admin_addr().unwrap();
    let h = server.spawn();
    let mut slow = TcpStream::connect(admin).await.unwrap();
    slow.write_all(b"GET /met").await.unwrap();
    let dribbler = tokio::spawn(async move {
        // At most 20 s of one byte every 200 ms: far past every deadline in play.
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if slow.write_all(b"r").await.is_err() {
                return;
            }
        }
    });
    scrape(admin).await; // answered (200 OK, closed) while the slow client is still connected
    assert!(
        !dribbler.is_finished(),
        "the slow client was still connected"
    );
    tokio::task::spawn_blocking(move || h.shutdown())
        .await
        .unwrap();
    assert!(
        !dribbler.is_finished(),
        "shutdown did not wait for the slow client"
    );
    dribbler.abort();
}

/// The admin endpoint's table of 64 connections full of silent ones (each keeps its place for the 2 s exchange
/// limit) closed every new connection at accept: 70 silent connections reopened every 1.9 s made every
/// `curl /metrics` fail. Now a new connection evicts the oldest one that has not sent its request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_admin_connections_do_not_lock_out_a_scrape() {
    let mut c = config(Model::Async, &["framed=127.0.0.1:0"]);
    c.admin = Some("127.0.0.1:0".parse().unwrap());
    let server = Server::bind(c).unwrap();
    let admin = server.admin_addr().unwrap();
    let h = server.spawn();
    let mut silent = Vec::new();
    for _ in 0..70 {
        silent.push(TcpStream::connect(admin).await.unwrap());
    }
    scrape(admin).await; // answered (200 OK, closed), the silent ones still connected or evicted
                         // And again, with the table still full of silent connections.
    for _ in 0..70 {
        silent.push(TcpStream::connect(admin).await.unwrap());
    }
    scrape(admin).await;
    drop(silent);
    tokio::task::spawn_blocking(move || h.shutdown())
        .await
        .unwrap();
}

/// `--batch-wait` (io_uring min_wait): a request alone is still answered (the wait ends with what has come, it
/// does not hold out for a full batch), and requests from many connections at once are each answered once.
/// Where io_uring is unavailable the model falls back to `event-loop`, which this exercises too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_uring_worker_answers_a_lone_request_and_a_crowd() {
    let mut c = config(Model::Uring, &["resp=127.0.0.1:0"]);
    c.workers = 1;
    c.batch_wait = std::time::Duration::from_millis(1);
    let server = Server::bind(c).unwrap();
    let addr = server.tcp_addr(Proto::Resp).unwrap();
    let h = server.spawn();
    let mut lone = TcpStream::connect(addr).await.unwrap();
    for _ in 0..3 {
        expect_reply(&mut lone, b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n").await;
    }
    let crowd = (0..40).map(|_| async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        for _ in 0..25 {
            expect_reply(&mut s, b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n").await;
        }
    });
    futures::future::join_all(crowd).await;
    drop(lone);
    let stats = tokio::task::spawn_blocking(move || h.shutdown())
        .await
        .unwrap();
    assert_eq!(stats.requests, 3 + 40 * 25);
}
