//! HTTP/1.1 (and 1.0) requests and responses: Content-Length bodies, keep-alive and pipelining.
//!
//! `ServerCodec` (feature `server-codecs`) decodes [`Request`]s and encodes [`Response`]s; [`ClientCodec`] does the reverse. Heads are
//! parsed with `httparse`.
//!
//! # Server side
//!
//! - A request body is delimited by `Content-Length` (all `Content-Length` fields must agree), by
//!   `Transfer-Encoding: chunked`, or is empty. Chunked bodies are decoded strictly (CRLF line ends only,
//!   extensions and trailers dropped; see `chunked.rs`) and gathered in the read buffer, the sum of the chunks
//!   bounded by `max_body_bytes`. `Transfer-Encoding` beside `Content-Length`, or in an HTTP/1.0 request, is
//!   faulty framing (400, RFC 9112 §6.1, §6.3); any coding but `chunked` alone is refused with
//!   [`TRANSFER_ENCODING_UNSUPPORTED`], which [`error_status`] maps to **501 Not Implemented**. Empty lines
//!   before a request are skipped (RFC 9112 §2.2).
//! - Keep-alive: HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 closes it unless
//!   `Connection: keep-alive` ([`Request::keep_alive`]). A request that is not keep-alive is the
//!   connection's last: the decoder drops whatever follows it.
//! - Pipelining: requests decode one after another from the same buffer. The codec keeps a FIFO of what each
//!   decoded request needs from its response (keep-alive, HEAD, version); the encoder pops it, so responses must
//!   be encoded in request order. The encoder writes `HTTP/1.1`, the status line, the response's headers (less
//!   any `Content-Length` or `Connection`), then `Content-Length` (not for 1xx/204/304), `Connection: close`
//!   when the request was not keep-alive (or had none: an error reply), `Connection: keep-alive` to an HTTP/1.0
//!   keep-alive request, and the body (not for HEAD, 1xx, 204, 304). After encoding a `close` response,
//!   `ServerCodec::is_closing` is true: the server flushes and closes.
//! - `Expect: 100-continue`: when such a request waits for its body, `ServerCodec::take_continue` says so
//!   once; the server then writes [`CONTINUE`].
//! - Errors and the status the server sends for them ([`error_status`], [`error_response`]): header block over
//!   `max_header_bytes` or more than `max_headers` fields → `TooLarge { what: HeaderBlock }` → 431 (for the
//!   count, `len`/`max` are field counts); `Content-Length` over `max_body_bytes` → `TooLarge { what: Body }` →
//!   413, decided from the header (or a chunk's size line) before that body is read; a `Transfer-Encoding` other
//!   than `chunked` → `Protocol` → 501; a later major version (`HTTP/2.0`) → [`VERSION_NOT_SUPPORTED`] → 505; `CONNECT` (no tunnel is opened) → [`CONNECT_NOT_ALLOWED`] → 405 with
//!   `Allow`; an HTTP/1.1 request without `Host`, any request with more than one or with a value that is no
//!   host and port (RFC 9112 §3.2), → `Protocol`
//!   → 400; any other malformed head or chunked framing → `Protocol` → 400. After any of them the connection
//!   cannot be trusted: reply, close.
//!
//! # Client side
//!
//! [`ClientCodec`] encodes requests (adding `Content-Length` when there is a body or the method is
//! POST/PUT/PATCH, and `Host` if configured and missing) and decodes responses: `Content-Length` bodies,
//! `Transfer-Encoding: chunked` (trailers are read and dropped), bodies delimited by the connection close, no
//! body for HEAD, 1xx, 204 and 304. Interim 1xx responses (other than 101) are skipped. It keeps a FIFO of the
//! methods sent, so pipelined HEAD requests are matched with their bodiless responses.
//!
//! # Memory and speed
//!
//! Limits are checked before anything is reserved: the head is refused once `max_header_bytes` arrive without
//! its end, a `Content-Length` or chunk size over `max_body_bytes` is refused from the number. At most 64 KiB
//! are reserved ahead of the bytes received. A decoded request keeps its head as one `Bytes` with header
//! ranges into it: no allocation per header. The response encoder writes numbers with `itoa` straight into the
//! output buffer.

use std::collections::VecDeque;
use std::fmt;
use std::mem::MaybeUninit;

use super::{Decode, Encode};
use bytes::{Buf, BufMut, Bytes, BytesMut};

#[cfg(feature = "server-codecs")]
use super::chunked::ChunkedBody;
use super::{CodecError, Limit, MAX_RESERVE};

/// The default limit on a request or status line plus headers. Default: 8 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;
/// The default limit on the number of header fields. Default: 100.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// The default limit on a body. Default: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The interim response a server writes when `ServerCodec::take_continue` says so.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// The [`CodecError::Protocol`] message for a request with a `Transfer-Encoding` other than `chunked` alone
/// (`gzip, chunked`, two fields); [`error_status`] maps it to 501.
pub const TRANSFER_ENCODING_UNSUPPORTED: &str =
    "a request Transfer-Encoding other than chunked is not supported";
/// The [`CodecError::Protocol`] message for a `CONNECT` request: the server opens no tunnel, and answering it
/// as any other request would let a proxy client take the reply for one. [`error_status`] maps it to 405, as
/// nginx answers.
pub const CONNECT_NOT_ALLOWED: &str = "the CONNECT method is not allowed";
/// The decode error of a request in a later major version of HTTP (`HTTP/2.0`, `HTTP/3`) sent as HTTP/1:
/// [`error_status`] maps it to 505, as nginx answers. Any other unreadable version is malformed (400).
pub const VERSION_NOT_SUPPORTED: &str = "HTTP version not supported";
/// The methods a server using this codec answers, for the `Allow` field of a 405 (RFC 9110 §15.5.6).
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH";

/// Header slots parsed on the stack; more than this (if `max_headers` allows) go to a heap buffer.
const STACK_HEADERS: usize = 128;

/// Size limits of an HTTP codec: [`Limits::new`] (the defaults, usable in a `const`) and a `with_*` setter per
/// limit, e.g. `Limits::new().with_max_body_bytes(16 << 20)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The longest head: request or status line plus headers plus the empty line. Over it: 431.
    /// Default: 8 KiB ([`DEFAULT_MAX_HEADER_BYTES`]).
    pub max_header_bytes: usize,
    /// The most header fields in one head. Over it: 431. Default: 100 ([`DEFAULT_MAX_HEADERS`]).
    pub max_headers: usize,
    /// The longest body (a `Content-Length`, or the sum of the chunks). Over it: 413.
    /// Default: 1 MiB ([`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
}

impl Limits {
    /// The default limits ([`DEFAULT_MAX_HEADER_BYTES`], [`DEFAULT_MAX_HEADERS`], [`DEFAULT_MAX_BODY_BYTES`]).
    pub const fn new() -> Self {
        Limits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new()
    }
}

with_setters!(const Limits {
    with_max_header_bytes => max_header_bytes: usize,
    with_max_headers => max_headers: usize,
    with_max_body_bytes => max_body_bytes: usize,
});

/// The HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Version {
    /// HTTP/1.0: one request per connection unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: persistent connections unless `Connection: close`.
    #[default]
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: the response has no body.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// OPTIONS.
    Options,
    /// PATCH.
    Patch,
    /// CONNECT.
    Connect,
    /// TRACE.
    Trace,
    /// Any other method token (ASCII, case-sensitive).
    Other(Bytes),
}

impl Method {
    /// The method for a token; known methods are case-sensitive, as RFC 9110 says.
    pub fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            b"TRACE" => Method::Trace,
            other => Method::Other(Bytes::copy_from_slice(other)),
        }
    }

    #[cfg(feature = "server-codecs")]
    fn from_head(head: &Bytes, range: (usize, usize)) -> Method {
        match head.get(range.0..range.1).map(Method::from_bytes) {
            Some(Method::Other(_)) => Method::Other(head.slice(range.0..range.1)),
            Some(known) => known,
            None => Method::Other(Bytes::new()),
        }
    }

    /// The method token.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Method::Get => b"GET",
            Method::Head => b"HEAD",
            Method::Post => b"POST",
            Method::Put => b"PUT",
            Method::Delete => b"DELETE",
            Method::Options => b"OPTIONS",
            Method::Patch => b"PATCH",
            Method::Connect => b"CONNECT",
            Method::Trace => b"TRACE",
            Method::Other(b) => b,
        }
    }

    /// The method token as text (empty if an `Other` token is not UTF-8, which a decoded one never is).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header field: byte ranges of its name and value in the header buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    name: (usize, usize),
    value: (usize, usize),
}

/// The header fields of a message, in order, names as sent.
///
/// A decoded head keeps all its fields in one shared buffer (the head itself) with a range per field, so
/// decoding allocates nothing per header. Names compare case-insensitively. Names and values are checked when
/// the message is encoded (a name must be a token, a value must not hold `\r` or `\n`).
#[derive(Clone, Default)]
pub struct Headers {
    buf: Bytes,
    entries: Vec<Entry>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Appends a field (an existing field of the same name stays).
    pub fn push(&mut self, name: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        let mut buf = match std::mem::take(&mut self.buf).try_into_mut() {
            Ok(buf) => buf,
            Err(shared) => BytesMut::from(&shared[..]),
        };
        buf.reserve(name.len() + value.len());
        let start = buf.len();
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(value);
        let mid = start + name.len();
        self.entries.push(Entry {
            name: (start, mid),
            value: (mid, mid + value.len()),
        });
        self.buf = buf.freeze();
    }

    /// `self` with a field appended; for building messages.
    pub fn with(mut self, name: &str, value: impl AsRef<[u8]>) -> Headers {
        self.push(name, value);
        self
    }

    fn slice(&self, r: (usize, usize)) -> &[u8] {
        self.buf.get(r.0..r.1).unwrap_or(&[])
    }

    fn raw(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.entries
            .iter()
            .map(|e| (self.slice(e.name), self.slice(e.value)))
    }

    /// The value of the first field called `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The values of every field called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.raw()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// True when some field `name` lists `token` in its comma-separated value (ASCII case-insensitive), as
    /// `Connection: keep-alive, Upgrade` lists `upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Every field as (name, value), in order. A name that is not UTF-8 (never, once decoded) reads as "".
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.raw()
            .map(|(n, v)| (std::str::from_utf8(n).unwrap_or(""), v))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.raw().eq(other.raw())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

/// An HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The request target as sent, e.g. `/index.html?x=1`.
    pub path: Bytes,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields.
    pub headers: Headers,
    /// The body (empty without `Content-Length`).
    pub body: Bytes,
}

