//! Helpers shared by the load generator's integration tests: this package's binary, run through
//! `sockpool_testkit::loadgen`.
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
pub use sockpool_testkit::loadgen::{args, num};

/// The load generator binary built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sockpool-loadgen"))
}

/// The load generator binary, as a command to add arguments to.
pub fn loadgen() -> Command {
    Command::new(bin())
}

/// Runs the load generator with `args` (bounded by `limit`), returning (exit ok, stdout, stderr).
pub fn run_loadgen(args: &[&str], limit: Duration) -> (bool, String, String) {
    sockpool_testkit::loadgen::run(bin(), args, limit)
}

/// Runs `sockpool-loadgen run --quiet --json - ARGS` and returns the JSON document.
pub fn run_json(args: &[&str], limit: Duration) -> Value {
    sockpool_testkit::loadgen::run_json(bin(), args, limit)
}

/// Like [`run_json`], for a run that may fail: (exit ok, the JSON document, stderr).
pub fn run_json_any(args: &[&str], limit: Duration) -> (bool, Value, String) {
    sockpool_testkit::loadgen::run_json_any(bin(), args, limit)
}

/// Like [`run_json`], with the command line `--target TARGET FLAGS`, FLAGS written as [`args`] reads them.
pub fn run_json_at(target: &str, flags: &str, limit: Duration) -> Value {
    run_json(
        &[&["--target", target][..], &args(flags, &[])].concat(),
        limit,
    )
}

/// Like [`run_json_any`], with the command line `--target TARGET FLAGS`, FLAGS written as [`args`] reads them.
pub fn run_json_any_at(target: &str, flags: &str, limit: Duration) -> (bool, Value, String) {
    run_json_any(
        &[&["--target", target][..], &args(flags, &[])].concat(),
        limit,
    )
}
