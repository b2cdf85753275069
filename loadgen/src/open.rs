//! The open loop's feed: the schedule of intended send times, handed out to whichever sender has a free slot.
//!
//! ```text
//!  dispatcher: pacer.until(next intended time) ──due──► wake one idle sender ──► Feed::take: the oldest due request
//!  every slot busy: the schedule's position stays behind (no task, no buffer per unsent request) ───────────┘
//!  a request still unsent at its deadline: counted in bulk as timeout_pool_wait, then ──► the next one
//!  the duration ends (or Ctrl-C): every request due and still unsent is counted as `unsent` (never sent late),
//!  then ──► done
//! ```
//!
//! - **Nothing per unsent request.** The schedule is an iterator: requests that are due while every slot is
//!   busy are only its position falling behind the clock. Memory and tasks are bounded by the slots.
//! - **Oldest first.** A sender with a free slot (one whose reply just came, or one idle since earlier) takes
//!   the oldest due request; its wait counts in its corrected latency, split into *pool wait* (every slot was
//!   busy) and *send lag* (a slot was free, the load generator got to it late).
//! - **Deadlines without the senders.** When no slot frees, the dispatcher sleeps until the oldest due
//!   request's deadline (intended time + `--timeout`) and counts every request past its own as a pool-wait
//!   timeout then, in bulk, so each interval holds what expired in it. The schedule moves past them by
//!   arithmetic ([`Schedule::skip_through`](crate::driver::Schedule::skip_through)), not one by one: at 10⁹
//!   requests a second offered, a walk took longer than the run.
//! - **No load after the duration.** When `--duration` ends, the requests still waiting for a slot are not sent
//!   at all (a slot already free at the end still takes what was due: only the handing out was late): they are counted as [`ErrorKind::Unsent`](crate::recorder::ErrorKind::Unsent), in bulk, and only the
//!   requests already on the wire are waited for (until their deadlines). A Ctrl-C while every slot is busy
//!   does the same with the requests due by then. The server gets the load for the
//!   duration asked, as from wrk2, and the run ends within `--duration` + `--timeout` (far sooner when the
//!   server answers what it was sent). A sender whose slot frees counts the
//!   ones past their deadline in front of the next due request itself (one batch at most).
//! - **It yields when behind.** Senders take at most their free slots before they go back to their sockets,
//!   and the dispatcher yields after each wake-up and each batch, so replies, timeouts and the interval
//!   reports keep being processed however far behind the schedule is.

use std::cell::{Cell, RefCell};
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};

use crate::driver::{Due, Feed, Plan, Schedule, Take, Worker};
use crate::interrupt::Interrupt;
use crate::pacer::Pacer;

/// An open loop's schedule and the senders waiting on it. See the [module docs](self).
pub struct OpenLoop {
    /// The worker's generator, recorder and clocks.
    worker: Rc<Worker>,
    /// Intended send times still to come, after `head`.
    schedule: RefCell<Schedule>,
    /// The next request's intended send time (`None`: the schedule is done).
    head: Cell<Option<Instant>>,
    /// The run's start: the schedule's offsets count from it.
    start: Instant,
    /// The end of the duration (`None` for a request budget): nothing is sent from then on.
    end: Option<Instant>,
    /// Senders waiting in [`due`](Self::due) with a free slot.
    idle: Cell<usize>,
    /// Wakes one idle sender: a request came due.
    wake: Notify,
    /// Wakes the dispatcher: a sender became idle.
    freed: Notify,
    /// Wakes every sender waiting in [`over`](Self::over): the schedule is done.
    over: Notify,
    /// Cancelled on Ctrl-C/SIGTERM: nothing more is handed out.
    interrupt: Interrupt,
}

impl OpenLoop {
    /// The open loop of `plan`, whose schedule starts at `start`.
    pub(crate) fn new(worker: Rc<Worker>, plan: &Plan, start: Instant) -> OpenLoop {
        let mut schedule = Schedule::new(plan);
        let head = schedule.next().map(|o| start + o);
        OpenLoop {
            worker,
            schedule: RefCell::new(schedule),
            head: Cell::new(head),
            start,
            end: plan.end().map(|e| start + e),
            idle: Cell::new(0),
            wake: Notify::new(),
            freed: Notify::new(),
            over: Notify::new(),
            interrupt: Interrupt::new(plan.interrupt.clone()),
        }
    }

