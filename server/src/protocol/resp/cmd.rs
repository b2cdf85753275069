//! The commands served: their names and Redis's arity table.

use super::collections::Coll;

/// The commands served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmd {
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
    Unlink,
    Rename,
    RenameNx,
    ExpireTime,
    PExpireTime,
    Auth,
    Time,
    Append,
    GetSet,
    GetRange,
    /// A command on a list, set, hash or sorted set.
    Coll(Coll),
}

/// Every command by name, the hot ones first.
pub(super) const COMMANDS: &[(&str, Cmd)] = &[
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
    ("UNLINK", Cmd::Unlink),
    ("RENAME", Cmd::Rename),
    ("RENAMENX", Cmd::RenameNx),
    ("EXPIRETIME", Cmd::ExpireTime),
    ("PEXPIRETIME", Cmd::PExpireTime),
    ("AUTH", Cmd::Auth),
    ("TIME", Cmd::Time),
    ("APPEND", Cmd::Append),
    ("GETSET", Cmd::GetSet),
    ("GETRANGE", Cmd::GetRange),
    ("SUBSTR", Cmd::GetRange),
    ("LPUSH", Cmd::Coll(Coll::LPush)),
    ("RPUSH", Cmd::Coll(Coll::RPush)),
    ("LPOP", Cmd::Coll(Coll::LPop)),
    ("RPOP", Cmd::Coll(Coll::RPop)),
    ("LRANGE", Cmd::Coll(Coll::LRange)),
    ("SADD", Cmd::Coll(Coll::SAdd)),
    ("SPOP", Cmd::Coll(Coll::SPop)),
    ("HSET", Cmd::Coll(Coll::HSet)),
    ("ZADD", Cmd::Coll(Coll::ZAdd)),
    ("ZPOPMIN", Cmd::Coll(Coll::ZPopMin)),
    ("LPUSHX", Cmd::Coll(Coll::LPushX)),
    ("RPUSHX", Cmd::Coll(Coll::RPushX)),
    ("LLEN", Cmd::Coll(Coll::LLen)),
    ("LINDEX", Cmd::Coll(Coll::LIndex)),
    ("SREM", Cmd::Coll(Coll::SRem)),
    ("SCARD", Cmd::Coll(Coll::SCard)),
    ("SISMEMBER", Cmd::Coll(Coll::SIsMember)),
    ("SMEMBERS", Cmd::Coll(Coll::SMembers)),
    ("HMSET", Cmd::Coll(Coll::HMSet)),
    ("HGET", Cmd::Coll(Coll::HGet)),
    ("HMGET", Cmd::Coll(Coll::HMGet)),
    ("HDEL", Cmd::Coll(Coll::HDel)),
    ("HLEN", Cmd::Coll(Coll::HLen)),
    ("HEXISTS", Cmd::Coll(Coll::HExists)),
    ("HGETALL", Cmd::Coll(Coll::HGetAll)),
    ("HINCRBY", Cmd::Coll(Coll::HIncrBy)),
    ("ZINCRBY", Cmd::Coll(Coll::ZIncrBy)),
    ("ZSCORE", Cmd::Coll(Coll::ZScore)),
    ("ZCARD", Cmd::Coll(Coll::ZCard)),
    ("ZREM", Cmd::Coll(Coll::ZRem)),
    ("ZPOPMAX", Cmd::Coll(Coll::ZPopMax)),
    ("ZRANGE", Cmd::Coll(Coll::ZRange)),
    ("ZREVRANGE", Cmd::Coll(Coll::ZRevRange)),
    ("ZRANK", Cmd::Coll(Coll::ZRank)),
    ("ZREVRANK", Cmd::Coll(Coll::ZRevRank)),
    ("LSET", Cmd::Coll(Coll::LSet)),
    ("LTRIM", Cmd::Coll(Coll::LTrim)),
    ("LREM", Cmd::Coll(Coll::LRem)),
    ("HSETNX", Cmd::Coll(Coll::HSetNx)),
    ("HKEYS", Cmd::Coll(Coll::HKeys)),
    ("HVALS", Cmd::Coll(Coll::HVals)),
    ("ZCOUNT", Cmd::Coll(Coll::ZCount)),
    ("ZRANGEBYSCORE", Cmd::Coll(Coll::ZRangeByScore)),
    ("ZREVRANGEBYSCORE", Cmd::Coll(Coll::ZRevRangeByScore)),
    ("ZREMRANGEBYRANK", Cmd::Coll(Coll::ZRemRangeByRank)),
    ("ZREMRANGEBYSCORE", Cmd::Coll(Coll::ZRemRangeByScore)),
];

impl Cmd {
    /// The command named `name` (any case).
    pub(super) fn lookup(name: &[u8]) -> Option<Cmd> {
        COMMANDS
            .iter()
            .find(|(n, _)| n.len() == name.len() && name.eq_ignore_ascii_case(n.as_bytes()))
            .map(|&(_, c)| c)
    }

    /// Redis's arity: `n` > 0, exactly `n` arguments (the name included); `n` < 0, at least `-n`.
    #[inline]
    pub(super) fn arity(self) -> i32 {
        use Cmd::*;
        match self {
            Ping | Quit | Hello | FlushDb | FlushAll | Info => -1,
            Get | GetDel | Incr | Decr | Echo | Ttl | PTtl | Persist | Select | Type | StrLen
            | Keys | ExpireTime | PExpireTime => 2,
            Rename | RenameNx => 3,
            Set | MSet | MSetNx | Expire | PExpire | ExpireAt | PExpireAt => -3,
            IncrBy | DecrBy | SetNx | Append | GetSet => 3,
            MGet | GetEx | Del | Unlink | Exists | Config | Watch | Client | Scan | Auth => -2,
            SetEx | PSetEx | GetRange => 4,
            Multi | Exec | Discard | Unwatch | DbSize | Time => 1,
            Coll(c) => c.arity(),
        }
    }

    /// True if `argc` arguments fit [`Cmd::arity`].
    #[inline]
    pub(super) fn arity_ok(self, argc: usize) -> bool {
        let a = self.arity();
        if a > 0 {
            argc == a as usize
        } else {
            argc >= a.unsigned_abs() as usize
        }
    }
}
