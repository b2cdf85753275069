//! The blocking connection driver the `threads` model uses: a [`Session`] over any `Read + Write` stream,
//! with the timeouts set on the socket.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::protocol::AnySession;
use crate::session::{Next, Session};
use crate::shared::Shared;
use crate::stats::Counter;

/// A handle on the socket under a (maybe TLS) stream, for timeouts and shutdown.
#[derive(Debug)]
pub(crate) enum RawConn {
    /// TCP.
    Tcp(TcpStream),
    /// Unix socket.
    Unix(UnixStream),
}

impl RawConn {
    pub(crate) fn try_clone(&self) -> io::Result<RawConn> {
        Ok(match self {
            RawConn::Tcp(s) => RawConn::Tcp(s.try_clone()?),
            RawConn::Unix(s) => RawConn::Unix(s.try_clone()?),
        })
    }

    pub(crate) fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            RawConn::Tcp(s) => s.set_read_timeout(d),
            RawConn::Unix(s) => s.set_read_timeout(d),
        }
    }

    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            RawConn::Tcp(s) => s.set_nonblocking(on),
            RawConn::Unix(s) => s.set_nonblocking(on),
        }
    }

    pub(crate) fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            RawConn::Tcp(s) => s.set_write_timeout(d),
            RawConn::Unix(s) => s.set_write_timeout(d),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            RawConn::Tcp(s) => s.shutdown(how),
            RawConn::Unix(s) => s.shutdown(how),
        };
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes all of `output` and flushes; counts the outcome.
fn write_out<S: Write>(io: &mut S, output: &mut BytesMut, shared: &Shared) -> bool {
    match io.write_all(output).and_then(|()| io.flush()) {
        Ok(()) => {
            shared.stats.add(Counter::BytesOut, output.len() as u64);
            output.clear();
            true
        }
        Err(e) if is_timeout(&e) => {
            shared.stats.inc(Counter::ErrorsWriteTimeout);
            false
        }
        Err(_) => {
            shared.stats.inc(Counter::ErrorsIo);
            false
        }
    }
}

/// After the last reply and our FIN: read and drop what the client still sends for a moment, so closing
/// with unread data does not reset the connection before the client reads the reply (see `tokio_io`).
fn linger<S: Read>(io: &mut S, raw: &RawConn, input: &mut BytesMut) {
    use crate::model::tokio_io::{LINGER_BYTES, LINGER_TIME};
    if raw.set_read_timeout(Some(LINGER_TIME)).is_err() {
        return;
    }
    let until = Instant::now() + LINGER_TIME;
    let mut drained = 0usize;
    input.clear();
    input.resize(16 * 1024, 0);
    while drained < LINGER_BYTES && Instant::now() < until {
        match io.read(&mut input[..]) {
            Ok(n) if n > 0 => drained += n,
            _ => return,
        }
    }
}

/// Runs `session` over `io` until either side closes, a limit or timeout is hit, or shutdown (the model shuts
/// the socket's read side, which ends the blocked read once everything received is answered).
pub(crate) fn drive<S: Read + Write>(
    io: &mut S,
    raw: &RawConn,
    mut session: AnySession,
    shared: &Arc<Shared>,
) {
    let limits = &shared.config.limits;
    let stats = &shared.stats;
    let chunk = shared.config.read_buffer.max(64);
    let shrink_above = chunk.max(64 * 1024);
    if raw.set_write_timeout(Some(limits.write_timeout)).is_err() {
        return;
    }
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    let mut partial_since: Option<Instant> = None;
    let mut read_timeout_set: Option<Duration> = None;
    let mut resume = false;
    loop {
        let mut next = Next::Continue;
        if resume || !input.is_empty() {
            resume = false;
            next = session.on_input(&mut input, &mut output, Instant::now());
        }
        if !output.is_empty() {
            if !write_out(io, &mut output, shared) {
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
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                resume = true;
                continue;
            }
            Next::Close => {
                raw.shutdown(Shutdown::Write);
                linger(io, raw, &mut input);
                return;
            }
        }
        let now = Instant::now();
        if shared.is_stopping() && input.is_empty() && !session.in_progress() {
            // Shutting down between requests: answer what is already in the socket buffer, then close.
            if raw.set_nonblocking(true).is_err() {
                return;
            }
            let len = input.len();
            input.resize(len + chunk, 0);
            let r = io.read(&mut input[len..]);
            input.truncate(len + *r.as_ref().unwrap_or(&0));
            let _ = raw.set_nonblocking(false);
            match r {
                Ok(n) if n > 0 => {
                    stats.add(Counter::BytesIn, n as u64);
                    continue;
                }
                _ => return,
            }
        }
        let wait = if input.is_empty() && !session.in_progress() {
            partial_since = None;
            if input.capacity() > shrink_above {
                input = BytesMut::new();
            }
            limits.idle_timeout
        } else {
            let since = *partial_since.get_or_insert(now);
            (since + limits.read_timeout).saturating_duration_since(now)
        };
        if wait.is_zero()
            || (read_timeout_set != Some(wait) && raw.set_read_timeout(Some(wait)).is_err())
        {
            timed_out(
                io,
                raw,
                &mut session,
                &mut output,
                partial_since.is_some(),
                shared,
            );
            return;
        }
        read_timeout_set = Some(wait);
        let len = input.len();
        input.resize(len + chunk, 0);
        let r = io.read(&mut input[len..]);
        input.truncate(len + *r.as_ref().unwrap_or(&0));
        match r {
            Ok(0) => return,
            Ok(n) => {
                stats.add(Counter::BytesIn, n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                timed_out(
                    io,
                    raw,
                    &mut session,
                    &mut output,
                    partial_since.is_some(),
                    shared,
                );
                return;
            }
            Err(_) => {
                stats.inc(Counter::ErrorsIo);
                return;
            }
        }
    }
}

fn timed_out<S: Write>(
    io: &mut S,
    raw: &RawConn,
    session: &mut AnySession,
    output: &mut BytesMut,
    partial: bool,
    shared: &Shared,
) {
    if partial {
        shared.stats.inc(Counter::ErrorsReadTimeout);
        session.on_read_timeout(output);
        if !output.is_empty() {
            write_out(io, output, shared);
        }
        raw.shutdown(Shutdown::Write);
    } else {
        shared.stats.inc(Counter::ErrorsIdleTimeout);
    }
}
