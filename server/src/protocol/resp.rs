//! `resp`: a Redis RESP2 subset on an in-memory map shared by every connection: `PING [msg]`, `ECHO msg`,
//! `GET key`, `SET key value`, `MGET key…`, `MSET key value…`, `DEL key…`, `EXISTS key…`, `INCR key`, `DECR key`,
//! `INCRBY key n`, `DECRBY key n` (redis-py's `incr` sends `INCRBY`), plus `SELECT`, `CONFIG GET` (an empty
//! list, so redis-benchmark starts), `QUIT`. Anything else gets Redis's `-ERR unknown command …` and the
//! connection goes on; a wrong argument count gets `-ERR wrong number of arguments for '…' command`.
//!
//! A request the codec refuses (`*20000000`, `$2000000000`, negative or non-numeric lengths, a desync) gets
//! `-ERR Protocol error: <Redis's wording>` and the connection closes, as Redis does.

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use sockpool::codec::resp::{protocol_error_reply, Limits as RespLimits, ServerCodec, Value};
use sockpool::codec::CodecError;

use super::body::{Body, WRITE_AT_ONCE};
use crate::session::{Next, Session};
use crate::shared::Shared;
use crate::stats::Counter;
use crate::store::{parse_i64, Db, IncrError};

/// What a client over `max_connections` gets, then close (Redis's own words).
pub const REFUSAL: &[u8] = b"-ERR max number of clients reached\r\n";
/// What a large request gets while the server is over its memory budget.
pub const BUSY: &[u8] = b"-BUSY server memory budget exceeded, try again later\r\n";

/// One RESP connection.
#[derive(Debug)]
pub struct RespSession {
    pub(super) shared: Arc<Shared>,
    codec: ServerCodec,
    /// The rest of a large bulk reply (GET of a large value, ECHO of a large argument), written a high-water
    /// mark at a time.
    body: Option<Body>,
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
        }
    }
}

/// The replies that need no building, encoded once (Redis keeps the same as shared objects).
const PONG: &[u8] = b"+PONG\r\n";
const OK: &[u8] = b"+OK\r\n";

/// Runs one command, appending its reply to `output` (a large bulk string's header only, its rest left in
/// `body`); false when the connection should close after the reply (QUIT).
fn command(
    shared: &Shared,
    args: &[Bytes],
    output: &mut BytesMut,
    body: &mut Option<Body>,
) -> bool {
    let Some(name) = args.first() else {
        return true;
    };
    let db = &shared.db;
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    let argc = args.len();
    let reply = if is("PING") {
        match argc {
            1 => return put_static(PONG, output),
            2 => Value::Bulk(args[1].clone()),
            _ => arity(name),
        }
    } else if is("GET") {
        match argc {
            2 => db.get(&args[1]).map_or(Value::Null, Value::Bulk),
            _ => arity(name),
        }
    } else if is("SET") {
        match argc {
            3 => {
                db.set(&args[1], &args[2]);
                return put_static(OK, output);
            }
            n if n > 3 => Value::error("ERR syntax error"),
            _ => arity(name),
        }
    } else if is("INCR") || is("DECR") {
        match argc {
            2 => counter(db, &args[1], if is("INCR") { 1 } else { -1 }),
            _ => arity(name),
        }
    } else if is("INCRBY") || is("DECRBY") {
        match argc {
            3 => match parse_i64(&args[2]) {
                Some(d) if is("INCRBY") => counter(db, &args[1], d),
                // DECRBY negates its argument: i64::MIN has none (Redis's words).
                Some(d) => d.checked_neg().map_or_else(
                    || Value::error("ERR decrement would overflow"),
                    |d| counter(db, &args[1], d),
                ),
                None => Value::error(IncrError::NotAnInteger.reply()),
            },
            _ => arity(name),
        }
    } else if is("DEL") || is("EXISTS") {
        if argc < 2 {
            arity(name)
        } else {
            let del = is("DEL");
            let n = args[1..]
                .iter()
                .filter(|k| if del { db.del(k) } else { db.exists(k) })
                .count();
            Value::Integer(n as i64)
        }
    } else if is("MGET") {
        if argc < 2 {
            arity(name)
        } else {
            // The array header now; the values (shared with the key space, not copied) a part at a time.
            output.put_u8(b'*');
            output.extend_from_slice(itoa::Buffer::new().format(argc - 1).as_bytes());
            output.extend_from_slice(b"\r\n");
            let values: Vec<Option<Bytes>> = args[1..].iter().map(|k| db.get(k)).collect();
            *body = Some(Body::Bulks(values.into_iter()));
            return true;
        }
    } else if is("MSET") {
        if argc < 3 || argc % 2 == 0 {
            arity(name)
        } else {
            for pair in args[1..].chunks_exact(2) {
                db.set(&pair[0], &pair[1]);
            }
            return put_static(OK, output);
        }
    } else if is("ECHO") {
        match argc {
            2 => Value::Bulk(args[1].clone()),
            _ => arity(name),
        }
    } else if is("SELECT") {
        match argc {
            2 => Value::ok(),
            _ => arity(name),
        }
    } else if is("CONFIG") {
        config_get(args)
    } else if is("QUIT") {
        put_static(OK, output);
        return false;
    } else {
        unknown(args)
    };
    match reply {
        Value::Bulk(b) if b.len() > WRITE_AT_ONCE => {
            output.extend_from_slice(b"$");
            output.extend_from_slice(itoa::Buffer::new().format(b.len()).as_bytes());
            output.extend_from_slice(b"\r\n");
            *body = Some(Body::Bytes(b, b"\r\n"));
        }
        reply => reply.encode_to(output),
    }
    true
}

/// `INCR`, `DECR`, `INCRBY`, `DECRBY`: adds `delta` to the integer at `key`.
fn counter(db: &Db, key: &[u8], delta: i64) -> Value {
    db.incr_by(key, delta)
        .map_or_else(|e| Value::error(e.reply()), Value::Integer)
}

fn put_static(reply: &[u8], output: &mut BytesMut) -> bool {
    output.extend_from_slice(reply);
    true
}

/// `CONFIG GET save|appendonly` as a persistence-free Redis answers them (redis-benchmark asks); every other
/// parameter is an empty list.
fn config_get(args: &[Bytes]) -> Value {
    let param = match args {
        [_, get, param] if get.eq_ignore_ascii_case(b"GET") => param,
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

    fn on_input(&mut self, input: &mut BytesMut, output: &mut BytesMut, _now: Instant) -> Next {
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
                    let go_on = command(&self.shared, args, output, &mut self.body);
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
