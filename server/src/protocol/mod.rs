//! The protocols' server sides, one module each, all implementing [`Session`].
//!
//! | module | protocol | over `max_connections` |
//! |---|---|---|
//! | [`framed`] | the sockpool RPC | `BUSY` with id 0, then close |
//! | [`echo`] | byte-stream echo | closed at once |
//! | [`line`](mod@line) | line echo | closed at once |
//! | [`http`] | HTTP/1.1, `200` with a fixed body | `503`, then close |
//! | [`resp`] | Redis RESP2 subset | `-ERR max number of clients reached`, then close |
//! | [`udp`] | datagram echo (no connections) | — |

mod body;
pub mod echo;
pub mod framed;
pub mod http;
pub mod line;
pub mod resp;
pub mod udp;

use std::sync::Arc;
use std::time::Instant;

use std::panic::AssertUnwindSafe;

use bytes::BytesMut;

use crate::config::{Proto, ServerConfig};
use crate::session::{Next, Session};
use crate::shared::Shared;
use crate::stats::Counter;

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

/// A session of the stream protocol `proto` on a server of its own (`config`, fresh counters and RESP map),
/// driven without sockets: the caller plays the model ([`Session`]'s contract). The fuzz targets in `fuzz/` and
/// the corpus replay in `tests/fuzz_corpus.rs` use it; it is not part of the supported API.
#[doc(hidden)]
pub fn detached_session(proto: Proto, config: ServerConfig) -> impl Session + std::fmt::Debug {
    let shared = Arc::new(Shared::new(
        config,
        Default::default(),
        Default::default(),
        None,
    ));
    AnySession::new(proto, &shared)
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

/// The bytes a large request gets while the server is over its `memory_budget`, before the connection closes
/// (empty: closed at once; line and echo have no large requests).
pub(crate) fn busy(proto: Proto) -> &'static [u8] {
    match proto {
        Proto::Resp => resp::BUSY,
        Proto::Framed | Proto::Http | Proto::Echo | Proto::Udp | Proto::Line => refusal(proto),
    }
}

impl AnySession {
    /// This session's [`busy`] answer.
    pub(crate) fn busy(&self) -> &'static [u8] {
        busy(match self {
            AnySession::Framed(_) => Proto::Framed,
            AnySession::Echo(_) => Proto::Echo,
            AnySession::Line(_) => Proto::Line,
            AnySession::Http(_) => Proto::Http,
            AnySession::Resp(_) => Proto::Resp,
        })
    }

    fn shared(&self) -> &Shared {
        match self {
            AnySession::Framed(s) => &s.shared,
            AnySession::Echo(s) => &s.shared,
            AnySession::Line(s) => &s.shared,
            AnySession::Http(s) => &s.shared,
            AnySession::Resp(s) => &s.shared,
        }
    }
}

/// Runs one `on_input` so that a panic in it takes only its connection: the replies it had begun are dropped
/// (`output` is cut back to where it was) and `None` comes back. The panic hook has printed the panic once on
/// stderr. [`AnySession::on_input`] counts it in `errors.panic` and closes the connection; every model drives its
/// connections through it, so no model loses a thread, an fd or a listener to a panic.
fn contained(output: &mut BytesMut, on_input: impl FnOnce(&mut BytesMut) -> Next) -> Option<Next> {
    let before = output.len();
    match std::panic::catch_unwind(AssertUnwindSafe(|| on_input(&mut *output))) {
        Ok(next) => Some(next),
        Err(_) => {
            output.truncate(before);
            None
        }
    }
}

