//! Sending load: the closed loop, the open loop on a schedule, the ramp, warm-up and stop conditions.
//!
//! The run is split over `--threads` workers. Each worker is one OS thread with a single-threaded tokio
//! runtime; it owns its share of the connections (its own SDK client), its own [`Recorder`] and its own
//! slice of the schedule, so nothing on the hot path is shared between threads. Every second a worker hands
//! its interval to the collector on the calling thread, which merges them (see [`crate::recorder::Collector`]).
//!
//! Both loops send through the same senders: for TCP, TLS and Unix targets one task per connection
//! ([`crate::pipeline`], on the SDK's [`sockpool::Pipelined`]) keeping up to `--pipeline` requests in flight;
//! otherwise (UDP, test fakes) one task per slot awaiting [`Transport::call`]. A sender with a free slot takes
//! its next request from the worker's [`Feed`]:
//!
//! **Closed loop** (no `--rate`): [`ClosedLoop`] hands out a request whenever a slot is free. Intended send
//! time = actual send time.
//!
//! **Open loop** (`--rate`, `--ramp`): [`OpenLoop`] walks a schedule of intended send times and hands out each
//! request once it is due, to whichever sender has a free slot, oldest first. Nothing exists for a request
//! not yet sent (the schedule is a position, not a queue), so memory and tasks are bounded by the slots
//! whatever the rate. Latency is measured from the *intended* time (corrected) and from the actual send
//! (raw). A request's time before its send splits into *send lag* (the load generator got to it late: its own
//! fault) and *pool wait* (every slot was busy: the server's fault, or too few connections). A request still
//! unsent at its deadline (intended time + `--timeout`) is a `timeout_pool_wait` error, recorded then; one
//! still unsent when the duration ends is never sent (no load after `--duration`) and counted as `unsent`.
//!
//! The open loop's dispatcher waits for each intended time on a [`Pacer`](crate::pacer::Pacer) (a
//! high-resolution `timerfd`, not tokio's millisecond timer), so on an idle machine requests go out within tens
//! of microseconds of the schedule (within ~100 µs above 10,000 requests/s per worker, see
//! [`crate::pacer::MIN_INTERVAL`]). Whatever lag remains is (honestly) part of the corrected latency; the report
//! shows it as *send lag*; see [`crate::health::LAG_WARN`].

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::check::Failure;
use crate::config::{Load, Stop};
use crate::interrupt::Interrupt;
pub use crate::open::OpenLoop;
use crate::recorder::{ErrorKind, Interval, Phase, Recorder, Sample};
use crate::scenario::{Generator, Req};

/// After a failed connection attempt, a closed-loop slot waits this long before trying again, so that a
/// dead server is probed rather than hammered. Default: 10 ms.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// The driver's own deadline on a call is `--timeout` plus this, so that the transport's timeout (which knows
/// the phase that ran out) normally fires first; the driver's is a backstop (`timeout_request`).
pub const TIMEOUT_SLACK: Duration = Duration::from_millis(50);

/// How one call went, as the transport reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Payload bytes received, or why the call failed (the reply's check included, see [`crate::check`]).
    pub result: Result<u64, Failure>,
    /// Time spent connecting, when this call opened a connection.
    pub connect: Option<Duration>,
    /// Time the transport itself waited for a connection/slot.
    pub pool_wait: Option<Duration>,
    /// True when the request (or part of it) was written to the socket: its payload counts as sent.
    pub written: bool,
}

impl Outcome {
    /// A failure, before anything was written, with no timings.
    pub fn failed(f: Failure) -> Outcome {
        Outcome {
            result: Err(f),
            connect: None,
            pool_wait: None,
            written: false,
        }
    }
}

/// Something that sends one request and reports how it went (the SDK adapters in [`crate::transport`],
/// or a fake in tests). One per worker; it lives on the worker's thread, so it need not be `Send`.
pub trait Transport: 'static {
    /// Sends `req` and waits for its reply, giving up at `deadline` (the request's intended send time plus
    /// `--timeout`) with a timeout that names the phase it ran out in.
    fn call(&self, req: Req, deadline: Instant) -> impl Future<Output = Outcome>;

    /// Runs the whole load itself (see [`crate::pipeline`]: one task per connection keeping its pipeline
    /// full), taking each request from `feed`. `None`: this transport has no such path, and the driver runs
    /// `connections × pipeline` slots that each await [`call`](Self::call). Default: `None`.
    fn connections(&self, _feed: Rc<Feed>) -> Option<LocalBoxFuture<'static, ()>> {
        None
    }

    /// Connections that the transport's own pool closed because the server sent bytes with no request in
    /// flight, so far (a pooled SDK client counts them in its stats; [`connections`](Self::connections)
    /// reports each through [`Feed::broke`] instead). Default: 0.
    fn stray_closes(&self) -> u64 {
        0
    }
}

/// One worker's share of the run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// This worker's index.
    pub worker: usize,
    /// Number of workers.
    pub workers: usize,
    /// Requests this worker may have in flight (its connections × pipeline).
    pub slots: usize,
    /// Pacing (rates are for the whole run; this worker takes `1/workers` of them).
    pub load: Load,
    /// When to stop (a request budget is already this worker's share).
    pub stop: Stop,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Cancelled on Ctrl-C/SIGTERM: no new request is sent; those in flight finish or time out.
    pub interrupt: CancellationToken,
    /// When the first worker saw the interrupt, shared by every worker of the run: each closes its window
    /// there, so that their intervals are cut at one instant (workers seeing it a few ms apart made the
    /// merged window and drain intervals overlap).
    pub interrupted_at: std::sync::Arc<std::sync::OnceLock<Instant>>,
}

impl Plan {
    /// The end of the duration, from the run's start (warm-up included); `None` for a request budget.
    pub fn end(&self) -> Option<Duration> {
        match self.stop {
            Stop::Duration(d) => Some(self.warmup + d),
            Stop::Requests(_) => None,
        }
    }

    /// Worker `worker`'s share of `requests`: an even split, the remainder to the first workers.
    pub fn share(requests: u64, worker: usize, workers: usize) -> u64 {
        let w = workers.max(1) as u64;
        requests / w + u64::from((worker as u64) < requests % w)
    }
}

/// What a worker hands to the collector.
#[derive(Debug)]
pub enum Report {
    /// Interval `index` (increasing with its start; see `interval_key`), `start` and `length` as offsets from
    /// measuring start. Intervals are cut on
    /// every whole second and at the end of the measurement window, so that none holds both what finished in
    /// the window and what finished in the drain after it.
    Interval {
        /// Interval number.
        index: u64,
        /// Start, since measuring began.
        start: Duration,
        /// Length.
        length: Duration,
        /// True when it began at or after the end of the measurement window: everything in it is the drain.
        drain: bool,
        /// The measurements.
        interval: Box<Interval>,
    },
    /// The worker finished.
    Done(WorkerSummary),
}

/// A worker's closing figures.
#[derive(Debug, Clone, Default)]
pub struct WorkerSummary {
    /// Time from measuring start until the worker's last request finished (a duration's: at least until the
    /// duration ended or the run stopped).
    pub elapsed: Duration,
    /// The measurement window: from measuring start to the end of the duration (or to Ctrl-C); with a request
    /// budget, `elapsed`. Rates are measured over it; what finished after it is the drain
    /// ([`crate::recorder::Drain`]).
    pub window: Duration,
    /// CPU time the worker thread used while measuring.
    pub cpu: Duration,
    /// Time the worker thread waited for a CPU while measuring (`None` where the kernel does not say).
    pub cpu_wait: Option<Duration>,
    /// Connections opened (including the first ones).
    pub connects: u64,
    /// Connections the server closed as it announced (HTTP `Connection: close`) or while idle.
    pub announced_closes: u64,
    /// Connections that failed.
    pub broken: u64,
    /// Why the first of them did.
    pub first_break: Option<String>,
    /// Of them, those the server sent bytes with no request in flight: it broke the protocol.
    pub stray: u64,
    /// The most requests in flight at once (taken from the feed and not yet finished): at most the worker's
    /// slots, whatever the rate asked for.
    pub most_in_flight: usize,
}

/// What every part of one worker shares: its request generator, its recorder and its clocks.
pub(crate) struct Worker {
    /// Makes the requests.
    gen: RefCell<Generator>,
    /// This worker's histograms and counts of what finished in the measurement window.
    rec: RefCell<Recorder>,
    /// The same for what finished after the window closed (the drain): kept apart, so that the interval the
    /// window's end falls in holds the window's requests only, whenever the ticker gets to cut it.
    drain_rec: RefCell<Recorder>,
    /// Requests sent before this are warm-up (not recorded).
    measure_from: Instant,
    /// Per-request timeout.
    timeout: Duration,
    /// When the latest request finished (the worker's elapsed time ends there).
    last_done: Cell<Instant>,
    /// When the measurement window closes: the end of the duration, or Ctrl-C (`None`: a request budget,
    /// not interrupted). What finishes after it is recorded as drained.
    window_end: Cell<Option<Instant>>,
    /// Connections opened.
    connects: Cell<u64>,
    /// Connections the server closed as it announced (HTTP `Connection: close`) or while idle.
    announced_closes: Cell<u64>,
    /// Connections that failed (reset, closed unannounced, bytes nobody asked for, a timeout), and why the
    /// first did.
    broken: Cell<u64>,
    first_break: RefCell<Option<String>>,
    /// Of the failed connections, those that got bytes with no request in flight.
    stray: Cell<u64>,
    /// Requests taken from the feed and not yet finished.
    in_flight: Cell<usize>,
    /// The most of them at once.
    most_in_flight: Cell<usize>,
}

