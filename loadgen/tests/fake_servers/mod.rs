//! Tiny misbehaving servers for the verdict, exit-status, interrupt and timeout tests: each listens on
//! `127.0.0.1:0` and serves every connection on a thread of its own until the test process ends.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Listens on a free loopback port; `serve` runs for each connection on its own thread.
pub fn spawn(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_nodelay(true);
            let serve = serve.clone();
            std::thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// Writes back every byte it reads.
pub fn echo() -> SocketAddr {
    spawn(|mut s| {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    })
}

/// An echo server that flips one bit of every `every`-th byte of each connection's stream, counting the
/// bytes it corrupted in `flipped`.
pub fn corrupting_echo(every: u64, flipped: Arc<AtomicU64>) -> SocketAddr {
    spawn(move |mut s| {
        let mut buf = [0u8; 16 * 1024];
        let mut offset = 0u64;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            for b in &mut buf[..n] {
                offset += 1;
                if offset % every == 0 {
                    *b ^= 0x01;
                    flipped.fetch_add(1, Ordering::SeqCst);
                }
            }
            if s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    })
}

/// Answers every line with `reply` and a newline.
pub fn line_answering(reply: &'static str) -> SocketAddr {
    spawn(move |s| {
        let mut w = s.try_clone().expect("clone");
        for line in BufReader::new(s).split(b'\n') {
            if line.is_err() || w.write_all(format!("{reply}\n").as_bytes()).is_err() {
                break;
            }
        }
    })
}

/// Reads everything and never answers: a request waits for the first byte of its reply.
pub fn silent() -> SocketAddr {
    spawn(|mut s| {
        let mut buf = [0u8; 16 * 1024];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    })
}

/// Answers each line with half a reply (`hal`, no newline), then never finishes it.
pub fn half_reply() -> SocketAddr {
    spawn(|s| {
        let mut w = s.try_clone().expect("clone");
        for line in BufReader::new(s).split(b'\n') {
            if line.is_err() || w.write_all(b"hal").is_err() {
                break;
            }
        }
    })
}

/// Accepts and never reads: a large request cannot be written.
pub fn not_reading() -> SocketAddr {
    spawn(|s| {
        std::thread::sleep(Duration::from_secs(120));
        drop(s);
    })
}

/// A RESP server that answers each `PING` with `+PONG`, and its first on each connection twice, in one write:
/// the second `+PONG` comes with no request in flight (bytes nobody asked for).
pub fn resp_answering_twice_at_first() -> SocketAddr {
    spawn(|mut s| {
        let mut buf = [0u8; 16 * 1024];
        let mut first = true;
        while let Ok(n) = s.read(&mut buf) {
            let pings = buf[..n].windows(4).filter(|w| w == b"PING").count();
            let extra = usize::from(std::mem::take(&mut first) && pings > 0);
            if n == 0 || s.write_all(&b"+PONG\r\n".repeat(pings + extra)).is_err() {
                break;
            }
        }
    })
}

/// An HTTP server that answers every request with `200` and a 2-byte body, and closes a connection on which no
/// request has come for `idle` (its idle timeout), first sending `408 Request Timeout` when `notice` (as
/// Node.js's server does) or silently (as nginx, Apache and most others do).
pub fn http_closing_idle(idle: Duration, notice: bool) -> SocketAddr {
    spawn(move |mut s| {
        let _ = s.set_read_timeout(Some(idle));
        let (mut buf, mut head) = ([0u8; 4096], Vec::new());
        loop {
            match s.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if notice {
                        let _ = s.write_all(
                            b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                        );
                    }
                    return;
                }
                Err(_) => return,
            }
            while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                head.drain(..end + 4);
                if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .is_err()
                {
                    return;
                }
            }
        }
    })
}
