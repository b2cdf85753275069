//! Connections lent to one caller ([`Client::exclusive`](crate::Client::exclusive)), for commands that change
//! a connection's state, and the error that refuses such commands on the shared connections.
//!
//! The connections [`Client::call`](crate::Client::call) uses are shared: at depth 1 a caller holds one for one
//! request, deeper than 1 many callers' requests interleave on it. A command that changes the connection's state
//! (Redis `SELECT`, `MULTI`, `WATCH` …) would leak into the requests of whoever comes next, so the
//! client refuses it there ([`Protocol::changes_connection_state`]). Such state is set either once per
//! connection by the `on_connect` hook, or on an [`Exclusive`] connection: one caller's alone until it drops.
//!
//! An exclusive connection that was left with changed state (a state-changing request sent through
//! [`Exclusive::call`], a `WATCH` or `MULTI` not ended, a failed request) is closed when dropped instead of
//! going back to its pool, so the next holder always gets a connection as the set-up left it.
//!
//! A request not answered by exactly one reply ([`Protocol::breaks_request_reply`]: Redis `SUBSCRIBE`,
//! `MONITOR` …) is refused here too, before it is sent: what the server sends after it would be returned as the
//! replies of the calls that follow.

use std::sync::Arc;
use std::time::Duration;

use crate::client::Pooled;
use crate::connection::CloseReason;
use crate::error::{Error, ErrorKind, Phase};
use crate::protocol::Protocol;

/// The error for a state-changing `command` sent through the shared connections.
pub(crate) fn refused(command: &str) -> Error {
    Error::new(
        ErrorKind::Config,
        Phase::Request,
        format!(
            "{command} changes the state of the connection it runs on, and these connections are shared by every \
             caller: do it in the on_connect hook (ClientBuilder::on_connect, RedisSetup, redis://user:pass@host/db) \
             or on an exclusive connection (Client::exclusive)"
        ),
    )
    .with_sent(false)
}

/// The error for a `command` not answered by one reply ([`Protocol::breaks_request_reply`]), on any path.
pub(crate) fn not_request_reply(command: &str) -> Error {
    Error::new(
        ErrorKind::Config,
        Phase::Request,
        format!(
            "{command} is not answered by one reply (the server sends pushes, or nothing, after it), so what follows \
             would be taken for the replies of later requests: not supported on a request/reply connection \
             (pub/sub and MONITOR need a connection of their own that reads pushes)"
        ),
    )
    .with_sent(false)
}

/// A connection lent to one caller by [`Client::exclusive`](crate::Client::exclusive); back to its pool (or
/// closed, when its state was changed) on drop.
pub struct Exclusive<P: Protocol> {
    conn: Pooled<P>,
    protocol: Arc<P>,
    /// Each request's timeout ([`Timeouts::request`](crate::Timeouts::request)).
    timeout: Duration,
    /// The connection's state may differ from what its set-up left: close it on drop. Only ever set: a
    /// `SELECT` stays done whatever follows.
    changed: bool,
    /// A `WATCH` or a `MULTI` the transaction helpers have not ended yet: close on drop until they do.
    pending: bool,
}

impl<P: Protocol> Exclusive<P> {
    pub(crate) fn new(conn: Pooled<P>, protocol: Arc<P>, timeout: Duration) -> Self {
        Exclusive {
            conn,
            protocol,
            timeout,
            changed: false,
            pending: false,
        }
    }

    /// Send one request and wait for its reply, within the request timeout (plus a blocking command's own
    /// timeout, see [`Protocol::blocks_for`]). State-changing requests go here; after one (or after a failure)
    /// the connection is closed on drop rather than reused. A request not answered by one reply
    /// ([`Protocol::breaks_request_reply`]: `SUBSCRIBE`, `MONITOR` …) is refused, not sent.
    pub async fn call(&mut self, request: P::Request) -> Result<P::Response, Error> {
        // Refused before it could mark the connection changed: nothing was sent.
        if let Some(command) = self.protocol.breaks_request_reply(&request) {
            return Err(not_request_reply(command));
        }
        if self.protocol.changes_connection_state(&request).is_some() {
            self.changed = true;
        }
        self.call_keeping_state(request).await
    }

    /// [`call`](Self::call) for a request whose state change the caller undoes itself (the transaction
    /// helpers' `WATCH`, `MULTI`, `EXEC`, `DISCARD`), with [`set_pending`](Self::set_pending).
    pub(crate) async fn call_keeping_state(
        &mut self,
        request: P::Request,
    ) -> Result<P::Response, Error> {
        // A blocking command (`BLPOP` …) has its own timeout on top of the request timeout.
        let limit = match self.protocol.blocks_for(&request) {
            Some(b) => self.timeout.saturating_add(b),
            None => self.timeout,
        };
        let call = self.conn.call(request);
        let r = match tokio::time::Instant::now().checked_add(limit) {
            Some(by) => match tokio::time::timeout_at(by, call).await {
                Ok(r) => r,
                // The exchange was dropped mid-flight, which poisons the connection.
                Err(_) => Err(Error::timeout(Phase::Request, limit, "request")),
            },
            // Too far to set a timer: no limit but the server's.
            None => call.await,
        };
        if r.is_err() {
            self.changed = true;
        }
        r
    }

    /// Mark a `WATCH` or `MULTI` as in progress (closed on drop) or as ended (`false`). Ending one leaves a
    /// change made otherwise (a `SELECT` before, or queued in, the transaction) in place: it was reset with it,
    /// and the connection went back to its pool on the other database.
    pub(crate) fn set_pending(&mut self, pending: bool) {
        self.pending = pending;
    }

    /// Whether the connection will be closed on drop rather than go back to its pool.
    pub fn state_changed(&self) -> bool {
        self.changed || self.pending
    }
}

impl<P: Protocol> std::fmt::Debug for Exclusive<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exclusive")
            .field("connection", &*self.conn)
            .field("state_changed", &self.state_changed())
            .finish()
    }
}

impl<P: Protocol> Drop for Exclusive<P> {
    fn drop(&mut self) {
        if self.state_changed() {
            self.conn.poison(CloseReason::Local);
        }
    }
}
