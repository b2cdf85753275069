//! `sockpool-loadgen tune`: the tuning lab. It runs a matrix of configurations ("cells"), repeats each to
//! measure the noise, searches the highest open-loop rate that meets a latency SLO, and recommends settings.
//!
//! ## Layout
//!
//! - [`matrix`]: `--vary KEY=V1,V2` parsing and the cells (full matrix or one at a time around a baseline).
//! - [`stats`]: `--repeat N` → median and spread per metric; "within noise" against the baseline.
//! - [`slo`]: `--slo 'p99<2ms'` and the open-loop rate search (the latency-versus-rate curve): repeated sets,
//!   a failure confirmed before the search turns, the load generator's own lag kept apart from the server's.
//! - [`recommend`]: the settings that meet the SLO at the highest rate; what each technique changed; the
//!   `--recommend` file (the SDK's `ClientConfig` with the evidence beside it).
//! - [`table`]: the terminal table.
//! - [`html`]: one self-contained HTML report with hand-written SVG plots and the JSON embedded.
//! - [`real`]: the real [`CellRunner`]: each cell is one `run` (its runner, driver and SDK transport) of the
//!   pooled `sockpool::Client` the cell configures, over any protocol and target `run` takes; with an embedded
//!   server when there is no target.
//! - [`tour`]: `tune` with no arguments, the guided tour.
//!
//! Everything above the [`CellRunner`] trait is testable with a fake runner; only [`real`] sends load.
//!
//! ## What a cell measures
//!
//! A cell is a configuration of the SDK client a service embeds ([`CellConfig::sdk_config`], a
//! [`sockpool::ClientConfig`]): every request of a cell, closed loop and open loop alike, goes through a
//! pooled `sockpool::Client` built from it, on the SDK's connector, codecs, deadlines and error kinds. What a
//! tune recommends is therefore a client a service can load, measured as that service would run it.

pub mod html;
pub mod matrix;
pub mod real;
pub mod recommend;
pub mod slo;
pub mod stats;
pub mod table;
pub mod tour;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

use crate::recorder::{new_histogram, quantile_us, ErrorCounts};

pub use matrix::{Cell, Key, PoolMode, Vary};
pub use slo::{RatePoint, Slo, SloSearch};
pub use stats::{CellStats, Stat};

/// Every default of the tuning lab in one place.
pub mod defaults {
    use std::time::Duration;

    /// Measured length of each cell. Default: 2 s.
    pub const CELL_DURATION: Duration = Duration::from_secs(2);
    /// Warm-up before each cell. Default: 300 ms.
    pub const CELL_WARMUP: Duration = Duration::from_millis(300);
    /// Repeats per cell. Default: 1.
    pub const REPEAT: usize = 1;
    /// Largest number of cells a matrix may have. Default: 256.
    pub const MAX_CELLS: usize = 256;
    /// Largest number of rates the SLO rate search tries (a failed step's confirmation runs come on top, at
    /// most two more sets per rate). Default: 12.
    pub const SLO_MAX_STEPS: usize = 12;
    /// An open-loop step passes only if it achieved at least this share of its target rate. Default: 0.95.
    pub const SLO_MIN_ACHIEVED: f64 = 0.95;
}