impl Worker {
    /// Is a request due at `intended` measured (past the warm-up)?
    pub(crate) fn measures(&self, intended: Instant) -> bool {
        intended >= self.measure_from
    }

    /// Per-request timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A request was taken from the feed.
    fn took(&self) {
        let n = self.in_flight.get() + 1;
        self.in_flight.set(n);
        self.most_in_flight.set(self.most_in_flight.get().max(n));
    }

    /// `n` measured requests found no slot before their deadline, noticed at `now`: pool-wait timeouts with a
    /// corrected latency of exactly `--timeout`.
    pub(crate) fn expired(&self, n: u64, now: Instant) {
        if n > 0 {
            let mut rec = self.rec_at(now);
            rec.record_timeouts(ErrorKind::Timeout(Phase::PoolWait), self.timeout, n);
            if self.after_window(now) {
                rec.record_drained(n, 0, 0, 0);
            }
            self.last_done.set(self.last_done.get().max(now));
        }
    }

    /// The recorder of what finishes at `at`: the window's, or the drain's.
    fn rec_at(&self, at: Instant) -> std::cell::RefMut<'_, Recorder> {
        if self.after_window(at) {
            self.drain_rec.borrow_mut()
        } else {
            self.rec.borrow_mut()
        }
    }

    /// True when `at` is past the measurement window (the drain).
    fn after_window(&self, at: Instant) -> bool {
        self.window_end.get().is_some_and(|end| at > end)
    }

    /// The measurement window closes at `at` unless it closed earlier (Ctrl-C).
    fn close_window(&self, at: Instant) {
        let at = at.max(self.measure_from);
        self.window_end
            .set(Some(self.window_end.get().map_or(at, |end| end.min(at))));
    }

    /// `n` measured requests were never sent: the run's duration ended (or it was interrupted) first. Nothing
    /// finished, so the measured window does not grow for them.
    pub(crate) fn unsent(&self, n: u64) {
        if n > 0 {
            self.rec.borrow_mut().record_unsent(n);
        }
    }

    /// A request taken as `due` finished at `done` with `result` (payload bytes received, or the failure);
    /// `bytes_sent` is the payload it put on the wire (0 when it never left). `connect`: the time this call
    /// spent opening a connection; `waited`: the time the transport itself waited for a connection. Both are
    /// left out of the raw latency; a slot wait is part of the corrected one.
    pub(crate) fn finished(
        &self,
        due: &Due,
        done: Instant,
        bytes_sent: u64,
        result: Result<u64, Failure>,
        (connect, waited): (Option<Duration>, Option<Duration>),
    ) {
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        self.last_done.set(self.last_done.get().max(done));
        if connect.is_some() {
            self.connects.set(self.connects.get() + 1);
        }
        let mut rec = self.rec_at(done);
        if !due.measured {
            // Warm-up: only connection set-up is kept (every connection opened is worth reporting).
            if let Some(d) = connect {
                rec.record_connect(d);
            }
            return;
        }
        // One clock subtraction: the raw latency is the corrected one less what came before the wire.
        let corrected = done.saturating_duration_since(due.intended);
        if self.after_window(done) {
            let (replied, received) = match &result {
                Ok(b) => (1, *b),
                Err(f) => (
                    u64::from(matches!(
                        f.kind,
                        ErrorKind::ServerError | ErrorKind::BadReply
                    )),
                    u64::from(f.received),
                ),
            };
            rec.record_drained(1, replied, bytes_sent, received);
        }
        match result {
            Ok(bytes_received) => {
                let before_wire =
                    due.before_send() + waited.unwrap_or_default() + connect.unwrap_or_default();
                rec.record_ok(&Sample {
                    corrected,
                    raw: corrected.saturating_sub(before_wire),
                    connect,
                    // A closed loop sends as a slot frees, through no pool: nothing is recorded (the report
                    // shows `-`, not a column of zeros).
                    pool_wait: match (due.slot_wait(), waited) {
                        (None, None) => None,
                        (a, b) => Some(a.unwrap_or_default() + b.unwrap_or_default()),
                    },
                    send_lag: due.send_lag(),
                    bytes_sent,
                    bytes_received,
                })
            }
            Err(f) => {
                if let Some(lag) = due.send_lag() {
                    rec.record_send_lag(lag);
                }
                rec.record_failure(&f, corrected, connect, bytes_sent)
            }
        }
    }
}

/// A request a sender took from its [`Feed`]: when it was due, when it went out and how the time between
/// splits.
///
/// Small on purpose (40 bytes): every request in flight carries one in its token, which is moved into the
/// connection's queue and out again with the reply. The waits are whole nanoseconds (`u64`: centuries), and
/// the send time is the intended time plus both, so the latencies come out of one clock subtraction.
#[derive(Debug, Clone, Copy)]
pub struct Due {
    /// Its intended send time (the closed loop's: when it was taken). Its deadline is this + `--timeout`.
    pub intended: Instant,
    /// Open loop: nanoseconds it waited, once due, because every slot was busy; [`CLOSED`] in a closed loop.
    slot_wait_ns: u64,
    /// Open loop: nanoseconds the load generator itself was late to it once a slot was free (0 in a closed loop).
    send_lag_ns: u64,
    /// Counted in the results (not warm-up).
    pub measured: bool,
}

const _: () = assert!(std::mem::size_of::<Due>() <= 40);

/// [`Due::slot_wait_ns`] of a closed loop's request: sent as it was taken, through no wait of its own.
const CLOSED: u64 = u64::MAX;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
}

impl Due {
    /// A closed loop's request, taken and sent at `now`.
    pub fn closed(now: Instant, measured: bool) -> Due {
        Due {
            intended: now,
            slot_wait_ns: CLOSED,
            send_lag_ns: 0,
            measured,
        }
    }

    /// An open loop's request due at `intended`, whose slot was free from `free` and which went out at `sent`
    /// (`intended <= free <= sent`).
    pub fn open(intended: Instant, free: Instant, sent: Instant, measured: bool) -> Due {
        Due {
            intended,
            slot_wait_ns: nanos(free - intended),
            send_lag_ns: nanos(sent - free),
            measured,
        }
    }

    /// Open loop: how long it waited, once due, because every slot was busy.
    pub fn slot_wait(&self) -> Option<Duration> {
        (self.slot_wait_ns != CLOSED).then(|| Duration::from_nanos(self.slot_wait_ns))
    }

    /// Open loop: how late the load generator itself got to it once a slot was free.
    pub fn send_lag(&self) -> Option<Duration> {
        (self.slot_wait_ns != CLOSED).then(|| Duration::from_nanos(self.send_lag_ns))
    }

    /// From its intended send time to when it went out.
    fn before_send(&self) -> Duration {
        match self.slot_wait_ns {
            CLOSED => Duration::ZERO,
            w => Duration::from_nanos(w.saturating_add(self.send_lag_ns)),
        }
    }

    /// When it was taken to be sent.
    pub fn sent(&self) -> Instant {
        self.intended + self.before_send()
    }
}

/// What a sender with a free slot gets from [`Feed::take`].
#[derive(Debug)]
pub enum Take {
    /// Send this request now.
    Send(Due),
    /// Nothing is due yet: wait for [`Feed::due`] (open loop only).
    Wait,
    /// No more requests: finish what is in flight.
    Done,
}

/// Where every sender of one worker takes its requests from (see the [module docs](self)), and where it
/// reports them.
pub enum Feed {
    /// Closed loop.
    Closed(ClosedLoop),
    /// Open loop on a schedule (boxed: it is the larger; one per worker).
    Open(Box<OpenLoop>),
}

impl Feed {
    fn worker(&self) -> &Worker {
        match self {
            Feed::Closed(c) => &c.worker,
            Feed::Open(o) => o.worker(),
        }
    }

    /// The next request for a sender with a free slot at `now`, free since `free_since` (≤ `now`).
    pub fn take(&self, now: Instant, free_since: Instant) -> Take {
        let take = match self {
            Feed::Closed(c) => match c.claim(now) {
                Some(measured) => Take::Send(Due::closed(now, measured)),
                None => Take::Done,
            },
            Feed::Open(o) => o.take(now, free_since),
        };
        if matches!(take, Take::Send(_)) {
            self.worker().took();
        }
        take
    }

    /// True when no more request will be handed out at `now` (a sender need not open a connection for one).
    pub fn is_done(&self, now: Instant) -> bool {
        match self {
            Feed::Closed(c) => !c.may_send(now),
            Feed::Open(o) => o.is_done(),
        }
    }

    /// Returns when [`take`](Self::take) may have a request again after it said [`Take::Wait`] (never, in a
    /// closed loop, whose `take` never says it).
    pub async fn due(&self) {
        match self {
            Feed::Closed(_) => std::future::pending().await,
            Feed::Open(o) => o.due().await,
        }
    }

    /// Returns once no more request will be handed out (never, in a closed loop, whose senders end by
    /// themselves): for a connection that cannot take one and must not wait past the end for its places.
    pub async fn over(&self) {
        match self {
            Feed::Closed(_) => std::future::pending().await,
            Feed::Open(o) => o.over().await,
        }
    }

