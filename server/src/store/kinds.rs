//! The values a key can hold besides a string: lists, sets, hashes and sorted sets ([`Data`]), and the
//! [`Shard`] operations on them. Each collection counts what it holds (its members' bytes and a fixed overhead a
//! member, [`LIST_ITEM`] …), so a key's cost ([`super::cost`]) covers it and `--max-store` bounds it as it
//! bounds strings. A collection left empty is removed with its key, as in Redis.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use indexmap::{IndexMap, IndexSet};

use super::ranked::Ranked;
use super::{cost, Entry, Full, Shard, RECLAIM_PER_WRITE};

/// What a list member costs beyond its bytes: its 32-byte handle in the list, the allocator's header and
/// rounding of its copy, and the 32-byte shared handle it gets when a reply first reads it. Each of these four
/// overheads was checked on the server's RSS (`server/tests/memory_budget.rs`: one-member writes to 16
/// collections until `--max-store 32MiB` refuses them, then each read whole): lists grew it by 0.97× the cap,
/// sets 0.95×, hashes 0.98× (1.11× with 192 here), sorted sets 0.96× with scores in no order (0.82×
/// in rising order with blocks of 512, which fill; 0.99× when the index was a `BTreeSet`).
pub(crate) const LIST_ITEM: usize = 96;
/// What a set member costs beyond its bytes: its entry (a hash and a 32-byte handle) and its slot in the index
/// table, its copy's allocation, and the shared handle a reply gives it.
pub(crate) const SET_ITEM: usize = 128;
/// What a hash field costs beyond its name's and value's bytes: its entry (a hash and two handles) and index
/// slot, two copies, two shared handles.
pub(crate) const HASH_ITEM: usize = 224;
/// What a sorted set member costs beyond its bytes: its slot in the score table (a handle and a score), its
/// entry in the ordered index (the same, in B-tree nodes), its copy, and the handle the two share.
pub(crate) const ZSET_ITEM: usize = 224;

/// A key's value. Two cases, a collection boxed, so it is no larger than the string's handle (32 bytes: the
/// handle's vtable pointer, never null, tells them apart) and a table slot costs what it cost before
/// collections were served ([`super::ENTRY_OVERHEAD`]).
#[derive(Debug)]
pub(crate) enum Data {
    /// A string.
    Str(Bytes),
    /// A list, set, hash or sorted set.
    Coll(Box<Collection>),
}

/// A collection.
#[derive(Debug)]
pub(crate) enum Collection {
    /// A list (`LPUSH`, `RPUSH` …).
    List(List),
    /// A set (`SADD` …).
    Set(Set),
    /// A hash (`HSET` …).
    Hash(Hash),
    /// A sorted set (`ZADD` …).
    ZSet(ZSet),
}

const _: () = assert!(std::mem::size_of::<Data>() == std::mem::size_of::<Bytes>());

/// Collections of at least this many members are freed on a background thread when they go (`DEL`, expiry,
/// `FLUSHALL`, an overwrite), as Redis's lazy free does: a member is an allocation of its own, and freeing three
/// million of them took ~60 ms under the shard's lock, during which every other client of that worker waited.
const FREE_LATER: usize = 4096;

/// Collections waiting for the background thread at most; past that, a collection is freed where it goes (so
/// deleting faster than the thread frees never holds more than this many).
const FREE_QUEUE: usize = 16;

impl Collection {
    /// Its members.
    fn len(&self) -> usize {
        match self {
            Collection::List(l) => l.items.len(),
            Collection::Set(s) => s.members.len(),
            Collection::Hash(h) => h.fields.len(),
            Collection::ZSet(z) => z.scores.len(),
        }
    }
}

impl Drop for Collection {
    /// A large collection's members go to the background thread ([`FREE_LATER`]).
    fn drop(&mut self) {
        if self.len() < FREE_LATER {
            return;
        }
        let members: Box<dyn Send> = match self {
            Collection::List(l) => Box::new(std::mem::take(&mut l.items)),
            Collection::Set(s) => Box::new(std::mem::take(&mut s.members)),
            Collection::Hash(h) => Box::new(std::mem::take(&mut h.fields)),
            Collection::ZSet(z) => {
                Box::new((std::mem::take(&mut z.scores), std::mem::take(&mut z.order)))
            }
        };
        free_later(members);
    }
}

/// Hands `members` to this process's freeing thread (started on first use, and again in a worker process forked
/// after it: a thread does not cross a fork); frees them here if it cannot (the queue full, no thread).
fn free_later(members: Box<dyn Send>) {
    use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
    /// The process that started the thread, and the way to it.
    type Freer = Option<(u32, SyncSender<Box<dyn Send>>)>;
    static FREER: std::sync::Mutex<Freer> = std::sync::Mutex::new(None);
    let mut freer = FREER.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if freer.as_ref().is_none_or(|(owner, _)| *owner != pid) {
        let (tx, rx) = sync_channel::<Box<dyn Send>>(FREE_QUEUE);
        let started = std::thread::Builder::new()
            .name("sockpool-free".into())
            .spawn(move || rx.into_iter().for_each(drop));
        *freer = started.is_ok().then_some((pid, tx));
    }
    let left = match freer.as_ref() {
        Some((_, tx)) => match tx.try_send(members) {
            Ok(()) => None,
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => Some(m),
        },
        None => Some(members),
    };
    drop(freer);
    drop(left);
}

