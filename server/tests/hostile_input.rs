//! A named test for every hostile input of issue 2 item 3: each asserts the exact reply (or the close) AND
//! that a second, well-behaved client of the same server is still served afterwards.
//!
//! Servers run the default `async` model with short timeouts so the tests are quick; the timeout tests also
//! run under `threads` and `event-loop`, which enforce the timeouts with their own machinery.

mod support;

use std::time::Duration;

use sockpool_server::{Model, Proto, Server, ServerConfig, ServerHandle};
use support::{config, expect_reply, framed_request, framed_response, read_until_close, IO_LIMIT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Binds `listener` under `model` with `tune` applied; returns the handle and the address.
fn start(
    model: Model,
    listener: &str,
    proto: Proto,
    tune: impl FnOnce(&mut ServerConfig),
) -> (ServerHandle, std::net::SocketAddr) {
    let mut c = config(model, &[listener]);
    c.limits.read_timeout = Duration::from_millis(300);
    c.limits.idle_timeout = Duration::from_secs(30);
    c.limits.write_timeout = Duration::from_millis(500);
    tune(&mut c);
    let server = Server::bind(c).expect("bind");
    let addr = server.tcp_addr(proto).expect("addr");
    (server.spawn(), addr)
}

/// Shuts the server down off the runtime and returns its final counters.
async fn stop(h: ServerHandle) -> sockpool_server::StatsSnapshot {
    tokio::task::spawn_blocking(move || h.shutdown())
        .await
        .unwrap()
}

/// A well-behaved framed client is served.
async fn framed_still_served(addr: std::net::SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    expect_reply(
        &mut s,
        &framed_request(1, 9, 0, b"still here"),
        &framed_response(0, 9, b"still here"),
    )
    .await;
}

/// A well-behaved RESP client is served.
async fn resp_still_served(addr: std::net::SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    expect_reply(&mut s, b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n").await;
}

/// Sends `send`, expects exactly `reply`, then the close.
async fn expect_reply_then_close(addr: std::net::SocketAddr, send: &[u8], reply: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(send).await.unwrap();
    let (got, closed) = read_until_close(&mut s, IO_LIMIT).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(reply)
    );
    assert!(closed, "the server closed the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_length_over_the_limit_is_too_large_then_close() {
    let (h, addr) = start(Model::Async, "framed=127.0.0.1:0", Proto::Framed, |c| {
        c.limits.max_frame = 1024
    });
    // Only the header of a 1 MiB frame: the server must refuse it from the length, without waiting for the body.
    let mut send = (1024u32 * 1024).to_be_bytes().to_vec();
    send.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0]);
    expect_reply_then_close(addr, &send, &framed_response(2, 0, b"")).await;
    framed_still_served(addr).await;
    let stats = stop(h).await;
    assert_eq!(stats.errors.too_large, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_body_shorter_than_its_header_is_bad_request_then_close() {
    let (h, addr) = start(Model::Async, "framed=127.0.0.1:0", Proto::Framed, |_| {});
    expect_reply_then_close(addr, &[0, 0, 0, 2, 1, 0], &framed_response(1, 0, b"")).await;
    framed_still_served(addr).await;
    assert_eq!(stop(h).await.errors.protocol, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_multibulk_of_twenty_million_is_refused() {
    let (h, addr) = start(Model::Async, "resp=127.0.0.1:0", Proto::Resp, |_| {});
    expect_reply_then_close(
        addr,
        b"*20000000\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    )
    .await;
    resp_still_served(addr).await;
    assert_eq!(stop(h).await.errors.protocol, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_bulk_of_two_billion_is_refused() {
    let (h, addr) = start(Model::Async, "resp=127.0.0.1:0", Proto::Resp, |_| {});
    expect_reply_then_close(
        addr,
        b"*1\r\n$2000000000\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    )
    .await;
    resp_still_served(addr).await;
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_negative_bulk_length_is_refused() {
    let (h, addr) = start(Model::Async, "resp=127.0.0.1:0", Proto::Resp, |_| {});
    expect_reply_then_close(
        addr,
        b"*1\r\n$-10\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    )
    .await;
    resp_still_served(addr).await;
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_negative_multibulk_length_is_no_command_like_redis() {
    let (h, addr) = start(Model::Async, "resp=127.0.0.1:0", Proto::Resp, |_| {});
    // Redis skips `*-10` as an empty command; the connection stays usable.
    let mut s = TcpStream::connect(addr).await.unwrap();
    expect_reply(&mut s, b"*-10\r\n*1\r\n$4\r\nPING\r\n", b"+PONG\r\n").await;
    resp_still_served(addr).await;
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_non_numeric_multibulk_length_is_refused() {
    let (h, addr) = start(Model::Async, "resp=127.0.0.1:0", Proto::Resp, |_| {});
    expect_reply_then_close(
        addr,
        b"*abc\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    )
    .await;
    resp_still_served(addr).await;
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_non_numeric_bulk_length_is_refused() {
    let (h, addr) = start(Model::Async, "resp=127.0.0.1:0", Proto::Resp, |_| {});
    expect_reply_then_close(
        addr,
        b"*1\r\n$abc\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    )
    .await;
    resp_still_served(addr).await;
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_element_without_dollar_is_refused() {
    let (h, addr) = start(Model::Async, "resp=127.0.0.1:0", Proto::Resp, |_| {});
    expect_reply_then_close(
        addr,
        b"*1\r\nPING\r\n",
        b"-ERR Protocol error: expected '$', got 'P'\r\n",
    )
    .await;
    resp_still_served(addr).await;
    stop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_element_starting_with_its_terminator_is_refused_in_every_model() {
    // `*1\r\n\r\n`: six bytes that once sliced `src[1..0]` in the decoder and panicked it. The event-loop
    // thread died with it (every listener dark), `threads` leaked the fd. Now a protocol error like Redis's.
    for model in [
        Model::Async,
        Model::PerCore,
        Model::Threads,
        Model::EventLoop,
    ] {
        let (h, addr) = start(model, "resp=127.0.0.1:0", Proto::Resp, |_| {});
        for send in [&b"*1\r\n\r\n"[..], b"*2\r\n$1\r\na\r\n\r\nxx"] {
            expect_reply_then_close(
                addr,
                send,
                b"-ERR Protocol error: expected '$', got ' '\r\n",
            )
            .await;
        }
        resp_still_served(addr).await;
        assert_eq!(stop(h).await.errors.protocol, 2, "{model:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_nul_byte_desync_is_refused() {
    // Redis's "Protocol desync regression test": a NUL in a count line hides its terminator, so the request
    // never completes; past the inline limit it is refused.
    let (h, addr) = start(Model::Async, "resp=127.0.0.1:0", Proto::Resp, |c| {
        c.limits.max_inline = 1024
    });
    let mut send = b"*\x00".to_vec();
    send.extend(std::iter::repeat_n(0u8, 2048));
    expect_reply_then_close(
        addr,
        &send,
        b"-ERR Protocol error: too big mbulk count string\r\n",
    )
    .await;
    let mut send = b"\x00".to_vec();
    send.extend(std::iter::repeat_n(0u8, 2048));
    expect_reply_then_close(
        addr,
        &send,
        b"-ERR Protocol error: too big inline request\r\n",
    )
    .await;
    resp_still_served(addr).await;
    assert_eq!(stop(h).await.errors.protocol, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_over_the_maximum_is_closed_without_reply() {
    let (h, addr) = start(Model::Async, "line=127.0.0.1:0", Proto::Line, |c| {
        c.limits.max_line = 64
    });
    expect_reply_then_close(addr, &[b'a'; 100], b"").await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    expect_reply(&mut s, b"short line\n", b"short line\n").await;
    assert_eq!(stop(h).await.errors.too_large, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_maximum_are_refused_per_protocol() {
    for (listener, proto, refusal) in [
        (
            "framed=127.0.0.1:0",
            Proto::Framed,
            framed_response(3, 0, b""),
        ),
        (
            "resp=127.0.0.1:0",
            Proto::Resp,
            b"-ERR max number of clients reached\r\n".to_vec(),
        ),
        ("line=127.0.0.1:0", Proto::Line, Vec::new()),
        ("echo=127.0.0.1:0", Proto::Echo, Vec::new()),
    ] {
        for model in [Model::Async, Model::Threads, Model::EventLoop] {
            let (h, addr) = start(model, listener, proto, |c| c.limits.max_connections = 2);
            // Two admitted connections, each proven served.
            let mut held = Vec::new();
            for _ in 0..2 {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let (send, want) = match proto {
                    Proto::Framed => (framed_request(1, 1, 0, b"x"), framed_response(0, 1, b"x")),
                    Proto::Resp => (b"PING\r\n".to_vec(), b"+PONG\r\n".to_vec()),
                    _ => (b"x\n".to_vec(), b"x\n".to_vec()),
                };
                expect_reply(&mut s, &send, &want).await;
                held.push(s);
            }
            let mut third = TcpStream::connect(addr).await.unwrap();
            let (got, closed) = read_until_close(&mut third, IO_LIMIT).await;
            assert_eq!(got, refusal, "{proto} {model}");
            assert!(closed, "{proto} {model}: refused connection closed");
            // Once one leaves, a newcomer is served again.
            drop(held.pop());
            let mut served = false;
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if h.stats().snapshot().connections_open < 2 {
                    served = true;
                    break;
                }
            }
            assert!(
                served,
                "{proto} {model}: the closed connection freed its place"
            );
            let stats = stop(h).await;
            assert_eq!(stats.connections_refused, 1, "{proto} {model}");
        }
    }
}

/// Partial request that never completes, per model: HTTP is tested in its own test; framed gets closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_request_is_closed_at_the_read_timeout() {
    for model in [
        Model::Async,
        Model::Threads,
        Model::EventLoop,
        Model::PerCore,
    ] {
        let (h, addr) = start(model, "framed=127.0.0.1:0", Proto::Framed, |_| {});
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&[0, 0, 0, 20, 1]).await.unwrap();
        let (got, closed) = read_until_close(&mut s, IO_LIMIT).await;
        assert!(got.is_empty() && closed, "{model}: closed without a reply");
        framed_still_served(addr).await;
        assert_eq!(stop(h).await.errors.read_timeout, 1, "{model}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_closed_at_the_idle_timeout() {
    for model in [
        Model::Async,
        Model::Threads,
        Model::EventLoop,
        Model::PerCore,
    ] {
        let (h, addr) = start(model, "framed=127.0.0.1:0", Proto::Framed, |c| {
            c.limits.idle_timeout = Duration::from_millis(300)
        });
        let mut s = TcpStream::connect(addr).await.unwrap();
        let (got, closed) = read_until_close(&mut s, IO_LIMIT).await;
        assert!(got.is_empty() && closed, "{model}: idle connection closed");
        framed_still_served(addr).await;
        assert_eq!(stop(h).await.errors.idle_timeout, 1, "{model}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_reads_is_closed_at_the_write_timeout_with_bounded_memory() {
    for model in [
        Model::Async,
        Model::Threads,
        Model::EventLoop,
        Model::PerCore,
    ] {
        let (h, addr) = start(model, "framed=127.0.0.1:0", Proto::Framed, |c| {
            c.limits.read_timeout = Duration::from_secs(30);
        });
        let s = TcpStream::connect(addr).await.unwrap();
        // Ask for 1 MiB downloads without ever reading: 8 MiB of requests would be 500 GiB of replies. Stop
        // when a write stalls for a second.
        let (_r, mut w) = s.into_split();
        let mut pushed = 0usize;
        let mut id = 0u64;
        while pushed < 8 * 1024 * 1024 {
            id += 1;
            let frame = framed_request(3, id, 1024 * 1024, b"");
            match tokio::time::timeout(Duration::from_secs(1), w.write_all(&frame)).await {
                Ok(Ok(())) => pushed += frame.len(),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let mut closed = false;
        for _ in 0..200 {
            if h.stats().snapshot().errors.write_timeout == 1 {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let stats = h.stats().snapshot();
        assert!(closed, "{model}: closed at the write timeout: {stats:?}");
        // While its output was backed up the server read no more requests, so it held at most one read's
        // worth of input and one high-water mark plus one reply of output, whatever the client pushed.
        assert!(
            stats.bytes_in < 1024 * 1024,
            "{model}: the server kept reading ({} of {pushed} bytes)",
            stats.bytes_in
        );
        framed_still_served(addr).await;
        stop(h).await;
    }
}

/// Sends `send` to an http server and returns the reply up to the close; asserts the close.
async fn http_reply_then_close(addr: std::net::SocketAddr, send: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(send).await.unwrap();
    let (got, closed) = read_until_close(&mut s, IO_LIMIT).await;
    assert!(closed, "the server closed the connection");
    String::from_utf8_lossy(&got).into_owned()
}

/// A well-behaved HTTP client is served.
async fn http_still_served(addr: std::net::SocketAddr) {
    let text = http_reply_then_close(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("Hello, World!"),
        "{text}"
    );
}

fn assert_status_and_close(text: &str, status_line: &str) {
    assert!(
        text.starts_with(status_line),
        "want {status_line:?}, got {text:?}"
    );
    assert!(text.contains("\r\nConnection: close\r\n"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_header_block_over_the_limit_is_431() {
    let (h, addr) = start(Model::Async, "http=127.0.0.1:0", Proto::Http, |c| {
        c.limits.max_header = 1024
    });
    let mut send = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    send.extend(std::iter::repeat_n(b'a', 4096));
    send.extend_from_slice(b"\r\n\r\n");
    let text = http_reply_then_close(addr, &send).await;
    assert_status_and_close(&text, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
    http_still_served(addr).await;
    assert_eq!(stop(h).await.errors.too_large, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_that_never_completes_is_408_after_the_read_timeout() {
    for model in [Model::Async, Model::Threads, Model::EventLoop] {
        let (h, addr) = start(model, "http=127.0.0.1:0", Proto::Http, |_| {});
        // Head complete, body promised but never sent; then a head that never ends.
        for send in [
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"[..],
            b"GET / HTTP/1.1\r\nHost",
        ] {
            let text = http_reply_then_close(addr, send).await;
            assert_status_and_close(&text, "HTTP/1.1 408 Request Timeout\r\n");
        }
        http_still_served(addr).await;
        assert_eq!(stop(h).await.errors.read_timeout, 2, "{model}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_body_over_the_limit_is_413() {
    let (h, addr) = start(Model::Async, "http=127.0.0.1:0", Proto::Http, |c| {
        c.limits.max_body = 1000
    });
    // Refused from Content-Length alone, before any of the body arrives.
    let text = http_reply_then_close(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
    )
    .await;
    assert_status_and_close(&text, "HTTP/1.1 413 Content Too Large\r\n");
    http_still_served(addr).await;
    assert_eq!(stop(h).await.errors.too_large, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_malformed_request_is_400() {
    let (h, addr) = start(Model::Async, "http=127.0.0.1:0", Proto::Http, |_| {});
    let text =
        http_reply_then_close(addr, b"GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n").await;
    assert_status_and_close(&text, "HTTP/1.1 400 Bad Request\r\n");
    http_still_served(addr).await;
    assert_eq!(stop(h).await.errors.protocol, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_beyond_the_maximum_get_503() {
    let (h, addr) = start(Model::Async, "http=127.0.0.1:0", Proto::Http, |c| {
        c.limits.max_connections = 1
    });
    let mut held = TcpStream::connect(addr).await.unwrap();
    held.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 17];
    tokio::io::AsyncReadExt::read_exact(&mut held, &mut buf)
        .await
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200 OK\r\n");
    let text = http_reply_then_close(addr, b"").await;
    assert_status_and_close(&text, "HTTP/1.1 503 Service Unavailable\r\n");
    drop(held);
    let mut served = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if h.stats().snapshot().connections_open == 0 {
            served = true;
            break;
        }
    }
    assert!(served);
    http_still_served(addr).await;
    assert_eq!(stop(h).await.connections_refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_command_cut_between_arguments_is_closed_at_the_read_timeout() {
    for model in [Model::Async, Model::Threads, Model::EventLoop] {
        let (h, addr) = start(model, "resp=127.0.0.1:0", Proto::Resp, |_| {});
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The codec takes the finished arguments out of the buffer: the request is partial, not idle.
        s.write_all(b"*3\r\n$3\r\nSET\r\n").await.unwrap();
        let (got, closed) = read_until_close(&mut s, IO_LIMIT).await;
        assert!(got.is_empty() && closed, "{model}");
        resp_still_served(addr).await;
        assert_eq!(stop(h).await.errors.read_timeout, 1, "{model}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_body_over_the_limit_sent_anyway_is_413_from_the_header() {
    for model in [Model::Async, Model::Threads, Model::EventLoop] {
        let (h, addr) = start(model, "http=127.0.0.1:0", Proto::Http, |c| {
            c.limits.max_body = 1000
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let (mut r, mut w) = s.into_split();
        // The client sends its whole 256 KiB body without waiting, as curl does without Expect.
        let writer = tokio::spawn(async move {
            let _ = w
                .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 262144\r\n\r\n")
                .await;
            let _ = w.write_all(&vec![b'b'; 262_144]).await;
            w
        });
        let (got, closed) = read_until_close(&mut r, IO_LIMIT).await;
        let text = String::from_utf8_lossy(&got);
        assert_status_and_close(&text, "HTTP/1.1 413 Content Too Large\r\n");
        assert!(closed, "{model}");
        drop(writer.await);
        http_still_served(addr).await;
        assert_eq!(stop(h).await.errors.too_large, 1, "{model}");
    }
}
