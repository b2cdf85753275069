//! Helpers shared by the SDK's integration tests (the servers and peers come from `sockpool_testkit`).
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;

use sockpool::protocol::{Framed, Resp};
use sockpool::redis::cmd;
use sockpool::{Client, ClientBuilder, PoolConfig};

/// A framed client of `addr` whose pool holds at most `max_size` connections, every other setting at its
/// default: add to it, then `build()`.
pub fn framed_client(addr: SocketAddr, max_size: usize) -> ClientBuilder<Framed> {
    Client::framed()
        .endpoint(addr)
        .pool(PoolConfig::default().with_max_size(max_size))
}

/// A TCP server on a free loopback port that runs `serve` on each connection it accepts, each in a task of its
/// own, until the test's runtime ends. Returns its address.
pub async fn tcp_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s));
        }
    });
    addr
}

/// Reads one HTTP request head off `s` (its bytes dropped); false at the client's close or an error.
pub async fn read_head(s: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let (mut req, mut buf) = (Vec::new(), [0u8; 4096]);
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Redis transactions through the SDK, as a user relies on them against any Redis-speaking server: 50 tasks each
/// `MULTI`, `INCR tx`, `INCR tx`, `EXEC` on an exclusive connection, beside 50 single `INCR tx` on the shared
/// pipelined connections. Each transaction's two results are consecutive, and together they are 1..=150.
pub async fn transactions_beside_single_commands_are_atomic(client: &Client<Resp>) {
    let txs = (0..50).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut conn = client.exclusive().await.unwrap();
            let (a, b): (i64, i64) = conn
                .transaction([cmd("INCR").arg("tx"), cmd("INCR").arg("tx")])
                .await
                .unwrap()
                .expect("no WATCH, so EXEC runs");
            assert!(!conn.state_changed());
            (a, b)
        })
    });
    let singles = (0..50).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.incr("tx", 1).await.unwrap() })
    });
    let singles = futures::future::join_all(singles);
    let (pairs, singles) = futures::future::join(futures::future::join_all(txs), singles).await;
    let mut all = Vec::new();
    for pair in pairs {
        let (a, b) = pair.unwrap();
        assert_eq!(b, a + 1, "a transaction's INCRs were split");
        all.extend([a, b]);
    }
    all.extend(singles.into_iter().map(|r| r.unwrap()));
    all.sort_unstable();
    assert_eq!(all, (1..=150).collect::<Vec<i64>>());
    assert_eq!(client.get::<i64>("tx").await.unwrap(), 150);
}

/// `SCAN` through [`Client::scan`], `MATCH scan:*`, `COUNT 7`, over 100 keys set here beside others: every key
/// comes back, and no other. Returns what came back, in order (Redis may return a key twice).
pub async fn scan_returns_every_key(client: &Client<Resp>) -> Vec<String> {
    for i in 0..100 {
        client.set(format!("scan:{i}"), i).await.unwrap();
    }
    client.set("other", 1).await.unwrap();
    let seen: Vec<String> = client
        .scan()
        .pattern("scan:*")
        .count(7)
        .collect::<String>()
        .await
        .unwrap();
    let want: std::collections::BTreeSet<String> = (0..100).map(|i| format!("scan:{i}")).collect();
    assert_eq!(
        seen.iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        want
    );
    // A batch that does not convert (the keys read as numbers) is an Err, and the same step can be tried again:
    // the iteration still sees every key. The cursor had moved on before, so the retry skipped that batch.
    let mut scan = client.scan().pattern("scan:*").count(7);
    let (mut again, mut type_errors) = (std::collections::BTreeSet::new(), 0);
    loop {
        match scan.next_batch::<i64>().await {
            Err(e) => {
                assert_eq!(e.kind(), sockpool::ErrorKind::Type, "{e}");
                type_errors += 1;
                match scan.next_batch::<String>().await.unwrap() {
                    Some(batch) => again.extend(batch),
                    None => break,
                }
            }
            Ok(Some(batch)) => assert!(batch.is_empty(), "{batch:?}"),
            Ok(None) => break,
        }
    }
    assert!(type_errors > 0);
    assert_eq!(again, want);
    seen
}

/// `WATCH`: 50 read-modify-write loops on key `w`, each retried until its `EXEC` ran: none is lost (`w` ends
/// at 50). Returns each loop's number of tries.
pub async fn watch_loops_lose_no_update(client: &Client<Resp>) -> Vec<u32> {
    client.set("w", 0).await.unwrap();
    let loops = (0..50).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut conn = client.exclusive().await.unwrap();
            for tries in 1..=500 {
                conn.watch(["w"]).await.unwrap();
                let v: i64 = conn.query(cmd("GET").arg("w")).await.unwrap();
                let done: Option<()> = conn
                    .transaction([cmd("SET").arg("w").arg(v + 1)])
                    .await
                    .unwrap();
                if done.is_some() {
                    return tries;
                }
            }
            panic!("500 tries without one EXEC");
        })
    });
    let tries: Vec<u32> = futures::future::join_all(loops)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(client.get::<i64>("w").await.unwrap(), 50, "tries {tries:?}");
    tries
}
