//! `uring`: completion-based I/O on io_uring (the `io-uring` crate). `workers` threads, each with its own ring
//! and SO_REUSEPORT listeners (the `per-core` layout, [`per_core::workers`]); each connection a [`Conn`] whose
//! steps become operations on the ring:
//!
//! - accept: one multishot accept per listener; each completion is a new connection, admitted or refused by
//!   [`conn::admit`] and [`conn::refuse`] like in every model;
//! - receive: one multishot receive per connection into a ring of provided buffers ([`bufs`]) shared by the
//!   worker's connections, so an idle connection holds no receive buffer. Each completion's bytes are copied to
//!   the connection's stash and the buffer goes straight back to the ring; `Step::Read` takes from the stash. A
//!   stash past [`STASH_CAP`] cancels the receive (a connection busy writing is not read: backpressure); it is
//!   armed again when the `Conn` reads and finds the stash empty;
//! - send: `Step::Write` first makes one non-blocking send(2) of the `Conn`'s unsent bytes, as a readiness
//!   model would: on loopback or a socket with room it takes them all, with no operation, no completion and no
//!   `io_uring_enter` of its own. What a full socket leaves is a send operation on the ring from the `Conn`'s
//!   own buffer, and the `Conn` is not stepped again until it completes (the kernel reads that memory until
//!   then). Submitted through the ring, every reply cost a second `io_uring_enter` (its completion woke the wait
//!   at once); docs/PERFORMANCE.md has the figures;
//! - batching: what a loop turn queues goes to the kernel in one `io_uring_enter`, which also waits for the next
//!   completion.
//! - the clock: the next deadline sweep or the end of a framed SLEEP ([`Timers`]) is a timeout operation on the
//!   ring, armed when none that fires sooner is, so the wait itself takes no timeout. A timeout passed to every
//!   `io_uring_enter` arms and cancels a kernel timer per wait: on an Intel VM that was half of the worker's
//!   CPU at 10k requests a second (9.0 against 4.8 µs a request; docs/PERFORMANCE.md).
//!
//! Deadlines: the sweep steps a connection whose deadline passed; a send still in flight is cancelled first and
//! the connection stepped when the cancelled send completes. Shutdown: a watcher closes one end of a socket
//! pair each ring polls; the accepts are cancelled and every `Conn` told to stop; at the shutdown deadline the
//! sockets left are shut both ways, which ends their operations.
//!
//! Where io_uring is unavailable ([`probe`]: `io_uring_setup` fails — `kernel.io_uring_disabled`, a seccomp
//! filter, an old kernel — or an operation used here is missing) `run` falls back to `event-loop` with a
//! warning on stderr.
//!
//! Why the `io-uring` crate (tokio-rs/io-uring) rather than a runtime on it (monoio, compio): the shell drives the
//! `Conn` itself and wants multishot accept and receive, a provided-buffer ring and one `io_uring_enter` per loop
//! turn, which the crate gives as they are; a runtime would put its futures and its own buffer ownership between
//! the `Conn` and the ring. Chosen on that ground, not by a measurement against them.

// io_uring hands the kernel memory that must outlive each operation: every `unsafe` below says why it does.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};
use nix::libc;
use socket2::SockRef;

use crate::config::Proto;
use crate::conn::{self, Conn, Step};
use crate::listen::{Bound, Listener};
use crate::model::timers::Timers;
use crate::model::{event_loop, on_shutdown, per_core};
use crate::shared::Shared;

mod bufs;
use bufs::Bufs;

/// Set (to anything) in the environment, the probe fails as on a kernel without io_uring: tests the fallback.
pub const FORCE_UNAVAILABLE: &str = "SOCKPOOL_URING_UNAVAILABLE";
/// Submission queue entries per ring (the completion queue has twice as many; the kernel keeps overflow).
const ENTRIES: u32 = 1024;
/// Provided receive buffers per ring (a power of two), each `read_buffer` bytes (4–64 KiB).
const BUFS: u16 = 256;
const GROUP: u16 = 0;
/// Received bytes a connection may hold unread before its receive is cancelled.
const STASH_CAP: usize = conn::TURN_BYTES;
/// With `batch_wait`: the completions one wait gathers at most before it returns early.
const BATCH: usize = 32;
/// How long past the shutdown deadline the loop waits for the operations of the sockets it shut.
const LAST_WAIT: Duration = Duration::from_secs(1);

