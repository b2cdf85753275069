//! The bodies of the codec fuzz targets, one function per decoder and side, shared by the libFuzzer binaries
//! (`fuzz/fuzz_targets/*.rs`) and the corpus replay in `cargo test` (`sdk/tests/fuzz_corpus.rs`), which both
//! include this file with `#[path]`.
//!
//! Every target feeds its input to a fresh decoder twice per limit set, all at once and byte by byte, and
//! checks:
//!
//! - no panic (a panic is the crash libFuzzer reports);
//! - after every `Ok(None)`, at most `bound` bytes stay buffered (one unfinished frame at the limits), and
//!   the decoder reserved at most [`RESERVE_AHEAD`] bytes ahead of what arrived;
//! - both feeds decode the same items and end the same way (the codecs promise the same frames whatever the
//!   read boundaries; an error must be of the same kind).
//!
//! Two limit sets per codec: tight ones (a few bytes, so any input runs into them) and roomy ones (1 MiB,
//! over the 64 KiB a decoder may reserve ahead, so reserving an announced length shows).
//!
//! Client targets whose decoder depends on what was sent take that from the first input byte(s) (see each).

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use sockpool::codec::{echo, framed, http, line, resp, CodecError, Decode, Encode, Limit};

/// The most a decoder may reserve ahead of the bytes that arrived: the codecs' 64 KiB cap plus a header.
pub const RESERVE_AHEAD: usize = 64 * 1024 + 64;

/// A limit above [`RESERVE_AHEAD`], so that a decoder reserving what a peer announces is caught.
const ROOMY: usize = 1024 * 1024;

/// What kind of error ended a feed (messages may quote lengths that depend on the read boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `CodecError::Io` (here only `Decode::decode_eof`'s "bytes remaining on stream" at the end of input).
    Io,
    /// `CodecError::TooLarge` for this limit.
    TooLarge(Limit),
    /// `CodecError::Protocol`.
    Protocol,
}

impl From<&CodecError> for Failure {
    fn from(e: &CodecError) -> Self {
        match e {
            CodecError::Io(_) => Failure::Io,
            CodecError::TooLarge { what, .. } => Failure::TooLarge(*what),
            CodecError::Protocol(_) => Failure::Protocol,
        }
    }
}

/// What one feed decoded, and the error that ended it, if any.
#[derive(Debug, PartialEq)]
pub struct Outcome<T> {
    /// The items, in order.
    pub items: Vec<T>,
    /// `None` when the input was used up without an error.
    pub failure: Option<Failure>,
}

/// Feeds `input` to `dec` in pieces of `piece` bytes (`0`: all at once), decoding after every piece and at
/// the end of input, and checks the buffer after every `Ok(None)`: at most `bound` bytes buffered, and at
/// most [`RESERVE_AHEAD`] reserved past them.
///
/// Before each piece the buffer is copied into one of exactly the size needed, so any capacity past that is
/// the decoder's doing; `BytesMut::reserve` may double the allocation it replaces, hence the `2 *` below.
pub fn feed<D: Decode>(
    name: &str,
    mut dec: D,
    input: &[u8],
    piece: usize,
    bound: usize,
) -> Outcome<D::Item> {
    let piece = if piece == 0 {
        input.len().max(1)
    } else {
        piece
    };
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    // A decoder that yields items without consuming input would loop for ever; none may yield more items
    // than this (echo's zero-length replies are the only items made of no bytes, a handful at most).
    let most_items = input.len() + 16;
    for chunk in input.chunks(piece) {
        let mut exact = BytesMut::with_capacity(buf.len() + chunk.len());
        exact.extend_from_slice(&buf);
        exact.extend_from_slice(chunk);
        buf = exact;
        let fed = buf.capacity();
        if let Err(e) = drain(name, &mut items, most_items, || dec.decode(&mut buf)) {
            return Outcome {
                items,
                failure: Some(Failure::from(&e)),
            };
        }
        assert!(
            buf.len() <= bound,
            "{name}: {} bytes buffered after Ok(None), bound {bound}",
            buf.len()
        );
        let allowed = (2 * fed).max(buf.len() + RESERVE_AHEAD);
        assert!(
            buf.capacity() <= allowed,
            "{name}: capacity {} after Ok(None) with {} buffered ({fed} fed): reserved past {RESERVE_AHEAD} ahead",
            buf.capacity(),
            buf.len()
        );
    }
    let failure = drain(name, &mut items, most_items, || dec.decode_eof(&mut buf))
        .err()
        .map(|e| Failure::from(&e));
    Outcome { items, failure }
}

