//! One connection. At pipelining depth 1 the caller holding it does its own I/O (`connection/direct.rs`); deeper, a driver
//! task owns the socket and callers queue requests to it with a `oneshot` each.
//!
//! ```text
//!  depth 1: caller ──encode, one write()──► socket ──read, decode, check tag──► caller        (one task)
//!  depth P: caller ──reserve slot──► Connection ──mpsc (slots bound it)──► driver task ──one write()──► socket
//!           caller ◄──oneshot───────────────────────────────────────────── driver ◄──decode, match FIFO + check tag── socket
//! ```
//!
//! - **Pipelining.** A connection has `depth` slots (an atomic count). A caller takes a slot before queueing, and the
//!   driver gives it back only when the reply has been read (or the connection died). Depth 1 is classic
//!   request/response; depth P lets P requests be in flight, from one caller or several.
//! - **Batching.** The driver encodes every request waiting in the queue into one buffer (up to
//!   [`BufferConfig::max_write_batch`]) and writes it with one `write` call.
//! - **Cancellation never desynchronises.** A caller that gives up (its own timeout, a dropped future) only drops
//!   its `oneshot` receiver; the driver still reads that reply and throws it away, so the next reply goes to the
//!   next caller, and the request keeps its slot until then. The connection stays in use: it is shared by every
//!   caller, and one caller's `select!` must not cost the others a new connection (redis-rs's multiplexed
//!   connection behaves the same). A request whose *deadline* passes (the client's request timeout, answered by
//!   the driver) does poison it: it finishes what is in flight but takes no new requests, and the pool replaces
//!   it, since a server that missed a deadline holds up every reply queued behind it. At depth 1 a caller that
//!   gives up poisons the connection, which keeps the reply owed and reads it before it closes
//!   (`connection/direct.rs`).
//! - **Late replies are waited for, but not for ever.** Once a connection takes no more requests (poisoned, or
//!   dropped by its pool) and no caller waits on what it has in flight (each timed out or was given up, before
//!   or after: a caller dropping its reply future wakes the driver then), its driver reads their late replies
//!   for at most `DRAIN_LIMIT` (10 s), as the depth-1 drain does, then closes: a
//!   server that never answers does not keep the task and its socket after the client is closed or dropped.
//! - **Proof of matching.** Replies are matched in order and then checked by [`Protocol::check_reply`] (the
//!   framed request id); a mismatch is a protocol error: every request on the connection fails and it closes.
//! - **Health without a probe round-trip.** The driver always has a read armed, so bytes that arrive while
//!   nothing is in flight (stray bytes) or the peer's EOF/RST are seen when they happen; [`Connection::health`]
//!   reports them and the pool drops such connections before handing them out. At depth 1,
//!   [`Connection::check`] finds them from the socket's readiness, without a system call.
//!
//! **One core.** The driver keeps its requests in flight in the SDK's sans-IO pipelined core
//! (`connection/flight.rs`), the same one [`Pipelined`](crate::Pipelined) runs on: encoding, the order replies
//! are matched in, the tag check, deadlines and the phase a failed request is charged to are written once.
//!
//! Why depth 1 has no driver: handing each request to a task and each reply back (an mpsc, a `oneshot`, two
//! task wake-ups) cost more than the exchange; on `benches/compare/sdk.sh` the connection layer went from 0.78×
//! to ~0.95× a hand-written `write_all`/`read_exact` loop (docs/PERFORMANCE.md).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::config::{BufferConfig, MAX_BUFFER_CAPACITY};
use crate::error::{Error, ErrorKind, Phase};
use crate::protocol::Protocol;
use crate::transport::{Connector, Endpoint, ReadMark, Stream};

mod direct;
pub(crate) mod flight;

use flight::{Broken, Flight};

pub(crate) use direct::{Exchange, Failure};

/// Why a connection stopped being usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed it (EOF).
    PeerClosed,
    /// The peer reset it, or another socket error.
    Reset,
    /// A request in flight passed its deadline (pipelined), or its caller gave up on it (depth 1).
    Cancelled,
    /// A request failed mid-flight (write error, undecodable reply, reply to another request).
    Protocol,
    /// Bytes arrived while no request was in flight.
    StrayBytes,
    /// Unused for longer than the idle timeout.
    IdleTimeout,
    /// Older than its (jittered) maximum lifetime.
    MaxLifetime,
    /// Another connection to the same endpoint saw a reset or EOF after this one was opened.
    EndpointReset,
    /// Closed by this side (pool or client closed, connection dropped).
    Local,
    /// The server announced it would close after a reply (HTTP `Connection: close`).
    ServerClose,
}

impl CloseReason {
    /// All reasons, in the order of their counters in [`crate::stats::CloseCounts`].
    pub const ALL: [CloseReason; 10] = [
        CloseReason::PeerClosed,
        CloseReason::Reset,
        CloseReason::Cancelled,
        CloseReason::Protocol,
        CloseReason::StrayBytes,
        CloseReason::IdleTimeout,
        CloseReason::MaxLifetime,
        CloseReason::EndpointReset,
        CloseReason::Local,
        CloseReason::ServerClose,
    ];

    fn code(self) -> u8 {
        CloseReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(0) as u8
            + 1
    }

    fn from_code(code: u8) -> Option<CloseReason> {
        CloseReason::ALL
            .get((code as usize).checked_sub(1)?)
            .copied()
    }

    /// True when the peer ended the connection (EOF or reset): other idle connections to the same endpoint
    /// opened before it are suspect too.
    pub fn is_peer_failure(self) -> bool {
        matches!(self, CloseReason::PeerClosed | CloseReason::Reset)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseReason::PeerClosed => "peer closed",
            CloseReason::Reset => "reset",
            CloseReason::Cancelled => "cancelled request",
            CloseReason::Protocol => "protocol error",
            CloseReason::StrayBytes => "stray bytes",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::MaxLifetime => "max lifetime",
            CloseReason::EndpointReset => "endpoint reset",
            CloseReason::Local => "closed locally",
            CloseReason::ServerClose => "server announced close",
        })
    }
}

/// State shared by all connections to one endpoint: the generation counter used to invalidate idle
/// connections in bulk after a reset or EOF, and the count of the pipelined connections' writes.
#[derive(Debug, Default)]
pub struct EndpointHealth {
    generation: AtomicU64,
    changed: Notify,
    writes: AtomicU64,
}

impl EndpointHealth {
    /// The current generation: connections opened in an older one are stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A connection opened in `opened_in` saw the peer go away: start a new generation (once per generation,
    /// however many connections report the same event).
    pub fn peer_failed(&self, opened_in: u64) {
        if self
            .generation
            .compare_exchange(
                opened_in,
                opened_in + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.changed.notify_waiters();
            self.changed.notify_one();
        }
    }

    /// Resolves when a new generation starts.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Write calls made by the drivers of the endpoint's pipelined connections: each writes every request
    /// queued since its last write in one batch, so requests / writes is the average batch.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// Settings of one connection: start from `ConnectionOptions::default()` and chain a `with_*` setter per field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionOptions {
    /// Requests in flight at once (1 = request/response). Default: 1. This low-level constructor cannot refuse a
    /// setting, so 0 is taken as 1 here; the client builder's `pipeline_depth(0)` is a configuration error.
    pub depth: usize,
    /// Buffer sizes. Default: [`BufferConfig::default`].
    pub buffers: BufferConfig,
    /// Health of the endpoint this connection belongs to (for bulk invalidation). Default: a fresh one.
    pub endpoint_health: Arc<EndpointHealth>,
    /// When set, the connection closes itself (reports [`CloseReason::MaxLifetime`]) after this time, once
    /// nothing is in flight. Default: none.
    pub expires_after: Option<Duration>,
    /// The client's register of its open connections, which [`Client::close`](crate::Client::close) cuts
    /// once its grace has run out. Default: none.
    pub(crate) closer: Option<Arc<Closer>>,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            depth: 1,
            buffers: BufferConfig::default(),
            endpoint_health: Arc::default(),
            expires_after: None,
            closer: None,
        }
    }
}

/// The open connections of one client, so that [`Client::close`](crate::Client::close) can cut those still in
/// use when its grace runs out: wherever a connection is (idle in a pool, lent to a caller, carrying a
/// blocking command, draining late replies), [`cut`](Self::cut) marks it closed and shuts its socket down in
/// both directions, through the `dup` each connection keeps for its probes. Whoever reads the socket (the
/// driver task, or the caller doing a depth-1 exchange) then sees the end of the stream at once and fails what
/// was in flight, the peer sees the close (a Redis server drops a client blocked in `BLPOP`), and the
/// connection's task and sockets end. A connection opened after the cut is cut as it opens.
///
/// Only opening a connection touches it (one lock); calls never do.
#[derive(Debug, Default)]
pub(crate) struct Closer {
    /// The connections opened, each as long as something holds it.
    open: Mutex<Vec<std::sync::Weak<Shared>>>,
    /// Set by [`cut`](Self::cut).
    cut: std::sync::atomic::AtomicBool,
}

