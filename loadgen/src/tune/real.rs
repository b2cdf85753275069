//! The real [`CellRunner`]: each cell is one `run` — the same runner, driver, SDK transport, checks and error
//! kinds ([`crate::transport::drive`]) — with the cell's SDK client configuration
//! ([`CellConfig::sdk_config`]): every request goes through the pooled `sockpool::Client` a service embedding
//! those settings would have. The target, protocol, TLS and request are `run`'s flags
//! ([`crate::args::ServiceArgs`]), so a tune drives whatever `run` drives: framed, echo, line, http, resp and
//! udp over TCP, TLS or Unix sockets.
//!
//! Without a target, each cell gets a fresh embedded reference server speaking the protocol on a free
//! loopback port, built with the cell's server model and workers, and shut down after the cell.

use std::net::SocketAddr;

use super::{CellConfig, CellResult, CellRunner, TuneError};
use crate::args::{RunArgs, ServiceArgs};
use crate::config::{Config, Protocol};
use crate::recorder::{replies, ErrorKind};
use crate::runner::Signals;
use tokio_util::sync::CancellationToken;

/// Runs cells for real.
#[derive(Debug, Clone)]
pub struct LoadRunner {
    /// The external target as `run --target` takes it, or `None` for the embedded server.
    pub target: Option<String>,
    /// The protocol, TLS and request flags.
    pub service: ServiceArgs,
    /// Load-generator worker threads per cell. Default: 1.
    pub threads: usize,
    /// Cancelled on Ctrl-C or SIGTERM (`tune` watches them): the cell running stops as an interrupted `run`
    /// does, and every cell after it is refused, with [`TuneError::Interrupted`]. `None`: the signals keep
    /// their default action.
    pub interrupt: Option<CancellationToken>,
}

impl LoadRunner {
    /// A runner against `target` (or the embedded server) speaking as `service` says; the flags are checked
    /// now, as `run` checks them.
    pub fn new(target: Option<String>, service: ServiceArgs) -> Result<LoadRunner, TuneError> {
        let runner = LoadRunner {
            target,
            service,
            threads: crate::config::defaults::THREADS,
            interrupt: None,
        };
        runner.config(&CellConfig::default(), runner.target.as_deref())?;
        Ok(runner)
    }

    /// The `run` flags equivalent to `cell` against `target` (`None`: the embedded server, before it binds).
    pub fn run_args(&self, cell: &CellConfig, target: Option<&str>) -> RunArgs {
        let d = |d: std::time::Duration| humantime::format_duration(d).to_string();
        RunArgs {
            target: target.map(str::to_string),
            service: self.service.clone(),
            connections: Some(cell.connections),
            pipeline: Some(cell.pipeline),
            threads: Some(self.threads.min(cell.connections).max(1)),
            duration: Some(d(cell.duration)),
            warmup: Some(d(cell.warmup)),
            payload: Some(cell.payload.to_string()),
            timeout: Some(d(cell.timeout)),
            connect_timeout: Some(d(cell.connect_timeout)),
            nodelay: Some(if cell.nodelay { "on" } else { "off" }.into()),
            send_buffer: cell.send_buffer.map(|n| n.to_string()),
            recv_buffer: cell.recv_buffer.map(|n| n.to_string()),
            max_reply: Some(cell.max_reply.to_string()),
            rate: cell.rate,
            quiet: true,
            ..RunArgs::default()
        }
    }

    /// `run`'s validated configuration of `cell` against `target`, carrying the cell's SDK client
    /// configuration. A flag `run` refuses (a payload too large for UDP, `--expect` with framed …) is refused
    /// here with `run`'s message.
    pub fn config(&self, cell: &CellConfig, target: Option<&str>) -> Result<Config, TuneError> {
        let mut config =
            Config::from_args(&self.run_args(cell, target)).map_err(|e| TuneError::Config(e.0))?;
        config.client = Some(cell.sdk_config());
        Ok(config)
    }

