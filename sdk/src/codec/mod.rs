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
//! The client decoders also bound a reply as a whole ([`DEFAULT_MAX_REPLY`], a client's
//! [`BufferConfig::max_reply`](crate::BufferConfig::max_reply)): going over it is `TooLarge` with
//! [`Limit::Reply`], whichever part of the reply (a bulk, an array, a body) went over.
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

/// The default limit on what one reply may hold in a client's memory, all of it together (every bulk string of a
/// RESP array, nested arrays included; an HTTP head and body; a frame; a line): 1 GiB. It mirrors Redis's own
/// bounds on what a client sends it: a bulk of up to `proto-max-bulk-len` (512 MiB), a query buffer of up to
/// `client-query-buffer-limit` (1 GiB). So a reply with the largest value a default Redis stores (or two) still
/// fits, while a server that announces `*1048576` arrays of 512 MiB bulks cannot make a client hold more. The
/// client's [`BufferConfig::max_reply`](crate::BufferConfig::max_reply) sets it; each codec's own limits
/// still apply (the smaller wins).
pub const DEFAULT_MAX_REPLY: usize = 1024 * 1024 * 1024;

#[cfg(feature = "tokio-util")]
pub use bridge::TokioUtilCodec;
pub use error::{CodecError, Limit};
pub use traits::{Decode, Encode};
