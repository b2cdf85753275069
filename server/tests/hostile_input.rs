//! A named test for every hostile input (issue 2 item 3, issue 14): each asserts the exact reply (or the
//! close), that the error is counted, AND that a second, well-behaved client of the same server is still
//! served afterwards, under every concurrency model.
//!
//! Most cases are one table row each (`hostile!` below): a client sends one hostile input on a fresh
//! connection and must get exactly the documented answer, then the close. Servers run with short timeouts
//! (read 300 ms) so the timeout cases are quick. Cases with a shape of their own follow the table.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use sockpool_server::{Model, Proto, Server, ServerConfig, ServerHandle, StatsSnapshot};
use sockpool_testkit::server::stop;
use support::{config, expect_reply, framed_request, framed_response, read_until_close, IO_LIMIT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Binds `listener` under `model` with `tune` applied; returns the handle and the address.
fn start(
    model: Model,
    listener: &str,
    proto: Proto,
    tune: impl FnOnce(&mut ServerConfig),
) -> (ServerHandle, SocketAddr) {
    let mut c = config(model, &[listener]);
    c.limits.read_timeout = Duration::from_millis(300);
    c.limits.idle_timeout = Duration::from_secs(30);
    c.limits.write_timeout = Duration::from_millis(500);
    tune(&mut c);
    let server = Server::bind(c).expect("bind");
    let addr = server.tcp_addr(proto).expect("addr");
    (server.spawn(), addr)
}

/// A well-behaved client of `proto` is served (on one connection of its own).
async fn still_served(proto: Proto, addr: SocketAddr) {
    let (send, want): (&[u8], &[u8]) = match proto {
        Proto::Http => {
            let text = reply_then_close(
                addr,
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await;
            assert!(
                text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("Hello, World!"),
                "{text}"
            );
            return;
        }
        Proto::Framed => {
            let (send, want) = (
                framed_request(1, 9, 0, b"still here"),
                framed_response(0, 9, b"still here"),
            );
            let mut s = TcpStream::connect(addr).await.unwrap();
            return expect_reply(&mut s, &send, &want).await;
        }
        Proto::Resp => (b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
        _ => (b"short line\n", b"short line\n"),
    };
    let mut s = TcpStream::connect(addr).await.unwrap();
    expect_reply(&mut s, send, want).await;
}

/// Sends `send` on a fresh connection and returns everything read up to the close; asserts the close.
async fn reply_then_close(addr: SocketAddr, send: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(send).await.unwrap();
    let (got, closed) = read_until_close(&mut s, IO_LIMIT).await;
    assert!(closed, "the server closed the connection");
    String::from_utf8_lossy(&got).into_owned()
}

fn assert_status_and_close(text: &str, status_line: &str) {
    assert!(
        text.starts_with(status_line),
        "want {status_line:?}, got {text:?}"
    );
    assert!(text.contains("\r\nConnection: close\r\n"), "{text:?}");
}

/// What a hostile client must get back before the close.
enum Reply {
    /// These bytes exactly (nothing, for a close without a reply).
    Exact(Vec<u8>),
    /// An HTTP response with this status line and `Connection: close`.
    Http(String),
}

/// One hostile input and the answer the server documents for it.
struct Case {
    /// `PROTO=127.0.0.1:0`.
    listener: &'static str,
    /// The protocol of `listener`.
    proto: Proto,
    /// Limits changed for this case.
    tune: fn(&mut ServerConfig),
    /// What the client sends, in one write (nothing at all for a silent client).
    send: Vec<u8>,
    /// What it must get back before the close.
    reply: Reply,
    /// The error counter that must read 1 afterwards.
    counted: fn(&StatsSnapshot) -> u64,
}

impl Case {
    /// Runs the case under every model, each on a server of its own.
    async fn run(self) {
        for model in Model::ALL {
            let (h, addr) = start(model, self.listener, self.proto, self.tune);
            let text = reply_then_close(addr, &self.send).await;
            match &self.reply {
                Reply::Exact(want) => assert_eq!(text, String::from_utf8_lossy(want), "{model}"),
                Reply::Http(status_line) => assert_status_and_close(&text, status_line),
            }
            still_served(self.proto, addr).await;
            let stats = stop(h).await;
            assert_eq!((self.counted)(&stats), 1, "{model}: {stats:?}");
        }
    }
}

/// One named test per [`Case`].
macro_rules! hostile {
    ($($(#[$doc:meta])* $name:ident => $case:expr;)*) => {$(
        $(#[$doc])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $case.run().await
        }
    )*};
}

fn framed(send: Vec<u8>, reply: Vec<u8>, counted: fn(&StatsSnapshot) -> u64) -> Case {
    Case {
        listener: "framed=127.0.0.1:0",
        proto: Proto::Framed,
        tune: |_| {},
        send,
        reply: Reply::Exact(reply),
        counted,
    }
}

/// A RESP input refused with `-ERR Protocol error: <msg>`, then the close.
fn resp_refused(send: &[u8], msg: &str) -> Case {
    Case {
        listener: "resp=127.0.0.1:0",
        proto: Proto::Resp,
        tune: |c| c.limits.max_inline = 1024,
        send: send.to_vec(),
        reply: Reply::Exact(format!("-ERR Protocol error: {msg}\r\n").into_bytes()),
        counted: |s| s.errors.protocol,
    }
}

/// A RESP input over a size limit (`--max-bulk`, `--max-multibulk`, `--max-inline`): Redis's reply all the
/// same, `-ERR Protocol error: <msg>`, then the close; counted in `errors.too_large` like HTTP's 413/431 and
/// framed's `TOO_LARGE` (it was counted in `errors.protocol`).
fn resp_too_large(send: &[u8], msg: &str) -> Case {
    Case {
        counted: |s| s.errors.too_large,
        ..resp_refused(send, msg)
    }
}

/// An HTTP input answered with `HTTP/1.1 <status>` and `Connection: close`, then the close.
fn http(send: &[u8], status: &str, counted: fn(&StatsSnapshot) -> u64) -> Case {
    Case {
        listener: "http=127.0.0.1:0",
        proto: Proto::Http,
        tune: |_| {},
        send: send.to_vec(),
        reply: Reply::Http(format!("HTTP/1.1 {status}\r\n")),
        counted,
    }
}

/// `prefix` followed by `n` NUL bytes.
fn with_nuls(prefix: &[u8], n: usize) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.extend(std::iter::repeat_n(0u8, n));
    v
}

hostile! {
    /// Only the header of a 1 MiB frame: refused from the length, without waiting for the body.
    framed_length_over_the_limit_is_too_large_then_close => Case {
        tune: |c| c.limits.max_frame = 1024,
        ..framed(
            [&(1024u32 * 1024).to_be_bytes()[..], &[1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0]].concat(),
            framed_response(2, 0, b""),
            |s| s.errors.too_large,
        )
    };
    framed_body_shorter_than_its_header_is_bad_request_then_close =>
        framed(vec![0, 0, 0, 2, 1, 0], framed_response(1, 0, b""), |s| s.errors.protocol);
    /// Part of a frame, then nothing: closed without a reply at the read timeout.
    framed_partial_request_is_closed_at_the_read_timeout =>
        framed(vec![0, 0, 0, 20, 1], Vec::new(), |s| s.errors.read_timeout);
    /// Connected, never a byte: closed at the idle timeout.
    silent_client_is_closed_at_the_idle_timeout => Case {
        tune: |c| c.limits.idle_timeout = Duration::from_millis(300),
        ..framed(Vec::new(), Vec::new(), |s| s.errors.idle_timeout)
    };
    resp_multibulk_of_twenty_million_is_refused => resp_too_large(b"*20000000\r\n", "invalid multibulk length");
    resp_non_numeric_multibulk_length_is_refused => resp_refused(b"*abc\r\n", "invalid multibulk length");
    resp_bulk_of_two_billion_is_refused => resp_too_large(b"*1\r\n$2000000000\r\n", "invalid bulk length");
    /// A 70 KB inline command, over the default 64 KiB `--max-inline`.
    resp_inline_command_of_70_kb_is_refused => Case {
        tune: |_| {},
        ..resp_too_large(&[&b"SET k "[..], &[b'v'; 70_000], b"\r\n"].concat(), "too big inline request")
    };
    resp_negative_bulk_length_is_refused => resp_refused(b"*1\r\n$-10\r\n", "invalid bulk length");
    resp_non_numeric_bulk_length_is_refused => resp_refused(b"*1\r\n$abc\r\n", "invalid bulk length");
    resp_element_without_dollar_is_refused => resp_refused(b"*1\r\nPING\r\n", "expected '$', got 'P'");
    /// Six bytes that once sliced `src[1..0]` in the decoder and panicked it: the event-loop thread died with
    /// it (every listener dark), `threads` leaked the fd.
    resp_element_starting_with_its_terminator_is_refused => resp_refused(b"*1\r\n\r\n", "expected '$', got ' '");
    resp_later_element_starting_with_its_terminator_is_refused =>
        resp_refused(b"*2\r\n$1\r\na\r\n\r\nxx", "expected '$', got ' '");
    /// Redis's "Protocol desync regression test": a NUL in a count line hides its terminator, so the request
    /// never completes; past the inline limit it is refused.
    resp_nul_in_a_count_line_is_refused_at_the_line_limit =>
        resp_too_large(&with_nuls(b"*\x00", 2048), "too big mbulk count string");
    /// A count line longer than `--max-inline` (1 KiB here) is over a size limit like the inline command it is
    /// measured against: Redis's words, counted in `errors.too_large` (it was counted in `errors.protocol`).
    resp_count_line_over_the_inline_limit_is_too_large =>
        resp_too_large(&[&b"*"[..], &[b'1'; 2048]].concat(), "too big mbulk count string");
    /// The same for a bulk length line.
    resp_bulk_length_line_over_the_inline_limit_is_too_large =>
        resp_too_large(&[&b"*1\r\n$"[..], &[b'1'; 2048]].concat(), "too big bulk count string");
    resp_nul_in_an_inline_command_is_refused_at_the_line_limit =>
        resp_too_large(&with_nuls(b"\x00", 2048), "too big inline request");
    /// The codec takes the finished arguments out of the buffer: the request is partial, not idle.
    resp_command_cut_between_arguments_is_closed_at_the_read_timeout => Case {
        reply: Reply::Exact(Vec::new()),
        counted: |s| s.errors.read_timeout,
        ..resp_refused(b"*3\r\n$3\r\nSET\r\n", "")
    };
    line_over_the_maximum_is_closed_without_reply => Case {
        listener: "line=127.0.0.1:0",
        proto: Proto::Line,
        tune: |c| c.limits.max_line = 64,
        send: vec![b'a'; 100],
        reply: Reply::Exact(Vec::new()),
        counted: |s| s.errors.too_large,
    };
    http_header_block_over_the_limit_is_431 => Case {
        tune: |c| c.limits.max_header = 1024,
        ..http(
            &[&b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: "[..], &[b'a'; 4096], b"\r\n\r\n"].concat(),
            "431 Request Header Fields Too Large",
            |s| s.errors.too_large,
        )
    };
    /// Refused from Content-Length alone, before any of the body arrives.
    http_body_over_the_limit_is_413 => Case {
        tune: |c| c.limits.max_body = 1000,
        ..http(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
            "413 Content Too Large",
            |s| s.errors.too_large,
        )
    };
    http_malformed_request_is_400 =>
        http(b"GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n", "400 Bad Request", |s| s.errors.protocol);
    /// Head complete, body promised but never sent.
    http_body_that_never_comes_is_408_after_the_read_timeout => http(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        "408 Request Timeout",
        |s| s.errors.read_timeout,
    );
    /// A head that never ends.
    http_head_that_never_ends_is_408_after_the_read_timeout =>
        http(b"GET / HTTP/1.1\r\nHost", "408 Request Timeout", |s| s.errors.read_timeout);
    /// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without `Host` (nginx does; it was 200).
    http_11_request_without_host_is_400 =>
        http(b"GET / HTTP/1.1\r\n\r\n", "400 Bad Request", |s| s.errors.protocol);
    /// The same section: more than one `Host` field is 400 too, whatever the version.
    http_request_with_two_host_fields_is_400 =>
        http(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "400 Bad Request", |s| s.errors.protocol);
    /// `CONNECT` asks for a tunnel this server never opens: `405` and the close, as nginx answers (it was a
    /// `200` on a connection that stayed HTTP, which a proxy client would take for an open tunnel).
    http_connect_is_405 =>
        http(b"CONNECT host:443 HTTP/1.1\r\nHost: host:443\r\n\r\n", "405 Method Not Allowed", |s| s.errors.protocol);
    /// A later major version sent as HTTP/1 (`HTTP/2.0`, `HTTP/3`): `505`, as nginx answers (it was 400), decided
    /// from the request line before the head ends.
    http_2_request_line_is_505 =>
        http(b"GET / HTTP/2.0\r\nHost: x", "505 HTTP Version Not Supported", |s| s.errors.protocol);
    /// A version that is no version at all stays malformed.
    http_unreadable_version_is_400 =>
        http(b"GET / HTTP/x\r\nHost: x\r\n\r\n", "400 Bad Request", |s| s.errors.protocol);
}

// ------------------------------------------------------------------------------------------ their own shape

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_negative_multibulk_length_is_no_command_like_redis() {
    let (h, addr) = start(Model::Async, "resp=127.0.0.1:0", Proto::Resp, |_| {});
    // Redis skips `*-10` as an empty command; the connection stays usable.
    let mut s = TcpStream::connect(addr).await.unwrap();
    expect_reply(&mut s, b"*-10\r\n*1\r\n$4\r\nPING\r\n", b"+PONG\r\n").await;
    still_served(Proto::Resp, addr).await;
    stop(h).await;
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
        for model in [Model::Async, Model::Threads, Model::EventLoop, Model::Uring] {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_reads_is_closed_at_the_write_timeout_with_bounded_memory() {
    for model in [
        Model::Async,
        Model::Threads,
        Model::EventLoop,
        Model::PerCore,
        Model::Uring,
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
        still_served(Proto::Framed, addr).await;
        stop(h).await;
    }
}

/// `--write-timeout` is the longest a write may make no progress, the same under every model: clients that ask
/// for a large reply and never read are closed within the timeout of their last progress and counted as write
/// timeouts. `threads` once set the timeout on the socket (SO_SNDTIMEO) and saw a write's progress only when the
/// blocked write returned, a timeout later: it closed them at ~3× the timeout, and clients that gave up first
/// were counted as I/O errors. Real time on purpose (a socket that fills); the bound is generous for a loaded
/// machine (and `processes` reports its counters every 250 ms) but fails at twice the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_are_closed_at_the_write_timeout_not_later_under_every_model() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    const SLACK: Duration = Duration::from_millis(800);
    const CLIENTS: u64 = 8;
    for model in Model::ALL {
        let (h, addr) = start(model, "framed=127.0.0.1:0", Proto::Framed, |c| {
            c.limits.write_timeout = TIMEOUT;
            c.limits.read_timeout = Duration::from_secs(30);
        });
        // Real clock: the write timeout is wall time. Taken before the first request, so every client's last
        // progress comes after it.
        let sent = std::time::Instant::now();
        let mut clients = Vec::new();
        for id in 0..CLIENTS {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let mut s = socket.connect(addr).await.unwrap();
            s.write_all(&framed_request(3, id, 8 << 20, b""))
                .await
                .unwrap();
            clients.push(s);
        }
        let closed_in = loop {
            let stats = h.stats().snapshot();
            if stats.errors.write_timeout == CLIENTS {
                break sent.elapsed();
            }
            assert!(
                sent.elapsed() < TIMEOUT * 6,
                "{model}: not all closed as write timeouts: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(
            closed_in <= TIMEOUT + SLACK,
            "{model}: closed {closed_in:?} after the requests, with a {TIMEOUT:?} write timeout"
        );
        still_served(Proto::Framed, addr).await;
        let stats = stop(h).await;
        assert_eq!(
            (stats.errors.write_timeout, stats.errors.io),
            (CLIENTS, 0),
            "{model}: {stats:?}"
        );
        drop(clients);
    }
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
    let text = reply_then_close(addr, b"").await;
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
    still_served(Proto::Http, addr).await;
    assert_eq!(stop(h).await.connections_refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_body_over_the_limit_sent_anyway_is_413_from_the_header() {
    for model in [Model::Async, Model::Threads, Model::EventLoop, Model::Uring] {
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
        still_served(Proto::Http, addr).await;
        assert_eq!(stop(h).await.errors.too_large, 1, "{model}");
    }
}

/// `--write-timeout` is the longest a write may make no progress, not a limit on a whole batch of output: a
/// client reading a 12 MiB reply steadily at ~2.6 MB/s (128 KiB every 50 ms) through a 1.5 s write timeout,
/// with an 8 MiB output budget (3 s of output per batch), gets all of it, in every model. Real time on
/// purpose (a real slow reader). The margin: once the socket's send buffer is full (autotuned to ~4 MiB on
/// loopback), the kernel reports it writable again only after about a third of it drained, ~0.5 s here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_reader_is_not_cut_off_by_the_write_timeout() {
    const SIZE: usize = 12 << 20;
    let runs = Model::ALL.map(|model| async move {
        let (h, addr) = start(model, "framed=127.0.0.1:0", Proto::Framed, |c| {
            c.limits.write_timeout = Duration::from_millis(1500);
            c.limits.write_high_water = 8 << 20;
        });
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        let mut s = socket.connect(addr).await.unwrap();
        s.write_all(&framed_request(3, 1, (SIZE - 13) as u32, b""))
            .await
            .unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 128 * 1024];
        // The reply on the wire: 4-byte length, 9-byte header, SIZE - 13 bytes of payload.
        while got < SIZE {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let n = tokio::time::timeout(IO_LIMIT, tokio::io::AsyncReadExt::read(&mut s, &mut buf))
                .await
                .unwrap_or_else(|_| panic!("{model}: no bytes for 10 s after {got}"))
                .unwrap();
            assert!(n > 0, "{model}: cut off after {got} of {SIZE} bytes");
            got += n;
        }
        let stats = stop(h).await;
        assert_eq!(stats.errors.write_timeout, 0, "{model}");
    });
    futures::future::join_all(runs).await;
}
