//! Issue 3 item 4: with max size 4 and at most 50 waiters, 200 concurrent callers: the overflow fails at once
//! with pool-exhausted, the rest succeed.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::framed_client;
use sockpool::{Client, ErrorKind, Phase, PoolConfig, Timeouts};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_fails_fast_and_the_rest_succeed() {
    const CALLERS: usize = 200;
    let service_time = Duration::from_millis(100);
    let config = PoolConfig::default()
        .with_max_size(4)
        .with_min_idle(4)
        .with_max_waiters(50);
    let (server, addr) = sockpool_testkit::server::framed();
    // Request/response (depth 1), asked for: each caller holds a connection.
    let client = Client::framed()
        .endpoint(addr)
        .pool(config.clone())
        .pipeline_depth(1)
        .build()
        .unwrap();
    client.warm().await.unwrap();

    // "At once" is an order, not a clock reading: every refusal comes before the first reply (a reply takes
    // the server's 100 ms service time; a refusal needs no round trip at all).
    let replies = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CALLERS));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|i| {
            let c = client.clone();
            let b = barrier.clone();
            let replies = replies.clone();
            tokio::spawn(async move {
                b.wait().await;
                let payload = Bytes::from(format!("caller {i}"));
                let r = c.sleep(service_time, payload.clone()).await;
                let replies_before = match &r {
                    Ok(_) => replies.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                    Err(_) => replies.load(std::sync::atomic::Ordering::SeqCst),
                };
                (r.map(|reply| reply == payload), replies_before)
            })
        })
        .collect();
    let mut succeeded = 0;
    let mut exhausted = 0;
    for t in tasks {
        let (r, replies_before) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("bounded")
            .unwrap();
        match r {
            Ok(matched) => {
                assert!(matched, "reply to another caller");
                succeeded += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::PoolExhausted, "{e}");
                assert_eq!(e.phase(), Phase::PoolWait);
                assert!(!e.was_sent());
                assert_eq!(
                    replies_before, 0,
                    "refused only after {replies_before} replies"
                );
                exhausted += 1;
            }
        }
    }
    let admitted = config.max_size + config.max_waiters;
    assert_eq!(succeeded, admitted);
    assert_eq!(exhausted, CALLERS - admitted);
    let stats = client.stats();
    assert_eq!(stats.pool_exhausted, exhausted as u64);
    assert!(stats.endpoints[0].size <= config.max_size);
    assert_eq!(stats.endpoints[0].admitted, 0);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_never_makes_a_caller_wait_while_the_pool_can_grow() {
    let service_time = Duration::from_millis(300);
    let (server, addr) = sockpool_testkit::server::framed();
    let client = framed_client(addr, 8).pipeline_depth(1).build().unwrap();
    let calls = (0..8).map(|_| client.sleep(service_time, Bytes::new()));
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    let stats = client.stats();
    assert_eq!(
        stats.connects, 8,
        "one connection per concurrent caller: {stats:?}"
    );
    // A bound, not a window: waiting for another caller's reply would take the whole 300 ms service time.
    assert!(
        stats.pool_wait_us_max < service_time.as_micros() as u64,
        "a caller waited for another's reply: {stats:?}"
    );
    drop(server);
}

/// More callers than connections, all the time: callers that find every connection busy queue in the pool
/// (FIFO), and while they wait newcomers queue behind them rather than take each connection as it frees. So
/// every caller is served in turn, and none waits out its pool wait timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_pool_serves_every_caller_in_turn() {
    let (server, addr) = sockpool_testkit::server::framed();
    let client = Client::framed()
        .endpoint(addr)
        .pool(PoolConfig::default().with_max_size(2).with_max_waiters(100))
        .timeouts(Timeouts::default().with_pool_wait(Duration::from_millis(500)))
        .pipeline_depth(1)
        .build()
        .unwrap();
    // A load loop bounded in time and count; what the test asserts is counts, not times.
    let end = Instant::now() + Duration::from_secs(1); // real clock: the loop's bound, not a measurement
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, 0u32);
                let in_time = || Instant::now() < end; // real clock: the loop's bound (see above)
                while in_time() && ok + failed < 3000 {
                    match client.echo(&b"turn"[..]).await {
                        Ok(_) => ok += 1,
                        Err(_) => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let mut served = Vec::new();
    for c in callers {
        let (ok, failed) = c.await.unwrap();
        assert_eq!(
            failed,
            0,
            "a caller timed out waiting: {:?}",
            client.stats()
        );
        served.push(ok);
    }
    let mean = served.iter().sum::<u32>() / served.len() as u32;
    assert!(
        served.iter().all(|&n| n * 4 >= mean),
        "some callers starved: {served:?}"
    );
    assert_eq!(client.stats().connects, 2);
    drop(server);
}
