//! Every built-in protocol, and a user codec, through the pool against sockpool-server.

use bytes::Bytes;
use sockpool::codec::http::{Method, Request};
use sockpool::codec::TokioUtilCodec;
use sockpool::protocol::{Custom, Echo, Http, Line};
use sockpool::{Client, PoolConfig};
use sockpool_server::Proto;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_stream_pipelined_maps_replies_one_to_one() {
    let server = sockpool_testkit::server::start(&["echo=127.0.0.1:0"]);
    let client = Client::builder(Echo)
        .endpoint(server.tcp_addr(Proto::Echo).unwrap())
        .pool(PoolConfig::default().with_max_size(2))
        .pipeline_depth(8)
        .build()
        .unwrap();
    let calls = (0..200usize).map(|i| client.echo(Bytes::from(vec![(i % 251) as u8; i])));
    for (i, r) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(r.unwrap(), Bytes::from(vec![(i % 251) as u8; i]));
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_protocol_and_a_user_codec() {
    let server = sockpool_testkit::server::start(&["line=127.0.0.1:0"]);
    let addr = server.tcp_addr(Proto::Line).unwrap();
    let client = Client::builder(Line::default())
        .endpoint(addr)
        .pipeline_depth(4)
        .build()
        .unwrap();
    let calls = (0..50).map(|i| client.line(format!("line {i}")));
    for (i, r) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(r.unwrap(), Bytes::from(format!("line {i}")));
    }

    // Any tokio-util codec (feature `tokio-util`): here tokio-util's own LinesCodec.
    let custom = Client::builder(
        Custom::<_, String>::new(|| TokioUtilCodec::new(tokio_util::codec::LinesCodec::new()))
            .named("lines"),
    )
    .endpoint(addr)
    .build()
    .unwrap();
    assert_eq!(custom.call("hello".to_string()).await.unwrap(), "hello");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_keep_alive_pipelined_and_connection_close() {
    let server = sockpool_testkit::server::start(&["http=127.0.0.1:0"]);
    let addr = server.tcp_addr(Proto::Http).unwrap();
    let client = pipelined_http(addr);
    let get = || Request::get("/").with_header("Host", "localhost");
    let calls = (0..40).map(|_| client.request(get()));
    for r in futures::future::join_all(calls).await {
        let r = r.unwrap();
        assert_eq!(r.status, 200);
        assert!(!r.body.is_empty());
    }
    assert_eq!(client.stats().connects, 1, "keep-alive: one connection");

    // The server closes after `Connection: close`: the connection retires without counting as a failure of
    // the endpoint, and the next request opens a new one.
    let r = client
        .request(get().with_header("Connection", "close"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = client
        .request(Request::new(Method::Head, "/").with_header("Host", "x"))
        .await;
    assert_eq!(r.unwrap().status, 200);
    let stats = client.stats();
    assert_eq!(stats.connects, 2, "{stats:?}");
    assert_eq!(stats.closes.server_close, 1, "{:?}", stats.closes);
    assert_eq!(stats.failed, 0);
    drop(server);
}

/// A server that answers each connection's first request as an HTTP/1.0 server does without keep-alive (no
/// `Connection` field at all), then closes it.
async fn http10_server() -> std::net::SocketAddr {
    use tokio::io::AsyncWriteExt;
    common::tcp_server(|mut s| async move {
        if !common::read_head(&mut s).await {
            return;
        }
        let _ = s
            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await;
    })
    .await
}

/// An HTTP client of `addr` with one pooled connection, 8 requests deep.
fn pipelined_http(addr: std::net::SocketAddr) -> Client<Http> {
    Client::builder(Http::default())
        .endpoint(addr)
        .pool(PoolConfig::default().with_max_size(1))
        .pipeline_depth(8)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_reply_without_keep_alive_retires_a_pipelined_connection_as_announced() {
    let addr = http10_server().await;
    let client = pipelined_http(addr);
    for _ in 0..3 {
        let r = client
            .request(Request::get("/").with_header("Host", "x"))
            .await
            .unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
    }
    // Each reply said the server closes (HTTP/1.0, no keep-alive): its connection took no second request, and
    // the close that followed was expected, not the endpoint failing.
    let stats = client.stats();
    assert_eq!(
        (stats.connects, stats.failed, stats.retries),
        (3, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.closes.peer_closed, 0, "{:?}", stats.closes);
    assert!(stats.closes.server_close >= 2, "{:?}", stats.closes);
}

/// A client built from `Http::default()` with no `Host` of its own sends its endpoint's: an HTTP/1.1 server must
/// answer a request without one 400 (RFC 9112 §3.2), as nginx and sockpool-server do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_client_given_no_host_sends_its_endpoints() {
    let server = sockpool_testkit::server::start(&["http=127.0.0.1:0"]);
    let addr = server.tcp_addr(Proto::Http).unwrap();
    let client = Client::builder(Http::default())
        .endpoint(addr)
        .build()
        .unwrap();
    let r = client.request(Request::get("/")).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    // What it sends, seen by a server that keeps the request: `Host: 127.0.0.1:PORT`.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = l.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole head");
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8(req).unwrap()
    });
    let client = Client::builder(Http::default())
        .endpoint(format!("127.0.0.1:{port}"))
        .build()
        .unwrap();
    assert_eq!(client.request(Request::get("/")).await.unwrap().status, 204);
    let head = seen.await.unwrap().to_ascii_lowercase();
    assert!(
        head.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    // One given by the caller is kept.
    let given = Http {
        host: Some(Bytes::from_static(b"example.test")),
        ..Http::default()
    };
    let client = Client::builder(given).endpoint(addr).build().unwrap();
    assert_eq!(client.request(Request::get("/")).await.unwrap().status, 200);
}

/// The SDK's `MULTI`/`EXEC` and `WATCH` against the reference server's `resp` (which runs EXEC with its whole
/// key space locked, and versions what WATCH watches): 50 transactions of two INCRs beside 50 single INCRs on
/// the shared pipelined connections, then 50 WATCH read-modify-write loops on one key. Nothing splits, nothing
/// is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_transactions_and_watch_against_the_reference_server_are_atomic() {
    use sockpool::redis::cmd;
    let server = sockpool_testkit::server::start(&["resp=127.0.0.1:0"]);
    let addr = server.tcp_addr(Proto::Resp).unwrap();
    let client = Client::redis(&format!("redis://{addr}"))
        .unwrap()
        .pool(PoolConfig::default().with_max_size(8))
        .pipeline_depth(16)
        .build()
        .unwrap();
    common::transactions_beside_single_commands_are_atomic(&client).await;
    common::watch_loops_lose_no_update(&client).await;
    // The reference server's cursor is a shard: each key comes back once.
    assert_eq!(common::scan_returns_every_key(&client).await.len(), 100);
    // A command the server refuses to queue discards the transaction: nothing of it ran.
    let mut conn = client.exclusive().await.unwrap();
    let e = conn
        .transaction::<Vec<sockpool::codec::resp::Value>>([
            cmd("INCR").arg("tx"),
            cmd("NOSUCHCOMMAND"),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.server_code(), Some("ERR"), "{e}");
    drop(conn);
    assert_eq!(client.get::<i64>("tx").await.unwrap(), 150);
}
