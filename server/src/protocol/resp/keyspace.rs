//! The commands on the key space: strings, expiry, `TYPE`, `KEYS`, `SCAN`, `FLUSHDB`, `DBSIZE`, run on a
//! [`Store`] (a shard lock per key, the shards of a multi-key command together, or every shard for `EXEC`).

use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, Bytes};
use sockpool::codec::resp::Value;

use super::admin::{auth, config, hello, info, time};
use super::cmd::Cmd;
use super::{arity, Out, NULL, OK, PONG, QUOTE_MAX};
use crate::protocol::body::Body;
use crate::shared::Shared;
use crate::stats::Counter;
use crate::store::{
    cost, parse_i64, AppendError, Change, ExpireIf, Full, IncrError, Kind, Locked, Refused,
    SetOptions, Store, Ttl, WrongType, OOM, WRONGTYPE,
};

/// Runs one command on `store` (the [`crate::store::Db`], a shard lock per key, or every shard locked for `EXEC`), its reply
/// into `out`. Transaction control never comes here.
pub(super) fn command<S: Store>(
    shared: &Shared,
    store: &mut S,
    cmd: Cmd,
    args: &[Bytes],
    now: Instant,
    out: &mut Out<'_>,
) {
    let argc = args.len();
    let reply = match cmd {
        Cmd::Ping => match argc {
            1 => return out.buf.extend_from_slice(PONG),
            2 => Value::Bulk(args[1].clone()),
            _ => arity(&args[0]),
        },
        Cmd::Get => match store.with(&args[1], |s| s.get(&args[1], now)) {
            Ok(Some(v)) => Value::Bulk(v),
            Ok(None) => return out.buf.extend_from_slice(NULL),
            Err(WrongType) => Value::error(WRONGTYPE),
        },
        Cmd::Set => match set_options(&args[3..], now) {
            Ok(options) => {
                let done = store.with(&args[1], |s| s.set(&args[1], &args[2], options, now));
                match (done, options.get) {
                    (Err(Refused::Full), _) => oom(shared),
                    (Err(Refused::WrongType), _) => Value::error(WRONGTYPE),
                    (Ok(Ok(_)), false) => return out.buf.extend_from_slice(OK),
                    (Ok(Err(_)), false) | (Ok(Ok(None) | Err(None)), true) => {
                        return out.buf.extend_from_slice(NULL)
                    }
                    (Ok(Ok(Some(old)) | Err(Some(old))), true) => Value::Bulk(old),
                }
            }
            Err(e) => e,
        },
        Cmd::SetNx => {
            let options = SetOptions {
                only_if_missing: true,
                ..SetOptions::default()
            };
            match store.with(&args[1], |s| s.set(&args[1], &args[2], options, now)) {
                Ok(done) => Value::Integer(i64::from(done.is_ok())),
                Err(e) => refused(shared, e),
            }
        }
        Cmd::SetEx | Cmd::PSetEx => {
            let (unit, name) = if cmd == Cmd::SetEx {
                (Unit::Seconds, "setex")
            } else {
                (Unit::Millis, "psetex")
            };
            match deadline(&args[2], unit, now, name) {
                Ok(d) => {
                    let options = SetOptions {
                        deadline: Some(d),
                        ..SetOptions::default()
                    };
                    match store.with(&args[1], |s| s.set(&args[1], &args[3], options, now)) {
                        Ok(_) => return out.buf.extend_from_slice(OK),
                        Err(e) => refused(shared, e),
                    }
                }
                Err(e) => e,
            }
        }
        Cmd::Incr => counter(shared, store, &args[1], 1, now),
        Cmd::Decr => counter(shared, store, &args[1], -1, now),
        Cmd::IncrBy | Cmd::DecrBy => match parse_i64(&args[2]) {
            Some(d) if cmd == Cmd::IncrBy => counter(shared, store, &args[1], d, now),
            // DECRBY negates its argument: i64::MIN has none (Redis's words).
            Some(d) => d.checked_neg().map_or_else(
                || Value::error("ERR decrement would overflow"),
                |d| counter(shared, store, &args[1], d, now),
            ),
            None => Value::error(IncrError::NotAnInteger.reply()),
        },
        // `UNLINK` frees at once too: the same as `DEL` here.
        Cmd::Del | Cmd::Unlink | Cmd::Exists => {
            let del = cmd != Cmd::Exists;
            let keys = &args[1..];
            let n = store.atomically(keys.iter(), |locked| {
                keys.iter()
                    .filter(|k| {
                        locked.with(k, |s| if del { s.del(k, now) } else { s.exists(k, now) })
                    })
                    .count()
            });
            Value::Integer(n as i64)
        }
        Cmd::MGet => {
            // The array header now; the values (shared with the key space, not copied) a part at a time.
            out.buf.put_u8(b'*');
            out.buf
                .extend_from_slice(itoa::Buffer::new().format(argc - 1).as_bytes());
            out.buf.extend_from_slice(b"\r\n");
            let keys = &args[1..];
            let values: Vec<Option<Bytes>> = store.atomically(keys.iter(), |locked| {
                keys.iter()
                    // A key holding a collection is nil here, as in Redis.
                    .map(|k| locked.with(k, |s| s.get(k, now)).unwrap_or(None))
                    .collect()
            });
            *out.body = Some(Body::Bulks(values.into_iter()));
            return;
        }
        Cmd::MSet | Cmd::MSetNx if argc % 2 == 0 => arity(&args[0]),
        Cmd::MSet => match mset(store, &args[1..], now) {
            Ok(()) => return out.buf.extend_from_slice(OK),
            Err(Full) => oom(shared),
        },
        // All or none: `:1` if no key existed and all were set, `:0` (nothing set) otherwise.
        Cmd::MSetNx => match msetnx(store, &args[1..], now) {
            Ok(set) => Value::Integer(i64::from(set)),
            Err(Full) => oom(shared),
        },
        Cmd::GetDel => match store.with(&args[1], |s| s.get_del(&args[1], now)) {
            Ok(Some(v)) => Value::Bulk(v),
            Ok(None) => return out.buf.extend_from_slice(NULL),
            Err(WrongType) => Value::error(WRONGTYPE),
        },
        Cmd::GetEx => match getex(store, args, now) {
            Ok(Some(v)) => Value::Bulk(v),
            Ok(None) => return out.buf.extend_from_slice(NULL),
            Err(e) => e,
        },
        Cmd::Expire | Cmd::PExpire | Cmd::ExpireAt | Cmd::PExpireAt => {
            expire(store, cmd, args, now)
        }
        Cmd::Ttl | Cmd::PTtl => match store.with(&args[1], |s| s.ttl(&args[1], now)) {
            Ttl::Missing => Value::Integer(-2),
            Ttl::Persistent => Value::Integer(-1),
            Ttl::Left(left) => {
                let ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX);
                // TTL rounds to the nearest second, as Redis does.
                Value::Integer(if cmd == Cmd::Ttl {
                    ms.saturating_add(500) / 1000
                } else {
                    ms
                })
            }
        },
        Cmd::ExpireTime | Cmd::PExpireTime => {
            match store.with(&args[1], |s| s.ttl(&args[1], now)) {
                Ttl::Missing => Value::Integer(-2),
                Ttl::Persistent => Value::Integer(-1),
                Ttl::Left(left) => {
                    // The deadline as a Unix time, in milliseconds; in seconds rounded to the nearest, as Redis. Summed
                    // in microseconds: the deadline was set from the clock in whole milliseconds (`at`), so this
                    // floors back to the time given.
                    let us = unix_us(now)
                        .saturating_add(i64::try_from(left.as_micros()).unwrap_or(i64::MAX));
                    let ms = us / 1000;
                    Value::Integer(if cmd == Cmd::ExpireTime {
                        ms.saturating_add(500) / 1000
                    } else {
                        ms
                    })
                }
            }
        }
        Cmd::Rename | Cmd::RenameNx => {
            match rename(store, &args[1], &args[2], cmd == Cmd::RenameNx, now) {
                Ok(reply) => reply,
                Err(Full) => oom(shared),
            }
        }
        Cmd::Persist => Value::Integer(i64::from(
            store.with(&args[1], |s| s.persist(&args[1], now)),
        )),
        Cmd::Echo => Value::Bulk(args[1].clone()),
        Cmd::Unwatch => return out.buf.extend_from_slice(OK),
        // One key space: database 0, as a Redis with `databases 1` (taking any other index would let a client
        // believe its keys are apart from another's).
        Cmd::Select => match parse_i64(&args[1]) {
            Some(0) => return out.buf.extend_from_slice(OK),
            Some(_) => Value::error("ERR DB index is out of range"),
            None => Value::error(IncrError::NotAnInteger.reply()),
        },
        Cmd::Config => config(shared, args),
        // One key space: FLUSHALL and FLUSHDB are the same. `ASYNC` frees in the foreground too.
        Cmd::FlushAll | Cmd::FlushDb => match &args[1..] {
            [] => {
                store.whole(|all| all.flush());
                return out.buf.extend_from_slice(OK);
            }
            [mode] if mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC") => {
                store.whole(|all| all.flush());
                return out.buf.extend_from_slice(OK);
            }
            _ => Value::error("ERR syntax error"),
        },
        Cmd::DbSize => Value::Integer(store.whole(|all| all.len()) as i64),
        Cmd::Info => info(shared, store, &args[1..]),
        Cmd::Type => Value::Simple(Bytes::from_static(
            store
                .with(&args[1], |s| s.kind(&args[1], now))
                .map_or("none", Kind::name)
                .as_bytes(),
        )),
        Cmd::StrLen => match store.with(&args[1], |s| s.strlen(&args[1], now)) {
            Ok(n) => Value::Integer(n as i64),
            Err(WrongType) => Value::error(WRONGTYPE),
        },
        Cmd::Append => {
            let max = shared.config.limits.max_bulk;
            match store.with(&args[1], |s| s.append(&args[1], &args[2], max, now)) {
                Ok(len) => Value::Integer(len as i64),
                Err(AppendError::Full) => oom(shared),
                Err(e) => Value::error(e.reply()),
            }
        }
        // `SET key value GET`: the old value, the deadline dropped.
        Cmd::GetSet => {
            let options = SetOptions {
                get: true,
                ..SetOptions::default()
            };
            match store.with(&args[1], |s| s.set(&args[1], &args[2], options, now)) {
                Ok(Ok(Some(old)) | Err(Some(old))) => Value::Bulk(old),
                Ok(Ok(None) | Err(None)) => return out.buf.extend_from_slice(NULL),
                Err(e) => refused(shared, e),
            }
        }
        // The indexes are read before the key is looked at, as Redis does.
        Cmd::GetRange => match (parse_i64(&args[2]), parse_i64(&args[3])) {
            (Some(start), Some(end)) => {
                match store.with(&args[1], |s| s.range(&args[1], start, end, now)) {
                    Ok(v) => Value::Bulk(v),
                    Err(WrongType) => Value::error(WRONGTYPE),
                }
            }
            _ => Value::error(IncrError::NotAnInteger.reply()),
        },
        Cmd::Keys => {
            let Some(keys) = store.whole(|all| {
                super::collections::roomy(shared, all.len())
                    .ok()
                    .map(|()| all.keys(&args[1], now))
            }) else {
                return out.buf.extend_from_slice(super::BUSY);
            };
            // The array header now; the keys (shared with the key space, not copied) a part at a time.
            out.buf.put_u8(b'*');
            out.buf
                .extend_from_slice(itoa::Buffer::new().format(keys.len()).as_bytes());
            out.buf.extend_from_slice(b"\r\n");
            let keys: Vec<Option<Bytes>> = keys.into_iter().map(Some).collect();
            *out.body = Some(Body::Bulks(keys.into_iter()));
            return;
        }
        Cmd::Scan => scan(store, &args[1..], now),
        Cmd::Coll(c) => return super::collections::command(shared, store, c, args, now, out),
        // Connection state: `request` and `exec` answer it with the connection's own.
        Cmd::Client => Value::error("ERR CLIENT is answered by the connection"),
        Cmd::Hello => hello(args),
        Cmd::Auth => auth(args),
        Cmd::Time => time(unix_us(now)),
        // Transaction control and QUIT are handled by `request` and never queued.
        Cmd::Quit | Cmd::Multi | Cmd::Exec | Cmd::Discard | Cmd::Watch => {
            Value::error("ERR Command not allowed inside a transaction")
        }
    };
    match reply {
        Value::Bulk(b) if b.len() > out.at_once => {
            out.buf.extend_from_slice(b"$");
            out.buf
                .extend_from_slice(itoa::Buffer::new().format(b.len()).as_bytes());
            out.buf.extend_from_slice(b"\r\n");
            *out.body = Some(Body::Bytes(b, b"\r\n"));
        }
        reply => reply.encode_to(out.buf),
    }
}