/// Why a tune could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// A bad or conflicting flag.
    #[error("{0}")]
    Config(String),
    /// A cell could not run.
    #[error("cell {cell}: {reason}")]
    Cell {
        /// The cell's label.
        cell: String,
        /// Why.
        reason: String,
    },
    /// The target does not answer in the protocol the tune speaks (checked with one request first).
    #[error("{0}")]
    Target(String),
    /// Ctrl-C or SIGTERM cut the tune short. [`run`] turns it into a report of the cells measured before
    /// ([`TuneReport::interrupted`]); [`main`] prints and writes that report, then ends with this error.
    #[error("interrupted: no recommendation from a partial tune")]
    Interrupted,
    /// The SLO search found no rate that met `--slo` (exit status 1, as `run`'s crossed `--fail-on`): the table,
    /// the files and the recommendation (the closest cell) are written first. The text is the one-line reason.
    #[error("{0}")]
    SloNotMet(String),
    /// A report file could not be written.
    #[error("{path}: {source}")]
    Output {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// One configuration to run: the SDK client's settings ([`CellConfig::sdk_config`]), the load (payload,
/// rate, length) and the embedded server's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellConfig {
    /// Connections: the pool's max size. Default: [`crate::config::defaults::CONNECTIONS`].
    pub connections: usize,
    /// Connections the pool keeps open and idle. Default: the SDK's (0).
    pub min_idle: usize,
    /// Pipeline depth per connection. Default: [`crate::config::defaults::PIPELINE`].
    pub pipeline: usize,
    /// TCP_NODELAY. Default: [`crate::config::defaults::NODELAY`].
    pub nodelay: bool,
    /// SO_SNDBUF in bytes; `None` = OS default. Default: `None`.
    pub send_buffer: Option<usize>,
    /// SO_RCVBUF in bytes; `None` = OS default. Default: `None`.
    pub recv_buffer: Option<usize>,
    /// The SDK's read buffer per connection, bytes. Default: the SDK's ([`sockpool::BufferConfig`]).
    pub read_buffer: usize,
    /// The SDK's write buffer per connection, bytes. Default: the SDK's.
    pub write_buffer: usize,
    /// The SDK's write coalescing: most bytes of queued requests written in one batch. Default: the SDK's.
    pub write_batch: usize,
    /// The most one reply may hold, bytes (`--max-reply`, the SDK's `buffers.max_reply`). Default: the SDK's
    /// (1 GiB).
    pub max_reply: usize,
    /// Payload bytes per request. Default: [`crate::config::defaults::PAYLOAD`].
    pub payload: usize,
    /// Per-request timeout (also the pool wait timeout). Default: [`crate::config::defaults::TIMEOUT`].
    #[serde(with = "crate::config::duration_secs")]
    pub timeout: Duration,
    /// Connect and TLS handshake timeout. Default: [`crate::config::defaults::CONNECT_TIMEOUT`].
    #[serde(with = "crate::config::duration_secs")]
    pub connect_timeout: Duration,
    /// Retries of a failed call by the SDK's retry policy (only when safe: see [`sockpool::RetryPolicy`]).
    /// Default: 0, so every request counts once, as in `run`.
    pub retries: u32,
    /// Pooled connections or a new connection per request. Default: pooled.
    pub pool: PoolMode,
    /// Embedded server's concurrency model (`None` with an external target). Default: `async`.
    pub server_model: Option<String>,
    /// Embedded server's workers (`None` with an external target). Default: 2.
    pub server_workers: Option<usize>,
    /// Embedded server's busy polling (`None` with an external target). Default: off.
    #[serde(default, with = "crate::config::opt_duration_secs")]
    pub server_busy_poll: Option<Duration>,
    /// Open-loop rate in requests/s; `None` = closed loop. Default: `None`.
    pub rate: Option<f64>,
    /// Measured length. Default: [`defaults::CELL_DURATION`].
    #[serde(with = "crate::config::duration_secs")]
    pub duration: Duration,
    /// Warm-up. Default: [`defaults::CELL_WARMUP`].
    #[serde(with = "crate::config::duration_secs")]
    pub warmup: Duration,
}

impl Default for CellConfig {
    fn default() -> Self {
        use crate::config::defaults as d;
        let sdk = sockpool::ClientConfig::default();
        CellConfig {
            connections: d::CONNECTIONS,
            min_idle: sdk.pool.min_idle,
            pipeline: d::PIPELINE,
            nodelay: d::NODELAY,
            send_buffer: None,
            recv_buffer: None,
            read_buffer: sdk.buffers.read_capacity,
            write_buffer: sdk.buffers.write_capacity,
            write_batch: sdk.buffers.max_write_batch,
            max_reply: sdk.buffers.max_reply,
            payload: d::PAYLOAD,
            timeout: d::TIMEOUT,
            connect_timeout: d::CONNECT_TIMEOUT,
            retries: 0,
            pool: PoolMode::Pooled,
            server_model: None,
            server_workers: None,
            server_busy_poll: None,
            rate: None,
            duration: defaults::CELL_DURATION,
            warmup: defaults::CELL_WARMUP,
        }
    }
}

impl CellConfig {
    /// The SDK client configuration this cell is: what a service would load to get the client measured here
    /// (endpoints and TLS are the target's, set apart). The one mapping from cells to the SDK's settings: the
    /// real runner builds each cell's client from it, and a recommendation is written from it.
    pub fn sdk_config(&self) -> sockpool::ClientConfig {
        use sockpool::{
            BufferConfig, ClientConfig, PoolConfig, RetryPolicy, SocketOptions, Timeouts,
        };
        ClientConfig::default()
            .with_pipeline_depth(self.pipeline)
            .with_pool(
                PoolConfig::default()
                    .with_max_size(self.connections)
                    .with_min_idle(self.min_idle)
                    .with_connection_per_request(self.pool == PoolMode::PerRequest),
            )
            .with_timeouts(
                Timeouts::default()
                    .with_connect(self.connect_timeout)
                    .with_tls_handshake(self.connect_timeout)
                    .with_pool_wait(self.timeout)
                    .with_request(self.timeout)
                    .with_total(None),
            )
            .with_socket(
                SocketOptions::default()
                    .with_nodelay(self.nodelay)
                    .with_send_buffer(self.send_buffer)
                    .with_recv_buffer(self.recv_buffer),
            )
            .with_buffers(
                BufferConfig::default()
                    .with_read_capacity(self.read_buffer)
                    .with_write_capacity(self.write_buffer)
                    .with_max_write_batch(self.write_batch)
                    .with_max_reply(self.max_reply),
            )
            .with_retry(RetryPolicy::default().with_max_retries(self.retries))
    }
}

/// What one run of one cell measured.
#[derive(Debug, Clone)]
pub struct CellResult {
    /// Latency from the intended send time, nanoseconds (errors recorded at their time).
    pub corrected: Histogram<u64>,
    /// Latency from the actual send, nanoseconds.
    pub raw: Histogram<u64>,
    /// Replies received (successes and server error replies).
    pub replies: u64,
    /// Requests that failed (including server error replies).
    pub errors: u64,
    /// The failures by kind (`timeout_request`, `reset` …), as `run` counts them; they add up to `errors`.
    pub errors_by_kind: ErrorCounts,
    /// The measurement window (the run's `window_s`: to the end of its duration); rates are over it.
    pub duration: Duration,
    /// Of `replies`, those that came after the window (the drain): counted, not in the rate.
    pub drain_replies: u64,
    /// The load generator's own health during the run (send lag, CPU): see [`slo`] for how a step where it fell
    /// behind is judged.
    pub health: crate::health::Health,
}

