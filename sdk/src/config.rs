//! Configuration structs. Each derives serde (durations are whole milliseconds in files, with a `_ms` suffix)
//! and `Default`; each field says its default. The defaults live here and nowhere else.

#[cfg(feature = "serde")]
use std::path::Path;
use std::time::Duration;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Phase};
use crate::transport::TlsConfig;

#[cfg(feature = "serde")]
mod evidence;
#[cfg(feature = "serde")]
pub use evidence::Evidence;

/// Parses `64`, `512B`, `4k`, `4KiB`, `1m`, `1MiB`, `1G`, `1GiB`. Units are binary whatever the spelling:
/// `K`, `KB` and `KiB` are 1024 bytes, `M`/`MB`/`MiB` 1024², `G`/`GB`/`GiB` 1024³ (case-insensitive). The
/// size syntax of every sockpool command line (the load generator's and the server's flags).
///
/// ```
/// assert_eq!(sockpool::config::parse_size("16MiB"), Ok(16 << 20));
/// assert!(sockpool::config::parse_size("5 parsecs").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 64, 4KiB, 1MiB)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "{s:?}: unknown size unit {unit:?} (use B, K/KiB, M/MiB or G/GiB; binary units)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Serde for a `Duration` as whole milliseconds.
#[cfg(feature = "serde")]
pub(crate) mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().min(u64::MAX as u128) as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Serde for an `Option<Duration>` as whole milliseconds or `null`.
#[cfg(feature = "serde")]
mod opt_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis().min(u64::MAX as u128) as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

/// The connection pool (one per endpoint).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct PoolConfig {
    /// Most connections open to one endpoint. Default: 32.
    pub max_size: usize,
    /// Connections kept open and idle, opened in the background by the reaper. Default: 0.
    pub min_idle: usize,
    /// Close a connection unused for this long (`None`: never). Default: 90 s.
    #[cfg_attr(feature = "serde", serde(rename = "idle_timeout_ms", with = "opt_ms"))]
    pub idle_timeout: Option<Duration>,
    /// Close a connection this old, at the next check-in or reaper pass (`None`: never). Default: 30 min.
    #[cfg_attr(feature = "serde", serde(rename = "max_lifetime_ms", with = "opt_ms"))]
    pub max_lifetime: Option<Duration>,
    /// Each connection's lifetime is shortened by a random fraction up to this, so that connections opened
    /// together do not all close together. Default: 0.1.
    pub lifetime_jitter: f64,
    /// Callers allowed to wait for a connection or a pipelining slot; one more fails at once with
    /// [`PoolExhausted`](crate::ErrorKind::PoolExhausted). Default: 1024.
    pub max_waiters: usize,
    /// How often the background reaper closes idle, expired and dead connections and tops up `min_idle`.
    /// Default: 1 s.
    #[cfg_attr(feature = "serde", serde(rename = "reap_interval_ms", with = "ms"))]
    pub reap_interval: Duration,
    /// A new connection for every call: connect, one request, its reply, close (oha's `disable_keepalive`,
    /// `Connection: close` clients). At most `max_size` such connections are open at once; a call waits for one
    /// within the pool wait timeout. What a pool saves, measured on the same engine. Default: false.
    pub connection_per_request: bool,
    /// Resolve endpoints given by host name to all their addresses, one pool per address, and resolve them
    /// again this often: new addresses get calls, addresses that left are drained (see
    /// [`resolve`](crate::resolve)). `None`: a name is resolved at each connect and the first address that
    /// answers is used, as for a single endpoint. Default: none.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "re_resolve_interval_ms", with = "opt_ms")
    )]
    pub re_resolve_interval: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_size: 32,
            min_idle: 0,
            idle_timeout: Some(Duration::from_secs(90)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            lifetime_jitter: 0.1,
            max_waiters: 1024,
            reap_interval: Duration::from_secs(1),
            connection_per_request: false,
            re_resolve_interval: None,
        }
    }
}

