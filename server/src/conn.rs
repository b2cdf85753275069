//! One connection's whole life, sans-IO: [`Conn`]. Every model is a thin I/O shell over it.
//!
//! A `Conn` owns the [`Session`] (decoding, handling, encoding), the input and output buffers and their sizing,
//! TLS (rustls fed the socket's bytes by hand: the shells only ever move raw bytes), every timeout (partial
//! request and TLS handshake: `read_timeout`; between requests: `idle_timeout`; a write that makes no progress:
//! `write_timeout`), backpressure (the session stops at `write_high_water` and nothing is read until the output
//! is written), fairness (a turn budget), draining at shutdown and the linger after the close. The shell asks
//! [`Conn::step`] what to do next and does it:
//!
//! ```text
//! loop match conn.step(now) {
//!     Read(deadline)  => conn.read_with(socket read) — nothing there: wait readable, or until deadline
//!     Write(deadline) => conn.write_with(socket write) — socket full: wait writable, or until deadline
//!     Sleep(until)    => wait until then            Yield => let the other connections run
//!     ShutdownWrite   => shut the socket's write side   Close => drop the socket
//! }
//! ```
//!
//! Waking up at a deadline and stepping again is all a shell does about time: the `Conn` sees the deadline
//! passed and answers (HTTP `408`, counted) or closes. Admission at `max_connections` ([`admit`]) and the
//! refusal ([`refuse`]) are here too, so every model admits and refuses alike.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};

use crate::config::Proto;
use crate::protocol::{refusal, AnySession};
use crate::session::{Next, Session};
use crate::shared::{ConnGuard, Shared};
use crate::stats::Counter;

/// How long a closed connection keeps reading and dropping what the client still sends (the rest of a refused
/// body, requests pipelined behind `Connection: close`), so closing with unread data does not make the kernel
/// send a reset that could destroy the last reply before the client reads it.
pub(crate) const LINGER_TIME: Duration = Duration::from_millis(500);
/// How much the linger reads at most.
pub(crate) const LINGER_BYTES: usize = 1024 * 1024;
/// Fairness: the bytes one connection may move (read, plus replies produced) in one turn before it yields to
/// the others, whatever the model. A client that pipelines without pause gets this much per turn, never the
/// whole worker.
pub(crate) const TURN_BYTES: usize = 64 * 1024;
/// The first read of a connection that has sent nothing yet: small, so idle connections stay small.
const FIRST_READ: usize = 512;
/// A request in progress this large is a large one: over the `memory_budget`, refused rather than buffered.
const LARGE_REQUEST: usize = 64 * 1024;
/// The most spare room one `read_buf` offers (and zeroes).
const READ_WINDOW: usize = 64 * 1024;
/// The least: a connection's window ([`Conn::read_window`]) starts here, doubles after each read that filled it
/// and halves after one that used under a quarter, between this and [`READ_WINDOW`].
const MIN_READ_WINDOW: usize = 256;

/// What the shell does next for a connection (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Read with [`Conn::read_with`]; if nothing is there, wait until readable or the deadline, then step.
    Read(Instant),
    /// Write with [`Conn::write_with`]; if the socket is full, wait until writable or the deadline, then step.
    Write(Instant),
    /// Wait until then without reading (framed SLEEP), then step.
    Sleep(Instant),
    /// The turn is used up: let the other connections run, then step.
    Yield,
    /// Shut the socket's write side, then step.
    ShutdownWrite,
    /// Drop the connection.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// Write what is left, then shut the write side; then linger or not.
    Closing {
        linger: bool,
    },
    /// Reading and dropping until then (or `LINGER_BYTES`, or the client's close).
    Lingering {
        until: Instant,
        drained: usize,
    },
    Done,
}

/// rustls over the socket's bytes.
struct Tls {
    conn: rustls::ServerConnection,
    /// Ciphertext read and not yet taken by rustls.
    wire_in: BytesMut,
    /// Ciphertext to write.
    wire_out: BytesMut,
    /// Where the ciphertext taken by rustls stands between record boundaries: inside a record, a request (or
    /// an alert, a key update …) is in progress.
    records: Records,
    /// `close_notify` queued.
    notified: bool,
}

impl Tls {
    /// Moves the records rustls holds into `wire_out`.
    fn flush(&mut self) {
        let mut out = (&mut self.wire_out).writer();
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut out).is_err() {
                break;
            }
        }
    }
}

/// Where a stream of TLS records stands: how much of the record in progress is still to come. Every record,
/// handshake ones included, is a 5-byte header (type, version, 16-bit length) and that many bytes.
#[derive(Debug, Default)]
struct Records {
    /// Header bytes of the next record seen (0 to 4).
    header: usize,
    /// Its length field, as far as seen.
    len: usize,
    /// Bytes of the current record's body still to come.
    body: usize,
}

impl Records {
    /// Follows `bytes`, the next ones of the stream.
    fn advance(&mut self, mut bytes: &[u8]) {
        while let Some((&b, rest)) = bytes.split_first() {
            if self.body > 0 {
                let n = self.body.min(bytes.len());
                self.body -= n;
                bytes = &bytes[n..];
                continue;
            }
            bytes = rest;
            if self.header >= 3 {
                self.len = self.len << 8 | usize::from(b);
            }
            self.header += 1;
            if self.header == 5 {
                (self.header, self.body, self.len) = (0, self.len, 0);
            }
        }
    }

