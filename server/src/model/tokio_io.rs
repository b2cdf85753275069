//! What the tokio-based models (`async`, `per-core`, and each `processes` worker) share: the accept loop
//! and the connection driver that runs a [`Session`] over any `AsyncRead + AsyncWrite` stream.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::task::TaskTracker;

use crate::config::Proto;
use crate::listen::{Bound, Listener};
use crate::protocol::{refusal, AnySession};
use crate::session::{Next, Session};
use crate::shared::{ConnGuard, Shared};
use crate::stats::Counter;

/// A listener registered with the current tokio runtime.
pub(crate) enum AsyncListener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket.
    Unix(UnixListener),
}

/// A stream the tokio models serve: it can say when it is readable without a buffer being lent to it.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {
    /// Resolves when a read would make progress (at once where the stream cannot tell, e.g. TLS).
    fn ready_to_read(&self) -> impl std::future::Future<Output = io::Result<()>> + Send + '_;
}

impl Stream for tokio::net::TcpStream {
    fn ready_to_read(&self) -> impl std::future::Future<Output = io::Result<()>> + Send + '_ {
        self.readable()
    }
}

impl Stream for tokio::net::UnixStream {
    fn ready_to_read(&self) -> impl std::future::Future<Output = io::Result<()>> + Send + '_ {
        self.readable()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for tokio_rustls::server::TlsStream<S> {
    fn ready_to_read(&self) -> impl std::future::Future<Output = io::Result<()>> + Send + '_ {
        std::future::ready(Ok(()))
    }
}

/// One listener for the tokio models: what it serves and the socket.
pub(crate) struct AsyncBound {
    pub proto: Proto,
    pub tls: bool,
    pub listener: AsyncListener,
}

/// Registers the stream listeners of `bound` with the current runtime (UDP and reserved ports are skipped).
pub(crate) fn register(bound: Vec<Bound>) -> io::Result<Vec<AsyncBound>> {
    let mut out = Vec::new();
    for b in bound {
        let listener = match b.listener {
            Listener::Tcp(l) => AsyncListener::Tcp(TcpListener::from_std(l)?),
            Listener::Unix(l) => AsyncListener::Unix(UnixListener::from_std(l)?),
            Listener::Udp(_) | Listener::Reserved(_) => continue,
        };
        out.push(AsyncBound {
            proto: b.addr.proto,
            tls: b.addr.tls,
            listener,
        });
    }
    Ok(out)
}

/// Accepts on every listener until shutdown, then waits up to the shutdown deadline for the connections to
/// finish what they already received. Connections still open after it are dropped with the runtime.
pub(crate) async fn serve(listeners: Vec<AsyncBound>, shared: Arc<Shared>) {
    let tracker = TaskTracker::new();
    for l in listeners {
        tokio::spawn(accept_loop(l, shared.clone(), tracker.clone()));
    }
    if !shared.config.busy_poll.is_zero() {
        tokio::spawn(busy_poll(shared.clone()));
    }
    shared.shutdown.cancelled().await;
    tracker.close();
    let _ = tokio::time::timeout(shared.config.shutdown_deadline, tracker.wait()).await;
}

/// `busy_poll` for a tokio runtime: keeps a worker polling the reactor instead of sleeping for `busy_poll` after
/// the server last read bytes. A task that yields runs again only after its worker has polled the reactor
/// without blocking, so a task yielding in a loop is a poll loop that also runs every connection made ready.
/// Once the traffic has stopped for `busy_poll` it checks again every [`BUSY_POLL_IDLE_CHECK`]; the first
/// bytes after a pause wake the worker the usual way. One per runtime: `per-core` polls on every core, `async`
/// on one of its workers.
async fn busy_poll(shared: Arc<Shared>) {
    let period = shared.config.busy_poll;
    let mut seen = shared.stats.get(Counter::BytesIn);
    let mut last = Instant::now();
    while !shared.shutdown.is_cancelled() {
        tokio::task::yield_now().await;
        let read = shared.stats.get(Counter::BytesIn);
        if read != seen {
            seen = read;
            last = Instant::now();
        } else if last.elapsed() >= period {
            tokio::time::sleep(BUSY_POLL_IDLE_CHECK).await;
        }
    }
}

/// How often an idle [`busy_poll`] looks for traffic.
const BUSY_POLL_IDLE_CHECK: Duration = Duration::from_millis(1);

/// Pause after an accept error (out of file descriptors …) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

async fn accept_loop(l: AsyncBound, shared: Arc<Shared>, tracker: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return,
            r = accept(&l.listener, shared.config.nodelay) => r,
        };
        match accepted {
            Ok(stream) => {
                let guard = shared.admit();
                spawn_connection(&tracker, stream, l.proto, l.tls, shared.clone(), guard);
            }
            Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
        }
    }
}

