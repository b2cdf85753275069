//! A connection its caller owns and drives, with many requests in flight: [`Pipelined`].
//!
//! The shape of hyper's `conn::handshake` and redis-rs's multiplexed connection without their task: the caller
//! holds the connection, queues requests with [`Pipelined::send`] (each with a token of its own: an index, a
//! send time, anything) and takes completions from [`Pipelined::next`], which writes everything queued in one
//! write, reads everything readable, and hands back each reply with its request's token. No `oneshot`, channel
//! or task per request, and one clock read per batch of replies. This is what a load generator's closed loop,
//! a proxy or a batch job wants; services that share a connection between many callers use
//! [`Client`](crate::Client).
//!
//! ```text
//!  send(req, token) ──encode into the write buffer──┐
//!  send(req, token) ─────────────────────────────────┤
//!  next().await ──one write()──► socket ──read, decode, match in order, check the tag──► Completion { token, result }
//! ```
//!
//! Its requests in flight live in the SDK's sans-IO pipelined core (`connection/flight.rs`), which the pooled
//! connection's driver task runs on too, so both match, check, expire and fail requests the same way. It keeps
//! the promises of the SDK's other connections:
//!
//! - **Replies are proved.** Replies are matched to requests in order and checked with
//!   [`Protocol::check_reply`] (the framed request id); a reply to another request, an undecodable reply or
//!   bytes nobody asked for fail every request in flight with a protocol error and end the connection.
//! - **Deadlines.** Each request has one: `timeout` after the `now` it was sent with. One timer, armed at the
//!   oldest request's deadline or earlier (it is not moved per request: fired early, it is re-armed). A request
//!   past its deadline completes with a timeout whose phase says where its time went: [`Phase::Read`] when no
//!   byte of its reply had arrived, [`Phase::Request`] when part had. The connection then takes no new request
//!   ([`is_open`](Pipelined::is_open) is false): its late reply is still read and dropped, so the replies of the
//!   requests behind it still match. A caller that keeps loading a slow but live server (an open-loop load
//!   generator) keeps the connection instead ([`keep_open_after_timeout`](Pipelined::keep_open_after_timeout)):
//!   a timed-out request keeps its place until its late reply arrives, and [`pending`](Pipelined::pending)
//!   counts it.
//! - **Replies are bounded** as a [`Client`](crate::Client)'s are: each by its codec's limits (1 GiB as a
//!   whole for the built-in protocols), or by a client config's
//!   [`BufferConfig::max_reply`](crate::BufferConfig::max_reply) given to
//!   [`set_max_reply`](Pipelined::set_max_reply); one over it fails with [`Error::limit`] `Some(Limit::Reply)`.
//! - **Errors name their phase** with the SDK's [`Error`]: [`Phase::Write`] when the request was not all
//!   written, [`Phase::Read`] when it was and no byte of its reply arrived, [`Phase::Request`] when part did;
//!   [`Error::was_sent`] says whether any byte of it went out.
//! - **Memory follows the traffic.** The read buffer starts at 512 bytes, doubles while reads fill it (up to 64
//!   KiB) and halves back while they use a quarter of it or less; an empty read buffer well above that size is
//!   let go. The write buffer holds what was queued since the last write, and an empty one much larger than its
//!   last batch is let go too. A connection carrying small messages keeps well under 1 KiB of buffers.
//! - **Large replies wake it seldom** (as they do the pooled connections). While the reply being read still
//!   needs 64 KiB or more (the rest of an HTTP body of known length, of a RESP bulk string dropped as it arrives:
//!   [`Decode::bytes_wanted`]), a plain TCP socket is asked to report itself readable only once that rest, at
//!   most 256 KiB, has arrived (`SO_RCVLOWAT`, Linux); back to every byte once the reply is whole. Against a
//!   one-worker nginx serving a 20 MB file to 50 connections this took the client's wake-ups from ~26,000 to
//!   ~4,000 a second, and the server, which paid for each (its CPU wakes the client), served the downloads
//!   ~20% faster (docs/PERFORMANCE.md, stop 43).
//!
//! [`Decode::bytes_wanted`]: crate::codec::Decode::bytes_wanted

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::codec::{Encode, Limit};
use crate::connection::flight::{Broken, Flight};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::time::{Instant, Sleep};

use crate::error::{Error, ErrorKind, Phase};
use crate::protocol::Protocol;
use crate::transport::{Connector, Endpoint, ReadMark, Stream};

