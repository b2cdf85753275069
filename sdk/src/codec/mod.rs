//! The wire protocols, each an [`Encode`] / [`Decode`] pair (this crate's codec traits, shaped like
//! tokio-util's `Encoder`/`Decoder`; with the `tokio-util` feature `TokioUtilCodec` converts either way).
//!
//! Every decoder checks its size limits *before* it allocates or waits for more input: a length prefix over the
//! limit is an error at once, so a hostile peer can never make a buffer grow past the limit.
//!
//! | module | framing | server side (decode / encode) | client side (encode / decode) |
//! |---|---|---|---|
//! | [`framed`] | 4-byte big-endian length, then the body (the sockpool RPC, docs/PROTOCOL.md) | `ServerCodec`: `Request` / `Response` | `ClientCodec`: `Request` / `Response` |
//! | [`echo`] | none: a byte stream | `EchoCodec`: `Bytes` / `Bytes` | `EchoClientCodec`: `Bytes` / `Bytes` of the request's length |
//! | [`line`](mod@line) | `\n`-terminated lines with a maximum length | `LineCodec`: `Bytes` / `Bytes` | the same `LineCodec` |
//! | [`http`] | HTTP/1.1 with Content-Length bodies, keep-alive and pipelining | `ServerCodec`: `Request` / `Response` | `ClientCodec`: `Request` / `Response` (also chunked) |
//! | [`resp`] | Redis RESP2, plus the inline command form | `ServerCodec`: `Vec<Bytes>` / `Value` | `ClientCodec`: `Vec<Bytes>` / `Value` |
//!
//! Every error is a [`CodecError`]: `Io`, `TooLarge { what: Limit, len, max }` or `Protocol(message)`. After
//! `TooLarge` or `Protocol` the stream is out of step: answer what the protocol says
//! ([`http::error_response`], [`resp::protocol_error_reply`], framed `TOO_LARGE`/`BAD_REQUEST`), then close.
//!
//! `tests/codec_props.rs` holds the property tests every codec passes: round-trips, bounded buffering under
//! arbitrary input, and the same frames whatever the read boundaries.

pub mod echo;
pub mod framed;
pub mod http;
pub mod line;
pub mod resp;

#[cfg(feature = "tokio-util")]
mod bridge;
#[cfg(feature = "server-codecs")]
mod chunked;
mod error;
mod traits;

/// The most a decoder reserves at once ahead of the bytes received (64 KiB), whatever length a frame, bulk or
/// body announces: memory follows what a peer actually sends, never what it claims it will. Buffers grow
/// further as bytes arrive.
pub(crate) const MAX_RESERVE: usize = 64 * 1024;

#[cfg(feature = "tokio-util")]
pub use bridge::TokioUtilCodec;
pub use error::{CodecError, Limit};
pub use traits::{Decode, Encode};
