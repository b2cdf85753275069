//! The connection pool: a deadpool [`Manager`](deadpool::managed::Manager) per endpoint, plus the
//! background reaper.
//!
//! ## Sharing one connection between callers (pipelining depth P > 1)
//!
//! Every pipelined connection the pool opens is also put on its endpoint's shelf (`shelf.rs`): a caller queues
//! its request on a shelved connection with a free slot without checking anything out, like redis-rs's
//! multiplexed connection. Only when no shelved connection has a free slot does it go through deadpool: it
//! takes the object, reserves one of the connection's P slots, queues its request, and returns the object to
//! the pool at once; then it waits for its reply on its own `oneshot`. The caller that takes a connection's
//! **last** free slot keeps the object until its reply arrives, so a connection in the pool always has a free
//! slot — only the holder reserves slots, replies only free them — and a check-out is one deadpool `get` with
//! no search. Callers that find none wait in deadpool's FIFO queue while it opens new ones below `max_size`;
//! so connections are added only under load, each caller pins at most one, and at most `max_size * P`
//! requests are in flight.
//!
//! While a connection is being opened, a pipelined caller that finds no free slot waits for that connection and
//! queues on it (`Opening`) rather than open one more, so a burst of callers on a cold client shares one
//! connection instead of opening one each.
//!
//! At depth 1 the pooled object is the connection itself: its holder does its own I/O on it (`connection.rs`).
//!
//! ## Recycling
//!
//! Every check-out runs `Manager::recycle`, which rejects a connection that is poisoned, saw stray bytes or the
//! peer's EOF/RST (its driver always has a read armed, so these are seen as they happen, with no request
//! round-trip; a connection idle for 1 ms or more also gets a non-blocking `MSG_PEEK` probe on a dup of its
//! socket, which catches an EOF the driver has not been scheduled to see yet), belongs to an older generation of its endpoint (another connection saw a reset or EOF after it
//! was opened), is past its jittered lifetime, or has been idle longer than the idle timeout.
//!
//! ## The reaper
//!
//! One task per client runs every [`PoolConfig::reap_interval`] and at once whenever an endpoint starts a new
//! generation: it removes idle connections that would fail recycling (so a restart is cleaned up before the next
//! request, not one failed request at a time), counts them by reason, and opens connections up to
//! [`PoolConfig::min_idle`].

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use rand::Rng;
use tokio::time::Instant;

use crate::config::PoolConfig;
use crate::connection::{CloseReason, Connection, ConnectionOptions, Slot};
use crate::error::{Error, Phase};
use crate::protocol::Protocol;
use crate::setup::OnConnect;
use crate::shelf::Shelf;
use crate::stats::Counters;
use crate::transport::{ConnectProgress, Connector, Endpoint};

/// What the call that is checking out a connection knows: its deadline, and (filled in by the manager) whether
/// it is connecting and how long that took.
#[derive(Debug, Default)]
pub(crate) struct CallCtx {
    pub deadline: Option<Instant>,
    phase: AtomicU8,
    /// Time spent opening connections, once any was opened.
    connect_time: Mutex<Option<Duration>>,
}

tokio::task_local! {
    pub(crate) static CALL_CTX: Arc<CallCtx>;
}

impl CallCtx {
    pub fn new(deadline: Option<Instant>) -> Self {
        CallCtx {
            deadline,
            ..Default::default()
        }
    }

    /// The phase running now: `PoolWait`, or `Connect`/`TlsHandshake` while this call opens a connection.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            1 => Phase::Connect,
            2 => Phase::TlsHandshake,
            3 => Phase::Setup,
            _ => Phase::PoolWait,
        }
    }

    /// The time this call spent opening a connection, if it opened one.
    pub fn connect_time(&self) -> Option<Duration> {
        *self.connect_time.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ConnectProgress for CallCtx {
    fn enter(&self, phase: Phase) {
        let code = match phase {
            Phase::Connect => 1,
            Phase::TlsHandshake => 2,
            Phase::Setup => 3,
            _ => 0,
        };
        self.phase.store(code, Ordering::Release);
    }
}

/// The connections of one endpoint being opened right now, and a wake-up when an opening ends. At depth > 1
/// a caller that finds every slot taken while a connection is being opened waits for it and queues on it,
/// instead of opening one more: a burst of callers at start would otherwise open a connection each, where one
/// pipelined connection takes them all.
#[derive(Debug, Default)]
pub(crate) struct Opening {
    count: AtomicUsize,
    done: tokio::sync::Notify,
}

/// Counts one opening while it lasts (also when its future is dropped).
struct Opened<'a>(&'a Opening);

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.done.notify_waiters();
    }
}

