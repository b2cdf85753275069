//! The `resp` session's tests: each command and transaction against what redis-server answers.

use super::*;
use std::time::{Duration, SystemTime};

use crate::config::{Limits, ServerConfig};

/// A session on a server of its own with `limits`.
pub(super) fn session(limits: Limits) -> RespSession {
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
pub(super) fn other(s: &RespSession) -> RespSession {
    RespSession::new(s.shared.clone())
}

/// Sends `send` at `now` and plays the model: drains the output at every `Flush`. The replies, and the most
/// output the session held at once.
pub(super) fn talk_at(s: &mut RespSession, send: &[u8], now: Instant) -> (Vec<u8>, usize) {
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
pub(super) fn talk(s: &mut RespSession, send: &str) -> String {
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

/// `CONFIG GET` as Redis 7.0.15 answers it (checked against redis-server): several parameters, glob patterns
/// (case-insensitive; each name once), a whole name echoed as given; `CONFIG SET` refused, not answered with an
/// empty array a client could take for success.
#[test]
fn config_get_takes_patterns_and_several_parameters_and_config_set_is_refused() {
    let mut s = session(Limits::default());
    let cap = Limits::default().max_store;
    let pair = |name: &str, value: &str| {
        format!(
            "${}\r\n{name}\r\n${}\r\n{value}\r\n",
            name.len(),
            value.len()
        )
    };
    let (save, aof) = (pair("save", ""), pair("appendonly", "no"));
    let (maxmemory, policy) = (
        pair("maxmemory", &cap.to_string()),
        pair("maxmemory-policy", "noeviction"),
    );
    for (ask, expected) in [
        ("CONFIG GET save appendonly", format!("*4\r\n{save}{aof}")),
        ("CONFIG GET SAVE", format!("*2\r\n{}", pair("SAVE", ""))),
        (
            "CONFIG GET maxmemory*",
            format!("*4\r\n{maxmemory}{policy}"),
        ),
        ("CONFIG GET *MEMORY-POL*", format!("*2\r\n{policy}")),
        (
            "CONFIG GET s?ve [sa]ppendonly",
            format!("*4\r\n{save}{aof}"),
        ),
        (
            "CONFIG GET [^s]ppendonly [^a]ppendonly",
            format!("*2\r\n{aof}"),
        ),
        (
            "CONFIG GET maxmemory max*y maxmemory",
            format!("*4\r\n{maxmemory}{policy}"),
        ),
        (
            "CONFIG GET * nosuch",
            format!("*8\r\n{save}{aof}{maxmemory}{policy}"),
        ),
        (
            "CONFIG GET nosuch sav ave* m[a-c]xmemory",
            format!("*2\r\n{maxmemory}"),
        ),
        (
            "CONFIG GET a*b*c*d*e*f*g*h*i*j*k*l*m*n*o*p*q*r*s*t*u*v*w*x*y*z*",
            "*0\r\n".into(),
        ),
    ] {
        assert_eq!(talk(&mut s, &format!("{ask}\r\n")), expected, "{ask}");
    }
    let refused = talk(
        &mut s,
        "CONFIG SET maxmemory 1000\r\nCONFIG resetstat\r\nCONFIG FOO\r\n",
    );
    let lines: Vec<&str> = refused.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 3, "{refused:?}");
    assert!(
        lines[0].starts_with("-ERR CONFIG SET is not supported"),
        "{refused:?}"
    );
    assert!(
        lines[1].starts_with("-ERR CONFIG RESETSTAT is not supported"),
        "{refused:?}"
    );
    assert_eq!(lines[2], "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.");
    // Still served, and the cap unchanged.
    assert_eq!(
        talk(&mut s, "CONFIG GET maxmemory\r\n"),
        format!("*2\r\n{maxmemory}")
    );
}

/// Redis 7.0.15's `stringmatchlen` with `nocase` (util.c), ported line by line: the reference `CONFIG GET`'s
/// patterns are checked against.
fn redis_glob(p: &[u8], s: &[u8]) -> bool {
    let (mut p, mut s) = (p, s);
    let low = |b: u8| b.to_ascii_lowercase();
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                return (0..s.len()).any(|i| redis_glob(&p[1..], &s[i..]));
            }
            b'?' => s = &s[1..],
            b'[' => {
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let mut hit = false;
                loop {
                    if p.first() == Some(&b'\\') && p.len() >= 2 {
                        p = &p[1..];
                        hit |= p[0] == s[0];
                    } else if p.first() == Some(&b']') || p.is_empty() {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (a, b) = (low(p[0].min(p[2])), low(p[0].max(p[2])));
                        hit |= (a..=b).contains(&low(s[0]));
                        p = &p[2..];
                    } else {
                        hit |= low(p[0]) == low(s[0]);
                    }
                    p = &p[1..];
                }
                if hit == not {
                    return false;
                }
                s = &s[1..];
                // The loop left `p` on the `]`, or at the end of an unclosed class (C steps back one there).
                if p.is_empty() {
                    return s.is_empty();
                }
            }
            c => {
                let c = if c == b'\\' && p.len() >= 2 {
                    p = &p[1..];
                    p[0]
                } else {
                    c
                };
                if low(c) != low(s[0]) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

/// `CONFIG GET`'s glob against Redis's, on every pattern of a small alphabet that holds each special byte (and
/// a `]` as a range's end, a backslash in a class, an unclosed class), against names of the same letters in
/// both cases: 200,000 pseudo-random pairs, the same each run.
#[test]
fn config_get_globs_match_as_redis_does() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (pat_bytes, name_bytes) = (b"ab-*?[]^\\A", b"abAB-]");
    for _ in 0..200_000 {
        let pattern: Vec<u8> = (0..next() % 9)
            .map(|_| pat_bytes[(next() % 10) as usize])
            .collect();
        // Parameter names are never empty (Redis's glob answers no to `*` against "": a quirk no name meets).
        let name: Vec<u8> = (0..1 + next() % 5)
            .map(|_| name_bytes[(next() % 6) as usize])
            .collect();
        assert_eq!(
            super::admin::glob_match(&pattern, &name),
            redis_glob(&pattern, &name),
            "{:?} against {:?}",
            String::from_utf8_lossy(&pattern),
            String::from_utf8_lossy(&name)
        );
    }
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

/// A deadline costs its place in the expiry index (`DEADLINE_OVERHEAD`), counted through every command that
/// gives, keeps, moves or removes one. The commands redis-server 7.0.15 flags `denyoom` (`SET`, `SETEX`,
/// `PSETEX`: `COMMAND INFO`) are refused when the deadline would pass the cap; those it does not (`EXPIRE`,
/// `PERSIST`, `GETEX`, `RENAME`'s deadline moving with the key) are never refused, and may take the count past
/// the cap by a deadline each, after which every write that grows it is refused until it is back under.
#[test]
fn deadlines_count_at_max_store_and_only_denyoom_commands_are_refused() {
    use crate::store::{cost, DEADLINE_OVERHEAD};
    const OOM: &str = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
    let cap = cost(1, 10, true) + cost(1, 10, false);
    let mut s = session(Limits {
        max_store: cap,
        ..Limits::default()
    });
    let used = |s: &RespSession| s.shared.db.used();
    assert_eq!(
        talk(&mut s, "SETEX a 100 aaaaaaaaaa\r\nSET b bbbbbbbbbb\r\n"),
        "+OK\r\n+OK\r\n"
    );
    assert_eq!(used(&s), cap);
    // A deadline more, by a command Redis flags denyoom: refused.
    for send in [
        "PSETEX b 100000 bbbbbbbbbb\r\n",
        "SETEX b 100 bbbbbbbbbb\r\n",
        "SET b bbbbbbbbbb EX 100\r\n",
        "SET b bbbbbbbbbb PXAT 99999999999999\r\n",
    ] {
        assert_eq!(talk(&mut s, send), OOM, "{send:?}");
    }
    assert_eq!(talk(&mut s, "TTL b\r\n"), ":-1\r\n");
    // KEEPTTL and a moved deadline do not grow it.
    assert_eq!(
        talk(
            &mut s,
            "SET a aaaaaaaaaa KEEPTTL\r\nSET b bbbbbbbbbb KEEPTTL\r\nEXPIRE a 200\r\n"
        ),
        "+OK\r\n+OK\r\n:1\r\n"
    );
    assert_eq!(used(&s), cap);
    // EXPIRE and GETEX are never refused: counted past the cap, given back by PERSIST.
    assert_eq!(talk(&mut s, "EXPIRE b 100\r\n"), ":1\r\n");
    assert_eq!(used(&s), cap + DEADLINE_OVERHEAD);
    assert_eq!(
        talk(&mut s, "SET c x\r\nAPPEND b x\r\n"),
        format!("{OOM}{OOM}")
    );
    assert_eq!(talk(&mut s, "PERSIST b\r\n"), ":1\r\n");
    assert_eq!(used(&s), cap);
    for send in ["GETEX b EX 100\r\n", "PEXPIREAT b 99999999999999\r\n"] {
        talk(&mut s, send);
        assert_eq!(used(&s), cap + DEADLINE_OVERHEAD, "{send:?}");
        assert_eq!(talk(&mut s, "GETEX b PERSIST\r\n"), "$10\r\nbbbbbbbbbb\r\n");
        assert_eq!(used(&s), cap, "{send:?}");
    }
    // RENAME: the new name takes the deadline and its cost.
    assert_eq!(talk(&mut s, "RENAME a z\r\nTTL z\r\n"), "+OK\r\n:200\r\n");
    assert_eq!(used(&s), cap);
    assert_eq!(talk(&mut s, "RENAMENX z a\r\n"), ":1\r\n");
    assert_eq!(used(&s), cap);
    // A SET without a deadline gives its cost back; DEL and FLUSHALL give back the rest.
    assert_eq!(talk(&mut s, "SET a aaaaaaaaaa\r\n"), "+OK\r\n");
    assert_eq!(used(&s), cap - DEADLINE_OVERHEAD);
    assert_eq!(talk(&mut s, "EXPIRE a 100\r\nDEL a\r\n"), ":1\r\n:1\r\n");
    assert_eq!(used(&s), cost(1, 10, false));
    assert_eq!(
        talk(&mut s, "SETEX c 100 x\r\nFLUSHALL\r\n"),
        "+OK\r\n+OK\r\n"
    );
    assert_eq!(used(&s), 0);
}

/// `--max-store` as Redis's `maxmemory` with `noeviction`: every command that would grow the key space past the
/// cap gets Redis's `-OOM` (the text of redis-server 7.0.15 started with `--maxmemory 1mb --maxmemory-policy
/// noeviction`) and changes nothing; reads, deletes, deadlines and writes that do not grow it go on; inside
/// `EXEC` the refused command's element is the error and the others run. Each refusal is counted.
#[test]
fn writes_past_max_store_get_redis_oom_and_change_nothing() {
    use crate::store::cost;
    const OOM: &str = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
    let cap = 2 * cost(1, 10, false);
    let mut s = session(Limits {
        max_store: cap,
        ..Limits::default()
    });
    let mut b = other(&s);
    assert_eq!(
        talk(&mut s, "SET a aaaaaaaaaa\r\nSET b bbbbbbbbbb\r\n"),
        "+OK\r\n+OK\r\n"
    );
    let refused = [
        "SET c x\r\n",
        "SET c x EX 100 NX GET\r\n",
        "SET a aaaaaaaaaaa\r\n",
        "SETNX c x\r\n",
        "SETEX c 100 x\r\n",
        "PSETEX c 100000 x\r\n",
        "GETSET a aaaaaaaaaaa\r\n",
        "APPEND a x\r\n",
        "APPEND c x\r\n",
        "INCR c\r\n",
        "DECRBY c 5\r\n",
        "MSET c 1 d 2\r\n",
        "MSET a 1 c 2\r\n",
        "MSETNX c 1 d 2\r\n",
        "RENAME a longer\r\n",
        "RENAMENX a longer\r\n",
    ];
    for send in refused {
        assert_eq!(talk(&mut s, send), OOM, "{send:?}");
    }
    assert_eq!(
        talk(&mut s, "MGET a b c d longer\r\n"),
        "*5\r\n$10\r\naaaaaaaaaa\r\n$10\r\nbbbbbbbbbb\r\n$-1\r\n$-1\r\n$-1\r\n",
        "nothing changed"
    );
    assert_eq!(
        s.shared.stats.get(Counter::StoreRefused),
        refused.len() as u64
    );
    // What does not grow the store works at the cap, for this connection and another.
    for (send, want) in [
        ("SET a 1123456789\r\n", "+OK\r\n"),
        ("INCR a\r\n", ":1123456790\r\n"),
        ("SET a aaaaaaaaaa XX GET\r\n", "$10\r\n1123456790\r\n"),
        ("EXPIRE a 100\r\nPERSIST a\r\n", ":1\r\n:1\r\n"),
        ("RENAME a z\r\nRENAME z a\r\n", "+OK\r\n+OK\r\n"),
        ("SETNX a x\r\n", ":0\r\n"),
        ("GET b\r\n", "$10\r\nbbbbbbbbbb\r\n"),
    ] {
        assert_eq!(talk(&mut s, send), want, "{send:?}");
        assert_eq!(talk(&mut b, "PING\r\n"), "+PONG\r\n");
    }
    // Inside EXEC, the command that would pass the cap is refused in its place; the others run.
    assert_eq!(
        talk(
            &mut s,
            "MULTI\r\nSET c x\r\nGET a\r\nAPPEND b x\r\nEXEC\r\n"
        ),
        format!("+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n{OOM}$10\r\naaaaaaaaaa\r\n{OOM}")
    );
    // What Redis's clients and monitors read: `INFO memory`, `CONFIG GET maxmemory`.
    let info = talk(&mut s, "INFO memory\r\n");
    for line in [
        format!("# Memory\r\nused_memory_dataset:{cap}\r\n"),
        format!("maxmemory:{cap}\r\nmaxmemory_human:{}B\r\n", cap),
        "maxmemory_policy:noeviction\r\n".into(),
    ] {
        assert!(info.contains(&line), "{line:?} in {info:?}");
    }
    assert_eq!(
        talk(&mut s, "CONFIG GET maxmemory\r\nCONFIG GET maxmemory-policy\r\n"),
        format!(
            "*2\r\n$9\r\nmaxmemory\r\n${}\r\n{cap}\r\n*2\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n",
            cap.to_string().len()
        )
    );
    // A delete makes room, for another connection too; a flush gives it all back.
    assert_eq!(talk(&mut b, "DEL b\r\nSET c x\r\n"), ":1\r\n+OK\r\n");
    assert_eq!(talk(&mut b, "SET d x\r\n"), OOM);
    assert_eq!(
        talk(&mut b, "FLUSHALL\r\nMSET c x d y\r\n"),
        "+OK\r\n+OK\r\n"
    );
    assert_eq!(s.shared.db.used(), 2 * cost(1, 1, false));
    assert_eq!(
        s.shared.stats.get(Counter::StoreRefused),
        refused.len() as u64 + 3
    );
}

/// `APPEND`, `GETSET`, `GETRANGE` and `SUBSTR` as redis-server 7.0.15 answers them (each request below, and 40
/// more, sent through redis-cli to both printed the same); `APPEND` keeps the deadline, `GETSET` drops it, a
/// result past `--max-bulk` is Redis's `proto-max-bulk-len` error, and an `APPEND` aborts an `EXEC` watching
/// its key.
#[test]
fn append_getset_and_getrange_follow_redis() {
    let mut s = session(Limits {
        max_bulk: 16,
        ..Limits::default()
    });
    let say = |s: &mut RespSession, send: &str| talk(s, send);
    for (send, want) in [
        (
            "APPEND s hello\r\nAPPEND s \" world!!!!!\"\r\n",
            ":5\r\n:16\r\n",
        ),
        ("GET s\r\n", "$16\r\nhello world!!!!!\r\n"),
        (
            "APPEND s x\r\nSTRLEN s\r\n",
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n:16\r\n",
        ),
        ("APPEND s \"\"\r\n", ":16\r\n"),
        (
            "APPEND n \"\"\r\nEXISTS n\r\nGET n\r\n",
            ":0\r\n:1\r\n$0\r\n\r\n",
        ),
        (
            "APPEND s\r\n",
            "-ERR wrong number of arguments for 'append' command\r\n",
        ),
        (
            "SET t abc EX 100\r\nAPPEND t def\r\nTTL t\r\n",
            "+OK\r\n:6\r\n:100\r\n",
        ),
        ("GETSET t zzz\r\nTTL t\r\n", "$6\r\nabcdef\r\n:-1\r\n"),
        ("GETSET m v\r\nGET m\r\n", "$-1\r\n$1\r\nv\r\n"),
        (
            "GETSET m\r\n",
            "-ERR wrong number of arguments for 'getset' command\r\n",
        ),
        ("SET w \"This is a string\"\r\n", "+OK\r\n"),
        (
            "GETRANGE w 0 3\r\nGETRANGE w -3 -1\r\n",
            "$4\r\nThis\r\n$3\r\ning\r\n",
        ),
        ("GETRANGE w 0 -1\r\n", "$16\r\nThis is a string\r\n"),
        (
            "GETRANGE w 10 100\r\nGETRANGE w 5 2\r\n",
            "$6\r\nstring\r\n$0\r\n\r\n",
        ),
        (
            "GETRANGE w -1 -5\r\nGETRANGE w -100 2\r\n",
            "$0\r\n\r\n$3\r\nThi\r\n",
        ),
        (
            "GETRANGE w 0 -100\r\nGETRANGE w -100 -100\r\n",
            "$1\r\nT\r\n$1\r\nT\r\n",
        ),
        (
            "GETRANGE w 100 200\r\nGETRANGE nokey 0 5\r\n",
            "$0\r\n\r\n$0\r\n\r\n",
        ),
        // The indexes are read first: an error even for a missing key.
        (
            "GETRANGE nokey x 1\r\n",
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            "GETRANGE w -9223372036854775808 9223372036854775807\r\n",
            "$16\r\nThis is a string\r\n",
        ),
        ("SUBSTR w 0 3\r\n", "$4\r\nThis\r\n"),
        (
            "GETRANGE w 1\r\n",
            "-ERR wrong number of arguments for 'getrange' command\r\n",
        ),
        ("SET e \"\"\r\nGETRANGE e 0 -1\r\n", "+OK\r\n$0\r\n\r\n"),
        (
            "SET num 10\r\nAPPEND num 5\r\nINCR num\r\n",
            "+OK\r\n:3\r\n:106\r\n",
        ),
    ] {
        assert_eq!(say(&mut s, send), want, "{send:?}");
    }
    // An APPEND is a change: a transaction watching the key aborts.
    let mut o = other(&s);
    assert_eq!(
        say(&mut s, "WATCH t\r\nMULTI\r\nGET t\r\n"),
        "+OK\r\n+OK\r\n+QUEUED\r\n"
    );
    assert_eq!(say(&mut o, "APPEND t !\r\n"), ":4\r\n");
    assert_eq!(say(&mut s, "EXEC\r\n"), "*-1\r\n");
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
        String::from_utf8(talk_at(&mut s, b"KEYS *\r\n", t0 + Duration::from_millis(1)).0).unwrap(),
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

/// `RENAME`, `RENAMENX`, `UNLINK`, `EXPIRETIME`, `PEXPIRETIME`, `AUTH`, `TIME` as redis-server 7.0.15 answers
/// them (a differential run of these requests through redis-cli printed the same, three times over).
#[test]
fn rename_unlink_expiretime_auth_and_time_follow_redis() {
    let mut s = session(Limits::default());
    for (send, want) in [
        (
            "AUTH x\r\n",
            "-ERR AUTH <password> called without any password configured for the default user. Are you sure \
             your configuration is correct?\r\n",
        ),
        ("AUTH default x\r\n", "+OK\r\n"),
        (
            "AUTH other x\r\n",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        ("AUTH a b c\r\n", "-ERR syntax error\r\n"),
        ("TIME x\r\n", "-ERR wrong number of arguments for 'time' command\r\n"),
        ("SET a 1\r\nSET b 2\r\nUNLINK a b c\r\n", "+OK\r\n+OK\r\n:2\r\n"),
        ("SET a 1 EX 100\r\nRENAME a z\r\nTTL z\r\nEXISTS a\r\n", "+OK\r\n+OK\r\n:100\r\n:0\r\n"),
        ("RENAME nope y\r\n", "-ERR no such key\r\n"),
        ("SET b 1\r\nRENAMENX z b\r\nRENAMENX z c\r\n", "+OK\r\n:0\r\n:1\r\n"),
        ("RENAME c c\r\nRENAMENX c c\r\nGET c\r\n", "+OK\r\n:0\r\n$1\r\n1\r\n"),
        ("SET p 1\r\nEXPIRETIME p\r\nEXPIRETIME nope\r\n", "+OK\r\n:-1\r\n:-2\r\n"),
        (
            "PEXPIREAT p 99999999999999\r\nPEXPIRETIME p\r\nEXPIRETIME p\r\n",
            ":1\r\n:99999999999999\r\n:100000000000\r\n",
        ),
        // The destination's own deadline goes; the source's comes with it.
        (
            "SET q 1 EX 50\r\nSET r 2\r\nRENAME r q\r\nTTL q\r\nGET q\r\n",
            "+OK\r\n+OK\r\n+OK\r\n:-1\r\n$1\r\n2\r\n",
        ),
    ] {
        assert_eq!(talk(&mut s, send), want, "{send:?}");
    }
    let time = talk(&mut s, "TIME\r\n");
    let parts: Vec<&str> = time.split("\r\n").collect();
    let secs: u64 = parts[2].parse().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) <= 1, "{time:?}");
    assert!(parts[4].parse::<u32>().unwrap() < 1_000_000);
}

/// A rename is atomic: a reader of both names never sees the value under both or under neither.
#[test]
fn rename_moves_a_key_atomically() {
    let mut writer = session(Limits::default());
    let mut reader = other(&writer);
    let t0 = Instant::now();
    talk_at(&mut writer, b"SET a v\r\n", t0);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for i in 0..10_000 {
                let send: &[u8] = if i % 2 == 0 {
                    b"RENAME a b\r\n"
                } else {
                    b"RENAME b a\r\n"
                };
                let (wire, _) = talk_at(&mut writer, send, t0);
                assert_eq!(wire, b"+OK\r\n");
            }
        });
        for _ in 0..10_000 {
            let (wire, _) = talk_at(&mut reader, b"EXISTS a b\r\n", t0);
            assert_eq!(wire, b":1\r\n", "the key under exactly one name");
        }
    });
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