impl Closer {
    fn register(&self, shared: &Arc<Shared>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // Forget the connections gone since the list last grew: it stays about as long as the connections open.
        if open.len() == open.capacity() {
            open.retain(|w| w.strong_count() > 0);
        }
        open.push(Arc::downgrade(shared));
        drop(open);
        if self.is_cut() {
            Self::cut_one(shared);
        }
    }

    fn cut_one(shared: &Shared) {
        shared.mark(CloseReason::Local);
        if let Some(sock) = &shared.probe {
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Close every connection still open, now.
    pub(crate) fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(|e| e.into_inner()));
        for shared in open.iter().filter_map(std::sync::Weak::upgrade) {
            Self::cut_one(&shared);
        }
    }

    /// True once [`cut`](Self::cut) ran.
    pub(crate) fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }
}

with_setters!(ConnectionOptions {
    with_depth => depth: usize,
    with_buffers => buffers: BufferConfig,
    with_endpoint_health => endpoint_health: Arc<EndpointHealth>,
    with_expires_after => expires_after: Option<Duration>,
});

const HEALTHY: u8 = 0;

/// How long a connection that takes no more requests waits for the late replies of requests whose callers gave
/// up (or timed out) before it closes: the depth-1 connection's drain of the reply owed, and the pipelined
/// driver's once no caller waits on it.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Connections idle at least this long get a socket probe at check-out ([`Connection::check`]).
pub const PROBE_AFTER_IDLE: Duration = Duration::from_millis(1);

struct Shared {
    /// 0 while usable, else `CloseReason::code`; the first reason wins.
    state: AtomicU8,
    /// Free pipelining slots.
    free: AtomicUsize,
    /// Callers waiting in [`Connection::reserve`].
    waiting: AtomicUsize,
    /// A slot was freed, or the connection became unusable.
    slot_freed: Notify,
    depth: usize,
    created: Instant,
    expires: Option<Instant>,
    /// Microseconds from `created` to the last request.
    last_used: AtomicU64,
    generation: u64,
    endpoint: Arc<EndpointHealth>,
    /// Wakes the driver when the connection is poisoned from outside.
    wake: Notify,
    /// A dup of the socket for [`Connection::probe`].
    probe: Option<socket2::Socket>,
}

impl Shared {
    fn mark(&self, reason: CloseReason) -> bool {
        let first = self
            .state
            .compare_exchange(HEALTHY, reason.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            // Waiters for a slot on this connection go and find another.
            self.slot_freed.notify_waiters();
            self.wake.notify_one();
            if reason.is_peer_failure() {
                self.endpoint.peer_failed(self.generation);
            }
        }
        first
    }

    fn reason(&self) -> Option<CloseReason> {
        CloseReason::from_code(self.state.load(Ordering::Acquire))
    }

    /// Time from the last request (or the opening) to `now`.
    fn idle_at(&self, now: Instant) -> Duration {
        let last = self.created + Duration::from_micros(self.last_used.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }

    /// Another connection to the same endpoint saw it go away after this one was opened.
    fn is_stale(&self) -> bool {
        self.endpoint.generation() > self.generation
    }

    fn expired_at(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }

    fn touch(&self, now: Instant) {
        let us = now.saturating_duration_since(self.created).as_micros() as u64;
        self.last_used.store(us, Ordering::Relaxed);
    }

    /// Slots taken: requests queued or in flight (and slots reserved for one).
    fn slots_taken(&self) -> usize {
        self.depth.saturating_sub(self.free.load(Ordering::Acquire))
    }
}

type ReplyTx<R> = oneshot::Sender<Result<R, Error>>;

struct Envelope<P: Protocol> {
    request: P::Request,
    tag: u64,
    deadline: Option<Instant>,
    reply: ReplyTx<P::Response>,
    _slot: Slot,
}

/// The queue of a connection's driver: what callers need to queue requests on it, cloneable so that a pool can
/// hand it out without lending the connection itself.
pub(crate) struct Queue<P: Protocol> {
    tx: mpsc::UnboundedSender<Envelope<P>>,
    shared: Arc<Shared>,
    protocol: Arc<P>,
}

impl<P: Protocol> Clone for Queue<P> {
    fn clone(&self) -> Self {
        Queue {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
            protocol: self.protocol.clone(),
        }
    }
}

impl<P: Protocol> Queue<P> {
    /// A free slot now, or `None` when `depth` requests are in flight or the connection is unusable.
    pub(crate) fn try_reserve(&self) -> Option<Slot> {
        Slot::take(&self.shared)
    }

    /// Queue `request` on a reserved slot at time `now`; see [`Connection::try_send`]. With a `deadline`, the
    /// driver answers it with a timeout when that passes first (phase `Write`, `Read` or `Request`, see
    /// `Driver::expire` and [`is_driver_timeout`]).
    pub(crate) fn try_send(
        &self,
        slot: Slot,
        request: P::Request,
        deadline: Option<Instant>,
        now: Instant,
    ) -> Result<ReplyFuture<P::Response>, (Error, P::Request)> {
        if let Some(reason) = self.shared.reason() {
            return Err((unusable(reason), request));
        }
        let (reply, rx) = oneshot::channel();
        let env = Envelope {
            tag: self.protocol.request_tag(&request),
            request,
            deadline,
            reply,
            _slot: slot,
        };
        self.shared.touch(now);
        match self.tx.send(env) {
            Ok(()) => Ok(ReplyFuture {
                inner: Reply::Driven(rx),
            }),
            // The driver is gone: the request was not sent.
            Err(mpsc::error::SendError(env)) => Err((
                unusable(self.shared.reason().unwrap_or(CloseReason::Local)),
                env.request,
            )),
        }
    }
}

/// A reserved pipelining slot on one connection: the right to queue one request. A request on it holds it until
/// the request is over; dropping it frees the slot. Slots taken are the connection's requests in flight.
pub struct Slot {
    shared: Arc<Shared>,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl Slot {
    /// A free slot of `shared`, if it is usable and has one (an atomic decrement, no lock).
    fn take(shared: &Arc<Shared>) -> Option<Slot> {
        if shared.reason().is_some() {
            return None;
        }
        shared
            .free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| f.checked_sub(1))
            .ok()?;
        Some(Slot {
            shared: shared.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.free.fetch_add(1, Ordering::AcqRel);
        if shared.waiting.load(Ordering::Acquire) > 0 {
            shared.slot_freed.notify_one();
        }
    }
}

/// Counts a caller waiting for a slot while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One pipelined connection. Cheap to share by reference; all methods take `&self`.
///
/// At depth 1 the caller holding the slot does the I/O itself; deeper, a driver task owns the
/// socket. Dropping it lets the driver (or, at depth 1, a task reading a reply still owed) finish the requests
/// in flight, then closes the socket.
pub struct Connection<P: Protocol> {
    /// The driver's queue (depth > 1), or the socket and buffers for the slot holder's own I/O (depth 1).
    handle: Handle<P>,
    /// Dropped with the connection (a pool's registration of it).
    _attached: Option<Box<dyn std::any::Any + Send + Sync>>,
    connect_time: Duration,
}

impl<P: Protocol> fmt::Debug for Connection<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("protocol", &self.handle.protocol().name())
            .field("depth", &self.shared().depth)
            .field("in_flight", &self.in_flight())
            .field("health", &self.health())
            .finish()
    }
}

impl<P: Protocol> Connection<P> {
    /// Connect to `endpoint` and start the driver task (needs a tokio runtime).
    pub async fn connect(
        endpoint: &Endpoint,
        protocol: Arc<P>,
        connector: &Connector,
        options: ConnectionOptions,
    ) -> Result<Self, Error> {
        options.buffers.check()?;
        let start = Instant::now();
        let stream = connector.connect(endpoint, None).await?;
        let mut conn = Connection::from_stream(stream, protocol, options);
        conn.connect_time = start.elapsed();
        Ok(conn)
    }

    /// Wrap an open stream and start its driver task (needs a tokio runtime).
    pub fn from_stream(stream: Stream, protocol: Arc<P>, options: ConnectionOptions) -> Self {
        let depth = options.depth.max(1);
        let now = Instant::now();
        let probe = stream.probe_handle();
        let shared = Arc::new(Shared {
            probe,
            state: AtomicU8::new(HEALTHY),
            free: AtomicUsize::new(depth),
            waiting: AtomicUsize::new(0),
            slot_freed: Notify::new(),
            depth,
            created: now,
            expires: options.expires_after.map(|d| now + d),
            last_used: AtomicU64::new(0),
            generation: options.endpoint_health.generation(),
            endpoint: options.endpoint_health.clone(),
            wake: Notify::new(),
        });
        if let Some(closer) = &options.closer {
            closer.register(&shared);
        }
        let handle = if depth == 1 {
            let io = direct::DirectIo::new(stream, &*protocol, &options.buffers);
            Handle::Direct(Direct(Arc::new(DirectParts {
                cell: Mutex::new(Some(Box::new(io))),
                shared,
                protocol,
            })))
        } else {
            // Unbounded: the slots bound what is queued (one per request), and an unbounded send takes no lock.
            let (tx, rx) = mpsc::unbounded_channel();
            let driver = Driver {
                // Grows with the requests the connection carries, not with its depth.
                flight: Flight::new(protocol.codec_with_max_reply(options.buffers.max_reply), 0),
                protocol: protocol.clone(),
                rx,
                shared: shared.clone(),
                buffers: options.buffers,
                timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
                armed: None,
            };
            tokio::spawn(driver.run(stream));
            Handle::Queue(Queue {
                tx,
                shared,
                protocol,
            })
        };
        Connection {
            handle,
            _attached: None,
            connect_time: Duration::ZERO,
        }
    }

