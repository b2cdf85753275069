//! Issue 16: the typed Redis API against a real redis-server — URL set-up with an ACL user (`AUTH`, `SELECT`,
//! `CLIENT SETNAME` on every connection, across a restart), state-changing commands refused on the shared
//! connections, conversions and `-WRONGTYPE` as an `Err`, `MULTI`/`EXEC` and `WATCH` on exclusive connections.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use sockpool::codec::resp::Value;
use sockpool::protocol::Resp;
use sockpool::redis::cmd;
use sockpool::{Client, ErrorKind, Phase, PoolConfig};
use sockpool_testkit::peers::{restart_redis, start_redis, start_redis_with, Redis};

/// An ACL user `app` (password `s3cret`), and a `default` user that needs a password too, so that a
/// connection the set-up did not authenticate can do nothing.
const ACL: &[&str] = &[
    "--user", "default", "on", ">admin", "~*", "&*", "+@all", "--user", "app", "on", ">s3cret",
    "~*", "&*", "+@all",
];

/// `db3:keys=40,…` lines of `INFO keyspace`, as (db, keys).
async fn keyspace(admin: &Client<Resp>) -> Vec<(String, u64)> {
    let info: String = admin.query(cmd("INFO").arg("keyspace")).await.unwrap();
    info.lines()
        .filter_map(|l| {
            let (db, rest) = l.split_once(':')?;
            let keys = rest
                .strip_prefix("keys=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((db.to_string(), keys))
        })
        .collect()
}

/// The `CLIENT LIST` entries named `name`, as (user, db).
async fn connections_named(admin: &Client<Resp>, name: &str) -> Vec<(String, String)> {
    let list: String = admin.query(cmd("CLIENT").arg("LIST")).await.unwrap();
    list.lines()
        .filter_map(|l| {
            let fields: HashMap<&str, &str> =
                l.split(' ').filter_map(|f| f.split_once('=')).collect();
            (fields.get("name") == Some(&name))
                .then(|| (fields["user"].to_string(), fields["db"].to_string()))
        })
        .collect()
}

/// Every key is in db 3, and the client's 8 connections (named `sdk-test`) are logged in as `app` on db 3.
async fn assert_40_keys_in_db_3_from_8_connections_as_app(admin: &Client<Resp>) {
    assert_eq!(keyspace(admin).await, [("db3".to_string(), 40)]);
    let conns = connections_named(admin, "sdk-test").await;
    assert_eq!(conns.len(), 8, "{conns:?}");
    assert!(
        conns.iter().all(|(user, db)| user == "app" && db == "3"),
        "{conns:?}"
    );
}

/// SET `keys` at once through the shared pool; a SET that failed because its connection died in the restart
/// is tried again (bounded).
async fn set_all(client: &Client<Resp>, keys: &[String]) {
    let sets = keys.iter().map(|k| async move {
        for attempt in 0.. {
            match client.set(k, "v").await {
                Ok(()) => return,
                Err(e) if attempt < 5 && e.is_closed() => continue,
                Err(e) => panic!("SET {k}: {e}"),
            }
        }
    });
    futures::future::join_all(sets).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn acl_user_url_puts_every_key_in_db_3_across_8_connections_and_a_restart() {
    let redis = start_redis_with(ACL);
    let port = redis.addr.port();
    let url = format!("redis://app:s3cret@127.0.0.1:{port}/3?client_name=sdk-test");
    let client = Client::redis(&url)
        .unwrap()
        .pool(PoolConfig::default().with_max_size(8).with_min_idle(8))
        .build()
        .unwrap();
    let admin = Client::redis(&format!("redis://:admin@127.0.0.1:{port}"))
        .unwrap()
        .build()
        .unwrap();
    let redis = tokio::time::timeout(Duration::from_secs(60), async {
        // min_idle: the reaper, or this warm-up, opens all 8 (each set up) before the first request.
        client.warm().await.unwrap();
        assert_eq!(client.stats().endpoints[0].size, 8);
        let keys: Vec<String> = (0..40).map(|i| format!("before:{i}")).collect();
        set_all(&client, &keys).await;
        assert_40_keys_in_db_3_from_8_connections_as_app(&admin).await;

        // A restart on the same port: every connection is new, and each runs the set-up again.
        let redis = tokio::task::spawn_blocking(move || restart_redis(redis, ACL))
            .await
            .unwrap();
        let keys: Vec<String> = (0..40).map(|i| format!("after:{i}")).collect();
        set_all(&client, &keys).await;
        client.warm().await.unwrap();
        set_all(&client, &keys).await;
        assert_40_keys_in_db_3_from_8_connections_as_app(&admin).await;

        // State-changing commands are refused on the shared connections, before anything is sent.
        for refused in [
            vec!["SELECT", "0"],
            vec!["multi"],
            vec!["CLIENT", "SETNAME", "x"],
        ] {
            let e = client.command(refused.clone()).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            assert!(!e.was_sent(), "{e}");
            let text = e.to_string();
            assert!(
                text.contains("on_connect") && text.contains("exclusive"),
                "{text}"
            );
        }
        assert_eq!(keyspace(&admin).await, [("db3".to_string(), 40)]);

        // A wrong password fails the set-up, names the phase, and leaves no connection behind.
        let wrong = Client::redis(&format!("redis://app:nope@127.0.0.1:{port}/3"))
            .unwrap()
            .build()
            .unwrap();
        let e = wrong.set("k", "v").await.unwrap_err();
        assert_eq!(e.phase(), Phase::Setup, "{e}");
        assert_eq!(e.server_code(), Some("WRONGPASS"), "{e}");
        assert!(!e.was_sent() && !e.is_retryable(), "{e}");
        assert_eq!(wrong.stats().endpoints[0].size, 0);
        redis
    })
    .await
    .expect("bounded");
    client.close().await;
    drop(redis);
}

/// A client of `redis`'s database `db` with `max_size` connections, `depth` requests in flight on each.
fn client_of(redis: &Redis, db: u32, max_size: usize, depth: usize) -> Client<Resp> {
    Client::redis(&format!("redis://127.0.0.1:{}/{db}", redis.addr.port()))
        .unwrap()
        .pool(PoolConfig::default().with_max_size(max_size))
        .pipeline_depth(depth)
        .build()
        .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn typed_replies_and_wrongtype_as_an_err() {
    let redis = start_redis(1);
    // db 5 at depth 8: the set-up runs on pipelined connections too.
    let client = client_of(&redis, 5, 32, 8);
    tokio::time::timeout(Duration::from_secs(60), async {
        // Binary-safe arguments: spaces, quotes, CR LF and NUL need no quoting.
        let raw = &b"a \"quoted\" value\r\n\0end"[..];
        client.set("bin key", raw).await.unwrap();
        let back: Bytes = client.get("bin key").await.unwrap();
        assert_eq!(&back[..], raw);
        let back: Vec<u8> = client.get(&b"bin key"[..]).await.unwrap();
        assert_eq!(back, raw);
        let missing: Option<String> = client.get("nothing here").await.unwrap();
        assert_eq!(missing, None);
        client.set("s", "héllo").await.unwrap();
        let s: String = client.get("s").await.unwrap();
        assert_eq!(s, "héllo");
        assert_eq!(client.incr("n", 41).await.unwrap(), 41);
        let n: u64 = client.get("n").await.unwrap();
        assert_eq!(n, 41);
        let f: f64 = client
            .query(cmd("INCRBYFLOAT").arg("f").arg(1.5))
            .await
            .unwrap();
        assert_eq!(f, 1.5);
        let exists: bool = client.query(cmd("EXISTS").arg("n")).await.unwrap();
        assert!(exists);
        let (a, b, c): (String, i64, Option<String>) = client
            .query(cmd("MGET").arg("s").arg("n").arg("nothing here"))
            .await
            .unwrap();
        assert_eq!((a.as_str(), b, c), ("héllo", 41, None));
        let _: i64 = client
            .query(cmd("HSET").arg("h").args(["f1", "1", "f2", "2"]))
            .await
            .unwrap();
        let h: HashMap<String, i64> = client.query(cmd("HGETALL").arg("h")).await.unwrap();
        assert_eq!(h, HashMap::from([("f1".into(), 1), ("f2".into(), 2)]));
        let list: Vec<String> = {
            let _: i64 = client
                .query(cmd("RPUSH").arg("l").args(["x", "y", "z"]))
                .await
                .unwrap();
            client
                .query(cmd("LRANGE").arg("l").arg(0).arg(-1))
                .await
                .unwrap()
        };
        assert_eq!(list, ["x", "y", "z"]);

        // -WRONGTYPE is an Err of kind Server with its code; the connection stays in step.
        let e = client.get::<String>("l").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server, "{e}");
        assert_eq!(e.server_code(), Some("WRONGTYPE"), "{e}");
        assert!(e.was_sent() && !e.is_retryable());
        // A type mismatch is an Err of its own kind.
        let e = client.get::<i64>("s").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Type, "{e}");
        // The Value API is unchanged: the error is a value.
        let v = client.command(["GET", "l"]).await.unwrap();
        assert!(
            matches!(v, Value::Error(ref m) if m.starts_with(b"WRONGTYPE")),
            "{v:?}"
        );
        let pong: String = client.query(cmd("PING")).await.unwrap();
        assert_eq!(pong, "PONG");

        // SCAN: every key, in small steps.
        crate::common::scan_returns_every_key(&client).await;
        let fields: Vec<String> = client
            .scan_with(cmd("HSCAN").arg("h"))
            .collect()
            .await
            .unwrap();
        assert_eq!(fields.len(), 4);
        let admin = client_of(&redis, 0, 1, 1);
        let keys = keyspace(&admin).await;
        assert!(keys.len() == 1 && keys[0].0 == "db5", "{keys:?}");
    })
    .await
    .expect("bounded");
    client.close().await;
    drop(redis);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn multi_exec_and_watch_are_atomic_under_50_concurrent_callers() {
    let redis = start_redis(1);
    let client = client_of(&redis, 0, 8, 16);
    tokio::time::timeout(Duration::from_secs(60), async {
        // Two INCRs in one MULTI/EXEC from each of 50 tasks, while 50 more INCR the same key on the shared
        // connections: each transaction's two results are consecutive.
        crate::common::transactions_beside_single_commands_are_atomic(&client).await;
        // WATCH: 50 read-modify-write loops on one key, each retried until its EXEC ran; none is lost.
        crate::common::watch_loops_lose_no_update(&client).await;

        // A command Redis refuses to queue discards the transaction; the connection goes back clean.
        let mut conn = client.exclusive().await.unwrap();
        let e = conn
            .transaction::<Vec<Value>>([cmd("INCR").arg("tx"), cmd("NOSUCHCOMMAND")])
            .await
            .unwrap_err();
        assert_eq!(e.server_code(), Some("ERR"), "{e}");
        assert!(!conn.state_changed());
        // A command that fails while running (WRONGTYPE) does not stop the others: read as Vec<Value>, each
        // reply is there, the failed one as its error (it was an Err for the whole EXEC, hiding the INCR that
        // ran).
        let _: i64 = conn
            .query(cmd("RPUSH").arg("tx list").arg("x"))
            .await
            .unwrap();
        let replies = conn
            .transaction::<Vec<Value>>([cmd("INCR").arg("tx list"), cmd("INCR").arg("tx")])
            .await
            .unwrap()
            .expect("nothing WATCHed");
        assert!(
            matches!(&replies[..], [Value::Error(e), Value::Integer(151)] if e.starts_with(b"WRONGTYPE")),
            "{replies:?}"
        );
        assert!(!conn.state_changed());
        drop(conn);
        assert_eq!(client.get::<i64>("tx").await.unwrap(), 151);
        // SET … NX as a bool (a lock): nil, when the key was there, is false, as redis-rs reads it.
        let set_nx = || cmd("SET").arg("lock").arg("me").arg("NX");
        assert!(client.query::<bool>(set_nx()).await.unwrap());
        assert!(!client.query::<bool>(set_nx()).await.unwrap());

        // A SELECT before a transaction, or queued in one, leaves the connection changed: the transaction's end
        // took it for back to its set-up, and the next exclusive caller got it on db 1.
        let mut conn = client.exclusive().await.unwrap();
        conn.call(cmd("SELECT").arg(1).into_args()).await.unwrap();
        let _: Option<Vec<Value>> = conn.transaction([cmd("PING")]).await.unwrap();
        assert!(conn.state_changed());
        drop(conn);
        let mut conn = client.exclusive().await.unwrap();
        let _: Option<Vec<Value>> = conn
            .transaction([cmd("SELECT").arg(1), cmd("SET").arg("on db 1").arg("x")])
            .await
            .unwrap();
        assert!(conn.state_changed());
        drop(conn);
        for _ in 0..4 {
            let mut conn = client.exclusive().await.unwrap();
            let info: String = conn.query(cmd("CLIENT").arg("INFO")).await.unwrap();
            assert!(info.contains(" db=0 "), "{info}");
        }
        // A SUBSCRIBE is refused, not queued, and the transaction discarded.
        let mut conn = client.exclusive().await.unwrap();
        let e = conn
            .transaction::<Vec<Value>>([cmd("INCR").arg("tx"), cmd("SUBSCRIBE").arg("c")])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(!conn.state_changed());
        drop(conn);
        assert_eq!(client.get::<i64>("tx").await.unwrap(), 151);

        // An exclusive connection left WATCHing, or SELECTed, is closed rather than lent again.
        let mut conn = client.exclusive().await.unwrap();
        conn.watch(["w"]).await.unwrap();
        assert!(conn.state_changed());
        let mut conn2 = client.exclusive().await.unwrap();
        conn2.call(cmd("SELECT").arg(1).into_args()).await.unwrap();
        assert!(conn2.state_changed());
    })
    .await
    .expect("bounded");
    client.close().await;
    drop(redis);
}
