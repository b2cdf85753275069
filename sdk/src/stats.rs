//! Client counters: requests, retries, connects and pool waits (count, total and max time), and connection
//! closes by reason. [`crate::Client::stats`] returns a [`ClientStats`] snapshot (serde `Serialize`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[cfg(feature = "serde")]
use serde::Serialize;

use crate::connection::CloseReason;

/// Live counters (lock-free; shared by the client, its pools and its reaper). The ones every call writes are
/// striped, so that threads calling at once do not pass one cache line back and forth.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: Striped,
    pub succeeded: Striped,
    pub failed: AtomicU64,
    pub cancelled: AtomicU64,
    pub retries: AtomicU64,
    pub retries_denied_by_budget: AtomicU64,
    pub resent_after_close: AtomicU64,
    pub pool_exhausted: AtomicU64,
    pub timeouts: AtomicU64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub connect_us_total: AtomicU64,
    pub connect_us_max: AtomicU64,
    pub pool_waits: Striped,
    pub pool_wait_us_total: AtomicU64,
    pub pool_wait_us_max: AtomicU64,
    pub closes: [AtomicU64; CloseReason::ALL.len()],
}

/// A value on a cache line of its own (128 bytes: two lines, as adjacent-line prefetch pairs them on x86), so
/// that writing it does not slow down threads that read or write its neighbours.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// This thread's number: 0, 1, 2 … in the order threads first ask (0 while the thread's locals are torn down).
/// Spreads threads over stripes ([`Striped`]) and over a shelf's connections.
pub(crate) fn thread_number() -> usize {
    thread_local! {
        static NUMBER: usize = {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            NEXT.fetch_add(1, Ordering::Relaxed)
        };
    }
    NUMBER.try_with(|n| *n).unwrap_or(0)
}

/// How many stripes a [`Striped`] counter has.
const STRIPES: usize = 8;

/// A counter that many threads add to: each thread adds to its own stripe (threads beyond [`STRIPES`] share),
/// and a read sums them.
#[derive(Debug, Default)]
pub(crate) struct Striped([Padded<AtomicU64>; STRIPES]);

impl Striped {
    pub fn add(&self) {
        self.0[thread_number() % STRIPES].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }
}