/// A write refused: [`oom`] at the cap, or Redis's `-WRONGTYPE`.
pub(super) fn refused(shared: &Shared, why: Refused) -> Value {
    match why {
        Refused::Full => oom(shared),
        Refused::WrongType => Value::error(WRONGTYPE),
    }
}

/// A write refused at `--max-store`: counted (`store_refused`), and Redis's `-OOM` reply.
pub(super) fn oom(shared: &Shared) -> Value {
    shared.stats.inc(Counter::StoreRefused);
    Value::error(OOM)
}

/// `MSET key value …`: every pair set, atomically; none if that would take the store past its cap.
pub(super) fn mset<S: Store>(store: &mut S, pairs: &[Bytes], now: Instant) -> Result<(), Full> {
    store.atomically(pairs.iter().step_by(2), |locked| {
        set_pairs(locked, pairs, now)
    })
}

/// `MSETNX key value …`: every pair set if none of the keys exists, none otherwise, atomically; true if set.
/// [`Full`] (none set) if setting them would take the store past its cap.
pub(super) fn msetnx<S: Store>(store: &mut S, pairs: &[Bytes], now: Instant) -> Result<bool, Full> {
    store.atomically(pairs.iter().step_by(2), |locked| {
        let keys = pairs.iter().step_by(2);
        if keys
            .into_iter()
            .any(|k| locked.with(k, |s| s.exists(k, now)))
        {
            return Ok(false);
        }
        set_pairs(locked, pairs, now).map(|()| true)
    })
}

