//! The SDK adapters: each worker drives its share of the connections over TCP, TLS or Unix sockets on
//! [`crate::pipeline`] (one `sockpool::Pipelined` per connection, for the closed and the open loop alike), or
//! over UDP through a set of `sockpool::UdpClient`s, converting [`Req`]s into the protocol's requests and
//! classifying replies.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sockpool::codec::{CodecError, Decode, Encode};
use sockpool::protocol::Protocol;
use sockpool::{BufferConfig, Client, Pipelined, PoolConfig, RetryPolicy, SocketOptions, Timeouts};
use tokio::time::Instant;

use futures::future::LocalBoxFuture;

use crate::check::{Check, Failure, Pattern};
use crate::config::{Config, FramedOp, Protocol as Proto, RequestSpec};
use crate::driver::{Feed, Outcome, Transport};
use crate::pipeline::Pipeline;
use crate::recorder::{ErrorKind, Phase};
use crate::report::RunResult;
use crate::runner::{self, RunError, Signals};
use crate::scenario::Req;

/// Maps an SDK error to the report's error kinds.
pub fn classify(e: &sockpool::Error) -> ErrorKind {
    use sockpool::ErrorKind as K;
    match e.kind() {
        K::Timeout => ErrorKind::Timeout(match e.phase() {
            sockpool::Phase::PoolWait => Phase::PoolWait,
            sockpool::Phase::Connect => Phase::Connect,
            sockpool::Phase::TlsHandshake => Phase::TlsHandshake,
            sockpool::Phase::Write => Phase::Write,
            sockpool::Phase::Read => Phase::Read,
            // The end-to-end deadline was spent before a phase could start: spent waiting for a slot.
            sockpool::Phase::Deadline => Phase::PoolWait,
            _ => Phase::Request,
        }),
        K::Refused => ErrorKind::Refused,
        K::Reset => ErrorKind::Reset,
        K::Closed => ErrorKind::Closed,
        // The SDK names the limit a reply went over: over the client's reply limit, it is no mismatch.
        K::Protocol if e.limit() == Some(sockpool::codec::Limit::Reply) => ErrorKind::ReplyTooLarge,
        K::Protocol => ErrorKind::Protocol,
        K::Tls => ErrorKind::Tls,
        K::Server => ErrorKind::ServerError,
        _ => ErrorKind::Other,
    }
}

/// How the load generator speaks one SDK protocol.
pub trait Speak: SendRef + Clone {
    /// The protocol's request for `req`; `id` is a fresh request id.
    fn request(&self, req: Req, id: u64) -> Self::Request;
    /// The request to send for every one of a run whose requests are all `req`
    /// ([`Generator::constant`](crate::scenario::Generator::constant)), built once and sent by reference; `None`
    /// when each request must be built anew (framed requests carry ids of their own).
    fn fixed(&self, req: Req) -> Option<Self::Request> {
        Some(self.request(req, 0))
    }
    /// Judges a decoded reply with the run's [`Check`] (the one place replies are judged, for both loops):
    /// payload bytes of a good reply, or why it failed. `sent` is the request's own bytes when
    /// [`Check::compares_request`] (else empty).
    fn reply(&self, check: &Check, sent: &Bytes, resp: &Self::Response) -> Result<u64, Failure>;
}

/// A protocol whose codec encodes a request from a reference: [`Pipelined::send_ref`] from generic code, where
/// the bound that allows it would otherwise have to be restated at every use.
pub trait SendRef: Protocol + Sized {
    /// [`Pipelined::send_ref`].
    fn send_ref<T>(
        conn: &mut Pipelined<Self, T>,
        request: &Self::Request,
        token: T,
        now: Instant,
    ) -> Result<(), (T, sockpool::Error)>;
}

impl<P: Protocol> SendRef for P
where
    for<'r> P::Codec: Encode<&'r P::Request>,
{
    fn send_ref<T>(
        conn: &mut Pipelined<P, T>,
        request: &P::Request,
        token: T,
        now: Instant,
    ) -> Result<(), (T, sockpool::Error)> {
        conn.send_ref(request, token, now)
    }
}

impl Speak for sockpool::protocol::Framed {
    fn fixed(&self, _req: Req) -> Option<Self::Request> {
        None
    }

