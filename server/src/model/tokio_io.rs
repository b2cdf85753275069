//! What the tokio-based models (`async`, `per-core`, and each `processes` worker) share: the accept loop
//! and the I/O shell that runs a [`Conn`] over a tokio socket.

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{Interest, Ready};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::task::TaskTracker;

use crate::config::Proto;
use crate::conn::{self, Conn, Step};
use crate::listen::{Bound, Listener};
use crate::shared::Shared;
use crate::stats::Counter;

/// A listener registered with the current tokio runtime.
pub(crate) enum AsyncListener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket.
    Unix(UnixListener),
}

/// A tokio socket, driven through readiness and non-blocking calls (the `Conn` holds the buffers).
trait Socket: AsFd + Send + 'static {
    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + Send + '_;
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;

    /// Reads what is there into `buf`'s spare room, and when that was less than the room (the socket is
    /// drained, as tokio's own `poll_read` reasons on epoll) clears the socket's read readiness. `try_read_buf`
    /// clears it only on `EAGAIN`: after each request the shell came back to a socket still marked readable and
    /// made one `recv` that returned `EAGAIN` before it waited (wrk `-c 2000`: 9,309 of 44,797 `recvfrom`s).
    fn read_drained(&self, buf: &mut BytesMut) -> io::Result<usize> {
        if buf.capacity() == buf.len() {
            buf.reserve(64);
        }
        let room = buf.capacity() - buf.len();
        let mut got = None;
        // The read itself is `try_read_buf`'s; the outer `try_io` only clears the readiness.
        let r = self.try_io(Interest::READABLE, || {
            let n = self.try_read_buf(buf)?;
            got = Some(n);
            if n > 0 && n < room {
                // Not an error: it makes `try_io` clear the readiness. The bytes read are returned below.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match got {
            Some(n) => Ok(n),
            None => r,
        }
    }
}

macro_rules! socket {
    ($($t:ty),*) => {$(
        impl Socket for $t {
            fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + Send + '_ {
                <$t>::ready(self, interest)
            }
            fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
                <$t>::try_io(self, interest, f)
            }
            fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
                <$t>::try_read_buf(self, buf)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$t>::try_write(self, buf)
            }
        }
    )*};
}
socket!(TcpStream, UnixStream);

fn shut_write(s: &impl AsFd) {
    let _ = socket2::SockRef::from(s).shutdown(Shutdown::Write);
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
/// Accepts in a row before the accept loop yields, so a burst of new connections waits its turn behind the
/// connections already served instead of starving them.
const ACCEPT_BATCH: usize = 64;

async fn accept_loop(l: AsyncBound, shared: Arc<Shared>, tracker: TaskTracker) {
    let (proto, tls) = (l.proto, l.tls);
    for n in 1.. {
        let accepted = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return,
            r = accept(&l.listener, shared.config.nodelay) => r,
        };
        match accepted {
            Ok(Accepted::Tcp(s)) => start(&tracker, s, proto, tls, &shared),
            Ok(Accepted::Unix(s)) => start(&tracker, s, proto, tls, &shared),
            Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
        }
        if n % ACCEPT_BATCH == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// An accepted stream.
enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
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

/// Admits an accepted socket and spawns its connection task, or refuses it on the spot.
fn start<S: Socket>(tracker: &TaskTracker, s: S, proto: Proto, tls: bool, shared: &Arc<Shared>) {
    match conn::admit(shared, proto, tls) {
        Ok(conn) => {
            let shared = shared.clone();
            tracker.spawn(async move { drive(s, conn, &shared).await });
        }
        Err(refusal) => {
            conn::refuse(shared, refusal, |b| s.try_write(b));
            shut_write(&s);
        }
    }
}

/// Runs `conn` over `s` until it closes. One timer per connection, armed at the first deadline and only moved
/// when a deadline comes closer (it fires early at worst, and the `Conn` says the deadline is not yet due), so a
/// busy connection does not touch the timer wheel on every request.
async fn drive<S: Socket>(s: S, mut conn: Conn, shared: &Shared) {
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    // A child token per connection: polling it takes only this connection's lock, never one that every
    // connection shares.
    let cancel = shared.shutdown.child_token();
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    // `look`: the next wait polls the cancellation future even before a wake-up (the first wait, and after a
    // SLEEP or a yield, whose await may have taken the wake-up that cancellation sent).
    let (mut stopped, mut look) = (false, true);
    loop {
        let (reading, due) = match conn.step(Instant::now()) {
            Step::Read(due) => (true, due),
            Step::Write(due) => match conn.write_with(|b| s.try_write(b)) {
                false => continue,
                true => (false, due),
            },
            Step::Sleep(until) => {
                tokio::time::sleep_until(until.into()).await;
                look = true;
                continue;
            }
            Step::Yield => {
                tokio::task::yield_now().await;
                look = true;
                continue;
            }
            Step::ShutdownWrite => {
                shut_write(&s);
                continue;
            }
            Step::Close => return,
        };
        if armed.is_none_or(|at| due < at) {
            armed = Some(due);
            timer.as_mut().reset(due.into());
        }
        let interest = if reading {
            Interest::READABLE
        } else {
            Interest::WRITABLE
        };
        let ready = s.ready(interest);
        tokio::pin!(ready);
        let mut woken = false;
        let woke = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = ready.as_mut().poll(cx) {
                return Poll::Ready(Woke::Socket(r));
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Woke::Timer);
            }
            // The cancellation future keeps the waker of its first poll (this task's), and polling it takes two
            // locks: it is looked at when `look` says so and on a wake-up that neither the socket nor the timer
            // explains, not on every request.
            if !stopped && (woken || look) {
                look = false;
                if cancelled.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Woke::Stop);
                }
            }
            woken = true;
            Poll::Pending
        })
        .await;
        match woke {
            Woke::Socket(Ok(_)) if reading => {
                conn.read_with(|b| s.read_drained(b), Instant::now());
            }
            Woke::Socket(Ok(_)) => {}
            Woke::Socket(Err(_)) => conn.fail(),
            Woke::Timer => armed = None,
            Woke::Stop => {
                stopped = true;
                conn.stop();
            }
        }
        // The cancellation's wake-up may have come merged with the socket's or the timer's and been spent on it:
        // the next wait would not look at the cancellation, and a connection with nothing more to come (a TLS
        // client silent in its handshake) held the shutdown to its read timeout. One atomic load a wake-up; the
        // flag is set before the token is cancelled (`Shared::begin_shutdown`).
        if !stopped && shared.is_stopping() {
            stopped = true;
            conn.stop();
        }
    }
}

/// What ended a connection's wait.
enum Woke {
    Socket(io::Result<Ready>),
    Timer,
    Stop,
}
