//! What the server is told: [`ServerConfig`] with its [`Limits`], the listeners ([`ListenSpec`]), the protocols
//! ([`Proto`]) and the concurrency models ([`Model`]).
//!
//! Every default lives in this file, in the `Default` impls, and is named in the field's doc.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// A protocol the server speaks on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    /// The sockpool RPC (`sockpool::codec::framed`).
    Framed,
    /// Writes back every byte it reads.
    Echo,
    /// Echoes each `\n`-terminated line.
    Line,
    /// HTTP/1.1: `200` with a body of `http_body_size` bytes to every request.
    Http,
    /// Redis RESP2: PING, ECHO, GET, SET, DEL, EXISTS, INCR on an in-memory map.
    Resp,
    /// UDP datagram echo.
    Udp,
}

impl Proto {
    /// The name used in `--listen` and in the `listening` lines.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Framed => "framed",
            Proto::Echo => "echo",
            Proto::Line => "line",
            Proto::Http => "http",
            Proto::Resp => "resp",
            Proto::Udp => "udp",
        }
    }

    /// Every protocol, in a fixed order.
    pub const ALL: [Proto; 6] = [
        Proto::Framed,
        Proto::Echo,
        Proto::Line,
        Proto::Http,
        Proto::Resp,
        Proto::Udp,
    ];

    /// The stream protocols (every one but `udp`).
    pub const STREAM: [Proto; 5] = [
        Proto::Framed,
        Proto::Echo,
        Proto::Line,
        Proto::Http,
        Proto::Resp,
    ];
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Proto {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Proto::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                ConfigError::new(format!(
                    "unknown protocol `{s}` (framed|echo|line|http|resp|udp)"
                ))
            })
    }
}

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address, IPv4 or IPv6.
    Tcp(SocketAddr),
    /// A Unix-domain stream socket at this path.
    Unix(PathBuf),
    /// A UDP address.
    Udp(SocketAddr),
}

impl fmt::Display for ListenAddr {
    /// `127.0.0.1:41234`, `[::1]:41234`, `unix:/path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) | ListenAddr::Udp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// One `--listen PROTO[+tls]=ADDR`: a protocol, TLS or not, and an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListenSpec {
    /// The protocol spoken there.
    pub proto: Proto,
    /// TLS on top (needs `tls_cert` and `tls_key`; not for `udp`).
    pub tls: bool,
    /// Where to listen; port 0 picks a free port.
    pub addr: ListenAddr,
}

impl FromStr for ListenSpec {
    type Err = ConfigError;

    /// Parses `PROTO[+tls]=ADDR`, ADDR being `127.0.0.1:7000`, `[::1]:7000` or `unix:/path`.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let (left, addr) = s.split_once('=').ok_or_else(|| {
            ConfigError::new(format!("listener `{s}`: expected PROTO[+tls]=ADDR"))
        })?;
        let (proto, tls) = match left.split_once('+') {
            Some((p, "tls")) => (p, true),
            Some((_, other)) => {
                return Err(ConfigError::new(format!(
                    "listener `{s}`: unknown modifier `+{other}` (only +tls)"
                )))
            }
            None => (left, false),
        };
        let proto: Proto = proto.parse()?;
        let addr = if let Some(path) = addr.strip_prefix("unix:") {
            if proto == Proto::Udp {
                return Err(ConfigError::new(format!(
                    "listener `{s}`: udp needs an IP address"
                )));
            }
            if path.is_empty() {
                return Err(ConfigError::new(format!(
                    "listener `{s}`: empty unix socket path"
                )));
            }
            ListenAddr::Unix(PathBuf::from(path))
        } else {
            let ip: SocketAddr = addr.parse().map_err(|_| {
                ConfigError::new(format!(
                    "listener `{s}`: `{addr}` is not 127.0.0.1:PORT, [::1]:PORT or unix:/path"
                ))
            })?;
            if proto == Proto::Udp {
                ListenAddr::Udp(ip)
            } else {
                ListenAddr::Tcp(ip)
            }
        };
        if tls && proto == Proto::Udp {
            return Err(ConfigError::new(format!(
                "listener `{s}`: udp cannot use tls"
            )));
        }
        Ok(ListenSpec { proto, tls, addr })
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}={}",
            self.proto,
            if self.tls { "+tls" } else { "" },
            self.addr
        )
    }
}