/// Calls `decode` until it yields no item, collecting the items (at most `most`: a decoder that yields items
/// without consuming input fails the target); the error that stopped it, if one did.
fn drain<T>(
    name: &str,
    items: &mut Vec<T>,
    most: usize,
    mut decode: impl FnMut() -> Result<Option<T>, CodecError>,
) -> Result<(), CodecError> {
    while let Some(item) = decode()? {
        items.push(item);
        assert!(items.len() <= most, "{name}: items without input");
    }
    Ok(())
}

/// Feeds `input` all at once and byte by byte to decoders made by `make`, and asserts both decode the same.
fn same_whatever_the_reads<D, N>(
    name: &str,
    make: impl Fn() -> D,
    input: &[u8],
    bound: usize,
    norm: impl Fn(Vec<D::Item>) -> N,
) where
    D: Decode,
    N: PartialEq + Debug,
{
    let whole = feed(name, make(), input, 0, bound);
    let bytewise = feed(name, make(), input, 1, bound);
    let (whole, bytewise) = (
        (norm(whole.items), whole.failure),
        (norm(bytewise.items), bytewise.failure),
    );
    assert_eq!(whole, bytewise, "{name}: all at once vs byte by byte");
}

/// A decoder made by `make`, which keeps only the first bytes of each value, decodes `input` to `want` (the whole
/// decode's items, each cut as that decoder cuts it, and its end), read whole and in reads of 1 and 5 bytes, with
/// at most `bound` bytes buffered after any `Ok(None)`.
fn same_when_kept<D>(
    name: &str,
    make: impl Fn() -> D,
    input: &[u8],
    bound: usize,
    want: (Vec<D::Item>, Option<Failure>),
) where
    D: Decode,
    D::Item: PartialEq + Debug,
{
    for piece in [0, 1, 5] {
        let kept = feed(name, make(), input, piece, bound);
        assert_eq!(want, (kept.items, kept.failure), "{name}, reads of {piece}");
    }
}

fn as_is<T>(items: Vec<T>) -> Vec<T> {
    items
}

// ---------------------------------------------------------------- framed

/// `framed::ServerCodec` (requests).
pub fn framed_server(data: &[u8]) {
    for max in [32, ROOMY] {
        let bound = framed::LEN_PREFIX + max;
        same_whatever_the_reads(
            "framed server",
            || framed::ServerCodec::new(max),
            data,
            bound,
            as_is,
        );
    }
}

/// `framed::ClientCodec` (responses).
pub fn framed_client(data: &[u8]) {
    for max in [32, ROOMY] {
        let bound = framed::LEN_PREFIX + max;
        same_whatever_the_reads(
            "framed client",
            || framed::ClientCodec::new(max),
            data,
            bound,
            as_is,
        );
        // Keeping a payload's first 3 bytes changes nothing else, however the reads split: the same replies
        // and the same end, each payload cut to its first bytes with the rest counted, and no more than a
        // header and the kept bytes buffered.
        let whole = feed(
            "framed client",
            framed::ClientCodec::new(max),
            data,
            0,
            bound,
        );
        let cut = |r: framed::Response| framed::Response {
            payload: r.payload.slice(..r.payload.len().min(3)),
            payload_dropped: r.payload.len().saturating_sub(3) as u64,
            ..r
        };
        let want = (whole.items.into_iter().map(cut).collect(), whole.failure);
        let keep_bound = framed::LEN_PREFIX + framed::RESPONSE_HEADER + 3;
        same_when_kept(
            "framed client keeping 3 bytes of a payload",
            || framed::ClientCodec::new(max).with_payload_keep(3),
            data,
            keep_bound,
            want,
        );
    }
}