/// Which kind of value: what `TYPE` answers, and what a command on a collection asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    List,
    Set,
    Hash,
    ZSet,
}

impl Kind {
    /// Redis's name for it (`TYPE`, `SCAN … TYPE`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::Hash => "hash",
            Kind::ZSet => "zset",
        }
    }

    /// An empty value of this kind (a collection a write creates).
    fn empty(self) -> Data {
        match self {
            Kind::Str => Data::Str(Bytes::new()),
            Kind::List => Data::Coll(Box::new(Collection::List(List::default()))),
            Kind::Set => Data::Coll(Box::new(Collection::Set(Set::default()))),
            Kind::Hash => Data::Coll(Box::new(Collection::Hash(Hash::default()))),
            Kind::ZSet => Data::Coll(Box::new(Collection::ZSet(ZSet::default()))),
        }
    }
}

/// A command on a key holding another kind of value: Redis's `-WRONGTYPE` (nothing changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrongType;

/// Redis's words for [`WrongType`].
pub(crate) const WRONGTYPE: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Why a write to a collection changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The key holds another kind of value.
    WrongType,
    /// It would take the store past its cap.
    Full,
}

impl From<Full> for Refused {
    fn from(Full: Full) -> Self {
        Refused::Full
    }
}

impl Data {
    /// Its kind.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Data::Str(_) => Kind::Str,
            Data::Coll(c) => match **c {
                Collection::List(_) => Kind::List,
                Collection::Set(_) => Kind::Set,
                Collection::Hash(_) => Kind::Hash,
                Collection::ZSet(_) => Kind::ZSet,
            },
        }
    }

    /// The bytes it counts in the key's cost: a string's length, a collection's members and their overhead.
    #[inline]
    pub(crate) fn size(&self) -> usize {
        match self {
            Data::Str(b) => b.len(),
            Data::Coll(c) => match &**c {
                Collection::List(l) => l.bytes,
                Collection::Set(s) => s.bytes,
                Collection::Hash(h) => h.bytes,
                Collection::ZSet(z) => z.bytes,
            },
        }
    }

    /// The string, if it is one.
    #[inline]
    pub(crate) fn as_str(&self) -> Result<&Bytes, WrongType> {
        match self {
            Data::Str(b) => Ok(b),
            _ => Err(WrongType),
        }
    }

    /// True if a collection with no member left (its key goes).
    fn is_empty_collection(&self) -> bool {
        match self {
            Data::Str(_) => false,
            Data::Coll(c) => match &**c {
                Collection::List(l) => l.items.is_empty(),
                Collection::Set(s) => s.members.is_empty(),
                Collection::Hash(h) => h.fields.is_empty(),
                Collection::ZSet(z) => z.scores.is_empty(),
            },
        }
    }
}

