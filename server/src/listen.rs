//! Binding listeners: TCP (v4/v6, SO_REUSEPORT when a model needs it) with socket2, Unix sockets (a stale
//! socket file is removed first, and the file again on exit if it is still this server's), UDP.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{ListenAddr, Proto};

/// A listener as bound: its protocol, TLS or not, and the real address (the port filled in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoundAddr {
    /// The protocol spoken there.
    pub proto: Proto,
    /// TLS on top.
    pub tls: bool,
    /// The bound address.
    pub addr: ListenAddr,
}

impl std::fmt::Display for BoundAddr {
    /// `framed+tls 127.0.0.1:41234`, as in the binary's `listening` lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{} {}",
            self.proto,
            if self.tls { "+tls" } else { "" },
            self.addr
        )
    }
}

/// A bound socket.
#[derive(Debug)]
pub(crate) enum Listener {
    /// A listening TCP socket (non-blocking).
    Tcp(TcpListener),
    /// A listening Unix socket (non-blocking).
    Unix(UnixListener),
    /// A UDP socket.
    Udp(UdpSocket),
    /// A TCP port held (bound, SO_REUSEPORT, not listening) for worker processes to listen on.
    #[allow(dead_code)] // held only to keep the port reserved
    Reserved(Socket),
}

/// A bound listener and what it serves.
#[derive(Debug)]
pub(crate) struct Bound {
    /// What and where.
    pub addr: BoundAddr,
    /// The socket.
    pub listener: Listener,
}

/// Listen backlog.
const BACKLOG: i32 = 4096;

/// Binds a TCP socket at `addr`; `listen` false only reserves the port (for worker processes).
pub(crate) fn tcp_socket(addr: SocketAddr, reuse_port: bool, listen: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    if listen {
        socket.listen(BACKLOG)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// `addr` with its port resolved, once a bind without SO_REUSEPORT has shown that no other socket listens
/// there. The listeners of `per-core`, `uring` and `processes` set SO_REUSEPORT (one per worker), and with it
/// alone a second server bound a port already in use, said `ready` and took part of its connections.
pub(crate) fn claim(addr: SocketAddr) -> io::Result<SocketAddr> {
    let probe = tcp_socket(addr, false, false)?;
    probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound to a non-inet address"))
}

/// A non-blocking TCP listener at `addr`.
pub(crate) fn tcp_listener(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    Ok(tcp_socket(addr, reuse_port, true)?.into())
}

/// A non-blocking Unix listener at `path`. A socket file nobody listens on any more is removed first; one
/// that still answers is left alone (address in use), and so is anything that is not a socket (a regular file
/// at the path is refused, never deleted).
pub(crate) fn unix_listener(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                ),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by a live server", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A UDP socket at `addr`.
pub(crate) fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::bind(addr)
}

/// Removes the Unix socket file this server bound when dropped, and only that one: the file at the path is
/// recognised by its device and inode, taken right after the bind. A server that is draining has closed its
/// listener, so its file reads as stale and a successor started meanwhile (a restart) replaces it with its
/// own; removing the path by name at exit would then delete the successor's socket and cut it off.
#[derive(Debug)]
pub(crate) struct UnixPathGuard {
    /// The socket's path.
    path: PathBuf,
    /// `(device, inode)` of the file the bind created; `None` if it could not be read (nothing is removed).
    identity: Option<(u64, u64)>,
}

impl UnixPathGuard {
    /// Guards the socket file just bound at `path`.
    pub(crate) fn new(path: PathBuf) -> UnixPathGuard {
        let identity = file_identity(&path);
        UnixPathGuard { path, identity }
    }
}

/// `(device, inode)` of the file at `path` itself (a symbolic link is not followed).
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

impl Drop for UnixPathGuard {
    fn drop(&mut self) {
        if self.identity.is_some() && file_identity(&self.path) == self.identity {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