impl Opening {
    fn start(&self) -> Opened<'_> {
        self.count.fetch_add(1, Ordering::AcqRel);
        Opened(self)
    }

    /// Returns once no connection is being opened (at once when none is). True when it waited.
    pub(crate) async fn wait(&self) -> bool {
        let mut waited = false;
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return waited;
            }
            done.await;
            waited = true;
        }
    }
}

/// Opens and recycles the connections of one endpoint.
pub struct Manager<P: Protocol> {
    pub(crate) endpoint: Endpoint,
    pub(crate) protocol: Arc<P>,
    pub(crate) connector: Connector,
    pub(crate) options: ConnectionOptions,
    pub(crate) config: PoolConfig,
    pub(crate) counters: Arc<Counters>,
    /// One warm-up at a time (the reaper's and [`crate::Client::warm`]), so that neither sees the other's
    /// checked-out connections as missing.
    pub(crate) warming: tokio::sync::Mutex<()>,
    /// The pipelined connections, for callers to queue on without a check-out.
    pub(crate) shelf: Arc<Shelf<P>>,
    /// The `on_connect` hook run on each new connection before it is shelved, and its timeout (`setup`).
    pub(crate) setup: Option<(OnConnect<P>, Duration)>,
    /// Connections being opened now.
    pub(crate) opening: Opening,
}

impl<P: Protocol> std::fmt::Debug for Manager<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("endpoint", &self.endpoint.to_string())
            .finish()
    }
}

/// The pool of one endpoint.
pub type Pool<P> = managed::Pool<Manager<P>>;

impl<P: Protocol> Manager<P> {
    /// The lifetime of a new connection: the maximum, shortened by a random fraction up to the jitter.
    fn lifetime(&self) -> Option<Duration> {
        let max = self.config.max_lifetime?;
        let jitter = self.config.lifetime_jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return Some(max);
        }
        Some(max.mul_f64(1.0 - rand::thread_rng().gen_range(0.0..=jitter)))
    }

    /// A manager of exclusive connections to the same endpoint, for [`crate::Client::exclusive`]: depth 1, the
    /// same set-up, and a shelf of its own that no caller reads, so a checked-out connection is its holder's alone.
    pub(crate) fn exclusive(&self) -> Manager<P> {
        let mut options = self.options.clone();
        options.depth = 1;
        Manager {
            endpoint: self.endpoint.clone(),
            protocol: self.protocol.clone(),
            connector: self.connector.clone(),
            options,
            config: self.config.clone(),
            counters: self.counters.clone(),
            warming: tokio::sync::Mutex::new(()),
            shelf: Arc::default(),
            setup: self.setup.clone(),
            opening: Opening::default(),
        }
    }

    /// Why `conn` must not be handed out again, if it must not.
    pub(crate) fn verdict(&self, conn: &Connection<P>) -> Option<CloseReason> {
        let now = Instant::now();
        if let Err(r) = conn.check_at(now) {
            return Some(r);
        }
        match self.config.idle_timeout {
            Some(t) if conn.in_flight() == 0 && conn.idle_time_at(now) >= t => {
                Some(CloseReason::IdleTimeout)
            }
            _ => None,
        }
    }
}

impl<P: Protocol> managed::Manager for Manager<P> {
    type Type = Connection<P>;
    type Error = Error;

