//! A blocking command (`BLPOP` …) its caller gave up on, or that timed out, must not take what is pushed after:
//! its connection is closed at once, so that Redis stops waiting for it, instead of being kept open to drain a
//! reply that would be the element, popped and thrown away.

use std::time::Duration;

use bytes::Bytes;
use sockpool::codec::resp::Value;
use sockpool::protocol::Resp;
use sockpool::{Client, Timeouts};
use sockpool_testkit::peers::start_redis;

/// Redis's count of clients blocked in a command, polled until it is 0 (2 s at most: without the fix it stays 1
/// for the 10 s drain, and the element pushed next goes to the abandoned command).
async fn wait_unblocked(client: &Client<Resp>) -> bool {
    let end = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let info = client.command(["INFO", "clients"]).await.unwrap();
        let Value::Bulk(text) = info else {
            panic!("INFO: {info:?}")
        };
        if String::from_utf8_lossy(&text).contains("blocked_clients:0") {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Pushes `precious` onto `list` after the command was given up, and checks it is still there (and nothing
/// went to `moved_to`, when the command would have moved it).
async fn pushed_after_is_kept(
    client: &Client<Resp>,
    list: &str,
    moved_to: Option<&str>,
    how: &str,
) {
    let unblocked = wait_unblocked(client).await;
    client.command(["LPUSH", list, "precious"]).await.unwrap();
    // Were the given-up command still blocked, Redis would have served it by now.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        client.command(["LLEN", list]).await.unwrap(),
        Value::Integer(1),
        "{how}: the element pushed after the give-up was taken (redis unblocked the client: {unblocked})"
    );
    if let Some(dst) = moved_to {
        assert_eq!(
            client.command(["LLEN", dst]).await.unwrap(),
            Value::Integer(0),
            "{how}"
        );
    }
    assert_eq!(
        client.command(["LPOP", list]).await.unwrap(),
        Value::Bulk(Bytes::from_static(b"precious")),
        "{how}"
    );
}

async fn given_up_blocking_commands_leave_the_next_element(depth: usize) {
    let redis = start_redis(1);
    let url = format!("redis://{}/", redis.addr);
    let client = Client::redis(&url)
        .unwrap()
        .pipeline_depth(depth)
        .build()
        .unwrap();
    let with_total = Client::redis(&url)
        .unwrap()
        .pipeline_depth(depth)
        .timeouts(Timeouts::default().with_total(Some(Duration::from_millis(300))))
        .build()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        // The caller's own timeout drops the call.
        let r = tokio::time::timeout(
            Duration::from_millis(300),
            client.command(["BLPOP", "q1", "0"]),
        )
        .await;
        assert!(r.is_err(), "BLPOP returned {r:?} with nothing pushed");
        pushed_after_is_kept(&client, "q1", None, "BLPOP q1 0 in tokio::time::timeout").await;

        // The client's end-to-end deadline cuts it short (before its own 2 s).
        let e = with_total.command(["BLPOP", "q2", "2"]).await.unwrap_err();
        assert!(e.is_timeout(), "{e}");
        pushed_after_is_kept(&client, "q2", None, "BLPOP q2 2 past Timeouts::total").await;

        // A blocking move would move it.
        let r = tokio::time::timeout(
            Duration::from_millis(300),
            client.command(["BRPOPLPUSH", "q3", "dst", "0"]),
        )
        .await;
        assert!(r.is_err(), "BRPOPLPUSH returned {r:?} with nothing pushed");
        pushed_after_is_kept(&client, "q3", Some("dst"), "BRPOPLPUSH q3 dst 0").await;

        // On an exclusive connection, the caller's timeout too.
        let mut exclusive = client.exclusive().await.unwrap();
        let blpop = vec![
            Bytes::from_static(b"BLPOP"),
            Bytes::from_static(b"q5"),
            Bytes::from_static(b"0"),
        ];
        let r = tokio::time::timeout(Duration::from_millis(300), exclusive.call(blpop)).await;
        assert!(r.is_err(), "BLPOP returned {r:?} with nothing pushed");
        drop(exclusive);
        pushed_after_is_kept(&client, "q5", None, "BLPOP q5 0 on Client::exclusive").await;

        // A blocking command answered in time leaves its connection in use as any other.
        client.command(["RPUSH", "q4", "x"]).await.unwrap();
        assert_eq!(
            client.command(["BLPOP", "q4", "1"]).await.unwrap(),
            Value::Array(vec![
                Value::Bulk(Bytes::from_static(b"q4")),
                Value::Bulk(Bytes::from_static(b"x"))
            ])
        );
    })
    .await
    .expect("bounded");
    client.close().await;
    with_total.close().await;
    drop(redis);
}

/// Pipelined (the default): the blocking command runs on a depth-1 connection of the exclusive pool.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn a_blocking_command_given_up_does_not_eat_the_next_push() {
    given_up_blocking_commands_leave_the_next_element(64).await;
}

/// Request/response: the blocking command runs on a connection of the ordinary pool.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn at_depth_one_a_blocking_command_given_up_does_not_eat_the_next_push() {
    given_up_blocking_commands_leave_the_next_element(1).await;
}

/// `Client::close` ends with a `BLPOP k 0` in progress (before, it waited for it for ever): the call is cut at
/// the close grace with `Closed`, and Redis no longer has the blocked client (`CLIENT LIST` on another
/// connection shows it gone, `blocked_clients:0`), so the element pushed next stays in the list.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn close_cuts_a_blpop_and_redis_drops_the_blocked_client() {
    let redis = start_redis(1);
    let url = format!("redis://{}/", redis.addr);
    let client = Client::redis(&url)
        .unwrap()
        .timeouts(Timeouts::default().with_close_grace(Duration::from_millis(200)))
        .build()
        .unwrap();
    let other = Client::redis(&url).unwrap().build().unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        let blocked = tokio::spawn({
            let client = client.clone();
            async move { client.command(["BLPOP", "closing", "0"]).await }
        });
        // Until Redis has the command blocked.
        let end = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let list = client_list(&other).await;
            if list.contains("cmd=blpop") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "BLPOP never blocked: {list}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let start = tokio::time::Instant::now();
        client.close().await;
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "close took {:?}",
            start.elapsed()
        );
        let e = blocked.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), sockpool::ErrorKind::Closed, "{e}");
        // Redis saw the close: the blocked client is gone from its list.
        let end = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let list = client_list(&other).await;
            if !list.contains("cmd=blpop") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "the cut BLPOP is still a client of Redis: {list}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(wait_unblocked(&other).await);
        other.command(["LPUSH", "closing", "kept"]).await.unwrap();
        assert_eq!(
            other.command(["LLEN", "closing"]).await.unwrap(),
            Value::Integer(1)
        );
    })
    .await
    .expect("bounded");
    other.close().await;
    drop(redis);
}

/// Redis's `CLIENT LIST`, as text.
async fn client_list(client: &Client<Resp>) -> String {
    match client.command(["CLIENT", "LIST"]).await.unwrap() {
        Value::Bulk(text) => String::from_utf8_lossy(&text).into_owned(),
        other => panic!("CLIENT LIST: {other:?}"),
    }
}