/// An accepted stream.
enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &AsyncListener, nodelay: bool) -> io::Result<Accepted> {
    match l {
        AsyncListener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            if nodelay {
                let _ = s.set_nodelay(true);
            }
            Ok(Accepted::Tcp(s))
        }
        AsyncListener::Unix(l) => Ok(Accepted::Unix(l.accept().await?.0)),
    }
}

/// Spawns one accepted connection: TLS handshake if asked, then the refusal or the session.
///
/// One task type per stream type, so a plain connection's task is sized for a plain stream and does not
/// carry room for a TLS state machine (about 1.5 KiB against 9 KiB).
fn spawn_connection(
    tracker: &TaskTracker,
    stream: Accepted,
    proto: Proto,
    tls: bool,
    shared: Arc<Shared>,
    guard: Option<ConnGuard>,
) {
    match (stream, tls.then(|| shared.tls.clone()).flatten()) {
        (Accepted::Tcp(s), None) => {
            tracker.spawn(async move { admitted(s, proto, &shared, guard).await });
        }
        (Accepted::Unix(s), None) => {
            tracker.spawn(async move { admitted(s, proto, &shared, guard).await });
        }
        (Accepted::Tcp(s), Some(cfg)) => {
            tracker.spawn(async move {
                if let Some(s) = handshake(s, cfg, &shared).await {
                    admitted(s, proto, &shared, guard).await
                }
            });
        }
        (Accepted::Unix(s), Some(cfg)) => {
            tracker.spawn(async move {
                if let Some(s) = handshake(s, cfg, &shared).await {
                    admitted(s, proto, &shared, guard).await
                }
            });
        }
    }
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    cfg: Arc<rustls::ServerConfig>,
    shared: &Shared,
) -> Option<tokio_rustls::server::TlsStream<S>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    match tokio::time::timeout(shared.config.limits.read_timeout, acceptor.accept(s)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(_)) => {
            shared.stats.inc(Counter::ErrorsIo);
            None
        }
        Err(_) => {
            shared.stats.inc(Counter::ErrorsReadTimeout);
            None
        }
    }
}

async fn admitted<S: Stream>(
    mut io: S,
    proto: Proto,
    shared: &Arc<Shared>,
    guard: Option<ConnGuard>,
) {
    match guard {
        Some(_guard) => drive(io, AnySession::new(proto, shared), shared).await,
        None => {
            let msg = refusal(proto);
            if !msg.is_empty() {
                let write = async {
                    io.write_all(msg).await?;
                    io.flush().await
                };
                if let Ok(Ok(())) =
                    tokio::time::timeout(shared.config.limits.write_timeout, write).await
                {
                    shared.stats.add(Counter::BytesOut, msg.len() as u64);
                }
            }
            let _ = tokio::time::timeout(shared.config.limits.write_timeout, io.shutdown()).await;
        }
    }
}

/// Writes all of `output` (and flushes, for TLS) within the write timeout; counts the outcome.
async fn write_out<S: AsyncWrite + Unpin>(
    io: &mut S,
    output: &mut BytesMut,
    shared: &Shared,
) -> bool {
    use futures::FutureExt;
    let total = output.len() as u64;
    // Fast path, the usual case: the socket takes it all at once. No timer is created (creating one touches
    // the runtime handle's shared reference count).
    loop {
        if output.is_empty() {
            match io.flush().now_or_never() {
                Some(Ok(())) => {
                    shared.stats.add(Counter::BytesOut, total);
                    return true;
                }
                Some(Err(_)) => {
                    shared.stats.inc(Counter::ErrorsIo);
                    return false;
                }
                None => break,
            }
        }
        match io.write(output).now_or_never() {
            Some(Ok(0)) | Some(Err(_)) => {
                shared.stats.inc(Counter::ErrorsIo);
                return false;
            }
            Some(Ok(n)) => output.advance(n),
            None => break,
        }
    }
    // Slow path: the client is not keeping up. It may take as long as it reads steadily: the write timeout is
    // the longest one write may make no progress, as `--write-timeout` says, not a limit on the whole batch.
    let limit = shared.config.limits.write_timeout;
    while !output.is_empty() {
        match tokio::time::timeout(limit, io.write(output)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                shared.stats.inc(Counter::ErrorsIo);
                return false;
            }
            Ok(Ok(n)) => output.advance(n),
            Err(_) => {
                shared.stats.inc(Counter::ErrorsWriteTimeout);
                return false;
            }
        }
    }
    match tokio::time::timeout(limit, io.flush()).await {
        Ok(Ok(())) => {
            shared.stats.add(Counter::BytesOut, total);
            true
        }
        Ok(Err(_)) => {
            shared.stats.inc(Counter::ErrorsIo);
            false
        }
        Err(_) => {
            shared.stats.inc(Counter::ErrorsWriteTimeout);
            false
        }
    }
}

