//! Issue 3 item 1: cancelled requests never cause cross-talk, and leave no leaked permit behind.
//!
//! 10,000 framed requests with random ids and payloads; about 30% are cancelled at random points (timeouts of
//! 0–2 ms, and futures dropped after their first poll), at pipelining depth 1 and 8. Every completed reply must
//! carry its own request's id and payload; afterwards nothing is in flight, every connection is idle in the
//! pool with all its slots free, and no caller is admitted or waiting.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::framed_client;
use futures::FutureExt;
use rand::{Rng, SeedableRng};
use sockpool::codec::framed::{Op, Request, Status};

const REQUESTS: u64 = 10_000;
const TASKS: u64 = 50;

#[derive(Default)]
struct Tally {
    completed: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
}

async fn run(depth: usize) {
    let (server, addr) = sockpool_testkit::server::framed();
    let client = framed_client(addr, 8)
        .pipeline_depth(depth)
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let client = client.clone();
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(depth as u64 * 1000 + t);
            for _ in 0..REQUESTS / TASKS {
                let id: u64 = rng.gen();
                let len = rng.gen_range(0..512);
                let payload: Bytes = (0..len)
                    .map(|_| rng.gen::<u8>())
                    .collect::<Vec<u8>>()
                    .into();
                let mut req = Request::echo(id, payload.clone());
                if rng.gen_bool(0.5) {
                    // Simulated service time so that timeouts cut requests in flight, not only in the queue.
                    req.op = Op::Sleep;
                    req.arg = rng.gen_range(0..1500);
                }
                let fate: f64 = rng.gen();
                let outcome = if fate < 0.15 {
                    let limit = Duration::from_micros(rng.gen_range(0..2000));
                    tokio::time::timeout(limit, client.call(req)).await.ok()
                } else if fate < 0.30 {
                    // Dropped after its first poll: wherever that left it (pool wait, queued, in flight).
                    client.call(req).now_or_never()
                } else {
                    Some(client.call(req).await)
                };
                match outcome {
                    None => {
                        tally.cancelled.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Ok(reply)) => {
                        assert_eq!(reply.status, Status::Ok);
                        assert_eq!(reply.id, id, "a reply for another request: cross-talk");
                        assert_eq!(reply.payload, payload, "payload of another request");
                        tally.completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Err(e)) => {
                        assert!(fate < 0.30, "a call that was not cancelled failed: {e}");
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let all = futures::future::join_all(tasks);
    for r in tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("bounded run")
    {
        r.unwrap();
    }
    let completed = tally.completed.load(Ordering::Relaxed);
    let cancelled = tally.cancelled.load(Ordering::Relaxed);
    assert_eq!(completed + cancelled, REQUESTS);
    let share = cancelled as f64 / REQUESTS as f64;
    assert!((0.2..0.4).contains(&share), "cancelled share {share}");

    // Replies to cancelled requests are still read (and dropped) by the drivers: wait for them to drain.
    let drained =
        sockpool_testkit::eventually(Duration::from_secs(10), || client.stats().in_flight == 0)
            .await;
    let stats = client.stats();
    assert!(drained, "requests still in flight: {stats:?}");
    let ep = &stats.endpoints[0];
    assert_eq!(
        ep.idle, ep.size,
        "every connection back in the pool: {ep:?}"
    );
    assert_eq!(ep.slots_in_use, 0, "{ep:?}");
    assert_eq!(ep.waiting, 0, "{ep:?}");
    assert_eq!(ep.admitted, 0, "{ep:?}");
    assert_eq!(ep.calls, 0, "{ep:?}");
    if depth == 1 {
        // A depth-1 connection keeps the reply owed: it is retired.
        assert!(
            stats.closes.cancelled > 0,
            "cancelled calls retire their connection"
        );
    } else {
        // A pipelined connection is shared: a caller giving up does not retire it (its late reply is read and
        // dropped, as the cross-talk checks above prove).
        assert_eq!(stats.closes.cancelled, 0, "{stats:?}");
    }
    assert_eq!(
        stats.closes.protocol + stats.closes.stray_bytes,
        0,
        "{stats:?}"
    );

    // And the pool still works.
    assert_eq!(&client.echo(&b"after"[..]).await.unwrap()[..], b"after");
    client.close().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_requests_never_cross_talk_at_depth_1() {
    run(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_requests_never_cross_talk_at_depth_8() {
    run(8).await;
}
