//! The validated configuration (the "high args"): built once from [`RunArgs`], never re-checked later.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::args::{RunArgs, ServiceArgs};
use crate::check::{Check, Pattern, StatusSet};
use crate::scenario::{Escapes, Template};
use crate::verdict::Threshold;

/// Every default in one place.
pub mod defaults {
    use std::time::Duration;

    /// Connections. Default: 16.
    pub const CONNECTIONS: usize = 16;
    /// Pipeline depth per connection. Default: 1.
    pub const PIPELINE: usize = 1;
    /// Worker threads. Default: 1.
    pub const THREADS: usize = 1;
    /// Measured duration when neither `--duration` nor `--requests` is given. Default: 10 s.
    pub const DURATION: Duration = Duration::from_secs(10);
    /// The shortest `--duration` accepted: 10 ms. A shorter run ends before a connection is set up and a
    /// request goes round even on loopback (`-d 1ms` measured nothing and exited 3, blaming the target for
    /// the user's setting); it is refused as bad usage instead (exit status 2).
    pub const MIN_DURATION: Duration = Duration::from_millis(10);
    /// Longest `--duration` (a ramp's STEPS × DURATION too): 365 days, as the server's longest. Longer is a
    /// typo (`1000000years` ran forever).
    pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
    /// Longest `--warmup`, `--timeout` and `--connect-timeout`, and how far ahead `--start-at` may be: 1 day.
    pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
    /// Warm-up. Default: none.
    pub const WARMUP: Duration = Duration::ZERO;
    /// Payload bytes. Default: 64.
    pub const PAYLOAD: usize = 64;
    /// Per-request timeout. Default: 5 s.
    pub const TIMEOUT: Duration = Duration::from_secs(5);
    /// Connect timeout. Default: 2 s.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// TCP_NODELAY. Default: on.
    pub const NODELAY: bool = true;
    /// Framed `--op sleep` service time. Default: 1 ms.
    pub const SLEEP: Duration = Duration::from_millis(1);
    /// HTTP method. Default: GET.
    pub const METHOD: &str = "GET";
    /// HTTP path. Default: `/`.
    pub const PATH: &str = "/";
    /// RESP command. Default: PING.
    pub const COMMAND: &str = "PING";
    /// Largest payload accepted (the framed codec's default frame limit; framed takes 13 bytes less, the
    /// request header's, and line the line limit, 64 KiB). Default: 16 MiB.
    pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
    /// Highest `--rate` (and `--ramp` rate): a request a nanosecond, the schedule's resolution.
    pub const MAX_RATE: f64 = 1e9;
    /// Lowest `--rate` (and `--ramp` rate): a request every 1000 s.
    pub const MIN_RATE: f64 = 1e-3;
    /// Largest UDP payload. Default: 65507 bytes (IPv4 datagram limit).
    pub const MAX_UDP_PAYLOAD: usize = 65_507;
    /// The most payload bytes the run may hold in flight (`--connections` × `--pipeline` × the largest
    /// `--payload`): each request in flight is kept encoded by its connection. 1 GiB.
    pub const MAX_IN_FLIGHT: usize = 1 << 30;
    /// The most one reply may hold (`--max-reply`, the SDK's `buffers.max_reply`). Default: 1 GiB
    /// ([`sockpool::codec::DEFAULT_MAX_REPLY`]).
    pub const MAX_REPLY: usize = sockpool::codec::DEFAULT_MAX_REPLY;
    /// The embedded benchmark's duration. Default: 3 s.
    pub const EMBEDDED_DURATION: Duration = Duration::from_secs(3);
    /// The embedded benchmark's warm-up. Default: 500 ms.
    pub const EMBEDDED_WARMUP: Duration = Duration::from_millis(500);
}

/// A flag that is wrong, or two that conflict: one clear message naming the flag.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Refuses a `--duration` too short to measure anything or longer than [`defaults::MAX_DURATION`], in the same
/// words for `run`, `tune` and `stream`.
pub(crate) fn measurable(d: Duration) -> Result<(), String> {
    if d < defaults::MIN_DURATION {
        return Err(format!(
            "--duration {}: too short to measure anything (a connection's set-up and one round trip take \
             longer); at least {}",
            humantime::format_duration(d),
            humantime::format_duration(defaults::MIN_DURATION)
        ));
    }
    if d > defaults::MAX_DURATION {
        return Err(format!(
            "--duration {}: at most {}",
            humantime::format_duration(d),
            days(defaults::MAX_DURATION)
        ));
    }
    Ok(())
}

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The wire protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The sockpool framed RPC.
    Framed,
    /// Raw echo bytes.
    Echo,
    /// `\n`-terminated lines.
    Line,
    /// HTTP/1.1.
    Http,
    /// Redis RESP2.
    Resp,
    /// UDP datagrams (echo).
    Udp,
}

impl Protocol {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Framed => "framed",
            Protocol::Echo => "echo",
            Protocol::Line => "line",
            Protocol::Http => "http",
            Protocol::Resp => "resp",
            Protocol::Udp => "udp",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "framed" => Protocol::Framed,
            "echo" => Protocol::Echo,
            "line" => Protocol::Line,
            "http" => Protocol::Http,
            "resp" | "redis" => Protocol::Resp,
            "udp" => Protocol::Udp,
            _ => {
                return Err(bad(format!(
                    "--protocol {s:?}: expected one of framed, echo, line, http, resp, udp"
                )))
            }
        })
    }
}

/// Where the target lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The endpoint string handed to the SDK (`127.0.0.1:7000`, `[::1]:7000`, `unix:/p`, `tls://h:p`).
    pub endpoint: String,
    /// True when the target is spoken to over TLS.
    pub tls: bool,
    /// True for a Unix-domain socket.
    pub unix: bool,
}

/// What a URL target says beyond where to connect: the protocol its scheme names, and an HTTP path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetHints {
    /// `redis://` → resp, `http://` → http.
    pub protocol: Option<Protocol>,
    /// The path of an `http://host/path` URL.
    pub path: Option<String>,
}

