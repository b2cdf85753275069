//! `echo`: writes back every byte it reads. Each chunk read counts as one request.

use std::time::Instant;

use bytes::BytesMut;

use crate::session::{Next, Session};
use crate::shared::Shared;
use crate::stats::Counter;
use std::sync::Arc;

/// What a client over `max_connections` gets: nothing, the connection closes at once.
pub const REFUSAL: &[u8] = b"";

/// One echo connection.
#[derive(Debug)]
pub struct EchoSession {
    pub(super) shared: Arc<Shared>,
}

impl EchoSession {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        EchoSession { shared }
    }
}

impl Session for EchoSession {
    fn on_input(&mut self, input: &mut BytesMut, output: &mut BytesMut, _now: Instant) -> Next {
        if input.is_empty() {
            return Next::Continue;
        }
        if output.is_empty() {
            // No copy: the input buffer becomes the output buffer.
            std::mem::swap(input, output);
        } else {
            output.extend_from_slice(input);
            input.clear();
        }
        self.shared.stats.inc(Counter::Requests);
        Next::Continue
    }
}
