//! The closed loop: one task per connection that keeps `--pipeline` requests in flight all the time, on the
//! SDK's caller-driven connection, [`sockpool::Pipelined`].
//!
//! A closed loop shares its connections with nobody, so it needs no pool check-out, `oneshot` or task hop per
//! request: each connection here is one task doing what redis-benchmark, memtier_benchmark and wrk do, and
//! the engine under it is the SDK's own (the one a service embedding the SDK gets):
//!
//! ```text
//!  claim + send up to `pipeline` requests ──Pipelined::next: one write()──► socket
//!  read everything readable ──decode, match in order, check the tag──► record each completion, re-claim its slot ──┘
//! ```
//!
//! - **Continuous pipelining.** As soon as a completion is taken its slot sends the next request; the
//!   requests sent while the replies of one read are handled go out together in the next write.
//! - **One clock read per batch.** The replies of one read share their time ([`sockpool::Completion::at`]),
//!   and the requests sent meanwhile share it as their send time; latency = reply time − send time
//!   (corrected = raw: a closed loop has no schedule).
//! - **Counts stay exact.** Every request is claimed from the worker's [`ClosedLoop`] before it is sent (the
//!   `--requests` budget is never exceeded, the end of `--duration` stops new ones) and reported once:
//!   replied, failed with the connection, or timed out.
//! - **Errors are the SDK's**, mapped once by [`classify`]: a timeout names where its time went
//!   (`timeout_write`, `timeout_read`, `timeout_request`); a connection that closes or resets fails every
//!   request in flight with that kind; a reply to another request or bytes nobody asked for are a protocol
//!   error. After a timeout the connection takes no new request, drains, and is reopened; a connection that
//!   cannot be opened counts one failed request (as through the pooled client). A failed connection is
//!   reopened after [`RECONNECT_BACKOFF`], one the server closed by announcement at once.
//!
//! Open loops (`--rate`, `--ramp`) and UDP go through the SDK clients in [`crate::transport`].

use std::rc::Rc;

use bytes::Bytes;
use futures::future::{FutureExt, LocalBoxFuture};
use sockpool::transport::{Connector, Endpoint};
use sockpool::{Pipelined, Timeouts};
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};

use crate::check::Check;
use crate::config::Config;
use crate::driver::{ClosedLoop, RECONNECT_BACKOFF};
use crate::transport::{classify, socket_options, tls_config, Speak};

/// One worker's pipelined connections to one target.
pub struct Pipeline<P: Speak> {
    /// Builds requests, classifies replies, makes each connection's codec.
    protocol: P,
    /// How replies are judged (the same [`Check`] the open loop uses).
    check: Check,
    /// The check compares each reply with its request's bytes: keep them while it is in flight.
    compare: bool,
    /// Opens connections with the run's socket options, TLS settings and connect timeout.
    connector: Connector,
    /// Where to connect.
    endpoint: Endpoint,
    /// Connections this worker keeps open.
    connections: usize,
    /// Requests in flight on each (`--pipeline`).
    depth: usize,
}

/// What the load generator keeps of a request in flight: the token it sends with it.
struct Token {
    /// When its batch was sent.
    sent: Instant,
    /// Counted in the results (not warm-up).
    measured: bool,
    /// Payload bytes it carries.
    bytes_sent: u64,
    /// The request's bytes, when its reply is compared with them ([`Check::compares_request`]).
    expect: Bytes,
}

/// How a session ended, and so what its connection slot does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The run allows no more requests: the slot ends.
    Finished,
    /// The server announced its close: reconnect at once.
    Drained,
    /// The connection failed or a request timed out: reconnect after [`RECONNECT_BACKOFF`].
    Failed,
}

