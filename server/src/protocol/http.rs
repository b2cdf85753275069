//! `http`: waits for the `sockpool::codec::http` codec (being written in parallel); until then it closes at once.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use crate::session::{Next, Session};
use crate::shared::Shared;

/// One http connection.
#[derive(Debug)]
pub struct HttpSession {
    _shared: Arc<Shared>,
}

impl HttpSession {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        HttpSession { _shared: shared }
    }
}

impl Session for HttpSession {
    fn on_input(&mut self, _input: &mut BytesMut, _output: &mut BytesMut, _now: Instant) -> Next {
        Next::Close
    }
}

/// What a client over `max_connections` gets: `503`, then close.
pub const REFUSAL: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