/// After the last reply and our FIN: read and drop what the client still sends (the rest of a refused
/// body, requests pipelined behind `Connection: close`) for a moment, so closing with unread data does not
/// make the kernel send a reset that could destroy the reply before the client reads it.
async fn linger<S: Stream>(io: &mut S, input: &mut BytesMut) {
    let until = tokio::time::Instant::now() + LINGER_TIME;
    let mut drained = 0usize;
    while drained < LINGER_BYTES {
        input.clear();
        input.reserve(16 * 1024);
        match tokio::time::timeout_at(until, io.read_buf(input)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

/// How long [`linger`] reads after the close.
pub(crate) const LINGER_TIME: Duration = Duration::from_millis(500);
/// How much [`linger`] reads at most.
pub(crate) const LINGER_BYTES: usize = 1024 * 1024;

/// Runs `session` over `io` until either side closes, a limit or timeout is hit, or shutdown finds the
/// connection between requests.
///
/// One read buffer and one write buffer: every reply produced from one read goes out in one write. The
/// buffers start at `read_buffer` bytes, grow on demand and are dropped back when they grew past it and are
/// empty. While the output is above `write_high_water`, the session stops decoding and nothing is read.
/// The timer is armed once and only moved when a deadline comes closer, so a busy connection does not touch
/// the timer wheel on every request.
pub(crate) async fn drive<S: Stream>(mut io: S, mut session: AnySession, shared: &Arc<Shared>) {
    let limits = &shared.config.limits;
    let stats = &shared.stats;
    let chunk = shared.config.read_buffer.max(64);
    let shrink_above = chunk.max(64 * 1024);
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    let mut partial_since: Option<Instant> = None;
    let mut last_active = Instant::now();
    let mut draining = false;
    let mut resume = false;
    let mut timer_at = last_active + limits.idle_timeout;
    let timer = tokio::time::sleep_until(timer_at.into());
    tokio::pin!(timer);
    // A child token per connection: polling it takes only this connection's lock, never one that every
    // connection shares.
    let cancel = shared.shutdown.child_token();
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let mut next = Next::Continue;
        if resume || !input.is_empty() {
            resume = false;
            next = session.on_input(&mut input, &mut output, Instant::now());
        }
        if !output.is_empty() {
            if !write_out(&mut io, &mut output, shared).await {
                return;
            }
            if output.capacity() > shrink_above {
                output = BytesMut::new();
            }
        }
        match next {
            Next::Continue => {}
            Next::Flush => {
                resume = true;
                continue;
            }
            Next::WaitUntil(due) => {
                tokio::time::sleep_until(due.into()).await;
                resume = true;
                continue;
            }
            Next::Close => {
                let _ = tokio::time::timeout(limits.write_timeout, io.shutdown()).await;
                linger(&mut io, &mut input).await;
                return;
            }
        }
        if input.is_empty() && !session.in_progress() {
            partial_since = None;
            if draining || shared.is_stopping() {
                // Shutting down between requests: answer what the client sent before it saw us stop (already
                // in the socket buffer), then close.
                use futures::FutureExt;
                input.reserve(chunk);
                match io.read_buf(&mut input).now_or_never() {
                    Some(Ok(n)) if n > 0 => {
                        stats.add(Counter::BytesIn, n as u64);
                        continue;
                    }
                    _ => return,
                }
            }
            if input.capacity() > shrink_above {
                input = BytesMut::new();
            }
        } else if partial_since.is_none() {
            partial_since = Some(Instant::now());
        }
        let deadline = match partial_since {
            Some(t) => t + limits.read_timeout,
            None => last_active + limits.idle_timeout,
        };
        if deadline < timer_at {
            timer_at = deadline;
            timer.as_mut().reset(deadline.into());
        }
        // A connection that has never sent anything waits without a buffer (idle connections stay small);
        // once it has one it keeps it, so busy connections never allocate per request.
        let lazy = input.capacity() == 0;
        if !lazy && input.capacity() - input.len() < chunk / 4 {
            input.reserve(chunk);
        }
        tokio::select! {
            biased;
            r = async {
                if lazy {
                    io.ready_to_read().await?;
                    input.reserve(chunk);
                }
                io.read_buf(&mut input).await
            } => match r {
                Ok(0) => return,
                Ok(n) => {
                    stats.add(Counter::BytesIn, n as u64);
                    last_active = Instant::now();
                }
                Err(_) => {
                    stats.inc(Counter::ErrorsIo);
                    return;
                }
            },
            _ = &mut timer => {
                if Instant::now() >= deadline {
                    if partial_since.is_some() {
                        stats.inc(Counter::ErrorsReadTimeout);
                        session.on_read_timeout(&mut output);
                        if !output.is_empty() {
                            write_out(&mut io, &mut output, shared).await;
                        }
                        let _ = tokio::time::timeout(limits.write_timeout, io.shutdown()).await;
                    } else {
                        stats.inc(Counter::ErrorsIdleTimeout);
                    }
                    return;
                }
                timer_at = deadline;
                timer.as_mut().reset(deadline.into());
            }
            _ = &mut cancelled, if !draining => {
                draining = true;
                if partial_since.is_none() {
                    return;
                }
            }
        }
    }
}