with_setters!(PoolConfig {
    with_max_size => max_size: usize,
    with_min_idle => min_idle: usize,
    with_idle_timeout => idle_timeout: Option<Duration>,
    with_max_lifetime => max_lifetime: Option<Duration>,
    with_lifetime_jitter => lifetime_jitter: f64,
    with_max_waiters => max_waiters: usize,
    with_reap_interval => reap_interval: Duration,
    with_connection_per_request => connection_per_request: bool,
    with_re_resolve_interval => re_resolve_interval: Option<Duration>,
});

/// Timeouts of each phase of a call, plus an optional end-to-end deadline that caps them all.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Timeouts {
    /// Opening a TCP or Unix connection; 0 is refused when the client is built. Default: 3 s.
    #[cfg_attr(feature = "serde", serde(rename = "connect_ms", with = "ms"))]
    pub connect: Duration,
    /// The TLS handshake; 0 is refused when the client is built. Default: 3 s.
    #[cfg_attr(feature = "serde", serde(rename = "tls_handshake_ms", with = "ms"))]
    pub tls_handshake: Duration,
    /// Waiting for a pooled connection or a free pipelining slot (0: fail at once when none is free).
    /// Default: 5 s.
    #[cfg_attr(feature = "serde", serde(rename = "pool_wait_ms", with = "ms"))]
    pub pool_wait: Duration,
    /// From queueing the request on a connection to its reply; 0 is refused when the client is built.
    /// Default: 30 s.
    #[cfg_attr(feature = "serde", serde(rename = "request_ms", with = "ms"))]
    pub request: Duration,
    /// One deadline for the whole call, retries included (`None`: only the phase timeouts); `Some(0)` is
    /// refused when the client is built. Default: none.
    #[cfg_attr(feature = "serde", serde(rename = "total_ms", with = "opt_ms"))]
    pub total: Option<Duration>,
    /// How long [`Client::close`](crate::Client::close) lets the calls in progress finish before it cuts them
    /// (their callers get [`ErrorKind::Closed`], their connections are closed); 0 cuts them at once.
    /// Default: 10 s.
    #[cfg_attr(feature = "serde", serde(rename = "close_grace_ms", with = "ms"))]
    pub close_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            tls_handshake: Duration::from_secs(3),
            pool_wait: Duration::from_secs(5),
            request: Duration::from_secs(30),
            total: None,
            close_grace: Duration::from_secs(10),
        }
    }
}

impl Timeouts {
    /// Refuses a zero timeout of a phase every call may go through. It was taken: a `request_ms` of 0 in a file
    /// (meant as "no timeout", as some clients read it) let a reply that was already buffered through and timed
    /// out every other one, and a `total_ms` of 0 failed every call with `Deadline`, none at build time.
    pub(crate) fn check(&self) -> Result<(), Error> {
        for (name, d) in [
            ("connect", Some(self.connect)),
            ("tls_handshake", Some(self.tls_handshake)),
            ("request", Some(self.request)),
            ("total", self.total),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(Error::new(
                    ErrorKind::Config,
                    Phase::Connect,
                    format!(
                        "timeouts {name} 0: every call would time out (give a duration{})",
                        if name == "total" {
                            ", or None for no end-to-end deadline"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
        Ok(())
    }
}

with_setters!(Timeouts {
    with_connect => connect: Duration,
    with_tls_handshake => tls_handshake: Duration,
    with_pool_wait => pool_wait: Duration,
    with_request => request: Duration,
    with_total => total: Option<Duration>,
    with_close_grace => close_grace: Duration,
});

/// Socket options applied to every new connection (via socket2).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct SocketOptions {
    /// TCP_NODELAY: send small writes at once instead of waiting (Nagle). Default: true.
    pub nodelay: bool,
    /// SO_SNDBUF in bytes, set before connecting (`None`: the OS default); the OS caps it at its maximum
    /// (`net.core.wmem_max` on Linux). Default: none.
    pub send_buffer: Option<usize>,
    /// SO_RCVBUF in bytes, set before connecting (`None`: the OS default); the OS caps it at its maximum
    /// (`net.core.rmem_max` on Linux). Default: none.
    pub recv_buffer: Option<usize>,
    /// SO_KEEPALIVE with this idle time before the first probe (`None`: keepalive off), in whole seconds from
    /// 1 s to [`MAX_KEEPALIVE`] (TCP_KEEPIDLE's range; a fraction is dropped). Default: 60 s.
    #[cfg_attr(feature = "serde", serde(rename = "keepalive_ms", with = "opt_ms"))]
    pub keepalive: Option<Duration>,
    /// Interval between keepalive probes (`None`: the OS default), 1 s to [`MAX_KEEPALIVE`]. Default: none.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "keepalive_interval_ms", with = "opt_ms")
    )]
    pub keepalive_interval: Option<Duration>,
    /// Local IP address each TCP connection is opened from (bound with port 0 before connecting), e.g. one
    /// loopback address per load agent; its family must match the peer's (`None`: the OS chooses). Unix
    /// sockets ignore it. Default: none.
    pub local_address: Option<std::net::IpAddr>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            nodelay: true,
            send_buffer: None,
            recv_buffer: None,
            keepalive: Some(Duration::from_secs(60)),
            keepalive_interval: None,
            local_address: None,
        }
    }
}

