//! One opaque error type for everything the SDK does, with the phase that failed and predicates.
//!
//! Like hyper's error, [`Error`] is opaque so that causes can grow without breaking users: ask it
//! [`Error::kind`], [`Error::phase`], [`Error::is_timeout`], [`Error::is_retryable`], [`Error::was_sent`].

use std::fmt;
use std::time::Duration;

use crate::codec::{CodecError, Limit};

/// The phase of a call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for a pooled connection (or for a free pipelining slot on one).
    PoolWait,
    /// Opening the TCP or Unix connection.
    Connect,
    /// The TLS handshake.
    TlsHandshake,
    /// Setting up a new connection: the client's `on_connect` hook (Redis `AUTH`, `SELECT` …). A connection
    /// whose set-up failed is closed, never used.
    Setup,
    /// Writing the request.
    Write,
    /// Reading the reply: the request was written and no byte of its reply has arrived.
    Read,
    /// The request as a whole: waiting for its reply, of which part has arrived (or, for UDP, the exchange).
    Request,
    /// The end-to-end deadline was already spent before a phase could start (e.g. during a retry backoff).
    Deadline,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::PoolWait => "pool wait",
            Phase::Connect => "connect",
            Phase::TlsHandshake => "TLS handshake",
            Phase::Setup => "connection setup",
            Phase::Write => "write",
            Phase::Read => "read",
            Phase::Request => "request",
            Phase::Deadline => "deadline",
        })
    }
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ErrorKind {
    /// A timeout or the end-to-end deadline ran out (see [`Error::phase`] for which).
    Timeout,
    /// The peer refused the connection.
    Refused,
    /// The connection was reset by the peer.
    Reset,
    /// The connection (or the client) was closed, e.g. the peer closed it cleanly.
    Closed,
    /// The pool has too many waiters already: failed fast without waiting.
    PoolExhausted,
    /// The peer broke the protocol (bad frame, reply to another request, stray bytes, over a size limit).
    Protocol,
    /// TLS failed (handshake, certificate, configuration).
    Tls,
    /// Another I/O error.
    Io,
    /// The configuration or the request is invalid (bad endpoint, datagram too large …).
    Config,
    /// The server answered with an error status (framed `BAD_REQUEST`/`TOO_LARGE`/`BUSY`/`SHUTTING_DOWN`, a
    /// Redis error reply: see [`Error::server_code`]).
    Server,
    /// The reply is fine but not of the type asked for (a typed Redis call: e.g. a bulk string read as `i64`,
    /// a nil read as `String`).
    Type,
    /// An HTTP response with a 4xx or 5xx status, on a client that asked for those as errors
    /// ([`ClientBuilder::error_for_status`](crate::ClientBuilder::error_for_status)); the status is
    /// [`Error::http_status`].
    HttpStatus,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Timeout => "timed out",
            ErrorKind::Refused => "connection refused",
            ErrorKind::Reset => "connection reset",
            ErrorKind::Closed => "connection closed",
            ErrorKind::PoolExhausted => "pool exhausted",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Tls => "TLS error",
            ErrorKind::Io => "i/o error",
            ErrorKind::Config => "invalid configuration",
            ErrorKind::Server => "server error",
            ErrorKind::Type => "unexpected reply type",
            ErrorKind::HttpStatus => "HTTP error status",
        })
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

struct Inner {
    kind: ErrorKind,
    phase: Phase,
    sent: bool,
    message: String,
    endpoint: Option<String>,
    /// The server's error code (Redis: the first word of an error reply, `WRONGTYPE`, `NOAUTH` …).
    code: Option<String>,
    source: Option<Source>,
    /// See [`Error::is_server_close`].
    server_close: bool,
    /// See [`Error::limit`].
    limit: Option<Limit>,
}

/// The SDK's error: a kind, the phase that failed, whether the request may have reached the server, and a cause.
pub struct Error {
    inner: Box<Inner>,
}