impl CellResult {
    /// An empty result (no requests) of length `duration`.
    pub fn empty(duration: Duration) -> CellResult {
        CellResult {
            corrected: new_histogram(),
            raw: new_histogram(),
            replies: 0,
            errors: 0,
            errors_by_kind: ErrorCounts::default(),
            duration,
            drain_replies: 0,
            health: crate::health::Health::default(),
        }
    }

    /// Replies per second over the measurement window (as `run`'s `rate`: the drain left out).
    pub fn rate(&self) -> f64 {
        self.replies.saturating_sub(self.drain_replies) as f64
            / self.duration.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of corrected latency in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        quantile_us(&self.corrected, q)
    }

    /// The measured figures of this run.
    pub fn sample(&self) -> Sample {
        Sample {
            rate: self.rate(),
            p50_us: self.quantile_us(0.5),
            p99_us: self.quantile_us(0.99),
            p99_9_us: self.quantile_us(0.999),
            errors: self.errors,
            requests: self.replies + self.errors,
            duration_s: self.duration.as_secs_f64(),
        }
    }
}

/// One run's headline figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Replies per second.
    pub rate: f64,
    /// Corrected p50, µs.
    pub p50_us: f64,
    /// Corrected p99, µs.
    pub p99_us: f64,
    /// Corrected p99.9, µs.
    pub p99_9_us: f64,
    /// Errors.
    pub errors: u64,
    /// Requests finished.
    pub requests: u64,
    /// Measured seconds.
    pub duration_s: f64,
}

/// Runs one cell. The real one drives load ([`real::LoadRunner`]); tests use a fake.
pub trait CellRunner {
    /// Runs `cell` once and returns what it measured.
    fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError>;
}

/// The raw flags of `sockpool-loadgen tune`. Defaults in [`defaults`] and [`crate::config::defaults`].
#[derive(Debug, Default, Clone, Args)]
pub struct TuneArgs {
    /// Server to drive, as `run` takes it: `host:port`, `[::1]:port`, `unix:/path`, `tls://host:port` or a URL
    /// (`redis://…`, `http://…`). Without it, an embedded reference server speaking --protocol is started per
    /// cell (and `server-model`/`server-workers`/`server-busy-poll` can be varied).
    #[arg(long, short = 't')]
    pub target: Option<String>,
    /// The protocol, TLS and request flags, exactly as `run` takes them.
    #[command(flatten)]
    pub service: crate::args::ServiceArgs,
    /// `KEY=V1,V2,…` to vary (repeatable). The SDK client's settings: connections (or max-size), min-idle,
    /// pipeline, nodelay, send-buffer and recv-buffer (sizes; 0 or `default` = the OS default), read-buffer,
    /// write-buffer, write-batch (sizes), timeout, connect-timeout, retries (0-10), pool (pooled|per-request);
    /// the load: payload, rate (req/s or `closed`); the embedded server's: server-model, server-workers,
    /// server-busy-poll (0, 50us …). The first value of each key is the baseline; a key that is varied cannot
    /// also be given as --connections/--pipeline/--payload.
    #[arg(long = "vary")]
    pub vary: Vec<String>,
    /// Vary one key at a time around the baseline instead of the full matrix.
    #[arg(long)]
    pub one_at_a_time: bool,
    /// Runs per cell; the report gives the median and the spread (max − min). Default: 1.
    #[arg(long)]
    pub repeat: Option<usize>,
    /// Measured length of each cell, e.g. `2s`; at least 10ms. Default: 2s.
    #[arg(long, short = 'd')]
    pub duration: Option<String>,
    /// Warm-up before each cell, e.g. `300ms`. Default: 300ms.
    #[arg(long)]
    pub warmup: Option<String>,
    /// Latency objective, e.g. `p99<2ms` (below 2 ms) or `p99<=2ms` (at most 2 ms): searches the highest
    /// open-loop rate that meets it.
    #[arg(long)]
    pub slo: Option<String>,
    /// Baseline connections. Default: 16.
    #[arg(long, short = 'c')]
    pub connections: Option<usize>,
    /// Load-generator worker threads of every run, as `run --threads` (a cell with fewer connections runs one
    /// per connection). More threads keep an open-loop schedule at higher rates: the SLO search's
    /// "generator-limited". Default: 1.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Baseline pipeline depth. Default: 1.
    #[arg(long)]
    pub pipeline: Option<usize>,
    /// Baseline payload size (`64`, `4KiB`). Default: 64.
    #[arg(long)]
    pub payload: Option<String>,
    /// The most one reply may hold in every cell (`2GiB`), as `run --max-reply` takes it; the recommendation
    /// carries it (`buffers.max_reply`). From 1 byte to 1 TiB (`1024G`). Default: 1GiB.
    #[arg(long, value_name = "SIZE")]
    pub max_reply: Option<String>,
    /// Write the JSON document (every cell) to FILE, or to stdout with `-`.
    #[arg(long)]
    pub json: Option<String>,
    /// Write the self-contained HTML report to FILE.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write the recommended settings to FILE as the SDK's client configuration (`sockpool::ClientConfig`:
    /// JSON, or TOML when FILE ends in .toml), with what was measured under its `evidence` key. A service
    /// builds its client from it with `Client::from_config_file`.
    #[arg(long)]
    pub recommend: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The validated tune plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The baseline cell (every key at its first `--vary` value, or the flag/default).
    pub baseline: CellConfig,
    /// What varies.
    pub varies: Vec<Vary>,
    /// One key at a time instead of the full matrix.
    pub one_at_a_time: bool,
    /// Runs per cell.
    pub repeat: usize,
    /// The objective, if any.
    pub slo: Option<Slo>,
    /// Load-generator worker threads of every run (at most the cell's connections).
    pub threads: usize,
}

