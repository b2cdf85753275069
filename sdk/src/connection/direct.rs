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
//! - **Stray bytes and the peer's EOF or reset are seen at check-out without a system call.** Reads clear the
//!   socket's readiness, so an idle socket reads as not ready unless something arrived since
//!   ([`DirectIo::poll_idle`]); [`super::Connection::check`] adds a `MSG_PEEK` probe once it has been idle.
//! - **The request timeout is one timer per connection,** moved to each request's deadline: moving a timer
//!   later is an atomic update of its entry, where a `tokio::time::timeout` per request inserts into and
//!   removes from the timer wheel under its lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::{Decoder, Encoder};

use super::{CloseReason, Shared};
use crate::config::BufferConfig;
use crate::error::{Error, ErrorKind, Phase};
use crate::protocol::Protocol;
use crate::transport::Stream;

/// How long a closing connection waits for a reply whose caller gave up.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

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
}

/// Where a connection keeps its [`DirectIo`] between exchanges (`None` while one is running, or once closed).
/// Boxed, so that lending it to an exchange moves a pointer and the exchange future stays small.
pub(super) type IoCell<P> = Arc<Mutex<Option<Box<DirectIo<P>>>>>;

/// Why an exchange produced no reply.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request or the connection failed; the error says in which phase and whether it was sent.
    Failed(Error),
    /// The deadline passed first; `sent` when any byte of the request had been written.
    TimedOut { sent: bool },
}

impl Failure {
    /// As an error: a timeout is named as the request phase's, with no limit to report (the caller that set the
    /// deadline builds its own, see the client).
    pub(crate) fn into_error(self) -> Error {
        match self {
            Failure::Failed(e) => e,
            Failure::TimedOut { sent } => {
                Error::new(ErrorKind::Timeout, Phase::Request, "request timed out").with_sent(sent)
            }
        }
    }
}

impl<P: Protocol> DirectIo<P> {
    pub(super) fn new(stream: Stream, protocol: &P, buffers: &BufferConfig) -> Self {
        let read_cap = buffers.read_capacity.max(512);
        DirectIo {
            stream,
            codec: protocol.codec(),
            rbuf: BytesMut::with_capacity(read_cap),
            wbuf: BytesMut::with_capacity(buffers.write_capacity),
            read_cap,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            owed: false,
        }
    }

