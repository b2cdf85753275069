//! Property tests over every codec, through one harness (`Case`), not one copy per codec:
//!
//! (a) encode → decode round-trips what was encoded;
//! (b) arbitrary bytes (random, or behind a hostile prefix announcing a huge length) never panic, and never make
//!     the decoder hold more than one unfinished frame's worth of bytes, nor grow the buffer much past that;
//! (c) a valid stream split at every byte boundary, or fed byte by byte, decodes to the same frames as whole.
//!
//! Limits are tiny so that hostile lengths are far over them. Case counts are modest to keep the file quick in
//! a debug build.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sockpool::codec::{echo, framed, http, line, resp, CodecError};
use sockpool::codec::{Decode, Encode};

/// The largest piece the hostile-input property feeds at once.
const MAX_CHUNK: usize = 16;

/// One codec direction under test: what it encodes, how to compare, what a hostile peer may make it buffer.
trait Case {
    /// What the encoding side takes.
    type Item: Clone + Debug;
    /// The decoding side.
    type Dec: Decode;
    /// A comparable form of a whole stream's frames.
    type Norm: PartialEq + Debug;

    /// Names the case in failure messages.
    fn name(&self) -> &'static str;
    /// Sequences of items to send on one connection.
    fn items(&self) -> BoxedStrategy<Vec<Self::Item>>;
    /// Encodes `items` as one stream, and returns it with the decoder that reads it.
    fn encode(&self, items: &[Self::Item]) -> (BytesMut, Self::Dec);
    /// What decoding the stream must give, from the items.
    fn expected(&self, items: &[Self::Item]) -> Self::Norm;
    /// The comparable form of what was decoded.
    fn decoded(&self, out: Vec<<Self::Dec as Decode>::Item>) -> Self::Norm;
    /// A decoder facing a hostile peer.
    fn hostile(&self) -> Self::Dec;
    /// Prefixes a hostile peer starts with (huge announced lengths, unterminated heads …).
    fn seeds(&self) -> Vec<&'static [u8]>;
    /// The most bytes this decoder may leave buffered while it waits for the rest of a frame: one frame at
    /// the limits, framing included (see each case).
    fn bound(&self) -> usize;
}

/// Feeds `stream` cut at `cuts`, decoding after every piece and at the end of input.
fn decode_pieces<D: Decode>(
    mut dec: D,
    stream: &[u8],
    cuts: &[usize],
) -> Result<Vec<D::Item>, CodecError> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
        buf.extend_from_slice(&stream[start..end]);
        start = end;
        while let Some(item) = dec.decode(&mut buf)? {
            out.push(item);
        }
    }
    while let Some(item) = dec.decode_eof(&mut buf)? {
        out.push(item);
    }
    Ok(out)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn fail(case: &str, e: impl std::fmt::Display) -> String {
    format!("{case}: {e}")
}

