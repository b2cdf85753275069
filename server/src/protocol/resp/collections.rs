//! The commands on lists, sets, hashes and sorted sets (the values `crate::store` keeps besides strings), with
//! Redis 7.0's replies and errors: enough for `redis-benchmark`'s default tests and what clients commonly send.
//! A command on a key holding another kind of value gets `-WRONGTYPE` and changes nothing; a write that would
//! take the key space past `--max-store` gets `-OOM` and changes nothing. Replies of many members are written
//! a part at a time (`Body::Bulks`), the members shared with the key space, not copied.

use std::ops::Range;
use std::time::Instant;

use bytes::{BufMut, Bytes};
use sockpool::codec::resp::Value;

use super::keyspace::refused;
use super::{Out, NULL};
use crate::protocol::body::Body;
use crate::shared::Shared;
use crate::store::{
    format_score, index_range, parse_i64, parse_score, Collection, Data, Kind, Store, WrongType,
    ZAddFlags, ZAdded, ZSet, HASH_ITEM, LIST_ITEM, SET_ITEM, WRONGTYPE, ZSET_ITEM,
};

/// The commands on collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coll {
    LPush,
    RPush,
    LPushX,
    RPushX,
    LPop,
    RPop,
    LLen,
    LRange,
    LIndex,
    LSet,
    LTrim,
    LRem,
    SAdd,
    SRem,
    SPop,
    SCard,
    SIsMember,
    SMembers,
    HSet,
    HMSet,
    HGet,
    HMGet,
    HDel,
    HLen,
    HExists,
    HGetAll,
    HIncrBy,
    HSetNx,
    HKeys,
    HVals,
    ZAdd,
    ZIncrBy,
    ZScore,
    ZCard,
    ZRem,
    ZPopMin,
    ZPopMax,
    ZRange,
    ZRevRange,
    ZRank,
    ZRevRank,
    ZCount,
    ZRangeByScore,
    ZRevRangeByScore,
    ZRemRangeByRank,
    ZRemRangeByScore,
}

impl Coll {
    /// Redis's arity (as `Cmd::arity`).
    pub(super) fn arity(self) -> i32 {
        use Coll::*;
        match self {
            LLen | SCard | SMembers | HLen | HGetAll | HKeys | HVals | ZCard => 2,
            LIndex | SIsMember | HGet | HExists | ZScore | ZRank | ZRevRank => 3,
            LRange | LSet | LTrim | LRem | HIncrBy | HSetNx | ZIncrBy | ZCount
            | ZRemRangeByRank | ZRemRangeByScore => 4,
            LPop | RPop | SPop | ZPopMin | ZPopMax => -2,
            LPush | RPush | LPushX | RPushX | SAdd | SRem | HMGet | HDel | ZRem => -3,
            HSet | HMSet | ZAdd | ZRange | ZRevRange | ZRangeByScore | ZRevRangeByScore => -4,
        }
    }
}

/// Redis's words for a count that is not a positive integer (`LPOP`, `SPOP`, `ZPOPMIN`).
const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
/// Redis's words for an index or increment that is not an integer.
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// Redis's words for a score that is not a float.
const NOT_FLOAT: &str = "ERR value is not a valid float";

/// Redis's words for a `ZCOUNT` or `ZRANGEBYSCORE` bound that is not a score.
const NOT_BOUND: &str = "ERR min or max is not a float";

/// Replies of up to this many members are built whatever the memory budget says.
const ALWAYS: usize = 2048;

/// A reply of many members not built: the server is over its `--memory-budget`.
pub(super) struct Busy;

/// `Ok` if a reply of `n` shared members (or `KEYS`'s copies of `n` names) may be built now: `n` is small, or the server's buffers (the handles
/// of the replies being written included, `Body::held`) are within `--memory-budget`. Otherwise the command gets
/// the busy answer (counted as `errors_busy`), as a large request does: a client asking for `LRANGE big 0 -1`
/// and never reading holds 32 bytes a member until it is written, and such replies together stop near the
/// budget instead of growing with every connection that asks.
pub(super) fn roomy(shared: &Shared, n: usize) -> Result<(), Busy> {
    match n <= ALWAYS || !shared.over_budget() {
        true => Ok(()),
        false => {
            shared.stats.inc(crate::stats::Counter::ErrorsBusy);
            Err(Busy)
        }
    }
}

