//! The RESP key space ([`Db`]): one map shared by every connection of a server (every `resp` session, under
//! every model), sharded so connections on different threads rarely wait for each other.
//!
//! **Time.** The store keeps no clock: every operation takes `now` (the instant its connection's model read
//! the request, [`Session::on_input`](crate::session::Session::on_input)'s `now`), and a key's deadline is an
//! [`Instant`]. Unit tests pass instants of their own, so expiry is tested without waiting.
//!
//! **Expiry.** A key past its deadline is invisible at once (every read checks: lazy expiry) and its memory is
//! reclaimed without anyone touching it: each shard keeps its keys with a deadline in a [`BTreeSet`] ordered by
//! deadline, so the expired ones are the first ones. Every write to a shard drops up to [`RECLAIM_PER_WRITE`] of
//! them, and [`Db::sweep`] (run by the server every [`SWEEP_EVERY`]) drops up to [`SWEEP_PER_SHARD`] per shard,
//! one shard lock at a time: the work under a lock is bounded, never a scan.
//!
//! **Transactions.** [`Db::lock_all`] takes every shard's lock, in index order, and holds them while `EXEC` runs
//! its commands ([`Locked`]): no other connection's command interleaves with them. A command on several keys
//! (`MGET`, `MSET`, `MSETNX`, `DEL`, `EXISTS`) takes the locks of its keys' shards together, in the same order
//! ([`Db::lock_keys`]), so it is atomic too; every other command takes one shard's lock at a time, so the fixed
//! order cannot deadlock, and the hot path (one key: [`Store`] for `&Db`) pays nothing for it.
//!
//! **`WATCH`** is per key, as in Redis: a shard keeps a count of changes for each key some connection watches
//! (and how many watch it), and every change to such a key (set, deleted, its deadline moved, reclaimed) bumps
//! it; `EXEC` compares ([`Locked::changed_since`]). A watched key's deadline passing counts as a change too, as
//! in Redis 6.0.9+, even before the key is reclaimed. Nothing else (a read, another key) aborts a transaction.
//!
//! **Size** (`--max-store`, Redis's `maxmemory` with `maxmemory-policy noeviction`). Each key costs [`cost`]: its
//! bytes, its value's bytes and [`ENTRY_OVERHEAD`], and [`DEADLINE_OVERHEAD`] more while it has a deadline. A
//! shard counts what its keys cost, and every change of that count goes to one [`Quota`] shared by the shards (an
//! atomic, no lock): a write that would take the total past the cap is refused before it changes anything
//! ([`Full`], Redis's `-OOM`), one that does not grow the store always goes through, and a key deleted,
//! overwritten smaller, losing its deadline, reclaimed after its deadline or flushed gives its bytes back at
//! once. A deadline given by a command Redis never refuses (`EXPIRE` …, `GETEX`) is counted without a check
//! ([`Account::recount`]): the one way the total passes the cap. A command on several keys (`MSET`, `MSETNX`, `RENAME`) reserves the most it can grow by
//! first ([`Locked::prepaid`]), so it happens whole or not at all.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

mod kinds;
mod ranked;
pub(crate) use kinds::{
    format_score, index_range, parse_score, Collection, Data, Hash, Kind, List, Refused, Set,
    WrongType, ZAddFlags, ZAdded, ZSet, HASH_ITEM, LIST_ITEM, SET_ITEM, WRONGTYPE, ZSET_ITEM,
};

/// Shards of the key space; a key's shard is picked by an FNV-1a hash, so connections on different threads
/// rarely wait for each other.
pub(crate) const SHARDS: usize = 64;
// A shard set is a `u64` mask ([`Db::lock_keys`]) and a place an `u8` ([`Locked`]).
const _: () = assert!(SHARDS <= 64);

/// Expired keys a write to a shard reclaims, at most, besides its own work.
pub(crate) const RECLAIM_PER_WRITE: usize = 4;
/// Expired keys [`Db::sweep`] reclaims per shard, at most, each time it runs.
pub(crate) const SWEEP_PER_SHARD: usize = 32;
/// How often the server runs [`Db::sweep`].
pub(crate) const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// What a key costs the store beyond its own bytes and its value's, in `--max-store`'s count: its slot in the
/// shard's table (the key's and the value's handles and the deadline, 80 bytes, and a control byte, in a table
/// between 7/16 and 7/8 full), the allocator's header and rounding of the key's and the value's copies, and the
/// 32-byte shared handle a value gets the first time it is read (`bytes` allocates it on the first clone; it is
/// counted whether or not the value was read, so no read can take the store past its count). Measured on the
/// server's RSS (docs/PROTOCOL.md, "The key space's size"): 140 to 232 bytes for a key without a deadline, as
/// its shard's table fills up and doubles, 32 more once read; this is the middle of that range, rounded.
pub(crate) const ENTRY_OVERHEAD: usize = 224;

/// What a deadline adds to a key's cost ([`cost`]): its entry in the shard's expiry index (a deadline and a
/// handle to the key, 48 bytes, in B-tree nodes between about half and two thirds full) and the 32-byte shared
/// handle the key gets when the index shares it. Measured on the server's RSS as [`ENTRY_OVERHEAD`] was: RSS
/// per key with a deadline minus without (docs/PROTOCOL.md, "The key space's size"). A key whose deadline is
/// removed gets a fresh copy of its name, so that handle goes with the deadline.
pub(crate) const DEADLINE_OVERHEAD: usize = 128;

/// A shard's table is cut back to twice its keys once it has more than four times as many slots as keys (and
/// more than this many): deleting keys gives their slots back, so a client that fills one shard after another
/// and deletes cannot leave every table at its largest. The factor of two between growing and shrinking keeps
/// a key set and deleted at the edge from resizing the table each time.
const MIN_SLOTS: usize = 1024;

/// What a key of `key` bytes holding a value of `value` bytes costs the store ([`ENTRY_OVERHEAD`]), with
/// [`DEADLINE_OVERHEAD`] more if it has a deadline: the one place that says what a key costs.
#[inline]
pub(crate) const fn cost(key: usize, value: usize, has_deadline: bool) -> usize {
    key + value + ENTRY_OVERHEAD + if has_deadline { DEADLINE_OVERHEAD } else { 0 }
}

/// The reply to a write refused at the cap: Redis's own words (redis-server 7.0.15 with `maxmemory-policy
/// noeviction`), `-OOM` on the wire.
pub(crate) const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// A write refused: it would take the store past its cap (`--max-store`). Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// The store's cap and what its keys cost now, shared by every shard: one atomic, changed when a shard's count
/// changes (a write that keeps the sizes touches it not at all).
#[derive(Debug)]
pub(crate) struct Quota {
    /// The most the keys may cost together, bytes (`--max-store`).
    cap: usize,
    /// What they cost now ([`cost`] summed over the shards), plus what a command on several keys reserved while
    /// it runs ([`Locked::prepaid`]).
    used: AtomicUsize,
}

impl Quota {
    /// Takes `n` more bytes if the total stays within the cap; false (nothing taken) if it would not.
    #[inline]
    fn reserve(&self, n: usize) -> bool {
        n == 0
            || self
                .used
                .fetch_update(Relaxed, Relaxed, |u| {
                    u.checked_add(n).filter(|&total| total <= self.cap)
                })
                .is_ok()
    }

    /// Gives `n` bytes back.
    #[inline]
    fn release(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Relaxed);
        }
    }
}

/// A shard's side of the [`Quota`]: what its keys cost, kept in step with the shared total.
#[derive(Debug)]
struct Account {
    /// What this shard's keys cost ([`cost`] each).
    used: usize,
    /// The total and the cap, shared with the other shards.
    quota: Arc<Quota>,
    /// Set while a command on several keys runs on room it reserved for all of them ([`Locked::prepaid`]):
    /// growth is counted without a check. Cleared whenever the shard is locked ([`Db::lock`]).
    prepaid: bool,
}

impl Account {
    /// An entry that cost `old` now costs `new` (0: none): counted, or [`Full`] (nothing counted) if the store
    /// would pass its cap.
    #[inline]
    fn resize(&mut self, old: usize, new: usize) -> Result<(), Full> {
        if new > old {
            let more = new - old;
            if self.prepaid {
                self.quota.used.fetch_add(more, Relaxed);
            } else if !self.quota.reserve(more) {
                return Err(Full);
            }
            self.used += more;
        } else {
            self.free(old - new);
        }
        Ok(())
    }

    /// An entry that cost `old` now costs `new`, counted without a check: a deadline given by a command Redis
    /// never refuses for memory (`EXPIRE` and the other deadline commands, `GETEX`; not flagged `denyoom` in
    /// redis-server 7.0.15). The one way the total can pass the cap: by at most [`DEADLINE_OVERHEAD`] for each
    /// key without a deadline, after which every write that grows the store is refused until it is back under.
    #[inline]
    fn recount(&mut self, old: usize, new: usize) {
        if new > old {
            let more = new - old;
            self.quota.used.fetch_add(more, Relaxed);
            self.used += more;
        } else {
            self.free(old - new);
        }
    }

    /// `n` bytes of entries gone.
    #[inline]
    fn free(&mut self, n: usize) {
        self.used -= n;
        self.quota.release(n);
    }
}

/// The room a command on several keys reserved ([`Locked::prepaid`]), given back when dropped (a panic in the
/// command included).
struct Reservation<'q> {
    /// Where it was taken from.
    quota: &'q Quota,
    /// How much.
    bytes: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.quota.release(self.bytes);
    }
}

/// The RESP key space: `SHARDS` mutex-guarded maps, and their size against the cap.
pub struct Db {
    shards: Vec<Mutex<Shard>>,
    /// The cap and the total, which every shard's [`Account`] shares.
    quota: Arc<Quota>,
}

/// One shard: its keys, and the ones with a deadline ordered by it.
#[derive(Debug)]
pub(crate) struct Shard {
    /// The keys and their values.
    map: HashMap<Bytes, Entry>,
    /// `(deadline, key)` of every key in `map` that has a deadline (the same `Bytes`, not a copy).
    expiry: BTreeSet<(Instant, Bytes)>,
    /// The keys some connection `WATCH`es, and how often each changed since ([`Db::watch`]). Empty unless a
    /// transaction is being prepared, so a write pays one `is_empty` for it.
    watched: HashMap<Bytes, Watch>,
    /// What the keys cost, against the store's cap.
    account: Account,
}