/// `--duration`, `--warmup` and `--repeat`, checked (shared by a tune and the tour).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Measured length of each cell.
    pub duration: Duration,
    /// Warm-up before each cell.
    pub warmup: Duration,
    /// Runs per cell.
    pub repeat: usize,
}

impl Timing {
    /// Checks the three flags, with `duration` and `warmup` as the defaults of those not given.
    pub fn from_args(
        a: &TuneArgs,
        duration: Duration,
        warmup: Duration,
    ) -> Result<Timing, TuneError> {
        let bad = |m: String| TuneError::Config(m);
        let dur = |flag: &str, v: &Option<String>, d: Duration| -> Result<Duration, TuneError> {
            match v {
                None => Ok(d),
                Some(s) => {
                    humantime::parse_duration(s).map_err(|e| bad(format!("--{flag} {s:?}: {e}")))
                }
            }
        };
        let duration = dur("duration", &a.duration, duration)?;
        // Each cell is a run: the same bounds, refused before the first cell rather than at it.
        crate::config::measurable(duration).map_err(bad)?;
        let warmup = dur("warmup", &a.warmup, warmup)?;
        let repeat = a.repeat.unwrap_or(defaults::REPEAT);
        if repeat == 0 {
            return Err(bad("--repeat must be at least 1".into()));
        }
        Ok(Timing {
            duration,
            warmup,
            repeat,
        })
    }
}

impl Plan {
    /// Validates the flags once.
    pub fn from_args(a: &TuneArgs) -> Result<Plan, TuneError> {
        let bad = |m: String| TuneError::Config(m);
        let mut base = CellConfig::default();
        let timing = Timing::from_args(a, defaults::CELL_DURATION, defaults::CELL_WARMUP)?;
        base.duration = timing.duration;
        base.warmup = timing.warmup;
        // A baseline flag for a key that is also varied would be overridden by the --vary's first value.
        for (flag, given, key) in [
            (
                "connections",
                a.connections.map(|c| c.to_string()),
                Key::Connections,
            ),
            ("pipeline", a.pipeline.map(|p| p.to_string()), Key::Pipeline),
            ("payload", a.payload.clone(), Key::Payload),
        ] {
            let (Some(v), Some(vary)) = (given, a.vary.iter().find(|s| vary_key(s) == Some(key)))
            else {
                continue;
            };
            return Err(bad(format!(
                "--{flag} {v}: {} is also varied (--vary {vary}), whose first value is the baseline; drop one",
                key.name()
            )));
        }
        if let Some(c) = a.connections {
            matrix::apply(&mut base, Key::Connections, &c.to_string())?;
        }
        if let Some(p) = a.pipeline {
            matrix::apply(&mut base, Key::Pipeline, &p.to_string())?;
        }
        if let Some(p) = &a.payload {
            matrix::apply(&mut base, Key::Payload, p)?;
        }
        if let Some(m) = &a.max_reply {
            base.max_reply = crate::config::max_reply(m).map_err(|e| bad(e.0))?;
        }
        if a.target.is_none() {
            base.server_model = Some("async".into());
            base.server_workers = Some(2);
        }
        let varies = a
            .vary
            .iter()
            .map(|v| Vary::parse(v))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, v) in varies.iter().enumerate() {
            if varies[..i].iter().any(|w| w.key == v.key) {
                return Err(bad(format!("--vary {}: given twice", v.key.name())));
            }
            if v.key.is_server() && a.target.is_some() {
                return Err(bad(format!(
                    "--vary {}: only with the embedded server (drop --target)",
                    v.key.name()
                )));
            }
            matrix::apply(&mut base, v.key, &v.values[0])?;
        }
        let repeat = timing.repeat;
        let slo = a.slo.as_deref().map(Slo::parse).transpose()?;
        let threads = a.threads.unwrap_or(crate::config::defaults::THREADS);
        if threads == 0 {
            return Err(bad("--threads must be at least 1".into()));
        }
        let plan = Plan {
            baseline: base,
            varies,
            one_at_a_time: a.one_at_a_time,
            repeat,
            slo,
            threads,
        };
        let cells = plan.cells()?;
        let n = cells.len();
        if n > defaults::MAX_CELLS {
            return Err(bad(format!(
                "{n} cells is more than {}: vary fewer keys or use --one-at-a-time",
                defaults::MAX_CELLS
            )));
        }
        if a.target.is_none() {
            // Settings the embedded server refuses together (busy polling with `threads`): say so now, not
            // after the cells before that one have run.
            // (What a model accepts does not depend on the protocol it serves.)
            for c in &cells {
                real::server_config(&c.config, crate::config::Protocol::Framed)
                    .map_err(|e| bad(format!("cell {}: {e}", c.label)))?;
            }
        }
        Ok(plan)
    }

    /// The cells this plan runs; the baseline is cell 0.
    pub fn cells(&self) -> Result<Vec<Cell>, TuneError> {
        matrix::cells(&self.baseline, &self.varies, self.one_at_a_time)
    }

    /// How long the plan takes, told before it starts (a 256-cell matrix repeated is hours): the matrix's
    /// runs and their length, and the most the SLO search can add.
    pub fn estimate(&self) -> Result<Estimate, TuneError> {
        let run = self.baseline.duration + self.baseline.warmup;
        let runs = self.cells()?.len() * self.repeat;
        // At most SLO_MAX_STEPS rates, each a set of --repeat runs, confirmed by up to two more sets.
        let slo_runs = match self.slo {
            Some(_) => defaults::SLO_MAX_STEPS * 3 * self.repeat,
            None => 0,
        };
        Ok(Estimate {
            runs,
            slo_runs,
            run,
        })
    }
}

