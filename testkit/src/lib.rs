//! Test-only helpers shared by every crate of the workspace (never a dependency of a shipped crate).
//!
//! # Layout
//!
//! - [`loadgen`]: a load generator binary run with a time limit, and its JSON report.
//! - [`peers`]: real peers (redis-server, nginx, memcached, redis-cli, curl …) found on `PATH` and started on
//!   free loopback ports, and [`peers::run`], the harness of the `peers` test binaries: a test whose peer is
//!   missing is reported as *ignored* in the summary, or fails under `CI=true`.
//! - [`process`]: child processes that die with their guard, commands run with a time limit, and a server
//!   binary started with `--listen …` whose `listening` and `ready` lines are read back.
//! - [`ports`]: free, refused and restartable loopback addresses.
//! - [`server`]: the reference server in-process on `127.0.0.1:0`, for any model.
//! - [`slow`]: a slow line echo on the test's own tokio runtime (it follows a paused clock): overload tests.
//! - [`wire`]: raw client round trips with time limits, and framed requests and responses as bytes, for tests
//!   that speak to a server as a hostile client would.
//!
//! Every server a helper starts binds `127.0.0.1` only, and every wait is bounded.

#![warn(missing_docs)]

pub mod loadgen;
pub mod peers;
pub mod ports;
pub mod process;
pub mod server;
pub mod slow;
pub mod wire;

use std::time::Duration;

/// True when running under CI (`CI=true`), where a missing peer fails the test.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Polls `cond` every millisecond until it holds or `limit` passes on tokio's clock; returns whether it held.
///
/// A bound on waiting for another thread or process, not a measurement: under paused time it advances with
/// the clock like any other sleep.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit; // tokio's clock: paused time applies
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cond()
}
