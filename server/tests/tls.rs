//! TLS (rustls) on the server's listeners, with a certificate generated in the test by rcgen: framed and
//! http round trips through a tokio-rustls client under every model that supports TLS. (`curl --cacert`: the
//! `peers` test binary.)

mod support;

use rustls_pki_types::ServerName;
use sockpool_server::{Model, Proto, Server};
use support::cert::Cert;
use support::{config, expect_reply, framed_request, framed_response};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_over_tls_under_every_model() {
    let cert = Cert::new();
    for model in Model::ALL {
        let mut c = config(model, &["framed+tls=127.0.0.1:0"]);
        cert.configure(&mut c);
        let server = Server::bind(c).expect("bind");
        assert!(server.local_addrs()[0].tls);
        let addr = server.tcp_addr(Proto::Framed).unwrap();
        let h = server.spawn();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = tokio::time::timeout(support::IO_LIMIT, cert.connector().connect(name, tcp))
            .await
            .unwrap()
            .expect("handshake");
        let mut send = framed_request(4, 1, 50_000, b"after sleep");
        send.extend(framed_request(1, 2, 0, b"over tls"));
        let mut want = framed_response(0, 1, b"after sleep");
        want.extend(framed_response(0, 2, b"over tls"));
        expect_reply(&mut tls, &send, &want).await;
        // Large transfers both ways: records across many socket writes and reads.
        let big = vec![b'x'; 2_000_000];
        expect_reply(
            &mut tls,
            &framed_request(3, 3, 2_000_000, b""),
            &framed_response(0, 3, &big),
        )
        .await;
        let up: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        expect_reply(
            &mut tls,
            &framed_request(1, 4, 0, &up),
            &framed_response(0, 4, &up),
        )
        .await;
        drop(tls);
        let stats = tokio::task::spawn_blocking(move || h.shutdown())
            .await
            .unwrap();
        assert_eq!(stats.requests, 4, "{model}");
    }
}

#[tokio::test]
async fn a_plain_client_on_a_tls_port_is_closed_and_counted() {
    for model in [Model::Async, Model::Threads, Model::EventLoop, Model::Uring] {
        plain_client_on_tls_port(model).await;
    }
}

async fn plain_client_on_tls_port(model: Model) {
    let cert = Cert::new();
    let mut c = config(model, &["framed+tls=127.0.0.1:0"]);
    cert.configure(&mut c);
    let server = Server::bind(c).unwrap();
    let addr = server.tcp_addr(Proto::Framed).unwrap();
    let h = server.spawn();
    let mut s = TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, &framed_request(1, 1, 0, b"plain"))
        .await
        .unwrap();
    let (_, closed) = support::read_until_close(&mut s, support::IO_LIMIT).await;
    assert!(closed);
    let stats = tokio::task::spawn_blocking(move || h.shutdown())
        .await
        .unwrap();
    assert_eq!((stats.requests, stats.errors.io), (0, 1));
}