impl Request {
    /// An HTTP/1.1 request without headers or body.
    pub fn new(method: Method, path: impl Into<Bytes>) -> Request {
        Request {
            method,
            path: path.into(),
            version: Version::Http11,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<Bytes>) -> Request {
        Request::new(Method::Get, path)
    }

    /// `POST path` with `body`.
    pub fn post(path: impl Into<Bytes>, body: impl Into<Bytes>) -> Request {
        Request::new(Method::Post, path).with_body(body)
    }

    /// `self` with a header field appended.
    pub fn with_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers.push(name, value);
        self
    }

    /// `self` with this body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Request {
        self.body = body.into();
        self
    }

    /// The value of the first header field called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// Whether the client wants the connection kept open after the response: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }
}

fn keep_alive(version: Version, headers: &Headers) -> bool {
    match version {
        Version::Http11 => !headers.has_token("connection", "close"),
        Version::Http10 => {
            headers.has_token("connection", "keep-alive")
                && !headers.has_token("connection", "close")
        }
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, 100..=999.
    pub status: u16,
    /// The reason phrase; when empty, the encoder writes the standard one for `status`.
    pub reason: Bytes,
    /// The header fields (the server encoder adds `Content-Length` and `Connection` itself).
    pub headers: Headers,
    /// The body (decoded by a [`ClientCodec`] that keeps only part of each body: its first bytes).
    pub body: Bytes,
    /// Bytes of the body read and dropped after its first [`ClientCodec::with_body_keep`] bytes; 0 when the
    /// whole body is in [`body`](Self::body). Encoders ignore it.
    pub body_dropped: u64,
}

impl Response {
    /// A response with `status`, its standard reason, no headers and no body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: Bytes::from_static(reason_phrase(status).as_bytes()),
            headers: Headers::new(),
            body: Bytes::new(),
            body_dropped: 0,
        }
    }

    /// The length of the body as it arrived: [`body`](Self::body) and the bytes dropped after it.
    pub fn body_len(&self) -> u64 {
        self.body.len() as u64 + self.body_dropped
    }

    /// `200 OK` with `body`.
    pub fn ok(body: impl Into<Bytes>) -> Response {
        Response::new(200).with_body(body)
    }

    /// `self` with a header field appended.
    pub fn with_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Response {
        self.headers.push(name, value);
        self
    }

    /// `self` with this body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Response {
        self.body = body.into();
        self
    }

    /// The value of the first header field called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// False when the response says `Connection: close`. (An HTTP/1.0 response without `keep-alive` also
    /// ends the connection; [`ClientCodec::is_closing`] accounts for that.)
    pub fn keep_alive(&self) -> bool {
        !self.headers.has_token("connection", "close")
    }
}

/// The standard reason phrase of a status code ("" for unknown codes).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// The status a server answers a decode error with: 431 for the header block, 413 for the body, 501 for a
/// request `Transfer-Encoding`, 405 for `CONNECT`, 400 for anything else malformed (a missing or repeated
/// `Host` among them); `None` for I/O errors (nobody to answer).
pub fn error_status(err: &CodecError) -> Option<u16> {
    match err {
        CodecError::Io(_) => None,
        CodecError::TooLarge {
            what: Limit::HeaderBlock,
            ..
        } => Some(431),
        CodecError::TooLarge {
            what: Limit::Body, ..
        } => Some(413),
        CodecError::TooLarge { .. } => Some(400),
        CodecError::Protocol(msg) if msg == TRANSFER_ENCODING_UNSUPPORTED => Some(501),
        CodecError::Protocol(msg) if msg == CONNECT_NOT_ALLOWED => Some(405),
        CodecError::Protocol(msg) if msg == VERSION_NOT_SUPPORTED => Some(505),
        CodecError::Protocol(_) => Some(400),
    }
}

/// The response for a decode error ([`error_status`]), with `Connection: close`; send it after the responses
/// to the requests already decoded, then close.
pub fn error_response(err: &CodecError) -> Option<Response> {
    error_status(err).map(|status| match status {
        405 => Response::new(status)
            .with_header("Allow", ALLOWED_METHODS)
            .with_header("Connection", "close"),
        _ => Response::new(status).with_header("Connection", "close"),
    })
}

/// Finds the end of a head (`\n\n` or `\n\r\n`) in `src[from..]`, looking at the first `max` bytes only.
/// Returns the head length, or how far it is safe to resume the search next time.
fn find_head_end(src: &[u8], from: usize, max: usize) -> Result<usize, usize> {
    let window = &src[..src.len().min(max)];
    let mut i = from;
    while let Some(off) = window.get(i..).and_then(|w| memchr::memchr(b'\n', w)) {
        let nl = i + off;
        match (window.get(nl + 1), window.get(nl + 2)) {
            (Some(b'\n'), _) => return Ok(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Ok(nl + 3),
            (Some(b'\r'), None) | (None, _) => return Err(nl),
            _ => i = nl + 1,
        }
    }
    Err(window.len())
}

fn head_too_large(len: usize, max: usize) -> CodecError {
    CodecError::TooLarge {
        what: Limit::HeaderBlock,
        len: len as u64,
        max: max as u64,
    }
}

/// The byte range of `part` inside `base` (both from the same parse), or `(0, 0)` for an empty part.
fn range_in(base: &[u8], part: &[u8]) -> Result<(usize, usize), CodecError> {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if start <= base.len() && end <= base.len() => Ok((start, end)),
        _ if part.is_empty() => Ok((0, 0)),
        _ => Err(CodecError::protocol(
            "header parser returned a slice outside the head",
        )),
    }
}

#[cfg(feature = "server-codecs")]
/// The version word of a request line that httparse refused (`head` starts with the line) and where it starts:
/// the line's third word, where httparse looked for the version (not the last: `GET / x / HTTP/2.0` fails at
/// `x`, and a line read a byte at a time must be judged on what was there when it failed).
fn version_word(head: &[u8]) -> (&[u8], usize) {
    let line = head
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or(head)
        .trim_ascii_end();
    let mut at = 0;
    for (i, word) in line.split(|&b| b == b' ').enumerate() {
        if i == 2 {
            return (word, at);
        }
        at += word.len() + 1;
    }
    (b"", line.len())
}

#[cfg(feature = "server-codecs")]
/// Where the version of a request line that httparse refused is a later minor version of HTTP/1 (`HTTP/1.2`,
/// `HTTP/1.10`): its byte range in `head`. RFC 9110 §2.5: such a message is processed as the highest minor version
/// the recipient implements, HTTP/1.1 here, as nginx does.
/// Like nginx, a minor version above 999 is malformed (`HTTP/1.1000`: 400), leading zeros not counted.
fn later_minor(head: &[u8]) -> Option<std::ops::Range<usize>> {
    let (word, at) = version_word(head);
    let minor = word.strip_prefix(b"HTTP/1.")?;
    let digits = !minor.is_empty() && minor.iter().all(u8::is_ascii_digit);
    let significant = minor.iter().skip_while(|&&b| b == b'0').count();
    let later = digits && significant <= 3 && !matches!(minor, b"0" | b"1");
    later.then(|| at..at + word.len())
}

#[cfg(feature = "server-codecs")]
/// The error of a request line whose version httparse refused (`head` starts with the line): a later major
/// version of HTTP ([`VERSION_NOT_SUPPORTED`], 505) or a malformed one. As nginx reads it, the major version is
/// later as soon as its digits so far make it above 1, whatever follows (`HTTP/2.x`, `HTTP/10.0`, `HTTP/10`:
/// 505); one that starts with `0` is malformed (`HTTP/01.1`, `HTTP/0.9`: 400).
fn version_error(head: &[u8]) -> CodecError {
    match version_word(head).0.strip_prefix(b"HTTP/") {
        Some([b'2'..=b'9', ..] | [b'1', b'0'..=b'9', ..]) => {
            CodecError::protocol(VERSION_NOT_SUPPORTED)
        }
        _ => CodecError::protocol("malformed head: invalid HTTP version"),
    }
}

fn map_parse_error(e: httparse::Error, limits: &Limits) -> CodecError {
    match e {
        httparse::Error::TooManyHeaders => CodecError::TooLarge {
            what: Limit::HeaderBlock,
            len: limits.max_headers as u64 + 1,
            max: limits.max_headers as u64,
        },
        other => CodecError::protocol(format!("malformed head: {other}")),
    }
}

/// Runs `f` with `max_headers` header slots, on the stack when few enough. The slots are uninitialised:
/// httparse fills the ones it uses, and initialising all of them (4 KiB on the stack) cost more than the parse.
fn with_header_slots<'b, R>(
    max_headers: usize,
    f: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> R,
) -> R {
    if max_headers <= STACK_HEADERS {
        let mut slots = [MaybeUninit::uninit(); STACK_HEADERS];
        f(&mut slots[..max_headers])
    } else {
        let mut slots = vec![MaybeUninit::uninit(); max_headers];
        f(&mut slots)
    }
}

fn collect_entries(
    base: &[u8],
    headers: &[httparse::Header<'_>],
) -> Result<Vec<Entry>, CodecError> {
    let mut entries = Vec::with_capacity(headers.len());
    for h in headers {
        entries.push(Entry {
            name: range_in(base, h.name.as_bytes())?,
            value: range_in(base, h.value)?,
        });
    }
    Ok(entries)
}

/// Adds one `Content-Length` value to what was `found` before: digits only (at most 19), and every field must
/// agree.
fn add_content_length(found: Option<u64>, v: &[u8]) -> Result<Option<u64>, CodecError> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(CodecError::protocol("invalid Content-Length"));
    }
    let n = v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    if found.is_some_and(|f| f != n) {
        return Err(CodecError::protocol("conflicting Content-Length fields"));
    }
    Ok(Some(n))
}

/// What the fields that frame a message say, gathered in one pass over the parsed head (instead of one search
/// of the fields per question: that cost more than the parse).
#[derive(Debug, Default)]
struct Framing {
    content_length: Option<u64>,
    /// The first invalid or conflicting `Content-Length`: an error only where the length frames the body.
    bad_length: Option<CodecError>,
    transfer_encoding: bool,
    /// The last coding of the last `Transfer-Encoding` field is `chunked`.
    chunked: bool,
    /// `Transfer-Encoding` fields seen.
    te_fields: u32,
    /// The last `Transfer-Encoding` field is `chunked` alone (the one coding a server decodes).
    only_chunked: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    /// `Host` fields seen.
    hosts: u32,
    /// A `Host` field's value is not a host and port (RFC 9112 §3.2: a server answers 400).
    bad_host: bool,
}

/// A `Host` field value as RFC 9112 §3.2 has it, `uri-host [ ":" port ]`, judged by its bytes (RFC 3986's
/// unreserved, percent-encoded and sub-delims characters, `:` and an IP literal's brackets); empty is allowed
/// (a target without an authority). nginx answers `Host: a b` and `Host: a/b` with 400 too.
fn is_host(v: &[u8]) -> bool {
    // One range match a byte (it runs on every request's Host), not a search of the allowed punctuation.
    v.iter().all(|&b| {
        matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'%'
            | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'[' | b']')
    })
}

