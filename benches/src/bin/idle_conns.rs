//! Opens N idle TCP connections to a server and holds them, so a script can measure the server's memory per
//! idle connection.
//!
//! ```text
//! idle_conns ADDR N [HOLD_SECS]
//! ```
//!
//! Connects one connection at a time (so the server's accept backlog never overflows), sends nothing, prints
//! `held N` on stdout once all N are open, then holds them for HOLD_SECS (default 30) and exits; kill it to
//! release them sooner. Raise `ulimit -n` above N first.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

fn main() -> std::process::ExitCode {
    sockpool_benches::run_main("idle_conns", run)
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        bail!("usage: idle_conns ADDR N [HOLD_SECS]");
    }
    let addr: SocketAddr = args[0].parse().context("ADDR must be ip:port")?;
    let n: usize = args[1].parse().context("N must be a number")?;
    let hold = Duration::from_secs(match args.get(2) {
        Some(s) => s.parse().context("HOLD_SECS must be a number")?,
        None => 30,
    });

    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).with_context(|| {
            format!(
                "connection {} of {n} to {addr} (is `ulimit -n` above N?)",
                i + 1
            )
        })?;
        conns.push(c);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "held {}", conns.len())?;
    out.flush()?;
    drop(out);

    std::thread::sleep(hold);
    drop(conns);
    Ok(())
}
