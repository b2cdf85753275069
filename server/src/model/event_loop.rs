//! `event-loop`: one thread, one mio poll loop over non-blocking sockets (edge-triggered), the classic epoll
//! server: each connection a [`Conn`] stepped until its socket would block (a read shorter than its room counts:
//! the socket was drained, and edge-triggered, bytes arriving later bring an event).
//!
//! Fair: one FIFO run queue holds every connection and listener with work, each at most once. A poll's events
//! append the ones not already queued (edge-triggered readiness is kept in the queue until that connection is
//! stepped to `WouldBlock`); a round serves the entries queued before it, each for one turn; a connection that
//! used its turn ([`conn::TURN_BYTES`]) goes to the back, behind whoever became ready meanwhile. A listener
//! accepts at most [`ACCEPT_BATCH`] connections a turn, and new connections join the queue like the others, so
//! accepting and serving take turns. Timers: [`Timers`] (a heap for framed SLEEP, a sweep for the read and
//! write deadlines). A TLS client over `max_connections` is closed without a reply.
//!
//! Shutdown: a mio `Waker` wakes the loop, the listeners close, every connection is told to stop (idle ones
//! close at once, the others when they have answered what they received), and the loop ends when none is left
//! or at the shutdown deadline.
//!
//! Busy polling (`busy_poll`): for that long after the last event the loop polls without sleeping, so the
//! clients' writes do not have to wake it between bursts.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::Proto;
use crate::conn::{self, Conn, Step};
use crate::listen::{Bound, Listener};
use crate::model::timers::Timers;
use crate::model::{on_shutdown, sock, Sock};
use crate::shared::Shared;

const WAKE: Token = Token(usize::MAX);
/// Tokens below this are listeners; connection `i` has token `CONN_BASE + i`.
const CONN_BASE: usize = 1 << 20;
/// Connections a listener accepts in one turn.
const ACCEPT_BATCH: usize = 64;
/// Pause before the listeners are tried again after an accept failed (out of file descriptors …).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

type MioListener = Sock<TcpListener, UnixListener>;

struct Slot {
    sock: Sock<TcpStream, UnixStream>,
    conn: Conn,
    /// Step it then without an event: its read or write deadline.
    due: Option<Instant>,
    /// The SLEEP it waits for (in the heap).
    sleep: Option<Instant>,
    /// Its last read was shorter than the room it had: the socket was drained then, and (edge-triggered) bytes
    /// arriving since bring an event, which clears this. Until then a read would only return `EAGAIN`.
    drained: bool,
    /// An event said the peer shut its write side. That is a final state, as tokio treats it (it never clears
    /// `READ_CLOSED`): the EOF raises no further event, so a short read no longer means the socket is drained,
    /// and the next read finds the EOF. Without it, a request and its FIN that arrive together are answered
    /// but the connection waits for `--idle-timeout`.
    read_closed: bool,
}

/// The loop's queues: the run queue of connections and listeners with work, and the timers.
struct Queues {
    ready: VecDeque<Token>,
    /// Per token (listener `i`, connection `CONN_BASE + i`): in `ready`. Kept when a slot is freed, so a stale
    /// entry is never doubled by the slot's next connection.
    listener_queued: Vec<bool>,
    conn_queued: Vec<bool>,
    timers: Timers,
}

impl Queues {
    /// Appends `token` to the run queue unless it is there already.
    fn enqueue(&mut self, token: Token) {
        let (flags, i) = match token.0.checked_sub(CONN_BASE) {
            Some(i) => (&mut self.conn_queued, i),
            None => (&mut self.listener_queued, token.0),
        };
        if flags.len() <= i {
            flags.resize(i + 1, false);
        }
        if !std::mem::replace(&mut flags[i], true) {
            self.ready.push_back(token);
        }
    }

    /// Takes the run queue's first entry.
    fn dequeue(&mut self) -> Option<Token> {
        let token = self.ready.pop_front()?;
        match token.0.checked_sub(CONN_BASE) {
            Some(i) => self.conn_queued[i] = false,
            None => self.listener_queued[token.0] = false,
        }
        Some(token)
    }
}