/// (a) encode → decode gives back what was encoded.
fn round_trips<C: Case>(case: C) {
    runner(64)
        .run(&case.items(), |items| {
            let (stream, dec) = case.encode(&items);
            let out =
                decode_pieces(dec, &stream, &[]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(case.decoded(out), case.expected(&items));
            Ok(())
        })
        .map_err(|e| fail(case.name(), e))
        .unwrap();
}

/// (b) hostile bytes: no panic, bounded buffering.
///
/// The harness grows the buffer to exactly what a piece needs, so any extra capacity is the decoder's doing.
/// After each decode the buffer must hold at most `bound()` bytes (one unfinished frame at the limits; past
/// that the decoder must have refused the input). Its capacity must stay within `2 * (bound() + MAX_CHUNK)`:
/// the factor 2 is `BytesMut::reserve`'s amortised growth (it doubles the allocation it replaces), the
/// `MAX_CHUNK` is the piece just fed. A decoder that reserved an announced length (the seeds announce
/// millions of bytes against limits of tens) would break it by orders of magnitude.
fn hostile_input_is_bounded<C: Case>(case: C) {
    let seeds = case.seeds();
    let strategy = (
        0..=seeds.len(),
        vec(any::<u8>(), 0..400),
        vec(1..=MAX_CHUNK, 1..64),
    );
    let bound = case.bound();
    runner(128)
        .run(&strategy, |(seed, noise, chunks)| {
            let mut input = seeds.get(seed).map(|s| s.to_vec()).unwrap_or_default();
            input.extend_from_slice(&noise);
            let mut dec = case.hostile();
            let mut buf = BytesMut::new();
            let mut pieces = input.chunks(MAX_CHUNK).flat_map(|c| {
                // Re-cut each 16-byte slice by the generated sizes, so boundaries vary.
                let mut out = Vec::new();
                let mut rest = c;
                for &n in chunks.iter().cycle().take(c.len()) {
                    if rest.is_empty() {
                        break;
                    }
                    let (a, b) = rest.split_at(n.min(rest.len()));
                    out.push(a);
                    rest = b;
                }
                out
            });
            loop {
                let Some(piece) = pieces.next() else {
                    let _ = dec.decode_eof(&mut buf);
                    break;
                };
                if buf.capacity() - buf.len() < piece.len() {
                    let mut exact = BytesMut::with_capacity(buf.len() + piece.len());
                    exact.extend_from_slice(&buf);
                    buf = exact;
                }
                buf.extend_from_slice(piece);
                let refused = loop {
                    match dec.decode(&mut buf) {
                        Ok(Some(_)) => continue,
                        Ok(None) => break false,
                        Err(_) => break true,
                    }
                };
                prop_assert!(
                    buf.capacity() <= 2 * (bound + MAX_CHUNK),
                    "capacity {} over 2 * ({bound} + {MAX_CHUNK})",
                    buf.capacity()
                );
                if refused {
                    break;
                }
                prop_assert!(
                    buf.len() <= bound,
                    "{} bytes buffered, bound {bound}",
                    buf.len()
                );
            }
            Ok(())
        })
        .map_err(|e| fail(case.name(), e))
        .unwrap();
}

/// (c) a valid stream cut at every byte boundary, and fed byte by byte, decodes as when fed whole.
fn splits_decode_the_same<C: Case>(case: C) {
    runner(24)
        .run(&case.items(), |items| {
            let (stream, dec) = case.encode(&items);
            let err = |e: CodecError| TestCaseError::fail(e.to_string());
            let whole = case.decoded(decode_pieces(dec, &stream, &[]).map_err(err)?);
            for k in 0..=stream.len() {
                let (_, dec) = case.encode(&items);
                let split = case.decoded(decode_pieces(dec, &stream, &[k]).map_err(err)?);
                prop_assert_eq!(&split, &whole, "split at {}", k);
            }
            let (_, dec) = case.encode(&items);
            let cuts: Vec<usize> = (1..stream.len()).collect();
            let bytewise = case.decoded(decode_pieces(dec, &stream, &cuts).map_err(err)?);
            prop_assert_eq!(&bytewise, &whole, "byte by byte");
            Ok(())
        })
        .map_err(|e| fail(case.name(), e))
        .unwrap();
}

fn bytes_up_to(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn encode_all<E: Encode<I>, I: Clone>(enc: &mut E, items: &[I]) -> BytesMut {
    let mut buf = BytesMut::new();
    for item in items {
        enc.encode(item.clone(), &mut buf)
            .expect("valid items encode");
    }
    buf
}

// ---------------------------------------------------------------- framed

const MAX_FRAME: usize = 64;

struct FramedRequests;

impl Case for FramedRequests {
    type Item = framed::Request;
    type Dec = framed::ServerCodec;
    type Norm = Vec<framed::Request>;

    fn name(&self) -> &'static str {
        "framed requests"
    }
    fn items(&self) -> BoxedStrategy<Vec<framed::Request>> {
        let req = (
            any::<u8>(),
            any::<u64>(),
            any::<u32>(),
            bytes_up_to(MAX_FRAME - framed::REQUEST_HEADER),
        )
            .prop_map(|(op, id, arg, payload)| framed::Request {
                op: framed::Op::from_u8(op),
                id,
                arg,
                payload,
            });
        vec(req, 0..6).boxed()
    }
    fn encode(&self, items: &[framed::Request]) -> (BytesMut, framed::ServerCodec) {
        let stream = encode_all(&mut framed::ClientCodec::new(MAX_FRAME), items);
        (stream, framed::ServerCodec::new(MAX_FRAME))
    }
    fn expected(&self, items: &[framed::Request]) -> Self::Norm {
        items.to_vec()
    }
    fn decoded(&self, out: Vec<framed::Request>) -> Self::Norm {
        out
    }
    fn hostile(&self) -> framed::ServerCodec {
        framed::ServerCodec::new(MAX_FRAME)
    }
    fn seeds(&self) -> Vec<&'static [u8]> {
        vec![
            b"\x7f\xff\xff\xff",
            b"\x00\x01\x00\x00",
            b"\x00\x00\x00\x40",
        ]
    }
    /// Prefix plus one body at the limit (once the length is valid the decoder reserves toward it, 64 KiB ahead
    /// at most).
    fn bound(&self) -> usize {
        framed::LEN_PREFIX + MAX_FRAME
    }
}

