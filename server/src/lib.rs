//! # sockpool-server
//!
//! The reference multi-worker server for the sockpool protocols.
//!
//! ## Layout
//!
//! - [`testing`]: helpers for tests that run real peers (redis-server, nginx, redis-cli …) beside sockpool.
#![warn(missing_docs)]

pub mod testing;
