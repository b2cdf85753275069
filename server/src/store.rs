//! The RESP key space ([`Db`]): one map shared by every connection of a server (every `resp` session, under
//! every model), sharded so connections on different threads rarely wait for each other.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

/// Shards of the key space; a key's shard is picked by an FNV-1a hash, so connections on different threads
/// rarely wait for each other.
const SHARDS: usize = 64;

/// The RESP key space: `SHARDS` mutex-guarded maps.
pub struct Db {
    shards: Vec<Mutex<HashMap<Bytes, Bytes>>>,
}

impl Default for Db {
    fn default() -> Self {
        Db {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl Db {
    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, HashMap<Bytes, Bytes>> {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in key {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.shards[(h as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The value at `key`.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.shard(key).get(key).cloned()
    }

    /// Sets `key` to `value` (both copied, so they do not pin the connection's read buffer).
    pub fn set(&self, key: &[u8], value: &[u8]) {
        self.shard(key)
            .insert(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
    }

    /// Removes `key`; true if it was there.
    pub fn del(&self, key: &[u8]) -> bool {
        self.shard(key).remove(key).is_some()
    }

    /// True if `key` is there.
    pub fn exists(&self, key: &[u8]) -> bool {
        self.shard(key).contains_key(key)
    }

    /// Adds `delta` to the integer at `key` (0 if missing): `INCR`, `INCRBY`, `DECR`, `DECRBY`. The value is
    /// left unchanged, and the error says why, when it is not an integer or the sum would overflow.
    pub fn incr_by(&self, key: &[u8], delta: i64) -> Result<i64, IncrError> {
        let mut shard = self.shard(key);
        let current = match shard.get(key) {
            Some(v) => parse_i64(v).ok_or(IncrError::NotAnInteger)?,
            None => 0,
        };
        let next = current.checked_add(delta).ok_or(IncrError::Overflow)?;
        let mut buf = itoa::Buffer::new();
        let text = Bytes::copy_from_slice(buf.format(next).as_bytes());
        match shard.get_mut(key) {
            Some(v) => *v = text,
            None => {
                shard.insert(Bytes::copy_from_slice(key), text);
            }
        }
        Ok(next)
    }
}

/// Why [`Db::incr_by`] left a value unchanged; each has Redis's own reply ([`IncrError::reply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrError {
    /// The value is not an integer Redis accepts (or is out of the i64 range).
    NotAnInteger,
    /// The value is an integer, but adding to it would pass the i64 range.
    Overflow,
}

impl IncrError {
    /// The error text redis-server 7 replies for this case (`-<text>` on the wire).
    pub fn reply(self) -> &'static str {
        match self {
            IncrError::NotAnInteger => "ERR value is not an integer or out of range",
            IncrError::Overflow => "ERR increment or decrement would overflow",
        }
    }
}

/// Redis's integer rule for INCR (and for the argument of INCRBY and DECRBY): an optional `-`, digits, no
/// leading zeros, no spaces, within i64.
pub fn parse_i64(v: &[u8]) -> Option<i64> {
    let (neg, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    if digits.is_empty()
        || digits.len() > 19
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        n = n.checked_mul(10)?;
        n = if neg {
            n.checked_sub(i64::from(d - b'0'))?
        } else {
            n.checked_add(i64::from(d - b'0'))?
        };
    }
    if neg && n == 0 {
        return None;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_redis_rules() {
        for (text, want) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("007", None),
            ("-0", None),
            ("+1", None),
            (" 1", None),
            ("", None),
            ("1x", None),
        ] {
            assert_eq!(parse_i64(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn incr_counts_from_zero_and_refuses_non_integers_and_overflow() {
        let db = Db::default();
        assert_eq!(db.incr_by(b"n", 1), Ok(1));
        assert_eq!(db.incr_by(b"n", 1), Ok(2));
        assert_eq!(db.get(b"n").as_deref(), Some(&b"2"[..]));
        db.set(b"s", b"abc");
        assert_eq!(db.incr_by(b"s", 1), Err(IncrError::NotAnInteger));
        db.set(b"max", i64::MAX.to_string().as_bytes());
        assert_eq!(db.incr_by(b"max", 1), Err(IncrError::Overflow));
        assert_eq!(
            db.get(b"max").as_deref(),
            Some(i64::MAX.to_string().as_bytes())
        );
        assert!(db.exists(b"n") && db.del(b"n") && !db.exists(b"n") && !db.del(b"n"));
    }

    #[test]
    fn incr_by_adds_any_delta_and_refuses_overflow_both_ways() {
        let db = Db::default();
        assert_eq!(db.incr_by(b"n", 10), Ok(10));
        assert_eq!(db.incr_by(b"n", -15), Ok(-5));
        db.set(b"min", i64::MIN.to_string().as_bytes());
        assert_eq!(db.incr_by(b"min", -1), Err(IncrError::Overflow));
        assert_eq!(db.incr_by(b"min", i64::MAX), Ok(-1));
    }
}