    fn request(&self, req: Req, id: u64) -> Self::Request {
        use sockpool::codec::framed::{Op, Request};
        match req {
            Req::Framed { op, arg, payload } => Request {
                op: match op {
                    FramedOp::Echo => Op::Echo,
                    FramedOp::Sink => Op::Sink,
                    FramedOp::Source => Op::Source,
                    FramedOp::Sleep => Op::Sleep,
                },
                id,
                arg,
                payload,
            },
            other => Request::echo(id, bytes_of(other)),
        }
    }

    fn reply(&self, check: &Check, _sent: &Bytes, resp: &Self::Response) -> Result<u64, Failure> {
        check.framed(resp)
    }
}

impl Speak for sockpool::protocol::Echo {
    fn request(&self, req: Req, _id: u64) -> Bytes {
        bytes_of(req)
    }

    fn reply(&self, check: &Check, sent: &Bytes, resp: &Bytes) -> Result<u64, Failure> {
        check.echo(sent, resp)
    }
}

/// `\n`-terminated lines, `per_reply` lines to a reply (`--reply-lines`; memcached's `get` answers three).
///
/// A request is sent as given plus `\n`, so a template may hold `\r\n` to send a command and its data block
/// (memcached's `set`). Replies are decoded by the SDK's [`sockpool::codec::line::LineCodec`] (a `\r` before
/// the `\n` is dropped), and a reply of several lines is their join with `\n`.
#[derive(Debug, Clone, Copy)]
pub struct Lines {
    /// Longest reply line. Default: [`sockpool::codec::line::DEFAULT_MAX_LINE`].
    pub max_len: usize,
    /// Lines per reply. Default: 1.
    pub per_reply: usize,
    /// The most bytes of a reply line kept: the rest is counted and dropped as it arrives
    /// ([`sockpool::codec::line::LineCodec::with_keep`]). Default: `usize::MAX` (every line whole).
    pub keep: usize,
}

impl Lines {
    /// Replies of `per_reply` lines.
    pub fn new(per_reply: usize) -> Lines {
        Lines {
            max_len: sockpool::codec::line::DEFAULT_MAX_LINE,
            per_reply: per_reply.max(1),
            keep: usize::MAX,
        }
    }
}

/// A reply of [`Lines`]: its lines joined with `\n`, each cut to the bytes kept, and its whole length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineReply {
    /// The reply's text (each line's kept bytes).
    pub text: Bytes,
    /// The whole reply's length: more than `text`'s when a line was longer than the bytes kept.
    pub len: u64,
}

/// The codec of [`Lines`].
#[derive(Debug)]
pub struct LinesCodec {
    inner: sockpool::codec::line::LineCodec,
    per_reply: usize,
    /// Lines of the reply being decoded.
    got: Vec<sockpool::codec::line::KeptLine>,
}

impl Encode<&Bytes> for LinesCodec {
    fn encode(&mut self, item: &Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.reserve(item.len() + 1);
        dst.extend_from_slice(item);
        dst.extend_from_slice(b"\n");
        Ok(())
    }
}

impl Encode<Bytes> for LinesCodec {
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(&item, dst)
    }
}

impl LinesCodec {
    /// The reply of the lines gathered, once there are `per_reply` of them.
    fn reply(&mut self) -> Option<LineReply> {
        if self.got.len() < self.per_reply {
            return None;
        }
        let lines = std::mem::take(&mut self.got);
        let len = lines.iter().map(|l| l.len).sum::<u64>() + lines.len() as u64 - 1;
        let text = match &lines[..] {
            [one] => one.head.clone(),
            _ => {
                let heads: Vec<&[u8]> = lines.iter().map(|l| &l.head[..]).collect();
                Bytes::from(heads.join(&b"\n"[..]))
            }
        };
        Some(LineReply { text, len })
    }
}

impl Decode for LinesCodec {
    type Item = LineReply;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<LineReply>, CodecError> {
        while self.got.len() < self.per_reply {
            match self.inner.decode_kept(src)? {
                Some(line) => self.got.push(line),
                None => return Ok(None),
            }
        }
        Ok(self.reply())
    }

    fn in_progress(&self) -> bool {
        !self.got.is_empty() || self.inner.in_progress()
    }
}