// ---------------------------------------------------------------- echo

/// `echo::EchoCodec` (the server side): hands over whatever arrived; the concatenation is the stream.
pub fn echo_server(data: &[u8]) {
    same_whatever_the_reads("echo server", echo::EchoCodec::new, data, 0, |items| {
        items.concat()
    });
    let out = feed("echo server", echo::EchoCodec::new(), data, 7, 0);
    assert_eq!(
        out.items.concat(),
        data,
        "echo server: the stream, unchanged"
    );
}

/// `echo::EchoClientCodec`: the first byte `n` says how many requests were sent (`n % 8`), the next `n % 8`
/// bytes their lengths; the rest is what the server sent back.
pub fn echo_client(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8).min(rest.len());
    let (lens, stream) = rest.split_at(n);
    let make = || {
        let mut client = echo::EchoClientCodec::new();
        for &len in lens {
            let _ = client.encode(
                Bytes::from(vec![b'e'; usize::from(len)]),
                &mut BytesMut::new(),
            );
        }
        client
    };
    let bound = lens.iter().copied().max().map_or(0, usize::from);
    same_whatever_the_reads("echo client", make, stream, bound, as_is);
}

// ---------------------------------------------------------------- line

/// `line::LineCodec` (the same codec on both sides).
pub fn line(data: &[u8]) {
    for max in [0, 1, 16, ROOMY] {
        same_whatever_the_reads("line", || line::LineCodec::new(max), data, max + 1, as_is);
        // Keeping a line's first 3 bytes changes nothing else, however the reads split: the same lines and the
        // same end, each longer line cut to its first bytes with its whole length, and no more than the kept
        // bytes and a `\r` buffered.
        let whole = feed("line", line::LineCodec::new(max), data, 0, max + 1);
        let want: Vec<_> = whole
            .items
            .into_iter()
            .map(|l| line::KeptLine {
                head: l.slice(..l.len().min(3)),
                len: l.len() as u64,
            })
            .collect();
        same_when_kept(
            "line keeping 3 bytes of a line",
            || Kept(line::LineCodec::new(max).with_keep(3)),
            data,
            4,
            (want, whole.failure),
        );
    }
}

/// A line codec through its `decode_kept` door: each line with its whole length.
struct Kept(line::LineCodec);

