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
    /// How long to wait for each reply. Default: 1 s.
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

/// A connected UDP socket doing request/response. Requests are serialised (one outstanding at a time), so
/// a late reply to an earlier attempt is discarded before the next request instead of being taken for its reply.
#[derive(Debug)]
pub struct UdpClient {
    socket: Mutex<UdpSocket>,
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
        let io = |e| Error::io(Phase::Connect, e);
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(peer).await.map_err(io)?;
        Ok(UdpClient {
            socket: Mutex::new(socket),
            peer,
            config,
        })
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
        let socket = self.socket.lock().await;
        let mut buf = vec![0u8; max + 1];
        // Late replies to earlier, timed-out requests are not this request's reply.
        while let Ok(_stale) = socket.try_recv(&mut buf) {}
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
                Ok(Ok(n)) => return Ok(Bytes::copy_from_slice(&buf[..n])),
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