/// `name == lower`, ASCII case ignored, for a `name` that is a token (httparse checks a field name is one) and a
/// `lower` of lowercase letters and `-`: setting bit 0x20 lowercases a letter, keeps `-`, and turns no other
/// token byte into a letter or `-`. Eight bytes at a time: the framing fields' names are 6 to 17 bytes long,
/// and comparing them a byte at a time was most of the cost of reading a head's framing.
fn token_is(name: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x2020_2020_2020_2020;
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
    let (names, lowers) = (name.chunks_exact(8), lower.chunks_exact(8));
    name.len() == lower.len()
        && names
            .remainder()
            .iter()
            .zip(lowers.remainder())
            .all(|(&a, &b)| a | 0x20 == b)
        && names.zip(lowers).all(|(a, b)| word(a) | CASE == word(b))
}

fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

impl Framing {
    fn of(headers: &[httparse::Header<'_>]) -> Framing {
        let mut f = Framing::default();
        for h in headers {
            let name = h.name.as_bytes();
            // The length check first keeps the common fields (Host, User-Agent, Date) to one comparison.
            match name.len() {
                14 if f.bad_length.is_none() && token_is(name, b"content-length") => {
                    match add_content_length(f.content_length, h.value) {
                        Ok(n) => f.content_length = n,
                        Err(e) => f.bad_length = Some(e),
                    }
                }
                17 if token_is(name, b"transfer-encoding") => {
                    f.transfer_encoding = true;
                    f.te_fields += 1;
                    let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
                    f.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
                    f.only_chunked = h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
                }
                10 if token_is(name, b"connection") => {
                    for t in tokens(h.value) {
                        f.close |= t.eq_ignore_ascii_case(b"close");
                        f.keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                    }
                }
                4 if token_is(name, b"host") => {
                    f.hosts += 1;
                    f.bad_host |= !is_host(h.value);
                }
                6 if token_is(name, b"expect") => {
                    f.expect_continue |=
                        tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"100-continue"));
                }
                _ => {}
            }
        }
        f
    }

    /// The `Content-Length`, or the error of an invalid one.
    fn length(&mut self) -> Result<Option<u64>, CodecError> {
        match self.bad_length.take() {
            Some(e) => Err(e),
            None => Ok(self.content_length),
        }
    }

    /// HTTP/1.1 keeps a connection unless `close` is listed; HTTP/1.0 only when `keep-alive` is (and `close`
    /// is not).
    fn keep_alive(&self, version: Version) -> bool {
        match version {
            Version::Http11 => !self.close,
            Version::Http10 => self.keep_alive && !self.close,
        }
    }
}

fn body_too_large(len: u64, max: usize) -> CodecError {
    CodecError::TooLarge {
        what: Limit::Body,
        len,
        max: max as u64,
    }
}

/// What the server encoder needs to know about the request a response answers.
#[derive(Debug, Clone, Copy)]
#[cfg(feature = "server-codecs")]
struct ReplyTo {
    keep_alive: bool,
    head: bool,
    version: Version,
}

/// A request whose head is parsed and whose body is still arriving.
#[derive(Debug)]
#[cfg(feature = "server-codecs")]
struct PendingRequest {
    method: Method,
    path: Bytes,
    version: Version,
    headers: Headers,
    body: RequestBody,
    /// [`Request::keep_alive`], worked out while parsing.
    keep_alive: bool,
    expect_continue: bool,
}

/// How a request's body is delimited.
#[derive(Debug)]
#[cfg(feature = "server-codecs")]
enum RequestBody {
    /// `Content-Length` bytes (0: no body).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkedBody),
}

/// The server side: decodes [`Request`]s, encodes [`Response`]s (see the module docs for the rules).
#[derive(Debug, Default)]
#[cfg(feature = "server-codecs")]
pub struct ServerCodec {
    limits: Limits,
    /// How far the buffered partial head has been searched for its end.
    scanned: usize,
    /// The request whose body is being read.
    pending: Option<PendingRequest>,
    /// One entry per decoded request not yet answered, oldest first.
    replies: VecDeque<ReplyTo>,
    /// Set once a `100 Continue` should be sent for the pending request.
    continue_wanted: bool,
    /// Set after encoding a response that closes the connection.
    closing: bool,
    /// Set after decoding a request that is not keep-alive: nothing after it is read.
    last_request: bool,
    /// The partial head's request line was checked and is whole and valid (see [`check_request_line`]).
    line_checked: bool,
}

#[cfg(feature = "server-codecs")]
impl ServerCodec {
    /// A server codec with these limits.
    pub fn new(limits: Limits) -> Self {
        ServerCodec {
            limits,
            ..ServerCodec::default()
        }
    }

    /// The limits this codec enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True once a response with `Connection: close` was encoded: flush it, then close the connection.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// True while a request's head has been taken out of the read buffer and its body is still arriving.
    /// A read timeout hits a partial request (408) when this is true or the read buffer is not empty.
    pub fn in_progress(&self) -> bool {
        self.pending.is_some()
    }

    /// How many decoded requests still wait for their response.
    pub fn unanswered(&self) -> usize {
        self.replies.len()
    }

    /// True once (then false) when a request with `Expect: 100-continue` waits for its body: write
    /// [`CONTINUE`] so the client sends it.
    pub fn take_continue(&mut self) -> bool {
        std::mem::take(&mut self.continue_wanted)
    }

    fn parse_head(&self, head: &Bytes) -> Result<PendingRequest, CodecError> {
        self.parse_head_as(head, false)
    }

    /// [`parse_head`](Self::parse_head); `rewritten`: `head` is a copy whose later minor version was made
    /// `HTTP/1.1`, parsed as such once.
    fn parse_head_as(&self, head: &Bytes, rewritten: bool) -> Result<PendingRequest, CodecError> {
        let parsed = with_header_slots(self.limits.max_headers, |slots| {
            let mut req = httparse::Request::new(&mut []);
            match httparse::ParserConfig::default()
                .parse_request_with_uninit_headers(&mut req, head, slots)
            {
                Ok(httparse::Status::Complete(n)) if n == head.len() => {}
                Ok(_) => return Err(CodecError::protocol("malformed head: incomplete")),
                Err(httparse::Error::Version) => return Err(version_error(head)),
                Err(e) => return Err(map_parse_error(e, &self.limits)),
            }
            let method = range_in(head, req.method.unwrap_or("").as_bytes())?;
            let path = range_in(head, req.path.unwrap_or("").as_bytes())?;
            let version = match req.version {
                Some(0) => Version::Http10,
                _ => Version::Http11,
            };
            let mut framing = Framing::of(req.headers);
            framing.length()?;
            Ok((
                method,
                path,
                version,
                framing,
                collect_entries(head, req.headers)?,
            ))
        });
        let (method, path, version, framing, entries) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => match later_minor(head).filter(|_| !rewritten) {
                // `HTTP/1.2` and later minors: parsed again as HTTP/1.1, from a copy. Looked for only once the
                // parse failed: a well-formed request pays nothing for it. The word's range lies within the
                // request line, the head's prefix.
                Some(word) => {
                    // Leading zeros, as nginx reads them: `HTTP/1.00` is HTTP/1.0, `HTTP/1.01` HTTP/1.1.
                    let minor = &head[word.start + b"HTTP/1.".len()..word.end];
                    let as_version = if minor.iter().all(|&b| b == b'0') {
                        &b"HTTP/1.0"[..]
                    } else {
                        b"HTTP/1.1"
                    };
                    let mut copy = BytesMut::with_capacity(head.len());
                    copy.extend_from_slice(&head[..word.start]);
                    copy.extend_from_slice(as_version);
                    copy.extend_from_slice(&head[word.end..]);
                    return self.parse_head_as(&copy.freeze(), true);
                }
                None => return Err(e),
            },
        };
        // RFC 9112 §3.2: 400 to an HTTP/1.1 request without `Host`, and to any request with more than one (as
        // nginx answers). HTTP/1.0 needs none.
        if framing.bad_host {
            return Err(CodecError::protocol("an invalid Host field"));
        }
        if framing.hosts > 1 {
            return Err(CodecError::protocol("more than one Host field"));
        }
        if framing.hosts == 0 && version == Version::Http11 {
            return Err(CodecError::protocol("an HTTP/1.1 request without Host"));
        }
        let method = Method::from_head(head, method);
        if method == Method::Connect {
            return Err(CodecError::protocol(CONNECT_NOT_ALLOWED));
        }
        let body = if framing.transfer_encoding {
            // RFC 9112 §6.1 and §6.3: faulty framing in HTTP/1.0, and a possible smuggling attempt beside a
            // Content-Length (refused, as nginx does); a coding other than chunked alone is not implemented.
            if version == Version::Http10 {
                return Err(CodecError::protocol(
                    "Transfer-Encoding in an HTTP/1.0 request",
                ));
            }
            if framing.content_length.is_some() {
                return Err(CodecError::protocol(
                    "both Content-Length and Transfer-Encoding",
                ));
            }
            if framing.te_fields != 1 || !framing.only_chunked {
                return Err(CodecError::protocol(TRANSFER_ENCODING_UNSUPPORTED));
            }
            RequestBody::Chunked(ChunkedBody::new())
        } else {
            let len = framing.content_length.unwrap_or(0);
            if len > self.limits.max_body_bytes as u64 {
                return Err(body_too_large(len, self.limits.max_body_bytes));
            }
            RequestBody::Length(len as usize)
        };
        Ok(PendingRequest {
            method,
            path: head.slice(path.0..path.1),
            version,
            headers: Headers {
                buf: head.clone(),
                entries,
            },
            body,
            keep_alive: framing.keep_alive(version),
            expect_continue: version == Version::Http11 && framing.expect_continue,
        })
    }
}

