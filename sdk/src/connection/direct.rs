//! Pipelining depth 1 without a driver task: the caller holding the connection's one slot does the I/O.
//!
//! At depth 1 a connection has one request in flight at a time, so there is nothing for a driver task to
//! multiplex, and handing it each request and each reply (an mpsc, a `oneshot`, two task wake-ups) costs more
//! than the exchange itself. Here the caller encodes into the connection's buffer, writes, and reads its reply
//! on its own task: the system calls of a hand-written `write_all`/`read` loop, one task wake-up per request.
//!
//! What the driver guarantees holds here too:
//! - **A caller that gives up never desynchronises the connection.** If its request went out, the connection is
//!   poisoned ([`CloseReason::Cancelled`]) and keeps the reply owed; when the connection is dropped, a task reads
//!   and drops that reply before closing the socket. A caller that gives up before writing a byte leaves the
//!   connection as it was; one that gives up mid-write leaves a half-sent request, so the socket is closed.
//! - **A blocking command given up on is not drained: its socket is closed at once.** Its reply is not a late
//!   answer but the server acting on it: Redis pops for a `BLPOP` still blocked the first element pushed, and
//!   the drain would throw it away. Closed, the connection is gone from the server's list of blocked clients and
//!   the element stays where it was ([`Protocol::blocks_for`]).
//! - **Stray bytes and the peer's EOF or reset are seen at check-out without a system call.** Reads clear the
//!   socket's readiness, so an idle socket reads as not ready unless something arrived since
//!   ([`DirectIo::poll_idle`]); [`super::Connection::check`] adds a `MSG_PEEK` probe once it has been idle.
//! - **The request timeout is one timer per connection,** moved only when a request's deadline is earlier
//!   than where it is armed (a `tokio::time::timeout` per request inserts into and removes from the timer
//!   wheel under its lock, and even moving the timer per request cost ~140 instructions): armed at an earlier
//!   request's deadline, it fires early and is moved to the waiting request's.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::codec::{Decode, Encode};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use super::{CloseReason, Direct, Slot, DRAIN_LIMIT};
use crate::config::{BufferConfig, MAX_BUFFER_CAPACITY};
use crate::error::{Error, ErrorKind, Phase};
use crate::protocol::Protocol;
use crate::transport::{ReadMark, Stream};

/// A connection's socket, codec and buffers, held by the caller doing an exchange and otherwise by the
/// connection.
pub(super) struct DirectIo<P: Protocol> {
    stream: Stream,
    codec: P::Codec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    read_cap: usize,
    /// The request timeout, moved to each exchange's deadline.
    timer: Pin<Box<Sleep>>,
    /// A reply is owed whose caller gave up after the request went out.
    owed: bool,
    /// The socket's read mark: raised while a large reply's rest is awaited.
    read_mark: ReadMark,
}

/// Where a connection keeps its [`DirectIo`] between exchanges (`None` while one is running, or once closed).
/// Boxed, so that lending it to an exchange moves a pointer and the exchange future stays small.
pub(super) type IoCell<P> = Mutex<Option<Box<DirectIo<P>>>>;

/// Why an exchange produced no reply.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request or the connection failed; the error says in which phase and whether it was sent.
    Failed(Error),
    /// The deadline passed first; `sent` when any byte of the request had been written. `phase` says where
    /// the time went: [`Phase::Write`] (the request was not all written), [`Phase::Read`] (no byte of the
    /// reply yet) or [`Phase::Request`] (the reply was partly read).
    TimedOut { sent: bool, phase: Phase },
}

impl Failure {
    /// As an error: a timeout is named as the request phase's, with no limit to report (the caller that set the
    /// deadline builds its own, see the client).
    pub(crate) fn into_error(self) -> Error {
        match self {
            Failure::Failed(e) => e,
            Failure::TimedOut { sent, phase } => {
                Error::new(ErrorKind::Timeout, phase, "request timed out").with_sent(sent)
            }
        }
    }
}