    /// The state this connection shares with its handles (and, deeper than 1, its driver).
    fn shared(&self) -> &Arc<Shared> {
        self.handle.shared()
    }

    pub(crate) fn set_connect_time(&mut self, d: Duration) {
        self.connect_time = d;
    }

    /// How long opening this connection took (TCP connect plus TLS handshake).
    pub fn connect_time(&self) -> Duration {
        self.connect_time
    }

    /// Send one request and wait for its reply. Waits for a free pipelining slot first. A request not answered
    /// by one reply ([`Protocol::breaks_request_reply`]) is refused, not sent.
    ///
    /// Cancel-safe: dropping the future before the reply arrives leaves the connection in step (the reply is
    /// read and dropped) and poisons it, see the module docs.
    pub async fn call(&self, request: P::Request) -> Result<P::Response, Error> {
        if let Some(command) = self.handle.protocol().breaks_request_reply(&request) {
            return Err(crate::exclusive::not_request_reply(command));
        }
        let slot = self.reserve().await?;
        match &self.handle {
            Handle::Direct(direct) => direct
                .clone()
                .exchange(slot, request, Instant::now(), None)
                .await
                .map_err(Failure::into_error),
            Handle::Queue(_) => self.send(slot, request)?.await,
        }
    }

    /// A free slot now, or `None` when `depth` requests are in flight or the connection is unusable.
    pub fn try_reserve(&self) -> Option<Slot> {
        Slot::take(self.shared())
    }

    /// Wait for a free slot. Fails (not sent, retryable) if the connection becomes unusable meanwhile.
    pub async fn reserve(&self) -> Result<Slot, Error> {
        if let Some(reason) = self.health() {
            return Err(unusable(reason));
        }
        let shared = self.shared();
        loop {
            if let Some(slot) = Slot::take(shared) {
                return Ok(slot);
            }
            if let Some(reason) = self.health() {
                return Err(unusable(reason));
            }
            let freed = shared.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            shared.waiting.fetch_add(1, Ordering::AcqRel);
            let _waiting = Waiting(&shared.waiting);
            // A slot freed before this caller was registered as waiting is seen here.
            if let Some(slot) = Slot::take(shared) {
                return Ok(slot);
            }
            if let Some(reason) = self.health() {
                return Err(unusable(reason));
            }
            freed.await;
        }
    }

    /// Queue `request` on a reserved slot; the returned future resolves to its reply.
    ///
    /// Fails at once (not sent) if the connection is unusable, or if the request is not answered by one reply
    /// ([`Protocol::breaks_request_reply`]).
    pub fn send(&self, slot: Slot, request: P::Request) -> Result<ReplyFuture<P::Response>, Error> {
        self.try_send(slot, request).map_err(|(e, _)| e)
    }

    /// Like [`send`](Self::send), giving the request back when it could not be queued (so it can go to another
    /// connection).
    pub fn try_send(
        &self,
        slot: Slot,
        request: P::Request,
    ) -> Result<ReplyFuture<P::Response>, (Error, P::Request)> {
        if let Some(command) = self.handle.protocol().breaks_request_reply(&request) {
            return Err((crate::exclusive::not_request_reply(command), request));
        }
        if let Some(reason) = self.health() {
            return Err((unusable(reason), request));
        }
        match self.handle() {
            Handle::Queue(queue) => queue.try_send(slot, request, None, Instant::now()),
            // Depth 1: the exchange runs in the returned future.
            Handle::Direct(direct) => {
                let now = Instant::now();
                let exchange = async move {
                    let r = direct.exchange(slot, request, now, None).await;
                    r.map_err(Failure::into_error)
                };
                Ok(ReplyFuture {
                    inner: Reply::Direct(Box::pin(exchange)),
                })
            }
        }
    }

    /// What callers need to use this connection without borrowing it: its driver's queue, or at depth 1 the
    /// connection itself.
    pub(crate) fn handle(&self) -> Handle<P> {
        self.handle.clone()
    }

    /// The depth-1 I/O cell, if this connection has one.
    fn cell(&self) -> Option<&direct::IoCell<P>> {
        match &self.handle {
            Handle::Direct(d) => Some(&d.0.cell),
            Handle::Queue(_) => None,
        }
    }

    /// Keep `guard` until this connection is dropped.
    pub(crate) fn attach(&mut self, guard: Box<dyn std::any::Any + Send + Sync>) {
        self._attached = Some(guard);
    }

    /// `None` while usable; otherwise why not (poisoned, peer closed, stray bytes …).
    pub fn health(&self) -> Option<CloseReason> {
        self.shared().reason()
    }

    /// Stop taking requests: the ones in flight finish, then the connection closes.
    pub fn poison(&self, reason: CloseReason) {
        self.shared().mark(reason);
    }

    /// Requests queued or in flight (slots taken, counting any reserved for a request not yet queued).
    pub fn in_flight(&self) -> usize {
        self.shared().slots_taken()
    }

    /// Slots free right now.
    pub fn free_slots(&self) -> usize {
        self.shared().free.load(Ordering::Acquire)
    }

    /// The pipelining depth.
    pub fn depth(&self) -> usize {
        self.shared().depth
    }

    /// Time since the connection opened.
    pub fn age(&self) -> Duration {
        self.shared().created.elapsed()
    }

    /// Time since a request was last queued (or since it opened).
    pub fn idle_time(&self) -> Duration {
        self.idle_time_at(Instant::now())
    }

    pub(crate) fn idle_time_at(&self, now: Instant) -> Duration {
        self.shared().idle_at(now)
    }

    /// True once the (jittered) lifetime given in [`ConnectionOptions::expires_after`] has passed.
    pub fn is_expired(&self) -> bool {
        self.shared().expired_at(Instant::now())
    }

    /// True when another connection to the same endpoint saw it go away after this one was opened.
    pub fn is_stale(&self) -> bool {
        self.shared().is_stale()
    }

    /// A non-blocking probe of the socket itself (`recv` with `MSG_PEEK` on a non-blocking dup): catches the
    /// peer's EOF or reset that arrived but that the driver task has not been scheduled to see yet. Returns the
    /// connection's health afterwards.
    pub fn probe(&self) -> Option<CloseReason> {
        probe(self.shared(), direct_idle(self.cell()))
    }

    /// Whether a pool may hand this connection out again, and if not, why. A connection idle for
    /// [`PROBE_AFTER_IDLE`] or more is also probed (see [`probe`](Self::probe)); one in constant use is not, as
    /// its driver has just been reading it (this keeps the hot path at one `write` and one `read` per batch).
    pub fn check(&self) -> Result<(), CloseReason> {
        self.check_at(Instant::now())
    }

    /// [`check`](Self::check) with the time already read.
    pub(crate) fn check_at(&self, now: Instant) -> Result<(), CloseReason> {
        check(self.shared(), self.cell(), now)
    }
}

/// A connection as callers use it without borrowing it: see [`Connection::handle`].
pub(crate) enum Handle<P: Protocol> {
    /// Depth > 1: queue requests to its driver.
    Queue(Queue<P>),
    /// Depth 1: take its one slot and do the exchange.
    Direct(Direct<P>),
}

impl<P: Protocol> Handle<P> {
    fn shared(&self) -> &Arc<Shared> {
        match self {
            Handle::Queue(q) => &q.shared,
            Handle::Direct(d) => &d.0.shared,
        }
    }

    fn protocol(&self) -> &P {
        match self {
            Handle::Queue(q) => &q.protocol,
            Handle::Direct(d) => &d.0.protocol,
        }
    }