    /// Returns once no request may be sent any more: the duration is over or the run was interrupted (never,
    /// with a request budget). A connection still being opened then would carry nothing.
    pub async fn closed(&self) {
        let (end, interrupt) = match self {
            Feed::Closed(c) => (c.end, &c.interrupt),
            Feed::Open(o) => (o.end(), o.interrupt()),
        };
        let end = async {
            match end {
                Some(end) => sleep_until(end).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = end => {}
            _ = interrupt.token().cancelled() => {}
        }
    }

    /// Returns once the schedule is settled: at once in a closed loop (nothing is left unsent), and in an open
    /// loop once its dispatcher has counted every request it will not send (on Ctrl-C too, when
    /// [`over`](Self::over) returns at once).
    pub async fn settled(&self) {
        if let Feed::Open(o) = self {
            o.settled().await;
        }
    }

    /// True when a connection keeps taking requests after one timed out (the open loop: a slow server stays
    /// loaded, as the schedule asks; see [`sockpool::Pipelined::keep_open_after_timeout`]).
    pub fn keeps_connections_after_timeout(&self) -> bool {
        matches!(self, Feed::Open(_))
    }

    /// The next request to send.
    pub fn next_request(&self) -> Req {
        self.worker().gen.borrow_mut().next_request()
    }

    /// The per-request timeout (`--timeout`).
    pub fn timeout(&self) -> Duration {
        self.worker().timeout
    }

    /// The server closed a connection as it had announced, or while it was idle.
    pub fn closed_as_announced(&self) {
        let w = self.worker();
        w.announced_closes.set(w.announced_closes.get() + 1);
    }

    /// A connection failed, `why` (the first reason is kept for the report); `stray`: because the server sent
    /// bytes with no request in flight (a broken protocol, which fails the run by default: `stray>0`).
    pub fn broke(&self, why: String, stray: bool) {
        let w = self.worker();
        w.broken.set(w.broken.get() + 1);
        w.stray.set(w.stray.get() + u64::from(stray));
        w.first_break.borrow_mut().get_or_insert(why);
    }

    /// A connection was opened in `took` (recorded, warm-up included: every connection is worth reporting).
    pub fn connected(&self, took: Duration) {
        let w = self.worker();
        w.connects.set(w.connects.get() + 1);
        w.rec.borrow_mut().record_connect(took);
    }

    /// A request taken as `due` finished at `done` with `result` (payload bytes received, or the failure);
    /// `bytes_sent` is the payload it put on the wire (0 when it never left).
    pub fn finished(
        &self,
        due: &Due,
        done: Instant,
        bytes_sent: u64,
        result: Result<u64, Failure>,
    ) {
        self.worker()
            .finished(due, done, bytes_sent, result, (None, None));
    }
}

struct State<T> {
    transport: T,
    worker: Rc<Worker>,
}

impl<T> std::ops::Deref for State<T> {
    type Target = Worker;

    fn deref(&self) -> &Worker {
        &self.worker
    }
}

/// A closed loop's stop conditions.
///
/// Whoever sends claims a request first (through [`Feed::take`]), so that a `--requests` budget is
/// never exceeded and the duration's end stops new requests; each claimed request must then be reported
/// exactly once ([`Feed::finished`]).
pub struct ClosedLoop {
    /// The worker's generator, recorder and clocks.
    worker: Rc<Worker>,
    /// No new request at or after this (`--duration`).
    end: Option<Instant>,
    /// Measured requests this worker may send (`--requests`, its share).
    budget: Option<u64>,
    /// Measured requests claimed so far.
    claimed: Cell<u64>,
    /// Cancelled on Ctrl-C/SIGTERM: nothing more may be claimed.
    interrupt: Interrupt,
}

impl ClosedLoop {
    fn new(worker: Rc<Worker>, plan: &Plan) -> ClosedLoop {
        let (end, budget) = match plan.stop {
            Stop::Duration(d) => (Some(worker.measure_from + d), None),
            Stop::Requests(n) => (None, Some(n)),
        };
        ClosedLoop {
            worker,
            end,
            budget,
            claimed: Cell::new(0),
            interrupt: Interrupt::new(plan.interrupt.clone()),
        }
    }

    /// Claims one request to be sent at `now`: `None` when no more may be sent (the duration is over or the
    /// budget spent), else whether it is measured (`false` during warm-up, which takes nothing from the budget).
    fn claim(&self, now: Instant) -> Option<bool> {
        if !self.may_send(now) {
            return None;
        }
        let measured = now >= self.worker.measure_from;
        if measured && self.budget.is_some() {
            self.claimed.set(self.claimed.get() + 1);
        }
        Some(measured)
    }

    /// True while a request could still be claimed at `now` (nothing is claimed).
    fn may_send(&self, now: Instant) -> bool {
        if self.end.is_some_and(|e| now >= e) || self.interrupt.at(now) {
            return false;
        }
        now < self.worker.measure_from || self.budget.is_none_or(|b| self.claimed.get() < b)
    }
}

impl<T: Transport> State<T> {
    /// Sends the request taken as `due` through [`Transport::call`] and records how it went. Returns the
    /// outcome's error, if any. `backstop` is the slot's timer (see [`slots`]).
    async fn send(&self, due: Due, backstop: &mut Pin<Box<Sleep>>) -> Option<ErrorKind> {
        let req = self.gen.borrow_mut().next_request();
        let bytes_sent = req.payload_len() as u64;
        // One deadline for the whole request, from its intended send time: the wait for a slot, connecting and
        // the exchange all come out of it, so no request is recorded much later than `--timeout` after it was due.
        let deadline = due.intended + self.timeout;
        // The transport ends the call by its deadline and says in which phase; the backstop ends it
        // TIMEOUT_SLACK later if it does not. One timer for the slot, not one per request (a `timeout_at` per
        // call registered a timer and removed it again: ~1,500 instructions a request, a fifth of a tune cell's):
        // moved only when it would fire after this request's limit, and when it fires for an earlier request's
        // (answered long ago), moved to this one's.
        let limit = deadline + TIMEOUT_SLACK;
        if backstop.deadline() > limit {
            backstop.as_mut().reset(limit);
        }
        let mut call = std::pin::pin!(self.transport.call(req, deadline));
        let out = loop {
            tokio::select! {
                biased;
                out = &mut call => break out,
                () = backstop.as_mut() => {
                    if Instant::now() >= limit {
                        break Outcome {
                            written: true,
                            ..Outcome::failed(ErrorKind::Timeout(Phase::Request).into())
                        };
                    }
                    backstop.as_mut().reset(limit);
                }
            }
        };
        let kind = out.result.as_ref().err().map(|f| f.kind);
        let bytes_sent = if out.written { bytes_sent } else { 0 };
        self.worker.finished(
            &due,
            Instant::now(),
            bytes_sent,
            out.result,
            (out.connect, out.pool_wait),
        );
        kind
    }
}

fn is_connection_failure(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Refused
            | ErrorKind::Timeout(Phase::Connect)
            | ErrorKind::Timeout(Phase::TlsHandshake)
            | ErrorKind::Tls
    )
}

/// The intended send times of one worker, as offsets from the run's start (warm-up included).
#[derive(Debug, Clone)]
pub struct Schedule {
    load: Load,
    warmup: Duration,
    end: Option<Duration>,
    budget: Option<u64>,
    workers: f64,
    phase: f64,
    measured: u64,
    warm_i: u64,
    i: u64,
    step: u32,
}

impl Schedule {
    /// The schedule for `plan`: `rate/workers` per worker, workers staggered evenly.
    pub fn new(plan: &Plan) -> Schedule {
        let budget = match plan.stop {
            Stop::Duration(_) => None,
            Stop::Requests(n) => Some(n),
        };
        let end = plan.end();
        Schedule {
            load: plan.load.clone(),
            warmup: plan.warmup,
            end,
            budget,
            workers: plan.workers.max(1) as f64,
            phase: plan.worker as f64,
            measured: 0,
            warm_i: 0,
            i: 0,
            step: 0,
        }
    }

    fn rate(&self, step: u32) -> f64 {
        self.load.rate_at_step(step).unwrap_or(1.0)
    }

    /// The offset (seconds from the warm-up's start) of the warm-up's `k`-th request.
    fn warm_t(&self, k: u64) -> f64 {
        (k as f64 + self.phase / self.workers) * (self.workers / self.rate(0))
    }

    /// The offset (seconds into its step, or from the end of the warm-up without a ramp) of the `i`-th request
    /// of ramp step `step`, or of the `i`-th request at a fixed rate.
    fn step_t(&self, step: u32, i: u64) -> f64 {
        match &self.load {
            Load::Ramp { .. } => {
                (i as f64 + self.phase / self.workers) * (self.workers / self.rate(step))
            }
            _ => (i as f64 + self.phase / self.workers) * self.workers / self.rate(0),
        }
    }

    /// The offset from the run's start of a request at `t` seconds past the warm-up, when it is inside the
    /// duration (`None`: at or past its end, or too far to be a time).
    fn main_offset(&self, t: f64) -> Option<Duration> {
        let t = self
            .warmup
            .checked_add(Duration::try_from_secs_f64(t).ok()?)?;
        self.end.is_none_or(|e| t < e).then_some(t)
    }

