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

/// Runs the binary: exit status 0 after a clean stop (even when the `stats` line finds stdout closed), 2 when
/// flags or start-up fail or the server stops serving by itself (the reason on stderr).
pub fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sockpool-server: {}", describe(&e));
            ExitCode::from(2)
        }
    }
}

/// `e` and its causes, `: `-separated, each said once: an error that shows its cause in its own text and also
/// gives it as its `source` (as [`crate::Error`]'s I/O errors do) is not repeated.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
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
    let stats = handle.stats();
    let by_itself = rt.block_on(async {
        // A `processes` worker reports its counters to its parent as they change (`counters <json>`).
        let report = async {
            if !worker {
                return std::future::pending().await;
            }
            let mut tick = tokio::time::interval(crate::model::processes::REPORT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reported = crate::StatsSnapshot::default();
            loop {
                tick.tick().await;
                let now = stats.snapshot();
                if now != reported {
                    // A parent gone closes our stdin too, which stops this worker: nothing to do here.
                    let _ = writeln!(out, "counters {}", now.to_json()).and_then(|()| out.flush());
                    reported = now;
                }
            }
        };
        tokio::select! {
            () = stop.wait() => false,
            () = handle.stopping() => true,
            () = report => unreachable!("reports until stopped"),
        }
    });
    if by_itself {
        // Not asked to: a worker failed, and the others stopped with it.
        let why = match handle.wait() {
            Err(e) => e.to_string(),
            Ok(_) => "no error given".to_string(),
        };
        anyhow::bail!("the server stopped serving: {why}");
    }
    let stats = handle.shutdown();
    // The stop was clean whether or not anyone still reads stdout: a line that cannot be written (its reader
    // gone: `EPIPE`) is said on stderr and leaves the exit status 0, which is what a supervisor checks.
    if let Err(e) = writeln!(out, "stats {}", stats.to_json()).and_then(|()| out.flush()) {
        eprintln!("sockpool-server: the stats line could not be written to stdout: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_shown_in_its_error_text_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let e = anyhow::Error::new(crate::Error::io("bind resp=127.0.0.1:6379", io))
            .context("starting the server");
        assert_eq!(
            describe(&e),
            "starting the server: bind resp=127.0.0.1:6379: Address already in use"
        );
    }
}