#[cfg(feature = "server-codecs")]
impl Decode for ServerCodec {
    type Item = Request;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, CodecError> {
        if self.last_request {
            // Anything pipelined after the connection's last request is dropped unread (as nginx does), and
            // never piles up in the buffer.
            src.clear();
            return Ok(None);
        }
        if self.pending.is_none() {
            let blank = src
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if blank > 0 {
                src.advance(blank);
                self.scanned = 0;
            }
            let max = self.limits.max_header_bytes;
            let head_len = match find_head_end(src, self.scanned, max) {
                Ok(len) => len,
                Err(resume) => {
                    self.scanned = resume;
                    // The line first, whatever the size: a malformed line is refused as such however the
                    // bytes were split into reads (byte by byte, the check comes before the limit is reached).
                    if !self.line_checked {
                        self.line_checked = check_request_line(&src[..src.len().min(max)])?;
                    }
                    if src.len() >= max {
                        return Err(head_too_large(src.len(), max));
                    }
                    return Ok(None);
                }
            };
            self.scanned = 0;
            self.line_checked = false;
            let head = src.split_to(head_len).freeze();
            let pending = self.parse_head(&head)?;
            self.continue_wanted = pending.expect_continue;
            self.pending = Some(pending);
        }
        let Some(p) = self.pending.as_mut() else {
            return Ok(None);
        };
        let body_len = match &mut p.body {
            RequestBody::Length(len) => Some(*len).filter(|&len| src.len() >= len),
            RequestBody::Chunked(chunked) => chunked.advance(
                src,
                self.limits.max_body_bytes,
                self.limits.max_header_bytes,
            )?,
        };
        let Some(body_len) = body_len else {
            if let RequestBody::Length(len) = p.body {
                src.reserve((len - src.len()).min(MAX_RESERVE));
            }
            return Ok(None);
        };
        let Some(p) = self.pending.take() else {
            return Ok(None);
        };
        self.continue_wanted = false;
        self.last_request = !p.keep_alive;
        self.replies.push_back(ReplyTo {
            keep_alive: p.keep_alive,
            head: p.method == Method::Head,
            version: p.version,
        });
        Ok(Some(Request {
            method: p.method,
            path: p.path,
            version: p.version,
            headers: p.headers,
            // Most requests have no body: no share of the buffer to count up and down again.
            body: match body_len {
                0 => Bytes::new(),
                n => src.split_to(n).freeze(),
            },
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Request>, CodecError> {
        match self.decode(src)? {
            Some(req) => Ok(Some(req)),
            None if src.is_empty() && self.pending.is_none() => Ok(None),
            None => Err(CodecError::protocol(
                "connection closed in the middle of a request",
            )),
        }
    }
}

/// How much of a partial head [`check_request_line`] reads: the start of a request line, where the bytes of
/// another protocol (RESP's `*1`, a framed length, TLS's ClientHello) show.
#[cfg(feature = "server-codecs")]
const LINE_PROBE: usize = 256;

/// Checks the request line of a partial head (its end has not arrived): an error for a line that cannot be
/// valid, so that another protocol's bytes, or a malformed line, get their 400 at once (as nginx answers)
/// rather than after the read timeout's 408; true once the line is whole and valid (no need to look again),
/// false while it may still be. Only the line is read (at most [`LINE_PROBE`] bytes of it), so the answer
/// does not depend on how the bytes were split into reads: the headers are left to the parse of the whole
/// head.
#[cfg(feature = "server-codecs")]
fn check_request_line(partial: &[u8]) -> Result<bool, CodecError> {
    let probe = &partial[..partial.len().min(LINE_PROBE)];
    let (line, whole) = match probe.iter().position(|&b| b == b'\n') {
        Some(nl) => (&probe[..=nl], true),
        None => (probe, false),
    };
    let mut req = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default().parse_request(&mut req, line) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => Ok(whole),
        // A later minor version is read on, served as HTTP/1.1 once the head is whole (httparse refuses
        // `HTTP/1.2` as a version, `HTTP/1.10` as a new line after `HTTP/1.1`).
        Err(httparse::Error::Version | httparse::Error::NewLine) if later_minor(line).is_some() => {
            Ok(whole)
        }
        Err(httparse::Error::Version) => Err(version_error(line)),
        Err(e) => Err(CodecError::protocol(format!("malformed head: {e}"))),
    }
}

/// True for a header name that is an RFC 9110 token.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(feature = "server-codecs")]
fn put_headers(
    dst: &mut BytesMut,
    headers: &Headers,
    skip_framing: bool,
) -> Result<(), CodecError> {
    for (name, value) in headers.raw() {
        if skip_framing
            && (name.eq_ignore_ascii_case(b"content-length")
                || name.eq_ignore_ascii_case(b"connection")
                || name.eq_ignore_ascii_case(b"transfer-encoding"))
        {
            continue;
        }
        if !is_token(name) || value.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(CodecError::protocol(format!(
                "invalid header field {:?}",
                String::from_utf8_lossy(name)
            )));
        }
        dst.extend_from_slice(name);
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value);
        dst.extend_from_slice(b"\r\n");
    }
    Ok(())
}

fn put_content_length(dst: &mut BytesMut, len: usize) {
    let mut n = itoa::Buffer::new();
    dst.extend_from_slice(b"Content-Length: ");
    dst.extend_from_slice(n.format(len).as_bytes());
    dst.extend_from_slice(b"\r\n");
}

fn has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

#[cfg(feature = "server-codecs")]
impl ServerCodec {
    fn encode_response(&mut self, res: &Response, dst: &mut BytesMut) -> Result<(), CodecError> {
        if !(100..=999).contains(&res.status) {
            return Err(CodecError::protocol(format!(
                "invalid status {}",
                res.status
            )));
        }
        let reason: &[u8] = if res.reason.is_empty() {
            reason_phrase(res.status).as_bytes()
        } else {
            &res.reason
        };
        if reason.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(CodecError::protocol("invalid reason phrase"));
        }
        let interim = (100..200).contains(&res.status);
        // Interim responses (100 Continue) answer no request by themselves.
        let reply_to = if interim {
            None
        } else {
            self.replies.pop_front()
        };
        let close = !reply_to.is_some_and(|r| r.keep_alive) && !interim
            || res.headers.has_token("connection", "close");
        let head_only = reply_to.is_some_and(|r| r.head) || has_no_body(res.status);
        dst.reserve(
            64 + reason.len()
                + res.headers.buf.len()
                + 4 * res.headers.len()
                + if head_only { 0 } else { res.body.len() },
        );
        if res.status == 200 && reason == b"OK" {
            dst.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        } else {
            let mut n = itoa::Buffer::new();
            dst.extend_from_slice(b"HTTP/1.1 ");
            dst.extend_from_slice(n.format(res.status).as_bytes());
            dst.put_u8(b' ');
            dst.extend_from_slice(reason);
            dst.extend_from_slice(b"\r\n");
        }
        put_headers(dst, &res.headers, true)?;
        if !has_no_body(res.status) {
            put_content_length(dst, res.body.len());
        }
        if close {
            dst.extend_from_slice(b"Connection: close\r\n");
            self.closing = true;
        } else if reply_to.is_some_and(|r| r.version == Version::Http10) {
            dst.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        dst.extend_from_slice(b"\r\n");
        if !head_only {
            dst.extend_from_slice(&res.body);
        }
        Ok(())
    }
}

#[cfg(feature = "server-codecs")]
impl Encode<Response> for ServerCodec {
    fn encode(&mut self, item: Response, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_response(&item, dst)
    }
}

#[cfg(feature = "server-codecs")]
impl Encode<&Response> for ServerCodec {
    fn encode(&mut self, item: &Response, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_response(item, dst)
    }
}

/// A partial response head must start as a status line does (`HTTP/`, after any empty lines): another
/// protocol's reply (a RESP `-ERR …`, a framed header) is an error at once, not a wait for a blank line that
/// never comes until the request times out.
fn check_status_start(partial: &[u8]) -> Result<(), CodecError> {
    const START: &[u8] = b"HTTP/";
    let start = partial.iter().position(|&b| b != b'\r' && b != b'\n');
    let Some(rest) = start.map(|i| &partial[i..]) else {
        return Ok(());
    };
    let n = rest.len().min(START.len());
    if rest[..n] == START[..n] {
        return Ok(());
    }
    let shown = String::from_utf8_lossy(&rest[..rest.len().min(16)]).into_owned();
    Err(CodecError::protocol(format!(
        "not an HTTP response: it starts {shown:?}, not \"HTTP/\""
    )))
}

/// Where the client decoder is in a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes to go.
    Data(usize),
    /// Expecting the CRLF after a chunk.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; bytes of trailers read so far.
    Trailers(usize),
}

/// How the body of a response is delimited.
#[derive(Debug)]
enum BodyKind {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    /// `Content-Length` bytes, kept whole: taken from the read buffer at once when they have all arrived.
    Length(usize),
    /// `Content-Length` bytes, more than the codec keeps: the bytes still to come, and the body so far, taken
    /// from the read buffer as they arrive.
    Streamed(usize, Sink),
    /// Chunked: the state and the body so far.
    Chunked(Chunked, Sink),
    /// Until the connection closes: the body so far when the codec keeps only part of it (else it waits in the
    /// read buffer).
    UntilClose(Sink),
}

/// A body as it arrives: its first `keep` bytes kept, the rest counted and dropped
/// ([`ClientCodec::with_body_keep`]).
#[derive(Debug)]
struct Sink {
    kept: BytesMut,
    keep: usize,
    dropped: u64,
}

impl Sink {
    fn new(keep: usize) -> Sink {
        Sink {
            kept: BytesMut::new(),
            keep,
            dropped: 0,
        }
    }

    /// The body's length so far.
    fn total(&self) -> u64 {
        self.kept.len() as u64 + self.dropped
    }

    /// How many more bytes it keeps.
    fn room(&self) -> usize {
        self.keep.saturating_sub(self.kept.len())
    }

    fn push(&mut self, bytes: &[u8]) {
        let k = bytes.len().min(self.room());
        self.kept.extend_from_slice(&bytes[..k]);
        self.dropped += (bytes.len() - k) as u64;
    }
}

/// What the parse of a response head found: its length, and the rest as ranges of it.
struct ParsedHead {
    len: usize,
    status: u16,
    reason: (usize, usize),
    version: Version,
    framing: Framing,
    entries: Vec<Entry>,
}

/// A response whose head is parsed and whose body is still arriving.
#[derive(Debug)]
struct PendingResponse {
    status: u16,
    reason: Bytes,
    headers: Headers,
    keep_alive: bool,
    body: BodyKind,
}

/// The client side: encodes [`Request`]s, decodes [`Response`]s (see the module docs).
#[derive(Debug)]
pub struct ClientCodec {
    limits: Limits,
    /// Sent as `Host` when a request has none.
    host: Option<Bytes>,
    /// Each sent when a request has no field of its name.
    defaults: Headers,
    /// Per request sent and not yet answered: was it HEAD? Oldest first.
    sent: VecDeque<bool>,
    /// How far the buffered partial head has been searched for its end.
    scanned: usize,
    /// The response whose body is being read.
    pending: Option<PendingResponse>,
    /// Set after a response that ends the connection.
    closing: bool,
    /// The limit on one response as a whole ([`with_max_reply`](Self::with_max_reply)); `limits` are already
    /// lowered to it, and an error over a limit it lowered names it.
    max_reply: usize,
    /// The most bytes of a body kept ([`with_body_keep`](Self::with_body_keep)).
    keep: usize,
}

impl ClientCodec {
    /// A client codec with these limits.
    pub fn new(limits: Limits) -> Self {
        ClientCodec {
            limits,
            host: None,
            defaults: Headers::default(),
            sent: VecDeque::new(),
            scanned: 0,
            pending: None,
            closing: false,
            max_reply: super::DEFAULT_MAX_REPLY,
            keep: usize::MAX,
        }
        .with_max_reply(super::DEFAULT_MAX_REPLY)
    }

