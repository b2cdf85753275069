//! `resp`: a Redis RESP2 subset on an in-memory map shared by every connection (per worker process under
//! `--model processes`):
//!
//! - strings: `GET key`, `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]`, `SETNX`, `SETEX`,
//!   `PSETEX`, `GETDEL`, `GETEX key [EX s|PX ms|EXAT t|PXAT t|PERSIST]`, `MGET key…`, `MSET key value…`,
//!   `MSETNX key value…`, `DEL key…`, `EXISTS key…`, `INCR`, `DECR`, `INCRBY key n`, `DECRBY key n` (redis-py's
//!   `incr` sends `INCRBY`); a command on several keys is atomic, as in Redis (`Store::atomically`);
//! - expiry: `EXPIRE key s [NX|XX|GT|LT]`, `PEXPIRE key ms […]`, `EXPIREAT key unix-s […]`, `PEXPIREAT key
//!   unix-ms […]`, `TTL`, `PTTL`, `PERSIST` (the store: `crate::store`);
//! - transactions: `MULTI`, `EXEC`, `DISCARD`, `WATCH key…`, `UNWATCH` (below);
//! - keys: `TYPE`, `STRLEN`, `KEYS pattern`, `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]` (a cursor is a shard
//!   index: each call reads whole shards, so every key there for the whole iteration is returned once);
//! - `DBSIZE`, `FLUSHDB [ASYNC|SYNC]`, `FLUSHALL […]` (what test suites run between tests), `INFO [section…]`
//!   (the fields clients and monitors read: ioredis's ready check wants `loading:0`), `CLIENT ID|GETNAME|SETNAME|
//!   SETINFO` (what clients send when they open a connection);
//! - `PING [msg]`, `ECHO msg`, `SELECT 0` (one key space), `CONFIG GET` (an empty list, so redis-benchmark starts), `HELLO` (RESP2
//!   only: `HELLO 3` gets `-NOPROTO`, on which redis-py and redis-rs stay on RESP2), `QUIT`.
//!
//! Anything else gets Redis's `-ERR unknown command …` and the connection goes on; a wrong argument count gets
//! `-ERR wrong number of arguments for '…' command` (Redis's arity table, `Cmd::arity`).
//!
//! **Transactions**, as Redis: after `MULTI` each command is checked (name, arity) and queued (`+QUEUED`); one
//! that fails the check gets its error and `EXEC` then answers `-EXECABORT`. `EXEC` runs the queue holding every
//! shard of the store locked (`Db::lock_all`), so no other connection's command interleaves with it, and
//! replies with the array of the replies, written a part at a time (`Body::Seq`): large values stay shared with
//! the key space, not copied. The queue is bounded by `--max-multi-commands` and `--max-multi-bytes`, and counted
//! in `--memory-budget`: over any of them the transaction is discarded, the command gets an error, the commands
//! after it until `EXEC`/`DISCARD` get the same error, and `EXEC` answers `-EXECABORT`. `WATCH` is per key, as
//! in Redis: `EXEC` answers a null array if a watched key was set, deleted, or expired since (the store counts
//! the changes of watched keys: `crate::store`); the watched keys count against `--max-multi-bytes` too.
//!
//! A request the codec refuses (`*20000000`, `$2000000000`, negative or non-numeric lengths, a desync) gets
//! `-ERR Protocol error: <Redis's wording>` and the connection closes, as Redis does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use sockpool::codec::resp::{protocol_error_reply, Limits as RespLimits, ServerCodec, Value};
use sockpool::codec::CodecError;

use super::body::{Body, WRITE_AT_ONCE};
use crate::session::{Next, Session};
use crate::shared::Shared;
use crate::stats::Counter;
use crate::store::{
    parse_i64, Change, ExpireIf, IncrError, Locked, SetOptions, Store, Ttl, Watched,
};

/// What a client over `max_connections` gets, then close (Redis's own words).
pub const REFUSAL: &[u8] = b"-ERR max number of clients reached\r\n";
/// What a large request gets while the server is over its memory budget.
pub const BUSY: &[u8] = b"-BUSY server memory budget exceeded, try again later\r\n";

/// One RESP connection.
#[derive(Debug)]
pub struct RespSession {
    pub(super) shared: Arc<Shared>,
    codec: ServerCodec,
    /// The rest of a large bulk reply (GET of a large value, ECHO of a large argument, EXEC's replies), written a
    /// high-water mark at a time.
    body: Option<Body>,
    /// `MULTI`, `WATCH` and `CLIENT` state.
    tx: Tx,
}

impl RespSession {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let l = &shared.config.limits;
        let codec = ServerCodec::new(
            RespLimits::new()
                .with_max_bulk(l.max_bulk)
                .with_max_multibulk(l.max_multibulk)
                .with_max_inline(l.max_inline),
        );
        RespSession {
            shared,
            codec,
            body: None,
            tx: Tx::default(),
        }
    }
}

impl Drop for RespSession {
    fn drop(&mut self) {
        // A connection closed in the middle of a transaction: its queue leaves the memory budget, and the keys
        // it watched are let go.
        if let Some(multi) = self.tx.multi.take() {
            self.shared.account(multi.bytes, 0);
        }
        self.tx.unwatch_all(&self.shared);
    }
}

/// A connection's state between commands: its transaction, watched keys and client name.
#[derive(Debug, Default)]
struct Tx {
    /// `CLIENT SETNAME`'s name and `CLIENT ID`'s number (given at the first `CLIENT ID`).
    client: ClientInfo,
    /// The open transaction, between `MULTI` and `EXEC`/`DISCARD`.
    multi: Option<Multi>,
    /// Each `WATCH`ed key (once, however often it was watched) and what `WATCH` saw of it.
    watched: HashMap<Bytes, Watched>,
    /// What `watched` costs ([`watch_cost`]): with the queue's bytes, bounded by `max_multi_bytes`, and counted
    /// in the memory budget.
    watch_bytes: usize,
    /// A `WATCH` was refused over that bound: the next `EXEC` aborts (null array), since a client that went on
    /// past the error would otherwise run its transaction unguarded.
    watch_refused: bool,
}

/// What watching `key` costs the server: the key twice (the connection's and the store's copy) and two map
/// entries.
fn watch_cost(key: &[u8]) -> usize {
    2 * (key.len() + 48)
}

/// An open transaction.
#[derive(Debug, Default)]
struct Multi {
    /// The commands queued, in order, their arguments copied out of the read buffer.
    queue: Vec<Queued>,
    /// What `queue` costs ([`queued_cost`]): counted against `max_multi_bytes` and in the memory budget.
    bytes: usize,
    /// Why `EXEC` will refuse, if it will.
    aborted: Option<Aborted>,
}

/// Why a transaction can no longer run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aborted {
    /// A command was refused when queued (unknown, wrong arity): later ones are answered `+QUEUED` but not
    /// kept, and `EXEC` answers `-EXECABORT`, as Redis does.
    Refused,
    /// The queue went over its limit and was dropped: later commands get [`TX_TOO_LARGE`] until `EXEC`
    /// (`-EXECABORT`) or `DISCARD`.
    TooLarge,
}

/// One queued command.
#[derive(Debug)]
struct Queued {
    cmd: Cmd,
    /// The arguments, the name first (slices of one copy).
    args: Vec<Bytes>,
}

/// What a queued command costs beyond its argument bytes: the queue entry, and a handle per argument.
fn queued_cost(args: &[Bytes]) -> usize {
    const ENTRY: usize = std::mem::size_of::<Queued>() + 16;
    const ARG: usize = std::mem::size_of::<Bytes>();
    ENTRY + args.iter().map(|a| a.len() + ARG).sum::<usize>()
}

/// The replies that need no building, encoded once (Redis keeps the same as shared objects).
const PONG: &[u8] = b"+PONG\r\n";
const OK: &[u8] = b"+OK\r\n";
const QUEUED: &[u8] = b"+QUEUED\r\n";
const NULL: &[u8] = b"$-1\r\n";
/// What a `WATCH` gets over `--max-multi-bytes` or the memory budget.
const TOO_MANY_WATCHED: &[u8] = b"-ERR too many keys watched: over the server's limit \
(--max-multi-bytes or --memory-budget); the next EXEC will abort\r\n";
const NULL_ARRAY: &[u8] = b"*-1\r\n";
const EXECABORT: &[u8] = b"-EXECABORT Transaction discarded because of previous errors.\r\n";
/// What a command gets when it would take a transaction's queue over `--max-multi-commands`,
/// `--max-multi-bytes` or the memory budget, and every command after it until `EXEC` or `DISCARD`.
pub const TX_TOO_LARGE: &[u8] =
    b"-ERR transaction discarded: its queued commands went over the server's \
limit (--max-multi-commands, --max-multi-bytes or --memory-budget)\r\n";

/// Replies inside an EXEC array that are bulk strings longer than this stay shared (not copied) until written:
/// N GETs of one large value cost N handles, not N copies.
const EXEC_AT_ONCE: usize = 64;

/// The commands served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Ping,
    Get,
    Set,
    Incr,
    Decr,
    IncrBy,
    DecrBy,
    MGet,
    MSet,
    Del,
    Exists,
    Echo,
    SetNx,
    SetEx,
    PSetEx,
    Expire,
    PExpire,
    Ttl,
    PTtl,
    Persist,
    ExpireAt,
    PExpireAt,
    GetEx,
    GetDel,
    MSetNx,
    DbSize,
    FlushDb,
    FlushAll,
    Info,
    Client,
    Type,
    StrLen,
    Keys,
    Scan,
    Select,
    Config,
    Hello,
    Quit,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
}

