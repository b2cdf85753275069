//! Issue 16 item 3 (HTTP) against nginx: `http::Request` in, `http::Response` out, and a 503 as an `Err` that
//! names it only when the client asks for status errors.

use std::time::Duration;

use sockpool::codec::http::Headers;
use sockpool::{Client, ErrorKind};
use sockpool_testkit::peers::{start_nginx, start_nginx_returning};

#[tokio::main(flavor = "current_thread")]
pub async fn http_types_and_status_errors_against_nginx() {
    let ok = start_nginx(1, "hello");
    let busy = start_nginx_returning(1, 503, "busy");
    tokio::time::timeout(Duration::from_secs(30), async {
        let client = Client::http(&format!("http://{}", ok.addr), Headers::new())
            .unwrap()
            .error_for_status(true)
            .build()
            .unwrap();
        let r = client
            .send(http::Request::get("/any").body("").unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), http::StatusCode::OK);
        assert_eq!(&r.body()[..], b"hello");
        assert!(r.headers().contains_key("server"), "{:?}", r.headers());

        let url = format!("http://{}", busy.addr);
        let plain = Client::http(&url, Headers::new()).unwrap().build().unwrap();
        let r = plain
            .send(http::Request::get("/").body("").unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(&r.body()[..], b"busy");
        let strict = Client::http(&url, Headers::new())
            .unwrap()
            .error_for_status(true)
            .build()
            .unwrap();
        let e = strict
            .send(http::Request::get("/").body("").unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HttpStatus, "{e}");
        assert_eq!(e.http_status(), Some(503), "{e}");
        for c in [client, plain, strict] {
            c.close().await;
        }
    })
    .await
    .expect("bounded");
    drop((ok, busy));
}
