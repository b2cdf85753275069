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
//! ## Models
//!
//! | `--model` | how | supports |
//! |---|---|---|
//! | `async` (default) | one tokio multi-thread runtime, `workers` threads | TCP, TLS, unix |
//! | `per-core` | `workers` current-thread runtimes, each with its own SO_REUSEPORT listener | TCP, TLS, unix (shared) |
//! | `threads` | blocking std::net, a thread per connection (≤ `max_connections`) | TCP, TLS, unix |
//! | `event-loop` | one thread, one mio (epoll) loop, non-blocking sockets, rustls driven by hand | TCP, TLS, unix |
//! | `processes` | `workers` worker processes of the binary sharing the port with SO_REUSEPORT | TCP, TLS; no unix (refused at bind) |
//! | `uring` | `workers` threads, each with an io_uring (multishot accept and receive, provided buffers) and its own SO_REUSEPORT listener; `event-loop` where io_uring is unavailable | TCP, TLS, unix (shared) |
//!
//! UDP listeners are served by one thread each under every model. Under `processes`, `STATS` answers the
//! counters of the worker that serves the connection, and the final counters are the workers' sum.
//!
//! ## Limits
//!
//! Each is a [`Limits`] field (defaults there) and a flag; over a size limit the protocol's answer is sent,
//! then the connection closes:
//!
//! | limit | framed | line / echo | http | resp |
//! |---|---|---|---|---|
//! | `max_connections` | `BUSY`, id 0 | closed at once | `503` | `-ERR max number of clients reached` |
//! | size (`max_frame`, `max_line`, `max_header`/`max_headers`, `max_body`, `max_bulk`/`max_multibulk`/`max_inline`) | `TOO_LARGE`, id 0 | line: closed, no reply | `431` / `413` | `-ERR Protocol error: <Redis's words>` |
//! | malformed | `BAD_REQUEST`, id 0 | — | `400` (`501` for a `Transfer-Encoding` other than `chunked`) | `-ERR Protocol error: <Redis's words>` |
//! | `read_timeout` (partial request) | closed | closed | `408` | closed |
//! | `idle_timeout` | closed | closed | closed | closed |
//! | `write_timeout` (client not reading) | closed | closed | closed | closed |
//! | `max_multi_commands` / `max_multi_bytes` (a RESP transaction's queue) | — | — | — | `-ERR transaction discarded: …` for the command over it and the ones after it, then `-EXECABORT` at `EXEC`; the connection stays open |
//!
//! While a connection's output is above `write_high_water` it stops decoding and reading, so a client that
//! does not read costs at most one read buffer plus the high-water mark plus one reply.
//!
//! ## Layout
//!
//! - [`config`]: [`ServerConfig`], [`Limits`], [`ListenSpec`], [`Proto`], [`Model`]; every default.
//! - [`server`]: [`Server`] (bind, addresses, spawn, run) and [`ServerHandle`].
//! - [`session`]: the one sans-IO handler trait, [`Session`], that every protocol implements and every model
//!   drives, and [`Next`].
//! - [`protocol`]: one module per protocol (`framed`, `echo`, `line`, `http`, `resp`, `udp`): decode with the
//!   `sockpool::codec` codecs, handle, encode straight into the output buffer.
//! - `conn`: one connection's whole lifecycle, sans-IO (`Conn`: the session, buffers, TLS, every timeout,
//!   backpressure, fairness turns, draining, linger; admission and refusal), which every model drives.
//! - `model`: one module per concurrency model (`async_rt`, `per_core`, `threads`, `event_loop`, `uring`,
//!   `processes`), each `run(listeners, shared)`; the I/O shells over `Conn`: `model::tokio_io` (the accept
//!   loop and shell the tokio models share), `model::blocking_io` (`threads`), and `event_loop` and `uring`
//!   themselves (which share `model::timers`).
//! - [`stats`]: [`Stats`] (relaxed atomic counters) and [`StatsSnapshot`] (JSON and Prometheus text).
//! - `listen`: binding TCP (socket2, SO_REUSEPORT), Unix and UDP sockets; [`BoundAddr`].
//! - `shared`: the state every connection shares (config, counters, RESP map, shutdown signal, limit gate).
//! - `store`: the RESP key space (`Db`), one per server: sharded maps with keys' deadlines (lazy and active
//!   expiry, on the time the model passes in) and the all-shards lock `EXEC` holds.
//! - `tls`: rustls server configuration from PEM files.
//! - `admin`: `GET /metrics` as Prometheus text.
//! - [`app`]: the binary's life from flags to exit status (`main.rs` calls [`app::main`]).
//! - [`cli`]: the binary's flags ([`cli::Args`]) and their conversion into a [`ServerConfig`].
//! - [`signals`]: SIGINT/SIGTERM (and a `processes` worker's parent going away) for the binary.
//! - [`error`]: [`Error`] and [`ConfigError`].
#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod config;
pub mod error;
pub mod protocol;
pub mod server;
pub mod session;
pub mod signals;
pub mod stats;

mod admin;
mod conn;
mod listen;
mod model;
mod shared;
mod store;
mod tls;

pub use config::{Limits, ListenAddr, ListenSpec, Model, Proto, ServerConfig};
pub use error::{ConfigError, Error};
pub use listen::BoundAddr;
pub use server::{Server, ServerHandle};
pub use session::{Next, Session};
pub use stats::{ErrorCounts, Stats, StatsSnapshot};
