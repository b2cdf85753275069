//! State every connection of one server shares: the configuration, the counters, the RESP map, the shutdown
//! signal, the TLS configuration and the connection limit.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::stats::{Counter, Stats};

/// Shared by every connection of one server.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The validated configuration.
    pub config: ServerConfig,
    /// The counters.
    pub stats: Arc<Stats>,
    /// The body of every HTTP `200`.
    pub http_body: Bytes,
    /// The RESP key space, capped at `limits.max_store`.
    pub db: crate::store::Db,
    /// The last RESP `CLIENT ID` given.
    pub client_ids: std::sync::atomic::AtomicU64,
    /// Cancelled when the server stops accepting.
    pub shutdown: CancellationToken,
    /// The TLS server configuration, when a listener uses TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections admitted and not yet closed (the `max_connections` gate).
    admitted: AtomicUsize,
    /// Bytes every connection's buffers hold (the `memory_budget` gate).
    buffered: AtomicUsize,
    /// `processes` workers: the `max_connections` gate shared by every worker process.
    pub(crate) pool: Option<ConnPool>,
    /// Set (by a watcher of `shutdown`) once shutdown began: a relaxed load that busy connections can afford
    /// on every request, where polling the token would take a lock.
    stopping: AtomicBool,
    /// Set once the model has returned (shut down, or failed to start).
    pub ended: AtomicBool,
    /// Set once the model serves (for `processes`: once every worker said `ready`), or failed to start.
    ready: (Mutex<bool>, Condvar),
}

impl Shared {
    pub(crate) fn new(
        config: ServerConfig,
        stats: Arc<Stats>,
        shutdown: CancellationToken,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        const HELLO: &[u8] = b"Hello, World!";
        let body: Vec<u8> = HELLO
            .iter()
            .copied()
            .cycle()
            .take(config.http_body_size)
            .collect();
        let db = crate::store::Db::new(config.limits.max_store);
        Shared {
            config,
            stats,
            http_body: Bytes::from(body),
            db,
            client_ids: Default::default(),
            shutdown,
            tls,
            admitted: AtomicUsize::new(0),
            buffered: AtomicUsize::new(0),
            pool: None,
            stopping: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            ready: (Mutex::new(false), Condvar::new()),
        }
    }

    /// True once shutdown began.
    #[inline]
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    /// Marks shutdown as begun (see [`Shared::is_stopping`]).
    pub(crate) fn mark_stopping(&self) {
        self.stopping.store(true, Relaxed);
    }

    /// Begins shutdown: marks it, then cancels the shutdown token. Marked first, so that a connection task
    /// whose wake-up by the cancellation came merged with its socket's (and went to the socket) still sees the
    /// stop when it looks at [`Shared::is_stopping`] after that wake-up.
    pub(crate) fn begin_shutdown(&self) {
        self.mark_stopping();
        self.shutdown.cancel();
    }

    /// The model serves (or gave up trying): wakes [`Shared::wait_ready`].
    pub(crate) fn mark_ready(&self) {
        *self.ready.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.ready.1.notify_all();
    }

    /// Waits until [`Shared::mark_ready`] or `limit`.
    pub(crate) fn wait_ready(&self, limit: std::time::Duration) {
        let guard = self.ready.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .ready
            .1
            .wait_timeout_while(guard, limit, |ready| !*ready);
    }

    /// A connection's buffers now hold `now` bytes where they held `before`.
    pub(crate) fn account(&self, before: usize, now: usize) {
        if now > before {
            self.buffered.fetch_add(now - before, Relaxed);
        } else {
            self.buffered.fetch_sub(before - now, Relaxed);
        }
    }

    /// Bytes counted against `memory_budget` now (tests).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buffered.load(Relaxed)
    }

    /// True while the buffers hold more than `memory_budget`.
    pub(crate) fn over_budget(&self) -> bool {
        self.buffered.load(Relaxed) > self.config.limits.memory_budget
    }

    /// Counts an accepted connection and admits it if under `max_connections`; `None` means refuse it (the
    /// refusal is counted).
    pub(crate) fn admit(self: &Arc<Self>) -> Option<ConnGuard> {
        self.stats.inc(Counter::ConnectionsTotal);
        let before = self.admitted.fetch_add(1, Relaxed);
        if before >= self.config.limits.max_connections
            || self.pool.as_ref().is_some_and(|p| !p.take())
        {
            self.admitted.fetch_sub(1, Relaxed);
            self.stats.inc(Counter::ConnectionsRefused);
            return None;
        }
        self.stats.inc(Counter::ConnectionsOpen);
        Some(ConnGuard {
            shared: self.clone(),
        })
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    shared: Arc<Shared>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.admitted.fetch_sub(1, Relaxed);
        if let Some(pool) = &self.shared.pool {
            pool.give();
        }
        self.shared.stats.dec(Counter::ConnectionsOpen);
    }
}

/// `processes`: `max_connections` as one limit over the worker processes, without shared memory (the workspace
/// forbids `unsafe`). The parent fills a pipe, the pool, with one byte per connection allowed; a worker takes a
/// byte to admit a connection (none left: refused) and puts it back when the connection closes. Each worker
/// also keeps one byte per connection it holds in a pipe of its own, so the parent can return the bytes of a
/// worker that died to the pool ([`ConnPool::reclaim`]). Both are opened through `/proc/PARENT/fd/N`, non-blocking.
#[derive(Debug)]
pub(crate) struct ConnPool {
    pool: File,
    held: File,
}

impl ConnPool {
    /// Opens the pool and the held pipe at `paths` (`/proc/PID/fd/N` of the parent's pipes).
    pub(crate) fn open(paths: &(PathBuf, PathBuf)) -> io::Result<ConnPool> {
        let open = |p: &PathBuf| {
            File::options()
                .read(true)
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(p)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("connection pool {}: {e}", p.display()))
                })
        };
        Ok(ConnPool {
            pool: open(&paths.0)?,
            held: open(&paths.1)?,
        })
    }

    /// Takes a place; false when none is left.
    fn take(&self) -> bool {
        if !matches!((&self.pool).read(&mut [0]), Ok(1)) {
            return false;
        }
        let _ = (&self.held).write(&[0]);
        true
    }

    /// Gives a place back.
    fn give(&self) {
        let _ = (&self.held).read(&mut [0]);
        let _ = (&self.pool).write(&[0]);
    }

    /// The worker that held through this pipe is gone: returns every place it held to the pool; how many.
    pub(crate) fn reclaim(&self) -> usize {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while let Ok(n @ 1..) = (&self.held).read(&mut buf) {
            let mut back = &buf[..n];
            while !back.is_empty() {
                match (&self.pool).write(back) {
                    // A pipe that takes nothing would loop here for ever: the places are lost, not spun on.
                    Ok(0) => break,
                    Ok(w) => back = &back[w..],
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            total += n;
        }
        total
    }
}