/// The longest keepalive idle time or probe interval: TCP_KEEPIDLE and TCP_KEEPINTVL take whole seconds up to
/// 32,767 on Linux.
pub const MAX_KEEPALIVE: Duration = Duration::from_secs(32_767);

impl SocketOptions {
    /// Refuses what the OS would refuse on every connect: a keepalive time under a second (TCP_KEEPIDLE takes
    /// whole seconds, so `500ms` is 0) or over [`MAX_KEEPALIVE`]. Before, each connect failed with EINVAL.
    pub(crate) fn check(&self) -> Result<(), Error> {
        for (name, d) in [
            ("keepalive", self.keepalive),
            ("keepalive_interval", self.keepalive_interval),
        ] {
            if let Some(d) = d.filter(|d| d.as_secs() < 1 || *d > MAX_KEEPALIVE) {
                return Err(Error::new(
                    ErrorKind::Config,
                    Phase::Connect,
                    format!(
                        "socket {name} {d:?}: from 1 s to {} s in whole seconds (None: {})",
                        MAX_KEEPALIVE.as_secs(),
                        if name == "keepalive" {
                            "off"
                        } else {
                            "the OS default"
                        }
                    ),
                ));
            }
        }
        Ok(())
    }
}

with_setters!(SocketOptions {
    with_nodelay => nodelay: bool,
    with_send_buffer => send_buffer: Option<usize>,
    with_recv_buffer => recv_buffer: Option<usize>,
    with_keepalive => keepalive: Option<Duration>,
    with_keepalive_interval => keepalive_interval: Option<Duration>,
    with_local_address => local_address: Option<std::net::IpAddr>,
});

/// Buffers of each connection.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct BufferConfig {
    /// Initial capacity of the read buffer, and the least free space kept before each read; at most
    /// [`MAX_BUFFER_CAPACITY`]. Default: 16 KiB.
    pub read_capacity: usize,
    /// Initial capacity of the write buffer; at most [`MAX_BUFFER_CAPACITY`]. Default: 16 KiB.
    pub write_capacity: usize,
    /// Queued requests are encoded into one buffer and written with one syscall, up to this many bytes per
    /// batch. Default: 64 KiB.
    pub max_write_batch: usize,
    /// The most one reply may hold, all of it together: a RESP reply's bulk strings and nested arrays (plus
    /// a slot per element), an HTTP response's head or body, a frame, a line. The codec's own limits still apply
    /// (the smaller wins). Over it the call fails with [`ErrorKind::Protocol`] naming the limit and the bytes the
    /// reply claimed (refused from the length a server announces, before those bytes arrive), and the connection
    /// is closed; a connection never holds more than this plus its read buffer for a reply. From 1 to
    /// [`MAX_REPLY_LIMIT`]. Default: 1 GiB ([`DEFAULT_MAX_REPLY`](crate::codec::DEFAULT_MAX_REPLY)).
    pub max_reply: usize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            read_capacity: 16 * 1024,
            write_capacity: 16 * 1024,
            max_write_batch: 64 * 1024,
            max_reply: crate::codec::DEFAULT_MAX_REPLY,
        }
    }
}

