//! # sockpool
//!
//! An async (tokio) client SDK for TCP, TLS, Unix-socket and UDP services: a connection pool, buffered and
//! pipelined connections, deadlines split into phases, retries only when they are safe, and per-call timings.
//!
//! With its defaults a [`Client`] multiplexes concurrent callers onto few pipelined connections (up to
//! [`DEFAULT_PIPELINE_DEPTH`](config::DEFAULT_PIPELINE_DEPTH) requests in flight on each), their requests that
//! arrive together going out in one write; blocking commands (`BLPOP` …) get a connection of their own, and
//! [`ClientBuilder::pipeline_depth`]`(1)` gives request/response on pooled connections.
//!
//! The crate also owns the wire protocols as codecs ([`Encode`](codec::Encode)/[`Decode`](codec::Decode)),
//! shared by the reference server (`sockpool-server`) and the load generator (`sockpool-loadgen`).
//!
//! ## Example
//!
//! ```
//! use std::time::Duration;
//! use sockpool::{Client, PoolConfig, Timeouts};
//! use sockpool::codec::framed::Request;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut config = sockpool_server::ServerConfig::default();
//! # config.listeners = vec!["framed=127.0.0.1:0".parse()?];
//! # config.workers = 1;
//! # let server = sockpool_server::Server::bind(config)?.spawn();
//! # let addr = server.tcp_addr(sockpool_server::Proto::Framed).unwrap();
//! // A pooled client of the framed RPC: up to 8 connections, 4 requests in flight on each.
//! let client = Client::framed()
//!     .endpoint(addr)                       // "host:port", "[::1]:port", "unix:/path", "tls://host:port"
//!     .pool(PoolConfig::default().with_max_size(8))
//!     .timeouts(Timeouts::default().with_request(Duration::from_secs(1)))
//!     .pipeline_depth(4)
//!     .build()?;
//!
//! // Typed helpers …
//! assert_eq!(&client.echo(&b"hello"[..]).await?[..], b"hello");
//!
//! // … or raw requests, with where the time went.
//! let (reply, timings) = client.call_timed(Request::echo(client.next_id(), &b"hi"[..])).await;
//! assert_eq!(&reply?.payload[..], b"hi");
//! println!("pool wait {:?}, connect {:?}, request {:?}", timings.pool_wait, timings.connect, timings.request);
//!
//! // Errors name the phase that failed.
//! let short = Client::framed()
//!     .endpoint(addr)
//!     .timeouts(Timeouts::default().with_request(Duration::from_millis(20)))
//!     .build()?;
//! let err = short.sleep(Duration::from_secs(1), &b""[..]).await.unwrap_err();
//! assert!(err.is_timeout());
//! assert_eq!(err.phase(), sockpool::Phase::Read); // written; no byte of the reply yet
//!
//! client.close().await; // refuses new calls, lets those in progress finish (up to 10 s), closes every connection
//! # drop(server);
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//!
//! Each module has one concern; the layers stack from the socket up:
//!
//! - [`transport`]: opening TCP (v4/v6), Unix and TLS (rustls) connections, socket options (TCP_NODELAY,
//!   SO_SNDBUF/SO_RCVBUF, keepalive) on each.
//! - [`connection`]: one pipelined connection whose socket a driver task owns; callers queue requests with a
//!   `oneshot` each; batched writes; cancellation never desynchronises the stream.
//! - [`pipelined`]: [`Pipelined`], a connection its caller owns and drives with many requests in flight, each
//!   reply handed back with the caller's token (no task or channel per request): a load generator's closed loop.
//! - `pool`: the deadpool manager per endpoint (recycling checks, generation-based bulk invalidation after a
//!   reset) and the background reaper (idle timeout, max lifetime, min idle). How callers share a connection
//!   when pipelining is explained there.
//! - [`protocol`]: the [`Protocol`](protocol::Protocol) trait, the built-in protocols ([`Framed`](protocol::Framed),
//!   [`Echo`](protocol::Echo), [`Line`](protocol::Line), [`Http`](protocol::Http), [`Resp`](protocol::Resp)) and
//!   [`Custom`](protocol::Custom) for a codec of your own.
//! - [`client`]: the [`Client`]: phases and deadlines, safe retries with a budget, several endpoints with
//!   power-of-two-choices and ejection, typed helpers per protocol.
//! - [`resolve`]: endpoints given by host name followed to all their addresses and re-resolved on an interval
//!   (new addresses get calls, addresses that left are drained), with an injectable resolver.
//! - [`setup`]: the `on_connect` hook each new connection runs before its first request.
//! - [`exclusive`]: [`Exclusive`], a connection lent to one caller, for what changes a connection's state.
//! - [`redis`]: Redis typed: URLs and `AUTH`/`SELECT` set-up, a command builder, replies as Rust types with
//!   error replies as `Err`, `MULTI`/`EXEC` and `WATCH`, `SCAN` iteration.
//! - [`http_types`]: HTTP with the `http` crate's `Request`/`Response`, and 4xx/5xx as errors when asked for.
//! - [`url`]: endpoints as URLs (`redis://user:pass@host/db`, `rediss://`, `http://`, `https://`, `unix:`).
//! - [`blocking`]: a synchronous facade for plain threads.
//! - [`udp`]: [`UdpClient`], one datagram out, one back, with timeout, retries and a size limit.
//! - [`config`]: the settings structs (serde, each field with its default).
//! - [`error`]: the one [`Error`] type with the failed [`Phase`] and its [`ErrorKind`].
//! - [`stats`]: [`ClientStats`], counters and closes by reason.
//! - [`observe`]: a `tracing` event per call with its phase timings, and [`ClientStats::to_prometheus`].
//! - [`codec`]: the wire protocols (`framed`, `echo`, `line`, `http`, `resp`) as [`Encode`](codec::Encode)/
//!   [`Decode`](codec::Decode) pairs with size limits checked before any allocation.
//!
//! ## Features
//!
//! - `tls` (default): `tls://`, `rediss://` and `https://` endpoints, over rustls with the ring provider
//!   (`rustls`, `tokio-rustls`, `webpki-roots` are compiled in only with it). Without it a TLS endpoint is a
//!   configuration error that says so.
//! - `serde` (default): `Serialize`/`Deserialize` on the configuration structs and the stats, configuration
//!   files ([`ClientConfig::from_file`], JSON or TOML), [`ClientConfig::evidence`] ([`config::Evidence`]) and
//!   the framed `stats_json` helpers.
//! - `server-codecs` (off): the server halves of the wire codecs (`codec::*::ServerCodec`,
//!   `codec::echo::EchoCodec`), which only servers and test peers need; the reference server and the load
//!   generator turn it on.
//! - `tokio-util` (off): `codec::TokioUtilCodec`, which makes a tokio-util `Encoder`/`Decoder` a codec of
//!   this crate (for [`Custom`](protocol::Custom)) and a codec of this crate a tokio-util one (for
//!   `tokio_util::codec::Framed`). It puts tokio-util's codec traits in the API by choice: see "Stability".
//!
//! `cargo build -p sockpool --no-default-features` builds the client alone (TCP, Unix, UDP; no TLS, no serde).
//!
//! ## Examples
//!
//! `examples/` has a program per protocol (`redis.rs`, `http.rs`, `tls.rs`, `udp.rs`, `blocking.rs`, and
//! `gateway.rs`); the first lines of each say what to start locally and how to run it. CI compiles them all
//! (`cargo build --examples`).
//!
//! ## Stability
//!
//! The crate follows semantic versioning, checked the way `cargo semver-checks` checks it: before 1.0 a minor
//! version (0.x) may break the API and a patch version may not; from 1.0 only a major version may. So that
//! the API can grow without a break, the enums that will get variants ([`ErrorKind`], [`Phase`],
//! [`CloseReason`](connection::CloseReason), [`Endpoint`], [`Stream`](transport::Stream), RESP
//! [`Value`](codec::resp::Value), [`Limit`](codec::Limit)) and the structs the crate fills in for you
//! ([`ClientStats`], [`EndpointStats`](stats::EndpointStats), [`CloseCounts`](stats::CloseCounts),
//! [`CallTimings`], [`Completion`]) are `#[non_exhaustive]`: match them with a `_` arm, read their fields, do
//! not build them. The settings structs are `#[non_exhaustive]` too: [`ClientConfig`], [`PoolConfig`],
//! [`Timeouts`], [`SocketOptions`], [`BufferConfig`], [`RetryPolicy`], [`EjectionPolicy`], [`TlsConfig`],
//! [`UdpConfig`], [`ConnectionOptions`](connection::ConnectionOptions) and the codec limits
//! ([`resp::Limits`](codec::resp::Limits), [`http::Limits`](codec::http::Limits)). A struct literal cannot
//! build them outside this crate (not even with `..Default::default()`); start from `Default` and chain a
//! `with_*` setter per field, e.g. `PoolConfig::default().with_max_size(8)`, or assign fields of a mutable
//! default (`let mut p = PoolConfig::default(); p.max_size = 8;`). The codec limits' setters are `const fn`
//! after `Limits::new()`, so a `const` can hold them. A field added later comes with a default and a setter,
//! so such code keeps compiling. Their serde form is unchanged.
//!
//! Types of other crates in the public API are limited to `bytes`, `tokio` and `http` (the typed HTTP calls),
//! plus, with the `serde` feature, serde's `Serialize`/`Deserialize` traits (derived on the settings and the
//! stats; [`config::Evidence`] and `stats_json` read into any `DeserializeOwned` type you name). The codec
//! traits are this crate's own ([`codec::Encode`], [`codec::Decode`]). The pool (deadpool), TLS (rustls),
//! sockets (socket2), URLs (url), JSON (serde_json), HTTP parsing (httparse) and randomness (rand) stay behind
//! this crate's own types ([`PooledConnection`], [`transport::TlsStream`], [`TlsConfig`], [`config::Evidence`],
//! and [`Error`] for their failures), so upgrading them is not a break of this crate. The one exception is
//! opt-in: the `tokio-util` feature adds `codec::TokioUtilCodec`, whose trait impls name tokio-util's
//! `Encoder`/`Decoder`, so a tokio-util release that breaks those traits breaks code that uses the feature.
#![warn(missing_docs)]

