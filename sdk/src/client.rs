//! The client: a pool per endpoint, one end-to-end deadline split into phases, safe retries, endpoint choice.
//!
//! A call goes through these phases, each bounded by its own timeout and by what is left of
//! [`Timeouts::total`]; the error names the phase that ran out:
//!
//! 1. **pool wait** — admission (fails fast with `PoolExhausted` past `max_size * depth + max_waiters` calls
//!    on the endpoint), then a pooled connection and a free pipelining slot on it;
//! 2. **connect** and **TLS handshake** — only when the pool had to open a connection for this call;
//! 3. **request** — from queueing on the connection to the reply.
//!
//! A failed call is retried (on a freshly picked endpoint, after an exponential backoff with jitter, if the
//! retry budget allows) only when the error is retryable and the request provably was not sent or is
//! idempotent. A request the server closed its connection on without processing it (pipelined behind the
//! reply that announced the close, [`Error::is_server_close`]) is not a failure: it is sent again at once, up to
//! [`RESENDS_AFTER_CLOSE`] times, whatever the retry policy (as hyper's `retry_canceled_requests`).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::balance::{self, Health, RetryBudget};
use crate::codec::framed::{self, Status};
use crate::codec::resp::Value;
use crate::config::{
    BufferConfig, ClientConfig, EjectionPolicy, PoolConfig, RetryPolicy, SocketOptions, Timeouts,
};
use crate::connection::{
    is_driver_timeout, CloseReason, Closer, Connection, ConnectionOptions, EndpointHealth,
    Exchange, Failure, Handle, ReplyFuture,
};
use crate::error::{Error, ErrorKind, Phase};
use crate::exclusive::Exclusive;
use crate::pool::{self, CallCtx, Manager, Pool};
use crate::protocol::{Echo, Framed, Line, Protocol, Resp};
use crate::resolve::{self, Resolve, Resolver};
use crate::setup::OnConnect;
use crate::stats::{ClientStats, Counters, EndpointStats, Padded};
use crate::transport::{bounded, bounded_at, Connector, Endpoint, TlsConfig};

/// Most connections one endpoint's pool may hold (`PoolConfig::max_size`): the pool reserves its slots up front.
pub const MAX_POOL_SIZE: usize = 1 << 16;

/// Highest `RetryPolicy::budget_ratio`: retries a call may earn.
pub const MAX_BUDGET_RATIO: f64 = 1000.0;

/// Most times one call's request is sent again because the server closed without processing it
/// ([`Error::is_server_close`]). It is sent again on a depth-1 connection of its own (the exclusive pool, at
/// most `max_size` more connections), where it is the first request, which every server answers: one re-send
/// is the rule; the bound is a guard.
pub const RESENDS_AFTER_CLOSE: u32 = 16;

/// How long [`Client::close_within`] waits, after it cut the calls still in progress, for them to hand back
/// their errors: they see their sockets' end at once; this only bounds the wait.
const CUT_WAIT: Duration = Duration::from_secs(1);

/// The error of a call whose connection [`Client::close`] cut: [`ErrorKind::Closed`], in the phase the call
/// was in.
fn cut_off(e: Error) -> Error {
    let sent = e.was_sent();
    Error::new(
        ErrorKind::Closed,
        e.phase(),
        "the client was closed, and its close grace ran out, with this call in progress",
    )
    .with_sent(sent)
    .with_source(e)
}

/// A connection checked out of a pool ([`Client::checkout`]); derefs to [`Connection`]
/// and goes back to the pool when dropped.
pub struct PooledConnection<P: Protocol>(Pooled<P>);

/// A connection checked out of a pool, as the pool (deadpool) hands it out.
pub(crate) type Pooled<P> = deadpool::managed::Object<Manager<P>>;

impl<P: Protocol> std::ops::Deref for PooledConnection<P> {
    type Target = Connection<P>;

    fn deref(&self) -> &Connection<P> {
        &self.0
    }
}

impl<P: Protocol> fmt::Debug for PooledConnection<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PooledConnection").field(&**self).finish()
    }
}

/// Where the time of one call went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallTimings {
    /// Waiting for a pooled connection and a free slot (connect time excluded), over all attempts.
    pub pool_wait: Duration,
    /// Opening a connection (TCP connect + TLS handshake), when this call had to open one.
    pub connect: Option<Duration>,
    /// From queueing the request to its reply (the last attempt's, plus earlier attempts').
    pub request: Duration,
    /// The whole call, backoffs included.
    pub total: Duration,
    /// Retries made.
    pub retries: u32,
}

/// Builds a [`Client`]. Every setter's default is the one of the struct it takes.
#[derive(Debug, Clone)]
pub struct ClientBuilder<P: Protocol> {
    protocol: P,
    endpoints: Vec<String>,
    pool: PoolConfig,
    timeouts: Timeouts,
    socket: SocketOptions,
    buffers: BufferConfig,
    retry: RetryPolicy,
    ejection: EjectionPolicy,
    tls: TlsConfig,
    depth: usize,
    on_connect: Option<OnConnect<P>>,
    resolver: Resolver,
}

impl<P: Protocol> ClientBuilder<P> {
    /// Add an endpoint: `host:port`, `[::1]:port`, `unix:/path` or `tls://host:port` (anything whose
    /// `to_string()` is one of these, e.g. a `SocketAddr`), or a URL of the client's own protocol without
    /// set-up (`redis://host:port` for RESP, `http://host:port` for HTTP; see [`crate::url`]): a URL of another
    /// protocol's scheme is refused by [`build`](Self::build). Repeatable; at least one is required.
    pub fn endpoint(mut self, endpoint: impl ToString) -> Self {
        self.endpoints.push(endpoint.to_string());
        self
    }

    /// Pool settings (per endpoint). Default: [`PoolConfig::default`].
    pub fn pool(mut self, config: PoolConfig) -> Self {
        self.pool = config;
        self
    }

    /// Timeouts. Default: [`Timeouts::default`].
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Socket options for new connections. Default: [`SocketOptions::default`].
    pub fn socket(mut self, options: SocketOptions) -> Self {
        self.socket = options;
        self
    }

    /// Buffer sizes. Default: [`BufferConfig::default`].
    pub fn buffers(mut self, buffers: BufferConfig) -> Self {
        self.buffers = buffers;
        self
    }

    /// Retry policy. Default: [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Ejection of failing endpoints. Default: [`EjectionPolicy::default`].
    pub fn ejection(mut self, policy: EjectionPolicy) -> Self {
        self.ejection = policy;
        self
    }