impl TryFrom<String> for ListenSpec {
    type Error = ConfigError;
    fn try_from(s: String) -> Result<Self, ConfigError> {
        s.parse()
    }
}

impl From<ListenSpec> for String {
    fn from(s: ListenSpec) -> String {
        s.to_string()
    }
}

/// How the server runs its connections. All serve every protocol the same way; see `crate::model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// One tokio multi-thread runtime with `workers` threads (the default).
    #[default]
    Async,
    /// `workers` single-thread runtimes, each with its own SO_REUSEPORT listener.
    PerCore,
    /// Blocking std::net, one thread per connection (at most `max_connections`).
    Threads,
    /// One thread, one mio poll loop, non-blocking sockets.
    EventLoop,
    /// `workers` pre-started worker processes sharing the TCP port with SO_REUSEPORT.
    Processes,
    /// `workers` threads, each with its own io_uring (completion-based I/O) and SO_REUSEPORT listener; falls
    /// back to `event-loop`, with a warning, where io_uring is unavailable.
    Uring,
}

impl Model {
    /// The name used by `--model`.
    pub fn name(self) -> &'static str {
        match self {
            Model::Async => "async",
            Model::PerCore => "per-core",
            Model::Threads => "threads",
            Model::EventLoop => "event-loop",
            Model::Processes => "processes",
            Model::Uring => "uring",
        }
    }

    /// Every model.
    pub const ALL: [Model; 6] = [
        Model::Async,
        Model::PerCore,
        Model::Threads,
        Model::EventLoop,
        Model::Processes,
        Model::Uring,
    ];
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Model {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Model::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                ConfigError::new(format!(
                    "unknown model `{s}` (async|per-core|threads|event-loop|processes|uring)"
                ))
            })
    }
}

/// Serde for `Duration` as humantime text (`"500ms"`, `"10s"`).
mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// The limits the server enforces on every connection, and what happens at each.
///
/// Going over a size limit is answered as the protocol says, then the connection closes: RESP
/// `-ERR Protocol error: <msg>`, HTTP `431`/`413`/`400`, framed `TOO_LARGE`/`BAD_REQUEST` with id 0; a line over
/// `max_line` closes the connection without a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Open connections at most, over all listeners; the next one gets the protocol's refusal (RESP
    /// `-ERR max number of clients reached`, HTTP `503`, framed `BUSY` id 0, line/echo: closed at once), then
    /// is closed. Default: 10000.
    pub max_connections: usize,
    /// Largest framed frame body in bytes. Default: 16 MiB.
    pub max_frame: usize,
    /// Server-wide budget, in bytes, over what every connection's input and output buffers hold. While the
    /// buffers together hold more, a request that grows past 64 KiB (a large one in progress) gets the
    /// protocol's busy answer (RESP `-BUSY`, HTTP `503`, framed `BUSY` id 0) and its connection closes, instead
    /// of being buffered; small requests are still served. Default: 1 GiB.
    pub memory_budget: usize,
    /// Longest line (without `\n`) in bytes. Default: 64 KiB.
    pub max_line: usize,
    /// Largest HTTP request line plus headers in bytes (over it: `431`). Default: 8 KiB.
    pub max_header: usize,
    /// Most HTTP headers in one request (over it: `431`). Default: 100.
    pub max_headers: usize,
    /// Largest HTTP request body in bytes (over it: `413`). Default: 1 MiB.
    pub max_body: usize,
    /// Largest RESP bulk string in bytes. Default: 512 MiB (Redis's proto-max-bulk-len).
    pub max_bulk: usize,
    /// The most the RESP key space may hold, in bytes: each key counts its bytes, its value's bytes, 224 for its
    /// entry and 128 more for a deadline (docs/PROTOCOL.md). A write that would take it past this is refused with Redis's
    /// `-OOM command not allowed when used memory > 'maxmemory'.` (Redis's `maxmemory` with
    /// `maxmemory-policy noeviction`); a write that does not grow it always goes through. Under `--model
    /// processes` each worker's key space gets `max_store / workers`. Default: 1 GiB, as `memory_budget`: what
    /// a benchmark's key space needs many times over, and a bound a small host survives.
    pub max_store: usize,
    /// Most elements in one RESP multibulk request. Default: 1048576.
    pub max_multibulk: usize,
    /// Longest RESP inline command in bytes. Default: 64 KiB.
    pub max_inline: usize,
    /// Most commands a RESP transaction (`MULTI` … `EXEC`) may queue; the one over it gets an error and the
    /// transaction is discarded (`EXEC` answers `-EXECABORT`). Default: 100000.
    pub max_multi_commands: usize,
    /// Most bytes a RESP transaction's queue may hold (the arguments, plus 32 bytes per argument and about 64
    /// per command for their bookkeeping), together with the keys the connection `WATCH`es (about twice each
    /// key's length plus 96 bytes); over it, as `max_multi_commands` (a `WATCH` over it is refused, and the next
    /// `EXEC` aborts). The queues and watched keys are counted in `memory_budget` too. Default: 64 MiB.
    pub max_multi_bytes: usize,
    /// How long a partial request may take to complete (slowloris); HTTP answers `408`, then the connection
    /// closes. Default: 10s.
    #[serde(with = "duration_text")]
    pub read_timeout: Duration,
    /// How long a connection may sit with no request in progress before it is closed. Default: 60s.
    #[serde(with = "duration_text")]
    pub idle_timeout: Duration,
    /// How long a write may make no progress (a client that does not read) before the connection is closed.
    /// Default: 10s.
    #[serde(with = "duration_text")]
    pub write_timeout: Duration,
    /// The longest framed SLEEP; longer requests sleep this long. Default: 10s.
    #[serde(with = "duration_text")]
    pub max_sleep: Duration,
    /// Output bytes above which a connection stops reading (and stops decoding buffered requests) until the
    /// client has read its replies, so memory stays bounded. Default: 256 KiB.
    pub write_high_water: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_frame: sockpool::codec::framed::DEFAULT_MAX_FRAME,
            memory_budget: 1 << 30,
            max_line: 64 * 1024,
            max_header: 8 * 1024,
            max_headers: 100,
            max_body: 1024 * 1024,
            max_bulk: 512 * 1024 * 1024,
            max_store: 1 << 30,
            max_multibulk: 1024 * 1024,
            max_inline: 64 * 1024,
            max_multi_commands: 100_000,
            max_multi_bytes: 64 * 1024 * 1024,
            read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            max_sleep: Duration::from_secs(10),
            write_high_water: 256 * 1024,
        }
    }
}