impl Target {
    /// Parses a target that may be a URL: `redis://host[:port]` (and `rediss://`, TLS) speak resp, default
    /// port 6379; `http://host[:port][/path]` (and `https://`, TLS) speak http, default ports 80/443. Anything
    /// else goes to [`Target::parse`].
    pub fn parse_url(s: &str, tls_flag: bool) -> Result<(Target, TargetHints), ConfigError> {
        let s = s.trim();
        let Some((scheme, rest)) = s.split_once("://") else {
            return Ok((Target::parse(s, tls_flag)?, TargetHints::default()));
        };
        let (protocol, tls, port) = match scheme.to_ascii_lowercase().as_str() {
            "tls" => return Ok((Target::parse(s, tls_flag)?, TargetHints::default())),
            "redis" => (Protocol::Resp, false, 6379),
            "rediss" => (Protocol::Resp, true, 6379),
            "http" => (Protocol::Http, false, 80),
            "https" => (Protocol::Http, true, 443),
            other => {
                return Err(bad(format!(
                    "--target {s:?}: unknown scheme {other:?} (known: tls://, redis://, rediss://, http://, https://; \
                     or host:port with --protocol)"
                )))
            }
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad(format!(
                "--target {s:?}: user names and passwords in the URL are not supported"
            )));
        }
        if authority.is_empty() {
            return Err(bad(format!("--target {s:?}: the host is missing")));
        }
        let has_port = if authority.starts_with('[') {
            authority.contains("]:")
        } else {
            authority.contains(':')
        };
        let hostport = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:{port}")
        };
        let path = match protocol {
            Protocol::Resp => {
                if !(path.is_empty() || path == "/" || path == "/0") {
                    return Err(bad(format!(
                        "--target {s:?}: database numbers other than 0 are not supported (no SELECT is sent)"
                    )));
                }
                None
            }
            _ => (!path.is_empty()).then(|| path.to_string()),
        };
        let t = Target::parse(&hostport, tls || tls_flag)?;
        Ok((
            t,
            TargetHints {
                protocol: Some(protocol),
                path,
            },
        ))
    }

    /// Parses `host:port`, `[::1]:port`, `unix:/path` or `tls://host:port`.
    pub fn parse(s: &str, tls_flag: bool) -> Result<Target, ConfigError> {
        let s = s.trim();
        // `tls://unix:/path` asks for the same as `--tls` with `unix:/path` (it said "\"/path\" is not a port").
        let (unix, tls_flag) = match s.strip_prefix("tls://") {
            Some(rest) if rest.starts_with("unix:") => (Some(rest), true),
            _ => (s.strip_prefix("unix:").map(|_| s), tls_flag),
        };
        if let Some(socket) = unix {
            let path = &socket["unix:".len()..];
            if path.is_empty() {
                return Err(bad(
                    "--target unix: needs a path, e.g. unix:/tmp/sockpool.sock",
                ));
            }
            if tls_flag {
                // The SDK speaks TLS over TCP only: refused, never sent in plaintext.
                return Err(bad(format!(
                    "--target {s:?}: TLS over a Unix socket is not supported (TLS runs over TCP: \
                     tls://host:port); drop --tls (or tls://) to speak plaintext over the socket"
                )));
            }
            return Ok(Target {
                endpoint: socket.to_string(),
                tls: false,
                unix: true,
            });
        }
        let (tls, hostport) = match s.strip_prefix("tls://") {
            Some(rest) => (true, rest),
            None => (tls_flag, s),
        };
        let (host, port) = hostport.rsplit_once(':').ok_or_else(|| {
            bad(format!(
                "--target {s:?}: expected host:port, [::1]:port, unix:/path or tls://host:port"
            ))
        })?;
        if host.is_empty() {
            return Err(bad(format!("--target {s:?}: the host is missing")));
        }
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            return Err(bad(format!(
                "--target {s:?}: write IPv6 addresses in brackets, e.g. [::1]:7000"
            )));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => {
                return Err(bad(format!(
                    "--target {s:?}: {port:?} is not a port (1-65535)"
                )))
            }
        }
        let endpoint = if tls {
            format!("tls://{hostport}")
        } else {
            hostport.to_string()
        };
        Ok(Target {
            endpoint,
            tls,
            unix: false,
        })
    }

    /// `host:port` (or `unix:/path`) without the `tls://` prefix.
    pub fn address(&self) -> &str {
        self.endpoint
            .strip_prefix("tls://")
            .unwrap_or(&self.endpoint)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.endpoint)
    }
}

/// Payload size: fixed or uniformly random in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PayloadSize {
    /// Smallest payload in bytes.
    pub min: usize,
    /// Largest payload in bytes (equal to `min` for a fixed size).
    pub max: usize,
}

pub use sockpool::config::parse_size;

/// Parses an on/off setting, spelled the same for every flag and `tune --vary` key: `on`/`off` (also
/// `true`/`false`, `yes`/`no`, `1`/`0`).
pub fn parse_switch(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{s:?}: expected on or off")),
    }
}

impl PayloadSize {
    /// Parses `SIZE` or `MIN..MAX`.
    pub fn parse(s: &str) -> Result<PayloadSize, ConfigError> {
        let err = |e: String| bad(format!("--payload: {e}"));
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (
                parse_size(a).map_err(err)?,
                parse_size(b.trim_start_matches('=')).map_err(err)?,
            ),
            None => {
                let n = parse_size(s).map_err(err)?;
                (n, n)
            }
        };
        if min > max {
            return Err(bad(format!("--payload {s:?}: MIN is larger than MAX")));
        }
        Ok(PayloadSize { min, max })
    }
}

/// How requests are paced.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Load {
    /// Closed loop: every connection × pipeline slot sends when its previous reply arrives.
    Closed,
    /// Open loop at a fixed rate (requests per second).
    Open {
        /// Requests per second.
        rate: f64,
    },
    /// Open-loop staircase.
    Ramp {
        /// First step's rate (requests per second).
        from: f64,
        /// Last step's rate (requests per second).
        to: f64,
        /// Number of steps (at least 2).
        steps: u32,
        /// Length of each step.
        #[serde(with = "duration_secs")]
        step: Duration,
    },
}

impl Load {
    /// The rate of step `i` of a ramp (or the fixed rate; `None` when closed).
    pub fn rate_at_step(&self, i: u32) -> Option<f64> {
        match *self {
            Load::Closed => None,
            Load::Open { rate } => Some(rate),
            Load::Ramp {
                from, to, steps, ..
            } => {
                let i = i.min(steps - 1);
                Some(from + (to - from) * f64::from(i) / f64::from(steps - 1))
            }
        }
    }
}

/// Refuses a rate outside [`defaults::MIN_RATE`]..=[`defaults::MAX_RATE`] requests per second (`what` names the
/// flag).
fn check_rate(what: &str, r: f64) -> Result<(), ConfigError> {
    if r.is_finite() && (defaults::MIN_RATE..=defaults::MAX_RATE).contains(&r) {
        return Ok(());
    }
    Err(bad(format!(
        "{what} {r}: requests per second from {} to {} (1e9: one a nanosecond)",
        defaults::MIN_RATE,
        defaults::MAX_RATE
    )))
}

