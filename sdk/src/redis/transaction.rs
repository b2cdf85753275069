//! Transactions on an exclusive connection: `WATCH`, then `MULTI` … `EXEC`.

use super::cmd::{cmd, Cmd, ToArg};
use super::value::{from_reply, FromValue};
use crate::codec::resp::Value;
use crate::error::{Error, ErrorKind};
use crate::exclusive::Exclusive;
use crate::protocol::Resp;

impl Exclusive<Resp> {
    /// Run `cmd` on this connection and convert its reply (as [`Client::query`](crate::Client::query)).
    /// State-changing commands are allowed here; after one the connection is closed on drop, not reused.
    pub async fn query<T: FromValue>(&mut self, cmd: Cmd) -> Result<T, Error> {
        from_reply(self.call(cmd.into_args()).await?)
    }

    /// `WATCH key…`: the next [`transaction`](Self::transaction) on this connection runs only if none of
    /// these keys changed meanwhile. Until that transaction or [`unwatch`](Self::unwatch), dropping the
    /// connection closes it.
    pub async fn watch<A: ToArg>(
        &mut self,
        keys: impl IntoIterator<Item = A>,
    ) -> Result<(), Error> {
        self.set_pending(true);
        from_reply::<()>(
            self.call_keeping_state(cmd("WATCH").args(keys).into_args())
                .await?,
        )
    }

    /// `UNWATCH`: forget the watched keys.
    pub async fn unwatch(&mut self) -> Result<(), Error> {
        from_reply::<()>(self.call_keeping_state(cmd("UNWATCH").into_args()).await?)?;
        self.set_pending(false);
        Ok(())
    }

    /// `MULTI`, each of `cmds`, `EXEC`: the commands run together, with no other client's command between
    /// them. `Ok(None)` when a watched key changed and Redis ran none of them ([`watch`](Self::watch));
    /// otherwise their replies converted as one array (`(i64, String)`, `Vec<Value>` …). A command Redis
    /// refuses to queue (unknown, wrong arity) discards the transaction and is the `Err`; a command that fails
    /// while running (`WRONGTYPE`) is an `Err` when converting its reply (use `Vec<Value>` to see each).
    pub async fn transaction<T: FromValue>(
        &mut self,
        cmds: impl IntoIterator<Item = Cmd>,
    ) -> Result<Option<T>, Error> {
        // Closed on drop until EXEC or DISCARD has answered.
        self.set_pending(true);
        from_reply::<()>(self.call_keeping_state(cmd("MULTI").into_args()).await?)?;
        for c in cmds {
            // Through `call`: a state-changing command queued here (`SELECT`) runs at EXEC and marks the
            // connection changed; one that breaks request/reply (`SUBSCRIBE`) is refused, not queued.
            let queued = match self.call(c.into_args()).await {
                Ok(reply) => from_reply::<()>(reply),
                // Refused before it was sent: discarded as one Redis refuses to queue.
                Err(e) if !e.was_sent() && e.kind() == ErrorKind::Config => Err(e),
                Err(e) => return Err(e),
            };
            if let Err(e) = queued {
                from_reply::<()>(self.call_keeping_state(cmd("DISCARD").into_args()).await?)?;
                self.set_pending(false);
                return Err(e);
            }
        }
        let reply = self.call_keeping_state(cmd("EXEC").into_args()).await?;
        // EXEC ends the transaction and the WATCH, whatever it answers.
        self.set_pending(false);
        match reply {
            Value::NullArray | Value::Null => Ok(None),
            other => from_reply(other).map(Some),
        }
    }
}