/// Everything the server needs to run. `ServerConfig::default()` listens on `framed=127.0.0.1:7000`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// The listeners. Default: `framed=127.0.0.1:7000`.
    pub listeners: Vec<ListenSpec>,
    /// The concurrency model. Default: `async`.
    pub model: Model,
    /// Worker threads (`async`), runtimes (`per-core`), rings (`uring`) or processes (`processes`); `threads`
    /// and `event-loop` ignore it. Default: the CPU count.
    pub workers: usize,
    /// The limits.
    pub limits: Limits,
    /// Body size of every HTTP `200`, in bytes, at most [`MAX_HTTP_BODY`] (1 GiB); built once at start.
    /// Default: 13 (`Hello, World!`).
    pub http_body_size: usize,
    /// How long shutdown waits for connections to finish the requests they already received. Default: 10s.
    #[serde(with = "duration_text")]
    pub shutdown_deadline: Duration,
    /// PEM certificate chain for `+tls` listeners. Default: none.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `+tls` listeners. Default: none.
    pub tls_key: Option<PathBuf>,
    /// PEM file of CA certificates: when set, `+tls` listeners require a client certificate signed by one of
    /// them (mutual TLS) and refuse the handshake without one. Default: none (no client certificate asked).
    pub tls_client_ca: Option<PathBuf>,
    /// Where to serve `GET /metrics` (Prometheus text). Default: none.
    pub admin: Option<SocketAddr>,
    /// Sets TCP_NODELAY on accepted connections. Default: true.
    pub nodelay: bool,
    /// Initial read buffer per connection, in bytes; it grows on demand and shrinks back. Default: 4 KiB.
    pub read_buffer: usize,
    /// The `sockpool-server` executable the `processes` model starts its workers from. Default: the running
    /// executable if it is `sockpool-server`, else a `sockpool-server` beside it or one directory up (so test
    /// binaries in `target/*/deps` and other binaries of the workspace find it).
    pub worker_exe: Option<PathBuf>,
    /// Sets SO_REUSEPORT on TCP listeners. Default: false (`per-core` and `processes` set it themselves).
    pub reuse_port: bool,
    /// Every model but `threads`: after the last socket activity, keep polling for socket events without
    /// sleeping for this long before blocking in `epoll_wait` again. The event loop polls with a zero timeout
    /// after its last event; a tokio runtime runs a task that yields in a loop while the server's bytes-read
    /// counter keeps moving. A server that sleeps between bursts makes every client write pay for waking it;
    /// polling through the gaps saves the clients that cost at the price of up to this much CPU after each
    /// burst. Default: 0 (off).
    #[serde(with = "duration_text")]
    pub busy_poll: Duration,
    /// `uring` only: once a completion is ready, wait up to this long for more before serving (io_uring's
    /// `min_wait`, Linux 6.12 and later), so that one wake-up serves several requests. Adds up to this much
    /// latency to a request that arrives alone; saves a wake-up for each request that joins another. Default: 0
    /// (off: every completion wakes the worker).
    #[serde(with = "duration_text")]
    pub batch_wait: Duration,
    /// Internal (`processes` workers): the connection pool's pipes, `(shared pool, this worker's held)`, that
    /// make `max_connections` one limit over every worker process. Set by the parent; default none.
    #[doc(hidden)]
    pub connection_pool: Option<(PathBuf, PathBuf)>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listeners: vec!["framed=127.0.0.1:7000"
                .parse()
                .expect("valid default listener")],
            model: Model::Async,
            workers: default_workers(),
            limits: Limits::default(),
            http_body_size: 13,
            shutdown_deadline: Duration::from_secs(10),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            admin: None,
            nodelay: true,
            read_buffer: 4 * 1024,
            worker_exe: None,
            reuse_port: false,
            busy_poll: Duration::ZERO,
            batch_wait: Duration::ZERO,
            connection_pool: None,
        }
    }
}