/// Every command by name, the hot ones first.
const COMMANDS: &[(&str, Cmd)] = &[
    ("PING", Cmd::Ping),
    ("GET", Cmd::Get),
    ("SET", Cmd::Set),
    ("INCR", Cmd::Incr),
    ("DECR", Cmd::Decr),
    ("INCRBY", Cmd::IncrBy),
    ("DECRBY", Cmd::DecrBy),
    ("MGET", Cmd::MGet),
    ("MSET", Cmd::MSet),
    ("DEL", Cmd::Del),
    ("EXISTS", Cmd::Exists),
    ("ECHO", Cmd::Echo),
    ("SETNX", Cmd::SetNx),
    ("SETEX", Cmd::SetEx),
    ("PSETEX", Cmd::PSetEx),
    ("EXPIRE", Cmd::Expire),
    ("PEXPIRE", Cmd::PExpire),
    ("TTL", Cmd::Ttl),
    ("PTTL", Cmd::PTtl),
    ("PERSIST", Cmd::Persist),
    ("EXPIREAT", Cmd::ExpireAt),
    ("PEXPIREAT", Cmd::PExpireAt),
    ("GETEX", Cmd::GetEx),
    ("GETDEL", Cmd::GetDel),
    ("MSETNX", Cmd::MSetNx),
    ("DBSIZE", Cmd::DbSize),
    ("FLUSHDB", Cmd::FlushDb),
    ("FLUSHALL", Cmd::FlushAll),
    ("INFO", Cmd::Info),
    ("CLIENT", Cmd::Client),
    ("TYPE", Cmd::Type),
    ("STRLEN", Cmd::StrLen),
    ("KEYS", Cmd::Keys),
    ("SCAN", Cmd::Scan),
    ("SELECT", Cmd::Select),
    ("CONFIG", Cmd::Config),
    ("HELLO", Cmd::Hello),
    ("QUIT", Cmd::Quit),
    ("MULTI", Cmd::Multi),
    ("EXEC", Cmd::Exec),
    ("DISCARD", Cmd::Discard),
    ("WATCH", Cmd::Watch),
    ("UNWATCH", Cmd::Unwatch),
];

impl Cmd {
    /// The command named `name` (any case).
    fn lookup(name: &[u8]) -> Option<Cmd> {
        COMMANDS
            .iter()
            .find(|(n, _)| n.len() == name.len() && name.eq_ignore_ascii_case(n.as_bytes()))
            .map(|&(_, c)| c)
    }

    /// Redis's arity: `n` > 0, exactly `n` arguments (the name included); `n` < 0, at least `-n`.
    fn arity(self) -> i32 {
        use Cmd::*;
        match self {
            Ping | Quit | Hello | FlushDb | FlushAll | Info => -1,
            Get | GetDel | Incr | Decr | Echo | Ttl | PTtl | Persist | Select | Type | StrLen
            | Keys => 2,
            Set | MSet | MSetNx | Expire | PExpire | ExpireAt | PExpireAt => -3,
            IncrBy | DecrBy | SetNx => 3,
            MGet | GetEx | Del | Exists | Config | Watch | Client | Scan => -2,
            SetEx | PSetEx => 4,
            Multi | Exec | Discard | Unwatch | DbSize => 1,
        }
    }

    /// True if `argc` arguments fit [`Cmd::arity`].
    fn arity_ok(self, argc: usize) -> bool {
        let a = self.arity();
        if a > 0 {
            argc == a as usize
        } else {
            argc >= a.unsigned_abs() as usize
        }
    }
}

/// Where a command's reply goes.
struct Out<'a> {
    /// Small replies, encoded.
    buf: &'a mut BytesMut,
    /// A reply body to write a part at a time (its header already in `buf`).
    body: &'a mut Option<Body>,
    /// Bulk replies longer than this go to `body`, shared, rather than copied into `buf`.
    at_once: usize,
}

/// Handles one decoded request: transaction control, queueing inside `MULTI`, or the command itself. False
/// when the connection should close after the reply (QUIT).
fn request(
    shared: &Shared,
    tx: &mut Tx,
    args: &[Bytes],
    output: &mut BytesMut,
    body: &mut Option<Body>,
    now: Instant,
) -> bool {
    let Some(name) = args.first() else {
        return true;
    };
    let Some(cmd) = Cmd::lookup(name) else {
        tx.refuse();
        unknown(args).encode_to(output);
        return true;
    };
    if !cmd.arity_ok(args.len()) {
        tx.refuse();
        arity(name).encode_to(output);
        return true;
    }
    match cmd {
        Cmd::Quit => {
            output.extend_from_slice(OK);
            return false;
        }
        Cmd::Multi if tx.multi.is_some() => {
            Value::error("ERR MULTI calls can not be nested").encode_to(output)
        }
        Cmd::Multi => {
            tx.multi = Some(Multi::default());
            output.extend_from_slice(OK);
        }
        Cmd::Exec => exec(shared, tx, output, body, now),
        Cmd::Discard => match tx.multi.take() {
            Some(multi) => {
                shared.account(multi.bytes, 0);
                tx.unwatch_all(shared);
                output.extend_from_slice(OK);
            }
            None => Value::error("ERR DISCARD without MULTI").encode_to(output),
        },
        Cmd::Watch if tx.multi.is_some() => {
            Value::error("ERR WATCH inside MULTI is not allowed").encode_to(output)
        }
        Cmd::Watch => match tx.watch(shared, &args[1..], now) {
            true => output.extend_from_slice(OK),
            false => output.extend_from_slice(TOO_MANY_WATCHED),
        },
        _ if tx.multi.is_some() => queue(shared, tx, cmd, args, output),
        Cmd::Client => client(&mut tx.client, args).encode_to(output),
        Cmd::Unwatch => {
            tx.unwatch_all(shared);
            output.extend_from_slice(OK);
        }
        _ => command(
            shared,
            &mut &shared.db,
            cmd,
            args,
            now,
            &mut Out {
                buf: output,
                body,
                at_once: WRITE_AT_ONCE,
            },
        ),
    }
    true
}

impl Tx {
    /// `WATCH keys` at `now`; false if watching them would take the connection's watched keys and queue over
    /// `max_multi_bytes`, or the server over its memory budget (the keys before that one are watched; the next
    /// `EXEC` aborts).
    fn watch(&mut self, shared: &Shared, keys: &[Bytes], now: Instant) -> bool {
        let limit = shared.config.limits.max_multi_bytes;
        let queued = self.multi.as_ref().map_or(0, |m| m.bytes);
        for key in keys {
            if self.watched.contains_key(key) {
                continue;
            }
            let cost = watch_cost(key);
            if self.watch_bytes + queued + cost > limit || shared.over_budget() {
                self.watch_refused = true;
                return false;
            }
            let seen = shared.db.watch(key, now);
            self.watched.insert(Bytes::copy_from_slice(key), seen);
            self.watch_bytes += cost;
            shared.account(0, cost);
        }
        true
    }

    /// Lets go of every watched key (`UNWATCH`, `DISCARD`, a closed connection).
    fn unwatch_all(&mut self, shared: &Shared) {
        for key in self.watched.keys() {
            shared.db.unwatch(key);
        }
        self.forget_watched(shared);
    }

    /// Forgets the watched keys, whose watchers the store already let go of.
    fn forget_watched(&mut self, shared: &Shared) {
        self.watched.clear();
        shared.account(std::mem::take(&mut self.watch_bytes), 0);
        self.watch_refused = false;
    }

    /// A command was refused (unknown, wrong arity): inside `MULTI`, `EXEC` will answer `-EXECABORT`.
    fn refuse(&mut self) {
        if let Some(multi) = &mut self.multi {
            multi.aborted.get_or_insert(Aborted::Refused);
        }
    }
}

/// Queues `args` in the open transaction, or refuses it over the limits (the transaction is then dropped).
fn queue(shared: &Shared, tx: &mut Tx, cmd: Cmd, args: &[Bytes], output: &mut BytesMut) {
    let watched = tx.watch_bytes;
    let Some(multi) = &mut tx.multi else {
        return;
    };
    match multi.aborted {
        // EXEC will refuse anyway: nothing to keep.
        Some(Aborted::Refused) => return output.extend_from_slice(QUEUED),
        Some(Aborted::TooLarge) => return output.extend_from_slice(TX_TOO_LARGE),
        None => {}
    }
    let cost = queued_cost(args);
    let limits = &shared.config.limits;
    if multi.queue.len() >= limits.max_multi_commands
        || watched + multi.bytes + cost > limits.max_multi_bytes
        || shared.over_budget()
    {
        shared.account(multi.bytes, 0);
        *multi = Multi {
            aborted: Some(Aborted::TooLarge),
            ..Multi::default()
        };
        return output.extend_from_slice(TX_TOO_LARGE);
    }
    // One copy of the arguments (they share the read buffer, which is read into again), sliced.
    let mut copy = BytesMut::with_capacity(args.iter().map(Bytes::len).sum());
    for a in args {
        copy.extend_from_slice(a);
    }
    let mut copy = copy.freeze();
    let args = args.iter().map(|a| copy.split_to(a.len())).collect();
    multi.queue.push(Queued { cmd, args });
    multi.bytes += cost;
    shared.account(0, cost);
    output.extend_from_slice(QUEUED);
}

