//! `framed`: the sockpool RPC (ECHO, SINK, SOURCE, SLEEP, STATS), answered in order.
//!
//! A frame over `max_frame` is answered `TOO_LARGE` with id 0, a frame too short for its header
//! `BAD_REQUEST` with id 0; both then close. An unknown op is answered `BAD_REQUEST` with its id and the
//! connection goes on. SOURCE over `max_frame` is answered `TOO_LARGE` with its id. SLEEP is capped at
//! `max_sleep`; the requests behind it wait, so replies keep their order. A large reply body (SOURCE, a large
//! ECHO or SLEEP payload) is written a high-water mark at a time (`protocol::body`): the connection never holds it all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use sockpool::codec::framed::{Op, Request, ServerCodec, Status, LEN_PREFIX, RESPONSE_HEADER};
use sockpool::codec::CodecError;
use sockpool::codec::Decode;

use super::body::{write_pending, Body, WRITE_AT_ONCE};
use crate::session::{Next, Session};
use crate::shared::Shared;
use crate::stats::Counter;

/// What a client over `max_connections` gets: `BUSY` with id 0.
pub const REFUSAL: &[u8] = &[0, 0, 0, 9, 3, 0, 0, 0, 0, 0, 0, 0, 0];

/// One framed connection.
#[derive(Debug)]
pub struct FramedSession {
    pub(super) shared: Arc<Shared>,
    codec: ServerCodec,
    /// A SLEEP being served: its id, payload and when it is due.
    sleeping: Option<(u64, Bytes, Instant)>,
    /// The body of the reply being written, when it did not fit below the high-water mark.
    body: Option<Body>,
    /// Requests answered and not yet added to the shared counter (added once per batch).
    answered: u64,
}

impl FramedSession {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let codec = ServerCodec::new(shared.config.limits.max_frame);
        FramedSession {
            shared,
            codec,
            sleeping: None,
            body: None,
            answered: 0,
        }
    }
}

/// Writes a response header for `payload_len` bytes of payload (reserving room for at most
/// [`WRITE_AT_ONCE`] of them: a large body is written in parts).
fn header(output: &mut BytesMut, status: Status, id: u64, payload_len: usize) {
    output.reserve(LEN_PREFIX + RESPONSE_HEADER + payload_len.min(WRITE_AT_ONCE));
    output.put_u32((RESPONSE_HEADER + payload_len) as u32);
    output.put_u8(status.to_u8());
    output.put_u64(id);
}

fn reply(output: &mut BytesMut, status: Status, id: u64, payload: &[u8]) {
    header(output, status, id, payload.len());
    output.extend_from_slice(payload);
}

/// A reply whose payload the session holds: small ones at once, large ones as a [`Body`] to write in parts.
fn reply_bytes(output: &mut BytesMut, id: u64, payload: Bytes) -> Option<Body> {
    if payload.len() <= WRITE_AT_ONCE {
        reply(output, Status::Ok, id, &payload);
        return None;
    }
    header(output, Status::Ok, id, payload.len());
    Some(Body::Bytes(payload, b""))
}

impl FramedSession {
    /// Adds the requests answered so far to the shared counter.
    fn count(&mut self) {
        if self.answered > 0 {
            self.shared.stats.add(Counter::Requests, self.answered);
            self.answered = 0;
        }
    }

    /// Handles one request; `Some` when it must wait.
    fn handle(&mut self, req: Request, output: &mut BytesMut, now: Instant) -> Option<Instant> {
        let max_frame = self.shared.config.limits.max_frame;
        match req.op {
            Op::Echo => self.body = reply_bytes(output, req.id, req.payload),
            Op::Sink => reply(output, Status::Ok, req.id, &[]),
            Op::Source => {
                let n = req.arg as usize;
                if n + RESPONSE_HEADER > max_frame {
                    reply(output, Status::TooLarge, req.id, &[]);
                } else {
                    header(output, Status::Ok, req.id, n);
                    self.body = Some(Body::Fill(b'x', n));
                }
            }
            Op::Sleep => {
                let d = Duration::from_micros(u64::from(req.arg))
                    .min(self.shared.config.limits.max_sleep);
                let due = now + d;
                self.sleeping = Some((req.id, req.payload, due));
                return Some(due);
            }
            Op::Stats => {
                self.count();
                let json = self.shared.stats.snapshot().to_json();
                reply(output, Status::Ok, req.id, json.as_bytes());
            }
            Op::Unknown(_) => reply(output, Status::BadRequest, req.id, &[]),
        }
        None
    }
}

impl Session for FramedSession {
    fn on_input(&mut self, input: &mut BytesMut, output: &mut BytesMut, now: Instant) -> Next {
        let high_water = self.shared.config.limits.write_high_water;
        let next = loop {
            if write_pending(&mut self.body, output, high_water) {
                break Next::Flush;
            }
            if let Some((id, payload, due)) = self.sleeping.take() {
                if now < due {
                    self.sleeping = Some((id, payload, due));
                    break Next::WaitUntil(due);
                }
                self.body = reply_bytes(output, id, payload);
                self.answered += 1;
                continue;
            }
            if output.len() >= high_water {
                break Next::Flush;
            }
            match self.codec.decode(input) {
                Ok(Some(req)) => {
                    if let Some(due) = self.handle(req, output, now) {
                        if due > now {
                            break Next::WaitUntil(due);
                        }
                        continue;
                    }
                    self.answered += 1;
                }
                Ok(None) => break Next::Continue,
                Err(CodecError::TooLarge { .. }) => {
                    self.shared.stats.inc(Counter::ErrorsTooLarge);
                    reply(output, Status::TooLarge, 0, &[]);
                    break Next::Close;
                }
                Err(_) => {
                    self.shared.stats.inc(Counter::ErrorsProtocol);
                    reply(output, Status::BadRequest, 0, &[]);
                    break Next::Close;
                }
            }
        };
        self.count();
        next
    }
}
