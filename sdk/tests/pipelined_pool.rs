//! Issue 3, "Pool": a pipelined pool opens connections up to `max_size` as callers arrive, even when the
//! connections it has sit idle in the pool but full (callers queue on them without a check-out).

use std::time::Duration;

use bytes::Bytes;
use sockpool::{Client, PoolConfig};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_arriving_one_by_one_get_new_connections_while_the_pool_has_room() {
    let (server, addr) = sockpool_testkit::server::framed();
    let client = Client::framed()
        .endpoint(addr)
        .pipeline_depth(2)
        .pool(PoolConfig {
            max_size: 4,
            ..PoolConfig::default()
        })
        .build()
        .unwrap();
    // Eight slow requests, started 10 ms apart: 4 connections x 2 slots hold them all at once. The server
    // answers a connection's requests one after the other, so two on one connection take 2 x 300 ms.
    let start = Instant::now();
    let mut calls = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client
                .sleep(Duration::from_millis(300), Bytes::new())
                .await
                .map(|_| Instant::now())
        }));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut last = start;
    for c in calls {
        last = last.max(c.await.unwrap().unwrap());
    }
    let stats = client.stats();
    assert_eq!(stats.connects, 4, "{stats:?}");
    assert_eq!(stats.endpoints[0].size, 4, "{stats:?}");
    // No request waited behind a full connection for a whole second round while the pool had room.
    let took = last - start;
    assert!(took < Duration::from_millis(1200), "took {took:?}");
    drop(server);
}
