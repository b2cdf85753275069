//! A UDP request/response client: one datagram out, one datagram back, with a timeout, retries and a datagram
//! size limit.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::Mutex;

use crate::codec::{CodecError, Limit};
use crate::error::{Error, ErrorKind, Phase};

/// Settings of a [`UdpClient`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct UdpConfig {
    /// How long to wait for each reply; 0 is refused by [`UdpClient::connect`]. Default: 1 s.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "timeout_ms", with = "crate::config::ms")
    )]
    pub timeout: Duration,
    /// Times a request is sent again after its reply timed out (datagrams may be lost). Default: 2.
    pub retries: u32,
    /// Largest datagram sent or accepted, in bytes. Default: 65,507 (the IPv4 UDP maximum).
    pub max_datagram: usize,
    /// Local IP address to send from (bound with port 0); its family must match the peer's (`None`: any
    /// address of the peer's family). Default: none.
    pub local_address: Option<std::net::IpAddr>,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            timeout: Duration::from_secs(1),
            retries: 2,
            max_datagram: 65_507,
            local_address: None,
        }
    }
}

with_setters!(UdpConfig {
    with_timeout => timeout: Duration,
    with_retries => retries: u32,
    with_max_datagram => max_datagram: usize,
    with_local_address => local_address: Option<std::net::IpAddr>,
});

/// The largest UDP payload (65,535 − 8 bytes of UDP header; IPv6 jumbograms aside).
pub const MAX_DATAGRAM: usize = 65_527;

/// A connected UDP socket doing request/response. Requests are serialised (one outstanding at a time). A
/// datagram carries no request id, so a reply cannot say which request it answers: after a request ended without
/// its reply (timed out, or its future dropped while waiting), the next request goes out from a new socket (a new
/// port), and a late reply to the old one is never taken for a later request's reply. (Before each request, what
/// is already queued on the socket is discarded too.) Within one request's retries a late reply to an earlier
/// attempt is accepted: it answers the same datagram.
#[derive(Debug)]
pub struct UdpClient {
    socket: Mutex<UdpSocket>,
    /// Set while a request waits for its reply, cleared when it got one: still set at the next request, the
    /// socket may yet receive a reply that is not that request's.
    tainted: std::sync::atomic::AtomicBool,
    local: SocketAddr,
    peer: SocketAddr,
    config: UdpConfig,
}

impl UdpClient {
    /// Like [`connect`](Self::connect), to `target` written `host:port` or `[v6]:port`: a host name is resolved
    /// and its first address used. A name that resolves to nothing is a `Config` error of the connect phase.
    pub async fn connect_to(target: &str, config: UdpConfig) -> Result<Self, Error> {
        let peer = match target.parse::<SocketAddr>() {
            Ok(peer) => peer,
            Err(_) => tokio::net::lookup_host(target)
                .await
                .map_err(|e| Error::io(Phase::Connect, e))?
                .next()
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Config,
                        Phase::Connect,
                        format!("{target} resolves to no address"),
                    )
                })?,
        };
        Self::connect(peer, config).await
    }

    /// A client bound to an ephemeral port on [`UdpConfig::local_address`] (or the any address of `peer`'s
    /// family), connected to `peer`.
    pub async fn connect(peer: SocketAddr, config: UdpConfig) -> Result<Self, Error> {
        if config.max_datagram == 0 || config.max_datagram > MAX_DATAGRAM {
            return Err(Error::new(
                ErrorKind::Config,
                Phase::Connect,
                format!(
                    "max_datagram {}: from 1 to {MAX_DATAGRAM} bytes (the UDP limit)",
                    config.max_datagram
                ),
            ));
        }
        // Taken before: every request timed out, retries included, unless its reply was already there.
        if config.timeout.is_zero() {
            return Err(Error::new(
                ErrorKind::Config,
                Phase::Connect,
                "timeout 0: every request would time out (give a duration)",
            ));
        }
        let any: std::net::IpAddr = if peer.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        };
        let ip = config.local_address.unwrap_or(any);
        if ip.is_ipv4() != peer.is_ipv4() {
            return Err(Error::new(
                ErrorKind::Config,
                Phase::Connect,
                format!("local address {ip} cannot reach {peer} (another address family)"),
            ));
        }
        let local = SocketAddr::new(ip, 0);
        Ok(UdpClient {
            socket: Mutex::new(Self::open(local, peer, Phase::Connect).await?),
            tainted: false.into(),
            local,
            peer,
            config,
        })
    }

    /// A socket bound to `local` (port 0: a new port each time) and connected to `peer`.
    async fn open(local: SocketAddr, peer: SocketAddr, phase: Phase) -> Result<UdpSocket, Error> {
        let io = |e| Error::io(phase, e);
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(peer).await.map_err(io)?;
        Ok(socket)
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Send `payload` as one datagram and return the reply datagram, retrying after each timeout up to
    /// [`UdpConfig::retries`] times.
    pub async fn request(&self, payload: &[u8]) -> Result<Bytes, Error> {
        let max = self.config.max_datagram;
        if payload.len() > max {
            return Err(Error::new(
                ErrorKind::Config,
                Phase::Write,
                format!(
                    "datagram of {} bytes is over the limit of {max}",
                    payload.len()
                ),
            )
            .with_source(CodecError::TooLarge {
                what: Limit::Datagram,
                len: payload.len() as u64,
                max: max as u64,
            }));
        }
        use std::sync::atomic::Ordering::Relaxed;
        let mut socket = self.socket.lock().await;
        let mut buf = vec![0u8; max + 1];
        // The last request ended without its reply, which may still come: this one goes out from a new port.
        if self.tainted.load(Relaxed) {
            *socket = Self::open(self.local, self.peer, Phase::Write).await?;
        }
        // Late replies to earlier requests are not this request's reply.
        while let Ok(_stale) = socket.try_recv(&mut buf) {}
        // Until the reply is read: a timeout, an error or a dropped future leaves the socket to be replaced.
        self.tainted.store(true, Relaxed);
        let mut attempt = 0;
        loop {
            socket
                .send(payload)
                .await
                .map_err(|e| Error::io(Phase::Write, e))?;
            match tokio::time::timeout(self.config.timeout, socket.recv(&mut buf)).await {
                Ok(Ok(n)) if n > max => {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        Phase::Read,
                        format!("reply datagram over the limit of {max} bytes"),
                    ))
                }
                Ok(Ok(n)) => {
                    // After a retry this may be an earlier attempt's reply, and the later attempt's may still
                    // come: the socket stays suspect until a request is answered at its first attempt.
                    if attempt == 0 {
                        self.tainted.store(false, Relaxed);
                    }
                    return Ok(Bytes::copy_from_slice(&buf[..n]));
                }
                // ICMP port unreachable shows up as ConnectionRefused on a connected UDP socket.
                Ok(Err(e))
                    if e.kind() != io::ErrorKind::ConnectionRefused
                        || attempt >= self.config.retries =>
                {
                    return Err(Error::io(Phase::Read, e))
                }
                Ok(Err(_)) => {}
                Err(_) if attempt >= self.config.retries => {
                    return Err(Error::timeout(
                        Phase::Request,
                        self.config.timeout,
                        &format!("UDP reply (after {} attempts)", attempt + 1),
                    )
                    .with_endpoint(&self.peer.to_string()))
                }
                Err(_) => {}
            }
            attempt += 1;
        }
    }
}
