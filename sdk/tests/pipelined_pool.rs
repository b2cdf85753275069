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