impl Decode for Kept {
    type Item = line::KeptLine;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<line::KeptLine>, CodecError> {
        self.0.decode_kept(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<line::KeptLine>, CodecError> {
        self.0.decode_eof_kept(src)
    }
}

// ---------------------------------------------------------------- resp

const RESP_TIGHT: resp::Limits = resp::Limits::new()
    .with_max_bulk(8)
    .with_max_multibulk(4)
    .with_max_inline(16)
    // The client's limit on a reply as a whole (a few arrays' slots and bulks): inputs run into it as well.
    .with_max_reply(256);

const RESP_ROOMY: resp::Limits = resp::Limits::new()
    .with_max_bulk(ROOMY)
    .with_max_multibulk(1024)
    .with_max_inline(1024);

/// `resp::ServerCodec`, through both of its doors: `Decode::decode` all at once and byte by byte, and
/// `decode_command` (what the server calls) byte by byte; all three must agree.
pub fn resp_server(data: &[u8]) {
    for limits in [RESP_TIGHT, RESP_ROOMY] {
        // One header or inline line at `max_inline` plus its `\r`, or one bulk at `max_bulk` plus its CRLF.
        let bound = (limits.max_inline + 1).max(limits.max_bulk + 2);
        let name = "resp server";
        let make = || resp::ServerCodec::new(limits);
        let whole = feed(name, make(), data, 0, bound);
        let bytewise = feed(name, make(), data, 1, bound);
        assert_eq!(whole, bytewise, "{name}: all at once vs byte by byte");
        let by_command = decode_commands(make(), data, bound);
        assert_eq!(whole, by_command, "{name}: decode vs decode_command");
    }
}

/// Feeds `input` byte by byte through `ServerCodec::decode_command`, as the server's RESP session does.
fn decode_commands(mut dec: resp::ServerCodec, input: &[u8], bound: usize) -> Outcome<Vec<Bytes>> {
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for &b in input {
        buf.extend_from_slice(&[b]);
        loop {
            match dec.decode_command(&mut buf) {
                Ok(Some(args)) => items.push(args.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        items,
                        failure: Some(Failure::from(&e)),
                    }
                }
            }
            dec.clear();
            assert!(
                items.len() <= input.len(),
                "resp server: items without input"
            );
        }
        assert!(buf.len() <= bound, "resp server: {} buffered", buf.len());
    }
    // `Decode::decode_eof`'s default: bytes left at the end of input are an I/O error.
    let failure = (!buf.is_empty()).then_some(Failure::Io);
    Outcome { items, failure }
}

/// `resp::ClientCodec` (replies, nested arrays included).
pub fn resp_client(data: &[u8]) {
    for limits in [RESP_TIGHT, RESP_ROOMY] {
        // A bulk's header line and the bulk stay buffered together until both are complete.
        let bound = limits.max_inline + 2 + limits.max_bulk + 2;
        same_whatever_the_reads(
            "resp client",
            || resp::ClientCodec::new(limits),
            data,
            bound,
            as_is,
        );
        // Keeping a bulk string's first 3 bytes changes nothing else, however the reads split: the same replies
        // and the same end, each longer bulk cut to its first bytes with its whole length, and no more than a
        // header line and the kept bytes buffered.
        let whole = feed(
            "resp client",
            resp::ClientCodec::new(limits),
            data,
            0,
            bound,
        );
        let want: (Vec<resp::Value>, _) = (
            whole.items.into_iter().map(cut_bulks).collect(),
            whole.failure,
        );
        let cut_arrays = (want.0.iter().cloned().map(cut_items).collect(), want.1);
        same_when_kept(
            "resp client keeping 3 bytes of a bulk",
            || resp::ClientCodec::new(limits).with_bulk_keep(3),
            data,
            limits.max_inline + 7,
            want,
        );
        // Keeping 2 elements of an array too: each longer array cut to them, its count and the payload of the
        // others.
        same_when_kept(
            "resp client keeping 3 bytes of a bulk and 2 elements of an array",
            || {
                resp::ClientCodec::new(limits)
                    .with_bulk_keep(3)
                    .with_array_keep(2)
            },
            data,
            limits.max_inline + 7,
            cut_arrays,
        );
    }
}

/// `value` (bulks already cut) as a client keeping 2 elements of an array decodes it.
fn cut_items(value: resp::Value) -> resp::Value {
    match value {
        resp::Value::Array(items) => {
            let len = items.len() as u64;
            let mut items: Vec<resp::Value> = items.into_iter().map(cut_items).collect();
            if items.len() <= 2 {
                return resp::Value::Array(items);
            }
            let rest = items[2..].iter().map(resp::Value::payload_len).sum();
            items.truncate(2);
            resp::Value::ArrayHead {
                head: items,
                len,
                rest,
            }
        }
        other => other,
    }
}

/// `value` as a client keeping 3 bytes of a bulk string decodes it.
fn cut_bulks(value: resp::Value) -> resp::Value {
    match value {
        resp::Value::Bulk(b) if b.len() > 3 => resp::Value::BulkHead {
            head: b.slice(..3),
            len: b.len() as u64,
        },
        resp::Value::Array(items) => resp::Value::Array(items.into_iter().map(cut_bulks).collect()),
        other => other,
    }
}

// ---------------------------------------------------------------- http

const HTTP_TIGHT: http::Limits = http::Limits::new()
    .with_max_header_bytes(64)
    .with_max_headers(4)
    .with_max_body_bytes(16);

const HTTP_ROOMY: http::Limits = http::Limits::new()
    .with_max_header_bytes(8 * 1024)
    .with_max_headers(100)
    .with_max_body_bytes(ROOMY);

/// `http::ServerCodec` (requests). The encoder is driven too: every decoded request is answered, so the
/// keep-alive bookkeeping runs as in the server.
pub fn http_server(data: &[u8]) {
    for limits in [HTTP_TIGHT, HTTP_ROOMY] {
        // A head, or a body; a chunked body is held as the body so far plus the line not parsed yet (a chunk
        // size or trailer line, shorter than max_header_bytes): OPERATIONS.md's `--max-header` + `--max-body`.
        let bound = limits.max_header_bytes + limits.max_body_bytes;
        same_whatever_the_reads(
            "http server",
            || http::ServerCodec::new(limits),
            data,
            bound,
            as_is,
        );
        let mut codec = http::ServerCodec::new(limits);
        let mut buf = BytesMut::from(data);
        let mut out = BytesMut::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(req)) => {
                    let res = http::Response::ok(req.body);
                    codec
                        .encode(res, &mut out)
                        .expect("our own response encodes");
                }
                Ok(None) => break,
                Err(e) => {
                    let res = http::error_response(&e).expect("a decode error has a status");
                    codec
                        .encode(res, &mut out)
                        .expect("an error response encodes");
                    assert!(codec.is_closing(), "http server: an error response closes");
                    break;
                }
            }
        }
        assert_eq!(codec.unanswered(), 0, "http server: every request answered");
    }
}