    /// Between two records: every record begun has been seen whole.
    fn between(&self) -> bool {
        self.header == 0 && self.body == 0
    }
}

/// One admitted connection (see the module docs).
pub(crate) struct Conn {
    session: AnySession,
    shared: Arc<Shared>,
    input: BytesMut,
    output: BytesMut,
    /// Bytes of `output` written (plain; TLS writes `wire_out`).
    written: usize,
    tls: Option<Box<Tls>>,
    phase: Phase,
    /// Call `on_input` before reading (new input, or a flush or SLEEP to resume).
    dirty: bool,
    /// The client closed its side (end of file, or TLS `close_notify`).
    eof: bool,
    sleep_until: Option<Instant>,
    partial_since: Option<Instant>,
    /// When the connection last did something: bytes read, or its output all written. The idle timeout counts
    /// from here.
    last_active: Instant,
    /// Since when the unsent output has made no progress.
    write_since: Option<Instant>,
    /// Bytes went out since the output was last found all written: when it next is, the connection is active
    /// then (a reply written slowly, or after a SLEEP, for longer than the idle timeout is not idle time).
    wrote: bool,
    /// Shutdown began: close between requests once what is already in the socket is answered.
    draining: bool,
    /// Draining: one read was tried since the last bytes came.
    drain_probed: bool,
    /// Bytes moved this turn.
    turn: usize,
    /// The room the next socket read offers ([`Conn::read_window`]).
    window: usize,
    /// The buffer bytes counted in the server's `memory_budget` for this connection.
    accounted: usize,
    _guard: ConnGuard,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.account(self.accounted, 0);
    }
}

/// Admits a connection accepted on a `proto` listener (`tls`: a TLS one): `Err` holds the refusal to send
/// before closing it (empty: close at once; a TLS refusal would need a handshake a client could stall, so a TLS
/// connection over the limit is always closed at once). Counted either way.
pub(crate) fn admit(shared: &Arc<Shared>, proto: Proto, tls: bool) -> Result<Conn, &'static [u8]> {
    let Some(guard) = shared.admit() else {
        return Err(if tls { b"" } else { refusal(proto) });
    };
    let tls = match (tls, &shared.tls) {
        (false, _) => None,
        (true, Some(cfg)) => match rustls::ServerConnection::new(cfg.clone()) {
            Ok(mut conn) => {
                // Our own output budget bounds what is queued; rustls must not refuse part of a reply.
                conn.set_buffer_limit(None);
                Some(Box::new(Tls {
                    conn,
                    wire_in: BytesMut::new(),
                    wire_out: BytesMut::new(),
                    records: Records::default(),
                    notified: false,
                }))
            }
            Err(_) => {
                shared.stats.inc(Counter::ErrorsIo);
                return Err(b"");
            }
        },
        (true, None) => return Err(b""),
    };
    let now = Instant::now();
    Ok(Conn {
        session: AnySession::new(proto, shared),
        shared: shared.clone(),
        input: BytesMut::new(),
        output: BytesMut::new(),
        written: 0,
        // The TLS handshake is bounded by the read timeout from the accept.
        partial_since: tls.is_some().then_some(now),
        tls,
        phase: Phase::Open,
        dirty: false,
        eof: false,
        sleep_until: None,
        last_active: now,
        write_since: None,
        wrote: false,
        draining: false,
        drain_probed: false,
        turn: 0,
        window: MIN_READ_WINDOW,
        accounted: 0,
        _guard: guard,
    })
}

/// Sends a refusal from [`admit`] with one write that does not wait (a new connection's socket buffer takes a
/// few bytes at once); the shell then shuts the socket.
pub(crate) fn refuse(shared: &Shared, msg: &[u8], write: impl FnOnce(&[u8]) -> io::Result<usize>) {
    if !msg.is_empty() {
        if let Ok(n) = write(msg) {
            shared.stats.add(Counter::BytesOut, n as u64);
        }
    }
}

/// Reads from a `std::io::Read` socket into the spare capacity of `buf` (for the shells that have no
/// `read_buf` of their own), offering at most `window` bytes of room ([`Conn::read_window`]). A full buffer
/// grows first: a reader handed no room answers `Ok(0)`, which would read as the peer's EOF. Safe Rust cannot
/// hand `read` uninitialised memory (`unsafe_code` is forbidden), so the room read into is zeroed first: the
/// window keeps that to about what the connection's reads bring (a 16 KiB buffer zeroed before every 40-byte
/// request was 2.7% of the `event-loop` model's CPU at 8,000 connections), not all the spare capacity.
pub(crate) fn read_buf(r: &mut impl Read, buf: &mut BytesMut, window: usize) -> io::Result<usize> {
    read_buf_drained(r, buf, window).0
}