/// The largest [`BufferConfig::read_capacity`] and [`BufferConfig::write_capacity`]: each connection allocates
/// both when it opens.
pub const MAX_BUFFER_CAPACITY: usize = 1 << 30;

/// The largest [`BufferConfig::max_reply`]: 1 TiB. A limit above what any client could hold is no limit.
pub const MAX_REPLY_LIMIT: usize = 1 << 40;

impl BufferConfig {
    /// Refuses a capacity no connection can allocate. Before, 100 GiB aborted the process at the first connect
    /// (out of memory) and `usize::MAX` panicked the connection's task, every call then waiting out the pool
    /// wait timeout.
    pub(crate) fn check(&self) -> Result<(), Error> {
        for (name, v) in [
            ("read_capacity", self.read_capacity),
            ("write_capacity", self.write_capacity),
        ] {
            if v > MAX_BUFFER_CAPACITY {
                return Err(Error::new(
                    ErrorKind::Config,
                    Phase::Connect,
                    format!(
                        "buffers {name} {v}: at most {MAX_BUFFER_CAPACITY} bytes (1 GiB), allocated by each \
                         connection"
                    ),
                ));
            }
        }
        // 0 failed every call with a reply over its limit; above `MAX_REPLY_LIMIT` it would bound nothing.
        if self.max_reply == 0 || self.max_reply > MAX_REPLY_LIMIT {
            return Err(Error::new(
                ErrorKind::Config,
                Phase::Connect,
                format!(
                    "buffers max_reply {}: from 1 to {MAX_REPLY_LIMIT} bytes (1 TiB), the most one reply may \
                     hold",
                    self.max_reply
                ),
            ));
        }
        Ok(())
    }
}

with_setters!(BufferConfig {
    with_read_capacity => read_capacity: usize,
    with_write_capacity => write_capacity: usize,
    with_max_write_batch => max_write_batch: usize,
    with_max_reply => max_reply: usize,
});

/// When and how a failed call is tried again.
///
/// A call is retried only when its error [is retryable](crate::Error::is_retryable) **and** the request provably
/// was not sent ([`was_sent`](crate::Error::was_sent) is false) or it is idempotent (the protocol says so, e.g.
/// RESP `GET`, or the caller used [`Client::call_idempotent`](crate::Client::call_idempotent)).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Most retries of one call (0 disables retries). Default: 2.
    pub max_retries: u32,
    /// Backoff before the first retry; doubles on each further retry. Default: 10 ms.
    #[cfg_attr(feature = "serde", serde(rename = "backoff_base_ms", with = "ms"))]
    pub backoff_base: Duration,
    /// Ceiling of the backoff. Default: 1 s.
    #[cfg_attr(feature = "serde", serde(rename = "backoff_max_ms", with = "ms"))]
    pub backoff_max: Duration,
    /// Full jitter fraction: each backoff is drawn uniformly from `[(1 - jitter) * b, b]`. Default: 0.5.
    pub jitter: f64,
    /// Retry budget: each call earns this fraction of a retry token; a retry spends one. Caps retries at about
    /// this share of traffic so that retries cannot multiply load during an outage. Default: 0.2.
    pub budget_ratio: f64,
    /// Retry tokens available at start (and the floor the budget refills to over time: see `budget_ratio`).
    /// Default: 10.
    pub budget_initial: u32,
    /// Retry idempotent requests even when they may have been sent. Default: true.
    pub retry_idempotent: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
            jitter: 0.5,
            budget_ratio: 0.2,
            budget_initial: 10,
            retry_idempotent: true,
        }
    }
}

with_setters!(RetryPolicy {
    with_max_retries => max_retries: u32,
    with_backoff_base => backoff_base: Duration,
    with_backoff_max => backoff_max: Duration,
    with_jitter => jitter: f64,
    with_budget_ratio => budget_ratio: f64,
    with_budget_initial => budget_initial: u32,
    with_retry_idempotent => retry_idempotent: bool,
});

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The backoff before retry number `attempt` (1-based), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(30);
        self.backoff_base
            .saturating_mul(1u32 << shift)
            .min(self.backoff_max)
    }

    /// The backoff before retry number `attempt`, with jitter drawn from `rng` (crate-private: `rand` is not
    /// part of the API).
    pub(crate) fn backoff_with_jitter(&self, attempt: u32, rng: &mut impl rand::Rng) -> Duration {
        let b = self.backoff(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return b;
        }
        let low = 1.0 - jitter;
        b.mul_f64(rng.gen_range(low..=1.0))
    }
}

