//! HTTP responses whose body ends where the connection closes (RFC 9112 §6.3 item 8: `Connection: close`
//! without a length, HTTP/1.0 without a length, a transfer coding other than chunked): the close completes the
//! body, at depth 1, pipelined, and through [`Pipelined`]; a request pipelined behind such a response fails as
//! not processed.

use std::net::SocketAddr;
use std::time::Duration;

use sockpool::codec::http::Request;
use sockpool::protocol::Http;
use sockpool::transport::{Connector, Endpoint};
use sockpool::{Client, Pipelined, PoolConfig, SocketOptions, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

mod common;

const BODY: &[u8] = b"hello world, until the close";

/// The three heads of a response whose body the close ends.
const HEADS: [(&str, &[u8]); 3] = [
    (
        "connection close",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    ),
    ("http/1.0", b"HTTP/1.0 200 OK\r\n\r\n"),
    (
        "gzip, not chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    ),
];

/// A server that answers each connection's first request head with `head`, then [`BODY`] in a later write,
/// then closes (a FIN: it sends no more, and reads what else comes until the client closes, so that unread
/// requests pipelined behind do not turn the close into a reset).
async fn close_delimited_server(head: &'static [u8]) -> SocketAddr {
    common::tcp_server(move |mut s| async move {
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s.write_all(head).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = s.write_all(BODY).await;
        let _ = s.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    })
    .await
}

fn client(addr: SocketAddr, depth: usize) -> Client<Http> {
    Client::builder(Http::default())
        .endpoint(addr)
        .pool(PoolConfig::default().with_max_size(1))
        .pipeline_depth(depth)
        .build()
        .unwrap()
}

fn get() -> Request {
    Request::get("/").with_header("Host", "x")
}

/// Through the pool at `depth`: each call's body arrives whole, and the close that ended it was the server's
/// announced close, not the endpoint failing.
async fn each_body_arrives_whole(depth: usize) {
    for (name, head) in HEADS {
        let addr = close_delimited_server(head).await;
        let client = client(addr, depth);
        for _ in 0..2 {
            let r = client.request(get()).await;
            let r = r.unwrap_or_else(|e| panic!("{name}, depth {depth}: {e}"));
            assert_eq!(
                (r.status, &r.body[..]),
                (200, BODY),
                "{name}, depth {depth}"
            );
        }
        let stats = client.stats();
        assert_eq!((stats.connects, stats.failed), (2, 0), "{name}: {stats:?}");
        assert_eq!(stats.closes.peer_closed, 0, "{name}: {:?}", stats.closes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_until_close_arrives_whole_at_depth_1() {
    each_body_arrives_whole(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_until_close_arrives_whole_at_depth_16() {
    each_body_arrives_whole(16).await;
}

/// Two requests pipelined on one connection: the first's body ends at the close, the second was not processed
/// and the client sends it again on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_pipelined_behind_a_body_until_close_is_sent_again() {
    for (name, head) in HEADS {
        let addr = close_delimited_server(head).await;
        let client = client(addr, 16);
        let (a, b) = tokio::join!(client.request(get()), client.request(get()));
        for r in [a, b] {
            let r = r.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((r.status, &r.body[..]), (200, BODY), "{name}");
        }
        assert_eq!(client.stats().failed, 0, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_a_body_until_close_arrives_and_the_request_behind_fails_as_not_processed() {
    let connector = Connector::new(SocketOptions::default(), &Timeouts::default(), None).unwrap();
    for (name, head) in HEADS {
        let addr = close_delimited_server(head).await;
        let endpoint: Endpoint = addr.to_string().parse().unwrap();
        let mut conn = Pipelined::connect(
            &connector,
            &endpoint,
            Http::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let now = Instant::now();
        conn.send(get(), 1u32, now).unwrap();
        conn.send(get(), 2u32, now).unwrap();
        let first = conn.next().await.expect("a completion");
        assert_eq!(first.token, 1);
        let r = first.result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((r.status, &r.body[..]), (200, BODY), "{name}");
        let second = conn.next().await.expect("a completion");
        assert_eq!(second.token, 2);
        let e = second.result.unwrap_err();
        assert!(e.is_closed(), "{name}: {e}");
        assert!(e.is_server_close(), "{name}: {e}");
        assert!(!e.was_sent(), "{name}: {e}");
        assert!(conn.next().await.is_none());
        assert!(conn.closed_by_server(), "{name}");
    }
}

/// A server that reads only the head of a request, answers `413` with `Connection: close` at once, and
/// closes without reading the body.
async fn early_413_server() -> SocketAddr {
    common::tcp_server(|mut s| async move {
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s
            .write_all(
                b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        let _ = s.shutdown().await;
    })
    .await
}

/// The server's early answer is the caller's, at depth 1 as pipelined, not the write's failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_413_to_a_large_body_is_returned_at_depth_1_and_16() {
    let addr = early_413_server().await;
    for depth in [1, 16] {
        let client = client(addr, depth);
        let post = Request::new(sockpool::codec::http::Method::Post, "/")
            .with_header("Host", "x")
            .with_body(vec![b'x'; 8 << 20]);
        let r = client.request(post).await;
        let r = r.unwrap_or_else(|e| panic!("depth {depth}: {e}"));
        assert_eq!(r.status, 413, "depth {depth}");
    }
}