    async fn create(&self) -> Result<Connection<P>, Error> {
        let _opening = self.opening.start();
        let ctx = CALL_CTX.try_with(|c| c.clone()).ok();
        let deadline = ctx.as_ref().and_then(|c| c.deadline);
        let start = Instant::now();
        let progress: &dyn ConnectProgress = match &ctx {
            Some(c) => c.as_ref(),
            None => &(),
        };
        let result = self
            .connector
            .connect_with(&self.endpoint, deadline, progress)
            .await;
        let took = start.elapsed();
        self.counters.connect(took, result.is_ok());
        if let Some(c) = &ctx {
            c.enter(Phase::PoolWait);
            if result.is_ok() {
                let mut total = c.connect_time.lock().unwrap_or_else(|e| e.into_inner());
                *total = Some(total.unwrap_or_default() + took);
            }
        }
        let stream = result?;
        let mut options = self.options.clone();
        options.expires_after = self.lifetime();
        let mut conn = Connection::from_stream(stream, self.protocol.clone(), options);
        conn.set_connect_time(took);
        // Connection set-up (`setup`): before the shelf, where callers could see the connection. On failure the
        // connection is dropped (closed) here, never used.
        if let Some((hook, timeout)) = &self.setup {
            if let Some(c) = &ctx {
                c.enter(Phase::Setup);
            }
            let done = hook.run(&conn, *timeout).await;
            if let Some(c) = &ctx {
                c.enter(Phase::PoolWait);
            }
            done?;
        }
        self.shelf.put(&mut conn);
        Ok(conn)
    }

    async fn recycle(&self, conn: &mut Connection<P>, _: &Metrics) -> RecycleResult<Error> {
        match self.verdict(conn) {
            None => Ok(()),
            Some(reason) => {
                self.counters.closed(reason, 1);
                Err(RecycleError::message(reason.to_string()))
            }
        }
    }
}

/// Check out a connection with a free pipelining slot.
///
/// Slots are only reserved by the caller holding the pooled object, so a connection that sits in the pool
/// never loses a free slot there: replies only free them. The caller that takes the last slot keeps the object
/// until its reply arrives (see [`hold`]), so every connection in the pool has a free slot and the
/// first one deadpool hands out will do. Callers that find none wait in deadpool's FIFO queue (bounded by the
/// pool wait timeout) while deadpool opens connections up to `max_size`; no caller pins more than one.
///
/// Callers on the shelf take slots without a check-out, so a connection idle in the pool can be full: it is set
/// aside while the pool can open another or has others idle.
pub(crate) async fn checkout<P: Protocol>(
    pool: &Pool<P>,
    ctx: &Arc<CallCtx>,
) -> Result<(managed::Object<Manager<P>>, Slot), Error> {
    // Full connections held while looking further: deadpool opens a new one only when none is idle, and
    // callers on the shelf fill connections that sit idle in the pool.
    let mut full: Vec<managed::Object<Manager<P>>> = Vec::new();
    loop {
        // While holding full ones, never wait in deadpool's queue: that could wait for the very connections
        // held here. Boxed: deadpool's `get` future holds `Manager::create` (connect, TLS handshake), kilobytes
        // that every layer above would otherwise carry and move on each call.
        let timeouts = managed::Timeouts {
            wait: if full.is_empty() {
                pool.timeouts().wait
            } else {
                Some(Duration::ZERO)
            },
            ..pool.timeouts()
        };
        let got = Box::pin(CALL_CTX.scope(ctx.clone(), pool.timeout_get(&timeouts))).await;
        let obj = match got {
            Ok(obj) => {
                if let Some(slot) = obj.try_reserve() {
                    return Ok((obj, slot));
                }
                if obj.health().is_some() {
                    // Dead since it was recycled: dropping it gives it back, and the next recycle removes it.
                    continue;
                }
                // Full. While the pool may still open a connection or has others idle, keep this one aside and
                // look further.
                let status = pool.status();
                if status.available > 0 || status.size < status.max_size {
                    full.push(obj);
                    continue;
                }
                obj
            }
            // Nothing idle and no room: one of the full ones will do.
            Err(managed::PoolError::Timeout(managed::TimeoutType::Wait)) if !full.is_empty() => {
                full.pop().expect("not empty")
            }
            Err(e) => return Err(pool_error(e, Phase::PoolWait)),
        };
        // Wait for a slot on this one, without pinning the others.
        full.clear();
        if let Ok(slot) = obj.reserve().await {
            return Ok((obj, slot));
        }
    }
}

/// Whether the caller that just queued on `conn` must keep the pooled object until its reply arrives: it took
/// the last free slot, and a connection goes back to the pool only with one free.
pub(crate) fn hold<P: Protocol>(conn: &Connection<P>) -> bool {
    conn.free_slots() == 0
}