    /// `self`, keeping at most the first `keep` bytes of each response body: the rest is read, counted in
    /// [`Response::body_dropped`] and dropped as it arrives, so a connection downloading a large body holds
    /// about `keep` bytes and one read's worth, not the body (a load generator that measures downloads, as wrk
    /// does). The body limits still apply to the whole body. Default: `usize::MAX` (every body kept whole).
    pub fn with_body_keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
    }

    /// `self`, refusing a response whose head or body is over `max_reply` bytes
    /// ([`BufferConfig::max_reply`](crate::BufferConfig::max_reply)) with [`Limit::Reply`]; the smaller of it
    /// and [`Limits::max_header_bytes`] / [`Limits::max_body_bytes`] applies to each. Default:
    /// [`DEFAULT_MAX_REPLY`](super::DEFAULT_MAX_REPLY) (1 GiB).
    pub fn with_max_reply(mut self, max_reply: usize) -> Self {
        self.max_reply = max_reply;
        self.limits.max_header_bytes = self.limits.max_header_bytes.min(max_reply);
        self.limits.max_body_bytes = self.limits.max_body_bytes.min(max_reply);
        self
    }

    /// `self`, adding `Host: host` to every request that has no `Host` field (HTTP/1.1 requires one).
    /// Default: none added.
    pub fn with_host(mut self, host: impl Into<Bytes>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// `self`, adding each of `headers` to every request that has no field of that name (a `User-Agent`, an
    /// `Authorization` …). Default: none added.
    pub fn with_default_headers(mut self, headers: Headers) -> Self {
        self.defaults = headers;
        self
    }

    /// The limits this codec enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True once a decoded response ended the connection (`Connection: close`, HTTP/1.0 without keep-alive,
    /// or a body delimited by the close): do not send more requests on it.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// How many requests sent still wait for their response.
    pub fn in_flight(&self) -> usize {
        self.sent.len()
    }

    fn encode_request(&mut self, req: &Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        let method = req.method.as_bytes();
        if !is_token(method) {
            return Err(CodecError::protocol("invalid method"));
        }
        if req.path.is_empty() || req.path.iter().any(|&b| b <= b' ' || b == 0x7f) {
            return Err(CodecError::protocol("invalid request target"));
        }
        dst.reserve(
            64 + req.path.len() + req.headers.buf.len() + 4 * req.headers.len() + req.body.len(),
        );
        dst.extend_from_slice(method);
        dst.put_u8(b' ');
        dst.extend_from_slice(&req.path);
        dst.put_u8(b' ');
        dst.extend_from_slice(req.version.as_str().as_bytes());
        dst.extend_from_slice(b"\r\n");
        if let Some(host) = &self.host {
            if req.headers.get("host").is_none() {
                dst.extend_from_slice(b"Host: ");
                dst.extend_from_slice(host);
                dst.extend_from_slice(b"\r\n");
            }
        }
        let defaults = self
            .defaults
            .raw()
            .filter(|(name, _)| !req.headers.raw().any(|(n, _)| n.eq_ignore_ascii_case(name)));
        for (name, value) in req.headers.raw().chain(defaults) {
            if name.eq_ignore_ascii_case(b"content-length") {
                continue;
            }
            if !is_token(name) || value.iter().any(|&b| b == b'\r' || b == b'\n') {
                return Err(CodecError::protocol(format!(
                    "invalid header field {:?}",
                    String::from_utf8_lossy(name)
                )));
            }
            dst.extend_from_slice(name);
            dst.extend_from_slice(b": ");
            dst.extend_from_slice(value);
            dst.extend_from_slice(b"\r\n");
        }
        if !req.body.is_empty() || matches!(req.method, Method::Post | Method::Put | Method::Patch)
        {
            put_content_length(dst, req.body.len());
        }
        dst.extend_from_slice(b"\r\n");
        dst.extend_from_slice(&req.body);
        self.sent.push_back(req.method == Method::Head);
        Ok(())
    }

    /// Parses a response head; `None` for an interim 1xx response, which is skipped.
    fn parse_head(&self, head: &Bytes) -> Result<Option<PendingResponse>, CodecError> {
        match self.parse_fields(head)? {
            Some(parsed) if parsed.len == head.len() => self.pending_response(head.clone(), parsed),
            _ => Err(CodecError::protocol("malformed head: incomplete")),
        }
    }

    /// The head at the start of `src` if it is complete there and parses, taken off `src`: the one parse of
    /// a head that arrived whole (most do), instead of a search for its end and then a parse. Anything else
    /// (a partial head, an error, leading empty lines) is left to the search, which gives the same answer
    /// however the reads split.
    fn take_whole_head(
        &self,
        src: &mut BytesMut,
    ) -> Result<Option<Option<PendingResponse>>, CodecError> {
        if matches!(src.first(), None | Some(b'\r' | b'\n')) {
            return Ok(None);
        }
        let window = src.len().min(self.limits.max_header_bytes);
        match self.parse_fields(&src[..window]) {
            Ok(Some(parsed)) if parsed.len <= window => {
                let head = src.split_to(parsed.len).freeze();
                self.pending_response(head, parsed).map(Some)
            }
            Ok(_) | Err(_) => Ok(None),
        }
    }

    /// What httparse reads of the head at the start of `src`: `None` while it is incomplete.
    fn parse_fields(&self, src: &[u8]) -> Result<Option<ParsedHead>, CodecError> {
        with_header_slots(self.limits.max_headers, |slots| {
            let mut res = httparse::Response::new(&mut []);
            let len = match httparse::ParserConfig::default()
                .parse_response_with_uninit_headers(&mut res, src, slots)
            {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => return Err(map_parse_error(e, &self.limits)),
            };
            let version = match res.version {
                Some(0) => Version::Http10,
                _ => Version::Http11,
            };
            // Ranges of the head alone (what the response will keep), checked against it.
            let head = src.get(..len).unwrap_or(src);
            Ok(Some(ParsedHead {
                len,
                status: res.code.unwrap_or(0),
                reason: range_in(head, res.reason.unwrap_or("").as_bytes())?,
                version,
                framing: Framing::of(res.headers),
                entries: collect_entries(head, res.headers)?,
            }))
        })
    }

    /// The response a parsed `head` starts; `None` for an interim 1xx response, which is skipped.
    fn pending_response(
        &self,
        head: Bytes,
        parsed: ParsedHead,
    ) -> Result<Option<PendingResponse>, CodecError> {
        let ParsedHead {
            status,
            reason,
            version,
            mut framing,
            entries,
            ..
        } = parsed;
        if (100..200).contains(&status) && status != 101 {
            return Ok(None);
        }
        let reason = head.slice(reason.0..reason.1);
        let headers = Headers { buf: head, entries };
        let head_request = self.sent.front().copied().unwrap_or(false);
        let mut keep_alive = framing.keep_alive(version);
        let body = if head_request || has_no_body(status) {
            BodyKind::Empty
        } else if framing.transfer_encoding {
            if framing.chunked {
                BodyKind::Chunked(Chunked::Size, Sink::new(self.keep))
            } else {
                keep_alive = false;
                BodyKind::UntilClose(Sink::new(self.keep))
            }
        } else if let Some(len) = framing.length()? {
            if len > self.limits.max_body_bytes as u64 {
                return Err(body_too_large(len, self.limits.max_body_bytes));
            }
            let len = len as usize;
            if len > self.keep {
                BodyKind::Streamed(len, Sink::new(self.keep))
            } else {
                BodyKind::Length(len)
            }
        } else {
            keep_alive = false;
            BodyKind::UntilClose(Sink::new(self.keep))
        };
        Ok(Some(PendingResponse {
            status,
            reason,
            headers,
            keep_alive,
            body,
        }))
    }

    /// Advances a chunked body; true when it is complete.
    fn read_chunked(
        &self,
        src: &mut BytesMut,
        state: &mut Chunked,
        body: &mut Sink,
    ) -> Result<bool, CodecError> {
        let max_line = self.limits.max_header_bytes;
        loop {
            match *state {
                Chunked::Size | Chunked::Trailers(_) => {
                    let window = &src[..src.len().min(max_line)];
                    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
                        if src.len() >= max_line {
                            return Err(CodecError::protocol(
                                "chunk-size or trailer line too long",
                            ));
                        }
                        return Ok(false);
                    };
                    let line = src.split_to(nl + 1);
                    let line = line[..nl].strip_suffix(b"\r").unwrap_or(&line[..nl]);
                    if let Chunked::Trailers(seen) = *state {
                        if line.is_empty() {
                            return Ok(true);
                        }
                        let seen = seen + nl + 1;
                        if seen > max_line {
                            return Err(head_too_large(seen, max_line));
                        }
                        *state = Chunked::Trailers(seen);
                        continue;
                    }
                    let hex = line
                        .split(|&b| b == b';')
                        .next()
                        .unwrap_or(b"")
                        .trim_ascii();
                    if hex.is_empty() || hex.len() > 15 {
                        return Err(CodecError::protocol("invalid chunk size"));
                    }
                    let mut size: u64 = 0;
                    for &b in hex {
                        let d = (b as char)
                            .to_digit(16)
                            .ok_or_else(|| CodecError::protocol("invalid chunk size"))?;
                        size = size * 16 + u64::from(d);
                    }
                    if size == 0 {
                        *state = Chunked::Trailers(0);
                        continue;
                    }
                    let total = body.total() + size;
                    if total > self.limits.max_body_bytes as u64 {
                        return Err(body_too_large(total, self.limits.max_body_bytes));
                    }
                    let room = body.room();
                    body.kept
                        .reserve((size as usize).min(MAX_RESERVE).min(room));
                    *state = Chunked::Data(size as usize);
                }
                Chunked::Data(left) => {
                    if src.is_empty() {
                        return Ok(false);
                    }
                    let n = left.min(src.len());
                    body.push(&src[..n]);
                    src.advance(n);
                    *state = if n == left {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left - n)
                    };
                }
                Chunked::DataEnd => match &src[..src.len().min(2)] {
                    [] | [b'\r'] => return Ok(false),
                    [b'\r', b'\n', ..] => {
                        src.advance(2);
                        *state = Chunked::Size;
                    }
                    [b'\n', ..] => {
                        src.advance(1);
                        *state = Chunked::Size;
                    }
                    _ => return Err(CodecError::protocol("chunk not followed by CRLF")),
                },
            }
        }
    }

    fn finish(&mut self, p: PendingResponse, body: Bytes, body_dropped: u64) -> Response {
        self.sent.pop_front();
        if !p.keep_alive {
            self.closing = true;
        }
        Response {
            status: p.status,
            reason: p.reason,
            headers: p.headers,
            body,
            body_dropped,
        }
    }
}

