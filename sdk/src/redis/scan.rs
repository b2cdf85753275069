//! `SCAN`-style iteration: the cursor is carried by the caller, so each step is an ordinary request on the
//! shared connections.

use bytes::Bytes;

use super::cmd::{Cmd, ToArg};
use super::value::{from_reply, type_error, FromValue};
use crate::client::Client;
use crate::codec::resp::Value;
use crate::error::Error;
use crate::protocol::Resp;

/// An iteration with `SCAN` (or `HSCAN`/`SSCAN`/`ZSCAN`): [`Client::scan`], [`Client::scan_with`].
///
/// As Redis documents for `SCAN`: every element present for the whole iteration is returned at least once,
/// an element may be returned more than once, and a batch may be empty while the iteration goes on.
#[derive(Debug)]
pub struct Scan<'a> {
    client: &'a Client<Resp>,
    prefix: Cmd,
    pattern: Option<Bytes>,
    count: Option<u64>,
    /// The next cursor; `None` once Redis answered cursor 0.
    cursor: Option<Bytes>,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(client: &'a Client<Resp>, prefix: Cmd) -> Self {
        Scan {
            client,
            prefix,
            pattern: None,
            count: None,
            cursor: Some(Bytes::from_static(b"0")),
        }
    }

    /// `MATCH pattern`.
    pub fn pattern(mut self, pattern: impl ToArg) -> Self {
        self.pattern = Some(pattern.to_arg());
        self
    }

    /// `COUNT n`: a hint of how much work each step does.
    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }

    /// The next batch (`HSCAN`/`ZSCAN` batches alternate fields and values), or `None` when the iteration is
    /// over. After an `Err` (the request failed, or the batch is not a `Vec<T>`) the same step is tried again by
    /// the next call.
    pub async fn next_batch<T: FromValue>(&mut self) -> Result<Option<Vec<T>>, Error> {
        let Some(cursor) = self.cursor.take() else {
            return Ok(None);
        };
        let mut c = self.prefix.clone().arg(cursor.clone());
        if let Some(p) = &self.pattern {
            c = c.arg("MATCH").arg(p);
        }
        if let Some(n) = self.count {
            c = c.arg("COUNT").arg(n);
        }
        let reply = match self.client.query::<Value>(c).await {
            Ok(r) => r,
            Err(e) => {
                // The same step may be tried again.
                self.cursor = Some(cursor);
                return Err(e);
            }
        };
        // The cursor moves on only with a batch handed back: one that does not convert as `T` can be asked for
        // again (it was lost, the next step already past it).
        let step = from_reply::<(Bytes, Value)>(reply).and_then(|(next, items)| match items {
            Value::Array(_) => from_reply(items).map(|batch| (next, batch)),
            other => Err(type_error("an array of elements", &other)),
        });
        match step {
            Ok((next, batch)) => {
                if &next[..] != b"0" {
                    self.cursor = Some(next);
                }
                Ok(Some(batch))
            }
            Err(e) => {
                self.cursor = Some(cursor);
                Err(e)
            }
        }
    }

    /// Every element, all batches together (duplicates included, see above).
    pub async fn collect<T: FromValue>(mut self) -> Result<Vec<T>, Error> {
        let mut all = Vec::new();
        while let Some(batch) = self.next_batch().await? {
            all.extend(batch);
        }
        Ok(all)
    }
}
