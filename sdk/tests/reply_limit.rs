//! A reply's size is bounded by the client's own configuration (`BufferConfig::max_reply`), whatever the server
//! announces. Before, a server that answered `*1048576` followed by bulks each within `max_bulk` (512 MiB) made
//! one reply grow the client's memory until the request timeout: 2 GiB sent by a python peer left the client
//! at 3.2 GiB RSS, and the caller saw a `Timeout` 25 s later.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sockpool::codec::resp::Value;
use sockpool::codec::Limit;
use sockpool::protocol::Resp;
use sockpool::transport::{Connector, Endpoint};
use sockpool::{
    BufferConfig, Client, ClientConfig, ErrorKind, Phase, Pipelined, RetryPolicy, SocketOptions,
    Timeouts,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The most a connection of the tests' clients may hold for one reply.
const MAX_REPLY: usize = 256 * 1024;

/// A RESP peer: to a `GET hostile` it answers `*1048576` and then bulks of 64 KiB for as long as the client
/// reads (bounded at 64 MiB), counting what it sent; to anything else `+OK`. Returns its address and the bytes
/// the hostile replies sent.
async fn hostile_redis() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = sent.clone();
    let addr = common::tcp_server(move |mut s| {
        let sent = counted.clone();
        async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if !buf[..n].windows(7).any(|w| w == b"hostile") {
                    if s.write_all(b"+OK\r\n").await.is_err() {
                        return;
                    }
                    continue;
                }
                let bulk = [&b"$65536\r\n"[..], &[b'x'; 65536], b"\r\n"].concat();
                if s.write_all(b"*1048576\r\n").await.is_err() {
                    return;
                }
                for _ in 0..1024 {
                    if s.write_all(&bulk).await.is_err() {
                        return;
                    }
                    sent.fetch_add(bulk.len(), Ordering::Relaxed);
                }
            }
        }
    })
    .await;
    (addr, sent)
}

#[tokio::test]
async fn a_reply_over_the_configured_limit_fails_closes_its_connection_and_the_pool_serves_on() {
    let (addr, sent) = hostile_redis().await;
    let config: ClientConfig = serde_json::from_str(&format!(
        r#"{{"endpoints": ["{addr}"], "buffers": {{"max_reply": {MAX_REPLY}}}}}"#
    ))
    .unwrap();
    let client = Client::builder(Resp::default())
        .config(config)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let e = client.command(["GET", "hostile"]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("reply of") && msg.contains(&format!("over the limit of {MAX_REPLY}")),
        "{msg}"
    );
    // The pool serves the next call, on a new connection: the one that carried the reply was closed.
    assert_eq!(
        client.command(["SET", "k", "v"]).await.unwrap(),
        Value::ok()
    );
    assert_eq!(client.stats().connects, 2, "{:?}", client.stats());
    assert!(sent.load(Ordering::Relaxed) < 64 << 20);
    client.close().await;
}

#[tokio::test]
async fn the_limit_holds_at_depth_one_too() {
    let (addr, _) = hostile_redis().await;
    let client = Client::builder(Resp::default())
        .endpoint(addr)
        .pipeline_depth(1)
        .buffers(BufferConfig::default().with_max_reply(MAX_REPLY))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let e = client.command(["GET", "hostile"]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains("reply of"), "{e}");
    assert_eq!(
        client.command(["SET", "k", "v"]).await.unwrap(),
        Value::ok()
    );
    client.close().await;
}

