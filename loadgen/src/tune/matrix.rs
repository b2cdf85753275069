//! `--vary KEY=V1,V2,…` parsing, and the cells: the full matrix, or one key at a time around the baseline.
//!
//! The first value of each `--vary` list is the baseline value of that key; cell 0 is always the baseline.
//!
//! Every key but the embedded server's, `payload` and `rate` is a setting of the SDK client a service embeds,
//! and lands in its [`sockpool::ClientConfig`] ([`CellConfig::sdk_config`]):
//!
//! | key | `sockpool::ClientConfig` |
//! |---|---|
//! | `connections` (or `max-size`) | `pool.max_size` |
//! | `min-idle` | `pool.min_idle` |
//! | `pool` (`pooled`, `per-request`) | `pool.connection_per_request` |
//! | `pipeline` | `pipeline_depth` |
//! | `nodelay`, `send-buffer`, `recv-buffer` | `socket.nodelay`, `socket.send_buffer`, `socket.recv_buffer` |
//! | `read-buffer`, `write-buffer` | `buffers.read_capacity`, `buffers.write_capacity` |
//! | `write-batch` (write coalescing) | `buffers.max_write_batch` |
//! | `timeout` | `timeouts.request`, `timeouts.pool_wait` |
//! | `connect-timeout` | `timeouts.connect`, `timeouts.tls_handshake` |
//! | `retries` | `retry.max_retries` |

use std::time::Duration;

use serde::Serialize;

use super::{CellConfig, TuneError};
use crate::config::parse_size;

/// Pooled connections, or a new connection for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolMode {
    /// Connections are opened once and reused (the default).
    Pooled,
    /// Connect, send one request, read its reply, close.
    PerRequest,
}

/// A setting the tuning lab can vary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Key {
    /// Connections: the pool's max size.
    Connections,
    /// Connections the pool keeps open and idle.
    MinIdle,
    /// Pipeline depth.
    Pipeline,
    /// TCP_NODELAY on/off.
    Nodelay,
    /// SO_SNDBUF.
    SendBuffer,
    /// SO_RCVBUF.
    RecvBuffer,
    /// The SDK's read buffer (initial capacity).
    ReadBuffer,
    /// The SDK's write buffer (initial capacity).
    WriteBuffer,
    /// The SDK's write coalescing: most bytes of queued requests written in one batch.
    WriteBatch,
    /// Payload bytes.
    Payload,
    /// Per-request timeout.
    Timeout,
    /// Connect (and TLS handshake) timeout.
    ConnectTimeout,
    /// Retries of a failed call (the SDK's retry policy; 0 = none).
    Retries,
    /// `pooled` or `per-request`.
    Pool,
    /// Open-loop rate in requests/s, or `closed`.
    Rate,
    /// Embedded server's concurrency model.
    ServerModel,
    /// Embedded server's worker count.
    ServerWorkers,
    /// Embedded server's `--busy-poll` (0 = off).
    ServerBusyPoll,
}

/// Every key, in the order of the documentation.
pub const KEYS: [Key; 18] = [
    Key::Connections,
    Key::MinIdle,
    Key::Pipeline,
    Key::Nodelay,
    Key::SendBuffer,
    Key::RecvBuffer,
    Key::ReadBuffer,
    Key::WriteBuffer,
    Key::WriteBatch,
    Key::Payload,
    Key::Timeout,
    Key::ConnectTimeout,
    Key::Retries,
    Key::Pool,
    Key::Rate,
    Key::ServerModel,
    Key::ServerWorkers,
    Key::ServerBusyPoll,
];