/// `EXEC`: runs the queue with every shard locked; the array of replies goes out a part at a time.
fn exec(
    shared: &Shared,
    tx: &mut Tx,
    output: &mut BytesMut,
    body: &mut Option<Body>,
    now: Instant,
) {
    let Some(multi) = tx.multi.take() else {
        return Value::error("ERR EXEC without MULTI").encode_to(output);
    };
    shared.account(multi.bytes, 0);
    if multi.aborted.is_some() {
        tx.unwatch_all(shared);
        return output.extend_from_slice(EXECABORT);
    }
    let mut all = shared.db.lock_all();
    let changed = tx.watch_refused
        || tx
            .watched
            .iter()
            .any(|(key, &seen)| all.changed_since(key, seen, now));
    for key in tx.watched.keys() {
        all.unwatch(key);
    }
    tx.forget_watched(shared);
    if changed {
        return output.extend_from_slice(NULL_ARRAY);
    }
    let mut parts = Vec::new();
    let mut small = BytesMut::new();
    for q in &multi.queue {
        let mut part = None;
        if q.cmd == Cmd::Client {
            client(&mut tx.client, &q.args).encode_to(&mut small);
            continue;
        }
        command(
            shared,
            &mut all,
            q.cmd,
            &q.args,
            now,
            &mut Out {
                buf: &mut small,
                body: &mut part,
                at_once: EXEC_AT_ONCE,
            },
        );
        if let Some(part) = part {
            if !small.is_empty() {
                parts.push(Body::Bytes(small.split().freeze(), b""));
            }
            parts.push(part);
        }
    }
    drop(all);
    output.put_u8(b'*');
    output.extend_from_slice(itoa::Buffer::new().format(multi.queue.len()).as_bytes());
    output.extend_from_slice(b"\r\n");
    // Small replies that fit under the mark go out at once; the rest a part at a time.
    if parts.is_empty() && output.len() + small.len() <= shared.config.limits.write_high_water {
        output.extend_from_slice(&small);
        return;
    }
    if !small.is_empty() {
        parts.push(Body::Bytes(small.freeze(), b""));
    }
    *body = Some(Body::Seq(parts.into_iter()));
}

/// Runs one command on `store` (the [`crate::store::Db`], a shard lock per key, or every shard locked for `EXEC`), its reply
/// into `out`. Transaction control never comes here.
fn command<S: Store>(
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
            Some(v) => Value::Bulk(v),
            None => return out.buf.extend_from_slice(NULL),
        },
        Cmd::Set => match set_options(&args[3..], now) {
            Ok(options) => {
                let done = store.with(&args[1], |s| s.set(&args[1], &args[2], options, now));
                match (done, options.get) {
                    (Ok(_), false) => return out.buf.extend_from_slice(OK),
                    (Err(_), false) | (Ok(None) | Err(None), true) => {
                        return out.buf.extend_from_slice(NULL)
                    }
                    (Ok(Some(old)) | Err(Some(old)), true) => Value::Bulk(old),
                }
            }
            Err(e) => e,
        },
        Cmd::SetNx => {
            let options = SetOptions {
                only_if_missing: true,
                ..SetOptions::default()
            };
            let done = store.with(&args[1], |s| s.set(&args[1], &args[2], options, now));
            Value::Integer(i64::from(done.is_ok()))
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
                    let _ = store.with(&args[1], |s| s.set(&args[1], &args[3], options, now));
                    return out.buf.extend_from_slice(OK);
                }
                Err(e) => e,
            }
        }
        Cmd::Incr => counter(store, &args[1], 1, now),
        Cmd::Decr => counter(store, &args[1], -1, now),
        Cmd::IncrBy | Cmd::DecrBy => match parse_i64(&args[2]) {
            Some(d) if cmd == Cmd::IncrBy => counter(store, &args[1], d, now),
            // DECRBY negates its argument: i64::MIN has none (Redis's words).
            Some(d) => d.checked_neg().map_or_else(
                || Value::error("ERR decrement would overflow"),
                |d| counter(store, &args[1], d, now),
            ),
            None => Value::error(IncrError::NotAnInteger.reply()),
        },
        Cmd::Del | Cmd::Exists => {
            let del = cmd == Cmd::Del;
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
                    .map(|k| locked.with(k, |s| s.get(k, now)))
                    .collect()
            });
            *out.body = Some(Body::Bulks(values.into_iter()));
            return;
        }
        Cmd::MSet | Cmd::MSetNx if argc % 2 == 0 => arity(&args[0]),
        Cmd::MSet => {
            mset(store, &args[1..], now);
            return out.buf.extend_from_slice(OK);
        }
        // All or none: `:1` if no key existed and all were set, `:0` (nothing set) otherwise.
        Cmd::MSetNx => Value::Integer(i64::from(msetnx(store, &args[1..], now))),
        Cmd::GetDel => match store.with(&args[1], |s| s.get_del(&args[1], now)) {
            Some(v) => Value::Bulk(v),
            None => return out.buf.extend_from_slice(NULL),
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
        Cmd::Config => config_get(args),
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
        Cmd::Type => match store.with(&args[1], |s| s.exists(&args[1], now)) {
            true => Value::Simple(Bytes::from_static(b"string")),
            false => Value::Simple(Bytes::from_static(b"none")),
        },
        Cmd::StrLen => Value::Integer(store.with(&args[1], |s| s.strlen(&args[1], now)) as i64),
        Cmd::Keys => {
            let keys = store.whole(|all| all.keys(&args[1], now));
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
        // Connection state: `request` and `exec` answer it with the connection's own.
        Cmd::Client => Value::error("ERR CLIENT is answered by the connection"),
        Cmd::Hello => hello(args),
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

/// `MSET key value …`: every pair set, atomically.
fn mset<S: Store>(store: &mut S, pairs: &[Bytes], now: Instant) {
    store.atomically(pairs.iter().step_by(2), |locked| {
        set_pairs(locked, pairs, now)
    });
}

/// `MSETNX key value …`: every pair set if none of the keys exists, none otherwise, atomically; true if set.
fn msetnx<S: Store>(store: &mut S, pairs: &[Bytes], now: Instant) -> bool {
    store.atomically(pairs.iter().step_by(2), |locked| {
        let keys = pairs.iter().step_by(2);
        if keys
            .into_iter()
            .any(|k| locked.with(k, |s| s.exists(k, now)))
        {
            return false;
        }
        set_pairs(locked, pairs, now);
        true
    })
}

/// Sets each `(key, value)` of `pairs` with no deadline, on shards already locked.
fn set_pairs(locked: &mut Locked<'_>, pairs: &[Bytes], now: Instant) {
    for pair in pairs.chunks_exact(2) {
        let _ = locked.with(&pair[0], |s| {
            s.set(&pair[0], &pair[1], SetOptions::default(), now)
        });
    }
}

/// `GETEX`'s options after the key, in Redis's grammar (one of `EX s`, `PX ms`, `EXAT t`, `PXAT t`,
/// `PERSIST`; anything else, or two of them, is `ERR syntax error`). The time is checked only once the key is
/// found, as Redis does (a missing key answers nil whatever the time says).
fn getex_options(words: &[Bytes]) -> Result<GetEx<'_>, Value> {
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
enum GetEx<'a> {
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
fn getex<S: Store>(store: &mut S, args: &[Bytes], now: Instant) -> Result<Option<Bytes>, Value> {
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
        Ok(s.get_ex(key, change, now))
    })
}

/// `INCR`, `DECR`, `INCRBY`, `DECRBY`: adds `delta` to the integer at `key`.
fn counter<S: Store>(store: &mut S, key: &[u8], delta: i64, now: Instant) -> Value {
    store
        .with(key, |s| s.incr_by(key, delta, now))
        .map_or_else(|e| Value::error(e.reply()), Value::Integer)
}