/// Sets each `(key, value)` of `pairs` with no deadline, on shards already locked: all of them, on room reserved
/// for all of them first (a key set twice counts twice: the bound is generous, never short), or [`Full`] and
/// none.
pub(super) fn set_pairs(
    locked: &mut Locked<'_>,
    pairs: &[Bytes],
    now: Instant,
) -> Result<(), Full> {
    let bound = pairs
        .chunks_exact(2)
        .map(|pair| locked.with(&pair[0], |s| s.growth(&pair[0], pair[1].len(), false)))
        .fold(0usize, usize::saturating_add);
    locked.prepaid(bound, |locked| {
        for pair in pairs.chunks_exact(2) {
            // On reserved room: never refused.
            let _ = locked.with(&pair[0], |s| {
                s.set(&pair[0], &pair[1], SetOptions::default(), now)
            });
        }
    })
}

/// `GETEX`'s options after the key, in Redis's grammar (one of `EX s`, `PX ms`, `EXAT t`, `PXAT t`,
/// `PERSIST`; anything else, or two of them, is `ERR syntax error`). The time is checked only once the key is
/// found, as Redis does (a missing key answers nil whatever the time says).
pub(super) fn getex_options(words: &[Bytes]) -> Result<GetEx<'_>, Value> {
    let syntax = || Value::error("ERR syntax error");
    match words {
        [] => Ok(GetEx::Keep),
        [w] if w.eq_ignore_ascii_case(b"PERSIST") => Ok(GetEx::Persist),
        [w, time] => {
            let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
            let unit = if is("EX") {
                Unit::Seconds
            } else if is("PX") {
                Unit::Millis
            } else if is("EXAT") {
                Unit::UnixSeconds
            } else if is("PXAT") {
                Unit::UnixMillis
            } else {
                return Err(syntax());
            };
            Ok(GetEx::Expire(unit, time))
        }
        _ => Err(syntax()),
    }
}

