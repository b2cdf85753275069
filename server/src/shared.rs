//! State every connection of one server shares: the configuration, the counters, the RESP map, the shutdown
//! signal, the TLS configuration and the connection limit.

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
    /// The RESP key space.
    pub db: crate::store::Db,
    /// Cancelled when the server stops accepting.
    pub shutdown: CancellationToken,
    /// The TLS server configuration, when a listener uses TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections admitted and not yet closed (the `max_connections` gate).
    admitted: AtomicUsize,
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
        Shared {
            config,
            stats,
            http_body: Bytes::from(body),
            db: Default::default(),
            shutdown,
            tls,
            admitted: AtomicUsize::new(0),
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

    /// Counts an accepted connection and admits it if under `max_connections`; `None` means refuse it (the
    /// refusal is counted).
    pub(crate) fn admit(self: &Arc<Self>) -> Option<ConnGuard> {
        self.stats.inc(Counter::ConnectionsTotal);
        let before = self.admitted.fetch_add(1, Relaxed);
        if before >= self.config.limits.max_connections {
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
        self.shared.stats.dec(Counter::ConnectionsOpen);
    }
}
