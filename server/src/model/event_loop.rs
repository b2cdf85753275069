//! `event-loop`: one thread, one mio poll loop over non-blocking sockets (edge-triggered), the classic
//! epoll server. Timers: a heap for framed SLEEP, and a sweep a few times per shortest timeout for the read,
//! idle and write timeouts. TCP and Unix sockets, plain or TLS (rustls driven by hand over the non-blocking
//! socket: `read_tls`/`process_new_packets`/`write_tls`). A TLS client over `max_connections` is closed
//! without a reply (the refusal would need a handshake first).
//!
//! Shutdown: a mio `Waker` wakes the loop, the listeners close, idle connections close at once, the others
//! when they have answered what they received, and the loop ends when none is left or at the shutdown
//! deadline.
//!
//! Busy polling (`busy_poll`): for that long after the last event the loop polls without sleeping, so the
//! clients' writes do not have to wake it between bursts.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::Proto;
use crate::listen::{Bound, Listener};
use crate::protocol::{refusal, AnySession};
use crate::session::{Next, Session};
use crate::shared::{ConnGuard, Shared};
use crate::stats::Counter;

const WAKE: Token = Token(usize::MAX);
/// Tokens below this are listeners; connection `i` has token `CONN_BASE + i`.
const CONN_BASE: usize = 1 << 20;

enum MioListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

enum MioStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for MioStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MioStream::Tcp(s) => s.read(buf),
            MioStream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for MioStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MioStream::Tcp(s) => s.write(buf),
            MioStream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MioStream {
    fn shutdown_write(&self) {
        let _ = match self {
            MioStream::Tcp(s) => s.shutdown(Shutdown::Write),
            MioStream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            MioStream::Tcp(s) => s,
            MioStream::Unix(s) => s,
        }
    }
}

/// A connection's byte stream: the socket, or rustls over it (driven by hand: `read_tls`/`write_tls` on the
/// non-blocking socket, plaintext through `reader()`/`writer()`).
struct Transport {
    sock: MioStream,
    tls: Option<Box<rustls::ServerConnection>>,
    /// TLS bytes arrived that have not made plaintext yet (part of a record).
    tls_partial: bool,
}

impl Transport {
    /// Reads plaintext; `WouldBlock` when none is available yet.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.sock.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => {
                    self.tls_partial = false;
                    return Ok(n);
                }
                Err(e) if is_would_block(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match tls.read_tls(&mut self.sock) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    self.tls_partial = true;
                    let processed = tls.process_new_packets();
                    // Handshake messages or an alert may be waiting to go out either way.
                    let _ = flush_tls(tls, &mut self.sock);
                    if let Err(e) = processed {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes plaintext (TLS: hands it to rustls and pushes what the socket takes).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.sock.write(buf);
        };
        if flush_tls(tls, &mut self.sock)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = tls.writer().write(buf)?;
        flush_tls(tls, &mut self.sock)?;
        Ok(n)
    }

    /// True while TLS is part-way through something the client must finish: the handshake, or a record of
    /// which only part arrived. The read timeout bounds it, as it bounds a partial request (a ClientHello or a
    /// record dribbled a byte at a time is not an idle connection).
    fn in_progress(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|tls| tls.is_handshaking() || self.tls_partial)
    }

    /// Pushes TLS records rustls still holds; true while some remain (the socket is full).
    fn pending(&mut self) -> io::Result<bool> {
        match self.tls.as_mut() {
            Some(tls) => flush_tls(tls, &mut self.sock),
            None => Ok(false),
        }
    }

    fn shutdown_write(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            let _ = flush_tls(tls, &mut self.sock);
        }
        self.sock.shutdown_write();
    }
}

/// Writes TLS records until rustls has none or the socket is full; true when some remain.
fn flush_tls(tls: &mut rustls::ServerConnection, sock: &mut MioStream) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(_) => {}
            Err(e) if is_would_block(&e) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

struct Conn {
    stream: Transport,
    session: AnySession,
    input: BytesMut,
    output: BytesMut,
    /// Bytes of `output` already written.
    written: usize,
    /// Call `on_input` before reading (new input, or a SLEEP or a flush to resume).
    dirty: bool,
    /// Close once the output is written.
    closing: bool,
    /// After the close: reading and dropping what the client still sends until then (see `tokio_io::linger`).
    lingering_until: Option<Instant>,
    /// Bytes dropped while lingering.
    lingered: usize,
    waiting_until: Option<Instant>,
    partial_since: Option<Instant>,
    last_active: Instant,
    write_blocked_since: Option<Instant>,
    /// Tells a stale SLEEP timer from a live one after the slot was reused.
    generation: u64,
    _guard: ConnGuard,
}

