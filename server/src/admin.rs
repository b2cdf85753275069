//! The admin endpoint: `GET /metrics` answers the counters as Prometheus text; anything else `404`.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::shared::Shared;

/// How often the accept loop looks at the shutdown signal.
const POLL: Duration = Duration::from_millis(20);

/// Serves `listener` (non-blocking) until shutdown, one request per connection.
pub(crate) fn serve(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.shutdown.is_cancelled() {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = answer(stream, &shared);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn answer(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let head = &buf[..len];
    let (status, body) = if head.starts_with(b"GET /metrics ") {
        ("200 OK", shared.stats.snapshot().to_prometheus())
    } else {
        ("404 Not Found", "not found: try GET /metrics\n".to_string())
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes())
}
