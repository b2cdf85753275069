//! What travels on a connection: the [`Protocol`] trait, the built-in protocols, and [`Custom`] for a codec
//! of your own.
//!
//! A protocol names its request and response types, makes a codec per connection, and may tag requests so the
//! connection can prove that each reply belongs to its request (the framed protocol echoes the request id).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::framed::{self, Op};
use crate::codec::{echo, http, line, resp, Decode, Encode};

/// A wire protocol the client can speak.
///
/// Replies must come back in request order (every protocol here does); the connection matches them FIFO and
/// then asks [`Protocol::check_reply`] to confirm the match.
pub trait Protocol: Send + Sync + 'static {
    /// What a caller sends. Cloned only when a call may be retried.
    type Request: Clone + Send + 'static;
    /// What a caller gets back.
    type Response: Send + 'static;
    /// The codec of one connection (encodes requests, decodes responses).
    type Codec: Encode<Self::Request> + Decode<Item = Self::Response> + Send + 'static;

    /// A fresh codec for a new connection.
    fn codec(&self) -> Self::Codec;

    /// A fresh codec for a new connection of a client whose replies may hold at most `max_reply` bytes each
    /// ([`BufferConfig::max_reply`](crate::BufferConfig::max_reply)): every connection a
    /// [`Client`](crate::Client) or [`Connection`](crate::Connection) opens gets its codec here. The built-in
    /// protocols bound each reply as a whole by it, beside their own limits (the smaller wins); going over is a
    /// [`CodecError::TooLarge`](crate::codec::CodecError::TooLarge) with [`Limit::Reply`](crate::codec::Limit::Reply).
    /// An echo reply is as long as its request, which the caller chose. Default: [`codec`](Self::codec) (a
    /// custom codec keeps its own limits).
    fn codec_with_max_reply(&self, max_reply: usize) -> Self::Codec {
        let _ = max_reply;
        self.codec()
    }

    /// A short name for logs and stats.
    fn name(&self) -> &'static str {
        "custom"
    }

    /// A tag the reply must carry (the framed request id). Default: 0 (nothing to check).
    fn request_tag(&self, _request: &Self::Request) -> u64 {
        0
    }

    /// Confirm that `reply` answers the request tagged `tag`. An error is a protocol error: the connection is
    /// poisoned and every request on it fails. Default: always fine.
    fn check_reply(&self, _tag: u64, _reply: &Self::Response) -> Result<(), String> {
        Ok(())
    }

    /// The URL schemes of endpoints that name this protocol: `redis`, `rediss` and `redis+unix` for RESP,
    /// `http` and `https` for HTTP. An endpoint written with one of those service schemes is refused when a
    /// client of any other protocol is built (a `redis://` endpoint for a framed client is a mistake, not an
    /// address); the generic forms (`host:port`, `tcp://`, `tls://`, `unix:`) go with every protocol.
    /// Default: none.
    fn url_schemes(&self) -> &'static [&'static str] {
        &[]
    }

    /// True when, after `reply`, the server closes the connection (HTTP `Connection: close`): the connection
    /// takes no more requests, and the EOF that follows is expected, not a sign that the endpoint went away.
    /// Default: false.
    fn closes_connection(&self, _reply: &Self::Response) -> bool {
        false
    }

    /// Like [`closes_connection`](Self::closes_connection), with the connection's codec, which may know more
    /// (an HTTP/1.0 reply without keep-alive, a body delimited by the close). Default: `closes_connection`.
    fn closes_after(&self, _codec: &Self::Codec, reply: &Self::Response) -> bool {
        self.closes_connection(reply)
    }

    /// True when sending `request` twice is harmless, so it may be retried even after it may have been sent.
    /// Default: false.
    fn is_idempotent(&self, _request: &Self::Request) -> bool {
        false
    }

    /// The name of the command, when `request` changes the state of the connection it runs on (Redis
    /// `SELECT`, `AUTH`, `MULTI`, `SUBSCRIBE` …). Such a request is refused on the connections callers share
    /// ([`Client::call`](crate::Client::call)): it belongs in the `on_connect` hook or on an
    /// [`exclusive`](crate::Client::exclusive) connection. Default: none.
    fn changes_connection_state(&self, _request: &Self::Request) -> Option<&'static str> {
        None
    }

    /// The name of the command when `request` is not answered by exactly one reply (Redis `SUBSCRIBE` and
    /// the rest of the pub/sub family, `MONITOR`, `CLIENT REPLY OFF` …): after it, what the server sends is
    /// pushes, or nothing, and would be taken for the replies of the requests that follow. Such a request is
    /// refused on every request/reply path ([`Client::call`](crate::Client::call),
    /// [`Exclusive::call`](crate::Exclusive::call), [`Connection::call`](crate::Connection::call),
    /// [`Pipelined::send`](crate::Pipelined::send)) before anything is sent. Default: none.
    fn breaks_request_reply(&self, _request: &Self::Request) -> Option<&'static str> {
        None
    }

    /// Called once by [`ClientBuilder::build`](crate::ClientBuilder::build) with the client's first endpoint,
    /// before any connection: a protocol whose requests name their server (HTTP's `Host`) takes that name from
    /// the endpoint when it was given none. Default: nothing.
    fn default_authority(&mut self, _endpoint: &crate::transport::Endpoint) {}

    /// How long the server may hold back its reply to `request` while it waits for something to happen (Redis
    /// `BLPOP`, `XREAD … BLOCK`, `WAIT`); [`Duration::MAX`](std::time::Duration::MAX) when it may wait without
    /// limit. On a shared pipelined connection such a request would hold up every reply queued behind it, so
    /// [`Client::call`](crate::Client::call) sends it on a connection of its own (one of the depth-1
    /// connections [`Client::exclusive`](crate::Client::exclusive) lends) and adds this to its request timeout.
    /// Default: none.
    fn blocks_for(&self, _request: &Self::Request) -> Option<std::time::Duration> {
        None
    }
}