/// Ejection of an endpoint that fails repeatedly (with several endpoints).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct EjectionPolicy {
    /// Consecutive failed calls (connect failures, resets, timeouts) that eject an endpoint. Default: 5.
    pub consecutive_failures: u32,
    /// First ejection time; doubles with each ejection in a row, up to `max_ejection`. After it, one call
    /// probes the endpoint: success brings it back, failure ejects it again. Default: 1 s.
    #[cfg_attr(feature = "serde", serde(rename = "base_ejection_ms", with = "ms"))]
    pub base_ejection: Duration,
    /// Longest ejection. Default: 30 s.
    #[cfg_attr(feature = "serde", serde(rename = "max_ejection_ms", with = "ms"))]
    pub max_ejection: Duration,
}

impl Default for EjectionPolicy {
    fn default() -> Self {
        EjectionPolicy {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(30),
        }
    }
}

with_setters!(EjectionPolicy {
    with_consecutive_failures => consecutive_failures: u32,
    with_base_ejection => base_ejection: Duration,
    with_max_ejection => max_ejection: Duration,
});

/// The default pipelining depth: requests in flight per connection, shared by every caller.
///
/// Chosen by measurement (docs/PERFORMANCE.md, `benches/compare/sdk_vs_redis_rs.sh`): 50 callers doing
/// SET+GET+INCR against one redis-server ran about as fast at 32 and 64 (2 connections or 1), slower at 8 and
/// 16 (more connections, smaller batches) and no faster at 128. At 64 up to 64 concurrent callers share one
/// connection, and the pool opens another (up to [`PoolConfig::max_size`]) only when all its slots are taken.
pub const DEFAULT_PIPELINE_DEPTH: usize = 64;

/// Every setting of a [`Client`](crate::Client) in one serde struct: what a service keeps in a file and builds
/// its client from in one call ([`Client::from_config_file`](crate::Client::from_config_file)).
///
/// Missing keys take their defaults; an unknown key is an error (a typo must not silently fall back to a
/// default). The file is JSON, or TOML when its name ends in `.toml`. TOML has no `null`: a setting whose
/// `None` is not its default (`idle_timeout_ms`, `max_lifetime_ms`, `keepalive_ms`) cannot be switched off
/// there; use JSON for that.
///
/// ```
/// let config: sockpool::ClientConfig = serde_json::from_str(
///     r#"{"endpoints": ["127.0.0.1:7000"], "pipeline_depth": 16, "pool": {"max_size": 4}}"#,
/// )?;
/// assert_eq!(config.pool.max_size, 4);
/// assert_eq!(config.timeouts, sockpool::Timeouts::default());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct ClientConfig {
    /// Endpoints: `host:port`, `[::1]:port`, `unix:/path`, `tls://host:port`, or a URL of the client's own
    /// protocol (`redis://host:port`, `http://host:port`: see
    /// [`ClientBuilder::endpoint`](crate::ClientBuilder::endpoint)). Default: none (add them with
    /// [`ClientBuilder::endpoint`](crate::ClientBuilder::endpoint) before building).
    pub endpoints: Vec<String>,
    /// Requests in flight per connection, shared by every caller. Default: [`DEFAULT_PIPELINE_DEPTH`] (64):
    /// callers are multiplexed onto few connections, their requests that arrive together written in one batch
    /// (see [`Client`](crate::Client)); 1 = request/response, one caller per connection at a time. 0 is refused
    /// when the client is built.
    pub pipeline_depth: usize,
    /// The pool. Default: [`PoolConfig::default`].
    pub pool: PoolConfig,
    /// Timeouts. Default: [`Timeouts::default`].
    pub timeouts: Timeouts,
    /// Socket options. Default: [`SocketOptions::default`].
    pub socket: SocketOptions,
    /// Buffers. Default: [`BufferConfig::default`].
    pub buffers: BufferConfig,
    /// Retries. Default: [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// Ejection of failing endpoints. Default: [`EjectionPolicy::default`].
    pub ejection: EjectionPolicy,
    /// TLS for `tls://` endpoints. Default: [`TlsConfig::default`].
    pub tls: TlsConfig,
    /// Free-form notes that travel with the settings and that the client ignores: `sockpool-loadgen tune
    /// --recommend` records here what it measured (rate, percentiles, baseline, noise, objective, date).
    /// Default: none.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    #[cfg(feature = "serde")]
    pub evidence: Option<Evidence>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            endpoints: Vec::new(),
            pipeline_depth: DEFAULT_PIPELINE_DEPTH,
            pool: PoolConfig::default(),
            timeouts: Timeouts::default(),
            socket: SocketOptions::default(),
            buffers: BufferConfig::default(),
            retry: RetryPolicy::default(),
            ejection: EjectionPolicy::default(),
            tls: TlsConfig::default(),
            #[cfg(feature = "serde")]
            evidence: None,
        }
    }
}

