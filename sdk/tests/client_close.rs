//! `Client::close` always ends: new calls are refused at once, idle connections closed at once, and the calls in
//! progress get `Timeouts::close_grace` (or `close_within`'s grace) before they are cut with `Closed` and
//! their connections closed. Before, `close` waited for every call in progress, and a `BLPOP k 0` (which gets no
//! request timeout) held it for ever.
//!
//! On paused time, as in `timeouts.rs`: the connections are opened in real time first, then the clock is paused
//! and the only timer that can end the wait is the grace under test.

mod common;

use std::time::Duration;

use sockpool::codec::resp::Value;
use sockpool::protocol::Resp;
use sockpool::{Client, ErrorKind, Phase, RetryPolicy, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// What the peer saw.
#[derive(Debug, PartialEq)]
enum Seen {
    /// A command it does not answer (`BLPOP silent 0`), or not until released (`BLPOP later 0`).
    Held,
    /// A connection's end of stream: the client closed it.
    Eof,
}

/// A RESP peer: `BLPOP silent …` is never answered, `BLPOP later …` is answered `[later, v]` once `release` is
/// notified, anything else gets a nil. Reports what it saw on the channel.
async fn peer() -> (
    std::net::SocketAddr,
    mpsc::UnboundedReceiver<Seen>,
    std::sync::Arc<Notify>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let release = std::sync::Arc::new(Notify::new());
    let released = release.clone();
    let addr = common::tcp_server(move |mut s| {
        let tx = tx.clone();
        let release = released.clone();
        async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Seen::Eof);
                        return;
                    }
                    Ok(n) => n,
                };
                let got = &buf[..n];
                if got.windows(6).any(|w| w == b"silent") {
                    let _ = tx.send(Seen::Held);
                } else if got.windows(5).any(|w| w == b"later") {
                    let _ = tx.send(Seen::Held);
                    release.notified().await;
                    let _ = s.write_all(b"*2\r\n$5\r\nlater\r\n$1\r\nv\r\n").await;
                } else {
                    let _ = s.write_all(b"*-1\r\n").await;
                }
            }
        }
    })
    .await;
    (addr, rx, release)
}

/// A client of `addr` with a warm pipelined connection and a warm blocking-command connection, opened in real
/// time.
async fn warm_client(addr: std::net::SocketAddr, grace: Duration) -> Client<Resp> {
    let client = Client::builder(Resp::default())
        .endpoint(addr)
        .timeouts(Timeouts::default().with_close_grace(grace))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    assert_eq!(
        client.command(["GET", "k"]).await.unwrap(),
        Value::NullArray
    );
    assert_eq!(
        client.command(["BLPOP", "warm", "1"]).await.unwrap(),
        Value::NullArray
    );
    client
}

#[tokio::test]
async fn close_cuts_a_blocking_call_at_the_grace_and_its_caller_sees_closed() {
    let (addr, mut seen, _release) = peer().await;
    let client = warm_client(addr, Duration::from_secs(2)).await;
    tokio::time::pause();
    let blocked = tokio::spawn({
        let client = client.clone();
        async move { client.command(["BLPOP", "silent", "0"]).await }
    });
    assert_eq!(seen.recv().await, Some(Seen::Held));
    let start = Instant::now(); // paused clock: exact
    client.close().await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_secs(2) + Duration::from_millis(1),
        "close took {took:?}, grace 2 s"
    );
    let e = blocked.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
    assert_eq!(e.phase(), Phase::Read, "{e}");
    assert!(e.to_string().contains("close grace"), "{e}");
    // Both connections were closed: the idle pipelined one at once, the blocked one at the cut. The peer sees
    // the end of each stream (a Redis server drops the blocked client).
    assert_eq!(seen.recv().await, Some(Seen::Eof));
    assert_eq!(seen.recv().await, Some(Seen::Eof));
    // New calls are refused at once.
    let e = client.command(["GET", "k"]).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Closed, Phase::PoolWait),
        "{e}"
    );
}

#[tokio::test]
async fn a_call_that_ends_within_the_grace_succeeds_and_close_returns_then() {
    let (addr, mut seen, release) = peer().await;
    let client = warm_client(addr, Duration::from_secs(3600)).await;
    tokio::time::pause();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.command(["BLPOP", "later", "0"]).await }
    });
    assert_eq!(seen.recv().await, Some(Seen::Held));
    let start = Instant::now();
    let closing = tokio::spawn({
        let client = client.clone();
        async move { client.close_within(Duration::from_secs(10)).await }
    });
    tokio::task::yield_now().await;
    // A new call while the client closes is refused, without waiting.
    let e = client.command(["GET", "k"]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
    // The idle pipelined connection is closed at once, while the call is still in progress.
    assert_eq!(seen.recv().await, Some(Seen::Eof));
    release.notify_one();
    let reply = call.await.unwrap().unwrap();
    assert_eq!(
        reply,
        Value::Array(vec![Value::bulk("later"), Value::bulk("v")])
    );
    closing.await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_grace_of_zero_cuts_at_once() {
    let (addr, mut seen, _release) = peer().await;
    let client = warm_client(addr, Duration::from_secs(3600)).await;
    tokio::time::pause();
    let blocked = tokio::spawn({
        let client = client.clone();
        async move { client.command(["BLPOP", "silent", "0"]).await }
    });
    assert_eq!(seen.recv().await, Some(Seen::Held));
    let start = Instant::now();
    client.close_within(Duration::ZERO).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    let e = blocked.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
}
