//! Pub/sub and `MONITOR` on the request/reply paths: after `SUBSCRIBE` a real Redis sends a reply per channel and
//! then a push per message, which came back as the replies of the calls that followed (on an exclusive
//! connection, a checked-out one, a caller-driven `Pipelined`). They are refused on every path, before anything
//! is sent, and the connection stays in step.

use std::time::Duration;

use bytes::Bytes;
use sockpool::codec::resp::Value;
use sockpool::protocol::Resp;
use sockpool::transport::Stream;
use sockpool::{Client, Error, ErrorKind, Pipelined};
use sockpool_testkit::peers::start_redis;

fn args(words: &[&str]) -> Vec<Bytes> {
    words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

fn assert_refused(e: Error, command: &str) {
    assert_eq!(e.kind(), ErrorKind::Config, "{command}: {e}");
    assert!(!e.was_sent(), "{command}: {e}");
    assert!(
        e.to_string().contains(command) && e.to_string().contains("not answered by one reply"),
        "{command}: {e}"
    );
}

const PUSH_COMMANDS: [&[&str]; 5] = [
    &["SUBSCRIBE", "news", "sport"],
    &["PSUBSCRIBE", "n*"],
    &["SSUBSCRIBE", "news"],
    &["MONITOR"],
    &["CLIENT", "REPLY", "OFF"],
];

#[tokio::main(flavor = "current_thread")]
pub async fn subscribe_and_monitor_are_refused_on_every_request_reply_path() {
    let redis = start_redis(1);
    let client = Client::builder(Resp::default())
        .endpoint(redis.addr)
        .pipeline_depth(1)
        .build()
        .unwrap();
    let publisher = Client::builder(Resp::default())
        .endpoint(redis.addr)
        .build()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        let ping = || args(&["PING"]);
        let pong = Value::Simple(Bytes::from_static(b"PONG"));
        // An exclusive connection: refused, nothing sent, the connection not marked changed.
        let mut ex = client.exclusive().await.unwrap();
        for words in PUSH_COMMANDS {
            let e = ex.call(args(words)).await.unwrap_err();
            assert_refused(
                e,
                &words[..if words[0] == "CLIENT" { 2 } else { 1 }].join(" "),
            );
        }
        assert!(!ex.state_changed());
        // A message published now would have been the reply to the next call.
        publisher
            .call(args(&["PUBLISH", "news", "hello"]))
            .await
            .unwrap();
        assert_eq!(ex.call(ping()).await.unwrap(), pong);
        drop(ex);
        // The shared path says the same (not "use an exclusive connection").
        assert_refused(
            client.call(args(&["SUBSCRIBE", "news"])).await.unwrap_err(),
            "SUBSCRIBE",
        );
        // A checked-out connection.
        let conn = client.checkout().await.unwrap();
        assert_refused(conn.call(args(&["MONITOR"])).await.unwrap_err(), "MONITOR");
        assert_eq!(conn.call(ping()).await.unwrap(), pong);
        drop(conn);
        // A caller-driven connection gives the token back.
        let tcp = tokio::net::TcpStream::connect(redis.addr).await.unwrap();
        let mut p: Pipelined<Resp, u32> =
            Pipelined::new(Stream::Tcp(tcp), Resp::default(), Duration::from_secs(5));
        let now = tokio::time::Instant::now();
        let (token, e) = p.send(args(&["SUBSCRIBE", "news"]), 7, now).unwrap_err();
        assert_eq!(token, 7);
        assert_refused(e, "SUBSCRIBE");
        p.send(ping(), 8, now).unwrap();
        let c = p.next().await.unwrap();
        assert_eq!((c.token, c.result.unwrap()), (8, pong.clone()));
        assert_eq!(client.call(ping()).await.unwrap(), pong);
    })
    .await
    .expect("bounded");
    client.close().await;
    publisher.close().await;
    drop(redis);
}
