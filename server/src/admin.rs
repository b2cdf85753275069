//! The admin endpoint: `GET /metrics` (a query string allowed) answers the counters as Prometheus text; anything
//! else `404`.
//!
//! It runs on a current-thread tokio runtime of its own thread. Each connection is a task with one deadline for
//! the whole exchange ([`EXCHANGE`]), at most [`MAX_CONNECTIONS`] at once: a slow or silent client delays
//! neither another scrape nor shutdown, which stops accepting and drops every exchange still open. With the
//! table full, a new connection takes the place of the oldest one that has not sent its whole request yet
//! (that one is closed), so connections that stay silent cannot lock scrapes out; memory stays bounded by
//! the table.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::shared::Shared;

/// The longest one exchange (read the request head, write the answer) may take.
const EXCHANGE: Duration = Duration::from_secs(2);

/// Admin connections served at once. A connection accepted over it evicts the oldest one still reading its
/// request (or, when every one has its request and is being answered, is closed itself).
const MAX_CONNECTIONS: usize = 64;

/// One exchange in the table, in accept order.
struct Open {
    /// Its task.
    task: tokio::task::AbortHandle,
    /// Set once its whole request head is read: it is being answered and will end by itself at once.
    answering: Arc<AtomicBool>,
}

/// The longest request head read; the answer depends on its first line only.
const MAX_HEAD: usize = 4096;

/// Serves `listener` (non-blocking) until shutdown.
pub(crate) fn serve(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("admin endpoint: no runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("admin endpoint: {e}");
                return;
            }
        };
        let mut exchanges = JoinSet::new();
        let mut open: VecDeque<Open> = VecDeque::with_capacity(MAX_CONNECTIONS);
        loop {
            tokio::select! {
                _ = shared.shutdown.cancelled() => break,
                Some(done) = exchanges.join_next_with_id(), if !exchanges.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => e.id(),
                    };
                    open.retain(|o| o.task.id() != id);
                }
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    if open.len() >= MAX_CONNECTIONS {
                        // Evict the oldest exchange still waiting for its request; none: drop (close) this one.
                        let Some(i) = open.iter().position(|o| !o.answering.load(Ordering::Relaxed)) else {
                            continue;
                        };
                        if let Some(evicted) = open.remove(i) {
                            evicted.task.abort();
                        }
                    }
                    let shared = shared.clone();
                    let answering = Arc::new(AtomicBool::new(false));
                    let flag = answering.clone();
                    let task = exchanges.spawn(async move {
                        let _ = tokio::time::timeout(EXCHANGE, answer(stream, &shared, &flag)).await;
                    });
                    open.push_back(Open { task, answering });
                }
            }
        }
        exchanges.abort_all();
    });
}

/// Reads the request head (at most [`MAX_HEAD`] bytes), sets `answering`, and writes the answer.
async fn answer(
    mut stream: TcpStream,
    shared: &Shared,
    answering: &AtomicBool,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    while len < buf.len() && !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    answering.store(true, Ordering::Relaxed);
    let (status, body) = if is_metrics_request(&buf[..len]) {
        ("200 OK", shared.stats.snapshot().to_prometheus())
    } else {
        ("404 Not Found", "not found: try GET /metrics\n".to_string())
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

/// `GET /metrics`, with or without a query string (Prometheus sends one when a scrape config sets `params`).
fn is_metrics_request(head: &[u8]) -> bool {
    head.strip_prefix(b"GET /metrics")
        .is_some_and(|rest| matches!(rest.first(), Some(b' ' | b'?')))
}
