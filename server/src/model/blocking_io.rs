//! The blocking I/O shell `threads` runs on each connection's thread: a [`Conn`] over a std socket, each of its
//! deadlines set as the socket's read or write timeout.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::conn::{self, Conn, Step};
use crate::model::{sock, Sock};

/// A std socket of either kind.
pub(crate) type StdSock = Sock<TcpStream, UnixStream>;

impl StdSock {
    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        sock!(self, s => s.set_nonblocking(on))
    }

    fn set_timeout(&self, read: bool, d: Duration) -> io::Result<()> {
        match read {
            true => sock!(self, s => s.set_read_timeout(Some(d))),
            false => sock!(self, s => s.set_write_timeout(Some(d))),
        }
    }
}

/// How much later than a deadline a socket timeout already set may end before it is set again (setting one is a
/// system call; most deadlines move by microseconds from one request to the next).
const SLACK: Duration = Duration::from_millis(10);

/// Runs `conn` over `s` until it closes. Shutdown reaches a connection blocked in a read through its socket (the
/// model shuts the read side: the read ends, and the `Conn`, seeing shutdown, answers what came and closes).
pub(crate) fn drive(s: &mut StdSock, mut conn: Conn) {
    // The read and the write timeout set on the socket.
    let mut set: [Option<Duration>; 2] = [None; 2];
    loop {
        let now = Instant::now();
        match conn.step(now) {
            Step::Read(due) => {
                match timeout(s, &mut set[0], true, due.saturating_duration_since(now)) {
                    Ok(()) => {
                        conn.read_with(|b| conn::read_buf(s, b), now);
                    }
                    Err(_) => conn.fail(),
                }
            }
            Step::Write(due) => {
                match timeout(s, &mut set[1], false, due.saturating_duration_since(now)) {
                    Ok(()) => {
                        conn.write_with(|b| s.write(b));
                    }
                    Err(_) => conn.fail(),
                }
            }
            Step::Sleep(until) => std::thread::sleep(until.saturating_duration_since(now)),
            Step::Yield => std::thread::yield_now(),
            Step::ShutdownWrite => s.shutdown(Shutdown::Write),
            Step::Close => return,
        }
    }
}

/// Sets the read (or write) timeout to `left` unless the one set ends within [`SLACK`] after it and no sooner
/// than half of it.
fn timeout(s: &StdSock, set: &mut Option<Duration>, read: bool, left: Duration) -> io::Result<()> {
    let left = left.max(Duration::from_millis(1));
    if set.is_some_and(|t| t <= left + SLACK && t >= left / 2) {
        return Ok(());
    }
    s.set_timeout(read, left)?;
    *set = Some(left);
    Ok(())
}
