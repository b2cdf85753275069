//! `threads`: blocking std::net. One acceptor thread per listener, one thread per connection (at most
//! `max_connections`; the next one gets the protocol's refusal from the acceptor), each running the blocking
//! shell over its [`Conn`](crate::conn::Conn) (TLS included).
//!
//! Shutdown: the acceptors are woken by a connection to their own listener and stop; the connections waiting
//! between requests have their socket's read side shut, which ends the thread's wait, and close; the others
//! finish the request they are receiving, writing or sleeping on, then close (see [`blocking_io`]). Threads still
//! running at the shutdown deadline get their socket shut both ways (and a SLEEP is woken), and `run` waits
//! (up to [`TEARDOWN`](crate::model::TEARDOWN)) for them to close before it returns.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{ListenAddr, Proto};
use crate::conn;
use crate::listen::{Bound, Listener};
use crate::model::blocking_io::{self, StdSock, Watch};
use crate::model::{sock, Sock};
use crate::shared::Shared;
use crate::stats::Counter;

/// Stack of a connection thread: sessions keep their buffers on the heap, so this is plenty.
const CONN_STACK: usize = 256 * 1024;

/// The open connections' descriptors, so shutdown can reach their sockets. A descriptor, not a duplicate of
/// the socket: a duplicate needs one more descriptor, and when the process is out of them the connection it
/// was for had to be closed; this way a connection the acceptor got is served. Each connection's thread
/// removes its descriptor (under the lock) before it closes the socket, so every descriptor here is open and
/// still that connection's while the lock is held.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (RawFd, Arc<Watch>)>>,
    /// Shutdown began: a connection's thread about to wait between requests closes instead.
    stopping: AtomicBool,
}

impl Registry {
    fn add(&self, raw: RawFd) -> (u64, Arc<Watch>) {
        let id = self.next.fetch_add(1, Relaxed);
        let watch = Arc::new(Watch::default());
        self.lock().insert(id, (raw, watch.clone()));
        (id, watch)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (RawFd, Arc<Watch>)>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shutdown begins: the connections waiting between requests have their read side shut (their thread's read
    /// ends, and they close); the others see `stopping` before their next such wait.
    fn stop(&self) {
        use nix::sys::socket::{shutdown, Shutdown as How};
        self.stopping.store(true, SeqCst);
        for (fd, watch) in self.lock().values() {
            if watch.wake_idle() {
                let _ = shutdown(*fd, How::Read);
            }
        }
    }

    /// The shutdown deadline: every connection left is shut both ways.
    fn cut(&self) {
        use nix::sys::socket::{shutdown, Shutdown as How};
        for (fd, watch) in self.lock().values() {
            watch.cut();
            let _ = shutdown(*fd, How::Both);
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Serves `bound` until shutdown and drain.
pub(crate) fn run(bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let mut acceptors = Vec::new();
    let mut wake: Vec<ListenAddr> = Vec::new();
    for b in bound {
        let (proto, tls) = (b.addr.proto, b.addr.tls);
        let listener = match b.listener {
            Listener::Tcp(l) => Sock::Tcp(l),
            Listener::Unix(l) => Sock::Unix(l),
            Listener::Udp(_) | Listener::Reserved(_) => continue,
        };
        sock!(&listener, l => l.set_nonblocking(false))?;
        wake.push(b.addr.addr.clone());
        let (shared, registry) = (shared.clone(), registry.clone());
        let thread = std::thread::Builder::new().name("sockpool-accept".into());
        acceptors.push(thread.spawn(move || loop {
            let accepted = accept(&listener, shared.config.nodelay);
            if shared.shutdown.is_cancelled() {
                return;
            }
            match accepted {
                Ok(s) => start(s, proto, tls, &shared, &registry),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        })?);
    }

    shared.mark_ready();
    futures::executor::block_on(shared.shutdown.cancelled());
    for addr in wake {
        wake_acceptor(&addr);
    }
    for a in acceptors {
        let _ = a.join();
    }
    registry.stop();
    let deadline = Instant::now() + shared.config.shutdown_deadline;
    while registry.len() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    registry.cut();
    // Their threads wake (a read ends, a write fails, a SLEEP is unparked) and close: the counters printed at
    // exit are taken once they have.
    let teardown = Instant::now() + crate::model::TEARDOWN;
    while registry.len() > 0 && Instant::now() < teardown {
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Unblocks an acceptor waiting in `accept` by connecting to its listener.
fn wake_acceptor(addr: &ListenAddr) {
    match addr {
        ListenAddr::Tcp(a) => {
            let mut a: SocketAddr = *a;
            if a.ip().is_unspecified() {
                a.set_ip(if a.is_ipv4() {
                    [127, 0, 0, 1].into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            let _ = TcpStream::connect_timeout(&a, Duration::from_secs(1));
        }
        ListenAddr::Unix(p) => {
            let _ = UnixStream::connect::<&PathBuf>(p);
        }
        ListenAddr::Udp(_) => {}
    }
}

fn accept(l: &Sock<TcpListener, UnixListener>, nodelay: bool) -> io::Result<StdSock> {
    Ok(match l {
        Sock::Tcp(l) => {
            let s = l.accept()?.0;
            if nodelay {
                let _ = s.set_nodelay(true);
            }
            Sock::Tcp(s)
        }
        Sock::Unix(l) => Sock::Unix(l.accept()?.0),
    })
}

/// A connection's place in the [`Registry`], left when dropped.
struct Registered<'a>(&'a Registry, u64);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}

fn start(mut s: StdSock, proto: Proto, tls: bool, shared: &Arc<Shared>, registry: &Arc<Registry>) {
    let conn = match conn::admit(shared, proto, tls) {
        Ok(conn) => conn,
        Err(refusal) => {
            // Over the limit: answered here on the acceptor, with no thread of its own, so clients over the
            // limit cannot make the server spawn (or strand) threads.
            if s.set_nonblocking(true).is_ok() {
                conn::refuse(shared, refusal, |b| s.write(b));
            }
            s.shutdown(Shutdown::Both);
            return;
        }
    };
    // Registered before its thread starts, so a shutdown that begins meanwhile still reaches it.
    let (id, watch) = registry.add(sock!(&s, s => s.as_raw_fd()));
    let registry2 = registry.clone();
    let spawned = std::thread::Builder::new()
        .name("sockpool-conn".into())
        .stack_size(CONN_STACK)
        .spawn(move || {
            // Declared after the socket, so dropped before it, even in a panic: out of the registry before
            // the socket closes.
            let mut s = s;
            let _registered = Registered(&registry2, id);
            blocking_io::drive(&mut s, conn, &watch, &registry2.stopping);
        });
    if spawned.is_err() {
        // Out of threads: the connection was dropped (closed) with the closure.
        registry.remove(id);
        shared.stats.inc(Counter::ErrorsIo);
    }
}
