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
//! - [`codec`]: the wire protocols (`framed`, `echo`, `line`, `http`, `resp`) as `Encoder`/`Decoder` pairs with
//!   size limits checked before any allocation.
#![warn(missing_docs)]

pub mod codec;