struct FramedResponses;

impl Case for FramedResponses {
    type Item = framed::Response;
    type Dec = framed::ClientCodec;
    type Norm = Vec<framed::Response>;

    fn name(&self) -> &'static str {
        "framed responses"
    }
    fn items(&self) -> BoxedStrategy<Vec<framed::Response>> {
        let res = (
            any::<u8>(),
            any::<u64>(),
            bytes_up_to(MAX_FRAME - framed::RESPONSE_HEADER),
        )
            .prop_map(|(status, id, payload)| framed::Response {
                status: framed::Status::from_u8(status),
                id,
                payload,
                payload_dropped: 0,
            });
        vec(res, 0..6).boxed()
    }
    fn encode(&self, items: &[framed::Response]) -> (BytesMut, framed::ClientCodec) {
        let stream = encode_all(&mut framed::ServerCodec::new(MAX_FRAME), items);
        (stream, framed::ClientCodec::new(MAX_FRAME))
    }
    fn expected(&self, items: &[framed::Response]) -> Self::Norm {
        items.to_vec()
    }
    fn decoded(&self, out: Vec<framed::Response>) -> Self::Norm {
        out
    }
    fn hostile(&self) -> framed::ClientCodec {
        framed::ClientCodec::new(MAX_FRAME)
    }
    fn seeds(&self) -> Vec<&'static [u8]> {
        vec![b"\xff\xff\xff\xff"]
    }
    fn bound(&self) -> usize {
        framed::LEN_PREFIX + MAX_FRAME
    }
}

// ---------------------------------------------------------------- echo

const ECHO_MAX: usize = 40;

/// The client's view: requests encoded, the same bytes echoed back, split by request length.
struct EchoReplies;

impl Case for EchoReplies {
    type Item = Bytes;
    type Dec = echo::EchoClientCodec;
    type Norm = Vec<Bytes>;

    fn name(&self) -> &'static str {
        "echo replies"
    }
    fn items(&self) -> BoxedStrategy<Vec<Bytes>> {
        vec(bytes_up_to(ECHO_MAX), 0..6).boxed()
    }
    fn encode(&self, items: &[Bytes]) -> (BytesMut, echo::EchoClientCodec) {
        let mut client = echo::EchoClientCodec::new();
        let stream = encode_all(&mut client, items);
        // The echo server sends the same bytes back; the client decodes them with what it recorded.
        (stream, client)
    }
    fn expected(&self, items: &[Bytes]) -> Self::Norm {
        items.to_vec()
    }
    fn decoded(&self, out: Vec<Bytes>) -> Self::Norm {
        out
    }
    fn hostile(&self) -> echo::EchoClientCodec {
        let mut client = echo::EchoClientCodec::new();
        let _ = encode_all(
            &mut client,
            &[Bytes::from(vec![0u8; ECHO_MAX]), Bytes::from(vec![1u8; 3])],
        );
        client
    }
    fn seeds(&self) -> Vec<&'static [u8]> {
        Vec::new()
    }
    /// The longest reply outstanding: the client reserves for exactly that.
    fn bound(&self) -> usize {
        ECHO_MAX
    }
}

