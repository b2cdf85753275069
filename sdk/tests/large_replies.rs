//! A large reply is awaited with the socket's read mark raised (`SO_RCVLOWAT`, one wake-up per up to 256 KiB
//! instead of per packet): it must still arrive whole however its bytes are split, and the small reply after it
//! on the same connection must not wait for more bytes that never come (the mark back at 1). At depth 1 the
//! caller does the connection's I/O itself, deeper a driver task does; `Pipelined` has its own test (the mark
//! checked on the socket).

use std::net::SocketAddr;
use std::time::Duration;

use sockpool::codec::http::Request;
use sockpool::protocol::Http;
use sockpool::{Client, PoolConfig, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

const BODY: usize = 1_000_000;

/// Answers a connection's first request with a 1,000,000-byte body written in pieces (300,000, 600,000,
/// 99,000, then the last 1,000: under the mark's threshold), each after a pause so that each arrives on its
/// own, and its second with a 2-byte body.
async fn large_then_small() -> SocketAddr {
    common::tcp_server(|mut s| async move {
        if !common::read_head(&mut s).await {
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\n\r\n");
        let _ = s.write_all(head.as_bytes()).await;
        for piece in [300_000, 600_000, 99_000, 1_000] {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = s.write_all(&vec![b'x'; piece]).await;
        }
        if common::read_head(&mut s).await {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await
}

async fn a_large_body_arrives_whole_and_the_small_reply_after_it_is_not_held(depth: usize) {
    let addr = large_then_small().await;
    // A reply held back by a mark left raised would fail as this timeout, not hang the test.
    let client = Client::builder(Http::default())
        .endpoint(addr)
        .pool(PoolConfig::default().with_max_size(1))
        .pipeline_depth(depth)
        .timeouts(Timeouts::default().with_request(Duration::from_secs(20)))
        .build()
        .unwrap();
    let get = || Request::get("/").with_header("Host", "x");
    let big = client.request(get()).await.unwrap();
    assert_eq!((big.status, big.body.len()), (200, BODY), "depth {depth}");
    assert!(big.body.iter().all(|&b| b == b'x'));
    let small = client.request(get()).await.unwrap();
    assert_eq!(&small.body[..], b"ok");
    let stats = client.stats();
    assert_eq!(
        (stats.connects, stats.failed, stats.timeouts),
        (1, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_depth_1_a_large_body_arrives_whole_and_the_small_reply_after_it_is_not_held() {
    a_large_body_arrives_whole_and_the_small_reply_after_it_is_not_held(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_a_large_body_arrives_whole_and_the_small_reply_after_it_is_not_held() {
    a_large_body_arrives_whole_and_the_small_reply_after_it_is_not_held(4).await;
}