/// A watched key: its changes since the first watcher came, and how many connections watch it.
#[derive(Debug, Default)]
struct Watch {
    changes: u64,
    watchers: usize,
}

/// What `WATCH key` saw ([`Db::watch`]): `EXEC` goes on only if the key has not changed since
/// ([`Locked::changed_since`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watched {
    /// The key's changes when it was watched.
    changes: u64,
    /// Its deadline then, if it was there and had one: passing it is a change too, as in Redis 6.0.9+.
    deadline: Option<Instant>,
}

/// A value and its deadline.
#[derive(Debug)]
struct Entry {
    /// The value.
    value: Data,
    /// When the key expires (gone from then on); `None`: never.
    deadline: Option<Instant>,
}

impl Entry {
    /// What this entry costs under a key of `key` bytes ([`cost`]).
    #[inline]
    fn cost(&self, key: usize) -> usize {
        cost(key, self.value.size(), self.deadline.is_some())
    }
}

/// The time to live of a key: `TTL`/`PTTL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ttl {
    /// No such key (`-2`).
    Missing,
    /// The key never expires (`-1`).
    Persistent,
    /// The key expires after this long.
    Left(Duration),
}

/// What `SET` does besides storing: its `NX`/`XX` condition, its `GET`, and the deadline it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SetOptions {
    /// `NX`: only if the key does not exist.
    pub only_if_missing: bool,
    /// `XX`: only if the key exists.
    pub only_if_present: bool,
    /// `KEEPTTL`: keep the key's deadline (otherwise `deadline` replaces it).
    pub keep_ttl: bool,
    /// `GET`: return the old value.
    pub get: bool,
    /// The new deadline (`EX`, `PX`, `EXAT`, `PXAT`); `None` (without `keep_ttl`): never expires.
    pub deadline: Option<Instant>,
}

/// What `GETEX` does to a key's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing.
    Keep,
    /// `PERSIST`: the key no longer expires.
    Persist,
    /// `EX`, `PX`, `EXAT`, `PXAT`: this deadline (not after `now`: the key is deleted).
    At(Instant),
}

/// The condition of `EXPIRE`/`PEXPIRE` (`NX`, `XX`, `GT`, `LT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpireIf {
    /// Always.
    Always,
    /// `NX`: only if the key has no deadline.
    NoDeadline,
    /// `XX`: only if the key has a deadline.
    HasDeadline,
    /// `GT`: only if the new deadline is later (no deadline counts as infinite).
    Later,
    /// `LT`: only if the new deadline is earlier (no deadline counts as infinite).
    Earlier,
}

impl Shard {
    /// True if `key`'s entry is there and past its deadline.
    fn expired(&self, key: &[u8], now: Instant) -> bool {
        matches!(self.map.get(key), Some(Entry { deadline: Some(d), .. }) if *d <= now)
    }

    /// Every key removed and its memory given back; each watched key that was there counts as changed (as
    /// Redis's `FLUSHALL` touches them).
    fn flush(&mut self) {
        for (key, w) in &mut self.watched {
            if self.map.contains_key(key) {
                w.changes += 1;
            }
        }
        self.map = HashMap::new();
        self.expiry = BTreeSet::new();
        self.account.free(self.account.used);
    }

    /// Appends the live keys matching `pattern` (none: every one) to `out`.
    pub(crate) fn keys(&self, pattern: &[u8], now: Instant, out: &mut Vec<Bytes>) {
        let all = pattern == b"*";
        out.extend(
            self.map
                .iter()
                .filter(|(k, e)| e.deadline.is_none_or(|d| d > now) && (all || glob(pattern, k)))
                // A copy: a handle shared with the map would give its key a 32-byte handle for good.
                .map(|(k, _)| Bytes::copy_from_slice(k)),
        );
    }

    /// The length of the string at `key` (0: no such key).
    pub(crate) fn strlen(&mut self, key: &[u8], now: Instant) -> Result<usize, WrongType> {
        self.live(key, now)
            .map_or(Ok(0), |e| e.value.as_str().map(Bytes::len))
    }

    /// What the value at `key` counts in its cost, any kind (0: no such key): `RENAME`'s growth.
    pub(crate) fn size(&mut self, key: &[u8], now: Instant) -> usize {
        self.live(key, now).map_or(0, |e| e.value.size())
    }

    /// One watcher of `key` fewer; the last one gone, it is no longer watched.
    fn unwatch(&mut self, key: &[u8]) {
        if let Some(w) = self.watched.get_mut(key) {
            w.watchers -= 1;
            if w.watchers == 0 {
                self.watched.remove(key);
            }
        }
    }

    /// Drops `key` if it has expired (lazy expiry); then the live entry, if any.
    fn live(&mut self, key: &[u8], now: Instant) -> Option<&mut Entry> {
        if self.expired(key, now) {
            self.remove(key);
        }
        self.map.get_mut(key)
    }

