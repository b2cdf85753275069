//! Opening connections: TCP (v4/v6), Unix sockets and TLS over TCP, with socket options applied to each.
//!
//! [`Endpoint`] parses the address forms users write (`host:port`, `[::1]:port`, `unix:/path`,
//! `tls://host:port`); [`Connector::connect`] opens a [`Stream`] to one within the connect and TLS handshake timeouts.

pub(crate) mod lowat;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

#[cfg(feature = "tls")]
use rustls::pki_types::{CertificateDer, ServerName};
#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio::time::Instant;

use crate::config::SocketOptions;
use crate::error::{Error, ErrorKind, Phase};

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// TCP to `host:port` (a name is resolved at each connect; the first address that answers wins).
    Tcp {
        /// Host name or IP literal (an IPv6 literal without brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// TLS over TCP to `host:port`; `host` is also the name checked against the certificate.
    Tls {
        /// Host name or IP literal.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix stream socket at this path.
    Unix(PathBuf),
}

impl Endpoint {
    /// The endpoint for a socket address (TCP).
    pub fn tcp(addr: SocketAddr) -> Self {
        Endpoint::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// The endpoint for a socket address (TLS); the certificate must name `addr`'s IP unless verification is off.
    pub fn tls(addr: SocketAddr) -> Self {
        Endpoint::Tls {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// True for a TLS endpoint.
    pub fn is_tls(&self) -> bool {
        matches!(self, Endpoint::Tls { .. })
    }
}

fn split_host_port(s: &str) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host.to_string(), port.parse().ok()?));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.is_empty() || host.contains(':') {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::new(
                ErrorKind::Config,
                Phase::Connect,
                format!("bad endpoint {s:?}: expected host:port, [::1]:port, unix:/path, tls://host:port or a URL (redis://, rediss://, http://, https://)"),
            )
        };
        // URLs of the services' own schemes (`redis://`, `http://` …): see `crate::url`.
        if crate::url::service_scheme(s).is_some() {
            return crate::url::endpoint_only(s);
        }
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad());
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("tls://") {
            let (host, port) = split_host_port(rest).ok_or_else(bad)?;
            return Ok(Endpoint::Tls { host, port });
        }
        let rest = s.strip_prefix("tcp://").unwrap_or(s);
        let (host, port) = split_host_port(rest).ok_or_else(bad)?;
        Ok(Endpoint::Tcp { host, port })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hp = |f: &mut fmt::Formatter<'_>, host: &str, port: u16| {
            if host.contains(':') {
                write!(f, "[{host}]:{port}")
            } else {
                write!(f, "{host}:{port}")
            }
        };
        match self {
            Endpoint::Tcp { host, port } => hp(f, host, *port),
            Endpoint::Tls { host, port } => {
                f.write_str("tls://")?;
                hp(f, host, *port)
            }
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// TLS client settings.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM file of CA certificates to trust (`None`: trust nothing but what `insecure` allows). Default: none.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate without checking it. For tests and benchmarks only. Default: false.
    pub insecure: bool,
    /// Name to check the certificate against instead of the endpoint's host. Default: none.
    pub server_name: Option<String>,
    /// Also trust the public web PKI: Mozilla's root certificates, as compiled into the `webpki-roots` crate
    /// (what a server with a certificate from a public CA needs; no file to read). Default: false.
    pub public_roots: bool,
    /// PEM certificate chain this client presents to servers that ask for one (mutual TLS); needs
    /// `client_key`. Default: none.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`. Default: none.
    pub client_key: Option<PathBuf>,
}

with_setters!(TlsConfig {
    with_ca_file => ca_file: Option<PathBuf>,
    with_insecure => insecure: bool,
    with_server_name => server_name: Option<String>,
    with_public_roots => public_roots: bool,
    with_client_cert => client_cert: Option<PathBuf>,
    with_client_key => client_key: Option<PathBuf>,
});

/// A TLS configuration error (a file that cannot be read or parsed).
#[cfg(feature = "tls")]
fn tls_config_err(what: &str, path: &std::path::Path, e: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::Config,
        Phase::TlsHandshake,
        format!("{what} {}: {e}", path.display()),
    )
}