    /// Moves past every intended time at or before `limit` (an offset from the run's start) at once, as
    /// [`next`](Iterator::next) would one by one: an open loop far behind its schedule, or whose duration has
    /// ended, passes millions of requests in a few steps. Returns how many it passed in the warm-up and after.
    pub fn skip_through(&mut self, limit: Duration) -> (u64, u64) {
        let mut warm = 0;
        if !self.warmup.is_zero() {
            let w = self.warmup.as_secs_f64();
            let to = first_outside(self.warm_i, u64::MAX, |k| {
                let t = self.warm_t(k);
                t < w && Duration::try_from_secs_f64(t).is_ok_and(|t| t <= limit)
            });
            warm = to - self.warm_i;
            self.warm_i = to;
            if self.warm_t(to) < w {
                // The warm-up's next request is past `limit`: so is everything after it.
                return (warm, 0);
            }
        }
        let mut main = 0;
        loop {
            let room = self
                .budget
                .map_or(u64::MAX, |b| b.saturating_sub(self.measured));
            if room == 0 {
                break;
            }
            let (step, step_len) = match &self.load {
                Load::Ramp { steps, step, .. } if self.step >= *steps => break,
                Load::Ramp { step, .. } => (self.step, Some(step.as_secs_f64())),
                _ => (0, None),
            };
            let base = step_len.map_or(0.0, |l| l * f64::from(step));
            let inside_step = |i: u64| step_len.is_none_or(|l| self.step_t(step, i) < l);
            let to = first_outside(self.i, room, |i| {
                inside_step(i)
                    && self
                        .main_offset(base + self.step_t(step, i))
                        .is_some_and(|t| t <= limit)
            });
            let stopped_in_step = step_len.is_none() || inside_step(to);
            main += to - self.i;
            self.measured += to - self.i;
            self.i = to;
            if stopped_in_step {
                // Stopped inside the step (or the only segment): by `limit`, the end or the budget.
                break;
            }
            self.step += 1;
            self.i = 0;
        }
        (warm, main)
    }
}