fn us(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

impl Counters {
    pub fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connect(&self, took: Duration, ok: bool) {
        if ok {
            Counters::add(&self.connects);
            self.connect_us_total.fetch_add(us(took), Ordering::Relaxed);
            self.connect_us_max.fetch_max(us(took), Ordering::Relaxed);
        } else {
            Counters::add(&self.connect_failures);
        }
    }

    pub fn pool_wait(&self, took: Duration) {
        self.pool_waits.add();
        // Most waits round to 0 µs (a connection was free): nothing to add, and no shared line to write.
        let us = us(took);
        if us > 0 {
            self.pool_wait_us_total.fetch_add(us, Ordering::Relaxed);
            self.pool_wait_us_max.fetch_max(us, Ordering::Relaxed);
        }
    }

    pub fn closed(&self, reason: CloseReason, n: u64) {
        if let Some(i) = CloseReason::ALL.iter().position(|r| *r == reason) {
            self.closes[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    fn closes(&self) -> CloseCounts {
        let g = |r: CloseReason| {
            let i = CloseReason::ALL.iter().position(|x| *x == r).unwrap_or(0);
            self.closes[i].load(Ordering::Relaxed)
        };
        CloseCounts {
            peer_closed: g(CloseReason::PeerClosed),
            reset: g(CloseReason::Reset),
            cancelled: g(CloseReason::Cancelled),
            protocol: g(CloseReason::Protocol),
            stray_bytes: g(CloseReason::StrayBytes),
            idle_timeout: g(CloseReason::IdleTimeout),
            max_lifetime: g(CloseReason::MaxLifetime),
            endpoint_reset: g(CloseReason::EndpointReset),
            local: g(CloseReason::Local),
            server_close: g(CloseReason::ServerClose),
        }
    }

    pub fn snapshot(&self, endpoints: Vec<EndpointStats>, in_flight: u64) -> ClientStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            requests: self.requests.get(),
            succeeded: self.succeeded.get(),
            failed: l(&self.failed),
            cancelled: l(&self.cancelled),
            retries: l(&self.retries),
            retries_denied_by_budget: l(&self.retries_denied_by_budget),
            resent_after_close: l(&self.resent_after_close),
            pool_exhausted: l(&self.pool_exhausted),
            timeouts: l(&self.timeouts),
            in_flight,
            connects: l(&self.connects),
            connect_failures: l(&self.connect_failures),
            connect_us_total: l(&self.connect_us_total),
            connect_us_max: l(&self.connect_us_max),
            pool_waits: self.pool_waits.get(),
            pool_wait_us_total: l(&self.pool_wait_us_total),
            pool_wait_us_max: l(&self.pool_wait_us_max),
            closes: self.closes(),
            endpoints,
        }
    }
}

/// Connections closed, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[non_exhaustive]
pub struct CloseCounts {
    /// The peer closed the connection (EOF), seen while idle or at check-out.
    pub peer_closed: u64,
    /// The peer reset the connection, or another socket error.
    pub reset: u64,
    /// A request's deadline passed while it was in flight (the client's request timeout), or a caller gave up on
    /// a depth-1 exchange in flight. (A caller giving up on a pipelined request does not retire the connection.)
    pub cancelled: u64,
    /// A reply did not decode or did not match its request.
    pub protocol: u64,
    /// Bytes arrived while no request was in flight.
    pub stray_bytes: u64,
    /// Unused for longer than the idle timeout.
    pub idle_timeout: u64,
    /// Past the (jittered) maximum lifetime.
    pub max_lifetime: u64,
    /// Invalidated in bulk: another connection to the endpoint saw a reset or EOF after it was opened.
    pub endpoint_reset: u64,
    /// Closed by this side (client closed).
    pub local: u64,
    /// The server announced it would close (HTTP `Connection: close`).
    pub server_close: u64,
}

impl CloseCounts {
    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.peer_closed
            + self.reset
            + self.cancelled
            + self.protocol
            + self.stray_bytes
            + self.idle_timeout
            + self.max_lifetime
            + self.endpoint_reset
            + self.local
            + self.server_close
    }
}

/// One endpoint's pool right now.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[non_exhaustive]
pub struct EndpointStats {
    /// The endpoint as configured.
    pub endpoint: String,
    /// Connections open (idle or lent out).
    pub size: usize,
    /// Connections in the pool with no request in flight (callers use pooled connections from the endpoint's
    /// shelf without lending them out).
    pub idle: usize,
    /// The pool's maximum size.
    pub max_size: usize,
    /// Calls to this endpoint in progress (waiting or in flight).
    pub calls: usize,
    /// Callers waiting inside the pool for a connection.
    pub waiting: usize,
    /// Pipelining slots taken on the endpoint's connections, in the pool or lent out (requests in flight on
    /// them).
    pub slots_in_use: usize,
    /// Calls admitted past the waiter bound and not finished (0 when none leaked); admission bounds `calls`, so
    /// the two are the same count.
    pub admitted: usize,
    /// True while ejected after repeated failures.
    pub ejected: bool,
    /// Write calls made by the endpoint's pipelined connections (depth > 1) since the client was built: each
    /// connection's driver writes every request queued since its last write in one call, so callers' requests
    /// that arrive together share one write.
    pub writes: u64,
}

/// A snapshot of the client's counters.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[non_exhaustive]
pub struct ClientStats {
    /// Calls made.
    pub requests: u64,
    /// Calls that succeeded.
    pub succeeded: u64,
    /// Calls that failed (after retries).
    pub failed: u64,
    /// Calls whose future was dropped before they finished (the caller gave up: its own timeout, a `select!`);
    /// `requests` = `succeeded` + `failed` + `cancelled` + the calls in progress.
    pub cancelled: u64,
    /// Retries made.
    pub retries: u64,
    /// Retries the budget refused.
    pub retries_denied_by_budget: u64,
    /// Requests sent again because the server closed the connection without processing them (they were
    /// pipelined behind its `Connection: close` reply, see [`Error::is_server_close`](crate::Error::is_server_close)):
    /// not retries, and never refused by the budget.
    pub resent_after_close: u64,
    /// Calls that failed fast because the pool had too many waiters.
    pub pool_exhausted: u64,
    /// Calls that failed with a timeout.
    pub timeouts: u64,
    /// Requests queued on or in flight on the pools' connections right now: their slots taken, counting any
    /// reserved for a request not yet queued (0 when nothing leaked). A connection the pool has already dropped
    /// while its last requests finish is not counted.
    pub in_flight: u64,
    /// Connections opened.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Total time spent opening connections, in microseconds.
    pub connect_us_total: u64,
    /// Longest connect, in microseconds.
    pub connect_us_max: u64,
    /// Pool checkouts.
    pub pool_waits: u64,
    /// Total time waiting for a connection or a slot (connect time excluded), in microseconds.
    pub pool_wait_us_total: u64,
    /// Longest pool wait, in microseconds.
    pub pool_wait_us_max: u64,
    /// Connections closed, by reason.
    pub closes: CloseCounts,
    /// Each endpoint's pool.
    pub endpoints: Vec<EndpointStats>,
}
