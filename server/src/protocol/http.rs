//! `http`: HTTP/1.1 with keep-alive and pipelining; every request gets `200 OK` with the configured body
//! (`http_body_size` bytes of `Hello, World!` repeated), whatever its method (but `CONNECT`), path or body.
//!
//! Bad input gets the codec's status with `Connection: close`, then the connection closes: a header block
//! over `max_header` (or more than `max_headers` fields) `431`, a body over `max_body` `413` (decided from
//! `Content-Length`, or a chunk's size line, before that body is read), a request `Transfer-Encoding` other
//! than `chunked` `501`, `CONNECT` `405` (no tunnel is opened), an HTTP/1.1 request without `Host` or any
//! request with more than one `400` (RFC 9112 §3.2), anything else malformed (chunked framing included) `400`. Chunked request bodies are
//! decoded in the connection's input buffer (see `sockpool::codec::http`). A request still incomplete at the read timeout gets `408` and the close. `Expect: 100-continue` gets
//! `100 Continue`. Over `max_connections`: `503` and the close.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use sockpool::codec::http::{
    error_response, Limits as HttpLimits, Response, ServerCodec, CONTINUE,
};
use sockpool::codec::CodecError;
use sockpool::codec::{Decode, Encode};

use crate::session::{Next, Session};
use crate::shared::Shared;
use crate::stats::Counter;

/// What a client over `max_connections` gets: `503`, then close.
pub const REFUSAL: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// One HTTP connection.
#[derive(Debug)]
pub struct HttpSession {
    pub(super) shared: Arc<Shared>,
    codec: ServerCodec,
    /// The reply to every request, built once (its body is shared, not copied).
    ok: Response,
}

impl HttpSession {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let l = &shared.config.limits;
        let codec = ServerCodec::new(
            HttpLimits::new()
                .with_max_header_bytes(l.max_header)
                .with_max_headers(l.max_headers)
                .with_max_body_bytes(l.max_body),
        );
        let ok = Response::ok(shared.http_body.clone());
        HttpSession { shared, codec, ok }
    }
}

impl Session for HttpSession {
    fn on_input(&mut self, input: &mut BytesMut, output: &mut BytesMut, _now: Instant) -> Next {
        let mut answered = 0u64;
        let next = loop {
            if output.len() >= self.shared.config.limits.write_high_water {
                break Next::Flush;
            }
            match self.codec.decode(input) {
                Ok(Some(_request)) => {
                    // Encoding our own well-formed response cannot fail.
                    let _ = self.codec.encode(&self.ok, output);
                    answered += 1;
                    if self.codec.is_closing() {
                        break Next::Close;
                    }
                }
                Ok(None) => {
                    if self.codec.take_continue() {
                        output.extend_from_slice(CONTINUE);
                    }
                    break Next::Continue;
                }
                Err(e) => {
                    match e {
                        CodecError::TooLarge { .. } => {
                            self.shared.stats.inc(Counter::ErrorsTooLarge)
                        }
                        _ => self.shared.stats.inc(Counter::ErrorsProtocol),
                    }
                    if let Some(reply) = error_response(&e) {
                        let _ = self.codec.encode(&reply, output);
                    }
                    break Next::Close;
                }
            }
        };
        if answered > 0 {
            self.shared.stats.add(Counter::Requests, answered);
        }
        next
    }

    fn in_progress(&self) -> bool {
        self.codec.in_progress()
    }

    fn on_read_timeout(&mut self, output: &mut BytesMut) {
        let reply = Response::new(408).with_header("Connection", "close");
        let _ = self.codec.encode(&reply, output);
    }
}
