//! A pooled, pipelining client against nginx closing each connection after its `keepalive_requests`-th reply
//! (as nginx does by default after 1000): the requests pipelined behind the reply that announces the close
//! (`Connection: close`) were not processed (RFC 9112 §9.6), so the client retries them on another connection,
//! whatever their method, and the caller never sees the close.

use std::time::Duration;

use sockpool::codec::http::Headers;
use sockpool::{Client, PoolConfig};
use sockpool_testkit::peers::start_nginx_closing_after;

#[tokio::main(flavor = "current_thread")]
pub async fn pipelined_posts_past_nginxs_keepalive_requests_all_succeed() {
    // 10: a close every 10 replies; 1: a server that closes after every reply (each connection answers one).
    for keepalive_requests in [10, 1] {
        let nginx = start_nginx_closing_after(1, "hello", keepalive_requests);
        let failed = tokio::time::timeout(Duration::from_secs(60), posts(&nginx.addr.to_string()))
            .await
            .expect("bounded");
        assert!(
            failed.is_empty(),
            "keepalive_requests {keepalive_requests}: {} failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        drop(nginx);
    }
}

/// 64 callers POST 50 times each through 2 connections pipelining 16: every close leaves up to 15 requests
/// pipelined behind it. The failures, as text.
async fn posts(addr: &str) -> Vec<String> {
    let client = Client::http(&format!("http://{addr}"), Headers::new())
        .unwrap()
        .pool(PoolConfig::default().with_max_size(2))
        .pipeline_depth(16)
        .build()
        .unwrap();
    let calls = (0..64).map(|_| {
        let client = client.clone();
        async move {
            let mut failed = Vec::new();
            for _ in 0..50 {
                let req = http::Request::post("/submit").body("x").unwrap();
                match client.send(req).await {
                    Ok(r) => assert_eq!(&r.body()[..], b"hello"),
                    Err(e) => failed.push(format!("{e} (sent: {})", e.was_sent())),
                }
            }
            failed
        }
    });
    let failed: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect();
    let stats = client.stats();
    eprintln!("{} failed of 3200; {stats:?}", failed.len());
    // The closes happened (about one connection per `keepalive_requests` replies), and were not retries.
    assert!(stats.connects >= 200, "{stats:?}");
    assert!(stats.resent_after_close > 0, "{stats:?}");
    assert_eq!(stats.retries, 0, "{stats:?}");
    client.close().await;
    failed
}
