//! Waking the open-loop sender on time.
//!
//! tokio's timer ticks every millisecond, so a sender that sleeps with `sleep_until` wakes up to ~1 ms after
//! each intended send time. That lag is honestly part of the corrected latency, but then it measures the load
//! generator, not the server: a server answering in 100 µs showed a corrected p50 of 1.2 ms at 20,000
//! requests/s. The [`Pacer`] waits instead on a Linux `timerfd` (a high-resolution timer the runtime's epoll
//! watches; the thread's timer slack is lowered from 50 µs to 1 µs), so the sender wakes within a wake-up
//! latency (tens of microseconds) of each send time, never before it. It does not busy-wait: the load
//! generator's CPU figure stays true, and on a small machine the server keeps its core. Requests already due
//! are sent at once. A wake-up costs the sender thread ~25 µs of CPU on the VMs we measured on (the timer
//! is programmed and the thread sleeps each time), so it wakes at most once per [`MIN_INTERVAL`]: at rates
//! above 10,000/s a wake-up sends every request that came due since the last, up to 100 µs late. Where no
//! timerfd can be made, it falls back to tokio's timer (and the report's send lag shows the cost).

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// The shortest time between two wake-ups of the sender: bounds the pacer's CPU cost at high rates, and the
/// lag it adds there. Default: 100 µs.
pub const MIN_INTERVAL: Duration = Duration::from_micros(100);

/// `TimerFd` with the `AsRawFd` that tokio's `AsyncFd` wants.
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Waits until an instant, without busy-waiting, to within a wake-up latency (see the module docs).
pub struct Pacer {
    timer: Option<AsyncFd<Fd>>,
    last_wake: Option<Instant>,
}

impl Pacer {
    /// A pacer on a non-blocking `timerfd`, or on tokio's timer if none can be made. Needs a tokio runtime
    /// with I/O enabled.
    ///
    /// In this crate's unit tests it is always tokio's timer: they run on tokio's paused clock, which a
    /// `timerfd` (real time) does not follow.
    pub fn new() -> Pacer {
        if cfg!(test) {
            return Pacer {
                timer: None,
                last_wake: None,
            };
        }
        Pacer::high_resolution()
    }

    /// A pacer on a non-blocking `timerfd` (tokio's timer if none can be made), whatever the build.
    pub fn high_resolution() -> Pacer {
        // This thread's timers may fire at most 1 µs late (the default slack is 50 µs, which would be added to
        // every send). Best effort: with the default the pacer still works, 50 µs less precisely.
        let _ = nix::sys::prctl::set_timerslack(1_000);
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()
        // `AsyncFd::new` is deprecated because the registered fd could be closed while registered (tokio
        // #8587); here the `AsyncFd` owns the `TimerFd`, which owns the fd, so it lives exactly as long as the
        // registration. The replacement, `AsyncFd::register`, is `unsafe`, which this workspace forbids.
        .and_then(|t| {
            #[allow(deprecated)]
            AsyncFd::new(Fd(t)).ok()
        });
        Pacer {
            timer,
            last_wake: None,
        }
    }

    /// Whether the high-resolution timer is in use.
    pub fn precise(&self) -> bool {
        self.timer.is_some()
    }

    /// Returns at `t` or after it (by up to [`MIN_INTERVAL`] when the previous wake-up was less than that
    /// before `t`, plus the wake-up itself); at once if `t` has passed.
    pub async fn until(&mut self, t: Instant) {
        let now = Instant::now();
        if t <= now {
            return;
        }
        let at = match self.last_wake {
            Some(w) => t.max(w + MIN_INTERVAL),
            None => t,
        };
        let woke = match &self.timer {
            Some(timer) => Self::timerfd(timer, at - now).await.is_ok(),
            None => false,
        };
        if !woke {
            tokio::time::sleep_until(at).await;
        }
        self.last_wake = Some(Instant::now());
    }

    async fn timerfd(timer: &AsyncFd<Fd>, after: Duration) -> io::Result<()> {
        timer
            .get_ref()
            .0
            .set(
                Expiration::OneShot(TimeSpec::from(after)),
                TimerSetTimeFlags::empty(),
            )
            .map_err(io::Error::from)?;
        loop {
            let mut guard = timer.readable().await?;
            // `wait` reads the expiry count: EAGAIN (not yet) clears the readiness and we wait again.
            match guard.try_io(|fd| fd.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn never_wakes_early() {
        let mut p = Pacer::high_resolution();
        assert!(p.precise(), "a timerfd is available on Linux");
        for gap_us in [1, 20, 50, 300, 1500] {
            for _ in 0..20 {
                let t = Instant::now() + Duration::from_micros(gap_us);
                p.until(t).await;
                assert!(Instant::now() >= t, "woke before a time {gap_us} µs ahead");
            }
        }
    }

    #[tokio::test]
    async fn a_time_in_the_past_returns_at_once() {
        let mut p = Pacer::high_resolution();
        let t = Instant::now();
        p.until(t - Duration::from_millis(1)).await;
        assert!(t.elapsed() < Duration::from_millis(5));
    }
}
