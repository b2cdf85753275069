//! Issue 16 item 1: the default client multiplexes concurrent callers onto few connections, their requests that
//! arrive together going out in one write, each reply to its own caller; deadlines still fire on time (paused
//! clock). The blocking-command routing is tested against a real redis-server (`tests/peers/redis.rs`).

mod common;

use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use sockpool::codec::framed::{Request, Status};
use sockpool::{Client, Phase, Timeouts};
use tokio::time::Instant;

#[tokio::test(flavor = "current_thread")]
async fn fifty_callers_at_once_share_one_connection_and_one_write() {
    let (server, addr) = sockpool_testkit::server::framed();
    // Every setting at its default.
    let client = Client::framed().endpoint(addr).build().unwrap();
    client.echo(&b"warm"[..]).await.unwrap();
    let before = client.stats();
    assert_eq!(before.endpoints[0].size, 1, "{before:?}");
    // Fifty callers queue their requests before the connection's driver runs (one thread: the driver, woken by
    // the first, runs after the fifty): it must write them in one call, and hand each reply to its caller.
    let calls: Vec<_> = (0..50u64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let payload = Bytes::from(format!("caller {i}"));
                let reply = client
                    .call(Request::echo(client.next_id(), payload.clone()))
                    .await
                    .unwrap();
                assert_eq!(reply.status, Status::Ok);
                assert_eq!(reply.payload, payload, "caller {i} got another's reply");
            })
        })
        .collect();
    for c in calls {
        c.await.unwrap();
    }
    let after = client.stats();
    let ep = &after.endpoints[0];
    assert_eq!(after.connects, 1, "{after:?}");
    assert_eq!(ep.size, 1, "{after:?}");
    assert_eq!(
        ep.writes - before.endpoints[0].writes,
        1,
        "fifty requests queued together go out in one write: {after:?}"
    );
    assert_eq!(after.succeeded, 51);
    client.close().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_callers_each_get_their_own_replies_with_fewer_writes_than_requests() {
    let (server, addr) = sockpool_testkit::server::framed();
    let client = Client::framed().endpoint(addr).build().unwrap();
    const CALLERS: u64 = 200;
    const EACH: u64 = 25;
    let tasks: Vec<_> = (0..CALLERS)
        .map(|t| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                for _ in 0..EACH {
                    let len = rng.gen_range(0..300);
                    let payload: Bytes =
                        (0..len).map(|_| rng.gen::<u8>()).collect::<Vec<_>>().into();
                    let id = client.next_id();
                    let reply = client
                        .call(Request::echo(id, payload.clone()))
                        .await
                        .unwrap();
                    assert_eq!(reply.id, id, "a reply for another request");
                    assert_eq!(reply.payload, payload, "payload of another request");
                }
            })
        })
        .collect();
    let all = futures::future::join_all(tasks);
    for r in tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("bounded run")
    {
        r.unwrap();
    }
    let stats = client.stats();
    let ep = &stats.endpoints[0];
    assert_eq!(stats.succeeded, CALLERS * EACH, "{stats:?}");
    assert!(
        ep.writes > 0 && ep.writes < stats.requests,
        "requests of concurrent callers share writes: {stats:?}"
    );
    // Every connection is pipelined: it takes up to 64 callers, never one connection per caller.
    assert!(ep.size <= 32 && (ep.size as u64) < CALLERS, "{stats:?}");
    assert_eq!(stats.in_flight, 0, "{stats:?}");
    client.close().await;
    drop(server);
}

/// A framed server that, when dropped, waits only 50 ms for requests still in service (the SLEEPs the test gives
/// up on are not waited for).
fn quick_stop_server() -> (sockpool_server::ServerHandle, std::net::SocketAddr) {
    let server = sockpool_testkit::server::start_with(&["framed=127.0.0.1:0"], |c| {
        c.shutdown_deadline = Duration::from_millis(50)
    });
    let addr = server.tcp_addr(sockpool_server::Proto::Framed).unwrap();
    (server, addr)
}

#[tokio::test(flavor = "current_thread")]
async fn callers_sharing_a_connection_each_time_out_at_their_deadline_then_a_new_connection_serves()
{
    let (server, addr) = quick_stop_server();
    let client = Client::framed()
        .endpoint(addr)
        .timeouts(Timeouts::default().with_request(Duration::from_millis(50)))
        .build()
        .unwrap();
    client.echo(&b"warm"[..]).await.unwrap();
    tokio::time::pause();
    // Twenty callers on the one connection, each starting 2 ms after the previous (all before the first
    // deadline), each sending a 1 s SLEEP the server answers only a second of real time later: each must time
    // out 50 ms after its own start.
    let calls: Vec<_> = (0..20u64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2 * i)).await;
                let began = Instant::now();
                let e = client
                    .sleep(Duration::from_secs(1), Bytes::new())
                    .await
                    .unwrap_err();
                (began.elapsed(), e)
            })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        let (took, e) = c.await.unwrap();
        assert!(e.is_timeout(), "{e}");
        assert_eq!(e.phase(), Phase::Read, "{e}");
        // Tokio's timers tick in whole milliseconds.
        assert!(
            took >= Duration::from_millis(50) && took <= Duration::from_millis(51),
            "caller {i} timed out after {took:?}"
        );
    }
    let stats = client.stats();
    assert_eq!(
        stats.connects, 1,
        "all twenty shared one connection: {stats:?}"
    );
    assert_eq!(stats.timeouts, 20, "{stats:?}");
    tokio::time::resume();
    // The connection that missed deadlines takes no new request: the next call gets a new one.
    assert_eq!(&client.echo(&b"after"[..]).await.unwrap()[..], b"after");
    let stats = client.stats();
    assert_eq!(stats.connects, 2, "{stats:?}");
    client.close().await;
    drop(server);
}