    /// The protocol `run` speaks with these flags.
    pub fn protocol(&self) -> Result<Protocol, TuneError> {
        Ok(self
            .config(&CellConfig::default(), self.target.as_deref())?
            .protocol)
    }

    /// What Ctrl-C does to one run: see [`LoadRunner::interrupt`].
    fn signals(&self) -> Signals {
        self.interrupt
            .clone()
            .map_or(Signals::Default, Signals::Shared)
    }

    /// [`TuneError::Interrupted`] once Ctrl-C was pressed: no cell starts after it.
    fn not_interrupted(&self) -> Result<(), TuneError> {
        match &self.interrupt {
            Some(t) if t.is_cancelled() => Err(TuneError::Interrupted),
            _ => Ok(()),
        }
    }

    fn run_against(
        &self,
        cell: &CellConfig,
        target: &str,
        embedded: bool,
    ) -> Result<CellResult, TuneError> {
        let fail = |reason: String| TuneError::Cell {
            cell: describe(cell),
            reason,
        };
        let config = self.config(cell, Some(target))?;
        let endpoint = config
            .target
            .as_ref()
            .map(|t| t.endpoint.clone())
            .unwrap_or_else(|| target.to_string());
        self.not_interrupted()?;
        let result = crate::transport::drive(&config, &endpoint, embedded, self.signals())
            .map_err(|e| fail(e.to_string()))?;
        if result.interrupted {
            return Err(TuneError::Interrupted);
        }
        Ok(CellResult {
            replies: replies(&result.total),
            errors: result.total.errors.total(),
            errors_by_kind: result.total.errors.clone(),
            // Rates over the measurement window, as `run` reports them: a request still in flight at the end
            // (one lost datagram) does not stretch the divisor by --timeout and sink the cell's rank.
            duration: result.window,
            drain_replies: result.total.drain.replies,
            health: result.health,
            corrected: result.total.corrected,
            raw: result.total.raw,
        })
    }

    /// Sends one request of `cell` to the external target (closed loop, one connection, no retry) and refuses
    /// a target that does not answer it in the protocol: a server that speaks another protocol gives protocol
    /// errors, resets or silence, and a tune of it would be a table of zeros. Nothing to check on the
    /// embedded server, which speaks the protocol by construction.
    pub fn probe(&self, cell: &CellConfig) -> Result<(), TuneError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let one = CellConfig {
            connections: 1,
            pipeline: 1,
            retries: 0,
            pool: super::PoolMode::Pooled,
            rate: None,
            ..cell.clone()
        };
        let mut args = self.run_args(&one, Some(target));
        args.duration = None;
        args.warmup = None;
        args.requests = Some(1);
        let mut config = Config::from_args(&args).map_err(|e| TuneError::Config(e.0))?;
        config.client = Some(one.sdk_config());
        let endpoint = config
            .target
            .as_ref()
            .map_or_else(|| target.clone(), |t| t.endpoint.clone());
        self.not_interrupted()?;
        let result =
            crate::transport::drive(&config, &endpoint, false, self.signals()).map_err(|e| {
                TuneError::Cell {
                    cell: "first request".into(),
                    reason: e.to_string(),
                }
            })?;
        if result.interrupted {
            return Err(TuneError::Interrupted);
        }
        let errors = &result.total.errors;
        if replies(&result.total) > 0 && errors.total() == 0 {
            return Ok(());
        }
        let kinds: Vec<String> = errors
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, _)| k.to_string())
            .collect();
        let protocol = config.protocol.name();
        // A reply that decoded but is not what --expect or --expect-status asks for is the check's failure,
        // not another protocol's reply.
        let expecting = self.service.expect.is_some() || self.service.expect_status.is_some();
        let only_unexpected = errors.get(ErrorKind::BadReply) == errors.total();
        let cause = match expecting && only_unexpected {
            true => None,
            false => errors.no_reply_cause(protocol),
        };
        let Some(why) = cause else {
            // Not the protocol: a TLS failure, a refused or reset connection, an error reply, a reply that
            // fails the check. Say what the server or the SDK said, as `run` does, rather than guess at a
            // mismatch.
            let said = result
                .total
                .details
                .examples()
                .next()
                .map_or(String::new(), |(kind, text)| {
                    format!(": e.g. {}: {text}", kind.name())
                });
            let advice = errors
                .reply_limit_hint()
                .map_or(String::new(), |h| format!(" ({h})"));
            return Err(TuneError::Target(format!(
                "the first request to {target} failed ({}){said}{advice}",
                kinds.join(", ")
            )));
        };
        Err(TuneError::Target(format!(
            "protocol mismatch? {target} does not answer --protocol {protocol}: {why} ({}); check --protocol \
             (framed echo line http resp udp) and the request flags",
            kinds.join(", ")
        )))
    }
}

