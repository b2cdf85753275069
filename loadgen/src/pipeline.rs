//! The closed loop's fast path: one task per connection that owns its socket and its protocol codec and keeps
//! `--pipeline` requests in flight all the time.
//!
//! Going through the pooled `sockpool::Client` costs every request a pool check-out, a `oneshot`, a channel
//! hop to the connection's driver task, a timer and a task wake-up: several microseconds of the load
//! generator's CPU per request, so that it, not the server, was the bottleneck. A closed loop needs none of
//! that, because nobody else shares its connections. So each connection here is one task doing what
//! redis-benchmark, memtier_benchmark and wrk do:
//!
//! ```text
//!  claim + encode up to `pipeline` requests ──one write()──► socket
//!  read everything readable ──decode, match FIFO + check tag──► record each reply, re-claim its slot ──┘
//! ```
//!
//! - **Continuous pipelining.** As soon as a reply is decoded its slot encodes the next request into the
//!   write buffer; once everything readable is handled, the whole buffer goes out in one write. Reads and
//!   writes are polled together, so a server blocked on writing replies never deadlocks us.
//! - **Still the SDK.** Connections come from [`sockpool::transport::Connector`] (socket options, TLS,
//!   connect and handshake timeouts); requests are encoded and replies decoded by the protocol's own codec
//!   ([`sockpool::protocol::Protocol::codec`]), and each reply is checked against its request's tag
//!   ([`sockpool::protocol::Protocol::request_tag`], the framed id): a reply that does not match is a
//!   protocol error.
//! - **One clock read per batch.** The requests of one write share a send time, the replies of one read a
//!   reply time; latency = reply time − send time (corrected = raw: a closed loop has no schedule).
//! - **Counts stay exact.** Every request is claimed from the worker's [`ClosedLoop`] before it is encoded
//!   (the `--requests` budget is never exceeded, the end of `--duration` stops new ones) and reported once:
//!   replied, failed with the connection, or timed out.
//! - **Timeouts.** A request without its reply after `--timeout` is a timeout error, recorded when its
//!   timeout fires, named by where its time went: `timeout_write` (not all of it written), `timeout_read` (no
//!   byte of its reply yet) or `timeout_request` (its reply partly read). The connection then takes no new requests; the later ones still get their replies (or time out
//!   in turn), the late replies are read and dropped, and then it is closed and reopened. One timer per
//!   connection, armed at the oldest request's deadline and only moved when it fires.
//! - **Failures.** When the peer closes or resets the connection, every request in flight on it fails with
//!   that kind (`closed`, `reset`); a connection that cannot be opened counts one failed request (as on the
//!   SDK path, where the request that tried to open it fails). Either way the connection is reopened after
//!   [`RECONNECT_BACKOFF`].
//!
//! Open loops (`--rate`, `--ramp`) and UDP keep going through the SDK clients in [`crate::transport`].

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::future::{FutureExt, LocalBoxFuture};
use sockpool::transport::{Connector, Endpoint, Stream};
use sockpool::{Phase as SdkPhase, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant, Sleep};
use tokio_util::codec::{Decoder, Encoder};

use crate::check::Check;
use crate::config::Config;
use crate::driver::{ClosedLoop, RECONNECT_BACKOFF};
use crate::recorder::{ErrorKind, Phase};
use crate::transport::{classify, socket_options, tls_config, Speak};

/// Read and write buffer capacity per connection; the read buffer grows when a reply is larger.
const BUFFER_CAPACITY: usize = 16 * 1024;

/// One worker's pipelined connections to one target.
pub struct Pipeline<P: Speak> {
    /// Builds requests, classifies replies, makes each connection's codec.
    protocol: P,
    /// How replies are judged (the same [`Check`] the open loop uses).
    check: Check,
    /// The check compares each reply with its request's bytes: keep them while it is in flight.
    compare: bool,
    /// Opens connections with the run's socket options, TLS settings and connect timeout.
    connector: Connector,
    /// Where to connect.
    endpoint: Endpoint,
    /// Connections this worker keeps open.
    connections: usize,
    /// Requests in flight on each (`--pipeline`).
    depth: usize,
}