/// What `GETEX` does to the key's deadline ([`getex_options`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum GetEx<'a> {
    /// Nothing: a `GET`.
    Keep,
    /// `PERSIST`: removes it.
    Persist,
    /// `EX`/`PX`/`EXAT`/`PXAT` and the time argument, not yet checked.
    Expire(Unit, &'a Bytes),
}

/// `GETEX key [option]`: the value, and its deadline changed as the option says (a time not in the future
/// deletes the key, as Redis does); nil, whatever the option, for a missing key; an invalid time is an error
/// and changes nothing.
pub(super) fn getex<S: Store>(
    store: &mut S,
    args: &[Bytes],
    now: Instant,
) -> Result<Option<Bytes>, Value> {
    let option = getex_options(&args[2..])?;
    let key = &args[1];
    store.with(key, |s| {
        if !s.exists(key, now) {
            return Ok(None);
        }
        let change = match option {
            GetEx::Keep => Change::Keep,
            GetEx::Persist => Change::Persist,
            GetEx::Expire(unit, time) => Change::At(deadline(time, unit, now, "getex")?),
        };
        s.get_ex(key, change, now)
            .map_err(|WrongType| Value::error(WRONGTYPE))
    })
}

/// `INCR`, `DECR`, `INCRBY`, `DECRBY`: adds `delta` to the integer at `key`.
pub(super) fn counter<S: Store>(
    shared: &Shared,
    store: &mut S,
    key: &[u8],
    delta: i64,
    now: Instant,
) -> Value {
    match store.with(key, |s| s.incr_by(key, delta, now)) {
        Ok(n) => Value::Integer(n),
        Err(IncrError::Full) => oom(shared),
        Err(e) => Value::error(e.reply()),
    }
}