/// The unit of an expire time argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
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
fn set_options(words: &[Bytes], now: Instant) -> Result<SetOptions, Value> {
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
fn deadline(time: &[u8], unit: Unit, now: Instant, command: &str) -> Result<Instant, Value> {
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
fn at(n: i64, unit: Unit, now: Instant) -> Option<Instant> {
    let ms = match unit {
        Unit::Seconds | Unit::UnixSeconds => n.checked_mul(1000)?,
        Unit::Millis | Unit::UnixMillis => n,
    };
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i128);
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
fn expire<S: Store>(store: &mut S, cmd: Cmd, args: &[Bytes], now: Instant) -> Value {
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

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`, which redis-py and redis-rs send first to ask for RESP3:
/// this server speaks RESP2 only, so version 3 gets Redis's `-NOPROTO` (the client then stays on RESP2, as
/// against a Redis 5), and no version or 2 gets the server's description as Redis 6+ gives it in RESP2 (a flat
/// array of names and values). There are no users or passwords to check: `AUTH` is taken, as by a Redis whose
/// `default` user has none; `SETNAME` is taken and not kept.
fn hello(args: &[Bytes]) -> Value {
    if let Some(version) = args.get(1) {
        match parse_i64(version) {
            Some(2) => {}
            Some(_) => {
                return Value::error("NOPROTO sorry, this protocol version is not supported")
            }
            None => return Value::error("ERR Protocol version is not an integer or out of range"),
        }
        let mut rest = &args[2..];
        while let Some(option) = rest.first() {
            let takes = if option.eq_ignore_ascii_case(b"AUTH") {
                2
            } else if option.eq_ignore_ascii_case(b"SETNAME") {
                1
            } else {
                0
            };
            if takes == 0 || rest.len() <= takes {
                return Value::error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&option[..option.len().min(QUOTE_MAX)])
                ));
            }
            rest = &rest[takes + 1..];
        }
    }
    let text = |s: &'static str| Value::Bulk(Bytes::from_static(s.as_bytes()));
    Value::Array(vec![
        text("server"),
        text("sockpool"),
        text("version"),
        text(env!("CARGO_PKG_VERSION")),
        text("proto"),
        Value::Integer(2),
        text("mode"),
        text("standalone"),
        text("role"),
        text("master"),
        text("modules"),
        Value::Array(Vec::new()),
    ])
}

/// `CONFIG GET save|appendonly` as a persistence-free Redis answers them (redis-benchmark asks); every other
/// parameter is an empty list.
/// `INFO [section …]`: Redis's text of `field:value` lines under `# Section` headers, with the fields clients
/// and monitors read (ioredis checks `loading:0` before its first command; version checks read
/// `redis_version`, the Redis release whose replies this server's were compared with). No section, `default`,
/// `all` or `everything`: every section; an unknown one: nothing (as Redis).
fn info<S: Store>(shared: &Shared, store: &mut S, sections: &[Bytes]) -> Value {
    use std::fmt::Write;
    let wanted = |name: &str| {
        sections.is_empty()
            || sections.iter().any(|s| {
                s.eq_ignore_ascii_case(name.as_bytes())
                    || [&b"default"[..], b"all", b"everything"]
                        .iter()
                        .any(|all| s.eq_ignore_ascii_case(all))
            })
    };
    let stats = shared.stats.snapshot();
    let mut text = String::new();
    let mut section = |name: &str, title: &str, fields: &[(&str, String)]| {
        if wanted(name) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            let _ = write!(text, "# {title}\r\n");
            for (field, value) in fields {
                let _ = write!(text, "{field}:{value}\r\n");
            }
        }
    };
    section(
        "server",
        "Server",
        &[
            ("redis_version", INFO_REDIS_VERSION.to_string()),
            ("sockpool_version", env!("CARGO_PKG_VERSION").to_string()),
            ("redis_mode", "standalone".to_string()),
            ("os", std::env::consts::OS.to_string()),
            ("arch_bits", (usize::BITS).to_string()),
            ("process_id", std::process::id().to_string()),
        ],
    );
    section(
        "clients",
        "Clients",
        &[("connected_clients", stats.connections_open.to_string())],
    );
    section(
        "persistence",
        "Persistence",
        &[("loading", "0".into()), ("aof_enabled", "0".into())],
    );
    section(
        "stats",
        "Stats",
        &[
            (
                "total_connections_received",
                stats.connections_total.to_string(),
            ),
            ("total_commands_processed", stats.requests.to_string()),
            ("total_net_input_bytes", stats.bytes_in.to_string()),
            ("total_net_output_bytes", stats.bytes_out.to_string()),
            (
                "rejected_connections",
                stats.connections_refused.to_string(),
            ),
        ],
    );
    section(
        "replication",
        "Replication",
        &[("role", "master".into()), ("connected_slaves", "0".into())],
    );
    let keyspace = if wanted("keyspace") {
        let (keys, expires) = store.whole(|all| (all.len(), all.expiring()));
        match keys {
            0 => Vec::new(),
            _ => vec![("db0", format!("keys={keys},expires={expires},avg_ttl=0"))],
        }
    } else {
        Vec::new()
    };
    section("keyspace", "Keyspace", &keyspace);
    Value::Bulk(Bytes::from(text))
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]` (`words` after the name): `[next cursor, [keys]]`, with
/// Redis's errors (`ERR invalid cursor`, `ERR syntax error`, a non-integer `COUNT`). The cursor is the next
/// shard to read; one past the last (anything from `SHARDS` on) is an iteration that is over. Every value is a
/// string here, so `TYPE string` keeps every key and any other type none.
fn scan<S: Store>(store: &mut S, words: &[Bytes], now: Instant) -> Value {
    // As Redis's `strtoul`: a negative number is taken, wrapped (past every shard: the iteration is over).
    let Some(cursor) = std::str::from_utf8(&words[0]).ok().and_then(|c| {
        c.parse::<u64>()
            .ok()
            .or_else(|| c.parse::<i64>().ok().map(|v| v as u64))
    }) else {
        return Value::error("ERR invalid cursor");
    };
    let (mut pattern, mut count, mut strings) = (&b"*"[..], 10usize, true);
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
            strings = value.eq_ignore_ascii_case(b"string");
        } else {
            return Value::error("ERR syntax error");
        }
    }
    let (next, keys) = match usize::try_from(cursor) {
        Ok(c) if c < crate::store::SHARDS => store.scan(c, pattern, count, now),
        _ => (0, Vec::new()),
    };
    let keys = match strings {
        true => keys.into_iter().map(Value::Bulk).collect(),
        false => Vec::new(),
    };
    Value::Array(vec![
        Value::Bulk(Bytes::from(next.to_string())),
        Value::Array(keys),
    ])
}

/// A connection's `CLIENT` identity.
#[derive(Debug, Default)]
struct ClientInfo {
    /// `CLIENT ID`'s number, given at the first one (0: none yet).
    id: u64,
    /// `CLIENT SETNAME`'s name.
    name: Option<Bytes>,
}

/// The last `CLIENT ID` given in this process.
static CLIENT_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `CLIENT ID`, `CLIENT GETNAME`, `CLIENT SETNAME name` (an empty name clears it), `CLIENT SETINFO LIB-NAME|LIB-VER
/// value` (taken, not kept: what go-redis, Jedis and redis-py send on connecting), with Redis's errors; any other
/// subcommand gets `-ERR unknown subcommand`.
fn client(info: &mut ClientInfo, args: &[Bytes]) -> Value {
    let sub = &args[1];
    let is = |s: &str| sub.eq_ignore_ascii_case(s.as_bytes());
    let arity = |name: &str| {
        Value::error(format!(
            "ERR wrong number of arguments for 'client|{name}' command"
        ))
    };
    // What Redis takes in a client name or library field: printable ASCII but the space.
    let plain = |v: &[u8]| v.iter().all(|&b| (b'!'..=b'~').contains(&b));
    if is("ID") {
        if args.len() != 2 {
            return arity("id");
        }
        if info.id == 0 {
            info.id = CLIENT_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        }
        Value::Integer(info.id as i64)
    } else if is("GETNAME") {
        match (args.len(), &info.name) {
            (2, Some(name)) => Value::Bulk(name.clone()),
            (2, None) => Value::Null,
            _ => arity("getname"),
        }
    } else if is("SETNAME") {
        let [_, _, name] = args else {
            return arity("setname");
        };
        if !plain(name) {
            return Value::error(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            );
        }
        info.name = (!name.is_empty()).then(|| Bytes::copy_from_slice(&name[..]));
        Value::Simple("OK".into())
    } else if is("SETINFO") {
        let [_, _, field, value] = args else {
            return arity("setinfo");
        };
        let known = ["LIB-NAME", "LIB-VER"]
            .iter()
            .find(|f| field.eq_ignore_ascii_case(f.as_bytes()));
        match known {
            Some(_) if plain(value) => Value::Simple("OK".into()),
            Some(f) => Value::error(format!(
                "ERR {} cannot contain spaces, newlines or special characters.",
                f.to_lowercase()
            )),
            None => Value::error(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&field[..field.len().min(QUOTE_MAX)])
            )),
        }
    } else {
        Value::error(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&sub[..sub.len().min(QUOTE_MAX)])
        ))
    }
}

/// The `redis_version` `INFO` reports: the Redis release this server's replies were compared with (a
/// differential run through redis-cli and redis-py against redis-server 7.0.15), for clients that check it.
const INFO_REDIS_VERSION: &str = "7.0.15";

fn config_get(args: &[Bytes]) -> Value {
    let param = match args {
        [_, get, param] if get.eq_ignore_ascii_case(b"GET") => param,
        [_, get] if get.eq_ignore_ascii_case(b"GET") => {
            return Value::error("ERR wrong number of arguments for 'config|get' command")
        }
        _ => return Value::Array(Vec::new()),
    };
    let value: &'static [u8] = if param.eq_ignore_ascii_case(b"save") {
        b""
    } else if param.eq_ignore_ascii_case(b"appendonly") {
        b"no"
    } else {
        return Value::Array(Vec::new());
    };
    Value::Array(vec![
        Value::Bulk(param.clone()),
        Value::Bulk(Bytes::from_static(value)),
    ])
}

fn arity(name: &[u8]) -> Value {
    Value::error(format!(
        "ERR wrong number of arguments for '{}' command",
        String::from_utf8_lossy(name).to_lowercase()
    ))
}

/// How much of a client's input an error reply quotes, as Redis does (`%.128s` for the command name, and
/// the arguments while their quoted text is under 128 bytes).
const QUOTE_MAX: usize = 128;

/// Redis 7's wording: `ERR unknown command 'FOO', with args beginning with: 'a' 'b' `.
///
/// Quotes at most [`QUOTE_MAX`] bytes of the name and of the arguments, as Redis does: the reply to a
/// command of 16 MiB arguments is a few hundred bytes, not a copy of them.
fn unknown(args: &[Bytes]) -> Value {
    let name = &args[0][..args[0].len().min(QUOTE_MAX)];
    let mut quoted = Vec::with_capacity(QUOTE_MAX + 3);
    for a in &args[1..] {
        if quoted.len() >= QUOTE_MAX {
            break;
        }
        let room = QUOTE_MAX - quoted.len();
        quoted.push(b'\'');
        quoted.extend_from_slice(&a[..a.len().min(room)]);
        quoted.extend_from_slice(b"' ");
    }
    Value::error(format!(
        "ERR unknown command '{}', with args beginning with: {}",
        String::from_utf8_lossy(name),
        String::from_utf8_lossy(&quoted)
    ))
}

impl Session for RespSession {
    fn in_progress(&self) -> bool {
        self.codec.in_progress()
    }