/// A pop of `n` members (moved into the reply, which holds them and a handle each until it is written) under
/// [`roomy`]: its members and whether it changed the collection, or [`Busy`] and nothing popped.
fn popping<T>(
    shared: &Shared,
    n: usize,
    pop: impl FnOnce() -> Vec<T>,
) -> (Result<Vec<T>, Busy>, bool) {
    match roomy(shared, n) {
        Ok(()) => {
            let popped = pop();
            let changed = !popped.is_empty();
            (Ok(popped), changed)
        }
        Err(busy) => (Err(busy), false),
    }
}

/// The reply to a listing of members read under `roomy`: the array, the busy answer, or `-WRONGTYPE`.
fn listing(out: &mut Out<'_>, read: Result<Option<Result<Vec<Bytes>, Busy>>, WrongType>) {
    match read {
        Ok(Some(Ok(members))) => bulks(out, members),
        Ok(Some(Err(Busy))) => out.buf.extend_from_slice(super::BUSY),
        Ok(None) => bulks(out, Vec::new()),
        Err(WrongType) => error(out, WRONGTYPE),
    }
}

/// Runs `cmd` (its arity checked) on `store`, its reply into `out`.
pub(super) fn command<S: Store>(
    shared: &Shared,
    store: &mut S,
    cmd: Coll,
    args: &[Bytes],
    now: Instant,
    out: &mut Out<'_>,
) {
    let key = &args[1];
    let reply = match cmd {
        Coll::LPush | Coll::RPush | Coll::LPushX | Coll::RPushX => {
            let values = &args[2..];
            let front = matches!(cmd, Coll::LPush | Coll::LPushX);
            let create = matches!(cmd, Coll::LPush | Coll::RPush);
            let bound = grown(values, LIST_ITEM);
            match store.with(key, |s| {
                s.write(key, Kind::List, create, bound, now, |d| {
                    (list(d).push(values, front), true)
                })
            }) {
                Ok(len) => Value::Integer(len.unwrap_or(0) as i64),
                Err(e) => refused(shared, e),
            }
        }
        Coll::LPop | Coll::RPop => {
            let front = cmd == Coll::LPop;
            let count = match args.len() {
                2 => None,
                3 => match positive(&args[2]) {
                    Some(n) => Some(n),
                    None => return error(out, NOT_POSITIVE),
                },
                _ => return arity_error(out, &args[0]),
            };
            let popped = store.with(key, |s| {
                s.write(key, Kind::List, false, 0, now, |d| {
                    let l = list(d);
                    popping(shared, count.unwrap_or(1).min(l.len()), || {
                        l.pop(count.unwrap_or(1), front)
                    })
                })
            });
            match (popped, count) {
                (Err(e), _) => refused(shared, e),
                (Ok(Some(Err(Busy))), _) => return out.buf.extend_from_slice(super::BUSY),
                (Ok(None), None) => return out.buf.extend_from_slice(NULL),
                (Ok(None), Some(_)) => return out.buf.extend_from_slice(b"*-1\r\n"),
                (Ok(Some(Ok(mut p))), None) => Value::Bulk(p.pop().unwrap_or_default()),
                (Ok(Some(Ok(p))), Some(_)) => return bulks(out, p),
            }
        }
        Coll::LLen => len(store, key, Kind::List, now, |d| list_ref(d).len()),
        Coll::LRange => match (parse_i64(&args[2]), parse_i64(&args[3])) {
            (Some(start), Some(stop)) => {
                let read = store.with(key, |s| {
                    s.read(key, Kind::List, now, |d| {
                        let l = list_ref(d);
                        roomy(shared, index_range(start, stop, l.len()).len())
                            .map(|()| l.range(start, stop))
                    })
                });
                return listing(out, read);
            }
            _ => Value::error(NOT_INTEGER),
        },
        Coll::LIndex => match parse_i64(&args[2]) {
            Some(i) => match store.with(key, |s| {
                s.read(key, Kind::List, now, |d| list_ref(d).index(i))
            }) {
                Ok(Some(Some(v))) => Value::Bulk(v),
                Ok(_) => return out.buf.extend_from_slice(NULL),
                Err(WrongType) => Value::error(WRONGTYPE),
            },
            None => Value::error(NOT_INTEGER),
        },
        Coll::LSet => {
            // Redis looks the key up first: a missing key is "no such key" whatever the index says.
            let index = parse_i64(&args[2]);
            let value = &args[3];
            match store.with(key, |s| {
                s.write(key, Kind::List, false, value.len(), now, |d| {
                    let set = index.map(|i| list(d).set(i, value));
                    (set, set == Some(true))
                })
            }) {
                Ok(Some(Some(true))) => return out.buf.extend_from_slice(b"+OK\r\n"),
                Ok(Some(Some(false))) => Value::error("ERR index out of range"),
                Ok(Some(None)) => Value::error(NOT_INTEGER),
                Ok(None) => Value::error("ERR no such key"),
                Err(e) => refused(shared, e),
            }
        }
        Coll::LTrim => {
            let (Some(start), Some(stop)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
                return error(out, NOT_INTEGER);
            };
            match store.with(key, |s| {
                s.write(key, Kind::List, false, 0, now, |d| {
                    ((), list(d).trim(start, stop))
                })
            }) {
                Ok(_) => return out.buf.extend_from_slice(b"+OK\r\n"),
                Err(e) => refused(shared, e),
            }
        }
        Coll::LRem => {
            let Some(count) = parse_i64(&args[2]) else {
                return error(out, NOT_INTEGER);
            };
            removed(shared, store, key, Kind::List, now, |d| {
                list(d).remove(count, &args[3])
            })
        }
        Coll::SAdd => {
            let members = &args[2..];
            let bound = grown(members, SET_ITEM);
            match store.with(key, |s| {
                s.write(key, Kind::Set, true, bound, now, |d| {
                    let added = set(d).add(members);
                    (added, added > 0)
                })
            }) {
                Ok(n) => Value::Integer(n.unwrap_or(0) as i64),
                Err(e) => refused(shared, e),
            }
        }
        Coll::SRem => removed(shared, store, key, Kind::Set, now, |d| {
            set(d).remove(&args[2..])
        }),
        Coll::SPop => {
            let count = match args.len() {
                2 => None,
                3 => match positive(&args[2]) {
                    Some(n) => Some(n),
                    None => return error(out, NOT_POSITIVE),
                },
                _ => return error(out, "ERR syntax error"),
            };
            let popped = store.with(key, |s| {
                s.write(key, Kind::Set, false, 0, now, |d| {
                    let set = set(d);
                    popping(shared, count.unwrap_or(1).min(set.len()), || {
                        set.pop(count.unwrap_or(1))
                    })
                })
            });
            match (popped, count) {
                (Err(e), _) => refused(shared, e),
                (Ok(Some(Err(Busy))), _) => return out.buf.extend_from_slice(super::BUSY),
                (Ok(None), None) => return out.buf.extend_from_slice(NULL),
                (Ok(Some(Ok(mut p))), None) => Value::Bulk(p.pop().unwrap_or_default()),
                // A missing key is an empty set here (Redis answers `*0`, not a null array, as `LPOP` does).
                (Ok(None), Some(_)) => return bulks(out, Vec::new()),
                (Ok(Some(Ok(p))), Some(_)) => return bulks(out, p),
            }
        }
        Coll::SCard => len(store, key, Kind::Set, now, |d| set_ref(d).len()),
        Coll::SIsMember => len(store, key, Kind::Set, now, |d| {
            usize::from(set_ref(d).contains(&args[2]))
        }),
        Coll::SMembers => {
            let read = store.with(key, |s| {
                s.read(key, Kind::Set, now, |d| {
                    let set = set_ref(d);
                    roomy(shared, set.len()).map(|()| set.members())
                })
            });
            return listing(out, read);
        }
        Coll::HSet | Coll::HMSet => {
            let pairs = &args[2..];
            if pairs.len() % 2 != 0 {
                return arity_error(out, &args[0]);
            }
            let bound = pairs
                .chunks_exact(2)
                .map(|p| p[0].len() + p[1].len() + HASH_ITEM)
                .fold(0usize, usize::saturating_add);
            match store.with(key, |s| {
                s.write(key, Kind::Hash, true, bound, now, |d| {
                    (hash(d).set(pairs), true)
                })
            }) {
                Ok(_) if cmd == Coll::HMSet => return out.buf.extend_from_slice(b"+OK\r\n"),
                Ok(n) => Value::Integer(n.unwrap_or(0) as i64),
                Err(e) => refused(shared, e),
            }
        }
        Coll::HGet => match store.with(key, |s| {
            s.read(key, Kind::Hash, now, |d| hash_ref(d).get(&args[2]))
        }) {
            Ok(Some(Some(v))) => Value::Bulk(v),
            Ok(_) => return out.buf.extend_from_slice(NULL),
            Err(WrongType) => Value::error(WRONGTYPE),
        },
        Coll::HMGet => {
            let fields = &args[2..];
            match store.with(key, |s| {
                s.read(key, Kind::Hash, now, |d| {
                    fields
                        .iter()
                        .map(|f| hash_ref(d).get(f))
                        .collect::<Vec<_>>()
                })
            }) {
                Ok(values) => {
                    let values = values.unwrap_or_else(|| vec![None; fields.len()]);
                    return array(out, values);
                }
                Err(WrongType) => Value::error(WRONGTYPE),
            }
        }
        Coll::HDel => removed(shared, store, key, Kind::Hash, now, |d| {
            hash(d).remove(&args[2..])
        }),
        Coll::HLen => len(store, key, Kind::Hash, now, |d| hash_ref(d).len()),
        Coll::HExists => len(store, key, Kind::Hash, now, |d| {
            usize::from(hash_ref(d).get(&args[2]).is_some())
        }),
        Coll::HGetAll => {
            let read = store.with(key, |s| {
                s.read(key, Kind::Hash, now, |d| {
                    let h = hash_ref(d);
                    roomy(shared, 2 * h.len()).map(|()| h.all())
                })
            });
            return listing(out, read);
        }
        Coll::HKeys | Coll::HVals => {
            let read = store.with(key, |s| {
                s.read(key, Kind::Hash, now, |d| {
                    let h = hash_ref(d);
                    roomy(shared, h.len()).map(|()| h.column(cmd == Coll::HVals))
                })
            });
            return listing(out, read);
        }
        Coll::HSetNx => {
            let (field, value) = (&args[2], &args[3]);
            let bound = field.len() + value.len() + HASH_ITEM;
            match store.with(key, |s| {
                s.write(key, Kind::Hash, true, bound, now, |d| {
                    let set = hash(d).set_new(field, value);
                    (set, set)
                })
            }) {
                Ok(set) => Value::Integer(i64::from(set == Some(true))),
                Err(e) => refused(shared, e),
            }
        }
        Coll::HIncrBy => hincrby(shared, store, args, now),
        Coll::ZAdd => zadd(shared, store, args, now),
        Coll::ZIncrBy => match parse_score(&args[2]) {
            Some(by) => zadd_one(
                shared,
                store,
                key,
                &args[3],
                by,
                ZAddFlags {
                    incr: true,
                    ..ZAddFlags::default()
                },
                true,
                now,
            ),
            None => Value::error(NOT_FLOAT),
        },
        Coll::ZScore => match store.with(key, |s| {
            s.read(key, Kind::ZSet, now, |d| zset_ref(d).score(&args[2]))
        }) {
            Ok(Some(Some(x))) => Value::Bulk(Bytes::from(format_score(x))),
            Ok(_) => return out.buf.extend_from_slice(NULL),
            Err(WrongType) => Value::error(WRONGTYPE),
        },
        Coll::ZCard => len(store, key, Kind::ZSet, now, |d| zset_ref(d).len()),
        Coll::ZRem => removed(shared, store, key, Kind::ZSet, now, |d| {
            zset(d).remove(&args[2..])
        }),
        Coll::ZPopMin | Coll::ZPopMax => {
            let count = match args.len() {
                2 => 1,
                3 => match positive(&args[2]) {
                    Some(n) => n,
                    None => return error(out, NOT_POSITIVE),
                },
                _ => return error(out, "ERR syntax error"),
            };
            let max = cmd == Coll::ZPopMax;
            match store.with(key, |s| {
                s.write(key, Kind::ZSet, false, 0, now, |d| {
                    let z = zset(d);
                    popping(shared, 2 * count.min(z.len()), || z.pop(count, max))
                })
            }) {
                Ok(Some(Ok(p))) => return scored(out, p, true),
                Ok(Some(Err(Busy))) => return out.buf.extend_from_slice(super::BUSY),
                Ok(None) => return scored(out, Vec::new(), true),
                Err(e) => refused(shared, e),
            }
        }
        Coll::ZRange | Coll::ZRevRange => return zrange(shared, store, cmd, args, now, out),
        Coll::ZCount => {
            let (Some(min), Some(max)) = (score_bound(&args[2]), score_bound(&args[3])) else {
                return error(out, NOT_BOUND);
            };
            len(store, key, Kind::ZSet, now, |d| {
                zset_ref(d).score_ranks(min, max).len()
            })
        }
        Coll::ZRangeByScore | Coll::ZRevRangeByScore => {
            let rev = cmd == Coll::ZRevRangeByScore;
            return zrangebyscore(shared, store, args, rev, now, out);
        }
        Coll::ZRemRangeByRank => {
            let (Some(start), Some(stop)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
                return error(out, NOT_INTEGER);
            };
            removed(shared, store, key, Kind::ZSet, now, |d| {
                let z = zset(d);
                z.remove_ranks(z.rank_range(start, stop, false))
            })
        }
        Coll::ZRemRangeByScore => {
            let (Some(min), Some(max)) = (score_bound(&args[2]), score_bound(&args[3])) else {
                return error(out, NOT_BOUND);
            };
            removed(shared, store, key, Kind::ZSet, now, |d| {
                let z = zset(d);
                z.remove_ranks(z.score_ranks(min, max))
            })
        }
        Coll::ZRank | Coll::ZRevRank => {
            let rev = cmd == Coll::ZRevRank;
            match store.with(key, |s| {
                s.read(key, Kind::ZSet, now, |d| zset_ref(d).rank(&args[2], rev))
            }) {
                Ok(Some(Some(rank))) => Value::Integer(rank as i64),
                Ok(_) => Value::Null,
                Err(WrongType) => Value::error(WRONGTYPE),
            }
        }
    };
    reply.encode_to(out.buf);
}

