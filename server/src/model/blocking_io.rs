//! The blocking I/O shell `threads` runs on each connection's thread: a [`Conn`] over a std socket. A read blocks,
//! its deadline set as the socket's read timeout (a read returns as soon as any bytes come, so its progress is
//! seen at once). A write does not block: it sends what the socket takes now (the common case, one system call)
//! and, when the socket is full, waits with `poll` until it is writable or the connection's deadline
//! ([`Step::Write`]'s) passes. A blocking write with the socket's write timeout returned what it sent only when
//! it timed out, so the `Conn` saw progress a timeout late: a client that never read was closed at ~3× the
//! write timeout.
//!
//! Shutdown has to reach a thread blocked in a read, and only `shutdown(2)` of the socket's read side wakes it
//! (for good: the read side stays shut). So a connection's thread says, before each read, whether that read waits
//! between requests or in the TLS handshake ([`Conn::is_idle`]: nothing to finish there); when shutdown begins the model shuts the read side of exactly those
//! ([`Watch::wake_idle`]), and a thread about to read sees the server stopping and tells its `Conn`. A connection
//! with a request partly received, a reply being written or a SLEEP running is left to finish it, as under every
//! other model; at the shutdown deadline the model shuts every socket both ways ([`Watch::cut`]).

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{send, MsgFlags};

use crate::conn::{self, Conn, Step};
use crate::model::{sock, Sock};

/// A std socket of either kind.
pub(crate) type StdSock = Sock<TcpStream, UnixStream>;

impl StdSock {
    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        sock!(self, s => s.set_nonblocking(on))
    }

    fn set_read_timeout(&self, d: Duration) -> io::Result<()> {
        sock!(self, s => s.set_read_timeout(Some(d)))
    }

    fn fd(&self) -> BorrowedFd<'_> {
        sock!(self, s => s.as_fd())
    }
}

/// How much later than a deadline a read timeout already set may end before it is set again (setting one is a
/// system call; most deadlines move by microseconds from one request to the next).
const SLACK: Duration = Duration::from_millis(10);

/// How often a connection whose read side shutdown shut looks again for the rest of a request it had begun to
/// receive: a read there returns at once, with what came or nothing. (TCP still takes the client's bytes; the
/// peer of a Unix socket can send no more, so there such a request ends at its read timeout.)
const SHUT_POLL: Duration = Duration::from_millis(5);

/// A connection's [`Watch::state`]: its next or current read is part of a request (or a reply, linger …).
const BUSY: u8 = 0;
/// Its read waits between requests: shutdown may shut its read side.
const IDLE: u8 = 1;
/// Shutdown shut its read side: a read that finds nothing returns 0 at once, which is not the client's end.
const SHUT: u8 = 2;
/// The shutdown deadline shut it both ways: a read's 0 is the end.
const CUT: u8 = 3;

/// What a connection's thread and the model share about one connection so that shutdown reaches it.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// [`BUSY`], [`IDLE`], [`SHUT`] or [`CUT`]. `SeqCst` with the server's stopping flag: a thread that publishes
    /// `IDLE` and then finds the server not stopping is seen `IDLE` by the model, which stops the server first.
    state: AtomicU8,
    /// The connection's thread, once it runs: the cut wakes it from a framed SLEEP (a socket shut both ways
    /// ends a read or a write, not a sleep).
    thread: OnceLock<Thread>,
}

impl Watch {
    /// Shutdown began (`stopping` is already set): if this connection's thread waits between requests, marks it
    /// shut and returns true; the caller then shuts the socket's read side, which ends the wait.
    pub(crate) fn wake_idle(&self) -> bool {
        self.state
            .compare_exchange(IDLE, SHUT, SeqCst, SeqCst)
            .is_ok()
    }

