//! The senders of both loops over TCP, TLS and Unix sockets: one task per connection that keeps up to
//! `--pipeline` requests in flight, on the SDK's caller-driven connection, [`sockpool::Pipelined`].
//!
//! A connection here is shared with nobody, so it needs no pool check-out, `oneshot` or task hop per request:
//! each is one task doing what redis-benchmark, memtier_benchmark, wrk and wrk2 do, and the engine under it
//! is the SDK's own (the one a service embedding the SDK gets):
//!
//! ```text
//!  take + send up to `pipeline` requests ──Pipelined::next: one write()──► socket
//!  read everything readable ──decode, match in order, check the tag──► record each completion, take again ──┘
//!  (open loop, nothing due yet: wait for the dispatcher's wake-up, still reading replies meanwhile)
//! ```
//!
//! - **Continuous pipelining.** As soon as a completion is taken its slot takes the next request from the
//!   worker's [`Feed`]; the requests taken while the replies of one read are handled go out together in the
//!   next write.
//! - **One clock read per batch.** The replies of one read share their time ([`sockpool::Completion::at`]),
//!   and the requests taken meanwhile share it as their send time.
//! - **Closed loop**: a free slot always gets a request (corrected = raw latency). **Open loop**: a free slot
//!   gets the oldest request that is due ([`crate::open`]); with none due, the connection waits for one while
//!   it keeps reading replies and firing timeouts. Each request's deadline is its intended send time +
//!   `--timeout`, so a request that waited for a slot has that much less time on the wire.
//! - **Counts stay exact.** Every request taken from the feed is reported once: replied, failed with the
//!   connection, or timed out.
//! - **Behind an announced close** (HTTP `Connection: close`, as nginx sends on its `keepalive_requests`-th
//!   reply), the requests pipelined after that reply were not processed (RFC 9112 §9.6): they are sent again,
//!   first, on the next connection, with their intended times (so the reconnect counts in their corrected
//!   latency), as RFC 9112 §9.3.1 asks of a pipelining client. Only after a connection that answered at least
//!   one request: a server that closes before answering anything fails them.
//! - **Errors are the SDK's**, mapped once by [`crate::transport::classify`] (in [`Failure::sdk`], which keeps
//!   the error for the report's example): a timeout names where its time went
//!   (`timeout_write`, `timeout_read`, `timeout_request`); a connection that closes or resets fails every
//!   request in flight with that kind; a reply to another request or bytes nobody asked for are a protocol
//!   error. A connection that cannot be opened fails the request that would have gone first.
//! - **After a timeout**, a closed loop's connection takes no new request, drains, and is reopened. An open
//!   loop's keeps going (a slow server stays loaded as the schedule asks): the timed-out request keeps its
//!   place until its late reply comes ([`sockpool::Pipelined::keep_open_after_timeout`]); a connection
//!   whose every place has been taken by timed-out requests for `--timeout` is given up and reopened. A
//!   failed connection is reopened after [`RECONNECT_BACKOFF`], one the server closed by announcement at once.

use std::rc::Rc;

use bytes::Bytes;
use futures::future::{FutureExt, LocalBoxFuture};
use sockpool::transport::{Connector, Endpoint, Stream};
use sockpool::{Completion, Pipelined, Timeouts};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};

use crate::check::{Check, Failure};
use crate::config::Config;
use crate::driver::{Due, Feed, Take, RECONNECT_BACKOFF};
use crate::scenario::Generator;
use crate::transport::{socket_options, tls_config, Speak};