impl Session for AnySession {
    #[inline]
    fn on_input(&mut self, input: &mut BytesMut, output: &mut BytesMut, now: Instant) -> Next {
        contained(output, |output| match self {
            AnySession::Framed(s) => s.on_input(input, output, now),
            AnySession::Echo(s) => s.on_input(input, output, now),
            AnySession::Line(s) => s.on_input(input, output, now),
            AnySession::Http(s) => s.on_input(input, output, now),
            AnySession::Resp(s) => s.on_input(input, output, now),
        })
        .unwrap_or_else(|| {
            self.shared().stats.inc(Counter::ErrorsPanic);
            Next::Close
        })
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

    fn held(&self) -> usize {
        match self {
            AnySession::Resp(s) => s.held(),
            _ => 0,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn shared() -> Arc<Shared> {
        let mut config = ServerConfig::default();
        config.limits.max_frame = 4096;
        config.limits.max_line = 256;
        config.limits.max_header = 1024;
        config.limits.max_body = 4096;
        config.limits.max_bulk = 4096;
        config.limits.max_multibulk = 64;
        config.limits.max_inline = 1024;
        config.limits.max_sleep = Duration::from_millis(1);
        config.limits.write_high_water = 8192;
        Arc::new(Shared::new(
            config,
            Default::default(),
            Default::default(),
            None,
        ))
    }

    #[test]
    fn a_panic_in_on_input_is_contained_and_its_replies_dropped() {
        let mut output = BytesMut::from(&b"+OK\r\n"[..]);
        let next = contained(&mut output, |out| {
            out.extend_from_slice(b"+half a rep");
            panic!("a decoder bug");
        });
        assert_eq!(next, None);
        assert_eq!(
            &output[..],
            b"+OK\r\n",
            "earlier replies kept, the begun one dropped"
        );
        let next = contained(&mut output, |out| {
            out.extend_from_slice(b"+PONG\r\n");
            Next::Continue
        });
        assert_eq!(next, Some(Next::Continue));
        assert_eq!(&output[..], b"+OK\r\n+PONG\r\n");
    }

    /// Feeds `chunks` to a session the way a model does; returns when it closes or the input is used up.
    fn feed(proto: Proto, shared: &Arc<Shared>, chunks: &[Vec<u8>]) -> usize {
        let mut session = AnySession::new(proto, shared);
        let mut input = BytesMut::new();
        let mut output = BytesMut::new();
        let mut now = Instant::now();
        let mut written = 0;
        for chunk in chunks {
            input.extend_from_slice(chunk);
            loop {
                let next = session.on_input(&mut input, &mut output, now);
                // Bounded: a session stops at the high-water mark plus one reply.
                assert!(
                    output.len() <= 8192 + 4096 + 64,
                    "{proto}: output {}",
                    output.len()
                );
                written += output.len();
                output.clear();
                match next {
                    Next::Continue => break,
                    Next::Flush => continue,
                    Next::WaitUntil(t) => now = t,
                    Next::Close => return written,
                }
            }
            // What stays buffered is at most one partial request under the limits.
            assert!(input.len() <= 4096 + 64, "{proto}: input {}", input.len());
        }
        session.on_read_timeout(&mut output);
        written
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// No input makes a session panic or hold more than its limits allow.
        #[test]
        fn arbitrary_bytes_never_panic_or_grow_buffers(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..12)
        ) {
            let shared = shared();
            for proto in Proto::STREAM {
                feed(proto, &shared, &chunks);
            }
        }

        /// Protocol-shaped noise (valid prefixes with random tails) reaches the deeper states.
        #[test]
        fn protocol_shaped_noise_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..400), cut in 0usize..64) {
            let shared = shared();
            for (proto, head) in [
                (Proto::Framed, &b"\x00\x00\x00\x10\x04\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05abc"[..]),
                (Proto::Http, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello GET / HTTP/1.1\r\n"),
                (Proto::Resp, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n*"),
                (Proto::Line, b"hello\r\nworld\n"),
            ] {
                let mut first = head.to_vec();
                first.extend_from_slice(&tail);
                let at = cut.min(first.len());
                let (a, b) = first.split_at(at);
                feed(proto, &shared, &[a.to_vec(), b.to_vec()]);
            }
        }
    }
}