impl Key {
    /// The name used by `--vary`.
    pub fn name(self) -> &'static str {
        match self {
            Key::Connections => "connections",
            Key::MinIdle => "min-idle",
            Key::Pipeline => "pipeline",
            Key::Nodelay => "nodelay",
            Key::SendBuffer => "send-buffer",
            Key::RecvBuffer => "recv-buffer",
            Key::ReadBuffer => "read-buffer",
            Key::WriteBuffer => "write-buffer",
            Key::WriteBatch => "write-batch",
            Key::Payload => "payload",
            Key::Timeout => "timeout",
            Key::ConnectTimeout => "connect-timeout",
            Key::Retries => "retries",
            Key::Pool => "pool",
            Key::Rate => "rate",
            Key::ServerModel => "server-model",
            Key::ServerWorkers => "server-workers",
            Key::ServerBusyPoll => "server-busy-poll",
        }
    }

    /// True for the embedded server's settings.
    pub fn is_server(self) -> bool {
        matches!(
            self,
            Key::ServerModel | Key::ServerWorkers | Key::ServerBusyPoll
        )
    }

    /// True for the SDK client's settings, which a recommendation file holds; false for the embedded
    /// server's and for the load (payload, rate), which a service does not set on its client.
    pub fn in_client_config(self) -> bool {
        !self.is_server() && !matches!(self, Key::Payload | Key::Rate)
    }

    /// Parses a key name.
    pub fn parse(s: &str) -> Result<Key, TuneError> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        // The pool's own name for its size.
        if s == "max-size" {
            return Ok(Key::Connections);
        }
        KEYS.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<_> = KEYS.iter().map(|k| k.name()).collect();
            TuneError::Config(format!(
                "--vary {s:?}: unknown key; expected one of {}",
                names.join(", ")
            ))
        })
    }
}

/// One `--vary`: a key and its values (the first is the baseline).
#[derive(Debug, Clone, PartialEq)]
pub struct Vary {
    /// The key.
    pub key: Key,
    /// Its values as written, each checked to parse.
    pub values: Vec<String>,
}

impl Vary {
    /// Parses `KEY=V1,V2,…`; every value is checked now, so no cell fails on a bad value later.
    pub fn parse(s: &str) -> Result<Vary, TuneError> {
        let (k, vs) = s.split_once('=').ok_or_else(|| {
            TuneError::Config(format!(
                "--vary {s:?}: expected KEY=V1,V2, e.g. pipeline=1,16"
            ))
        })?;
        let key = Key::parse(k)?;
        let values: Vec<String> = vs.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().all(String::is_empty) {
            return Err(TuneError::Config(format!("--vary {s:?}: no values")));
        }
        if values.iter().any(String::is_empty) {
            return Err(TuneError::Config(format!(
                "--vary {s:?}: an empty value (two commas in a row, or one at an end)"
            )));
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                return Err(TuneError::Config(format!("--vary {s:?}: {v} given twice")));
            }
            apply(&mut CellConfig::default(), key, v)?;
        }
        Ok(Vary { key, values })
    }
}

/// Most retries `--vary retries=…` takes (each retry is one more request on the server).
pub const MAX_RETRIES: u32 = 10;

/// A socket buffer size: `default` or `0` = the OS default (`None`), as `stream --socket-buffer` takes it.
fn os_default_or_size(value: &str) -> Result<Option<usize>, String> {
    if value.eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    Ok(Some(parse_size(value)?).filter(|n| *n > 0))
}