    /// TLS settings for `tls://` endpoints. Default: [`TlsConfig::default`] (trusts nothing: set a CA file or
    /// `insecure`).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// A hook run on each new connection before any caller uses it (see [`setup`](crate::setup)); a connection
    /// whose hook fails is closed and the call that opened it fails in [`Phase::Setup`]. Replaces an earlier
    /// hook. Default: none.
    pub fn on_connect<F>(mut self, hook: F) -> Self
    where
        F: for<'c> Fn(&'c crate::Connection<P>) -> crate::setup::SetupFuture<'c>
            + Send
            + Sync
            + 'static,
    {
        self.on_connect = Some(OnConnect::new(hook));
        self
    }

    /// Like [`on_connect`](Self::on_connect), with a hook already built (e.g.
    /// [`RedisSetup::hook`](crate::redis::RedisSetup::hook)).
    pub fn on_connect_hook(mut self, hook: OnConnect<P>) -> Self {
        self.on_connect = Some(hook);
        self
    }

    /// The resolver of endpoints given by host name, used when [`PoolConfig::re_resolve_interval`] is set (see
    /// [`resolve`]). Default: [`SystemResolver`](crate::resolve::SystemResolver).
    pub fn resolver(mut self, resolver: impl Resolve) -> Self {
        self.resolver = Resolver(Arc::new(resolver));
        self
    }

    /// Requests in flight per connection, shared by all callers. Default:
    /// [`DEFAULT_PIPELINE_DEPTH`](crate::config::DEFAULT_PIPELINE_DEPTH) (64): callers are multiplexed onto few
    /// connections, each connection's driver writing every request queued since its last write in one batch;
    /// blocking commands ([`Protocol::blocks_for`]) go to a depth-1 connection of their own. 1 = request/response:
    /// each call holds a pooled connection for its exchange, with no driver task (see the `pool` module). 0 is
    /// refused by [`build`](Self::build) (an [`ErrorKind::Config`] error).
    pub fn pipeline_depth(mut self, depth: usize) -> Self {
        self.depth = depth;
        self
    }

    /// Every setting from `config` (its endpoints are added to those already given; its `evidence` is
    /// ignored).
    pub fn config(self, config: ClientConfig) -> Self {
        let mut b = ClientBuilder::from_config(self.protocol, config);
        b.endpoints.splice(0..0, self.endpoints);
        b.on_connect = self.on_connect;
        b.resolver = self.resolver;
        b
    }

    /// A builder holding every setting of `config`.
    fn from_config(protocol: P, c: ClientConfig) -> Self {
        ClientBuilder {
            protocol,
            endpoints: c.endpoints,
            pool: c.pool,
            timeouts: c.timeouts,
            socket: c.socket,
            buffers: c.buffers,
            retry: c.retry,
            ejection: c.ejection,
            tls: c.tls,
            depth: c.pipeline_depth,
            on_connect: None,
            resolver: Resolver::default(),
        }
    }

    /// The builder with its protocol changed by `f` (a protocol's own settings, e.g.
    /// [`error_for_status`](ClientBuilder::error_for_status)).
    pub(crate) fn map_protocol(mut self, f: impl FnOnce(P) -> P) -> Self {
        self.protocol = f(self.protocol);
        self
    }

    /// Build the client. Must run inside a tokio runtime (it starts the pool reaper).
    pub fn build(self) -> Result<Client<P>, Error> {
        let config_err = |m: String| Error::new(ErrorKind::Config, Phase::Connect, m);
        if self.endpoints.is_empty() {
            return Err(config_err("no endpoint configured".into()));
        }
        crate::config::check_settings(
            self.depth,
            &self.pool,
            &self.retry,
            &self.socket,
            &self.timeouts,
            &self.buffers,
        )?;
        // A service's URL (`redis://`, `http://` …) names a protocol: given to a client of another one, it is a
        // mistake (accepted as a plain address before). Named without the URL, which may hold a password.
        for given in &self.endpoints {
            let Some(scheme) = crate::url::service_scheme(given) else {
                continue;
            };
            let ours = self.protocol.url_schemes();
            if !ours.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
                let owner = if scheme.starts_with("redis") {
                    "resp"
                } else {
                    "http"
                };
                return Err(config_err(format!(
                    "endpoint scheme {scheme}:// is for the {owner} protocol, and this client speaks {}: give \
                     host:port, tcp://host:port, tls://host:port or unix:/path",
                    self.protocol.name()
                )));
            }
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| config_err("Client::build must run inside a tokio runtime".into()))?;
        let parsed = self
            .endpoints
            .iter()
            .map(|s| s.parse::<Endpoint>())
            .collect::<Result<Vec<_>, _>>()?;
        let tls = if parsed.iter().any(Endpoint::is_tls) {
            Some((self.tls.connector()?, self.tls.server_name.clone()))
        } else {
            None
        };
        let connector = Connector {
            socket: self.socket.clone(),
            tls,
            connect_timeout: self.timeouts.connect,
            tls_timeout: self.timeouts.tls_handshake,
        };
        let mut protocol = self.protocol;
        if let Some(first) = parsed.first() {
            protocol.default_authority(first);
        }
        let blueprint = Blueprint {
            protocol: Arc::new(protocol),
            connector,
            depth: self.depth,
            buffers: self.buffers.clone(),
            pool: self.pool.clone(),
            counters: Arc::new(Counters::default()),
            setup: self.on_connect.clone().map(|h| (h, self.timeouts.request)),
            closer: Arc::default(),
        };
        let mut endpoints = Vec::with_capacity(parsed.len());
        let mut names = Vec::new();
        for (origin, (endpoint, given)) in parsed.into_iter().zip(self.endpoints).enumerate() {
            if let (Some(_), Some((host, port, tls))) =
                (self.pool.re_resolve_interval, host_name(&endpoint))
            {
                names.push(Name {
                    origin,
                    host,
                    port,
                    tls,
                    given: given.clone(),
                });
            }
            let connector = blueprint.connector.clone();
            endpoints.push(Arc::new(
                blueprint.state(endpoint, given, origin, None, connector)?,
            ));
        }
        let follow = match self.pool.re_resolve_interval {
            Some(interval) if !names.is_empty() => Some(Follow {
                names,
                resolver: self.resolver,
                interval: interval.max(Duration::from_millis(1)),
                applying: tokio::sync::Mutex::new(()),
                task: std::sync::Mutex::new(None),
            }),
            _ => None,
        };
        let inner = Arc::new(Inner {
            protocol: blueprint.protocol.clone(),
            endpoints: ArcSwap::from_pointee(endpoints),
            timeouts: self.timeouts,
            retry: self.retry.clone(),
            ejection: self.ejection,
            budget: RetryBudget::new(&self.retry),
            counters: blueprint.counters.clone(),
            blueprint,
            follow,
            calls: Padded(AtomicUsize::new(0)),
            idle: Notify::new(),
            closed: AtomicBool::new(false),
            next_id: Padded(AtomicU64::new(1)),
            reaper: std::sync::Mutex::new(None),
            reap_interval: self.pool.reap_interval,
        });
        let handle = runtime.spawn(reaper(Arc::downgrade(&inner)));
        if let Ok(mut g) = inner.reaper.lock() {
            *g = Some(handle);
        }
        if let Some(follow) = &inner.follow {
            let handle = runtime.spawn(follow_names(Arc::downgrade(&inner), follow.interval));
            if let Ok(mut g) = follow.task.lock() {
                *g = Some(handle);
            }
        }
        Ok(Client { inner })
    }
}

/// What every endpoint's pools are made from (one more is made for each new address of a followed name).
struct Blueprint<P: Protocol> {
    protocol: Arc<P>,
    connector: Connector,
    depth: usize,
    buffers: BufferConfig,
    pool: PoolConfig,
    counters: Arc<Counters>,
    setup: Option<(OnConnect<P>, Duration)>,
    /// Every connection the client opens, for [`Client::close`] to cut.
    closer: Arc<Closer>,
}

impl<P: Protocol> Blueprint<P> {
    /// The pools and counters of one endpoint; `origin` is the configured endpoint it comes from, `addr` the
    /// address it was resolved to (none: as configured).
    fn state(
        &self,
        endpoint: Endpoint,
        name: String,
        origin: usize,
        addr: Option<SocketAddr>,
        connector: Connector,
    ) -> Result<EndpointState<P>, Error> {
        let config_err = |m: String| Error::new(ErrorKind::Config, Phase::Connect, m);
        let health = Arc::new(EndpointHealth::default());
        let manager = Manager {
            endpoint,
            protocol: self.protocol.clone(),
            connector,
            options: ConnectionOptions {
                depth: self.depth,
                buffers: self.buffers.clone(),
                endpoint_health: health.clone(),
                expires_after: None,
                closer: Some(self.closer.clone()),
            },
            config: self.pool.clone(),
            counters: self.counters.clone(),
            warming: tokio::sync::Mutex::new(()),
            shelf: Arc::default(),
            opening: Default::default(),
            setup: self.setup.clone(),
        };
        let exclusive = Pool::builder(manager.exclusive())
            .max_size(self.pool.max_size)
            .build()
            .map_err(|e| config_err(e.to_string()))?;
        let pool = Pool::builder(manager)
            .max_size(self.pool.max_size)
            .build()
            .map_err(|e| config_err(e.to_string()))?;
        Ok(EndpointState {
            name,
            origin,
            addr,
            pool,
            exclusive,
            health,
            ejection: Health::default(),
            calls: Padded(AtomicUsize::new(0)),
            waiting: AtomicUsize::new(0),
            admission_capacity: self
                .pool
                .max_size
                .saturating_mul(self.depth)
                .saturating_add(self.pool.max_waiters),
            per_request: self
                .pool
                .connection_per_request
                .then(|| Arc::new(tokio::sync::Semaphore::new(self.pool.max_size))),
        })
    }