impl Error {
    /// A new error. `message` says what happened in the user's words.
    pub fn new(kind: ErrorKind, phase: Phase, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                phase,
                sent: matches!(phase, Phase::Write | Phase::Read | Phase::Request),
                message: message.into(),
                endpoint: None,
                code: None,
                source: None,
                server_close: false,
                limit: None,
            }),
        }
    }

    /// A timeout in `phase` after `after`.
    pub(crate) fn timeout(phase: Phase, after: Duration, what: &str) -> Self {
        Error::new(
            ErrorKind::Timeout,
            phase,
            format!("{what} timed out after {after:?}"),
        )
    }

    /// An I/O error in `phase`, classified by its `io::ErrorKind` (refused, reset, closed, timeout, TLS …), as
    /// the SDK's own connections classify theirs. Public for code that drives a [`Stream`](crate::transport::Stream)
    /// itself and wants the same kinds.
    pub fn io(phase: Phase, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::ConnectionRefused => ErrorKind::Refused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => ErrorKind::Reset,
            K::UnexpectedEof | K::NotConnected => ErrorKind::Closed,
            K::TimedOut => ErrorKind::Timeout,
            K::InvalidData if err.get_ref().is_some_and(is_tls_error) => ErrorKind::Tls,
            _ => ErrorKind::Io,
        };
        // TLS 1.3 ends the client's side of the handshake before the server has checked the client's
        // certificate: a server that refuses it says so with an alert that arrives with the first read. It is
        // the handshake that failed, whatever this side was doing.
        let phase = if err.get_ref().is_some_and(is_handshake_refusal) {
            Phase::TlsHandshake
        } else {
            phase
        };
        let message = err.to_string();
        Error::new(kind, phase, message).with_source(err)
    }

    /// A codec error while reading (`Read`) or writing (`Write`); a size limit it went over is kept
    /// ([`Error::limit`]).
    pub(crate) fn codec(phase: Phase, err: CodecError) -> Self {
        match err {
            CodecError::Io(e) => Error::io(phase, e),
            other => {
                let limit = match other {
                    CodecError::TooLarge { what, .. } => Some(what),
                    _ => None,
                };
                Error::new(ErrorKind::Protocol, phase, other.to_string())
                    .with_source(other)
                    .with_limit(limit)
            }
        }
    }

    /// Sets the size limit that was gone over ([`Error::limit`]).
    pub(crate) fn with_limit(mut self, limit: Option<Limit>) -> Self {
        self.inner.limit = limit;
        self
    }

    /// The size limit the peer went over, when that is why the call failed: a reply over the client's
    /// [`BufferConfig::max_reply`](crate::BufferConfig::max_reply) is [`Limit::Reply`] (raise that setting to
    /// take it), a part of a reply over one of the codec's own limits names that limit (a RESP bulk string,
    /// an HTTP body …). The kind is then [`ErrorKind::Protocol`]. `None` for every other failure.
    pub fn limit(&self) -> Option<Limit> {
        self.inner.limit
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    /// A Redis error reply (`-WRONGTYPE Operation against …`) as an error of kind [`ErrorKind::Server`] whose
    /// [`server_code`](Self::server_code) is its first word. The command ran (or was refused) on the server.
    pub(crate) fn server_reply(reply: &[u8]) -> Self {
        let text = String::from_utf8_lossy(reply).into_owned();
        let code = text.split(' ').next().unwrap_or_default().to_string();
        let mut e = Error::new(ErrorKind::Server, Phase::Request, text);
        e.inner.code = Some(code);
        e
    }

    /// The server's own error code, when the server sent one: for a Redis error reply its first word
    /// (`WRONGTYPE`, `ERR`, `NOAUTH`, `WRONGPASS`, `EXECABORT` …); for an HTTP error status its digits.
    pub fn server_code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }

    /// An HTTP response's 4xx or 5xx `status` (with its reason phrase) as an error of kind
    /// [`ErrorKind::HttpStatus`]. The request was sent and answered.
    pub(crate) fn http_status_error(status: u16, reason: &str) -> Self {
        let mut e = Error::new(
            ErrorKind::HttpStatus,
            Phase::Request,
            format!("the server answered {status} {reason}"),
        )
        .with_sent(true);
        e.inner.code = Some(status.to_string());
        e
    }

    /// The status of an HTTP response turned into an error ([`ErrorKind::HttpStatus`]).
    pub fn http_status(&self) -> Option<u16> {
        match self.inner.kind {
            ErrorKind::HttpStatus => self.inner.code.as_deref()?.parse().ok(),
            _ => None,
        }
    }

    /// Attach the endpoint the error happened on.
    pub(crate) fn with_endpoint(mut self, endpoint: &str) -> Self {
        if self.inner.endpoint.is_none() {
            self.inner.endpoint = Some(endpoint.to_string());
        }
        self
    }

    /// Override whether the request may have reached the server.
    pub(crate) fn with_sent(mut self, sent: bool) -> Self {
        self.inner.sent = sent;
        self
    }

    /// Marks a request the server's announced close left unprocessed: see [`Error::is_server_close`].
    pub(crate) fn with_server_close(mut self) -> Self {
        self.inner.server_close = true;
        self.inner.sent = false;
        self
    }

    /// Override the phase.
    pub(crate) fn with_phase(mut self, phase: Phase) -> Self {
        self.inner.phase = phase;
        self
    }

    /// The message alone (without kind, phase or endpoint).
    pub(crate) fn message(&self) -> &str {
        &self.inner.message
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The phase that failed (for a timeout: the phase that ran out of time).
    pub fn phase(&self) -> Phase {
        self.inner.phase
    }

    /// The endpoint the error happened on, when there was one.
    pub fn endpoint(&self) -> Option<&str> {
        self.inner.endpoint.as_deref()
    }

    /// True when a timeout or the end-to-end deadline ran out.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// True when the connection was closed, reset or refused by the peer.
    pub fn is_closed(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::Closed | ErrorKind::Reset | ErrorKind::Refused
        )
    }

    /// True when the pool failed fast because it had too many waiters.
    pub fn is_pool_exhausted(&self) -> bool {
        self.inner.kind == ErrorKind::PoolExhausted
    }

    /// True when the peer broke the protocol.
    pub fn is_protocol(&self) -> bool {
        self.inner.kind == ErrorKind::Protocol
    }

    /// False when the request provably was not processed: it never left this process (failed while waiting for
    /// or opening a connection, or queued on a connection that died before writing it), or it was pipelined
    /// behind a reply that announced the server's close (HTTP `Connection: close`: such a server processes no
    /// later request, RFC 9112 §9.6). Retrying such a request is always safe.
    pub fn was_sent(&self) -> bool {
        self.inner.sent
    }

    /// True when the request was pipelined behind a reply in which the server announced its close (HTTP
    /// `Connection: close`, as nginx sends on its `keepalive_requests`-th reply) and the connection closed without
    /// its reply: the server did not process it (RFC 9112 §9.6). The kind is [`ErrorKind::Closed`] and
    /// [`was_sent`](Self::was_sent) is false. A [`Client`](crate::Client) sends such a request again on another
    /// connection by itself, whatever its retry policy: the caller sees this only from a [`Pipelined`](crate::Pipelined)
    /// connection it drives, or after [`Client`](crate::Client)'s bounded number of such re-sends.
    pub fn is_server_close(&self) -> bool {
        self.inner.server_close
    }

    /// True when the failure is transient (the peer went away, a timeout, an exhausted pool, a busy server) and
    /// trying again may succeed. It is *safe* to retry when also `!was_sent()` or the request is idempotent;
    /// the client's retry policy checks both.
    pub fn is_retryable(&self) -> bool {
        match self.inner.kind {
            ErrorKind::Timeout
            | ErrorKind::Refused
            | ErrorKind::Reset
            | ErrorKind::Closed
            | ErrorKind::PoolExhausted
            | ErrorKind::Io => true,
            // A server that refused a connection's set-up (a wrong password) will refuse it again.
            ErrorKind::Server => !self.inner.sent && self.inner.phase != Phase::Setup,
            ErrorKind::Protocol
            | ErrorKind::Tls
            | ErrorKind::Config
            | ErrorKind::Type
            | ErrorKind::HttpStatus => false,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("phase", &self.inner.phase)
            .field("sent", &self.inner.sent)
            .field("message", &self.inner.message);
        if let Some(ep) = &self.inner.endpoint {
            d.field("endpoint", ep);
        }
        if let Some(code) = &self.inner.code {
            d.field("code", code);
        }
        if let Some(limit) = &self.inner.limit {
            d.field("limit", limit);
        }
        if let Some(src) = &self.inner.source {
            d.field("source", src);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} during {}", self.inner.kind, self.inner.phase)?;
        if let Some(ep) = &self.inner.endpoint {
            write!(f, " on {ep}")?;
        }
        write!(f, ": {}", self.inner.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// Whether an I/O error's inner error comes from TLS.
fn is_tls_error(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    #[cfg(feature = "tls")]
    if e.is::<rustls::Error>() {
        return true;
    }
    e.to_string().contains("tls")
}

/// Whether an I/O error's inner error is the peer refusing the TLS handshake.
#[cfg(feature = "tls")]
fn is_handshake_refusal(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    matches!(e.downcast_ref::<rustls::Error>(), Some(rustls::Error::AlertReceived(alert)) if is_handshake_alert(*alert))
}

/// Without TLS there is no handshake to refuse.
#[cfg(not(feature = "tls"))]
fn is_handshake_refusal(_: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    false
}

/// Alerts a peer sends when it refuses the handshake (its certificate checks, the negotiation).
#[cfg(feature = "tls")]
fn is_handshake_alert(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::HandshakeFailure
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::CertificateRequired
            | A::ProtocolVersion
            | A::InsufficientSecurity
            | A::NoApplicationProtocol
    )
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified() {
        let e = Error::io(
            Phase::Connect,
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(!e.was_sent());
        assert!(e.is_retryable());
        let e = Error::io(
            Phase::Read,
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        );
        assert_eq!(e.kind(), ErrorKind::Reset);
        assert!(e.was_sent());
    }

    #[test]
    fn display_names_the_phase() {
        let e = Error::timeout(Phase::Request, Duration::from_millis(50), "request")
            .with_endpoint("127.0.0.1:1");
        let s = e.to_string();
        assert!(s.contains("during request"), "{s}");
        assert!(s.contains("127.0.0.1:1"), "{s}");
        assert!(e.is_timeout());
    }
}