    /// Whether anything arrived on the idle socket, without a system call unless the reactor saw something:
    /// `Some(reason)` for the peer's EOF, a reset or stray bytes.
    pub(super) fn poll_idle(&mut self) -> Option<CloseReason> {
        if self.owed {
            return None;
        }
        self.reserve();
        // Plain sockets: `try_read_buf` reads only if the reactor saw the socket readable (an atomic load, no
        // waker registered). TLS has no such call: a poll with a no-op waker.
        let read = match &mut self.stream {
            Stream::Tcp(s) => s.try_read_buf(&mut self.rbuf),
            Stream::Unix(s) => s.try_read_buf(&mut self.rbuf),
            Stream::Tls(_) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                match std::pin::pin!(self.stream.read_buf(&mut self.rbuf)).poll(&mut cx) {
                    Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
                    Poll::Ready(r) => r,
                }
            }
        };
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && self.rbuf.is_empty() => None,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(CloseReason::StrayBytes),
            Ok(0) => Some(CloseReason::PeerClosed),
            Ok(_) => Some(CloseReason::StrayBytes),
            Err(_) => Some(CloseReason::Reset),
        }
    }

    /// No reply owed.
    pub(super) fn is_idle(&self) -> bool {
        !self.owed
    }

    fn reserve(&mut self) {
        if self.rbuf.capacity() - self.rbuf.len() < self.read_cap / 2 {
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

    /// Whether dropping this needs a task ([`close`](Self::close)): a reply is owed, or TLS wants its
    /// close_notify sent.
    pub(super) fn needs_closing(&self) -> bool {
        self.owed || matches!(self.stream, Stream::Tls(_))
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

/// The connection's I/O, lent to one exchange. Dropped (finished or abandoned), it gives the I/O back to the
/// connection or closes it, and decides what the connection is owed.
struct Lease<'a, P: Protocol> {
    cell: &'a IoCell<P>,
    shared: &'a Shared,
    io: Option<Box<DirectIo<P>>>,
    stage: Stage,
    written: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<P: Protocol> Drop for Lease<'_, P> {
    fn drop(&mut self) {
        let Some(mut io) = self.io.take() else {
            return;
        };
        match self.stage {
            Stage::Ready | Stage::Over => {}
            Stage::Sent => {
                io.owed = true;
                self.shared.mark(CloseReason::Cancelled);
            }
            Stage::Writing => {
                self.shared.mark(CloseReason::Cancelled);
                return;
            }
        }
        *lock(self.cell) = Some(io);
    }
}

impl<P: Protocol> Lease<'_, P> {
    /// The connection failed: mark why, drop its I/O (closing the socket), and return the caller's error.
    fn fail(&mut self, reason: CloseReason, error: Error) -> Poll<Result<P::Response, Failure>> {
        self.shared.mark(reason);
        self.io = None;
        self.stage = Stage::Over;
        Poll::Ready(Err(Failure::Failed(error)))
    }

    fn poll_exchange(
        &mut self,
        cx: &mut Context<'_>,
        protocol: &P,
        tag: u64,
        timed: bool,
    ) -> Poll<Result<P::Response, Failure>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Err(Failure::Failed(Error::new(
                ErrorKind::Closed,
                Phase::Read,
                "connection closed",
            ))));
        };
        while self.written < io.wbuf.len() {
            match Pin::new(&mut io.stream).poll_write(cx, &io.wbuf[self.written..]) {
                Poll::Ready(Ok(0)) => {
                    let sent = self.written > 0;
                    let e = Error::new(ErrorKind::Closed, Phase::Write, "socket accepted no bytes");
                    return self.fail(CloseReason::Reset, e.with_sent(sent));
                }
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.stage = Stage::Writing;
                }
                Poll::Ready(Err(e)) => {
                    let sent = self.written > 0;
                    return self.fail(
                        CloseReason::Reset,
                        Error::io(Phase::Write, e).with_sent(sent),
                    );
                }
                Poll::Pending => return poll_timer(io, cx, timed, self.written > 0),
            }
        }
        if self.stage == Stage::Writing {
            match Pin::new(&mut io.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.stage = Stage::Sent,
                Poll::Ready(Err(e)) => {
                    return self.fail(CloseReason::Reset, Error::io(Phase::Write, e));
                }
                Poll::Pending => return poll_timer(io, cx, timed, self.written > 0),
            }
        }
        loop {
            match io.codec.decode(&mut io.rbuf) {
                Ok(Some(reply)) => {
                    if let Err(msg) = protocol.check_reply(tag, &reply) {
                        let e = Error::new(ErrorKind::Protocol, Phase::Read, msg);
                        return self.fail(CloseReason::Protocol, e);
                    }
                    if protocol.closes_connection(&reply) {
                        self.shared.mark(CloseReason::ServerClose);
                    }
                    if !io.rbuf.is_empty() {
                        // More than the one reply owed: the connection is out of step from here on.
                        self.shared.mark(CloseReason::StrayBytes);
                        self.io = None;
                    }
                    self.stage = Stage::Over;
                    return Poll::Ready(Ok(reply));
                }
                Ok(None) => {}
                Err(e) => return self.fail(CloseReason::Protocol, Error::codec(Phase::Read, e)),
            }
            io.reserve();
            match std::pin::pin!(io.stream.read_buf(&mut io.rbuf)).poll(cx) {
                Poll::Ready(Ok(0)) => {
                    let e = Error::new(
                        ErrorKind::Closed,
                        Phase::Read,
                        "peer closed the connection before replying",
                    );
                    return self.fail(CloseReason::PeerClosed, e);
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    return self.fail(CloseReason::Reset, Error::io(Phase::Read, e));
                }
                Poll::Pending => return poll_timer(io, cx, timed, self.written > 0),
            }
        }
    }
}

/// The I/O is waiting: has the deadline passed? `sent`: whether any byte of the request is out.
fn poll_timer<P: Protocol, R>(
    io: &mut DirectIo<P>,
    cx: &mut Context<'_>,
    timed: bool,
    sent: bool,
) -> Poll<Result<R, Failure>> {
    if timed && io.timer.as_mut().poll(cx).is_ready() {
        return Poll::Ready(Err(Failure::TimedOut { sent }));
    }
    Poll::Pending
}

/// One request and its reply on the connection whose I/O is in `cell`. The caller holds the connection's only
/// slot. `deadline` bounds the whole exchange (none: unbounded). Cancel-safe, see the module docs.
pub(super) async fn exchange<P: Protocol>(
    cell: &IoCell<P>,
    shared: &Shared,
    protocol: &P,
    request: P::Request,
    deadline: Option<Instant>,
) -> Result<P::Response, Failure> {
    let io = lock(cell).take();
    let mut lease = Lease {
        cell,
        shared,
        io,
        stage: Stage::Ready,
        written: 0,
    };
    let Some(io) = lease.io.as_mut() else {
        let reason = shared.reason().unwrap_or(CloseReason::Local);
        return Err(Failure::Failed(super::unusable(reason)));
    };
    if io.owed || !io.rbuf.is_empty() {
        let reason = shared.reason().unwrap_or(CloseReason::StrayBytes);
        return Err(Failure::Failed(super::unusable(reason)));
    }
    let tag = protocol.request_tag(&request);
    io.wbuf.clear();
    if let Err(e) = io.codec.encode(request, &mut io.wbuf) {
        io.wbuf.clear();
        return Err(Failure::Failed(super::encode_error(e)));
    }
    if let Some(d) = deadline {
        io.timer.as_mut().reset(d);
    }
    let timed = deadline.is_some();
    std::future::poll_fn(|cx| lease.poll_exchange(cx, protocol, tag, timed)).await
}