    /// The endpoint of one address of a followed name: same scheme, and for TLS the name stays the one checked
    /// against the certificate.
    fn resolved(&self, name: &Name, addr: SocketAddr) -> Result<EndpointState<P>, Error> {
        let mut connector = self.connector.clone();
        let endpoint = if name.tls {
            if let Some((_, server_name)) = &mut connector.tls {
                server_name.get_or_insert_with(|| name.host.clone());
            }
            Endpoint::tls(addr)
        } else {
            Endpoint::tcp(addr)
        };
        let label = format!("{} ({addr})", name.given);
        self.state(endpoint, label, name.origin, Some(addr), connector)
    }
}

/// A configured endpoint given by host name, followed ([`PoolConfig::re_resolve_interval`]).
struct Name {
    /// Its place among the configured endpoints.
    origin: usize,
    host: String,
    port: u16,
    tls: bool,
    /// As the user wrote it.
    given: String,
}

/// The host, port and TLS-ness of an endpoint given by host name (not an IP literal, not a Unix path).
fn host_name(endpoint: &Endpoint) -> Option<(String, u16, bool)> {
    let (host, port, tls) = match endpoint {
        Endpoint::Tcp { host, port } => (host, *port, false),
        Endpoint::Tls { host, port } => (host, *port, true),
        Endpoint::Unix(_) => return None,
    };
    host.parse::<std::net::IpAddr>()
        .is_err()
        .then(|| (host.clone(), port, tls))
}

/// Following the names among the endpoints (see [`resolve`]).
struct Follow {
    names: Vec<Name>,
    resolver: Resolver,
    interval: Duration,
    /// One re-resolution applied at a time.
    applying: tokio::sync::Mutex<()>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

struct EndpointState<P: Protocol> {
    name: String,
    /// The configured endpoint this one is, or is an address of.
    origin: usize,
    /// The address a followed name resolved to (none: the endpoint as configured).
    addr: Option<SocketAddr>,
    pool: Pool<P>,
    /// Connections lent to one caller at a time ([`Client::exclusive`]).
    exclusive: Pool<P>,
    health: Arc<EndpointHealth>,
    ejection: Health,
    /// Calls in progress on the endpoint (written by every call: on a line of its own).
    calls: Padded<AtomicUsize>,
    /// Calls checking a connection out of the pool (none was free on the shelf).
    waiting: AtomicUsize,
    admission_capacity: usize,
    /// With [`PoolConfig::connection_per_request`]: the connections that may be open at once.
    per_request: Option<Arc<tokio::sync::Semaphore>>,
}

impl<P: Protocol> EndpointState<P> {
    /// Close both pools: idle connections now, the others as they come back (counted as local closes).
    fn close(&self, counters: &Counters) {
        for pool in [&self.pool, &self.exclusive] {
            let n = pool.status().size as u64;
            pool.close();
            counters.closed(CloseReason::Local, n);
        }
    }
}

struct Inner<P: Protocol> {
    protocol: Arc<P>,
    /// Replaced whole when a followed name's answer changes (rare), so calls read it without a lock.
    endpoints: ArcSwap<Vec<Arc<EndpointState<P>>>>,
    blueprint: Blueprint<P>,
    follow: Option<Follow>,
    timeouts: Timeouts,
    retry: RetryPolicy,
    ejection: EjectionPolicy,
    budget: RetryBudget,
    counters: Arc<Counters>,
    /// Calls in progress (written by every call: on a line of its own).
    calls: Padded<AtomicUsize>,
    idle: Notify,
    closed: AtomicBool,
    /// Written by every framed helper call: on a line of its own.
    next_id: Padded<AtomicU64>,
    reaper: std::sync::Mutex<Option<JoinHandle<()>>>,
    reap_interval: Duration,
}

impl<P: Protocol> Drop for Inner<P> {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

impl<P: Protocol> Inner<P> {
    /// Stop the reaper and the resolver.
    fn stop_tasks(&self) {
        let follower = self.follow.as_ref().map(|f| &f.task);
        for task in std::iter::once(&self.reaper).chain(follower) {
            if let Ok(mut g) = task.lock() {
                if let Some(h) = g.take() {
                    h.abort();
                }
            }
        }
    }
}

/// A pooled client for one protocol. Cheap to clone (an `Arc`); clones share pools and stats.
pub struct Client<P: Protocol> {
    inner: Arc<Inner<P>>,
}

impl<P: Protocol> Clone for Client<P> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
        }
    }
}

impl<P: Protocol> fmt::Debug for Client<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("protocol", &self.inner.protocol.name())
            .field(
                "endpoints",
                &self
                    .inner
                    .endpoints
                    .load()
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The request under way on a connection: a depth-1 exchange on the connection whose slot the caller holds, or
/// the request queued on a pipelined connection (which the caller holds too when the request took its last
/// slot; boxed, as that is rare).
enum Acquired<P: Protocol> {
    /// With the connection's place on the shelf, when it was taken from there.
    Direct(Exchange<P>, Option<usize>),
    Queued(ReplyFuture<P::Response>, Option<Box<Pooled<P>>>),
}

impl<P: Protocol> Future for Acquired<P> {
    type Output = Result<P::Response, Failure>;

    /// The reply; a pipelined request's driver answers one that timed out with an error that says so.
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Acquired::Direct(exchange, place) => {
                let r = std::pin::Pin::new(exchange).poll(cx);
                if let (Poll::Ready(_), Some(place)) = (&r, *place) {
                    crate::shelf::returned(place);
                }
                r
            }
            Acquired::Queued(reply, _held) => match std::pin::Pin::new(reply).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(reply)) => Poll::Ready(Ok(reply)),
                Poll::Ready(Err(e)) if is_driver_timeout(&e) => {
                    Poll::Ready(Err(Failure::TimedOut {
                        sent: e.was_sent(),
                        phase: e.phase(),
                    }))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(Failure::Failed(e))),
            },
        }
    }
}

/// What a call returns: its result alone ([`Client::call`]) or with its timings ([`Client::call_timed`]). One
/// generic `run` serves both, so `call` returns `run`'s own future (no wrapping future to move it into).
trait Outcome<T> {
    /// Whether the caller gets the timings (without them a call that succeeds reads the clock once).
    const TIMED: bool;
    fn of(result: Result<T, Error>, timings: CallTimings) -> Self;
}

impl<T> Outcome<T> for Result<T, Error> {
    const TIMED: bool = false;
    fn of(result: Result<T, Error>, _: CallTimings) -> Self {
        result
    }
}

impl<T> Outcome<T> for (Result<T, Error>, CallTimings) {
    const TIMED: bool = true;
    fn of(result: Result<T, Error>, timings: CallTimings) -> Self {
        (result, timings)
    }
}

/// Adds one to its counter on drop, unless emptied first: a call's future dropped before its outcome is
/// counted.
struct Unfinished<'a>(Option<&'a AtomicU64>);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            Counters::add(c);
        }
    }
}

/// Decrements a counter on drop (and wakes `close()` when the client goes idle).
struct CountGuard<'a>(&'a AtomicUsize, Option<&'a Notify>);

impl<'a> CountGuard<'a> {
    fn new(c: &'a AtomicUsize, idle: Option<&'a Notify>) -> Self {
        c.fetch_add(1, Ordering::AcqRel);
        CountGuard(c, idle)
    }

    /// Counted only while fewer than `capacity` are in (admission: fails at once, no waiting).
    fn admit(c: &'a AtomicUsize, capacity: usize) -> Option<Self> {
        if c.fetch_add(1, Ordering::AcqRel) >= capacity {
            c.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(CountGuard(c, None))
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        if self.0.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(n) = self.1 {
                n.notify_waiters();
            }
        }
    }
}

