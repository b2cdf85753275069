//! The `sockpool-server` binary's whole life: parse flags, bind, print one `listening` line per listener and
//! `ready`, serve until SIGINT/SIGTERM, then print `stats <json>`. `main.rs` only calls [`main`]; a test crate
//! can build the same program under another name.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::Args;
use crate::signals::Stop;
use crate::Server;
use anyhow::Context;
use clap::Parser;

/// Runs the binary: exit status 0 after a clean stop, 2 when flags or start-up fail (the reason on stderr).
pub fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sockpool-server: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let worker = args.is_worker();
    let config = args.into_config()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stop = {
        let _ctx = rt.enter();
        Stop::install(worker).context("installing signal handlers")?
    };
    let server = Server::bind(config).context("starting the server")?;
    let mut out = std::io::stdout().lock();
    for b in server.local_addrs() {
        writeln!(out, "listening {b}")?;
    }
    if let Some(a) = server.admin_addr() {
        writeln!(out, "admin http://{a}/metrics")?;
    }
    let handle = server.spawn();
    if handle.is_finished() {
        handle.wait().context("the server stopped at once")?;
        anyhow::bail!("the server stopped at once");
    }
    writeln!(out, "ready")?;
    out.flush()?;
    rt.block_on(stop.wait());
    let stats = handle.shutdown();
    writeln!(out, "stats {}", stats.to_json())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