/// Steps `slot` until its socket would block, it waits, its turn ends or it closes; false once closed.
fn pump(slot: &mut Slot, slot_no: usize, q: &mut Queues) -> bool {
    loop {
        let now = Instant::now();
        let (blocked, due) = match slot.conn.step(now) {
            // `conn.step` answers a read only before its deadline: the sweep steps it again then.
            Step::Read(due) if slot.drained => {
                slot.due = Some(due);
                return true;
            }
            Step::Read(due) => {
                let (sock, drained, read_closed) =
                    (&mut slot.sock, &mut slot.drained, slot.read_closed);
                let window = slot.conn.read_window();
                let read = |b: &mut _| {
                    let (r, short) = conn::read_buf_drained(sock, b, window);
                    *drained = short && !read_closed;
                    r
                };
                (slot.conn.read_with(read, now), due)
            }
            Step::Write(due) => (slot.conn.write_with(|b| slot.sock.write(b)), due),
            Step::Sleep(until) => {
                if slot.sleep.replace(until) != Some(until) {
                    q.timers.sleep(until, slot_no);
                }
                return true;
            }
            Step::Yield => {
                q.enqueue(Token(CONN_BASE + slot_no));
                return true;
            }
            Step::ShutdownWrite => {
                slot.sock.shutdown(Shutdown::Write);
                continue;
            }
            Step::Close => return false,
        };
        if blocked && due > now {
            slot.due = Some(due);
            return true;
        }
    }
}

