//! A deliberately slow server on the caller's own tokio runtime, so that it follows a paused clock: each
//! connection answers one `\n`-terminated line at a time, echoing it after `service` on tokio's clock. Its
//! capacity is exact: `connections / service` lines per second.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The longest line it reads; a longer one ends the connection (memory bounded whatever a client sends).
const MAX_LINE: usize = 64 * 1024;

/// A running slow line echo on `127.0.0.1`; it stops with the runtime.
#[derive(Debug, Clone)]
pub struct SlowEcho {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Lines answered so far.
    pub served: Arc<AtomicU64>,
}

impl SlowEcho {
    /// Lines answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

/// Starts a line echo on `127.0.0.1:0` that takes `service` for each line, one line at a time per connection.
/// Call it inside the tokio runtime (and paused clock) that the test runs on.
pub async fn line_echo(service: Duration) -> SlowEcho {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let served = Arc::new(AtomicU64::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match (&mut lines)
                        .take(MAX_LINE as u64)
                        .read_until(b'\n', &mut line)
                        .await
                    {
                        Ok(n) if n > 0 && line.ends_with(b"\n") => {}
                        _ => return,
                    }
                    tokio::time::sleep(service).await;
                    if write.write_all(&line).await.is_err() {
                        return;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    SlowEcho { addr, served }
}