/// The default bounds a reply too: an HTTP body that never ends is refused at the body limit (1 MiB), a
/// framed length of 4 GiB at once, and with a `max_reply` under those limits, at it.
#[tokio::test]
async fn every_protocol_applies_the_smaller_limit() {
    let http = common::tcp_server(|mut s| async move {
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = [&b"10000\r\n"[..], &[b'x'; 65536], b"\r\n"].concat();
        for _ in 0..256 {
            if s.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    let client = Client::builder(sockpool::protocol::Http::default())
        .endpoint(http)
        .buffers(BufferConfig::default().with_max_reply(100_000))
        .build()
        .unwrap();
    let e = client
        .call(sockpool::codec::http::Request::get("/"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(
        e.to_string().contains("reply of") && e.to_string().contains("limit of 100000"),
        "{e}"
    );
    client.close().await;

    let framed = common::tcp_server(|mut s| async move {
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(&[0xff, 0xff, 0xff, 0xff]).await;
        let _ = s.read(&mut buf).await;
    })
    .await;
    for (max_reply, what) in [
        (
            None,
            "frame of 4294967295 bytes is over the limit of 16777216",
        ),
        (
            Some(4096),
            "reply of 4294967299 bytes is over the limit of 4096",
        ),
    ] {
        let mut buffers = BufferConfig::default();
        if let Some(m) = max_reply {
            buffers = buffers.with_max_reply(m);
        }
        let client = common::framed_client(framed, 1)
            .buffers(buffers)
            .build()
            .unwrap();
        let e = client.echo(&b"x"[..]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        assert!(e.to_string().contains(what), "{e}");
        client.close().await;
    }
}

#[test]
fn max_reply_round_trips_through_json_and_toml_and_unknown_keys_are_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = ClientConfig::default()
        .with_endpoints(vec!["127.0.0.1:7000".into()])
        .with_buffers(BufferConfig::default().with_max_reply(8 << 20));
    for name in ["c.json", "c.toml"] {
        let path = dir.path().join(name);
        let text = config.to_file_text(&path).unwrap();
        assert!(text.contains("max_reply"), "{text}");
        std::fs::write(&path, text).unwrap();
        let back = ClientConfig::from_file(&path).unwrap();
        assert_eq!(back.buffers.max_reply, 8 << 20, "{name}");
        assert_eq!(back, config, "{name}");
    }
    let toml = dir.path().join("typo.toml");
    std::fs::write(&toml, "[buffers]\nmax_replies = 5\n").unwrap();
    let e = ClientConfig::from_file(&toml).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("max_replies"), "{e}");
    // Left out, it is the documented default.
    let partial: ClientConfig =
        serde_json::from_str(r#"{"buffers": {"read_capacity": 4096}}"#).unwrap();
    assert_eq!(
        partial.buffers.max_reply,
        sockpool::codec::DEFAULT_MAX_REPLY
    );
}

#[tokio::test]
async fn a_zero_or_absurd_max_reply_is_refused_when_built() {
    for v in [0, sockpool::config::MAX_REPLY_LIMIT + 1, usize::MAX] {
        let buffers = BufferConfig::default().with_max_reply(v);
        let e = Client::framed()
            .endpoint("127.0.0.1:9")
            .buffers(buffers.clone())
            .build()
            .map(drop)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains("max_reply"), "{e}");
        let e = ClientConfig::default()
            .with_buffers(buffers)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("max_reply"), "{e}");
    }
}

/// A RESP peer that answers each command by its last argument: `GET <n>` with a bulk of `n` bytes, `GET bad`
/// with a reply no RESP type starts (`!`), anything else `+OK`. Takes the commands of a read whole (the tests'
/// are small, a few at a time).
async fn sized_redis() -> std::net::SocketAddr {
    common::tcp_server(|mut s| async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // `*2\r\n$3\r\nGET\r\n$<len>\r\n<arg>\r\n`: each command starts with `*`, and its last line is
            // its last argument.
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            for command in text.split('*').filter(|c| !c.is_empty()) {
                let arg = command.trim_end().rsplit("\r\n").next().unwrap_or_default();
                let reply = match arg {
                    "bad" => b"!what\r\n".to_vec(),
                    n if n.parse::<usize>().is_ok() => {
                        let n: usize = n.parse().unwrap();
                        [format!("${n}\r\n").as_bytes(), &vec![b'v'; n], b"\r\n"].concat()
                    }
                    _ => b"+OK\r\n".to_vec(),
                };
                if s.write_all(&reply).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// The bytes of a RESP reply that is one bulk of `n` bytes: `$n\r\n`, the bytes, `\r\n`.
fn bulk_reply_len(n: usize) -> usize {
    format!("${n}\r\n").len() + n + 2
}

/// A bulk whose reply is exactly `max_reply` bytes is taken; one byte more is refused, at every depth and on a
/// caller-driven connection, with the limit named ([`sockpool::Error::limit`]).
#[tokio::test]
async fn a_reply_of_exactly_the_limit_is_taken_and_one_byte_more_is_refused() {
    let addr = sized_redis().await;
    const LIMIT: usize = 4096;
    // `$4087\r\n` is 7 bytes: 7 + 4087 + 2 = 4096.
    let at = 4087;
    assert_eq!(bulk_reply_len(at), LIMIT);
    assert_eq!(bulk_reply_len(at + 1), LIMIT + 1);
    for depth in [1, 4] {
        let client = Client::builder(Resp::default())
            .endpoint(addr)
            .pipeline_depth(depth)
            .buffers(BufferConfig::default().with_max_reply(LIMIT))
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        let got = client.command(["GET", &at.to_string()]).await.unwrap();
        assert_eq!(got, Value::Bulk(vec![b'v'; at].into()), "depth {depth}");
        let e = client
            .command(["GET", &(at + 1).to_string()])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "depth {depth}: {e}");
        assert_eq!(e.limit(), Some(Limit::Reply), "depth {depth}: {e:?}");
        assert!(
            e.to_string()
                .contains(&format!("reply of 4097 bytes is over the limit of {LIMIT}")),
            "depth {depth}: {e}"
        );
        client.close().await;
    }
}

/// A reply refused over the reply limit fails in the phase a malformed reply fails in: part of its reply had
/// come (its length line), so [`Phase::Request`], as the phase docs define it and as a timeout or a close there
/// would say; the same at depth 1, deeper, and on a caller-driven connection.
#[tokio::test]
async fn a_reply_over_the_limit_fails_in_the_phase_of_a_malformed_reply() {
    let addr = sized_redis().await;
    for depth in [1, 4] {
        let client = Client::builder(Resp::default())
            .endpoint(addr)
            .pipeline_depth(depth)
            .buffers(BufferConfig::default().with_max_reply(4096))
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        let over = client.command(["GET", "65536"]).await.unwrap_err();
        let bad = client.command(["GET", "bad"]).await.unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::Protocol, "depth {depth}: {bad}");
        assert_eq!(bad.limit(), None, "depth {depth}: {bad:?}");
        assert_eq!(
            (over.phase(), bad.phase()),
            (Phase::Request, Phase::Request),
            "depth {depth}: {over} / {bad}"
        );
        assert!(over.was_sent() && bad.was_sent());
        client.close().await;
    }
    for (arg, limit) in [("65536", Some(Limit::Reply)), ("bad", None)] {
        let mut conn = pipelined_resp(addr, 4096).await;
        let cmd: Vec<bytes::Bytes> = vec!["GET".into(), bytes::Bytes::from(arg)];
        conn.send(cmd, 1, Instant::now()).unwrap();
        let e = conn.next().await.unwrap().result.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{arg}: {e}");
        assert_eq!(
            (e.phase(), e.limit()),
            (Phase::Request, limit),
            "{arg}: {e}"
        );
    }
}

/// A caller-driven connection to `addr` speaking RESP, with the protocol's own limits.
async fn connect_resp(addr: std::net::SocketAddr) -> Pipelined<Resp, u32> {
    let connector = Connector::new(SocketOptions::default(), &Timeouts::default(), None).unwrap();
    let endpoint: Endpoint = addr.to_string().parse().unwrap();
    Pipelined::connect(
        &connector,
        &endpoint,
        Resp::default(),
        Duration::from_secs(5),
    )
    .await
    .unwrap()
}

/// A caller-driven connection to `addr` speaking RESP, taking replies of at most `max_reply` bytes.
async fn pipelined_resp(addr: std::net::SocketAddr, max_reply: usize) -> Pipelined<Resp, u32> {
    let mut conn = connect_resp(addr).await;
    conn.set_max_reply(max_reply).unwrap();
    conn
}

/// The caller-driven connection honours the client config's `max_reply` when given it (before, it kept its
/// codec's defaults whatever the config said): the hostile `*1048576` reply is refused at the limit and the
/// connection ends, having read a bounded part of what the peer sent; a reply of exactly the limit is taken.
#[tokio::test]
async fn a_caller_driven_connection_takes_the_configs_reply_limit() {
    let (addr, sent) = hostile_redis().await;
    let config: ClientConfig = serde_json::from_str(&format!(
        r#"{{"endpoints": ["{addr}"], "buffers": {{"max_reply": {MAX_REPLY}}}}}"#
    ))
    .unwrap();
    let mut conn = pipelined_resp(addr, config.buffers.max_reply).await;
    let get = |k: &str| -> Vec<bytes::Bytes> {
        vec!["GET".into(), bytes::Bytes::copy_from_slice(k.as_bytes())]
    };
    conn.send(get("hostile"), 1, Instant::now()).unwrap();
    let done = conn.next().await.unwrap();
    let e = done.result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(e.limit(), Some(Limit::Reply), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("over the limit of {MAX_REPLY}")),
        "{e}"
    );
    assert!(!conn.is_open());
    assert!(sent.load(Ordering::Relaxed) < 64 << 20);

    // Within the limit, replies are taken; and the limit is the config's, not the codec's 1 GiB.
    let addr = sized_redis().await;
    let mut conn = pipelined_resp(addr, 4096).await;
    conn.send(get("4087"), 1, Instant::now()).unwrap();
    conn.send(get("4088"), 2, Instant::now()).unwrap();
    let first = conn.next().await.unwrap();
    assert_eq!(first.token, 1);
    assert_eq!(first.result.unwrap(), Value::Bulk(vec![b'v'; 4087].into()));
    let second = conn.next().await.unwrap();
    assert_eq!(second.token, 2);
    assert_eq!(second.result.unwrap_err().limit(), Some(Limit::Reply));
}

#[tokio::test]
async fn a_caller_driven_connection_refuses_a_bad_limit_or_one_set_too_late() {
    let mut conn = connect_resp(sized_redis().await).await;
    for bad in [0, sockpool::config::MAX_REPLY_LIMIT + 1] {
        let e = conn.set_max_reply(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains("max_reply"), "{e}");
    }
    conn.send(vec!["PING".into()], 1, Instant::now()).unwrap();
    let e = conn.set_max_reply(4096).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert_eq!(conn.next().await.unwrap().result.unwrap(), Value::ok());
}

/// Only the request whose reply went over the limit is over the limit: the ones pipelined behind it on the same
/// connection were not answered (the connection ended at the refused reply) and fail as closed, with their own
/// message, on a caller-driven connection and on the pooled client's pipelined connections. Before, every one
/// of them was counted over the limit (a load generator showed 16 `reply_too_large` for one large value).
#[tokio::test]
async fn requests_behind_a_refused_reply_fail_as_closed_not_over_the_limit() {
    let addr = sized_redis().await;
    let get = |k: &str| -> Vec<bytes::Bytes> {
        vec!["GET".into(), bytes::Bytes::copy_from_slice(k.as_bytes())]
    };
    let mut conn = pipelined_resp(addr, 4096).await;
    for (token, key) in [(1, "10"), (2, "5000"), (3, "10"), (4, "10")] {
        conn.send(get(key), token, Instant::now()).unwrap();
    }
    let mut got = Vec::new();
    while let Some(done) = conn.next().await {
        got.push((
            done.token,
            done.result
                .map_err(|e| (e.kind(), e.limit(), e.to_string())),
        ));
    }
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got[0].1.is_ok(), "{got:?}");
    let (kind, limit, _) = got[1].1.clone().unwrap_err();
    assert_eq!(
        (got[1].0, kind, limit),
        (2, ErrorKind::Protocol, Some(Limit::Reply))
    );
    for (token, result) in &got[2..] {
        let (kind, limit, text) = result.clone().unwrap_err();
        assert_eq!(
            (kind, limit),
            (ErrorKind::Closed, None),
            "request {token}: {text}"
        );
        assert!(
            text.contains("an earlier request"),
            "request {token}: {text}"
        );
    }

    // The pooled client at depth 4: calls in flight together on one connection.
    let client = Client::builder(Resp::default())
        .endpoint(addr)
        .pool(sockpool::PoolConfig::default().with_max_size(1))
        .pipeline_depth(4)
        .buffers(BufferConfig::default().with_max_reply(4096))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let calls = ["5000", "10", "10", "10"].map(|k| client.command(["GET", k]));
    let results = futures::future::join_all(calls).await;
    let over = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.limit() == Some(Limit::Reply)))
        .count();
    assert_eq!(over, 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(
                e.limit() == Some(Limit::Reply) || e.kind() == ErrorKind::Closed,
                "{e:?}"
            );
        }
    }
    client.close().await;
}