impl TlsConfig {
    /// Check these settings now: read the files they name and build the TLS configuration, as the client does
    /// when it is built. An error names the file or setting at fault (and, without the `tls` feature, says TLS
    /// is not compiled in).
    pub fn check(&self) -> Result<(), Error> {
        self.connector().map(drop)
    }

    /// Without the `tls` feature there is no TLS: any TLS endpoint is a configuration error.
    #[cfg(not(feature = "tls"))]
    pub(crate) fn connector(&self) -> Result<TlsConnector, Error> {
        Err(Error::new(
            ErrorKind::Config,
            Phase::TlsHandshake,
            "TLS is not compiled in: build sockpool with its `tls` feature",
        ))
    }

    /// Build the rustls connector these settings describe.
    #[cfg(feature = "tls")]
    pub(crate) fn connector(&self) -> Result<TlsConnector, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::new(ErrorKind::Tls, Phase::TlsHandshake, e.to_string()))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            if let Some(path) = &self.ca_file {
                use rustls_pki_types::pem::PemObject;
                let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        Phase::TlsHandshake,
                        format!("reading CA file {}: {e}", path.display()),
                    )
                })?;
                for cert in certs {
                    let cert = cert.map_err(|e| {
                        Error::new(
                            ErrorKind::Config,
                            Phase::TlsHandshake,
                            format!("CA file {}: {e}", path.display()),
                        )
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::new(ErrorKind::Tls, Phase::TlsHandshake, e.to_string())
                    })?;
                }
                // A file with no certificate (a key, an empty file) would fail every handshake as an unknown
                // issuer: it is a configuration error, said once.
                if roots.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Config,
                        Phase::TlsHandshake,
                        format!(
                            "CA file {} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)",
                            path.display()
                        ),
                    ));
                }
            }
            if self.public_roots {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            builder.with_root_certificates(roots)
        };
        let config = match (&self.client_cert, &self.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                use rustls_pki_types::pem::PemObject;
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| tls_config_err("client certificate", cert, e))?;
                if chain.is_empty() {
                    return Err(tls_config_err("client certificate", cert, "no certificate"));
                }
                let key_der = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| tls_config_err("client key", key, e))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| tls_config_err("client certificate", cert, e))?
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Config,
                    Phase::TlsHandshake,
                    "client_cert and client_key go together (mutual TLS needs both)",
                ))
            }
        };
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

/// A certificate verifier that accepts every certificate (signatures are still checked, so the handshake is
/// real; only the identity is not).
#[cfg(feature = "tls")]
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

#[cfg(feature = "tls")]
impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An open connection of any transport.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
    /// TLS over TCP.
    Tls(TlsStream),
}

/// The rustls connector (with the `tls` feature; without it, a type with no value: no TLS connection exists).
#[cfg(feature = "tls")]
pub(crate) type TlsConnector = tokio_rustls::TlsConnector;
/// The rustls connector (with the `tls` feature; without it, a type with no value: no TLS connection exists).
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
pub(crate) enum TlsConnector {}

/// A TLS session over TCP, client side. Its implementation (rustls) is not part of this crate's API: read and
/// write it as any [`Stream`].
pub struct TlsStream(
    #[cfg(feature = "tls")] Box<tokio_rustls::client::TlsStream<TcpStream>>,
    #[cfg(not(feature = "tls"))] std::convert::Infallible,
);

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsStream(..)")
    }
}

impl TlsStream {
    /// The TLS session as tokio I/O.
    #[cfg(feature = "tls")]
    fn io(&mut self) -> Pin<&mut tokio_rustls::client::TlsStream<TcpStream>> {
        Pin::new(self.0.as_mut())
    }

    /// The TLS session as tokio I/O (there is none without the `tls` feature).
    #[cfg(not(feature = "tls"))]
    fn io(&mut self) -> Pin<&mut TcpStream> {
        match self.0 {}
    }