/// Parses the ramp spec `A..B:STEPS:DURATION`.
pub fn parse_ramp(s: &str) -> Result<Load, ConfigError> {
    let shape = || {
        bad(format!(
            "--ramp {s:?}: expected A..B:STEPS:DURATION, e.g. 1000..5000:5:10s"
        ))
    };
    let mut parts = s.splitn(3, ':');
    let range = parts.next().ok_or_else(shape)?;
    let steps = parts.next().ok_or_else(shape)?;
    let dur = parts.next().ok_or_else(shape)?;
    let (a, b) = range.split_once("..").ok_or_else(shape)?;
    let from: f64 = a.trim().parse().map_err(|_| shape())?;
    let to: f64 = b.trim().parse().map_err(|_| shape())?;
    let steps: u32 = steps.trim().parse().map_err(|_| shape())?;
    let step = humantime::parse_duration(dur.trim())
        .map_err(|e| bad(format!("--ramp {s:?}: duration: {e}")))?;
    if !(from.is_finite() && to.is_finite() && from > 0.0 && to > 0.0) {
        return Err(bad(format!("--ramp {s:?}: rates must be positive")));
    }
    check_rate(&format!("--ramp {s:?}:"), from)?;
    check_rate(&format!("--ramp {s:?}:"), to)?;
    if steps < 2 {
        return Err(bad(format!("--ramp {s:?}: at least 2 steps")));
    }
    if step < Duration::from_secs(1) || step.subsec_nanos() != 0 {
        return Err(bad(format!(
            "--ramp {s:?}: each step lasts a whole number of seconds (at least 1s)"
        )));
    }
    Ok(Load::Ramp {
        from,
        to,
        steps,
        step,
    })
}

/// When the measured run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// After this long (measured part only).
    #[serde(with = "duration_secs")]
    Duration(Duration),
    /// After this many measured requests have completed.
    Requests(u64),
}

/// The framed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FramedOp {
    /// ECHO: the reply carries the payload back.
    Echo,
    /// SINK: upload the payload, empty reply.
    Sink,
    /// SOURCE: empty request, the reply carries `payload` bytes.
    Source,
    /// SLEEP: the server waits, then echoes.
    Sleep,
}

/// What each request is, per protocol.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum RequestSpec {
    /// Framed RPC.
    Framed {
        /// The operation.
        op: FramedOp,
        /// `--op sleep`: the service time asked of the server.
        #[serde(with = "duration_secs")]
        sleep: Duration,
    },
    /// Echo bytes.
    Echo,
    /// Lines.
    Line {
        /// `--command`: the line to send (a template); `None` sends the payload.
        command: Option<Template>,
        /// Lines per reply (`--reply-lines`). Default: 1.
        reply_lines: usize,
    },
    /// HTTP request.
    Http {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body template (`{payload}` expands).
        body: Template,
    },
    /// RESP command template.
    Resp {
        /// The command as written, e.g. `SET key:{rand:100000} {payload}`.
        command: String,
        /// Its arguments, each a template (split as redis-cli splits).
        #[serde(skip)]
        args: Vec<Template>,
    },
    /// UDP datagram.
    Udp,
}

/// Socket options handed to the SDK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Socket {
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// SO_SNDBUF bytes; `None` = OS default.
    pub send_buffer: Option<usize>,
    /// SO_RCVBUF bytes; `None` = OS default.
    pub recv_buffer: Option<usize>,
    /// Keepalive idle time; `None` = off.
    #[serde(with = "opt_duration_secs")]
    pub keepalive: Option<Duration>,
}

/// TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tls {
    /// CA bundle to trust.
    pub cacert: Option<PathBuf>,
    /// Accept any certificate.
    pub insecure: bool,
    /// Client certificate chain and key (mutual TLS).
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// Where the JSON report goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonOut {
    /// Standard output.
    Stdout,
    /// A file.
    File(PathBuf),
}

/// The validated configuration of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// The target; `None` = start the embedded reference server.
    pub target: Option<Target>,
    /// The protocol.
    pub protocol: Protocol,
    /// Connections. Default: 16.
    pub connections: usize,
    /// Pipeline depth. Default: 1.
    pub pipeline: usize,
    /// Worker threads. Default: 1.
    pub threads: usize,
    /// When to stop. Default: after 10 s.
    pub stop: Stop,
    /// Warm-up excluded from the results. Default: 0.
    #[serde(with = "duration_secs")]
    pub warmup: Duration,
    /// Payload size. Default: 64 bytes.
    pub payload: PayloadSize,
    /// Per-request timeout. Default: 5 s.
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
    /// Connect timeout. Default: 2 s.
    #[serde(with = "duration_secs")]
    pub connect_timeout: Duration,
    /// Socket options.
    pub socket: Socket,
    /// The most one reply may hold, bytes (`--max-reply`). Default: 1 GiB.
    pub max_reply: usize,
    /// TLS, when the target speaks it.
    pub tls: Option<Tls>,
    /// Pacing.
    pub load: Load,
    /// The request per protocol.
    pub request: RequestSpec,
    /// How every reply is checked (`--expect`, `--expect-status`).
    pub check: Check,
    /// `--fail-on` thresholds, with the default `errors>0` unless an errors threshold was given.
    pub fail_on: Vec<Threshold>,
    /// `--json`.
    pub json: Option<JsonOut>,
    /// `--hgrm`.
    pub hgrm: Option<PathBuf>,
    /// `--hlog`.
    pub hlog: Option<PathBuf>,
    /// `--quiet`.
    pub quiet: bool,
    /// `--agents`/`--agent-index`: this agent's share of a run shared by several (`None`: the whole run).
    pub agent: Option<crate::agents::AgentShare>,
    /// `--start-at`: when the load (warm-up first) begins, serialized as Unix milliseconds.
    #[serde(serialize_with = "crate::agents::opt_unix_ms")]
    pub start_at: Option<std::time::SystemTime>,
    /// `--bind`: the local address connections are opened from.
    pub bind: Option<std::net::IpAddr>,
    /// The flags this configuration was built from (an agent's report carries them for `merge`).
    #[serde(skip)]
    pub args: RunArgs,
    /// The SDK client configuration a `tune` cell is ([`crate::tune::CellConfig::sdk_config`]). When set, every
    /// request, the closed loop's included, goes through a pooled `sockpool::Client` built from it (each worker's
    /// pool holding its share of the connections), so that its pool, buffers, retry policy and connection per
    /// request are what is measured; `run` leaves it unset (and the report leaves it out). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<sockpool::ClientConfig>,
}

fn dur(flag: &str, v: &Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s.trim())
            .map_err(|e| bad(format!("--{flag} {s:?}: {e} (e.g. 500ms, 10s, 1m)"))),
    }
}

