//! The wire protocols, each a tokio-util [`Encoder`](tokio_util::codec::Encoder) /
//! [`Decoder`](tokio_util::codec::Decoder) pair.
//!
//! Every decoder checks its size limits *before* it allocates or waits for more input: a length prefix over the
//! limit is an error at once, so a hostile peer can never make a buffer grow past the limit.
//!
//! | module | framing |
//! |---|---|
//! | [`framed`] | 4-byte big-endian length, then the body (the sockpool RPC, docs/PROTOCOL.md) |
//! | [`echo`] | none: a byte stream |
//! | [`line`] | `\n`-terminated lines with a maximum length |
//! | `http` | HTTP/1.1 with Content-Length bodies, keep-alive and pipelining |
//! | [`resp`] | Redis RESP2, plus the inline command form |

pub mod echo;
pub mod framed;
pub mod line;
pub mod resp;

mod error;

pub use error::{CodecError, Limit};