/// The server's view: whatever arrives is handed over; the concatenation is the stream.
struct EchoStream;

impl Case for EchoStream {
    type Item = Bytes;
    type Dec = echo::EchoCodec;
    type Norm = Vec<u8>;

    fn name(&self) -> &'static str {
        "echo stream"
    }
    fn items(&self) -> BoxedStrategy<Vec<Bytes>> {
        vec(bytes_up_to(ECHO_MAX), 0..6).boxed()
    }
    fn encode(&self, items: &[Bytes]) -> (BytesMut, echo::EchoCodec) {
        (
            encode_all(&mut echo::EchoCodec::new(), items),
            echo::EchoCodec::new(),
        )
    }
    fn expected(&self, items: &[Bytes]) -> Self::Norm {
        items.concat()
    }
    fn decoded(&self, out: Vec<Bytes>) -> Self::Norm {
        out.concat()
    }
    fn hostile(&self) -> echo::EchoCodec {
        echo::EchoCodec::new()
    }
    fn seeds(&self) -> Vec<&'static [u8]> {
        Vec::new()
    }
    /// Everything buffered is handed over at once.
    fn bound(&self) -> usize {
        0
    }
}

// ---------------------------------------------------------------- line

const MAX_LINE: usize = 32;

struct Lines;

impl Case for Lines {
    type Item = Bytes;
    type Dec = line::LineCodec;
    type Norm = Vec<Bytes>;

    fn name(&self) -> &'static str {
        "lines"
    }
    fn items(&self) -> BoxedStrategy<Vec<Bytes>> {
        // Any bytes but `\n`, not ending in `\r` (the decoder drops a `\r` before the `\n`, by design).
        let line = vec(
            any::<u8>().prop_filter("no newline", |&b| b != b'\n'),
            0..=MAX_LINE,
        )
        .prop_filter("no trailing CR", |l| l.last() != Some(&b'\r'))
        .prop_map(Bytes::from);
        vec(line, 0..6).boxed()
    }
    fn encode(&self, items: &[Bytes]) -> (BytesMut, line::LineCodec) {
        (
            encode_all(&mut line::LineCodec::new(MAX_LINE), items),
            line::LineCodec::new(MAX_LINE),
        )
    }
    fn expected(&self, items: &[Bytes]) -> Self::Norm {
        items.to_vec()
    }
    fn decoded(&self, out: Vec<Bytes>) -> Self::Norm {
        out
    }
    fn hostile(&self) -> line::LineCodec {
        line::LineCodec::new(MAX_LINE)
    }
    fn seeds(&self) -> Vec<&'static [u8]> {
        vec![b"0123456789012345678901234567890\r"]
    }
    /// A line at the limit plus a `\r` that may still be followed by its `\n`.
    fn bound(&self) -> usize {
        MAX_LINE + 1
    }
}

// ---------------------------------------------------------------- resp

const RESP: resp::Limits = resp::Limits::new()
    .with_max_bulk(16)
    .with_max_multibulk(4)
    .with_max_inline(32);

struct RespCommands;

impl Case for RespCommands {
    type Item = Vec<Bytes>;
    type Dec = resp::ServerCodec;
    type Norm = Vec<Vec<Bytes>>;

