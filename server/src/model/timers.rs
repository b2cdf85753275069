//! The clock of the poll-loop shells (`event-loop`, `uring`): framed SLEEPs in a heap, and a sweep a few times
//! per shortest timeout that steps every connection whose read or write deadline has passed (the `Conn` applies
//! the timeout), so no per-request timer is ever set or cancelled.

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
        .div_f64(4.0)
        .clamp(Duration::from_millis(5), Duration::from_millis(250));
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