impl<P: Speak> Pipeline<P> {
    /// `connections` connections to `target` (`host:port`, `[::1]:port`, `unix:/path`, `tls://host:port`) with
    /// `config`'s pipeline depth, socket options, TLS settings and connect timeout.
    pub fn new(
        protocol: P,
        config: &Config,
        target: &str,
        connections: usize,
    ) -> Result<Pipeline<P>, String> {
        let endpoint: Endpoint = target.parse().map_err(|e: sockpool::Error| e.to_string())?;
        let timeouts = Timeouts {
            connect: config.connect_timeout,
            tls_handshake: config.connect_timeout,
            ..Timeouts::default()
        };
        let tls = tls_config(config);
        let connector = Connector::new(socket_options(config), &timeouts, tls.as_ref())
            .map_err(|e| e.to_string())?;
        Ok(Pipeline {
            protocol,
            check: config.check.clone(),
            compare: config.check.compares_request(config.protocol),
            connector,
            endpoint,
            connections,
            depth: config.pipeline.max(1),
        })
    }

    /// Runs the closed loop: one task per connection until `run` allows no more requests and every request
    /// in flight has finished.
    pub fn run(self: &Rc<Self>, run: Rc<ClosedLoop>) -> LocalBoxFuture<'static, ()> {
        let me = self.clone();
        async move {
            let mut tasks = JoinSet::new();
            for _ in 0..me.connections {
                tasks.spawn_local(me.clone().connection(run.clone()));
            }
            while tasks.join_next().await.is_some() {}
        }
        .boxed_local()
    }

    /// One connection slot: connect, run a session, reconnect, until the run is over.
    async fn connection(self: Rc<Self>, run: Rc<ClosedLoop>) {
        let mut next_id = 0u64;
        loop {
            let started = Instant::now();
            if !run.may_send(started) {
                return;
            }
            match self.connector.connect(&self.endpoint, None).await {
                Ok(stream) => {
                    run.connected(started.elapsed());
                    match self.session(&run, stream, &mut next_id).await {
                        End::Finished => return,
                        End::Drained => continue,
                        End::Failed => {}
                    }
                }
                Err(e) => {
                    // The request that would have gone first fails, as it does through the SDK client.
                    let Some(measured) = run.claim(started) else {
                        return;
                    };
                    run.finished(
                        started,
                        Instant::now(),
                        measured,
                        0,
                        Err(classify(&e).into()),
                    );
                }
            }
            sleep(RECONNECT_BACKOFF).await;
        }
    }

    /// Drives one open connection until it fails, is drained after a timeout or a server close, or the run
    /// is over.
    async fn session(&self, run: &ClosedLoop, mut stream: Stream, next_id: &mut u64) -> End {
        let timeout = run.timeout();
        let mut codec = self.protocol.codec();
        let mut rbuf = BytesMut::with_capacity(BUFFER_CAPACITY);
        let mut wbuf = BytesMut::with_capacity(BUFFER_CAPACITY);
        let mut flight = Flight::with_capacity(self.depth);
        // Why no new request goes on this connection any more (`None` while it takes them).
        let mut closing: Option<End> = None;
        let mut unflushed = false;
        // Bytes encoded into and written out of `wbuf` since the connection opened: a request whose bytes are
        // not all written when it times out timed out writing.
        let mut encoded = 0u64;
        let mut written = 0u64;
        let mut timer = pin!(sleep(timeout));
        let mut now = Instant::now();
        loop {
            // Refill every free slot; the whole batch shares one send time.
            while closing.is_none() && flight.queue.len() < self.depth {
                let Some(measured) = run.claim(now) else {
                    closing = Some(End::Finished);
                    break;
                };
                let req = run.next_request();
                let bytes_sent = req.payload_len() as u64;
                let expect = if self.compare {
                    req.bytes()
                } else {
                    bytes::Bytes::new()
                };
                let request = self.protocol.request(req, *next_id);
                *next_id = next_id.wrapping_add(1);
                let tag = self.protocol.request_tag(&request);
                let before = wbuf.len();
                if codec.encode(request, &mut wbuf).is_err() {
                    // The request cannot be put on the wire (too large for the codec): it fails unsent.
                    wbuf.truncate(before);
                    run.finished(now, now, measured, 0, Err(ErrorKind::Other.into()));
                    closing = Some(End::Failed);
                    break;
                }
                if flight.live == 0 {
                    timer.as_mut().reset(now + timeout);
                }
                let start = encoded;
                encoded += (wbuf.len() - before) as u64;
                flight.push(InFlight {
                    tag,
                    expect,
                    sent: now,
                    start,
                    end: encoded,
                    measured,
                    bytes_sent,
                    expired: false,
                });
            }
            if flight.live == 0 {
                // Nothing left to wait for (late replies to timed-out requests are not worth waiting for).
                return closing.unwrap_or(End::Finished);
            }
            if rbuf.capacity() - rbuf.len() < BUFFER_CAPACITY / 2 {
                rbuf.reserve(BUFFER_CAPACITY);
            }
            let event = poll_fn(|cx| {
                poll_io(
                    cx,
                    &mut stream,
                    &mut wbuf,
                    &mut unflushed,
                    &mut written,
                    &mut rbuf,
                    timer.as_mut(),
                )
            })
            .await;
            now = Instant::now();
            match event {
                Event::Read(0) => {
                    flight.fail_all(run, now, ErrorKind::Closed, written);
                    return End::Failed;
                }
                Event::Read(_) => {
                    if let Err(kind) = self.deliver(run, &mut codec, &mut rbuf, &mut flight, now) {
                        flight.fail_all(run, now, kind, written);
                        return End::Failed;
                    }
                    if flight.closes_after && closing.is_none() {
                        closing = Some(End::Drained);
                    }
                }
                Event::Failed(kind) => {
                    flight.fail_all(run, now, kind, written);
                    return End::Failed;
                }
                Event::Timer => {
                    if flight.expire(run, now, timeout, written, !rbuf.is_empty()) {
                        closing = Some(End::Failed);
                    }
                    if let Some(deadline) = flight.next_deadline(timeout) {
                        timer.as_mut().reset(deadline);
                    }
                }
            }
        }
    }

    /// Decodes every complete reply in `rbuf` and records it against the oldest request in flight.
    /// An error means the connection is out of step (undecodable reply, wrong tag, bytes nobody asked for).
    fn deliver(
        &self,
        run: &ClosedLoop,
        codec: &mut P::Codec,
        rbuf: &mut BytesMut,
        flight: &mut Flight,
        now: Instant,
    ) -> Result<(), ErrorKind> {
        while !flight.queue.is_empty() {
            let reply = match codec.decode(rbuf) {
                Ok(Some(reply)) => reply,
                Ok(None) => return Ok(()),
                Err(_) => return Err(ErrorKind::Protocol),
            };
            let Some(f) = flight.queue.pop_front() else {
                break;
            };
            if self.protocol.check_reply(f.tag, &reply).is_err() {
                if !f.expired {
                    flight.live -= 1;
                    let e = Err(ErrorKind::Protocol.into());
                    run.finished(f.sent, now, f.measured, f.bytes_sent, e);
                }
                return Err(ErrorKind::Protocol);
            }
            if self.protocol.closes_after(codec, &reply) {
                flight.closes_after = true;
            }
            if !f.expired {
                flight.live -= 1;
                let result = self.protocol.reply(&self.check, &f.expect, &reply);
                run.finished(f.sent, now, f.measured, f.bytes_sent, result);
            }
        }
        // Nothing in flight: any byte left is one nobody asked for.
        if rbuf.is_empty() {
            Ok(())
        } else {
            Err(ErrorKind::Protocol)
        }
    }
}

