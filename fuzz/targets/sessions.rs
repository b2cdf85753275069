//! The bodies of the server-session fuzz targets: bytes in → a protocol's server side
//! (`sockpool_server::protocol::detached_session`, the handler every concurrency model drives) → replies out.
//! Shared by the libFuzzer binaries (`fuzz/fuzz_targets/session_*.rs`) and the corpus replay in `cargo test`
//! (`server/tests/fuzz_corpus.rs`), which both include this file with `#[path]`.
//!
//! Each target plays the model without sockets, as `Session`'s contract says: append what was read to the
//! input buffer, call `on_input`, "write" (take) the output, obey `Next`, and at the end of input call
//! `on_read_timeout` if a request is part-way. It feeds the input all at once and byte by byte to two fresh
//! sessions and checks:
//!
//! - no panic;
//! - the output of one `on_input` is at most `write_high_water` plus one reply at the limits (no request makes
//!   the server produce more than the largest reply its limits allow, whatever the peer asks);
//! - when a session waits for more input, it holds at most one unfinished request at the limits;
//! - both feeds write the same bytes and both close or neither (replies do not depend on the read boundaries),
//!   but for HTTP's `100 Continue`, sent only while a body is still missing.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use sockpool_server::protocol::detached_session;
use sockpool_server::{Next, Proto, ServerConfig, Session};

/// The limits every session target runs with: small, so that any input runs into them.
pub fn config() -> ServerConfig {
    let mut c = ServerConfig::default();
    let l = &mut c.limits;
    l.max_frame = 512;
    l.max_line = 64;
    l.max_header = 512;
    l.max_headers = 8;
    l.max_body = 256;
    l.max_bulk = 128;
    l.max_multibulk = 8;
    l.max_inline = 128;
    l.max_sleep = Duration::from_millis(1);
    l.write_high_water = 1024;
    c.http_body_size = 13;
    c
}

/// The largest reply one request may get from `proto` under `c`, framing included.
fn largest_reply(proto: Proto, c: &ServerConfig, read: usize) -> usize {
    let l = &c.limits;
    match proto {
        // ECHO and SOURCE: one frame at the limit. STATS: the counters as JSON, a few hundred bytes.
        Proto::Framed => (4 + l.max_frame).max(4096),
        // Each read is echoed as it is.
        Proto::Echo | Proto::Udp => read,
        Proto::Line => l.max_line + 1,
        // The fixed `200` (or an error status), and `100 Continue`.
        Proto::Http => c.http_body_size + 512,
        // A bulk at `max_bulk` (ECHO, GET, PING msg), or an error that quotes at most ~128 bytes of input
        // (each byte at most 3 once made UTF-8) and of the command name.
        Proto::Resp => l.max_bulk.max(l.max_inline) + 16 + 1024,
    }
}

/// The most input a session may hold while it waits for more: one unfinished request at the limits.
fn input_bound(proto: Proto, c: &ServerConfig) -> usize {
    let l = &c.limits;
    match proto {
        Proto::Framed => 4 + l.max_frame,
        Proto::Echo | Proto::Udp => 0,
        Proto::Line => l.max_line + 1,
        // A chunked body: the body so far plus a chunk-size or trailer line not parsed yet.
        Proto::Http => l.max_header + l.max_body,
        Proto::Resp => (l.max_inline + 1).max(l.max_bulk + 2),
    }
}

/// What a whole connection wrote, and whether the server closed it.
#[derive(Debug, PartialEq)]
pub struct Transcript {
    /// Every byte written, in order.
    pub written: Vec<u8>,
    /// True when the session said `Next::Close` (or the input ended mid-request and it timed out).
    pub closed: bool,
}

/// Drives a fresh `proto` session over `input` read `piece` bytes at a time (`0`: all at once), its clock
/// starting at `start`.
pub fn drive(proto: Proto, input: &[u8], piece: usize, start: Instant) -> Transcript {
    let c = config();
    let high_water = c.limits.write_high_water;
    let held = input_bound(proto, &c);
    let mut session = detached_session(proto, c.clone());
    let piece = if piece == 0 {
        input.len().max(1)
    } else {
        piece
    };
    let mut buf = BytesMut::new();
    let mut output = BytesMut::new();
    let mut written = Vec::new();
    let mut now = start;
    // Each turn of the loop below answers at least one request or reads; anything more is a session that
    // spins (Flush or WaitUntil without progress).
    let mut turns = 2 * input.len() + 16;
    for chunk in input.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            turns = turns.checked_sub(1).expect("the session makes no progress");
            let next = session.on_input(&mut buf, &mut output, now);
            let most = high_water + largest_reply(proto, &c, chunk.len());
            assert!(
                output.len() <= most,
                "{proto}: {} bytes of output from one on_input, most {most}",
                output.len()
            );
            written.extend_from_slice(&output);
            output.clear();
            match next {
                Next::Continue => break,
                Next::Flush => continue,
                Next::WaitUntil(t) => {
                    assert!(t > now, "{proto}: WaitUntil a time already passed");
                    now = t;
                }
                Next::Close => {
                    return Transcript {
                        written,
                        closed: true,
                    }
                }
            }
        }
        assert!(
            buf.len() <= held,
            "{proto}: {} bytes held while waiting for input, bound {held}",
            buf.len()
        );
    }
    // The end of input: a model's read timeout for a partial request (the idle timeout otherwise).
    let partial = !buf.is_empty() || session.in_progress();
    if partial {
        session.on_read_timeout(&mut output);
        written.extend_from_slice(&output);
    }
    Transcript {
        written,
        closed: partial,
    }
}

/// The target body: all at once and byte by byte must write the same.
pub fn session(proto: Proto, data: &[u8]) {
    // One clock for both: what a session answers depends on the time it is given (`TTL`, `TIME`), never on
    // the reads.
    let start = Instant::now();
    let whole = drive(proto, data, 0, start);
    let bytewise = drive(proto, data, 1, start);
    let norm = |mut t: Transcript| {
        if proto == Proto::Http {
            t.written = strip(&t.written, sockpool::codec::http::CONTINUE);
        }
        t
    };
    assert_eq!(
        norm(whole),
        norm(bytewise),
        "{proto}: all at once vs byte by byte"
    );
}

/// `haystack` without any occurrence of `needle`.
fn strip(haystack: &[u8], needle: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

pub fn session_framed(data: &[u8]) {
    session(Proto::Framed, data);
}

pub fn session_echo(data: &[u8]) {
    session(Proto::Echo, data);
}

pub fn session_line(data: &[u8]) {
    session(Proto::Line, data);
}

pub fn session_http(data: &[u8]) {
    session(Proto::Http, data);
}

pub fn session_resp(data: &[u8]) {
    session(Proto::Resp, data);
}

/// A target body: one fuzz input in, a panic for a finding.
pub type Body = fn(&[u8]);

/// Every target by name, as the fuzz binaries and the corpus directories are named.
pub const TARGETS: &[(&str, Body)] = &[
    ("session_framed", session_framed),
    ("session_echo", session_echo),
    ("session_line", session_line),
    ("session_http", session_http),
    ("session_resp", session_resp),
];
