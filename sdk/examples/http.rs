//! HTTP/1.1 through the pool: a URL, default headers on every request, responses with any status.
//!
//! ```text
//! cargo run -p sockpool-server -- --listen http=127.0.0.1:8080 &     # or nginx, or any HTTP/1.1 server
//! cargo run -p sockpool --example http -- http://127.0.0.1:8080/
//! ```

use sockpool::codec::http::{Headers, Request};
use sockpool::{Client, PoolConfig};

#[tokio::main]
async fn main() -> Result<(), sockpool::Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080/".into());
    let headers = Headers::new().with("user-agent", "sockpool-example");
    // `Host` comes from the URL; these headers go on every request that does not set them itself.
    let client = Client::http(&url, headers)?
        .pool(PoolConfig::default().with_max_size(4))
        .build()?;

    // Ten requests at once share the pool's (at most four) keep-alive connections.
    let calls = (0..10).map(|_| client.request(Request::get("/")));
    for response in futures::future::join_all(calls).await {
        let response = response?;
        // A 404 or a 503 is a response, not an `Err`: the status is the caller's to judge.
        println!("{} ({} bytes)", response.status, response.body.len());
    }
    println!("{:?}", client.stats());
    client.close().await;
    Ok(())
}