/// Sets `key` to `value` in `cell`.
pub fn apply(cell: &mut CellConfig, key: Key, value: &str) -> Result<(), TuneError> {
    let bad = |why: &str| TuneError::Config(format!("--vary {}={value}: {why}", key.name()));
    let count = |min: usize| -> Result<usize, TuneError> {
        match value.parse::<usize>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(bad(&format!("expected a whole number ≥ {min}"))),
        }
    };
    let size = || parse_size(value).map_err(|e| bad(&e));
    let positive_size = || match size()? {
        0 => Err(bad("must be at least 1 byte")),
        n => Ok(n),
    };
    let duration = || -> Result<Duration, TuneError> {
        let d: Duration = humantime::parse_duration(value).map_err(|e| bad(&e.to_string()))?;
        if d.is_zero() {
            return Err(bad("must be longer than 0"));
        }
        Ok(d)
    };
    match key {
        Key::Connections => cell.connections = count(1)?,
        Key::MinIdle => cell.min_idle = count(0)?,
        Key::Pipeline => cell.pipeline = count(1)?,
        Key::Nodelay => {
            cell.nodelay = crate::config::parse_switch(value).map_err(|e| bad(&e))?;
        }
        Key::SendBuffer => cell.send_buffer = os_default_or_size(value).map_err(|e| bad(&e))?,
        Key::RecvBuffer => cell.recv_buffer = os_default_or_size(value).map_err(|e| bad(&e))?,
        Key::ReadBuffer => cell.read_buffer = positive_size()?,
        Key::WriteBuffer => cell.write_buffer = positive_size()?,
        Key::WriteBatch => cell.write_batch = positive_size()?,
        Key::Payload => {
            let n = size()?;
            if n > crate::config::defaults::MAX_PAYLOAD {
                return Err(bad(&format!(
                    "larger than the load generator's payload limit ({} bytes)",
                    crate::config::defaults::MAX_PAYLOAD
                )));
            }
            cell.payload = n;
        }
        Key::Timeout => cell.timeout = duration()?,
        Key::ConnectTimeout => cell.connect_timeout = duration()?,
        Key::Retries => {
            cell.retries = match value.parse::<u32>() {
                Ok(n) if n <= MAX_RETRIES => n,
                _ => return Err(bad(&format!("expected 0 to {MAX_RETRIES} retries"))),
            }
        }
        Key::Rate => {
            cell.rate = match value.to_ascii_lowercase().as_str() {
                "closed" => None,
                v => match v.parse::<f64>() {
                    Ok(r) if r.is_finite() && r > 0.0 => Some(r),
                    _ => return Err(bad("expected requests per second (> 0) or closed")),
                },
            }
        }
        Key::Pool => {
            cell.pool = match value.to_ascii_lowercase().as_str() {
                "pooled" => PoolMode::Pooled,
                "per-request" | "per_request" => PoolMode::PerRequest,
                _ => return Err(bad("expected pooled or per-request")),
            }
        }
        Key::ServerModel => {
            value
                .parse::<sockpool_server::Model>()
                .map_err(|e| bad(&e.to_string()))?;
            cell.server_model = Some(value.to_string());
        }
        Key::ServerWorkers => cell.server_workers = Some(count(1)?),
        Key::ServerBusyPoll => {
            let d = match value {
                "0" | "off" => Duration::ZERO,
                v => humantime::parse_duration(v).map_err(|e| bad(&e.to_string()))?,
            };
            if d > sockpool_server::config::MAX_BUSY_POLL {
                return Err(bad("longer than the server's 10ms maximum"));
            }
            cell.server_busy_poll = Some(d);
        }
    }
    Ok(())
}

/// One cell: its configuration and the values of the varied keys that define it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The configuration to run.
    pub config: CellConfig,
    /// Each varied key's value in this cell, in `--vary` order.
    pub settings: Vec<(Key, String)>,
    /// In the full matrix every varied key's value, `pipeline=16 nodelay=off`; one at a time only the key
    /// that differs from the baseline, `nodelay=off`, and `baseline` for the baseline (also when nothing
    /// varies).
    pub label: String,
}

impl Cell {
    /// This cell's value of `key`, if it is varied.
    pub fn value(&self, key: Key) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn make(base: &CellConfig, settings: Vec<(Key, String)>) -> Result<Cell, TuneError> {
    let mut config = base.clone();
    for (k, v) in &settings {
        apply(&mut config, *k, v)?;
    }
    let label = if settings.is_empty() {
        "baseline".to_string()
    } else {
        settings
            .iter()
            .map(|(k, v)| format!("{}={v}", k.name()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Ok(Cell {
        config,
        settings,
        label,
    })
}

/// The cells: the full matrix (every combination, the last key varying fastest), or with `one_at_a_time`
/// the baseline followed by each key's other values with everything else at the baseline. Cell 0 is the
/// baseline either way.
pub fn cells(
    base: &CellConfig,
    varies: &[Vary],
    one_at_a_time: bool,
) -> Result<Vec<Cell>, TuneError> {
    let baseline: Vec<(Key, String)> = varies
        .iter()
        .map(|v| (v.key, v.values[0].clone()))
        .collect();
    if one_at_a_time {
        let mut first = make(base, baseline.clone())?;
        first.label = "baseline".into();
        let mut out = vec![first];
        for (i, v) in varies.iter().enumerate() {
            for value in &v.values[1..] {
                let mut s = baseline.clone();
                s[i].1 = value.clone();
                let mut cell = make(base, s)?;
                cell.label = format!("{}={value}", v.key.name());
                out.push(cell);
            }
        }
        return Ok(out);
    }
    let total: usize = varies.iter().map(|v| v.values.len()).product();
    let mut out = Vec::with_capacity(total);
    for mut n in 0..total {
        let mut s = baseline.clone();
        for (i, v) in varies.iter().enumerate().rev() {
            s[i].1 = v.values[n % v.values.len()].clone();
            n /= v.values.len();
        }
        out.push(make(base, s)?);
    }
    Ok(out)
}