    /// Removes `key` and its place in the expiry index; its entry, if it was there (expired or not).
    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let (k, entry) = self.map.remove_entry(key)?;
        self.account.free(entry.cost(k.len()));
        if let Some(d) = entry.deadline {
            self.expiry.remove(&(d, k));
        }
        self.changed(key);
        self.fit();
        Some(entry)
    }

    /// Cuts the table back once it is mostly empty ([`MIN_SLOTS`]).
    #[inline]
    fn fit(&mut self) {
        let (keys, slots) = (self.map.len(), self.map.capacity());
        if slots > MIN_SLOTS && keys < slots / 4 {
            self.map.shrink_to(keys * 2);
        }
    }

    /// Sets `key`'s entry (replacing any), keeping the expiry index in step (the index shares the map's copy of
    /// the key); [`Full`], and nothing changed, if that would take the store past its cap.
    fn put(&mut self, key: &[u8], value: Data, deadline: Option<Instant>) -> Result<(), Full> {
        let new = cost(key.len(), value.size(), deadline.is_some());
        match self.map.get_mut(key) {
            Some(e) => {
                self.account.resize(e.cost(key.len()), new)?;
                e.value = value;
                let old = e.deadline;
                self.changed(key);
                self.move_due(key, old, deadline);
            }
            None => {
                self.account.resize(0, new)?;
                self.changed(key);
                let k = Bytes::copy_from_slice(key);
                if let Some(d) = deadline {
                    self.expiry.insert((d, k.clone()));
                }
                self.map.insert(k, Entry { value, deadline });
            }
        }
        Ok(())
    }

    /// Gives `key`'s entry (there) the deadline `deadline`, its value as it is: `EXPIRE`, `PERSIST`, `GETEX`.
    /// Its cost changes with it, counted without a check ([`Account::recount`]): Redis never refuses these.
    fn redate(&mut self, key: &[u8], deadline: Option<Instant>) {
        let Some(e) = self.map.get(key) else {
            return;
        };
        let (old, len) = (e.deadline, e.value.size());
        self.account.recount(
            cost(key.len(), len, old.is_some()),
            cost(key.len(), len, deadline.is_some()),
        );
        self.changed(key);
        self.move_due(key, old, deadline);
    }

    /// Moves `key`'s entry (there, its deadline `old`) to `new` in the expiry index and in the entry. A key
    /// that loses its deadline gets a fresh copy of its name: the index's handle made the map's a shared one,
    /// which would keep its 32 bytes after the deadline's cost was given back ([`DEADLINE_OVERHEAD`]).
    fn move_due(&mut self, key: &[u8], old: Option<Instant>, new: Option<Instant>) {
        if old == new {
            return;
        }
        // Already shared if it had a deadline; shared from now on if it gets one.
        let Some(k) = self.map.get_key_value(key).map(|(k, _)| k.clone()) else {
            return;
        };
        match (old, new) {
            (_, Some(new)) => {
                if let Some(old) = old {
                    self.expiry.remove(&(old, k.clone()));
                }
                self.expiry.insert((new, k));
                if let Some(e) = self.map.get_mut(key) {
                    e.deadline = Some(new);
                }
            }
            (Some(old), None) => {
                self.expiry.remove(&(old, k));
                if let Some((k, mut e)) = self.map.remove_entry(key) {
                    e.deadline = None;
                    self.map.insert(Bytes::copy_from_slice(&k), e);
                }
            }
            (None, None) => {}
        }
    }

    /// `key` changed (set, deleted, its deadline moved, expired): a `WATCH` of it makes `EXEC` abort.
    #[inline]
    fn changed(&mut self, key: &[u8]) {
        if !self.watched.is_empty() {
            if let Some(w) = self.watched.get_mut(key) {
                w.changes += 1;
            }
        }
    }

    /// Drops up to `max` expired keys, earliest deadline first; how many it dropped.
    pub(crate) fn reclaim(&mut self, now: Instant, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            match self.expiry.first() {
                Some((d, _)) if *d <= now => {}
                _ => break,
            }
            let Some((_, key)) = self.expiry.pop_first() else {
                break;
            };
            if let Some(e) = self.map.remove(&key) {
                self.account.free(e.cost(key.len()));
            }
            self.changed(&key);
            n += 1;
        }
        if n > 0 {
            self.fit();
        }
        n
    }

    /// The string at `key` (one lookup: the hot path); [`WrongType`] if it holds a collection.
    pub(crate) fn get(&mut self, key: &[u8], now: Instant) -> Result<Option<Bytes>, WrongType> {
        match self.map.get(key) {
            None => Ok(None),
            Some(e) if e.deadline.is_none_or(|d| d > now) => e.value.as_str().cloned().map(Some),
            Some(_) => {
                self.remove(key);
                Ok(None)
            }
        }
    }

    /// True if `key` is there.
    pub(crate) fn exists(&mut self, key: &[u8], now: Instant) -> bool {
        self.live(key, now).is_some()
    }

    /// Removes `key`; true if it was there (and not expired).
    pub(crate) fn del(&mut self, key: &[u8], now: Instant) -> bool {
        match self.remove(key) {
            Some(e) => e.deadline.is_none_or(|d| d > now),
            None => false,
        }
    }

    /// `SET key value` with `options`: `Ok(old value)` if it stored, `Err(old value)` if its `NX`/`XX`
    /// condition kept it from storing (the old value only when `options.get`); [`Refused::Full`] (nothing
    /// changed) if storing would take the store past its cap, [`Refused::WrongType`] (nothing changed) if
    /// `options.get` and the key holds a collection (without `GET`, `SET` replaces any kind of value, as in Redis). One lookup, as the plain `SET` of the hot path always made:
    /// the key is copied first (it is kept if the key is new). Expired keys of the shard are reclaimed first, so
    /// the room they held is there for this write.
    pub(crate) fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
        options: SetOptions,
        now: Instant,
    ) -> Result<Result<Option<Bytes>, Option<Bytes>>, Refused> {
        use std::collections::hash_map::Entry as Slot;
        if !self.expiry.is_empty() {
            self.reclaim(now, RECLAIM_PER_WRITE);
        }
        let result = match self.map.entry(Bytes::copy_from_slice(key)) {
            Slot::Occupied(mut slot) => {
                let e = slot.get();
                let live = e.deadline.is_none_or(|d| d > now);
                let old = match (live && options.get, &e.value) {
                    (false, _) => None,
                    (true, Data::Str(v)) => Some(v.clone()),
                    (true, _) => return Err(Refused::WrongType),
                };
                if (options.only_if_missing && live) || (options.only_if_present && !live) {
                    return Ok(Err(old));
                }
                let previous = e.deadline;
                let deadline = match (options.keep_ttl, live) {
                    (true, true) => previous,
                    (true, false) => None,
                    (false, _) => options.deadline,
                };
                self.account.resize(
                    e.cost(key.len()),
                    cost(key.len(), value.len(), deadline.is_some()),
                )?;
                let value = Bytes::copy_from_slice(value);
                match (previous, deadline) {
                    (Some(was), None) => {
                        // A fresh copy of the name: the index's handle goes with the deadline
                        // ([`Shard::move_due`]).
                        let (k, _) = slot.remove_entry();
                        self.expiry.remove(&(was, k));
                        let entry = Entry {
                            value: Data::Str(value),
                            deadline,
                        };
                        self.map.insert(Bytes::copy_from_slice(key), entry);
                    }
                    (previous, deadline) => {
                        if previous != deadline {
                            if let Some(d) = previous {
                                self.expiry.remove(&(d, slot.key().clone()));
                            }
                            if let Some(d) = deadline {
                                self.expiry.insert((d, slot.key().clone()));
                            }
                        }
                        let e = slot.get_mut();
                        e.deadline = deadline;
                        // A string replaced in place: its old handle dropped as such, not as any value.
                        match &mut e.value {
                            Data::Str(old) => *old = value,
                            other => *other = Data::Str(value),
                        }
                    }
                }
                Ok(old)
            }
            Slot::Vacant(slot) => {
                if options.only_if_present {
                    return Ok(Err(None));
                }
                let deadline = if options.keep_ttl {
                    None
                } else {
                    options.deadline
                };
                self.account
                    .resize(0, cost(key.len(), value.len(), deadline.is_some()))?;
                if let Some(d) = deadline {
                    self.expiry.insert((d, slot.key().clone()));
                }
                slot.insert(Entry {
                    value: Data::Str(Bytes::copy_from_slice(value)),
                    deadline,
                });
                Ok(None)
            }
        };
        self.changed(key);
        Ok(result)
    }

    /// How much setting `key` to a value of `len` bytes, with a deadline or not, would grow the store (0: it
    /// would not); an expired key not yet reclaimed counts as there, as it holds its memory until then.
    pub(crate) fn growth(&self, key: &[u8], len: usize, has_deadline: bool) -> usize {
        let old = self.map.get(key).map_or(0, |e| e.cost(key.len()));
        cost(key.len(), len, has_deadline).saturating_sub(old)
    }

    /// True if `key` is there and has a deadline (`RENAME`'s new name takes it, and its cost).
    pub(crate) fn has_deadline(&mut self, key: &[u8], now: Instant) -> bool {
        self.live(key, now).is_some_and(|e| e.deadline.is_some())
    }

    /// Adds `delta` to the integer at `key` (0 if missing), keeping its deadline as Redis does.
    pub(crate) fn incr_by(
        &mut self,
        key: &[u8],
        delta: i64,
        now: Instant,
    ) -> Result<i64, IncrError> {
        let (current, deadline) = match self.live(key, now) {
            Some(e) => (
                parse_i64(e.value.as_str().map_err(|WrongType| IncrError::WrongType)?)
                    .ok_or(IncrError::NotAnInteger)?,
                e.deadline,
            ),
            None => (0, None),
        };
        let next = current.checked_add(delta).ok_or(IncrError::Overflow)?;
        let text = Bytes::copy_from_slice(itoa::Buffer::new().format(next).as_bytes());
        if !self.expiry.is_empty() {
            self.reclaim(now, RECLAIM_PER_WRITE);
        }
        self.put(key, Data::Str(text), deadline)
            .map_err(|Full| IncrError::Full)?;
        Ok(next)
    }

    /// Gives `key` the deadline `deadline` if `condition` holds (a deadline not after `now` deletes the key, as
    /// Redis does); true if it did.
    pub(crate) fn expire(
        &mut self,
        key: &[u8],
        deadline: Instant,
        condition: ExpireIf,
        now: Instant,
    ) -> bool {
        let Some(entry) = self.live(key, now) else {
            return false;
        };
        let applies = match (condition, entry.deadline) {
            (ExpireIf::Always, _) => true,
            (ExpireIf::NoDeadline, d) => d.is_none(),
            (ExpireIf::HasDeadline, d) => d.is_some(),
            (ExpireIf::Later, d) => d.is_some_and(|d| deadline > d),
            (ExpireIf::Earlier, d) => d.is_none_or(|d| deadline < d),
        };
        if !applies {
            return false;
        }
        if deadline <= now {
            self.remove(key);
        } else {
            self.redate(key, Some(deadline));
        }
        self.reclaim(now, RECLAIM_PER_WRITE);
        true
    }

    /// `RENAME`'s first half: `key`'s value (any kind) and deadline, the key removed.
    pub(crate) fn take(&mut self, key: &[u8], now: Instant) -> Option<(Data, Option<Instant>)> {
        self.live(key, now)?;
        let entry = self.remove(key)?;
        Some((entry.value, entry.deadline))
    }

    /// `RENAME`'s second half: `key` set to `value` with `deadline`, replacing whatever was there; [`Full`]
    /// (nothing changed) past the store's cap.
    pub(crate) fn restore(
        &mut self,
        key: &[u8],
        value: Data,
        deadline: Option<Instant>,
        now: Instant,
    ) -> Result<(), Full> {
        self.put(key, value, deadline)?;
        self.reclaim(now, RECLAIM_PER_WRITE);
        Ok(())
    }

    /// `APPEND`: `tail` added to the end of the value at `key` (which is `tail` if the key is missing), its
    /// deadline kept; the new length, or why nothing changed.
    ///
    /// The value grows in place, with its buffer's doubling: appending a byte at a time costs no copy of the
    /// value each time. While a reply being written holds the value (a `GET` to a client that reads slowly),
    /// it cannot grow in place: a value of up to [`APPEND_COPY_MAX`] is copied, a larger one is not
    /// ([`AppendError::Held`]) — else every `GET` left unread followed by an `APPEND` would make the server
    /// keep one more copy of a value of up to `--max-bulk` bytes for a request of a few bytes.
    pub(crate) fn append(
        &mut self,
        key: &[u8],
        tail: &[u8],
        max: usize,
        now: Instant,
    ) -> Result<usize, AppendError> {
        if !self.expiry.is_empty() {
            self.reclaim(now, RECLAIM_PER_WRITE);
        }
        if self.expired(key, now) {
            self.remove(key);
        }
        let len = match self.map.get_mut(key) {
            Some(Entry {
                value: Data::Str(value),
                deadline,
            }) => {
                let (held, len) = (value.len(), value.len() + tail.len());
                if len > max {
                    return Err(AppendError::TooLarge);
                }
                let dated = deadline.is_some();
                self.account
                    .resize(cost(key.len(), held, dated), cost(key.len(), len, dated))
                    .map_err(|Full| AppendError::Full)?;
                let mut grown = match std::mem::take(value).try_into_mut() {
                    Ok(unique) => unique,
                    Err(held) if held.len() <= APPEND_COPY_MAX => {
                        let mut copy = BytesMut::with_capacity(len);
                        copy.extend_from_slice(&held);
                        copy
                    }
                    Err(held) => {
                        *value = held;
                        self.account.free(tail.len());
                        return Err(AppendError::Held);
                    }
                };
                grown.extend_from_slice(tail);
                *value = grown.freeze();
                self.changed(key);
                len
            }
            Some(_) => return Err(AppendError::WrongType),
            None => {
                self.put(key, Data::Str(Bytes::copy_from_slice(tail)), None)
                    .map_err(|Full| AppendError::Full)?;
                tail.len()
            }
        };
        Ok(len)
    }

    /// `GETRANGE`: the bytes of the value at `key` from `start` to `end` inclusive, Redis's way: a negative
    /// index counts from the end, both are clamped to the value, and an empty range (or a missing key) is
    /// empty. No copy: a slice of the stored value.
    pub(crate) fn range(
        &mut self,
        key: &[u8],
        start: i64,
        end: i64,
        now: Instant,
    ) -> Result<Bytes, WrongType> {
        let Some(e) = self.live(key, now) else {
            return Ok(Bytes::new());
        };
        let value = e.value.as_str()?;
        let len = value.len() as i64;
        if start < 0 && end < 0 && start > end {
            return Ok(Bytes::new());
        }
        let start = if start < 0 {
            len.saturating_add(start)
        } else {
            start
        }
        .max(0);
        let end = if end < 0 {
            len.saturating_add(end)
        } else {
            end
        }
        .max(0)
        .min(len - 1);
        if start > end || len == 0 {
            return Ok(Bytes::new());
        }
        Ok(value.slice(start as usize..=end as usize))
    }

    /// `GETDEL`: the string at `key`, which is removed ([`WrongType`], and kept, if it holds a collection).
    pub(crate) fn get_del(&mut self, key: &[u8], now: Instant) -> Result<Option<Bytes>, WrongType> {
        let Some(e) = self.live(key, now) else {
            return Ok(None);
        };
        e.value.as_str()?;
        let Some(Entry {
            value: Data::Str(value),
            ..
        }) = self.remove(key)
        else {
            return Ok(None);
        };
        self.reclaim(now, RECLAIM_PER_WRITE);
        Ok(Some(value))
    }

    /// `GETEX`: the value at `key`, its deadline changed as `change` says (one not after `now` deletes the key,
    /// as Redis does).
    pub(crate) fn get_ex(
        &mut self,
        key: &[u8],
        change: Change,
        now: Instant,
    ) -> Result<Option<Bytes>, WrongType> {
        let Some(entry) = self.live(key, now) else {
            return Ok(None);
        };
        let (value, had) = (entry.value.as_str()?.clone(), entry.deadline);
        match change {
            Change::Keep => return Ok(Some(value)),
            Change::Persist if had.is_none() => return Ok(Some(value)),
            Change::Persist => self.redate(key, None),
            Change::At(d) if d <= now => {
                self.remove(key);
            }
            Change::At(d) => self.redate(key, Some(d)),
        }
        self.reclaim(now, RECLAIM_PER_WRITE);
        Ok(Some(value))
    }

    /// Removes `key`'s deadline (`PERSIST`); true if it had one.
    pub(crate) fn persist(&mut self, key: &[u8], now: Instant) -> bool {
        match self.live(key, now) {
            Some(Entry {
                deadline: Some(_), ..
            }) => {
                self.redate(key, None);
                true
            }
            _ => false,
        }
    }

    /// `key`'s time to live.
    pub(crate) fn ttl(&mut self, key: &[u8], now: Instant) -> Ttl {
        match self.live(key, now) {
            None => Ttl::Missing,
            Some(Entry { deadline: None, .. }) => Ttl::Persistent,
            Some(Entry {
                deadline: Some(d), ..
            }) => Ttl::Left(d.saturating_duration_since(now)),
        }
    }
}