impl Protocol for Lines {
    type Request = Bytes;
    type Response = LineReply;
    type Codec = LinesCodec;

    /// Bounded by the SDK's default reply limit too: a run lifts `max_len` (see [`drive`]).
    fn codec(&self) -> LinesCodec {
        self.codec_with_max_reply(sockpool::codec::DEFAULT_MAX_REPLY)
    }

    /// Each line bounded by `max_reply` too, as the SDK's line protocol bounds its one.
    fn codec_with_max_reply(&self, max_reply: usize) -> LinesCodec {
        LinesCodec {
            inner: sockpool::codec::line::LineCodec::new(self.max_len)
                .with_max_reply(max_reply)
                .with_keep(self.keep),
            per_reply: self.per_reply,
            got: Vec::new(),
        }
    }

    fn name(&self) -> &'static str {
        "line"
    }
}

impl Speak for Lines {
    fn request(&self, req: Req, _id: u64) -> Bytes {
        bytes_of(req)
    }

    fn reply(&self, check: &Check, sent: &Bytes, resp: &LineReply) -> Result<u64, Failure> {
        check.line(sent, &resp.text, resp.len)
    }
}

impl Speak for sockpool::protocol::Resp {
    fn request(&self, req: Req, _id: u64) -> Vec<Bytes> {
        match req {
            Req::Resp(args) => args,
            other => vec![Bytes::from_static(b"ECHO"), bytes_of(other)],
        }
    }

    fn reply(
        &self,
        check: &Check,
        _sent: &Bytes,
        resp: &sockpool::codec::resp::Value,
    ) -> Result<u64, Failure> {
        check.resp(resp)
    }
}

/// UDP through `sockpool::UdpClient`: one client (socket) per `--connections`, one datagram in flight on each.
/// Sockets are opened on first use (opening one is asynchronous); none retries, so each request counts once.
pub struct UdpTransport {
    check: Check,
    target: String,
    config: sockpool::UdpConfig,
    clients: RefCell<Vec<Option<Rc<sockpool::UdpClient>>>>,
    free: Rc<RefCell<Vec<usize>>>,
}

/// Gives a socket back to the free list when its request ends, even if the request is dropped at a timeout.
struct Lease {
    index: usize,
    free: Rc<RefCell<Vec<usize>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.free.borrow_mut().push(self.index);
    }
}

impl UdpTransport {
    fn new(config: &Config, target: &str, sockets: usize) -> UdpTransport {
        let udp = sockpool::UdpConfig::default()
            .with_timeout(config.timeout)
            .with_retries(0)
            .with_max_datagram(config.payload.max.max(1))
            .with_local_address(config.bind);
        UdpTransport {
            check: config.check.clone(),
            target: target.to_string(),
            config: udp,
            clients: RefCell::new(vec![None; sockets]),
            free: Rc::new(RefCell::new((0..sockets).rev().collect())),
        }
    }

    async fn client(
        &self,
        i: usize,
    ) -> Result<(Rc<sockpool::UdpClient>, Option<Duration>), Failure> {
        if let Some(c) = &self.clients.borrow()[i] {
            return Ok((c.clone(), None));
        }
        let started = std::time::Instant::now();
        let c = sockpool::UdpClient::connect_to(&self.target, self.config.clone())
            .await
            .map_err(Failure::sdk)?;
        let c = Rc::new(c);
        self.clients.borrow_mut()[i] = Some(c.clone());
        Ok((c, Some(started.elapsed())))
    }
}

impl Transport for UdpTransport {
    async fn call(&self, req: Req, deadline: tokio::time::Instant) -> Outcome {
        let Some(index) = self.free.borrow_mut().pop() else {
            return Outcome::failed(ErrorKind::Timeout(Phase::PoolWait).into());
        };
        let _lease = Lease {
            index,
            free: self.free.clone(),
        };
        let (client, connect) = match self.client(index).await {
            Ok(c) => c,
            Err(f) => return Outcome::failed(f),
        };
        let payload = bytes_of(req);
        let (result, written) =
            match tokio::time::timeout_at(deadline, client.request(&payload)).await {
                Ok(Ok(reply)) => (self.check.echo(&payload, &reply), true),
                Ok(Err(e)) => {
                    let sent = e.was_sent();
                    (Err(Failure::sdk(e)), sent)
                }
                Err(_) => (Err(ErrorKind::Timeout(Phase::Request).into()), true),
            };
        Outcome {
            result,
            connect,
            pool_wait: None,
            written,
        }
    }
}