    fn name(&self) -> &'static str {
        "resp commands"
    }
    fn items(&self) -> BoxedStrategy<Vec<Vec<Bytes>>> {
        let cmd = vec(bytes_up_to(RESP.max_bulk), 1..=RESP.max_multibulk);
        vec(cmd, 0..5).boxed()
    }
    fn encode(&self, items: &[Vec<Bytes>]) -> (BytesMut, resp::ServerCodec) {
        (
            encode_all(&mut resp::ClientCodec::new(RESP), items),
            resp::ServerCodec::new(RESP),
        )
    }
    fn expected(&self, items: &[Vec<Bytes>]) -> Self::Norm {
        items.to_vec()
    }
    fn decoded(&self, out: Vec<Vec<Bytes>>) -> Self::Norm {
        out
    }
    fn hostile(&self) -> resp::ServerCodec {
        resp::ServerCodec::new(RESP)
    }
    fn seeds(&self) -> Vec<&'static [u8]> {
        vec![
            b"*3\r\n$3\r\nSET\r\n$2000000000\r\n",
            b"*2\r\n$3\r\nGET\r\n$99999\r\n",
            b"*1\r\n$16\r\n",
            b"*20000000\r\n",
            b"*\x00",
            b"\x00",
            b"set \"a",
        ]
    }
    /// One header or inline line at `max_inline` plus its `\r` (waiting for `\n`), or one bulk at `max_bulk`
    /// plus its CRLF: finished arguments leave the buffer at once.
    fn bound(&self) -> usize {
        (RESP.max_inline + 1).max(RESP.max_bulk + 2)
    }
}

struct RespValues;

fn line_text() -> impl Strategy<Value = Bytes> {
    vec(
        any::<u8>().prop_filter("no CR/LF", |&b| b != b'\r' && b != b'\n'),
        0..=16,
    )
    .prop_map(Bytes::from)
}

impl Case for RespValues {
    type Item = resp::Value;
    type Dec = resp::ClientCodec;
    type Norm = Vec<resp::Value>;

    fn name(&self) -> &'static str {
        "resp values"
    }
    fn items(&self) -> BoxedStrategy<Vec<resp::Value>> {
        let leaf = prop_oneof![
            line_text().prop_map(resp::Value::Simple),
            line_text().prop_map(resp::Value::Error),
            any::<i64>().prop_map(resp::Value::Integer),
            bytes_up_to(RESP.max_bulk).prop_map(resp::Value::Bulk),
            Just(resp::Value::Null),
            Just(resp::Value::NullArray),
        ];
        let value = leaf.prop_recursive(3, 16, RESP.max_multibulk as u32, |inner| {
            vec(inner, 0..=RESP.max_multibulk).prop_map(resp::Value::Array)
        });
        vec(value, 0..4).boxed()
    }
    fn encode(&self, items: &[resp::Value]) -> (BytesMut, resp::ClientCodec) {
        (
            encode_all(&mut resp::ServerCodec::new(RESP), items),
            resp::ClientCodec::new(RESP),
        )
    }
    fn expected(&self, items: &[resp::Value]) -> Self::Norm {
        items.to_vec()
    }
    fn decoded(&self, out: Vec<resp::Value>) -> Self::Norm {
        out
    }
    fn hostile(&self) -> resp::ClientCodec {
        resp::ClientCodec::new(RESP)
    }
    fn seeds(&self) -> Vec<&'static [u8]> {
        vec![
            b"$2000000000\r\n",
            b"*2\r\n$99999\r\n",
            b"*4\r\n*4\r\n$16\r\n",
            b"+OK",
        ]
    }
    /// A bulk's header line (at most `max_inline` + 2 bytes with its CRLF) stays buffered with the bulk (at
    /// most `max_bulk` + 2) until both are complete.
    fn bound(&self) -> usize {
        RESP.max_inline + 2 + RESP.max_bulk + 2
    }
}

// ---------------------------------------------------------------- http

const HTTP: http::Limits = http::Limits::new()
    .with_max_header_bytes(256)
    .with_max_headers(8)
    .with_max_body_bytes(16);

/// Header fields whose framing role the encoders take over; left out of comparisons.
fn is_framing(name: &str) -> bool {
    [
        "content-length",
        "connection",
        "transfer-encoding",
        "host",
        "expect",
    ]
    .iter()
    .any(|f| name.eq_ignore_ascii_case(f))
}