/// The sockpool `framed` RPC ([`codec::framed`](crate::codec::framed)): replies are checked against the
/// request id.
#[derive(Debug, Clone)]
pub struct Framed {
    /// Largest frame body accepted or sent. Default: [`framed::DEFAULT_MAX_FRAME`] (16 MiB).
    pub max_frame: usize,
    /// Keep at most this many bytes of each reply's payload: the rest is read, counted in
    /// [`framed::Response::payload_dropped`] and dropped as it arrives
    /// ([`framed::ClientCodec::with_payload_keep`]). For clients that measure or count replies rather than use
    /// them. Default: none (every payload kept whole).
    pub keep_payload: Option<usize>,
}

impl Default for Framed {
    fn default() -> Self {
        Framed {
            max_frame: framed::DEFAULT_MAX_FRAME,
            keep_payload: None,
        }
    }
}

impl Protocol for Framed {
    type Request = framed::Request;
    type Response = framed::Response;
    type Codec = framed::ClientCodec;

    fn codec(&self) -> Self::Codec {
        self.codec_with_max_reply(crate::codec::DEFAULT_MAX_REPLY)
    }

    fn codec_with_max_reply(&self, max_reply: usize) -> Self::Codec {
        framed::ClientCodec::new(self.max_frame)
            .with_max_reply(max_reply)
            .with_payload_keep(self.keep_payload.unwrap_or(usize::MAX))
    }

    fn name(&self) -> &'static str {
        "framed"
    }

    fn request_tag(&self, request: &framed::Request) -> u64 {
        request.id
    }

    fn check_reply(&self, tag: u64, reply: &framed::Response) -> Result<(), String> {
        // A frame the server cannot read (over its size limit, malformed) it answers with id 0 and
        // `TooLarge` or `BadRequest`, then closes: that answer is the oldest request's, whose id it never read.
        let unread = reply.id == 0
            && matches!(
                reply.status,
                framed::Status::TooLarge | framed::Status::BadRequest
            );
        if reply.id == tag || unread {
            Ok(())
        } else {
            Err(format!(
                "reply id {} does not match request id {tag} (status {:?})",
                reply.id, reply.status
            ))
        }
    }

    fn is_idempotent(&self, request: &framed::Request) -> bool {
        // Every framed op is read-only on the server; SINK is an upload whose effect a caller may count.
        !matches!(request.op, Op::Sink)
    }
}

