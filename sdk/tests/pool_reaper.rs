//! The background reaper against a real server: min idle kept warm, idle timeout and max lifetime enforced
//! without any call touching the pool.

use std::time::Duration;

use sockpool::{Client, PoolConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_idle_is_kept_warm_in_the_background() {
    let (server, addr) = sockpool_testkit::server::framed();
    let client = Client::framed()
        .endpoint(addr)
        .pool(
            PoolConfig::default()
                .with_min_idle(3)
                .with_reap_interval(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    assert!(
        sockpool_testkit::eventually(Duration::from_secs(10), || client.stats().endpoints[0].idle
            == 3)
        .await,
        "{:?}",
        client.stats()
    );
    let stats = client.stats();
    assert_eq!(stats.connects, 3);
    assert_eq!(stats.requests, 0, "no call was needed");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_expired_connections_are_closed_by_the_reaper() {
    let (server, addr) = sockpool_testkit::server::framed();
    let idle = Client::framed()
        .endpoint(addr)
        .pool(
            PoolConfig::default()
                .with_idle_timeout(Some(Duration::from_millis(100)))
                .with_reap_interval(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    idle.echo(&b"x"[..]).await.unwrap();
    assert_eq!(idle.stats().endpoints[0].size, 1);
    assert!(
        sockpool_testkit::eventually(Duration::from_secs(10), || idle.stats().endpoints[0].size
            == 0)
        .await
    );
    assert_eq!(idle.stats().closes.idle_timeout, 1);

    let aging = Client::framed()
        .endpoint(addr)
        .pool(
            PoolConfig::default()
                .with_max_lifetime(Some(Duration::from_millis(100)))
                .with_lifetime_jitter(0.5)
                .with_reap_interval(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    aging.echo(&b"x"[..]).await.unwrap();
    assert!(
        sockpool_testkit::eventually(Duration::from_secs(10), || aging.stats().endpoints[0].size
            == 0)
        .await
    );
    assert_eq!(aging.stats().closes.max_lifetime, 1);
    // The next call simply opens a new connection.
    aging.echo(&b"y"[..]).await.unwrap();
    assert_eq!(aging.stats().connects, 2);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checked_out_connection_is_the_lower_layer_and_goes_back_on_drop() {
    let (server, addr) = sockpool_testkit::server::framed();
    let client = Client::framed().endpoint(addr).build().unwrap();
    {
        let conn = client.checkout().await.unwrap();
        let reply = conn
            .call(sockpool::codec::framed::Request::echo(3, &b"direct"[..]))
            .await
            .unwrap();
        assert_eq!((reply.id, &reply.payload[..]), (3, &b"direct"[..]));
        assert_eq!(client.stats().endpoints[0].idle, 0);
    }
    assert_eq!(client.stats().endpoints[0].idle, 1);
    client.echo(&b"reuse"[..]).await.unwrap();
    assert_eq!(client.stats().connects, 1);
    drop(server);
}