/// `http::ClientCodec` (responses): the first byte says which of the 8 requests sent were `HEAD` (bit `i` for
/// request `i`; the others `GET`); the rest is what the server sent.
pub fn http_client(data: &[u8]) {
    let Some((&heads, stream)) = data.split_first() else {
        return;
    };
    for limits in [HTTP_TIGHT, HTTP_ROOMY] {
        let make_keeping = |keep: usize| {
            let mut client = http::ClientCodec::new(limits).with_body_keep(keep);
            for i in 0..8 {
                let method = if heads & (1 << i) != 0 {
                    http::Method::Head
                } else {
                    http::Method::Get
                };
                let req = http::Request::new(method, "/");
                client
                    .encode(req, &mut BytesMut::new())
                    .expect("a plain request encodes");
            }
            client
        };
        let make = || make_keeping(usize::MAX);
        // Chunk data leaves the buffer as it arrives; a body delimited by the close is refused past the limit.
        let bound = limits.max_header_bytes.max(limits.max_body_bytes);
        same_whatever_the_reads("http client", make, stream, bound, as_is);
        // Keeping a body's first 3 bytes changes nothing else, however the reads split: the same responses and
        // the same end, each body cut to its first bytes with its whole length counted, and no more than a
        // head and a read's bytes buffered.
        let whole = feed("http client", make(), stream, 0, bound);
        let cut = |items: Vec<http::Response>| -> Vec<http::Response> {
            items
                .into_iter()
                .map(|mut r| {
                    r.body_dropped = r.body_len() - r.body.len().min(3) as u64;
                    r.body.truncate(3);
                    r
                })
                .collect()
        };
        let want = (cut(whole.items), whole.failure);
        same_when_kept(
            "http client keeping 3 bytes of a body",
            || make_keeping(3),
            stream,
            limits.max_header_bytes + 3,
            want,
        );
    }
}

/// A target body: one fuzz input in, a panic for a finding.
pub type Body = fn(&[u8]);

/// Every target by name, as the fuzz binaries and the corpus directories are named.
pub const TARGETS: &[(&str, Body)] = &[
    ("framed_server", framed_server),
    ("framed_client", framed_client),
    ("echo_server", echo_server),
    ("echo_client", echo_client),
    ("line", line),
    ("resp_server", resp_server),
    ("resp_client", resp_client),
    ("http_server", http_server),
    ("http_client", http_client),
];
