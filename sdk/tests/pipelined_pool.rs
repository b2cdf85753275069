//! Issue 3, "Pool": a pipelined pool opens connections up to `max_size` as callers arrive, even when the
//! connections it has sit idle in the pool but full (callers queue on them without a check-out).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::framed_client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_arriving_one_by_one_get_new_connections_while_the_pool_has_room() {
    let (server, addr) = sockpool_testkit::server::framed();
    let client = framed_client(addr, 4).pipeline_depth(2).build().unwrap();
    // Eight slow requests, started 10 ms apart: 4 connections x 2 slots hold them all at once. A pool that
    // did not open a connection while it had room would leave some of them queued behind a full one, never
    // all eight in flight together (each lasts 300 ms; the last starts 70 ms after the first).
    let mut calls = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client.sleep(Duration::from_millis(300), Bytes::new()).await
        }));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_at_once =
        sockpool_testkit::eventually(Duration::from_secs(5), || client.stats().in_flight == 8)
            .await;
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let stats = client.stats();
    assert!(
        all_at_once,
        "the eight requests were never all in flight: {stats:?}"
    );
    assert_eq!(stats.connects, 4, "{stats:?}");
    assert_eq!(stats.endpoints[0].size, 4, "{stats:?}");
    drop(server);
}

/// A server that accepts, reads whatever comes and never replies nor closes. Counts the connections it accepted
/// and those the client closed (EOF or reset).
async fn silent_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    let (accepted, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let addr = common::tcp_server({
        let (accepted, ended) = (accepted.clone(), ended.clone());
        move |mut s| {
            let (accepted, ended) = (accepted.clone(), ended.clone());
            async move {
                accepted.fetch_add(1, Ordering::SeqCst);
                let mut buf = vec![0u8; 4096];
                while let Ok(1..) = s.read(&mut buf).await {}
                ended.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .await;
    (addr, accepted, ended)
}

/// How long a connection waits for the late replies of requests nobody waits for any more (at depth 1 and
/// deeper alike).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Pipelined connections whose every request timed out hold no caller: they wait for the late replies no longer
/// than the drain limit, then close, and a closed client leaves no driver task or socket behind. (Measured
/// before: 50 timed-out GETs at depth 64 left 50 driver tasks and their sockets open for good, after `close()`
/// and drop.)
#[tokio::test(start_paused = true)]
async fn pipelined_connections_to_a_server_that_never_answers_close_within_the_drain_limit() {
    use std::sync::atomic::Ordering;
    let (addr, accepted, ended) = silent_server().await;
    let client = sockpool::Client::builder(sockpool::protocol::Resp::default())
        .endpoint(addr)
        .pipeline_depth(64)
        .timeouts(sockpool::Timeouts::default().with_request(Duration::from_millis(100)))
        .build()
        .unwrap();
    for _ in 0..50 {
        let e = client.command(["GET", "k"]).await.unwrap_err();
        assert!(e.is_timeout(), "{e}");
    }
    let opened = accepted.load(Ordering::SeqCst);
    assert!(opened >= 1, "{opened}");
    client.close().await;
    drop(client);
    let closed_at = tokio::time::Instant::now(); // paused clock: exact
    let all_ended = sockpool_testkit::eventually(DRAIN_LIMIT + Duration::from_millis(10), || {
        ended.load(Ordering::SeqCst) == accepted.load(Ordering::SeqCst)
    })
    .await;
    assert!(
        all_ended,
        "{} of {} connections still open {:?} after close",
        accepted.load(Ordering::SeqCst) - ended.load(Ordering::SeqCst),
        accepted.load(Ordering::SeqCst),
        closed_at.elapsed()
    );
}
