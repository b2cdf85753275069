//! Redis, typed: URLs and connection set-up, a command builder, replies as Rust types with error replies as
//! `Err`, transactions on exclusive connections, and `SCAN` iteration.
//!
//! ```no_run
//! use sockpool::redis::cmd;
//! use sockpool::Client;
//!
//! # async fn demo() -> Result<(), sockpool::Error> {
//! // AUTH app s3cret and SELECT 3 run on every connection the pool opens.
//! let client = Client::redis("redis://app:s3cret@127.0.0.1:6379/3")?.build()?;
//! client.set("greeting", "hello").await?;
//! let v: Option<String> = client.get("greeting").await?;
//! let n: i64 = client.query(cmd("INCRBY").arg("counter").arg(5)).await?;
//! // A Redis error reply is an Err of kind Server, with its code.
//! let e = client.incr("greeting", 1).await.unwrap_err();
//! assert_eq!(e.server_code(), Some("ERR"));
//! # let _ = (v, n);
//! # Ok(())
//! # }
//! ```
//!
//! The `Value`-returning API ([`Client::command`](crate::Client::command), [`Client::call`](crate::Client::call))
//! stays as it was: a Redis error there is `Ok(Value::Error(..))`.
//!
//! Commands that change the state of the connection they run on (see [`state_command`]) are refused on the
//! shared connections: set them up per connection ([`RedisSetup`], the URL) or use an
//! [`Exclusive`](crate::Exclusive) connection ([`Client::exclusive`](crate::Client::exclusive)), which also
//! runs transactions ([`Exclusive::transaction`](crate::Exclusive::transaction)).
//!
//! Pub/sub and `MONITOR` ([`push_command`]) are refused everywhere, exclusive connections included: after them the
//! server sends pushes rather than one reply per request, and this crate has no connection that reads pushes.

mod blocking;
mod cmd;
mod scan;
mod setup;
mod transaction;
mod value;

use bytes::Bytes;

pub use blocking::blocking_command;
pub use cmd::{cmd, Cmd, ToArg};
pub use scan::Scan;
pub use setup::RedisSetup;
pub use value::{from_reply, FromValue};

use crate::client::{Client, ClientBuilder};
use crate::error::Error;
use crate::protocol::Resp;

/// Commands that change the state of their connection (upper case), refused on shared connections.
const STATE_COMMANDS: &[&str] = &[
    "SELECT",
    "AUTH",
    "HELLO",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "MONITOR",
    "RESET",
    "QUIT",
    "READONLY",
    "READWRITE",
    "ASKING",
    "SYNC",
    "PSYNC",
];

/// `CLIENT` subcommands that change the connection's state.
const STATE_CLIENT_SUBCOMMANDS: &[&str] = &[
    "CLIENT SETNAME",
    "CLIENT SETINFO",
    "CLIENT TRACKING",
    "CLIENT REPLY",
    "CLIENT NO-EVICT",
    "CLIENT NO-TOUCH",
    "CLIENT CACHING",
];

/// The command's name when `args` changes the state of the connection it runs on: `SELECT`, `AUTH`, `HELLO`,
/// `MULTI`/`EXEC`/`DISCARD`, `WATCH`/`UNWATCH`, the (un)subscribe family, `MONITOR`, `RESET`, `QUIT`,
/// `READONLY`/`READWRITE`, `CLIENT SETNAME` and the other per-connection `CLIENT` settings.
pub fn state_command(args: &[Bytes]) -> Option<&'static str> {
    let name = command_name(args)?;
    if name.eq_ignore_ascii_case(b"CLIENT") {
        let sub = args.get(1)?;
        return STATE_CLIENT_SUBCOMMANDS
            .iter()
            .find(|s| {
                s.strip_prefix("CLIENT ")
                    .is_some_and(|rest| rest.as_bytes().eq_ignore_ascii_case(sub))
            })
            .copied();
    }
    lookup(STATE_COMMANDS, name)
}

/// The command's name, when it is as long as one of the names the two tables hold (4 to 12 bytes): the cheap
/// test that lets almost every command through without a table lookup.
fn command_name(args: &[Bytes]) -> Option<&Bytes> {
    args.first().filter(|name| (4..=12).contains(&name.len()))
}

/// The entry of `table` that is `name` in any case.
fn lookup(table: &[&'static str], name: &[u8]) -> Option<&'static str> {
    table
        .iter()
        .find(|s| s.as_bytes().eq_ignore_ascii_case(name))
        .copied()
}

/// Commands after which the server no longer answers each request with one reply (upper case): the pub/sub
/// family (a reply per channel, then a push per message), `MONITOR` (a push per command the server runs) and
/// the replication stream.
const PUSH_COMMANDS: &[&str] = &[
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "MONITOR",
    "SYNC",
    "PSYNC",
];

/// The command's name when `args` is not answered by exactly one reply, so that what the server sends after it
/// would be taken for the replies of later requests: `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE` and their
/// `UNSUBSCRIBE`s (one reply per channel, then pushes), `MONITOR`, `SYNC`/`PSYNC`, and `CLIENT REPLY OFF` or
/// `SKIP` (no reply at all). Refused on every request/reply path ([`Protocol::breaks_request_reply`]); this
/// crate has no pub/sub connection (redis-rs's `PubSub` is one).
///
/// [`Protocol::breaks_request_reply`]: crate::protocol::Protocol::breaks_request_reply
pub fn push_command(args: &[Bytes]) -> Option<&'static str> {
    let name = command_name(args)?;
    if name.eq_ignore_ascii_case(b"CLIENT") {
        let silent = args
            .get(1)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"REPLY"))
            && args
                .get(2)
                .is_some_and(|m| m.eq_ignore_ascii_case(b"OFF") || m.eq_ignore_ascii_case(b"SKIP"));
        return silent.then_some("CLIENT REPLY");
    }
    lookup(PUSH_COMMANDS, name)
}

