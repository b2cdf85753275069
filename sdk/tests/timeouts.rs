//! Issue 3 item 3: each timeout fires at its deadline and names its phase.
//!
//! The deadlines are measured on paused time (current-thread runtime, `tokio::time::pause()`), so they are
//! exact and instant: once every task waits, tokio advances its clock straight to the next timer. Anything a
//! test needs from the real server first (the connection, one round trip) happens before the pause, and the
//! call it measures waits for a reply the server sends only much later in real time (a 1 s SLEEP) or never: the
//! timer under test is the only thing that can end the wait. `resume()` gives real time back for what follows.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use sockpool::{Client, ErrorKind, Phase, PoolConfig, RetryPolicy, Timeouts};
use tokio::time::Instant;

/// A framed server that, when dropped, waits only 50 ms for requests still in service: the SLEEPs the tests
/// give up on are not waited for.
fn server() -> (sockpool_server::ServerHandle, SocketAddr) {
    let server = sockpool_testkit::server::start_with(&["framed=127.0.0.1:0"], |c| {
        c.shutdown_deadline = Duration::from_millis(50)
    });
    let addr = server.tcp_addr(sockpool_server::Proto::Framed).unwrap();
    (server, addr)
}

/// A framed client of `addr` with `timeouts` and pipelining depth `depth`, connected and warmed in real time;
/// then time is paused and it sends a 1 s SLEEP (which the server answers only a second of real time later).
/// Asserts that a timeout in the read phase ends it: the client, the error, and how long it took on the paused
/// clock.
async fn sleep_past_the_deadline(
    addr: SocketAddr,
    depth: usize,
    timeouts: Timeouts,
) -> (
    Client<sockpool::protocol::Framed>,
    sockpool::Error,
    Duration,
) {
    let client = Client::framed()
        .endpoint(addr)
        .pipeline_depth(depth)
        .timeouts(timeouts)
        .build()
        .unwrap();
    client.echo(&b"warm"[..]).await.unwrap();
    tokio::time::pause();
    let start = Instant::now(); // paused tokio clock: exact
    let err = client
        .sleep(Duration::from_secs(1), Bytes::new())
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.phase(), Phase::Read, "{err}");
    (client, err, took)
}

/// Tokio's timers tick in whole milliseconds: a timer fires in the millisecond its deadline falls in.
const TICK: Duration = Duration::from_millis(1);

/// Asserts that a timer of `deadline` fired at it, to the tick, `took` being the wait on the paused clock.
fn assert_fired_at(took: Duration, deadline: Duration) {
    assert!(
        took >= deadline && took <= deadline + TICK,
        "fired after {took:?}, deadline {deadline:?}"
    );
}

#[tokio::test]
async fn request_timeout_of_50ms_against_sleep_fires_at_50ms() {
    request_timeout_fires_on_time(1).await;
}

/// Pipelined, the connection's driver answers at the deadline (one timer for all requests in flight).
#[tokio::test]
async fn pipelined_request_timeout_of_50ms_fires_at_50ms() {
    request_timeout_fires_on_time(8).await;
}

async fn request_timeout_fires_on_time(depth: usize) {
    let (server, addr) = server();
    let timeouts = Timeouts::default().with_request(Duration::from_millis(50));
    // Written, and no byte of the reply came back: the time went waiting to read.
    let (client, err, took) = sleep_past_the_deadline(addr, depth, timeouts).await;
    assert!(err.was_sent());
    let deadline = Duration::from_millis(50);
    assert_fired_at(took, deadline);
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

#[tokio::test]
async fn connect_timeout_against_a_full_backlog_names_connect() {
    let (_listener, addr, fillers) = full_backlog_listener();
    assert!(fillers.len() < 16, "the backlog never filled up");
    let timeout = Duration::from_millis(100);
    let client = Client::framed()
        .endpoint(addr)
        .timeouts(Timeouts::default().with_connect(timeout))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    // The SYN is dropped by the full backlog: no answer ever comes, only the connect timer ends the wait.
    tokio::time::pause();
    let start = Instant::now(); // paused tokio clock: exact
    let err = client.echo(&b"x"[..]).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.phase(), Phase::Connect, "{err}");
    assert!(!err.was_sent());
    assert!(err.is_retryable());
    assert_fired_at(took, timeout);
    assert_eq!(client.stats().connect_failures, 1);
}

#[tokio::test]
async fn pool_wait_timeout_when_every_connection_is_busy() {
    let (server, addr) = server();
    let wait = Duration::from_millis(100);
    let client = Client::framed()
        .endpoint(addr)
        .pool(PoolConfig::default().with_max_size(1))
        .timeouts(Timeouts::default().with_pool_wait(wait))
        // Request/response: the one connection is busy while its one request is in flight.
        .pipeline_depth(1)
        .build()
        .unwrap();
    client.echo(&b"warm"[..]).await.unwrap();
    let busy = {
        let c = client.clone();
        tokio::spawn(async move { c.sleep(Duration::from_millis(600), Bytes::new()).await })
    };
    assert!(
        sockpool_testkit::eventually(Duration::from_secs(2), || client.stats().in_flight == 1)
            .await
    );
    // The one connection is busy for 600 ms of real time: only the pool-wait timer ends the wait.
    tokio::time::pause();
    let start = Instant::now(); // paused tokio clock: exact
    let err = client.echo(&b"x"[..]).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.phase(), Phase::PoolWait, "{err}");
    assert!(!err.was_sent());
    assert_fired_at(took, wait);
    // The busy call was not disturbed: it gets its reply when the server sends it, in real time.
    assert!(!busy.is_finished());
    tokio::time::resume();
    busy.await.unwrap().unwrap();
    drop(server);
}

#[tokio::test]
async fn the_end_to_end_deadline_caps_the_phase_that_runs_out() {
    let (server, addr) = server();
    let timeouts = Timeouts::default().with_total(Some(Duration::from_millis(80)));
    let (_client, err, took) = sleep_past_the_deadline(addr, 1, timeouts).await;
    assert!(
        std::error::Error::source(&err)
            .is_some_and(|s| s.to_string().contains("end-to-end deadline")),
        "{err:?}"
    );
    let total = Duration::from_millis(80);
    assert_fired_at(took, total);
    drop(server);
}
