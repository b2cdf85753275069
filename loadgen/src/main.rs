//! `sockpool-loadgen`: parses flags and calls the library.

use std::process::ExitCode;

use clap::Parser;

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
    let cli = sockpool_loadgen::args::Cli::parse();
    match sockpool_loadgen::app::main(cli) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("sockpool-loadgen: {e}");
            Ok(e.exit_code())
        }
    }
}
