//! # sockpool-server
//!
//! The reference multi-worker server for the sockpool protocols (`framed`, `echo`, `line`, `http`, `resp`,
//! `udp`), with switchable concurrency models, enforced limits, graceful shutdown, TLS, Unix sockets and
//! counters.
//!
//! ```no_run
//! use sockpool_server::{Model, Proto, Server, ServerConfig};
//!
//! let mut config = ServerConfig::default();
//! config.listeners = vec!["framed=127.0.0.1:0".parse()?, "udp=127.0.0.1:0".parse()?];
//! config.model = Model::Async;
//! config.workers = 2;
//! let server = Server::bind(config)?;
//! let addr = server.tcp_addr(Proto::Framed).unwrap();
//! println!("framed on {addr}");
//! let handle = server.spawn();
//! // … talk to `addr` …
//! let stats = handle.shutdown();
//! println!("{}", stats.to_json());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Layout
//!
//! - [`config`]: [`ServerConfig`], [`Limits`], [`ListenSpec`], [`Proto`], [`Model`]; every default.
//! - [`server`]: [`Server`] (bind, addresses, spawn, run) and [`ServerHandle`].
//! - [`session`]: the one sans-IO handler trait, [`Session`], that every protocol implements and every model
//!   drives, and [`Next`].
//! - [`protocol`]: one module per protocol (`framed`, `echo`, `line`, `http`, `resp`, `udp`): decode with the
//!   `sockpool::codec` codecs, handle, encode straight into the output buffer.
//! - `model`: one module per concurrency model (`async`, `per-core`, `threads`, `event-loop`, `processes`),
//!   each `run(listeners, shared)`; `model::tokio_io` is the accept loop and connection driver the tokio
//!   models share.
//! - [`stats`]: [`Stats`] (relaxed atomic counters) and [`StatsSnapshot`] (JSON and Prometheus text).
//! - `listen`: binding TCP (socket2, SO_REUSEPORT), Unix and UDP sockets; [`BoundAddr`].
//! - `shared`: the state every connection shares (config, counters, RESP map, shutdown signal, limit gate).
//! - `tls`: rustls server configuration from PEM files.
//! - `admin`: `GET /metrics` as Prometheus text.
//! - [`cli`]: the binary's flags ([`cli::Args`]) and their conversion into a [`ServerConfig`].
//! - [`signals`]: SIGINT/SIGTERM (and a worker's parent going away) for the binary.
//! - [`error`]: [`Error`] and [`ConfigError`].
//! - [`testing`]: helpers for tests that run real peers (redis-server, nginx, redis-cli …) beside sockpool.
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod error;
pub mod protocol;
pub mod server;
pub mod session;
pub mod signals;
pub mod stats;
pub mod testing;

mod admin;
mod listen;
mod model;
mod shared;
mod tls;

pub use config::{Limits, ListenAddr, ListenSpec, Model, Proto, ServerConfig};
pub use error::{ConfigError, Error};
pub use listen::BoundAddr;
pub use server::{Server, ServerHandle};
pub use session::{Next, Session};
pub use stats::{ErrorCounts, Stats, StatsSnapshot};