    /// The TCP socket under the session.
    fn tcp(&self) -> &TcpStream {
        #[cfg(feature = "tls")]
        return self.0.get_ref().0;
        #[cfg(not(feature = "tls"))]
        match self.0 {}
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => s.io().poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => s.io().poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => s.io().poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => s.io().poll_shutdown(cx),
        }
    }
}

/// A reply whose rest is at least this many bytes is awaited with the socket's read mark raised
/// ([`ReadMark`]): one wake-up per up to [`MAX_READ_MARK`] bytes rather than per packet.
pub(crate) const READ_MARK_FROM: usize = 64 * 1024;
/// The highest read mark: high enough that a wake-up is rare next to the bytes it brings, low enough that the
/// receive window the kernel sizes for it stays ordinary (128 KiB and 1 MiB measured the same, stop 43).
pub(crate) const MAX_READ_MARK: usize = 256 * 1024;

/// The read mark a connection keeps on its socket (`SO_RCVLOWAT`, [`lowat`]): raised while the reply being
/// read still needs [`READ_MARK_FROM`] bytes or more (the rest of a large body:
/// [`Decode::bytes_wanted`](crate::codec::Decode::bytes_wanted)), to that rest (at most [`MAX_READ_MARK`]), so the
/// reactor wakes the connection once per that many bytes instead of once per packet: each wake-up costs the
/// sender's CPU too, and a download from a one-worker nginx went ~20% faster without them. It follows the rest
/// down to the exact remainder (the last bytes never wait for more) and is back at 1 once the reply is whole.
/// One system call per change; replies under the threshold never make one. A socket that refuses the mark
/// once (an OS without `SO_RCVLOWAT`) is never asked again: the mark stays off (0) for the connection.
#[derive(Debug)]
pub(crate) struct ReadMark(usize);

impl Default for ReadMark {
    fn default() -> Self {
        ReadMark(1)
    }
}

impl ReadMark {
    /// Fits the mark of `socket` (the connection's [`Stream::read_mark_fd`]: none, no mark) to a reply that
    /// needs `wanted` more bytes (0: whole, or unknown).
    #[inline]
    pub(crate) fn fit(&mut self, socket: Option<RawFd>, wanted: usize) {
        if self.0 == 0 {
            return;
        }
        let mark = match wanted {
            w if w >= READ_MARK_FROM || (self.0 > 1 && w > 0) => w.min(MAX_READ_MARK),
            _ => 1,
        };
        if mark != self.0 {
            if let Some(fd) = socket {
                // Refused (where the OS has no `SO_RCVLOWAT`, the first raise is, and the socket keeps 1):
                // not asked again. Linux takes any value on a TCP socket (it caps it at half its largest
                // receive buffer).
                self.0 = match lowat::set(&fd, mark) {
                    Ok(()) => mark,
                    Err(_) => 0,
                };
            }
        }
    }

    /// The mark set now.
    #[cfg(test)]
    pub(crate) fn get(&self) -> usize {
        self.0
    }
}

impl Stream {
    /// The socket whose read mark a [`ReadMark`] may raise: plain TCP only (a Unix socket reports itself
    /// readable from its first byte whatever the mark, and TLS may hold bytes the socket no longer has). It
    /// stays open as long as the stream, or the halves it is split into.
    pub(crate) fn read_mark_fd(&self) -> Option<RawFd> {
        match self {
            Stream::Tcp(s) => Some(s.as_raw_fd()),
            _ => None,
        }
    }

    /// A read into `buf` only if the connection has something to read now, for a connection with no request in
    /// flight: `WouldBlock` when nothing is waiting. No system call unless the reactor saw the socket readable
    /// (`try_read_buf`, an atomic load); TLS has no such call and is polled once with a no-op waker.
    pub(crate) fn try_read_idle(&mut self, buf: &mut bytes::BytesMut) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read_buf(buf),
            Stream::Unix(s) => s.try_read_buf(buf),
            Stream::Tls(_) => {
                use std::future::Future;
                use tokio::io::AsyncReadExt;
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                match std::pin::pin!(self.read_buf(buf)).poll(&mut cx) {
                    std::task::Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                    std::task::Poll::Ready(r) => r,
                }
            }
        }
    }

    /// A second handle (a `dup`) on the socket, for non-blocking health probes that do not disturb the owner.
    /// `None` if the OS refuses the `dup`.
    pub(crate) fn probe_handle(&self) -> Option<socket2::Socket> {
        match self {
            Stream::Tcp(s) => socket2::SockRef::from(s).try_clone().ok(),
            Stream::Unix(s) => socket2::SockRef::from(s).try_clone().ok(),
            Stream::Tls(s) => socket2::SockRef::from(s.tcp()).try_clone().ok(),
        }
    }
}

