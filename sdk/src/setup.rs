//! Connection set-up: an `on_connect` hook that runs on each new connection before any caller can use it.
//!
//! The pool runs the hook where it opens a connection (`Manager::create` in the `pool` module), after the
//! TCP connect and TLS handshake and before the connection is handed out or shared: Redis `AUTH`, `SELECT`,
//! `CLIENT SETNAME` (see [`RedisSetup`](crate::redis::RedisSetup)), or anything a service needs said once per
//! connection. It runs again on every connection the pool opens later (after a restart of the server, past a
//! connection's lifetime …), so the state it sets holds on every connection.
//!
//! A hook that fails, or does not finish within [`Timeouts::request`](crate::Timeouts::request), fails the call
//! that opened the connection with [`Phase::Setup`]: the connection is closed and never used. The error keeps
//! the hook's kind (a Redis `-WRONGPASS` is [`ErrorKind::Server`](crate::ErrorKind::Server) with its
//! [`server_code`](Error::server_code)) and says the request was not sent.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Connection;
use crate::error::{Error, Phase};
use crate::protocol::Protocol;

/// What an `on_connect` hook returns: a boxed future borrowing the connection.
pub type SetupFuture<'c> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'c>>;

type HookFn<P> = dyn for<'c> Fn(&'c Connection<P>) -> SetupFuture<'c> + Send + Sync;

/// A hook run on each new connection ([`ClientBuilder::on_connect`](crate::ClientBuilder::on_connect)).
///
/// ```
/// use sockpool::codec::resp::Value;
/// use sockpool::protocol::Resp;
/// use sockpool::setup::OnConnect;
///
/// let hook = OnConnect::<Resp>::new(|conn| {
///     Box::pin(async move {
///         let reply = conn.call(vec!["CLIENT".into(), "SETNAME".into(), "billing".into()]).await?;
///         assert_eq!(reply, Value::ok());
///         Ok(())
///     })
/// });
/// # drop(hook);
/// ```
pub struct OnConnect<P: Protocol> {
    hook: Arc<HookFn<P>>,
}

impl<P: Protocol> OnConnect<P> {
    /// A hook from an async closure that takes the new connection (`|conn| Box::pin(async move { … })`).
    pub fn new<F>(hook: F) -> Self
    where
        F: for<'c> Fn(&'c Connection<P>) -> SetupFuture<'c> + Send + Sync + 'static,
    {
        OnConnect {
            hook: Arc::new(hook),
        }
    }

    /// Run the hook on `conn` within `timeout`. Its error is a set-up error: phase [`Phase::Setup`], not sent.
    pub(crate) async fn run(&self, conn: &Connection<P>, timeout: Duration) -> Result<(), Error> {
        match tokio::time::timeout(timeout, (self.hook)(conn)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.with_phase(Phase::Setup).with_sent(false)),
            Err(_) => {
                Err(Error::timeout(Phase::Setup, timeout, "connection setup").with_sent(false))
            }
        }
    }
}

impl<P: Protocol> Clone for OnConnect<P> {
    fn clone(&self) -> Self {
        OnConnect {
            hook: self.hook.clone(),
        }
    }
}

impl<P: Protocol> fmt::Debug for OnConnect<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnConnect(..)")
    }
}
