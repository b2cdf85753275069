//! A command builder: each argument is sent as one binary-safe RESP bulk string, so spaces, quotes, `\r\n` and
//! arbitrary bytes need no quoting.

use bytes::Bytes;

/// A Redis command: `cmd("SET").arg(key).arg(value)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    args: Vec<Bytes>,
}

/// Command names the typed helpers send, kept as static bytes: naming them copies nothing.
const STATIC_NAMES: &[&str] = &[
    "GET", "SET", "INCRBY", "DEL", "SCAN", "HSCAN", "SSCAN", "ZSCAN", "MULTI", "EXEC", "WATCH",
    "UNWATCH", "DISCARD",
];

/// A command named `name` (`"SET"`, `"HGETALL"` …), arguments to follow.
pub fn cmd(name: &str) -> Cmd {
    let name = match STATIC_NAMES.iter().find(|n| **n == name) {
        Some(n) => Bytes::from_static(n.as_bytes()),
        None => Bytes::copy_from_slice(name.as_bytes()),
    };
    // Room for a key and a value or two without growing.
    let mut args = Vec::with_capacity(4);
    args.push(name);
    Cmd { args }
}

impl Cmd {
    /// Append one argument.
    pub fn arg(mut self, arg: impl ToArg) -> Self {
        self.args.push(arg.to_arg());
        self
    }

    /// Append each of `args`.
    pub fn args<A: ToArg>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        self.args.extend(args.into_iter().map(ToArg::to_arg));
        self
    }

    /// The command name and arguments as sent.
    pub fn as_args(&self) -> &[Bytes] {
        &self.args
    }

    /// The request [`Client::call`](crate::Client::call) takes.
    pub fn into_args(self) -> Vec<Bytes> {
        self.args
    }
}

impl From<Cmd> for Vec<Bytes> {
    fn from(c: Cmd) -> Self {
        c.args
    }
}

/// A value that can be one command argument. Numbers are sent as their decimal text, as Redis expects.
pub trait ToArg {
    /// The argument's bytes.
    fn to_arg(self) -> Bytes;
}

impl ToArg for Bytes {
    fn to_arg(self) -> Bytes {
        self
    }
}

impl ToArg for &Bytes {
    fn to_arg(self) -> Bytes {
        self.clone()
    }
}

impl ToArg for Vec<u8> {
    fn to_arg(self) -> Bytes {
        Bytes::from(self)
    }
}

impl ToArg for &[u8] {
    fn to_arg(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> ToArg for &[u8; N] {
    fn to_arg(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl ToArg for String {
    fn to_arg(self) -> Bytes {
        Bytes::from(self)
    }
}

impl ToArg for &String {
    fn to_arg(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl ToArg for &str {
    fn to_arg(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

macro_rules! to_arg_number {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn to_arg(self) -> Bytes {
                Bytes::from(self.to_string())
            }
        }
    )*};
}

to_arg_number!(i64, u64, i32, u32, usize, isize, u16, i16, u8, i8, f64, f32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_binary_safe_and_numbers_are_text() {
        let c = cmd("SET")
            .arg("a key with spaces")
            .arg(&b"\"quoted\"\r\n\0"[..])
            .arg(42u64)
            .args(["x", "y"]);
        let args: Vec<&[u8]> = c.as_args().iter().map(|b| &b[..]).collect();
        assert_eq!(
            args,
            [
                &b"SET"[..],
                b"a key with spaces",
                b"\"quoted\"\r\n\0",
                b"42",
                b"x",
                b"y"
            ]
        );
    }
}