impl Default for ClientCodec {
    fn default() -> Self {
        ClientCodec::new(Limits::default())
    }
}

impl ClientCodec {
    /// A limit the reply limit lowered is named as the reply's (error path only).
    fn name_limit(&self, e: CodecError) -> CodecError {
        match e {
            CodecError::TooLarge {
                what: Limit::Body | Limit::HeaderBlock,
                len,
                max,
            } if max == self.max_reply as u64 => CodecError::TooLarge {
                what: Limit::Reply,
                len,
                max,
            },
            e => e,
        }
    }
}

impl Decode for ClientCodec {
    type Item = Response;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Response>, CodecError> {
        self.decode_response(src).map_err(|e| self.name_limit(e))
    }

    fn in_progress(&self) -> bool {
        self.pending.is_some()
    }

    /// The rest of a body of known length (`Content-Length`); 0 for a head, a chunked body or one until close.
    fn bytes_wanted(&self, buffered: usize) -> usize {
        match self.pending.as_ref().map(|p| &p.body) {
            Some(BodyKind::Length(len) | BodyKind::Streamed(len, _)) => {
                len.saturating_sub(buffered)
            }
            _ => 0,
        }
    }

    /// A `408` status line (`HTTP/1.x 408`): the server times the idle connection out.
    fn closes_idle(&self, buf: &[u8]) -> bool {
        buf.starts_with(b"HTTP/1.") && buf.get(8..12) == Some(&b" 408"[..])
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Response>, CodecError> {
        if let Some(res) = self.decode(src)? {
            return Ok(Some(res));
        }
        let cut_short = || CodecError::protocol("connection closed in the middle of a response");
        match self.pending.take() {
            Some(mut p) => match &mut p.body {
                // Kept whole, the body waited in the read buffer for the close; kept in part, the `decode`
                // above has just taken all of it from there.
                BodyKind::UntilClose(sink) => {
                    let (body, dropped) = match sink.keep {
                        usize::MAX => (src.split().freeze(), 0),
                        _ => (std::mem::take(&mut sink.kept).freeze(), sink.dropped),
                    };
                    Ok(Some(self.finish(p, body, dropped)))
                }
                _ => Err(cut_short()),
            },
            None if src.is_empty() => Ok(None),
            None => Err(cut_short()),
        }
    }
}

impl ClientCodec {
    fn decode_response(&mut self, src: &mut BytesMut) -> Result<Option<Response>, CodecError> {
        while self.pending.is_none() {
            if self.scanned == 0 {
                if let Some(pending) = self.take_whole_head(src)? {
                    self.pending = pending;
                    continue;
                }
            }
            let max = self.limits.max_header_bytes;
            let head_len = match find_head_end(src, self.scanned, max) {
                Ok(len) => len,
                Err(resume) => {
                    self.scanned = resume;
                    // Before the limit, on the bytes within it: the same answer however the reads split.
                    check_status_start(&src[..src.len().min(max)])?;
                    if src.len() >= max {
                        return Err(head_too_large(src.len(), max));
                    }
                    return Ok(None);
                }
            };
            self.scanned = 0;
            let head = src.split_to(head_len).freeze();
            self.pending = self.parse_head(&head)?;
        }
        let Some(mut p) = self.pending.take() else {
            return Ok(None);
        };
        let (body, dropped) = match &mut p.body {
            BodyKind::Empty => (Bytes::new(), 0),
            BodyKind::Length(len) => {
                let len = *len;
                if src.len() < len {
                    src.reserve((len - src.len()).min(MAX_RESERVE));
                    self.pending = Some(p);
                    return Ok(None);
                }
                (src.split_to(len).freeze(), 0)
            }
            BodyKind::Streamed(left, body) => {
                let n = (*left).min(src.len());
                body.push(&src[..n]);
                src.advance(n);
                *left -= n;
                if *left > 0 {
                    self.pending = Some(p);
                    return Ok(None);
                }
                (std::mem::take(&mut body.kept).freeze(), body.dropped)
            }
            BodyKind::Chunked(state, body) => {
                if !self.read_chunked(src, state, body)? {
                    self.pending = Some(p);
                    return Ok(None);
                }
                (std::mem::take(&mut body.kept).freeze(), body.dropped)
            }
            BodyKind::UntilClose(body) => {
                let total = body.total() + src.len() as u64;
                if total > self.limits.max_body_bytes as u64 {
                    return Err(body_too_large(total, self.limits.max_body_bytes));
                }
                // Kept whole, the body waits in the read buffer until the close; kept in part, it is taken
                // from it as it arrives.
                if body.keep != usize::MAX {
                    body.push(src);
                    src.clear();
                }
                self.pending = Some(p);
                return Ok(None);
            }
        };
        Ok(Some(self.finish(p, body, dropped)))
    }
}

impl Encode<Request> for ClientCodec {
    fn encode(&mut self, item: Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_request(&item, dst)
    }
}

impl Encode<&Request> for ClientCodec {
    fn encode(&mut self, item: &Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_request(item, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framing_field_name_matches_in_any_case_and_no_other_token_does() {
        for lower in [
            &b"content-length"[..],
            b"transfer-encoding",
            b"connection",
            b"expect",
        ] {
            // Every token byte at every position, and the name's own bytes in both cases.
            for i in 0..lower.len() {
                for b in 0..=255u8 {
                    let mut name = lower.to_vec();
                    name[i] = b;
                    if !is_token(&name) {
                        continue;
                    }
                    assert_eq!(
                        token_is(&name, lower),
                        name.eq_ignore_ascii_case(lower),
                        "{:?} against {:?}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(lower)
                    );
                }
            }
            assert!(token_is(&lower.to_ascii_uppercase(), lower));
            assert!(!token_is(&lower[1..], lower));
        }
    }

    fn small() -> Limits {
        Limits {
            max_header_bytes: 128,
            max_headers: 4,
            max_body_bytes: 16,
        }
    }

    fn requests(codec: &mut ServerCodec, input: &[u8]) -> Result<Vec<Request>, CodecError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(req) = codec.decode(&mut buf)? {
            out.push(req);
        }
        Ok(out)
    }

    fn status_of(limits: Limits, input: &[u8]) -> u16 {
        let err = requests(&mut ServerCodec::new(limits), input).unwrap_err();
        error_status(&err).unwrap()
    }

    #[test]
    fn pipelined_requests_decode_with_bodies_and_keep_alive_rules() {
        let input = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc\
            GET /c HTTP/1.0\r\n\r\n\
            GET /d HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n\
            GET /e HTTP/1.1\r\nHost: x\r\nConnection: upgrade, close\r\n\r\n";
        let reqs = requests(&mut ServerCodec::default(), input).unwrap();
        let paths: Vec<_> = reqs.iter().map(|r| r.path.clone()).collect();
        assert_eq!(
            paths,
            vec!["/a", "/b", "/c"],
            "nothing is read after a last request"
        );
        assert_eq!(reqs[0].header("HOST"), Some(&b"x"[..]));
        assert_eq!(reqs[1].method, Method::Post);
        assert_eq!(reqs[1].body, "abc");
        let alive: Vec<_> = reqs.iter().map(Request::keep_alive).collect();
        assert_eq!(alive, vec![true, true, false]);
        let d = input.windows(6).position(|w| w == b"GET /d").unwrap();
        let rest = &input[d..];
        let reqs = requests(&mut ServerCodec::default(), rest).unwrap();
        let alive: Vec<_> = reqs
            .iter()
            .map(|r| (r.path.clone(), r.keep_alive()))
            .collect();
        assert_eq!(alive, vec![("/d".into(), true), ("/e".into(), false)]);
    }

    #[test]
    fn a_request_fed_byte_by_byte_decodes_once() {
        let input = b"\r\nPUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\nHost: x\n\n";
        let mut codec = ServerCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in input.iter() {
            buf.put_u8(b);
            while let Some(req) = codec.decode(&mut buf).unwrap() {
                out.push(req);
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].body, "hi");
        assert_eq!(out[1].path, "/");
    }

    #[test]
    fn hostile_heads_and_bodies_map_to_their_status() {
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend_from_slice(&[b'a'; 200]);
        assert_eq!(
            status_of(small(), &long),
            431,
            "refused before the head ends"
        );
        let many = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n";
        assert_eq!(status_of(small(), many), 431);
        assert_eq!(
            status_of(
                small(),
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n"
            ),
            413
        );
        for (framing, status) in [
            ("Transfer-Encoding: gzip, chunked", 501),
            ("Transfer-Encoding: chunked, chunked", 501),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                501,
            ),
            ("Transfer-Encoding: gzip", 501),
            // Smuggling's classic: both framings (refused as nginx does, RFC 9112 §6.3).
            ("Transfer-Encoding: chunked\r\nContent-Length: 3", 400),
            ("Content-Length: 3\r\nTransfer-Encoding: chunked", 400),
        ] {
            let head =
                format!("POST / HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
            assert_eq!(status_of(small(), head.as_bytes()), status, "{framing}");
        }
        let old = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(
            status_of(small(), old),
            400,
            "HTTP/1.0 with a transfer coding"
        );
        assert_eq!(
            status_of(
                small(),
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n12\r\n"
            ),
            413,
            "the chunk size is over the limit before its data comes"
        );
        for bad in [
            &b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/x.9\r\n\r\n",
            b"\0\0\0\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert_eq!(
                status_of(Limits::default(), bad),
                400,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn body_over_the_limit_is_refused_from_its_length_alone() {
        let mut buf =
            BytesMut::from(&b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n"[..]);
        let before = buf.capacity();
        let err = ServerCodec::default().decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::TooLarge {
                    what: Limit::Body,
                    ..
                }
            ),
            "{err}"
        );
        assert!(buf.capacity() <= before);
    }

    /// curl `-T -`, Go's and Python's clients send a body of unknown length chunked (RFC 9112 §7.1: a
    /// recipient MUST be able to parse it); it was answered 501.
    #[test]
    fn chunked_request_bodies_decode_whole_in_any_split_and_pipeline() {
        let input =
            b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n\
            5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n\
            GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
        for step in 1..=input.len() {
            let mut codec = ServerCodec::default();
            let (mut buf, mut out, mut continued) = (BytesMut::new(), Vec::new(), 0);
            for piece in input.chunks(step) {
                buf.extend_from_slice(piece);
                while let Some(req) = codec.decode(&mut buf).unwrap() {
                    out.push(req);
                }
                continued += usize::from(codec.take_continue());
                // While the body arrives, the connection holds the body so far and the bytes not parsed yet
                // (at most a line), not the framing parsed.
                let held = buf.len();
                assert!(
                    !codec.in_progress() || held <= 11 + 14 + step,
                    "step {step}: {held} bytes held"
                );
            }
            assert_eq!(out.len(), 2, "step {step}");
            assert_eq!(out[0].body, "hello world", "step {step}");
            assert_eq!(out[1].path, "/next");
            assert!(buf.is_empty() && !codec.in_progress());
            assert!(continued <= 1, "100 Continue at most once");
        }
    }

    /// Another protocol's bytes on an HTTP port waited for a blank line (408 at the read timeout, and a load
    /// generator pointed at the wrong port waited its whole request timeout); nginx answers 400 at once.
    #[test]
    fn a_request_line_that_cannot_be_valid_is_refused_before_the_head_ends() {
        for bad in [
            &b"*1\r\n$4\r\nPING\r\n"[..],
            b"garbage\r\n",
            b"\x00\x00\x00\x05\x01hello",
            b"\x16\x03\x01\x02\x00\x01",
            b"GET / HTTP/x.9\r\n",
            b"GET / HTTX",
        ] {
            let err = requests(&mut ServerCodec::default(), bad).unwrap_err();
            assert_eq!(
                error_status(&err),
                Some(400),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for fine in [
            &b"GET"[..],
            b"GET /",
            b"\r\nPOST /a HTTP/1.1\r\nHost: x\r\n",
            b"GET / HTTP/1.1\r\nHost",
        ] {
            assert!(requests(&mut ServerCodec::default(), fine)
                .unwrap()
                .is_empty());
        }
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(4000));
        assert!(requests(&mut ServerCodec::default(), long.as_bytes())
            .unwrap()
            .is_empty());
        // A later major version, as nginx: 505, from the line alone (no `\n` needed after `HTTP/2`).
        for later in [
            &b"GET / HTTP/2.0\r\n"[..],
            b"GET / HTTP/9.9\r\n",
            b"GET / HTTP/2",
            b"GET / HTTP/10.0\r\n",
            b"GET / HTTP/10\r\n",
            b"GET / HTTP/1000.0\r\n",
            b"GET / HTTP/2.x\r\n",
        ] {
            let err = requests(&mut ServerCodec::default(), later).unwrap_err();
            assert_eq!(
                error_status(&err),
                Some(505),
                "{:?}",
                String::from_utf8_lossy(later)
            );
        }
    }

    /// RFC 9110 §2.5: a later minor version of HTTP/1 is served as HTTP/1.1, as nginx serves `HTTP/1.2`,
    /// `HTTP/1.9` and `HTTP/1.10` (it was 400); anything else in its place stays malformed. Read whole or a byte
    /// at a time, the same answer.
    #[test]
    fn a_later_minor_version_is_served_as_http_1_1() {
        let one_by_one = |input: &[u8]| {
            let (mut codec, mut buf, mut out) =
                (ServerCodec::default(), BytesMut::new(), Vec::new());
            for &b in input {
                buf.extend_from_slice(&[b]);
                while let Some(req) = codec.decode(&mut buf)? {
                    out.push(req);
                }
            }
            Ok::<_, CodecError>(out)
        };
        for later in [
            "HTTP/1.2",
            "HTTP/1.9",
            "HTTP/1.10",
            "HTTP/1.02",
            "HTTP/1.999",
            "HTTP/1.000999",
        ] {
            let input = format!(
                "GET /a?b {later}\r\nHost: x\r\nX-Y: z\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n"
            );
            for reqs in [
                requests(&mut ServerCodec::default(), input.as_bytes()),
                one_by_one(input.as_bytes()),
            ] {
                let reqs = reqs.unwrap();
                assert_eq!(reqs.len(), 2, "{later}");
                assert_eq!(reqs[0].version, Version::Http11, "{later}");
                assert_eq!(&reqs[0].path[..], b"/a?b");
                assert_eq!(reqs[0].header("x-y"), Some(&b"z"[..]));
                assert!(reqs[0].keep_alive());
                assert_eq!(&reqs[1].path[..], b"/c");
            }
        }
        for bad in [
            "HTTP/1.2x",
            "HTTP/1.",
            "HTTP/1.-2",
            "http/1.2",
            "HTTP/01.1",
            "HTTP/1.1000",
            "HTTP/1.0001000",
            "HTTP/0.9",
            "HTTP/1",
        ] {
            let input = format!("GET / {bad}\r\nHost: x\r\n\r\n");
            for err in [
                requests(&mut ServerCodec::default(), input.as_bytes()).unwrap_err(),
                one_by_one(input.as_bytes()).unwrap_err(),
            ] {
                assert_eq!(error_status(&err), Some(400), "{bad}: {err}");
            }
        }
        // A later major version is judged the same whole or a byte at a time, on the digits read so far.
        for later in ["HTTP/10.0", "HTTP/10", "HTTP/2.x", "HTTP/1000.0"] {
            let input = format!("GET / {later}\r\nHost: x\r\n\r\n");
            let err = one_by_one(input.as_bytes()).unwrap_err();
            assert_eq!(error_status(&err), Some(505), "{later}: {err}");
        }
        // Leading zeros spell the same versions: `HTTP/1.00` is HTTP/1.0 (no keep-alive by default),
        // `HTTP/1.01` HTTP/1.1.
        for (spelled, version) in [
            ("HTTP/1.00", Version::Http10),
            ("HTTP/1.01", Version::Http11),
        ] {
            let input = format!("GET / {spelled}\r\nHost: x\r\n\r\n");
            let reqs = requests(&mut ServerCodec::default(), input.as_bytes()).unwrap();
            assert_eq!(reqs[0].version, version, "{spelled}");
            assert_eq!(
                reqs[0].keep_alive(),
                version == Version::Http11,
                "{spelled}"
            );
        }
    }

    #[test]
    fn a_reply_that_does_not_start_as_http_is_refused_at_once() {
        let mut codec = ClientCodec::default();
        let mut buf = BytesMut::from(&b"-ERR wrong number of arguments for 'get' command\r\n"[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(err.to_string().contains("not an HTTP response"), "{err}");
        for fine in [
            &b"HTT"[..],
            b"\r\nHTTP/1.1 200",
            b"HTTP/1.1 200 OK\r\nContent-",
        ] {
            let mut buf = BytesMut::from(fine);
            assert_eq!(ClientCodec::default().decode(&mut buf).unwrap(), None);
        }
    }

    #[test]
    fn a_request_waiting_for_its_body_is_in_progress() {
        let mut codec = ServerCodec::default();
        let mut buf =
            BytesMut::from(&b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty() && codec.in_progress());
        buf.extend_from_slice(b"ok");
        assert!(codec.decode(&mut buf).unwrap().is_some());
        assert!(!codec.in_progress());
    }

    #[test]
    fn expect_continue_is_signalled_once() {
        let mut codec = ServerCodec::default();
        let mut buf = BytesMut::from(
            &b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"[..],
        );
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(codec.take_continue());
        assert!(!codec.take_continue());
        buf.extend_from_slice(b"ok");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().body, "ok");
    }

    fn respond(codec: &mut ServerCodec, res: Response) -> String {
        let mut out = BytesMut::new();
        codec.encode(res, &mut out).unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn responses_follow_their_requests() {
        let mut codec = ServerCodec::default();
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n\
            GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\nGET /ignored HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(requests(&mut codec, input).unwrap().len(), 4);
        let hello = || Response::ok("hello").with_header("Content-Type", "text/plain");
        assert_eq!(
            respond(&mut codec, hello()),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
        );
        assert_eq!(
            respond(&mut codec, hello()),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
        );
        assert!(respond(&mut codec, hello()).ends_with("Connection: keep-alive\r\n\r\nhello"));
        assert!(!codec.is_closing());
        assert!(respond(&mut codec, hello()).ends_with("Connection: close\r\n\r\nhello"));
        assert!(codec.is_closing());
    }

    /// RFC 9112 §3.2: an HTTP/1.1 request needs exactly one `Host` (HTTP/1.0 none), and more than one is 400
    /// whatever the version; `CONNECT` is 405 with `Allow`, as nginx answers. A pipelined request after good
    /// ones is refused in its turn: those before it are answered.
    #[test]
    fn host_is_required_once_in_http11_and_connect_is_not_allowed() {
        for (input, status) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.0\r\nHost: a\r\nHOST: a\r\n\r\n", 400),
            (b"CONNECT host:443 HTTP/1.1\r\nHost: host:443\r\n\r\n", 405),
            (b"CONNECT host:443 HTTP/1.0\r\n\r\n", 405),
            // A value that is no host (RFC 9112 §3.2), as nginx answers.
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
            (b"GET / HTTP/1.0\r\nHost: a\"b\r\n\r\n", 400),
        ] {
            let text = String::from_utf8_lossy(input);
            assert_eq!(status_of(Limits::new(), input), status, "{text}");
        }
        let mut codec = ServerCodec::default();
        let good =
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nHost: \r\n\r\n\
            GET / HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: keep-alive\r\n\r\n\
            GET / HTTP/1.1\r\nHost: a-b.example_x~%41!$&'()*+,;=:80\r\n\r\n";
        assert_eq!(requests(&mut codec, good).unwrap().len(), 4);
        // Every byte: RFC 3986's unreserved, percent and sub-delims characters, `:` and brackets, nothing else.
        for b in 0..=255u8 {
            let allowed = b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b);
            assert_eq!(is_host(&[b]), allowed, "byte {b:#04x}");
        }
        let mut buf =
            BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_some());
        assert!(codec.decode(&mut buf).is_err());
        let err = CodecError::protocol(CONNECT_NOT_ALLOWED);
        assert_eq!(
            respond(&mut ServerCodec::default(), error_response(&err).unwrap()),
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn error_replies_close_and_bodiless_statuses_have_no_length() {
        let mut codec = ServerCodec::default();
        let err = CodecError::protocol("x");
        let text = respond(&mut codec, error_response(&err).unwrap());
        assert_eq!(
            text,
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let mut codec = ServerCodec::default();
        requests(&mut codec, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            respond(&mut codec, Response::new(204)),
            "HTTP/1.1 204 No Content\r\n\r\n"
        );
        assert!(codec
            .encode(
                Response::ok("").with_header("a b", "c"),
                &mut BytesMut::new()
            )
            .is_err());
        assert!(codec
            .encode(
                Response::ok("").with_header("a", "c\r\nd: e"),
                &mut BytesMut::new()
            )
            .is_err());
    }

    fn responses(codec: &mut ClientCodec, input: &[u8]) -> Result<Vec<Response>, CodecError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(res) = codec.decode(&mut buf)? {
            out.push(res);
        }
        if let Some(res) = codec.decode_eof(&mut buf)? {
            out.push(res);
        }
        Ok(out)
    }

    /// Each response decoded from one buffer and fed a byte at a time: the outcome (bodies, or the error's
    /// text) must be the same, though a head that arrives whole is parsed once and a split one searched for its
    /// end first.
    #[test]
    fn a_response_head_whole_or_split_decodes_the_same() {
        let outcome = |input: &[u8], bytewise: bool| -> String {
            let mut codec = ClientCodec::new(small());
            for _ in 0..3 {
                codec
                    .encode(Request::get("/"), &mut BytesMut::new())
                    .unwrap();
            }
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let pieces: Vec<&[u8]> = if bytewise {
                input.chunks(1).collect()
            } else {
                vec![input]
            };
            for piece in pieces {
                buf.extend_from_slice(piece);
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(res)) => got.push(format!("{} {:?}", res.status, res.body)),
                        Ok(None) => break,
                        // What another protocol's reply "starts" with is what had arrived: not compared.
                        Err(e) => {
                            let e = e.to_string();
                            return format!(
                                "{got:?} error: {}",
                                e.split(": it starts").next().unwrap_or("")
                            );
                        }
                    }
                }
            }
            format!("{got:?} left {}", buf.len())
        };
        for input in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n"[..],
            b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
            b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
            b"HTTP/1.1 200 OK\r\nX: \r\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n folded: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-Long: 0123456789012345678901234567890123456789\r\n\r\n",
            b"-ERR unknown command\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
        ] {
            let text = String::from_utf8_lossy(input);
            assert_eq!(
                outcome(input, false),
                outcome(input, true),
                "{text:?} whole and a byte at a time"
            );
        }
    }

