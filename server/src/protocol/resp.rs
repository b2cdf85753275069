//! `resp`: waits for the `sockpool::codec::resp` codec (being written in parallel); until then it closes at once.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use crate::session::{Next, Session};
use crate::shared::Shared;

/// One resp connection.
#[derive(Debug)]
pub struct RespSession {
    _shared: Arc<Shared>,
}

impl RespSession {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RespSession { _shared: shared }
    }
}

impl Session for RespSession {
    fn on_input(&mut self, _input: &mut BytesMut, _output: &mut BytesMut, _now: Instant) -> Next {
        Next::Close
    }
}

/// What a client over `max_connections` gets, then close (Redis's own words).
pub const REFUSAL: &[u8] = b"-ERR max number of clients reached\r\n";

/// The RESP key space.
#[derive(Debug, Default)]
pub struct Db {}