/// The first `k` from `from` (at most `from + most`) for which `inside(k)` is false, where `inside` holds for a
/// prefix of the indices: found in O(log n) steps, exactly as a walk one by one would find it.
fn first_outside(from: u64, most: u64, inside: impl Fn(u64) -> bool) -> u64 {
    let cap = from.saturating_add(most);
    if from >= cap || !inside(from) {
        return from;
    }
    // `lo` is inside; double the step until `hi` is not (or is the cap), then bisect.
    let (mut lo, mut step) = (from, 1u64);
    let mut hi = loop {
        let k = lo.saturating_add(step).min(cap);
        if k == cap || !inside(k) {
            break k;
        }
        lo = k;
        step = step.saturating_mul(2);
    };
    if hi == cap && inside(cap) {
        return cap;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if inside(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // Warm-up at the first step's rate.
        if !self.warmup.is_zero() {
            let t = self.warm_t(self.warm_i);
            if t < self.warmup.as_secs_f64() {
                self.warm_i += 1;
                return Some(Duration::from_secs_f64(t));
            }
        }
        if self.budget.is_some_and(|b| self.measured >= b) {
            return None;
        }
        let offset = match &self.load {
            Load::Ramp { steps, step, .. } => loop {
                if self.step >= *steps {
                    return None;
                }
                let t = self.step_t(self.step, self.i);
                if t < step.as_secs_f64() {
                    break step.as_secs_f64() * f64::from(self.step) + t;
                }
                self.step += 1;
                self.i = 0;
            },
            _ => self.step_t(0, self.i),
        };
        let t = self.main_offset(offset)?;
        self.i += 1;
        self.measured += 1;
        Some(t)
    }
}

/// Runs one worker to completion on the current (single-threaded) runtime, inside a `LocalSet`.
///
/// `start` is the run's start (warm-up begins there); `sink` receives each interval and, last, the summary.
pub async fn run_worker<T: Transport>(
    transport: T,
    gen: Generator,
    plan: Plan,
    start: Instant,
    sink: impl Fn(Report) + 'static,
) {
    let measure_from = start + plan.warmup;
    let state = Rc::new(State {
        transport,
        worker: Rc::new(Worker {
            gen: RefCell::new(gen),
            rec: RefCell::new(Recorder::new()),
            drain_rec: RefCell::new(Recorder::new()),
            measure_from,
            timeout: plan.timeout,
            last_done: Cell::new(measure_from),
            window_end: Cell::new(plan.end().map(|e| start + e)),
            connects: Cell::new(0),
            announced_closes: Cell::new(0),
            broken: Cell::new(0),
            first_break: RefCell::new(None),
            stray: Cell::new(0),
            in_flight: Cell::new(0),
            most_in_flight: Cell::new(0),
        }),
    });
    let sink = Rc::new(sink);
    let cut = Rc::new(Cuts::default());
    let cpu_at_start = Rc::new(Cell::new(None::<(Duration, Option<Duration>)>));
    // The feed, once the run has begun: the ticker waits for it to settle its schedule when the duration ends.
    let fed: Rc<std::cell::OnceCell<Rc<Feed>>> = Rc::default();

    // Every second, and at the end of the measurement window: hand the interval over.
    let ticker = {
        let (state, sink, cut, cpu_at_start, fed, token, interrupted_at) = (
            state.clone(),
            sink.clone(),
            cut.clone(),
            cpu_at_start.clone(),
            fed.clone(),
            plan.interrupt.clone(),
            plan.interrupted_at.clone(),
        );
        tokio::task::spawn_local(async move {
            sleep_until(measure_from).await;
            cpu_at_start.set(Some((
                crate::health::thread_cpu_time(),
                crate::health::thread_cpu_wait(),
            )));
            let mut spare = Interval::default();
            let mut interrupted = false;
            loop {
                let from = measure_from + cut.from.get();
                let (at, window_ends) = cut.next(measure_from, state.window_end.get());
                tokio::select! {
                    _ = sleep_until(at) => {}
                    // Ctrl-C: the window closes now, and the interval in progress is cut there.
                    _ = token.cancelled(), if !interrupted => {
                        interrupted = true;
                        state.close_window(*interrupted_at.get_or_init(Instant::now));
                        continue;
                    }
                }
                if window_ends {
                    // The duration has ended (or Ctrl-C): an open loop behind its schedule counts what it
                    // left unsent now. Those requests were due in the window, and are counted in its last
                    // interval, not in an interval of their own stamped at the end of the run.
                    if let Some(feed) = fed.get() {
                        feed.settled().await;
                    }
                }
                let drain = cut.window_cut.get();
                let rec = if drain { &state.drain_rec } else { &state.rec };
                rec.borrow_mut().swap_interval(&mut spare);
                let interval = Box::new(std::mem::take(&mut spare));
                cut.window_cut.set(drain || window_ends);
                cut.from.set(at - measure_from);
                sink(Report::Interval {
                    index: interval_key(from - measure_from, drain),
                    start: from - measure_from,
                    length: at - from,
                    drain,
                    interval,
                });
            }
        })
    };

    // Ctrl-C closes the measurement window: what finishes after it is the drain.
    let window_closer = {
        let (state, token, at) = (
            state.clone(),
            plan.interrupt.clone(),
            plan.interrupted_at.clone(),
        );
        tokio::task::spawn_local(async move {
            token.cancelled().await;
            state.close_window(*at.get_or_init(Instant::now));
        })
    };

    // Every worker begins together at `start` (nothing sent before it is counted anywhere). A Ctrl-C while
    // waiting for it (a far `--start-at`) ends the worker at once: nothing is connected or sent.
    let interrupted_before_start = tokio::select! {
        _ = sleep_until(start) => false,
        _ = plan.interrupt.cancelled() => true,
    };
    if !interrupted_before_start {
        let feed = Rc::new(match plan.load {
            Load::Closed => Feed::Closed(ClosedLoop::new(state.worker.clone(), &plan)),
            _ => Feed::Open(Box::new(OpenLoop::new(state.worker.clone(), &plan, start))),
        });
        let _ = fed.set(feed.clone());
        let dispatcher = match &*feed {
            Feed::Open(_) => Some(tokio::task::spawn_local(OpenLoop::dispatch(feed.clone()))),
            Feed::Closed(_) => None,
        };
        match state.transport.connections(feed.clone()) {
            Some(connections) => connections.await,
            None => slots(&state, &feed, plan.slots).await,
        }
        if let Some(d) = dispatcher {
            // Every sender is done. The dispatcher may still be counting what it will never send (senders
            // that never connected end at the duration's end or at Ctrl-C, as it does): once it has, it is
            // done too.
            feed.settled().await;
            d.abort();
        }
    }

    ticker.abort();
    window_closer.abort();
    let ended = Instant::now();
    let (cpu_start, wait_start) = cpu_at_start.get().unwrap_or_else(|| {
        (
            crate::health::thread_cpu_time(),
            crate::health::thread_cpu_wait(),
        )
    });
    // Measured until the last request finished; a duration's window at least until it ended, so a run in which
    // nothing finished, or nothing late, still covers the time it took, and an open loop whose schedule ran
    // out early (`--rate 1 -d 2s`: its last request at 1 s) still covers the duration it offered load for.
    // Interrupted, until it stopped.
    let last_done = state.last_done.get();
    let until = match plan.end() {
        Some(end) if plan.interrupt.is_cancelled() => last_done.max(ended.min(start + end)),
        Some(end) => last_done.max(start + end),
        None if last_done <= measure_from => ended,
        None => last_done,
    };
    let elapsed = until.saturating_duration_since(measure_from);
    let window = state.window_end.get().map_or(elapsed, |end| {
        end.saturating_duration_since(measure_from).min(elapsed)
    });
    // The last, partial intervals: the window's (when the ticker had not cut it yet) and the drain's. Each
    // only when something finished in it: replies that land just past a second's boundary, before the ticker
    // ran, are already in the previous interval, and an empty sliver of a millisecond would show as a
    // second-by-second dip to 0 req/s in the series and the .hlog.
    let from = cut.from.get();
    let mut in_window = state.rec.borrow_mut().take_interval();
    let drained = state.drain_rec.borrow_mut().take_interval();
    let last = |from: Duration, until: Duration, drain: bool, interval: Interval| {
        if interval.requests() > 0 {
            let (start, length) = final_interval(from, until);
            sink(Report::Interval {
                index: interval_key(from, drain),
                start,
                length,
                drain,
                interval: Box::new(interval),
            });
        }
    };
    if cut.window_cut.get() {
        // Anything recorded as in the window after its last interval was cut (nothing, but for a reply the
        // ticker overtook) stays counted, with the drain.
        in_window.merge(&drained);
        last(from, elapsed, true, in_window);
    } else {
        last(from, window.max(from.min(elapsed)), false, in_window);
        last(window.max(from), elapsed, true, drained);
    }
    let pool_stray = state.transport.stray_closes();
    sink(Report::Done(WorkerSummary {
        elapsed,
        window,
        cpu: crate::health::thread_cpu_time().saturating_sub(cpu_start),
        cpu_wait: crate::health::thread_cpu_wait()
            .zip(wait_start)
            .map(|(now, start)| now.saturating_sub(start)),
        connects: state.connects.get(),
        announced_closes: state.announced_closes.get(),
        broken: state.broken.get() + pool_stray,
        first_break: state.first_break.take().or_else(|| {
            (pool_stray > 0).then(|| "the server sent bytes with no request in flight".to_string())
        }),
        stray: state.stray.get() + pool_stray,
        most_in_flight: state.most_in_flight.get(),
    }));
}

/// Where a worker's intervals are cut: on every whole second since measuring began, and at the end of the
/// measurement window (the end of `--duration`, or Ctrl-C), so that what finished in the window and what
/// finished in the drain after it are never in one interval.
#[derive(Debug, Default)]
struct Cuts {
    /// Where the interval being filled began, since measuring began.
    from: Cell<Duration>,
    /// The window's last interval has been handed over: every interval from here on is the drain's.
    window_cut: Cell<bool>,
}

impl Cuts {
    /// When the interval being filled ends, measuring having begun at `measure_from` and the window closing
    /// at `window_end`, and whether that is the end of the window.
    fn next(&self, measure_from: Instant, window_end: Option<Instant>) -> (Instant, bool) {
        let from = self.from.get();
        let second = measure_from + Duration::from_secs(from.as_secs() + 1);
        match window_end {
            Some(end) if !self.window_cut.get() && end <= second => {
                if end > measure_from + from {
                    (end, true)
                } else {
                    // It closed where the last interval ended (Ctrl-C on a second's boundary).
                    self.window_cut.set(true);
                    (second, false)
                }
            }
            _ => (second, false),
        }
    }
}

/// The number of the interval that begins at `start` (since measuring began), the drain's or not: the same
/// in every worker for the same cut, and increasing with it, so that the collector merges the workers' parts of
/// one interval even when one worker made a cut another did not (Ctrl-C a few milliseconds before a second's
/// boundary, which one worker's ticker had already passed).
fn interval_key(start: Duration, drain: bool) -> u64 {
    u64::try_from(start.as_micros())
        .unwrap_or(u64::MAX / 2)
        .saturating_mul(2)
        + u64::from(drain)
}

/// The start and length of a worker's last, partial interval, which began `from` after measuring began, in a
/// measured window of `elapsed`: at least 1 ms long, and never past the window's end (when nothing in it
/// finished after `from`, it is the window's last millisecond; it was `from` + 1 ms, after the run).
fn final_interval(from: Duration, elapsed: Duration) -> (Duration, Duration) {
    let least = Duration::from_millis(1).min(elapsed);
    let length = elapsed.saturating_sub(from).max(least);
    (from.min(elapsed - length), length)
}

/// The senders of a transport without connections of its own: `slots` tasks, each with one request in flight
/// through [`Transport::call`] at a time, taking them from `feed`.
async fn slots<T: Transport>(state: &Rc<State<T>>, feed: &Rc<Feed>, slots: usize) {
    let mut tasks = JoinSet::new();
    for _ in 0..slots.max(1) {
        let (state, feed) = (state.clone(), feed.clone());
        tasks.spawn_local(async move {
            // Since when this slot has been free and waiting for a request to come due.
            let mut free_since = None;
            // The slot's backstop timer ([`State::send`]); boxed, so that the slot's future stays small.
            let mut backstop =
                Box::pin(sleep_until(Instant::now() + state.timeout + TIMEOUT_SLACK));
            loop {
                let now = Instant::now();
                match feed.take(now, free_since.unwrap_or(now)) {
                    Take::Send(due) => {
                        free_since = None;
                        if let Some(kind) = state.send(due, &mut backstop).await {
                            if is_connection_failure(kind) {
                                sleep(RECONNECT_BACKOFF).await;
                            }
                        }
                    }
                    Take::Wait => {
                        free_since.get_or_insert(now);
                        feed.due().await;
                    }
                    Take::Done => break,
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::args::RunArgs;
    use crate::config::Config;
    use crate::recorder::Collector;
    use crate::report::RunResult;

    /// Replies after `service`, except that requests arriving during `stall` wait until it ends.
    struct Fake {
        service: Duration,
        stall: Option<(Instant, Instant)>,
        calls: Rc<Cell<u64>>,
        fail: bool,
    }

    impl Transport for Fake {
        async fn call(&self, _req: Req, _deadline: Instant) -> Outcome {
            self.calls.set(self.calls.get() + 1);
            if self.fail {
                return Outcome::failed(ErrorKind::Refused.into());
            }
            let now = Instant::now();
            if let Some((a, b)) = self.stall {
                if now >= a && now < b {
                    sleep_until(b).await;
                }
            }
            sleep(self.service).await;
            Outcome {
                result: Ok(1),
                connect: None,
                pool_wait: None,
                written: true,
            }
        }
    }

    pub(crate) fn config(f: impl FnOnce(&mut RunArgs)) -> Config {
        let mut a = RunArgs {
            target: Some("127.0.0.1:1".into()),
            connections: Some(4),
            ..RunArgs::default()
        };
        f(&mut a);
        Config::from_args(&a).unwrap()
    }

    fn plan(c: &Config) -> Plan {
        Plan {
            worker: 0,
            workers: 1,
            slots: c.connections * c.pipeline,
            load: c.load.clone(),
            stop: c.stop,
            warmup: c.warmup,
            timeout: c.timeout,
            interrupt: CancellationToken::new(),
            interrupted_at: Default::default(),
        }
    }

    /// Runs one worker of `c` on `transport` to its end: the collected intervals and the summary.
    pub(crate) async fn run<T: Transport>(c: &Config, transport: T) -> (Collector, WorkerSummary) {
        run_logged(c, transport, None).await
    }

    /// [`run`], writing the intervals to `hlog` too.
    pub(crate) async fn run_logged<T: Transport>(
        c: &Config,
        transport: T,
        hlog: Option<crate::hdr::HlogWriter<Box<dyn std::io::Write + Send>>>,
    ) -> (Collector, WorkerSummary) {
        run_with(c, transport, hlog, None).await
    }

    /// [`run_logged`], interrupted (as by Ctrl-C) `interrupt_after` into the run when given.
    pub(crate) async fn run_with<T: Transport>(
        c: &Config,
        transport: T,
        hlog: Option<crate::hdr::HlogWriter<Box<dyn std::io::Write + Send>>>,
        interrupt_after: Option<Duration>,
    ) -> (Collector, WorkerSummary) {
        let plan = plan(c);
        if let Some(after) = interrupt_after {
            let token = plan.interrupt.clone();
            tokio::spawn(async move {
                sleep(after).await;
                token.cancel();
            });
        }
        let step_len = match c.load {
            Load::Ramp { step, steps, .. } => Some((step, steps as usize)),
            _ => None,
        };
        let collected = Rc::new(RefCell::new(Collector::new(1, step_len, hlog)));
        let summary = Rc::new(RefCell::new(None));
        let (c2, s2) = (collected.clone(), summary.clone());
        let local = tokio::task::LocalSet::new();
        local
            .run_until(run_worker(
                transport,
                Generator::new(c, 1),
                plan,
                Instant::now(),
                move |r| match r {
                    Report::Interval {
                        index,
                        start,
                        length,
                        drain,
                        interval,
                    } => c2.borrow_mut().add(index, start, length, drain, &interval),
                    Report::Done(s) => *s2.borrow_mut() = Some(s),
                },
            ))
            .await;
        let mut col = collected.replace(Collector::new(1, None, None));
        col.close();
        let s = summary.borrow_mut().take().unwrap();
        (col, s)
    }

    fn fake(service_ms: u64) -> (Fake, Rc<Cell<u64>>) {
        let calls = Rc::new(Cell::new(0));
        (
            Fake {
                service: Duration::from_millis(service_ms),
                stall: None,
                calls: calls.clone(),
                fail: false,
            },
            calls,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_sends_exactly_the_requested_count_and_excludes_warmup() {
        let c = config(|a| {
            a.requests = Some(1000);
            a.warmup = Some("1s".into());
        });
        let (f, calls) = fake(1);
        let (col, _) = run(&c, f).await;
        assert_eq!(col.total.requests(), 1000);
        // 4 slots × 1 ms service during a 1 s warm-up ≈ 4000 more calls that are not counted.
        assert!(
            calls.get() > 1000 + 3000,
            "warm-up load was sent: {}",
            calls.get()
        );
    }

    /// `--rate 2 -d 2s` ended at 1.5 s (its last request's reply) and `--rate 0.001 -d 1s` at once, while the
    /// report showed the whole duration as the window: the run lasts its duration.
    #[tokio::test(start_paused = true)]
    async fn an_open_loop_whose_schedule_ends_early_still_lasts_its_duration() {
        for rate in [2.0, 0.001] {
            let c = config(|a| {
                a.rate = Some(rate);
                a.duration = Some("2s".into());
            });
            let (f, _) = fake(1);
            let began = Instant::now();
            let (col, _) = run(&c, f).await;
            let took = began.elapsed();
            assert!(col.total.ok >= 1, "rate {rate}: {} replies", col.total.ok);
            assert!(
                took >= Duration::from_secs(2) && took < Duration::from_millis(2100),
                "rate {rate}: the run took {took:?} of its 2 s"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_keeps_every_slot_busy_for_the_duration() {
        let c = config(|a| a.duration = Some("3s".into()));
        let (f, _) = fake(2);
        let (col, s) = run(&c, f).await;
        // 4 slots, 2 ms each, 3 s: 6000 requests, 3 one-second intervals.
        assert_eq!(col.total.ok, 6000);
        assert_eq!(col.series.iter().map(|i| i.requests).sum::<u64>(), 6000);
        // Replies due exactly on a second boundary may land on either side of it.
        assert!(col.series[..3]
            .iter()
            .all(|i| (1996..=2004).contains(&i.requests)));
        assert_eq!(s.elapsed, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_keeps_the_rate_and_corrects_for_a_stall() {
        let c = config(|a| {
            a.rate = Some(1000.0);
            a.duration = Some("5s".into());
            a.connections = Some(8);
        });
        let t0 = Instant::now();
        let (mut f, _) = fake(1);
        f.stall = Some((
            t0 + Duration::from_secs(2),
            t0 + Duration::from_millis(2500),
        ));
        let (col, _) = run(&c, f).await;
        let t = &col.total;
        assert_eq!(t.ok, 5000, "every scheduled request is sent and answered");
        let corrected_p999 = Duration::from_nanos(t.corrected.value_at_quantile(0.999));
        let raw_p50 = Duration::from_nanos(t.raw.value_at_quantile(0.5));
        assert!(
            corrected_p999 >= Duration::from_millis(400),
            "corrected p99.9 {corrected_p999:?}"
        );
        assert!(raw_p50 < Duration::from_millis(5), "raw p50 {raw_p50:?}");
        // The stall kept the 8 slots busy: later requests waited for a slot, and that wait counts.
        assert!(t.pool_wait.max() >= Duration::from_millis(400).as_nanos() as u64);
        assert_eq!(
            t.send_lag.max(),
            1,
            "the sender itself was never late (paused clock)"
        );
    }

    /// Issue 13 item 3: an open loop at 100× what the server can answer (4 slots × 10 ms = 400/s; 40,000/s
    /// offered for 2 s) does not collapse. Memory stays bounded (never more requests taken than slots: no task
    /// or buffer per unsent request), the server is kept busy and its replies are
    /// processed throughout, nothing is sent after `--duration` (the run ends then, with the calls under way),
    /// every scheduled request is counted once, and the overload shows as slot waits, pool-wait timeouts and
    /// unsent requests, not as send lag. (On the
    /// call-based senders UDP uses; [`crate::pipeline`]'s test runs the same over TCP.)
    #[tokio::test(start_paused = true)]
    async fn an_open_loop_100x_past_capacity_stays_bounded_busy_and_on_time() {
        let c = config(|a| {
            a.rate = Some(40_000.0);
            a.duration = Some("2s".into());
            a.connections = Some(4);
            a.timeout = Some("500ms".into());
        });
        let (f, calls) = fake(10);
        let started = Instant::now(); // paused tokio clock: exact
        let (col, summary) = run(&c, f).await;
        let took = started.elapsed();
        let t = &col.total;
        assert_eq!(
            t.requests(),
            80_000,
            "every scheduled request is counted once"
        );
        // The server was busy all along at its 400/s for the 2 s (4 slots × 200), and got nothing after them.
        assert!(
            (796..=804).contains(&t.ok),
            "answered {} (calls {})",
            t.ok,
            calls.get()
        );
        assert!(
            calls.get() <= t.ok + 4,
            "every call but those under way at the end was answered: calls {} ok {}",
            calls.get(),
            t.ok
        );
        // Those due in the first 1.5 s that found no slot timed out waiting for one; those due in the last
        // 0.5 s (their deadlines after the end) were never sent.
        let unsent = t.errors.get(ErrorKind::Unsent);
        assert_eq!(
            t.errors.get(ErrorKind::Timeout(Phase::PoolWait)) + unsent,
            80_000 - t.ok,
            "the rest found no slot before their deadline or the end"
        );
        assert!(unsent.abs_diff(20_000) <= 100, "unsent {unsent}");
        // On time: no load after --duration, only the calls under way (10 ms) finished.
        assert!(
            took <= Duration::from_millis(2000 + 10),
            "ended after {took:?}"
        );
        // Never more requests taken than slots: no task or buffer per unsent request (80,000 of them).
        assert_eq!(summary.most_in_flight, 4, "in flight at most the 4 slots");
        assert!(
            t.pool_wait.max() >= Duration::from_millis(400).as_nanos() as u64,
            "the overload shows as slot waits"
        );
        assert!(
            t.send_lag.max() <= Duration::from_millis(1).as_nanos() as u64,
            "the sender was never late itself: send lag {} ns",
            t.send_lag.max()
        );
        // A pool-wait timeout is recorded at its deadline: never above --timeout from its intended time.
        assert!(
            t.corrected.max() <= (Duration::from_millis(500) + TIMEOUT_SLACK).as_nanos() as u64,
            "corrected max {} ns, errors {:?}",
            t.corrected.max(),
            t.errors
        );
    }

    /// An `.hlog` sink the test reads back.
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Buf {
        /// An `.hlog` writer into this buffer, its agent named `tag`.
        fn hlog(&self, tag: &str) -> crate::hdr::HlogWriter<Box<dyn std::io::Write + Send>> {
            crate::hdr::HlogWriter::new(
                Box::new(self.clone()) as Box<dyn std::io::Write + Send>,
                std::time::SystemTime::now(),
                tag,
            )
            .unwrap()
        }
    }

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// An open loop behind its schedule: the requests still unsent when the duration ends were counted just
    /// after the ticker took the last second, in an interval of their own stamped at the end of the run
    /// (`2.000,0.001` in the `.hlog` of a 2 s run, with 2,000 unsent requests in it). They were due in the last
    /// second and are counted in it; what an interval past the duration holds is only the replies that came
    /// after it. Every interval (in the series and the `.hlog`) lies within the measured window, and the
    /// intervals add up to the total.
    #[tokio::test(start_paused = true)]
    async fn every_interval_lies_within_the_run_when_the_last_holds_only_unsent_requests() {
        let c = config(|a| {
            a.rate = Some(4_000.0);
            a.duration = Some("2s".into());
            a.connections = Some(4);
            a.timeout = Some("500ms".into());
        });
        let (f, _) = fake(10);
        let buf = Buf::default();
        let hlog = buf.hlog("behind");
        let (col, summary) = run_logged(&c, f, Some(hlog)).await;
        let t = &col.total;
        assert!(t.errors.get(ErrorKind::Unsent) > 0, "behind at the end");
        let run = summary.elapsed.as_secs_f64();
        let within = |start: f64, length: f64| start >= 0.0 && start + length <= run + 1e-6;
        for s in &col.series {
            assert!(
                within(s.start_s, s.length_s),
                "interval {:.3}+{:.3} outside the run's {run:.3}s",
                s.start_s,
                s.length_s
            );
        }
        assert_eq!(
            col.series.iter().map(|s| s.requests).sum::<u64>(),
            t.requests(),
            "the series adds up to the total"
        );
        for s in col.series.iter().filter(|s| s.start_s >= 2.0) {
            assert_eq!(
                s.requests, s.replies,
                "past the duration only replies to requests sent in it: {} requests, {} errors",
                s.requests, s.errors
            );
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let (mut lines, mut count) = (0, 0);
        for l in text
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        {
            let f: Vec<&str> = l.split(',').collect();
            let (start, length): (f64, f64) = (f[0].parse().unwrap(), f[1].parse().unwrap());
            assert!(
                within(start, length),
                ".hlog line {l:.40} outside the run's {run:.3}s"
            );
            count += crate::hdr::from_base64(f[3]).unwrap().len();
            lines += 1;
        }
        assert_eq!(lines, col.series.len(), "{text}");
        assert_eq!(count, t.corrected.len(), ".hlog counts add up to the total");
    }

    /// `-d 1.5s` put the replies of 1.0–1.5 s (the window) and those of 1.5–1.6 s (the drain, requests in
    /// flight when the window closed) in one interval `1.000,0.598` of the series and the `.hlog`, its rate
    /// over both. The window's end cuts the interval in progress (on Ctrl-C too), and what follows is marked
    /// as the drain: in the series (`drain`), and in the `.hlog` by a comment before its first interval.
    #[tokio::test(start_paused = true)]
    async fn an_interval_never_mixes_the_window_and_the_drain() {
        // 4 slots, a reply 400 ms after each request: replies at 0.4, 0.8, 1.2 and 1.6 s.
        type Row = (f64, f64, bool, u64);
        let cases: [(&str, Option<Duration>, &[Row]); 2] = [
            (
                "the duration ends at 1.5 s",
                None,
                &[
                    (0.0, 1.0, false, 8),
                    (1.0, 0.5, false, 4),
                    (1.5, 0.1, true, 4),
                ],
            ),
            (
                "Ctrl-C at 1.1 s",
                Some(Duration::from_millis(1100)),
                &[
                    (0.0, 1.0, false, 8),
                    (1.0, 0.1, false, 0),
                    (1.1, 0.1, true, 4),
                ],
            ),
        ];
        for (name, interrupt, want) in cases {
            let c = config(|a| a.duration = Some("1500ms".into()));
            let (f, _) = fake(400);
            let buf = Buf::default();
            let hlog = buf.hlog("drain");
            let (col, _) = run_with(&c, f, Some(hlog), interrupt).await;
            let got: Vec<Row> = col
                .series
                .iter()
                .map(|s| {
                    let ms = |x: f64| (x * 1e3).round() / 1e3;
                    (ms(s.start_s), ms(s.length_s), s.drain, s.requests)
                })
                .collect();
            assert_eq!(got, want, "{name}");
            let drained: u64 = col
                .series
                .iter()
                .filter(|s| s.drain)
                .map(|s| s.requests)
                .sum();
            assert_eq!(drained, col.total.drain.requests, "{name}");
            let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            let lines: Vec<&str> = text
                .lines()
                .skip_while(|l| !l.starts_with("\"StartTimestamp"))
                .skip(1)
                .collect();
            let at = want[2].0;
            assert_eq!(
                lines[2],
                format!(
                    "#[Drain: the intervals from {at:.3} s on finished after the measurement window closed]"
                ),
                "{name}: {text}"
            );
            assert!(
                lines[3].starts_with(&format!("{at:.3},0.100,")),
                "{name}: {text}"
            );
        }
    }

    #[test]
    fn a_final_interval_is_at_least_1ms_and_inside_the_window() {
        let ms = Duration::from_millis;
        assert_eq!(final_interval(ms(2000), ms(2300)), (ms(2000), ms(300)));
        assert_eq!(final_interval(ms(2000), ms(2000)), (ms(1999), ms(1)));
        assert_eq!(final_interval(ms(0), ms(0)), (ms(0), ms(0)));
        assert_eq!(
            final_interval(ms(1000), ms(1000) + Duration::from_micros(200)).1,
            ms(1)
        );
    }

    /// Far past any capacity (10⁹ requests a second offered for 1 s, to 4 slots of 10 ms) the run still ends
    /// on time and counts every scheduled request once: the schedule moves past the requests that expire or
    /// stay unsent by arithmetic. Walking them one by one, such a run took 11.8 s of wall time for its 1 s (and
    /// reported a rate 12× too low); at 10²⁰ a second it never ended.
    #[tokio::test(start_paused = true)]
    async fn an_open_loop_a_billion_a_second_ends_on_time_with_every_request_counted() {
        let c = config(|a| {
            a.rate = Some(1e9);
            a.duration = Some("1s".into());
            a.connections = Some(4);
            a.timeout = Some("200ms".into());
        });
        let (f, _) = fake(10);
        let wall = std::time::Instant::now();
        let started = Instant::now();
        let (col, summary) = run(&c, f).await;
        let took = started.elapsed();
        let t = &col.total;
        assert!(
            t.requests().abs_diff(1_000_000_000) <= 1,
            "every scheduled request counted once: {}",
            t.requests()
        );
        assert!((396..=404).contains(&t.ok), "answered {}", t.ok);
        assert!(
            took <= Duration::from_millis(1000 + 10),
            "ended after {took:?}"
        );
        // The measured window: the duration, and the calls under way at its end (10 ms at most).
        assert!(
            (Duration::from_secs(1)..=Duration::from_millis(1010)).contains(&summary.elapsed),
            "window {:?}",
            summary.elapsed
        );
        assert!(
            wall.elapsed() < Duration::from_secs(20),
            "the skips took {:?} of real time",
            wall.elapsed()
        );
    }

    /// Ctrl-C in an overloaded open loop: the requests due by then and never sent are counted as unsent (a run
    /// that was failing does not turn into a pass by being interrupted), those not yet due are not part of
    /// the run, and the window ends at the interrupt.
    #[tokio::test(start_paused = true)]
    async fn an_interrupted_open_loop_counts_what_was_due_and_not_sent() {
        let c = config(|a| {
            a.rate = Some(40_000.0);
            a.duration = Some("4s".into());
            a.connections = Some(4);
            a.timeout = Some("500ms".into());
        });
        let (f, _) = fake(10);
        let (col, summary) = run_with(&c, f, None, Some(Duration::from_secs(1))).await;
        let t = &col.total;
        let unsent = t.errors.get(ErrorKind::Unsent);
        assert!(
            t.requests().abs_diff(40_000) <= 100,
            "the requests due in the first second, each counted: {} ({:?})",
            t.requests(),
            t.errors
        );
        // Due in the last 0.5 s before the interrupt (deadlines after it): unsent, not dropped.
        assert!(unsent.abs_diff(20_000) <= 100, "unsent {unsent}");
        assert!(
            summary.elapsed <= Duration::from_millis(1000 + 10),
            "window {:?}",
            summary.elapsed
        );
    }

    /// An open loop whose schedule runs out before the duration (one request a second for 2 s: the last at
    /// 1 s) is measured over the duration: 1 request a second, not 2.
    #[tokio::test(start_paused = true)]
    async fn a_sparse_open_loop_is_measured_over_its_duration() {
        let c = config(|a| {
            a.rate = Some(1.0);
            a.duration = Some("2s".into());
            a.connections = Some(1);
        });
        let (f, _) = fake(1);
        let (col, summary) = run(&c, f).await;
        assert_eq!(col.total.ok, 2);
        assert_eq!(summary.elapsed, Duration::from_secs(2));
    }

    /// [`Schedule::skip_through`] passes exactly the requests [`Schedule::next`] would yield up to its limit,
    /// and leaves the schedule where `next` would: warm-up, several workers' phases, ramps and budgets.
    #[test]
    fn skipping_the_schedule_matches_walking_it() {
        let plans = [
            ("rate", config(|a| a.rate = Some(1000.0))),
            (
                "warm-up",
                config(|a| {
                    a.rate = Some(700.0);
                    a.warmup = Some("250ms".into());
                }),
            ),
            ("ramp", config(|a| a.ramp = Some("100..900:4:1s".into()))),
            (
                "budget",
                config(|a| {
                    a.rate = Some(500.0);
                    a.requests = Some(333);
                }),
            ),
        ];
        for (name, c) in plans {
            for worker in 0..3 {
                let mut p = plan(&c);
                (p.worker, p.workers) = (worker, 3);
                let walked: Vec<Duration> = Schedule::new(&p).take(100_000).collect();
                for limit_ms in [
                    0u64, 1, 7, 100, 249, 250, 333, 600, 1000, 1199, 2500, 3999, 9000,
                ] {
                    let limit = Duration::from_millis(limit_ms);
                    let mut s = Schedule::new(&p);
                    let (warm, main) = s.skip_through(limit);
                    let passed: Vec<&Duration> =
                        walked.iter().take_while(|&&t| t <= limit).collect();
                    let warm_walked = passed.iter().filter(|&&&t| t < c.warmup).count() as u64;
                    assert_eq!(
                        (warm, main),
                        (warm_walked, passed.len() as u64 - warm_walked),
                        "{name}, worker {worker}, through {limit:?}"
                    );
                    assert_eq!(
                        s.next(),
                        walked.get(passed.len()).copied(),
                        "{name}, worker {worker}: the next after {limit:?}"
                    );
                }
            }
        }
    }

    /// The converse of the overload: the load generator itself stalls (its thread held for 50 ms, simulated by
    /// jumping the paused clock) in front of a fast server, with slots to spare. The report puts the delay
    /// on the load generator, as send lag: it says the sender fell behind and by how much, not that the server
    /// could not keep up.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_sender_shows_as_send_lag_not_as_the_servers_fault() {
        let c = config(|a| {
            a.rate = Some(1000.0);
            a.duration = Some("1s".into());
            a.connections = Some(64);
        });
        let (f, _) = fake(1);
        let t0 = Instant::now();
        let hog = tokio::spawn(async move {
            sleep_until(t0 + Duration::from_millis(500)).await;
            tokio::time::advance(Duration::from_millis(50)).await;
        });
        let (col, _) = run(&c, f).await;
        hog.await.unwrap();
        let t = &col.total;
        assert_eq!(t.ok, 1000, "every request answered");
        let lag_max = Duration::from_nanos(t.send_lag.max());
        assert!(
            (Duration::from_millis(45)..=Duration::from_millis(51)).contains(&lag_max),
            "send lag max {lag_max:?}"
        );
        // The 50 requests the stall left due at once find free slots (64): their wait is all send lag, and the
        // one whose reply the stall held up is the only one whose slot was busy.
        let waited = t
            .pool_wait
            .count_between(Duration::from_millis(1).as_nanos() as u64, u64::MAX);
        assert!(waited <= 1, "{waited} requests waited for a slot");
        let lagged = t
            .send_lag
            .count_between(Duration::from_millis(1).as_nanos() as u64, u64::MAX);
        assert!((45..=50).contains(&lagged), "{lagged} requests sent late");
        let lag = |q: f64| Duration::from_nanos(t.send_lag.value_at_quantile(q));
        let h = crate::health::Health::assess(
            &[Duration::ZERO],
            Duration::from_secs(1),
            true,
            (lag(0.5), lag(0.99), lag(1.0)),
            Some(crate::health::Achieved {
                replies: 1.0,
                replies_and_fast_failures: 1.0,
            }),
            Default::default(),
        );
        assert!(h.bottleneck, "{:?}", h.warnings);
        assert!(h.send_lag_max_us >= 45_000.0, "{}", h.send_lag_max_us);
        assert!(
            h.warnings.iter().any(|w| w.contains("fell behind")),
            "{:?}",
            h.warnings
        );
        assert!(!h.warnings.iter().any(|w| w.contains("could not keep up")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_never_gets_a_slot_times_out_in_pool_wait() {
        let c = config(|a| {
            a.rate = Some(100.0);
            a.requests = Some(10);
            a.connections = Some(1);
            a.timeout = Some("50ms".into());
        });
        let (f, _) = fake(1000);
        let (col, _) = run(&c, f).await;
        let t = &col.total;
        assert_eq!(t.requests(), 10);
        assert!(t.errors.get(ErrorKind::Timeout(Phase::Request)) >= 1);
        assert!(t.errors.get(ErrorKind::Timeout(Phase::PoolWait)) >= 1);
        assert_eq!(
            t.corrected.len(),
            10,
            "every timeout is in the corrected histogram"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refused_connections_are_counted_and_retried_with_backoff() {
        let c = config(|a| a.duration = Some("1s".into()));
        let (mut f, calls) = fake(1);
        f.fail = true;
        let (col, _) = run(&c, f).await;
        let refused = col.total.errors.get(ErrorKind::Refused);
        // 4 slots, one attempt per 10 ms backoff for 1 s.
        assert_eq!(refused, 400);
        assert_eq!(calls.get(), 400);
    }

    #[test]
    fn ramp_schedule_is_a_staircase() {
        let c = config(|a| a.ramp = Some("10..30:3:1s".into()));
        let mut p = plan(&c);
        let all: Vec<Duration> = Schedule::new(&p).collect();
        assert_eq!(all.len(), 10 + 20 + 30);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        // Two workers split the schedule evenly and interleave.
        p.workers = 2;
        let a: Vec<Duration> = Schedule::new(&p).collect();
        p.worker = 1;
        let b: Vec<Duration> = Schedule::new(&p).collect();
        assert_eq!(a.len() + b.len(), 60);
        assert!(a[0] < b[0] && b[0] < a[1]);
    }

    /// Replies after 1 ms, except call number `nth`, which is answered after `late` (or never, if `late` is past
    /// the timeout: a lost datagram, a server that swallowed one request).
    struct Swallow {
        nth: u64,
        late: Duration,
        calls: Cell<u64>,
    }

    impl Transport for Swallow {
        async fn call(&self, _req: Req, _deadline: Instant) -> Outcome {
            self.calls.set(self.calls.get() + 1);
            sleep(if self.calls.get() == self.nth {
                self.late
            } else {
                Duration::from_millis(1)
            })
            .await;
            Outcome {
                result: Ok(7),
                connect: None,
                pool_wait: None,
                written: true,
            }
        }
    }

    /// The run's result as the runner builds it from one worker.
    fn result_of(c: &Config, col: Collector, s: &WorkerSummary, interrupted: bool) -> RunResult {
        RunResult {
            config: c.clone(),
            target: "127.0.0.1:1".into(),
            embedded: false,
            started: std::time::SystemTime::now(),
            elapsed: s.elapsed,
            window: s.window,
            total: col.total,
            series: col.series,
            steps: col.steps,
            health: Default::default(),
            interrupted,
            agent: None,
            merged: None,
        }
    }

    /// Issue 32 item 1: `run -p udp -d 1s` with one lost datagram reported a 5 s window and a fifth of the
    /// rate, and a line server that swallowed one request (`dropper.py`, `--timeout 3s`) a third: the request
    /// in flight at the end stretched the divisor to its timeout. Rates are over the measurement window (end of
    /// warm-up to the end of `--duration`, or Ctrl-C), as wrk and oha measure them, counting what finished in
    /// it; the request is still awaited and counted (errors, replies, latency), and shown as the drain.
    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_at_the_end_is_drained_not_in_the_rate() {
        use crate::recorder::window_replies;
        struct Case {
            name: &'static str,
            load: fn(&mut RunArgs),
            late: Duration,
            interrupt: Option<Duration>,
            window: Duration,
            drained_requests: std::ops::RangeInclusive<u64>,
            timed_out: u64,
        }
        let closed: fn(&mut RunArgs) = |_| {};
        let open: fn(&mut RunArgs) = |a| a.rate = Some(1000.0);
        let ramp: fn(&mut RunArgs) = |a| {
            a.ramp = Some("500..1000:2:1s".into());
            a.duration = None;
        };
        let cases = [
            Case {
                name: "closed, never answered",
                load: closed,
                late: Duration::from_secs(3600),
                interrupt: None,
                window: Duration::from_secs(2),
                drained_requests: 1..=1,
                timed_out: 1,
            },
            Case {
                name: "closed, answered late",
                load: closed,
                late: Duration::from_millis(2500),
                interrupt: None,
                window: Duration::from_secs(2),
                drained_requests: 1..=1,
                timed_out: 0,
            },
            Case {
                name: "open, never answered",
                load: open,
                late: Duration::from_secs(3600),
                interrupt: None,
                window: Duration::from_secs(2),
                drained_requests: 1..=1,
                timed_out: 1,
            },
            Case {
                name: "open, answered late",
                load: open,
                late: Duration::from_millis(2500),
                interrupt: None,
                window: Duration::from_secs(2),
                drained_requests: 1..=1,
                timed_out: 0,
            },
            Case {
                name: "ramp, answered late",
                load: ramp,
                late: Duration::from_millis(2500),
                interrupt: None,
                window: Duration::from_secs(2),
                drained_requests: 1..=1,
                timed_out: 0,
            },
            Case {
                name: "closed, interrupted",
                load: closed,
                late: Duration::from_millis(2500),
                interrupt: Some(Duration::from_millis(1500)),
                window: Duration::from_millis(1500),
                // And the other connection's request, if it was in flight at Ctrl-C.
                drained_requests: 1..=2,
                timed_out: 0,
            },
        ];
        for case in cases {
            let c = config(|a| {
                a.duration = Some("2s".into());
                a.timeout = Some("4s".into());
                a.connections = Some(2);
                (case.load)(a);
            });
            let f = Swallow {
                nth: 300,
                late: case.late,
                calls: Cell::new(0),
            };
            let (col, s) = run_with(&c, f, None, case.interrupt).await;
            let name = case.name;
            let t = col.total.clone();
            assert_eq!(s.window, case.window, "{name}");
            assert!(
                s.elapsed > s.window + Duration::from_millis(500),
                "{name}: {:?}",
                s.elapsed
            );
            assert!(
                case.drained_requests.contains(&t.drain.requests),
                "{name}: {:?}",
                t.drain
            );
            let drained_replies = t.drain.requests - case.timed_out;
            assert_eq!(t.drain.replies, drained_replies, "{name}");
            assert_eq!(
                t.errors.timeouts(),
                case.timed_out,
                "{name}: still awaited and counted"
            );
            assert_eq!(t.errors.total(), case.timed_out, "{name}");
            let r = result_of(&c, col, &s, case.interrupt.is_some());
            let in_window = window_replies(&r.total) as f64;
            assert!(in_window > 1000.0, "{name}: {in_window}");
            let want = in_window / case.window.as_secs_f64();
            assert!(
                (r.rate() - want).abs() < 1e-6,
                "{name}: rate {} want {want}",
                r.rate()
            );
            let j = r.to_json();
            let sm = &j["summary"];
            assert_eq!(sm["rate"].as_f64(), Some(r.rate()), "{name}");
            assert_eq!(
                sm["window_s"].as_f64(),
                Some(case.window.as_secs_f64()),
                "{name}"
            );
            assert_eq!(
                sm["duration_s"].as_f64(),
                Some(s.elapsed.as_secs_f64()),
                "{name}"
            );
            let drain_s = sm["drain_s"].as_f64().unwrap();
            assert!(drain_s > 0.5, "{name}: {drain_s}");
            assert_eq!(sm["drain_requests"], t.drain.requests, "{name}");
            assert_eq!(
                sm["replies"].as_u64(),
                Some(in_window as u64 + drained_replies),
                "{name}"
            );
            // 7 bytes received per reply in the window.
            assert!(
                (sm["bytes_received_per_s"].as_f64().unwrap() - 7.0 * want).abs() < 1e-6,
                "{name}"
            );
            let table = r.to_table();
            let drain_line = format!("drain      {} of them", t.drain.requests);
            assert!(table.contains(&drain_line), "{name}: {table}");
            assert!(
                table.contains(&format!("in {:.2}s", case.window.as_secs_f64())),
                "{name}: {table}"
            );
            if name.starts_with("ramp") {
                // The last step's rate leaves out the reply that came after the ramp ended.
                let steps = &j["steps"];
                let last = steps[1]["requests"].as_u64().unwrap() - drained_replies;
                assert_eq!(
                    steps[1]["rate"].as_f64(),
                    Some(last as f64),
                    "{name}: {steps}"
                );
            }
        }
    }

    #[test]
    fn request_budgets_split_evenly() {
        let shares: Vec<u64> = (0..3).map(|w| Plan::share(10, w, 3)).collect();
        assert_eq!(shares, vec![4, 3, 3]);
    }
}