/// A raw byte stream to an echo server: each request's reply is exactly as many bytes as it sent, so
/// pipelined requests map 1:1 to replies ([`echo::EchoClientCodec`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Protocol for Echo {
    type Request = Bytes;
    type Response = Bytes;
    type Codec = echo::EchoClientCodec;

    fn codec(&self) -> Self::Codec {
        echo::EchoClientCodec::new()
    }

    fn name(&self) -> &'static str {
        "echo"
    }

    fn is_idempotent(&self, _request: &Bytes) -> bool {
        true
    }
}

/// `\n`-terminated lines ([`line::LineCodec`]): a request is one line without its `\n`, the reply is the next line.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    /// Longest reply line accepted. Default: [`line::DEFAULT_MAX_LINE`] (64 KiB).
    pub max_len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            max_len: line::DEFAULT_MAX_LINE,
        }
    }
}

impl Protocol for Line {
    type Request = Bytes;
    type Response = Bytes;
    type Codec = line::LineCodec;

    fn codec(&self) -> Self::Codec {
        line::LineCodec::new(self.max_len)
    }

    fn codec_with_max_reply(&self, max_reply: usize) -> Self::Codec {
        line::LineCodec::new(self.max_len).with_max_reply(max_reply)
    }

    fn name(&self) -> &'static str {
        "line"
    }
}

/// Redis RESP2 ([`resp::ClientCodec`]): a request is a command (`Vec<Bytes>`), the reply a [`resp::Value`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Resp {
    /// Limits on replies. Default: [`resp::Limits::default`].
    pub limits: resp::Limits,
    /// Keep at most this many bytes of each bulk string: a longer one is read and dropped as it arrives and
    /// decoded as [`resp::Value::BulkHead`] (its first bytes and its length;
    /// [`resp::ClientCodec::with_bulk_keep`]), so a connection reading large values holds about this much, not
    /// each value. For clients that measure or count replies rather than use them. Default: none (every bulk
    /// string kept whole).
    pub keep_bulk: Option<usize>,
    /// Keep at most this many elements of each array: the later ones are read and dropped as each arrives and
    /// the array decoded as [`resp::Value::ArrayHead`] ([`resp::ClientCodec::with_array_keep`]). For the same
    /// clients. Default: none (every array kept whole).
    pub keep_array: Option<usize>,
}

/// RESP commands that only read, so retrying them is harmless.
const RESP_READ_ONLY: &[&[u8]] = &[
    b"GET",
    b"MGET",
    b"EXISTS",
    b"PING",
    b"ECHO",
    b"STRLEN",
    b"TTL",
    b"PTTL",
    b"TYPE",
    b"DBSIZE",
    b"LRANGE",
    b"LLEN",
    b"HGET",
    b"HGETALL",
    b"HMGET",
    b"SMEMBERS",
    b"SCARD",
    b"ZRANGE",
    b"ZSCORE",
];

impl Protocol for Resp {
    type Request = Vec<Bytes>;
    type Response = resp::Value;
    type Codec = resp::ClientCodec;

    fn codec(&self) -> Self::Codec {
        self.codec_with_max_reply(self.limits.max_reply)
    }

    fn codec_with_max_reply(&self, max_reply: usize) -> Self::Codec {
        let max_reply = self.limits.max_reply.min(max_reply);
        resp::ClientCodec::new(self.limits.with_max_reply(max_reply))
            .with_bulk_keep(self.keep_bulk.unwrap_or(usize::MAX))
            .with_array_keep(self.keep_array.unwrap_or(usize::MAX))
    }

    fn name(&self) -> &'static str {
        "resp"
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["redis", "rediss", "redis+unix"]
    }

    fn is_idempotent(&self, request: &Vec<Bytes>) -> bool {
        request
            .first()
            .is_some_and(|cmd| RESP_READ_ONLY.iter().any(|ro| cmd.eq_ignore_ascii_case(ro)))
    }

    fn changes_connection_state(&self, request: &Vec<Bytes>) -> Option<&'static str> {
        crate::redis::state_command(request)
    }

    fn breaks_request_reply(&self, request: &Vec<Bytes>) -> Option<&'static str> {
        crate::redis::push_command(request)
    }

    fn blocks_for(&self, request: &Vec<Bytes>) -> Option<std::time::Duration> {
        crate::redis::blocking_command(request)
    }
}

