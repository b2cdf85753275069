//! A tiny HTTP-to-framed gateway: a service built on the SDK.
//!
//! It accepts HTTP/1.1 (keep-alive, pipelining) and turns each request into a call on a pooled, pipelined
//! framed client, so many HTTP clients share a few backend connections:
//!
//! | HTTP | framed call |
//! |---|---|
//! | `GET /echo/<text>` | `ECHO <text>` |
//! | `GET /sleep/<ms>` | `SLEEP <ms>` |
//! | `GET /stats` | the gateway's own client stats (pool, closes by reason, pool waits) as JSON |
//!
//! Backend failures become `502` (or `504` for a timeout) with the failed phase in the body.
//!
//! The HTTP side is the SDK's HTTP server codec (feature `server-codecs`) on tokio-util's `Framed`, through
//! [`TokioUtilCodec`] (feature `tokio-util`).
//!
//! ```text
//! cargo run -p sockpool-server -- --listen framed=127.0.0.1:7000 &
//! cargo run -p sockpool --example gateway --features tokio-util,server-codecs -- 127.0.0.1:8080 127.0.0.1:7000
//! curl http://127.0.0.1:8080/echo/hello
//! curl http://127.0.0.1:8080/stats
//! ```

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sockpool::codec::http::{Limits, Response, ServerCodec};
use sockpool::codec::TokioUtilCodec;
use sockpool::protocol::Framed;
use sockpool::{Client, PoolConfig, Timeouts};
use tokio::net::TcpListener;
use tokio_util::codec::Framed as FramedIo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let backend = args.next().unwrap_or_else(|| "127.0.0.1:7000".into());

    let client = Client::framed()
        .endpoint(&backend)
        .pool(PoolConfig::default().with_max_size(8).with_min_idle(2))
        .timeouts(
            Timeouts::default()
                .with_request(Duration::from_secs(2))
                .with_total(Some(Duration::from_secs(3))),
        )
        .pipeline_depth(16)
        .build()?;

    let listener = TcpListener::bind(&listen).await?;
    println!(
        "gateway http://{} -> framed {backend}",
        listener.local_addr()?
    );
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, _) = accepted?;
                let _ = socket.set_nodelay(true);
                tokio::spawn(serve(socket, client.clone()));
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.close().await;
    Ok(())
}

/// One HTTP connection: requests are answered in order.
async fn serve(socket: tokio::net::TcpStream, client: Client<Framed>) {
    let mut io = FramedIo::new(
        socket,
        TokioUtilCodec::new(ServerCodec::new(Limits::default())),
    );
    while let Some(request) = io.next().await {
        let response = match request {
            Ok(req) => {
                let keep_alive = req.keep_alive();
                let path = String::from_utf8_lossy(&req.path).into_owned();
                let mut res = route(&client, &path).await;
                if !keep_alive {
                    res = res.with_header("Connection", "close");
                }
                res
            }
            Err(e) => match sockpool::codec::http::error_response(&e) {
                Some(res) => res,
                None => return,
            },
        };
        let close = !response.keep_alive();
        if io.send(response).await.is_err() || close {
            return;
        }
    }
}

async fn route(client: &Client<Framed>, path: &str) -> Response {
    let result = if let Some(text) = path.strip_prefix("/echo/") {
        client.echo(Bytes::copy_from_slice(text.as_bytes())).await
    } else if let Some(ms) = path.strip_prefix("/sleep/") {
        match ms.parse::<u64>() {
            Ok(ms) => client.sleep(Duration::from_millis(ms), Bytes::new()).await,
            Err(_) => return Response::new(400).with_body("bad duration\n"),
        }
    } else if path == "/stats" {
        let json = serde_json::to_vec_pretty(&client.stats()).unwrap_or_default();
        return Response::ok(json).with_header("Content-Type", "application/json");
    } else {
        return Response::new(404).with_body("try /echo/<text>, /sleep/<ms> or /stats\n");
    };
    match result {
        Ok(body) => Response::ok(body),
        Err(e) => {
            let status = if e.is_timeout() { 504 } else { 502 };
            Response::new(status).with_body(format!("{} failed: {e}\n", e.phase()))
        }
    }
}