impl Client<Framed> {
    /// A builder for a client of the sockpool `framed` RPC with default settings.
    pub fn framed() -> ClientBuilder<Framed> {
        Client::builder(Framed::default())
    }
}

impl<P: Protocol> Client<P> {
    /// A builder for a client speaking `protocol`.
    pub fn builder(protocol: P) -> ClientBuilder<P> {
        ClientBuilder::from_config(protocol, ClientConfig::default())
    }

    /// A client speaking `protocol` with every setting of `config`, in one call. Must run inside a tokio
    /// runtime.
    pub fn from_config(protocol: P, config: ClientConfig) -> Result<Client<P>, Error> {
        Client::builder(protocol).config(config).build()
    }

    /// A client speaking `protocol` with the settings of a [`ClientConfig`] file (JSON, or TOML by the `.toml`
    /// extension), such as the one `sockpool-loadgen tune --recommend` writes. Must run inside a tokio runtime.
    ///
    /// ```
    /// use sockpool::protocol::Framed;
    /// use sockpool::Client;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut config = sockpool_server::ServerConfig::default();
    /// # config.listeners = vec!["framed=127.0.0.1:0".parse()?];
    /// # config.workers = 1;
    /// # let server = sockpool_server::Server::bind(config)?.spawn();
    /// # let addr = server.tcp_addr(sockpool_server::Proto::Framed).unwrap();
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("tuned.json");
    /// # std::fs::write(&path, format!(r#"{{"endpoints": ["{addr}"], "pipeline_depth": 16,
    /// #     "pool": {{"max_size": 4}}, "evidence": {{"rate": 52000.0, "slo": "p99<2.00ms"}}}}"#))?;
    /// // `path` is what `sockpool-loadgen tune --slo 'p99<2ms' --recommend tuned.json` wrote.
    /// let client = Client::from_config_file(Framed::default(), &path)?;
    /// assert_eq!(&client.echo("hello").await?[..], b"hello");
    /// client.close().await;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "serde")]
    pub fn from_config_file(
        protocol: P,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Client<P>, Error> {
        Client::from_config(protocol, ClientConfig::from_file(path)?)
    }

    /// The protocol.
    pub fn protocol(&self) -> &P {
        &self.inner.protocol
    }

    /// Send one request and wait for its reply (retrying when that is safe, see [`RetryPolicy`]).
    pub fn call(
        &self,
        request: P::Request,
    ) -> impl Future<Output = Result<P::Response, Error>> + '_ {
        let idempotent = self.inner.protocol.is_idempotent(&request);
        self.run(request, idempotent, None)
    }

