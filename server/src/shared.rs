//! State every connection of one server shares: the configuration, the counters, the RESP map, the shutdown
//! signal, the TLS configuration and the connection limit.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::stats::Stats;

/// Shared by every connection of one server.
#[derive(Debug)]
#[allow(dead_code)] // `http_body` and `db` serve the http and resp sessions, which land with their codecs
pub(crate) struct Shared {
    /// The validated configuration.
    pub config: ServerConfig,
    /// The counters.
    pub stats: Arc<Stats>,
    /// The body of every HTTP `200`.
    pub http_body: Bytes,
    /// The RESP key space.
    pub db: crate::protocol::resp::Db,
    /// Cancelled when the server stops accepting.
    pub shutdown: CancellationToken,
    /// The TLS server configuration, when a listener uses TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections admitted and not yet closed (the `max_connections` gate).
    admitted: AtomicUsize,
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
        }
    }

    /// Counts an accepted connection and admits it if under `max_connections`; `None` means refuse it (the
    /// refusal is counted).
    pub(crate) fn admit(self: &Arc<Self>) -> Option<ConnGuard> {
        Stats::inc(&self.stats.connections_total);
        let before = self.admitted.fetch_add(1, Relaxed);
        if before >= self.config.limits.max_connections {
            self.admitted.fetch_sub(1, Relaxed);
            Stats::inc(&self.stats.connections_refused);
            return None;
        }
        Stats::inc(&self.stats.connections_open);
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
        self.shared.stats.connections_open.fetch_sub(1, Relaxed);
    }
}