with_setters!(ClientConfig {
    with_endpoints => endpoints: Vec<String>,
    with_pipeline_depth => pipeline_depth: usize,
    with_pool => pool: PoolConfig,
    with_timeouts => timeouts: Timeouts,
    with_socket => socket: SocketOptions,
    with_buffers => buffers: BufferConfig,
    with_retry => retry: RetryPolicy,
    with_ejection => ejection: EjectionPolicy,
    with_tls => tls: TlsConfig,
});

#[cfg(feature = "serde")]
fn is_toml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

/// The checks of [`ClientConfig::validate`], which [`ClientBuilder::build`](crate::ClientBuilder::build) makes
/// on its own settings too.
pub(crate) fn check_settings(
    depth: usize,
    pool: &PoolConfig,
    retry: &RetryPolicy,
    socket: &SocketOptions,
    timeouts: &Timeouts,
    buffers: &BufferConfig,
) -> Result<(), Error> {
    use crate::client::{MAX_BUDGET_RATIO, MAX_POOL_SIZE};
    let config_err = |m: String| Error::new(ErrorKind::Config, Phase::Connect, m);
    if pool.max_size == 0 {
        return Err(config_err("pool max_size must be at least 1".into()));
    }
    // Taken as 1 before: a file or flag saying 0 got request/response without a word.
    if depth == 0 {
        return Err(config_err(
            "pipeline_depth 0: at least 1 request in flight per connection (1 = request/response)"
                .into(),
        ));
    }
    // The pool reserves its slots up front: 10^12 aborted the process on the allocation.
    if pool.max_size > MAX_POOL_SIZE {
        return Err(config_err(format!(
            "pool max_size {}: at most {MAX_POOL_SIZE} connections per endpoint",
            pool.max_size
        )));
    }
    // NaN or out-of-range fractions panicked later, on the first retry or connect.
    for (name, v) in [
        ("retry jitter", retry.jitter),
        ("pool lifetime_jitter", pool.lifetime_jitter),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(config_err(format!("{name} {v}: a fraction from 0 to 1")));
        }
    }
    if !(0.0..=MAX_BUDGET_RATIO).contains(&retry.budget_ratio) {
        return Err(config_err(format!(
            "retry budget_ratio {}: from 0 to {MAX_BUDGET_RATIO} retries a call",
            retry.budget_ratio
        )));
    }
    socket.check()?;
    timeouts.check()?;
    buffers.check()
}

impl ClientConfig {
    /// Refuses the values no client can use — a pipeline depth or pool of 0, a pool over
    /// [`MAX_POOL_SIZE`](crate::client::MAX_POOL_SIZE), a fraction outside 0–1, a zero timeout, a buffer over
    /// [`MAX_BUFFER_CAPACITY`], socket options out of range — with the [`ErrorKind::Config`] error [`ClientBuilder::build`] gives for them: for a
    /// program that takes a configuration from its user and wants to refuse it before it builds a client.
    ///
    /// [`ClientBuilder::build`]: crate::ClientBuilder::build
    pub fn validate(&self) -> Result<(), Error> {
        check_settings(
            self.pipeline_depth,
            &self.pool,
            &self.retry,
            &self.socket,
            &self.timeouts,
            &self.buffers,
        )
    }
}