/// Redis's index range (`LRANGE`, `ZRANGE`) over `len` items: a negative index counts from the end, both are
/// clamped; the half-open range, empty if `start` is past `stop` or the end.
pub(crate) fn index_range(start: i64, stop: i64, len: usize) -> std::ops::Range<usize> {
    let n = len as i64;
    let start = if start < 0 {
        n.saturating_add(start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        n.saturating_add(stop)
    } else {
        stop.min(n - 1)
    };
    if start > stop || start >= n {
        return 0..0;
    }
    start as usize..stop as usize + 1
}

/// A list: its members in order, and what they count.
#[derive(Debug, Default)]
pub(crate) struct List {
    items: VecDeque<Bytes>,
    bytes: usize,
}

impl List {
    /// `LPUSH`/`RPUSH`: each of `values` copied onto the front (one after the other, so the last ends first) or
    /// the back; the new length.
    pub(crate) fn push(&mut self, values: &[Bytes], front: bool) -> usize {
        self.items.reserve(values.len());
        for v in values {
            let v = Bytes::copy_from_slice(v);
            self.bytes += v.len() + LIST_ITEM;
            if front {
                self.items.push_front(v);
            } else {
                self.items.push_back(v);
            }
        }
        self.items.len()
    }

    /// `LPOP`/`RPOP`: up to `count` members from the front or the back.
    pub(crate) fn pop(&mut self, count: usize, front: bool) -> Vec<Bytes> {
        let n = count.min(self.items.len());
        let popped: Vec<Bytes> = if front {
            self.items.drain(..n).collect()
        } else {
            let at = self.items.len() - n;
            self.items.drain(at..).rev().collect()
        };
        self.bytes -= popped.iter().map(|v| v.len() + LIST_ITEM).sum::<usize>();
        fit_deque(&mut self.items);
        popped
    }

    /// `LLEN`.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// `LRANGE`: the members from `start` to `stop` inclusive (Redis's indexes), shared, not copied.
    pub(crate) fn range(&self, start: i64, stop: i64) -> Vec<Bytes> {
        self.items
            .range(index_range(start, stop, self.items.len()))
            .cloned()
            .collect()
    }

    /// `LTRIM`: keeps the members from `start` to `stop` inclusive (Redis's indexes); whether any went. Many
    /// going and few staying, the few are moved to a new list and the old one is freed in the background, as a
    /// large collection deleted is ([`FREE_LATER`]).
    pub(crate) fn trim(&mut self, start: i64, stop: i64) -> bool {
        let keep = index_range(start, stop, self.items.len());
        let gone = self.items.len() - keep.len();
        if gone == 0 {
            return false;
        }
        let size = |v: &Bytes| v.len() + LIST_ITEM;
        if gone >= FREE_LATER && keep.len() < gone {
            // Fewer stay than go: counting the kept ones is the shorter walk.
            let kept: VecDeque<Bytes> = self.items.range(keep).cloned().collect();
            self.bytes = kept.iter().map(size).sum();
            free_later(Box::new(std::mem::replace(&mut self.items, kept)));
        } else {
            // Only the members that go are walked, so trimming a few off a long list stays cheap.
            let tail: usize = self.items.range(keep.end..).map(size).sum();
            let head: usize = self.items.range(..keep.start).map(size).sum();
            self.bytes -= tail + head;
            self.items.truncate(keep.end);
            self.items.drain(..keep.start);
            fit_deque(&mut self.items);
        }
        true
    }

    /// `LSET`: `value` copied in at `index` (negative: from the end); false if there is no such index.
    pub(crate) fn set(&mut self, index: i64, value: &[u8]) -> bool {
        let Some(i) = self.position(index) else {
            return false;
        };
        let v = Bytes::copy_from_slice(value);
        self.bytes += v.len();
        self.bytes -= std::mem::replace(&mut self.items[i], v).len();
        true
    }

    /// `LREM`: removes the members equal to `value`, at most `count` from the front (from the back when
    /// `count` is negative; all when it is 0); how many went.
    pub(crate) fn remove(&mut self, count: i64, value: &[u8]) -> usize {
        let most = match count {
            0 => usize::MAX,
            n => usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX),
        };
        // From the back: the matches before the last `most` stay.
        let mut spared = match count < 0 {
            true => {
                let all = self.items.iter().filter(|v| &v[..] == value).count();
                all.saturating_sub(most)
            }
            false => 0,
        };
        let mut gone = 0;
        self.items.retain(|v| {
            if &v[..] != value || gone == most {
                return true;
            }
            if spared > 0 {
                spared -= 1;
                return true;
            }
            gone += 1;
            false
        });
        self.bytes -= gone * (value.len() + LIST_ITEM);
        if gone > 0 {
            fit_deque(&mut self.items);
        }
        gone
    }

    /// Where `index` (negative: from the end) is, if the list has it.
    fn position(&self, index: i64) -> Option<usize> {
        let i = if index < 0 {
            (self.items.len() as i64).checked_add(index)?
        } else {
            index
        };
        usize::try_from(i).ok().filter(|&i| i < self.items.len())
    }

    /// `LINDEX`: the member at `index` (negative: from the end).
    pub(crate) fn index(&self, index: i64) -> Option<Bytes> {
        self.position(index).map(|i| self.items[i].clone())
    }
}

/// A set: its members (in a table that keeps them in a vector too, so `SPOP` picks one at random in O(1)), and
/// what they count.
#[derive(Debug, Default)]
pub(crate) struct Set {
    members: IndexSet<Bytes>,
    bytes: usize,
    /// `SPOP`'s pseudo-random state (splitmix64): the same commands pop the same members, so a session replays
    /// the same (the fuzz targets compare two replays), while the picks spread over the whole set.
    draws: u64,
}

impl Set {
    /// `SADD`: each of `members` copied in; how many were not there.
    pub(crate) fn add(&mut self, members: &[Bytes]) -> usize {
        let mut added = 0;
        for m in members {
            if !self.members.contains(&m[..]) {
                self.bytes += m.len() + SET_ITEM;
                self.members.insert(Bytes::copy_from_slice(m));
                added += 1;
            }
        }
        added
    }

    /// `SREM`: how many of `members` were there (and are no longer).
    pub(crate) fn remove(&mut self, members: &[Bytes]) -> usize {
        let mut removed = 0;
        for m in members {
            if self.members.swap_remove(&m[..]) {
                self.bytes -= m.len() + SET_ITEM;
                removed += 1;
            }
        }
        fit_index(&mut self.members);
        removed
    }

