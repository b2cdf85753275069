//! `resp`: a Redis RESP2 subset on an in-memory map shared by every connection (per worker process under
//! `--model processes`):
//!
//! - strings: `GET key`, `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]`, `SETNX`, `SETEX`,
//!   `PSETEX`, `GETDEL`, `GETEX key [EX s|PX ms|EXAT t|PXAT t|PERSIST]`, `MGET key…`, `MSET key value…`,
//!   `MSETNX key value…`, `DEL key…`, `EXISTS key…`, `INCR`, `DECR`, `INCRBY key n`, `DECRBY key n` (redis-py's
//!   `incr` sends `INCRBY`), `APPEND`, `GETSET`, `GETRANGE`/`SUBSTR`; a command on several keys is atomic, as in Redis (`Store::atomically`);
//! - expiry: `EXPIRE key s [NX|XX|GT|LT]`, `PEXPIRE key ms […]`, `EXPIREAT key unix-s […]`, `PEXPIREAT key
//!   unix-ms […]`, `TTL`, `PTTL`, `PERSIST` (the store: `crate::store`);
//! - lists, sets, hashes, sorted sets (`collections`): `LPUSH`, `RPUSH`, `LPUSHX`, `RPUSHX`, `LPOP`, `RPOP`,
//!   `LLEN`, `LRANGE`, `LINDEX`; `SADD`, `SREM`, `SPOP`, `SCARD`, `SISMEMBER`, `SMEMBERS`; `HSET`, `HMSET`,
//!   `HGET`, `HMGET`, `HDEL`, `HLEN`, `HEXISTS`, `HGETALL`, `HINCRBY`; `ZADD`, `ZINCRBY`, `ZSCORE`, `ZCARD`,
//!   `ZREM`, `ZPOPMIN`, `ZPOPMAX`, `ZRANGE` (by rank); `-WRONGTYPE` across kinds, as Redis;
//! - transactions: `MULTI`, `EXEC`, `DISCARD`, `WATCH key…`, `UNWATCH` (below);
//! - keys: `RENAME`, `RENAMENX`, `UNLINK`, `EXPIRETIME`, `PEXPIRETIME`, `TYPE`, `STRLEN`, `KEYS pattern`, `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]` (a cursor is a shard
//!   index: each call reads whole shards, so every key there for the whole iteration is returned once);
//! - `DBSIZE`, `FLUSHDB [ASYNC|SYNC]`, `FLUSHALL […]` (what test suites run between tests), `INFO [section…]`
//!   (the fields clients and monitors read: ioredis's ready check wants `loading:0`), `CLIENT ID|GETNAME|SETNAME|
//!   SETINFO` (what clients send when they open a connection);
//! - `AUTH` (as a Redis without passwords), `TIME`, `PING [msg]`, `ECHO msg`, `SELECT 0` (one key space), `CONFIG GET` (`save`, `appendonly`, `maxmemory`, `maxmemory-policy`; an empty list for the rest, so
//!   redis-benchmark starts), `HELLO` (RESP2
//!   only: `HELLO 3` gets `-NOPROTO`, on which redis-py and redis-rs stay on RESP2), `QUIT`.
//!
//! The key space is capped by `--max-store` (Redis's `maxmemory` with `noeviction`): a write that would take it
//! past the cap gets Redis's `-OOM command not allowed when used memory > 'maxmemory'.` and changes nothing
//! (`crate::store`); inside `EXEC` that command's element is the error and the others run.
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

mod admin;
mod cmd;
mod collections;
#[cfg(test)]
mod collections_tests;
mod keyspace;
#[cfg(test)]
mod tests;
mod tx;

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sockpool::codec::resp::{protocol_error_reply, Limits as RespLimits, ServerCodec, Value};
use sockpool::codec::CodecError;

use super::body::{write_pending, Body};
use crate::session::{Next, Session};
use crate::shared::Shared;
use crate::stats::Counter;
use tx::{request, Tx};

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
        self.tx.release(&self.shared);
    }
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

/// Where a command's reply goes.
struct Out<'a> {
    /// Small replies, encoded.
    buf: &'a mut BytesMut,
    /// A reply body to write a part at a time (its header already in `buf`).
    body: &'a mut Option<Body>,
    /// Bulk replies longer than this go to `body`, shared, rather than copied into `buf`.
    at_once: usize,
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

    fn held(&self) -> usize {
        self.codec.held() + self.body.as_ref().map_or(0, Body::held)
    }

    fn on_input(&mut self, input: &mut BytesMut, output: &mut BytesMut, now: Instant) -> Next {
        let high_water = self.shared.config.limits.write_high_water;
        let next = loop {
            if write_pending(&mut self.body, output, high_water) {
                break Next::Flush;
            }
            if output.len() >= high_water {
                break Next::Flush;
            }
            match self.codec.decode_command(input) {
                Ok(Some(args)) => {
                    self.tx.answered += 1;
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
        self.tx.count(&self.shared);
        next
    }
}
