//! A reply that never ends still times out, and a timeout after part of a reply names `Request`.
//!
//! A peer that never lets the socket run dry (endless `100 Continue` heads, written faster than the client
//! parses them) keeps every read of the connection ready; the caller-driven `Pipelined` polled its timer only
//! when no read was, so the deadline never fired and the request waited for good (the load generator ran 97 s
//! past a 2 s `--duration` with a 1 s `--timeout`). The pooled client's paths already timed out (a caller's
//! deadline there is a tokio timeout, which polls its timer even when the budget is spent): they are here so
//! that no path regresses. Real time, not paused: on paused time the clock moves only while the runtime is
//! idle, which is exactly what a flooding peer never lets it be. Each wait is bounded (`BOUND`), so a
//! regression fails instead of hanging.
//!
//! The HTTP decoder takes a response's head off the read buffer as soon as it is whole (and, keeping only part
//! of a body, the body as it arrives): a timeout while the rest is awaited found the buffer empty and named
//! `Read`, "no byte of its reply has arrived". Those run in real time too, with a peer on its own threads: on
//! paused time the clock would jump to the deadline whenever the runtime waits, possibly before the head had
//! crossed loopback. Nothing is asserted of when the timeout fires, only what it names; the head arrives within
//! microseconds of a deadline a second away.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use sockpool::codec::http::Request;
use sockpool::protocol::Http;
use sockpool::transport::{Connector, Endpoint};
use sockpool::{Client, ErrorKind, Phase, Pipelined, RetryPolicy, SocketOptions, Timeouts};

/// The request timeout of every case.
const TIMEOUT: Duration = Duration::from_millis(300);
/// The request timeout of the cases where a reply's head comes and then nothing.
const HEAD_TIMEOUT: Duration = Duration::from_secs(1);
/// The most a case may take before it counts as hung.
const BOUND: Duration = Duration::from_secs(30);

/// A peer on its own OS threads (so the client's runtime cannot slow it down): reads a request, then writes
/// `100 Continue` heads until the client goes away.
fn flooding_peer() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let heads = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(1 << 15);
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let heads = heads.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
                    return;
                }
                while s.write_all(&heads).is_ok() {}
            });
        }
    });
    addr
}

fn client(addr: SocketAddr, depth: usize) -> Client<Http> {
    Client::builder(Http::default())
        .endpoint(addr.to_string().parse::<Endpoint>().unwrap())
        .timeouts(Timeouts::default().with_request(TIMEOUT))
        .retry(RetryPolicy::none())
        .pipeline_depth(depth)
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_endless_reply_times_out_on_a_pooled_client_at_depth_1_and_4() {
    for depth in [1, 4] {
        let client = client(flooding_peer(), depth);
        let r = tokio::time::timeout(BOUND, client.call(Request::get("/")))
            .await
            .unwrap_or_else(|_| panic!("depth {depth}: the request waited for good"));
        let e = r.expect_err("no reply ever ends");
        assert_eq!(e.kind(), ErrorKind::Timeout, "depth {depth}: {e}");
    }
}

#[tokio::test]
async fn an_endless_reply_times_out_on_a_caller_driven_connection() {
    let connector = Connector::new(SocketOptions::default(), &Timeouts::default(), None).unwrap();
    let endpoint: Endpoint = flooding_peer().to_string().parse().unwrap();
    let mut conn = Pipelined::connect(&connector, &endpoint, Http::default(), TIMEOUT)
        .await
        .unwrap();
    conn.send(Request::get("/"), 7u32, tokio::time::Instant::now())
        .unwrap();
    let c = tokio::time::timeout(BOUND, conn.next())
        .await
        .expect("the request timed out instead of waiting for good")
        .expect("a completion");
    assert_eq!(c.token, 7);
    let e = c.result.expect_err("no reply ever ends");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
}

/// A peer that answers its connection's first request with an empty `200`, and every later one with the head
/// of a chunked response (`keep` more body bytes after it: a chunk begun) and then nothing, holding the
/// connection open.
fn head_then_silence(body_bytes: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut first = true;
                while !matches!(s.read(&mut buf), Ok(0) | Err(_)) {
                    let reply = if first {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()
                    } else {
                        let mut r =
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n"
                                .to_vec();
                        r.extend(std::iter::repeat_n(b'x', body_bytes));
                        r
                    };
                    first = false;
                    if s.write_all(&reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The head came (and `body_bytes` of the body, kept or dropped as `keep_body` says), then nothing: the
/// timeout names `Request` on a pooled client at `depth`.
async fn pooled_timeout_after_the_head(
    depth: usize,
    keep_body: Option<usize>,
    body_bytes: usize,
) -> Phase {
    let addr = head_then_silence(body_bytes);
    let client = Client::builder(Http {
        keep_body,
        ..Http::default()
    })
    .endpoint(addr.to_string().parse::<Endpoint>().unwrap())
    .timeouts(Timeouts::default().with_request(HEAD_TIMEOUT))
    .retry(RetryPolicy::none())
    .pipeline_depth(depth)
    .build()
    .unwrap();
    assert_eq!(client.call(Request::get("/")).await.unwrap().status, 200);
    let e = client.call(Request::get("/")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    e.phase()
}

#[tokio::test]
async fn a_timeout_after_the_head_of_a_reply_names_request_on_every_path() {
    for depth in [1, 4] {
        for (keep, bytes) in [(None, 0), (Some(0), 10)] {
            assert_eq!(
                pooled_timeout_after_the_head(depth, keep, bytes).await,
                Phase::Request,
                "depth {depth}, keeping {keep:?} of a body of which {bytes} bytes came"
            );
        }
    }
    for (keep, bytes) in [(None, 0), (Some(0), 10)] {
        let connector =
            Connector::new(SocketOptions::default(), &Timeouts::default(), None).unwrap();
        let endpoint: Endpoint = head_then_silence(bytes).to_string().parse().unwrap();
        let http = Http {
            keep_body: keep,
            ..Http::default()
        };
        let mut conn = Pipelined::connect(&connector, &endpoint, http, HEAD_TIMEOUT)
            .await
            .unwrap();
        conn.send(Request::get("/"), 0u32, tokio::time::Instant::now())
            .unwrap();
        assert!(conn.next().await.unwrap().result.is_ok());
        conn.send(Request::get("/"), 1u32, tokio::time::Instant::now())
            .unwrap();
        let c = conn.next().await.expect("a completion");
        let e = c.result.expect_err("the reply never ends");
        assert_eq!(
            (e.kind(), e.phase()),
            (ErrorKind::Timeout, Phase::Request),
            "caller-driven, keeping {keep:?} of a body of which {bytes} bytes came: {e}"
        );
    }
}