impl<P: Protocol> DirectIo<P> {
    pub(super) fn new(stream: Stream, protocol: &P, buffers: &BufferConfig) -> Self {
        // Clamped as the driver's (`Connection::from_stream` cannot refuse them).
        let read_cap = buffers.read_capacity.clamp(512, MAX_BUFFER_CAPACITY);
        DirectIo {
            stream,
            codec: protocol.codec_with_max_reply(buffers.max_reply),
            rbuf: BytesMut::with_capacity(read_cap),
            wbuf: BytesMut::with_capacity(buffers.write_capacity.min(MAX_BUFFER_CAPACITY)),
            read_cap,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            owed: false,
            read_mark: ReadMark::default(),
        }
    }

    /// Whether anything arrived on the idle socket, without a system call unless the reactor saw something:
    /// `Some(reason)` for the peer's EOF, a reset or stray bytes.
    pub(super) fn poll_idle(&mut self) -> Option<CloseReason> {
        if self.owed {
            return None;
        }
        self.reserve();
        let read = self.stream.try_read_idle(&mut self.rbuf);
        let arrived = |io: &Self| match io.codec.closes_idle(&io.rbuf) {
            // The server closes the idle connection (an HTTP `408`): closed by the server, not stray.
            true => Some(CloseReason::ServerClose),
            false => Some(CloseReason::StrayBytes),
        };
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && self.rbuf.is_empty() => None,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => arrived(self),
            Ok(0) => Some(CloseReason::PeerClosed),
            Ok(_) => arrived(self),
            Err(_) => Some(CloseReason::Reset),
        }
    }

    /// No reply owed.
    pub(super) fn is_idle(&self) -> bool {
        !self.owed
    }

    /// Room to read into. An empty buffer goes back to the start of its allocation when no reply still shares
    /// it, so that request after request the socket is read into the same few cache lines (replies are split
    /// off the front: otherwise every read lands further along, and 50 connections walk 400 KiB of buffers).
    fn reserve(&mut self) {
        let reclaimed = self.rbuf.is_empty()
            && self.rbuf.capacity() < self.read_cap
            && self.rbuf.try_reclaim(self.read_cap);
        if !reclaimed && self.rbuf.capacity() - self.rbuf.len() < self.read_cap / 2 {
            self.rbuf.reserve(self.read_cap);
        }
    }

    /// Read and drop the reply owed (bounded by [`DRAIN_LIMIT`]), then shut the socket down.
    pub(super) async fn close(mut self) {
        if self.owed {
            let _ = tokio::time::timeout(DRAIN_LIMIT, async {
                loop {
                    match self.codec.decode(&mut self.rbuf) {
                        Ok(None) => {}
                        Ok(Some(_)) | Err(_) => return,
                    }
                    self.reserve();
                    match self.stream.read_buf(&mut self.rbuf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), self.stream.shutdown()).await;
    }

    /// Closes it: at once, or on a task ([`close`](Self::close)) when a reply is owed or TLS wants its
    /// close_notify sent (outside a runtime: at once).
    pub(super) fn close_soon(self) {
        if self.owed || matches!(self.stream, Stream::Tls(_)) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(self.close());
            }
        }
    }
}

/// How far one exchange got, for what happens if it is abandoned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing written: the connection is as it was.
    Ready,
    /// Part of the request written.
    Writing,
    /// The request is out; its reply is owed.
    Sent,
    /// Over: the reply was read, or the connection failed and its I/O was dropped.
    Over,
}