/// What [`Connector::connect`] needs besides the endpoint.
#[derive(Clone)]
pub struct Connector {
    /// Socket options for each new connection.
    pub socket: SocketOptions,
    /// TLS connector and the name to check certificates against instead of the endpoint's host, for `tls://`
    /// endpoints (set by [`Connector::new`] from a [`TlsConfig`]).
    pub(crate) tls: Option<(TlsConnector, Option<String>)>,
    /// Connect timeout. Default: see [`Timeouts::connect`](crate::Timeouts::connect).
    pub connect_timeout: Duration,
    /// TLS handshake timeout. Default: see [`Timeouts::tls_handshake`](crate::Timeouts::tls_handshake).
    pub tls_timeout: Duration,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("socket", &self.socket)
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("tls_timeout", &self.tls_timeout)
            .finish()
    }
}

/// Which step of [`Connector::connect`] is running (for naming the phase when an outer deadline cuts it).
pub(crate) trait ConnectProgress: Sync {
    /// Entering `phase`.
    fn enter(&self, phase: Phase);
}

impl ConnectProgress for () {
    fn enter(&self, _: Phase) {}
}

impl Connector {
    /// A connector with these socket options and timeouts; `tls` is needed only for `tls://` endpoints.
    pub fn new(
        socket: SocketOptions,
        timeouts: &crate::config::Timeouts,
        tls: Option<&TlsConfig>,
    ) -> Result<Self, Error> {
        socket.check()?;
        let tls = match tls {
            Some(t) => Some((t.connector()?, t.server_name.clone())),
            None => None,
        };
        Ok(Connector {
            socket,
            tls,
            connect_timeout: timeouts.connect,
            tls_timeout: timeouts.tls_handshake,
        })
    }

    /// Open a connection to `endpoint`, each step bounded by its timeout and by `deadline` if given.
    pub async fn connect(
        &self,
        endpoint: &Endpoint,
        deadline: Option<Instant>,
    ) -> Result<Stream, Error> {
        self.connect_with(endpoint, deadline, &()).await
    }

    pub(crate) async fn connect_with(
        &self,
        endpoint: &Endpoint,
        deadline: Option<Instant>,
        progress: &dyn ConnectProgress,
    ) -> Result<Stream, Error> {
        let ep = endpoint.to_string();
        progress.enter(Phase::Connect);
        let (limit, what) = bounded(self.connect_timeout, deadline);
        let connecting = async {
            match endpoint {
                Endpoint::Unix(path) => {
                    let s = UnixStream::connect(path)
                        .await
                        .map_err(|e| Error::io(Phase::Connect, e))?;
                    self.apply_unix(&s);
                    Ok(Stream::Unix(s))
                }
                Endpoint::Tcp { host, port } | Endpoint::Tls { host, port } => {
                    self.connect_tcp(host, *port).await.map(Stream::Tcp)
                }
            }
        };
        let stream = match tokio::time::timeout(limit, connecting).await {
            Ok(r) => r.map_err(|e| e.with_endpoint(&ep))?,
            Err(_) => return Err(Error::timeout(Phase::Connect, limit, what).with_endpoint(&ep)),
        };
        let Endpoint::Tls { host, .. } = endpoint else {
            return Ok(stream);
        };
        let Stream::Tcp(tcp) = stream else {
            unreachable!("a TLS endpoint connects over TCP")
        };
        let Some((connector, name_override)) = &self.tls else {
            return Err(Error::new(
                ErrorKind::Config,
                Phase::TlsHandshake,
                "tls:// endpoint without TLS settings",
            ));
        };
        progress.enter(Phase::TlsHandshake);
        let name = name_override.as_deref().unwrap_or(host);
        self.handshake(connector, name, tcp, deadline)
            .await
            .map_err(|e| e.with_endpoint(&ep))
    }