/// `RENAME from to` (`nx`: `RENAMENX`): `to` takes `from`'s value and deadline and `from` is gone, atomically
/// (both keys' shards locked together); `-ERR no such key` if `from` is missing; `RENAMENX` leaves an existing
/// `to` as it is (`:0`). A key renamed to itself is left as it is (`+OK`, or `:0` from `RENAMENX`), as Redis.
/// A longer name is a larger key: [`Full`] (nothing renamed) if it would take the store past its cap.
fn rename<S: Store>(
    store: &mut S,
    from: &Bytes,
    to: &Bytes,
    nx: bool,
    now: Instant,
) -> Result<Value, Full> {
    store.atomically([from, to].into_iter(), |locked| {
        if !locked.with(from, |s| s.exists(from, now)) {
            return Ok(Value::error("ERR no such key"));
        }
        if nx && locked.with(to, |s| s.exists(to, now)) {
            return Ok(Value::Integer(0));
        }
        if from != to {
            // `to` grows by what `from` gives back (its deadline goes with it): at most the difference of the
            // names.
            let (len, dated) =
                locked.with(from, |s| (s.size(from, now), s.has_deadline(from, now)));
            let bound = locked
                .with(to, |s| s.growth(to, len, dated))
                .saturating_sub(cost(from.len(), len, dated));
            locked.prepaid(bound, |locked| {
                if let Some((value, deadline)) = locked.with(from, |s| s.take(from, now)) {
                    // On reserved room: never refused.
                    let _ = locked.with(to, |s| s.restore(to, value, deadline, now));
                }
            })?;
        }
        Ok(match nx {
            true => Value::Integer(1),
            false => Value::Simple(Bytes::from_static(b"OK")),
        })
    })
}

/// The wall clock at `now`, as Unix milliseconds ([`unix_us`]).
pub(super) fn unix_ms(now: Instant) -> i64 {
    unix_us(now) / 1000
}

/// The wall clock at `now` (the instant the connection's model read the request), as Unix microseconds: the
/// wall clock read once per process, moved by the monotonic clock since. Every time a command reads or writes
/// (`EXAT`, `EXPIRETIME`, `TIME`) is then a function of `now`, as the key space's deadlines are, so a session
/// given the same instants answers the same (tests, fuzzing); a step of the system clock after start is not
/// followed.
pub(super) fn unix_us(now: Instant) -> i64 {
    static ANCHOR: std::sync::OnceLock<(Instant, i64)> = std::sync::OnceLock::new();
    let &(at, unix) = ANCHOR.get_or_init(|| {
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        (Instant::now(), unix)
    });
    let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    match now.checked_duration_since(at) {
        Some(after) => unix.saturating_add(micros(after)),
        None => unix.saturating_sub(micros(at - now)),
    }
}