    /// The shutdown deadline passed: the caller shuts the socket both ways, and a read's 0 is the end.
    pub(crate) fn cut(&self) {
        self.state.store(CUT, SeqCst);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Before a read: publishes whether it waits between requests, and returns whether the server is stopping.
    fn before_read(&self, idle: bool, stopping: &AtomicBool) -> bool {
        let want = if idle { IDLE } else { BUSY };
        let now = self.state.load(SeqCst);
        if now != want && now < SHUT {
            // Only the model moves it past `IDLE`, and only from `IDLE`.
            let _ = self.state.compare_exchange(now, want, SeqCst, SeqCst);
        }
        stopping.load(SeqCst)
    }

    fn shut(&self) -> bool {
        self.state.load(SeqCst) == SHUT
    }

    fn is_cut(&self) -> bool {
        self.state.load(SeqCst) == CUT
    }
}

/// Runs `conn` over `s` until it closes, `watch` being its part in the model's shutdown and `stopping` the
/// server's flag for it (see the module docs).
pub(crate) fn drive(s: &mut StdSock, mut conn: Conn, watch: &Watch, stopping: &AtomicBool) {
    // The read timeout set on the socket.
    let mut set: Option<Duration> = None;
    let mut stopped = false;
    watch.thread.get_or_init(std::thread::current);
    loop {
        let now = Instant::now();
        match conn.step(now) {
            Step::Read(due) => {
                if watch.before_read(conn.is_idle(), stopping) && !stopped {
                    stopped = true;
                    conn.stop();
                    continue;
                }
                match read_timeout(s, &mut set, due.saturating_duration_since(now)) {
                    Ok(()) => {
                        let window = conn.read_window();
                        conn.read_with(|b| read(s, b, window, watch, due), now);
                    }
                    Err(_) => conn.fail(),
                }
            }
            Step::Write(due) => {
                conn.write_with(|b| write(s.fd(), b, due));
            }
            Step::Sleep(until) => {
                // Woken early by the cut (or for nothing: the `Conn` says whether the SLEEP is over).
                if watch.is_cut() {
                    return;
                }
                std::thread::park_timeout(until.saturating_duration_since(now));
            }
            Step::Yield => std::thread::yield_now(),
            Step::ShutdownWrite => s.shutdown(Shutdown::Write),
            Step::Close => return,
        }
    }
}

/// One socket read into `b`. Once shutdown shut the read side, finding nothing is not the client's end: the
/// read waits [`SHUT_POLL`] (at most until `due`) and reports nothing there, so a request begun before the
/// shutdown reached this connection is still read to its end, and an idle one closes after the drain's read.
fn read(
    s: &mut StdSock,
    b: &mut bytes::BytesMut,
    window: usize,
    watch: &Watch,
    due: Instant,
) -> io::Result<usize> {
    let r = conn::read_buf(s, b, window);
    if matches!(r, Ok(0)) && watch.shut() {
        std::thread::sleep(SHUT_POLL.min(due.saturating_duration_since(Instant::now())));
        return Err(io::ErrorKind::WouldBlock.into());
    }
    r
}

/// One write of `b` that waits for room until `due` at the latest: a send that does not block, and when the
/// socket is full, `poll` until it is writable (then one more send) or `due` (then `WouldBlock`: the `Conn` sees
/// its deadline passed). Any progress is seen the moment the socket takes it, as under the models that poll.
fn write(fd: BorrowedFd<'_>, b: &[u8], due: Instant) -> io::Result<usize> {
    match send_now(fd, b) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        r => return r,
    }
    loop {
        let left = due.saturating_duration_since(Instant::now());
        // Whole milliseconds, rounded up: a wait that ends early only costs a step.
        let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        if ms == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return Err(io::ErrorKind::WouldBlock.into()),
            // Writable, or shut or failed: the send says which.
            Ok(_) => return send_now(fd, b),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `send` that does not block (and raises no SIGPIPE on a closed TCP socket).
fn send_now(fd: BorrowedFd<'_>, b: &[u8]) -> io::Result<usize> {
    Ok(send(
        fd.as_raw_fd(),
        b,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
    )?)
}

/// Sets the read timeout to `left` unless the one set ends within [`SLACK`] after it and no sooner than half
/// of it.
fn read_timeout(s: &StdSock, set: &mut Option<Duration>, left: Duration) -> io::Result<()> {
    let left = left.max(Duration::from_millis(1));
    if set.is_some_and(|t| t <= left + SLACK && t >= left / 2) {
        return Ok(());
    }
    s.set_read_timeout(left)?;
    *set = Some(left);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use super::*;
    use crate::config::{Proto, ServerConfig};
    use crate::shared::Shared;

    /// The race shutdown meets under `threads`: a connection's thread said its read waits between requests, a
    /// request's first bytes arrive, and the model, finding the connection idle, shuts its read side. The
    /// thread then reads those bytes followed by 0s that are not the client's end: the rest of the request is
    /// still read, answered, and then the connection closes.
    #[test]
    fn a_request_begun_as_shutdown_shuts_the_read_side_is_read_to_its_end_and_answered() {
        let shared = Arc::new(Shared::new(
            ServerConfig::default(),
            Default::default(),
            Default::default(),
            None,
        ));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let server = l.accept().unwrap().0;
        let conn = conn::admit(&shared, Proto::Framed, false).expect("admitted");
        let (watch, stopping) = (Arc::new(Watch::default()), Arc::new(AtomicBool::new(false)));
        // The thread is about to wait between requests; 10 bytes of a 19-byte ECHO arrive; shutdown begins.
        assert!(!watch.before_read(true, &stopping));
        let mut request = vec![0, 0, 0, 15, 1];
        request.extend_from_slice(&7u64.to_be_bytes());
        request.extend_from_slice(&0u32.to_be_bytes());
        request.extend_from_slice(b"hi");
        client.write_all(&request[..10]).unwrap();
        stopping.store(true, SeqCst);
        assert!(watch.wake_idle());
        server.shutdown(Shutdown::Read).unwrap();
        let thread = {
            let (watch, stopping) = (watch.clone(), stopping.clone());
            std::thread::spawn(move || drive(&mut Sock::Tcp(server), conn, &watch, &stopping))
        };
        // The rest comes a while later (any time before the read timeout does).
        std::thread::sleep(Duration::from_millis(50));
        client.write_all(&request[10..]).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        client
            .read_to_end(&mut got)
            .expect("the reply, then the close");
        let mut want = vec![0, 0, 0, 11, 0];
        want.extend_from_slice(&7u64.to_be_bytes());
        want.extend_from_slice(b"hi");
        assert_eq!(got, want);
        thread.join().unwrap();
        assert_eq!(shared.stats.get(crate::stats::Counter::Requests), 1);
    }
}