/// How a session ended, and so what its connection slot does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The run allows no more requests: the slot ends.
    Finished,
    /// The connection ended without an error (the server announced its close): reconnect at once.
    Drained,
    /// The connection failed or a request timed out: reconnect after [`RECONNECT_BACKOFF`].
    Failed,
}

/// One request on the wire.
#[derive(Debug, Clone)]
struct InFlight {
    /// What its reply must carry ([`Protocol::request_tag`](sockpool::protocol::Protocol::request_tag)).
    tag: u64,
    /// The request's bytes, when its reply is compared with them ([`Check::compares_request`]).
    expect: bytes::Bytes,
    /// When its batch was written.
    sent: Instant,
    /// Offset of its first byte in the connection's output.
    start: u64,
    /// Offset just past its last byte.
    end: u64,
    /// Counted in the results (not warm-up).
    measured: bool,
    /// Payload bytes it carries.
    bytes_sent: u64,
    /// Already recorded as a timeout: its late reply is read and dropped.
    expired: bool,
}

/// The requests in flight on one connection, oldest first.
#[derive(Debug)]
struct Flight {
    /// Requests in the order they were written (replies come back in this order).
    queue: VecDeque<InFlight>,
    /// Requests in `queue` not yet recorded (not expired).
    live: usize,
    /// A reply said the server closes the connection after it.
    closes_after: bool,
}