    /// Requests queued or in flight on the connection.
    pub(crate) fn in_flight(&self) -> usize {
        self.shared().slots_taken()
    }
}

impl<P: Protocol> Clone for Handle<P> {
    fn clone(&self) -> Self {
        match self {
            Handle::Queue(q) => Handle::Queue(q.clone()),
            Handle::Direct(d) => Handle::Direct(d.clone()),
        }
    }
}

/// A handle to a depth-1 connection, cloneable (one reference count) so that a pool can lend it without lending
/// the connection.
pub(crate) struct Direct<P: Protocol>(Arc<DirectParts<P>>);

struct DirectParts<P: Protocol> {
    cell: direct::IoCell<P>,
    shared: Arc<Shared>,
    protocol: Arc<P>,
}

impl<P: Protocol> Clone for Direct<P> {
    fn clone(&self) -> Self {
        Direct(self.0.clone())
    }
}

impl<P: Protocol> Direct<P> {
    /// The connection taken for one exchange, if its slot is free and it passes [`Connection::check`] at `now`
    /// (a connection that fails it is marked with the reason, so that the pool removes it). The checks run on
    /// its I/O, which the caller then keeps for the exchange.
    pub(crate) fn try_take(&self, now: Instant) -> Option<Taken<P>> {
        let parts = &*self.0;
        let slot = Slot::take(&parts.shared)?;
        // With the slot held no exchange is running: the I/O is in its cell unless the connection was closed.
        let Some(mut io) = direct::lock(&parts.cell).take() else {
            parts.shared.mark(CloseReason::Local);
            return None;
        };
        if let Some(reason) = io.poll_idle() {
            parts.shared.mark(reason);
        }
        if let Err(reason) = verdict(&parts.shared, now, io.is_idle()) {
            parts.shared.mark(reason);
            // Back where the connection closes it (it may owe a reply to drain).
            *direct::lock(&parts.cell) = Some(io);
            return None;
        }
        Some(Taken {
            direct: Some(self.clone()),
            slot: Some(slot),
            io: Some(io),
        })
    }

    /// One exchange on the taken `slot`, starting at `now`, bounded by `deadline` (none: unbounded). Cancel-safe,
    /// see `connection/direct.rs`.
    pub(crate) fn exchange(
        self,
        slot: Slot,
        request: P::Request,
        now: Instant,
        deadline: Option<Instant>,
    ) -> direct::Exchange<P> {
        let io = direct::lock(&self.0.cell).take();
        direct::Exchange::start(self, slot, io, request, now, deadline)
    }
}

/// A depth-1 connection taken for one exchange ([`Direct::try_take`]): its slot and its checked I/O. Dropped
/// without an exchange, it gives the I/O back before the slot.
pub(crate) struct Taken<P: Protocol> {
    /// All three are `Some` until the exchange takes them.
    direct: Option<Direct<P>>,
    slot: Option<Slot>,
    io: Option<Box<direct::DirectIo<P>>>,
}

impl<P: Protocol> Taken<P> {
    /// The exchange of `request`, as [`Direct::exchange`].
    pub(crate) fn exchange(
        mut self,
        request: P::Request,
        now: Instant,
        deadline: Option<Instant>,
    ) -> direct::Exchange<P> {
        let (io, slot, direct) = (self.io.take(), self.slot.take(), self.direct.take());
        let (Some(slot), Some(direct)) = (slot, direct) else {
            unreachable!("a Taken holds its connection and slot until its exchange starts")
        };
        direct::Exchange::start(direct, slot, io, request, now, deadline)
    }
}

impl<P: Protocol> Drop for Taken<P> {
    fn drop(&mut self) {
        if let (Some(io), Some(d)) = (self.io.take(), &self.direct) {
            *direct::lock(&d.0.cell) = Some(io);
        }
    }
}

/// Depth 1 with no exchange running and no reply owed.
fn direct_idle<P: Protocol>(io: Option<&direct::IoCell<P>>) -> bool {
    io.is_some_and(|cell| {
        cell.try_lock()
            .is_ok_and(|g| g.as_ref().is_some_and(|io| io.is_idle()))
    })
}

/// See [`Connection::probe`]. `idle_io`: the connection is depth 1 with no exchange running and no reply owed.
fn probe(shared: &Shared, idle_io: bool) -> Option<CloseReason> {
    if let Some(r) = shared.reason() {
        return Some(r);
    }
    let sock = shared.probe.as_ref()?;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match sock.peek(&mut buf) {
        Ok(0) => {
            shared.mark(CloseReason::PeerClosed);
        }
        // Bytes waiting: a reply the driver is about to read, or stray bytes it will report. At depth 1 no one
        // is reading between exchanges: stray bytes, unless an exchange is running.
        Ok(_) => {
            if idle_io {
                shared.mark(CloseReason::StrayBytes);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
        Err(_) => {
            shared.mark(CloseReason::Reset);
        }
    }
    shared.reason()
}

/// See [`Connection::check`].
fn check<P: Protocol>(
    shared: &Shared,
    io: Option<&direct::IoCell<P>>,
    now: Instant,
) -> Result<(), CloseReason> {
    if let Some(cell) = io {
        // Depth 1: no driver has a read armed, but what the reactor saw is one readiness check away.
        if let Ok(mut g) = cell.try_lock() {
            if let Some(io) = g.as_mut() {
                if let Some(reason) = io.poll_idle() {
                    shared.mark(reason);
                }
                return verdict(shared, now, io.is_idle());
            }
        }
    }
    verdict(shared, now, false)
}

/// The rest of [`check`], once a depth-1 connection's I/O has been looked at; `idle_io` as for [`probe`].
fn verdict(shared: &Shared, now: Instant, idle_io: bool) -> Result<(), CloseReason> {
    let health = if shared.idle_at(now) >= PROBE_AFTER_IDLE {
        probe(shared, idle_io)
    } else {
        shared.reason()
    };
    if let Some(r) = health {
        return Err(r);
    }
    if shared.is_stale() {
        return Err(CloseReason::EndpointReset);
    }
    if shared.expired_at(now) {
        return Err(CloseReason::MaxLifetime);
    }
    Ok(())
}

/// A request the codec refused to encode: not sent; a request the protocol cannot express is the caller's
/// configuration error, not the peer's.
fn encode_error(e: crate::codec::CodecError) -> Error {
    let err = Error::codec(Phase::Write, e);
    let err = if err.kind() == ErrorKind::Protocol {
        Error::new(ErrorKind::Config, Phase::Write, err.to_string())
    } else {
        err
    };
    err.with_sent(false)
}

fn unusable(reason: CloseReason) -> Error {
    let kind = match reason {
        CloseReason::Reset => ErrorKind::Reset,
        CloseReason::Protocol | CloseReason::StrayBytes => ErrorKind::Protocol,
        _ => ErrorKind::Closed,
    };
    Error::new(
        kind,
        Phase::PoolWait,
        format!("connection unusable ({reason})"),
    )
    .with_sent(false)
}

/// The reply to one queued request. Dropping it before it resolves is safe: the reply is still read and
/// dropped (see module docs).
pub struct ReplyFuture<R> {
    inner: Reply<R>,
}

enum Reply<R> {
    /// From the driver task (depth > 1).
    Driven(oneshot::Receiver<Result<R, Error>>),
    /// The exchange itself, run by whoever polls this (depth 1); it handles its own cancellation.
    Direct(Pin<Box<dyn Future<Output = Result<R, Error>> + Send>>),
}

impl<R> fmt::Debug for ReplyFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyFuture").finish_non_exhaustive()
    }
}

impl<R> Future for ReplyFuture<R> {
    type Output = Result<R, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.inner {
            Reply::Driven(rx) => Pin::new(rx).poll(cx).map(|r| {
                r.unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::Closed,
                        Phase::Read,
                        "connection driver stopped",
                    ))
                })
            }),
            Reply::Direct(f) => f.as_mut().poll(cx),
        }
    }
}

impl<P: Protocol> Drop for Connection<P> {
    fn drop(&mut self) {
        let Some(cell) = self.cell() else {
            return;
        };
        // Handles on a shelf outlive this for a moment: they must not take it now.
        self.shared().mark(CloseReason::Local);
        // An exchange still running gives its I/O back later; the last handle closes it then (`DirectParts`).
        if let Some(io) = cell.lock().ok().and_then(|mut g| g.take()) {
            (*io).close_soon();
        }
    }
}

impl<P: Protocol> Drop for DirectParts<P> {
    fn drop(&mut self) {
        let io = direct::lock(&self.cell).take();
        if let Some(io) = io {
            (*io).close_soon();
        }
    }
}

struct Driver<P: Protocol> {
    /// The requests in flight (the SDK's sans-IO pipelined core): each ends with its caller's `oneshot`, and
    /// holds its pipelining slot until its reply is read, even after its caller was answered at its deadline.
    flight: Flight<P, ReplyTx<P::Response>, Slot>,
    protocol: Arc<P>,
    rx: mpsc::UnboundedReceiver<Envelope<P>>,
    shared: Arc<Shared>,
    buffers: BufferConfig,
    /// Fires at the earliest deadline among the requests in flight (one timer for all of them).
    timer: Pin<Box<tokio::time::Sleep>>,
    /// What `timer` is set to, while some request in flight has a deadline.
    armed: Option<Instant>,
}

/// Whether `e` is the driver's answer to a request whose deadline passed before its reply.
pub(crate) fn is_driver_timeout(e: &Error) -> bool {
    e.kind() == ErrorKind::Timeout
        && matches!(e.phase(), Phase::Write | Phase::Read | Phase::Request)
}