impl<P: Speak> Pipeline<P> {
    /// `connections` connections to `target` (`host:port`, `[::1]:port`, `unix:/path`, `tls://host:port`) with
    /// `config`'s pipeline depth, socket options, TLS settings and connect timeout.
    pub fn new(
        protocol: P,
        config: &Config,
        target: &str,
        connections: usize,
    ) -> Result<Pipeline<P>, String> {
        let endpoint: Endpoint = target.parse().map_err(|e: sockpool::Error| e.to_string())?;
        let timeouts = Timeouts {
            connect: config.connect_timeout,
            tls_handshake: config.connect_timeout,
            ..Timeouts::default()
        };
        let tls = tls_config(config);
        let connector = Connector::new(socket_options(config), &timeouts, tls.as_ref())
            .map_err(|e| e.to_string())?;
        Ok(Pipeline {
            protocol,
            check: config.check.clone(),
            compare: config.check.compares_request(config.protocol),
            connector,
            endpoint,
            connections,
            depth: config.pipeline.max(1),
        })
    }

    /// Runs the closed loop: one task per connection until `run` allows no more requests and every request
    /// in flight has finished.
    pub fn run(self: &Rc<Self>, run: Rc<ClosedLoop>) -> LocalBoxFuture<'static, ()> {
        let me = self.clone();
        async move {
            let mut tasks = JoinSet::new();
            for _ in 0..me.connections {
                tasks.spawn_local(me.clone().connection(run.clone()));
            }
            while tasks.join_next().await.is_some() {}
        }
        .boxed_local()
    }

    /// One connection slot: connect, run a session, reconnect, until the run is over.
    async fn connection(self: Rc<Self>, run: Rc<ClosedLoop>) {
        let mut next_id = 0u64;
        loop {
            let started = Instant::now();
            if !run.may_send(started) {
                return;
            }
            // Boxed: the connect future (TCP connect and a TLS handshake's state) is larger than a session's,
            // and every connection's task would otherwise carry its size for the whole run.
            match Box::pin(self.connector.connect(&self.endpoint, None)).await {
                Ok(stream) => {
                    run.connected(started.elapsed());
                    let conn = Pipelined::new(stream, self.protocol.clone(), run.timeout());
                    match self.session(&run, conn, &mut next_id).await {
                        End::Finished => return,
                        End::Drained => continue,
                        End::Failed => {}
                    }
                }
                Err(e) => {
                    // The request that would have gone first fails, as it does through the SDK client.
                    let Some(measured) = run.claim(started) else {
                        return;
                    };
                    run.finished(
                        started,
                        Instant::now(),
                        measured,
                        0,
                        Err(classify(&e).into()),
                    );
                }
            }
            sleep(RECONNECT_BACKOFF).await;
        }
    }

    /// Drives one open connection until it fails, is drained after a timeout or a server close, or the run
    /// is over.
    async fn session(
        &self,
        run: &ClosedLoop,
        mut conn: Pipelined<P, Token>,
        next_id: &mut u64,
    ) -> End {
        let mut finished = false;
        let mut now = Instant::now();
        loop {
            // Refill every free slot; requests sent before the next write share one send time.
            while !finished && conn.is_open() && conn.in_flight() < self.depth {
                let Some(measured) = run.claim(now) else {
                    finished = true;
                    break;
                };
                let req = run.next_request();
                let bytes_sent = req.payload_len() as u64;
                let expect = if self.compare {
                    req.bytes()
                } else {
                    Bytes::new()
                };
                let request = self.protocol.request(req, *next_id);
                *next_id = next_id.wrapping_add(1);
                let token = Token {
                    sent: now,
                    measured,
                    bytes_sent,
                    expect,
                };
                if let Err((token, e)) = conn.send(request, token, now) {
                    // Not sent (the codec cannot encode it): it fails unsent, and so does the connection.
                    run.finished(token.sent, now, token.measured, 0, Err(classify(&e).into()));
                    return End::Failed;
                }
            }
            let Some(done) = conn.next().await else {
                return if finished {
                    End::Finished
                } else if conn.closed_by_server() {
                    End::Drained
                } else {
                    End::Failed
                };
            };
            now = done.at;
            let t = done.token;
            match done.result {
                Ok(reply) => {
                    let result = self.protocol.reply(&self.check, &t.expect, &reply);
                    run.finished(t.sent, now, t.measured, t.bytes_sent, result);
                }
                Err(e) => {
                    let sent = if e.was_sent() { t.bytes_sent } else { 0 };
                    run.finished(t.sent, now, t.measured, sent, Err(classify(&e).into()));
                }
            }
        }
    }
}
