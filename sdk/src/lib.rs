//! # sockpool
//!
//! An async (tokio) client SDK for TCP, TLS, Unix-socket and UDP services: a connection pool, buffered and
//! pipelined connections, deadlines split into phases, retries only when they are safe, and per-call timings.
//!
//! The crate also owns the wire protocols as tokio-util codecs, shared by the reference server
//! (`sockpool-server`) and the load generator (`sockpool-loadgen`).
//!
//! ## Layout
//!
//! - [`codec`]: the wire protocols as tokio-util `Encoder`/`Decoder` pairs with size limits checked before any
//!   allocation, shared with the server and the load generator:
//!   - [`codec::framed`]: the sockpool RPC, a 4-byte length then the body;
//!   - [`codec::echo`]: a raw byte stream (the client splits replies by request length);
//!   - [`codec::line`]: `\n`-terminated lines with a maximum length;
//!   - [`codec::http`]: HTTP/1.1 requests and responses, keep-alive and pipelining;
//!   - [`codec::resp`]: Redis RESP2 and the inline command form, parsed the way redis-server does.
//! - [`transport`]: opening TCP (v4/v6), Unix and TLS connections, socket options on each.
//! - [`connection`]: one pipelined connection whose socket a driver task owns.
//! - [`protocol`]: the [`Protocol`](protocol::Protocol) trait, the built-in protocols, any user codec.
//! - [`config`]: settings structs (serde, documented defaults).
//! - [`error`]: the one [`Error`] type with the failed [`Phase`] and [`ErrorKind`].
#![warn(missing_docs)]

mod balance;
pub mod blocking;
pub mod client;
pub mod codec;
pub mod config;
pub mod connection;
pub mod error;
pub mod pool;
pub mod protocol;
pub mod stats;
pub mod transport;
pub mod udp;

pub use client::{CallTimings, Client, ClientBuilder};
pub use config::{BufferConfig, EjectionPolicy, PoolConfig, RetryPolicy, SocketOptions, Timeouts};
pub use connection::Connection;
pub use error::{Error, ErrorKind, Phase};
pub use stats::ClientStats;
pub use transport::{Endpoint, TlsConfig};
pub use udp::{UdpClient, UdpConfig};