    /// When the duration ends (`None`: a request budget).
    pub(crate) fn end(&self) -> Option<Instant> {
        self.end
    }

    /// The run's Ctrl-C/SIGTERM token.
    pub(crate) fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    pub(crate) fn worker(&self) -> &Worker {
        &self.worker
    }

    /// True once the schedule is done (or the run was interrupted).
    pub(crate) fn is_done(&self) -> bool {
        self.head.get().is_none() || self.interrupt.token().is_cancelled()
    }

    /// The schedule is done: [`Take::Done`] once the duration has ended too, [`Take::Wait`] before (a slow rate's
    /// last request can come well before the end: `--rate 2 -d 2s` ended at 1.5 s, `--rate 0.001 -d 1s` at
    /// once, while the report showed the whole duration as the window). [`dispatch`](Self::dispatch) wakes the
    /// waiting senders at the end.
    fn done(&self, now: Instant) -> Take {
        match self.end {
            Some(end) if now < end && !self.interrupt.token().is_cancelled() => Take::Wait,
            _ => Take::Done,
        }
    }

    /// True once the duration has ended at `now`.
    fn ended(&self, now: Instant) -> bool {
        self.end.is_some_and(|end| now >= end)
    }

    fn advance(&self) {
        let next = self.schedule.borrow_mut().next().map(|o| self.start + o);
        self.head.set(next);
    }

    /// The oldest due request for a sender whose slot is free since `free_since`, at `now`. Requests past their
    /// deadline are not handed out but counted as pool-wait timeouts on the way (one batch at most: a longer
    /// run of them is left to [`dispatch`](Self::dispatch), which yields between batches).
    pub(crate) fn take(&self, now: Instant, free_since: Instant) -> Take {
        if self.interrupt.at(now) {
            return Take::Done;
        }
        let Some(mut intended) = self.head.get() else {
            return self.done(now);
        };
        if self.end.is_some_and(|end| now >= end && free_since >= end) {
            // Only a slot that was already free when the duration ended takes what was due by then (the load
            // generator's own delay in handing it out is not a reason to drop it); the dispatcher counts the rest
            // as unsent, then says Done.
            return Take::Wait;
        }
        if intended + self.worker.timeout() <= now {
            self.expire(now);
            match self.head.get() {
                Some(next) => intended = next,
                None => return self.done(now),
            }
        }
        if intended > now {
            return Take::Wait;
        }
        self.advance();
        // Before a slot was free the request waited for one (pool wait); after, for the load generator.
        let free = free_since.clamp(intended, now);
        Take::Send(Due::open(
            intended,
            free,
            now,
            self.worker.measures(intended),
        ))
    }

    /// Waits, as an idle sender, until the dispatcher says a request is due (or the schedule is done).
    pub(crate) async fn due(&self) {
        let mut woken = pin!(self.wake.notified());
        woken.as_mut().enable();
        self.idle.set(self.idle.get() + 1);
        let _idle = Idle(&self.idle);
        self.freed.notify_one();
        woken.await;
    }

    /// Returns once the dispatcher has walked the whole schedule: every request it will not send is counted
    /// (expired or unsent). On Ctrl-C that is after it counted what was due then, which [`over`](Self::over)
    /// does not wait for.
    pub(crate) async fn settled(&self) {
        loop {
            let mut over = pin!(self.over.notified());
            over.as_mut().enable();
            if self.head.get().is_none() {
                return;
            }
            over.await;
        }
    }

    /// Returns once the schedule is done (or the run was interrupted): for a sender that cannot take requests
    /// (every place on its connection held by timed-out requests) and must not wait past the end for them.
    pub(crate) async fn over(&self) {
        let mut over = pin!(self.over.notified());
        over.as_mut().enable();
        if !self.is_done() {
            over.await;
        }
    }