/// `--keepalive`, refused where the OS would refuse every connect (TCP_KEEPIDLE: whole seconds from 1 to
/// [`sockpool::config::MAX_KEEPALIVE`]): `0s` and `500ms` ran with every request failing on EINVAL.
fn keepalive(d: Duration) -> Result<Duration, ConfigError> {
    let max = sockpool::config::MAX_KEEPALIVE;
    if d.as_secs() < 1 || d > max {
        return Err(bad(format!(
            "--keepalive {}: from 1s to {}s (the OS takes whole seconds)",
            humantime::format_duration(d),
            max.as_secs()
        )));
    }
    Ok(d)
}

/// A bound of whole days as `--help` states it (`365 days`, `1 day`): humantime would say `11months 30days …`.
pub(crate) fn days(d: Duration) -> String {
    let n = d.as_secs() / 86_400;
    format!("{n} day{}", if n == 1 { "" } else { "s" })
}

/// `d`, refused when above [`defaults::MAX_WAIT`] (a day: no warm-up or timeout is longer, and `1year` ran
/// forever).
fn at_most(flag: &str, d: Duration) -> Result<Duration, ConfigError> {
    if d > defaults::MAX_WAIT {
        return Err(bad(format!(
            "--{flag} {}: at most {}",
            humantime::format_duration(d),
            crate::config::days(defaults::MAX_WAIT)
        )));
    }
    Ok(d)
}

/// `--max-reply` as given (`4KiB`), refused where the SDK would refuse the client
/// ([`sockpool::config::MAX_REPLY_LIMIT`]): 0 failed every request, and above 1 TiB it bounds nothing.
pub(crate) fn max_reply(given: &str) -> Result<usize, ConfigError> {
    let n = parse_size(given).map_err(|e| bad(format!("--max-reply: {e}")))?;
    let max = sockpool::config::MAX_REPLY_LIMIT;
    if n == 0 || n > max {
        return Err(bad(format!(
            "--max-reply {}: from 1 byte to 1 TiB ({max} bytes), the most one reply may hold",
            given.trim()
        )));
    }
    Ok(n)
}