/// [`read_buf`], and whether the read was shorter than the room it offered: from a non-blocking stream socket,
/// that read took all there was (an edge-triggered shell then waits for its next event instead of making the
/// read that would only return `EAGAIN`).
pub(crate) fn read_buf_drained(
    r: &mut impl Read,
    buf: &mut BytesMut,
    window: usize,
) -> (io::Result<usize>, bool) {
    if buf.capacity() == buf.len() {
        buf.reserve(FIRST_READ);
    }
    let len = buf.len();
    buf.resize(buf.capacity().min(len + window.clamp(1, READ_WINDOW)), 0);
    let room = buf.len() - len;
    let r = r.read(&mut buf[len..]);
    let n = *r.as_ref().unwrap_or(&0);
    buf.truncate(len + n);
    (r, n > 0 && n < room)
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Conn {
    /// Shutdown began (the shell saw it): finish what the client already sent, then close.
    pub(crate) fn stop(&mut self) {
        self.draining = true;
    }

    /// Bytes to put on the socket.
    pub(crate) fn unsent(&self) -> &[u8] {
        match &self.tls {
            Some(t) => &t.wire_out,
            None => &self.output[self.written..],
        }
    }

    /// Writes [`Conn::unsent`] with `write` (one socket write); true when the socket took nothing (full).
    pub(crate) fn write_with(&mut self, write: impl FnOnce(&[u8]) -> io::Result<usize>) -> bool {
        let r = write(self.unsent());
        match self.settle(r) {
            Ok(0) => self.fail(),
            Ok(n) => {
                match &mut self.tls {
                    Some(t) => t.wire_out.advance(n),
                    None => {
                        self.written += n;
                        self.shared.stats.add(Counter::BytesOut, n as u64);
                    }
                }
                self.write_since = None;
                self.wrote = true;
            }
            Err(blocked) => return blocked,
        }
        false
    }

    /// A socket call's outcome: `Ok(bytes)`, or `Err(true)` when the socket would block (the turn ends),
    /// `Err(false)` when interrupted (try again) or failed (closed).
    fn settle(&mut self, r: io::Result<usize>) -> Result<usize, bool> {
        match r {
            Ok(n) => Ok(n),
            Err(e) if would_block(&e) => {
                self.turn = 0;
                Err(true)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(false),
            Err(_) => {
                self.fail();
                Err(false)
            }
        }
    }

    /// The most room the next socket read should offer: [`read_buf`]'s `window`. It follows what the reads
    /// bring: it doubles after a read that filled it and halves after one that used under a quarter of it.
    pub(crate) fn read_window(&self) -> usize {
        self.window
    }

    /// Reads with `read` (one socket read into the buffer it is given); true when nothing was there.
    pub(crate) fn read_with(
        &mut self,
        read: impl FnOnce(&mut BytesMut) -> io::Result<usize>,
        now: Instant,
    ) -> bool {
        let chunk = self.shared.config.read_buffer.max(64);
        if self.input.len() + self.session.held() >= LARGE_REQUEST
            && !matches!(self.phase, Phase::Lingering { .. })
            && self.shared.over_budget()
        {
            self.shared.stats.inc(Counter::ErrorsBusy);
            self.output.extend_from_slice(self.session.busy());
            self.encrypt();
            self.input = BytesMut::new();
            self.phase = Phase::Closing { linger: true };
            self.account();
            return false;
        }
        let buf = match &mut self.tls {
            Some(t) => &mut t.wire_in,
            None => &mut self.input,
        };
        if buf.capacity() == 0 {
            buf.reserve(FIRST_READ);
        } else if buf.capacity() - buf.len() < chunk / 4 {
            buf.reserve(chunk);
        }
        let r = read(buf);
        match self.settle(r) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                if n >= self.window {
                    self.window = (self.window * 2).min(READ_WINDOW);
                } else if n < self.window / 4 {
                    self.window = (self.window / 2).max(MIN_READ_WINDOW);
                }
                if let Phase::Lingering { drained, .. } = &mut self.phase {
                    *drained += n;
                    self.input.clear();
                    if let Some(t) = &mut self.tls {
                        t.wire_in.clear();
                    }
                    return false;
                }
                self.turn += n;
                self.last_active = now;
                self.drain_probed = false;
                match self.tls.is_some() {
                    true => self.decrypt(),
                    false => self.received(n),
                }
            }
            Err(blocked) => return blocked,
        }
        self.account();
        false
    }

    /// Brings this connection's share of the server's buffered bytes up to date.
    fn account(&mut self) {
        let now = self.input.capacity()
            + self.session.held()
            + self.output.capacity()
            + self
                .tls
                .as_ref()
                .map_or(0, |t| t.wire_in.capacity() + t.wire_out.capacity());
        if now != self.accounted {
            self.shared.account(self.accounted, now);
            self.accounted = now;
        }
    }

    /// The socket failed (reset …): counted, closed.
    pub(crate) fn fail(&mut self) {
        if !matches!(self.phase, Phase::Lingering { .. } | Phase::Done) {
            self.shared.stats.inc(Counter::ErrorsIo);
        }
        self.phase = Phase::Done;
    }

    fn received(&mut self, n: usize) {
        self.shared.stats.add(Counter::BytesIn, n as u64);
        self.dirty = true;
    }

    /// Feeds the ciphertext read to rustls, takes out the plaintext, queues what rustls answers (handshake,
    /// alerts). A TLS error closes the connection once its alert is written.
    fn decrypt(&mut self) {
        let Some(t) = self.tls.as_mut() else { return };
        let mut plain = 0;
        let mut failed = false;
        while !t.wire_in.is_empty() && !failed {
            let mut rd = &t.wire_in[..];
            // An error here is a full rustls buffer: the plaintext taken out below makes room.
            let _ = t.conn.read_tls(&mut rd);
            let used = t.wire_in.len() - rd.len();
            t.records.advance(&t.wire_in[..used]);
            t.wire_in.advance(used);
            failed = t.conn.process_new_packets().is_err();
            loop {
                self.input.reserve(4096);
                match read_buf(&mut t.conn.reader(), &mut self.input, READ_WINDOW) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => plain += n,
                    Err(_) => break,
                }
            }
            if used == 0 {
                break;
            }
        }
        t.flush();
        if failed {
            self.shared.stats.inc(Counter::ErrorsIo);
            self.phase = Phase::Closing { linger: false };
        }
        if plain > 0 {
            self.received(plain);
        }
    }

    /// TLS: moves the plaintext output into rustls and its records into `wire_out`.
    fn encrypt(&mut self) {
        let Some(t) = self.tls.as_mut() else { return };
        if !self.output.is_empty() {
            if t.conn.writer().write_all(&self.output).is_ok() {
                self.shared
                    .stats
                    .add(Counter::BytesOut, self.output.len() as u64);
            }
            self.output.clear();
        }
        t.flush();
    }

    /// A request (or the TLS handshake) is partly received: the read timeout applies, not the idle one. Under
    /// TLS that is the handshake, ciphertext not yet taken, or part of a record; the client's last handshake
    /// record carries no plaintext, and once it is in the connection is idle.
    fn in_progress(&self) -> bool {
        !self.input.is_empty()
            || self.session.in_progress()
            || self.tls.as_ref().is_some_and(|t| {
                t.conn.is_handshaking() || !t.wire_in.is_empty() || !t.records.between()
            })
    }

    /// The TLS handshake is not done: no request can have come yet, so a shutdown has nothing to finish here.
    fn in_handshake(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.is_handshaking())
    }

    /// Waiting between requests (or in the TLS handshake): nothing partly received, nothing to write, no SLEEP
    /// running, not closing. A stop now closes it (between requests after the drain's one read); the blocking
    /// shell tells its model which connections those are.
    pub(crate) fn is_idle(&self) -> bool {
        self.phase == Phase::Open
            && !self.dirty
            && self.sleep_until.is_none()
            && self.unsent().is_empty()
            && (!self.in_progress() || self.in_handshake())
    }

    /// What the shell does next, `now` (see the module docs).
    pub(crate) fn step(&mut self, now: Instant) -> Step {
        let limits = &self.shared.config.limits;
        let (read_timeout, idle_timeout, write_timeout) = (
            limits.read_timeout,
            limits.idle_timeout,
            limits.write_timeout,
        );
        let shrink_above = self.shared.config.read_buffer.max(64 * 1024);
        self.account();
        loop {
            match self.phase {
                Phase::Done => return Step::Close,
                Phase::Lingering { until, drained } => {
                    if now >= until || drained >= LINGER_BYTES || self.eof {
                        self.phase = Phase::Done;
                        continue;
                    }
                    return Step::Read(until);
                }
                Phase::Open | Phase::Closing { .. } => {}
            }
            // 1. Write what is pending: the write timeout is the longest a write may make no progress.
            if !self.unsent().is_empty() {
                let due = *self.write_since.get_or_insert(now) + write_timeout;
                if now >= due {
                    self.shared.stats.inc(Counter::ErrorsWriteTimeout);
                    self.phase = Phase::Done;
                    continue;
                }
                return Step::Write(due);
            }
            self.write_since = None;
            if std::mem::take(&mut self.wrote) {
                self.last_active = now;
            }
            self.output.clear();
            self.written = 0;
            if self.output.capacity() > shrink_above {
                self.output = BytesMut::new();
            }
            if let Phase::Closing { linger } = self.phase {
                if let Some(t) = self.tls.as_mut().filter(|t| !t.notified) {
                    t.notified = true;
                    t.conn.send_close_notify();
                    t.flush();
                    continue;
                }
                self.phase = match linger {
                    true => Phase::Lingering {
                        until: now + LINGER_TIME,
                        drained: 0,
                    },
                    false => Phase::Done,
                };
                return Step::ShutdownWrite;
            }
            // 2. Fairness: the turn is used up.
            if self.turn >= TURN_BYTES {
                self.turn = 0;
                return Step::Yield;
            }
            // 3. A SLEEP in progress: the requests behind it stay buffered, so replies keep their order.
            if let Some(due) = self.sleep_until {
                if now < due {
                    return Step::Sleep(due);
                }
                self.sleep_until = None;
                self.dirty = true;
            }
            // 4. Decode, handle, encode.
            if self.dirty {
                self.dirty = false;
                match self
                    .session
                    .on_input(&mut self.input, &mut self.output, now)
                {
                    Next::Continue => {}
                    Next::Flush => self.dirty = true,
                    Next::WaitUntil(due) => self.sleep_until = Some(due),
                    Next::Close => self.phase = Phase::Closing { linger: true },
                }
                self.turn += self.output.len();
                self.encrypt();
                // A reply body the request left (the handles of a long listing) counts from now on.
                self.account();
                continue;
            }
            // 5. Read, until the read timeout (partial request, handshake) or the idle timeout.
            if self.eof {
                self.phase = Phase::Done;
                continue;
            }
            if self.in_handshake() && (self.draining || self.shared.is_stopping()) {
                // Shutting down during the TLS handshake: no request came, nothing to finish. Closed at once, as
                // an idle connection is, not held to the read timeout.
                self.phase = Phase::Done;
                continue;
            }
            if self.in_progress() {
                let due = *self.partial_since.get_or_insert(now) + read_timeout;
                if now < due {
                    return Step::Read(due);
                }
                self.shared.stats.inc(Counter::ErrorsReadTimeout);
                self.session.on_read_timeout(&mut self.output);
                self.encrypt();
                self.phase = Phase::Closing { linger: false };
                continue;
            }
            self.partial_since = None;
            if self.input.capacity() > shrink_above {
                self.input = BytesMut::new();
            }
            if self.draining || self.shared.is_stopping() {
                // Shutting down between requests: answer what the client sent before it saw us stop (already in
                // the socket buffer: one read finds it), then close.
                if std::mem::replace(&mut self.drain_probed, true) {
                    self.phase = Phase::Done;
                    continue;
                }
                return Step::Read(now);
            }
            let due = self.last_active + idle_timeout;
            if now < due {
                return Step::Read(due);
            }
            self.shared.stats.inc(Counter::ErrorsIdleTimeout);
            self.phase = Phase::Done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;

    fn conn(proto: Proto) -> Conn {
        conn_with(ServerConfig::default(), proto)
    }

    fn conn_with(config: ServerConfig, proto: Proto) -> Conn {
        let shared = Arc::new(Shared::new(
            config,
            Default::default(),
            Default::default(),
            None,
        ));
        admit(&shared, proto, false).expect("admitted")
    }

    /// Drives `c` against an endless supply of pipelined `request`s and a socket that takes every write, until
    /// it yields; the requests it answered in that turn.
    fn one_turn(c: &mut Conn, request: &[u8], reply: &[u8]) -> usize {
        let mut answered = 0;
        loop {
            match c.step(Instant::now()) {
                Step::Read(_) => {
                    c.read_with(
                        |b| {
                            let room = b.capacity() - b.len();
                            let whole = request.repeat(room / request.len() + 1);
                            b.extend_from_slice(&whole[..room]);
                            Ok(room)
                        },
                        Instant::now(),
                    );
                }
                Step::Write(_) => {
                    c.write_with(|b| {
                        answered += b.len() / reply.len();
                        Ok(b.len())
                    });
                }
                Step::Yield => return answered,
                other => panic!("{other:?}"),
            }
        }
    }

    proptest::proptest! {
        /// Any bytes, cut into any reads, against a socket that takes any part of each write: no slice of the
        /// connection's buffers panics (`read_buf`'s spare room, `unsent`'s written offset), whatever the model.
        #[test]
        fn any_input_chunking_and_partial_writes_never_panic(
            proto in proptest::sample::select(vec![Proto::Framed, Proto::Resp, Proto::Http, Proto::Line, Proto::Echo]),
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            cuts in proptest::collection::vec(1usize..300, 1..40),
            takes in proptest::collection::vec(0usize..300, 1..40),
        ) {
            let mut c = conn(proto);
            let (mut at, mut cut, mut take) = (0, cuts.iter().cycle(), takes.iter().cycle());
            for _ in 0..10_000 {
                match c.step(Instant::now()) {
                    Step::Read(_) => {
                        let n = (*cut.next().unwrap()).min(input.len() - at);
                        let mut chunk = &input[at..at + n];
                        at += n;
                        // `read_plain` on a `Read` of this chunk: EOF once consumed.
                        c.read_with(|b| read_buf(&mut chunk, b, READ_WINDOW), Instant::now());
                    }
                    Step::Write(_) => {
                        let t = *take.next().unwrap();
                        c.write_with(|b| Ok(t.min(b.len()).max(1)));
                    }
                    Step::Sleep(_) | Step::Yield | Step::ShutdownWrite => {}
                    Step::Close => break,
                }
            }
        }
    }

    #[test]
    fn a_client_that_never_stops_sending_yields_every_turn_budget() {
        let mut c = conn(Proto::Resp);
        let (req, rep) = (&b"*1\r\n$4\r\nPING\r\n"[..], &b"+PONG\r\n"[..]);
        let most = TURN_BYTES / req.len() + 4096 / req.len() + 1;
        for _ in 0..5 {
            let n = one_turn(&mut c, req, rep);
            assert!(
                n > 0 && n <= most,
                "{n} requests in one turn, at most {most}"
            );
        }
    }

    #[test]
    fn timeouts_come_from_the_steps_deadlines() {
        let mut c = conn(Proto::Http);
        let t0 = Instant::now();
        let limits = ServerConfig::default().limits;
        // Idle: the idle timeout from the accept.
        let Step::Read(idle) = c.step(t0) else {
            panic!("a read")
        };
        assert!(idle > t0 && idle <= t0 + limits.idle_timeout);
        // A partial request: the read timeout from its first bytes, then 408 and the close without linger.
        c.read_with(
            |b| {
                b.put_slice(b"GET / HT");
                Ok(8)
            },
            t0,
        );
        assert_eq!(c.step(t0), Step::Read(t0 + limits.read_timeout));
        let late = t0 + limits.read_timeout;
        let Step::Write(_) = c.step(late) else {
            panic!("a 408 to write")
        };
        assert!(c.unsent().starts_with(b"HTTP/1.1 408"));
        let n = c.unsent().len();
        assert!(!c.write_with(|_| Ok(n)));
        assert_eq!(c.step(late), Step::ShutdownWrite);
        assert_eq!(c.step(late), Step::Close);
        assert_eq!(c.shared.stats.get(Counter::ErrorsReadTimeout), 1);
    }

    #[test]
    fn records_are_followed_whole_across_any_cut() {
        // Records with bodies of 0, 1, 300 and 16,389 bytes, back to back.
        let (mut stream, mut ends) = (Vec::new(), vec![0]);
        for len in [0usize, 1, 300, 16_389] {
            stream.extend_from_slice(&[23, 3, 3, (len >> 8) as u8, len as u8]);
            stream.resize(stream.len() + len, 0xab);
            ends.push(stream.len());
        }
        for cut in 1..=7 {
            let mut r = Records::default();
            for (i, chunk) in stream.chunks(cut).enumerate() {
                r.advance(chunk);
                let at = (i * cut + chunk.len()).min(stream.len());
                assert_eq!(r.between(), ends.contains(&at), "cut {cut}, at {at}");
            }
        }
    }

    proptest::proptest! {
        /// `Records::advance` over any bytes cut anywhere (its `&bytes[n..]` slice): after every cut it is in the
        /// state a byte-by-byte reading of the same stream gives.
        #[test]
        fn records_follow_any_bytes_cut_anywhere(
            stream in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20_000),
            cuts in proptest::collection::vec(1usize..9_000, 1..20),
        ) {
            let mut one = Records::default();
            let mut between = vec![one.between()];
            for b in &stream {
                one.advance(std::slice::from_ref(b));
                between.push(one.between());
            }
            let (mut r, mut at) = (Records::default(), 0);
            for cut in cuts.iter().cycle() {
                if at == stream.len() {
                    break;
                }
                let n = (*cut).min(stream.len() - at);
                r.advance(&stream[at..at + n]);
                at += n;
                proptest::prop_assert_eq!(r.between(), between[at], "at {}", at);
            }
        }

        /// A TLS connection fed a real client's records with one byte changed and cut short, or its handshake
        /// done and then garbage, in any reads (`decrypt`'s `&wire_in[..used]`): no panic, and it ends or keeps
        /// reading.
        #[test]
        fn a_tls_connection_takes_damaged_records_in_any_cuts(
            at in 0usize..4_096,
            byte in proptest::prelude::any::<u8>(),
            keep in 0usize..4_096,
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1_024),
            after_handshake in proptest::prelude::any::<bool>(),
            cut in 1usize..700,
        ) {
            let (mut c, mut client) = tls_conn(Proto::Resp);
            let now = Instant::now();
            let input = if after_handshake {
                exchange(&mut c, &mut client, now);
                garbage
            } else {
                let mut wire = records(&mut client);
                let i = at % wire.len();
                wire[i] = byte;
                wire.truncate(keep.max(1));
                wire
            };
            let mut left = &input[..];
            for _ in 0..1_000 {
                match c.step(now) {
                    Step::Read(_) if left.is_empty() => break,
                    Step::Read(_) => {
                        let n = cut.min(left.len());
                        let (chunk, rest) = left.split_at(n);
                        left = rest;
                        c.read_with(|b| { b.put_slice(chunk); Ok(n) }, now);
                    }
                    Step::Write(_) => {
                        c.write_with(|b| Ok(b.len()));
                    }
                    Step::Sleep(_) | Step::Yield | Step::ShutdownWrite => {}
                    Step::Close => break,
                }
            }
        }
    }

    /// A TLS `proto` connection (self-signed certificate by rcgen) and a rustls client for it.
    fn tls_conn(proto: Proto) -> (Conn, rustls::ClientConnection) {
        use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        let shared = Arc::new(Shared::new(
            ServerConfig::default(),
            Default::default(),
            Default::default(),
            Some(Arc::new(server)),
        ));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ck.cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client =
            rustls::ClientConnection::new(Arc::new(client), "localhost".try_into().unwrap())
                .unwrap();
        (admit(&shared, proto, true).expect("admitted"), client)
    }

    /// What `client` has to send, as TLS records.
    fn records(client: &mut rustls::ClientConnection) -> Vec<u8> {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        wire
    }

    /// Moves bytes both ways between `c` and `client` at `now` until neither has any to send.
    fn exchange(c: &mut Conn, client: &mut rustls::ClientConnection, now: Instant) {
        loop {
            match c.step(now) {
                Step::Write(_) => {
                    c.write_with(|mut b| {
                        let n = client.read_tls(&mut b)?;
                        client.process_new_packets().unwrap();
                        Ok(n)
                    });
                }
                Step::Read(_) => {
                    let wire = records(client);
                    if wire.is_empty() {
                        return;
                    }
                    c.read_with(
                        |b| {
                            b.put_slice(&wire);
                            Ok(wire.len())
                        },
                        now,
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// A TLS connection with its handshake done and no request sent is idle: the idle timeout from its last
    /// bytes, no `408` at the read timeout. The client's last handshake record carries no plaintext, and the
    /// connection used to stay "partial" (`Read(accept + read_timeout)`) until plaintext came.
    #[test]
    fn a_tls_connection_between_handshake_and_first_request_is_idle() {
        let (mut c, mut client) = tls_conn(Proto::Http);
        let limits = ServerConfig::default().limits;
        let t0 = Instant::now();
        // The handshake: bounded by the read timeout from the accept.
        let Step::Read(due) = c.step(t0) else {
            panic!("a read")
        };
        assert!(due <= t0 + limits.read_timeout);
        exchange(&mut c, &mut client, t0);
        assert!(!client.is_handshaking());
        assert_eq!(c.step(t0), Step::Read(t0 + limits.idle_timeout));
        let t1 = t0 + limits.read_timeout;
        assert_eq!(c.step(t1), Step::Read(t0 + limits.idle_timeout));
        assert!(c.unsent().is_empty(), "nothing written: no 408");
        // Half a record: a request in progress, bounded by the read timeout from its first bytes.
        client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let wire = records(&mut client);
        let half = wire.len() / 2;
        c.read_with(
            |b| {
                b.put_slice(&wire[..half]);
                Ok(half)
            },
            t1,
        );
        assert_eq!(c.step(t1), Step::Read(t1 + limits.read_timeout));
        // The rest: answered, then idle again.
        let t2 = t1 + limits.read_timeout / 2;
        c.read_with(
            |b| {
                b.put_slice(&wire[half..]);
                Ok(wire.len() - half)
            },
            t2,
        );
        assert!(matches!(c.step(t2), Step::Write(_)));
        exchange(&mut c, &mut client, t2);
        let mut reply = Vec::new();
        let _ = client.reader().read_to_end(&mut reply);
        assert!(reply.starts_with(b"HTTP/1.1 200 OK\r\n"), "{reply:?}");
        assert_eq!(c.step(t2), Step::Read(t2 + limits.idle_timeout));
        assert_eq!(c.shared.stats.get(Counter::ErrorsReadTimeout), 0);
    }

    /// A stop during the TLS handshake closes at once: no request came, so there is nothing to drain, and the
    /// handshake's read timeout no longer holds the shutdown. The blocking shell's shutdown reaches it too.
    #[test]
    fn a_stop_during_the_tls_handshake_closes_at_once() {
        let (mut c, _client) = tls_conn(Proto::Http);
        let t0 = Instant::now();
        assert!(matches!(c.step(t0), Step::Read(_)));
        assert!(c.is_idle(), "shutdown may shut its read side");
        c.stop();
        assert_eq!(c.step(t0), Step::Close);
    }

    #[test]
    fn a_write_that_makes_no_progress_times_out_and_progress_moves_the_deadline() {
        let mut c = conn(Proto::Line);
        let t0 = Instant::now();
        let wt = ServerConfig::default().limits.write_timeout;
        c.read_with(
            |b| {
                b.put_slice(b"hello\n");
                Ok(6)
            },
            t0,
        );
        assert_eq!(c.step(t0), Step::Write(t0 + wt));
        assert!(!c.write_with(|_| Ok(2)));
        let t1 = t0 + wt / 2;
        assert_eq!(
            c.step(t1),
            Step::Write(t1 + wt),
            "progress restarts the clock"
        );
        assert!(c.write_with(|_| Err(io::ErrorKind::WouldBlock.into())));
        assert_eq!(c.step(t1 + wt), Step::Close);
        assert_eq!(c.shared.stats.get(Counter::ErrorsWriteTimeout), 1);
    }

    /// The idle timeout counts from the end of the last reply, as nginx's keep-alive timeout and Redis's idle
    /// time do: a reply the client took longer than the idle timeout to read (each write within the write
    /// timeout) does not close the connection the moment it is out.
    #[test]
    fn the_idle_timeout_counts_from_the_last_reply_written() {
        let mut c = conn(Proto::Line);
        let t0 = Instant::now();
        let limits = ServerConfig::default().limits;
        let line = b"a slow reader\n";
        c.read_with(
            |b| {
                b.put_slice(line);
                Ok(line.len())
            },
            t0,
        );
        // One byte a step, each well within the write timeout, the last one past the idle timeout.
        let every = (limits.idle_timeout + limits.write_timeout) / line.len() as u32;
        assert!(every < limits.write_timeout);
        let mut now = t0;
        for _ in 0..line.len() {
            assert!(matches!(c.step(now), Step::Write(_)));
            assert!(!c.write_with(|_| Ok(1)));
            now += every;
        }
        assert!(now > t0 + limits.idle_timeout);
        assert_eq!(
            c.step(now),
            Step::Read(now + limits.idle_timeout),
            "idle from the last byte written"
        );
        assert_eq!(c.shared.stats.get(Counter::ErrorsIdleTimeout), 0);
    }

    /// A framed SLEEP longer than the idle timeout: its reply goes out, and the connection then waits a whole
    /// idle timeout for the next request (it was closed the moment the reply was out, counted as idle).
    #[test]
    fn a_sleep_longer_than_the_idle_timeout_keeps_its_connection() {
        let mut config = ServerConfig::default();
        config.limits.idle_timeout = Duration::from_secs(1);
        let mut c = conn_with(config, Proto::Framed);
        let t0 = Instant::now();
        let mut req = vec![0, 0, 0, 13, 4];
        req.extend_from_slice(&7u64.to_be_bytes());
        req.extend_from_slice(&2_500_000u32.to_be_bytes());
        c.read_with(
            |b| {
                b.put_slice(&req);
                Ok(req.len())
            },
            t0,
        );
        let woke = t0 + Duration::from_millis(2500);
        assert_eq!(c.step(t0), Step::Sleep(woke));
        assert!(matches!(c.step(woke), Step::Write(_)));
        let n = c.unsent().len();
        assert!(!c.write_with(|_| Ok(n)));
        assert_eq!(c.step(woke), Step::Read(woke + Duration::from_secs(1)));
        assert_eq!(c.shared.stats.get(Counter::ErrorsIdleTimeout), 0);
    }

    #[test]
    fn draining_answers_what_arrived_then_closes() {
        let mut c = conn(Proto::Line);
        let t0 = Instant::now();
        c.stop();
        assert_eq!(c.step(t0), Step::Read(t0));
        c.read_with(
            |b| {
                b.put_slice(b"last\n");
                Ok(5)
            },
            t0,
        );
        assert!(matches!(c.step(t0), Step::Write(_)));
        c.write_with(|b| Ok(b.len()));
        assert_eq!(
            c.step(t0),
            Step::Read(t0),
            "one more read for what is in the socket"
        );
        assert!(c.read_with(|_| Err(io::ErrorKind::WouldBlock.into()), t0));
        assert_eq!(c.step(t0), Step::Close);
    }

    #[test]
    fn read_buf_on_a_full_buffer_grows_it_and_reads_the_data_not_an_eof() {
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.write_all(b"ping").unwrap();
        let mut buf = BytesMut::with_capacity(8);
        buf.extend_from_slice(b"12345678");
        assert_eq!(buf.capacity(), buf.len());
        assert_eq!(read_buf(&mut &b, &mut buf, READ_WINDOW).unwrap(), 4);
        assert_eq!(&buf[..], b"12345678ping");
        // Room left: read into it as it is, the bytes before untouched.
        a.write_all(b"!").unwrap();
        assert_eq!(read_buf(&mut &b, &mut buf, READ_WINDOW).unwrap(), 1);
        assert_eq!(&buf[..], b"12345678ping!");
        drop(a);
        assert_eq!(
            read_buf(&mut &b, &mut buf, READ_WINDOW).unwrap(),
            0,
            "the peer's EOF"
        );
        // A buffer with a lot of room: one read zeroes and offers at most the window.
        let mut big = BytesMut::with_capacity(4 * READ_WINDOW);
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let sent = a.write(&[7u8; 2 * READ_WINDOW]).unwrap();
        assert!(sent > READ_WINDOW, "{sent}");
        let n = read_buf(&mut &b, &mut big, READ_WINDOW).unwrap();
        assert!(n > 0 && n <= READ_WINDOW, "{n}");
    }

    #[test]
    fn a_read_is_drained_only_when_shorter_than_the_room_it_offered() {
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        // 8 bytes of room, 4 there: drained.
        let mut buf = BytesMut::with_capacity(8);
        a.write_all(b"ping").unwrap();
        let (r, drained) = read_buf_drained(&mut &b, &mut buf, READ_WINDOW);
        assert_eq!((r.unwrap(), drained), (4, true));
        // Exactly the room: maybe more behind it, not drained.
        a.write_all(b"pong").unwrap();
        let (r, drained) = read_buf_drained(&mut &b, &mut buf, READ_WINDOW);
        assert_eq!((r.unwrap(), drained), (4, false));
        assert_eq!(&buf[..], b"pingpong");
        // Nothing there, and the peer's EOF: neither counts.
        let (r, drained) = read_buf_drained(&mut &b, &mut buf, READ_WINDOW);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(!drained);
        drop(a);
        let (r, drained) = read_buf_drained(&mut &b, &mut buf, READ_WINDOW);
        assert_eq!((r.unwrap(), drained), (0, false));
    }

    /// A read offers the window, not the buffer's spare capacity (which it would have to zero first); the
    /// window follows what the reads bring.
    #[test]
    fn a_read_offers_the_connection_window_which_follows_the_reads() {
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        a.write_all(&[1u8; 3000]).unwrap();
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let (r, drained) = read_buf_drained(&mut &b, &mut buf, 1024);
        assert_eq!(
            (r.unwrap(), drained),
            (1024, false),
            "the window, not the 16 KiB of room"
        );

        let mut c = conn(Proto::Echo);
        let t0 = Instant::now();
        assert_eq!(c.read_window(), MIN_READ_WINDOW);
        // Reads that fill the window double it, up to READ_WINDOW.
        let mut sizes = Vec::new();
        for _ in 0..10 {
            let w = c.read_window();
            c.read_with(
                |b| {
                    b.put_bytes(0, w);
                    Ok(w)
                },
                t0,
            );
            let _ = c.step(t0);
            sizes.push(c.read_window());
        }
        assert_eq!(sizes[..3], [512, 1024, 2048]);
        assert_eq!(*sizes.last().unwrap(), READ_WINDOW);
        // Small reads halve it, down to MIN_READ_WINDOW.
        for _ in 0..10 {
            c.read_with(
                |b| {
                    b.put_slice(b"ping");
                    Ok(4)
                },
                t0,
            );
            let _ = c.step(t0);
        }
        assert_eq!(c.read_window(), MIN_READ_WINDOW);
    }
}
