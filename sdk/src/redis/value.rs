//! Replies as Rust types: [`FromValue`] for the common types, and the Redis error reply as an `Err`.

use std::collections::HashMap;
use std::hash::Hash;

use bytes::Bytes;

use crate::codec::resp::Value;
use crate::error::{Error, ErrorKind, Phase};

/// A type a Redis reply converts to: `String`, integers, `f64`, `bool`, `Bytes`, `Vec<u8>`, `Option<T>`
/// (nil is `None`), `Vec<T>`, tuples, `HashMap<K, V>` (from a flat array of pairs, as `HGETALL` sends), `()`
/// (any reply), and [`Value`] itself.
///
/// A Redis error reply never reaches a conversion: [`from_reply`] turns it into an `Err` of kind
/// [`ErrorKind::Server`] first. A reply of another type than the one asked for is an `Err` of kind
/// [`ErrorKind::Type`].
pub trait FromValue: Sized {
    /// Convert `value` (never a [`Value::Error`]).
    fn from_value(value: Value) -> Result<Self, Error>;

    /// Convert `value`, an element of an array reply (for `Vec<T>`, tuples and `HashMap<K, V>`). By default an
    /// element that is an error reply is an `Err`, as [`from_reply`] makes it; [`Value`] keeps it, so that
    /// `Vec<Value>` shows each of `EXEC`'s replies, a command that failed as its [`Value::Error`].
    fn from_item(value: Value) -> Result<Self, Error> {
        from_reply(value)
    }
}

/// A reply as `T`: an error reply is an `Err` of kind [`ErrorKind::Server`] whose
/// [`server_code`](Error::server_code) is the error's first word (`WRONGTYPE`, `ERR` …); anything else is
/// converted by [`FromValue`].
pub fn from_reply<T: FromValue>(value: Value) -> Result<T, Error> {
    match value {
        Value::Error(e) => Err(Error::server_reply(&e)),
        other => T::from_value(other),
    }
}

/// The error for a reply that is not a `want`.
pub(crate) fn type_error(want: &str, got: &Value) -> Error {
    let got = match got {
        Value::Simple(_) => "a simple string",
        Value::Error(_) => "an error",
        Value::Integer(_) => "an integer",
        Value::Bulk(_) => "a bulk string",
        Value::BulkHead { .. } => "a bulk string kept only in part",
        Value::ArrayHead { .. } => "an array kept only in part",
        Value::Null | Value::NullArray => "nil",
        Value::Array(_) => "an array",
    };
    Error::new(
        ErrorKind::Type,
        Phase::Request,
        format!("expected {want}, the reply is {got}"),
    )
}

impl FromValue for Value {
    fn from_value(value: Value) -> Result<Self, Error> {
        Ok(value)
    }

    /// An error reply inside an array stays a [`Value::Error`]: it was turned into an `Err` before, so that a
    /// transaction read as `Vec<Value>` (as [`transaction`](crate::Exclusive::transaction) tells) failed as a
    /// whole on one failed command and hid the replies of those that ran.
    fn from_item(value: Value) -> Result<Self, Error> {
        Ok(value)
    }
}

impl FromValue for () {
    fn from_value(_: Value) -> Result<Self, Error> {
        Ok(())
    }
}

impl FromValue for Bytes {
    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Bulk(b) | Value::Simple(b) => Ok(b),
            other => Err(type_error("a string", &other)),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: Value) -> Result<Self, Error> {
        Bytes::from_value(value).map(Vec::from)
    }
}

impl FromValue for String {
    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Bulk(b) | Value::Simple(b) => String::from_utf8(b.to_vec()).map_err(|_| {
                Error::new(
                    ErrorKind::Type,
                    Phase::Request,
                    "expected UTF-8 text, the reply is binary",
                )
            }),
            Value::Integer(n) => Ok(n.to_string()),
            other => Err(type_error("a string", &other)),
        }
    }
}