impl Client<Resp> {
    /// A builder for a Redis client from a URL (`redis://user:pass@host:port/db`, `rediss://…`,
    /// `redis+unix:///path?db=N`; see [`crate::url`]): its endpoint, and its `AUTH`/`SELECT`/`CLIENT SETNAME`
    /// as the `on_connect` hook of every connection. `rediss://` uses the builder's
    /// [`tls`](ClientBuilder::tls) settings.
    pub fn redis(url: &str) -> Result<ClientBuilder<Resp>, Error> {
        let parsed = crate::url::parse(url)?;
        let builder = Client::builder(Resp::default()).endpoint(&parsed.endpoint);
        Ok(if parsed.redis.is_empty() {
            builder
        } else {
            builder.on_connect_hook(parsed.redis.hook())
        })
    }

    /// Run `cmd` and convert its reply (see [`FromValue`]); a Redis error reply is an `Err` of kind
    /// [`Server`](crate::ErrorKind::Server) with its [`server_code`](Error::server_code).
    pub async fn query<T: FromValue>(&self, cmd: Cmd) -> Result<T, Error> {
        from_reply(self.call(cmd.into_args()).await?)
    }

    /// `GET key`.
    pub async fn get<T: FromValue>(&self, key: impl ToArg) -> Result<T, Error> {
        self.query(cmd("GET").arg(key)).await
    }

    /// `SET key value`.
    pub async fn set(&self, key: impl ToArg, value: impl ToArg) -> Result<(), Error> {
        self.query(cmd("SET").arg(key).arg(value)).await
    }

    /// `INCRBY key by`: the new value.
    pub async fn incr(&self, key: impl ToArg, by: i64) -> Result<i64, Error> {
        self.query(cmd("INCRBY").arg(key).arg(by)).await
    }

    /// `DEL key…`: how many existed.
    pub async fn del<A: ToArg>(&self, keys: impl IntoIterator<Item = A>) -> Result<u64, Error> {
        self.query(cmd("DEL").args(keys)).await
    }

    /// Iterate over the keyspace with `SCAN` (see [`Scan`] for `MATCH`, `COUNT` and what `SCAN` guarantees).
    pub fn scan(&self) -> Scan<'_> {
        Scan::new(self, cmd("SCAN"))
    }

    /// Iterate with `HSCAN`/`SSCAN`/`ZSCAN`: `prefix` is the command and its key
    /// (`cmd("HSCAN").arg("myhash")`); the cursor and options follow it.
    pub fn scan_with(&self, prefix: Cmd) -> Scan<'_> {
        Scan::new(self, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command as its arguments (shared with the other modules' tests).
    pub(crate) fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn state_commands_are_recognised_in_any_case() {
        assert_eq!(state_command(&args(&["select", "1"])), Some("SELECT"));
        assert_eq!(state_command(&args(&["Multi"])), Some("MULTI"));
        assert_eq!(
            state_command(&args(&["client", "setname", "x"])),
            Some("CLIENT SETNAME")
        );
        assert_eq!(state_command(&args(&["CLIENT", "LIST"])), None);
        assert_eq!(state_command(&args(&["GET", "select"])), None);
        assert_eq!(state_command(&args(&["SET", "k", "v"])), None);
        assert_eq!(state_command(&[]), None);
    }

    #[test]
    fn commands_answered_by_pushes_are_recognised() {
        for (words, name) in [
            (&["subscribe", "a", "b"][..], "SUBSCRIBE"),
            (&["PSUBSCRIBE", "a*"], "PSUBSCRIBE"),
            (&["ssubscribe", "a"], "SSUBSCRIBE"),
            (&["Unsubscribe"], "UNSUBSCRIBE"),
            (&["MONITOR"], "MONITOR"),
            (&["client", "reply", "off"], "CLIENT REPLY"),
            (&["CLIENT", "REPLY", "skip"], "CLIENT REPLY"),
        ] {
            assert_eq!(push_command(&args(words)), Some(name), "{words:?}");
        }
        for words in [
            &["CLIENT", "REPLY", "ON"][..],
            &["PUBLISH", "a", "x"],
            &["GET", "subscribe"],
            &["SELECT", "1"],
        ] {
            assert_eq!(push_command(&args(words)), None, "{words:?}");
        }
    }
}