    /// `SPOP`: up to `count` members picked at random (pseudo-random: [`Set::draws`]), removed.
    pub(crate) fn pop(&mut self, count: usize) -> Vec<Bytes> {
        let mut popped = Vec::with_capacity(count.min(self.members.len()));
        while popped.len() < count && !self.members.is_empty() {
            let i = (self.draw() % self.members.len() as u64) as usize;
            let Some(m) = self.members.swap_remove_index(i) else {
                break;
            };
            self.bytes -= m.len() + SET_ITEM;
            popped.push(m);
        }
        fit_index(&mut self.members);
        popped
    }

    /// The next pseudo-random number (splitmix64).
    fn draw(&mut self) -> u64 {
        self.draws = self.draws.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.draws;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `SCARD`.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// `SISMEMBER`.
    pub(crate) fn contains(&self, member: &[u8]) -> bool {
        self.members.contains(member)
    }

    /// `SMEMBERS`: every member, shared.
    pub(crate) fn members(&self) -> Vec<Bytes> {
        self.members.iter().cloned().collect()
    }
}

/// A hash: its fields and their values, and what they count.
#[derive(Debug, Default)]
pub(crate) struct Hash {
    fields: IndexMap<Bytes, Bytes>,
    bytes: usize,
}

impl Hash {
    /// `HSET`: each `(field, value)` pair of `pairs` copied in; how many fields were new.
    pub(crate) fn set(&mut self, pairs: &[Bytes]) -> usize {
        let mut added = 0;
        for pair in pairs.chunks_exact(2) {
            let (f, v) = (&pair[0], Bytes::copy_from_slice(&pair[1]));
            self.bytes += v.len();
            match self.fields.get_mut(&f[..]) {
                Some(old) => self.bytes -= std::mem::replace(old, v).len(),
                None => {
                    self.bytes += f.len() + HASH_ITEM;
                    self.fields.insert(Bytes::copy_from_slice(f), v);
                    added += 1;
                }
            }
        }
        added
    }

    /// `HSETNX`: `field` set to `value` (copied) if it is not there; whether it was set.
    pub(crate) fn set_new(&mut self, field: &[u8], value: &[u8]) -> bool {
        if self.fields.contains_key(field) {
            return false;
        }
        self.bytes += field.len() + value.len() + HASH_ITEM;
        self.fields
            .insert(Bytes::copy_from_slice(field), Bytes::copy_from_slice(value));
        true
    }

    /// `HKEYS` (`values` false) or `HVALS`: every field or every value, shared, in `HGETALL`'s order.
    pub(crate) fn column(&self, values: bool) -> Vec<Bytes> {
        self.fields
            .iter()
            .map(|(f, v)| if values { v.clone() } else { f.clone() })
            .collect()
    }

    /// `HGET`: the value of `field`, shared.
    pub(crate) fn get(&self, field: &[u8]) -> Option<Bytes> {
        self.fields.get(field).cloned()
    }

    /// `HDEL`: how many of `fields` were there (and are no longer).
    pub(crate) fn remove(&mut self, fields: &[Bytes]) -> usize {
        let mut removed = 0;
        for f in fields {
            if let Some(v) = self.fields.swap_remove(&f[..]) {
                self.bytes -= f.len() + v.len() + HASH_ITEM;
                removed += 1;
            }
        }
        fit_index_map(&mut self.fields);
        removed
    }

    /// `HLEN`.
    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    /// `HGETALL`: field, value, field, value …, shared.
    pub(crate) fn all(&self) -> Vec<Bytes> {
        self.fields
            .iter()
            .flat_map(|(f, v)| [f.clone(), v.clone()])
            .collect()
    }
}

/// A sorted set member's score: never NaN (refused on the way in) and never `-0` (made `0`), so its order is
/// total and `-0` prints as Redis prints it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// What `ZADD` does with each member (its `NX`, `XX`, `GT`, `LT` and `INCR` options).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ZAddFlags {
    /// `NX`: only new members.
    pub nx: bool,
    /// `XX`: only members already there.
    pub xx: bool,
    /// `GT`: a member's score only goes up.
    pub gt: bool,
    /// `LT`: a member's score only goes down.
    pub lt: bool,
    /// `INCR`: the score is added to the member's.
    pub incr: bool,
}

/// What `ZADD` did to one member.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ZAdded {
    /// Added, with this score.
    New(f64),
    /// Its score changed to this one.
    Updated(f64),
    /// Nothing (its options said no, or the score was the same): the score it has, if it is there.
    Same(Option<f64>),
    /// `INCR` would make the score NaN (`inf` + `-inf`); nothing changed.
    NaN,
}

