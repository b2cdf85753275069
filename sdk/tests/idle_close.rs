//! A server closes a keep-alive connection that stayed idle for its idle timeout: silently (nginx, Apache,
//! Redis's `timeout`) or after an HTTP `408 Request Timeout` (Node.js; Go's `net/http` client takes that as the
//! close of an idle connection too). Neither is the server breaking the protocol, and no request may fail for
//! it: the pooled client's next request goes out on a new connection, and a caller-driven [`Pipelined`] that
//! asks [`Pipelined::check_idle`] before sending sees the connection closed by the server, not stray bytes.

use std::net::SocketAddr;
use std::time::Duration;

use sockpool::codec::http::Request;
use sockpool::config::SocketOptions;
use sockpool::protocol::Http;
use sockpool::transport::Connector;
use sockpool::{Client, Endpoint, Pipelined, PoolConfig, RetryPolicy, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

mod common;

const NOTICE: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// How the server ends an idle connection.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// Its EOF alone.
    Silent,
    /// A `408`, then its EOF.
    Notice,
    /// Bytes that are no notice (a broken server), kept open.
    Garbage,
}

/// Answers each connection's first request with `200 ok`, then ends it as `ending` says at once (its idle
/// timeout, made short), and reports each connection so ended on the channel.
async fn closing_after_one(ending: Ending) -> (SocketAddr, mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = common::tcp_server(move |mut s| {
        let tx = tx.clone();
        async move {
            if !common::read_head(&mut s).await {
                return;
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            // Apart from the reply, as an idle timeout's close comes.
            tokio::time::sleep(Duration::from_millis(20)).await;
            match ending {
                Ending::Silent => {}
                Ending::Notice => {
                    let _ = s.write_all(NOTICE).await;
                }
                Ending::Garbage => {
                    let _ = s.write_all(b"garbage, not a reply\r\n").await;
                }
            }
            let _ = s.flush().await;
            let _ = tx.send(());
            if let Ending::Garbage = ending {
                let _ = s.read(&mut [0u8; 1]).await;
            }
        }
    })
    .await;
    (addr, rx)
}

/// Waits for the server to end its connection, then a little longer for the client's reactor to see it (what
/// arrived is looked at without waiting, as a pool's check-out does).
async fn ended(rx: &mut mpsc::UnboundedReceiver<()>) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the server ended the connection")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn a_pooled_client_sends_its_next_request_on_a_new_connection(depth: usize, ending: Ending) {
    let (addr, mut rx) = closing_after_one(ending).await;
    // No retry: a request sent into the closed connection would fail, not be hidden by a second attempt.
    let client = Client::builder(Http::default())
        .endpoint(addr)
        .pool(PoolConfig::default().with_max_size(1))
        .pipeline_depth(depth)
        .retry(RetryPolicy::none())
        .timeouts(Timeouts::default().with_request(Duration::from_secs(10)))
        .build()
        .unwrap();
    let get = || Request::get("/").with_header("Host", "x");
    for i in 0..2 {
        let r = client.request(get()).await;
        let r = r.unwrap_or_else(|e| panic!("depth {depth}, {ending:?}, request {i}: {e}"));
        assert_eq!(&r.body[..], b"ok");
        ended(&mut rx).await;
    }
    let stats = client.stats();
    let what = format!("depth {depth}, {ending:?}: {stats:?}");
    assert_eq!((stats.failed, stats.connects), (0, 2), "{what}");
    let c = &stats.closes;
    assert_eq!((c.stray_bytes, c.protocol, c.reset), (0, 0, 0), "{what}");
    // The first connection's close was seen (a depth-1 connection's at the check-out that found it; a deeper
    // one's driver also sees the second's), each under its reason.
    let (closed_by, other) = match ending {
        Ending::Notice => (c.server_close, c.peer_closed),
        _ => (c.peer_closed, c.server_close),
    };
    assert!((1..=2).contains(&closed_by) && other == 0, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_idle_close_or_a_408_the_pooled_client_reconnects_at_depth_1_and_4() {
    for depth in [1, 4] {
        for ending in [Ending::Silent, Ending::Notice] {
            a_pooled_client_sends_its_next_request_on_a_new_connection(depth, ending).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_driven_connection_sees_the_idle_close_before_it_sends() {
    let connector = Connector::new(SocketOptions::default(), &Timeouts::default(), None).unwrap();
    for ending in [Ending::Silent, Ending::Notice, Ending::Garbage] {
        let (addr, mut rx) = closing_after_one(ending).await;
        let endpoint: Endpoint = addr.to_string().parse().unwrap();
        let timeout = Duration::from_secs(10);
        let mut conn = Pipelined::connect(&connector, &endpoint, Http::default(), timeout)
            .await
            .unwrap();
        assert!(conn.check_idle(), "{ending:?}: open before any request");
        let now = tokio::time::Instant::now();
        conn.send(Request::get("/"), 1u32, now).unwrap();
        assert!(
            conn.check_idle(),
            "{ending:?}: a request in flight is not looked past"
        );
        let c = conn.next().await.expect("a completion");
        assert_eq!(&c.result.unwrap().body[..], b"ok");
        ended(&mut rx).await;
        let open = conn.check_idle();
        match ending {
            Ending::Silent | Ending::Notice => {
                assert!(!open && conn.closed_by_server(), "{ending:?}: {conn:?}");
                assert_eq!(conn.stray_bytes(), None);
                assert_eq!(
                    conn.close_reason().as_deref(),
                    Some("the server closed the idle connection")
                );
            }
            Ending::Garbage => {
                assert!(!open && !conn.closed_by_server(), "{conn:?}");
                assert_eq!(conn.stray_bytes(), Some(22), "{conn:?}");
            }
        }
        // Nothing goes out on it any more.
        let refused = conn.send(Request::get("/"), 2u32, tokio::time::Instant::now());
        let (token, e) = refused.expect_err("a closed connection takes no request");
        assert_eq!(token, 2);
        assert!(!e.was_sent(), "{e}");
    }
}