/// `$mine(d)` / `$read(d)`: the collection of kind `$variant` in `d`, which a read or write was given that
/// [`Kind`] for (so it is one; anything else is a bug here, never the client's doing).
macro_rules! collection {
    ($($mine:ident, $read:ident: $variant:ident;)*) => {$(
        fn $mine(d: &mut Data) -> &mut crate::store::$variant {
            match d {
                Data::Coll(c) => match &mut **c {
                    Collection::$variant(x) => x,
                    _ => unreachable!(concat!("a ", stringify!($variant), " command on another kind")),
                },
                Data::Str(_) => unreachable!(concat!("a ", stringify!($variant), " command on a string")),
            }
        }

        fn $read(d: &Data) -> &crate::store::$variant {
            match d {
                Data::Coll(c) => match &**c {
                    Collection::$variant(x) => x,
                    _ => unreachable!(concat!("a ", stringify!($variant), " command on another kind")),
                },
                Data::Str(_) => unreachable!(concat!("a ", stringify!($variant), " command on a string")),
            }
        }
    )*};
}

collection! {
    list, list_ref: List;
    set, set_ref: Set;
    hash, hash_ref: Hash;
    zset, zset_ref: ZSet;
}

/// The most `members` can grow a collection by, at `item` bytes of overhead each.
fn grown(members: &[Bytes], item: usize) -> usize {
    members
        .iter()
        .map(|m| m.len() + item)
        .fold(0usize, usize::saturating_add)
}

