//! Several endpoints (power of two choices, ejection and probing back) and the retry rules.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sockpool::codec::framed::{Response, ServerCodec};
use sockpool::codec::TokioUtilCodec;
use sockpool::{Client, EjectionPolicy, ErrorKind, PoolConfig, RetryPolicy};

fn server_requests(handle: &sockpool_server::ServerHandle) -> u64 {
    handle.stats().snapshot().requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_spreads_over_endpoints() {
    let (a, addr_a) = sockpool_testkit::server::framed();
    let (b, addr_b) = sockpool_testkit::server::framed();
    let client = Client::framed()
        .endpoint(addr_a)
        .endpoint(addr_b)
        .pool(PoolConfig::default().with_max_size(8))
        .build()
        .unwrap();
    for _ in 0..20 {
        let calls = (0..20).map(|_| client.sleep(Duration::from_micros(200), Bytes::new()));
        for r in futures::future::join_all(calls).await {
            r.unwrap();
        }
    }
    let (ra, rb) = (server_requests(&a), server_requests(&b));
    assert_eq!(ra + rb, 400);
    assert!(ra >= 80 && rb >= 80, "one endpoint starved: {ra} vs {rb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_then_probed_back() {
    let (live, live_addr) = sockpool_testkit::server::framed();
    // Nothing listens there (connections are refused) until the test starts a server on it; below the
    // ephemeral range, so no reconnect takes the port meanwhile.
    let dead_addr = sockpool_testkit::ports::restartable_addr();
    let ejection = EjectionPolicy::default()
        .with_consecutive_failures(3)
        .with_base_ejection(Duration::from_millis(300))
        .with_max_ejection(Duration::from_secs(5));
    let client = Client::framed()
        .endpoint(live_addr)
        .endpoint(dead_addr)
        .ejection(ejection.clone())
        .retry(RetryPolicy::default().with_max_retries(3))
        .build()
        .unwrap();
    // Refused connects were provably not sent: retried on a freshly picked endpoint, so every call succeeds.
    for i in 0..100u32 {
        let p = Bytes::from(i.to_be_bytes().to_vec());
        assert_eq!(client.echo(p.clone()).await.unwrap(), p);
    }
    let stats = client.stats();
    assert_eq!(stats.failed, 0);
    assert!(stats.endpoints[1].ejected, "{stats:?}");
    // Ejected after 3 failures in a row, and not tried again while ejected (100 calls take well under the
    // 300 ms ejection on loopback; a probe after it would add one more).
    assert!(
        (3..=4).contains(&stats.connect_failures),
        "connect failures {}",
        stats.connect_failures
    );

    // The endpoint comes back: after the ejection a probe call reaches it and it is back in rotation.
    let revived = sockpool_testkit::server::start(&[&format!("framed={dead_addr}")]);
    tokio::time::sleep(ejection.base_ejection * 2).await;
    let mut reached = false;
    for _ in 0..200 {
        client.echo(&b"probe"[..]).await.unwrap();
        if server_requests(&revived) > 0 {
            reached = true;
            break;
        }
    }
    assert!(reached, "the revived endpoint got no traffic");
    assert!(!client.stats().endpoints[1].ejected);
    drop(live);
}

/// A framed server that reads one request on every odd-numbered connection and closes without replying;
/// even-numbered connections echo normally.
async fn flaky_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut io =
                    tokio_util::codec::Framed::new(s, TokioUtilCodec::new(ServerCodec::default()));
                while let Some(Ok(req)) = io.next().await {
                    if n % 2 == 0 {
                        return; // read it, then drop the connection: the request was sent, no reply
                    }
                    if io.send(Response::ok(req.id, req.payload)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idempotent_requests_are_retried_after_being_sent() {
    let (addr, accepted) = flaky_server().await;
    let client = Client::framed().endpoint(addr).build().unwrap();

    // ECHO is idempotent: the first connection swallows it and closes, the retry succeeds.
    let (r, timings) = client
        .call_timed(sockpool::codec::framed::Request::echo(
            1,
            Bytes::from_static(b"again"),
        ))
        .await;
    assert_eq!(&r.unwrap().payload[..], b"again");
    assert_eq!(timings.retries, 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // Wait until the pooled (good) connection is gone, so the SINK lands on a swallowing one.
    client.close().await;
    let client = Client::framed().endpoint(addr).build().unwrap();
    let err = client.sink(&b"upload"[..]).await.unwrap_err();
    assert!(err.was_sent(), "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(
        matches!(err.kind(), ErrorKind::Closed | ErrorKind::Reset),
        "{err}"
    );
    assert_eq!(
        client.stats().retries,
        0,
        "SINK is not idempotent: never retried once sent"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 3);

    // Unless the caller says it is idempotent. (Connection 3 echoes; take it with another client so that the
    // next connection, which swallows, is the one the idempotent SINK gets first.)
    let other = Client::framed().endpoint(addr).build().unwrap();
    other.echo(&b"x"[..]).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    let client = Client::framed().endpoint(addr).build().unwrap();
    let reply = client
        .call_idempotent(sockpool::codec::framed::Request::sink(
            7,
            Bytes::from_static(b"upload"),
        ))
        .await
        .unwrap();
    assert_eq!(reply.id, 7);
    assert_eq!(client.stats().retries, 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 6);
}

/// A service's URL names its protocol: a framed, echo or line client given `redis://` or `http://` refuses it
/// when built (it was taken as a plain address), naming the scheme and the protocol it speaks; the generic
/// forms go with every protocol, and each service's own schemes with it.
#[tokio::test]
async fn an_endpoint_url_of_another_protocol_is_refused_when_built() {
    use sockpool::protocol::{Echo, Framed, Http, Line, Resp};
    fn refused<P: sockpool::protocol::Protocol>(protocol: P, endpoint: &str) -> Option<String> {
        let b = Client::builder(protocol)
            .endpoint(endpoint)
            .tls(sockpool::TlsConfig::default().with_insecure(true));
        match b.build() {
            Ok(client) => {
                drop(client);
                None
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Config, "{endpoint}: {e}");
                Some(e.to_string())
            }
        }
    }
    for (endpoint, owner) in [
        ("redis://127.0.0.1:6379", "resp"),
        ("rediss://127.0.0.1:6380", "resp"),
        ("redis+unix:///tmp/redis.sock", "resp"),
        ("http://127.0.0.1:8080", "http"),
        ("HTTPS://127.0.0.1:8443/", "http"),
    ] {
        for (speaks, e) in [
            ("framed", refused(Framed::default(), endpoint)),
            ("echo", refused(Echo, endpoint)),
            ("line", refused(Line::default(), endpoint)),
        ] {
            let e = e.unwrap_or_else(|| panic!("a {speaks} client took {endpoint}"));
            assert!(
                e.contains(&format!("for the {owner} protocol"))
                    && e.contains(&format!("speaks {speaks}")),
                "{endpoint}: {e}"
            );
        }
    }
    // A password in the URL is not repeated in the error.
    let e = refused(Framed::default(), "redis://:topsecret@127.0.0.1:6379").unwrap();
    assert!(!e.contains("topsecret"), "{e}");
    // The other protocol's scheme is refused too; each protocol's own, and the generic forms, are taken.
    assert!(refused(Resp::default(), "http://127.0.0.1:8080").is_some());
    assert!(refused(Http::default(), "redis://127.0.0.1:6379").is_some());
    assert_eq!(refused(Resp::default(), "redis://127.0.0.1:6379"), None);
    assert_eq!(refused(Resp::default(), "rediss://127.0.0.1:6380"), None);
    assert_eq!(refused(Http::default(), "http://127.0.0.1:8080"), None);
    for generic in [
        "127.0.0.1:7000",
        "tcp://127.0.0.1:7000",
        "tls://127.0.0.1:7000",
        "unix:/tmp/sockpool.sock",
    ] {
        assert_eq!(refused(Framed::default(), generic), None, "{generic}");
        assert_eq!(refused(Line::default(), generic), None, "{generic}");
        assert_eq!(refused(Resp::default(), generic), None, "{generic}");
    }
}