    /// Walks the schedule: waits for each intended time, wakes an idle sender for it, and counts the requests
    /// whose deadline passes before any sender took them. Ends when the schedule does (or the run is
    /// interrupted), and then wakes every idle sender so that it sees [`Take::Done`].
    pub(crate) async fn dispatch(feed: Rc<Feed>) {
        let Feed::Open(me) = &*feed else {
            return;
        };
        let mut pacer = Pacer::new();
        let timeout = me.worker.timeout();
        let end = async {
            match me.end {
                Some(end) => sleep_until(end).await,
                None => std::future::pending().await,
            }
        };
        let mut end = pin!(end);
        let mut woke_at_end = false;
        while let Some(head) = me.head.get() {
            if me.interrupt.token().is_cancelled() {
                break;
            }
            let now = Instant::now();
            if me.ended(now) {
                if !woke_at_end {
                    // Senders idle since before the end take what their free slots can, once.
                    woke_at_end = true;
                    me.wake.notify_waiters();
                    tokio::task::yield_now().await;
                    continue;
                }
                me.count_unsent(None);
                continue;
            }
            if head + timeout <= now {
                me.expire(now);
                tokio::task::yield_now().await;
                continue;
            }
            if head > now {
                tokio::select! {
                    biased;
                    _ = me.interrupt.token().cancelled() => break,
                    _ = pacer.until(head) => {}
                }
                continue;
            }
            if me.idle.get() > 0 {
                me.wake.notify_one();
                tokio::task::yield_now().await;
                continue;
            }
            // Due, and every slot busy: until one frees (its sender takes the request itself) or the deadline.
            tokio::select! {
                biased;
                _ = me.interrupt.token().cancelled() => break,
                _ = me.freed.notified() => {}
                _ = sleep_until(head + timeout) => {}
                _ = &mut end => {}
            }
        }
        if me.head.get().is_some() && me.idle.get() == 0 {
            // Interrupted while behind (every slot busy): what was due by now and not sent is counted, never
            // dropped from the count; what was not due yet was never part of the run. With a slot free, the
            // request due at the very moment of the interrupt is a tie, not a backlog: it ends the schedule.
            let now = Instant::now();
            me.expire(now);
            me.count_unsent(Some(now));
        }
        me.head.set(None);
        // The schedule ended before the duration (a slow rate): the run lasts its duration all the same, the
        // window its report shows (senders wait, see `done`).
        if let Some(end) = me.end {
            if Instant::now() < end && !me.interrupt.token().is_cancelled() {
                tokio::select! {
                    biased;
                    _ = me.interrupt.token().cancelled() => {}
                    _ = sleep_until(end) => {}
                }
            }
        }
        me.wake.notify_waiters();
        me.over.notify_waiters();
    }

    /// Counts the requests still unsent and due by `through` (every one: `None`) as
    /// [`ErrorKind::Unsent`](crate::recorder::ErrorKind).
    fn count_unsent(&self, through: Option<Instant>) {
        let measured = self.skip(through);
        self.worker.unsent(measured);
    }

    /// Counts the requests whose deadline is at or before `now` as pool-wait timeouts.
    fn expire(&self, now: Instant) {
        let Some(through) = now.checked_sub(self.worker.timeout()) else {
            return;
        };
        let measured = self.skip(Some(through));
        self.worker.expired(measured, now);
    }

    /// Moves the schedule past every request intended at or before `through` (every one: `None`); how many of
    /// those are measured (not warm-up).
    fn skip(&self, through: Option<Instant>) -> u64 {
        let Some(head) = self.head.get() else {
            return 0;
        };
        if through.is_some_and(|t| head > t) {
            return 0;
        }
        let limit = through.map_or(Duration::MAX, |t| t.saturating_duration_since(self.start));
        let (_, after_warmup) = self.schedule.borrow_mut().skip_through(limit);
        self.advance();
        // The warm-up's requests are intended before `measure_from`, every other one at or after it.
        u64::from(self.worker.measures(head)) + after_warmup
    }
}

/// One idle sender, for as long as it waits.
struct Idle<'a>(&'a Cell<usize>);

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