/// A sorted set: each member's score, and the members in score order (then byte order), and what they count.
#[derive(Debug, Default)]
pub(crate) struct ZSet {
    scores: HashMap<Bytes, f64>,
    order: Ranked<(Score, Bytes)>,
    bytes: usize,
}

impl ZSet {
    /// `ZADD` of one member with `score` under `flags` (`ZINCRBY` is `INCR`).
    pub(crate) fn add(&mut self, member: &[u8], score: f64, flags: ZAddFlags) -> ZAdded {
        let score = score + 0.0;
        match self.scores.get(member).copied() {
            Some(old) => {
                if flags.nx {
                    return ZAdded::Same(Some(old));
                }
                let new = if flags.incr { old + score } else { score } + 0.0;
                if new.is_nan() {
                    return ZAdded::NaN;
                }
                if (flags.gt && new <= old) || (flags.lt && new >= old) || new == old {
                    return ZAdded::Same(Some(old));
                }
                let (k, _) = self.scores.get_key_value(member).expect("there");
                let k = k.clone();
                self.order.remove(&(Score(old), k.clone()));
                self.order.insert((Score(new), k.clone()));
                self.scores.insert(k, new);
                ZAdded::Updated(new)
            }
            None if flags.xx => ZAdded::Same(None),
            None => {
                let m = Bytes::copy_from_slice(member);
                self.bytes += m.len() + ZSET_ITEM;
                self.order.insert((Score(score), m.clone()));
                self.scores.insert(m, score);
                ZAdded::New(score)
            }
        }
    }

    /// `ZSCORE`.
    pub(crate) fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// `ZCARD`.
    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    /// `ZREM`: how many of `members` were there (and are no longer).
    pub(crate) fn remove(&mut self, members: &[Bytes]) -> usize {
        let mut removed = 0;
        for m in members {
            if let Some((k, s)) = self.scores.remove_entry(&m[..]) {
                self.order.remove(&(Score(s), k));
                self.bytes -= m.len() + ZSET_ITEM;
                removed += 1;
            }
        }
        fit_map(&mut self.scores);
        removed
    }

    /// `ZREMRANGEBYRANK`/`ZREMRANGEBYSCORE`: removes the members of ranks `r` (within `0..len`); how many went.
    /// Many members are freed on the background thread, as a large collection deleted is ([`FREE_LATER`]).
    pub(crate) fn remove_ranks(&mut self, r: std::ops::Range<usize>) -> usize {
        let n = r.len();
        if n == self.len() && n >= FREE_LATER {
            // All of it: the whole set goes to the background thread at once, nothing walked here.
            free_later(Box::new(std::mem::take(self)));
            return n;
        }
        let gone = self.order.drain_ranks(r);
        for (_, m) in &gone {
            self.scores.remove(m);
            self.bytes -= m.len() + ZSET_ITEM;
        }
        fit_map(&mut self.scores);
        if n >= FREE_LATER {
            free_later(Box::new(gone));
        }
        n
    }

    /// `ZPOPMIN`/`ZPOPMAX`: up to `count` members with their scores, lowest (or highest) first.
    pub(crate) fn pop(&mut self, count: usize, max: bool) -> Vec<(Bytes, f64)> {
        let mut popped = Vec::with_capacity(count.min(self.scores.len()));
        while popped.len() < count {
            let next = if max {
                self.order.pop_last()
            } else {
                self.order.pop_first()
            };
            let Some((Score(s), m)) = next else {
                break;
            };
            self.scores.remove(&m);
            self.bytes -= m.len() + ZSET_ITEM;
            popped.push((m, s));
        }
        fit_map(&mut self.scores);
        popped
    }

    /// `ZRANK` (`ZREVRANK` when `rev`): the member's rank, 0 the lowest score (the highest when `rev`).
    pub(crate) fn rank(&self, member: &[u8], rev: bool) -> Option<usize> {
        let (k, &s) = self.scores.get_key_value(member)?;
        let rank = self.order.rank(&(Score(s), k.clone()))?;
        Some(match rev {
            true => self.order.len() - 1 - rank,
            false => rank,
        })
    }

    /// The ranks of the members whose scores are within `min` and `max` (each a score and whether it is
    /// excluded, as `(1.5`), for `ZCOUNT` and `ZRANGEBYSCORE`.
    pub(crate) fn score_ranks(&self, min: (f64, bool), max: (f64, bool)) -> std::ops::Range<usize> {
        let lo = self.order.count_below(|(s, _)| match min.1 {
            true => s.0 <= min.0,
            false => s.0 < min.0,
        });
        let hi = self.order.count_below(|(s, _)| match max.1 {
            true => s.0 < max.0,
            false => s.0 <= max.0,
        });
        lo..hi.max(lo)
    }

    /// The members of ranks `r` (within `0..len`), lowest first, with their scores, shared.
    pub(crate) fn by_rank(&self, r: std::ops::Range<usize>) -> Vec<(Bytes, f64)> {
        self.order
            .by_rank(r)
            .map(|(s, m)| (m.clone(), s.0))
            .collect()
    }