/// How the driver loop ended.
struct Stop {
    reason: CloseReason,
    error: Option<Error>,
}

impl<P: Protocol> Driver<P> {
    async fn run(mut self, stream: Stream) {
        let (mark_fd, mut read_mark) = (stream.read_mark_fd(), ReadMark::default());
        let (mut rd, mut wr) = tokio::io::split(stream);
        // Clamped for `from_stream`, which cannot refuse them (`BufferConfig::check` refuses them elsewhere).
        let read_cap = self.buffers.read_capacity.clamp(512, MAX_BUFFER_CAPACITY);
        let max_batch = self.buffers.max_write_batch.max(1);
        let mut rbuf = BytesMut::with_capacity(read_cap);
        let mut wbuf =
            BytesMut::with_capacity(self.buffers.write_capacity.min(MAX_BUFFER_CAPACITY));
        let mut rx_open = true;
        let expiry = self.shared.expires;
        // Both made once, not per turn of the loop: a fresh `Notified` joins and leaves the `Notify`'s waiter
        // list under its lock each time it is polled and dropped, and a fresh sleep enters and leaves the timer
        // wheel.
        let shared = self.shared.clone();
        let wake = shared.wake.notified();
        tokio::pin!(wake);
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let expiry_timer = tokio::time::sleep_until(expiry.unwrap_or(far));
        tokio::pin!(expiry_timer);
        let mut expired = false;
        // Armed while the connection takes no more requests and no caller waits on it: its late replies are
        // waited for until then (`DRAIN_LIMIT`), and no longer.
        let drain_timer = tokio::time::sleep_until(far);
        tokio::pin!(drain_timer);
        let mut draining = false;

        let stop: Stop = loop {
            let idle = self.flight.is_empty() && wbuf.is_empty();
            // Poisoned and idle: close the queue, but serve what it already accepted (the poison only stops
            // new requests; a sender that loses the race gets its request back from `try_send`).
            if idle && rx_open && self.shared.reason().is_some() {
                self.rx.close();
            }
            if idle && !rx_open {
                break Stop {
                    reason: self.shared.reason().unwrap_or(CloseReason::Local),
                    error: None,
                };
            }
            // Poisoned or dropped, with nobody waiting for what is in flight: a server that never answers must not
            // keep the task and its socket for good (one atomic load on the hot path).
            let abandoned =
                !idle && (!rx_open || self.shared.reason().is_some()) && self.nobody_waits();
            if abandoned != draining {
                draining = abandoned;
                if abandoned {
                    drain_timer.as_mut().reset(Instant::now() + DRAIN_LIMIT);
                }
            }
            // Taking no more requests with callers still waiting: a caller that then gives up (drops its reply
            // future, with no deadline to wake this task) must start the drain, so the task polls for that.
            let watch_callers = !idle && !draining && (!rx_open || self.shared.reason().is_some());
            if rbuf.capacity() - rbuf.len() < read_cap / 2 {
                rbuf.reserve(read_cap);
            }
            let can_take = rx_open && wbuf.len() < max_batch;
            tokio::select! {
                biased;
                r = rd.read_buf(&mut rbuf) => match r {
                    Ok(0) => {
                        // A reply the close ends (an HTTP body until close) is whole now.
                        if let Err(stop) = self.deliver_eof(&mut rbuf) {
                            break stop;
                        }
                        let mid = !self.flight.is_empty() || !rbuf.is_empty();
                        break Stop {
                            reason: CloseReason::PeerClosed,
                            error: Some(Error::new(
                                ErrorKind::Closed,
                                Phase::Read,
                                if mid { "peer closed the connection before replying" } else { "peer closed the connection" },
                            )),
                        };
                    }
                    Ok(_) => {
                        if let Err(stop) = self.deliver(&mut rbuf) {
                            break stop;
                        }
                        read_mark.fit(mark_fd, self.flight.bytes_wanted(rbuf.len()));
                    }
                    Err(e) => {
                        break Stop { reason: CloseReason::Reset, error: Some(Error::io(Phase::Read, e)) };
                    }
                },
                r = wr.write_buf(&mut wbuf), if !wbuf.is_empty() => match r {
                    Ok(0) => {
                        break Stop {
                            reason: CloseReason::Reset,
                            error: Some(Error::new(ErrorKind::Closed, Phase::Write, "socket accepted no bytes")),
                        };
                    }
                    Ok(n) => {
                        self.flight.wrote(n);
                        self.shared.endpoint.writes.fetch_add(1, Ordering::Relaxed);
                        if wbuf.is_empty() {
                            if let Err(e) = wr.flush().await {
                                break Stop { reason: CloseReason::Reset, error: Some(Error::io(Phase::Write, e)) };
                            }
                        }
                    }
                    Err(e) => {
                        break Stop { reason: CloseReason::Reset, error: Some(Error::io(Phase::Write, e)) };
                    }
                },
                m = self.rx.recv(), if can_take => match m {
                    None => rx_open = false,
                    Some(env) => {
                        self.encode(env, &mut wbuf);
                        // Batch: everything already queued goes into the same write.
                        self.take_queued(&mut wbuf, max_batch);
                        // With free slots left, let the callers that are ready to run queue theirs first: the
                        // caller that woke this task runs just before it (tokio's LIFO slot), so without this
                        // pipelined requests would go out one write each.
                        if self.flight.len() < self.shared.depth && wbuf.len() < max_batch {
                            tokio::task::yield_now().await;
                            self.take_queued(&mut wbuf, max_batch);
                        }
                    }
                },
                _ = &mut wake => wake.set(shared.wake.notified()),
                _ = self.timer.as_mut(), if self.armed.is_some() => {
                    let partial = self.flight.mid_reply(!rbuf.is_empty());
                    self.expire(partial);
                }
                _ = &mut expiry_timer, if expiry.is_some() && idle && !expired => {
                    expired = true;
                    self.shared.mark(CloseReason::MaxLifetime);
                }
                _ = std::future::poll_fn(|cx| self.flight.poll_live(|reply| reply.poll_closed(cx))),
                    if watch_callers => {}
                _ = &mut drain_timer, if draining => {
                    break Stop { reason: CloseReason::Cancelled, error: None };
                }
            }
        };

        self.shared.mark(stop.reason);
        let base = stop.error.unwrap_or_else(|| {
            Error::new(
                ErrorKind::Closed,
                Phase::Read,
                format!("connection closed ({})", stop.reason),
            )
        });
        // A request not sent failed in the write phase; but a TLS handshake refused late (a client certificate
        // under TLS 1.3, whose refusal may arrive before any request) stays a handshake failure.
        let unsent = match base.phase() {
            Phase::TlsHandshake => Phase::TlsHandshake,
            _ => Phase::Write,
        };
        self.flight.fail_all(!rbuf.is_empty(), |reply, at| {
            let e = if at.behind_close {
                Error::new(ErrorKind::Closed, at.phase, BEHIND_CLOSE).with_server_close()
            } else {
                // Each request in the phase it was in (the flight's), whatever failed the connection: after a
                // failed write, one all written and waiting for its reply failed reading, as on a read EOF; one
                // not all written failed writing, whichever side saw the failure.
                let phase = match unsent {
                    Phase::TlsHandshake => unsent,
                    _ => at.phase,
                };
                // The request whose reply the close cut (part of it had come) says so, as at depth 1; it was
                // told the peer closed "before replying".
                if stop.reason == CloseReason::PeerClosed && phase == Phase::Request {
                    Error::new(ErrorKind::Closed, phase, MID_REPLY).with_sent(at.sent)
                } else {
                    failed_with(&base, at, phase)
                }
            };
            let _ = reply.send(Err(e));
        });
        self.rx.close();
        let announced = self.shared.reason() == Some(CloseReason::ServerClose);
        while let Ok(env) = self.rx.try_recv() {
            let e = clone_error(&base).with_sent(false).with_phase(unsent);
            let _ = env
                .reply
                .send(Err(if announced { e.with_server_close() } else { e }));
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), wr.shutdown()).await;
    }

    /// The timer fired: answer every request whose deadline has passed with a timeout (their replies are still
    /// read and dropped; the connection is poisoned, as when a caller gives up) and set the timer to the next
    /// deadline. The timeout's phase says where the time went: `Write` when the request was not all written,
    /// `Request` for the oldest request when part of its reply has arrived (`partial`), else `Read`.
    fn expire(&mut self, partial: bool) {
        let shared = &self.shared;
        let next = self.flight.expire(Instant::now(), partial, |reply, at| {
            // Poisoned before any caller hears of its timeout: what it then sees of the connection is final.
            shared.mark(CloseReason::Cancelled);
            let e = Error::new(ErrorKind::Timeout, at.phase, "request timed out");
            let _ = reply.send(Err(e.with_sent(at.sent)));
        });
        self.armed = next;
        if let Some(d) = next {
            self.timer.as_mut().reset(d);
        }
    }

    /// No caller waits for a request in flight: each timed out, or its caller dropped its reply future.
    fn nobody_waits(&self) -> bool {
        self.flight.live() == 0 || !self.flight.any_live(|reply| !reply.is_closed())
    }

    /// Encode what is already queued, up to `max_batch` bytes.
    fn take_queued(&mut self, wbuf: &mut BytesMut, max_batch: usize) {
        while wbuf.len() < max_batch {
            match self.rx.try_recv() {
                Ok(env) => self.encode(env, wbuf),
                Err(_) => break,
            }
        }
    }

    fn encode(&mut self, env: Envelope<P>, wbuf: &mut BytesMut) {
        let Envelope {
            request,
            tag,
            deadline,
            reply,
            _slot,
        } = env;
        match self.flight.push(tag, request, deadline, reply, _slot, wbuf) {
            Ok(()) => {
                if let Some(d) = deadline {
                    if self.armed.is_none_or(|a| d < a) {
                        self.timer.as_mut().reset(d);
                        self.armed = Some(d);
                    }
                }
            }
            Err((reply, e)) => {
                let _ = reply.send(Err(encode_error(e)));
            }
        }
    }

    /// Decode every complete reply in `rbuf` and hand each to its caller.
    fn deliver(&mut self, rbuf: &mut BytesMut) -> Result<(), Stop> {
        self.hand_over(rbuf, false)
    }

    /// The peer closed: hand over the reply the close completes, if any ([`Flight::deliver_eof`]).
    fn deliver_eof(&mut self, rbuf: &mut BytesMut) -> Result<(), Stop> {
        self.hand_over(rbuf, true)
    }

    fn hand_over(&mut self, rbuf: &mut BytesMut, eof: bool) -> Result<(), Stop> {
        let shared = &self.shared;
        // The close is marked before the caller hears its reply: it must not queue its next request here.
        let closing = || {
            shared.mark(CloseReason::ServerClose);
        };
        let done = |reply: ReplyTx<P::Response>, r| {
            let _ = reply.send(Ok(r));
        };
        let delivered = match eof {
            false => self.flight.deliver(&self.protocol, rbuf, closing, done),
            true => self.flight.deliver_eof(&self.protocol, rbuf, closing, done),
        };
        match delivered {
            Ok(()) => Ok(()),
            Err(Broken::Stray(n)) => Err(Stop {
                reason: CloseReason::StrayBytes,
                error: Some(Error::new(
                    ErrorKind::Protocol,
                    Phase::Read,
                    format!("{n} bytes arrived while no request was in flight"),
                )),
            }),
            // The server closes the idle connection (an HTTP `408` with nothing in flight): nothing to fail.
            Err(Broken::IdleClosed) => Err(Stop {
                reason: CloseReason::ServerClose,
                error: None,
            }),
            Err(Broken::Mismatch(msg)) => Err(Stop {
                reason: CloseReason::Protocol,
                error: Some(Error::new(ErrorKind::Protocol, Phase::Read, msg)),
            }),
            Err(Broken::Undecodable(e)) => Err(Stop {
                reason: CloseReason::Protocol,
                error: Some(Error::codec(Phase::Read, e)),
            }),
        }
    }
}