/// HTTP/1.1 with keep-alive and pipelining ([`http::ClientCodec`]). Requests without a `Host` header get
/// [`host`](Self::host), when set, and each of [`default_headers`](Self::default_headers) they lack.
#[derive(Debug, Clone, Default)]
pub struct Http {
    /// Limits on responses. Default: [`http::Limits::default`].
    pub limits: http::Limits,
    /// The `Host` header for requests that have none. Default: none, and the client builder then takes its first
    /// endpoint's (`host:port`, `localhost` for a Unix socket; see [`Protocol::default_authority`]); on a
    /// low-level [`Connection`](crate::Connection) or [`Pipelined`](crate::Pipelined), requests carry their own.
    pub host: Option<Bytes>,
    /// Fields added to every request that has no field of the same name (`User-Agent`, `Authorization` …).
    /// Default: none.
    pub default_headers: http::Headers,
    /// The typed calls ([`Client::request`](crate::Client::request), [`Client::send`](crate::Client::send))
    /// turn a 4xx or 5xx response into an `Err` of kind [`HttpStatus`](crate::ErrorKind::HttpStatus)
    /// ([`ClientBuilder::error_for_status`](crate::ClientBuilder::error_for_status));
    /// [`Client::call`](crate::Client::call) always returns the response. Default: false (every status is a
    /// response).
    pub error_for_status: bool,
    /// Keep at most this many bytes of each response body: the rest is read, counted in
    /// [`http::Response::body_dropped`] and dropped as it arrives ([`http::ClientCodec::with_body_keep`]), so a
    /// connection downloading large bodies holds about this much, not each body. For clients that measure or
    /// count downloads rather than use them. Default: none (every body kept whole).
    pub keep_body: Option<usize>,
}

impl Protocol for Http {
    type Request = http::Request;
    type Response = http::Response;
    type Codec = http::ClientCodec;

    fn codec(&self) -> Self::Codec {
        self.codec_with_max_reply(crate::codec::DEFAULT_MAX_REPLY)
    }

    fn codec_with_max_reply(&self, max_reply: usize) -> Self::Codec {
        let codec = http::ClientCodec::new(self.limits)
            .with_max_reply(max_reply)
            .with_body_keep(self.keep_body.unwrap_or(usize::MAX));
        let codec = match &self.host {
            Some(host) => codec.with_host(host.clone()),
            None => codec,
        };
        if self.default_headers.is_empty() {
            codec
        } else {
            codec.with_default_headers(self.default_headers.clone())
        }
    }

    fn name(&self) -> &'static str {
        "http"
    }

    /// `Host` from the endpoint when none was set: `host:port` as curl sends it (the port left out when it is
    /// the scheme's default), `localhost` for a Unix socket. An HTTP/1.1 server must refuse a request without
    /// one (RFC 9112 §3.2: nginx and sockpool-server answer 400).
    fn default_authority(&mut self, endpoint: &crate::transport::Endpoint) {
        use crate::transport::Endpoint;
        if self.host.is_some() {
            return;
        }
        let host = match endpoint {
            Endpoint::Tcp { host, port } | Endpoint::Tls { host, port } => {
                let default = if matches!(endpoint, Endpoint::Tls { .. }) {
                    443
                } else {
                    80
                };
                let host = match host.contains(':') {
                    true => format!("[{host}]"),
                    false => host.clone(),
                };
                match *port == default {
                    true => host,
                    false => format!("{host}:{port}"),
                }
            }
            Endpoint::Unix(_) => "localhost".to_string(),
        };
        self.host = Some(Bytes::from(host));
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["http", "https"]
    }

    fn closes_connection(&self, reply: &http::Response) -> bool {
        !reply.keep_alive()
    }

    /// `Connection: close`, an HTTP/1.0 reply without keep-alive, or a body delimited by the close: the codec
    /// marks itself closing when it decodes such a reply (from the fields it read once, while parsing).
    fn closes_after(&self, codec: &http::ClientCodec, _reply: &http::Response) -> bool {
        codec.is_closing()
    }

    fn is_idempotent(&self, request: &http::Request) -> bool {
        use http::Method as M;
        matches!(
            request.method,
            M::Get | M::Head | M::Options | M::Put | M::Delete | M::Trace
        )
    }
}