/// How long a tune takes ([`Plan::estimate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Runs of the matrix: cells × `--repeat`.
    pub runs: usize,
    /// The most runs the SLO search can add (0 without `--slo`).
    pub slo_runs: usize,
    /// One run's length: warm-up and measured time (connecting and draining come on top).
    pub run: Duration,
}

impl Estimate {
    /// The line `tune` prints on stderr before the first cell.
    pub fn line(&self) -> String {
        let about = |runs: usize| {
            let secs = (self.run.as_secs_f64() * runs as f64).round();
            humantime::format_duration(Duration::from_secs_f64(secs)).to_string()
        };
        let mut line = format!(
            "{} runs of {} each: about {}",
            self.runs,
            humantime::format_duration(self.run),
            about(self.runs)
        );
        if self.slo_runs > 0 {
            line.push_str(&format!(
                ", then the SLO search: at most {} runs more (about {})",
                self.slo_runs,
                about(self.slo_runs)
            ));
        }
        line
    }
}

/// The key of a `--vary KEY=…` spec, if it names one.
fn vary_key(spec: &str) -> Option<Key> {
    Key::parse(spec.split_once('=')?.0).ok()
}

/// One cell's results over its repeats.
#[derive(Debug, Clone)]
pub struct CellOutcome {
    /// The cell.
    pub cell: Cell,
    /// Each repeat's figures.
    pub samples: Vec<Sample>,
    /// Median and spread per metric.
    pub stats: CellStats,
    /// Every repeat's corrected histogram merged (for the percentile spectrum).
    pub corrected: Histogram<u64>,
    /// Every repeat's failures by kind, added up.
    pub errors_by_kind: ErrorCounts,
}

/// Everything a tune measured.
#[derive(Debug, Clone)]
pub struct TuneReport {
    /// The plan.
    pub varied: Vec<Key>,
    /// Runs per cell.
    pub repeat: usize,
    /// Cells in order; the baseline is first.
    pub cells: Vec<CellOutcome>,
    /// The SLO search, when `--slo` was given.
    pub slo: Option<SloSearch>,
    /// The recommendation. Not shown or written when the tune was interrupted: it would pick among the cells
    /// that happened to finish.
    pub recommendation: recommend::Recommendation,
    /// Where Ctrl-C cut the tune short, if it did.
    pub interrupted: Option<Interruption>,
}

/// Where Ctrl-C or SIGTERM, or a cell that could not run (a server killed mid-tune), cut a tune short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interruption {
    /// Runs that finished (a cell whose repeats did not all finish is left out of the report).
    pub runs_finished: usize,
    /// Runs the matrix planned (`cells × --repeat`, without the SLO search's steps).
    pub runs_planned: usize,
    /// `matrix` or `slo search`.
    pub during: &'static str,
    /// The cell that failed, when one did (`None`: Ctrl-C or SIGTERM).
    pub failed_cell: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
}

impl Interruption {
    /// The error the tune ends with once its report is written: the failed cell's (exit 1), or the interrupt's.
    pub fn error(&self) -> TuneError {
        match (&self.failed_cell, &self.reason) {
            (Some(cell), Some(reason)) => TuneError::Cell {
                cell: cell.clone(),
                reason: reason.clone(),
            },
            _ => TuneError::Interrupted,
        }
    }
}