/// What a connection's pump left it as.
#[derive(PartialEq, Eq)]
enum Alive {
    Yes,
    No,
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Conn {
    fn idle(&self) -> bool {
        self.input.is_empty()
            && !self.session.in_progress()
            && !self.stream.in_progress()
            && self.output.is_empty()
            && self.waiting_until.is_none()
            && !self.dirty
    }

    /// Writes, processes and reads until the socket would block, a wait starts or the connection ends.
    fn pump(
        &mut self,
        shared: &Shared,
        draining: bool,
        sleeps: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>,
        slot: usize,
    ) -> Alive {
        let stats = &shared.stats;
        let chunk = shared.config.read_buffer.max(64);
        let shrink_above = chunk.max(64 * 1024);
        if self.lingering_until.is_some() {
            return self.linger();
        }
        loop {
            // 1. Write what is pending.
            while self.written < self.output.len() {
                match self.stream.write(&self.output[self.written..]) {
                    Ok(0) => {
                        stats.inc(Counter::ErrorsIo);
                        return Alive::No;
                    }
                    Ok(n) => {
                        self.written += n;
                        stats.add(Counter::BytesOut, n as u64);
                        self.write_blocked_since = None;
                    }
                    Err(e) if is_would_block(&e) => {
                        self.write_blocked_since.get_or_insert_with(Instant::now);
                        return Alive::Yes;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        stats.inc(Counter::ErrorsIo);
                        return Alive::No;
                    }
                }
            }
            match self.stream.pending() {
                Ok(false) => {}
                Ok(true) => {
                    self.write_blocked_since.get_or_insert_with(Instant::now);
                    return Alive::Yes;
                }
                Err(_) => {
                    stats.inc(Counter::ErrorsIo);
                    return Alive::No;
                }
            }
            self.output.clear();
            self.written = 0;
            self.write_blocked_since = None;
            if self.output.capacity() > shrink_above {
                self.output = BytesMut::new();
            }
            if self.closing {
                self.stream.shutdown_write();
                self.lingering_until = Some(Instant::now() + crate::model::tokio_io::LINGER_TIME);
                return self.linger();
            }
            // 2. A SLEEP in progress.
            let now = Instant::now();
            if let Some(due) = self.waiting_until {
                if now < due {
                    return Alive::Yes;
                }
                self.waiting_until = None;
                self.dirty = true;
            }
            // 3. Process.
            if self.dirty {
                self.dirty = false;
                match self
                    .session
                    .on_input(&mut self.input, &mut self.output, now)
                {
                    Next::Continue => {}
                    Next::Flush => self.dirty = true,
                    Next::WaitUntil(due) => {
                        self.waiting_until = Some(due);
                        sleeps.push(Reverse((due, slot, self.generation)));
                    }
                    Next::Close => self.closing = true,
                }
                if !self.output.is_empty()
                    || self.closing
                    || self.dirty
                    || self.waiting_until.is_some()
                {
                    continue;
                }
            }
            // Shutting down between requests: answer what is already in the socket buffer, then close.
            let between_requests =
                self.input.is_empty() && !self.session.in_progress() && !self.stream.in_progress();
            if between_requests {
                self.partial_since = None;
                if self.input.capacity() > shrink_above {
                    self.input = BytesMut::new();
                }
            } else if self.partial_since.is_none() {
                self.partial_since = Some(now);
            }
            // 4. Read. A connection without a buffer yet (it has sent nothing) reads into the stack first, so
            // idle connections cost no buffer.
            let r = if self.input.capacity() == 0 {
                let mut first = [0u8; 512];
                let r = self.stream.read(&mut first);
                if let Ok(n) = r {
                    self.input.reserve(chunk.max(n));
                    self.input.extend_from_slice(&first[..n]);
                }
                r
            } else {
                let len = self.input.len();
                self.input.resize(len + chunk, 0);
                let r = self.stream.read(&mut self.input[len..]);
                self.input.truncate(len + *r.as_ref().unwrap_or(&0));
                r
            };
            match r {
                Ok(0) => return Alive::No,
                Ok(n) => {
                    stats.add(Counter::BytesIn, n as u64);
                    self.last_active = now;
                    self.dirty = true;
                }
                Err(e) if is_would_block(&e) => {
                    return if draining && between_requests {
                        Alive::No
                    } else {
                        Alive::Yes
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    stats.inc(Counter::ErrorsIo);
                    return Alive::No;
                }
            }
        }
    }

    /// Reads and drops input after the close until end of file, the linger time or the linger budget.
    fn linger(&mut self) -> Alive {
        let mut buf = [0u8; 4096];
        loop {
            if self.lingered >= crate::model::tokio_io::LINGER_BYTES {
                return Alive::No;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Alive::No,
                Ok(n) => self.lingered += n,
                Err(e) if is_would_block(&e) => return Alive::Yes,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Alive::No,
            }
        }
    }

    /// Applies the read, idle and write timeouts; `No` when the connection must close.
    fn check_timeouts(&mut self, shared: &Shared, now: Instant) -> Alive {
        if let Some(until) = self.lingering_until {
            return if now >= until { Alive::No } else { Alive::Yes };
        }
        let limits = &shared.config.limits;
        let stats = &shared.stats;
        if let Some(since) = self.write_blocked_since {
            if now >= since + limits.write_timeout {
                stats.inc(Counter::ErrorsWriteTimeout);
                return Alive::No;
            }
            return Alive::Yes;
        }
        if self.waiting_until.is_some() {
            return Alive::Yes;
        }
        if let Some(since) = self.partial_since {
            if now >= since + limits.read_timeout {
                stats.inc(Counter::ErrorsReadTimeout);
                self.session.on_read_timeout(&mut self.output);
                // Best effort: the answer (HTTP 408) is small and the socket is writable in practice.
                if let Ok(n) = self.stream.write(&self.output[self.written..]) {
                    stats.add(Counter::BytesOut, n as u64);
                }
                self.stream.shutdown_write();
                return Alive::No;
            }
        } else if self.idle() && now >= self.last_active + limits.idle_timeout {
            stats.inc(Counter::ErrorsIdleTimeout);
            return Alive::No;
        }
        Alive::Yes
    }
}

/// Serves `bound` until shutdown and drain.
pub(crate) fn run(bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let mut listeners: Vec<Option<(MioListener, Proto, bool)>> = Vec::new();
    for b in bound {
        let mut l = match b.listener {
            Listener::Tcp(l) => MioListener::Tcp(TcpListener::from_std(l)),
            Listener::Unix(l) => MioListener::Unix(UnixListener::from_std(l)),
            Listener::Udp(_) | Listener::Reserved(_) => continue,
        };
        let token = Token(listeners.len());
        match &mut l {
            MioListener::Tcp(l) => poll.registry().register(l, token, Interest::READABLE)?,
            MioListener::Unix(l) => poll.registry().register(l, token, Interest::READABLE)?,
        }
        listeners.push(Some((l, b.addr.proto, b.addr.tls)));
    }
    let watcher = {
        let (shared, waker) = (shared.clone(), waker.clone());
        std::thread::Builder::new()
            .name("sockpool-evl-stop".into())
            .spawn(move || {
                futures::executor::block_on(shared.shutdown.cancelled());
                let _ = waker.wake();
            })?
    };

    shared.mark_ready();
    let limits = &shared.config.limits;
    let sweep_every = [
        limits.read_timeout,
        limits.idle_timeout,
        limits.write_timeout,
    ]
    .into_iter()
    .min()
    .unwrap_or(Duration::from_secs(1))
    .div_f64(4.0)
    .clamp(Duration::from_millis(5), Duration::from_millis(250));
    let mut next_sweep = Instant::now() + sweep_every;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut open = 0usize;
    let mut generation = 0u64;
    let mut sleeps: BinaryHeap<Reverse<(Instant, usize, u64)>> = BinaryHeap::new();
    let mut events = Events::with_capacity(1024);
    let mut draining = false;
    let mut drain_deadline = None;
    let busy_poll = shared.config.busy_poll;
    let mut last_event = Instant::now()
        .checked_sub(busy_poll)
        .unwrap_or_else(Instant::now);

    loop {
        let now = Instant::now();
        let mut wake_at = next_sweep;
        if let Some(Reverse((due, _, _))) = sleeps.peek() {
            wake_at = wake_at.min(*due);
        }
        // Busy polling (`busy_poll`): within that long of the last event, poll without sleeping.
        let timeout = if now.saturating_duration_since(last_event) < busy_poll {
            Duration::ZERO
        } else {
            wake_at.saturating_duration_since(now)
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        if !events.is_empty() {
            last_event = Instant::now();
        }
        for event in events.iter() {
            match event.token() {
                WAKE => {
                    draining = true;
                    drain_deadline = Some(Instant::now() + shared.config.shutdown_deadline);
                    for l in listeners.iter_mut() {
                        if let Some((mut l, _, _)) = l.take() {
                            let _ = match &mut l {
                                MioListener::Tcp(l) => poll.registry().deregister(l),
                                MioListener::Unix(l) => poll.registry().deregister(l),
                            };
                        }
                    }
                    for (slot, c) in conns.iter_mut().enumerate() {
                        if c.as_mut().is_some_and(|c| {
                            c.idle() && c.pump(&shared, true, &mut sleeps, slot) == Alive::No
                        }) {
                            *c = None;
                            free.push(slot);
                            open -= 1;
                        }
                    }
                }
                Token(i) if i < CONN_BASE => {
                    let Some(Some((l, proto, tls))) = listeners.get_mut(i) else {
                        continue;
                    };
                    let (proto, tls) = (*proto, *tls);
                    loop {
                        let stream = match l {
                            MioListener::Tcp(l) => match l.accept() {
                                Ok((s, _)) => {
                                    if shared.config.nodelay {
                                        let _ = s.set_nodelay(true);
                                    }
                                    MioStream::Tcp(s)
                                }
                                Err(e) if is_would_block(&e) => break,
                                Err(_) => break,
                            },
                            MioListener::Unix(l) => match l.accept() {
                                Ok((s, _)) => MioStream::Unix(s),
                                Err(e) if is_would_block(&e) => break,
                                Err(_) => break,
                            },
                        };
                        let Some(guard) = shared.admit() else {
                            // A TLS client is refused by the close alone: its refusal would need a handshake.
                            let mut stream = stream;
                            if !tls {
                                if let Ok(n) = stream.write(refusal(proto)) {
                                    shared.stats.add(Counter::BytesOut, n as u64);
                                }
                            }
                            stream.shutdown_write();
                            continue;
                        };
                        let tls_session = match (tls, shared.tls.clone()) {
                            (false, _) => None,
                            (true, Some(cfg)) => match rustls::ServerConnection::new(cfg) {
                                Ok(c) => Some(Box::new(c)),
                                Err(_) => {
                                    shared.stats.inc(Counter::ErrorsIo);
                                    continue;
                                }
                            },
                            (true, None) => continue,
                        };
                        let handshaking = tls_session.is_some();
                        let stream = Transport {
                            sock: stream,
                            tls: tls_session,
                            tls_partial: false,
                        };
                        let slot = free.pop().unwrap_or_else(|| {
                            conns.push(None);
                            conns.len() - 1
                        });
                        generation += 1;
                        let mut conn = Conn {
                            stream,
                            session: AnySession::new(proto, &shared),
                            input: BytesMut::new(),
                            output: BytesMut::new(),
                            written: 0,
                            dirty: false,
                            closing: false,
                            lingering_until: None,
                            lingered: 0,
                            waiting_until: None,
                            // A TLS handshake is bounded by the read timeout from the accept.
                            partial_since: handshaking.then(Instant::now),
                            last_active: Instant::now(),
                            write_blocked_since: None,
                            generation,
                            _guard: guard,
                        };
                        if poll
                            .registry()
                            .register(
                                conn.stream.sock.source(),
                                Token(CONN_BASE + slot),
                                Interest::READABLE | Interest::WRITABLE,
                            )
                            .is_err()
                        {
                            shared.stats.inc(Counter::ErrorsIo);
                            free.push(slot);
                            continue;
                        }
                        // Edge-triggered: data may already be there.
                        if conn.pump(&shared, draining, &mut sleeps, slot) == Alive::Yes {
                            conns[slot] = Some(conn);
                            open += 1;
                        } else {
                            free.push(slot);
                        }
                    }
                }
                Token(t) => {
                    let slot = t - CONN_BASE;
                    let Some(Some(conn)) = conns.get_mut(slot) else {
                        continue;
                    };
                    if conn.pump(&shared, draining, &mut sleeps, slot) == Alive::No {
                        conns[slot] = None;
                        free.push(slot);
                        open -= 1;
                    }
                }
            }
        }
        let now = Instant::now();
        while let Some(Reverse((due, slot, gen))) = sleeps.peek().copied() {
            if due > now {
                break;
            }
            sleeps.pop();
            let Some(Some(conn)) = conns.get_mut(slot) else {
                continue;
            };
            if conn.generation != gen {
                continue;
            }
            if conn.pump(&shared, draining, &mut sleeps, slot) == Alive::No {
                conns[slot] = None;
                free.push(slot);
                open -= 1;
            }
        }
        if now >= next_sweep {
            next_sweep = now + sweep_every;
            for (slot, c) in conns.iter_mut().enumerate() {
                if c.as_mut()
                    .is_some_and(|c| c.check_timeouts(&shared, now) == Alive::No)
                {
                    *c = None;
                    free.push(slot);
                    open -= 1;
                }
            }
        }
        if draining && (open == 0 || drain_deadline.is_some_and(|d| now >= d)) {
            break;
        }
    }
    drop(conns);
    let _ = watcher.join();
    Ok(())
}