/// One worker's pipelined connections to one target.
pub struct Pipeline<P: Speak> {
    /// Builds requests, classifies replies, makes each connection's codec.
    protocol: P,
    /// How replies are judged.
    check: Check,
    /// The check compares each reply with its request's bytes: keep them while it is in flight.
    compare: bool,
    /// The request every one of the run's is, when they are all the same: built once, sent by reference.
    fixed: Option<Fixed<P::Request>>,
    /// Opens connections with the run's socket options, TLS settings and connect timeout.
    connector: Connector,
    /// Where to connect.
    endpoint: Endpoint,
    /// Connections this worker keeps open.
    connections: usize,
    /// Requests in flight on each (`--pipeline`).
    depth: usize,
    /// The most one reply may hold (`--max-reply`), given to each connection.
    max_reply: usize,
}

/// What the load generator keeps of a request in flight: the token it sends with it. Kept to 56 bytes: it is
/// moved into the connection's queue and out again with its reply, and at this size those moves are a few
/// register stores instead of `memcpy` calls (it was 112 bytes, and P16 against redis paid ~70 instructions a
/// request for them).
struct Token {
    /// When it was due and sent, and how it waited.
    due: Due,
    /// Payload bytes it carries.
    bytes_sent: u64,
    /// The request's bytes, when its reply is compared with them ([`Check::compares_request`]); boxed, as few
    /// runs compare.
    expect: Option<Box<Bytes>>,
}

const _: () = assert!(std::mem::size_of::<Token>() <= 56);

/// A request that is the same every time ([`Generator::constant`]) and what each send of it records.
struct Fixed<R> {
    request: R,
    /// Its payload bytes.
    bytes_sent: u64,
    /// Its bytes, when the check compares replies with them.
    expect: Option<Bytes>,
}

/// What a reply is compared with when the request's bytes were not kept.
static NOTHING: Bytes = Bytes::new();

/// What woke a session's connection.
enum Woke<D> {
    /// A completion (`None`: nothing left in flight, or the connection ended).
    Reply(Option<D>),
    /// An open loop's next request is due.
    Due,
    /// Every place on the connection has been held by timed-out requests for `--timeout`.
    GiveUp,
}