fn header_fields() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = "[A-Za-z][A-Za-z0-9-]{0,8}".prop_filter("not a framing field", |n| !is_framing(n));
    // httparse trims surrounding whitespace, so values start and end with a visible character.
    let value = "([!-~]([ -~]{0,12}[!-~])?)?";
    vec((name, value), 0..4)
}

type HeaderList = Vec<(String, Vec<u8>)>;

fn user_headers(h: &http::Headers) -> HeaderList {
    h.iter()
        .filter(|(n, _)| !is_framing(n))
        .map(|(n, v)| (n.to_owned(), v.to_vec()))
        .collect()
}

struct HttpRequests;

impl Case for HttpRequests {
    type Item = http::Request;
    type Dec = http::ServerCodec;
    type Norm = Vec<(String, Bytes, http::Version, HeaderList, Bytes)>;

    fn name(&self) -> &'static str {
        "http requests"
    }
    fn items(&self) -> BoxedStrategy<Vec<http::Request>> {
        let method = prop_oneof![
            Just(http::Method::Get),
            Just(http::Method::Head),
            Just(http::Method::Post),
            Just(http::Method::Put),
            Just(http::Method::Delete),
            Just(http::Method::Other(Bytes::from_static(b"PURGE"))),
        ];
        let version = prop_oneof![Just(http::Version::Http10), Just(http::Version::Http11)];
        let req = (
            method,
            "/[a-z0-9/?=&%.-]{0,20}",
            version,
            header_fields(),
            bytes_up_to(HTTP.max_body_bytes),
        )
            .prop_map(|(method, path, version, fields, body)| {
                let mut req = http::Request::new(method, path).with_body(body);
                req.version = version;
                for (n, v) in fields {
                    req.headers.push(&n, v);
                }
                req
            });
        vec(req, 0..4).boxed()
    }
    fn encode(&self, items: &[http::Request]) -> (BytesMut, http::ServerCodec) {
        let mut client = http::ClientCodec::new(HTTP).with_host("localhost");
        (encode_all(&mut client, items), http::ServerCodec::new(HTTP))
    }
    /// Every request up to the first that is not keep-alive: the server reads nothing after it.
    fn expected(&self, items: &[http::Request]) -> Self::Norm {
        let last = items.iter().position(|r| !r.keep_alive());
        items[..last.map_or(items.len(), |i| i + 1)]
            .iter()
            .map(|r| {
                let m = r.method.as_str().to_owned();
                (
                    m,
                    r.path.clone(),
                    r.version,
                    user_headers(&r.headers),
                    r.body.clone(),
                )
            })
            .collect()
    }
    fn decoded(&self, out: Vec<http::Request>) -> Self::Norm {
        self.expected(&out)
    }
    fn hostile(&self) -> http::ServerCodec {
        http::ServerCodec::new(HTTP)
    }
    fn seeds(&self) -> Vec<&'static [u8]> {
        vec![
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n",
            b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ",
            b"\r\n\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
        ]
    }
    /// An unfinished head is refused at `max_header_bytes`; a finished one leaves the buffer, and the body
    /// (at most `max_body_bytes`) is read alone.
    fn bound(&self) -> usize {
        HTTP.max_header_bytes.max(HTTP.max_body_bytes)
    }
}

struct HttpResponses;

impl Case for HttpResponses {
    type Item = http::Response;
    type Dec = http::ClientCodec;
    type Norm = Vec<(u16, Bytes, HeaderList, Bytes)>;