/// What a completion is for: `user_data` is `index << 3 | kind`.
const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const WAKE: u64 = 3;
const OTHER: u64 = 4;
/// The ring's timeout (see [`Worker::arm_timer`]); `index` is its generation.
const TIMER: u64 = 5;

fn tag(kind: u64, i: usize) -> u64 {
    (i as u64) << 3 | kind
}

/// Serves `bound` until shutdown and drain, or falls back to `event-loop` where io_uring is unavailable.
pub(crate) fn run(bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    if let Err(why) = probe() {
        eprintln!(
            "sockpool-server: WARNING: --model uring: io_uring is unavailable here ({why}); \
             falling back to --model event-loop"
        );
        return event_loop::run(bound, shared);
    }
    per_core::workers(bound, shared, "sockpool-uring", serve)
}

/// Checks that this process can use io_uring as `serve` does; why not, if it cannot.
pub(crate) fn probe() -> Result<(), String> {
    if std::env::var_os(FORCE_UNAVAILABLE).is_some() {
        return Err(format!("{FORCE_UNAVAILABLE} is set"));
    }
    let ring = IoUring::new(8).map_err(|e| {
        let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled");
        match sysctl.as_deref().map(str::trim) {
            Ok(v) if v != "0" => format!("io_uring_setup: {e}; kernel.io_uring_disabled = {v}"),
            _ => format!("io_uring_setup: {e}"),
        }
    })?;
    if !ring.params().is_feature_ext_arg() {
        return Err(
            "the kernel's io_uring cannot wait with a timeout (IORING_FEAT_EXT_ARG, Linux 5.11)"
                .into(),
        );
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("io_uring probe: {e}"))?;
    for (name, code) in [
        ("accept", opcode::AcceptMulti::CODE),
        ("recv", opcode::RecvMulti::CODE),
        ("send", opcode::Send::CODE),
        ("poll", opcode::PollAdd::CODE),
        ("cancel", opcode::AsyncCancel::CODE),
    ] {
        if !probe.is_supported(code) {
            return Err(format!("the kernel's io_uring lacks the {name} operation"));
        }
    }
    let bufs = Bufs::new(&ring, 2, 64).map_err(|e| format!("provided buffer ring: {e}"))?;
    drop(ring);
    drop(bufs);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recv {
    Idle,
    Armed,
    Cancelled,
    /// Ended for want of a provided buffer (`ENOBUFS`): waits in [`Worker::starved`] to be armed again.
    Starved,
}

struct Slot {
    fd: OwnedFd,
    /// `None` once closed: the slot is freed when its receive has ended.
    conn: Option<Conn>,
    /// Received, not yet read by the `Conn`.
    stash: BytesMut,
    /// The receive ended for good: 0 end of file, else `-errno`.
    end: Option<i32>,
    recv: Recv,
    /// A send of the `Conn`'s output is in flight.
    sending: bool,
    /// The loop turn ([`Worker::turn`]) of its last `send(2)`: a connection sends once a turn, as it did when
    /// every send was a completion to wait for, so one that pipelines without pause takes turns with the others.
    sent_in: u64,
    /// Step it then without a completion: its read or write deadline.
    due: Option<Instant>,
    /// The SLEEP it waits for (in the timers).
    sleep: Option<Instant>,
}

struct Listen {
    fd: OwnedFd,
    proto: Proto,
    tls: bool,
    /// Its multishot accept is armed.
    armed: bool,
}

/// One worker's ring and connections. Field order is drop order: the ring goes first, so the kernel has let go
/// of the buffers and sockets before they are freed.
struct Worker {
    /// Loop turns so far.
    turn: u64,
    ring: IoUring,
    bufs: Bufs,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    listeners: Vec<Option<Listen>>,
    shared: Arc<Shared>,
    again: VecDeque<usize>,
    /// Connections whose receive found no provided buffer, oldest first: armed again at the end of a turn, at
    /// most [`BUFS`] a turn. Armed again at once, as they were, a burst on thousands of connections (wrk
    /// `-c 8000`) kept ending their receives with `ENOBUFS` turn after turn: the worker spent its CPU on receives
    /// that got nothing (95% of a core), and whichever connections lost that race again and again waited
    /// seconds (p99 0.5–1.1 s, wrk timeouts, at 0.6–0.9× the rate).
    starved: VecDeque<usize>,
    timers: Timers,
    /// Shutdown began: the deadline.
    drain: Option<Instant>,
    /// `batch_wait` in µs (0: off, or the kernel has no `min_wait`).
    batch_wait_us: u32,
    /// When the timeout operation on the ring fires, while one is armed ([`Worker::arm_timer`]).
    timer_at: Option<Instant>,
    /// The generation of the latest timeout armed: an earlier one that fires is stale.
    timer_gen: usize,
    /// What the latest timeout waits; the kernel reads it when the operation is submitted.
    timer_ts: Box<Timespec>,
}

/// Queues `e`, handing the kernel what is queued when the queue is full.
fn push(ring: &mut IoUring, e: &squeue::Entry) {
    // SAFETY: what an entry points at outlives its operation: receives write into `Bufs` (dropped after the
    // ring); a send reads a `Conn`'s output, which is neither stepped nor dropped until the send completes;
    // sockets are closed only when their operations have ended (or after the ring).
    while unsafe { ring.submission().push(e) }.is_err() {
        let _ = ring.submit();
    }
}

/// `Step::Read` from the stash: what is there, else how the receive ended, else nothing yet.
fn take(stash: &mut BytesMut, end: Option<i32>, buf: &mut BytesMut) -> io::Result<usize> {
    let n = stash.len().min(buf.capacity() - buf.len());
    match end {
        _ if n > 0 => {
            buf.extend_from_slice(&stash[..n]);
            stash.advance(n);
            if stash.is_empty() && stash.capacity() > 4096 {
                // An upload's stash does not stay with the connection once it is idle.
                *stash = BytesMut::new();
            }
            Ok(n)
        }
        Some(0) => Ok(0),
        Some(e) => Err(io::Error::from_raw_os_error(-e)),
        None => Err(io::ErrorKind::WouldBlock.into()),
    }
}

/// A completion's result as a socket call's.
fn result(res: i32) -> io::Result<usize> {
    match res {
        n if n >= 0 => Ok(n as usize),
        e if e == -libc::ECANCELED => Err(io::ErrorKind::WouldBlock.into()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

/// One worker: serves `bound` on a ring of its own until shutdown and drain.
fn serve(bound: Vec<Bound>, shared: Arc<Shared>, started: per_core::Started) -> io::Result<()> {
    // One thread submits, and completions are processed only when it asks for them: no task-work interrupts.
    // The task-run flag tells it when some are waiting, so that a turn that does not wait (work queued in
    // `again`) still takes them in: without it, a client that kept `again` busy (one that pipelines without
    // pause, answered a send a turn) held back everyone else's receives for thousands of requests.
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .build(ENTRIES)
        .or_else(|_| IoUring::new(ENTRIES))?;
    let size = shared.config.read_buffer.clamp(4096, 64 * 1024);
    let batch_wait_us = u32::try_from(shared.config.batch_wait.as_micros()).unwrap_or(u32::MAX);
    let mut w = Worker {
        turn: 1,
        bufs: Bufs::new(&ring, BUFS, size)?,
        ring,
        slots: Vec::new(),
        free: Vec::new(),
        listeners: Vec::new(),
        timers: Timers::new(&shared.config.limits, shared.config.busy_poll),
        shared,
        again: VecDeque::new(),
        starved: VecDeque::new(),
        timer_at: None,
        timer_gen: 0,
        timer_ts: Box::new(Timespec::new()),
        drain: None,
        batch_wait_us,
    };
    for b in bound {
        let fd = match b.listener {
            Listener::Tcp(l) => OwnedFd::from(l),
            Listener::Unix(l) => OwnedFd::from(l),
            Listener::Udp(_) | Listener::Reserved(_) => continue,
        };
        w.listeners.push(Some(Listen {
            fd,
            proto: b.addr.proto,
            tls: b.addr.tls,
            armed: false,
        }));
    }
    w.accept();
    let (stop_tx, stop_rx) = UnixStream::pair()?;
    let watcher = on_shutdown(&w.shared, "sockpool-uring-stop", move || drop(stop_tx))?;
    let poll = opcode::PollAdd::new(Fd(stop_rx.as_raw_fd()), libc::POLLIN as u32);
    push(&mut w.ring, &poll.build().user_data(tag(WAKE, 0)));
    started.done();

    let mut done: Vec<(u64, i32, u32)> = Vec::new();
    let mut shut = false;
    loop {
        w.turn += 1;
        let now = Instant::now();
        let mut wait = w.timers.wait(now, !w.again.is_empty());
        if let Some(d) = w.drain {
            // The shutdown deadline (and, once the sockets are shut, the last wait for their operations) is a
            // wake-up of its own: the next sweep may come well after it.
            let until = if shut { d + LAST_WAIT } else { d };
            wait = wait.min(until.saturating_duration_since(now));
        }
        let submitted = if wait.is_zero() {
            // Work is waiting (`again`, a due timer): no wait at all. With `--batch-wait` the kernel armed its
            // min_wait timer even for a zero timeout, so every turn of a large reply's sends slept that long.
            w.ring.submit()
        } else if w.batch_wait_us == 0 {
            // Woken by the next completion, or by the ring's timeout at the next sweep or SLEEP's end.
            w.arm_timer(now, wait);
            w.ring.submit_and_wait(1)
        } else {
            let ts = Timespec::from(wait);
            // The kernel holds the wake-up until BATCH completions or until `batch_wait` has passed with at
            // least one (io_uring min_wait), whichever comes first.
            let args = SubmitArgs::new()
                .timespec(&ts)
                .min_wait_usec(w.batch_wait_us);
            w.ring.submitter().submit_with_args(BATCH, &args)
        };
        match submitted {
            Ok(_) => {}
            Err(e) if w.batch_wait_us > 0 && e.raw_os_error() == Some(libc::EINVAL) => {
                // A kernel before 6.12 has no min_wait: serve every completion as it comes.
                eprintln!(
                    "sockpool-server: --batch-wait needs io_uring min_wait (Linux 6.12 or later); serving without it"
                );
                w.batch_wait_us = 0;
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        done.clear();
        done.extend(
            w.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        if !done.is_empty() {
            w.timers.event();
        }
        for &(data, res, flags) in &done {
            let i = (data >> 3) as usize;
            match data & 7 {
                ACCEPT => w.accepted(i, res, flags),
                RECV => w.received(i, res, flags),
                SEND => w.sent(i, res),
                WAKE => w.stop(),
                TIMER if i == w.timer_gen => w.timer_at = None,
                _ => {}
            }
        }
        // Whoever used a whole turn before these completions.
        for _ in 0..w.again.len() {
            if let Some(i) = w.again.pop_front() {
                w.pump(i);
            }
        }
        w.rearm_starved();
        let now = Instant::now();
        while let Some(i) = w.timers.woken(now) {
            if let Some(s) = w.slots.get_mut(i).and_then(Option::as_mut) {
                s.sleep = None;
            }
            w.pump(i);
        }
        if w.timers.sweep(now) {
            w.sweep(now);
        }
        if let Some(deadline) = w.drain {
            let open = w.slots.len() - w.free.len();
            // Done once nothing is left in the kernel and every connection has closed, or the sockets are shut: a
            // connection still open then (a framed SLEEP that outlasts the deadline) holds nothing in use.
            let in_kernel = w.listeners.iter().any(Option::is_some)
                || w.slots
                    .iter()
                    .flatten()
                    .any(|s| s.sending || matches!(s.recv, Recv::Armed | Recv::Cancelled));
            if (!in_kernel && (open == 0 || shut)) || now >= deadline + LAST_WAIT {
                break;
            }
            if now >= deadline && !shut {
                // Their receives end (end of file) and their sends fail: every connection closes.
                shut = true;
                for s in w.slots.iter().flatten() {
                    let _ = SockRef::from(&s.fd).shutdown(Shutdown::Both);
                }
            }
        }
    }
    drop(w);
    let _ = watcher.join();
    Ok(())
}

impl Worker {
    /// Makes sure the ring wakes the loop `wait` after `now` at the latest: a timeout operation, unless one that
    /// fires by then is armed (one armed for later stays, and wakes the loop once for nothing).
    fn arm_timer(&mut self, now: Instant, wait: Duration) {
        let at = now + wait;
        if self.timer_at.is_some_and(|armed| armed <= at) {
            return;
        }
        self.timer_gen += 1;
        *self.timer_ts = Timespec::from(wait);
        // SAFETY (see `push`): the kernel reads the timespec when the operation is submitted, by the
        // `io_uring_enter` that follows in this turn of the loop (or the one `push` makes if the queue is full);
        // `timer_ts` lives in the worker and is rewritten only in a later turn.
        let e = opcode::Timeout::new(&*self.timer_ts).build();
        push(&mut self.ring, &e.user_data(tag(TIMER, self.timer_gen)));
        self.timer_at = Some(at);
    }

    /// Arms the multishot accept of every listener that has none.
    fn accept(&mut self) {
        for (l, listen) in self.listeners.iter_mut().enumerate() {
            let Some(listen) = listen.as_mut().filter(|l| !l.armed) else {
                continue;
            };
            listen.armed = true;
            let e = opcode::AcceptMulti::new(Fd(listen.fd.as_raw_fd()))
                .flags(libc::SOCK_CLOEXEC)
                .build();
            push(&mut self.ring, &e.user_data(tag(ACCEPT, l)));
        }
    }

    fn cancel(&mut self, target: u64) {
        let e = opcode::AsyncCancel::new(target).build();
        push(&mut self.ring, &e.user_data(OTHER));
    }

    fn accepted(&mut self, l: usize, res: i32, flags: u32) {
        let Some(listen) = self.listeners.get_mut(l).and_then(Option::as_mut) else {
            return;
        };
        let (proto, tls) = (listen.proto, listen.tls);
        if !cqueue::more(flags) {
            // Ended: cancelled at shutdown (the listener closes), or an error such as EMFILE (armed again at
            // the next sweep, not in a loop).
            listen.armed = false;
            if self.drain.is_some() {
                self.listeners[l] = None;
            }
        }
        if res < 0 {
            return;
        }
        // SAFETY: a completed accept's result is a new socket that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(res) };
        let sock = SockRef::from(&fd);
        if self.shared.config.nodelay {
            let _ = sock.set_nodelay(true);
        }
        let conn = match conn::admit(&self.shared, proto, tls) {
            Ok(conn) => conn,
            Err(refusal) => {
                conn::refuse(&self.shared, refusal, |b| {
                    sock.send_with_flags(b, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                });
                let _ = sock.shutdown(Shutdown::Write);
                return;
            }
        };
        let i = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.slots[i] = Some(Slot {
            fd,
            conn: Some(conn),
            stash: BytesMut::new(),
            end: None,
            recv: Recv::Idle,
            sending: false,
            sent_in: 0,
            due: None,
            sleep: None,
        });
        self.pump(i);
    }

    fn received(&mut self, i: usize, res: i32, flags: u32) {
        let Some(s) = self.slots.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        match (res, cqueue::buffer_select(flags)) {
            (n, Some(bid)) if n > 0 => {
                s.stash.extend_from_slice(self.bufs.get(bid, n as usize));
                self.bufs.give_back(bid);
            }
            // Cancelled: armed again when the `Conn` reads.
            (e, _) if e == -libc::ECANCELED => {}
            // Out of buffers for a moment: armed again, in turn, at the end of this loop turn.
            (e, _) if e == -libc::ENOBUFS => {
                if !cqueue::more(flags) && s.recv == Recv::Armed && s.end.is_none() {
                    s.recv = Recv::Starved;
                    self.starved.push_back(i);
                }
            }
            (e, _) => s.end = Some(e),
        }
        if !cqueue::more(flags) && s.recv != Recv::Starved {
            s.recv = Recv::Idle;
        }
        self.pump(i);
        if let Some(s) = self.slots.get_mut(i).and_then(Option::as_mut) {
            if s.stash.len() >= STASH_CAP && s.recv == Recv::Armed {
                s.recv = Recv::Cancelled;
                self.cancel(tag(RECV, i));
            }
        }
    }

    fn sent(&mut self, i: usize, res: i32) {
        let Some(s) = self.slots.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        s.sending = false;
        if let Some(conn) = s.conn.as_mut() {
            conn.write_with(|_| result(res));
        }
        self.pump(i);
    }

    /// Steps connection `i` until it waits for a completion or a deadline, yields or closes.
    fn pump(&mut self, i: usize) {
        let Some(s) = self.slots.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if s.sending {
            return;
        }
        let fd = Fd(s.fd.as_raw_fd());
        while let Some(conn) = s.conn.as_mut() {
            let now = Instant::now();
            s.due = None;
            match conn.step(now) {
                Step::Read(due) => {
                    let (stash, end) = (&mut s.stash, s.end);
                    if !conn.read_with(|b| take(stash, end, b), now) {
                        continue;
                    }
                    if s.recv == Recv::Idle && s.end.is_none() {
                        s.recv = Recv::Armed;
                        let e = opcode::RecvMulti::new(fd, GROUP).build();
                        push(&mut self.ring, &e.user_data(tag(RECV, i)));
                    }
                    if due > now {
                        s.due = Some(due);
                        return;
                    }
                }
                Step::Write(due) => {
                    // First a send(2) of its own, as a readiness model would make: on loopback, or any socket
                    // with room, it takes everything, and no operation, completion or second `io_uring_enter`
                    // is needed for it. What a full socket leaves goes to the ring, which sends it once there
                    // is room.
                    if s.sent_in == self.turn {
                        // Sent once this turn already: the rest waits for the next, behind everyone else.
                        self.again.push_back(i);
                        return;
                    }
                    s.sent_in = self.turn;
                    if !conn.write_with(|b| direct_send(&s.fd, b)) {
                        continue;
                    }
                    let out = conn.unsent();
                    let len = out.len().min(u32::MAX as usize) as u32;
                    let e = opcode::Send::new(fd, out.as_ptr(), len)
                        .flags(libc::MSG_NOSIGNAL)
                        .build();
                    push(&mut self.ring, &e.user_data(tag(SEND, i)));
                    (s.sending, s.due) = (true, Some(due));
                    return;
                }
                Step::Sleep(until) => {
                    if s.sleep.replace(until) != Some(until) {
                        self.timers.sleep(until, i);
                    }
                    return;
                }
                Step::Yield => {
                    self.again.push_back(i);
                    return;
                }
                Step::ShutdownWrite => {
                    let _ = SockRef::from(&s.fd).shutdown(Shutdown::Write);
                }
                Step::Close => s.conn = None,
            }
        }
        // Closed: the socket closes with the slot, once its receive has ended.
        match s.recv {
            // A starved slot's entry in `starved` finds it gone (or another connection's, not starved).
            Recv::Idle | Recv::Starved => {
                self.slots[i] = None;
                self.free.push(i);
            }
            Recv::Armed => {
                s.recv = Recv::Cancelled;
                self.cancel(tag(RECV, i));
            }
            Recv::Cancelled => {}
        }
    }

    /// Arms the receives of the oldest starved connections again: as many as there are provided buffers, so
    /// that each is likely to find one (the buffers of this turn's completions are all back by now).
    fn rearm_starved(&mut self) {
        for _ in 0..self.starved.len().min(usize::from(BUFS)) {
            let Some(i) = self.starved.pop_front() else {
                break;
            };
            let Some(s) = self.slots.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if s.recv != Recv::Starved {
                continue;
            }
            s.recv = Recv::Armed;
            let e = opcode::RecvMulti::new(Fd(s.fd.as_raw_fd()), GROUP).build();
            push(&mut self.ring, &e.user_data(tag(RECV, i)));
        }
    }

    /// Steps the connections whose deadline passed (cancelling a send in flight first); arms the accepts that
    /// ended with an error.
    fn sweep(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let Some(s) = self.slots[i].as_mut() else {
                continue;
            };
            if s.due.is_none_or(|d| d > now) {
                continue;
            }
            if s.sending {
                s.due = None;
                self.cancel(tag(SEND, i));
            } else {
                self.pump(i);
            }
        }
        if self.drain.is_none() {
            self.accept();
        }
    }

    /// Shutdown began: the accepts are cancelled, every connection told to stop; past the deadline, the sockets
    /// left are shut.
    fn stop(&mut self) {
        self.drain = Some(Instant::now() + self.shared.config.shutdown_deadline);
        for l in 0..self.listeners.len() {
            match &self.listeners[l] {
                Some(listen) if listen.armed => self.cancel(tag(ACCEPT, l)),
                // No accept in the kernel (it ended on an error, to be armed at the next sweep): nothing to wait
                // for.
                Some(_) => self.listeners[l] = None,
                None => {}
            }
        }
        for i in 0..self.slots.len() {
            if let Some(c) = self.slots[i].as_mut().and_then(|s| s.conn.as_mut()) {
                c.stop();
            }
            self.pump(i);
        }
    }
}

/// One non-blocking send(2) of `buf` on `fd` (`EAGAIN` when the socket is full).
fn direct_send(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    SockRef::from(fd).send_with_flags(buf, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
}