/// RESP with the run's reply limit (`--max-reply`), which bounds each bulk string too: a bulk is part of its
/// reply. The SDK's own bulk limit (512 MiB, Redis's default `proto-max-bulk-len`) is lifted, so that it never
/// fires first: a `GET` of a value over it could not be measured whatever `--max-reply` said, and its error
/// (a bulk over its limit, not the reply) was reported as a protocol mismatch. The reply limit, checked from
/// the bulk's length line before its bytes arrive, bounds memory as before.
///
/// A bulk string is kept as `kept` says (a `PING` message whole, as `Check::ping` compares it), counted past
/// that, as an HTTP body is: `GET`s of 200 MB values over 20 connections held 2.7 GB of values being received.
/// An array likewise keeps `KEPT_ITEMS` elements and one (65) (with an exact `--expect` text, also one more than the text
/// has bytes and one: an array of more elements prints longer than the text, kept or whole); the others are
/// counted as they arrive: a server answering with arrays of a million elements held ~17 MB a connection.
pub fn resp(config: &Config) -> sockpool::protocol::Resp {
    let ping = config.check.ping.as_ref().map_or(0, |m| m.len());
    sockpool::protocol::Resp {
        limits: sockpool::codec::resp::Limits::default()
            .with_max_reply(config.max_reply)
            .with_max_bulk(usize::MAX),
        keep_bulk: kept(config, KEPT.max(ping)),
        keep_array: kept(config, KEPT_ITEMS).map(|k| k.saturating_add(1)),
    }
}

/// The most bytes of a reply's value (an HTTP body, a RESP bulk string, a reply line) a run keeps, the rest
/// counted as it arrives: `otherwise` without `--expect`; with an exact `--expect` text, also its length and
/// one byte more (a longer value is not it, and shows longer); `None` (whole) for an `re:` expression, which
/// reads the whole reply (then only `--max-reply` bounds it).
fn kept(config: &Config, otherwise: usize) -> Option<usize> {
    match &config.check.expect {
        None => Some(otherwise),
        Some(Pattern::Exact(text)) => Some(otherwise.max(text.len() + 1)),
        Some(Pattern::Regex(..)) => None,
    }
}

/// HTTP over the SDK.
pub type Http = sockpool::protocol::Http;

/// The HTTP protocol with the codec's default limits, sending `Host: host` with every request that has no
/// `Host` of its own.
pub fn http(host: &str) -> Http {
    sockpool::protocol::Http {
        host: Some(Bytes::copy_from_slice(host.as_bytes())),
        ..Default::default()
    }
}

impl Speak for Http {
    fn request(&self, req: Req, _id: u64) -> sockpool::codec::http::Request {
        match req {
            // `Host` comes from the codec ([`http`]) unless the request has its own.
            Req::Http(r) => r,
            other => sockpool::codec::http::Request::post("/", bytes_of(other)),
        }
    }

    fn reply(
        &self,
        check: &Check,
        _sent: &Bytes,
        resp: &sockpool::codec::http::Response,
    ) -> Result<u64, Failure> {
        check.http(resp)
    }
}

/// The `Host` header value for `target`.
fn host_of(target: &str) -> String {
    let t = target.strip_prefix("tls://").unwrap_or(target);
    if t.starts_with("unix:") {
        "localhost".to_string()
    } else {
        t.to_string()
    }
}

fn bytes_of(req: Req) -> Bytes {
    match req {
        Req::Bytes(b) => b,
        Req::Framed { payload, .. } => payload,
        Req::Http(r) => r.body,
        Req::Resp(args) => args.into_iter().next().unwrap_or_default(),
    }
}

/// How one worker sends over an SDK protocol.
pub enum SdkTransport<P: Speak> {
    /// Every request, closed or open loop, goes through the worker's [`Pipeline`]
    /// ([`Transport::connections`]): `run`.
    Pipelined(Rc<Pipeline<P>>),
    /// Every request goes through a pooled `sockpool::Client` built from a tune cell's configuration
    /// ([`Config::client`]), so that its pool, buffers, retry policy and connection per request are what is
    /// measured; the driver's slots each await [`Transport::call`].
    Pooled {
        /// The worker's client.
        client: Client<P>,
        /// How replies are judged.
        check: Check,
        /// Whether the check compares a reply with its request's bytes.
        compare: bool,
    },
}