/// One request and its reply on a depth-1 connection whose one slot the caller holds: a named future (not an
/// `async fn`), so a caller's future holds it by value at its exact size and nothing is moved per poll. Built by
/// [`Exchange::start`], which takes the connection's I/O and encodes the request; dropped (finished or
/// abandoned), it gives the I/O back to the connection or closes it, decides what the connection is owed, and
/// then frees the slot.
pub(crate) struct Exchange<P: Protocol> {
    direct: Direct<P>,
    /// Freed after the I/O is back (fields drop after [`Drop::drop`]).
    _slot: Slot,
    io: Option<Box<DirectIo<P>>>,
    /// Failed before any I/O (the connection unusable, the request not encodable).
    early: Option<Failure>,
    stage: Stage,
    written: usize,
    tag: u64,
    /// A blocking command ([`Protocol::blocks_for`]): given up on once sent, the connection is closed rather
    /// than drained.
    blocks: bool,
    /// When the exchange times out (none: never).
    deadline: Option<Instant>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<P: Protocol> Exchange<P> {
    /// Starts one exchange of `request` at `now` on `direct`, whose `slot` the caller took, with `io`, the I/O
    /// the caller took from the connection (none: it was closed). `deadline` bounds the whole exchange (none:
    /// unbounded).
    pub(super) fn start(
        direct: Direct<P>,
        slot: Slot,
        io: Option<Box<DirectIo<P>>>,
        request: P::Request,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Self {
        direct.0.shared.touch(now);
        // Built first: from here on, whatever happens (a protocol's code panicking included), dropping it gives
        // the I/O back.
        let mut x = Exchange {
            io,
            early: None,
            stage: Stage::Ready,
            written: 0,
            tag: 0,
            blocks: false,
            deadline,
            _slot: slot,
            direct,
        };
        let parts = &*x.direct.0;
        x.tag = parts.protocol.request_tag(&request);
        x.blocks = parts.protocol.blocks_for(&request).is_some();
        let shared = &parts.shared;
        match x.io.as_mut() {
            None => {
                let reason = shared.reason().unwrap_or(CloseReason::Local);
                x.early = Some(Failure::Failed(super::unusable(reason)));
            }
            // Marked since it was taken (the pool dropped it, say): not sent.
            Some(_) if shared.reason().is_some() => {
                let reason = shared.reason().unwrap_or(CloseReason::Local);
                x.early = Some(Failure::Failed(super::unusable(reason)));
            }
            Some(io) if io.owed || !io.rbuf.is_empty() => {
                let reason = shared.reason().unwrap_or(CloseReason::StrayBytes);
                x.early = Some(Failure::Failed(super::unusable(reason)));
            }
            Some(io) => {
                io.wbuf.clear();
                if let Err(e) = io.codec.encode(request, &mut io.wbuf) {
                    io.wbuf.clear();
                    x.early = Some(Failure::Failed(super::encode_error(e)));
                } else if let Some(d) = deadline {
                    // Moved only earlier: left at an earlier deadline (the last exchange's), it fires early and
                    // `poll_timer` moves it to this one's. Moving a tokio timer cost ~140 instructions a call.
                    if d < io.timer.deadline() {
                        io.timer.as_mut().reset(d);
                    }
                }
            }
        }
        x
    }

    /// While the request is still being written: a reply already whole in what the socket has for us. A server
    /// may answer before it has read the whole request and stop reading (an HTTP 413 to a large body, then
    /// its close); the writes then stall or fail, and that answer is the caller's, not the write's error. The
    /// request is half written, so the connection ends with it. Bytes before any of the request went out
    /// answer nothing: they are not read here.
    fn early_reply(&mut self, cx: &mut Context<'_>) -> Option<Poll<Result<P::Response, Failure>>> {
        let io = self.io.as_mut().filter(|_| self.written > 0)?;
        let reply = loop {
            io.reserve();
            match std::pin::pin!(io.stream.read_buf(&mut io.rbuf)).poll(cx) {
                // Nothing whole at the close: the write's error says what happened.
                Poll::Ready(Ok(0)) => break io.codec.decode_eof(&mut io.rbuf).ok()??,
                Poll::Ready(Ok(_)) => match io.codec.decode(&mut io.rbuf) {
                    Ok(Some(reply)) => break reply,
                    Ok(None) => {}
                    Err(e) => {
                        return Some(self.fail(CloseReason::Protocol, Error::codec(Phase::Read, e)))
                    }
                },
                Poll::Ready(Err(_)) | Poll::Pending => return None,
            }
        };
        let protocol = &self.direct.0.protocol;
        if let Err(msg) = protocol.check_reply(self.tag, &reply) {
            let e = Error::new(ErrorKind::Protocol, Phase::Read, msg);
            return Some(self.fail(CloseReason::Protocol, e));
        }
        let reason = match protocol.closes_after(&io.codec, &reply) {
            true => CloseReason::ServerClose,
            false => CloseReason::Cancelled,
        };
        self.direct.0.shared.mark(reason);
        self.io = None;
        self.stage = Stage::Over;
        Some(Poll::Ready(Ok(reply)))
    }

    /// The connection failed: mark why, drop its I/O (closing the socket), and return the caller's error.
    fn fail(&mut self, reason: CloseReason, error: Error) -> Poll<Result<P::Response, Failure>> {
        self.direct.0.shared.mark(reason);
        self.io = None;
        self.stage = Stage::Over;
        Poll::Ready(Err(Failure::Failed(error)))
    }
}

impl<P: Protocol> Drop for Exchange<P> {
    fn drop(&mut self) {
        let Some(mut io) = self.io.take() else {
            return;
        };
        let parts = &*self.direct.0;
        match self.stage {
            Stage::Ready | Stage::Over => {}
            // The server may still act on it when what it waits for comes (a push to the list): close now, so
            // that it stops waiting (see the module docs).
            Stage::Sent if self.blocks => {
                parts.shared.mark(CloseReason::Cancelled);
                (*io).close_soon();
                return;
            }
            Stage::Sent => {
                io.owed = true;
                parts.shared.mark(CloseReason::Cancelled);
            }
            Stage::Writing => {
                parts.shared.mark(CloseReason::Cancelled);
                return;
            }
        }
        *lock(&parts.cell) = Some(io);
    }
}

impl<P: Protocol> Future for Exchange<P> {
    type Output = Result<P::Response, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is Unpin (the timer is boxed).
        let this = self.get_mut();
        if let Some(f) = this.early.take() {
            this.stage = Stage::Over;
            return Poll::Ready(Err(f));
        }
        let (deadline, tag) = (this.deadline, this.tag);
        let Some(io) = this.io.as_mut() else {
            return Poll::Ready(Err(Failure::Failed(Error::new(
                ErrorKind::Closed,
                Phase::Read,
                "connection closed",
            ))));
        };
        while this.written < io.wbuf.len() {
            match Pin::new(&mut io.stream).poll_write(cx, &io.wbuf[this.written..]) {
                Poll::Ready(Ok(0)) => {
                    let sent = this.written > 0;
                    let e = Error::new(ErrorKind::Closed, Phase::Write, "socket accepted no bytes");
                    return this.fail(CloseReason::Reset, e.with_sent(sent));
                }
                Poll::Ready(Ok(n)) => {
                    this.written += n;
                    this.stage = Stage::Writing;
                }
                Poll::Ready(Err(e)) => {
                    if let Some(done) = this.early_reply(cx) {
                        return done;
                    }
                    let sent = this.written > 0;
                    return this.fail(
                        CloseReason::Reset,
                        Error::io(Phase::Write, e).with_sent(sent),
                    );
                }
                Poll::Pending => {
                    if let Some(done) = this.early_reply(cx) {
                        return done;
                    }
                    let Some(io) = this.io.as_mut() else {
                        return this.fail(
                            CloseReason::Local,
                            Error::new(ErrorKind::Closed, Phase::Write, "connection closed"),
                        );
                    };
                    return poll_timer(io, cx, deadline, this.written > 0, Phase::Write);
                }
            }
        }
        if this.stage == Stage::Writing {
            match Pin::new(&mut io.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => this.stage = Stage::Sent,
                Poll::Ready(Err(e)) => {
                    return this.fail(CloseReason::Reset, Error::io(Phase::Write, e));
                }
                Poll::Pending => {
                    return poll_timer(io, cx, deadline, this.written > 0, Phase::Write)
                }
            }
        }
        loop {
            match io.codec.decode(&mut io.rbuf) {
                Ok(Some(reply)) => {
                    io.read_mark.fit(io.stream.read_mark_fd(), 0);
                    let parts = &*this.direct.0;
                    if let Err(msg) = parts.protocol.check_reply(tag, &reply) {
                        let e = Error::new(ErrorKind::Protocol, Phase::Read, msg);
                        return this.fail(CloseReason::Protocol, e);
                    }
                    // `closes_after`, as the pipelined core asks: the codec also knows an HTTP/1.0 reply
                    // without keep-alive, which the reply's own `Connection` field does not say.
                    if parts.protocol.closes_after(&io.codec, &reply) {
                        parts.shared.mark(CloseReason::ServerClose);
                    }
                    if !io.rbuf.is_empty() {
                        // More than the one reply owed: the connection is out of step from here on.
                        parts.shared.mark(CloseReason::StrayBytes);
                        this.io = None;
                    }
                    this.stage = Stage::Over;
                    return Poll::Ready(Ok(reply));
                }
                Ok(None) => {
                    let wanted = io.codec.bytes_wanted(io.rbuf.len());
                    io.read_mark.fit(io.stream.read_mark_fd(), wanted);
                }
                // Part of the reply had come (what the codec refused: a malformed reply, one over a size
                // limit): `Request`, as the phase docs define it and as a pipelined connection, a timeout or
                // a close there name it (it was `Read`, at this depth only).
                Err(e) => return this.fail(CloseReason::Protocol, Error::codec(Phase::Request, e)),
            }
            io.reserve();
            match std::pin::pin!(io.stream.read_buf(&mut io.rbuf)).poll(cx) {
                Poll::Ready(Ok(0)) => {
                    // Where the exchange was, as its timeout would say: part of the reply had come, or none.
                    let phase = reading_phase(io);
                    // A reply the close ends (an HTTP body until close) is whole now; a reply cut short is not.
                    if let Ok(Some(reply)) = io.codec.decode_eof(&mut io.rbuf) {
                        let parts = &*this.direct.0;
                        if let Err(msg) = parts.protocol.check_reply(tag, &reply) {
                            let e = Error::new(ErrorKind::Protocol, Phase::Read, msg);
                            return this.fail(CloseReason::Protocol, e);
                        }
                        parts.shared.mark(CloseReason::ServerClose);
                        this.io = None;
                        this.stage = Stage::Over;
                        return Poll::Ready(Ok(reply));
                    }
                    let why = match phase {
                        Phase::Request => super::MID_REPLY,
                        _ => "peer closed the connection before replying",
                    };
                    let e = Error::new(ErrorKind::Closed, phase, why);
                    return this.fail(CloseReason::PeerClosed, e);
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    return this.fail(CloseReason::Reset, Error::io(Phase::Read, e));
                }
                Poll::Pending => {
                    let phase = reading_phase(io);
                    return poll_timer(io, cx, deadline, this.written > 0, phase);
                }
            }
        }
    }
}

/// The I/O is waiting: has the deadline passed? `sent`: whether any byte of the request is out; `phase`:
/// where the exchange is waiting ([`Failure::TimedOut`]).
fn poll_timer<P: Protocol, R>(
    io: &mut DirectIo<P>,
    cx: &mut Context<'_>,
    deadline: Option<Instant>,
    sent: bool,
    phase: Phase,
) -> Poll<Result<R, Failure>> {
    let Some(deadline) = deadline else {
        return Poll::Pending;
    };
    if io.timer.as_mut().poll(cx).is_pending() {
        return Poll::Pending;
    }
    if Instant::now() < deadline {
        // Fired at an earlier exchange's deadline: wait for this one's.
        io.timer.as_mut().reset(deadline);
        if io.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
    }
    Poll::Ready(Err(Failure::TimedOut { sent, phase }))
}

/// The phase of an exchange waiting for its reply: `Read` until a byte of it has arrived, then `Request`.
fn reading_phase<P: Protocol>(io: &DirectIo<P>) -> Phase {
    if io.rbuf.is_empty() && !io.codec.in_progress() {
        Phase::Read
    } else {
        Phase::Request
    }
}