    /// Without the `tls` feature no TLS connector exists, so this is never called.
    #[cfg(not(feature = "tls"))]
    async fn handshake(
        &self,
        connector: &TlsConnector,
        _name: &str,
        _tcp: TcpStream,
        _deadline: Option<Instant>,
    ) -> Result<Stream, Error> {
        match *connector {}
    }

    /// The TLS handshake over `tcp`, checking the certificate against `name`.
    #[cfg(feature = "tls")]
    async fn handshake(
        &self,
        connector: &TlsConnector,
        name: &str,
        tcp: TcpStream,
        deadline: Option<Instant>,
    ) -> Result<Stream, Error> {
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                Phase::TlsHandshake,
                format!("bad TLS server name {name:?}: {e}"),
            )
        })?;
        let (limit, what) = bounded(self.tls_timeout, deadline);
        match tokio::time::timeout(limit, connector.connect(server_name, tcp)).await {
            Ok(Ok(tls)) => Ok(Stream::Tls(TlsStream(Box::new(tls)))),
            Ok(Err(e)) => {
                let kind = if e.kind() == io::ErrorKind::InvalidData {
                    ErrorKind::Tls
                } else {
                    Error::io(Phase::TlsHandshake, io::Error::from(e.kind())).kind()
                };
                let mut message = e.to_string();
                if message.contains("CaUsedAsEndEntity") {
                    // `openssl req -x509` makes such certificates; OpenSSL clients accept them, rustls does not.
                    message.push_str(
                        " (the server's certificate is a CA certificate (basicConstraints CA:TRUE), which \
                         rustls does not accept as the server's own: issue a leaf certificate from that CA, \
                         or make it with CA:FALSE)",
                    );
                }
                Err(Error::new(kind, Phase::TlsHandshake, message).with_source(e))
            }
            Err(_) => Err(Error::timeout(Phase::TlsHandshake, limit, what)),
        }
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<TcpStream, Error> {
        let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| Error::io(Phase::Connect, e))?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match self.connect_addr(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::new(
                ErrorKind::Config,
                Phase::Connect,
                format!("{host} resolved to no address"),
            )
        }))
    }

    async fn connect_addr(&self, addr: SocketAddr) -> Result<TcpStream, Error> {
        let io = |e| Error::io(Phase::Connect, e);
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(io)?;
        if let Some(ip) = self.socket.local_address {
            if ip.is_ipv4() != addr.is_ipv4() {
                return Err(Error::new(
                    ErrorKind::Config,
                    Phase::Connect,
                    format!("local address {ip} cannot reach {addr} (another address family)"),
                ));
            }
            socket.bind(SocketAddr::new(ip, 0)).map_err(io)?;
        }
        // Buffer sizes before connect, so that the window scale negotiated in the handshake fits them.
        // The OS caps each at its maximum (net.core.wmem_max, rmem_max); a size past what the call takes asks for
        // that maximum. Cast as it was, 4 GiB wrapped to 0 and got the smallest buffer the kernel allows.
        let os_size = |n: usize| u32::try_from(n.min(i32::MAX as usize)).unwrap_or(i32::MAX as u32);
        if let Some(n) = self.socket.send_buffer {
            socket.set_send_buffer_size(os_size(n)).map_err(io)?;
        }
        if let Some(n) = self.socket.recv_buffer {
            socket.set_recv_buffer_size(os_size(n)).map_err(io)?;
        }
        let stream = socket.connect(addr).await.map_err(io)?;
        stream.set_nodelay(self.socket.nodelay).map_err(io)?;
        if let Some(idle) = self.socket.keepalive {
            let mut ka = socket2::TcpKeepalive::new().with_time(idle);
            if let Some(iv) = self.socket.keepalive_interval {
                ka = ka.with_interval(iv);
            }
            socket2::SockRef::from(&stream)
                .set_tcp_keepalive(&ka)
                .map_err(io)?;
        }
        Ok(stream)
    }

    fn apply_unix(&self, s: &UnixStream) {
        let sock = socket2::SockRef::from(s);
        // Best effort: a Unix socket honours the buffer sizes; failures are not worth refusing the connection.
        if let Some(n) = self.socket.send_buffer {
            let _ = sock.set_send_buffer_size(n);
        }
        if let Some(n) = self.socket.recv_buffer {
            let _ = sock.set_recv_buffer_size(n);
        }
    }
}

