//! Loopback addresses for tests: free, refused, and restartable ports, and waiting for a port to accept.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago, for peers that cannot bind port 0 and report it themselves.
///
/// The probe socket is bound with `SO_REUSEADDR` and never listens. A `TcpListener` would: if another test
/// thread spawns a process in the moment it is open, the child holds a copy of the listener until its
/// `exec`, and connections to the port are then accepted by that orphan before the peer has bound it (seen
/// as a peer that "started" and then refused or reset its first connection). Racy in principle otherwise.
pub fn free_port() -> u16 {
    unlistened_socket(true).1.port()
}

/// A loopback address where nothing listens, reserved for as long as the returned socket lives: it is bound
/// but never listens (so connections to it are refused) and has no `SO_REUSEADDR` (so no other socket can
/// bind the port meanwhile).
pub fn refused_addr() -> (socket2::Socket, SocketAddr) {
    unlistened_socket(false)
}

/// A loopback address for a server that a test stops and starts again on the same port.
///
/// The port lies below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), so while the server is
/// down no outgoing connection (the client's own reconnects included) can take it as its local port and make
/// the restart fail with "address in use". Free when this returns; racy only against other such tests.
pub fn restartable_addr() -> SocketAddr {
    use std::hash::{BuildHasher, Hasher};
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = ephemeral_low / 2;
    let span = u64::from(ephemeral_low - low);
    for _ in 0..100 {
        // A fresh `RandomState` is keyed anew each time: a different port per try and per process.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = low + (h.finish() % span) as u16;
        if let Ok(socket) = bind_unlistened(([127, 0, 0, 1], port).into(), true) {
            drop(socket);
            return ([127, 0, 0, 1], port).into();
        }
    }
    panic!("no free loopback port below {ephemeral_low} after 100 tries");
}

/// A socket bound to a free loopback port that never listens, and its address.
fn unlistened_socket(reuse_address: bool) -> (socket2::Socket, SocketAddr) {
    let socket =
        bind_unlistened(([127, 0, 0, 1], 0).into(), reuse_address).expect("bind 127.0.0.1:0");
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("bound address");
    (socket, addr)
}

/// A TCP socket bound to `addr` that never listens (so it accepts nothing, whoever holds a copy of it).
fn bind_unlistened(addr: SocketAddr, reuse_address: bool) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(reuse_address)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Waits until something accepts TCP connections on `addr`, up to `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    // Real clock: a bound on waiting for another process to bind, not a measurement.
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        // real clock, as above
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