/// How a session ended, and so what its connection slot does next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// The run allows no more requests: the slot ends.
    Finished,
    /// The server announced its close, or closed the connection while it was idle: reconnect at once.
    Drained,
    /// The connection failed or a request timed out, as this says: reconnect after [`RECONNECT_BACKOFF`].
    Failed(String),
    /// The server sent bytes with no request in flight, as this says: it broke the protocol (counted apart,
    /// see [`Feed::broke`]); reconnect after [`RECONNECT_BACKOFF`].
    Stray(String),
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
        let timeouts = Timeouts::default()
            .with_connect(config.connect_timeout)
            .with_tls_handshake(config.connect_timeout);
        let tls = tls_config(config);
        let connector = Connector::new(socket_options(config), &timeouts, tls.as_ref())
            .map_err(|e| e.to_string())?;
        let compare = config.check.compares_request(config.protocol);
        let fixed = Generator::new(config, 0).constant().and_then(|req| {
            let bytes_sent = req.payload_len() as u64;
            let expect = compare.then(|| req.bytes());
            let request = protocol.fixed(req)?;
            Some(Fixed {
                request,
                bytes_sent,
                expect,
            })
        });
        Ok(Pipeline {
            protocol,
            check: config.check.clone(),
            compare,
            fixed,
            connector,
            endpoint,
            connections,
            depth: config.pipeline.max(1),
            max_reply: config.max_reply,
        })
    }

    /// Runs the load: one task per connection until `feed` has no more requests and every request in flight
    /// has finished.
    pub fn run(self: &Rc<Self>, feed: Rc<Feed>) -> LocalBoxFuture<'static, ()> {
        let me = self.clone();
        async move {
            let mut tasks = JoinSet::new();
            for _ in 0..me.connections {
                tasks.spawn_local(me.clone().connection(feed.clone()));
            }
            while tasks.join_next().await.is_some() {}
        }
        .boxed_local()
    }

    /// One connection slot: connect, run a session, reconnect, until the feed is done.
    async fn connection(self: Rc<Self>, feed: Rc<Feed>) {
        let mut next_id = 0u64;
        // Requests a server's announced close left unanswered: sent again first on the next connection.
        let mut again: Vec<Due> = Vec::new();
        loop {
            let started = Instant::now();
            if feed.is_done(started) && again.is_empty() {
                return;
            }
            // Boxed: the connect future (TCP connect and a TLS handshake's state) is larger than a session's,
            // and every connection's task would otherwise carry its size for the whole run.
            let connect = Box::pin(self.connector.connect(&self.endpoint, None));
            // A connection still opening when the duration ends (or at Ctrl-C) would carry nothing: it is
            // given up then, so that a server slow to accept or to finish a TLS handshake holds the run for
            // at most its duration, not its `--connect-timeout` on top. It took no request. (One that is to
            // send again what a server's announced close left unanswered is awaited: those are in flight.)
            let connected = if again.is_empty() {
                tokio::select! {
                    biased;
                    r = connect => r,
                    _ = feed.closed() => return,
                }
            } else {
                connect.await
            };
            match connected {
                Ok(stream) => {
                    feed.connected(started.elapsed());
                    match self.session(&feed, stream, &mut next_id, &mut again).await {
                        End::Finished if again.is_empty() => return,
                        // The feed is done, but a close left requests to send again.
                        End::Finished => {
                            feed.closed_as_announced();
                            continue;
                        }
                        End::Drained => {
                            feed.closed_as_announced();
                            continue;
                        }
                        End::Failed(why) => feed.broke(why, false),
                        End::Stray(why) => feed.broke(why, true),
                    }
                }
                Err(e) => {
                    // The requests waiting to be sent again fail with the connection that was to carry them.
                    let now = Instant::now();
                    for due in again.drain(..) {
                        let copy = sockpool::Error::new(e.kind(), e.phase(), e.to_string());
                        feed.finished(&due, now, 0, Err(Failure::sdk(copy)));
                    }
                    // The request that would have gone first fails, as it does through the SDK client.
                    match feed.take(now, now) {
                        Take::Send(due) => {
                            feed.finished(&due, now, 0, Err(Failure::sdk(e)));
                        }
                        Take::Wait => {}
                        Take::Done => return,
                    }
                }
            }
            sleep(RECONNECT_BACKOFF).await;
        }
    }

    /// Drives one open connection until it fails, is drained after a timeout or a server close, or the feed is
    /// done and nothing is left in flight.
    ///
    /// The connection is made here, from `stream`, so that it lives in this future only: built by the caller
    /// and moved in, it took a place in the connection task's future as well. With the boxed give-up timer
    /// below, an HTTP connection's task future went from 1,872 to 1,128 bytes (6 MB at 8,000 connections).
    async fn session(
        &self,
        feed: &Feed,
        stream: Stream,
        next_id: &mut u64,
        again: &mut Vec<Due>,
    ) -> End {
        let mut conn = Pipelined::new(stream, self.protocol.clone(), feed.timeout());
        // Checked with the flags (`config::max_reply`), and nothing is sent yet: this cannot fail.
        if let Err(e) = conn.set_max_reply(self.max_reply) {
            return End::Failed(e.to_string());
        }
        if feed.keeps_connections_after_timeout() {
            conn.keep_open_after_timeout();
        }
        let mut carried = std::mem::take(again).into_iter();
        while let Some(due) = carried.next() {
            if let Err(e) = self.send(&mut conn, feed, due, next_id) {
                // The ones not yet sent wait for the next connection (never dropped from the count).
                again.extend(carried);
                return e;
            }
        }
        // Whether this connection answered a request: only then are requests its close leaves sent again.
        let mut answered = false;
        let mut finished = false;
        let mut now = Instant::now();
        // Since when a slot has been free while nothing was due (`None`: it freed at `now`).
        let mut free_since: Option<Instant> = None;
        // Since when every place on the connection has been taken by timed-out requests.
        let mut stuck_since: Option<Instant> = None;
        // Whether the connection waited for the feed with nothing in flight since it was last looked at.
        let mut idled = false;
        loop {
            // A connection left idle (an open loop with nothing due) may have been closed by the server at its
            // idle timeout meanwhile: looked at before a request goes out on it (an atomic load unless the
            // socket turned readable), so that none is sent into a closed connection and fails for it. A closed
            // loop's connections are never idle.
            if idled && conn.pending() == 0 {
                conn.check_idle();
            }
            idled = false;
            // Fill every free slot; requests sent before the next write share one send time.
            let mut waiting = false;
            while !finished && conn.is_open() && conn.pending() < self.depth {
                match feed.take(now, free_since.unwrap_or(now)) {
                    Take::Send(due) => {
                        if let Err(e) = self.send(&mut conn, feed, due, next_id) {
                            return e;
                        }
                    }
                    Take::Wait => {
                        waiting = true;
                        break;
                    }
                    Take::Done => finished = true,
                }
            }
            if finished && conn.in_flight() == 0 {
                return End::Finished;
            }
            if waiting {
                free_since.get_or_insert(now);
            } else {
                free_since = None;
            }
            if conn.pending() == 0 && !waiting {
                return self.ended(&conn, finished);
            }
            let stuck = conn.in_flight() == 0 && conn.pending() >= self.depth;
            if stuck && feed.is_done(now) {
                // Only late replies of requests already counted as timed out hold its places, and no more
                // requests come: waiting for them would run past `--duration` + `--timeout`.
                return End::Finished;
            }
            stuck_since = if stuck {
                stuck_since.or(Some(now))
            } else {
                None
            };
            let give_up = stuck_since.map(|s| s + feed.timeout());
            let woke = if !waiting && give_up.is_none() {
                // Only replies (or the connection's own timer) can wake it: a closed loop's every turn, and an
                // open loop's with nothing due. No `select!` to build and poll (0.7% of the closed loop's CPU).
                Woke::Reply(conn.next().await)
            } else {
                // Lazy: nothing is built (no timer registered) unless the branch is polled, and boxed: a timer
                // is rarely needed, and inline it would be part of every connection's future.
                let give_up = async {
                    match give_up {
                        Some(at) => Box::pin(sleep_until(at)).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    done = conn.next(), if conn.pending() > 0 => Woke::Reply(done),
                    _ = feed.due(), if waiting => Woke::Due,
                    _ = feed.over(), if stuck_since.is_some() => Woke::Due,
                    _ = give_up => Woke::GiveUp,
                }
            };
            match woke {
                Woke::Reply(Some(done)) => {
                    now = done.at;
                    self.complete(feed, done, &mut answered, again);
                    // The other replies the same read brought, before the slots they free are filled again.
                    while let Some(done) = conn.try_next() {
                        self.complete(feed, done, &mut answered, again);
                    }
                }
                Woke::Reply(None) if conn.is_open() => now = Instant::now(),
                Woke::Reply(None) => return self.ended(&conn, finished),
                Woke::Due => {
                    idled = conn.pending() == 0;
                    now = Instant::now();
                }
                Woke::GiveUp => {
                    return End::Failed(
                        "every place on it held by timed-out requests for --timeout".into(),
                    )
                }
            }
        }
    }

    /// Records a completed request; one that the server's announced close left unanswered goes to `again`
    /// instead (see the module docs). `answered`: whether the connection has answered one yet.
    fn complete(
        &self,
        feed: &Feed,
        done: Completion<Token, P::Response>,
        answered: &mut bool,
        again: &mut Vec<Due>,
    ) {
        let t = done.token;
        let result = match done.result {
            Ok(reply) => {
                *answered = true;
                let expect = t.expect.as_deref().unwrap_or(&NOTHING);
                self.protocol.reply(&self.check, expect, &reply)
            }
            // The SDK says which failures the server's announced close left unprocessed.
            Err(e) if e.is_server_close() && *answered => {
                again.push(t.due);
                return;
            }
            Err(e) => {
                let sent = if e.was_sent() { t.bytes_sent } else { 0 };
                return feed.finished(&t.due, done.at, sent, Err(Failure::sdk(e)));
            }
        };
        feed.finished(&t.due, done.at, t.bytes_sent, result);
    }

    /// Sends the request taken as `due` on `conn`; its deadline counts from its intended send time. A request
    /// the codec cannot encode fails unsent, and so does the connection.
    fn send(
        &self,
        conn: &mut Pipelined<P, Token>,
        feed: &Feed,
        due: Due,
        next_id: &mut u64,
    ) -> Result<(), End> {
        let sent = match &self.fixed {
            Some(f) => {
                let token = Token {
                    due,
                    bytes_sent: f.bytes_sent,
                    expect: f.expect.clone().map(Box::new),
                };
                P::send_ref(conn, &f.request, token, due.intended)
            }
            None => {
                let req = feed.next_request();
                let token = Token {
                    due,
                    bytes_sent: req.payload_len() as u64,
                    expect: self.compare.then(|| Box::new(req.bytes())),
                };
                let request = self.protocol.request(req, *next_id);
                *next_id = next_id.wrapping_add(1);
                conn.send(request, token, due.intended)
            }
        };
        sent.map_err(|(t, e)| {
            let why = e.to_string();
            feed.finished(&t.due, due.sent(), 0, Err(Failure::sdk(e)));
            End::Failed(why)
        })
    }

    /// How a session whose connection has nothing more to do ended.
    fn ended(&self, conn: &Pipelined<P, Token>, finished: bool) -> End {
        if finished {
            End::Finished
        } else if conn.closed_by_server() {
            End::Drained
        } else if let (Some(_), Some(why)) = (conn.stray_bytes(), conn.close_reason()) {
            End::Stray(why)
        } else {
            End::Failed(
                conn.close_reason()
                    .unwrap_or_else(|| "the connection failed".into()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::driver::tests::{config, run_logged};
    use crate::hdr::HlogWriter;
    use crate::health::Health;
    use crate::recorder::{ErrorKind, Phase};
    use crate::transport::{Lines, SdkTransport};

    /// Where the test's `.hlog` is written.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl Write for Log {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Log {
        /// Each interval line's start (s) and request count (its corrected histogram's count).
        fn intervals(&self) -> Vec<(f64, u64)> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
                .map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    let h = crate::hdr::from_base64(f[3]).expect("an interval histogram");
                    (f[0].parse().unwrap(), h.len())
                })
                .collect()
        }
    }

    /// A server that takes requests and never answers: every place on each connection ends up held by a
    /// timed-out request awaiting its late reply. The run still ends within `--duration` + `--timeout` (a
    /// connection stuck that way used to wait one more `--timeout` for its places: 8 s for `-d 2s --timeout
    /// 4s`), and every scheduled request is counted once.
    #[tokio::test(start_paused = true)]
    async fn an_open_loop_against_a_silent_server_ends_within_duration_and_timeout() {
        let server = sockpool_testkit::slow::line_echo(Duration::from_secs(24 * 3600)).await;
        let target = server.addr.to_string();
        let c = config(|a| {
            a.target = Some(target.clone());
            a.service.protocol = Some("line".into());
            a.rate = Some(1000.0);
            a.duration = Some("2s".into());
            a.connections = Some(4);
            a.timeout = Some("4s".into());
        });
        let pipeline = Pipeline::new(Lines::new(1), &c, &target, 4).unwrap();
        let started = Instant::now(); // paused tokio clock: exact
                                      // Bounded (in paused time) so that a run that does not end fails here instead of hanging.
        let run = run_logged(&c, SdkTransport::new(pipeline), None);
        let (col, _) = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("the run ended");
        let took = started.elapsed();
        let t = &col.total;
        assert_eq!(t.ok, 0);
        assert_eq!(
            t.requests(),
            2000,
            "every scheduled request counted once: {:?}",
            t.errors
        );
        assert!(
            took <= Duration::from_millis(2000 + 4000 + 20),
            "ended after {took:?}"
        );
    }

    /// `run --target tls://… -d 2s --connect-timeout 10s --timeout 1s` against a server that accepts and never
    /// answers the TLS handshake took 10 s (and Ctrl-C at 1 s waited the same 10 s): the connections still
    /// opening held the run for their connect timeout, though nothing could be sent on them after the
    /// duration. They are given up when the duration ends, or at Ctrl-C; nothing was taken, nothing is lost.
    #[tokio::test(start_paused = true)]
    async fn a_connection_still_opening_does_not_outlast_the_duration_or_ctrl_c() {
        let server = sockpool_testkit::slow::line_echo(Duration::from_secs(24 * 3600)).await;
        let target = format!("tls://{}", server.addr);
        for (rate, interrupt, ends_at) in [
            (None, None, 2000),
            (Some(100.0), None, 2000),
            (None, Some(Duration::from_millis(700)), 700),
            (Some(100.0), Some(Duration::from_millis(700)), 700),
        ] {
            let c = config(|a| {
                a.target = Some(target.clone());
                a.service.protocol = Some("line".into());
                a.service.insecure = true;
                a.rate = rate;
                a.duration = Some("2s".into());
                a.connect_timeout = Some("10s".into());
                a.timeout = Some("1s".into());
            });
            let pipeline = Pipeline::new(Lines::new(1), &c, &target, 4).unwrap();
            let started = Instant::now(); // paused tokio clock: exact
            let run =
                crate::driver::tests::run_with(&c, SdkTransport::new(pipeline), None, interrupt);
            let (col, summary) = tokio::time::timeout(Duration::from_secs(60), run)
                .await
                .expect("the run ended");
            let took = started.elapsed();
            assert!(
                took <= Duration::from_millis(ends_at + 20),
                "rate {rate:?}, Ctrl-C {interrupt:?}: ended after {took:?}"
            );
            assert_eq!(summary.connects, 0);
            // The closed loop took nothing; the open loop's schedule is counted once each, as requests that
            // found no connection (pool-wait timeouts, then unsent at the end).
            let t = &col.total;
            // (At Ctrl-C, the request due at that very moment too.)
            let scheduled = rate.map_or(0, |r| {
                (r * ends_at as f64 / 1e3) as u64 + u64::from(interrupt.is_some())
            });
            let unconnected =
                t.errors.get(ErrorKind::Timeout(Phase::PoolWait)) + t.errors.get(ErrorKind::Unsent);
            assert_eq!(t.ok, 0);
            assert_eq!(
                (t.requests(), unconnected),
                (scheduled, scheduled),
                "{:?}",
                t.errors
            );
        }
    }

    /// Issue 13 item 3: an open loop at 100× what a slow server can answer does not collapse. The server (in
    /// process, on the paused clock) answers one line at a time per connection in 10 ms: 4 connections ×
    /// 100/s = 400/s; 40,000/s are offered for 2 s with a 500 ms timeout.
    #[tokio::test(start_paused = true)]
    async fn an_open_loop_100x_past_a_slow_servers_capacity_never_collapses() {
        let server = sockpool_testkit::slow::line_echo(Duration::from_millis(10)).await;
        let target = server.addr.to_string();
        let c = config(|a| {
            a.target = Some(target.clone());
            a.service.protocol = Some("line".into());
            a.rate = Some(40_000.0);
            a.duration = Some("2s".into());
            a.connections = Some(4);
            a.timeout = Some("500ms".into());
        });
        let pipeline = Pipeline::new(Lines::new(1), &c, &target, 4).unwrap();
        let log = Log::default();
        let hlog = HlogWriter::new(
            Box::new(log.clone()) as Box<dyn Write + Send>,
            SystemTime::now(),
            "overload",
        )
        .unwrap();
        let started = Instant::now(); // paused tokio clock: exact
        let (col, summary) = run_logged(&c, SdkTransport::new(pipeline), Some(hlog)).await;
        let took = started.elapsed();
        let t = &col.total;
        let served = server.served();
        eprintln!(
            "took {took:?}, served {served}, ok {}, errors {:?}, most in flight {}",
            t.ok, t.errors, summary.most_in_flight
        );

        // 1. Bounded: never more requests taken than slots (a request exists only once taken: the 79,000 that
        // never got a slot were a position in the schedule, counted when their deadline passed).
        assert_eq!(summary.most_in_flight, 4, "in flight at most the 4 slots");

        // 2. Replies and timeouts kept being processed: the server was busy all along at its 400/s for the 2 s,
        // and every request it was sent was answered or timed out on the wire.
        assert!((790..=804).contains(&served), "served {served}");
        let on_wire = t.ok
            + t.errors.get(ErrorKind::Timeout(Phase::Read))
            + t.errors.get(ErrorKind::Timeout(Phase::Request));
        assert!(
            on_wire >= served && on_wire <= served + 4,
            "sent {on_wire}, served {served}"
        );
        assert_eq!(t.requests(), 80_000, "every scheduled request counted once");
        let unsent = t.errors.get(ErrorKind::Unsent);
        assert_eq!(
            t.errors.get(ErrorKind::Timeout(Phase::PoolWait)) + unsent,
            80_000 - on_wire,
            "the rest found no slot before their deadline, or before the end (never sent)"
        );
        assert!(unsent.abs_diff(20_000) <= 100, "unsent {unsent}");

        // 3. On time: nothing sent after --duration; only the requests under way (10 ms) are waited for.
        assert!(
            took <= Duration::from_millis(2000 + 20),
            "ended after {took:?}"
        );

        // 4. Each interval holds what completed in it, not what was scheduled in it (40,000 a second): second
        // 0 the requests due in its first half (their deadlines fell in it), second 1 those due in [0.5 s, 1.5 s)
        // and what completed; the unsent have no latency, so no interval holds them.
        let hlog = log.intervals();
        let counts: Vec<u64> = hlog.iter().map(|&(_, n)| n).collect();
        assert!((2..=3).contains(&counts.len()), "intervals {hlog:?}");
        assert_eq!(counts.iter().sum::<u64>(), 80_000 - unsent);
        for (got, want) in counts.iter().zip([20_000u64, 40_000]) {
            assert!(got.abs_diff(want) <= 100, "intervals {hlog:?}");
        }
        assert!(col.series.iter().all(|s| s.errors > 0));

        // The report blames the server, not the load generator: the overload shows as waits for a slot, the
        // sender itself was never late, and the health check says the server could not keep up.
        assert!(t.pool_wait.max() >= Duration::from_millis(400).as_nanos() as u64);
        assert!(
            t.send_lag.max() <= Duration::from_millis(1).as_nanos() as u64,
            "send lag {} ns",
            t.send_lag.max()
        );
        let lag = |q: f64| Duration::from_nanos(t.send_lag.value_at_quantile(q));
        let health = Health::assess(
            &[Duration::ZERO],
            Duration::from_secs(2),
            true,
            (lag(0.5), lag(0.99), lag(1.0)),
            // The requests the server did not answer in time timed out: none failed fast.
            Some(crate::health::Achieved {
                replies: t.ok as f64 / 2.0 / 40_000.0,
                replies_and_fast_failures: t.ok as f64 / 2.0 / 40_000.0,
            }),
            Default::default(),
        );
        assert!(!health.bottleneck, "{:?}", health.warnings);
        assert!(
            health
                .warnings
                .iter()
                .any(|w| w.contains("could not keep up")),
            "{:?}",
            health.warnings
        );
    }
}
