//! `line`: waits for the `sockpool::codec::line` codec (being written in parallel); until then it closes at once.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use crate::session::{Next, Session};
use crate::shared::Shared;

/// One line connection.
#[derive(Debug)]
pub struct LineSession {
    _shared: Arc<Shared>,
}

impl LineSession {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        LineSession { _shared: shared }
    }
}

impl Session for LineSession {
    fn on_input(&mut self, _input: &mut BytesMut, _output: &mut BytesMut, _now: Instant) -> Next {
        Next::Close
    }
}

/// What a client over `max_connections` gets: nothing, the connection closes at once.
pub const REFUSAL: &[u8] = b"";
