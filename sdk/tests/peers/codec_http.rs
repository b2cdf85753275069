//! The HTTP codecs against real peers: curl talks to a small server built on `http::ServerCodec`, and
//! `http::ClientCodec` talks to nginx.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sockpool::codec::http::{self, Method, Request, Response};
use sockpool::codec::{Decode, Encode};
use sockpool_testkit::peers::{peer, start_nginx};
use sockpool_testkit::process::run_with_timeout;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves one connection the way the reference server should: decode, answer in order, honour
/// `100-continue`, answer decode errors with their status, close when the codec says so.
async fn serve(mut sock: TcpStream) {
    let mut codec = http::ServerCodec::new(http::Limits::default());
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut out = BytesMut::new();
    loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(req)) => {
                    let body = if req.body.is_empty() {
                        Bytes::from_static(b"hello")
                    } else {
                        req.body.clone()
                    };
                    let res = Response::ok(body).with_header("X-Path", &req.path);
                    codec.encode(res, &mut out).unwrap();
                }
                Ok(None) => break,
                Err(e) => {
                    let res = http::error_response(&e).unwrap();
                    codec.encode(res, &mut out).unwrap();
                    break;
                }
            }
        }
        if codec.take_continue() {
            out.extend_from_slice(http::CONTINUE);
        }
        if !out.is_empty() && sock.write_all_buf(&mut out).await.is_err() {
            return;
        }
        if codec.is_closing() {
            return;
        }
        match sock.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn start_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(sock));
        }
    });
    addr
}

/// Runs curl with `args` (10 s limit) and returns its stdout.
async fn curl(args: Vec<String>) -> String {
    let bin = peer("curl");
    let out = tokio::task::spawn_blocking(move || {
        run_with_timeout(
            Command::new(bin).arg("-s").args(args),
            Duration::from_secs(10),
        )
    })
    .await
    .unwrap()
    .expect("curl finishes");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::main(flavor = "current_thread")]
pub async fn curl_reuses_the_connection_and_posts_bodies() {
    let addr = start_server().await;
    let url = |p: &str| format!("http://{addr}{p}");
    let fmt = "%{http_code} %{num_connects}\n".to_string();
    let null = || ["-o".to_string(), "/dev/null".to_string()];
    let args = [
        vec!["-w".into(), fmt],
        null().into(),
        vec![url("/a")],
        null().into(),
        vec![url("/b")],
    ]
    .concat();
    let out = curl(args).await;
    assert_eq!(
        out, "200 1\n200 0\n",
        "the second request reuses the first connection"
    );

    let out = curl(vec![
        "--data-binary".into(),
        "posted body".into(),
        url("/p"),
    ])
    .await;
    assert_eq!(out, "posted body");

    // Asks `Expect: 100-continue` first. The echoed body goes to /dev/null: `run_with_timeout` reads stdout
    // only at the end, so more than a pipe's worth would block curl.
    let big = "x".repeat(200 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, &big).unwrap();
    let out = curl(vec![
        "-w".into(),
        "%{http_code} %{size_download}".into(),
        "-o".into(),
        "/dev/null".into(),
        "--expect100-timeout".into(),
        // Longer than the 10 s curl limit: without our `100 Continue` the test fails instead of waiting.
        "30".into(),
        "-H".into(),
        "Expect: 100-continue".into(),
        "--data-binary".into(),
        format!("@{}", file.display()),
        url("/big"),
    ])
    .await;
    assert_eq!(out, format!("200 {}", big.len()));

    let out = curl(vec!["-0".into(), "-i".into(), url("/old")]).await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Connection: close\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello"), "{out}");

    let out = curl(vec!["-I".into(), url("/h")]).await;
    assert!(out.contains("Content-Length: 5\r\n"), "{out}");
    assert!(out.contains("X-Path: /h\r\n"), "{out}");
}

#[tokio::main(flavor = "current_thread")]
pub async fn curl_sees_the_documented_error_statuses() {
    let addr = start_server().await;
    let code = "%{http_code}".to_string();
    let big_header = format!("X-Big: {}", "a".repeat(10 * 1024));
    let out = curl(vec![
        "-w".into(),
        code.clone(),
        "-H".into(),
        big_header,
        format!("http://{addr}/"),
    ])
    .await;
    assert_eq!(out, "431");
    let chunked = vec![
        "-w".into(),
        code.clone(),
        "-H".into(),
        "Transfer-Encoding: chunked".into(),
        "--data-binary".into(),
        "abc".into(),
        format!("http://{addr}/"),
    ];
    // A chunked body is decoded (it was refused with 501): the server echoes it.
    assert_eq!(curl(chunked).await, "abc200");
    let too_big = "y".repeat(http::DEFAULT_MAX_BODY_BYTES + 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, too_big).unwrap();
    let out = curl(vec![
        "-w".into(),
        code,
        "-o".into(),
        "/dev/null".into(),
        "--data-binary".into(),
        format!("@{}", file.display()),
        format!("http://{addr}/"),
    ])
    .await;
    assert_eq!(out, "413");
}

#[tokio::main(flavor = "current_thread")]
pub async fn client_codec_reads_pipelined_nginx_responses() {
    let nginx = start_nginx(1, "hello");
    let mut sock = TcpStream::connect(nginx.addr).await.unwrap();
    let mut codec = http::ClientCodec::new(http::Limits::default()).with_host("localhost");
    let mut out = BytesMut::new();
    codec.encode(Request::get("/"), &mut out).unwrap();
    codec
        .encode(Request::new(Method::Head, "/"), &mut out)
        .unwrap();
    codec
        .encode(
            Request::get("/x").with_header("Connection", "close"),
            &mut out,
        )
        .unwrap();
    sock.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let read = async {
        loop {
            while let Some(res) = codec.decode(&mut buf).unwrap() {
                got.push(res);
            }
            if sock.read_buf(&mut buf).await.unwrap() == 0 {
                if let Some(res) = codec.decode_eof(&mut buf).unwrap() {
                    got.push(res);
                }
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("nginx answers");
    let summary: Vec<_> = got.iter().map(|r| (r.status, r.body.clone())).collect();
    assert_eq!(
        summary,
        vec![
            (200, Bytes::from("hello")),
            (200, Bytes::new()),
            (200, Bytes::from("hello"))
        ]
    );
    assert_eq!(got[1].header("content-length"), Some(&b"5"[..]));
    assert!(
        codec.is_closing(),
        "nginx answered the last request with Connection: close"
    );
}