fn positive(flag: &str, v: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match v {
        Some(0) => Err(bad(format!("--{flag} must be at least 1"))),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

impl Config {
    /// Validates the raw flags once. Bad or conflicting flags give one message naming them.
    pub fn from_args(a: &RunArgs) -> Result<Config, ConfigError> {
        let (target, hints) = match a.target.as_deref() {
            Some(t) => {
                let (t, h) = Target::parse_url(t, a.service.tls)?;
                (Some(t), h)
            }
            None => (None, TargetHints::default()),
        };
        let protocol: Protocol = match (&a.service.protocol, hints.protocol) {
            (Some(p), None) => p.parse()?,
            (Some(p), Some(implied)) => {
                let p: Protocol = p.parse()?;
                if p != implied {
                    return Err(bad(format!(
                        "--protocol {} conflicts with the --target URL, which speaks {}",
                        p.name(),
                        implied.name()
                    )));
                }
                p
            }
            (None, Some(implied)) => implied,
            (None, None) => Protocol::Framed,
        };
        if let (Some(_), Some(_)) = (&hints.path, &a.service.path) {
            return Err(bad("--path conflicts with the path in the --target URL"));
        }
        let s = &a.service;
        let tls_flags =
            s.tls || s.cacert.is_some() || s.insecure || s.cert.is_some() || s.key.is_some();
        if target.is_none() && tls_flags {
            return Err(bad(
                "--tls/--cacert/--insecure/--cert/--key need a --target (the embedded server speaks plain TCP)",
            ));
        }
        let identity = match (&s.cert, &s.key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => {
                return Err(bad(
                    "--cert and --key go together (a client certificate and its key)",
                ))
            }
        };
        let tls = match &target {
            Some(t) if t.tls => {
                if a.service.cacert.is_some() && a.service.insecure {
                    return Err(bad(
                        "--cacert and --insecure conflict: trust a CA, or trust anything",
                    ));
                }
                if a.service.cacert.is_none() && !a.service.insecure {
                    return Err(bad(
                        "TLS needs --cacert FILE (the CA that signed the server) or --insecure",
                    ));
                }
                Some(Tls {
                    cacert: a.service.cacert.clone(),
                    insecure: a.service.insecure,
                    identity,
                })
            }
            _ => {
                if tls_flags {
                    return Err(bad(
                        "--cacert/--insecure/--cert/--key only apply with --tls or a tls:// target",
                    ));
                }
                None
            }
        };
        if protocol == Protocol::Udp {
            if tls.is_some() {
                return Err(bad("--protocol udp does not speak TLS"));
            }
            if target.as_ref().is_some_and(|t| t.unix) {
                return Err(bad("--protocol udp needs a host:port target, not unix:"));
            }
        }
        let connections = positive("connections", a.connections, defaults::CONNECTIONS)?;
        let pipeline = positive("pipeline", a.pipeline, defaults::PIPELINE)?;
        let threads = positive("threads", a.threads, defaults::THREADS)?;
        if threads > connections {
            return Err(bad(format!(
                "--threads {threads} is more than --connections {connections}: each thread needs a connection"
            )));
        }
        if protocol == Protocol::Udp && pipeline > 1 {
            return Err(bad(
                "--pipeline does not apply to udp (one datagram in flight per socket)",
            ));
        }

        let load = match (a.rate, &a.ramp) {
            (Some(_), Some(_)) => {
                return Err(bad("--rate and --ramp conflict: a ramp sets its own rates"))
            }
            (Some(r), None) => {
                check_rate("--rate", r)?;
                Load::Open { rate: r }
            }
            (None, Some(s)) => parse_ramp(s)?,
            (None, None) => Load::Closed,
        };
        let stop = match (&a.duration, a.requests) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "--duration and --requests conflict: stop after a time or a count",
                ))
            }
            (_, Some(0)) => return Err(bad("--requests must be at least 1")),
            (None, Some(n)) => Stop::Requests(n),
            (d, None) => {
                let d = dur("duration", d, defaults::DURATION)?;
                measurable(d).map_err(bad)?;
                Stop::Duration(d)
            }
        };
        if let Load::Ramp { .. } = &load {
            if a.duration.is_some() || a.requests.is_some() {
                return Err(bad(
                    "--ramp sets the run's length (STEPS × DURATION); drop --duration/--requests",
                ));
            }
        }
        let stop = match &load {
            Load::Ramp { steps, step, .. } => match step.checked_mul(*steps) {
                Some(d) if d <= defaults::MAX_DURATION => Stop::Duration(d),
                _ => {
                    return Err(bad(format!(
                        "--ramp: {steps} steps of {} is longer than {}",
                        humantime::format_duration(*step),
                        crate::config::days(defaults::MAX_DURATION)
                    )))
                }
            },
            _ => stop,
        };
        let warmup = at_most("warmup", dur("warmup", &a.warmup, defaults::WARMUP)?)?;
        let payload = match &a.payload {
            Some(s) => PayloadSize::parse(s)?,
            None => PayloadSize {
                min: defaults::PAYLOAD,
                max: defaults::PAYLOAD,
            },
        };
        // What the SDK's codec takes in one request (the frame or line limit, the request header counted).
        let max = match protocol {
            Protocol::Udp => defaults::MAX_UDP_PAYLOAD,
            Protocol::Framed => {
                sockpool::codec::framed::DEFAULT_MAX_FRAME - sockpool::codec::framed::REQUEST_HEADER
            }
            Protocol::Line => sockpool::codec::line::DEFAULT_MAX_LINE,
            _ => defaults::MAX_PAYLOAD,
        };
        if payload.max > max {
            return Err(bad(format!(
                "--payload {}: at most {max} bytes for {}",
                payload.max,
                protocol.name()
            )));
        }
        // Memory bounded by the flags, checked before anything is allocated: `-c 100 --pipeline 10000
        // --payload 1M` held 10 GB and spent its whole duration encoding.
        let in_flight = connections
            .saturating_mul(pipeline)
            .saturating_mul(payload.max);
        if in_flight > defaults::MAX_IN_FLIGHT {
            return Err(bad(format!(
                "--connections {connections} x --pipeline {pipeline} x --payload {} = {} MiB in flight: at most \
                 {} MiB (lower one of them)",
                payload.max,
                in_flight >> 20,
                defaults::MAX_IN_FLIGHT >> 20
            )));
        }
        if matches!(protocol, Protocol::Echo | Protocol::Line | Protocol::Udp) && payload.min == 0 {
            return Err(bad(format!(
                "--payload: {} needs at least 1 byte per request",
                protocol.name()
            )));
        }
        let timeout = at_most("timeout", dur("timeout", &a.timeout, defaults::TIMEOUT)?)?;
        let connect_timeout = at_most(
            "connect-timeout",
            dur(
                "connect-timeout",
                &a.connect_timeout,
                defaults::CONNECT_TIMEOUT,
            )?,
        )?;
        if timeout.is_zero() || connect_timeout.is_zero() {
            return Err(bad("--timeout and --connect-timeout must be longer than 0"));
        }
        let size = |flag: &str, v: &Option<String>| -> Result<Option<usize>, ConfigError> {
            v.as_deref()
                .map(|s| parse_size(s).map_err(|e| bad(format!("--{flag}: {e}"))))
                .transpose()
        };
        let socket = Socket {
            nodelay: match &a.nodelay {
                Some(v) => parse_switch(v).map_err(|e| bad(format!("--nodelay {e}")))?,
                None => defaults::NODELAY,
            },
            send_buffer: size("send-buffer", &a.send_buffer)?,
            recv_buffer: size("recv-buffer", &a.recv_buffer)?,
            keepalive: a
                .keepalive
                .as_ref()
                .map(|_| dur("keepalive", &a.keepalive, Duration::ZERO))
                .transpose()?
                .map(keepalive)
                .transpose()?,
        };
        let max_reply = match &a.max_reply {
            Some(given) => max_reply(given)?,
            None => defaults::MAX_REPLY,
        };

        let request = Self::request(&a.service, protocol, hints.path)?;
        let check = Self::check(&a.service, protocol)?;
        let fail_on = Threshold::with_default(
            a.fail_on
                .iter()
                .map(|e| Threshold::parse(e).map_err(|m| bad(format!("--fail-on {m}"))))
                .collect::<Result<_, _>>()?,
        );
        let json = a.json.as_ref().map(|j| {
            if j == "-" {
                JsonOut::Stdout
            } else {
                JsonOut::File(j.into())
            }
        });
        // `-` is stdout for --json only (a file named `-` was written); two reports in one file overwrite
        // each other.
        for (flag, path) in [("--hgrm", &a.hgrm), ("--hlog", &a.hlog)] {
            if path.as_ref().is_some_and(|p| p.as_os_str() == "-") {
                return Err(bad(format!(
                    "{flag} -: only --json writes to stdout; give {flag} a file"
                )));
            }
        }
        let files = [
            (
                "--json",
                a.json.as_ref().filter(|j| *j != "-").map(PathBuf::from),
            ),
            ("--hgrm", a.hgrm.clone()),
            ("--hlog", a.hlog.clone()),
        ];
        for (i, (flag, path)) in files.iter().enumerate() {
            let Some(path) = path else { continue };
            if let Some((other, _)) = files[i + 1..]
                .iter()
                .find(|(_, p)| p.as_ref() == Some(path))
            {
                return Err(bad(format!(
                    "{flag} and {other} name the same file {}: one would overwrite the other",
                    path.display()
                )));
            }
        }
        Config {
            target,
            protocol,
            connections,
            pipeline,
            threads,
            stop,
            warmup,
            payload,
            timeout,
            connect_timeout,
            socket,
            max_reply,
            tls,
            load,
            request,
            check,
            fail_on,
            json,
            hgrm: a.hgrm.clone(),
            hlog: a.hlog.clone(),
            quiet: a.quiet,
            agent: None,
            start_at: None,
            bind: None,
            args: a.clone(),
            client: None,
        }
        .split_for_agents(a)
    }

    fn split_for_agents(mut self, a: &RunArgs) -> Result<Config, ConfigError> {
        crate::agents::split(&mut self, a)?;
        Ok(self)
    }

    fn check(a: &ServiceArgs, protocol: Protocol) -> Result<Check, ConfigError> {
        if a.expect.is_some()
            && !matches!(protocol, Protocol::Line | Protocol::Resp | Protocol::Http)
        {
            return Err(bad(format!(
                "--expect applies to line, resp and http (a {} reply is checked against its request)",
                protocol.name()
            )));
        }
        if a.expect_status.is_some() && protocol != Protocol::Http {
            return Err(bad(format!(
                "--expect-status only applies to --protocol http (this run speaks {})",
                protocol.name()
            )));
        }
        Ok(Check {
            expect: a
                .expect
                .as_deref()
                .map(|e| Pattern::parse(e).map_err(|m| bad(format!("--expect {m}"))))
                .transpose()?,
            expect_status: match &a.expect_status {
                Some(s) => StatusSet::parse(s).map_err(|m| bad(format!("--expect-status {m}")))?,
                None => StatusSet::default(),
            },
            ping: match protocol {
                Protocol::Resp if a.expect.is_none() => {
                    crate::check::ping_reply(a.command.as_deref().unwrap_or(defaults::COMMAND))
                }
                _ => None,
            },
        })
    }

    fn request(
        a: &ServiceArgs,
        protocol: Protocol,
        url_path: Option<String>,
    ) -> Result<RequestSpec, ConfigError> {
        let only = |flag: &str, set: bool, proto: &str| {
            if set && protocol.name() != proto {
                Err(bad(format!(
                    "--{flag} only applies to --protocol {proto} (this run speaks {})",
                    protocol.name()
                )))
            } else {
                Ok(())
            }
        };
        only("op", a.op.is_some(), "framed")?;
        only("sleep", a.sleep.is_some(), "framed")?;
        only("method", a.method.is_some(), "http")?;
        only("path", a.path.is_some(), "http")?;
        only("header", !a.headers.is_empty(), "http")?;
        only("body", a.body.is_some(), "http")?;
        if a.command.is_some() && !matches!(protocol, Protocol::Resp | Protocol::Line) {
            return Err(bad(format!(
                "--command only applies to --protocol resp or line (this run speaks {})",
                protocol.name()
            )));
        }
        only("reply-lines", a.reply_lines.is_some(), "line")?;
        Ok(match protocol {
            Protocol::Framed => {
                let op = match a.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("echo") => FramedOp::Echo,
                    Some("sink") => FramedOp::Sink,
                    Some("source") => FramedOp::Source,
                    Some("sleep") => FramedOp::Sleep,
                    Some(o) => {
                        return Err(bad(format!(
                            "--op {o:?}: expected echo, sink, source or sleep"
                        )))
                    }
                };
                if a.sleep.is_some() && op != FramedOp::Sleep {
                    return Err(bad("--sleep only applies to --op sleep"));
                }
                let sleep = dur("sleep", &a.sleep, defaults::SLEEP)?;
                if sleep.as_micros() > u128::from(u32::MAX) {
                    return Err(bad(
                        "--sleep is too long for the framed protocol (u32 microseconds)",
                    ));
                }
                RequestSpec::Framed { op, sleep }
            }
            Protocol::Echo => RequestSpec::Echo,
            Protocol::Line => {
                let reply_lines = positive("reply-lines", a.reply_lines, 1)?;
                let command = a
                    .command
                    .as_deref()
                    .map(|c| {
                        Template::parse_with(c, Escapes::C)
                            .map_err(|e| bad(format!("--command {e}")))
                    })
                    .transpose()?;
                RequestSpec::Line {
                    command,
                    reply_lines,
                }
            }
            Protocol::Udp => RequestSpec::Udp,
            Protocol::Http => {
                let method = a
                    .method
                    .clone()
                    .unwrap_or_else(|| defaults::METHOD.into())
                    .to_ascii_uppercase();
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(bad(format!("--method {method:?}: not an HTTP method")));
                }
                let path = a
                    .path
                    .clone()
                    .or(url_path)
                    .unwrap_or_else(|| defaults::PATH.into());
                if !path.starts_with('/')
                    || path
                        .bytes()
                        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
                {
                    return Err(bad(format!(
                        "--path {path:?}: must start with / and hold no spaces"
                    )));
                }
                let mut headers = Vec::new();
                for h in &a.headers {
                    let (n, v) = h
                        .split_once(':')
                        .ok_or_else(|| bad(format!("--header {h:?}: expected 'Name: value'")))?;
                    let n = n.trim();
                    if n.is_empty() || n.bytes().any(|b| !(b.is_ascii_graphic()) || b == b':') {
                        return Err(bad(format!("--header {h:?}: bad header name")));
                    }
                    if v.bytes().any(|b| b == b'\r' || b == b'\n') {
                        return Err(bad(format!("--header {h:?}: newline in value")));
                    }
                    headers.push((n.to_string(), v.trim().to_string()));
                }
                let body = Template::parse(a.body.as_deref().unwrap_or_default())
                    .map_err(|e| bad(format!("--body {e}")))?;
                RequestSpec::Http {
                    method,
                    path,
                    headers,
                    body,
                }
            }
            Protocol::Resp => {
                let command = a
                    .command
                    .clone()
                    .unwrap_or_else(|| defaults::COMMAND.into());
                let args =
                    Template::parse_command(&command).map_err(|e| bad(format!("--command {e}")))?;
                refuse_push_command(&args)?;
                RequestSpec::Resp { command, args }
            }
        })
    }

    /// The embedded-benchmark configuration for `run` without `--target`: short unless told otherwise.
    pub fn embedded_defaults(a: &RunArgs) -> RunArgs {
        let mut a = a.clone();
        if a.duration.is_none() && a.requests.is_none() && a.ramp.is_none() {
            a.duration = Some(humantime::format_duration(defaults::EMBEDDED_DURATION).to_string());
        }
        if a.warmup.is_none() {
            a.warmup = Some(humantime::format_duration(defaults::EMBEDDED_WARMUP).to_string());
        }
        a
    }

    /// With `--op sleep` not below `--timeout`, or a blocking RESP command (`BLPOP k 0`) whose own timeout is
    /// not, why requests will time out: said at start-up and, in place of a protocol mismatch, when no reply
    /// came. Not refused: timing out on purpose is how a user checks how timeouts are counted (the project's
    /// own tests do), and a BLPOP that finds an item answers at once.
    pub fn times_out_by_design(&self) -> Option<String> {
        let timeout = humantime::format_duration(self.timeout);
        match &self.request {
            RequestSpec::Framed {
                op: FramedOp::Sleep,
                sleep,
            } if *sleep >= self.timeout => Some(format!(
                "--sleep {} is not below --timeout {timeout}: every request times out by design (lower --sleep \
                 or raise --timeout to measure replies)",
                humantime::format_duration(*sleep),
            )),
            RequestSpec::Resp { args, .. } => {
                let sample = sample_command(args);
                let blocks = sockpool::redis::blocking_command(&sample).filter(|b| *b >= self.timeout)?;
                let name = String::from_utf8_lossy(&sample[0]).to_uppercase();
                let up_to = if blocks == Duration::MAX {
                    "without limit".to_string()
                } else {
                    format!("up to {}", humantime::format_duration(blocks))
                };
                Some(format!(
                    "--command {name} blocks {up_to} when it finds nothing, not below --timeout {timeout}: such a \
                     request times out by design (give the command a timeout below --timeout, or fill its keys)"
                ))
            }
            _ => None,
        }
    }

    /// The measured duration when the run stops on time.
    pub fn duration(&self) -> Option<Duration> {
        match self.stop {
            Stop::Duration(d) => Some(d),
            Stop::Requests(_) => None,
        }
    }
}

