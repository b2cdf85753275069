//! Issue 16 item 3 (HTTP): `http::Request` in and `http::Response` out against the reference server, and 4xx/5xx
//! statuses as errors only when the client asks for them.

use std::time::Duration;

use bytes::Bytes;
use sockpool::codec::http::Headers;
use sockpool::{Client, ErrorKind};

/// The reference server's HTTP listener, with bodies over 16 bytes refused (`413`, then it closes).
fn server() -> (sockpool_server::ServerHandle, std::net::SocketAddr) {
    let server = sockpool_testkit::server::start_with(&["http=127.0.0.1:0"], |c| {
        c.limits.max_body = 16;
        c.http_body_size = 5;
    });
    let addr = server.tcp_addr(sockpool_server::Proto::Http).unwrap();
    (server, addr)
}

/// A POST whose body is over the server's limit.
fn too_large() -> http::Request<Bytes> {
    http::Request::post("/upload")
        .body(Bytes::from(vec![b'x'; 64]))
        .unwrap()
}

#[tokio::test]
async fn http_requests_in_and_responses_out_with_status_errors_only_when_asked() {
    let (server, addr) = server();
    tokio::time::timeout(Duration::from_secs(30), async {
        let url = format!("http://{addr}");
        let plain = Client::http(&url, Headers::new()).unwrap().build().unwrap();
        let response = plain
            .send(
                http::Request::get("/")
                    .header("X-Any", "1")
                    .body("")
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.headers()["content-length"], "5");
        assert_eq!(response.body().len(), 5);
        // Without the flag a 413 is a response like any other.
        let response = plain.send(too_large()).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::PAYLOAD_TOO_LARGE);

        let strict = Client::http(&url, Headers::new())
            .unwrap()
            .error_for_status(true)
            .build()
            .unwrap();
        let ok = strict
            .send(http::Request::get("/").body("").unwrap())
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let e = strict.send(too_large()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HttpStatus, "{e}");
        assert_eq!(e.http_status(), Some(413), "{e}");
        assert!(e.to_string().contains("413"), "{e}");
        assert!(e.was_sent() && !e.is_retryable(), "{e}");
        // The same through the codec's own types.
        let e = strict
            .request(sockpool::codec::http::Request::post("/", vec![b'y'; 64]))
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), Some(413), "{e}");
        // `call` always returns the response.
        let r = strict
            .call(sockpool::codec::http::Request::post("/", vec![b'y'; 64]))
            .await
            .unwrap();
        assert_eq!(r.status, 413);
        plain.close().await;
        strict.close().await;
    })
    .await
    .expect("bounded");
    drop(server);
}
