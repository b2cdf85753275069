//! A connection's state between commands (its transaction, watched keys, client name) and the dispatch of
//! each request: transaction control, queueing inside `MULTI`, `EXEC`, or the command itself.

use std::collections::HashMap;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use sockpool::codec::resp::Value;

use super::admin::{client, ClientInfo};
use super::cmd::Cmd;
use super::keyspace::command;
use super::{
    arity, unknown, Out, EXECABORT, EXEC_AT_ONCE, NULL_ARRAY, OK, QUEUED, TOO_MANY_WATCHED,
    TX_TOO_LARGE,
};
use crate::protocol::body::{Body, WRITE_AT_ONCE};
use crate::shared::Shared;
use crate::store::Watched;

/// A connection's state between commands: its transaction, watched keys and client name.
#[derive(Debug, Default)]
pub(super) struct Tx {
    /// Requests answered and not yet added to the shared counter (added once per batch, and before `INFO`
    /// reads it).
    pub(super) answered: u64,
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
pub(super) fn watch_cost(key: &[u8]) -> usize {
    2 * (key.len() + 48)
}

/// An open transaction.
#[derive(Debug, Default)]
pub(super) struct Multi {
    /// The commands queued, in order, their arguments copied out of the read buffer.
    queue: Vec<Queued>,
    /// What `queue` costs ([`queued_cost`]): counted against `max_multi_bytes` and in the memory budget.
    bytes: usize,
    /// Why `EXEC` will refuse, if it will.
    aborted: Option<Aborted>,
}

/// Why a transaction can no longer run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Aborted {
    /// A command was refused when queued (unknown, wrong arity): later ones are answered `+QUEUED` but not
    /// kept, and `EXEC` answers `-EXECABORT`, as Redis does.
    Refused,
    /// The queue went over its limit and was dropped: later commands get [`TX_TOO_LARGE`] until `EXEC`
    /// (`-EXECABORT`) or `DISCARD`.
    TooLarge,
}

/// One queued command.
#[derive(Debug)]
pub(super) struct Queued {
    cmd: Cmd,
    /// The arguments, the name first (slices of one copy).
    args: Vec<Bytes>,
}

/// What a queued command costs beyond its argument bytes: the queue entry, and a handle per argument.
pub(super) fn queued_cost(args: &[Bytes]) -> usize {
    const ENTRY: usize = std::mem::size_of::<Queued>() + 16;
    const ARG: usize = std::mem::size_of::<Bytes>();
    ENTRY + args.iter().map(|a| a.len() + ARG).sum::<usize>()
}

/// Handles one decoded request: transaction control, queueing inside `MULTI`, or the command itself. False
/// when the connection should close after the reply (QUIT).
pub(super) fn request(
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
        Cmd::Client => client(shared, &mut tx.client, args).encode_to(output),
        Cmd::Unwatch => {
            tx.unwatch_all(shared);
            output.extend_from_slice(OK);
        }
        _ => {
            if cmd == Cmd::Info {
                tx.count(shared);
            }
            command(
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
            )
        }
    }
    true
}

impl Tx {
    /// Adds the requests answered so far to the shared counter.
    pub(super) fn count(&mut self, shared: &Shared) {
        if self.answered > 0 {
            shared
                .stats
                .add(crate::stats::Counter::Requests, self.answered);
            self.answered = 0;
        }
    }

    /// The connection is closing: its queue leaves the memory budget and its watched keys are let go.
    pub(super) fn release(&mut self, shared: &Shared) {
        if let Some(multi) = self.multi.take() {
            shared.account(multi.bytes, 0);
        }
        self.unwatch_all(shared);
    }

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
pub(super) fn queue(shared: &Shared, tx: &mut Tx, cmd: Cmd, args: &[Bytes], output: &mut BytesMut) {
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
pub(super) fn exec(
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
            client(shared, &mut tx.client, &q.args).encode_to(&mut small);
            continue;
        }
        if q.cmd == Cmd::Info {
            tx.count(shared);
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