    /// Like [`call`](Self::call), treating the request as idempotent: it may be retried even if it may have
    /// been sent.
    pub fn call_idempotent(
        &self,
        request: P::Request,
    ) -> impl Future<Output = Result<P::Response, Error>> + '_ {
        self.run(request, true, None)
    }

    /// Like [`call`](Self::call), also reporting where the time went. Never fails itself: the result is inside.
    pub fn call_timed(
        &self,
        request: P::Request,
    ) -> impl Future<Output = (Result<P::Response, Error>, CallTimings)> + '_ {
        let idempotent = self.inner.protocol.is_idempotent(&request);
        self.run(request, idempotent, None)
    }

    /// Like [`call_timed`](Self::call_timed), with an end-to-end `deadline` of this call's own (the earlier of
    /// it and [`Timeouts::total`] applies): every phase, pool wait included, ends by then, and a timeout names
    /// the phase it ran out in. A load generator gives each request the deadline of its intended send time plus
    /// its timeout this way.
    pub fn call_timed_until(
        &self,
        request: P::Request,
        deadline: Instant,
    ) -> impl Future<Output = (Result<P::Response, Error>, CallTimings)> + '_ {
        let idempotent = self.inner.protocol.is_idempotent(&request);
        self.run(request, idempotent, Some(deadline))
    }

    async fn run<O: Outcome<P::Response>>(
        &self,
        request: P::Request,
        idempotent: bool,
        until: Option<Instant>,
    ) -> O {
        let inner = &*self.inner;
        let start = Instant::now();
        let mut timings = CallTimings::default();
        let _call = CountGuard::new(&inner.calls, Some(&inner.idle));
        inner.counters.requests.add();
        if inner.closed.load(Ordering::Acquire) {
            Counters::add(&inner.counters.failed);
            let e = Error::new(ErrorKind::Closed, Phase::PoolWait, "the client is closed")
                .with_sent(false);
            return O::of(Err(e), timings);
        }
        if let Some(command) = inner.protocol.breaks_request_reply(&request) {
            Counters::add(&inner.counters.failed);
            return O::of(Err(crate::exclusive::not_request_reply(command)), timings);
        }
        if let Some(command) = inner.protocol.changes_connection_state(&request) {
            Counters::add(&inner.counters.failed);
            return O::of(Err(crate::exclusive::refused(command)), timings);
        }
        // Until the outcome is counted below, a drop of this future counts the call as cancelled.
        let mut unfinished = Unfinished(Some(&inner.counters.cancelled));
        inner.budget.deposit();
        // A total too far off for the clock (`Duration::MAX`) is no deadline.
        let deadline = match (
            inner.timeouts.total.and_then(|t| start.checked_add(t)),
            until,
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let max_retries = inner.retry.max_retries;
        // A blocking command (`BLPOP` …) gets a connection of its own and its own timeout on top of the request
        // timeout (see `Protocol::blocks_for`).
        let blocks = inner.protocol.blocks_for(&request);
        let request_limit = match blocks {
            Some(b) => inner.timeouts.request.saturating_add(b),
            None => inner.timeouts.request,
        };
        let mut request = Some(request);
        let mut attempt = 0u32;
        // Times the request was sent again because the server closed without processing it; only a request
        // pipelined behind another can be (at depth 1 no request follows the one that announces the close), so
        // only then is the request kept (cloned) for it.
        let mut resent = 0u32;
        let resends = if inner.blueprint.depth > 1 {
            RESENDS_AFTER_CLOSE
        } else {
            0
        };
        // The time now, as far as this call knows: each attempt starts from it and leaves it at its end. A call
        // that finds a connection on the shelf reads the clock at its start and, when it failed or its timings are
        // wanted, at the reply; one that waits in the pool also when it has the connection.
        let mut clock = start;
        // `observe`: one DEBUG event per call, with its timings measured, when a subscriber wants it.
        let traced = tracing::enabled!(target: crate::observe::CALL_TARGET, tracing::Level::DEBUG);
        let mut last = None;
        let result = loop {
            let Some(this) = (if attempt < max_retries || resent < resends {
                request.clone()
            } else {
                request.take()
            }) else {
                break Err(Error::new(ErrorKind::Config, Phase::Request, "no request"));
            };
            let ep = &**last.insert(self.pick());
            // One attempt, written out here rather than in a function of its own: each nested `async fn` is one
            // more future to build and move per call.
            let r = 'attempt: {
                let _admitted = match self.admit(ep, deadline, clock) {
                    Ok(admitted) => admitted,
                    Err(e) => break 'attempt Err(e),
                };
                // Phase 1 (and 2 when the pool must open a connection): a connection with a free slot, first on
                // the shelf, without a check-out (see `shelf`). While callers wait in the pool, the shelf is
                // closed to newcomers: they queue behind them (FIFO) instead of taking each slot as it frees. The
                // check-out is boxed: it is rare on a warm pool, and large.
                let wait_start = clock;
                // With a connection per request, this call's own connection (closed after the reply).
                let mut _own = None;
                // Pipelined, a blocking command would hold up the replies queued behind it: it goes to a depth-1
                // connection of the exclusive pool instead. So does a request sent again after a server closed
                // without processing it: first on its connection, it is answered even by a server that closes
                // after every reply (it could be queued behind others, and closed on, again and again).
                let alone = (blocks.is_some() || resent > 0) && ep.pool.manager().options.depth > 1;
                let shelf = match ep.waiting.load(Ordering::Acquire) {
                    _ if ep.per_request.is_some() || alone => Err(this),
                    0 => self.take_from_shelf(ep, this, deadline, wait_start, request_limit),
                    _ => Err(this),
                };
                let (acquired, connect, req_start) = match (shelf, &ep.per_request) {
                    // No wait: the request starts when the call looked on the shelf.
                    (Ok(acquired), _) => (acquired, None, wait_start),
                    (Err(request), Some(permits)) => {
                        let fresh = self.fresh(ep, permits, request, deadline, request_limit);
                        match Box::pin(fresh).await {
                            Ok((got, own)) => {
                                _own = Some(own);
                                got
                            }
                            Err(e) => break 'attempt Err(e),
                        }
                    }
                    (Err(request), None) => {
                        let (pool, _waiting) = if alone {
                            (&ep.exclusive, None)
                        } else {
                            (&ep.pool, Some(CountGuard::new(&ep.waiting, None)))
                        };
                        let acquire = self.acquire(pool, request, deadline, request_limit);
                        match Box::pin(acquire).await {
                            Ok(got) => got,
                            Err(e) => break 'attempt Err(e),
                        }
                    }
                };
                if let Some(c) = connect {
                    timings.connect = Some(timings.connect.unwrap_or_default() + c);
                }
                let waited = (req_start - wait_start).saturating_sub(connect.unwrap_or_default());
                timings.pool_wait += waited;
                inner.counters.pool_wait(waited);
                // Phase 3: the request.
                let r = acquired.await;
                if O::TIMED || traced || r.is_err() {
                    clock = Instant::now();
                    timings.request += clock - req_start;
                }
                r.map_err(|f| match f {
                    Failure::Failed(e) => e,
                    Failure::TimedOut { sent, phase } => {
                        let (limit, why) = bounded_at(request_limit, deadline, req_start);
                        Error::timeout(phase, limit, "request")
                            .with_sent(sent)
                            .with_source(TimeoutCause(why))
                    }
                })
            };
            match r {
                Ok(reply) => {
                    ep.ejection.success();
                    break Ok(reply);
                }
                // `close` cut the connection under this call: no retry, and the error says so.
                Err(e) if inner.blueprint.closer.is_cut() => break Err(cut_off(e)),
                Err(e) if e.is_server_close() && resent < resends => {
                    // Not a failure of the endpoint nor a retry: the connection ended as its server said it
                    // would, before this request's turn. Sent again on another connection, at once.
                    resent += 1;
                    Counters::add(&inner.counters.resent_after_close);
                    clock = Instant::now();
                }
                Err(e) => {
                    // A failure before the request (admission, the pool) has not read the clock yet.
                    clock = Instant::now();
                    let e = e.with_endpoint(&ep.name);
                    if !matches!(e.kind(), ErrorKind::PoolExhausted | ErrorKind::Config) {
                        ep.ejection.failure(&inner.ejection);
                    }
                    let safe = !e.was_sent() || (idempotent && inner.retry.retry_idempotent);
                    let worth = e.is_retryable()
                        && e.kind() != ErrorKind::PoolExhausted
                        && !(e.is_timeout()
                            && matches!(
                                e.phase(),
                                Phase::PoolWait | Phase::Write | Phase::Read | Phase::Request
                            ));
                    if attempt >= max_retries || !safe || !worth {
                        break Err(e);
                    }
                    if !inner.budget.withdraw() {
                        Counters::add(&inner.counters.retries_denied_by_budget);
                        break Err(e);
                    }
                    attempt += 1;
                    let backoff = inner
                        .retry
                        .backoff_with_jitter(attempt, &mut rand::thread_rng());
                    if let Some(d) = deadline {
                        if Instant::now().checked_add(backoff).is_none_or(|t| t >= d) {
                            break Err(Error::new(
                                ErrorKind::Timeout,
                                Phase::Deadline,
                                format!("end-to-end deadline leaves no time to retry after: {e}"),
                            )
                            .with_sent(e.was_sent())
                            .with_source(e));
                        }
                    }
                    Counters::add(&inner.counters.retries);
                    timings.retries += 1;
                    tracing::debug!(error = %e, attempt, ?backoff, "retrying");
                    // Boxed: a timer entry in every call future would be carried (and moved) by calls that never
                    // retry.
                    Box::pin(tokio::time::sleep(backoff)).await;
                    clock = Instant::now();
                }
            }
        };
        timings.total = clock - start;
        if let (true, Some(ep)) = (traced, &last) {
            crate::observe::call_event(inner.protocol.name(), &ep.name, &timings, &result);
        }
        unfinished.0 = None;
        match &result {
            Ok(_) => inner.counters.succeeded.add(),
            Err(e) => {
                Counters::add(&inner.counters.failed);
                if e.is_timeout() {
                    Counters::add(&inner.counters.timeouts);
                }
                if e.is_pool_exhausted() {
                    Counters::add(&inner.counters.pool_exhausted);
                }
            }
        }
        O::of(result, timings)
    }

    fn pick(&self) -> Arc<EndpointState<P>> {
        let eps = self.inner.endpoints.load();
        if eps.len() == 1 {
            return eps[0].clone();
        }
        let load: Vec<usize> = eps
            .iter()
            .map(|e| e.calls.load(Ordering::Relaxed))
            .collect();
        let health: Vec<&Health> = eps.iter().map(|e| &e.ejection).collect();
        eps[balance::pick(&load, &health, &mut rand::thread_rng())].clone()
    }

    /// Admission of one attempt on `ep` at `now`: fails fast when too many calls are in on the endpoint
    /// (`PoolExhausted`) or the end-to-end deadline has passed.
    fn admit<'a>(
        &self,
        ep: &'a EndpointState<P>,
        deadline: Option<Instant>,
        now: Instant,
    ) -> Result<CountGuard<'a>, Error> {
        // Calls in progress on the endpoint: the load `pick` compares, and what admission bounds.
        let Some(admitted) = CountGuard::admit(&ep.calls, ep.admission_capacity) else {
            return Err(Error::new(
                ErrorKind::PoolExhausted,
                Phase::PoolWait,
                "too many callers waiting for a connection",
            )
            .with_sent(false));
        };
        if deadline.is_some_and(|d| now >= d) {
            return Err(Error::new(
                ErrorKind::Timeout,
                Phase::Deadline,
                "end-to-end deadline passed",
            )
            .with_sent(false));
        }
        Ok(admitted)
    }

    /// The deadline of a request queued at `now`: its timeout `limit` (the request timeout, plus a blocking
    /// command's own), capped by the end-to-end deadline.
    fn request_deadline(
        &self,
        now: Instant,
        deadline: Option<Instant>,
        limit: Duration,
    ) -> Option<Instant> {
        // A timeout too long to add to the clock is no deadline.
        now.checked_add(bounded_at(limit, deadline, now).0)
    }

    /// A connection from the endpoint's shelf: the request queued on a pipelined one, or a depth-1 one taken
    /// for it. The request back when none is free.
    fn take_from_shelf(
        &self,
        ep: &EndpointState<P>,
        request: P::Request,
        deadline: Option<Instant>,
        now: Instant,
        limit: Duration,
    ) -> Result<Acquired<P>, P::Request> {
        let manager = ep.pool.manager();
        if manager.options.depth > 1 {
            let by = self.request_deadline(now, deadline, limit);
            return manager
                .shelf
                .try_send(request, by, now)
                .map(|reply| Acquired::Queued(reply, None));
        }
        match manager.shelf.take_direct(now) {
            Some((taken, place)) => {
                let by = self.request_deadline(now, deadline, limit);
                Ok(Acquired::Direct(
                    taken.exchange(request, now, by),
                    Some(place),
                ))
            }
            None => Err(request),
        }
    }

    /// The slow path of phase 1: a check-out from `pool` (which may open a connection), bounded by the pool
    /// wait timeout, and the request started with its timeout `request_limit`. Returns the time spent connecting, if
    /// this call opened a connection, and when the request started.
    async fn acquire(
        &self,
        pool: &Pool<P>,
        request: P::Request,
        deadline: Option<Instant>,
        request_limit: Duration,
    ) -> Result<Granted<P>, Error> {
        let inner = &*self.inner;
        let ctx = Arc::new(CallCtx::new(deadline));
        let (limit, why) = bounded(inner.timeouts.pool_wait, deadline);
        let mut request = Some(request);
        let manager = pool.manager();
        let checkout = async {
            loop {
                // Pipelined: while a connection is being opened, wait for it and queue on it rather than open
                // one more (see `pool::Opening`).
                if manager.options.depth > 1 && manager.opening.wait().await {
                    if let Some(req) = request.take() {
                        let now = Instant::now();
                        let by = self.request_deadline(now, deadline, request_limit);
                        match manager.shelf.try_send(req, by, now) {
                            Ok(reply) => return Ok((Acquired::Queued(reply, None), now)),
                            Err(req) => request = Some(req),
                        }
                    }
                }
                let (obj, slot) = pool::checkout(pool, &ctx).await?;
                let Some(req) = request.take() else {
                    return Err(Error::new(ErrorKind::Config, Phase::PoolWait, "no request"));
                };
                let now = Instant::now();
                let by = self.request_deadline(now, deadline, request_limit);
                let queue = match obj.handle() {
                    // Depth 1: this caller does the exchange on the connection whose slot it holds.
                    Handle::Direct(conn) => {
                        return Ok::<_, Error>((
                            Acquired::Direct(conn.exchange(slot, req, now, by), None),
                            now,
                        ))
                    }
                    Handle::Queue(queue) => queue,
                };
                // The pooled connection goes back at once (when `obj` drops) so others can pipeline on it,
                // unless this request took its last slot: then it goes back when the reply is in.
                match queue.try_send(slot, req, by, now) {
                    Ok(reply) => {
                        let held = pool::hold(&obj).then(|| Box::new(obj));
                        return Ok((Acquired::Queued(reply, held), now));
                    }
                    // It died between the slot and the queue: nothing was sent, take another connection.
                    Err((_, req)) => request = Some(req),
                }
            }
        };
        match tokio::time::timeout(limit, checkout).await {
            Ok(Ok((acquired, now))) => Ok((acquired, ctx.connect_time(), now)),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let phase = ctx.phase();
                let what = match phase {
                    Phase::Connect => "connect",
                    Phase::TlsHandshake => "TLS handshake",
                    Phase::Setup => "connection setup",
                    _ => "waiting for a pooled connection",
                };
                Err(Error::timeout(phase, limit, what)
                    .with_sent(false)
                    .with_source(TimeoutCause(why)))
            }
        }
    }

    /// Phases 1 and 2 with [`PoolConfig::connection_per_request`]: one of the endpoint's `max_size` permits
    /// (waited for within the pool wait timeout), then a new depth-1 connection opened as the pool opens one
    /// (same connector, socket options, TLS, deadline and counters) and the request started on it. The
    /// connection and permit come back with it: the call keeps them until the reply and then closes the
    /// connection.
    async fn fresh(
        &self,
        ep: &EndpointState<P>,
        permits: &Arc<tokio::sync::Semaphore>,
        request: P::Request,
        deadline: Option<Instant>,
        request_limit: Duration,
    ) -> Result<(Granted<P>, Own<P>), Error> {
        let inner = &*self.inner;
        let (limit, why) = bounded(inner.timeouts.pool_wait, deadline);
        let permit = match tokio::time::timeout(limit, permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => {
                return Err(
                    Error::new(ErrorKind::Closed, Phase::PoolWait, "the client is closed")
                        .with_sent(false),
                )
            }
            Err(_) => {
                return Err(
                    Error::timeout(Phase::PoolWait, limit, "waiting for a connection")
                        .with_sent(false)
                        .with_source(TimeoutCause(why)),
                )
            }
        };
        let manager = ep.pool.manager();
        let ctx = CallCtx::new(deadline);
        let start = Instant::now();
        let stream = manager
            .connector
            .connect_with(&manager.endpoint, deadline, &ctx)
            .await;
        let took = start.elapsed();
        inner.counters.connect(took, stream.is_ok());
        let options = ConnectionOptions {
            depth: 1,
            ..manager.options.clone()
        };
        let conn = Connection::from_stream(stream?, manager.protocol.clone(), options);
        let now = Instant::now();
        let (Handle::Direct(direct), Some(slot)) = (conn.handle(), conn.try_reserve()) else {
            unreachable!("a new depth-1 connection has its one slot free")
        };
        let by = self.request_deadline(now, deadline, request_limit);
        let acquired = Acquired::Direct(direct.exchange(slot, request, now, by), None);
        let own = Own {
            _conn: conn,
            _permit: permit,
            counters: inner.counters.clone(),
        };
        Ok(((acquired, Some(took), now), own))
    }

    /// Check a connection out of the pool of one endpoint (picked as for a call), bounded by the pool wait
    /// timeout. It goes back to the pool when dropped. For callers that want the lower layer directly
    /// ([`Connection::call`](crate::Connection::call)) and for measuring checkout + return.
    pub async fn checkout(&self) -> Result<PooledConnection<P>, Error> {
        let ep = self.pick();
        let ctx = Arc::new(CallCtx::new(None));
        let limit = self.inner.timeouts.pool_wait;
        match tokio::time::timeout(limit, pool::CALL_CTX.scope(ctx.clone(), ep.pool.get())).await {
            Ok(r) => r
                .map(PooledConnection)
                .map_err(|e| pool::pool_error(e, Phase::PoolWait))
                .map_err(|e| e.with_endpoint(&ep.name)),
            Err(_) => Err(Error::timeout(ctx.phase(), limit, "checkout")
                .with_sent(false)
                .with_endpoint(&ep.name)),
        }
    }

    /// A connection of one endpoint (picked as for a call) lent to this caller alone until the returned
    /// [`Exclusive`] drops, for what changes a connection's state: Redis `MULTI`/`EXEC`, `WATCH`, `SELECT` (not
    /// pub/sub: [`Protocol::breaks_request_reply`] is refused there too).
    /// It comes from a pool of its own (depth 1, at most [`PoolConfig::max_size`] per endpoint, the same
    /// `on_connect` set-up), never from the connections shared by [`call`](Self::call). Waiting for one is
    /// bounded by the pool wait timeout.
    pub async fn exclusive(&self) -> Result<Exclusive<P>, Error> {
        let ep = self.pick();
        let ctx = Arc::new(CallCtx::new(None));
        let limit = self.inner.timeouts.pool_wait;
        let got =
            tokio::time::timeout(limit, pool::CALL_CTX.scope(ctx.clone(), ep.exclusive.get()));
        let obj = match got.await {
            Ok(r) => r.map_err(|e| pool::pool_error(e, Phase::PoolWait)),
            Err(_) => {
                Err(Error::timeout(ctx.phase(), limit, "exclusive checkout").with_sent(false))
            }
        };
        obj.map(|o| Exclusive::new(o, self.inner.protocol.clone(), self.inner.timeouts.request))
            .map_err(|e| e.with_endpoint(&ep.name))
    }

    /// Open connections now until each endpoint has [`PoolConfig::min_idle`] idle ones (the reaper also does
    /// this in the background). Returns how many were opened.
    pub async fn warm(&self) -> Result<usize, Error> {
        let mut n = 0;
        let endpoints = self.inner.endpoints.load_full();
        for ep in endpoints.iter() {
            n += pool::warm(&ep.pool)
                .await
                .map_err(|e| e.with_endpoint(&ep.name))?;
        }
        Ok(n)
    }

    /// A snapshot of the counters and of each endpoint's pool.
    pub fn stats(&self) -> ClientStats {
        let inner = &*self.inner;
        let mut in_flight = 0;
        let endpoints = inner
            .endpoints
            .load()
            .iter()
            .map(|ep| {
                let slots_in_use = ep.pool.manager().shelf.in_flight();
                in_flight += slots_in_use;
                let s = ep.pool.status();
                // Connections in the pool may be in use by callers from the shelf: idle means nothing in flight.
                let mut busy = 0;
                ep.pool.retain(|c, _| {
                    busy += usize::from(c.in_flight() > 0);
                    true
                });
                EndpointStats {
                    slots_in_use,
                    admitted: ep.calls.load(Ordering::Relaxed),
                    endpoint: ep.name.clone(),
                    size: s.size,
                    idle: s.available.saturating_sub(busy),
                    max_size: s.max_size,
                    calls: ep.calls.load(Ordering::Relaxed),
                    waiting: s.waiting,
                    ejected: ep.ejection.is_ejected(),
                    writes: ep.health.writes(),
                }
            })
            .collect();
        inner.counters.snapshot(endpoints, in_flight as u64)
    }

    /// Remove dead, idle-timed-out and expired connections now (the reaper does this every
    /// [`PoolConfig::reap_interval`]). Returns how many were closed.
    pub fn reap(&self) -> usize {
        self.inner
            .endpoints
            .load()
            .iter()
            .map(|ep| pool::reap(&ep.pool) + pool::reap(&ep.exclusive))
            .sum()
    }

    /// Shut the client down within [`Timeouts::close_grace`] (default 10 s): [`close_within`](Self::close_within)
    /// that grace.
    pub async fn close(&self) {
        self.close_within(self.inner.timeouts.close_grace).await
    }

    /// Shut the client down, returning within `grace` (and the moment the cut calls take to hand back their
    /// errors), as deadpool's `Pool::close` and a hyper server's graceful shutdown under a timeout do:
    ///
    /// 1. at once, new calls are refused ([`ErrorKind::Closed`], [`Phase::PoolWait`]), callers waiting for a
    ///    pooled connection get the same error, and idle connections are closed;
    /// 2. the calls in progress get up to `grace` to finish (each also within its own timeouts);
    /// 3. then those still running are cut: every connection the client opened is closed (its socket shut
    ///    down, so the server sees the close at once: Redis drops a client blocked in `BLPOP k 0`), and each
    ///    such call ends with an [`ErrorKind::Closed`] error in the phase it was in (`Read` when it was waiting
    ///    for its reply), never retried. Connections lent out ([`exclusive`](Self::exclusive),
    ///    [`checkout`](Self::checkout)) are cut too.
    ///
    /// The background tasks (reaper, resolver) are stopped; the connections' own tasks end with their sockets.
    /// A `grace` of zero cuts the calls in progress at once. Calling it again, or from a clone, is harmless.
    pub async fn close_within(&self, grace: Duration) {
        let inner = &*self.inner;
        inner.closed.store(true, Ordering::Release);
        for ep in inner.endpoints.load().iter() {
            ep.close(&inner.counters);
        }
        // A zero grace does not wait even for the timer's tick.
        let finished = match grace.is_zero() {
            true => inner.calls.load(Ordering::Acquire) == 0,
            false => tokio::time::timeout(grace, self.calls_done()).await.is_ok(),
        };
        if !finished {
            inner.blueprint.closer.cut();
            // Each cut call sees its socket's end at once; a call opening a connection right now is cut as it
            // opens. Bounded all the same: `close` ends.
            let _ = tokio::time::timeout(CUT_WAIT, self.calls_done()).await;
        }
        inner.stop_tasks();
    }

    /// Returns once no call is in progress.
    async fn calls_done(&self) {
        let inner = &*self.inner;
        loop {
            let idle = inner.idle.notified();
            if inner.calls.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
    }

    /// Resolve every endpoint given by host name now and apply the answers (new addresses get pools, addresses
    /// that left are drained; see [`resolve`]), as the background resolver does every
    /// [`PoolConfig::re_resolve_interval`]. Nothing to do unless that interval is set. A name whose resolution
    /// fails or is empty keeps its addresses, and the first such failure is returned.
    pub async fn re_resolve(&self) -> Result<(), Error> {
        let inner = &*self.inner;
        let Some(follow) = &inner.follow else {
            return Ok(());
        };
        let _one_at_a_time = follow.applying.lock().await;
        let mut answers = Vec::with_capacity(follow.names.len());
        let mut first_err = None;
        for name in &follow.names {
            let failed = match follow.resolver.0.resolve(&name.host, name.port).await {
                Ok(addrs) if !addrs.is_empty() => {
                    answers.push((name, resolve::canonical(addrs)));
                    continue;
                }
                Ok(_) => Error::new(
                    ErrorKind::Config,
                    Phase::Connect,
                    format!("{} resolved to no address", name.host),
                ),
                Err(e) => Error::io(Phase::Connect, e),
            };
            let failed = failed.with_endpoint(&name.given);
            tracing::warn!(error = %failed, "re-resolving failed: keeping the last addresses");
            first_err.get_or_insert(failed);
        }
        if inner.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let current = inner.endpoints.load_full();
        let answered = |ep: &EndpointState<P>| answers.iter().find(|(n, _)| n.origin == ep.origin);
        let (kept, left): (Vec<_>, Vec<_>) = current.iter().cloned().partition(|ep| {
            answered(ep).is_none_or(|(_, addrs)| ep.addr.is_some_and(|a| addrs.contains(&a)))
        });
        let mut next = kept;
        for (name, addrs) in &answers {
            for &addr in addrs {
                if next
                    .iter()
                    .any(|ep| ep.origin == name.origin && ep.addr == Some(addr))
                {
                    continue;
                }
                match inner.blueprint.resolved(name, addr) {
                    Ok(ep) => next.push(Arc::new(ep)),
                    Err(e) => tracing::warn!(error = %e, %addr, "no pool for a new address"),
                }
            }
        }
        if left.is_empty() && next.len() == current.len() {
            return first_err.map_or(Ok(()), Err);
        }
        next.sort_by_key(|ep| (ep.origin, ep.addr));
        tracing::info!(
            endpoints = ?next.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            left = left.len(),
            "resolved endpoints changed"
        );
        inner.endpoints.store(Arc::new(next));
        // No new call picks these now. Closing their pools closes the idle connections at once; a connection
        // busy with a call finishes it (the pool drops it when it comes back, and a dropped connection lets its
        // requests in flight finish before it closes the socket).
        for ep in left {
            ep.close(&inner.counters);
        }
        first_err.map_or(Ok(()), Err)
    }

    /// A fresh request id (unique within this client), for protocols that carry one.
    pub fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Typed helpers for RESP (Redis).
impl Client<Resp> {
    /// Run one command, e.g. `client.command(["SET", "k", "v"])`. A Redis error reply is `Ok(Value::Error(..))`.
    /// The arguments are copied; [`call`](Self::call) with a `Vec<Bytes>` avoids that.
    pub async fn command<I, A>(&self, args: I) -> Result<Value, Error>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let args = args
            .into_iter()
            .map(|a| Bytes::copy_from_slice(a.as_ref()))
            .collect();
        self.call(args).await
    }
}