impl<P: Speak> SdkTransport<P> {
    /// Sends through `pipeline`.
    pub fn new(pipeline: Pipeline<P>) -> SdkTransport<P> {
        SdkTransport::Pipelined(Rc::new(pipeline))
    }
}

impl<P: Speak> Transport for SdkTransport<P> {
    fn connections(&self, feed: Rc<Feed>) -> Option<LocalBoxFuture<'static, ()>> {
        match self {
            SdkTransport::Pipelined(p) => Some(p.run(feed)),
            SdkTransport::Pooled { .. } => None,
        }
    }

    fn stray_closes(&self) -> u64 {
        match self {
            SdkTransport::Pipelined(_) => 0,
            SdkTransport::Pooled { client, .. } => client.stats().closes.stray_bytes,
        }
    }

    async fn call(&self, req: Req, deadline: tokio::time::Instant) -> Outcome {
        let SdkTransport::Pooled {
            client,
            check,
            compare,
        } = self
        else {
            // The driver runs a transport with connections of its own only through `connections`.
            unreachable!("a pipelined transport is driven through connections, not call");
        };
        let sent = if *compare { req.bytes() } else { Bytes::new() };
        let request = client.protocol().request(req, client.next_id());
        let (result, t) = client.call_timed_until(request, deadline).await;
        let (result, written) = match result {
            Ok(resp) => (client.protocol().reply(check, &sent, &resp), true),
            Err(e) => {
                let sent = e.was_sent();
                (Err(Failure::sdk(e)), sent)
            }
        };
        Outcome {
            result,
            connect: t.connect,
            pool_wait: Some(t.pool_wait),
            written,
        }
    }
}

/// The SDK client one worker uses, holding `connections` connections: the tune cell's configuration
/// ([`Config::client`]), or `run`'s: no retries (every request is counted once), the run's timeouts and socket
/// options.
pub fn client<P: Speak>(
    protocol: P,
    config: &Config,
    target: &str,
    connections: usize,
) -> Result<Client<P>, String> {
    let mut sdk = client_config(config);
    if config.client.is_none() {
        sdk.pool.max_waiters = (connections * config.pipeline).max(1) * 4;
    }
    sdk.pool.max_size = connections;
    sdk.pool.min_idle = sdk.pool.min_idle.min(connections);
    Client::builder(protocol)
        .endpoint(target)
        .config(sdk)
        .build()
        .map_err(|e| e.to_string())
}

/// The whole SDK client configuration a run measures (one worker's pool then holds its share of the
/// connections): a tune cell's ([`Config::client`]) or `run`'s, with the run's TLS settings. `tune --recommend`
/// writes this, so that the file holds exactly what was measured, TLS included.
pub fn client_config(config: &Config) -> sockpool::ClientConfig {
    let mut sdk = match &config.client {
        Some(cell) => cell.clone(),
        None => run_client(config),
    };
    if let Some(tls) = tls_config(config) {
        sdk.tls = tls;
    }
    sdk
}

/// `run`'s SDK client: a pool that keeps its connections (no idle timeout or lifetime), no retries, the run's
/// timeouts, socket options and pipeline depth.
fn run_client(config: &Config) -> sockpool::ClientConfig {
    sockpool::ClientConfig::default()
        .with_pipeline_depth(config.pipeline)
        .with_pool(
            PoolConfig::default()
                .with_idle_timeout(None)
                .with_max_lifetime(None),
        )
        .with_timeouts(
            Timeouts::default()
                .with_connect(config.connect_timeout)
                .with_tls_handshake(config.connect_timeout)
                .with_pool_wait(config.timeout)
                .with_request(config.timeout)
                .with_total(None),
        )
        .with_socket(socket_options(config))
        .with_buffers(BufferConfig::default().with_max_reply(config.max_reply))
        .with_retry(RetryPolicy::none())
}

