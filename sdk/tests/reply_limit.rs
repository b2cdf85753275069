//! A reply's size is bounded by the client's own configuration (`BufferConfig::max_reply`), whatever the server
//! announces. Before, a server that answered `*1048576` followed by bulks each within `max_bulk` (512 MiB) made
//! one reply grow the client's memory until the request timeout: 2 GiB sent by a python peer left the client
//! at 3.2 GiB RSS, and the caller saw a `Timeout` 25 s later.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sockpool::codec::resp::Value;
use sockpool::protocol::Resp;
use sockpool::{BufferConfig, Client, ClientConfig, ErrorKind, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