impl Flight {
    fn with_capacity(n: usize) -> Flight {
        Flight {
            queue: VecDeque::with_capacity(n),
            live: 0,
            closes_after: false,
        }
    }

    fn push(&mut self, f: InFlight) {
        self.live += 1;
        self.queue.push_back(f);
    }

    /// Records every live request as failed with `kind` at `now`; `written` bytes of the connection's
    /// output had gone out (a request with any of them counts its payload as sent).
    fn fail_all(&mut self, run: &ClosedLoop, now: Instant, kind: ErrorKind, written: u64) {
        for f in self.queue.drain(..).filter(|f| !f.expired) {
            let sent = if f.start < written { f.bytes_sent } else { 0 };
            run.finished(f.sent, now, f.measured, sent, Err(kind.into()));
        }
        self.live = 0;
    }

    /// Records the live requests whose timeout has passed as timeouts, at `now` (when the timer fired: their
    /// timeout, or just after it). True if any. The phase says where the time went: `write` when the
    /// request was not all written, `request` for the oldest request when part of its reply has arrived
    /// (`partial`), else `read` (no byte of its reply yet).
    fn expire(
        &mut self,
        run: &ClosedLoop,
        now: Instant,
        timeout: Duration,
        written: u64,
        partial: bool,
    ) -> bool {
        let mut any = false;
        for (i, f) in self.queue.iter_mut().enumerate() {
            if f.expired {
                continue;
            }
            let deadline = f.sent + timeout;
            if deadline > now {
                break;
            }
            f.expired = true;
            self.live -= 1;
            any = true;
            let phase = if f.end > written {
                Phase::Write
            } else if i == 0 && partial {
                Phase::Request
            } else {
                Phase::Read
            };
            let sent = if f.start < written { f.bytes_sent } else { 0 };
            run.finished(
                f.sent,
                now,
                f.measured,
                sent,
                Err(ErrorKind::Timeout(phase).into()),
            );
        }
        any
    }

    /// When the oldest live request times out.
    fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.queue
            .iter()
            .find(|f| !f.expired)
            .map(|f| f.sent + timeout)
    }
}

/// What woke a session.
enum Event {
    /// Bytes read (0: the peer closed).
    Read(usize),
    /// The socket failed, with this kind.
    Failed(ErrorKind),
    /// The oldest request's deadline (or an earlier one) passed.
    Timer,
}

/// Writes what it can of `wbuf` (flushing once it is empty, for TLS), then reads, then checks the timer.
/// Polling both directions at once means a server that stops reading until we read never deadlocks us.
fn poll_io(
    cx: &mut Context<'_>,
    stream: &mut Stream,
    wbuf: &mut BytesMut,
    unflushed: &mut bool,
    written: &mut u64,
    rbuf: &mut BytesMut,
    timer: Pin<&mut Sleep>,
) -> Poll<Event> {
    let failed = |phase, e| Poll::Ready(Event::Failed(classify(&sockpool::Error::io(phase, e))));
    while !wbuf.is_empty() {
        match Pin::new(&mut *stream).poll_write(cx, wbuf) {
            // The socket takes no more bytes: the peer is gone (as the SDK's connection driver reads it).
            Poll::Ready(Ok(0)) => return Poll::Ready(Event::Failed(ErrorKind::Closed)),
            Poll::Ready(Ok(n)) => {
                wbuf.advance(n);
                *written += n as u64;
                *unflushed = true;
            }
            Poll::Ready(Err(e)) => return failed(SdkPhase::Write, e),
            Poll::Pending => break,
        }
    }
    if wbuf.is_empty() && *unflushed {
        match Pin::new(&mut *stream).poll_flush(cx) {
            Poll::Ready(Ok(())) => *unflushed = false,
            Poll::Ready(Err(e)) => return failed(SdkPhase::Write, e),
            Poll::Pending => {}
        }
    }
    // `read_buf` is cancel-safe: a fresh future per poll only calls `poll_read` once.
    match pin!(stream.read_buf(rbuf)).poll(cx) {
        Poll::Ready(Ok(n)) => return Poll::Ready(Event::Read(n)),
        Poll::Ready(Err(e)) => return failed(SdkPhase::Read, e),
        Poll::Pending => {}
    }
    match timer.poll(cx) {
        Poll::Ready(()) => Poll::Ready(Event::Timer),
        Poll::Pending => Poll::Pending,
    }
}