/// The run's socket options (`--nodelay`, buffers, keepalive) as the SDK takes them.
pub fn socket_options(config: &Config) -> SocketOptions {
    SocketOptions::default()
        .with_nodelay(config.socket.nodelay)
        .with_send_buffer(config.socket.send_buffer)
        .with_recv_buffer(config.socket.recv_buffer)
        .with_keepalive(config.socket.keepalive)
        .with_local_address(config.bind)
}

/// The run's TLS settings (`--tls`, `--cacert`, `--insecure`, `--cert`/`--key`) as the SDK takes them, if TLS
/// is on.
pub fn tls_config(config: &Config) -> Option<sockpool::TlsConfig> {
    config.tls.as_ref().map(|t| {
        let (cert, key) = t.identity.clone().unzip();
        sockpool::TlsConfig::default()
            .with_ca_file(t.cacert.clone())
            .with_insecure(t.insecure)
            .with_client_cert(cert)
            .with_client_key(key)
    })
}

fn sdk<P: Speak + Clone>(
    p: P,
    config: &Config,
    target: &str,
    embedded: bool,
    signals: Signals,
) -> Result<RunResult, RunError> {
    runner::run(config, target, embedded, signals, |_, conns| {
        // A tune cell measures the client the cell configures, not the load generator's own connections.
        Ok(match &config.client {
            Some(_) => SdkTransport::Pooled {
                client: client(p.clone(), config, target, conns)?,
                check: config.check.clone(),
                compare: config.check.compares_request(config.protocol),
            },
            None => SdkTransport::new(Pipeline::new(p.clone(), config, target, conns)?),
        })
    })
}

/// The most bytes of a reply line a run without `--expect` keeps: twice the longest line payload (`--payload`
/// is at most 64 KiB for line), so that a line the default check compares with the request is whole.
const LINE_KEPT: usize = 2 * sockpool::codec::line::DEFAULT_MAX_LINE;

/// The most bytes of an HTTP body or a RESP bulk string a run without `--expect` keeps: enough for an error's
/// example (a `PING` message is kept whole, see [`resp`]).
const KEPT: usize = 1024;

/// The most elements of a RESP reply array a run keeps (each a value kept as [`KEPT`] says); later ones are read
/// and counted, not held. Enough for a bad reply's example.
const KEPT_ITEMS: usize = 64;

