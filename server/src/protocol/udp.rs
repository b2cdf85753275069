//! `udp`: echoes each datagram. One thread serves each UDP listener whatever the model.

use std::io;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use crate::shared::Shared;
use crate::stats::Counter;

/// Largest datagram echoed (the IPv4 UDP maximum); longer ones arrive truncated and are echoed truncated.
pub const MAX_DATAGRAM: usize = 65_507;

/// How often the loop looks at the shutdown signal while no datagram arrives.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

/// Echoes datagrams on `socket` until the server shuts down.
pub(crate) fn serve(socket: UdpSocket, shared: Arc<Shared>) {
    let _ = socket.set_nonblocking(false);
    let _ = socket.set_read_timeout(Some(SHUTDOWN_POLL));
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let stats = &shared.stats;
    while !shared.shutdown.is_cancelled() {
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                stats.add(Counter::BytesIn, n as u64);
                match socket.send_to(&buf[..n], peer) {
                    Ok(sent) => {
                        stats.add(Counter::BytesOut, sent as u64);
                        stats.inc(Counter::Requests);
                    }
                    Err(_) => stats.inc(Counter::ErrorsIo),
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // ICMP port unreachable from an earlier send, and the like: the socket is still fine.
            Err(_) => stats.inc(Counter::ErrorsIo),
        }
    }
}