    /// A `408` status line with nothing in flight is a server closing the idle connection; anything else
    /// (another status, a cut line, another protocol) is not.
    #[test]
    fn closes_idle_is_a_408_status_line() {
        let codec = ClientCodec::default();
        for (bytes, notice) in [
            (
                &b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n"[..],
                true,
            ),
            (b"HTTP/1.0 408 Request Time-out\r\n", true),
            (b"HTTP/1.1 408", true),
            (b"HTTP/1.1 200 OK\r\n\r\n", false),
            (b"HTTP/1.1 40", false),
            (b"HTTP/2.0 408 x\r\n", false),
            (b"+PONG\r\n", false),
            (b"", false),
        ] {
            assert_eq!(codec.closes_idle(bytes), notice, "{bytes:?}");
        }
    }

    /// What a connection's read mark is sized from: the rest of a body of known length, kept whole or in part;
    /// nothing for a head, a chunked body or a body until close.
    #[test]
    fn bytes_wanted_is_the_rest_of_a_body_of_known_length() {
        for keep in [usize::MAX, 10] {
            let mut codec = ClientCodec::default().with_body_keep(keep);
            codec
                .encode(Request::get("/"), &mut BytesMut::new())
                .unwrap();
            let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Le"[..]);
            assert!(codec.decode(&mut buf).unwrap().is_none());
            assert_eq!(codec.bytes_wanted(buf.len()), 0, "a head");
            buf.extend_from_slice(b"ngth: 1000\r\n\r\n");
            buf.extend_from_slice(&[b'x'; 300]);
            assert!(codec.decode(&mut buf).unwrap().is_none());
            assert_eq!(codec.bytes_wanted(buf.len()), 700, "keep {keep}");
            buf.extend_from_slice(&[b'x'; 700]);
            assert_eq!(codec.decode(&mut buf).unwrap().unwrap().body_len(), 1000);
            assert_eq!(codec.bytes_wanted(buf.len()), 0);
        }
        for head in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nxx"[..],
            &b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nxx"[..],
        ] {
            let mut codec = ClientCodec::default();
            codec
                .encode(Request::get("/"), &mut BytesMut::new())
                .unwrap();
            let mut buf = BytesMut::from(head);
            assert!(codec.decode(&mut buf).unwrap().is_none());
            assert_eq!(codec.bytes_wanted(buf.len()), 0);
        }
    }