/// Typed helpers for the `line` protocol.
impl Client<Line> {
    /// Send one line (without `\n`) and return the reply line.
    pub async fn line(&self, line: impl Into<Bytes>) -> Result<Bytes, Error> {
        self.call(line.into()).await
    }
}

/// Typed helpers for the `echo` protocol.
impl Client<Echo> {
    /// Send bytes and read back as many.
    pub async fn echo(&self, bytes: impl Into<Bytes>) -> Result<Bytes, Error> {
        self.call(bytes.into()).await
    }
}

/// Why a timeout fired: the phase's own timeout or the end-to-end deadline.
#[derive(Debug)]
struct TimeoutCause(&'static str);

/// What the pool hands a call: the request under way, the time spent connecting (if a connection was opened
/// for it) and when the request started.
type Granted<P> = (Acquired<P>, Option<Duration>, Instant);

/// A call's own connection ([`PoolConfig::connection_per_request`]) and its permit; dropped after the reply,
/// it closes the connection (counted as a local close) and frees the permit.
struct Own<P: Protocol> {
    _conn: Connection<P>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    counters: Arc<Counters>,
}

impl<P: Protocol> Drop for Own<P> {
    fn drop(&mut self) {
        self.counters.closed(CloseReason::Local, 1);
    }
}

impl fmt::Display for TimeoutCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for TimeoutCause {}

/// The background reaper: removes dead and expired idle connections, keeps `min_idle` warm.
async fn reaper<P: Protocol>(weak: Weak<Inner<P>>) {
    let interval = match weak.upgrade() {
        Some(i) => i.reap_interval.max(Duration::from_millis(10)),
        None => return,
    };
    loop {
        let healths: Vec<Arc<EndpointHealth>> = match weak.upgrade() {
            Some(inner) => {
                if inner.closed.load(Ordering::Acquire) {
                    return;
                }
                let endpoints = inner.endpoints.load_full();
                for ep in endpoints.iter() {
                    pool::reap(&ep.pool);
                    pool::reap(&ep.exclusive);
                }
                let pools: Vec<Pool<P>> = endpoints.iter().map(|e| e.pool.clone()).collect();
                drop(endpoints);
                drop(inner);
                for p in pools {
                    if let Err(e) = pool::warm(&p).await {
                        tracing::debug!(error = %e, "warming the pool failed");
                    }
                }
                match weak.upgrade() {
                    Some(inner) => healths(&inner),
                    None => return,
                }
            }
            None => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = any_changed(&healths) => {}
        }
    }
}

/// The health of each endpoint now.
fn healths<P: Protocol>(inner: &Inner<P>) -> Vec<Arc<EndpointHealth>> {
    inner
        .endpoints
        .load()
        .iter()
        .map(|e| e.health.clone())
        .collect()
}

/// Completes when one of `healths` starts a new generation (a connection saw a reset or the peer's EOF).
async fn any_changed(healths: &[Arc<EndpointHealth>]) {
    if healths.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(healths.iter().map(|h| Box::pin(h.changed()))).await;
}

/// The background resolver of followed names (see [`resolve`]): at once, then every `interval`,
/// and early (but not within a quarter of the interval of the last time) when a connection to one of the
/// endpoints is reset or closed by the peer, as when a replica goes away.
async fn follow_names<P: Protocol>(weak: Weak<Inner<P>>, interval: Duration) {
    loop {
        let healths = match weak.upgrade() {
            Some(inner) if !inner.closed.load(Ordering::Acquire) => {
                let client = Client { inner };
                // Failures are logged by `re_resolve`; the last addresses stay.
                let _ = client.re_resolve().await;
                healths(&client.inner)
            }
            _ => return,
        };
        let resolved_at = Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = any_changed(&healths) => {
                tokio::time::sleep_until(resolved_at + interval / 4).await;
            }
        }
    }
}