/// Chainable `with_*` setters for a `#[non_exhaustive]` settings struct, which code outside the crate cannot
/// build with a struct literal: `PoolConfig::default().with_max_size(8)`. With `const` before the type the
/// setters are `const fn` (for `Copy` structs of plain values), so a `const` item can be built with them too.
macro_rules! with_setters {
    (const $ty:ident { $($setter:ident => $field:ident: $fty:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
                #[must_use]
                pub const fn $setter(mut self, $field: $fty) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
    ($ty:ident { $($setter:ident => $field:ident: $fty:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
                #[must_use]
                pub fn $setter(mut self, $field: $fty) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}

mod balance;
pub mod blocking;
pub mod client;
pub mod codec;
pub mod config;
pub mod connection;
pub mod error;
pub mod exclusive;
pub mod http_types;
pub mod observe;
pub mod pipelined;
mod pool;
pub mod protocol;
pub mod redis;
pub mod resolve;
pub mod setup;
mod shelf;
pub mod stats;
pub mod transport;
pub mod udp;
pub mod url;

pub use client::{CallTimings, Client, ClientBuilder, PooledConnection};
pub use config::{
    BufferConfig, ClientConfig, EjectionPolicy, PoolConfig, RetryPolicy, SocketOptions, Timeouts,
};
pub use connection::Connection;
pub use error::{Error, ErrorKind, Phase};
pub use exclusive::Exclusive;
pub use pipelined::{Completion, Pipelined};
pub use stats::ClientStats;
pub use transport::{Endpoint, TlsConfig};
pub use udp::{UdpClient, UdpConfig};