    /// `ZRANGE start stop [REV]`'s ranks (Redis's indexes; `REV`'s count from the highest member), counted
    /// from the lowest member: `REV`'s members are these ranks' read highest first.
    pub(crate) fn rank_range(&self, start: i64, stop: i64, rev: bool) -> std::ops::Range<usize> {
        let n = self.order.len();
        let r = index_range(start, stop, n);
        match rev {
            true => n - r.end..n - r.start,
            false => r,
        }
    }
}

/// A deque mostly emptied by pops gives its room back (as the shard's table does, [`super::MIN_SLOTS`]'s rule).
fn fit_deque(items: &mut VecDeque<Bytes>) {
    if items.capacity() > 64 && items.len() < items.capacity() / 4 {
        items.shrink_to(items.len() * 2);
    }
}

/// A set mostly emptied gives its room back.
fn fit_index(members: &mut IndexSet<Bytes>) {
    if members.capacity() > 64 && members.len() < members.capacity() / 4 {
        members.shrink_to(members.len() * 2);
    }
}

/// A hash mostly emptied gives its room back.
fn fit_index_map(fields: &mut IndexMap<Bytes, Bytes>) {
    if fields.capacity() > 64 && fields.len() < fields.capacity() / 4 {
        fields.shrink_to(fields.len() * 2);
    }
}

/// A map mostly emptied gives its room back.
fn fit_map<V>(map: &mut HashMap<Bytes, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// A score as Redis 7.0 writes it (`%.17g`): `inf`, `-inf`, 17 significant digits without trailing zeros, in
/// exponent form (`1e+21`) below 1e-4 or from 1e17 on.
pub(crate) fn format_score(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return "0".into();
    }
    // `d.dddddddddddddddde±x`: the 17 significant digits and the exponent.
    let sci = format!("{:.16e}", x);
    let (mantissa, exp) = sci.split_once('e').expect("an exponent");
    let exp: i32 = exp.parse().expect("a number");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..17).contains(&exp) {
        let mut m = format!("{}.{}", &digits[..1], &digits[1..]);
        trim_zeros(&mut m);
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{esign}{:02}", exp.abs());
    }
    let mut out = String::from(sign);
    if exp < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let point = exp as usize + 1;
        out.push_str(&digits[..point]);
        out.push('.');
        out.push_str(&digits[point..]);
    }
    trim_zeros(&mut out);
    out
}

/// Drops a fraction's trailing zeros, and its point if nothing is left after it.
fn trim_zeros(s: &mut String) {
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
}

/// A score argument as Redis reads it (`strtod`: `1`, `-1.5`, `1e3`, `inf`, `+inf`, `-inf`); NaN and anything
/// else refused.
pub(crate) fn parse_score(v: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(v).ok()?;
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let x: f64 = s.parse().ok()?;
    (!x.is_nan()).then_some(x)
}

impl Shard {
    /// The kind of value at `key`, if it is there.
    pub(crate) fn kind(&mut self, key: &[u8], now: Instant) -> Option<Kind> {
        self.live(key, now).map(|e| e.value.kind())
    }

    /// Runs `f` on the value at `key` if it is there and of `kind`: `Ok(None)` if it is not there,
    /// [`WrongType`] if it is another kind.
    pub(crate) fn read<R>(
        &mut self,
        key: &[u8],
        kind: Kind,
        now: Instant,
        f: impl FnOnce(&Data) -> R,
    ) -> Result<Option<R>, WrongType> {
        match self.live(key, now) {
            None => Ok(None),
            Some(e) if e.value.kind() == kind => Ok(Some(f(&e.value))),
            Some(_) => Err(WrongType),
        }
    }

