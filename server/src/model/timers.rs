//! The clock of the poll-loop shells (`event-loop`, `uring`): framed SLEEPs in a heap, and a sweep that steps
//! every connection whose read or write deadline has passed (the `Conn` applies the timeout), so no per-request
//! timer is ever set or cancelled. The sweep runs 20 times per shortest timeout, and at least every 50 ms: a
//! timeout fires at most 5% (or 50 ms) late, as close as the other models' per-connection timers come (a
//! sweep every quarter of the shortest timeout closed a 1 s write timeout 1.25 s after the last progress).
//! An idle loop wakes 20 times a second (Redis's `hz` is 10); a sweep of 8,000 connections is a scan of
//! their deadlines, some microseconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::config::Limits;

pub(crate) struct Timers {
    /// `(until, connection)`.
    sleeps: BinaryHeap<Reverse<(Instant, usize)>>,
    sweep_every: Duration,
    next_sweep: Instant,
    /// `busy_poll`: how long after the last event the loop polls without sleeping.
    busy_poll: Duration,
    last_event: Instant,
}

impl Timers {
    pub(crate) fn new(limits: &Limits, busy_poll: Duration) -> Timers {
        let sweep_every = [
            limits.read_timeout,
            limits.idle_timeout,
            limits.write_timeout,
        ]
        .into_iter()
        .min()
        .unwrap_or(Duration::from_secs(1))
        .div_f64(20.0)
        .clamp(Duration::from_millis(5), Duration::from_millis(50));
        let now = Instant::now();
        Timers {
            sleeps: BinaryHeap::new(),
            sweep_every,
            next_sweep: now + sweep_every,
            busy_poll,
            last_event: now.checked_sub(busy_poll).unwrap_or(now),
        }
    }

    /// Connection `i` sleeps until then.
    pub(crate) fn sleep(&mut self, until: Instant, i: usize) {
        self.sleeps.push(Reverse((until, i)));
    }

    /// Events came: busy polling goes on for `busy_poll` from now.
    pub(crate) fn event(&mut self) {
        self.last_event = Instant::now();
    }

    /// How long the loop may wait for events: zero with work queued (`ready`) or while busy polling, else until
    /// the next sleep ends or the next sweep.
    pub(crate) fn wait(&self, now: Instant, ready: bool) -> Duration {
        if ready || now.saturating_duration_since(self.last_event) < self.busy_poll {
            return Duration::ZERO;
        }
        let mut wake_at = self.next_sweep;
        if let Some(Reverse((due, _))) = self.sleeps.peek() {
            wake_at = wake_at.min(*due);
        }
        wake_at.saturating_duration_since(now)
    }

    /// The next connection whose sleep has ended by `now`.
    pub(crate) fn woken(&mut self, now: Instant) -> Option<usize> {
        match self.sleeps.peek() {
            Some(Reverse((due, i))) if *due <= now => {
                let i = *i;
                self.sleeps.pop();
                Some(i)
            }
            _ => None,
        }
    }

    /// True (and the next sweep scheduled) when it is time to step the connections whose deadline passed.
    pub(crate) fn sweep(&mut self, now: Instant) -> bool {
        if now < self.next_sweep {
            return false;
        }
        self.next_sweep = now + self.sweep_every;
        true
    }
}
