//! The one handler trait every protocol implements and the connection lifecycle drives: [`Session`].
//!
//! A session is sans-IO. Its driver (the connection state machine in `conn.rs`, under every model) reads bytes
//! into the connection's input buffer, calls [`Session::on_input`], writes whatever the session put in the
//! output buffer (all the replies produced from one read, in one write), and obeys the returned [`Next`].
//! Timers belong to the driver: it calls [`Session::on_read_timeout`] when a partial request did not complete
//! in time.

use std::time::Instant;

use bytes::BytesMut;

/// What the model does after [`Session::on_input`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Write the output, then read more input.
    Continue,
    /// The output reached the high-water mark: write it, then call `on_input` again *before* reading (complete
    /// requests may still be buffered).
    Flush,
    /// Write the output, then wait until this instant and call `on_input` again (framed SLEEP; the requests
    /// behind it stay buffered so replies keep their order). Do not read meanwhile.
    WaitUntil(Instant),
    /// Write the output, then close the connection.
    Close,
}

/// A protocol's server side for one connection.
pub trait Session {
    /// Decodes every complete request in `input`, handles it, and encodes its reply straight into `output`.
    ///
    /// Consumes what it decoded from `input`; a partial request stays there. Called with an empty `input` too
    /// (after a [`Next::WaitUntil`]).
    fn on_input(&mut self, input: &mut BytesMut, output: &mut BytesMut, now: Instant) -> Next;

    /// True while a request is part-way decoded even though `input` may be empty (a codec that moves
    /// finished parts out of the buffer). The model uses it, with a non-empty `input`, to tell a partial
    /// request (read timeout) from an idle connection (idle timeout).
    fn in_progress(&self) -> bool {
        false
    }

    /// Bytes a partly read request holds outside the input buffer (a codec that moves finished parts out of
    /// it): the connection counts them with its buffers against `--memory-budget`.
    fn held(&self) -> usize {
        0
    }

    /// A partial request did not complete within the read timeout; write the protocol's answer, if any (HTTP
    /// `408`). The model then closes the connection.
    fn on_read_timeout(&mut self, output: &mut BytesMut) {
        let _ = output;
    }
}
