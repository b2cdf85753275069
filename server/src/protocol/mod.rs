//! The protocols' server sides, one module each, all implementing [`Session`](crate::session::Session).
//!
//! | module | protocol | over `max_connections` |
//! |---|---|---|
//! | [`framed`] | the sockpool RPC | `BUSY` with id 0, then close |
//! | [`echo`] | byte-stream echo | closed at once |
//! | [`line`] | line echo | closed at once |
//! | [`http`] | HTTP/1.1, `200` with a fixed body | `503`, then close |
//! | [`resp`] | Redis RESP2 subset | `-ERR max number of clients reached`, then close |
//! | [`udp`] | datagram echo (no connections) | — |

pub mod echo;
pub mod framed;
pub mod http;
pub mod line;
pub mod resp;
pub mod udp;

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use crate::config::Proto;
use crate::session::{Next, Session};
use crate::shared::Shared;

/// A session of any stream protocol (static dispatch for the hot path).
///
/// Not boxed: a session lives as long as its connection and is never moved after creation, and the few
/// hundred bytes the largest variant costs are small beside the buffers.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum AnySession {
    Framed(framed::FramedSession),
    Echo(echo::EchoSession),
    Line(line::LineSession),
    Http(http::HttpSession),
    Resp(resp::RespSession),
}

impl AnySession {
    /// A new session for `proto` (a stream protocol).
    pub(crate) fn new(proto: Proto, shared: &Arc<Shared>) -> Self {
        let shared = shared.clone();
        match proto {
            Proto::Framed => AnySession::Framed(framed::FramedSession::new(shared)),
            Proto::Echo | Proto::Udp => AnySession::Echo(echo::EchoSession::new(shared)),
            Proto::Line => AnySession::Line(line::LineSession::new(shared)),
            Proto::Http => AnySession::Http(http::HttpSession::new(shared)),
            Proto::Resp => AnySession::Resp(resp::RespSession::new(shared)),
        }
    }
}

/// The bytes a client over `max_connections` gets before the server closes (empty: closed at once).
pub(crate) fn refusal(proto: Proto) -> &'static [u8] {
    match proto {
        Proto::Framed => framed::REFUSAL,
        Proto::Echo | Proto::Udp => echo::REFUSAL,
        Proto::Line => line::REFUSAL,
        Proto::Http => http::REFUSAL,
        Proto::Resp => resp::REFUSAL,
    }
}

impl Session for AnySession {
    #[inline]
    fn on_input(&mut self, input: &mut BytesMut, output: &mut BytesMut, now: Instant) -> Next {
        match self {
            AnySession::Framed(s) => s.on_input(input, output, now),
            AnySession::Echo(s) => s.on_input(input, output, now),
            AnySession::Line(s) => s.on_input(input, output, now),
            AnySession::Http(s) => s.on_input(input, output, now),
            AnySession::Resp(s) => s.on_input(input, output, now),
        }
    }

    fn in_progress(&self) -> bool {
        match self {
            AnySession::Framed(s) => s.in_progress(),
            AnySession::Echo(s) => s.in_progress(),
            AnySession::Line(s) => s.in_progress(),
            AnySession::Http(s) => s.in_progress(),
            AnySession::Resp(s) => s.in_progress(),
        }
    }

    fn on_read_timeout(&mut self, output: &mut BytesMut) {
        match self {
            AnySession::Framed(s) => s.on_read_timeout(output),
            AnySession::Echo(s) => s.on_read_timeout(output),
            AnySession::Line(s) => s.on_read_timeout(output),
            AnySession::Http(s) => s.on_read_timeout(output),
            AnySession::Resp(s) => s.on_read_timeout(output),
        }
    }
}