/// Configuration files (with the `serde` feature).
#[cfg(feature = "serde")]
impl ClientConfig {
    /// Reads a configuration file: TOML when the name ends in `.toml`, JSON otherwise. A file that cannot be
    /// read or parsed (unknown key, wrong type) is an [`ErrorKind::Config`] error naming the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ClientConfig, Error> {
        let path = path.as_ref();
        let err = |m: String| {
            Error::new(
                ErrorKind::Config,
                Phase::Connect,
                format!("{}: {m}", path.display()),
            )
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        if is_toml(path) {
            toml::from_str(&text).map_err(|e| err(e.to_string()))
        } else {
            serde_json::from_str(&text).map_err(|e| err(e.to_string()))
        }
    }

    /// The file text [`from_file`](Self::from_file) reads back: TOML when `path` ends in `.toml`, pretty JSON
    /// otherwise.
    pub fn to_file_text(&self, path: impl AsRef<Path>) -> Result<String, Error> {
        let err = |m: String| Error::new(ErrorKind::Config, Phase::Connect, m);
        if is_toml(path.as_ref()) {
            toml::to_string_pretty(self).map_err(|e| err(e.to_string()))
        } else {
            serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_as_milliseconds() {
        let t = Timeouts {
            total: Some(Duration::from_millis(1500)),
            ..Timeouts::default()
        };
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["connect_ms"], 3000);
        assert_eq!(json["total_ms"], 1500);
        let back: Timeouts = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
        let partial: PoolConfig = serde_json::from_str(r#"{"max_size": 4}"#).unwrap();
        assert_eq!(partial.max_size, 4);
        assert_eq!(partial.min_idle, PoolConfig::default().min_idle);
    }

    #[test]
    fn a_client_config_round_trips_through_json_and_toml_files() {
        let dir = tempfile::tempdir().unwrap();
        let config = ClientConfig {
            endpoints: vec!["127.0.0.1:7000".into()],
            pipeline_depth: 16,
            pool: PoolConfig {
                max_size: 4,
                ..PoolConfig::default()
            },
            socket: SocketOptions {
                nodelay: false,
                send_buffer: Some(65536),
                ..SocketOptions::default()
            },
            evidence: Some(Evidence::from_json(r#"{"rate": 1234.5, "note": "anything"}"#).unwrap()),
            ..ClientConfig::default()
        };
        for name in ["c.json", "c.toml"] {
            let path = dir.path().join(name);
            std::fs::write(&path, config.to_file_text(&path).unwrap()).unwrap();
            assert_eq!(ClientConfig::from_file(&path).unwrap(), config, "{name}");
        }
        // The evidence is written as the plain JSON (or TOML) value it holds, not wrapped in anything.
        let json = config.to_file_text("c.json").unwrap();
        assert!(
            json.contains(r#""evidence": {"#) && json.contains(r#""rate": 1234.5"#),
            "{json}"
        );
        let toml = config.to_file_text("c.toml").unwrap();
        assert!(
            toml.contains("[evidence]") && toml.contains("rate = 1234.5"),
            "{toml}"
        );
        let typo = dir.path().join("typo.json");
        std::fs::write(&typo, r#"{"pipeline_dept": 4}"#).unwrap();
        let e = ClientConfig::from_file(&typo).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("pipeline_dept"), "{e}");
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let p = RetryPolicy {
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_millis(10));
        assert_eq!(p.backoff(2), Duration::from_millis(20));
        assert_eq!(p.backoff(3), Duration::from_millis(40));
        assert_eq!(p.backoff(4), Duration::from_millis(50));
        assert_eq!(p.backoff(100), Duration::from_millis(50));
        let mut rng = rand::thread_rng();
        for attempt in 1..6 {
            let j = p.backoff_with_jitter(attempt, &mut rng);
            assert!(j <= p.backoff(attempt) && j >= p.backoff(attempt).mul_f64(0.5));
        }
    }
}