/// The first read buffer of a connection (a few small replies: a RESP `+PONG`, an HTTP `200` with a short body); it
/// doubles while reads fill it, up to [`MAX_READ_CHUNK`], and halves back while reads use a quarter of it or less.
const FIRST_READ_CHUNK: usize = 512;
/// The most a connection reserves for one read.
const MAX_READ_CHUNK: usize = 64 * 1024;
/// An empty write buffer larger than this is let go when the batch just written used under a quarter of it (a
/// large request went out and small ones follow); the next request allocates what it needs.
const KEEP_WRITE_BUFFER: usize = 8 * 1024;

/// A request that finished: its token and its reply or error.
#[derive(Debug)]
#[non_exhaustive]
pub struct Completion<T, R> {
    /// The token the request was sent with.
    pub token: T,
    /// Its reply, or why there is none.
    pub result: Result<R, Error>,
    /// When it finished: the time of the read that brought its reply (shared by the replies of one read), or
    /// of the timer or failure that ended it.
    pub at: Instant,
}

/// A connection driven by its owner, with any number of requests in flight. See the [module docs](self).
pub struct Pipelined<P: Protocol, T> {
    /// Checks replies.
    protocol: P,
    /// The requests in flight, oldest first (replies come back in this order), and the codec: the SDK's
    /// sans-IO pipelined core, which the pooled connection's driver runs on too.
    flight: Flight<P, T>,
    /// The socket (TCP, TLS or Unix).
    stream: Stream,
    /// Bytes read and not yet decoded.
    rbuf: BytesMut,
    /// Requests encoded and not yet written.
    wbuf: BytesMut,
    /// Completions ready for [`next`](Self::next).
    ready: VecDeque<Completion<T, P::Response>>,
    /// Armed at the oldest live request's deadline.
    timer: Pin<Box<Sleep>>,
    /// How long a request may wait for its reply.
    timeout: Duration,
    /// Bytes were written since the last flush (TLS holds records until flushed).
    unflushed: bool,
    /// How much the next read reserves when the buffer is full.
    read_chunk: usize,
    /// `written` when the write buffer was last empty: the size of the batch being written is measured from it.
    batch_from: u64,
    /// The most the write buffer has held since it was allocated: its allocation is at least this large.
    wbuf_high: usize,
    /// Why the connection takes no new requests, if it does not.
    closed: Option<Closed>,
    /// A write failed and the bytes that had arrived are being delivered first: reported next.
    write_failed: Option<Error>,
    /// A timeout closes the connection to new requests (the default).
    close_after_timeout: bool,
    /// The socket's read mark: raised while a large reply's rest is awaited.
    read_mark: ReadMark,
}

/// Why a connection takes no new requests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Closed {
    /// A request timed out: replies still in flight are read, then the connection is done.
    TimedOut,
    /// The server said it closes after a reply (HTTP `Connection: close`).
    ByServer,
    /// The server closed the connection while nothing was in flight (its EOF, or an HTTP `408`,
    /// [`Decode::closes_idle`](crate::codec::Decode::closes_idle)), as a server does at its idle timeout.
    WhileIdle,
    /// The connection failed, as this says; every request on it has completed with the error.
    Failed(Box<str>),
    /// The server sent this many bytes with no request in flight, as the message says (with the first of
    /// them): they answer nobody, so the replies on this connection can no longer be matched to requests. No
    /// request failed with it.
    Stray(usize, Box<str>),
}

