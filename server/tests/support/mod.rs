//! The server's own tests: [`config`] adds what only this package has (the `sockpool-server` binary, which the
//! `processes` model runs as its workers) to the kit's configuration; the rest comes from `sockpool_testkit`.
#![allow(dead_code)]

pub mod cert;

use sockpool_server::{Model, ServerConfig};
#[allow(unused_imports)]
pub use sockpool_testkit::wire::*;

/// A config for `model` with these listeners, 2 workers, this package's binary as the `processes` workers, and a
/// 5 s shutdown deadline.
pub fn config(model: Model, listeners: &[&str]) -> ServerConfig {
    ServerConfig {
        worker_exe: Some(env!("CARGO_BIN_EXE_sockpool-server").into()),
        shutdown_deadline: std::time::Duration::from_secs(5),
        ..sockpool_testkit::server::config(model, listeners)
    }
}