/// Runs every cell of `plan` `repeat` times, then the SLO search and the recommendation. `progress` is told
/// about each run as it finishes (a line on stderr in the binary). A run the runner reports as
/// [`TuneError::Interrupted`], or a cell that fails (a server killed mid-tune, [`TuneError::Cell`]), ends the
/// tune: the report holds the cells whose runs all finished and says where it stopped and why
/// ([`TuneReport::interrupted`]); with no cell finished, the error itself.
pub fn run(
    runner: &dyn CellRunner,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Result<TuneReport, TuneError> {
    let cells = plan.cells()?;
    let total = cells.len() * plan.repeat;
    let mut outcomes = Vec::with_capacity(cells.len());
    let mut done = 0;
    let mut interrupted = None;
    let stop = |done, during, failed: Option<(String, String)>| {
        let (failed_cell, reason) = failed.unzip();
        Some(Interruption {
            runs_finished: done,
            runs_planned: total,
            during,
            failed_cell,
            reason,
        })
    };
    'cells: for cell in cells {
        let mut samples = Vec::with_capacity(plan.repeat);
        let mut corrected = new_histogram();
        let mut errors_by_kind = ErrorCounts::default();
        for _ in 0..plan.repeat {
            let r = match runner.run(&cell.config) {
                Err(TuneError::Interrupted) => {
                    interrupted = stop(done, "matrix", None);
                    break 'cells;
                }
                // The runner knows the cell by its settings; the user by its label. The cells finished
                // before it are still reported.
                Err(TuneError::Cell { reason, .. }) => {
                    interrupted = stop(done, "matrix", Some((cell.label.clone(), reason)));
                    break 'cells;
                }
                r => r?,
            };
            if let Some(TuneError::Cell { cell, reason }) = unanswered(&cell, &r) {
                interrupted = stop(done, "matrix", Some((cell, reason)));
                break 'cells;
            }
            if let Some(why) = stray_replies(&r) {
                let reason = format!("{why}; tune stops rather than report its figures");
                interrupted = stop(done, "matrix", Some((cell.label.clone(), reason)));
                break 'cells;
            }
            errors_by_kind.merge(&r.errors_by_kind);
            done += 1;
            let s = r.sample();
            let errors = match r.errors {
                0 => String::new(),
                n => format!(", {n} errors ({})", kinds_of(&r)),
            };
            progress(&format!(
                "[{done}/{total}] {}: {:.0} req/s, p99 {}{errors}",
                cell.label,
                s.rate,
                table::fmt_us(s.p99_us)
            ));
            let _ = corrected.add(&r.corrected);
            samples.push(s);
        }
        let stats = CellStats::of(&samples);
        outcomes.push(CellOutcome {
            cell,
            samples,
            stats,
            corrected,
            errors_by_kind,
        });
    }
    if outcomes.is_empty() {
        return Err(interrupted.map_or(TuneError::Interrupted, |i| i.error()));
    }
    let slo = match &plan.slo {
        Some(slo) if interrupted.is_none() => {
            let best = recommend::best_closed_loop(&outcomes, slo);
            match slo::search(runner, &outcomes[best], slo, plan.repeat, progress) {
                Err(TuneError::Interrupted) => {
                    interrupted = stop(done, "slo search", None);
                    None
                }
                Err(TuneError::Cell { cell, reason }) => {
                    interrupted = stop(done, "slo search", Some((cell, reason)));
                    None
                }
                r => {
                    let mut search = r?;
                    search.cell = best;
                    Some(search)
                }
            }
        }
        _ => None,
    };
    let recommendation =
        recommend::recommend(&outcomes, &plan.varies, plan.slo.as_ref(), slo.as_ref());
    Ok(TuneReport {
        varied: plan.varies.iter().map(|v| v.key).collect(),
        repeat: plan.repeat,
        cells: outcomes,
        slo,
        recommendation,
        interrupted,
    })
}

/// A cell that got no reply at all: none finished, or every request failed without one (replies that do not
/// decode, connections refused, closed or reset, TLS failures) — a target that does not speak the protocol, or
/// one that stopped (killed mid-tune), and every figure of the tune would be a zero. Timeouts alone (and
/// requests a lagging open loop left unsent) are a measurement (a `timeout` shorter than the reply time), not
/// this.
fn unanswered(cell: &Cell, r: &CellResult) -> Option<TuneError> {
    use crate::recorder::ErrorKind as K;
    if r.replies > 0 {
        return None;
    }
    let e = &r.errors_by_kind;
    let measured = e.timeouts() + e.get(K::Unsent);
    if r.errors > 0 && measured >= r.errors {
        return None;
    }
    let kinds = kinds_of(r);
    let what = if r.errors == 0 {
        format!(
            "no request finished in {} (no reply, no error): the target stopped answering",
            humantime::format_duration(cell.config.duration)
        )
    } else if e.get(K::Protocol) + e.get(K::BadReply) > 0 {
        format!(
            "no reply could be read ({kinds}): does the target speak the protocol tune sends (--protocol and \
             the request flags)?"
        )
    } else {
        all_dropped(&kinds)
    };
    Some(TuneError::Cell {
        cell: cell.label.clone(),
        reason: format!("{what}; tune stops rather than report zeros"),
    })
}