    fn name(&self) -> &'static str {
        "http responses"
    }
    fn items(&self) -> BoxedStrategy<Vec<http::Response>> {
        let status = prop_oneof![
            Just(200u16),
            Just(201),
            Just(204),
            Just(299),
            Just(304),
            Just(404),
            Just(431),
            Just(503)
        ];
        let reason = "([A-Za-z]([A-Za-z ]{0,10}[A-Za-z])?)?";
        let res = (
            status,
            reason,
            header_fields(),
            bytes_up_to(HTTP.max_body_bytes),
        )
            .prop_map(|(status, reason, fields, body)| {
                let mut res = http::Response::new(status).with_body(body);
                res.reason = Bytes::from(reason);
                for (n, v) in fields {
                    res.headers.push(&n, v);
                }
                res
            });
        vec(res, 0..4).boxed()
    }
    fn encode(&self, items: &[http::Response]) -> (BytesMut, http::ClientCodec) {
        (
            encode_all(&mut http::ServerCodec::new(HTTP), items),
            http::ClientCodec::new(HTTP),
        )
    }
    fn expected(&self, items: &[http::Response]) -> Self::Norm {
        items
            .iter()
            .map(|r| {
                let reason = if r.reason.is_empty() {
                    Bytes::from_static(http::reason_phrase(r.status).as_bytes())
                } else {
                    r.reason.clone()
                };
                // 204 and 304 carry no body, whatever the handler put there.
                let body = if r.status == 204 || r.status == 304 {
                    Bytes::new()
                } else {
                    r.body.clone()
                };
                (r.status, reason, user_headers(&r.headers), body)
            })
            .collect()
    }
    fn decoded(&self, out: Vec<http::Response>) -> Self::Norm {
        out.into_iter()
            .map(|r| (r.status, r.reason.clone(), user_headers(&r.headers), r.body))
            .collect()
    }
    fn hostile(&self) -> http::ClientCodec {
        http::ClientCodec::new(HTTP)
    }
    fn seeds(&self) -> Vec<&'static [u8]> {
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1869f\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\n",
        ]
    }
    /// As for requests; chunk data leaves the buffer as it arrives, and a chunk-size or trailer line is refused
    /// at `max_header_bytes`.
    fn bound(&self) -> usize {
        HTTP.max_header_bytes.max(HTTP.max_body_bytes)
    }
}

/// Runs one property over every case.
macro_rules! every_codec {
    ($property:ident) => {
        $property(FramedRequests);
        $property(FramedResponses);
        $property(EchoReplies);
        $property(EchoStream);
        $property(Lines);
        $property(RespCommands);
        $property(RespValues);
        $property(HttpRequests);
        $property(HttpResponses);
    };
}

#[test]
fn encode_then_decode_round_trips() {
    every_codec!(round_trips);
}

#[test]
fn arbitrary_bytes_never_panic_nor_grow_the_buffer_past_its_limit() {
    every_codec!(hostile_input_is_bounded);
}

#[test]
fn a_stream_split_at_every_byte_boundary_decodes_the_same() {
    every_codec!(splits_decode_the_same);
}

/// The harness itself: a decoder that reserves what a peer announces is caught by the bound.
#[test]
fn the_bound_catches_a_decoder_that_trusts_announced_lengths() {
    #[derive(Default)]
    struct Trusting;
    impl Decode for Trusting {
        type Item = ();
        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<()>, CodecError> {
            if src.len() >= 4 {
                let n = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
                src.reserve(n.min(1 << 20));
            }
            Ok(None)
        }
    }
    struct TrustingCase;
    impl Case for TrustingCase {
        type Item = ();
        type Dec = Trusting;
        type Norm = ();
        fn name(&self) -> &'static str {
            "trusting"
        }
        fn items(&self) -> BoxedStrategy<Vec<()>> {
            Just(Vec::new()).boxed()
        }
        fn encode(&self, _: &[()]) -> (BytesMut, Trusting) {
            (BytesMut::new(), Trusting)
        }
        fn expected(&self, _: &[()]) {}
        fn decoded(&self, _: Vec<()>) {}
        fn hostile(&self) -> Trusting {
            Trusting
        }
        fn seeds(&self) -> Vec<&'static [u8]> {
            vec![b"\x00\x10\x00\x00"]
        }
        fn bound(&self) -> usize {
            MAX_FRAME
        }
    }
    let caught = std::panic::catch_unwind(|| hostile_input_is_bounded(TrustingCase));
    assert!(
        caught.is_err(),
        "the bounded-buffer property must fail for a decoder that trusts lengths"
    );
}
