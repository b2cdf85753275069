//! A synchronous facade: the async [`Client`](crate::Client) on a runtime of its own.
//!
//! Works from a plain `fn main` and from any number of std threads at once (each call blocks its thread on the
//! shared runtime). Do not use it from inside an async context: blocking there panics, as tokio's
//! `block_on` does.
//!
//! ```no_run
//! use sockpool::blocking;
//! use sockpool::protocol::Framed;
//!
//! let client = blocking::Client::new(sockpool::Client::builder(Framed::default()).endpoint("127.0.0.1:7000"))?;
//! let reply = client.echo(&b"hello"[..])?;
//! assert_eq!(&reply[..], b"hello");
//! # Ok::<(), sockpool::Error>(())
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::client::{CallTimings, ClientBuilder};
use crate::codec::resp::Value;
use crate::error::{Error, ErrorKind, Phase};
use crate::protocol::{Framed, Line, Protocol, Resp};
use crate::stats::ClientStats;

/// The blocking client. Cheap to clone; clones share the runtime, the pools and the stats.
#[derive(Debug)]
pub struct Client<P: Protocol> {
    // Field order matters: the async client (and its pools) drop before the runtime they run on.
    inner: crate::Client<P>,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl<P: Protocol> Clone for Client<P> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
            runtime: self.runtime.clone(),
        }
    }
}

impl<P: Protocol> Client<P> {
    /// Build the client from an async builder, on a new runtime with one worker thread (it runs the connection
    /// drivers and the pool reaper between calls).
    pub fn new(builder: ClientBuilder<P>) -> Result<Self, Error> {
        Self::with_worker_threads(builder, 1)
    }

    /// Like [`new`](Self::new), with `threads` runtime worker threads.
    pub fn with_worker_threads(builder: ClientBuilder<P>, threads: usize) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("sockpool-blocking")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    Phase::Connect,
                    format!("starting a runtime: {e}"),
                )
            })?;
        let inner = runtime.block_on(async { builder.build() })?;
        Ok(Client {
            inner,
            runtime: Arc::new(runtime),
        })
    }

    /// Send one request and wait for its reply.
    pub fn call(&self, request: P::Request) -> Result<P::Response, Error> {
        self.runtime.block_on(self.inner.call(request))
    }

    /// Like [`call`](Self::call), with where the time went.
    pub fn call_timed(&self, request: P::Request) -> (Result<P::Response, Error>, CallTimings) {
        self.runtime.block_on(self.inner.call_timed(request))
    }

    /// Counters and pool state.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats()
    }

    /// Open `min_idle` connections now.
    pub fn warm(&self) -> Result<usize, Error> {
        self.runtime.block_on(self.inner.warm())
    }

    /// Refuse new calls, let those in progress finish within [`Timeouts::close_grace`](crate::Timeouts::close_grace),
    /// then cut them and close every connection ([`Client::close`](crate::Client::close)).
    pub fn close(&self) {
        self.runtime.block_on(self.inner.close())
    }

    /// The async client underneath (usable from tasks spawned on [`runtime`](Self::runtime)).
    pub fn async_client(&self) -> &crate::Client<P> {
        &self.inner
    }

    /// The runtime the client runs on.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

/// Typed helpers for the `framed` RPC.
impl Client<Framed> {
    /// ECHO.
    pub fn echo(&self, payload: impl Into<Bytes>) -> Result<Bytes, Error> {
        self.runtime.block_on(self.inner.echo(payload))
    }

    /// SINK.
    pub fn sink(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.runtime.block_on(self.inner.sink(payload))
    }

    /// SOURCE.
    pub fn source(&self, len: u32) -> Result<Bytes, Error> {
        self.runtime.block_on(self.inner.source(len))
    }

    /// SLEEP.
    pub fn sleep(&self, service_time: Duration, payload: impl Into<Bytes>) -> Result<Bytes, Error> {
        self.runtime
            .block_on(self.inner.sleep(service_time, payload))
    }

    /// STATS, read as a `T` (with the `serde` feature): see [`crate::Client::stats_json`].
    #[cfg(feature = "serde")]
    pub fn stats_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        self.runtime.block_on(self.inner.stats_json())
    }
}

/// Typed helpers for RESP.
impl Client<Resp> {
    /// Run one command.
    pub fn command<I, A>(&self, args: I) -> Result<Value, Error>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        self.runtime.block_on(self.inner.command(args))
    }
}

/// Typed helpers for `line`.
impl Client<Line> {
    /// Send one line, read the reply line.
    pub fn line(&self, line: impl Into<Bytes>) -> Result<Bytes, Error> {
        self.runtime.block_on(self.inner.line(line))
    }
}

impl<P: Protocol> ClientBuilder<P> {
    /// Build a [`blocking::Client`](Client) (on its own runtime) instead of an async one.
    pub fn build_blocking(self) -> Result<Client<P>, Error> {
        Client::new(self)
    }
}