fn describe(cell: &CellConfig) -> String {
    let pool = match cell.pool {
        super::PoolMode::Pooled => "pooled",
        super::PoolMode::PerRequest => "per-request",
    };
    let rate = cell
        .rate
        .map_or("closed".to_string(), |r| format!("{r:.0}"));
    format!(
        "connections={} pipeline={} pool={pool} rate={rate}",
        cell.connections, cell.pipeline
    )
}

/// The embedded reference server's configuration for `cell`, serving `protocol` on a free loopback port,
/// checked as the server checks its flags: a setting the model cannot take (`server-busy-poll` with `threads`)
/// is refused here, so a plan can refuse it before any cell runs.
pub fn server_config(
    cell: &CellConfig,
    protocol: Protocol,
) -> Result<sockpool_server::ServerConfig, String> {
    use sockpool_server::{Model, ServerConfig};
    let model = match &cell.server_model {
        Some(m) => m.parse::<Model>().map_err(|e| e.to_string())?,
        None => Model::default(),
    };
    let worker_exe = if model == Model::Processes {
        Some(server_exe().ok_or_else(|| {
            "the processes model starts sockpool-server workers; no sockpool-server binary next to this one (cargo build -p sockpool-server)".to_string()
        })?)
    } else {
        None
    };
    let spec = format!("{}=127.0.0.1:0", protocol.name());
    let sc = ServerConfig {
        worker_exe,
        listeners: vec![spec.parse().map_err(|e| format!("{spec}: {e}"))?],
        model,
        workers: cell.server_workers.unwrap_or(2),
        busy_poll: cell.server_busy_poll.unwrap_or_default(),
        ..ServerConfig::default()
    };
    sc.validate().map_err(|e| e.to_string())?;
    Ok(sc)
}

/// Starts the embedded reference server for `cell`, serving `protocol` on a free loopback port.
pub fn embedded_server(
    cell: &CellConfig,
    protocol: Protocol,
) -> Result<(sockpool_server::ServerHandle, SocketAddr), TuneError> {
    use sockpool_server::Server;
    let fail = |reason: String| TuneError::Cell {
        cell: describe(cell),
        reason: format!("embedded server: {reason}"),
    };
    let server = Server::bind(server_config(cell, protocol).map_err(fail)?)
        .map_err(|e| fail(e.to_string()))?;
    let addr = match protocol {
        Protocol::Udp => server.udp_addr(),
        p => server.tcp_addr(crate::app::proto(p)),
    }
    .ok_or_else(|| fail(format!("no {} listener", protocol.name())))?;
    Ok((server.spawn(), addr))
}

/// The `sockpool-server` binary next to the running executable (or one directory up, for test binaries in
/// `target/*/deps`).
pub fn server_exe() -> Option<std::path::PathBuf> {
    let me = std::env::current_exe().ok()?;
    let dir = me.parent()?;
    [
        dir.join("sockpool-server"),
        dir.parent()?.join("sockpool-server"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

impl CellRunner for LoadRunner {
    fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError> {
        match &self.target {
            Some(t) => self.run_against(cell, t, false),
            None => {
                self.not_interrupted()?;
                let (handle, addr) = embedded_server(cell, self.protocol()?)?;
                let r = self.run_against(cell, &addr.to_string(), true);
                let _ = handle.shutdown();
                r
            }
        }
    }
}
