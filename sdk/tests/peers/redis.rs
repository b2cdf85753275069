//! Issue 3 item 5: a real redis-server through the pool, request/response and pipelined at depth 16.

use std::time::Duration;

use bytes::Bytes;
use sockpool::codec::resp::Value;
use sockpool::protocol::Resp;
use sockpool::{Client, PoolConfig};
use sockpool_testkit::peers::start_redis;

async fn exercise(client: &Client<Resp>, prefix: &str) {
    let key = format!("{prefix}:k");
    assert_eq!(
        client.command(["SET", key.as_str(), "v1"]).await.unwrap(),
        Value::Simple(Bytes::from_static(b"OK"))
    );
    assert_eq!(
        client.command(["GET", key.as_str()]).await.unwrap(),
        Value::Bulk(Bytes::from_static(b"v1"))
    );
    let counter = format!("{prefix}:n");
    assert_eq!(
        client.command(["INCR", counter.as_str()]).await.unwrap(),
        Value::Integer(1)
    );
    assert_eq!(
        client.command(["INCR", counter.as_str()]).await.unwrap(),
        Value::Integer(2)
    );
    assert_eq!(
        client
            .command(["DEL", key.as_str(), counter.as_str()])
            .await
            .unwrap(),
        Value::Integer(2)
    );
    assert_eq!(
        client.command(["GET", key.as_str()]).await.unwrap(),
        Value::Null
    );
    // INCR of i64::MAX and of a non-integer: Redis's own error texts (the control server must say the same).
    let max = format!("{prefix}:max");
    for (value, error) in [
        (
            "9223372036854775807",
            "ERR increment or decrement would overflow",
        ),
        ("abc", "ERR value is not an integer or out of range"),
    ] {
        client.command(["SET", max.as_str(), value]).await.unwrap();
        assert_eq!(
            client.command(["INCR", max.as_str()]).await.unwrap(),
            Value::Error(Bytes::from_static(error.as_bytes())),
            "INCR of {value}"
        );
        assert_eq!(
            client.command(["GET", max.as_str()]).await.unwrap(),
            Value::Bulk(Bytes::from_static(value.as_bytes())),
            "left as it was"
        );
    }
    client.command(["DEL", max.as_str()]).await.unwrap();
    // A Redis error is a value, not a transport error, and the connection stays usable.
    let wrong = client.command(["INCR"]).await.unwrap();
    assert!(wrong.is_error(), "{wrong:?}");
    assert_eq!(
        client.command(["PING"]).await.unwrap(),
        Value::Simple(Bytes::from_static(b"PONG"))
    );
}

/// Many callers sharing few connections at depth 16: every reply must be its own.
async fn pipelined(client: &Client<Resp>, prefix: &str) {
    const N: usize = 2000;
    let sets = (0..N).map(|i| {
        let c = client.clone();
        let key = format!("{prefix}:p{i}");
        async move {
            c.command(["SET".to_string(), key, format!("value-{i}")])
                .await
        }
    });
    for r in futures::future::join_all(sets).await {
        assert_eq!(r.unwrap(), Value::Simple(Bytes::from_static(b"OK")));
    }
    let gets = (0..N).map(|i| {
        let c = client.clone();
        let key = format!("{prefix}:p{i}");
        async move { (i, c.command(["GET".to_string(), key]).await) }
    });
    for (i, r) in futures::future::join_all(gets).await {
        assert_eq!(r.unwrap(), Value::Bulk(Bytes::from(format!("value-{i}"))));
    }
    let incrs = (0..N).map(|_| client.command(["INCR".to_string(), format!("{prefix}:count")]));
    let mut seen: Vec<i64> = futures::future::join_all(incrs)
        .await
        .into_iter()
        .map(|r| r.unwrap().as_integer().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=N as i64).collect::<Vec<_>>());
    let stats = client.stats();
    assert!(stats.endpoints[0].size <= 2, "{stats:?}");
    assert_eq!(stats.failed, 0);
}

fn client(addr: impl ToString) -> Client<Resp> {
    Client::builder(Resp::default())
        .endpoint(addr)
        .pool(
            PoolConfig::default()
                .with_max_size(2)
                // 2,000 callers at once: admit them all (the default bound would fail the overflow fast).
                .with_max_waiters(4096),
        )
        .pipeline_depth(16)
        .build()
        .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn real_redis_through_the_pool_and_pipelined_at_depth_16() {
    let redis = start_redis(1);
    let client = client(redis.addr);
    tokio::time::timeout(Duration::from_secs(60), async {
        exercise(&client, "sdk-test").await;
        pipelined(&client, "sdk-test").await;
    })
    .await
    .expect("bounded");
    client.close().await;
    drop(redis);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn sockpool_server_resp_through_the_pool_and_pipelined() {
    let mut config = sockpool_server::ServerConfig {
        listeners: vec!["resp=127.0.0.1:0".parse().unwrap()],
        workers: 2,
        ..sockpool_server::ServerConfig::default()
    };
    config.shutdown_deadline = Duration::from_millis(500);
    let server = sockpool_server::Server::bind(config).unwrap().spawn();
    let client = client(server.tcp_addr(sockpool_server::Proto::Resp).unwrap());
    tokio::time::timeout(Duration::from_secs(60), async {
        exercise(&client, "sdk-test").await;
        pipelined(&client, "sdk-test").await;
    })
    .await
    .expect("bounded");
    drop(server);
}