    /// Runs `f`, a write, on the value at `key` if it is of `kind` (created empty first if the key is missing
    /// and `create`): `Ok(None)` if it is missing (and not created). `f` may grow the value by `bound` bytes at
    /// most: that room is reserved first ([`Refused::Full`], nothing run, if the store has not got it), and
    /// what `f` did not use is given back. `f` says whether it changed anything (a `WATCH` of the key then
    /// aborts an `EXEC`); a collection it leaves empty goes with its key.
    pub(crate) fn write<R>(
        &mut self,
        key: &[u8],
        kind: Kind,
        create: bool,
        bound: usize,
        now: Instant,
        f: impl FnOnce(&mut Data) -> (R, bool),
    ) -> Result<Option<R>, Refused> {
        if !self.expiry.is_empty() {
            self.reclaim(now, RECLAIM_PER_WRITE);
        }
        let (old, bound) = match self.live(key, now) {
            Some(e) if e.value.kind() != kind => return Err(Refused::WrongType),
            Some(e) => (e.cost(key.len()), bound),
            None if !create => return Ok(None),
            None => (0, cost(key.len(), 0, false) + bound),
        };
        self.account.resize(old, old + bound)?;
        if old == 0 {
            // Not `entry`: `Shard::set`, the hot path, is then its one caller and keeps it inlined.
            let e = Entry {
                value: kind.empty(),
                deadline: None,
            };
            self.map.insert(Bytes::copy_from_slice(key), e);
        }
        let Some(entry) = self.map.get_mut(key) else {
            unreachable!("there or just inserted");
        };
        let (result, changed) = f(&mut entry.value);
        let new = entry.cost(key.len());
        let empty = entry.value.is_empty_collection();
        // `f` grew the value by `bound` at most: give back what it did not use (or what it freed).
        debug_assert!(new <= old + bound, "a write grew past its bound");
        self.account.recount(old + bound, new);
        if empty {
            self.remove(key);
        } else if changed {
            self.changed(key);
        }
        Ok(Some(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_print_as_redis_7_0_prints_them() {
        // redis-server 7.0.15, `ZADD` then `ZRANGE … WITHSCORES` through redis-cli.
        for (x, want) in [
            (0.1, "0.10000000000000001"),
            (1e21, "1e+21"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (-0.0, "0"),
            (1.5, "1.5"),
            (2.1, "2.1000000000000001"),
            (1.0, "1"),
            (-3.0, "-3"),
            (100.0, "100"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (123456.789, "123456.789"),
        ] {
            assert_eq!(format_score(x), want, "{x}");
        }
    }

    /// A collection of more than `FREE_LATER` members is freed on the background thread, every member of it
    /// (no leak), whatever its kind; a small one where it goes.
    #[test]
    fn large_collections_are_freed_in_the_background_and_whole() {
        let members: Vec<Bytes> = (0..FREE_LATER + 1)
            .map(|i| Bytes::from(format!("m{i}")))
            .collect();
        let kinds = [Kind::List, Kind::Set, Kind::Hash, Kind::ZSet];
        for kind in kinds {
            let mut d = kind.empty();
            let Data::Coll(c) = &mut d else {
                unreachable!()
            };
            match &mut **c {
                Collection::List(l) => l.items.extend(members.iter().cloned()),
                Collection::Set(s) => s.members.extend(members.iter().cloned()),
                Collection::Hash(h) => h
                    .fields
                    .extend(members.iter().map(|m| (m.clone(), m.clone()))),
                Collection::ZSet(z) => {
                    for (i, m) in members.iter().enumerate() {
                        z.scores.insert(m.clone(), i as f64);
                        z.order.insert((Score(i as f64), m.clone()));
                    }
                }
            }
            drop(d);
        }
        // Every handle the collections held goes: the members become unique again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !members.iter().all(Bytes::is_unique) {
            assert!(std::time::Instant::now() < deadline, "members still held");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// `LTRIM` keeps what it is asked to and counts what stays, in place and (many members going, few
    /// staying) by moving the few to a new list and freeing the old in the background; `LREM` from either end.
    #[test]
    fn trimming_and_removing_list_members_keep_the_count() {
        let members: Vec<Bytes> = (0..FREE_LATER * 2)
            .map(|i| Bytes::from(format!("m{}", i % 3)))
            .collect();
        let mut l = List::default();
        l.push(&members, false);
        let count = |l: &List| l.items.iter().map(|v| v.len() + LIST_ITEM).sum::<usize>();
        assert!(l.trim(1, -2), "in place");
        assert_eq!((l.len(), l.bytes), (FREE_LATER * 2 - 2, count(&l)));
        assert!(l.trim(-10, -1), "to a new list");
        assert_eq!(
            l.range(0, -1),
            members[FREE_LATER * 2 - 11..FREE_LATER * 2 - 1]
        );
        assert_eq!(l.bytes, count(&l));
        assert!(!l.trim(0, -1));
        // Ten members, 8,181 to 8,190 of m0 m1 m2 m0 …: m0 m1 m2 m0 m1 m2 m0 m1 m2 m0.
        assert_eq!(l.remove(-2, b"m1"), 2, "the last two");
        assert_eq!(l.remove(1, b"m2"), 1, "the first");
        assert_eq!(l.remove(0, b"m0"), 4, "all");
        let left: Vec<Bytes> = ["m1", "m2", "m2"].map(Bytes::from).into();
        assert_eq!((l.range(0, -1), l.bytes), (left, count(&l)));
        assert!(l.trim(3, 1));
        assert_eq!((l.len(), l.bytes), (0, 0));
    }

    /// `ZREMRANGEBYRANK`/`ZREMRANGEBYSCORE` leave the order, the scores and the byte count as adding only the
    /// members that stay would have.
    #[test]
    fn removing_ranks_leaves_the_set_as_if_only_the_rest_were_added() {
        let mut z = ZSet::default();
        let mut all: Vec<(Bytes, f64)> = (0..1000)
            .map(|i| (Bytes::from(format!("m{i:04}")), f64::from(i % 37)))
            .collect();
        for (m, s) in &all {
            z.add(m, *s, ZAddFlags::default());
        }
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let by_score = z.score_ranks((5.0, false), (9.0, true));
        assert_eq!(z.remove_ranks(by_score), 27 * 4);
        all.retain(|(_, s)| !(5.0..9.0).contains(s));
        assert_eq!(z.remove_ranks(z.rank_range(-10, -1, false)), 10);
        all.truncate(all.len() - 10);
        assert_eq!(z.remove_ranks(z.rank_range(3, 2, false)), 0);
        // The whole of a large set in one go (handed to the background thread whole).
        let mut big = ZSet::default();
        for i in 0..5000 {
            big.add(format!("{i}").as_bytes(), 1.0, ZAddFlags::default());
        }
        assert_eq!(big.remove_ranks(big.rank_range(0, -1, false)), 5000);
        assert_eq!((big.len(), big.bytes, big.by_rank(0..0)), (0, 0, vec![]));
        assert_eq!(z.by_rank(0..z.len()), all);
        assert_eq!(z.len(), all.len());
        let bytes: usize = all.iter().map(|(m, _)| m.len() + ZSET_ITEM).sum();
        assert_eq!(z.bytes, bytes);
        assert!(all.iter().all(|(m, s)| z.score(m) == Some(*s)));
    }

    /// `ZRANGE` by rank, forward and `REV`, walked from either end, answers every range as a sorted list would.
    #[test]
    fn sorted_set_ranks_are_the_same_from_either_end() {
        let mut z = ZSet::default();
        for i in 0..9 {
            z.add(
                format!("m{i}").as_bytes(),
                f64::from(i),
                ZAddFlags::default(),
            );
        }
        let all: Vec<(Bytes, f64)> = (0..9)
            .map(|i| (Bytes::from(format!("m{i}")), f64::from(i)))
            .collect();
        for start in -11..11i64 {
            for stop in -11..11i64 {
                let r = index_range(start, stop, 9);
                let range = |rev| {
                    let mut members = z.by_rank(z.rank_range(start, stop, rev));
                    if rev {
                        members.reverse();
                    }
                    members
                };
                assert_eq!(range(false), all[r.clone()].to_vec(), "{start} {stop}");
                let mut rev: Vec<_> = all.iter().rev().cloned().collect::<Vec<_>>()[r].to_vec();
                assert_eq!(range(true), std::mem::take(&mut rev), "REV {start} {stop}");
            }
        }
    }

    #[test]
    fn index_ranges_follow_redis() {
        assert_eq!(index_range(0, -1, 3), 0..3);
        assert_eq!(index_range(-2, -1, 3), 1..3);
        assert_eq!(index_range(1, 100, 3), 1..3);
        assert_eq!(index_range(-100, 0, 3), 0..1);
        assert_eq!(index_range(2, 1, 3), 0..0);
        assert_eq!(index_range(3, 5, 3), 0..0);
        assert_eq!(index_range(0, -1, 0), 0..0);
        assert_eq!(index_range(i64::MIN, i64::MAX, 2), 0..2);
        assert_eq!(index_range(i64::MAX, i64::MIN, 2), 0..0);
    }

    #[test]
    fn collections_count_what_they_hold() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let mut l = List::default();
        l.push(&[b("ab"), b("c")], true);
        assert_eq!(l.bytes, 3 + 2 * LIST_ITEM);
        assert_eq!(l.pop(5, false), vec![b("ab"), b("c")]);
        assert_eq!(l.bytes, 0);
        let mut h = Hash::default();
        assert_eq!(h.set(&[b("f"), b("vv"), b("f"), b("v")]), 1);
        assert_eq!(h.bytes, 2 + HASH_ITEM);
        assert_eq!(h.remove(&[b("f")]), 1);
        assert_eq!(h.bytes, 0);
        let mut z = ZSet::default();
        assert_eq!(z.add(b"m", 1.0, ZAddFlags::default()), ZAdded::New(1.0));
        let incr = ZAddFlags {
            incr: true,
            ..ZAddFlags::default()
        };
        assert_eq!(z.add(b"m", 2.0, incr), ZAdded::Updated(3.0));
        assert_eq!(
            z.add(b"m", f64::INFINITY, incr),
            ZAdded::Updated(f64::INFINITY)
        );
        assert_eq!(z.add(b"m", f64::NEG_INFINITY, incr), ZAdded::NaN);
        assert_eq!(z.pop(1, true), vec![(b("m"), f64::INFINITY)]);
        assert_eq!(z.bytes, 0);
        let mut s = Set::default();
        assert_eq!(s.add(&[b("a"), b("a"), b("b")]), 2);
        assert_eq!(s.pop(9).len(), 2);
        assert_eq!(s.bytes, 0);
    }
}