impl<P: Protocol, T> std::fmt::Debug for Pipelined<P, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipelined")
            .field("protocol", &self.protocol.name())
            .field("in_flight", &self.flight.len())
            .field("live", &self.flight.live())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol, T> Pipelined<P, T> {
    /// Opens a connection to `endpoint` with `connector` (its socket options, TLS and connect timeout) for
    /// `protocol`; each request sent on it may wait `timeout` for its reply.
    pub async fn connect(
        connector: &Connector,
        endpoint: &Endpoint,
        protocol: P,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let stream = connector.connect(endpoint, None).await?;
        Ok(Self::new(stream, protocol, timeout))
    }

    /// A pipelined connection over a stream opened elsewhere.
    pub fn new(stream: Stream, protocol: P, timeout: Duration) -> Self {
        Pipelined {
            // Room for one request each: what a connection at depth 1 ever needs (an empty `VecDeque` grows to
            // four on its first push); deeper ones grow with their depth.
            flight: Flight::new(protocol.codec(), 1),
            protocol,
            stream,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            ready: VecDeque::with_capacity(1),
            timer: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            unflushed: false,
            read_chunk: FIRST_READ_CHUNK,
            batch_from: 0,
            wbuf_high: 0,
            closed: None,
            write_failed: None,
            close_after_timeout: true,
            read_mark: ReadMark::default(),
        }
    }

    /// Refuses a reply over `max_reply` bytes as a whole, as a [`Client`](crate::Client)'s connections do with
    /// its [`BufferConfig::max_reply`](crate::BufferConfig::max_reply) (pass that, to drive a connection with
    /// the settings of a client's config): the request fails with [`ErrorKind::Protocol`] and
    /// [`Error::limit`] [`Limit::Reply`], refused from the size the server announces, before those bytes
    /// arrive, and the connection ends. The protocol's own limits still apply (the smaller wins). From 1 to
    /// [`MAX_REPLY_LIMIT`](crate::config::MAX_REPLY_LIMIT); set before the first request (the codec is made
    /// anew). Default: the protocol's codec's own limits (the built-in protocols bound a reply by 1 GiB,
    /// [`DEFAULT_MAX_REPLY`](crate::codec::DEFAULT_MAX_REPLY), as a client's default; a
    /// [`Resp`](crate::protocol::Resp) with a larger `limits.max_reply` keeps it).
    pub fn set_max_reply(&mut self, max_reply: usize) -> Result<(), Error> {
        crate::BufferConfig::default()
            .with_max_reply(max_reply)
            .check()?;
        if !self.flight.is_empty() || !self.ready.is_empty() || !self.rbuf.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                Phase::Write,
                "the reply limit is set before the first request is sent",
            )
            .with_sent(false));
        }
        self.flight = Flight::new(self.protocol.codec_with_max_reply(max_reply), 1);
        Ok(())
    }

    /// After a timeout the connection keeps taking new requests: the timed-out request keeps its place on the
    /// wire, its late reply is read and dropped when it comes, and [`next`](Self::next) waits for late replies
    /// too (so a caller bounds that wait, e.g. by giving the connection up when every place it allows is taken
    /// by timed-out requests for too long). For a caller that keeps loading a slow but live server; the default
    /// takes no new request after a timeout.
    pub fn keep_open_after_timeout(&mut self) {
        self.close_after_timeout = false;
    }

    /// True while the connection takes new requests: not failed, no request timed out, and the server did not
    /// say it closes.
    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }

    /// Requests sent whose completion has not been taken from [`next`](Self::next) yet.
    pub fn in_flight(&self) -> usize {
        self.flight.live() + self.ready.len()
    }

    /// Requests whose place on the connection is taken: those of [`in_flight`](Self::in_flight), plus the
    /// timed-out ones whose late reply has not arrived yet (only after
    /// [`keep_open_after_timeout`](Self::keep_open_after_timeout); otherwise they are not waited for).
    pub fn pending(&self) -> usize {
        if self.close_after_timeout {
            return self.in_flight();
        }
        self.flight.len() + self.ready.len()
    }

    /// True when the server announced that it closes the connection (HTTP `Connection: close`): the
    /// connection takes no new requests but did not fail; open a new one. Requests already pipelined behind
    /// the announcing reply fail as [`ErrorKind::Closed`] when the close comes, and this stays true.
    pub fn closed_by_server(&self) -> bool {
        matches!(self.closed, Some(Closed::ByServer | Closed::WhileIdle))
    }

    /// Why the connection takes no new requests, in words (`None` while it does): a timeout, the server's
    /// announced close, or what failed it (the error every request in flight got, or bytes that came with no
    /// request in flight).
    pub fn close_reason(&self) -> Option<String> {
        Some(match self.closed.as_ref()? {
            Closed::TimedOut => "a request timed out (no new request after a timeout)".to_string(),
            Closed::ByServer => {
                "the server announced it closes (HTTP `Connection: close`)".to_string()
            }
            Closed::WhileIdle => "the server closed the idle connection".to_string(),
            Closed::Failed(why) => why.to_string(),
            Closed::Stray(_, why) => why.to_string(),
        })
    }

    /// How many bytes the server sent with no request in flight, when that is what ended the connection
    /// (`None` otherwise). Such bytes answer nobody: a server that sends them breaks the protocol, and the
    /// replies it gave before on this connection may have answered other requests than they seemed to (RESP
    /// and the line protocol carry no tag). No request fails with them, so a caller that judges a server
    /// counts them here.
    pub fn stray_bytes(&self) -> Option<usize> {
        match self.closed {
            Some(Closed::Stray(n, _)) => Some(n),
            _ => None,
        }
    }

    /// Queues `request` (encoded now, written by the next [`next`](Self::next)); it times out `timeout` after
    /// `now` (the time its timeout counts from: the present, or an earlier time the request was due, as an
    /// open-loop load generator's intended send time; never earlier than the previous request's). A connection
    /// that takes no new requests, a request the codec cannot encode, or one not answered by one reply
    /// ([`Protocol::breaks_request_reply`]), gives the token back with the error (the request was not sent).
    pub fn send(&mut self, request: P::Request, token: T, now: Instant) -> Result<(), (T, Error)> {
        if let Some(command) = self.protocol.breaks_request_reply(&request) {
            return Err((token, crate::exclusive::not_request_reply(command)));
        }
        let tag = self.protocol.request_tag(&request);
        self.queue(tag, request, token, now)
    }

    /// [`send`](Self::send) of a request the caller keeps: it is encoded from the reference, neither cloned nor
    /// dropped. A caller that sends the same request again and again (a health check, a load generator's fixed
    /// command) builds it once, as redis-rs runs a `Cmd` by reference.
    pub fn send_ref(
        &mut self,
        request: &P::Request,
        token: T,
        now: Instant,
    ) -> Result<(), (T, Error)>
    where
        for<'r> P::Codec: Encode<&'r P::Request>,
    {
        if let Some(command) = self.protocol.breaks_request_reply(request) {
            return Err((token, crate::exclusive::not_request_reply(command)));
        }
        let tag = self.protocol.request_tag(request);
        self.queue(tag, request, token, now)
    }

    /// Encodes `request` (tagged `tag`) behind what is queued, with its deadline `timeout` after `now`.
    fn queue<R>(&mut self, tag: u64, request: R, token: T, now: Instant) -> Result<(), (T, Error)>
    where
        P::Codec: Encode<R>,
    {
        if let Some(why) = &self.closed {
            let err = Error::new(
                ErrorKind::Closed,
                Phase::Write,
                match why {
                    Closed::TimedOut => "the connection takes no new request after a timeout",
                    Closed::ByServer => "the server announced it closes the connection",
                    Closed::WhileIdle => "the server closed the idle connection",
                    Closed::Failed(_) | Closed::Stray(..) => "the connection failed",
                },
            )
            .with_sent(false);
            return Err((token, err));
        }
        let deadline = now + self.timeout;
        let pushed = self
            .flight
            .push(tag, request, Some(deadline), token, (), &mut self.wbuf);
        if let Err((token, e)) = pushed {
            return Err((token, Error::codec(Phase::Write, e).with_sent(false)));
        }
        // The timer is moved only earlier: left at an earlier deadline (an answered request's), it fires early
        // and `expire` re-arms it at the oldest waiting one's. Resetting a tokio timer per request cost ~140
        // instructions, a tenth of the connection's own work at depth 1. Checked whatever is in flight, so a
        // caller whose `now` goes back still gets its request's own deadline.
        if deadline < self.timer.deadline() {
            self.timer.as_mut().reset(deadline);
        }
        self.wbuf_high = self.wbuf_high.max(self.wbuf.len());
        Ok(())
    }

    /// With no request in flight: looks, without waiting, whether the server closed the connection while it
    /// was idle or sent something on it (no system call unless the reactor saw the socket readable). A caller
    /// that leaves a connection idle between requests (an open loop slower than the server's idle timeout) asks
    /// before it sends on it again, so that no request goes out on a connection the server has already closed
    /// (it would fail as closed, though the server did nothing wrong). The server's close (its EOF, or an HTTP
    /// `408`: [`Decode::closes_idle`](crate::codec::Decode::closes_idle)) ends the connection as
    /// [`closed_by_server`](Self::closed_by_server); other bytes end it as
    /// [`stray_bytes`](Self::stray_bytes), an error as failed. Returns [`is_open`](Self::is_open).
    pub fn check_idle(&mut self) -> bool {
        if self.closed.is_some() || !self.flight.is_empty() {
            return self.is_open();
        }
        if self.rbuf.capacity() == self.rbuf.len() {
            self.rbuf.reserve(self.read_chunk);
        }
        match self.stream.try_read_idle(&mut self.rbuf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok(0) => self.closed = Some(Closed::WhileIdle),
            // Nothing in flight: the server's notice that it closes, or stray bytes.
            Ok(_) => self.deliver(Instant::now(), false),
            Err(e) => {
                let why = format!("the idle connection failed: {e}");
                self.closed = Some(Closed::Failed(why.into()));
            }
        }
        self.is_open()
    }

    /// A request already completed, without any I/O (`None` when none is): after [`next`](Self::next) returned,
    /// the other replies its read brought are here, so a caller can handle them all before it sends again and
    /// goes back to waiting.
    pub fn try_next(&mut self) -> Option<Completion<T, P::Response>> {
        self.ready.pop_front()
    }

    /// The next completed request: writes what was queued, reads and matches replies, fires deadlines.
    /// `None` when no request is waiting any more (late replies of timed-out requests are not waited for,
    /// unless [`keep_open_after_timeout`](Self::keep_open_after_timeout)). Cancel-safe: dropped before it
    /// returns, it loses nothing (what it read stays buffered, its completions stay queued).
    pub async fn next(&mut self) -> Option<Completion<T, P::Response>> {
        loop {
            if let Some(c) = self.ready.pop_front() {
                return Some(c);
            }
            if self.flight.live() == 0 && (self.close_after_timeout || self.flight.is_empty()) {
                return None;
            }
            if self.rbuf.capacity() - self.rbuf.len() < self.read_chunk / 2 {
                self.rbuf.reserve(self.read_chunk);
            }
            let room = self.rbuf.capacity() - self.rbuf.len();
            let event = poll_fn(|cx| self.poll_io(cx)).await;
            let now = Instant::now();
            match event {
                Event::Read(0) => {
                    // A reply the close ends (an HTTP body until close) is whole now; the rest fail.
                    self.deliver(now, true);
                    // What it did send before closing, when that is not a whole reply, says most about why
                    // (another protocol's error, a banner): shown, as the HTTP codec shows a bad start.
                    let message = if self.rbuf.is_empty() {
                        "the server closed the connection".to_string()
                    } else {
                        closed_after(&self.rbuf)
                    };
                    self.fail_all(now, ErrorKind::Closed, &message)
                }
                Event::Read(n) => {
                    self.fit_read_chunk(n, room);
                    self.deliver(now, false);
                    let wanted = self.flight.bytes_wanted(self.rbuf.len());
                    self.read_mark.fit(self.stream.read_mark_fd(), wanted);
                    // A peer that never lets the socket run dry (an endless reply) keeps every poll a read:
                    // the timer, polled only when no read is ready, would never fire. The clock of this
                    // event says whether the deadline passed.
                    if self.flight.live() > 0 && self.timer.deadline() <= now {
                        self.expire(now);
                    }
                    // Replies split off the buffer keep their own part of it alive; an empty buffer far above
                    // what reads now take goes, and the next read reserves `read_chunk` afresh.
                    if self.rbuf.is_empty() && self.rbuf.capacity() > 2 * self.read_chunk {
                        self.rbuf = BytesMut::new();
                    }
                }
                Event::Failed(e) => {
                    // Each request fails in its own phase; the message says what failed, without repeating a
                    // kind and phase ("connection reset during read: connection reset during write: …").
                    let message = match e.phase() {
                        Phase::Write => format!("a write to the socket failed: {}", e.message()),
                        _ => e.message().to_string(),
                    };
                    self.fail_all(now, e.kind(), &message);
                }
                Event::Timer => self.expire(now),
            }
        }
    }

    /// A read of `n` bytes into `room` free bytes: the next read reserves twice as much when this one filled
    /// the room, half as much when it took a quarter of the chunk or less.
    fn fit_read_chunk(&mut self, n: usize, room: usize) {
        if n >= room && self.read_chunk < MAX_READ_CHUNK {
            self.read_chunk *= 2;
        } else if n <= self.read_chunk / 4 && self.read_chunk > FIRST_READ_CHUNK {
            self.read_chunk /= 2;
        }
    }

    /// The write buffer was just emptied: let a large one go when the batch it carried used under a quarter of
    /// it (see [`KEEP_WRITE_BUFFER`]).
    fn written_out(&mut self) {
        let batch = self.flight.written() - self.batch_from;
        self.batch_from = self.flight.written();
        if self.wbuf_high > KEEP_WRITE_BUFFER && batch < (self.wbuf_high / 4) as u64 {
            self.wbuf = BytesMut::new();
            self.wbuf_high = 0;
        }
    }

    /// Writes what it can (flushing once all is written), then reads, then checks the timer. Both directions
    /// are polled together, so a server that stops reading until its replies are read never deadlocks us.
    ///
    /// A failed write is reported only once nothing more can be read: a server that answers a request with an
    /// error and closes (a framed `TooLarge`, an HTTP 413) fails the rest of the batch's write, and its answer
    /// is still delivered to its request first.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if let Some(failed) = self.poll_write(cx) {
            return match pin!(self.stream.read_buf(&mut self.rbuf)).poll(cx) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    self.write_failed = Some(failed);
                    Poll::Ready(Event::Read(n))
                }
                _ => Poll::Ready(Event::Failed(failed)),
            };
        }
        // `read_buf` is cancel-safe: a fresh future per poll calls `poll_read` once.
        match pin!(self.stream.read_buf(&mut self.rbuf)).poll(cx) {
            Poll::Ready(Ok(n)) => return Poll::Ready(Event::Read(n)),
            Poll::Ready(Err(e)) => return Poll::Ready(Event::Failed(Error::io(Phase::Read, e))),
            Poll::Pending => {}
        }
        // Only late replies awaited: the timer is not armed.
        if self.flight.live() == 0 {
            return Poll::Pending;
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Event::Timer),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Writes what it can, flushing once all is written; the error if the socket failed (now or earlier).
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Option<Error> {
        if let Some(failed) = self.write_failed.take() {
            return Some(failed);
        }
        while !self.wbuf.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.wbuf) {
                Poll::Ready(Ok(0)) => {
                    return Some(Error::new(
                        ErrorKind::Closed,
                        Phase::Write,
                        "the socket takes no more bytes",
                    ))
                }
                Poll::Ready(Ok(n)) => {
                    self.wbuf.advance(n);
                    self.flight.wrote(n);
                    self.unflushed = true;
                    if self.wbuf.is_empty() {
                        self.written_out();
                    }
                }
                Poll::Ready(Err(e)) => return Some(Error::io(Phase::Write, e)),
                Poll::Pending => break,
            }
        }
        if self.wbuf.is_empty() && self.unflushed {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Some(Error::io(Phase::Write, e)),
                Poll::Pending => {}
            }
        }
        None
    }

    /// Decodes every complete reply and completes the oldest request with each; an undecodable reply, a
    /// reply to another request or bytes nobody asked for fail the connection. `eof`: the peer closed, so a
    /// reply the close ends is whole ([`Flight::deliver_eof`]).
    fn deliver(&mut self, now: Instant, eof: bool) {
        let (ready, closed) = (&mut self.ready, &mut self.closed);
        let closing = || {
            closed.get_or_insert(Closed::ByServer);
        };
        let done = |token, reply| {
            ready.push_back(Completion {
                token,
                result: Ok(reply),
                at: now,
            })
        };
        let (protocol, rbuf) = (&self.protocol, &mut self.rbuf);
        let delivered = match eof {
            false => self.flight.deliver(protocol, rbuf, closing, done),
            true => self.flight.deliver_eof(protocol, rbuf, closing, done),
        };
        match delivered {
            Ok(()) => {}
            Err(Broken::Undecodable(e)) => {
                // A reply over a size limit says which ([`Error::limit`]): over the reply limit, it is no
                // mismatch, and the limit can be raised.
                let limit = match e {
                    crate::codec::CodecError::TooLarge { what, .. } => Some(what),
                    _ => None,
                };
                let message = match limit {
                    Some(_) => e.to_string(),
                    None => format!("undecodable reply: {e}"),
                };
                self.fail_all_over(now, ErrorKind::Protocol, &message, limit)
            }
            Err(Broken::Mismatch(why)) => self.fail_all(
                now,
                ErrorKind::Protocol,
                &format!("reply to another request: {why}"),
            ),
            // Nothing in flight, and the server says it closes the idle connection (an HTTP `408`): the
            // connection ends as closed by the server, which fails nothing.
            Err(Broken::IdleClosed) => {
                self.closed.get_or_insert(Closed::WhileIdle);
            }
            // Nothing in flight: these bytes answer nobody.
            Err(Broken::Stray(n)) => {
                let why = format!(
                    "the server sent {n} byte(s) with no request in flight: {}",
                    shown(&self.rbuf)
                );
                self.closed = Some(Closed::Stray(n, why.into()));
            }
        }
    }

    /// Completes every request whose deadline has passed with a timeout, and re-arms the timer.
    fn expire(&mut self, now: Instant) {
        let (ready, timeout) = (&mut self.ready, self.timeout);
        let mut timed_out = false;
        let partial = self.flight.mid_reply(!self.rbuf.is_empty());
        let next = self.flight.expire(now, partial, |token, at| {
            timed_out = true;
            let what = match at.phase {
                Phase::Write => "request",
                _ => "reply",
            };
            ready.push_back(Completion {
                token,
                result: Err(Error::timeout(at.phase, timeout, what).with_sent(at.sent)),
                at: now,
            });
        });
        if timed_out && self.close_after_timeout {
            self.closed.get_or_insert(Closed::TimedOut);
        }
        if let Some(next) = next {
            self.timer.as_mut().reset(next);
        }
    }

    /// Completes every waiting request with an error of `kind` and ends the connection.
    fn fail_all(&mut self, now: Instant, kind: ErrorKind, message: &str) {
        self.fail_all_over(now, kind, message, None);
    }

    /// [`fail_all`](Self::fail_all), each error naming the size `limit` the reply went over, if it did.
    fn fail_all_over(
        &mut self,
        now: Instant,
        kind: ErrorKind,
        message: &str,
        limit: Option<Limit>,
    ) {
        // The server said it closes, and it did: requests pipelined behind that reply are not answered (they
        // fail, as closed), but the connection ended as announced, and a new one can be opened at once.
        let announced = self.closed == Some(Closed::ByServer)
            && matches!(kind, ErrorKind::Closed | ErrorKind::Reset);
        let message = if announced {
            "the server closed the connection, as its reply before announced (HTTP `Connection: close`), \
             without answering this request"
        } else {
            message
        };
        let ready = &mut self.ready;
        // Built once: each request gets a copy in its own phase.
        let base = Error::new(kind, Phase::Read, message).with_limit(limit);
        self.flight.fail_all(!self.rbuf.is_empty(), |token, at| {
            let e = match at.behind_close {
                true => Error::new(ErrorKind::Closed, at.phase, message).with_server_close(),
                false => crate::connection::failed_with(&base, at, at.phase),
            };
            ready.push_back(Completion {
                token,
                result: Err(e),
                at: now,
            });
        });
        if !announced {
            self.closed = Some(Closed::Failed(message.into()));
        }
    }
}