/// Typed helpers for the `framed` RPC. Non-`OK` statuses become [`ErrorKind::Server`] errors.
impl Client<Framed> {
    fn framed_ok(resp: framed::Response) -> Result<Bytes, Error> {
        match resp.status {
            Status::Ok => Ok(resp.payload),
            status => {
                let not_done = matches!(status, Status::Busy | Status::ShuttingDown);
                Err(Error::new(
                    ErrorKind::Server,
                    Phase::Request,
                    format!("server answered {status:?}"),
                )
                .with_sent(!not_done))
            }
        }
    }

    /// ECHO: the server sends `payload` back.
    pub async fn echo(&self, payload: impl Into<Bytes>) -> Result<Bytes, Error> {
        let r = self
            .call(framed::Request::echo(self.next_id(), payload))
            .await?;
        Self::framed_ok(r)
    }

    /// SINK: upload `payload`; the reply is empty.
    pub async fn sink(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let r = self
            .call(framed::Request::sink(self.next_id(), payload))
            .await?;
        Self::framed_ok(r).map(|_| ())
    }

    /// SOURCE: download `len` bytes.
    pub async fn source(&self, len: u32) -> Result<Bytes, Error> {
        let r = self
            .call(framed::Request::source(self.next_id(), len))
            .await?;
        Self::framed_ok(r)
    }