/// The run's errors by kind, as "3 refused, 1 reset".
fn kinds_of(r: &CellResult) -> String {
    r.errors_by_kind
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a run whose every request failed on its connection (errors `kinds`) says nothing of the server's capacity.
fn all_dropped(kinds: &str) -> String {
    format!(
        "every request failed without a reply ({kinds}): the target refused or dropped the connections (did it \
         stop?)"
    )
}

/// A run in which every request failed on its connection without a reply — refused, reset or closed, a TLS
/// failure — as when the server was killed: the SLO search stops on it ([`slo`]) rather than call it the
/// server's limit and recommend what the earlier steps measured. (A run with no reply and no error, or with
/// timeouts, is a step that did not pass: a server past its capacity.)
pub(crate) fn connections_failed(r: &CellResult) -> Option<String> {
    use crate::recorder::ErrorKind as K;
    let e = &r.errors_by_kind;
    let dropped: u64 = [K::Refused, K::Reset, K::Closed, K::Tls, K::Other]
        .iter()
        .map(|k| e.get(*k))
        .sum();
    if r.replies > 0 || r.errors == 0 || dropped < r.errors {
        return None;
    }
    Some(all_dropped(&kinds_of(r)))
}

/// A run in which the server sent bytes with no request in flight (`stray`, which fails a `run` by default):
/// which request each of its replies answered is unknown (RESP and the line protocol carry no tag), so no figure
/// of the cell can be trusted, and tune stops rather than recommend from it.
pub(crate) fn stray_replies(r: &CellResult) -> Option<String> {
    match r.health.stray {
        0 => None,
        n => Some(format!(
            "the server sent bytes with no request in flight on {n} connection(s) (replies nobody asked for: \
             which request each reply answered is unknown)"
        )),
    }
}

/// The JSON document's schema name and version.
pub const SCHEMA: &str = "sockpool-loadgen-tune/1";

/// The percentile spectrum of `h` as `[x, latency_us]` points, `x = 1/(1−p)` (HdrHistogram's plotter axis).
/// Points stop before p = 1 (where x is infinite); the max is reported separately.
pub fn spectrum(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    let mut out: Vec<[f64; 2]> = Vec::new();
    if h.is_empty() {
        return out;
    }
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        if q >= 1.0 {
            break;
        }
        let x = 1.0 / (1.0 - q);
        let y = crate::recorder::us(h.highest_equivalent(v.value_iterated_to()));
        if out.last().is_some_and(|p| p[0] >= x) {
            continue;
        }
        out.push([round3(x), round3(y)]);
        if x > 1e6 {
            break;
        }
    }
    out
}

/// Rounds to 3 decimals so that JSON and SVG attributes carry the same text.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl TuneReport {
    /// The baseline cell (always the first).
    pub fn baseline(&self) -> &CellOutcome {
        &self.cells[0]
    }

    /// The JSON document: every cell with its repeats, medians, spreads, ratios and spectrum; the SLO curve;
    /// the recommendation. Schema: `docs/TUNING.md`.
    pub fn to_json(&self) -> Value {
        let base = &self.baseline().stats;
        let cells: Vec<Value> = self
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let settings: serde_json::Map<String, Value> = c
                    .cell
                    .settings
                    .iter()
                    .map(|(k, v)| (k.name().to_string(), Value::String(v.clone())))
                    .collect();
                json!({
                    "index": i,
                    "label": c.cell.label,
                    "baseline": i == 0,
                    "settings": settings,
                    "config": c.cell.config,
                    "repeats": c.samples,
                    "rate": c.stats.rate,
                    "p50_us": c.stats.p50_us,
                    "p99_us": c.stats.p99_us,
                    "p99_9_us": c.stats.p99_9_us,
                    "errors": c.stats.errors,
                    "errors_by_kind": c.errors_by_kind,
                    "ratio": c.stats.ratios(base),
                    "within_noise": c.stats.within_noise(base),
                    "spectrum": spectrum(&c.corrected),
                    "max_us": if c.corrected.is_empty() { 0.0 } else { crate::recorder::us(c.corrected.max()) },
                })
            })
            .collect();
        json!({
            "schema": SCHEMA,
            "varied": self.varied.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "repeat": self.repeat,
            "cells": cells,
            "slo": self.slo,
            "recommendation": if self.interrupted.is_none() { json!(self.recommendation) } else { Value::Null },
            "interrupted": self.interrupted,
        })
    }

    /// The text under the table: the SLO search and the recommendation, or where the tune was interrupted.
    pub fn conclusion(&self) -> String {
        match &self.interrupted {
            None => recommend::render(&self.recommendation, self.slo.as_ref()),
            Some(i) => format!(
                "{} during the {} after {} of {} runs: the table covers the cells whose runs all \
                 finished; no SLO rate and no recommendation from a partial tune (--recommend not written; an earlier one there is removed).\n",
                match (&i.failed_cell, &i.reason) {
                    (Some(cell), Some(reason)) => format!("STOPPED (cell {cell}: {reason})"),
                    _ => "INTERRUPTED".to_string(),
                },
                i.during,
                i.runs_finished,
                i.runs_planned
            ),
        }
    }
}

