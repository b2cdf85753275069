//! Issue 13 item 1: `PoolConfig::connection_per_request` (oha's `disable_keepalive`) is a knob of the same
//! engine: every call opens its own connection, gets its reply on it and closes it, and at most `max_size` are
//! open at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sockpool::codec::framed::{Response, ServerCodec};
use sockpool::codec::TokioUtilCodec;
use sockpool::{Client, ClientConfig, PoolConfig};
use tokio_util::codec::Framed;

/// Connections open now, and the most ever open at once.
#[derive(Default)]
struct Open {
    now: AtomicUsize,
    most: AtomicUsize,
    accepted: AtomicUsize,
}

/// A framed echo server on a free loopback port that answers each request after `delay` and counts its open
/// connections. It serves until the test's runtime ends.
async fn counting_server(delay: Duration) -> (std::net::SocketAddr, Arc<Open>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(Open::default());
    let counts = open.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let counts = counts.clone();
            counts.accepted.fetch_add(1, Ordering::SeqCst);
            let n = counts.now.fetch_add(1, Ordering::SeqCst) + 1;
            counts.most.fetch_max(n, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut conn = Framed::new(sock, TokioUtilCodec::new(ServerCodec::default()));
                while let Some(Ok(req)) = conn.next().await {
                    tokio::time::sleep(delay).await;
                    if conn.send(Response::ok(req.id, req.payload)).await.is_err() {
                        break;
                    }
                }
                counts.now.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, open)
}

fn per_request(max_size: usize) -> ClientConfig {
    ClientConfig::default().with_pool(
        PoolConfig::default()
            .with_max_size(max_size)
            .with_connection_per_request(true),
    )
}

#[tokio::test]
async fn every_call_opens_and_closes_its_own_connection() {
    let (addr, open) = counting_server(Duration::ZERO).await;
    let client = Client::framed()
        .endpoint(addr)
        .config(per_request(4))
        .build()
        .unwrap();
    for i in 0..6 {
        let payload = Bytes::from(format!("call {i}"));
        assert_eq!(client.echo(payload.clone()).await.unwrap(), payload);
    }
    let stats = client.stats();
    assert_eq!(stats.connects, 6);
    assert_eq!(stats.closes.local, 6);
    assert_eq!(open.accepted.load(Ordering::SeqCst), 6);
    // The client keeps none of them: the server sees every one closed (bounded wait for its tasks to notice).
    for _ in 0..200 {
        if open.now.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(open.now.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn at_most_max_size_connections_are_open_at_once() {
    let (addr, open) = counting_server(Duration::from_millis(20)).await;
    let client = Client::framed()
        .endpoint(addr)
        .config(per_request(2))
        .build()
        .unwrap();
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.echo(Bytes::from(format!("c{i}"))).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(open.accepted.load(Ordering::SeqCst), 8);
    assert!(
        open.most.load(Ordering::SeqCst) <= 2,
        "{}",
        open.most.load(Ordering::SeqCst)
    );
}

#[tokio::test(start_paused = true)]
async fn a_reply_later_than_the_request_timeout_is_a_timeout() {
    let (addr, _open) = counting_server(Duration::from_millis(30)).await;
    let mut config = per_request(2);
    config.timeouts.request = Duration::from_millis(5);
    let client = Client::framed()
        .endpoint(addr)
        .config(config)
        .build()
        .unwrap();
    for i in 0..4 {
        let e = client
            .echo(Bytes::from(format!("late {i}")))
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(e.was_sent(), "{e}");
    }
}
