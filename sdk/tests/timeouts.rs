//! Issue 3 item 3: each timeout fires on time and names its phase.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use sockpool::{Client, ErrorKind, Phase, PoolConfig, RetryPolicy, Timeouts};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_of_50ms_against_sleep_fires_within_50_to_70ms() {
    request_timeout_fires_on_time(1).await;
}

/// Pipelined, the connection's driver answers at the deadline (one timer for all requests in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_request_timeout_of_50ms_fires_within_50_to_70ms() {
    request_timeout_fires_on_time(8).await;
}

async fn request_timeout_fires_on_time(depth: usize) {
    let (server, addr) = common::framed_server();
    let client = Client::framed()
        .endpoint(addr)
        .pipeline_depth(depth)
        .timeouts(Timeouts {
            request: Duration::from_millis(50),
            ..Timeouts::default()
        })
        .build()
        .unwrap();
    // Connect first, so that the measured call is the request alone.
    client.echo(&b"warm"[..]).await.unwrap();
    let start = Instant::now();
    let err = client
        .sleep(Duration::from_secs(1), Bytes::new())
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err}");
    // Written, and no byte of the reply came back: the time went waiting to read.
    assert_eq!(err.phase(), Phase::Read, "{err}");
    assert!(err.was_sent());
    assert!(
        took >= Duration::from_millis(50) && took <= Duration::from_millis(70),
        "fired after {took:?}"
    );
    // A timed-out request is not retried (its time is spent), and its connection is retired.
    let stats = client.stats();
    assert_eq!(stats.retries, 0);
    client.reap();
    assert_eq!(client.stats().closes.cancelled, 1);
    drop(server);
}

/// A listener with a backlog of 0 that never accepts, filled until connects hang.
fn full_backlog_listener() -> (socket2::Socket, SocketAddr, Vec<std::net::TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    sock.bind(&bind.into()).unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    (sock, addr, fillers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_against_a_full_backlog_names_connect() {
    let (_listener, addr, fillers) = full_backlog_listener();
    assert!(fillers.len() < 16, "the backlog never filled up");
    let timeout = Duration::from_millis(100);
    let client = Client::framed()
        .endpoint(addr)
        .timeouts(Timeouts {
            connect: timeout,
            ..Timeouts::default()
        })
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let start = Instant::now();
    let err = client.echo(&b"x"[..]).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.phase(), Phase::Connect, "{err}");
    assert!(!err.was_sent());
    assert!(err.is_retryable());
    assert!(took >= timeout, "fired early: {took:?}");
    assert!(took < timeout * 3, "fired late: {took:?}");
    assert_eq!(client.stats().connect_failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_wait_timeout_when_every_connection_is_busy() {
    let (server, addr) = common::framed_server();
    let wait = Duration::from_millis(100);
    let client = Client::framed()
        .endpoint(addr)
        .pool(PoolConfig {
            max_size: 1,
            ..PoolConfig::default()
        })
        .timeouts(Timeouts {
            pool_wait: wait,
            ..Timeouts::default()
        })
        .build()
        .unwrap();
    client.echo(&b"warm"[..]).await.unwrap();
    let busy = {
        let c = client.clone();
        tokio::spawn(async move { c.sleep(Duration::from_millis(600), Bytes::new()).await })
    };
    assert!(common::eventually(Duration::from_secs(2), || client.stats().in_flight == 1).await);
    let start = Instant::now();
    let err = client.echo(&b"x"[..]).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.phase(), Phase::PoolWait, "{err}");
    assert!(!err.was_sent());
    assert!(took >= wait && took < wait * 3, "fired after {took:?}");
    // The busy call was not disturbed.
    busy.await.unwrap().unwrap();
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_to_end_deadline_caps_the_phase_that_runs_out() {
    let (server, addr) = common::framed_server();
    let client = Client::framed()
        .endpoint(addr)
        .timeouts(Timeouts {
            total: Some(Duration::from_millis(80)),
            ..Timeouts::default()
        })
        .build()
        .unwrap();
    let start = Instant::now();
    let err = client
        .sleep(Duration::from_secs(1), Bytes::new())
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.phase(), Phase::Read, "{err}");
    assert!(
        std::error::Error::source(&err)
            .is_some_and(|s| s.to_string().contains("end-to-end deadline")),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(80) && took < Duration::from_millis(240),
        "{took:?}"
    );
    drop(server);
}