/// `sockpool-loadgen tune`: validates, runs (or gives the tour without `--vary`, `--target` and `--slo`),
/// prints the table and the recommendation, writes `--json` and `--html`.
pub fn main(a: &TuneArgs) -> Result<(), TuneError> {
    if tour::is_tour(a) {
        return tour::run(&tour::TourPlan::from_args(a)?);
    }
    let plan = Plan::from_args(a)?;
    // A file that cannot be written fails now, not after the search.
    let json_file = a
        .json
        .as_deref()
        .filter(|j| *j != "-")
        .map(std::path::Path::new);
    for path in [json_file, a.html.as_deref(), a.recommend.as_deref()]
        .into_iter()
        .flatten()
    {
        crate::app::check_writable(path).map_err(|source| TuneError::Output {
            path: path.display().to_string(),
            source,
        })?;
        // Until this tune writes it, a failure or a Ctrl-C removes what an earlier one left there.
        crate::outfile::expect(path);
    }
    let result = tune(a, &plan);
    // As `run` does: a tune that failed (an unreachable or mute target, a cell that could not run) or was
    // interrupted leaves no earlier tune's report or recommendation at the paths it did not write, so that a
    // script reading them after a non-zero exit does not read another run's result. Bad flags (exit 2) leave
    // them alone, as `run`'s do.
    if matches!(&result, Err(e) if !matches!(e, TuneError::Config(_))) {
        crate::outfile::discard_unwritten();
    }
    result
}

/// The tune of `plan` once its flags are checked and its outputs expected: every cell, the files.
fn tune(a: &TuneArgs, plan: &Plan) -> Result<(), TuneError> {
    let mut runner = real::LoadRunner::new(a.target.clone(), a.service.clone())?;
    runner.threads = plan.threads;
    // Ctrl-C stops the run in progress as `run` stops, and the cells measured before it are reported.
    let interrupt = tokio_util::sync::CancellationToken::new();
    let what = format!(
        "the run in progress stops (its requests in flight get up to {}); the cells finished are reported",
        humantime::format_duration(plan.baseline.timeout)
    );
    let _watch = crate::signals::watch(interrupt.clone(), None, what);
    runner.interrupt = Some(interrupt);
    // Every cell's flags are checked before the first runs, and the target must answer the protocol.
    for c in plan.cells()? {
        runner
            .config(&c.config, runner.target.as_deref())
            .map_err(|e| TuneError::Config(format!("cell {}: {e}", c.label)))?;
        // The open-file limit too, which `run` checks only when it starts: a cell the limit cannot hold
        // failed after the cells before it had run (exit 1 minutes in, rather than 2 at once).
        crate::runner::descriptors(c.config.connections, runner.target.is_none())
            .map_err(|e| TuneError::Config(format!("cell {}: {e}", c.label)))?;
        // And the SDK's own checks of the cell's client (a buffer over 1 GiB, a zero timeout), which it makes
        // only when the cell builds its client.
        c.config
            .sdk_config()
            .validate()
            .map_err(|e| TuneError::Config(format!("cell {}: {e}", c.label)))?;
    }
    runner.probe(&plan.baseline)?;
    let quiet = a.quiet;
    if !quiet {
        eprintln!("sockpool-loadgen: tune: {}", plan.estimate()?.line());
    }
    let mut progress = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let report = match run(&runner, plan, &mut progress) {
        Err(TuneError::Interrupted) => {
            eprintln!(
                "sockpool-loadgen: no cell finished all its runs before the interrupt (a cell is reported with \
                 every --repeat run or not at all): nothing to report, no file written (an earlier tune's at \
                 these paths is removed)"
            );
            return Err(TuneError::Interrupted);
        }
        r => r?,
    };
    write_outputs(&report, a.json.as_deref(), a.html.as_deref())?;
    if let Some(i) = &report.interrupted {
        return Err(i.error());
    }
    if let Some(path) = &a.recommend {
        let protocol = runner.protocol()?.name();
        // The client the recommended cell's runs used, as the runner built it (TLS flags included), not
        // a second mapping of the cell that could drift from it.
        let cell = &report.cells[report.recommendation.cell].cell.config;
        let measured =
            crate::transport::client_config(&runner.config(cell, runner.target.as_deref())?);
        recommend::write_measured(&report, a.target.as_deref(), protocol, measured, path)?;
    }
    // As `run` exits 1 on a crossed --fail-on: a CI job asking for an SLO learns that nothing met it, after the
    // table, the files and the recommendation (of the closest cell) are written.
    match report.slo.as_ref().and_then(SloSearch::not_met) {
        Some(why) => Err(TuneError::SloNotMet(why)),
        None => Ok(()),
    }
}

/// Prints the table and recommendation (to stderr when the JSON goes to stdout) and writes the files.
pub fn write_outputs(
    report: &TuneReport,
    json_out: Option<&str>,
    html_out: Option<&std::path::Path>,
) -> Result<(), TuneError> {
    let text = format!("{}\n{}", table::render(report), report.conclusion());
    let doc = report.to_json();
    if json_out == Some("-") {
        eprint!("{text}");
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        print!("{text}");
        if let Some(path) = json_out {
            crate::outfile::write(
                std::path::Path::new(path),
                serde_json::to_string_pretty(&doc).unwrap_or_default(),
            )
            .map_err(|source| TuneError::Output {
                path: path.into(),
                source,
            })?;
        }
    }
    if let Some(path) = html_out {
        crate::outfile::write(path, html::render(report)).map_err(|source| TuneError::Output {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}