/// The limit for a step: its own timeout, or what is left of the deadline if that is sooner.
pub(crate) fn bounded(timeout: Duration, deadline: Option<Instant>) -> (Duration, &'static str) {
    bounded_at(timeout, deadline, Instant::now())
}

/// [`bounded`] with the time already read (no clock read when there is no deadline).
pub(crate) fn bounded_at(
    timeout: Duration,
    deadline: Option<Instant>,
    now: Instant,
) -> (Duration, &'static str) {
    match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(now);
            if left < timeout {
                (left, "end-to-end deadline")
            } else {
                (timeout, "phase timeout")
            }
        }
        None => (timeout, "phase timeout"),
    }
}

/// Checks that connections can leave from `ip` ([`SocketOptions::local_address`]): that this machine has the
/// address. Otherwise a `Config` error naming it, up front, instead of every connect failing with "cannot
/// assign requested address".
pub fn check_local_address(ip: std::net::IpAddr) -> Result<(), Error> {
    std::net::UdpSocket::bind((ip, 0)).map(drop).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            Phase::Connect,
            format!("local address {ip}: not an address of this machine ({e})"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--keepalive 0s` (or a config file's `keepalive_ms: 500`) made every connect fail with EINVAL
    /// ("Invalid argument", an `other` error per request); it is refused when the connector is made.
    #[test]
    fn a_keepalive_the_os_refuses_is_a_config_error_up_front() {
        use std::time::Duration;
        let t = crate::config::Timeouts::default();
        for (keepalive, interval) in [
            (Some(Duration::ZERO), None),
            (Some(Duration::from_millis(500)), None),
            (Some(Duration::from_secs(40_000)), None),
            (Some(Duration::from_secs(60)), Some(Duration::ZERO)),
        ] {
            let options = SocketOptions::default()
                .with_keepalive(keepalive)
                .with_keepalive_interval(interval);
            let Err(e) = Connector::new(options, &t, None) else {
                panic!("{keepalive:?}/{interval:?} was accepted")
            };
            assert_eq!(e.kind(), crate::ErrorKind::Config, "{e}");
            assert!(e.to_string().contains("whole seconds"), "{e}");
        }
        for keepalive in [
            None,
            Some(Duration::from_secs(1)),
            Some(Duration::from_millis(1500)),
        ] {
            let options = SocketOptions::default().with_keepalive(keepalive);
            assert!(Connector::new(options, &t, None).is_ok());
        }
    }

    /// `--send-buffer 4GiB` (or 100 GiB) was cast to 32 bits: 0, the smallest buffer the kernel allows (4,608
    /// bytes), where the largest was asked for. A size past the OS's maximum gets that maximum.
    #[tokio::test]
    async fn a_socket_buffer_past_the_os_maximum_gets_the_maximum_not_the_minimum() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sizes = |n: usize| async move {
            let options = SocketOptions::default()
                .with_send_buffer(Some(n))
                .with_recv_buffer(Some(n));
            let connector =
                Connector::new(options, &crate::config::Timeouts::default(), None).unwrap();
            let Stream::Tcp(tcp) = connector.connect(&Endpoint::tcp(addr), None).await.unwrap()
            else {
                panic!("tcp expected")
            };
            let sock = socket2::SockRef::from(&tcp);
            (
                sock.send_buffer_size().unwrap(),
                sock.recv_buffer_size().unwrap(),
            )
        };
        let asked = sizes(64 * 1024).await;
        for huge in [4usize << 30, 100 << 30] {
            let got = sizes(huge).await;
            assert!(
                got.0 >= asked.0 && got.1 >= asked.1,
                "{huge} bytes got {got:?}, less than 64 KiB gets ({asked:?})"
            );
        }
    }

    #[tokio::test]
    async fn socket_options_are_applied_to_new_connections() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for nodelay in [true, false] {
            let options = SocketOptions {
                nodelay,
                send_buffer: Some(64 * 1024),
                recv_buffer: Some(128 * 1024),
                keepalive: Some(std::time::Duration::from_secs(30)),
                keepalive_interval: Some(std::time::Duration::from_secs(5)),
                local_address: None,
            };
            let connector =
                Connector::new(options, &crate::config::Timeouts::default(), None).unwrap();
            let stream = connector.connect(&Endpoint::tcp(addr), None).await.unwrap();
            let Stream::Tcp(tcp) = stream else {
                panic!("tcp expected")
            };
            let sock = socket2::SockRef::from(&tcp);
            assert_eq!(sock.nodelay().unwrap(), nodelay);
            assert!(sock.keepalive().unwrap());
            assert_eq!(
                sock.keepalive_time().unwrap(),
                std::time::Duration::from_secs(30)
            );
            // Linux doubles the requested size for bookkeeping; it is at least what was asked for.
            assert!(sock.recv_buffer_size().unwrap() >= 128 * 1024);
            assert!(sock.send_buffer_size().unwrap() >= 64 * 1024);
        }
        // Bound, never listening: connections are refused.
        let (_reserved, refused) = sockpool_testkit::ports::refused_addr();
        let connector = Connector::new(
            SocketOptions::default(),
            &crate::config::Timeouts::default(),
            None,
        )
        .unwrap();
        let err = connector
            .connect(&Endpoint::tcp(refused), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Refused);
        assert_eq!(err.phase(), Phase::Connect);
        assert!(!err.was_sent());
    }

    #[tokio::test]
    async fn connections_leave_from_the_local_address_asked_for() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let local: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let options = SocketOptions {
            local_address: Some(local),
            ..SocketOptions::default()
        };
        let connector = Connector::new(options, &crate::config::Timeouts::default(), None).unwrap();
        let _stream = connector.connect(&Endpoint::tcp(addr), None).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), local, "the server sees the bound source address");
        let v6 = Connector::new(
            SocketOptions {
                local_address: Some("::1".parse().unwrap()),
                ..SocketOptions::default()
            },
            &crate::config::Timeouts::default(),
            None,
        )
        .unwrap();
        let err = v6.connect(&Endpoint::tcp(addr), None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("address family"), "{err}");
    }

    #[test]
    fn endpoints_parse_and_print() {
        for s in [
            "127.0.0.1:7000",
            "[::1]:7000",
            "unix:/tmp/x.sock",
            "tls://localhost:443",
            "example.com:80",
        ] {
            let ep: Endpoint = s.parse().unwrap();
            assert_eq!(ep.to_string(), s);
        }
        assert_eq!(
            "[::1]:9".parse::<Endpoint>().unwrap(),
            Endpoint::Tcp {
                host: "::1".into(),
                port: 9
            }
        );
        for bad in [
            "",
            "nope",
            "::1:80",
            "host:",
            "host:99999",
            "unix:",
            "tls://x",
        ] {
            let e = bad.parse::<Endpoint>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
        }
    }

    /// A socket that refuses the mark is not asked again on every read: the mark goes off for the connection
    /// (a descriptor that is no socket stands for an OS without `SO_RCVLOWAT`).
    #[test]
    fn a_refused_read_mark_is_not_asked_again() {
        let mut mark = ReadMark::default();
        mark.fit(Some(-1), 1 << 20);
        assert_eq!(mark.get(), 0, "off after the refusal");
        mark.fit(Some(-1), 1 << 20);
        mark.fit(Some(-1), 0);
        assert_eq!(mark.get(), 0, "and stays off");
        // With no socket to mark, nothing changes and nothing goes off.
        let mut none = ReadMark::default();
        none.fit(None, 1 << 20);
        assert_eq!(none.get(), 1);
    }
}