/// A number from an integer reply or from text (`GET` of a counter, `INCRBYFLOAT`).
macro_rules! from_number {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: Value) -> Result<Self, Error> {
                let want = concat!("a number (", stringify!($t), ")");
                match value {
                    Value::Integer(n) => <$t>::try_from(n).map_err(|_| {
                        Error::new(ErrorKind::Type, Phase::Request, format!("{n} does not fit {want}"))
                    }),
                    Value::Bulk(ref b) | Value::Simple(ref b) => std::str::from_utf8(b)
                        .ok()
                        .and_then(|s| s.parse::<$t>().ok())
                        .ok_or_else(|| type_error(want, &value)),
                    other => Err(type_error(want, &other)),
                }
            }
        }
    )*};
}

from_number!(i64, u64, i32, u32, usize, isize);

impl FromValue for f64 {
    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Integer(n) => Ok(n as f64),
            Value::Bulk(ref b) | Value::Simple(ref b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| match s {
                    "inf" | "+inf" => Some(f64::INFINITY),
                    "-inf" => Some(f64::NEG_INFINITY),
                    s => s.parse().ok(),
                })
                .ok_or_else(|| type_error("a number (f64)", &value)),
            other => Err(type_error("a number (f64)", &other)),
        }
    }
}

impl FromValue for bool {
    /// `:1`/`:0` (`EXISTS`, `SETNX`, `EXPIRE`), `+OK`, the text `1`/`0`, or nil as false (`SET k v NX` that
    /// did not set, as redis-rs reads it; it was an `Err` of kind `Type`, in the case a lock's caller tests).
    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Integer(n) => Ok(n != 0),
            Value::Null | Value::NullArray => Ok(false),
            Value::Simple(ref b) if &b[..] == b"OK" => Ok(true),
            Value::Bulk(ref b) | Value::Simple(ref b) if &b[..] == b"1" => Ok(true),
            Value::Bulk(ref b) | Value::Simple(ref b) if &b[..] == b"0" => Ok(false),
            other => Err(type_error("a boolean", &other)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Null | Value::NullArray => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }

    fn from_item(value: Value) -> Result<Self, Error> {
        match value {
            Value::Null | Value::NullArray => Ok(None),
            other => T::from_item(other).map(Some),
        }
    }
}

/// The items of an array reply (nil is empty). An item that is an error reply is an `Err`.
fn items(value: Value) -> Result<Vec<Value>, Error> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Null | Value::NullArray => Ok(Vec::new()),
        other => Err(type_error("an array", &other)),
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(value: Value) -> Result<Self, Error> {
        items(value)?.into_iter().map(T::from_item).collect()
    }
}

impl<K: FromValue + Eq + Hash, V: FromValue> FromValue for HashMap<K, V> {
    fn from_value(value: Value) -> Result<Self, Error> {
        let items = items(value)?;
        if items.len() % 2 != 0 {
            return Err(Error::new(
                ErrorKind::Type,
                Phase::Request,
                format!(
                    "expected field/value pairs, the array has {} items",
                    items.len()
                ),
            ));
        }
        let mut map = HashMap::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            map.insert(K::from_item(k)?, V::from_item(v)?);
        }
        Ok(map)
    }
}

macro_rules! from_tuple {
    ($n:literal: $($t:ident),+) => {
        impl<$($t: FromValue),+> FromValue for ($($t,)+) {
            fn from_value(value: Value) -> Result<Self, Error> {
                let items = items(value)?;
                if items.len() != $n {
                    return Err(Error::new(
                        ErrorKind::Type,
                        Phase::Request,
                        format!("expected an array of {}, the reply has {} items", $n, items.len()),
                    ));
                }
                let mut it = items.into_iter();
                Ok(($($t::from_item(it.next().expect("length checked"))?,)+))
            }
        }
    };
}