/// A count argument: a non-negative integer (Redis's "positive" includes 0).
fn positive(v: &[u8]) -> Option<usize> {
    parse_i64(v).and_then(|n| usize::try_from(n).ok())
}

/// An error reply.
fn error(out: &mut Out<'_>, text: &str) {
    Value::error(text).encode_to(out.buf);
}

/// Redis's arity error for the command named `name`.
fn arity_error(out: &mut Out<'_>, name: &[u8]) {
    super::arity(name).encode_to(out.buf);
}

/// An integer read from the collection at `key` (0 if it is missing): `LLEN`, `SCARD`, `SISMEMBER` ….
fn len<S: Store>(
    store: &mut S,
    key: &[u8],
    kind: Kind,
    now: Instant,
    f: impl FnOnce(&Data) -> usize,
) -> Value {
    match store.with(key, |s| s.read(key, kind, now, f)) {
        Ok(n) => Value::Integer(n.unwrap_or(0) as i64),
        Err(WrongType) => Value::error(WRONGTYPE),
    }
}

/// How many members `f` removed from the collection at `key`: `SREM`, `HDEL`, `ZREM`.
fn removed<S: Store>(
    shared: &Shared,
    store: &mut S,
    key: &[u8],
    kind: Kind,
    now: Instant,
    f: impl FnOnce(&mut Data) -> usize,
) -> Value {
    match store.with(key, |s| {
        s.write(key, kind, false, 0, now, |d| {
            let n = f(d);
            (n, n > 0)
        })
    }) {
        Ok(n) => Value::Integer(n.unwrap_or(0) as i64),
        Err(e) => refused(shared, e),
    }
}

