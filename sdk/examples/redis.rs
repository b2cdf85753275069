//! The typed Redis API: a URL that sets up every connection, typed replies, error replies as `Err`, a
//! transaction on an exclusive connection, `WATCH`, `SCAN`, and the client's counters as Prometheus text.
//!
//! ```text
//! redis-server --port 6379 --user app on '>s3cret' '~*' '&*' '+@all' &
//! cargo run -p sockpool --example redis -- 'redis://app:s3cret@127.0.0.1:6379/3?client_name=example'
//! ```

use std::collections::HashMap;

use sockpool::codec::resp::Value;
use sockpool::redis::cmd;
use sockpool::{Client, ErrorKind, PoolConfig};

#[tokio::main]
async fn main() -> Result<(), sockpool::Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    // AUTH, SELECT and CLIENT SETNAME from the URL run on every connection the pool opens, before its first
    // request (also after a restart of Redis).
    let client = Client::redis(&url)?
        .pool(PoolConfig::default().with_max_size(8))
        .build()?;

    // Typed replies.
    client.set("example:greeting", "hello").await?;
    let greeting: Option<String> = client.get("example:greeting").await?;
    let missing: Option<String> = client.get("example:nothing").await?;
    let n: i64 = client.incr("example:counter", 5).await?;
    let _: i64 = client
        .query(cmd("HSET").arg("example:h").args(["a", "1", "b", "2"]))
        .await?;
    let h: HashMap<String, i64> = client.query(cmd("HGETALL").arg("example:h")).await?;
    println!("greeting={greeting:?} missing={missing:?} counter={n} hash={h:?}");

    // Binary-safe arguments: no quoting.
    client
        .set("example:bin", &b"line one\r\nline \"two\"\0"[..])
        .await?;

    // An error reply is an Err of kind Server with Redis's code …
    let err = client.get::<String>("example:h").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    println!("{} -> code {:?}", err, err.server_code());
    // … while the Value API keeps it as a value.
    let v = client.command(["GET", "example:h"]).await?;
    assert!(matches!(v, Value::Error(_)));

    // SELECT on the shared connections is refused: it would leak into other callers' requests.
    let refused = client.command(["SELECT", "1"]).await.unwrap_err();
    println!("refused: {refused}");

    // MULTI/EXEC on a connection lent to this caller alone.
    let mut conn = client.exclusive().await?;
    let replies: Option<(i64, i64)> = conn
        .transaction([
            cmd("INCR").arg("example:counter"),
            cmd("INCR").arg("example:counter"),
        ])
        .await?;
    println!("transaction: {replies:?}");

    // WATCH: an optimistic read-modify-write, retried while another client changes the key.
    loop {
        conn.watch(["example:counter"]).await?;
        let v: i64 = conn.query(cmd("GET").arg("example:counter")).await?;
        let done: Option<()> = conn
            .transaction([cmd("SET").arg("example:counter").arg(v * 2)])
            .await?;
        if done.is_some() {
            break;
        }
    }
    drop(conn);

    // SCAN, in steps of about 100 keys.
    let keys: Vec<String> = client
        .scan()
        .pattern("example:*")
        .count(100)
        .collect()
        .await?;
    println!("{} keys: {keys:?}", keys.len());
    let deleted = client.del(&keys).await?;
    println!("deleted {deleted}");

    print!("{}", client.stats().to_prometheus("example_redis"));
    client.close().await;
    Ok(())
}