    /// Every response `input` holds, decoded by a codec that keeps `keep` bytes of a body, from reads of
    /// `piece` bytes: `(status, body kept, body length)` each, and the most the read buffer held.
    fn decode_keeping(input: &[u8], keep: usize, piece: usize) -> (Vec<(u16, Bytes, u64)>, usize) {
        let mut codec = ClientCodec::new(Limits {
            max_body_bytes: 4 << 20,
            ..Limits::default()
        })
        .with_body_keep(keep);
        for _ in 0..4 {
            codec
                .encode(Request::get("/"), &mut BytesMut::new())
                .unwrap();
        }
        let (mut buf, mut got, mut most) = (BytesMut::new(), Vec::new(), 0);
        for piece in input.chunks(piece) {
            buf.extend_from_slice(piece);
            most = most.max(buf.len());
            while let Some(r) = codec.decode(&mut buf).unwrap() {
                got.push((r.status, r.body.clone(), r.body_len()));
            }
        }
        if let Some(r) = codec.decode_eof(&mut buf).unwrap() {
            got.push((r.status, r.body.clone(), r.body_len()));
        }
        (got, most)
    }

    #[test]
    fn a_body_past_what_the_codec_keeps_is_counted_and_dropped_as_it_arrives() {
        let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut chunked = Vec::new();
        for part in body.chunks(70_000) {
            chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            chunked.extend_from_slice(part);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let mut input = Vec::new();
        input.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
        input.extend_from_slice(&body);
        input.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall");
        input.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        input.extend_from_slice(&chunked);
        input.extend_from_slice(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        input.extend_from_slice(&body);
        let head = Bytes::copy_from_slice(&body[..100]);
        let want = vec![
            (200, head.clone(), 1_000_000),
            (200, Bytes::from_static(b"small"), 5),
            (200, head.clone(), 1_000_000),
            (200, head, 1_000_000),
        ];
        for piece in [1, 7, 16 << 10, input.len()] {
            if piece == 1 {
                // A byte at a time through 3 MB: the small keep only (the whole-body decode is below).
                let (got, most) = decode_keeping(&input, 100, piece);
                assert_eq!(got, want);
                assert!(most < 200, "the read buffer held {most} bytes");
                continue;
            }
            let (got, most) = decode_keeping(&input, 100, piece);
            assert_eq!(got, want, "reads of {piece}");
            if piece < input.len() {
                assert!(
                    most <= piece + 100,
                    "reads of {piece}: the buffer held {most} bytes"
                );
            }
            // Kept whole (the default), the same responses with their whole bodies.
            let (whole, _) = decode_keeping(&input, usize::MAX, piece);
            let lens: Vec<u64> = whole
                .iter()
                .map(|(_, b, n)| {
                    assert_eq!(b.len() as u64, *n);
                    *n
                })
                .collect();
            assert_eq!(lens, [1_000_000, 5, 1_000_000, 1_000_000]);
            assert_eq!(&whole[0].1[..], &body[..]);
            assert_eq!(&whole[2].1[..], &body[..]);
            assert_eq!(&whole[3].1[..], &body[..]);
        }
    }

    #[test]
    fn a_body_dropped_as_it_arrives_is_still_held_to_the_body_limit() {
        let over = |input: &[u8]| {
            let mut codec = ClientCodec::new(Limits {
                max_body_bytes: 1000,
                ..Limits::default()
            })
            .with_body_keep(10);
            codec
                .encode(Request::get("/"), &mut BytesMut::new())
                .unwrap();
            let mut buf = BytesMut::from(input);
            match codec.decode(&mut buf).and_then(|r| match r {
                Some(r) => Ok(Some(r)),
                None => codec.decode_eof(&mut buf),
            }) {
                Err(CodecError::TooLarge {
                    what: Limit::Body,
                    len,
                    max: 1000,
                }) => len,
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(&input[..40])),
            }
        };
        let mut until_close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        until_close.extend_from_slice(&[b'x'; 1001]);
        assert_eq!(over(&until_close), 1001);
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            chunked.extend_from_slice(b"190\r\n");
            chunked.extend_from_slice(&[b'x'; 400]);
            chunked.extend_from_slice(b"\r\n");
        }
        assert_eq!(over(&chunked), 1200);
        assert_eq!(
            over(b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n"),
            1001
        );
    }

    #[test]
    fn client_encodes_requests_with_length_and_host() {
        let mut codec = ClientCodec::default().with_host("example:80");
        let mut buf = BytesMut::new();
        codec.encode(Request::post("/p", "abc"), &mut buf).unwrap();
        codec
            .encode(&Request::get("/g").with_header("host", "h"), &mut buf)
            .unwrap();
        assert_eq!(
            &buf[..],
            &b"POST /p HTTP/1.1\r\nHost: example:80\r\nContent-Length: 3\r\n\r\nabc\
               GET /g HTTP/1.1\r\nhost: h\r\n\r\n"[..]
        );
        assert_eq!(codec.in_flight(), 2);
        assert!(codec.encode(Request::get("/a b"), &mut buf).is_err());
    }

    #[test]
    fn client_decodes_chunked_head_and_bodiless_responses() {
        let mut codec = ClientCodec::default();
        let mut wire = BytesMut::new();
        codec.encode(Request::get("/"), &mut wire).unwrap();
        codec
            .encode(Request::new(Method::Head, "/"), &mut wire)
            .unwrap();
        codec.encode(Request::get("/"), &mut wire).unwrap();
        codec.encode(Request::get("/"), &mut wire).unwrap();
        let input = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n\
            HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n\
            HTTP/1.0 200 OK\r\n\r\nuntil close";
        let got = responses(&mut codec, input).unwrap();
        let bodies: Vec<_> = got.iter().map(|r| r.body.clone()).collect();
        assert_eq!(bodies, vec!["abc0123456789", "", "", "until close"]);
        assert_eq!(got[2].status, 304);
        assert_eq!(got[0].reason, "OK");
        assert!(codec.is_closing());
        assert_eq!(codec.in_flight(), 0);
    }

    #[test]
    fn client_refuses_large_bodies_and_truncation() {
        let mut codec = ClientCodec::new(small());
        let err =
            responses(&mut codec, b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n").unwrap_err();
        assert!(matches!(
            err,
            CodecError::TooLarge {
                what: Limit::Body,
                ..
            }
        ));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\n";
        let err = responses(&mut ClientCodec::new(small()), chunked).unwrap_err();
        assert!(matches!(
            err,
            CodecError::TooLarge {
                what: Limit::Body,
                ..
            }
        ));
        let err = responses(
            &mut ClientCodec::default(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab",
        )
        .unwrap_err();
        assert!(matches!(err, CodecError::Protocol(_)));
    }

    #[test]
    fn headers_build_and_compare() {
        let mut codec = ServerCodec::default();
        let mut req = requests(&mut codec, b"GET / HTTP/1.0\r\nA: 1\r\n\r\n")
            .unwrap()
            .remove(0);
        req.headers.push("B", "2");
        let names: Vec<_> = req
            .headers
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect();
        assert_eq!(
            names,
            vec![("A".into(), b"1".to_vec()), ("B".into(), b"2".to_vec())]
        );
        assert_eq!(req.headers, Headers::new().with("A", "1").with("B", "2"));
    }
}