/// Runs `config` against `target` with the SDK protocol it names; `signals` says what Ctrl-C does.
pub fn drive(
    config: &Config,
    target: &str,
    embedded: bool,
    signals: Signals,
) -> Result<RunResult, RunError> {
    use sockpool::protocol::{Echo, Framed};
    let per_reply = match config.request {
        RequestSpec::Line { reply_lines, .. } => reply_lines,
        _ => 1,
    };
    // The protocols' own caps on a reply (a line, an HTTP body) are lifted, as RESP's bulk limit is in `resp`:
    // the reply limit alone decides, so a reply over it is a `reply_too_large` that names `--max-reply`, and
    // raising `--max-reply` lets a run measure larger replies (a static file over HTTP). A framed frame keeps
    // the protocol's 16 MiB: a length above it is how a reply that is not framed shows at once (Redis's
    // `-ERR` read as a length is 759 MB, within the reply limit, and the run would wait for it).
    // A framed payload is never read (the status is the check): counted, its first bytes kept for examples.
    let framed = Framed {
        keep_payload: Some(KEPT),
        ..Framed::default()
    };
    // A line is kept up to `LINE_KEPT` (more than any request line, which the default check compares it with)
    // and counted past that: a server sending one endless line held --max-reply (1 GiB) on every connection.
    let lines = Lines {
        max_len: usize::MAX,
        keep: kept(config, LINE_KEPT).unwrap_or(usize::MAX),
        ..Lines::new(per_reply)
    };
    let mut http = http(&host_of(target));
    http.limits.max_body_bytes = usize::MAX;
    // A body is counted, not kept, as wrk does: a run downloading 20 MB files over 50 connections held ~950 MB
    // of bodies being received. The first bytes stay for the error examples and the checks.
    http.keep_body = kept(config, KEPT);
    match config.protocol {
        Proto::Framed => sdk(framed, config, target, embedded, signals),
        Proto::Echo => sdk(Echo, config, target, embedded, signals),
        Proto::Line => sdk(lines, config, target, embedded, signals),
        Proto::Resp => sdk(resp(config), config, target, embedded, signals),
        Proto::Http => sdk(http, config, target, embedded, signals),
        Proto::Udp => runner::run(config, target, embedded, signals, |_, sockets| {
            Ok(UdpTransport::new(config, target, sockets))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::RunArgs;
    use sockpool::codec::{Decode, Limit};

    /// The limit a bulk of `len` bytes goes over in a run with `--max-reply` `max_reply` (`None`: the default).
    fn refused_bulk(max_reply: Option<&str>, len: u64) -> Limit {
        let args = RunArgs {
            target: Some("127.0.0.1:6379".into()),
            max_reply: max_reply.map(str::to_string),
            ..RunArgs::default()
        };
        let config = Config::from_args(&args).unwrap();
        let mut codec = resp(&config).codec_with_max_reply(config.max_reply);
        let mut buf = bytes::BytesMut::from(format!("${len}\r\n").as_bytes());
        match codec.decode(&mut buf) {
            Err(CodecError::TooLarge { what, .. }) => what,
            other => panic!("{max_reply:?} {len}: {other:?}"),
        }
    }

    /// A bulk over `--max-reply` is a reply over its limit, never a bulk over the SDK's bulk limit: with the
    /// default 1 GiB, a 1.2 GiB value was refused as a bulk over its limit (the bulk limit had been raised to
    /// the reply limit, and is checked first), which the report blamed on the protocol.
    #[test]
    fn a_bulk_over_the_reply_limit_names_the_reply_limit() {
        for (max_reply, len) in [
            (None, 1_288_490_188),
            (Some("4KiB"), 5000),
            (Some("1024G"), (1 << 40) + 1),
            (Some("2G"), u64::MAX >> 2),
        ] {
            assert_eq!(
                refused_bulk(max_reply, len),
                Limit::Reply,
                "{max_reply:?} {len}"
            );
        }
        // Within the reply limit, a bulk over the SDK's 512 MiB is taken (its bytes are awaited).
        let config = Config::from_args(&RunArgs {
            target: Some("127.0.0.1:6379".into()),
            ..RunArgs::default()
        })
        .unwrap();
        let mut codec = resp(&config).codec_with_max_reply(config.max_reply);
        let mut buf = bytes::BytesMut::from(&b"$629145600\r\n"[..]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
    }

    /// Without `--expect` a bulk string is kept up to `KEPT` bytes (the rest counted as it arrives), or whole
    /// enough for a `PING` message to be checked; an exact `--expect` text one byte past its length; an `re:`
    /// expression reads it whole. An array likewise: `KEPT_ITEMS` elements and one, or two more than the text's
    /// bytes (an array of that many prints longer than the text), or whole.
    #[test]
    fn a_bulk_is_kept_whole_only_where_the_run_reads_it() {
        let protocol = |command: &str, expect: Option<&str>| {
            let config = Config::from_args(&RunArgs {
                target: Some("127.0.0.1:6379".into()),
                service: crate::args::ServiceArgs {
                    protocol: Some("resp".into()),
                    command: Some(command.into()),
                    expect: expect.map(str::to_string),
                    ..Default::default()
                },
                ..RunArgs::default()
            })
            .unwrap();
            resp(&config)
        };
        let keep = |command: &str, expect: Option<&str>| protocol(command, expect).keep_bulk;
        let items = |expect: Option<&str>| protocol("LRANGE l 0 -1", expect).keep_array;
        assert_eq!(items(None), Some(KEPT_ITEMS + 1));
        assert_eq!(items(Some(&"v".repeat(100))), Some(102));
        assert_eq!(items(Some("re:v")), None);
        assert_eq!(keep("GET k", None), Some(KEPT));
        // An exact text: a value longer than it is not it, and is cut one byte past it; a regex reads it whole.
        assert_eq!(keep("GET k", Some("v*")), Some(KEPT));
        assert_eq!(keep("GET k", Some(&"v".repeat(5000))), Some(5001));
        assert_eq!(keep("GET k", Some("re:^v+$")), None);
        let long = format!("PING {}", "m".repeat(3000));
        assert_eq!(keep(&long, None), Some(3000));
    }
}