/// Any codec as a protocol: `Custom::new(|| MyCodec::new())`, where `MyCodec` implements
/// [`Encode`]`<Req>` and [`Decode`] (a tokio-util codec wrapped in
/// `codec::TokioUtilCodec`, with the `tokio-util` feature, does).
///
/// The codec's errors are protocol errors (the connection is dropped).
pub struct Custom<C, Req> {
    make: Arc<dyn Fn() -> C + Send + Sync>,
    name: &'static str,
    idempotent: bool,
    _req: PhantomData<fn(Req)>,
}

impl<C, Req> Clone for Custom<C, Req> {
    fn clone(&self) -> Self {
        Custom {
            make: self.make.clone(),
            name: self.name,
            idempotent: self.idempotent,
            _req: PhantomData,
        }
    }
}

impl<C, Req> fmt::Debug for Custom<C, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custom").field("name", &self.name).finish()
    }
}

impl<C, Req> Custom<C, Req> {
    /// A protocol whose connections each use the codec `make` returns.
    pub fn new(make: impl Fn() -> C + Send + Sync + 'static) -> Self {
        Custom {
            make: Arc::new(make),
            name: "custom",
            idempotent: false,
            _req: PhantomData,
        }
    }

    /// Name it (for logs and stats). Default: `"custom"`.
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Declare every request idempotent, so that retries are allowed after it may have been sent.
    /// Default: false.
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }
}

impl<C, Req> Protocol for Custom<C, Req>
where
    C: Encode<Req> + Decode + Send + 'static,
    C::Item: Send + 'static,
    Req: Clone + Send + 'static,
{
    type Request = Req;
    type Response = C::Item;
    type Codec = C;

    fn codec(&self) -> C {
        (self.make)()
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn is_idempotent(&self, _request: &Req) -> bool {
        self.idempotent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn resp_reads_are_idempotent_and_writes_are_not() {
        let p = Resp::default();
        let cmd = |s: &[&'static str]| s.iter().map(|a| Bytes::from_static(a.as_bytes())).collect();
        assert!(p.is_idempotent(&cmd(&["get", "k"])));
        assert!(!p.is_idempotent(&cmd(&["INCR", "k"])));
        assert!(!p.is_idempotent(&Vec::new()));
    }

    #[test]
    fn framed_checks_the_reply_id() {
        let p = Framed::default();
        let req = framed::Request::echo(42, Bytes::from_static(b"x"));
        let tag = p.request_tag(&req);
        assert!(p
            .check_reply(tag, &framed::Response::ok(42, Bytes::new()))
            .is_ok());
        let err = p
            .check_reply(tag, &framed::Response::ok(41, Bytes::new()))
            .unwrap_err();
        assert!(err.contains("41") && err.contains("42"), "{err}");
        // The server's answer to a frame it could not read carries id 0; any other reply with id 0 is not ours.
        for status in [framed::Status::TooLarge, framed::Status::BadRequest] {
            assert!(p
                .check_reply(tag, &framed::Response::status(status, 0))
                .is_ok());
        }
        assert!(p
            .check_reply(tag, &framed::Response::ok(0, Bytes::new()))
            .is_err());
    }

    #[test]
    fn custom_speaks_any_codec() {
        use crate::codec::CodecError;
        use bytes::{Buf, BufMut, BytesMut};

        /// One byte per request, the byte plus one back.
        struct Bump;
        impl Encode<u8> for Bump {
            fn encode(&mut self, item: u8, dst: &mut BytesMut) -> Result<(), CodecError> {
                dst.put_u8(item);
                Ok(())
            }
        }
        impl Decode for Bump {
            type Item = u8;
            fn decode(&mut self, src: &mut BytesMut) -> Result<Option<u8>, CodecError> {
                Ok(src.has_remaining().then(|| src.get_u8().wrapping_add(1)))
            }
        }

        let p = Custom::<Bump, u8>::new(|| Bump).named("bump");
        let mut codec = p.codec();
        let mut buf = BytesMut::new();
        codec.encode(41, &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(42));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        // The default `decode_eof`: an empty buffer is the end of the stream.
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
        assert_eq!(p.name(), "bump");
    }
}