/// An array of `values` (each nil or a bulk string): its header now, the values a part at a time.
fn array(out: &mut Out<'_>, values: Vec<Option<Bytes>>) {
    out.buf.put_u8(b'*');
    out.buf
        .extend_from_slice(itoa::Buffer::new().format(values.len()).as_bytes());
    out.buf.extend_from_slice(b"\r\n");
    if !values.is_empty() {
        *out.body = Some(Body::Bulks(values.into_iter()));
    }
}

/// An array of bulk strings.
fn bulks(out: &mut Out<'_>, values: Vec<Bytes>) {
    array(out, values.into_iter().map(Some).collect());
}

/// Members and their scores: `member, score, …` (`with_scores`) or the members alone.
fn scored(out: &mut Out<'_>, members: Vec<(Bytes, f64)>, with_scores: bool) {
    let values = members
        .into_iter()
        .flat_map(|(m, s)| {
            let score = with_scores.then(|| Some(Bytes::from(format_score(s))));
            std::iter::once(Some(m)).chain(score)
        })
        .collect();
    array(out, values);
}

/// `HINCRBY key field n`.
fn hincrby<S: Store>(shared: &Shared, store: &mut S, args: &[Bytes], now: Instant) -> Value {
    let (key, field) = (&args[1], &args[2]);
    let Some(by) = parse_i64(&args[3]) else {
        return Value::error(NOT_INTEGER);
    };
    // The longest i64 is 20 bytes: the bound for a new value (or a longer one).
    let bound = field.len() + 20 + HASH_ITEM;
    let done = store.with(key, |s| {
        s.write(key, Kind::Hash, true, bound, now, |d| {
            let h = hash(d);
            let current = match h.get(field) {
                Some(v) => match parse_i64(&v) {
                    Some(n) => n,
                    None => return (Err("ERR hash value is not an integer"), false),
                },
                None => 0,
            };
            match current.checked_add(by) {
                Some(n) => {
                    let text = Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    h.set(&[field.clone(), text]);
                    (Ok(n), true)
                }
                None => (Err("ERR increment or decrement would overflow"), false),
            }
        })
    });
    match done {
        Ok(Some(Ok(n))) => Value::Integer(n),
        Ok(Some(Err(e))) => Value::error(e),
        Ok(None) => Value::Integer(0),
        Err(e) => refused(shared, e),
    }
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member …]`, with Redis 7.0's checks in its order.
fn zadd<S: Store>(shared: &Shared, store: &mut S, args: &[Bytes], now: Instant) -> Value {
    let key = &args[1];
    let mut flags = ZAddFlags::default();
    let mut ch = false;
    let mut i = 2;
    while let Some(word) = args.get(i) {
        let w = word.to_ascii_uppercase();
        match &w[..] {
            b"NX" => flags.nx = true,
            b"XX" => flags.xx = true,
            b"GT" => flags.gt = true,
            b"LT" => flags.lt = true,
            b"CH" => ch = true,
            b"INCR" => flags.incr = true,
            _ => break,
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || pairs.len() % 2 != 0 {
        return Value::error("ERR syntax error");
    }
    if flags.nx && flags.xx {
        return Value::error("ERR XX and NX options at the same time are not compatible");
    }
    if ((flags.gt || flags.lt) && flags.nx) || (flags.gt && flags.lt) {
        return Value::error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if flags.incr && pairs.len() > 2 {
        return Value::error("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        match parse_score(&pair[0]) {
            Some(x) => scores.push(x),
            None => return Value::error(NOT_FLOAT),
        }
    }
    if flags.incr {
        return zadd_one(shared, store, key, &pairs[1], scores[0], flags, false, now);
    }
    let bound = pairs
        .chunks_exact(2)
        .map(|p| p[1].len() + ZSET_ITEM)
        .fold(0usize, usize::saturating_add);
    let done = store.with(key, |s| {
        s.write(key, Kind::ZSet, !flags.xx, bound, now, |d| {
            let z = zset(d);
            let (mut added, mut updated) = (0, 0);
            for (pair, &score) in pairs.chunks_exact(2).zip(&scores) {
                match z.add(&pair[1], score, flags) {
                    ZAdded::New(_) => added += 1,
                    ZAdded::Updated(_) => updated += 1,
                    ZAdded::Same(_) | ZAdded::NaN => {}
                }
            }
            ((added, updated), added + updated > 0)
        })
    });
    match done {
        Ok(Some((added, updated))) => Value::Integer(if ch { added + updated } else { added }),
        Ok(None) => Value::Integer(0),
        Err(e) => refused(shared, e),
    }
}

/// `ZADD … INCR score member` and `ZINCRBY key by member`: the member's new score, or nil if `ZADD`'s options
/// kept it from changing (`ZINCRBY`, `always`, answers the score it has then).
#[allow(clippy::too_many_arguments)]
fn zadd_one<S: Store>(
    shared: &Shared,
    store: &mut S,
    key: &[u8],
    member: &[u8],
    score: f64,
    flags: ZAddFlags,
    always: bool,
    now: Instant,
) -> Value {
    let bound = member.len() + ZSET_ITEM;
    let done = store.with(key, |s| {
        s.write(key, Kind::ZSet, !flags.xx, bound, now, |d| {
            let added = zset(d).add(member, score, flags);
            (added, matches!(added, ZAdded::New(_) | ZAdded::Updated(_)))
        })
    });
    match done {
        Ok(Some(ZAdded::New(x) | ZAdded::Updated(x))) => Value::Bulk(Bytes::from(format_score(x))),
        Ok(Some(ZAdded::Same(Some(x)))) if always => Value::Bulk(Bytes::from(format_score(x))),
        Ok(Some(ZAdded::NaN)) => Value::error("ERR resulting score is not a number (NaN)"),
        Ok(_) => Value::Null,
        Err(e) => refused(shared, e),
    }
}

/// A score bound of `ZCOUNT`/`ZRANGEBYSCORE`: the score, and whether it is excluded (`(1.5`). Read as Redis
/// reads it, with C's `strtod`: leading spaces are skipped, and an empty bound (`""`, `(`) is 0.
fn score_bound(v: &[u8]) -> Option<(f64, bool)> {
    let (number, excluded) = match v.strip_prefix(b"(") {
        Some(rest) => (rest, true),
        None => (v, false),
    };
    let x = match number.trim_ascii_start() {
        [] if number.is_empty() => 0.0,
        digits => parse_score(digits)?,
    };
    Some((x, excluded))
}

/// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]`: the members with scores from `min` to `max`,
/// lowest first, `offset` of them skipped (none at all if it is negative) and at most `count` (all if negative);
/// `ZREVRANGEBYSCORE key max min …` (`rev`), the same highest first, the offset counted from the highest.
fn zrangebyscore<S: Store>(
    shared: &Shared,
    store: &mut S,
    args: &[Bytes],
    rev: bool,
    now: Instant,
    out: &mut Out<'_>,
) {
    let (mut with_scores, mut limit) = (false, None);
    let mut i = 4;
    while let Some(word) = args.get(i) {
        if word.eq_ignore_ascii_case(b"WITHSCORES") {
            with_scores = true;
            i += 1;
        } else if word.eq_ignore_ascii_case(b"LIMIT") && args.len() > i + 2 {
            match (parse_i64(&args[i + 1]), parse_i64(&args[i + 2])) {
                (Some(offset), Some(count)) => limit = Some((offset, count)),
                _ => return error(out, NOT_INTEGER),
            }
            i += 3;
        } else {
            return error(out, "ERR syntax error");
        }
    }
    let (low, high) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let (Some(min), Some(max)) = (score_bound(low), score_bound(high)) else {
        return error(out, NOT_BOUND);
    };
    let ranks = |z: &ZSet| {
        let r = z.score_ranks(min, max);
        let Some((offset, count)) = limit else {
            return r;
        };
        let skip = usize::try_from(offset).unwrap_or(r.len()).min(r.len());
        let take = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(r.len() - skip);
        match rev {
            // Counted from the highest: skip the top `skip`, then take the `take` below them.
            true => r.end - skip - take..r.end - skip,
            false => r.start + skip..r.start + skip + take,
        }
    };
    answer_ranks(shared, store, &args[1], now, out, (with_scores, rev), ranks);
}

/// `ZRANGE key start stop [REV] [WITHSCORES]`, by rank (`BYSCORE`, `BYLEX` and `LIMIT` are not served), and
/// `ZREVRANGE key start stop [WITHSCORES]`.
fn zrange<S: Store>(
    shared: &Shared,
    store: &mut S,
    cmd: Coll,
    args: &[Bytes],
    now: Instant,
    out: &mut Out<'_>,
) {
    let zrevrange = cmd == Coll::ZRevRange;
    let (mut rev, mut with_scores) = (zrevrange, false);
    for word in &args[4..] {
        if zrevrange && !word.eq_ignore_ascii_case(b"WITHSCORES") {
            return error(out, "ERR syntax error");
        }
        if word.eq_ignore_ascii_case(b"REV") {
            rev = true;
        } else if word.eq_ignore_ascii_case(b"WITHSCORES") {
            with_scores = true;
        } else if word.eq_ignore_ascii_case(b"BYSCORE")
            || word.eq_ignore_ascii_case(b"BYLEX")
            || word.eq_ignore_ascii_case(b"LIMIT")
        {
            return error(
                out,
                "ERR ZRANGE BYSCORE, BYLEX and LIMIT are not served by this server",
            );
        } else {
            return error(out, "ERR syntax error");
        }
    }
    let (Some(start), Some(stop)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return error(out, NOT_INTEGER);
    };
    let ranks = |z: &ZSet| z.rank_range(start, stop, rev);
    answer_ranks(shared, store, &args[1], now, out, (with_scores, rev), ranks);
}

/// Answers the members of the sorted set at `key` of the ranks `ranks` picks (counted from the lowest member),
/// highest first if `rev`, with their scores if `with_scores`: read under the listings' busy gate, an empty
/// array for no key, `-WRONGTYPE` for another kind.
fn answer_ranks<S: Store>(
    shared: &Shared,
    store: &mut S,
    key: &[u8],
    now: Instant,
    out: &mut Out<'_>,
    (with_scores, rev): (bool, bool),
    ranks: impl FnOnce(&ZSet) -> Range<usize>,
) {
    let read = store.with(key, |s| {
        s.read(key, Kind::ZSet, now, |d| {
            let z = zset_ref(d);
            let r = ranks(z);
            let n = r.len();
            roomy(shared, if with_scores { 2 * n } else { n }).map(|()| z.by_rank(r))
        })
    });
    match read {
        Ok(Some(Ok(mut members))) => {
            if rev {
                members.reverse();
            }
            scored(out, members, with_scores)
        }
        Ok(Some(Err(Busy))) => out.buf.extend_from_slice(super::BUSY),
        Ok(None) => scored(out, Vec::new(), with_scores),
        Err(WrongType) => error(out, WRONGTYPE),
    }
}
