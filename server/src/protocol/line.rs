//! `line`: echoes each `\n`-terminated line (a `\r` before the `\n` is dropped; the reply ends with `\n`).
//!
//! A line longer than `max_line` closes the connection without a reply (there is no error syntax in a bare
//! line protocol, and anything sent back would read as an echoed line).

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use sockpool::codec::line::LineCodec;
use sockpool::codec::CodecError;
use sockpool::codec::Decode;

use crate::session::{Next, Session};
use crate::shared::Shared;
use crate::stats::Counter;

/// What a client over `max_connections` gets: nothing, the connection closes at once.
pub const REFUSAL: &[u8] = b"";

/// One line connection.
#[derive(Debug)]
pub struct LineSession {
    pub(super) shared: Arc<Shared>,
    codec: LineCodec,
}

impl LineSession {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let codec = LineCodec::new(shared.config.limits.max_line);
        LineSession { shared, codec }
    }
}

impl Session for LineSession {
    fn on_input(&mut self, input: &mut BytesMut, output: &mut BytesMut, _now: Instant) -> Next {
        let mut answered = 0u64;
        let next = loop {
            if output.len() >= self.shared.config.limits.write_high_water {
                break Next::Flush;
            }
            match self.codec.decode(input) {
                Ok(Some(line)) => {
                    output.reserve(line.len() + 1);
                    output.extend_from_slice(&line);
                    output.put_u8(b'\n');
                    answered += 1;
                }
                Ok(None) => break Next::Continue,
                Err(CodecError::TooLarge { .. }) => {
                    self.shared.stats.inc(Counter::ErrorsTooLarge);
                    break Next::Close;
                }
                Err(_) => {
                    self.shared.stats.inc(Counter::ErrorsProtocol);
                    break Next::Close;
                }
            }
        };
        if answered > 0 {
            self.shared.stats.add(Counter::Requests, answered);
        }
        next
    }
}
