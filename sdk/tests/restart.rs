//! Issue 3 item 2: after a server restart, stale pooled connections are found and dropped without costing a
//! failed request each.

use std::time::Duration;

use bytes::Bytes;
use sockpool::{Client, PoolConfig, RetryPolicy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_costs_no_request_and_stale_connections_close_as_peer_closed() {
    // Below the ephemeral range: the client's reconnects cannot take the port while the server is down.
    let addr = sockpool_testkit::ports::restartable_addr();
    let server = sockpool_testkit::server::start(&[&format!("framed={addr}")]);
    let client = Client::framed()
        .endpoint(addr)
        .pool(PoolConfig::default().with_max_size(16).with_min_idle(16))
        // No retries: a stale connection handed out would show as a failed request.
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    // The reaper warms the pool in the background too; either way 16 are open after this.
    client.warm().await.unwrap();
    let before = client.stats();
    assert_eq!(before.endpoints[0].idle, 16);
    assert_eq!(before.connects, 16);

    // Every warm connection accepted by the server (one still in its accept backlog would be reset, not closed).
    assert!(
        sockpool_testkit::eventually(Duration::from_secs(20), || {
            server.stats().snapshot().connections_open == 16
        })
        .await
    );

    // Stop the server and start a new one on the same port. A real restart takes longer than the kernel needs
    // to deliver the old server's FINs; here it is immediate, and on a loaded machine loopback delivery waits
    // for ksoftirqd. So wait until no warm socket is still ESTABLISHED (the FIN reached each one) before the
    // restart: what the client then makes of them is the SDK's work, which is what this test measures.
    let warm = established_to(addr.port());
    assert_eq!(warm.len(), 16, "{warm:?}");
    server.shutdown();
    assert!(
        sockpool_testkit::eventually(Duration::from_secs(20), || {
            established_to(addr.port())
                .iter()
                .all(|p| !warm.contains(p))
        })
        .await,
        "the stop never reached the client's sockets"
    );
    let server = sockpool_testkit::server::start(&[&format!("framed={addr}")]);

    let mut ok = 0;
    for i in 0..1000u32 {
        let payload = Bytes::from(i.to_be_bytes().to_vec());
        let reply = client.echo(payload.clone()).await;
        match reply {
            Ok(r) => {
                assert_eq!(r, payload);
                ok += 1;
            }
            Err(e) => panic!("request {i} after the restart failed: {e}"),
        }
    }
    assert_eq!(ok, 1000);
    let stats = client.stats();
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(stats.retries, 0, "{stats:?}");
    // Every stale connection was closed, and as "peer closed" (its own EOF), or invalidated in bulk by the
    // endpoint's generation when another connection saw the EOF first. (The reaper keeps min_idle warm, so
    // connections it opened while the old listener was closing may show up as resets on top.)
    let stale = stats.closes.peer_closed + stats.closes.endpoint_reset;
    assert!(stale >= 16, "{:?}", stats.closes);
    assert!(stats.closes.peer_closed >= 1, "{:?}", stats.closes);
    client.close().await;
    drop(server);
}

/// Local ports of this host's loopback TCP sockets that are connected to `port` and still ESTABLISHED (from
/// `/proc/net/tcp`: a socket that has received its peer's FIN is in CLOSE_WAIT instead).
fn established_to(port: u16) -> Vec<u16> {
    const ESTABLISHED: &str = "01";
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port_of = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote) = (port_of(f.get(1)?)?, port_of(f.get(2)?)?);
            (remote == port && *f.get(3)? == ESTABLISHED).then_some(local)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_at_the_stop_fail_retryable() {
    // Below the ephemeral range: the client's reconnects cannot take the port while the server is down.
    let addr = sockpool_testkit::ports::restartable_addr();
    let server = sockpool_testkit::server::start(&[&format!("framed={addr}")]);
    let client = Client::framed()
        .endpoint(addr)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.sleep(Duration::from_secs(5), Bytes::new()).await })
        })
        .collect();
    // Let them reach the server, then stop it (its shutdown deadline, 500 ms, is shorter than the sleep).
    assert!(
        sockpool_testkit::eventually(Duration::from_secs(20), || client.stats().in_flight == 8)
            .await,
        "requests in flight: {:?}",
        client.stats()
    );
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .unwrap();
    for c in calls {
        match c.await.unwrap() {
            Ok(_) => {}
            Err(e) => assert!(e.is_retryable(), "{e}"),
        }
    }
    let server = sockpool_testkit::server::start(&[&format!("framed={addr}")]);
    assert_eq!(&client.echo(&b"back"[..]).await.unwrap()[..], b"back");
    drop(server);
}
