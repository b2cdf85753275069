//! Settings at their extremes are taken, or refused when built, never a panic or an abort later: a total
//! timeout of `Duration::MAX` panicked on the first call, a NaN jitter on the first retry or connect, a pool of
//! 10^12 connections aborted the process on its allocation, `usize::MAX` waiters overflowed.

use std::time::Duration;

use sockpool::{
    BufferConfig, Client, ClientConfig, ErrorKind, PoolConfig, RetryPolicy, Timeouts, UdpClient,
    UdpConfig,
};

fn framed_server() -> (sockpool_server::ServerHandle, std::net::SocketAddr) {
    let server = sockpool_testkit::server::start(&["framed=127.0.0.1:0"]);
    let addr = server
        .tcp_addr(sockpool_server::Proto::Framed)
        .expect("a framed listener");
    (server, addr)
}

#[tokio::test]
async fn settings_at_their_limits_work() {
    let (server, addr) = framed_server();
    let client = Client::framed()
        .endpoint(addr)
        .timeouts(Timeouts::default().with_total(Some(Duration::MAX)))
        .retry(
            RetryPolicy::default()
                .with_backoff_base(Duration::MAX)
                .with_backoff_max(Duration::MAX),
        )
        .pool(PoolConfig::default().with_max_waiters(usize::MAX))
        .pipeline_depth(usize::MAX)
        .build()
        .unwrap();
    assert_eq!(&client.echo(&b"far"[..]).await.unwrap()[..], b"far");
    client.close().await;
    drop(server);
}

#[tokio::test]
async fn settings_no_client_can_use_are_refused_when_built() {
    let build = |f: &dyn Fn(
        sockpool::ClientBuilder<sockpool::protocol::Framed>,
    ) -> sockpool::ClientBuilder<sockpool::protocol::Framed>| {
        f(Client::framed().endpoint("127.0.0.1:9"))
            .build()
            .map(drop)
            .unwrap_err()
    };
    for (what, e) in [
        (
            "jitter",
            build(&|b| b.retry(RetryPolicy::default().with_jitter(f64::NAN))),
        ),
        (
            "lifetime_jitter",
            build(&|b| b.pool(PoolConfig::default().with_lifetime_jitter(f64::NAN))),
        ),
        (
            "max_size",
            build(&|b| b.pool(PoolConfig::default().with_max_size(1_000_000_000_000))),
        ),
        (
            "budget_ratio",
            build(&|b| b.retry(RetryPolicy::default().with_budget_ratio(1e13))),
        ),
        // Allocated by each connection: 100 GiB aborted the process at the first connect, usize::MAX panicked
        // the connection's task and every call waited out the pool wait.
        (
            "buffers read_capacity",
            build(&|b| b.buffers(BufferConfig::default().with_read_capacity(100 << 30))),
        ),
        (
            "buffers write_capacity",
            build(&|b| b.buffers(BufferConfig::default().with_write_capacity(usize::MAX))),
        ),
        // Taken before: every call timed out (or, for a reply already buffered, did not).
        (
            "timeouts connect 0",
            build(&|b| b.timeouts(Timeouts::default().with_connect(Duration::ZERO))),
        ),
        (
            "timeouts tls_handshake 0",
            build(&|b| b.timeouts(Timeouts::default().with_tls_handshake(Duration::ZERO))),
        ),
        (
            "timeouts request 0",
            build(&|b| b.timeouts(Timeouts::default().with_request(Duration::ZERO))),
        ),
        (
            "timeouts total 0",
            build(&|b| b.timeouts(Timeouts::default().with_total(Some(Duration::ZERO)))),
        ),
        // Taken as 1 before, silently.
        ("pipeline_depth", build(&|b| b.pipeline_depth(0))),
        (
            "pipeline_depth",
            build(&|b| b.config(ClientConfig::default().with_pipeline_depth(0))),
        ),
    ] {
        assert_eq!(e.kind(), ErrorKind::Config, "{what}: {e}");
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
    let e = UdpClient::connect(
        "127.0.0.1:9".parse().unwrap(),
        UdpConfig::default().with_max_datagram(usize::MAX),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    let e = UdpClient::connect(
        "127.0.0.1:9".parse().unwrap(),
        UdpConfig::default().with_timeout(Duration::ZERO),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("timeout 0"), "{e}");
}

/// `ClientConfig::validate` refuses what the builder refuses, before any client is built (a load generator
/// checks every configuration of a tuning matrix this way before the first runs).
#[test]
fn validate_refuses_what_build_refuses() {
    assert!(ClientConfig::default().validate().is_ok());
    let c = ClientConfig::default;
    for (what, config) in [
        ("pipeline_depth", c().with_pipeline_depth(0)),
        (
            "max_size",
            c().with_pool(PoolConfig::default().with_max_size(0)),
        ),
        (
            "max_size",
            c().with_pool(PoolConfig::default().with_max_size(1_000_000_000_000)),
        ),
        (
            "jitter",
            c().with_retry(RetryPolicy::default().with_jitter(f64::NAN)),
        ),
        (
            "budget_ratio",
            c().with_retry(RetryPolicy::default().with_budget_ratio(1e13)),
        ),
        (
            "buffers read_capacity",
            c().with_buffers(BufferConfig::default().with_read_capacity(2 << 30)),
        ),
        (
            "timeouts request 0",
            c().with_timeouts(Timeouts::default().with_request(Duration::ZERO)),
        ),
    ] {
        let e = config.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{what}: {e}");
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
}

/// `"pipeline_depth": 0` in a configuration file is refused when the client is built, not taken as 1.
#[tokio::test]
async fn a_config_file_with_pipeline_depth_0_is_refused() {
    let config: ClientConfig =
        serde_json::from_str(r#"{"endpoints": ["127.0.0.1:9"], "pipeline_depth": 0}"#).unwrap();
    let e = Client::from_config(sockpool::protocol::Framed::default(), config)
        .map(drop)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("pipeline_depth 0"), "{e}");
}