    /// SLEEP: the server waits `service_time` (capped by the server, whole microseconds), then echoes.
    pub async fn sleep(
        &self,
        service_time: Duration,
        payload: impl Into<Bytes>,
    ) -> Result<Bytes, Error> {
        let micros = service_time.as_micros().min(u32::MAX as u128) as u32;
        let r = self
            .call(framed::Request::sleep(self.next_id(), micros, payload))
            .await?;
        Self::framed_ok(r)
    }

    /// STATS: the server's counters, its JSON reply read as a `T` (with the `serde` feature): a struct of your
    /// own with the counters you want (serde ignores the others), or your `serde_json::Value`. A reply that
    /// is not a `T` is a [`Protocol`](ErrorKind::Protocol) error.
    ///
    /// ```no_run
    /// # async fn f(client: sockpool::Client<sockpool::protocol::Framed>) -> Result<(), sockpool::Error> {
    /// #[derive(serde::Deserialize)]
    /// struct Stats {
    ///     requests: u64,
    /// }
    /// let stats: Stats = client.stats_json().await?;
    /// println!("{} requests", stats.requests);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "serde")]
    pub async fn stats_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        let r = self.call(framed::Request::stats(self.next_id())).await?;
        let body = Self::framed_ok(r)?;
        serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                Phase::Read,
                format!("STATS reply: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::framed::{Op, Response, ServerCodec};
    use futures::{SinkExt, StreamExt};
    use tokio::net::TcpListener;

    /// A minimal framed echo server (the real one lives in sockpool-server; this keeps unit tests self-contained).
    async fn echo_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut io = tokio_util::codec::Framed::new(
                        s,
                        crate::codec::TokioUtilCodec::new(ServerCodec::default()),
                    );
                    while let Some(Ok(req)) = io.next().await {
                        if req.op == Op::Sleep {
                            tokio::time::sleep(Duration::from_micros(req.arg as u64)).await;
                        }
                        if io.send(Response::ok(req.id, req.payload)).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn calls_share_pipelined_connections_and_report_timings() {
        let addr = echo_server().await;
        let client = Client::framed()
            .endpoint(addr)
            .pool(PoolConfig {
                max_size: 2,
                ..PoolConfig::default()
            })
            .pipeline_depth(4)
            .build()
            .unwrap();
        let (r, t) = client
            .call_timed(framed::Request::echo(5, Bytes::from_static(b"hi")))
            .await;
        let r = r.unwrap();
        assert_eq!((r.id, &r.payload[..]), (5, &b"hi"[..]));
        assert!(t.connect.is_some(), "the first call opened the connection");
        let (_, t) = client
            .call_timed(framed::Request::echo(6, Bytes::new()))
            .await;
        assert!(t.connect.is_none(), "the second reused it");
        let calls = (0..40).map(|i| {
            let c = client.clone();
            async move {
                c.sleep(Duration::from_millis(5), Bytes::from(vec![i as u8; 8]))
                    .await
            }
        });
        for (i, r) in futures::future::join_all(calls)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(&r.unwrap()[..], &[i as u8; 8]);
        }
        let stats = client.stats();
        assert!(stats.endpoints[0].size <= 2);
        assert_eq!(stats.in_flight, 0);
        assert_eq!(stats.succeeded, 42);
        // A call given up on by its caller is counted as cancelled, not lost.
        let r = tokio::time::timeout(
            Duration::from_millis(20),
            client.sleep(Duration::from_millis(500), Bytes::new()),
        )
        .await;
        assert!(r.is_err());
        let stats = client.stats();
        assert_eq!((stats.requests, stats.cancelled), (43, 1));
        client.close().await;
        let e = client.echo(&b"x"[..]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Closed);
    }
}
