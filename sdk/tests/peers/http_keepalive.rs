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
    let nginx = start_nginx_closing_after(1, "hello", 10);
    tokio::time::timeout(Duration::from_secs(60), async {
        let client = Client::http(&format!("http://{}", nginx.addr), Headers::new())
            .unwrap()
            .pool(PoolConfig::default().with_max_size(2))
            .pipeline_depth(16)
            .build()
            .unwrap();
        // 64 callers on 2 connections: every close leaves up to 15 requests pipelined behind it.
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
        assert!(
            failed.is_empty(),
            "{} failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        // The closes happened: about 3200 / 10 connections were opened.
        assert!(stats.connects >= 200, "{stats:?}");
        client.close().await;
    })
    .await
    .expect("bounded");
    drop(nginx);
}