from_tuple!(1: A);
from_tuple!(2: A, B);
from_tuple!(3: A, B, C);
from_tuple!(4: A, B, C, D);
from_tuple!(5: A, B, C, D, E);
from_tuple!(6: A, B, C, D, E, F);

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn scalars_convert_and_mismatches_say_so() {
        assert_eq!(from_reply::<i64>(Value::Integer(-4)).unwrap(), -4);
        assert_eq!(from_reply::<i64>(bulk("42")).unwrap(), 42);
        assert_eq!(
            from_reply::<u64>(bulk("18446744073709551615")).unwrap(),
            u64::MAX
        );
        assert_eq!(from_reply::<f64>(bulk("2.5")).unwrap(), 2.5);
        assert_eq!(from_reply::<String>(bulk("hé")).unwrap(), "hé");
        assert!(from_reply::<bool>(Value::ok()).unwrap());
        assert!(!from_reply::<bool>(Value::Integer(0)).unwrap());
        assert!(!from_reply::<bool>(Value::Null).unwrap());
        assert_eq!(from_reply::<Option<bool>>(Value::Null).unwrap(), None);
        assert_eq!(from_reply::<Vec<u8>>(bulk("\0\r\n")).unwrap(), b"\0\r\n");
        assert_eq!(from_reply::<Option<String>>(Value::Null).unwrap(), None);
        let e = from_reply::<u64>(Value::Integer(-1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Type);
        let e = from_reply::<String>(Value::Null).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected a string, the reply is nil"),
            "{e}"
        );
        let e = from_reply::<i64>(bulk("x")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Type);
    }

    #[test]
    fn error_replies_are_errs_with_their_code() {
        let e = from_reply::<Value>(Value::Error(Bytes::from_static(
            b"WRONGTYPE Operation against a key holding the wrong kind of value",
        )))
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server);
        assert_eq!(e.server_code(), Some("WRONGTYPE"));
        assert!(e.was_sent() && !e.is_retryable());
        // Inside an array too (EXEC's replies).
        let e = from_reply::<Vec<i64>>(Value::Array(vec![
            Value::Integer(1),
            Value::Error(Bytes::from_static(b"ERR no")),
        ]))
        .unwrap_err();
        assert_eq!(e.server_code(), Some("ERR"));
        // … but `Value` keeps it, in a `Vec`, an `Option`, a tuple or a map, as the transaction docs say.
        let exec = Value::Array(vec![
            Value::Integer(1),
            Value::Error(Bytes::from_static(b"WRONGTYPE no")),
        ]);
        let v: Vec<Value> = from_reply(exec.clone()).unwrap();
        assert_eq!(v[1], Value::Error(Bytes::from_static(b"WRONGTYPE no")));
        let v: Vec<Option<Value>> = from_reply(exec.clone()).unwrap();
        assert_eq!(v[0], Some(Value::Integer(1)));
        let (n, e): (i64, Value) = from_reply(exec.clone()).unwrap();
        assert_eq!(
            (n, e),
            (1, Value::Error(Bytes::from_static(b"WRONGTYPE no")))
        );
        let m: HashMap<i64, Value> = from_reply(exec.clone()).unwrap();
        assert_eq!(m.len(), 1);
        let e = from_reply::<(i64, i64)>(exec).unwrap_err();
        assert_eq!(e.server_code(), Some("WRONGTYPE"));
    }

    #[test]
    fn collections_and_tuples() {
        let arr = Value::Array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")]);
        let m: HashMap<String, i64> = from_reply(arr.clone()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["b"], 2);
        let v: Vec<String> = from_reply(arr.clone()).unwrap();
        assert_eq!(v, ["a", "1", "b", "2"]);
        let t: (String, i64, Bytes, Option<i64>) = from_reply(arr.clone()).unwrap();
        assert_eq!((t.0.as_str(), t.1), ("a", 1));
        let e = from_reply::<(String, i64)>(arr).unwrap_err();
        assert!(e.to_string().contains("array of 2"), "{e}");
        assert_eq!(
            from_reply::<Vec<i64>>(Value::NullArray).unwrap(),
            Vec::<i64>::new()
        );
    }
}