/// Why a request failed whose reply the peer's close cut: part of it had come.
pub(crate) const MID_REPLY: &str = "peer closed the connection in the middle of its reply";

/// The error of a request pipelined behind the reply that announced the server's close.
pub(crate) const BEHIND_CLOSE: &str =
    "the server closed the connection without processing this request, as a \
     reply before it announced (HTTP `Connection: close`)";

/// The error of a request in flight behind one whose reply went over a size limit: its own reply was never read
/// (the connection ended at the refused one), so it is not counted as over the limit too.
pub(crate) const BEHIND_REFUSED: &str =
    "not answered: the connection ended at the reply to an earlier request on it, which went over a size limit";

/// The error of a request that failed with the connection: a copy of `base` (the connection's error) in the
/// phase it was in, or, when `base` is a reply over a size limit and this is not the request that reply
/// answered, a [`BEHIND_REFUSED`] close.
pub(crate) fn failed_with(base: &Error, at: flight::At, phase: Phase) -> Error {
    match base.limit() {
        Some(_) if !at.oldest => {
            Error::new(ErrorKind::Closed, phase, BEHIND_REFUSED).with_sent(at.sent)
        }
        _ => clone_error(base).with_sent(at.sent).with_phase(phase),
    }
}

/// Errors are not `Clone` (their source is a boxed error); each failed request gets a copy without the source.
fn clone_error(e: &Error) -> Error {
    let msg = e.message().to_string();
    let mut c = Error::new(e.kind(), e.phase(), msg)
        .with_sent(e.was_sent())
        .with_limit(e.limit());
    if let Some(ep) = e.endpoint() {
        c = c.with_endpoint(ep);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::framed::{Request, Response, ServerCodec};
    use crate::codec::Encode;
    use crate::codec::TokioUtilCodec;
    use crate::protocol::Framed;
    use bytes::Bytes;
    use futures::{SinkExt, StreamExt};
    use tokio::net::UnixStream;
    use tokio_util::codec::Framed as FramedIo;

    type Server = FramedIo<UnixStream, TokioUtilCodec<ServerCodec>>;

    fn framed_server(io: UnixStream) -> Server {
        FramedIo::new(io, TokioUtilCodec::new(ServerCodec::default()))
    }

    fn pair(depth: usize) -> (Connection<Framed>, Server) {
        let (a, b) = UnixStream::pair().unwrap();
        let conn = Connection::from_stream(
            Stream::Unix(a),
            Arc::new(Framed::default()),
            ConnectionOptions {
                depth,
                ..Default::default()
            },
        );
        (conn, framed_server(b))
    }

    #[tokio::test]
    async fn pipelined_requests_are_batched_and_matched() {
        let (conn, mut server) = pair(4);
        let calls = futures::future::join_all(
            (0..4u64).map(|i| conn.call(Request::echo(i, Bytes::from(vec![i as u8; 3])))),
        );
        let serve = async {
            let mut seen = Vec::new();
            for _ in 0..4 {
                let req = server.next().await.unwrap().unwrap();
                seen.push(req.id);
                server
                    .send(Response::ok(req.id, req.payload))
                    .await
                    .unwrap();
            }
            seen
        };
        let (replies, seen) = tokio::join!(calls, serve);
        assert_eq!(seen, vec![0, 1, 2, 3]);
        for (i, r) in replies.into_iter().enumerate() {
            let r = r.unwrap();
            assert_eq!(r.id, i as u64);
            assert_eq!(&r.payload[..], &[i as u8; 3]);
        }
        assert_eq!(conn.free_slots(), 4);
        assert_eq!(conn.check(), Ok(()));
    }

    #[tokio::test]
    async fn a_reply_to_another_request_poisons_the_connection() {
        let (conn, mut server) = pair(1);
        let call = conn.call(Request::echo(7, Bytes::new()));
        let serve = async {
            let req = server.next().await.unwrap().unwrap();
            server
                .send(Response::ok(req.id + 1, Bytes::new()))
                .await
                .unwrap();
        };
        let (r, ()) = tokio::join!(call, serve);
        let err = r.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert_eq!(conn.health(), Some(CloseReason::Protocol));
        let again = conn.call(Request::echo(8, Bytes::new())).await.unwrap_err();
        assert!(!again.was_sent());
    }

    /// Sends request 1 ("one") and gives up on it after 20 ms (the server never answers in time).
    async fn give_up_on_a_call(conn: &Connection<Framed>) {
        let first = conn.call(Request::echo(1, Bytes::from_static(b"one")));
        let r = tokio::time::timeout(Duration::from_millis(20), first).await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn a_cancelled_pipelined_call_leaves_the_stream_in_step_and_the_connection_in_use() {
        let (conn, mut server) = pair(2);
        give_up_on_a_call(&conn).await;
        // Shared by every caller: one caller giving up does not retire it. Its request keeps its slot.
        assert_eq!(conn.health(), None);
        assert_eq!(conn.in_flight(), 1);
        let second = conn.call(Request::echo(2, Bytes::from_static(b"two")));
        let serve = async {
            // The late reply to the first is read and dropped; the second gets its own.
            for _ in 0..2 {
                let req = server.next().await.unwrap().unwrap();
                server
                    .send(Response::ok(req.id, req.payload))
                    .await
                    .unwrap();
            }
        };
        let (r, ()) = tokio::join!(second, serve);
        let r = r.unwrap();
        assert_eq!((r.id, &r.payload[..]), (2, &b"two"[..]));
        assert_eq!(conn.in_flight(), 0);
        assert_eq!(conn.check(), Ok(()));
    }

    /// A pipelined connection dropped while it holds only a request whose caller gave up (no deadline: the
    /// connection was not poisoned) waits for that late reply no longer than the drain limit, then closes.
    #[tokio::test(start_paused = true)]
    async fn a_pipelined_connection_dropped_with_only_given_up_requests_closes_within_the_drain_limit(
    ) {
        let (conn, mut server) = pair(2);
        give_up_on_a_call(&conn).await;
        assert_eq!((conn.health(), conn.in_flight()), (None, 1));
        let req = server.next().await.unwrap().unwrap();
        assert_eq!(req.id, 1);
        drop(conn);
        let dropped = Instant::now(); // paused clock: exact
        let end = tokio::time::timeout(DRAIN_LIMIT + Duration::from_millis(10), server.next())
            .await
            .expect("the driver still waits for the reply past the drain limit");
        assert!(end.is_none(), "EOF, got {end:?}");
        assert!(dropped.elapsed() >= DRAIN_LIMIT, "{:?}", dropped.elapsed());
    }

    /// A pipelined connection that takes no more requests while a caller still waits: when that caller then
    /// gives up (no deadline, so no timer wakes the driver), the driver hears of it, waits the drain limit for
    /// the late reply, and closes, freeing the slot. Before, it waited for that reply for ever.
    #[tokio::test(start_paused = true)]
    async fn a_caller_giving_up_after_the_poison_starts_the_drain() {
        let (conn, mut server) = pair(2);
        let slot = conn.reserve().await.unwrap();
        let reply = conn
            .send(slot, Request::echo(1, Bytes::from_static(b"one")))
            .unwrap();
        assert_eq!(server.next().await.unwrap().unwrap().id, 1);
        conn.poison(CloseReason::Local);
        // The driver sees the poison while its caller still waits: no drain yet.
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(conn.in_flight(), 1);
        drop(reply);
        let dropped = Instant::now(); // paused clock: exact
        let end = tokio::time::timeout(DRAIN_LIMIT + Duration::from_millis(10), server.next())
            .await
            .expect("the driver still waits for the given-up reply past the drain limit");
        assert!(end.is_none(), "EOF, got {end:?}");
        assert!(dropped.elapsed() >= DRAIN_LIMIT, "{:?}", dropped.elapsed());
        assert_eq!(conn.in_flight(), 0);
    }

    /// A write that fails with requests in flight fails each in its own phase, as a read EOF does: the request
    /// all written and waiting for its reply in the read phase (sent), the one the write failed on in the
    /// write phase (not sent); none is left unanswered or holding its slot. Before, both failed as `Write`.
    #[tokio::test]
    async fn a_failed_write_fails_each_request_in_flight_in_its_own_phase() {
        let (conn, mut server) = pair(4);
        let first = conn
            .send(
                conn.reserve().await.unwrap(),
                Request::echo(1, Bytes::from_static(b"one")),
            )
            .unwrap();
        assert_eq!(server.next().await.unwrap().unwrap().id, 1);
        // The peer reads no more: the next write fails (EPIPE), the first's reply is still owed.
        socket2::SockRef::from(server.get_ref())
            .shutdown(std::net::Shutdown::Read)
            .unwrap();
        let second = conn
            .send(
                conn.reserve().await.unwrap(),
                Request::echo(2, Bytes::from_static(b"two")),
            )
            .unwrap();
        let (a, b) = tokio::join!(first, second);
        let (a, b) = (a.unwrap_err(), b.unwrap_err());
        assert_eq!((a.phase(), a.was_sent()), (Phase::Read, true), "{a}");
        assert_eq!((b.phase(), b.was_sent()), (Phase::Write, false), "{b}");
        assert_eq!(conn.in_flight(), 0);
        assert!(conn.health().is_some());
    }

    /// At depth 1 an HTTP/1.0 reply without keep-alive ends the connection: it is not handed out again. Its
    /// own fields do not say so (no `Connection: close`), its codec does (`Protocol::closes_after`, which the
    /// pipelined core asks). Before, the depth-1 path asked `closes_connection` and the connection stayed
    /// healthy, for a next request the server would never read.
    #[tokio::test]
    async fn at_depth_one_an_http_1_0_reply_without_keep_alive_ends_the_connection() {
        use crate::protocol::Http;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut b) = UnixStream::pair().unwrap();
        let conn = Connection::from_stream(
            Stream::Unix(a),
            Arc::new(Http::default()),
            ConnectionOptions::default(),
        );
        let serve = async {
            let mut buf = vec![0u8; 4096];
            let n = b.read(&mut buf).await.unwrap();
            assert!(buf[..n].ends_with(b"\r\n\r\n"));
            // The server keeps its end open: only the reply says the connection is over.
            b.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
        };
        let (r, ()) = tokio::join!(conn.call(crate::codec::http::Request::get("/")), serve);
        assert_eq!(r.unwrap().status, 200);
        assert_eq!(conn.health(), Some(CloseReason::ServerClose));
        drop(b);
    }

    /// Two connections to one endpoint at `depth`, and the peer of the first.
    fn endpoint_pair(
        depth: usize,
    ) -> (
        Connection<Framed>,
        Connection<Framed>,
        UnixStream,
        UnixStream,
    ) {
        let health = Arc::new(EndpointHealth::default());
        let options = ConnectionOptions {
            depth,
            endpoint_health: health,
            ..Default::default()
        };
        let (older, older_peer) = UnixStream::pair().unwrap();
        let older = Connection::from_stream(
            Stream::Unix(older),
            Arc::new(Framed::default()),
            options.clone(),
        );
        let (a, b) = UnixStream::pair().unwrap();
        let conn = Connection::from_stream(Stream::Unix(a), Arc::new(Framed::default()), options);
        (conn, older, b, older_peer)
    }

    #[tokio::test]
    async fn stray_bytes_and_eof_are_seen_while_idle() {
        // Depth > 1: the driver always has a read armed, so nothing needs to ask.
        let (conn, mut server) = pair(2);
        server.send(Response::ok(99, Bytes::new())).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while conn.health().is_none() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(conn.health(), Some(CloseReason::StrayBytes));

        let (conn, older, peer, _older_peer) = endpoint_pair(2);
        drop(peer);
        tokio::time::timeout(Duration::from_secs(5), conn.shared().endpoint.changed())
            .await
            .unwrap();
        assert_eq!(conn.check(), Err(CloseReason::PeerClosed));
        assert_eq!(older.check(), Err(CloseReason::EndpointReset));
    }

    /// Polls `check` until it fails (the pool's check-out and reaper do this).
    async fn checked(conn: &Connection<Framed>) -> CloseReason {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Err(r) = conn.check() {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn at_depth_one_the_check_sees_stray_bytes_and_eof_with_no_request() {
        let (conn, mut server) = pair(1);
        assert!(matches!(conn.handle(), Handle::Direct(_)));
        server.send(Response::ok(99, Bytes::new())).await.unwrap();
        assert_eq!(checked(&conn).await, CloseReason::StrayBytes);

        let (conn, older, peer, _older_peer) = endpoint_pair(1);
        let r = conn.call(Request::echo(1, Bytes::new()));
        let mut peer = framed_server(peer);
        let serve = async {
            let req = peer.next().await.unwrap().unwrap();
            peer.send(Response::ok(req.id, req.payload)).await.unwrap();
        };
        let (r, ()) = tokio::join!(r, serve);
        r.unwrap();
        assert_eq!(conn.check(), Ok(()));
        drop(peer);
        assert_eq!(checked(&conn).await, CloseReason::PeerClosed);
        assert_eq!(older.check(), Err(CloseReason::EndpointReset));
    }

    /// A server that closed half way through its reply was reported as closing "before replying", phase
    /// `Read`; part of the reply had come, so the phase is `Request`, as a timeout there would say.
    #[tokio::test]
    async fn at_depth_one_a_close_in_the_middle_of_a_reply_is_phase_request() {
        close_in_the_middle_of_a_reply_at_depth(1).await;
    }

    /// The same on a multiplexed connection, which said "before replying" for a reply cut half way.
    #[tokio::test]
    async fn at_depth_four_a_close_in_the_middle_of_a_reply_says_so() {
        close_in_the_middle_of_a_reply_at_depth(4).await;
    }

    async fn close_in_the_middle_of_a_reply_at_depth(depth: usize) {
        use tokio::io::AsyncWriteExt;
        for (cut, phase, why) in [
            (0, Phase::Read, "before replying"),
            (5, Phase::Request, MID_REPLY),
        ] {
            let (a, b) = UnixStream::pair().unwrap();
            let conn = Connection::from_stream(
                Stream::Unix(a),
                Arc::new(Framed::default()),
                ConnectionOptions {
                    depth,
                    ..Default::default()
                },
            );
            let call = conn.call(Request::echo(1, Bytes::from_static(b"hello")));
            let serve = async move {
                let mut server = framed_server(b);
                let req = server.next().await.unwrap().unwrap();
                let mut whole = BytesMut::new();
                ServerCodec::default()
                    .encode(Response::ok(req.id, req.payload), &mut whole)
                    .unwrap();
                let mut io = server.into_inner();
                io.write_all(&whole[..cut]).await.unwrap();
            };
            let (r, ()) = tokio::join!(call, serve);
            let e = r.unwrap_err();
            assert_eq!(
                (e.kind(), e.phase()),
                (ErrorKind::Closed, phase),
                "depth {depth}, cut {cut}: {e}"
            );
            assert!(e.to_string().contains(why), "depth {depth}, cut {cut}: {e}");
        }
    }

    #[tokio::test]
    async fn at_depth_one_a_cancelled_call_poisons_and_its_reply_is_read_before_the_close() {
        let (conn, mut server) = pair(1);
        give_up_on_a_call(&conn).await;
        assert_eq!(conn.health(), Some(CloseReason::Cancelled));
        assert_eq!(conn.in_flight(), 0);
        let again = conn.call(Request::echo(2, Bytes::new())).await.unwrap_err();
        assert!(!again.was_sent(), "{again}");
        // Dropping the connection reads the reply owed, then closes: the server sees a clean EOF, and its reply
        // was consumed (no reset).
        drop(conn);
        answer_then_expect_a_clean_eof(&mut server, 1).await;
    }

    /// The server side of a drain: it receives request `id`, answers it, and the client then closes cleanly
    /// (the reply was read: no reset).
    async fn answer_then_expect_a_clean_eof(server: &mut Server, id: u64) {
        let req = server.next().await.unwrap().unwrap();
        assert_eq!(req.id, id);
        server
            .send(Response::ok(req.id, req.payload))
            .await
            .unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), server.next())
            .await
            .unwrap();
        assert!(end.is_none(), "clean EOF after the drain, got {end:?}");
    }

    #[tokio::test]
    async fn at_depth_one_a_reply_owed_after_the_connection_was_dropped_is_still_read_before_the_close(
    ) {
        let (conn, mut server) = pair(1);
        let Handle::Direct(direct) = conn.handle() else {
            panic!("depth 1 has its own I/O")
        };
        let slot = conn.reserve().await.unwrap();
        let mut exchange =
            direct.exchange(slot, Request::echo(3, Bytes::new()), Instant::now(), None);
        // The request goes out; no reply yet.
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut exchange)
                .await
                .is_err()
        );
        // The pool drops the connection while the exchange runs, then the caller gives up.
        drop(conn);
        drop(exchange);
        answer_then_expect_a_clean_eof(&mut server, 3).await;
    }

    #[tokio::test]
    async fn at_depth_one_a_connection_taken_and_dropped_without_an_exchange_keeps_its_io() {
        let (conn, mut server) = pair(1);
        let Handle::Direct(direct) = conn.handle() else {
            panic!("depth 1 has its own I/O")
        };
        drop(direct.try_take(Instant::now()).expect("free and healthy"));
        assert_eq!((conn.health(), conn.free_slots()), (None, 1));
        let call = conn.call(Request::echo(4, Bytes::from_static(b"ok")));
        let serve = async {
            let req = server.next().await.unwrap().unwrap();
            server
                .send(Response::ok(req.id, req.payload))
                .await
                .unwrap();
        };
        let (reply, ()) = tokio::join!(call, serve);
        assert_eq!(&reply.unwrap().payload[..], b"ok");
    }

    /// The first 7 bytes of a framed reply to request `id`: its length, status and part of its id.
    fn half_a_reply(id: u64) -> Vec<u8> {
        let mut full = BytesMut::new();
        Encode::encode(
            &mut ServerCodec::default(),
            Response::ok(id, Bytes::from_static(b"payload")),
            &mut full,
        )
        .unwrap();
        full[..7].to_vec()
    }

    #[tokio::test(start_paused = true)]
    async fn at_depth_one_a_timeout_says_whether_part_of_the_reply_had_arrived() {
        use tokio::io::AsyncWriteExt;
        let deadline = Duration::from_millis(30);
        for (partial, phase) in [(false, Phase::Read), (true, Phase::Request)] {
            let (conn, server) = pair(1);
            let mut raw = server.into_inner();
            if partial {
                raw.write_all(&half_a_reply(9)).await.unwrap();
            }
            let slot = conn.reserve().await.unwrap();
            let Handle::Direct(direct) = conn.handle() else {
                panic!("depth 1 has its own I/O")
            };
            let now = Instant::now();
            let r = direct
                .exchange(
                    slot,
                    Request::echo(9, Bytes::new()),
                    now,
                    Some(now + deadline),
                )
                .await;
            match r {
                Err(Failure::TimedOut {
                    sent: true,
                    phase: p,
                }) => assert_eq!(p, phase, "partial {partial}"),
                other => panic!("partial {partial}: {other:?}"),
            }
            assert_eq!(
                now.elapsed(),
                deadline,
                "paused clock: exactly at the deadline"
            );
        }
    }

    /// The connection's timer is not moved later per exchange: still armed at an answered exchange's deadline,
    /// it fires early for the next one and is moved to that one's own.
    #[tokio::test(start_paused = true)]
    async fn at_depth_one_an_exchange_times_out_at_its_own_deadline_not_an_earlier_ones() {
        use futures::SinkExt;
        let (conn, mut server) = pair(1);
        let Handle::Direct(direct) = conn.handle() else {
            panic!("depth 1 has its own I/O")
        };
        let limit = Duration::from_millis(30);
        let first = Instant::now();
        let exchange = direct.exchange(
            conn.reserve().await.unwrap(),
            Request::echo(1, Bytes::new()),
            first,
            Some(first + limit),
        );
        let answer = async {
            let req = server.next().await.unwrap().unwrap();
            server
                .send(Response::ok(req.id, req.payload))
                .await
                .unwrap();
        };
        let (reply, ()) = tokio::join!(exchange, answer);
        assert_eq!(reply.unwrap().id, 1);

        tokio::time::sleep(Duration::from_millis(20)).await;
        let Handle::Direct(direct) = conn.handle() else {
            panic!("depth 1 has its own I/O")
        };
        let second = Instant::now();
        let r = direct
            .exchange(
                conn.reserve().await.unwrap(),
                Request::echo(2, Bytes::new()),
                second,
                Some(second + limit),
            )
            .await;
        assert!(
            matches!(r, Err(Failure::TimedOut { sent: true, .. })),
            "{r:?}"
        );
        assert_eq!(
            second.elapsed(),
            limit,
            "paused clock: exactly at its own deadline, not 10 ms in at the first one's"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pipelined_timeouts_say_where_each_request_waited() {
        use tokio::io::AsyncWriteExt;
        let (conn, server) = pair(4);
        let mut raw = server.into_inner();
        let Handle::Queue(queue) = conn.handle() else {
            panic!("depth 4 is driven")
        };
        let now = Instant::now();
        let deadline = Some(now + Duration::from_millis(30));
        let mut replies = Vec::new();
        for id in 0..2u64 {
            let slot = conn.reserve().await.unwrap();
            let r = queue.try_send(slot, Request::echo(id, Bytes::new()), deadline, now);
            replies.push(r.map_err(|(e, _)| e).unwrap());
        }
        // Half of the first reply arrives; nothing of the second.
        raw.write_all(&half_a_reply(0)).await.unwrap();
        let phases: Vec<Phase> = futures::future::join_all(replies)
            .await
            .into_iter()
            .map(|r| {
                let e = r.unwrap_err();
                assert!(e.is_timeout() && e.was_sent(), "{e}");
                assert!(is_driver_timeout(&e));
                e.phase()
            })
            .collect();
        assert_eq!(phases, vec![Phase::Request, Phase::Read]);
    }

    #[tokio::test]
    async fn at_depth_one_the_request_deadline_fires_on_the_connections_own_timer() {
        let (conn, mut server) = pair(1);
        let slot = conn.reserve().await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(30);
        let started = Instant::now();
        let Handle::Direct(direct) = conn.handle() else {
            panic!("depth 1 has its own I/O")
        };
        let r = direct
            .exchange(
                slot,
                Request::echo(5, Bytes::new()),
                started,
                Some(deadline),
            )
            .await;
        assert!(
            matches!(
                r,
                Err(Failure::TimedOut {
                    sent: true,
                    phase: Phase::Read
                })
            ),
            "{r:?}"
        );
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(30), "{took:?}");
        assert_eq!(conn.health(), Some(CloseReason::Cancelled));
        let req = server.next().await.unwrap().unwrap();
        assert_eq!(req.id, 5);
    }

    #[tokio::test]
    async fn a_caller_waits_for_a_freed_slot_and_leaves_when_the_connection_dies() {
        let (conn, _server) = pair(2);
        let conn = Arc::new(conn);
        let (a, b) = (conn.try_reserve().unwrap(), conn.try_reserve().unwrap());
        assert!(conn.try_reserve().is_none());
        let waiter = tokio::spawn({
            let conn = conn.clone();
            async move { conn.reserve().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "no slot is free yet");
        drop(a);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(conn.free_slots(), 1);

        let c = conn.try_reserve().unwrap();
        let waiter = tokio::spawn({
            let conn = conn.clone();
            async move { conn.reserve().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        conn.poison(CloseReason::Local);
        let err = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(!err.was_sent(), "{err}");
        drop((b, c));
        assert_eq!(conn.free_slots(), 2);
    }
}