/// Serves `bound` until shutdown and drain.
pub(crate) fn run(bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let mut listeners: Vec<Option<(MioListener, Proto, bool)>> = Vec::new();
    for b in bound {
        let mut l = match b.listener {
            Listener::Tcp(l) => Sock::Tcp(TcpListener::from_std(l)),
            Listener::Unix(l) => Sock::Unix(UnixListener::from_std(l)),
            Listener::Udp(_) | Listener::Reserved(_) => continue,
        };
        let token = Token(listeners.len());
        sock!(&mut l, l => poll.registry().register(l, token, Interest::READABLE))?;
        listeners.push(Some((l, b.addr.proto, b.addr.tls)));
    }
    let watcher = {
        let waker = waker.clone();
        on_shutdown(&shared, "sockpool-evl-stop", move || {
            let _ = waker.wake();
        })?
    };

    shared.mark_ready();
    let mut slots: Vec<Option<Slot>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut q = Queues {
        ready: VecDeque::new(),
        listener_queued: Vec::new(),
        conn_queued: Vec::new(),
        timers: Timers::new(&shared.config.limits, shared.config.busy_poll),
    };
    let mut events = Events::with_capacity(1024);
    let mut drain_deadline: Option<Instant> = None;
    // Steps slot `i` (an event, a due timer, its turn again); frees it once closed.
    let step = |slots: &mut Vec<Option<Slot>>, free: &mut Vec<usize>, q: &mut Queues, i: usize| {
        if let Some(slot) = slots.get_mut(i).and_then(Option::as_mut) {
            if !pump(slot, i, q) {
                slots[i] = None;
                free.push(i);
            }
        }
    };

    // When the listeners are tried again after an accept failed for lack of descriptors.
    let mut accept_retry: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if accept_retry.is_some_and(|at| now >= at) && drain_deadline.is_none() {
            accept_retry = None;
            for i in 0..listeners.len() {
                q.enqueue(Token(i));
            }
        }
        let mut timeout = q.timers.wait(now, !q.ready.is_empty());
        if let Some(d) = drain_deadline {
            // The shutdown deadline is a wake-up of its own: the next sweep may come well after it.
            timeout = timeout.min(d.saturating_duration_since(now));
        }
        if let Some(at) = accept_retry {
            timeout = timeout.min(at.saturating_duration_since(now));
        }
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        if !events.is_empty() {
            q.timers.event();
        }
        // This poll's events join the run queue (shutdown at once); then one round: the entries queued before it.
        for event in events.iter() {
            if event.token() != WAKE {
                let token = event.token();
                let input = event.is_readable() || event.is_read_closed() || event.is_error();
                let slot = token
                    .0
                    .checked_sub(CONN_BASE)
                    .and_then(|i| slots.get_mut(i));
                if let (true, Some(Some(slot))) = (input, slot) {
                    slot.drained = false;
                    slot.read_closed |= event.is_read_closed();
                }
                q.enqueue(token);
                continue;
            }
            drain_deadline = Some(Instant::now() + shared.config.shutdown_deadline);
            for l in listeners.iter_mut() {
                if let Some((mut l, _, _)) = l.take() {
                    let _ = sock!(&mut l, l => poll.registry().deregister(l));
                }
            }
            for i in 0..slots.len() {
                if let Some(slot) = slots[i].as_mut() {
                    slot.conn.stop();
                }
                step(&mut slots, &mut free, &mut q, i);
            }
        }
        for _ in 0..q.ready.len() {
            let Some(token) = q.dequeue() else { break };
            match token {
                Token(i) if i < CONN_BASE => {
                    let Some(Some((l, proto, tls))) = listeners.get_mut(i) else {
                        continue;
                    };
                    for n in 1..=ACCEPT_BATCH {
                        let sock = match l {
                            Sock::Tcp(l) => l.accept().map(|(s, _)| {
                                if shared.config.nodelay {
                                    let _ = s.set_nodelay(true);
                                }
                                Sock::Tcp(s)
                            }),
                            Sock::Unix(l) => l.accept().map(|(s, _)| Sock::Unix(s)),
                        };
                        let mut sock = match sock {
                            Ok(sock) => sock,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => {
                                // Out of descriptors (EMFILE …): the connections still in the backlog raise
                                // no new edge, so the listener is tried again after a pause, not when the
                                // next client happens to connect.
                                accept_retry = Some(Instant::now() + ACCEPT_BACKOFF);
                                break;
                            }
                        };
                        if n == ACCEPT_BATCH {
                            q.enqueue(token);
                        }
                        let conn = match conn::admit(&shared, *proto, *tls) {
                            Ok(conn) => conn,
                            Err(refusal) => {
                                conn::refuse(&shared, refusal, |b| sock.write(b));
                                sock.shutdown(Shutdown::Write);
                                continue;
                            }
                        };
                        let i = free.pop().unwrap_or_else(|| {
                            slots.push(None);
                            slots.len() - 1
                        });
                        let registered = sock!(&mut sock, s => poll.registry().register(
                            s,
                            Token(CONN_BASE + i),
                            Interest::READABLE | Interest::WRITABLE,
                        ));
                        if registered.is_err() {
                            free.push(i);
                            continue;
                        }
                        slots[i] = Some(Slot {
                            sock,
                            conn,
                            due: None,
                            sleep: None,
                            drained: false,
                            read_closed: false,
                        });
                        // Edge-triggered: data may already be there; served in its turn.
                        q.enqueue(Token(CONN_BASE + i));
                    }
                }
                Token(t) => step(&mut slots, &mut free, &mut q, t - CONN_BASE),
            }
        }
        let now = Instant::now();
        while let Some(i) = q.timers.woken(now) {
            if let Some(slot) = slots.get_mut(i).and_then(Option::as_mut) {
                slot.sleep = None;
            }
            step(&mut slots, &mut free, &mut q, i);
        }
        if q.timers.sweep(now) {
            for i in 0..slots.len() {
                if slots[i]
                    .as_ref()
                    .is_some_and(|s| s.due.is_some_and(|d| d <= now))
                {
                    step(&mut slots, &mut free, &mut q, i);
                }
            }
        }
        let open = slots.len() - free.len();
        if drain_deadline.is_some_and(|d| open == 0 || now >= d) {
            break;
        }
    }
    drop(slots);
    let _ = watcher.join();
    Ok(())
}