/// The unit of an expire time argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// `EX`, `SETEX`, `EXPIRE`: seconds from now.
    Seconds,
    /// `PX`, `PSETEX`, `PEXPIRE`: milliseconds from now.
    Millis,
    /// `EXAT`: a Unix time in seconds.
    UnixSeconds,
    /// `PXAT`: a Unix time in milliseconds.
    UnixMillis,
}

/// `SET`'s options after the key and value, in Redis's grammar: `ERR syntax error` for a conflict (`NX XX`,
/// two expire times, `KEEPTTL` with one), a missing time or an unknown word.
pub(super) fn set_options(words: &[Bytes], now: Instant) -> Result<SetOptions, Value> {
    let mut o = SetOptions::default();
    let mut expire: Option<(Unit, &Bytes)> = None;
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
        let unit = if is("EX") {
            Some(Unit::Seconds)
        } else if is("PX") {
            Some(Unit::Millis)
        } else if is("EXAT") {
            Some(Unit::UnixSeconds)
        } else if is("PXAT") {
            Some(Unit::UnixMillis)
        } else {
            None
        };
        if is("NX") && !o.only_if_present {
            o.only_if_missing = true;
        } else if is("XX") && !o.only_if_missing {
            o.only_if_present = true;
        } else if is("GET") {
            o.get = true;
        } else if is("KEEPTTL") && expire.is_none() {
            o.keep_ttl = true;
        } else if let (Some(unit), None, false, Some(time)) =
            (unit, expire, o.keep_ttl, words.get(i + 1))
        {
            expire = Some((unit, time));
            i += 1;
        } else {
            return Err(Value::error("ERR syntax error"));
        }
        i += 1;
    }
    if let Some((unit, time)) = expire {
        o.deadline = Some(deadline(time, unit, now, "set")?);
    }
    Ok(o)
}

/// The deadline an expire time argument of `SET`/`SETEX`/`PSETEX` (`command`) gives: Redis's
/// `ERR value is not an integer or out of range` for a non-integer, `ERR invalid expire time in '<command>'
/// command` for zero, a negative time or one past what a deadline can hold.
pub(super) fn deadline(
    time: &[u8],
    unit: Unit,
    now: Instant,
    command: &str,
) -> Result<Instant, Value> {
    let n = parse_i64(time).ok_or_else(|| Value::error(IncrError::NotAnInteger.reply()))?;
    let invalid = || Value::error(format!("ERR invalid expire time in '{command}' command"));
    if n <= 0 {
        return Err(invalid());
    }
    at(n, unit, now).ok_or_else(invalid)
}

/// The instant `n` (in `unit`, not checked for sign) stands for; `None` past what an [`Instant`] holds, or when
/// a relative time would put the Unix time in milliseconds past `i64::MAX` (Redis's own bound: `SET k v PX
/// 9223372036854775807` is an invalid expire time there). A time at or before `now` (an `EXAT` in the past) is
/// `now` or earlier: expired.
pub(super) fn at(n: i64, unit: Unit, now: Instant) -> Option<Instant> {
    let ms = match unit {
        Unit::Seconds | Unit::UnixSeconds => n.checked_mul(1000)?,
        Unit::Millis | Unit::UnixMillis => n,
    };
    let wall = i128::from(unix_ms(now));
    let from_now = match unit {
        Unit::Seconds | Unit::Millis => {
            if i128::from(ms) + wall > i128::from(i64::MAX) {
                return None;
            }
            i128::from(ms)
        }
        Unit::UnixSeconds | Unit::UnixMillis => i128::from(ms) - wall,
    };
    if from_now <= 0 {
        return Some(now);
    }
    now.checked_add(Duration::from_millis(u64::try_from(from_now).ok()?))
}