/// Bytes of a partial reply (or of bytes nobody asked for) shown in the error of a connection they ended, at
/// most.
const CLOSED_AFTER_SHOWN: usize = 32;

/// The message of a close that came after `partial`, bytes that are not a whole reply: how many, and the first
/// of them ([`shown`]), so that a server speaking another protocol shows what it said.
fn closed_after(partial: &[u8]) -> String {
    format!(
        "the server closed the connection after {} byte{} that are not a whole reply: {}",
        partial.len(),
        if partial.len() == 1 { "" } else { "s" },
        shown(partial)
    )
}

/// The first [`CLOSED_AFTER_SHOWN`] of `bytes`, quoted and escaped (`\x00`, `\r`), `…` after them when
/// there were more.
fn shown(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(CLOSED_AFTER_SHOWN)];
    let more = if bytes.len() > head.len() { "…" } else { "" };
    format!("\"{}{more}\"", head.escape_ascii())
}

/// What woke [`Pipelined::next`].
enum Event {
    /// Bytes read (0: the peer closed).
    Read(usize),
    /// The socket failed.
    Failed(Error),
    /// The oldest live request's deadline (or an earlier one) passed.
    Timer,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::framed::{Request, Response, ServerCodec};
    use crate::protocol::Framed;
    use bytes::Bytes;
    use futures::{SinkExt, StreamExt};
    use tokio::net::UnixStream;

