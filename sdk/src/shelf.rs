//! The shelf: the connections of one endpoint, where a caller finds one with a free slot without a pool
//! check-out.
//!
//! Checking a connection out of deadpool for every request (semaphore, slot list, recycle) and, at depth P > 1,
//! holding it while queueing made callers hand connections to each other through deadpool's wait queue: one
//! more lock round and task wake-up per request. The pool still owns every connection (it opens, recycles, reaps
//! and closes them); each connection it opens is also put on its endpoint's shelf, and comes off when it is
//! dropped. A caller first looks on the shelf for a healthy connection with a free slot and goes to the pool
//! only when none has one: the pool then opens a connection below `max_size`, or makes the caller wait.
//!
//! Each thread searches from its own place: where its last pipelined caller found a slot (so requests gather on
//! few connections and share their writes), or at depth 1 where its last caller freed a connection (so a thread
//! keeps reusing the connections warm in its cache). The list itself is swapped whole when a connection comes or
//! goes, so reading it writes to nothing the threads share.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;

use tokio::time::Instant;

use crate::connection::{Connection, Handle, ReplyFuture, Taken};
use crate::protocol::Protocol;

/// The connections of one endpoint: a list replaced whole when a connection comes or goes (rare), so that
/// callers on every thread read it without writing to anything they share.
pub(crate) struct Shelf<P: Protocol> {
    conns: ArcSwap<Vec<(u64, Handle<P>)>>,
    next_id: AtomicU64,
}

impl<P: Protocol> Default for Shelf<P> {
    fn default() -> Self {
        Shelf {
            conns: ArcSwap::from_pointee(Vec::new()),
            next_id: AtomicU64::new(0),
        }
    }
}

thread_local! {
    /// Where this thread's last caller found a free slot: each thread keeps its own place, so threads do not
    /// write to one shared hint per call, and they search from different connections rather than race for
    /// the same free slot.
    static CURSOR: Cell<usize> = Cell::new(crate::stats::thread_number().wrapping_mul(7919));
}

/// A connection's place on a shelf; dropped with the connection, it takes it off.
struct OnShelf<P: Protocol> {
    shelf: Weak<Shelf<P>>,
    id: u64,
}

impl<P: Protocol> Drop for OnShelf<P> {
    fn drop(&mut self) {
        if let Some(shelf) = self.shelf.upgrade() {
            shelf.conns.rcu(|conns| {
                conns
                    .iter()
                    .filter(|(id, _)| *id != self.id)
                    .cloned()
                    .collect::<Vec<_>>()
            });
        }
    }
}

impl<P: Protocol> Shelf<P> {
    /// The `n` places on the shelf, each with its step, starting where this thread's last caller found a slot.
    fn places(n: usize) -> impl Iterator<Item = (usize, usize)> {
        // (While the thread's locals are being torn down the cursor is gone: start at 0.)
        let start = CURSOR.try_with(Cell::get).unwrap_or(0) % n.max(1);
        (0..n).map(move |i| (i, (start + i) % n))
    }

    /// Put a new connection on the shelf.
    pub(crate) fn put(self: &Arc<Self>, conn: &mut Connection<P>) {
        let handle = conn.handle();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns.rcu(|conns| {
            let mut conns = Vec::clone(conns);
            conns.push((id, handle.clone()));
            conns
        });
        conn.attach(Box::new(OnShelf {
            shelf: Arc::downgrade(self),
            id,
        }));
    }

    /// Queue `request` (at time `now`, answered as timed out at `deadline`) on a shelved connection with a free
    /// slot, or give it back when none has one.
    pub(crate) fn try_send(
        &self,
        mut request: P::Request,
        deadline: Option<Instant>,
        now: Instant,
    ) -> Result<ReplyFuture<P::Response>, P::Request> {
        let conns = self.conns.load();
        for (i, at) in Self::places(conns.len()) {
            let Handle::Queue(queue) = &conns[at].1 else {
                continue;
            };
            let Some(slot) = queue.try_reserve() else {
                continue;
            };
            if i > 0 {
                set_cursor(at);
            }
            match queue.try_send(slot, request, deadline, now) {
                Ok(reply) => return Ok(reply),
                // Died between the slot and the queue: nothing was sent.
                Err((_, r)) => request = r,
            }
        }
        Err(request)
    }

    /// Requests queued or in flight on the connections on the shelf (every connection the pool holds or has
    /// lent out).
    pub(crate) fn in_flight(&self) -> usize {
        self.conns.load().iter().map(|(_, h)| h.in_flight()).sum()
    }

    /// A depth-1 connection with its slot free that passes the pool's checks at `now`, taken, and its place
    /// (see [`returned`]).
    pub(crate) fn take_direct(&self, now: Instant) -> Option<(Taken<P>, usize)> {
        let conns = self.conns.load();
        for (_, at) in Self::places(conns.len()) {
            let Handle::Direct(direct) = &conns[at].1 else {
                continue;
            };
            if let Some(taken) = direct.try_take(now) {
                // This thread's next caller starts after this one: the connection just taken is busy.
                set_cursor(at + 1);
                return Some((taken, at));
            }
        }
        None
    }
}

/// A depth-1 connection taken at `place` ([`Shelf::take_direct`]) is free again: this thread's next caller
/// looks there first, so a thread keeps reusing the connections it used last (warm in its cache, found at the
/// first try) instead of walking all of them.
pub(crate) fn returned(place: usize) {
    set_cursor(place);
}

fn set_cursor(place: usize) {
    let _ = CURSOR.try_with(|c| c.set(place));
}
