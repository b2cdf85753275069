//! The shelf: the pipelined connections of one endpoint, where a caller queues its request without a pool
//! check-out.
//!
//! At depth P > 1 a connection serves many callers at once. Checking it out of deadpool for every request
//! (semaphore, slot list, recycle) and holding it while queueing made callers hand connections to each other
//! through deadpool's wait queue: one more lock round and task wake-up per request. The pool still owns every
//! connection (it opens, recycles, reaps and closes them); each pipelined connection it opens is also put on its
//! endpoint's shelf, and comes off when it is dropped. A caller first looks on the shelf for a healthy connection
//! with a free slot, starting where the last caller found one (so requests gather on few connections and share
//! their writes), and goes to the pool only when none has one: the pool then opens a connection below
//! `max_size`, or makes the caller wait for a slot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};

use tokio::time::Instant;

use crate::connection::{Connection, Handle, ReplyFuture, Taken};
use crate::protocol::Protocol;

/// The connections of one endpoint.
pub(crate) struct Shelf<P: Protocol> {
    conns: RwLock<Vec<(u64, Handle<P>)>>,
    /// Where the last caller found a free slot.
    hint: AtomicUsize,
    next_id: AtomicU64,
}

impl<P: Protocol> Default for Shelf<P> {
    fn default() -> Self {
        Shelf {
            conns: RwLock::new(Vec::new()),
            hint: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
        }
    }
}

/// A connection's place on a shelf; dropped with the connection, it takes it off.
struct OnShelf<P: Protocol> {
    shelf: Weak<Shelf<P>>,
    id: u64,
}

impl<P: Protocol> Drop for OnShelf<P> {
    fn drop(&mut self) {
        if let Some(shelf) = self.shelf.upgrade() {
            let mut conns = shelf.conns.write().unwrap_or_else(|e| e.into_inner());
            conns.retain(|(id, _)| *id != self.id);
        }
    }
}

impl<P: Protocol> Shelf<P> {
    /// The `n` places on the shelf, each with its step, starting where the last caller found a slot.
    fn places(&self, n: usize) -> impl Iterator<Item = (usize, usize)> {
        let start = self.hint.load(Ordering::Relaxed).min(n.saturating_sub(1));
        (0..n).map(move |i| (i, (start + i) % n))
    }

    /// Put a new connection on the shelf.
    pub(crate) fn put(self: &Arc<Self>, conn: &mut Connection<P>) {
        let handle = conn.handle();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, handle));
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
        let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
        for (i, at) in self.places(conns.len()) {
            let Handle::Queue(queue) = &conns[at].1 else {
                continue;
            };
            let Some(slot) = queue.try_reserve() else {
                continue;
            };
            if i > 0 {
                self.hint.store(at, Ordering::Relaxed);
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
        let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
        conns.iter().map(|(_, h)| h.in_flight()).sum()
    }

    /// A depth-1 connection with its slot free that passes the pool's checks at `now`, and the slot.
    pub(crate) fn take_direct(&self, now: Instant) -> Option<Taken<P>> {
        let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
        for (_, at) in self.places(conns.len()) {
            let Handle::Direct(direct) = &conns[at].1 else {
                continue;
            };
            if let Some(taken) = direct.try_take(now) {
                // The next caller starts after this one: the connection just taken is busy.
                self.hint.store(at + 1, Ordering::Relaxed);
                return Some(taken);
            }
        }
        None
    }
}