/// Where a command finds a key's shard: the [`Db`] itself, locking the shard for each operation, or [`Locked`],
/// holding the locks of some shards (a command on several keys) or of all of them (an `EXEC`).
pub(crate) trait Store {
    /// Runs `f` on `key`'s shard.
    fn with<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Shard) -> R) -> R;

    /// Runs `f` with the shard of every key in `keys` locked at once, so that a command on several keys (`MGET`,
    /// `MSET`, `MSETNX`, `DEL`, `EXISTS`) is atomic, as in Redis: no other connection sees half of it or changes
    /// a key in the middle of it.
    fn atomically<'k, R>(
        &mut self,
        keys: impl Iterator<Item = &'k Bytes>,
        f: impl FnOnce(&mut Locked<'_>) -> R,
    ) -> R;

    /// Runs `f` with every shard locked: `FLUSHDB`, `DBSIZE`, `KEYS`.
    fn whole<R>(&mut self, f: impl FnOnce(&mut Locked<'_>) -> R) -> R;

    /// Runs `f` on shard `index` (`SCAN`, a shard at a time).
    fn at<R>(&mut self, index: usize, f: impl FnOnce(&mut Shard) -> R) -> R;

    /// `SCAN` from `cursor` (a shard index): the live keys matching `pattern` of whole shards from there, until
    /// at least `count` are found or the last shard is done; the cursor to go on from (0: done). A key there
    /// for the whole iteration is in its shard when the shard is read, so it is returned (once), as Redis
    /// promises.
    fn scan(
        &mut self,
        cursor: usize,
        pattern: &[u8],
        count: usize,
        now: Instant,
    ) -> (usize, Vec<Bytes>) {
        let mut keys = Vec::new();
        let mut i = cursor;
        while i < SHARDS && keys.len() < count {
            self.at(i, |s| s.keys(pattern, now, &mut keys));
            i += 1;
        }
        // In byte order, as `KEYS`.
        keys.sort_unstable();
        (if i == SHARDS { 0 } else { i }, keys)
    }
}

impl Store for &Db {
    #[inline]
    fn with<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Shard) -> R) -> R {
        f(&mut self.lock(shard_of(key)))
    }

    fn atomically<'k, R>(
        &mut self,
        keys: impl Iterator<Item = &'k Bytes>,
        f: impl FnOnce(&mut Locked<'_>) -> R,
    ) -> R {
        f(&mut self.lock_keys(keys))
    }

    fn whole<R>(&mut self, f: impl FnOnce(&mut Locked<'_>) -> R) -> R {
        f(&mut self.lock_all())
    }

    fn at<R>(&mut self, index: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        f(&mut self.lock(index))
    }
}

/// Shards of a [`Db`], locked: every one ([`Db::lock_all`]) or those of some keys ([`Db::lock_keys`]).
pub(crate) struct Locked<'a> {
    /// The guards, in shard index order: all [`SHARDS`] of them, or those a command's keys fall in.
    guards: Vec<MutexGuard<'a, Shard>>,
    /// The store's cap and total ([`Locked::prepaid`]).
    quota: &'a Quota,
    /// For each shard, its place in `guards` ([`NOT_LOCKED`] if it is not there).
    place: [u8; SHARDS],
}

/// [`Locked::place`] of a shard not locked.
const NOT_LOCKED: u8 = u8::MAX;

impl Locked<'_> {
    /// True if `key` changed since `WATCH` saw `then` (set, deleted, expired, its deadline moved, or its
    /// deadline passed by `now`), or is no longer watched (never on a connection that watches it); its shard must
    /// be locked here.
    pub(crate) fn changed_since(&mut self, key: &[u8], then: Watched, now: Instant) -> bool {
        let shard = self.shard(shard_of(key));
        let changes = shard.watched.get(key).map(|w| w.changes);
        changes != Some(then.changes) || then.deadline.is_some_and(|d| d <= now)
    }

    /// One watcher of `key` fewer ([`Db::unwatch`], with its shard already locked).
    pub(crate) fn unwatch(&mut self, key: &[u8]) {
        self.shard(shard_of(key)).unwatch(key);
    }

    /// Runs `f`, a command on several keys (`MSET`, `MSETNX`, `RENAME`), on `bound` bytes of room reserved
    /// first: the most it can grow the store by ([`Shard::growth`] summed). The room there, `f` runs whole and
    /// its writes are counted without a check (what it does not use is given back); not there, `f` does not
    /// run ([`Full`]): the command happens entirely or not at all.
    pub(crate) fn prepaid<R>(
        &mut self,
        bound: usize,
        f: impl FnOnce(&mut Self) -> R,
    ) -> Result<R, Full> {
        if !self.quota.reserve(bound) {
            return Err(Full);
        }
        let _room = Reservation {
            quota: self.quota,
            bytes: bound,
        };
        for shard in &mut self.guards {
            shard.account.prepaid = true;
        }
        let done = f(self);
        for shard in &mut self.guards {
            shard.account.prepaid = false;
        }
        Ok(done)
    }

    /// Shard `index`, which one of the keys this was locked for falls in.
    fn shard(&mut self, index: usize) -> &mut Shard {
        let at = self.place[index];
        // A key outside those locked: a bug in the command, never the client's doing.
        assert!(at != NOT_LOCKED, "shard {index} used without its lock");
        &mut self.guards[usize::from(at)]
    }
}

impl Store for Locked<'_> {
    fn with<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Shard) -> R) -> R {
        f(self.shard(shard_of(key)))
    }

    /// Already held (by an `EXEC`, every shard): `f` runs on these locks.
    fn atomically<'k, R>(
        &mut self,
        _keys: impl Iterator<Item = &'k Bytes>,
        f: impl FnOnce(&mut Locked<'_>) -> R,
    ) -> R {
        f(self)
    }

    fn whole<R>(&mut self, f: impl FnOnce(&mut Locked<'_>) -> R) -> R {
        // Only an `EXEC` holds a `Locked` while running commands, and it holds every shard.
        assert_eq!(
            self.guards.len(),
            SHARDS,
            "a whole-store command without every lock"
        );
        f(self)
    }

    fn at<R>(&mut self, index: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        f(self.shard(index))
    }
}

impl Locked<'_> {
    /// `FLUSHDB`: every key removed (their memory freed); a watched key that was there counts as changed.
    pub(crate) fn flush(&mut self) {
        for shard in &mut self.guards {
            shard.flush();
        }
    }

    /// `KEYS pattern`: every live key matching `pattern` ([`glob`]), copied ([`Shard::keys`]), in byte order (a
    /// map's own order changes with its hash seed: the same key space would answer differently from one server
    /// to the next).
    pub(crate) fn keys(&mut self, pattern: &[u8], now: Instant) -> Vec<Bytes> {
        let mut keys = Vec::new();
        for shard in &mut self.guards {
            shard.keys(pattern, now, &mut keys);
        }
        keys.sort_unstable();
        keys
    }

    /// `DBSIZE`: the keys held, as Redis counts them (an expired key not yet reclaimed included).
    pub(crate) fn len(&self) -> usize {
        self.guards.iter().map(|s| s.map.len()).sum()
    }

    /// The keys held that have a deadline (`INFO`'s `expires`).
    pub(crate) fn expiring(&self) -> usize {
        self.guards.iter().map(|s| s.expiry.len()).sum()
    }
}

/// The index of `key`'s shard (FNV-1a).
pub(crate) fn shard_of(key: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h as usize) % SHARDS
}