/// Remove idle connections that would fail recycling; returns how many were removed.
pub(crate) fn reap<P: Protocol>(pool: &Pool<P>) -> usize {
    let manager = pool.manager();
    let removed = pool.retain(|conn, _| match manager.verdict(conn) {
        None => true,
        Some(reason) => {
            manager.counters.closed(reason, 1);
            false
        }
    });
    removed.removed.len()
}

/// Open connections until `min_idle` are idle (never past `max_size`). Returns how many were opened.
pub(crate) async fn warm<P: Protocol>(pool: &Pool<P>) -> Result<usize, Error> {
    let want = pool.manager().config.min_idle;
    let _one_at_a_time = pool.manager().warming.lock().await;
    let status = pool.status();
    let missing = want
        .saturating_sub(status.available)
        .min(status.max_size.saturating_sub(status.size));
    if missing == 0 {
        return Ok(0);
    }
    // Check out every idle connection plus `missing` more at once: the extra ones must be opened.
    let gets = (0..status.available + missing).map(|_| pool.get());
    let results = futures::future::join_all(gets).await;
    let before = status.size;
    let mut first_err = None;
    let mut objects = Vec::new();
    for r in results {
        match r {
            Ok(o) => objects.push(o),
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(pool_error(e, Phase::Connect));
                }
            }
        }
    }
    let opened = pool.status().size.saturating_sub(before);
    drop(objects);
    match first_err {
        Some(e) if opened == 0 => Err(e),
        _ => Ok(opened),
    }
}

/// A deadpool error as ours.
pub(crate) fn pool_error(e: managed::PoolError<Error>, phase: Phase) -> Error {
    use crate::error::ErrorKind;
    match e {
        managed::PoolError::Backend(e) => e,
        managed::PoolError::Closed => {
            Error::new(ErrorKind::Closed, phase, "the pool is closed").with_sent(false)
        }
        managed::PoolError::Timeout(_) => {
            Error::new(ErrorKind::Timeout, phase, "pool timeout").with_sent(false)
        }
        other => Error::new(ErrorKind::Io, phase, other.to_string()).with_sent(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Timeouts;
    use crate::protocol::Framed;
    use crate::transport::Stream;

    fn manager(config: PoolConfig) -> Manager<Framed> {
        Manager {
            endpoint: "unix:/nonexistent".parse().unwrap(),
            protocol: Arc::new(Framed::default()),
            connector: Connector::new(Default::default(), &Timeouts::default(), None).unwrap(),
            options: ConnectionOptions::default(),
            config,
            counters: Arc::default(),
            warming: tokio::sync::Mutex::new(()),
            shelf: Arc::default(),
            setup: None,
            opening: Opening::default(),
        }
    }

    fn connection(m: &Manager<Framed>) -> (Connection<Framed>, tokio::net::UnixStream) {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let mut options = m.options.clone();
        options.expires_after = m.lifetime();
        (
            Connection::from_stream(Stream::Unix(a), m.protocol.clone(), options),
            b,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_and_jittered_lifetime_decide_recycling() {
        let m = manager(PoolConfig {
            idle_timeout: Some(Duration::from_secs(10)),
            max_lifetime: Some(Duration::from_secs(60)),
            lifetime_jitter: 0.0,
            ..PoolConfig::default()
        });
        let (conn, _peer) = connection(&m);
        assert_eq!(m.verdict(&conn), None);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(m.verdict(&conn), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(m.verdict(&conn), Some(CloseReason::IdleTimeout));
        tokio::time::advance(Duration::from_secs(50)).await;
        assert_eq!(m.verdict(&conn), Some(CloseReason::MaxLifetime));
    }

    #[tokio::test(start_paused = true)]
    async fn lifetimes_are_spread_by_the_jitter() {
        let m = manager(PoolConfig {
            max_lifetime: Some(Duration::from_secs(100)),
            lifetime_jitter: 0.2,
            ..PoolConfig::default()
        });
        let lifetimes: Vec<Duration> = (0..200).map(|_| m.lifetime().unwrap()).collect();
        assert!(lifetimes
            .iter()
            .all(|l| *l >= Duration::from_secs(80) && *l <= Duration::from_secs(100)));
        let min = lifetimes.iter().min().unwrap();
        let max = lifetimes.iter().max().unwrap();
        assert!(
            *max - *min > Duration::from_secs(10),
            "no spread: {min:?}..{max:?}"
        );
    }
}
