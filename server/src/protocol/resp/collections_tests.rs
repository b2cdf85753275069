//! The `resp` session's commands on lists, sets, hashes and sorted sets, against what redis-server 7.0.15
//! answers.

use super::tests::{session, talk, talk_at};
use super::*;
use std::time::Duration;

use crate::config::Limits;
use crate::store::{cost, LIST_ITEM};

/// Each command as redis-server 7.0.15 answered it (recorded through a socket, inline, one after the other
/// from `FLUSHALL`): the replies' kinds (a null array from `LPOP k 2` on a missing key, `*0` from `SPOP`), the
/// errors' words and their order of checks (`ZADD`), `%.17g` scores, `-WRONGTYPE` both ways, and `TYPE`,
/// `RENAME` and `EXPIRE` on collections.
#[test]
fn collection_commands_answer_as_redis_7_0_does() {
    let mut s = session(Limits::default());
    for (send, want) in [
        ("rpush l a b c", ":3\r\n"),
        ("lpop nol 2", "*-1\r\n"),
        ("lpop nol", "$-1\r\n"),
        ("lpop l 0", "*0\r\n"),
        ("lpop nol 0", "*-1\r\n"),
        ("lpop l x", "-ERR value is out of range, must be positive\r\n"),
        ("lpop l 1 2", "-ERR wrong number of arguments for 'lpop' command\r\n"),
        ("lpush l x y", ":5\r\n"),
        ("lrange l 0 -1", "*5\r\n$1\r\ny\r\n$1\r\nx\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"),
        ("lrange l -100 100", "*5\r\n$1\r\ny\r\n$1\r\nx\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"),
        ("lrange l 2 1", "*0\r\n"),
        ("lrange l x 1", "-ERR value is not an integer or out of range\r\n"),
        ("lindex l 0", "$1\r\ny\r\n"),
        ("lindex l -1", "$1\r\nc\r\n"),
        ("lindex l 99", "$-1\r\n"),
        ("lindex l -99", "$-1\r\n"),
        ("lindex l x", "-ERR value is not an integer or out of range\r\n"),
        ("llen l", ":5\r\n"),
        ("llen nol", ":0\r\n"),
        ("rpop l 2", "*2\r\n$1\r\nc\r\n$1\r\nb\r\n"),
        ("rpop l", "$1\r\na\r\n"),
        ("lpushx nol a", ":0\r\n"),
        ("rpushx l q", ":3\r\n"),
        ("exists nol", ":0\r\n"),
        ("spop st 0", "*0\r\n"),
        ("sadd st a", ":1\r\n"),
        ("spop st 0", "*0\r\n"),
        ("spop nost 2", "*0\r\n"),
        ("spop nost", "$-1\r\n"),
        ("spop st 5", "*1\r\n$1\r\na\r\n"),
        ("spop st 1 2", "-ERR syntax error\r\n"),
        ("sadd st a b c a", ":3\r\n"),
        ("scard st", ":3\r\n"),
        ("sismember st a", ":1\r\n"),
        ("sismember st z", ":0\r\n"),
        ("srem st a z", ":1\r\n"),
        ("smembers nost", "*0\r\n"),
        ("zpopmin z 0", "*0\r\n"),
        ("zpopmin noz", "*0\r\n"),
        ("zpopmin noz 2", "*0\r\n"),
        ("zadd z 1 a", ":1\r\n"),
        ("zpopmin z 0", "*0\r\n"),
        ("zpopmin z -1", "-ERR value is out of range, must be positive\r\n"),
        ("zpopmin z 1 2", "-ERR syntax error\r\n"),
        ("zadd z 1 a 2 b", ":1\r\n"),
        ("zpopmin z -1", "-ERR value is out of range, must be positive\r\n"),
        ("zadd z 0.1 a 1e21 b inf c -0 d 1.5 e", ":3\r\n"),
        ("zrange z 0 -1 withscores", "*10\r\n$1\r\nd\r\n$1\r\n0\r\n$1\r\na\r\n$19\r\n0.10000000000000001\r\n$1\r\ne\r\n$3\r\n1.5\r\n$1\r\nb\r\n$5\r\n1e+21\r\n$1\r\nc\r\n$3\r\ninf\r\n"),
        ("zrange z 0 -1 rev withscores", "*10\r\n$1\r\nc\r\n$3\r\ninf\r\n$1\r\nb\r\n$5\r\n1e+21\r\n$1\r\ne\r\n$3\r\n1.5\r\n$1\r\na\r\n$19\r\n0.10000000000000001\r\n$1\r\nd\r\n$1\r\n0\r\n"),
        ("zrange z 1 2", "*2\r\n$1\r\na\r\n$1\r\ne\r\n"),
        ("zrank z e", ":2\r\n"),
        ("zrevrank z e", ":2\r\n"),
        ("zrank z c", ":4\r\n"),
        ("zrevrank z c", ":0\r\n"),
        ("zrank z nope", "$-1\r\n"),
        ("zrank noz a", "$-1\r\n"),
        ("zrank z", "-ERR wrong number of arguments for 'zrank' command\r\n"),
        ("zrevrange z 0 1", "*2\r\n$1\r\nc\r\n$1\r\nb\r\n"),
        ("zrevrange z 1 -1 withscores", "*8\r\n$1\r\nb\r\n$5\r\n1e+21\r\n$1\r\ne\r\n$3\r\n1.5\r\n$1\r\na\r\n$19\r\n0.10000000000000001\r\n$1\r\nd\r\n$1\r\n0\r\n"),
        ("zrevrange z 0 -1 rev", "-ERR syntax error\r\n"),
        ("zrevrange z x 1", "-ERR value is not an integer or out of range\r\n"),
        ("zrevrange noz 0 -1", "*0\r\n"),
        ("zrank l a", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("zscore z a", "$19\r\n0.10000000000000001\r\n"),
        ("zscore z nope", "$-1\r\n"),
        ("zscore noz a", "$-1\r\n"),
        ("zadd z nan x", "-ERR value is not a valid float\r\n"),
        ("zadd z NX XX 1 a", "-ERR XX and NX options at the same time are not compatible\r\n"),
        ("zadd z GT LT 1 a", "-ERR GT, LT, and/or NX options at the same time are not compatible\r\n"),
        ("zadd z GT NX 1 a", "-ERR GT, LT, and/or NX options at the same time are not compatible\r\n"),
        ("zadd z INCR 1 a 2 b", "-ERR INCR option supports a single increment-element pair\r\n"),
        ("zadd z INCR 2 a", "$18\r\n2.1000000000000001\r\n"),
        ("zadd z 1", "-ERR wrong number of arguments for 'zadd' command\r\n"),
        ("zadd z NX 1", "-ERR syntax error\r\n"),
        ("zadd z 1 a 2", "-ERR syntax error\r\n"),
        ("zadd z CH 5 a 2 b 3 c", ":3\r\n"),
        ("zadd z XX 1 q", ":0\r\n"),
        ("zadd z XX INCR 1 q", "$-1\r\n"),
        ("zadd z NX INCR 1 a", "$-1\r\n"),
        ("zadd z GT CH 1 a", ":0\r\n"),
        ("zadd z LT CH 1 a", ":1\r\n"),
        ("zadd z GT 9 newm", ":1\r\n"),
        ("zadd z 1 x y z", "-ERR value is not a valid float\r\n"),
        ("zincrby z 1.5 q", "$3\r\n1.5\r\n"),
        ("zincrby z x q", "-ERR value is not a valid float\r\n"),
        ("zadd zz inf m", ":1\r\n"),
        ("zincrby zz -inf m", "-ERR resulting score is not a number (NaN)\r\n"),
        ("zcard z", ":7\r\n"),
        ("zrem z a nope", ":1\r\n"),
        ("zpopmax z 2", "*4\r\n$4\r\nnewm\r\n$1\r\n9\r\n$1\r\nc\r\n$1\r\n3\r\n"),
        ("zpopmin z 2", "*4\r\n$1\r\nd\r\n$1\r\n0\r\n$1\r\ne\r\n$3\r\n1.5\r\n"),
        ("set s v", "+OK\r\n"),
        ("lpush s x", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("sadd s x", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("hset s f v", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("zadd s 1 x", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("lrange s 0 1", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("get z", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("getdel z", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("strlen z", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("append z x", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("incr z", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("getrange z 0 1", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("set z v GET", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("getset z v", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("type z", "+zset\r\n"),
        ("mget z s nokey", "*3\r\n$-1\r\n$1\r\nv\r\n$-1\r\n"),
        ("type l", "+list\r\n"),
        ("type st", "+set\r\n"),
        ("hset h f", "-ERR wrong number of arguments for 'hset' command\r\n"),
        ("hset h f v g", "-ERR wrong number of arguments for 'hset' command\r\n"),
        ("hset h f v g w", ":2\r\n"),
        ("hset h f v2", ":0\r\n"),
        ("hget h f", "$2\r\nv2\r\n"),
        ("hget h nof", "$-1\r\n"),
        ("hget noh f", "$-1\r\n"),
        ("hmget h f nof g", "*3\r\n$2\r\nv2\r\n$-1\r\n$1\r\nw\r\n"),
        ("hmget noh a b", "*2\r\n$-1\r\n$-1\r\n"),
        ("hmset h a b", "+OK\r\n"),
        ("hlen h", ":3\r\n"),
        ("hexists h a", ":1\r\n"),
        ("hexists h x", ":0\r\n"),
        ("hdel h a x", ":1\r\n"),
        ("hgetall noh", "*0\r\n"),
        ("hincrby h f 1", "-ERR hash value is not an integer\r\n"),
        ("hincrby h n 5", ":5\r\n"),
        ("hincrby h n x", "-ERR value is not an integer or out of range\r\n"),
        ("hincrby h n 9223372036854775807", "-ERR increment or decrement would overflow\r\n"),
        ("type h", "+hash\r\n"),
        ("del h l st z zz", ":5\r\n"),
        ("exists h", ":0\r\n"),
        ("rename s s2", "+OK\r\n"),
        ("lpush lst a b c", ":3\r\n"),
        ("rename lst lst2", "+OK\r\n"),
        ("lrange lst2 0 -1", "*3\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n"),
        ("type lst2", "+list\r\n"),
        ("expire lst2 100", ":1\r\n"),
        ("ttl lst2", ":100\r\n"),
        ("set lst2 string", "+OK\r\n"),
        ("type lst2", "+string\r\n"),
        ("set x 1", "+OK\r\n"),
        ("sadd mys a", ":1\r\n"),
        ("del nl", ":0\r\n"),
        ("rpush nl a b a c a", ":5\r\n"),
        ("lset nl -1 z", "+OK\r\n"),
        ("lset nl 9 z", "-ERR index out of range\r\n"),
        ("lset nl x z", "-ERR value is not an integer or out of range\r\n"),
        ("lset nonl x z", "-ERR no such key\r\n"),
        ("lrem nl -1 a", ":1\r\n"),
        ("lrem nl 0 a", ":1\r\n"),
        ("lrem nl x a", "-ERR value is not an integer or out of range\r\n"),
        ("lrange nl 0 -1", "*3\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nz\r\n"),
        ("ltrim nl 1 -1", "+OK\r\n"),
        ("lrange nl 0 -1", "*2\r\n$1\r\nc\r\n$1\r\nz\r\n"),
        ("ltrim nl 5 1", "+OK\r\n"),
        ("exists nl", ":0\r\n"),
        ("ltrim nonl 0 1", "+OK\r\n"),
        ("ltrim nonl x 1", "-ERR value is not an integer or out of range\r\n"),
        ("lrem nonl 1 a", ":0\r\n"),
        ("del nh", ":0\r\n"),
        ("hsetnx nh f 1", ":1\r\n"),
        ("hsetnx nh f 2", ":0\r\n"),
        ("hget nh f", "$1\r\n1\r\n"),
        ("hkeys nh", "*1\r\n$1\r\nf\r\n"),
        ("hvals nh", "*1\r\n$1\r\n1\r\n"),
        ("hkeys nonh", "*0\r\n"),
        ("hvals nonh", "*0\r\n"),
        ("lset nh 0 x", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("hkeys nl2 x", "-ERR wrong number of arguments for 'hkeys' command\r\n"),
        ("del sc", ":0\r\n"),
        ("zadd sc 1 a 2 b 3 c 4 d", ":4\r\n"),
        ("zcount sc 2 3", ":2\r\n"),
        ("zcount sc (2 +inf", ":2\r\n"),
        ("zcount sc -inf (1", ":0\r\n"),
        ("zcount sc x 1", "-ERR min or max is not a float\r\n"),
        ("zcount nosc 0 1", ":0\r\n"),
        ("zrangebyscore sc (1 3", "*2\r\n$1\r\nb\r\n$1\r\nc\r\n"),
        ("zrangebyscore sc -inf +inf withscores limit 1 2", "*4\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n"),
        ("zrangebyscore sc -inf +inf limit -1 2", "*0\r\n"),
        ("zrangebyscore sc -inf +inf limit 2 -1", "*2\r\n$1\r\nc\r\n$1\r\nd\r\n"),
        ("zrangebyscore sc 3 1", "*0\r\n"),
        ("zrangebyscore sc 0 1 limit 0", "-ERR syntax error\r\n"),
        ("zrangebyscore sc 0 1 foo", "-ERR syntax error\r\n"),
        ("zrangebyscore sc a 1", "-ERR min or max is not a float\r\n"),
        ("zrangebyscore nosc 0 1", "*0\r\n"),
        ("set scs x", "+OK\r\n"),
        ("zcount scs 0 1", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("zrangebyscore scs 0 1", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("del sr", ":0\r\n"),
        ("zadd sr 1 a 2 b 3 c 4 d 5 e", ":5\r\n"),
        ("zrevrangebyscore sr 4 (1 withscores limit 1 2", "*4\r\n$1\r\nc\r\n$1\r\n3\r\n$1\r\nb\r\n$1\r\n2\r\n"),
        ("zrevrangebyscore sr +inf -inf limit 0 2", "*2\r\n$1\r\ne\r\n$1\r\nd\r\n"),
        ("zrevrangebyscore sr +inf -inf limit -1 2", "*0\r\n"),
        ("zrevrangebyscore sr +inf -inf limit 3 -1", "*2\r\n$1\r\nb\r\n$1\r\na\r\n"),
        ("zrevrangebyscore sr (5 (2", "*2\r\n$1\r\nd\r\n$1\r\nc\r\n"),
        ("zrevrangebyscore sr 1 3", "*0\r\n"),
        ("zrevrangebyscore sr x 1", "-ERR min or max is not a float\r\n"),
        ("zrevrangebyscore sr 1 0 foo", "-ERR syntax error\r\n"),
        ("zrevrangebyscore sr 1 0 limit 1", "-ERR syntax error\r\n"),
        ("zrevrangebyscore nosr 1 0", "*0\r\n"),
        ("zremrangebyrank sr 1 -2", ":3\r\n"),
        ("zrange sr 0 -1 withscores", "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\ne\r\n$1\r\n5\r\n"),
        ("zremrangebyrank sr 5 9", ":0\r\n"),
        ("zremrangebyrank sr 1 0", ":0\r\n"),
        ("zremrangebyrank sr x 1", "-ERR value is not an integer or out of range\r\n"),
        ("zremrangebyscore sr -inf (5", ":1\r\n"),
        ("zremrangebyscore sr a 1", "-ERR min or max is not a float\r\n"),
        ("zremrangebyscore sr 0 10", ":1\r\n"),
        ("exists sr", ":0\r\n"),
        ("zremrangebyrank nosr 0 -1", ":0\r\n"),
        ("zremrangebyscore nosr 0 1", ":0\r\n"),
        ("set srs x", "+OK\r\n"),
        ("zremrangebyrank srs 0 1", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("zremrangebyscore srs 0 1", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("zrevrangebyscore srs 1 0", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ("zremrangebyrank sr 0", "-ERR wrong number of arguments for 'zremrangebyrank' command\r\n"),
    ] {
        assert_eq!(talk(&mut s, &format!("{send}\r\n")), want, "{send:?}");
    }
}

/// A list, set, hash or sorted set counts in `--max-store` as a string does: a write that would pass it gets
/// `-OOM` and changes nothing (not even a part of its members), what does not grow the store still runs, and
/// emptying a collection gives every byte back.
#[test]
fn collections_count_in_max_store_and_writes_past_it_change_nothing() {
    let one = cost(1, 1 + LIST_ITEM, false);
    let mut s = session(Limits {
        max_store: one * 3,
        ..Limits::default()
    });
    assert_eq!(talk(&mut s, "RPUSH l a b\r\n"), ":2\r\n");
    let oom = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
    let hincrby = format!("HINCRBY h2 {} 1\r\n", "f".repeat(400));
    for send in [
        "RPUSH l c d e f g h i j k l m n o p q r s t u v w x y z\r\n",
        "SADD s a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n",
        "HSET h a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n",
        "ZADD z 1 a 2 b 3 c 4 d 5 e 6 f 7 g 8 h 9 i 10 j 11 k 12 l\r\n",
        &hincrby,
    ] {
        assert_eq!(talk(&mut s, send), oom, "{send:?}");
    }
    assert_eq!(
        talk(&mut s, "LRANGE l 0 -1\r\nEXISTS s h z h2\r\n"),
        "*2\r\n$1\r\na\r\n$1\r\nb\r\n:0\r\n",
        "nothing changed"
    );
    assert_eq!(
        talk(&mut s, "LPOP l\r\nRPUSH l c\r\nLLEN l\r\n"),
        "$1\r\na\r\n:2\r\n:2\r\n",
        "a pop makes room"
    );
    assert_eq!(talk(&mut s, "RPOP l 5\r\n"), "*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
    assert_eq!(
        s.shared.db.used(),
        0,
        "an emptied list is gone with its key"
    );
    assert_eq!(talk(&mut s, "EXISTS l\r\n"), ":0\r\n");
}

/// `WATCH` sees a collection change (a push, a pop, `HSET`), not a write that changes nothing (`SADD` of a
/// member there); `EXEC` runs collection commands in its array.
#[test]
fn watch_and_exec_see_collection_writes() {
    let mut a = session(Limits::default());
    let mut b = super::tests::other(&a);
    talk(&mut a, "SADD s m\r\nRPUSH l x\r\n");
    assert_eq!(talk(&mut a, "WATCH s\r\n"), "+OK\r\n");
    assert_eq!(talk(&mut b, "SADD s m\r\n"), ":0\r\n");
    assert_eq!(
        talk(&mut a, "MULTI\r\nSADD s n\r\nSCARD s\r\nLPOP l\r\nEXEC\r\n"),
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n:1\r\n:2\r\n$1\r\nx\r\n",
        "nothing changed s"
    );
    assert_eq!(talk(&mut a, "WATCH s\r\n"), "+OK\r\n");
    assert_eq!(talk(&mut b, "SREM s m\r\n"), ":1\r\n");
    assert_eq!(
        talk(&mut a, "MULTI\r\nSCARD s\r\nEXEC\r\n"),
        "+OK\r\n+QUEUED\r\n*-1\r\n",
        "SREM changed s"
    );
}

/// A collection with a time to live is gone at its deadline, for every command, and its bytes go back.
#[test]
fn collections_expire() {
    let mut s = session(Limits::default());
    let t0 = Instant::now();
    let at = |s: &mut RespSession, send: &str, t| {
        String::from_utf8(talk_at(s, send.as_bytes(), t).0).unwrap()
    };
    assert_eq!(
        at(&mut s, "ZADD z 1 a\r\nPEXPIRE z 10\r\nTYPE z\r\n", t0),
        ":1\r\n:1\r\n+zset\r\n"
    );
    let later = t0 + Duration::from_millis(10);
    assert_eq!(
        at(
            &mut s,
            "TYPE z\r\nZCARD z\r\nZADD z 2 b\r\nTTL z\r\n",
            later
        ),
        "+none\r\n:0\r\n:1\r\n:-1\r\n"
    );
}

/// `LRANGE` of a long list is written a part at a time: the session never holds much more than
/// `--write-high-water` of it, whatever the list's size; `SPOP` pops every member once.
#[test]
fn large_collection_replies_are_written_in_parts() {
    let high_water = 16 * 1024;
    let mut s = session(Limits {
        write_high_water: high_water,
        ..Limits::default()
    });
    let member = "m".repeat(100);
    for _ in 0..100 {
        let push = format!("RPUSH l{}\r\n", format!(" {member}").repeat(100));
        talk(&mut s, &push);
    }
    let (reply, most) = talk_at(&mut s, b"LRANGE l 0 -1\r\n", Instant::now());
    assert!(reply.starts_with(b"*10000\r\n$100\r\n"));
    assert_eq!(reply.len(), 8 + 10_000 * (6 + 100 + 2));
    assert!(
        most <= 2 * high_water,
        "held {most} bytes of output at once"
    );
    let adds: String = (0..1000).map(|i| format!(" m{i}")).collect();
    assert_eq!(talk(&mut s, &format!("SADD s{adds}\r\n")), ":1000\r\n");
    let popped = talk(&mut s, "SPOP s 600\r\nSPOP s 600\r\nSCARD s\r\n");
    let mut members: Vec<&str> = popped
        .split("\r\n")
        .filter(|l| l.starts_with('m'))
        .collect();
    members.sort();
    members.dedup();
    assert_eq!(members.len(), 1000, "every member once");
    assert!(popped.ends_with(":0\r\n"));
}

/// Past `--memory-budget`, a reply of more than 2,048 members (a listing, a pop with a count, `KEYS`) gets the
/// busy answer and changes nothing; shorter ones are still served.
#[test]
fn long_listings_and_pops_wait_while_the_server_is_over_its_memory_budget() {
    let mut s = session(Limits {
        memory_budget: 1000,
        ..Limits::default()
    });
    let many: String = (0..3000).map(|i| format!(" m{i}")).collect();
    let pairs: String = (0..3000).map(|i| format!(" {i} m{i}")).collect();
    let fields: String = (0..3000).map(|i| format!(" f{i} v")).collect();
    talk(
        &mut s,
        &format!("RPUSH l{many}\r\nSADD s{many}\r\nZADD z{pairs}\r\nHSET h{fields}\r\n"),
    );
    let keys: String = (0..3000).map(|i| format!(" k{i} v")).collect();
    talk(&mut s, &format!("MSET{keys}\r\n"));
    // Other connections' buffers take the server over its budget.
    s.shared.account(0, 2000);
    let busy = "-BUSY server memory budget exceeded, try again later\r\n";
    for send in [
        "LRANGE l 0 -1",
        "SMEMBERS s",
        "HGETALL h",
        "ZRANGE z 0 -1",
        "LPOP l 3000",
        "RPOP l 2049",
        "SPOP s 3000",
        "ZPOPMIN z 2000",
        "KEYS *",
    ] {
        assert_eq!(talk(&mut s, &format!("{send}\r\n")), busy, "{send:?}");
    }
    assert_eq!(
        talk(&mut s, "LLEN l\r\nSCARD s\r\nZCARD z\r\n"),
        ":3000\r\n:3000\r\n:3000\r\n",
        "nothing popped"
    );
    assert!(talk(&mut s, "LRANGE l 0 2047\r\n").starts_with("*2048\r\n"));
    assert!(talk(&mut s, "LPOP l 2048\r\n").starts_with("*2048\r\n"));
    // Back under the budget: served.
    s.shared.account(2000, 0);
    assert!(talk(&mut s, "SPOP s 3000\r\n").starts_with("*3000\r\n"));
    assert!(talk(&mut s, "HGETALL h\r\n").starts_with("*6000\r\n"));
}
