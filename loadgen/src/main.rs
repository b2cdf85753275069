//! `sockpool-loadgen`: parses flags and calls the library.

use std::process::ExitCode;

use clap::Parser;
use sockpool_loadgen::args::{Cli, Command};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sockpool-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Some(Command::Tune(a)) => sockpool_loadgen::tune::main(&a)?,
        Some(Command::Stream(a)) => sockpool_loadgen::stream::main(&a)?,
        Some(Command::Run(_)) | None => anyhow::bail!("`run` is not wired in this branch yet"),
    }
    Ok(ExitCode::SUCCESS)
}