impl Db {
    /// An empty key space whose keys may cost at most `cap` bytes together ([`cost`]).
    pub(crate) fn new(cap: usize) -> Db {
        let quota = Arc::new(Quota {
            cap,
            used: AtomicUsize::new(0),
        });
        Db {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        expiry: BTreeSet::new(),
                        watched: HashMap::new(),
                        account: Account {
                            used: 0,
                            quota: quota.clone(),
                            prepaid: false,
                        },
                    })
                })
                .collect(),
            quota,
        }
    }

    /// What the keys cost now, bytes ([`cost`]): `INFO`'s `used_memory_dataset`.
    pub(crate) fn used(&self) -> usize {
        self.quota.used.load(Relaxed)
    }

    /// The most they may cost (`--max-store`): `INFO`'s and `CONFIG GET`'s `maxmemory`.
    pub(crate) fn cap(&self) -> usize {
        self.quota.cap
    }
}

/// A key space without a cap (tests).
#[cfg(test)]
impl Default for Db {
    fn default() -> Self {
        Db::new(usize::MAX)
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("shards", &self.shards.len())
            .field("quota", &self.quota)
            .finish()
    }
}

impl Db {
    /// Shard `index`, locked. No command on reserved room runs on it now (that command held the lock), so its
    /// `prepaid` mark is cleared: one left by a command that panicked never lets writes pass unchecked.
    fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        let mut shard = self.shards[index].lock().unwrap_or_else(|e| e.into_inner());
        shard.account.prepaid = false;
        shard
    }

    /// Every shard locked, in index order: nothing else touches the key space until the result is dropped.
    pub(crate) fn lock_all(&self) -> Locked<'_> {
        Locked {
            guards: (0..SHARDS).map(|i| self.lock(i)).collect(),
            quota: &self.quota,
            place: std::array::from_fn(|i| i as u8),
        }
    }

    /// The shards of `keys` locked, in index order (the order [`Db::lock_all`] takes them in, and no other
    /// command holds more than one lock, so no two can wait for each other).
    pub(crate) fn lock_keys<'k>(&self, keys: impl Iterator<Item = &'k Bytes>) -> Locked<'_> {
        // A bit per shard: the set, in index order, with no sorting.
        let mask = keys.fold(0u64, |mask, k| mask | 1 << shard_of(k));
        let mut locked = Locked {
            guards: Vec::with_capacity(mask.count_ones() as usize),
            quota: &self.quota,
            place: [NOT_LOCKED; SHARDS],
        };
        let mut rest = mask;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            locked.place[i] = locked.guards.len() as u8;
            locked.guards.push(self.lock(i));
        }
        locked
    }

    /// `WATCH key` at `now`: one watcher more for `key` (each must be let go with [`Db::unwatch`] or
    /// [`Locked::unwatch`]), and what `EXEC` compares ([`Locked::changed_since`]). A key is watched once per
    /// connection: the caller keeps one [`Watched`] per key.
    pub(crate) fn watch(&self, key: &[u8], now: Instant) -> Watched {
        let mut shard = self.lock(shard_of(key));
        let deadline = shard.live(key, now).and_then(|e| e.deadline);
        let w = match shard.watched.get_mut(key) {
            Some(w) => w,
            None => shard
                .watched
                .entry(Bytes::copy_from_slice(key))
                .or_default(),
        };
        w.watchers += 1;
        Watched {
            changes: w.changes,
            deadline,
        }
    }

    /// One watcher of `key` fewer: `UNWATCH`, `DISCARD`, a connection closing.
    pub(crate) fn unwatch(&self, key: &[u8]) {
        self.lock(shard_of(key)).unwatch(key);
    }

    /// Keys watched by any connection (tests).
    #[cfg(test)]
    pub(crate) fn watched(&self) -> usize {
        (0..SHARDS).map(|i| self.lock(i).watched.len()).sum()
    }

    /// Active expiry: drops up to `per_shard` expired keys from each shard, one lock at a time; how many.
    pub(crate) fn sweep(&self, now: Instant, per_shard: usize) -> usize {
        (0..SHARDS)
            .map(|i| self.lock(i).reclaim(now, per_shard))
            .sum()
    }

    /// Keys held, expired or not (tests).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        (0..SHARDS).map(|i| self.lock(i).map.len()).sum()
    }

    /// The value at `key`.
    #[cfg(test)]
    pub fn get(&self, key: &[u8], now: Instant) -> Option<Bytes> {
        self.lock(shard_of(key)).get(key, now).ok().flatten()
    }

    /// Sets `key` to `value` with no deadline (both copied, so they do not pin the connection's read buffer).
    #[cfg(test)]
    pub fn set(&self, key: &[u8], value: &[u8], now: Instant) {
        let _ = self
            .lock(shard_of(key))
            .set(key, value, SetOptions::default(), now);
    }

    /// Removes `key`; true if it was there.
    #[cfg(test)]
    pub fn del(&self, key: &[u8], now: Instant) -> bool {
        self.lock(shard_of(key)).del(key, now)
    }

    /// True if `key` is there.
    #[cfg(test)]
    pub fn exists(&self, key: &[u8], now: Instant) -> bool {
        self.lock(shard_of(key)).exists(key, now)
    }

    /// Adds `delta` to the integer at `key` (0 if missing): `INCR`, `INCRBY`, `DECR`, `DECRBY`. The value is
    /// left unchanged, and the error says why, when it is not an integer or the sum would overflow.
    #[cfg(test)]
    pub fn incr_by(&self, key: &[u8], delta: i64, now: Instant) -> Result<i64, IncrError> {
        self.lock(shard_of(key)).incr_by(key, delta, now)
    }
}
/// Redis's glob (`KEYS`, `SCAN … MATCH`): `*` any run, `?` any byte, `[abc]`, `[a-z]`, `[^…]` (not), `\\x` the
/// byte `x`; anything else itself. An unclosed `[` takes the rest of the pattern as its class, a `\\` at the end
/// is itself, as in Redis's `stringmatchlen`. Time O(pattern × key): after a mismatch only the last `*` is
/// tried again (each other token matches one byte), so no pattern can make it exponential.
pub(crate) fn glob(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0, 0);
    // Where to go back to: the token after the last `*`, and the byte of the key it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() {
            if pattern[p] == b'*' {
                p += 1;
                star = Some((p, k));
                continue;
            }
            if let Some(next) = glob_one(pattern, p, key[k]) {
                p = next;
                k += 1;
                continue;
            }
        }
        match star {
            Some((after, at)) => {
                p = after;
                k = at + 1;
                star = Some((after, at + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Whether the token of `pattern` at `p` (not `*`) matches the byte `c`: the index after the token if so.
fn glob_one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        b'[' => {
            let mut i = p + 1;
            let not = pattern.get(i) == Some(&b'^');
            if not {
                i += 1;
            }
            let mut hit = false;
            loop {
                match pattern.get(i) {
                    // Unclosed: the class runs to the end of the pattern.
                    None => break,
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < pattern.len() => {
                        hit |= pattern[i + 1] == c;
                        i += 2;
                    }
                    Some(&start) if i + 2 < pattern.len() && pattern[i + 1] == b'-' => {
                        let end = pattern[i + 2];
                        let (lo, hi) = if start <= end {
                            (start, end)
                        } else {
                            (end, start)
                        };
                        hit |= (lo..=hi).contains(&c);
                        i += 3;
                    }
                    Some(&b) => {
                        hit |= b == c;
                        i += 1;
                    }
                }
            }
            (hit != not).then_some(i)
        }
        b => (b == c).then_some(p + 1),
    }
}

/// The most `APPEND` copies of a value that a reply being written holds ([`Shard::append`]).
pub(crate) const APPEND_COPY_MAX: usize = 64 * 1024;

/// Why `APPEND` changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendError {
    /// The result would be longer than `--max-bulk`.
    TooLarge,
    /// The value is larger than [`APPEND_COPY_MAX`] and a reply being written holds it.
    Held,
    /// The longer value would take the store past its cap (`--max-store`).
    Full,
    /// The key holds a collection.
    WrongType,
}

impl AppendError {
    /// The error reply.
    pub(crate) fn reply(self) -> &'static str {
        match self {
            // Redis's words for its `proto-max-bulk-len`.
            AppendError::TooLarge => "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
            AppendError::Held => {
                "BUSY the value is being sent to a client that reads slowly; try APPEND again later"
            }
            AppendError::Full => OOM,
            AppendError::WrongType => WRONGTYPE,
        }
    }
}

/// Why `INCR`/`INCRBY`/`DECR`/`DECRBY` left a value unchanged; each has Redis's own reply ([`IncrError::reply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrError {
    /// The value is not an integer Redis accepts (or is out of the i64 range).
    NotAnInteger,
    /// The value is an integer, but adding to it would pass the i64 range.
    Overflow,
    /// The new value is longer and would take the store past its cap (`--max-store`).
    Full,
    /// The key holds a collection.
    WrongType,
}

impl IncrError {
    /// The error text redis-server 7 replies for this case (`-<text>` on the wire).
    pub fn reply(self) -> &'static str {
        match self {
            IncrError::NotAnInteger => "ERR value is not an integer or out of range",
            IncrError::Overflow => "ERR increment or decrement would overflow",
            IncrError::Full => OOM,
            IncrError::WrongType => WRONGTYPE,
        }
    }
}

