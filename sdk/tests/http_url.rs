//! Issue 16 item 2 (HTTP): a client from an `http://` URL sends `Host` and the default headers on every request
//! that lacks them, while a request's own fields win.

mod common;

use std::time::Duration;

use sockpool::codec::http::{Headers, Request};
use sockpool::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server that answers each request on a connection with `200` and the request's head as the body.
async fn head_echo() -> std::net::SocketAddr {
    common::tcp_server(|mut s| async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = buf.drain(..end + 4).collect();
                let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", head.len());
                if s.write_all(reply.as_bytes()).await.is_err() || s.write_all(&head).await.is_err()
                {
                    return;
                }
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
}

#[tokio::test]
async fn http_url_sends_host_and_default_headers() {
    let addr = head_echo().await;
    let client = Client::http(
        &format!("http://localhost:{}/", addr.port()),
        Headers::new()
            .with("User-Agent", "sockpool-test")
            .with("X-Tenant", "blue"),
    )
    .unwrap()
    .build()
    .unwrap();
    let head = |r: sockpool::codec::http::Response| String::from_utf8(r.body.to_vec()).unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), client.request(Request::get("/a")))
        .await
        .unwrap()
        .unwrap();
    let text = head(reply);
    assert!(text.starts_with("GET /a HTTP/1.1\r\n"), "{text}");
    assert!(
        text.contains(&format!("Host: localhost:{}\r\n", addr.port())),
        "{text}"
    );
    assert!(text.contains("User-Agent: sockpool-test\r\n"), "{text}");
    assert!(text.contains("X-Tenant: blue\r\n"), "{text}");
    // A request's own field wins over the default (and is not sent twice).
    let reply = client
        .request(Request::get("/b").with_header("x-tenant", "green"))
        .await
        .unwrap();
    let text = head(reply);
    assert!(
        text.contains("x-tenant: green\r\n") && !text.contains("blue"),
        "{text}"
    );
    // A URL with a path is refused: the path belongs to each request.
    let e = Client::http("http://localhost/path", Headers::new()).unwrap_err();
    assert!(e.to_string().contains("no path"), "{e}");
}
