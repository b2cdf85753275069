//! The Redis connection set-up: `AUTH`, `SELECT`, `CLIENT SETNAME` on each new connection.

use std::fmt;

use bytes::Bytes;

use super::cmd::{cmd, Cmd};
use super::value::from_reply;
use crate::codec::resp::Value;
use crate::protocol::Resp;
use crate::setup::OnConnect;

/// What each new Redis connection runs before its first request, in this order: `AUTH [user] password`,
/// `SELECT db`, `CLIENT SETNAME name`. Parsed from a URL by [`crate::url::parse`]; its `Debug` hides the
/// password.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisSetup {
    /// The ACL user (`None`: `AUTH password` authenticates the `default` user). Default: none.
    pub username: Option<String>,
    /// The password (`None`: no `AUTH`). Default: none.
    pub password: Option<String>,
    /// The database to `SELECT` (`None`: 0, Redis's own default). Default: none.
    pub db: Option<u32>,
    /// The name `CLIENT SETNAME` gives the connection (`CLIENT LIST` shows it). Default: none.
    pub client_name: Option<String>,
}

impl fmt::Debug for RedisSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSetup")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .field("client_name", &self.client_name)
            .finish()
    }
}

impl RedisSetup {
    /// No set-up at all.
    pub fn new() -> Self {
        RedisSetup::default()
    }

    /// `AUTH username password` (an ACL user).
    pub fn auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// `AUTH password` (the `default` user, `requirepass`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.username = None;
        self.password = Some(password.into());
        self
    }

    /// `SELECT db`.
    pub fn db(mut self, db: u32) -> Self {
        self.db = Some(db);
        self
    }

    /// `CLIENT SETNAME name`.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }

    /// True when there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.password.is_none() && self.db.is_none() && self.client_name.is_none()
    }

    /// The commands to run, in order.
    pub fn commands(&self) -> Vec<Cmd> {
        let mut out = Vec::new();
        if let Some(password) = &self.password {
            let mut auth = cmd("AUTH");
            if let Some(user) = &self.username {
                auth = auth.arg(user);
            }
            out.push(auth.arg(password));
        }
        if let Some(db) = self.db {
            out.push(cmd("SELECT").arg(db));
        }
        if let Some(name) = &self.client_name {
            out.push(cmd("CLIENT").arg("SETNAME").arg(name));
        }
        out
    }

    /// The `on_connect` hook that runs [`commands`](Self::commands) on each new connection; an error reply
    /// (`-WRONGPASS`, `-ERR DB index is out of range` …) fails the set-up with that error.
    pub fn hook(self) -> OnConnect<Resp> {
        let commands: Vec<Vec<Bytes>> = self.commands().into_iter().map(Cmd::into_args).collect();
        OnConnect::new(move |conn| {
            let commands = commands.clone();
            Box::pin(async move {
                for command in commands {
                    from_reply::<Value>(conn.call(command).await?)?;
                }
                Ok(())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_in_order_and_the_password_is_hidden() {
        let s = RedisSetup::new().auth("app", "pw").db(3).client_name("svc");
        let cmds: Vec<Vec<Bytes>> = s.commands().into_iter().map(Cmd::into_args).collect();
        let words: Vec<Vec<&[u8]>> = cmds
            .iter()
            .map(|c| c.iter().map(|b| &b[..]).collect())
            .collect();
        assert_eq!(
            words,
            vec![
                vec![&b"AUTH"[..], b"app", b"pw"],
                vec![&b"SELECT"[..], b"3"],
                vec![&b"CLIENT"[..], b"SETNAME", b"svc"],
            ]
        );
        assert!(!format!("{s:?}").contains("pw"));
        assert!(RedisSetup::new().is_empty());
    }
}