/// The longest `busy_poll`: polling longer than this between bursts is a core spent, not a wake-up saved.
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(10);

/// The longest `batch_wait`: a request's added latency is bounded by it.
pub const MAX_BATCH_WAIT: Duration = Duration::from_millis(1);

/// The longest timeout, deadline or SLEEP cap a flag may set: one year. Longer ones serve nobody, and an
/// `Instant` that far out overflows (`--idle-timeout 300000000000y` once killed connection tasks).
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600); // 365.25 days, humantime's `1year`

/// The largest `--max-frame`: what the framed 32-bit length field can announce.
pub const MAX_FRAME_FIELD: usize = u32::MAX as usize;

/// The largest `http_body_size`: the body is built once at start in every process (a worker process under
/// `processes`, and its parent), and each HTTP connection may hold up to two replies of it, so an unbounded size
/// took that much memory before `ready` (or aborted the start on the allocation).
pub const MAX_HTTP_BODY: usize = 1 << 30;

/// The most workers a server takes (threads, runtimes, rings or processes).
pub const MAX_WORKERS: usize = 1024;

/// The CPU count (at least 1, at most [`MAX_WORKERS`]).
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_WORKERS)
}

impl ServerConfig {
    /// Checks the settings that do not need the network: at least one listener, TLS files present when a
    /// listener asks for TLS, positive sizes and timeouts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(ConfigError::new("no listener"));
        }
        if self.listeners.iter().any(|l| l.tls)
            && (self.tls_cert.is_none() || self.tls_key.is_none())
        {
            return Err(ConfigError::new(
                "a +tls listener needs --tls-cert and --tls-key",
            ));
        }
        if self.tls_client_ca.is_some() && !self.listeners.iter().any(|l| l.tls) {
            return Err(ConfigError::new(
                "--tls-client-ca needs a +tls listener to check client certificates on",
            ));
        }
        if self.workers == 0 {
            return Err(ConfigError::new("workers must be at least 1"));
        }
        if self.workers > MAX_WORKERS {
            // Each is a thread with a runtime or ring (or, under `processes`, a process): 10^8 of them asked the
            // kernel for memory until it killed the server, without an error.
            return Err(ConfigError::new(format!(
                "workers must be at most {MAX_WORKERS} (asked for {})",
                self.workers
            )));
        }
        if !self.busy_poll.is_zero() && self.model == Model::Threads {
            return Err(ConfigError::new(
                "--busy-poll needs a poll loop; --model threads blocks a thread per connection instead",
            ));
        }
        if self.busy_poll > MAX_BUSY_POLL {
            return Err(ConfigError::new(format!(
                "--busy-poll is at most {}",
                humantime::format_duration(MAX_BUSY_POLL)
            )));
        }
        if !self.batch_wait.is_zero() && self.model != Model::Uring {
            return Err(ConfigError::new(
                "--batch-wait needs --model uring (io_uring's min_wait)",
            ));
        }
        if self.batch_wait > MAX_BATCH_WAIT {
            return Err(ConfigError::new(format!(
                "--batch-wait is at most {}",
                humantime::format_duration(MAX_BATCH_WAIT)
            )));
        }
        let l = &self.limits;
        if l.max_connections == 0 {
            return Err(ConfigError::new("max connections must be at least 1"));
        }
        for (name, v) in [
            ("max frame", l.max_frame),
            ("max line", l.max_line),
            ("max header", l.max_header),
            ("max body", l.max_body),
            ("max bulk", l.max_bulk),
            ("max store", l.max_store),
            ("max multibulk", l.max_multibulk),
            ("max inline", l.max_inline),
            ("write high water", l.write_high_water),
        ] {
            if v == 0 {
                return Err(ConfigError::new(format!("{name} must be at least 1")));
            }
        }
        if self.http_body_size > MAX_HTTP_BODY {
            return Err(ConfigError::new(format!(
                "http body size is at most {MAX_HTTP_BODY} bytes (1 GiB): it is held in memory from the start"
            )));
        }
        if l.max_frame > MAX_FRAME_FIELD {
            return Err(ConfigError::new(format!(
                "max frame is at most {MAX_FRAME_FIELD} bytes (4 GiB - 1): the framed length field is 32 bits"
            )));
        }
        for (name, d) in [
            ("read timeout", l.read_timeout),
            ("idle timeout", l.idle_timeout),
            ("write timeout", l.write_timeout),
            ("shutdown deadline", self.shutdown_deadline),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(format!("{name} must be above zero")));
            }
        }
        for (name, d) in [
            ("read timeout", l.read_timeout),
            ("idle timeout", l.idle_timeout),
            ("write timeout", l.write_timeout),
            ("max sleep", l.max_sleep),
            ("shutdown deadline", self.shutdown_deadline),
        ] {
            if d > MAX_DURATION {
                return Err(ConfigError::new(format!(
                    "{name} is at most {} (a deadline further out overflows the clock)",
                    humantime::format_duration(MAX_DURATION)
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_specs_parse_and_print_back() {
        for s in [
            "framed=127.0.0.1:7000",
            "http+tls=[::1]:0",
            "resp=unix:/tmp/x.sock",
            "udp=127.0.0.1:0",
        ] {
            let spec: ListenSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        let spec: ListenSpec = "udp=127.0.0.1:9".parse().unwrap();
        assert_eq!(spec.addr, ListenAddr::Udp("127.0.0.1:9".parse().unwrap()));
        for bad in [
            "framed",
            "ftp=127.0.0.1:1",
            "udp+tls=127.0.0.1:1",
            "udp=unix:/x",
            "http=localhost:80",
            "http+ssl=127.0.0.1:1",
        ] {
            assert!(bad.parse::<ListenSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn workers_are_between_one_and_the_cap() {
        let mut c = ServerConfig::default();
        assert!(default_workers() <= MAX_WORKERS);
        for (workers, ok) in [
            (0, false),
            (1, true),
            (MAX_WORKERS, true),
            (MAX_WORKERS + 1, false),
        ] {
            c.workers = workers;
            assert_eq!(
                c.validate().is_ok(),
                ok,
                "workers {workers}: {:?}",
                c.validate()
            );
        }
        c.workers = 100_000_000;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("at most 1024"), "{e}");
    }

    #[test]
    fn the_http_body_size_is_capped() {
        let mut c = ServerConfig {
            http_body_size: MAX_HTTP_BODY,
            ..Default::default()
        };
        assert!(c.validate().is_ok(), "{:?}", c.validate());
        c.http_body_size = MAX_HTTP_BODY + 1;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("at most 1073741824 bytes (1 GiB)"), "{e}");
    }

    #[test]
    fn config_round_trips_through_json() {
        let mut c = ServerConfig::default();
        c.limits.read_timeout = Duration::from_millis(500);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"500ms\""), "{json}");
        let back: ServerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
