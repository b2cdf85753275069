//! `sockpool-server`: parses flags, binds, prints one `listening` line per listener and `ready`, serves until
//! SIGINT/SIGTERM, then prints `stats <json>` and exits 0.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sockpool_server::cli::Args;
use sockpool_server::signals::Stop;
use sockpool_server::Server;

fn main() -> ExitCode {
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
    writeln!(out, "ready")?;
    out.flush()?;
    rt.block_on(stop.wait());
    let stats = handle.shutdown();
    writeln!(out, "stats {}", stats.to_json())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
