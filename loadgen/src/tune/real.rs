//! The real [`CellRunner`]: each cell is one run of the load generator's runner (its workers, schedule,
//! recorder and collector) through the framed [`WireTransport`]. Without a target, each cell gets a fresh
//! embedded reference server on a free loopback port, built with the cell's server model and workers, and
//! shut down after the cell.

use std::net::{SocketAddr, ToSocketAddrs};

use super::wire::{SockOpts, WireTransport};
use super::{CellConfig, CellResult, CellRunner, TuneError};
use crate::args::RunArgs;
use crate::config::Config;
use crate::recorder::replies;

/// Runs cells for real.
#[derive(Debug, Clone)]
pub struct LoadRunner {
    /// The external target (`host:port`), or `None` for the embedded server.
    pub target: Option<String>,
    /// Load-generator worker threads per cell. Default: 1.
    pub threads: usize,
}

impl LoadRunner {
    /// A runner against `target` (or the embedded server).
    pub fn new(target: Option<String>) -> Result<LoadRunner, TuneError> {
        if let Some(t) = &target {
            resolve(t)?;
        }
        Ok(LoadRunner {
            target,
            threads: crate::config::defaults::THREADS,
        })
    }
}

fn resolve(target: &str) -> Result<SocketAddr, TuneError> {
    if target.starts_with("unix:") || target.starts_with("tls://") {
        return Err(TuneError::Config(format!(
            "--target {target}: tune speaks plain TCP framed (host:port or [::1]:port)"
        )));
    }
    target
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| TuneError::Config(format!("--target {target:?}: not a reachable host:port")))
}

/// The `run` flags equivalent to `cell` against `target`.
pub fn run_args(cell: &CellConfig, target: &str, threads: usize) -> RunArgs {
    let d = |d: std::time::Duration| humantime::format_duration(d).to_string();
    RunArgs {
        target: Some(target.to_string()),
        protocol: Some("framed".into()),
        connections: Some(cell.connections),
        pipeline: Some(cell.pipeline),
        threads: Some(threads.min(cell.connections).max(1)),
        duration: Some(d(cell.duration)),
        warmup: Some(d(cell.warmup)),
        payload: Some(cell.payload.to_string()),
        timeout: Some(d(cell.timeout)),
        nodelay: Some(if cell.nodelay { "on" } else { "off" }.into()),
        send_buffer: cell.send_buffer.map(|n| n.to_string()),
        recv_buffer: cell.recv_buffer.map(|n| n.to_string()),
        rate: cell.rate,
        quiet: true,
        ..RunArgs::default()
    }
}

impl LoadRunner {
    fn run_against(
        &self,
        cell: &CellConfig,
        addr: SocketAddr,
        embedded: bool,
    ) -> Result<CellResult, TuneError> {
        let fail = |reason: String| TuneError::Cell {
            cell: describe(cell),
            reason,
        };
        let target = addr.to_string();
        let config =
            Config::from_args(&run_args(cell, &target, self.threads)).map_err(|e| fail(e.0))?;
        let opts = SockOpts {
            nodelay: cell.nodelay,
            send_buffer: cell.send_buffer,
            recv_buffer: cell.recv_buffer,
        };
        let pool = cell.pool;
        let (connect_timeout, timeout) = (config.connect_timeout, config.timeout);
        let result = crate::runner::run(
            &config,
            &target,
            embedded,
            crate::runner::Signals::Default,
            |_, conns| {
                Ok(WireTransport::new(
                    addr,
                    opts,
                    pool,
                    conns,
                    connect_timeout,
                    timeout,
                ))
            },
        )
        .map_err(|e| fail(e.to_string()))?;
        Ok(CellResult {
            replies: replies(&result.total),
            errors: result.total.errors.total(),
            errors_by_kind: result.total.errors.clone(),
            duration: result.elapsed,
            health: result.health,
            corrected: result.total.corrected,
            raw: result.total.raw,
        })
    }
}

fn describe(cell: &CellConfig) -> String {
    format!(
        "connections={} pipeline={} pool={:?} rate={:?}",
        cell.connections, cell.pipeline, cell.pool, cell.rate
    )
}

/// The embedded reference server's configuration for `cell` (framed on a free loopback port), checked as the
/// server checks its flags: a setting the model cannot take (`server-busy-poll` with `threads`) is refused
/// here, so a plan can refuse it before any cell runs.
pub fn server_config(cell: &CellConfig) -> Result<sockpool_server::ServerConfig, String> {
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
    let sc = ServerConfig {
        worker_exe,
        listeners: vec!["framed=127.0.0.1:0".parse().map_err(|e| format!("{e}"))?],
        model,
        workers: cell.server_workers.unwrap_or(2),
        busy_poll: cell.server_busy_poll.unwrap_or_default(),
        ..ServerConfig::default()
    };
    sc.validate().map_err(|e| e.to_string())?;
    Ok(sc)
}

/// Starts the embedded reference server for `cell` (framed on a free loopback port).
pub fn embedded_server(
    cell: &CellConfig,
) -> Result<(sockpool_server::ServerHandle, SocketAddr), TuneError> {
    use sockpool_server::{Proto, Server};
    let fail = |reason: String| TuneError::Cell {
        cell: describe(cell),
        reason: format!("embedded server: {reason}"),
    };
    let server =
        Server::bind(server_config(cell).map_err(fail)?).map_err(|e| fail(e.to_string()))?;
    let addr = server
        .tcp_addr(Proto::Framed)
        .ok_or_else(|| fail("no framed listener".into()))?;
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
            Some(t) => self.run_against(cell, resolve(t)?, false),
            None => {
                let (handle, addr) = embedded_server(cell)?;
                let r = self.run_against(cell, addr, true);
                let _ = handle.shutdown();
                r
            }
        }
    }
}