    fn on_input(&mut self, input: &mut BytesMut, output: &mut BytesMut, now: Instant) -> Next {
        let mut answered = 0u64;
        let high_water = self.shared.config.limits.write_high_water;
        let next = loop {
            if let Some(body) = self.body.take() {
                self.body = body.write(output, high_water);
                if self.body.is_some() {
                    break Next::Flush;
                }
            }
            if output.len() >= high_water {
                break Next::Flush;
            }
            match self.codec.decode_command(input) {
                Ok(Some(args)) => {
                    answered += 1;
                    let go_on = request(
                        &self.shared,
                        &mut self.tx,
                        args,
                        output,
                        &mut self.body,
                        now,
                    );
                    // The arguments share the input's buffer: drop them before it is read into again.
                    self.codec.clear();
                    if !go_on {
                        break Next::Close;
                    }
                }
                Ok(None) => break Next::Continue,
                Err(e) => {
                    match e {
                        CodecError::TooLarge { .. } => {
                            self.shared.stats.inc(Counter::ErrorsTooLarge)
                        }
                        _ => self.shared.stats.inc(Counter::ErrorsProtocol),
                    }
                    if let Some(reply) = protocol_error_reply(&e) {
                        reply.encode_to(output);
                    }
                    break Next::Close;
                }
            }
        };
        if answered > 0 {
            self.shared.stats.add(Counter::Requests, answered);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Limits, ServerConfig};

    /// A session on a server of its own with `limits`.
    fn session(limits: Limits) -> RespSession {
        let config = ServerConfig {
            limits,
            ..ServerConfig::default()
        };
        RespSession::new(Arc::new(Shared::new(
            config,
            Default::default(),
            Default::default(),
            None,
        )))
    }

    /// A second connection to `s`'s server.
    fn other(s: &RespSession) -> RespSession {
        RespSession::new(s.shared.clone())
    }

    /// Sends `send` at `now` and plays the model: drains the output at every `Flush`. The replies, and the most
    /// output the session held at once.
    fn talk_at(s: &mut RespSession, send: &[u8], now: Instant) -> (Vec<u8>, usize) {
        let mut input = BytesMut::from(send);
        let (mut wire, mut most) = (Vec::new(), 0);
        loop {
            let mut output = BytesMut::new();
            let next = s.on_input(&mut input, &mut output, now);
            most = most.max(output.len());
            wire.extend_from_slice(&output);
            if next != Next::Flush {
                return (wire, most);
            }
        }
    }

    /// The replies to `send`, as text.
    fn talk(s: &mut RespSession, send: &str) -> String {
        String::from_utf8(talk_at(s, send.as_bytes(), Instant::now()).0).unwrap()
    }

    /// redis-py and redis-rs open with `HELLO 3`: this RESP2 server answers Redis's `-NOPROTO`, on which they
    /// stay on RESP2; `HELLO` and `HELLO 2` describe the server in RESP2, with `AUTH`/`SETNAME` taken.
    #[test]
    fn select_takes_database_0_only_and_config_get_needs_a_parameter() {
        let mut s = session(Limits::default());
        assert_eq!(
            talk(&mut s, "SELECT 0\r\nSELECT 1\r\nSELECT x\r\nCONFIG GET\r\n"),
            "+OK\r\n-ERR DB index is out of range\r\n\
             -ERR value is not an integer or out of range\r\n\
             -ERR wrong number of arguments for 'config|get' command\r\n"
        );
    }

    #[test]
    fn hello_refuses_resp3_with_noproto_and_describes_the_server_in_resp2() {
        let mut s = session(Limits::default());
        assert_eq!(
            talk(&mut s, "HELLO 3\r\n"),
            "-NOPROTO sorry, this protocol version is not supported\r\n"
        );
        let description = talk(&mut s, "HELLO 2 AUTH default pw SETNAME me\r\n");
        assert!(
            description.starts_with("*12\r\n$6\r\nserver\r\n$8\r\nsockpool\r\n"),
            "{description}"
        );
        assert!(
            description.contains("$5\r\nproto\r\n:2\r\n"),
            "{description}"
        );
        assert_eq!(talk(&mut s, "HELLO\r\n"), description);
        assert_eq!(
            talk(
                &mut s,
                "HELLO x\r\nHELLO 2 FOO\r\nHELLO 2 AUTH u\r\nPING\r\n"
            ),
            "-ERR Protocol version is not an integer or out of range\r\n\
             -ERR Syntax error in HELLO option 'FOO'\r\n\
             -ERR Syntax error in HELLO option 'AUTH'\r\n+PONG\r\n"
        );
    }

    #[test]
    fn multi_queues_and_exec_answers_the_array_of_replies() {
        let mut s = session(Limits::default());
        assert_eq!(
            talk(
                &mut s,
                "MULTI\r\nSET k 41\r\nINCR k\r\nGET k\r\nMGET k nope\r\nINCR k x\r\nEXEC\r\n"
            ),
            "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n\
             -ERR wrong number of arguments for 'incr' command\r\n\
             -EXECABORT Transaction discarded because of previous errors.\r\n",
            "an arity error at queue time aborts the whole transaction"
        );
        assert_eq!(talk(&mut s, "GET k\r\n"), "$-1\r\n", "nothing ran");
        assert_eq!(
            talk(
                &mut s,
                "MULTI\r\nSET k 41\r\nINCR k\r\nGET k\r\nMGET k nope\r\nSET k v EX 0\r\nEXEC\r\n"
            ),
            "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n\
             *5\r\n+OK\r\n:42\r\n$2\r\n42\r\n*2\r\n$2\r\n42\r\n$-1\r\n\
             -ERR invalid expire time in 'set' command\r\n",
            "an error at run time is one reply of the array, as Redis"
        );
        assert_eq!(talk(&mut s, "MULTI\r\nEXEC\r\n"), "+OK\r\n*0\r\n");
        assert_eq!(s.shared.buffered(), 0, "the queue left the budget");
    }

    #[test]
    fn exec_discard_and_multi_out_of_place_get_redis_errors() {
        let mut s = session(Limits::default());
        assert_eq!(talk(&mut s, "EXEC\r\n"), "-ERR EXEC without MULTI\r\n");
        assert_eq!(
            talk(&mut s, "DISCARD\r\n"),
            "-ERR DISCARD without MULTI\r\n"
        );
        assert_eq!(
            talk(
                &mut s,
                "MULTI\r\nMULTI\r\nSET k v\r\nWATCH k\r\nDISCARD\r\n"
            ),
            "+OK\r\n-ERR MULTI calls can not be nested\r\n+QUEUED\r\n\
             -ERR WATCH inside MULTI is not allowed\r\n+OK\r\n",
        );
        assert_eq!(
            talk(&mut s, "GET k\r\nEXEC\r\n"),
            "$-1\r\n-ERR EXEC without MULTI\r\n"
        );
        // Nested MULTI and WATCH do not abort the transaction (Redis does not flag them); an unknown one does.
        assert_eq!(
            talk(&mut s, "MULTI\r\nMULTI\r\nPING\r\nEXEC\r\n"),
            "+OK\r\n-ERR MULTI calls can not be nested\r\n+QUEUED\r\n*1\r\n+PONG\r\n"
        );
        assert_eq!(
            talk(&mut s, "MULTI\r\nNOPE\r\nPING\r\nEXEC\r\n"),
            "+OK\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n+QUEUED\r\n\
             -EXECABORT Transaction discarded because of previous errors.\r\n"
        );
        // QUIT inside MULTI quits (it is not queued).
        let mut input = BytesMut::from(&b"MULTI\r\nQUIT\r\n"[..]);
        let mut output = BytesMut::new();
        assert_eq!(
            s.on_input(&mut input, &mut output, Instant::now()),
            Next::Close
        );
        assert_eq!(&output[..], b"+OK\r\n+OK\r\n");
    }

    #[test]
    fn watch_aborts_exec_after_a_change_and_unwatch_forgets() {
        let mut a = session(Limits::default());
        let mut b = other(&a);
        assert_eq!(
            talk(&mut a, "WATCH k\r\nMULTI\r\nINCR k\r\nEXEC\r\n"),
            "+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:1\r\n"
        );
        assert_eq!(talk(&mut a, "WATCH k\r\n"), "+OK\r\n");
        assert_eq!(talk(&mut b, "SET k 10\r\n"), "+OK\r\n");
        assert_eq!(
            talk(&mut a, "MULTI\r\nINCR k\r\nEXEC\r\n"),
            "+OK\r\n+QUEUED\r\n*-1\r\n"
        );
        assert_eq!(
            talk(&mut a, "GET k\r\n"),
            "$2\r\n10\r\n",
            "the aborted INCR did not run"
        );
        // EXEC (aborted or not) and UNWATCH forget what was watched.
        assert_eq!(talk(&mut b, "SET k 11\r\n"), "+OK\r\n");
        assert_eq!(
            talk(&mut a, "MULTI\r\nINCR k\r\nEXEC\r\n"),
            "+OK\r\n+QUEUED\r\n*1\r\n:12\r\n"
        );
        assert_eq!(
            talk(&mut a, "WATCH k other\r\nUNWATCH\r\n"),
            "+OK\r\n+OK\r\n"
        );
        assert_eq!(talk(&mut b, "SET k 0\r\n"), "+OK\r\n");
        assert_eq!(
            talk(&mut a, "MULTI\r\nINCR k\r\nEXEC\r\n"),
            "+OK\r\n+QUEUED\r\n*1\r\n:1\r\n"
        );
    }

    /// `WATCH` is per key, as in Redis: a change to another key of the same shard does not abort `EXEC`; a
    /// watched key expiring does; a connection closing lets go of what it watched; watching is bounded by
    /// `--max-multi-bytes`, and over it the `WATCH` is refused and the next `EXEC` aborts.
    #[test]
    fn watch_is_per_key_bounded_and_let_go_at_close() {
        let mut a = session(Limits::default());
        let mut b = other(&a);
        let t0 = Instant::now();
        let at = |s: &mut RespSession, send: &str, now| {
            String::from_utf8(talk_at(s, send.as_bytes(), now).0).unwrap()
        };
        let neighbour = (0..)
            .map(|i| format!("n{i}"))
            .find(|n| crate::store::shard_of(n.as_bytes()) == crate::store::shard_of(b"k"))
            .unwrap();
        assert_eq!(talk(&mut a, "WATCH k\r\n"), "+OK\r\n");
        assert_eq!(talk(&mut b, &format!("SET {neighbour} 1\r\n")), "+OK\r\n");
        assert_eq!(
            talk(&mut a, "MULTI\r\nINCR k\r\nEXEC\r\n"),
            "+OK\r\n+QUEUED\r\n*1\r\n:1\r\n",
            "another key of the shard changed, not k"
        );
        // A watched key whose deadline passes aborts, before anything reclaims it.
        assert_eq!(
            at(&mut a, "SET k v PX 100\r\nWATCH k\r\n", t0),
            "+OK\r\n+OK\r\n"
        );
        assert_eq!(
            at(
                &mut a,
                "MULTI\r\nGET k\r\nEXEC\r\n",
                t0 + Duration::from_millis(100)
            ),
            "+OK\r\n+QUEUED\r\n*-1\r\n"
        );
        // Closing lets go; so do UNWATCH, DISCARD and EXEC.
        assert_eq!(talk(&mut b, "WATCH k x y\r\n"), "+OK\r\n");
        assert_eq!(
            talk(&mut a, "WATCH k z\r\nUNWATCH\r\nWATCH z\r\n"),
            "+OK\r\n+OK\r\n+OK\r\n"
        );
        assert_eq!(a.shared.db.watched(), 4);
        drop(b);
        assert_eq!(a.shared.db.watched(), 1);
        assert_eq!(talk(&mut a, "MULTI\r\nDISCARD\r\n"), "+OK\r\n+OK\r\n");
        assert_eq!(a.shared.db.watched(), 0);
        assert_eq!(
            a.shared.buffered(),
            0,
            "the watched keys left the memory budget"
        );
        // Over --max-multi-bytes: refused, and EXEC aborts even though nothing changed.
        let mut small = session(Limits {
            max_multi_bytes: 1000,
            ..Limits::default()
        });
        let many = format!(" k {}", "x".repeat(600));
        assert_eq!(
            talk(&mut small, &format!("WATCH{many}\r\n")),
            String::from_utf8(TOO_MANY_WATCHED.to_vec()).unwrap()
        );
        assert_eq!(
            talk(
                &mut small,
                "MULTI\r\nINCR k\r\nEXEC\r\nWATCH k\r\nMULTI\r\nINCR k\r\nEXEC\r\n"
            ),
            "+OK\r\n+QUEUED\r\n*-1\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:1\r\n",
            "the refusal lasts one EXEC"
        );
        assert_eq!(small.shared.db.watched(), 0);
        assert_eq!(small.shared.buffered(), 0);
    }

    #[test]
    fn a_queue_over_its_limits_is_dropped_and_exec_aborts() {
        let mut s = session(Limits {
            max_multi_commands: 3,
            ..Limits::default()
        });
        let too_large = std::str::from_utf8(TX_TOO_LARGE).unwrap();
        assert_eq!(
            talk(
                &mut s,
                "MULTI\r\nSET a 1\r\nSET b 2\r\nSET c 3\r\nSET d 4\r\nPING\r\n"
            ),
            format!("+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n{too_large}{too_large}")
        );
        assert_eq!(
            s.shared.buffered(),
            0,
            "the dropped queue left the budget at once"
        );
        assert_eq!(
            talk(&mut s, "EXEC\r\nGET a\r\n"),
            "-EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n"
        );
        // By bytes: each command costs its arguments plus its bookkeeping.
        let mut s = session(Limits {
            max_multi_bytes: 4096,
            ..Limits::default()
        });
        let value = "v".repeat(1000);
        let mut send = String::from("MULTI\r\n");
        for _ in 0..5 {
            send.push_str(&format!("SET k {value}\r\n"));
        }
        assert_eq!(
            talk(&mut s, &send),
            format!("+OK\r\n{}{too_large}{too_large}", "+QUEUED\r\n".repeat(3)),
        );
        assert_eq!(talk(&mut s, "DISCARD\r\nGET k\r\n"), "+OK\r\n$-1\r\n");
        // While queued, a transaction counts in the memory budget; a closed connection gives it back.
        assert_eq!(talk(&mut s, "MULTI\r\nSET k v\r\n"), "+OK\r\n+QUEUED\r\n");
        let shared = s.shared.clone();
        assert!(shared.buffered() > 0);
        drop(s);
        assert_eq!(shared.buffered(), 0);
    }

    #[test]
    fn exec_writes_large_replies_a_part_at_a_time() {
        let high_water = 64 * 1024;
        let mut s = session(Limits {
            write_high_water: high_water,
            ..Limits::default()
        });
        let big = vec![b'x'; 1 << 20];
        let mut set = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", big.len()).into_bytes();
        set.extend_from_slice(&big);
        set.extend_from_slice(b"\r\n");
        assert_eq!(talk_at(&mut s, &set, Instant::now()).0, b"+OK\r\n");
        // 20 GETs and an MGET of 1 MiB each: 24 MiB of reply to 200 bytes of request.
        let mut send = b"MULTI\r\n".to_vec();
        for _ in 0..20 {
            send.extend_from_slice(b"GET big\r\n");
        }
        send.extend_from_slice(b"MGET big big big big\r\nINCR n\r\nEXEC\r\n");
        let (wire, most) = talk_at(&mut s, &send, Instant::now());
        let mut want = b"+OK\r\n".to_vec();
        want.extend_from_slice(&b"+QUEUED\r\n".repeat(22));
        want.extend_from_slice(b"*22\r\n");
        let mut bulk = format!("${}\r\n", big.len()).into_bytes();
        bulk.extend_from_slice(&big);
        bulk.extend_from_slice(b"\r\n");
        for _ in 0..20 {
            want.extend_from_slice(&bulk);
        }
        want.extend_from_slice(b"*4\r\n");
        for _ in 0..4 {
            want.extend_from_slice(&bulk);
        }
        want.extend_from_slice(b":1\r\n");
        assert!(wire == want, "the replies, in order ({} bytes)", wire.len());
        assert!(most <= high_water + 64, "{most} bytes of output at once");
    }

    #[test]
    fn set_options_and_expiry_follow_redis_on_the_time_given() {
        let mut s = session(Limits::default());
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let say = |s: &mut RespSession, send: &str, now| {
            String::from_utf8(talk_at(s, send.as_bytes(), now).0).unwrap()
        };
        for (send, want) in [
            ("SET k v PX 1500\r\n", "+OK\r\n"),
            ("TTL k\r\n", ":2\r\n"),
            ("PTTL k\r\n", ":1500\r\n"),
            ("SET k v NX\r\n", "$-1\r\n"),
            ("SET k w XX GET\r\n", "$1\r\nv\r\n"),
            ("TTL k\r\n", ":-1\r\n"),
            ("SET k v NX XX\r\n", "-ERR syntax error\r\n"),
            ("SET k v EX 1 PX 1\r\n", "-ERR syntax error\r\n"),
            ("SET k v EX\r\n", "-ERR syntax error\r\n"),
            ("SET k v KEEPTTL EX 1\r\n", "-ERR syntax error\r\n"),
            ("SET k v FOREVER\r\n", "-ERR syntax error\r\n"),
            (
                "SET k v EX 0\r\n",
                "-ERR invalid expire time in 'set' command\r\n",
            ),
            (
                "SET k v PX -5\r\n",
                "-ERR invalid expire time in 'set' command\r\n",
            ),
            // Redis's bound: the deadline as Unix milliseconds fits an i64 (redis-server 7.0 answers these).
            ("SET k v EX 9223370000000000\r\n", "+OK\r\n"),
            (
                "SET k v EX 9223372036854775\r\n",
                "-ERR invalid expire time in 'set' command\r\n",
            ),
            ("SET k v PX 9223370000000000000\r\n", "+OK\r\n"),
            (
                "EXPIRE k 9223372036854775\r\n",
                "-ERR invalid expire time in 'expire' command\r\n",
            ),
            (
                "SET k v PX 9223372036854775807\r\n",
                "-ERR invalid expire time in 'set' command\r\n",
            ),
            (
                "SET k v EX 9223372036854776\r\n",
                "-ERR invalid expire time in 'set' command\r\n",
            ),
            (
                "SET k v EX ten\r\n",
                "-ERR value is not an integer or out of range\r\n",
            ),
            ("SET k v EXAT 1\r\n", "+OK\r\n"),
            ("GET k\r\n", "$-1\r\n"),
            (
                "SETEX k 0 v\r\n",
                "-ERR invalid expire time in 'setex' command\r\n",
            ),
            (
                "PSETEX k 0 v\r\n",
                "-ERR invalid expire time in 'psetex' command\r\n",
            ),
            ("SETEX k 10 v\r\n", "+OK\r\n"),
            ("SETNX k w\r\n", ":0\r\n"),
            ("SETNX j w\r\n", ":1\r\n"),
            ("TTL j\r\nTTL nope\r\n", ":-1\r\n:-2\r\n"),
            (
                "EXPIRE j 5 NX XX\r\n",
                "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
            ),
            (
                "EXPIRE j 5 GT LT\r\n",
                "-ERR GT and LT options at the same time are not compatible\r\n",
            ),
            ("EXPIRE j 5 SOON\r\n", "-ERR Unsupported option SOON\r\n"),
            ("EXPIRE j 5 XX\r\n", ":0\r\n"),
            ("EXPIRE j 5\r\n", ":1\r\n"),
            ("PEXPIRE j 4000 GT\r\n", ":0\r\n"),
            ("PERSIST j\r\nPERSIST j\r\n", ":1\r\n:0\r\n"),
            ("EXPIRE nope 5\r\n", ":0\r\n"),
            ("EXPIRE j -1\r\nEXISTS j\r\n", ":1\r\n:0\r\n"),
        ] {
            assert_eq!(say(&mut s, send, t0), want, "{send:?}");
        }
        // Time moves only as the test says.
        assert_eq!(say(&mut s, "GET k\r\n", at(9_999)), "$1\r\nv\r\n");
        assert_eq!(say(&mut s, "TTL k\r\n", at(9_400)), ":1\r\n", "TTL rounds");
        assert_eq!(say(&mut s, "TTL k\r\n", at(9_600)), ":0\r\n");
        assert_eq!(say(&mut s, "GET k\r\n", at(10_000)), "$-1\r\n");
        assert_eq!(
            say(&mut s, "TTL k\r\nEXISTS k\r\n", at(10_000)),
            ":-2\r\n:0\r\n"
        );
    }

    /// `GETEX`, `GETDEL`, `MSETNX`, `EXPIREAT`, `PEXPIREAT` as redis-server 7.0 answers them (a differential run
    /// of these requests through redis-cli against both printed the same, but for elapsed milliseconds).
    #[test]
    fn getex_getdel_msetnx_and_expireat_follow_redis() {
        let mut s = session(Limits::default());
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let say = |s: &mut RespSession, send: &str, now| {
            String::from_utf8(talk_at(s, send.as_bytes(), now).0).unwrap()
        };
        let unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let later = format!("PEXPIREAT e {}\r\n", unix_ms + 100_000);
        for (send, want) in [
            (
                "SET a 1\r\nGETDEL a\r\nGETDEL a\r\n",
                "+OK\r\n$1\r\n1\r\n$-1\r\n",
            ),
            (
                "GETDEL\r\n",
                "-ERR wrong number of arguments for 'getdel' command\r\n",
            ),
            (
                "SET b v\r\nGETEX b\r\nTTL b\r\n",
                "+OK\r\n$1\r\nv\r\n:-1\r\n",
            ),
            ("GETEX b EX 100\r\nTTL b\r\n", "$1\r\nv\r\n:100\r\n"),
            ("GETEX b PERSIST\r\nTTL b\r\n", "$1\r\nv\r\n:-1\r\n"),
            ("GETEX b PX 5000\r\nPTTL b\r\n", "$1\r\nv\r\n:5000\r\n"),
            (
                "GETEX b EX 0\r\n",
                "-ERR invalid expire time in 'getex' command\r\n",
            ),
            (
                "GETEX b EX x\r\n",
                "-ERR value is not an integer or out of range\r\n",
            ),
            // A missing key is nil whatever the time says; the grammar is checked first.
            ("GETEX nope EX 0\r\n", "$-1\r\n"),
            ("GETEX nope FOO\r\n", "-ERR syntax error\r\n"),
            ("GETEX b EX 10 PX 10\r\n", "-ERR syntax error\r\n"),
            ("GETEX b PERSIST EX 10\r\n", "-ERR syntax error\r\n"),
            ("GETEX b EX\r\n", "-ERR syntax error\r\n"),
            // A time in the past answers the value and deletes the key.
            ("GETEX b EXAT 1\r\nEXISTS b\r\n", "$1\r\nv\r\n:0\r\n"),
            (
                "MSETNX x 1 y 2\r\nMSETNX y 3 z 4\r\nMGET x y z\r\n",
                ":1\r\n:0\r\n*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n",
            ),
            (
                "MSETNX x 1 y\r\n",
                "-ERR wrong number of arguments for 'msetnx' command\r\n",
            ),
            (
                "SET e v\r\nEXPIREAT e 1\r\nEXISTS e\r\n",
                "+OK\r\n:1\r\n:0\r\n",
            ),
            ("SET e v\r\n", "+OK\r\n"),
            (&later, ":1\r\n"),
            ("TTL e\r\n", ":100\r\n"),
            (
                "EXPIREAT e 9223372036854775807\r\n",
                "-ERR invalid expire time in 'expireat' command\r\n",
            ),
            ("PEXPIREAT e 1 GT\r\nPEXPIREAT e 1 LT\r\n", ":0\r\n:1\r\n"),
            ("EXISTS e\r\n", ":0\r\n"),
            ("DEL x x y\r\nEXISTS x x z\r\n", ":2\r\n:0\r\n"),
        ] {
            assert_eq!(say(&mut s, send, t0), want, "{send:?}");
        }
        // The deadline GETEX gave is kept on the connection's clock.
        assert_eq!(
            say(&mut s, "SET f v\r\nGETEX f PX 300\r\n", t0),
            "+OK\r\n$1\r\nv\r\n"
        );
        assert_eq!(say(&mut s, "GET f\r\n", at(299)), "$1\r\nv\r\n");
        assert_eq!(say(&mut s, "GET f\r\n", at(300)), "$-1\r\n");
    }

    /// `FLUSHALL`/`FLUSHDB` and `DBSIZE` as redis-server 7.0 answers them (a differential run through redis-cli
    /// printed the same), and a flush aborts a transaction watching a key that was there, not one watching a
    /// missing key (redis-py against both: the same).
    #[test]
    fn flush_and_dbsize_follow_redis() {
        let mut a = session(Limits::default());
        let mut b = other(&a);
        let t0 = Instant::now();
        let at = |s: &mut RespSession, send: &str| {
            String::from_utf8(talk_at(s, send.as_bytes(), t0).0).unwrap()
        };
        assert_eq!(
            at(
                &mut a,
                "SET a 1\r\nSET b 2\r\nSET c 3 PX 1\r\nDBSIZE\r\nDBSIZE x\r\n"
            ),
            "+OK\r\n+OK\r\n+OK\r\n:3\r\n-ERR wrong number of arguments for 'dbsize' command\r\n"
        );
        assert_eq!(
            at(&mut a, "FLUSHALL foo\r\nFLUSHDB ASYNC x\r\nDBSIZE\r\n"),
            "-ERR syntax error\r\n-ERR syntax error\r\n:3\r\n"
        );
        assert_eq!(
            at(&mut a, "FLUSHDB async\r\nDBSIZE\r\nGET a\r\n"),
            "+OK\r\n:0\r\n$-1\r\n"
        );
        assert_eq!(
            at(
                &mut a,
                "MULTI\r\nSET x 1\r\nFLUSHALL SYNC\r\nDBSIZE\r\nEXEC\r\n"
            ),
            "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n+OK\r\n:0\r\n"
        );
        assert_eq!(at(&mut a, "SET w 1\r\nWATCH w\r\n"), "+OK\r\n+OK\r\n");
        assert_eq!(at(&mut b, "FLUSHALL\r\n"), "+OK\r\n");
        assert_eq!(
            at(&mut a, "MULTI\r\nINCR w\r\nEXEC\r\n"),
            "+OK\r\n+QUEUED\r\n*-1\r\n"
        );
        assert_eq!(at(&mut a, "WATCH nothere\r\n"), "+OK\r\n");
        assert_eq!(at(&mut b, "FLUSHALL\r\n"), "+OK\r\n");
        assert_eq!(
            at(&mut a, "MULTI\r\nINCR w\r\nEXEC\r\n"),
            "+OK\r\n+QUEUED\r\n*1\r\n:1\r\n"
        );
    }

    /// `INFO`: the sections and fields clients read (ioredis's ready check failed on "unknown command" and the
    /// client gave up: it sends `INFO` before its first command and waits for `loading:0`).
    #[test]
    fn info_has_the_fields_clients_read_by_section() {
        let mut s = session(Limits::default());
        let bulk = |reply: String| {
            let (head, text) = reply.split_once("\r\n").unwrap();
            assert_eq!(head, format!("${}", text.len() - 2), "one bulk string");
            text.strip_suffix("\r\n").unwrap().to_string()
        };
        let all = bulk(talk(&mut s, "INFO\r\n"));
        for line in [
            "# Server\r\nredis_version:7.0.15\r\n",
            "\r\n\r\n# Persistence\r\nloading:0\r\n",
            "role:master\r\n",
            "\r\n\r\n# Keyspace\r\n",
        ] {
            assert!(all.contains(line), "{line:?} in {all:?}");
        }
        assert!(all.ends_with("# Keyspace\r\n"), "no keys, no db0 line");
        assert_eq!(
            talk(&mut s, "SET a 1\r\nSET b 2 EX 100\r\n"),
            "+OK\r\n+OK\r\n"
        );
        assert_eq!(
            bulk(talk(&mut s, "INFO keyspace\r\n")),
            "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n"
        );
        let two = bulk(talk(&mut s, "INFO KEYSPACE persistence\r\n"));
        assert!(two.starts_with("# Persistence\r\nloading:0\r\n"), "{two:?}");
        assert!(two.ends_with("\r\n\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n"));
        assert_eq!(talk(&mut s, "INFO nosuch\r\n"), "$0\r\n\r\n");
        assert_eq!(
            bulk(talk(&mut s, "INFO everything\r\n")).len(),
            bulk(talk(&mut s, "INFO\r\n")).len()
        );
    }

    /// `CLIENT ID|GETNAME|SETNAME|SETINFO` as redis-server answers them (7.0.15 for all but `SETINFO`, which it
    /// added in 7.2; a differential run through redis-cli printed the same, redis-py's `client_name=` too), the
    /// name the connection's own, and inside `MULTI` queued and run at `EXEC`.
    #[test]
    fn client_names_and_ids_are_the_connections_own() {
        let mut a = session(Limits::default());
        let mut b = other(&a);
        for (send, want) in [
            (
                "CLIENT\r\n",
                "-ERR wrong number of arguments for 'client' command\r\n",
            ),
            (
                "CLIENT ID x\r\n",
                "-ERR wrong number of arguments for 'client|id' command\r\n",
            ),
            (
                "CLIENT SETNAME\r\n",
                "-ERR wrong number of arguments for 'client|setname' command\r\n",
            ),
            (
                "CLIENT SETNAME \"a b\"\r\n",
                "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
            ),
            (
                "CLIENT GETNAME\r\nCLIENT SETNAME abc\r\nCLIENT GETNAME\r\n",
                "$-1\r\n+OK\r\n$3\r\nabc\r\n",
            ),
            (
                "CLIENT SETNAME \"\"\r\nCLIENT GETNAME\r\n",
                "+OK\r\n$-1\r\n",
            ),
            (
                "CLIENT FOO\r\n",
                "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n",
            ),
            (
                "MULTI\r\nCLIENT SETNAME q\r\nCLIENT GETNAME\r\nEXEC\r\n",
                "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$1\r\nq\r\n",
            ),
            (
                "CLIENT SETINFO lib-name redis-py\r\nCLIENT SETINFO LIB-VER 5.0\r\n",
                "+OK\r\n+OK\r\n",
            ),
            (
                "CLIENT SETINFO lib-ver \"a b\"\r\n",
                "-ERR lib-ver cannot contain spaces, newlines or special characters.\r\n",
            ),
            (
                "CLIENT SETINFO foo x\r\n",
                "-ERR Unrecognized option 'foo'\r\n",
            ),
        ] {
            assert_eq!(talk(&mut a, send), want, "{send:?}");
        }
        assert_eq!(
            talk(&mut b, "CLIENT GETNAME\r\n"),
            "$-1\r\n",
            "a's name is a's"
        );
        let id = |s: &mut RespSession| talk(s, "CLIENT ID\r\n");
        let (a1, b1) = (id(&mut a), id(&mut b));
        assert_ne!(a1, b1);
        assert_eq!(id(&mut a), a1, "an id is the connection's for its life");
    }

    /// `TYPE`, `STRLEN`, `KEYS` and `SCAN` as redis-server 7.0.15 answers them (redis-cli printed the same for
    /// these requests, but for `SCAN`'s cursors, which are each server's own), and a `SCAN` iteration returns
    /// every key once, expired keys never.
    #[test]
    fn type_strlen_keys_and_scan_follow_redis() {
        let mut s = session(Limits::default());
        let t0 = Instant::now();
        let at = |s: &mut RespSession, send: &str| {
            String::from_utf8(talk_at(s, send.as_bytes(), t0).0).unwrap()
        };
        for (send, want) in [
            ("SET hello world\r\nSET gone v PX 1\r\n", "+OK\r\n+OK\r\n"),
            ("TYPE hello\r\nTYPE nope\r\n", "+string\r\n+none\r\n"),
            ("STRLEN hello\r\nSTRLEN nope\r\n", ":5\r\n:0\r\n"),
            ("KEYS h*\r\n", "*1\r\n$5\r\nhello\r\n"),
            (
                "KEYS a x\r\n",
                "-ERR wrong number of arguments for 'keys' command\r\n",
            ),
            ("SCAN x\r\n", "-ERR invalid cursor\r\n"),
            ("SCAN 0 COUNT 0\r\n", "-ERR syntax error\r\n"),
            (
                "SCAN 0 COUNT x\r\n",
                "-ERR value is not an integer or out of range\r\n",
            ),
            ("SCAN 0 FOO bar\r\n", "-ERR syntax error\r\n"),
            ("SCAN 0 MATCH\r\n", "-ERR syntax error\r\n"),
            ("SCAN -1\r\n", "*2\r\n$1\r\n0\r\n*0\r\n"),
            ("SCAN 0 COUNT 1000 TYPE list\r\n", "*2\r\n$1\r\n0\r\n*0\r\n"),
            (
                "SCAN 0 COUNT 1000 MATCH hel?o TYPE STRING\r\n",
                "*2\r\n$1\r\n0\r\n*1\r\n$5\r\nhello\r\n",
            ),
        ] {
            assert_eq!(at(&mut s, send), want, "{send:?}");
        }
        // After the deadline, an expired key is in neither.
        assert_eq!(
            String::from_utf8(talk_at(&mut s, b"KEYS *\r\n", t0 + Duration::from_millis(1)).0)
                .unwrap(),
            "*1\r\n$5\r\nhello\r\n"
        );
        let mut keys = Vec::new();
        for i in 0..500 {
            keys.push(format!("k{i}"));
            at(&mut s, &format!("SET k{i} v\r\n"));
        }
        let (mut cursor, mut seen) = ("0".to_string(), Vec::new());
        let mut calls = 0;
        loop {
            let reply = at(&mut s, &format!("SCAN {cursor} MATCH k* COUNT 20\r\n"));
            let lines: Vec<&str> = reply.split("\r\n").collect();
            cursor = lines[2].to_string();
            seen.extend(lines[4..].iter().skip(1).step_by(2).map(|k| k.to_string()));
            calls += 1;
            if cursor == "0" {
                break;
            }
        }
        seen.retain(|k| !k.is_empty());
        seen.sort();
        keys.sort();
        assert_eq!(seen, keys, "every key once");
        assert!(
            calls > 10 && calls <= 64,
            "{calls} calls of COUNT 20 for 500 keys"
        );
    }

    /// A command on several keys is atomic, as in Redis: a connection reading `a` and `b` together never sees
    /// one of another connection's `MSET a i b i` without the other, and `DEL a b` beside `EXISTS a b` counts
    /// both or neither. Two threads, each its own connection to one store, a bounded number of rounds.
    #[test]
    fn commands_on_several_keys_are_atomic_against_each_other() {
        const ROUNDS: usize = 20_000;
        let mut writer = session(Limits::default());
        let mut reader = other(&writer);
        let t0 = Instant::now();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                for i in 0..ROUNDS {
                    let send = if i % 2 == 0 {
                        format!("MSET a {i} b {i}\r\n")
                    } else {
                        "DEL a b\r\n".to_string()
                    };
                    talk_at(&mut writer, send.as_bytes(), t0);
                }
            });
            let mut torn = Vec::new();
            for _ in 0..ROUNDS {
                let (wire, _) = talk_at(&mut reader, b"MGET a b\r\nEXISTS a b\r\n", t0);
                let text = String::from_utf8(wire).unwrap();
                // `*2`, each value as `$-1` or `$n` and its text, then `:count`.
                let mut lines = text.split("\r\n").skip(1);
                let mut value = || match lines.next() {
                    Some("$-1") => None,
                    _ => lines.next(),
                };
                let (a, b) = (value(), value());
                let count = lines.next();
                if a != b || !matches!(count, Some(":0" | ":2")) {
                    torn.push(text);
                }
            }
            assert!(
                torn.is_empty(),
                "{} torn reads, e.g. {:?}",
                torn.len(),
                torn.first()
            );
        });
    }

    #[test]
    fn an_unknown_command_quotes_at_most_what_redis_quotes() {
        let text = |args: Vec<Vec<u8>>| match unknown(
            &args.into_iter().map(Bytes::from).collect::<Vec<_>>(),
        ) {
            Value::Error(e) => String::from_utf8(e.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        };
        // What redis-server 7 answered for the same commands.
        assert_eq!(
            text(vec![
                [&b"NOPE"[..], &[b'x'; 200]].concat(),
                vec![b'a'; 100],
                vec![b'b'; 100],
                b"c".to_vec()
            ]),
            format!(
                "ERR unknown command 'NOPE{}', with args beginning with: '{}' '{}' ",
                "x".repeat(124),
                "a".repeat(100),
                "b".repeat(25)
            )
        );
        assert_eq!(
            text(vec![b"NOPE".to_vec(), b"a".to_vec(), vec![b'b'; 300]]),
            format!(
                "ERR unknown command 'NOPE', with args beginning with: 'a' '{}' ",
                "b".repeat(124)
            )
        );
        // A 16 MiB argument: a reply of a few hundred bytes.
        assert!(text(vec![b"NOPE".to_vec(), vec![b'z'; 16 << 20]]).len() < 300);
    }

    /// Found by a `session_resp` fuzz regression input (fuzz/regressions/session_resp/): seven 128-byte
    /// arguments of invalid UTF-8 made a 2.7 KiB error reply (each byte quoted as U+FFFD), and 16 MiB ones a
    /// 48 MiB reply. Redis quotes at most 128 bytes.
    #[test]
    fn unknown_command_error_quotes_at_most_128_bytes_of_name_and_arguments() {
        let long = Bytes::from(vec![b'a'; 1 << 20]);
        let Value::Error(msg) = unknown(&[long.clone(), long.clone(), long]) else {
            panic!("an error reply");
        };
        let want = format!(
            "ERR unknown command '{a}', with args beginning with: '{a}' ",
            a = "a".repeat(QUOTE_MAX)
        );
        assert_eq!(String::from_utf8_lossy(&msg), want);
        // Short arguments are all quoted, as before.
        let args = [&b"NOPE"[..], b"a", b"b"].map(Bytes::copy_from_slice);
        let Value::Error(msg) = unknown(&args) else {
            panic!("an error reply");
        };
        assert_eq!(
            &msg[..],
            b"ERR unknown command 'NOPE', with args beginning with: 'a' 'b' "
        );
    }
}