/// Redis's integer rule for INCR (and for the argument of INCRBY and DECRBY): an optional `-`, digits, no
/// leading zeros, no spaces, within i64.
pub fn parse_i64(v: &[u8]) -> Option<i64> {
    let (neg, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    if digits.is_empty()
        || digits.len() > 19
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        n = n.checked_mul(10)?;
        n = if neg {
            n.checked_sub(i64::from(d - b'0'))?
        } else {
            n.checked_add(i64::from(d - b'0'))?
        };
    }
    if neg && n == 0 {
        return None;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_redis_rules() {
        for (text, want) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("007", None),
            ("-0", None),
            ("+1", None),
            (" 1", None),
            ("", None),
            ("1x", None),
        ] {
            assert_eq!(parse_i64(text.as_bytes()), want, "{text:?}");
        }
    }

    /// The instant every test's store starts at (the store keeps no clock: time is what a test passes).
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn incr_counts_from_zero_and_refuses_non_integers_and_overflow() {
        let (db, now) = (Db::default(), t0());
        assert_eq!(db.incr_by(b"n", 1, now), Ok(1));
        assert_eq!(db.incr_by(b"n", 1, now), Ok(2));
        assert_eq!(db.get(b"n", now).as_deref(), Some(&b"2"[..]));
        db.set(b"s", b"abc", now);
        assert_eq!(db.incr_by(b"s", 1, now), Err(IncrError::NotAnInteger));
        db.set(b"max", i64::MAX.to_string().as_bytes(), now);
        assert_eq!(db.incr_by(b"max", 1, now), Err(IncrError::Overflow));
        assert_eq!(
            db.get(b"max", now).as_deref(),
            Some(i64::MAX.to_string().as_bytes())
        );
        assert!(
            db.exists(b"n", now)
                && db.del(b"n", now)
                && !db.exists(b"n", now)
                && !db.del(b"n", now)
        );
    }

    #[test]
    fn incr_by_adds_any_delta_and_refuses_overflow_both_ways() {
        let (db, now) = (Db::default(), t0());
        assert_eq!(db.incr_by(b"n", 10, now), Ok(10));
        assert_eq!(db.incr_by(b"n", -15, now), Ok(-5));
        db.set(b"min", i64::MIN.to_string().as_bytes(), now);
        assert_eq!(db.incr_by(b"min", -1, now), Err(IncrError::Overflow));
        assert_eq!(db.incr_by(b"min", i64::MAX, now), Ok(-1));
    }

    fn with_deadline(d: Instant) -> SetOptions {
        SetOptions {
            deadline: Some(d),
            ..SetOptions::default()
        }
    }

    /// `APPEND` a byte at a time grows the value in place (the buffer doubles), not by a copy of the whole
    /// value per request: 100,000 appends move the value a few dozen times at most.
    #[test]
    fn append_grows_the_value_in_place_and_never_past_the_cap() {
        let (db, now) = (Db::default(), t0());
        let mut s = db.lock(shard_of(b"k"));
        let (mut moved, mut at) = (0, std::ptr::null());
        for i in 1..=100_000usize {
            assert_eq!(s.append(b"k", b"x", usize::MAX, now), Ok(i));
            let ptr = s.map[&b"k"[..]].value.as_str().unwrap().as_ptr();
            if ptr != at {
                (moved, at) = (moved + 1, ptr);
            }
        }
        assert!(moved <= 40, "the value moved {moved} times");
        // A value a reply holds: copied up to APPEND_COPY_MAX, refused past it (nothing changed).
        let held = s.get(b"k", now).unwrap().unwrap();
        assert_eq!(
            s.append(b"k", b"y", usize::MAX, now),
            Err(AppendError::Held)
        );
        assert_eq!(s.strlen(b"k", now), Ok(100_000));
        drop(held);
        assert_eq!(s.append(b"k", b"y", usize::MAX, now), Ok(100_001));
        s.set(b"small", b"abc", SetOptions::default(), now)
            .unwrap()
            .unwrap();
        let held = s.get(b"small", now).unwrap().unwrap();
        assert_eq!(s.append(b"small", b"d", usize::MAX, now), Ok(4));
        assert_eq!(&held[..], b"abc", "a reply in progress keeps its value");
        // The cap: nothing changes past it (Redis's proto-max-bulk-len check).
        assert_eq!(
            s.append(b"k", b"zz", 100_002, now),
            Err(AppendError::TooLarge)
        );
        assert_eq!(s.strlen(b"k", now), Ok(100_001));
        assert_eq!(s.append(b"new", b"ab", 2, now), Ok(2));
    }

    #[test]
    fn a_key_past_its_deadline_is_invisible_to_every_read() {
        let (db, now) = (Db::default(), t0());
        let mut s = db.lock(shard_of(b"k"));
        let ten = now + Duration::from_secs(10);
        assert_eq!(s.set(b"k", b"v", with_deadline(ten), now), Ok(Ok(None)));
        let before = ten - Duration::from_millis(1);
        assert_eq!(s.get(b"k", before).unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(s.ttl(b"k", now), Ttl::Left(Duration::from_secs(10)));
        assert_eq!(s.ttl(b"k", before), Ttl::Left(Duration::from_millis(1)));
        // At the deadline: gone, for every kind of read, and reclaimed by the first that looks.
        assert_eq!(s.get(b"k", ten), Ok(None));
        assert_eq!(s.map.len(), 0, "the lazy check dropped it");
        assert!(s.expiry.is_empty());
        s.set(b"k", b"v", with_deadline(ten), now).unwrap().unwrap();
        assert!(!s.exists(b"k", ten));
        s.set(b"k", b"v", with_deadline(ten), now).unwrap().unwrap();
        assert_eq!(s.ttl(b"k", ten), Ttl::Missing);
        s.set(b"k", b"v", with_deadline(ten), now).unwrap().unwrap();
        assert!(!s.del(b"k", ten), "DEL of an expired key counts 0");
        s.set(b"n", b"5", with_deadline(ten), now).unwrap().unwrap();
        assert_eq!(
            s.incr_by(b"n", 1, ten),
            Ok(1),
            "an expired counter starts again"
        );
        assert_eq!(s.ttl(b"n", ten), Ttl::Persistent);
    }

    #[test]
    fn set_nx_xx_get_keepttl_follow_redis() {
        let (db, now) = (Db::default(), t0());
        let mut s = db.lock(0);
        let nx = SetOptions {
            only_if_missing: true,
            ..SetOptions::default()
        };
        let xx_get = SetOptions {
            only_if_present: true,
            get: true,
            ..SetOptions::default()
        };
        assert_eq!(
            s.set(b"k", b"1", xx_get, now),
            Ok(Err(None)),
            "XX: no key, no store"
        );
        assert_eq!(s.get(b"k", now), Ok(None));
        assert_eq!(s.set(b"k", b"1", nx, now), Ok(Ok(None)));
        assert_eq!(
            s.set(b"k", b"2", nx, now),
            Ok(Err(None)),
            "NX: the key is there"
        );
        assert_eq!(
            s.set(b"k", b"3", xx_get, now),
            Ok(Ok(Some(Bytes::from_static(b"1"))))
        );
        let later = now + Duration::from_secs(5);
        s.set(b"k", b"4", with_deadline(later), now)
            .unwrap()
            .unwrap();
        let keep = SetOptions {
            keep_ttl: true,
            ..SetOptions::default()
        };
        s.set(b"k", b"5", keep, now).unwrap().unwrap();
        assert_eq!(s.ttl(b"k", now), Ttl::Left(Duration::from_secs(5)));
        // A plain SET clears the deadline; INCR keeps it.
        s.set(b"k", b"6", SetOptions::default(), now)
            .unwrap()
            .unwrap();
        assert_eq!(s.ttl(b"k", now), Ttl::Persistent);
        s.set(b"k", b"6", with_deadline(later), now)
            .unwrap()
            .unwrap();
        assert_eq!(s.incr_by(b"k", 1, now), Ok(7));
        assert_eq!(s.ttl(b"k", now), Ttl::Left(Duration::from_secs(5)));
        // NX on an expired key stores.
        assert_eq!(s.set(b"k", b"8", nx, later), Ok(Ok(None)));
        assert_eq!(s.ttl(b"k", later), Ttl::Persistent);
        assert_eq!(s.expiry.len(), 0, "the index follows every change");
    }

    #[test]
    fn expire_conditions_persist_and_a_past_deadline_deletes() {
        let (db, now) = (Db::default(), t0());
        let mut s = db.lock(0);
        let at = |secs| now + Duration::from_secs(secs);
        assert!(!s.expire(b"k", at(5), ExpireIf::Always, now), "no key");
        s.set(b"k", b"v", SetOptions::default(), now)
            .unwrap()
            .unwrap();
        assert!(!s.expire(b"k", at(5), ExpireIf::HasDeadline, now));
        assert!(
            !s.expire(b"k", at(5), ExpireIf::Later, now),
            "GT: none is infinite"
        );
        assert!(
            s.expire(b"k", at(5), ExpireIf::Earlier, now),
            "LT: none is infinite"
        );
        assert!(!s.expire(b"k", at(9), ExpireIf::NoDeadline, now));
        assert!(!s.expire(b"k", at(3), ExpireIf::Later, now));
        assert!(s.expire(b"k", at(9), ExpireIf::Later, now));
        assert_eq!(s.ttl(b"k", now), Ttl::Left(Duration::from_secs(9)));
        assert!(s.persist(b"k", now) && !s.persist(b"k", now));
        assert_eq!(s.ttl(b"k", now), Ttl::Persistent);
        assert!(
            s.expire(b"k", now, ExpireIf::Always, now),
            "a deadline now deletes"
        );
        assert_eq!(s.ttl(b"k", now), Ttl::Missing);
        assert!(s.map.is_empty() && s.expiry.is_empty());
    }

    #[test]
    fn expired_keys_are_reclaimed_without_being_touched_a_bounded_number_at_a_time() {
        let (db, now) = (Db::default(), t0());
        let soon = now + Duration::from_millis(100);
        for i in 0..10_000u32 {
            let _ = db.lock(shard_of(&i.to_be_bytes())).set(
                &i.to_be_bytes(),
                b"v",
                with_deadline(soon),
                now,
            );
        }
        db.set(b"forever", b"v", now);
        assert_eq!(db.sweep(now, SWEEP_PER_SHARD), 0, "nothing expired yet");
        // Each sweep drops at most SWEEP_PER_SHARD a shard; repeated sweeps reclaim them all.
        let first = db.sweep(soon, SWEEP_PER_SHARD);
        assert_eq!(first, SHARDS * SWEEP_PER_SHARD);
        let mut sweeps = 1;
        while db.sweep(soon, SWEEP_PER_SHARD) > 0 {
            sweeps += 1;
        }
        assert!(sweeps >= 10_000 / (SHARDS * SWEEP_PER_SHARD));
        assert_eq!(db.held(), 1, "only the key without a deadline is left");
        // Writes reclaim too, a few at a time, in the shard they touch.
        let mut s = db.lock(0);
        for i in 0..10u8 {
            s.set(&[i], b"v", with_deadline(soon), now)
                .unwrap()
                .unwrap();
        }
        s.set(b"w", b"v", SetOptions::default(), soon)
            .unwrap()
            .unwrap();
        assert_eq!(s.expiry.len(), 10 - RECLAIM_PER_WRITE);
    }

    #[test]
    fn every_change_to_a_watched_key_is_seen_and_nothing_else_is() {
        let (db, now) = (Db::default(), t0());
        let changed = |key: &[u8], then, at| db.lock_all().changed_since(key, then, at);
        // Reads, and writes to other keys (of its shard too), are not changes.
        let w = db.watch(b"k", now);
        db.get(b"k", now);
        db.exists(b"k", now);
        let same_shard = (0..)
            .map(|i| format!("other{i}"))
            .find(|o| shard_of(o.as_bytes()) == shard_of(b"k"))
            .unwrap();
        db.set(same_shard.as_bytes(), b"v", now);
        assert!(!changed(b"k", w, now));
        // Each kind of change is.
        db.set(b"k", b"v", now);
        assert!(changed(b"k", w, now));
        let w = db.watch(b"k", now);
        db.del(b"k", now);
        assert!(changed(b"k", w, now));
        let w = db.watch(b"k", now);
        let _ = db.lock(shard_of(b"k")).set(
            b"k",
            b"v",
            with_deadline(now + Duration::from_secs(5)),
            now,
        );
        assert!(changed(b"k", w, now), "created");
        // A deadline passing is a change even before the key is reclaimed; a deadline not yet passed is not.
        let w = db.watch(b"k", now);
        assert!(!changed(b"k", w, now + Duration::from_secs(4)));
        assert!(changed(b"k", w, now + Duration::from_secs(5)));
        // Watchers are counted: the key is forgotten when the last lets go.
        assert_eq!(db.watched(), 1);
        for _ in 0..3 {
            db.unwatch(b"k");
        }
        assert_eq!(db.watched(), 1, "a watcher is left");
        db.unwatch(b"k");
        assert_eq!(db.watched(), 0);
    }

    /// What the shards count, summed: always the quota's total (no reservation outlives its command).
    fn counted(db: &Db) -> usize {
        let sum = (0..SHARDS).map(|i| db.lock(i).account.used).sum();
        assert_eq!(sum, db.used(), "the shards and the quota agree");
        sum
    }

    #[test]
    fn the_store_counts_each_key_its_bytes_and_its_entry_and_back_to_zero() {
        let (db, now) = (Db::default(), t0());
        let mut s = db.lock(shard_of(b"k"));
        s.set(b"k", b"vv", SetOptions::default(), now)
            .unwrap()
            .unwrap();
        drop(s);
        assert_eq!(counted(&db), cost(1, 2, false));
        // Overwritten larger, smaller, appended to: the value's length is what counts.
        db.set(b"k", b"vvvvvv", now);
        assert_eq!(counted(&db), cost(1, 6, false));
        db.set(b"k", b"v", now);
        assert_eq!(counted(&db), cost(1, 1, false));
        let appended = db
            .lock(shard_of(b"k"))
            .append(b"k", b"xyz", usize::MAX, now);
        assert_eq!(appended, Ok(4));
        assert_eq!(counted(&db), cost(1, 4, false));
        // A counter created, then longer.
        assert_eq!(db.incr_by(b"n", 9, now), Ok(9));
        assert_eq!(counted(&db), cost(1, 4, false) + cost(1, 1, false));
        assert_eq!(db.incr_by(b"n", 1, now), Ok(10));
        assert_eq!(counted(&db), cost(1, 4, false) + cost(1, 2, false));
        // A deadline costs its place in the expiry index; the key's reclaim after it gives its bytes back, by a
        // sweep or a read.
        let soon = now + Duration::from_secs(1);
        assert!(db
            .lock(shard_of(b"n"))
            .expire(b"n", soon, ExpireIf::Always, now));
        assert!(db
            .lock(shard_of(b"k"))
            .expire(b"k", soon, ExpireIf::Always, now));
        assert_eq!(counted(&db), cost(1, 4, true) + cost(1, 2, true));
        assert_eq!(cost(1, 2, true), cost(1, 2, false) + DEADLINE_OVERHEAD);
        assert_eq!(db.get(b"k", soon), None);
        assert_eq!(
            counted(&db),
            cost(1, 2, true),
            "the read that found it expired"
        );
        assert_eq!(db.sweep(soon, SWEEP_PER_SHARD), 1);
        assert_eq!(counted(&db), 0, "the sweep");
        // Deleted: nothing left.
        for i in 0..1000u32 {
            db.set(&i.to_be_bytes(), &[b'v'; 10], now);
        }
        assert_eq!(counted(&db), 1000 * cost(4, 10, false));
        for i in 0..1000u32 {
            assert!(db.del(&i.to_be_bytes(), now));
        }
        assert_eq!(counted(&db), 0);
        // Flushed: nothing left either, and a later key counts from there.
        for i in 0..1000u32 {
            db.set(&i.to_be_bytes(), b"v", now);
        }
        db.lock_all().flush();
        assert_eq!(counted(&db), 0);
        db.set(b"k", b"v", now);
        assert_eq!(counted(&db), cost(1, 1, false));
        let taken = db.lock(shard_of(b"k")).get_del(b"k", now);
        assert_eq!(taken.unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(counted(&db), 0);
    }

    /// Every change of a key's deadline changes its cost, and the shards' count and the quota stay exact: `SET`
    /// with a deadline, `KEEPTTL` or none, `EXPIRE`, `PERSIST`, `GETEX`, `INCR` and `APPEND` (which keep it), a
    /// deadline in the past (the key deleted), the reclaim after it, `DEL`, `FLUSHDB`.
    #[test]
    fn every_change_of_a_deadline_changes_the_keys_cost() {
        let (db, now) = (Db::default(), t0());
        let (soon, later) = (now + Duration::from_secs(5), now + Duration::from_secs(9));
        let at = |key: &[u8]| db.lock(shard_of(key));
        let set = |key: &[u8], value: &[u8], options| at(key).set(key, value, options, now);
        let keep = SetOptions {
            keep_ttl: true,
            ..SetOptions::default()
        };
        // SET … EX on a new key, then KEEPTTL, then none, then EX on the key without one.
        assert_eq!(set(b"k", b"vv", with_deadline(soon)), Ok(Ok(None)));
        assert_eq!(counted(&db), cost(1, 2, true));
        assert_eq!(set(b"k", b"vvv", keep), Ok(Ok(None)));
        assert_eq!(counted(&db), cost(1, 3, true));
        assert_eq!(set(b"k", b"v", SetOptions::default()), Ok(Ok(None)));
        assert_eq!(counted(&db), cost(1, 1, false));
        assert_eq!(set(b"k", b"v", keep), Ok(Ok(None)));
        assert_eq!(counted(&db), cost(1, 1, false), "KEEPTTL of no deadline");
        assert_eq!(set(b"k", b"v", with_deadline(soon)), Ok(Ok(None)));
        assert_eq!(counted(&db), cost(1, 1, true));
        assert_eq!(set(b"k", b"v", with_deadline(later)), Ok(Ok(None)));
        assert_eq!(counted(&db), cost(1, 1, true), "a deadline moved");
        // EXPIRE, PERSIST, and their conditions that do not hold.
        assert!(at(b"k").persist(b"k", now));
        assert_eq!(counted(&db), cost(1, 1, false));
        assert!(!at(b"k").persist(b"k", now));
        assert!(!at(b"k").expire(b"k", soon, ExpireIf::HasDeadline, now));
        assert_eq!(counted(&db), cost(1, 1, false));
        assert!(at(b"k").expire(b"k", soon, ExpireIf::NoDeadline, now));
        assert_eq!(counted(&db), cost(1, 1, true));
        assert!(at(b"k").expire(b"k", later, ExpireIf::Later, now));
        assert_eq!(counted(&db), cost(1, 1, true));
        // GETEX: a deadline, none, kept.
        let getex = |change| at(b"k").get_ex(b"k", change, now).unwrap();
        assert_eq!(getex(Change::Persist).as_deref(), Some(&b"v"[..]));
        assert_eq!(counted(&db), cost(1, 1, false));
        assert_eq!(getex(Change::At(soon)).as_deref(), Some(&b"v"[..]));
        assert_eq!(counted(&db), cost(1, 1, true));
        assert_eq!(getex(Change::Keep).as_deref(), Some(&b"v"[..]));
        assert_eq!(counted(&db), cost(1, 1, true));
        // INCR and APPEND keep the deadline, and its cost.
        assert_eq!(set(b"n", b"9", with_deadline(soon)), Ok(Ok(None)));
        assert_eq!(db.incr_by(b"n", 1, now), Ok(10));
        assert_eq!(at(b"n").append(b"n", b"0", usize::MAX, now), Ok(3));
        assert_eq!(at(b"n").ttl(b"n", now), Ttl::Left(Duration::from_secs(5)));
        assert_eq!(counted(&db), cost(1, 1, true) + cost(1, 3, true));
        // A deadline not after now deletes the key: EXPIRE and GETEX.
        assert!(at(b"n").expire(b"n", now, ExpireIf::Always, now));
        assert_eq!(counted(&db), cost(1, 1, true));
        assert_eq!(getex(Change::At(now)).as_deref(), Some(&b"v"[..]));
        assert_eq!(counted(&db), 0);
        // Reclaimed after the deadline (by a sweep, by a write to the shard), deleted, flushed.
        for key in [&b"a"[..], b"b", b"c"] {
            assert_eq!(set(key, b"v", with_deadline(soon)), Ok(Ok(None)));
        }
        assert_eq!(counted(&db), 3 * cost(1, 1, true));
        assert!(db.del(b"a", now));
        assert_eq!(counted(&db), 2 * cost(1, 1, true));
        assert_eq!(db.sweep(soon, SWEEP_PER_SHARD), 2);
        assert_eq!(counted(&db), 0);
        for key in [&b"a"[..], b"b"] {
            assert_eq!(set(key, b"v", with_deadline(soon)), Ok(Ok(None)));
        }
        db.set(b"c", b"v", now);
        db.lock_all().flush();
        assert_eq!(counted(&db), 0);
        assert_eq!(db.lock_all().expiring(), 0);
    }

    #[test]
    fn a_write_past_the_cap_is_refused_and_changes_nothing() {
        let now = t0();
        // Room for two keys of 10 bytes and 10 bytes more.
        let db = Db::new(2 * cost(1, 10, false) + 10);
        let at = |key: &[u8]| db.lock(shard_of(key));
        let set = |key: &[u8], value: &[u8]| at(key).set(key, value, SetOptions::default(), now);
        assert_eq!(set(b"a", &[b'a'; 10]), Ok(Ok(None)));
        assert_eq!(set(b"b", &[b'b'; 10]), Ok(Ok(None)));
        assert_eq!(set(b"c", b""), Err(Refused::Full), "a new key");
        assert_eq!(set(b"a", &[b'a'; 21]), Err(Refused::Full), "a larger value");
        assert_eq!(db.get(b"a", now).as_deref(), Some(&[b'a'; 10][..]));
        assert!(!db.exists(b"c", now));
        assert_eq!(
            set(b"a", &[b'a'; 20]),
            Ok(Ok(None)),
            "up to the cap exactly"
        );
        assert_eq!(counted(&db), db.cap());
        assert_eq!(
            at(b"a").append(b"a", b"x", usize::MAX, now),
            Err(AppendError::Full)
        );
        assert_eq!(
            at(b"c").append(b"c", b"x", usize::MAX, now),
            Err(AppendError::Full)
        );
        assert_eq!(db.incr_by(b"c", 1, now), Err(IncrError::Full));
        // What does not grow the store goes through at the cap: a value as long or shorter, a condition that
        // does not hold, a read, a delete; and a deadline, which does grow it, as Redis never refuses one (the
        // one way past the cap, by its cost; `PERSIST` gives it back).
        assert_eq!(set(b"b", &[b'c'; 10]), Ok(Ok(None)));
        let nx = SetOptions {
            only_if_missing: true,
            ..SetOptions::default()
        };
        assert_eq!(
            at(b"a").set(b"a", b"longer than it was", nx, now),
            Ok(Err(None))
        );
        let later = now + Duration::from_secs(10);
        assert!(at(b"b").expire(b"b", later, ExpireIf::Always, now));
        assert_eq!(counted(&db), db.cap() + DEADLINE_OVERHEAD);
        assert_eq!(
            set(b"c", b""),
            Err(Refused::Full),
            "over the cap: a write that grows it"
        );
        assert!(at(b"b").persist(b"b", now));
        assert_eq!(db.get(b"b", now).as_deref(), Some(&[b'c'; 10][..]));
        assert_eq!(counted(&db), db.cap());
        assert_eq!(set(b"a", b"short"), Ok(Ok(None)));
        assert_eq!(counted(&db), cost(1, 5, false) + cost(1, 10, false));
        assert!(db.del(b"b", now));
        assert_eq!(set(b"c", &[b'c'; 10]), Ok(Ok(None)), "room again");
        assert_eq!(db.incr_by(b"n", 1, now), Err(IncrError::Full));
    }

    #[test]
    fn a_key_past_its_deadline_makes_room_for_a_write_to_its_shard() {
        let now = t0();
        let other = (0..)
            .map(|i| format!("o{i}"))
            .find(|o| shard_of(o.as_bytes()) == shard_of(b"a"))
            .unwrap();
        let other = other.as_bytes();
        // Room for either key, not both.
        let db = Db::new(cost(1, 10, true) + cost(other.len(), 10, false) - 1);
        let soon = now + Duration::from_secs(1);
        let mut s = db.lock(shard_of(b"a"));
        s.set(b"a", &[b'a'; 10], with_deadline(soon), now)
            .unwrap()
            .unwrap();
        assert_eq!(
            s.set(other, &[b'b'; 10], SetOptions::default(), now),
            Err(Refused::Full),
            "before the deadline"
        );
        assert_eq!(
            s.set(other, &[b'b'; 10], SetOptions::default(), soon),
            Ok(Ok(None)),
            "the expired key was reclaimed first"
        );
        drop(s);
        assert_eq!(counted(&db), cost(other.len(), 10, false));
    }

    #[test]
    fn a_command_on_several_keys_on_reserved_room_happens_whole_or_not_at_all() {
        let now = t0();
        let db = Db::new(3 * cost(1, 1, false));
        let keys: Vec<Bytes> = [b"a", b"b", b"c", b"d"]
            .map(|k| Bytes::from_static(k))
            .to_vec();
        let bound = |locked: &mut Locked<'_>, n: usize| {
            keys[..n]
                .iter()
                .map(|k| locked.with(k, |s| s.growth(k, 1, false)))
                .sum::<usize>()
        };
        let mut locked = db.lock_keys(keys.iter());
        let four = bound(&mut locked, 4);
        assert_eq!(four, 4 * cost(1, 1, false));
        assert_eq!(locked.prepaid(four, |_| unreachable!("no room")), Err(Full));
        let three = bound(&mut locked, 3);
        let done = locked.prepaid(three, |locked| {
            for k in &keys[..3] {
                let set = locked.with(k, |s| s.set(k, b"v", SetOptions::default(), now));
                assert_eq!(set, Ok(Ok(None)));
            }
            "ran"
        });
        assert_eq!(done, Ok("ran"));
        drop(locked);
        assert_eq!(
            counted(&db),
            db.cap(),
            "the reservation given back, the keys counted"
        );
        // Off the reserved room, the check is back.
        assert_eq!(
            db.lock(shard_of(b"d"))
                .set(b"d", b"v", SetOptions::default(), now),
            Err(Refused::Full)
        );
    }

    /// Keys deleted give their table's slots back: a client that fills one shard after another, deleting as it
    /// goes, leaves no table at its largest.
    #[test]
    fn a_table_mostly_emptied_gives_its_slots_back() {
        let (db, now) = (Db::default(), t0());
        let mut s = db.lock(0);
        for i in 0..100_000u32 {
            s.set(&i.to_be_bytes(), b"v", SetOptions::default(), now)
                .unwrap()
                .unwrap();
        }
        let full = s.map.capacity();
        assert!(full >= 100_000, "{full}");
        for i in 10..100_000u32 {
            assert!(s.del(&i.to_be_bytes(), now));
        }
        assert!(
            s.map.capacity() <= MIN_SLOTS,
            "{} slots for 10 keys",
            s.map.capacity()
        );
        // With deadlines, reclaimed by sweeps: the same.
        let soon = now + Duration::from_secs(1);
        for i in 0..100_000u32 {
            s.set(&i.to_be_bytes(), b"v", with_deadline(soon), now)
                .unwrap()
                .unwrap();
        }
        while s.reclaim(soon, SWEEP_PER_SHARD) > 0 {}
        assert!(
            s.map.capacity() <= MIN_SLOTS,
            "{} slots for no key",
            s.map.capacity()
        );
        drop(s);
        assert_eq!(counted(&db), 0);
    }

    /// Many threads filling the store at once never take it past its cap, and the count stays exact.
    #[test]
    fn concurrent_writers_never_pass_the_cap() {
        let now = t0();
        let db = Db::new(1000 * cost(8, 8, false));
        let refused = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let (db, refused) = (&db, &refused);
                scope.spawn(move || {
                    for i in 0..1000u32 {
                        let key = [t.to_be_bytes(), i.to_be_bytes()].concat();
                        let set =
                            db.lock(shard_of(&key))
                                .set(&key, &[0; 8], SetOptions::default(), now);
                        if set == Err(Refused::Full) {
                            refused.fetch_add(1, Relaxed);
                        }
                        assert!(db.used() <= db.cap());
                    }
                });
            }
        });
        assert_eq!(refused.into_inner(), 3000);
        assert_eq!(counted(&db), db.cap());
    }

    /// Redis's glob, on the keys and patterns of a differential run of `KEYS` through redis-cli against
    /// redis-server 7.0.15 (which matched the same keys for every pattern), and a pattern that would be
    /// exponential for a backtracking matcher.
    #[test]
    fn glob_matches_what_redis_matches() {
        let keys: [&[u8]; 10] = [
            b"hello",
            b"hallo",
            b"hxllo",
            b"heeeello",
            b"hillo",
            b"h[llo",
            b"a*b",
            b"ab",
            b"aXb",
            b"a\\b",
        ];
        for (pattern, want) in [
            ("h?llo", &["hello", "hallo", "hxllo", "hillo", "h[llo"][..]),
            (
                "h*llo",
                &["hello", "hallo", "hxllo", "heeeello", "hillo", "h[llo"],
            ),
            ("h[ae]llo", &["hello", "hallo"]),
            ("h[^e]llo", &["hallo", "hxllo", "hillo", "h[llo"]),
            ("h[a-b]llo", &["hallo"]),
            ("h[b-a]llo", &["hallo"]),
            ("h\\[llo", &["h[llo"]),
            ("a\\*b", &["a*b"]),
            ("a*b", &["a*b", "ab", "aXb", "a\\b"]),
            ("a\\\\b", &["a\\b"]),
            (
                "*l*l*o",
                &["hello", "hallo", "hxllo", "heeeello", "hillo", "h[llo"],
            ),
            ("h[!e]llo", &["hello"]),
            ("h[", &[]),
            ("[", &[]),
            ("a\\", &[]),
            ("", &[]),
            ("h[\\]]llo", &[]),
            ("[]", &[]),
        ] {
            let got: Vec<&str> = keys
                .iter()
                .filter(|k| glob(pattern.as_bytes(), k))
                .map(|k| std::str::from_utf8(k).unwrap())
                .collect();
            assert_eq!(got, want, "{pattern:?}");
        }
        assert!(glob(b"*", b""));
        assert!(glob(b"a[bc", b"ab"), "an unclosed class runs to the end");
        assert!(glob(b"a\\", b"a\\"), "a backslash at the end is itself");
        let long = vec![b'a'; 10_000];
        let t = std::time::Instant::now();
        assert!(!glob(b"*a*a*a*a*a*a*a*a*a*a*a*a*b", &long));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