/// A command not answered by one reply (`SUBSCRIBE`, `MONITOR`, `CLIENT REPLY OFF` …: the SDK refuses to send
/// it on a request/reply connection) is bad usage, refused before anything connects: sent, every request
/// failed, each on a new connection, and the run ended blaming the target (exit 3) after flooding it with
/// connections.
/// One expansion of a RESP command's templates, to look at its name and options.
fn sample_command(args: &[Template]) -> Vec<bytes::Bytes> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    args.iter()
        .map(|t| t.expand(&mut rng, &bytes::Bytes::new(), 0))
        .collect()
}

fn refuse_push_command(args: &[Template]) -> Result<(), ConfigError> {
    let sample = sample_command(args);
    match sockpool::redis::push_command(&sample) {
        Some(name) => Err(bad(format!(
            "--command {name} is not answered by one reply (pub/sub, MONITOR, CLIENT REPLY OFF|SKIP): a \
             request/reply load cannot run it; benchmark PUBLISH or the commands around it instead"
        ))),
        None => Ok(()),
    }
}

/// Serde helper: a `Duration` as fractional seconds.
pub mod duration_secs {
    use std::time::Duration;
    /// Serializes as seconds.
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// Serde helper: an optional `Duration` as fractional seconds or null.
pub mod opt_duration_secs {
    use std::time::Duration;
    /// Serializes as seconds or null.
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut RunArgs)) -> RunArgs {
        let mut a = RunArgs {
            target: Some("127.0.0.1:7000".into()),
            ..RunArgs::default()
        };
        f(&mut a);
        a
    }

    fn err(a: RunArgs) -> String {
        Config::from_args(&a).unwrap_err().0
    }

    /// Issue 32 item 4: `--op sleep --sleep 1h` with the default 5 s timeout ran, every request timed out and the
    /// run blamed the protocol (now it names the sleep); `--duration 1000000years`, `--warmup 1year` and `--ramp …:1000000years` ran
    /// forever (or overflowed). Each is refused at start-up, naming the bound.
    #[test]
    fn values_that_make_no_sense_are_refused_with_their_bound() {
        let sleep = |s: &str| {
            Config::from_args(&args(|a| {
                a.service.op = Some("sleep".into());
                a.service.sleep = Some(s.into());
            }))
            .unwrap()
            .times_out_by_design()
        };
        let said = sleep("1h").expect("named");
        assert!(
            said.contains("--sleep 1h is not below --timeout 5s"),
            "{said}"
        );
        assert!(sleep("5s").is_some());
        assert_eq!(sleep("2s"), None, "a sleep below the timeout");
        // `BLPOP k 0 --timeout 500ms` against Redis blamed the protocol ("protocol mismatch? it took the
        // connections but sent no resp reply in time"): the command blocks by design.
        let resp = |command: &str, timeout: &str| {
            Config::from_args(&args(|a| {
                a.service.protocol = Some("resp".into());
                a.service.command = Some(command.into());
                a.timeout = Some(timeout.into());
            }))
            .unwrap()
            .times_out_by_design()
        };
        let said = resp("BLPOP k 0", "500ms").expect("named");
        assert!(
            said.contains("--command BLPOP blocks without limit"),
            "{said}"
        );
        assert!(resp("brpop k 2", "1s").unwrap().contains("up to 2s"));
        assert_eq!(resp("BLPOP k 0.1", "1s"), None, "its own timeout is below");
        assert_eq!(resp("GET k", "1ms"), None);
        let e = err(args(|a| a.duration = Some("1000000years".into())));
        assert!(
            e.contains("--duration") && e.contains("at most 365 days"),
            "{e}"
        );
        Config::from_args(&args(|a| a.duration = Some("365days".into())))
            .expect("the bound itself");
        for flag in ["warmup", "timeout", "connect-timeout"] {
            let e = err(args(|a| {
                let v = Some("1year".into());
                match flag {
                    "warmup" => a.warmup = v,
                    "timeout" => a.timeout = v,
                    _ => a.connect_timeout = v,
                }
            }));
            assert!(
                e.contains(&format!("--{flag} 1year")) && e.contains("at most 1 day"),
                "{e}"
            );
        }
        let e = err(args(|a| a.ramp = Some("1..2:2:1000000years".into())));
        assert!(e.contains("longer than 365 days"), "{e}");
        let e = err(args(|a| {
            a.ramp = Some("1..2:4294967295:18446744073709551615s".into())
        }));
        assert!(e.contains("--ramp"), "no overflow: {e}");
    }

    #[test]
    fn defaults_come_from_one_place() {
        let c = Config::from_args(&args(|_| {})).unwrap();
        assert_eq!(c.connections, defaults::CONNECTIONS);
        assert_eq!(c.pipeline, defaults::PIPELINE);
        assert_eq!(c.stop, Stop::Duration(defaults::DURATION));
        assert_eq!(
            c.payload,
            PayloadSize {
                min: defaults::PAYLOAD,
                max: defaults::PAYLOAD
            }
        );
        assert_eq!(c.load, Load::Closed);
        assert_eq!(c.protocol, Protocol::Framed);
    }

    #[test]
    fn targets_parse_in_every_form() {
        let t = Target::parse("[::1]:7000", false).unwrap();
        assert_eq!(t.endpoint, "[::1]:7000");
        let t = Target::parse("tls://localhost:443", false).unwrap();
        assert!(t.tls);
        assert_eq!(t.address(), "localhost:443");
        assert!(Target::parse("unix:/tmp/x.sock", false).unwrap().unix);
        // TLS over a Unix socket, asked either way: one clear refusal, never plaintext.
        for (s, flag) in [
            ("unix:/tmp/x.sock", true),
            ("tls://unix:/tmp/x.sock", false),
        ] {
            let e = Target::parse(s, flag).unwrap_err().to_string();
            assert!(
                e.contains("TLS over a Unix socket is not supported"),
                "{s} --tls={flag}: {e}"
            );
            assert!(
                e.contains(&format!("{s:?}")),
                "names the target as given: {e}"
            );
        }
        assert!(Target::parse("localhost:443", true)
            .unwrap()
            .endpoint
            .starts_with("tls://"));
        for bad in ["localhost", "::1:7000", "h:0", "h:99999", "unix:", ":80"] {
            assert!(Target::parse(bad, false).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn url_targets_set_the_protocol_or_say_why_not() {
        let c = Config::from_args(&args(|a| a.target = Some("redis://127.0.0.1".into()))).unwrap();
        assert_eq!(c.protocol, Protocol::Resp);
        assert_eq!(c.target.unwrap().endpoint, "127.0.0.1:6379");
        let c = Config::from_args(&args(|a| a.target = Some("http://[::1]:8080/a/b?c".into())))
            .unwrap();
        assert_eq!(c.protocol, Protocol::Http);
        assert_eq!(c.target.as_ref().unwrap().endpoint, "[::1]:8080");
        assert!(matches!(c.request, RequestSpec::Http { ref path, .. } if path == "/a/b?c"));
        let c = Config::from_args(&args(|a| {
            a.target = Some("https://localhost".into());
            a.service.insecure = true;
        }))
        .unwrap();
        assert_eq!(c.target.unwrap().endpoint, "tls://localhost:443");
        for (t, says) in [
            ("redis://h:1/2", "database"),
            ("ftp://h:21", "unknown scheme"),
            ("redis://user:pw@h:1", "passwords"),
            ("http://", "host is missing"),
        ] {
            let e = err(args(|a| a.target = Some(t.into())));
            assert!(e.contains(says), "{t}: {e}");
            assert!(!e.contains("IPv6"), "{t}: {e}");
        }
        assert!(err(args(|a| {
            a.target = Some("redis://h:1".into());
            a.service.protocol = Some("http".into());
        }))
        .contains("conflicts"));
        assert!(err(args(|a| {
            a.target = Some("http://h:1/x".into());
            a.service.path = Some("/y".into());
        }))
        .contains("--path"));
    }

    #[test]
    fn nodelay_is_on_or_off_like_everywhere_else() {
        for (v, want) in [("on", true), ("off", false), ("true", true), ("0", false)] {
            let c = Config::from_args(&args(|a| a.nodelay = Some(v.into()))).unwrap();
            assert_eq!(c.socket.nodelay, want, "{v}");
        }
        assert!(err(args(|a| a.nodelay = Some("maybe".into()))).contains("on or off"));
    }

    #[test]
    fn sizes_and_ranges() {
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1 GB").unwrap(), 1 << 30);
        assert_eq!(
            PayloadSize::parse("16..1k").unwrap(),
            PayloadSize { min: 16, max: 1024 }
        );
        assert!(PayloadSize::parse("10..5").is_err());
        assert!(parse_size("12parsecs").is_err());
    }

    #[test]
    fn conflicting_flags_get_one_clear_message() {
        assert!(err(args(|a| {
            a.rate = Some(10.0);
            a.ramp = Some("1..2:2:1s".into())
        }))
        .contains("--rate and --ramp"));
        assert!(err(args(|a| {
            a.duration = Some("1s".into());
            a.requests = Some(5)
        }))
        .contains("--duration and --requests"));
        assert!(err(args(|a| a.service.command = Some("PING".into())))
            .contains("--command only applies to --protocol resp"));
        assert!(err(args(|a| a.service.tls = true)).contains("--cacert"));
        assert!(err(args(|a| a.connections = Some(0))).contains("--connections"));
        for k in ["0s", "500ms", "10h"] {
            assert!(err(args(|a| a.keepalive = Some(k.into()))).contains("--keepalive"));
        }
        assert!(err(args(|a| a.threads = Some(32))).contains("--threads"));
        assert!(err(args(|a| a.rate = Some(-1.0))).contains("--rate"));
        assert!(err(args(|a| a.hgrm = Some("-".into()))).contains("only --json writes to stdout"));
        assert!(err(args(|a| {
            a.json = Some("r.out".into());
            a.hlog = Some("r.out".into())
        }))
        .contains("--json and --hlog name the same file"));
        // Rates the schedule cannot hold: 1e19/s ran for ever and wrapped the request count.
        for r in [1e19, 1e300, 1e-300] {
            assert!(err(args(|a| a.rate = Some(r))).contains("from 0.001 to 1000000000"));
        }
        assert!(Config::from_args(&args(|a| a.rate = Some(1e9))).is_ok());
        assert!(err(args(|a| a.ramp = Some("1..1e30:2:1s".into()))).contains("--ramp"));
        // The largest payload is what the codec takes in one request, its header counted.
        let framed =
            sockpool::codec::framed::DEFAULT_MAX_FRAME - sockpool::codec::framed::REQUEST_HEADER;
        assert!(Config::from_args(&args(|a| a.payload = Some(framed.to_string()))).is_ok());
        assert!(err(args(|a| a.payload = Some((framed + 1).to_string())))
            .contains(&format!("at most {framed} bytes for framed")));
        assert!(err(args(|a| {
            a.service.protocol = Some("line".into());
            a.payload = Some("65537".into())
        }))
        .contains("at most 65536 bytes for line"));
        assert!(err(args(|a| a.duration = Some("ten".into()))).contains("--duration"));
        assert!(err(args(|a| {
            a.service.protocol = Some("udp".into());
            a.pipeline = Some(4)
        }))
        .contains("--pipeline"));
        assert!(err(args(|a| a.service.protocol = Some("smtp".into()))).contains("--protocol"));
        assert!(err(args(|a| {
            a.connections = Some(100);
            a.pipeline = Some(10_000);
            a.payload = Some("1K..1M".into())
        }))
        .contains("in flight: at most 1024 MiB"));
        // 1 GiB exactly is allowed.
        assert!(Config::from_args(&args(|a| {
            a.connections = Some(64);
            a.pipeline = Some(16);
            a.payload = Some("1M".into())
        }))
        .is_ok());
    }

    #[test]
    fn ramp_is_a_staircase_that_sets_the_length() {
        let c = Config::from_args(&args(|a| a.ramp = Some("100..500:5:2s".into()))).unwrap();
        assert_eq!(c.stop, Stop::Duration(Duration::from_secs(10)));
        assert_eq!(c.load.rate_at_step(0), Some(100.0));
        assert_eq!(c.load.rate_at_step(2), Some(300.0));
        assert_eq!(c.load.rate_at_step(4), Some(500.0));
        assert!(parse_ramp("100..500:1:2s").is_err());
        assert!(parse_ramp("100..500:3:1500ms").is_err());
        assert!(parse_ramp("100-500:3:1s").is_err());
    }

    #[test]
    fn http_flags_are_checked() {
        let c = Config::from_args(&args(|a| {
            a.service.protocol = Some("http".into());
            a.service.method = Some("post".into());
            a.service.headers = vec!["X-Test: 1".into()];
        }))
        .unwrap();
        match c.request {
            RequestSpec::Http {
                method, headers, ..
            } => {
                assert_eq!(method, "POST");
                assert_eq!(headers, vec![("X-Test".to_string(), "1".to_string())]);
            }
            other => panic!("{other:?}"),
        }
        assert!(err(args(|a| {
            a.service.protocol = Some("http".into());
            a.service.headers = vec!["nocolon".into()]
        }))
        .contains("--header"));
    }
}