#[test]
fn tls_without_a_certificate_is_refused_at_bind() {
    let c = config(Model::Async, &["framed+tls=127.0.0.1:0"]);
    let err = Server::bind(c).unwrap_err().to_string();
    assert!(err.contains("--tls-cert"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_tls_keep_alive() {
    use futures::{SinkExt, StreamExt};
    use sockpool::codec::http::{ClientCodec, Limits, Request};
    use sockpool::codec::TokioUtilCodec;
    let cert = Cert::new();
    for model in [Model::Async, Model::Threads, Model::EventLoop, Model::Uring] {
        let mut c = config(model, &["http+tls=127.0.0.1:0"]);
        cert.configure(&mut c);
        let server = Server::bind(c).unwrap();
        let addr = server.tcp_addr(Proto::Http).unwrap();
        let h = server.spawn();

        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = cert
            .connector()
            .connect(name, tcp)
            .await
            .expect("handshake");
        let mut f = tokio_util::codec::Framed::new(
            tls,
            TokioUtilCodec::new(ClientCodec::new(Limits::default()).with_host("x")),
        );
        for _ in 0..2 {
            f.send(Request::get("/")).await.unwrap();
            let r = tokio::time::timeout(support::IO_LIMIT, f.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(
                (r.status, &r.body[..]),
                (200, &b"Hello, World!"[..]),
                "{model}"
            );
        }
        drop(f);

        let stats = tokio::task::spawn_blocking(move || h.shutdown())
            .await
            .unwrap();
        assert_eq!(stats.requests, 2, "{model}");
    }
}

/// This process's thread count (the server under test runs in it).
fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Issue 14: under `threads`, TLS connections over the limit each kept a thread blocked in a handshake the
/// client never started. Now they are closed at once on the acceptor, and no thread is spawned for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_over_the_limit_cost_no_thread_under_threads() {
    let cert = Cert::new();
    let mut c = config(Model::Threads, &["framed+tls=127.0.0.1:0"]);
    cert.configure(&mut c);
    c.limits.max_connections = 1;
    let server = Server::bind(c).unwrap();
    let addr = server.tcp_addr(Proto::Framed).unwrap();
    let h = server.spawn();
    // The one admitted connection, proven served through TLS.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut held = cert
        .connector()
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake");
    expect_reply(
        &mut held,
        &framed_request(1, 1, 0, b"in"),
        &framed_response(0, 1, b"in"),
    )
    .await;
    let before = threads();
    // 50 more that never send a ClientHello: each is closed, and none holds a thread.
    let mut over = Vec::new();
    for _ in 0..50 {
        over.push(TcpStream::connect(addr).await.unwrap());
    }
    for s in &mut over {
        let (got, closed) = support::read_until_close(s, support::IO_LIMIT).await;
        assert!(
            got.is_empty() && closed,
            "an over-limit TLS connection was left open"
        );
    }
    let after = threads();
    assert!(after < before + 5, "threads {before} -> {after}");
    drop(held);
    let stats = tokio::task::spawn_blocking(move || h.shutdown())
        .await
        .unwrap();
    assert_eq!(stats.connections_refused, 50);
}

/// Issue 14: a ClientHello dribbled a byte at a time is a partial request, not an idle connection: the
/// handshake is bounded by the read timeout (300 ms here; the idle timeout is 30 s), and counted as one, under
/// every model (the TLS handshake is the connection lifecycle's, `conn.rs`, in all of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dribbled_client_hello_is_closed_at_the_read_timeout_under_every_model() {
    use tokio::io::AsyncWriteExt;
    let cert = Cert::new();
    for model in Model::ALL {
        let (h, addr) = short_read_timeout(&cert, model, Proto::Framed);
        let s = TcpStream::connect(addr).await.unwrap();
        let (mut r, mut w) = s.into_split();
        // The first bytes of a TLS record header (handshake, TLS 1.0 record version), one every 50 ms: at most
        // 4 s.
        let dribbler = tokio::spawn(async move {
            for b in [0x16u8, 0x03, 0x01, 0x00, 0xff]
                .into_iter()
                .cycle()
                .take(80)
            {
                if w.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
        // What comes back before the close is at most a TLS alert record, never a handshake reply.
        let (got, closed) = support::read_until_close(&mut r, support::IO_LIMIT).await;
        assert!(closed, "{model}: the dribbled handshake was not closed");
        assert!(
            got.len() <= 7 && got.first().is_none_or(|&b| b == 0x15),
            "{model}: {got:?}"
        );
        assert!(
            !dribbler.is_finished(),
            "{model}: closed while the client was still dribbling"
        );
        dribbler.abort();
        let stats = tokio::task::spawn_blocking(move || h.shutdown())
            .await
            .unwrap();
        assert_eq!(stats.errors.read_timeout, 1, "{model}: {stats:?}");
    }
}

/// Issue 14: inside TLS, a request that stops part-way gets HTTP's `408` at the read timeout like a plain one,
/// under every model (the record layer is the connection lifecycle's, `conn.rs`, in all of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_request_inside_tls_gets_408_under_every_model() {
    use tokio::io::AsyncWriteExt;
    let cert = Cert::new();
    for model in Model::ALL {
        let (h, addr) = short_read_timeout(&cert, model, Proto::Http);
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = tokio::time::timeout(support::IO_LIMIT, cert.connector().connect(name, tcp))
            .await
            .unwrap()
            .expect("handshake");
        tls.write_all(b"GET / HTTP/1.1\r\nHost").await.unwrap();
        tls.flush().await.unwrap();
        let (got, closed) = support::read_until_close(&mut tls, support::IO_LIMIT).await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{model}: {text:?}"
        );
        assert!(closed, "{model}: closed after the 408");
        let stats = tokio::task::spawn_blocking(move || h.shutdown())
            .await
            .unwrap();
        assert_eq!(stats.errors.read_timeout, 1, "{model}: {stats:?}");
    }
}

/// A TLS connection whose handshake is done and that has sent no request yet is idle, not partway through a
/// request: it gets the idle timeout (30 s here), not the read timeout (300 ms), and HTTP sends no `408`. The
/// client's last handshake record carries no plaintext, and the lifecycle counted such a connection as a partial
/// request until plaintext came: under every model it was answered `408 Request Timeout` at the read timeout
/// (2.00 s with `--read-timeout 2s --idle-timeout 6s`) and counted in `errors.read_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_with_no_request_yet_is_idle_not_timed_out_under_every_model() {
    use futures::{SinkExt, StreamExt};
    use sockpool::codec::http::{ClientCodec, Limits, Request};
    use sockpool::codec::TokioUtilCodec;
    use tokio::io::AsyncReadExt;
    let cert = Cert::new();
    for model in Model::ALL {
        let (h, addr) = short_read_timeout(&cert, model, Proto::Http);
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = tokio::time::timeout(support::IO_LIMIT, cert.connector().connect(name, tcp))
            .await
            .unwrap()
            .expect("handshake");
        // Five read timeouts with nothing sent: nothing comes back, the connection stays open.
        let mut buf = [0u8; 256];
        let quiet =
            tokio::time::timeout(std::time::Duration::from_millis(1500), tls.read(&mut buf)).await;
        if let Ok(read) = quiet {
            let got = read.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned());
            panic!("{model}: an idle TLS connection got {got:?}");
        }
        // And it is served.
        let mut f = tokio_util::codec::Framed::new(
            tls,
            TokioUtilCodec::new(ClientCodec::new(Limits::default()).with_host("x")),
        );
        f.send(Request::get("/")).await.unwrap();
        let r = tokio::time::timeout(support::IO_LIMIT, f.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 200, "{model}");
        drop(f);
        let stats = tokio::task::spawn_blocking(move || h.shutdown())
            .await
            .unwrap();
        assert_eq!(
            (stats.requests, stats.errors.read_timeout),
            (1, 0),
            "{model}: {stats:?}"
        );
    }
}

/// A TLS `proto` server under `model` with a 300 ms read timeout and a 30 s idle timeout.
fn short_read_timeout(
    cert: &Cert,
    model: Model,
    proto: Proto,
) -> (sockpool_server::ServerHandle, std::net::SocketAddr) {
    let mut c = config(model, &[&format!("{proto}+tls=127.0.0.1:0")]);
    cert.configure(&mut c);
    c.limits.read_timeout = std::time::Duration::from_millis(300);
    c.limits.idle_timeout = std::time::Duration::from_secs(30);
    let server = Server::bind(c).unwrap();
    let addr = server.tcp_addr(proto).unwrap();
    (server.spawn(), addr)
}

/// A TLS connection still in its handshake has no request to finish, so shutdown closes it at once, as it closes
/// an idle plain one: a client that connected and sent nothing, and one that sent half a ClientHello, do not hold
/// the shutdown to the read timeout (30 s here, and the shutdown deadline as long), under every model. They did:
/// the lifecycle counted a handshake in progress as a partial request and waited for its read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_still_in_its_handshake_is_closed_at_shutdown_under_every_model() {
    use tokio::io::AsyncWriteExt;
    let cert = Cert::new();
    for model in Model::ALL {
        let mut c = config(model, &["http+tls=127.0.0.1:0"]);
        cert.configure(&mut c);
        c.limits.read_timeout = std::time::Duration::from_secs(30);
        c.shutdown_deadline = std::time::Duration::from_secs(30);
        let server = Server::bind(c).unwrap();
        let addr = server.tcp_addr(Proto::Http).unwrap();
        let h = server.spawn();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut half = TcpStream::connect(addr).await.unwrap();
        // A record header announcing 255 bytes of handshake, and 2 of them.
        half.write_all(&[0x16, 0x03, 0x01, 0x00, 0xff, 0x01, 0x00])
            .await
            .unwrap();
        // Both connections reach the server before it stops.
        assert!(
            sockpool_testkit::eventually(support::IO_LIMIT, || h
                .stats()
                .snapshot()
                .connections_open
                == 2)
            .await,
            "{model}: both connections accepted"
        );
        let stopper = tokio::task::spawn_blocking(move || h.shutdown());
        for (name, s) in [("silent", &mut silent), ("half a ClientHello", &mut half)] {
            let (got, closed) = support::read_until_close(s, support::IO_LIMIT).await;
            assert!(
                closed,
                "{model}: the {name} client was not closed at shutdown"
            );
            assert!(
                got.len() <= 7 && got.first().is_none_or(|&b| b == 0x15),
                "{model}: {name}: {got:?}"
            );
        }
        let stats = tokio::time::timeout(support::IO_LIMIT, stopper)
            .await
            .unwrap_or_else(|_| panic!("{model}: shutdown held by clients in their handshake"))
            .unwrap();
        assert_eq!(stats.connections_open, 0, "{model}");
        assert_eq!(stats.errors.read_timeout, 0, "{model}: {stats:?}");
    }
}