    impl<P: Protocol, T> Pipelined<P, T> {
        /// Free bytes the read buffer holds for the next read, plus the most the write buffer held since it
        /// was allocated: what the connection keeps besides the replies it handed out.
        fn buffers_kept(&self) -> usize {
            (self.rbuf.capacity() - self.rbuf.len()) + self.wbuf_high.max(self.wbuf.capacity())
        }
    }

    /// A connection to an in-process framed echo server over a Unix socket pair.
    fn pair() -> Pipelined<Framed, usize> {
        let (a, b) = UnixStream::pair().unwrap();
        tokio::spawn(async move {
            let mut server = tokio_util::codec::Framed::new(
                b,
                crate::codec::TokioUtilCodec::new(ServerCodec::default()),
            );
            while let Some(Ok(req)) = server.next().await {
                if server
                    .send(Response::ok(req.id, req.payload))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Pipelined::new(Stream::Unix(a), Framed::default(), Duration::from_secs(10))
    }

    /// Echoes `count` requests of `size` bytes, `depth` in flight, and returns the buffers kept after them.
    async fn echo(conn: &mut Pipelined<Framed, usize>, count: usize, size: usize) -> usize {
        let payload = Bytes::from(vec![7u8; size]);
        let (mut sent, mut done) = (0, 0);
        while done < count {
            while sent < count && conn.in_flight() < 4 {
                let id = sent as u64;
                conn.send(Request::echo(id, payload.clone()), sent, Instant::now())
                    .unwrap();
                sent += 1;
            }
            let c = conn.next().await.expect("a completion");
            assert_eq!(c.result.unwrap().payload.len(), size);
            done += 1;
        }
        conn.buffers_kept()
    }

    /// Polls `conn.next()` without waiting until `done` holds of the connection (at most 10,000 polls: the bytes it
    /// waits for are already on their way from the same runtime).
    async fn drive_until<P: Protocol, T>(
        conn: &mut Pipelined<P, T>,
        done: impl Fn(&Pipelined<P, T>) -> bool,
    ) {
        for _ in 0..10_000 {
            if done(conn) {
                return;
            }
            assert!(
                futures::poll!(std::pin::pin!(conn.next())).is_pending(),
                "a reply came early"
            );
            tokio::task::yield_now().await;
        }
        panic!("the connection never got there");
    }

    /// A large HTTP body is awaited with the socket's read mark at its rest (at most `MAX_READ_MARK`), at the
    /// exact remainder near its end, and back at 1 once it is whole, so a small reply after it is not held back
    /// (it would wait for the timeout, 60 s, if the mark stayed up).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_large_body_raises_the_read_mark_to_its_rest_and_a_small_reply_after_it_is_not_held()
    {
        use crate::codec::http;
        use crate::protocol::Http;
        use crate::transport::MAX_READ_MARK;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (send, mut to_send) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            while let Some(bytes) = to_send.recv().await {
                s.write_all(&bytes).await.unwrap();
            }
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut conn: Pipelined<Http, u32> =
            Pipelined::new(Stream::Tcp(tcp), Http::default(), Duration::from_secs(60));
        let mark = |conn: &Pipelined<Http, u32>| match &conn.stream {
            Stream::Tcp(s) => crate::transport::lowat::get(s).unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(mark(&conn), 1);
        for token in 1..=2 {
            conn.send(http::Request::get("/big"), token, Instant::now())
                .unwrap();
        }
        let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec();
        head.extend_from_slice(&[b'x'; 100_000]);
        send.send(head).unwrap();
        drive_until(&mut conn, |c| c.read_mark.get() == MAX_READ_MARK).await;
        assert_eq!(mark(&conn), MAX_READ_MARK);
        // 50,000 bytes to go: under the threshold, the mark follows the rest down rather than dropping to 1.
        send.send(vec![b'x'; 850_000]).unwrap();
        drive_until(&mut conn, |c| c.read_mark.get() == 50_000).await;
        assert_eq!(mark(&conn), 50_000);
        send.send(vec![b'x'; 50_000]).unwrap();
        let c = conn.next().await.expect("a completion");
        assert_eq!((c.token, c.result.unwrap().body.len()), (1, 1_000_000));
        assert_eq!((conn.read_mark.get(), mark(&conn)), (1, 1));
        send.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())
            .unwrap();
        let c = conn.next().await.expect("a completion");
        assert_eq!((c.token, &c.result.unwrap().body[..]), (2, &b"ok"[..]));
    }

    /// `stream` against a server killed mid-run printed "connection reset during read: connection reset during
    /// write: Broken pipe": the write's error, kind and phase included, became the message of each request's.
    #[tokio::test]
    async fn a_failed_write_is_named_once_in_each_request_error() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let mut conn: Pipelined<Framed, usize> =
            Pipelined::new(Stream::Unix(a), Framed::default(), Duration::from_secs(10));
        conn.send(
            Request::echo(1, Bytes::from_static(b"x")),
            1,
            Instant::now(),
        )
        .unwrap();
        let e = conn.next().await.expect("a completion").result.unwrap_err();
        let text = e.to_string();
        assert_eq!(text.matches("during").count(), 1, "{text}");
        assert!(text.contains("a write to the socket failed"), "{text}");
    }

    /// `sockpool-loadgen run -p echo` against a framed listener failed every request as `closed`, and the
    /// 13-byte TOO_LARGE frame the server sent before closing was nowhere: the error shows what came.
    #[tokio::test]
    async fn a_close_after_part_of_a_reply_shows_the_bytes_that_came() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for (sent, shown) in [
            (&b"\x00\x00\x00\t\x02"[..], "after 5 bytes that are not a whole reply: \"\\x00\\x00\\x00\\t\\x02\""),
            // A frame of 256 bytes, cut after 36.
            (&b"\x00\x00\x01\x00xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"[..], "after 40 bytes that are not a whole reply: \"\\x00\\x00\\x01\\x00xxxxxxxxxxxxxxxxxxxxxxxxxxxx…\""),
            (&b""[..], "the server closed the connection"),
        ] {
            let (a, mut b) = UnixStream::pair().unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                let _ = b.read(&mut buf).await;
                let _ = b.write_all(sent).await;
            });
            let mut conn: Pipelined<Framed, usize> =
                Pipelined::new(Stream::Unix(a), Framed::default(), Duration::from_secs(10));
            conn.send(Request::echo(1, Bytes::from_static(b"x")), 1, Instant::now())
                .unwrap();
            let e = conn.next().await.expect("a completion").result.unwrap_err();
            assert!(e.is_closed(), "{e}");
            let text = e.to_string();
            assert!(text.contains(shown), "{text}");
        }
    }

    #[tokio::test]
    async fn buffers_start_small_grow_with_large_replies_and_shrink_back() {
        let mut conn = pair();
        let small = echo(&mut conn, 100, 16).await;
        assert!(
            small <= 1024,
            "small messages keep {small} bytes of buffers"
        );
        let large = echo(&mut conn, 20, 256 * 1024).await;
        assert!(
            large >= 64 * 1024,
            "large messages: {large} bytes of buffers"
        );
        let back = echo(&mut conn, 100, 16).await;
        assert!(back <= 2048, "back to small messages: {back} bytes kept");
    }
}
