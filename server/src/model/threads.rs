//! `threads`: blocking std::net. One acceptor thread per listener, one thread per connection (at most
//! `max_connections`; the next one gets the protocol's refusal on a short-lived thread). TLS through
//! `rustls::StreamOwned`.
//!
//! Shutdown: the acceptors are woken by a connection to their own listener and stop; every connection's
//! socket has its read side shut, so each thread answers what it already received, sees end of file and
//! ends. Threads still running at the shutdown deadline get their socket shut both ways.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{ListenAddr, Proto};
use crate::listen::{Bound, Listener};
use crate::model::blocking_io::{self, RawConn};
use crate::protocol::{refusal, AnySession};
use crate::shared::{ConnGuard, Shared};
use crate::stats::Counter;

/// Stack of a connection thread: sessions keep their buffers on the heap, so this is plenty.
const CONN_STACK: usize = 256 * 1024;

/// The open connections, so shutdown can reach their sockets.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, RawConn>>,
}

impl Registry {
    fn add(&self, raw: RawConn) -> u64 {
        let id = self.next.fetch_add(1, Relaxed);
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, raw);
        id
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    fn shutdown_all(&self, how: Shutdown) {
        for raw in self.open.lock().unwrap_or_else(|e| e.into_inner()).values() {
            raw.shutdown(how);
        }
    }

    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Serves `bound` until shutdown and drain.
pub(crate) fn run(bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let mut acceptors = Vec::new();
    let mut wake: Vec<ListenAddr> = Vec::new();
    for b in bound {
        let (proto, tls) = (b.addr.proto, b.addr.tls);
        wake.push(b.addr.addr.clone());
        let (shared, registry) = (shared.clone(), registry.clone());
        let thread = std::thread::Builder::new().name("sockpool-accept".into());
        acceptors.push(match b.listener {
            Listener::Tcp(l) => {
                l.set_nonblocking(false)?;
                thread.spawn(move || loop {
                    let accepted = l.accept();
                    if shared.shutdown.is_cancelled() {
                        return;
                    }
                    match accepted {
                        Ok((s, _)) => {
                            if shared.config.nodelay {
                                let _ = s.set_nodelay(true);
                            }
                            let raw = match s.try_clone() {
                                Ok(c) => RawConn::Tcp(c),
                                Err(_) => continue,
                            };
                            start(s, raw, proto, tls, &shared, &registry);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                })?
            }
            Listener::Unix(l) => {
                l.set_nonblocking(false)?;
                thread.spawn(move || loop {
                    let accepted = l.accept();
                    if shared.shutdown.is_cancelled() {
                        return;
                    }
                    match accepted {
                        Ok((s, _)) => {
                            let raw = match s.try_clone() {
                                Ok(c) => RawConn::Unix(c),
                                Err(_) => continue,
                            };
                            start(s, raw, proto, tls, &shared, &registry);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                })?
            }
            Listener::Udp(_) | Listener::Reserved(_) => continue,
        });
    }

    shared.mark_ready();
    futures::executor::block_on(shared.shutdown.cancelled());
    for addr in wake {
        wake_acceptor(&addr);
    }
    for a in acceptors {
        let _ = a.join();
    }
    registry.shutdown_all(Shutdown::Read);
    let deadline = Instant::now() + shared.config.shutdown_deadline;
    while registry.len() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    registry.shutdown_all(Shutdown::Both);
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

/// A stream the threads model serves.
trait Stream: io::Read + io::Write + Send + 'static {}
impl Stream for TcpStream {}
impl Stream for UnixStream {}

fn start<S: Stream>(
    s: S,
    raw: RawConn,
    proto: Proto,
    tls: bool,
    shared: &Arc<Shared>,
    registry: &Arc<Registry>,
) {
    let Some(guard) = shared.admit() else {
        // Over the limit: answered here on the acceptor, with no thread of its own, so clients over the limit
        // cannot make the server spawn (or strand) threads. A plain refusal is a few bytes that a new
        // connection's socket buffer takes at once; a TLS one would first need a handshake that a client
        // could stall, so a TLS connection over the limit is closed at once.
        if !tls && raw.set_nonblocking(true).is_ok() {
            let msg = refusal(proto);
            let mut s = s;
            if !msg.is_empty() && s.write(msg).is_ok_and(|n| n == msg.len()) {
                shared.stats.add(Counter::BytesOut, msg.len() as u64);
            }
        }
        raw.shutdown(Shutdown::Both);
        return;
    };
    let tls = if tls { shared.tls.clone() } else { None };
    let stats = shared.stats.clone();
    // Registered before its thread starts, so a shutdown that begins meanwhile still reaches it.
    let id = match raw.try_clone() {
        Ok(r) => registry.add(r),
        Err(_) => return,
    };
    let (shared, registry2) = (shared.clone(), registry.clone());
    let spawned = std::thread::Builder::new()
        .name("sockpool-conn".into())
        .stack_size(CONN_STACK)
        .spawn(move || {
            let registry = registry2;
            match tls {
                None => serve(s, &raw, proto, &shared, guard),
                Some(cfg) => match rustls::ServerConnection::new(cfg) {
                    Ok(conn) => serve(
                        rustls::StreamOwned::new(conn, s),
                        &raw,
                        proto,
                        &shared,
                        guard,
                    ),
                    Err(_) => shared.stats.inc(Counter::ErrorsIo),
                },
            }
            registry.remove(id);
        });
    if spawned.is_err() {
        // Out of threads: the connection was dropped (closed) with the closure.
        registry.remove(id);
        stats.inc(Counter::ErrorsIo);
    }
}

fn serve<S: io::Read + io::Write>(
    mut s: S,
    raw: &RawConn,
    proto: Proto,
    shared: &Arc<Shared>,
    _guard: ConnGuard,
) {
    blocking_io::drive(&mut s, raw, AnySession::new(proto, shared), shared);
}