/// `EXPIRE key seconds [NX|XX|GT|LT]`, `PEXPIRE key ms […]`, `EXPIREAT key unix-seconds […]`, `PEXPIREAT key
/// unix-ms […]`: `:1` if the deadline was set (a time not in the
/// future deletes the key, as Redis does), `:0` if the key is missing or the condition did not hold.
pub(super) fn expire<S: Store>(store: &mut S, cmd: Cmd, args: &[Bytes], now: Instant) -> Value {
    let (unit, name) = match cmd {
        Cmd::Expire => (Unit::Seconds, "expire"),
        Cmd::ExpireAt => (Unit::UnixSeconds, "expireat"),
        Cmd::PExpireAt => (Unit::UnixMillis, "pexpireat"),
        _ => (Unit::Millis, "pexpire"),
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for w in &args[3..] {
        let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
        if is("NX") {
            nx = true;
        } else if is("XX") {
            xx = true;
        } else if is("GT") {
            gt = true;
        } else if is("LT") {
            lt = true;
        } else {
            return Value::error(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(&w[..w.len().min(QUOTE_MAX)])
            ));
        }
    }
    if nx && (xx || gt || lt) {
        return Value::error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Value::error("ERR GT and LT options at the same time are not compatible");
    }
    let condition = if nx {
        ExpireIf::NoDeadline
    } else if xx {
        ExpireIf::HasDeadline
    } else if gt {
        ExpireIf::Later
    } else if lt {
        ExpireIf::Earlier
    } else {
        ExpireIf::Always
    };
    let Some(n) = parse_i64(&args[2]) else {
        return Value::error(IncrError::NotAnInteger.reply());
    };
    let Some(when) = at(n, unit, now) else {
        return Value::error(format!("ERR invalid expire time in '{name}' command"));
    };
    Value::Integer(i64::from(
        store.with(&args[1], |s| s.expire(&args[1], when, condition, now)),
    ))
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]` (`words` after the name): `[next cursor, [keys]]`, with
/// Redis's errors (`ERR invalid cursor`, `ERR syntax error`, a non-integer `COUNT`). The cursor is the next
/// shard to read; one past the last (anything from `SHARDS` on) is an iteration that is over. `TYPE t` keeps
/// the keys holding that kind of value (`string`, `list`, `set`, `hash`, `zset`; any other name none, as Redis
/// 7.0 does).
pub(super) fn scan<S: Store>(store: &mut S, words: &[Bytes], now: Instant) -> Value {
    // As Redis's `strtoul`: a negative number is taken, wrapped (past every shard: the iteration is over).
    let Some(cursor) = std::str::from_utf8(&words[0]).ok().and_then(|c| {
        c.parse::<u64>()
            .ok()
            .or_else(|| c.parse::<i64>().ok().map(|v| v as u64))
    }) else {
        return Value::error("ERR invalid cursor");
    };
    let (mut pattern, mut count, mut kind) = (&b"*"[..], 10usize, None);
    for pair in words[1..].chunks(2) {
        let [option, value] = pair else {
            return Value::error("ERR syntax error");
        };
        if option.eq_ignore_ascii_case(b"MATCH") {
            pattern = value;
        } else if option.eq_ignore_ascii_case(b"COUNT") {
            match parse_i64(value) {
                Some(n) if n >= 1 => count = n as usize,
                Some(_) => return Value::error("ERR syntax error"),
                None => return Value::error(IncrError::NotAnInteger.reply()),
            }
        } else if option.eq_ignore_ascii_case(b"TYPE") {
            kind = Some(value);
        } else {
            return Value::error("ERR syntax error");
        }
    }
    let (next, keys) = match usize::try_from(cursor) {
        Ok(c) if c < crate::store::SHARDS => store.scan(c, pattern, count, now),
        _ => (0, Vec::new()),
    };
    let keys = keys
        .into_iter()
        .filter(|k| {
            kind.is_none_or(|want| {
                store
                    .with(k, |s| s.kind(k, now))
                    .is_some_and(|have| want.eq_ignore_ascii_case(have.name().as_bytes()))
            })
        })
        .map(Value::Bulk)
        .collect();
    Value::Array(vec![
        Value::Bulk(Bytes::from(next.to_string())),
        Value::Array(keys),
    ])
}
