//! [`Server`]: bind everything (synchronously), then run until shutdown, on its own threads
//! ([`Server::spawn`]) or awaited ([`Server::run`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio_util::sync::CancellationToken;

use crate::config::{ListenAddr, Model, Proto, ServerConfig};
use crate::error::Error;
use crate::listen::{self, Bound, BoundAddr, Listener, UnixPathGuard};
use crate::shared::Shared;
use crate::stats::{Stats, StatsSnapshot};

/// How long [`Server::spawn`] waits for the model to serve (worker processes to start).
const READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A bound server, not yet serving. See the crate docs for an example.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    bound: Vec<Bound>,
    addrs: Vec<BoundAddr>,
    admin: Option<std::net::TcpListener>,
    admin_addr: Option<SocketAddr>,
    unix_paths: Vec<UnixPathGuard>,
}

impl Server {
    /// Validates `config` and binds every listener (port 0 picks a free port) and the admin address.
    pub fn bind(config: ServerConfig) -> Result<Server, Error> {
        config.validate()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(c), Some(k)) if config.listeners.iter().any(|l| l.tls) => Some(
                crate::tls::server_config(c, k, config.tls_client_ca.as_deref())?,
            ),
            _ => None,
        };
        check_model_support(&config)?;
        let reuse_port = config.reuse_port
            || matches!(
                config.model,
                Model::PerCore | Model::Processes | Model::Uring
            );
        // SO_REUSEPORT that the model needs, not that `--reuse-port` asked for: the port must be free first.
        let claim = |a: &SocketAddr| match reuse_port && !config.reuse_port {
            true => listen::claim(*a),
            false => Ok(*a),
        };
        let mut bound = Vec::new();
        let mut unix_paths = Vec::new();
        for spec in &config.listeners {
            let (listener, addr) = match &spec.addr {
                ListenAddr::Tcp(a) if config.model == Model::Processes => {
                    let s = claim(a)
                        .and_then(|a| listen::tcp_socket(a, true, false))
                        .map_err(|e| Error::io(format!("bind {spec}"), e))?;
                    let local = local_inet(&s).map_err(|e| Error::io(format!("bind {spec}"), e))?;
                    (Listener::Reserved(s), ListenAddr::Tcp(local))
                }
                ListenAddr::Tcp(a) => {
                    let l = claim(a)
                        .and_then(|a| listen::tcp_listener(a, reuse_port))
                        .map_err(|e| Error::io(format!("bind {spec}"), e))?;
                    let local = l
                        .local_addr()
                        .map_err(|e| Error::io(format!("bind {spec}"), e))?;
                    (Listener::Tcp(l), ListenAddr::Tcp(local))
                }
                ListenAddr::Unix(p) => {
                    let l = listen::unix_listener(p)
                        .map_err(|e| Error::io(format!("bind {spec}"), e))?;
                    unix_paths.push(UnixPathGuard::new(p.clone()));
                    (Listener::Unix(l), ListenAddr::Unix(p.clone()))
                }
                ListenAddr::Udp(a) => {
                    let s =
                        listen::udp_socket(*a).map_err(|e| Error::io(format!("bind {spec}"), e))?;
                    let local = s
                        .local_addr()
                        .map_err(|e| Error::io(format!("bind {spec}"), e))?;
                    (Listener::Udp(s), ListenAddr::Udp(local))
                }
            };
            let addr = BoundAddr {
                proto: spec.proto,
                tls: spec.tls,
                addr,
            };
            bound.push(Bound { addr, listener });
        }
        let (admin, admin_addr) = match config.admin {
            Some(a) => {
                let l = listen::tcp_listener(a, false)
                    .map_err(|e| Error::io(format!("bind admin {a}"), e))?;
                let local = l
                    .local_addr()
                    .map_err(|e| Error::io(format!("bind admin {a}"), e))?;
                (Some(l), Some(local))
            }
            None => (None, None),
        };
        let addrs = bound.iter().map(|b| b.addr.clone()).collect();
        let mut shared = Shared::new(
            config,
            Arc::new(Stats::default()),
            CancellationToken::new(),
            tls,
        );
        if let Some(paths) = &shared.config.connection_pool {
            shared.pool = Some(
                crate::shared::ConnPool::open(paths)
                    .map_err(|e| Error::io("processes worker", e))?,
            );
        }
        let shared = Arc::new(shared);
        Ok(Server {
            shared,
            bound,
            addrs,
            admin,
            admin_addr,
            unix_paths,
        })
    }

    /// Every listener as bound, in the order of `config.listeners`.
    pub fn local_addrs(&self) -> &[BoundAddr] {
        &self.addrs
    }

    /// The first TCP listener of `proto` (TLS or not).
    pub fn tcp_addr(&self, proto: Proto) -> Option<SocketAddr> {
        tcp_addr(&self.addrs, proto)
    }

    /// The first UDP listener.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.addrs.iter().find_map(|b| match b.addr {
            ListenAddr::Udp(a) => Some(a),
            _ => None,
        })
    }

    /// The first Unix-socket listener of `proto`.
    pub fn unix_path(&self, proto: Proto) -> Option<&Path> {
        self.addrs.iter().find_map(|b| match &b.addr {
            ListenAddr::Unix(p) if b.proto == proto => Some(p.as_path()),
            _ => None,
        })
    }

    /// Where the admin endpoint (`GET /metrics`) listens, if configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// Starts serving on threads of its own and returns once the model serves (for `processes`: once every
    /// worker process is ready); the handle stops it.
    pub fn spawn(self) -> ServerHandle {
        let shared = self.shared.clone();
        let shutdown = self.shared.shutdown.clone();
        let stats = self.shared.stats.clone();
        let addrs = self.addrs.clone();
        let thread = std::thread::Builder::new()
            .name("sockpool-server".into())
            .spawn(move || self.run_blocking())
            .expect("spawn the server thread");
        shared.wait_ready(READY_LIMIT);
        ServerHandle {
            shared,
            shutdown,
            stats,
            addrs,
            thread: Some(thread),
        }
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets connections finish the requests they
    /// already received (up to `shutdown_deadline`) and returns the final counters.
    ///
    /// The model runs on threads of its own (the `async` model in a runtime of `workers` threads), so this
    /// can be awaited from any runtime.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<StatsSnapshot> {
        // Listeners are bound already, so connections queue until the model accepts them; no need to wait
        // for it here.
        let shared = self.shared.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("sockpool-server".into())
            .spawn(move || {
                let _ = tx.send(self.run_blocking());
            })?;
        tokio::pin!(rx);
        tokio::select! {
            r = &mut rx => return r.unwrap_or_else(|_| Err(io::Error::other("server thread panicked"))),
            _ = shutdown => shared.begin_shutdown(),
        }
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("server thread panicked")))
    }

    /// Serves on the calling thread until shutdown and drain.
    fn run_blocking(self) -> io::Result<StatsSnapshot> {
        let Server {
            shared,
            bound,
            admin,
            unix_paths,
            ..
        } = self;
        let mut helpers = Vec::new();
        let mut stream = Vec::new();
        for b in bound {
            match b.listener {
                Listener::Udp(s) => {
                    let sh = shared.clone();
                    helpers.push(
                        std::thread::Builder::new()
                            .name("sockpool-udp".into())
                            .spawn(move || crate::protocol::udp::serve(s, sh))?,
                    );
                }
                listener => stream.push(Bound {
                    addr: b.addr,
                    listener,
                }),
            }
        }
        if let Some(l) = admin {
            let sh = shared.clone();
            helpers.push(
                std::thread::Builder::new()
                    .name("sockpool-admin".into())
                    .spawn(move || crate::admin::serve(l, sh))?,
            );
        }
        {
            let sh = shared.clone();
            helpers.push(
                std::thread::Builder::new()
                    .name("sockpool-stop".into())
                    .spawn(move || {
                        futures::executor::block_on(sh.shutdown.cancelled());
                        sh.mark_stopping();
                    })?,
            );
        }
        if shared.config.model != Model::Processes
            && shared
                .config
                .listeners
                .iter()
                .any(|l| l.proto == Proto::Resp)
        {
            // Active expiry: keys past their deadline that no client touches are reclaimed, a bounded number
            // per shard and per turn (`store` module). `processes` workers each run their own.
            let sh = shared.clone();
            helpers.push(
                std::thread::Builder::new()
                    .name("sockpool-expiry".into())
                    .spawn(move || expiry_sweeper(&sh))?,
            );
        }
        let result = crate::model::run(shared.config.model, stream, shared.clone());
        shared
            .ended
            .store(true, std::sync::atomic::Ordering::SeqCst);
        shared.mark_ready();
        shared.shutdown.cancel();
        for h in helpers {
            let _ = h.join();
        }
        drop(unix_paths);
        result.map(|()| shared.stats.snapshot())
    }
}

/// Runs [`Db::sweep`](crate::store::Db::sweep) every [`SWEEP_EVERY`](crate::store::SWEEP_EVERY) until shutdown
/// begins (looking for it five times as often, so a stop is not held up).
fn expiry_sweeper(shared: &Shared) {
    let tick = crate::store::SWEEP_EVERY / 5;
    loop {
        for _ in 0..5 {
            std::thread::sleep(tick);
            if shared.is_stopping() {
                return;
            }
        }
        shared
            .db
            .sweep(std::time::Instant::now(), crate::store::SWEEP_PER_SHARD);
    }
}

fn tcp_addr(addrs: &[BoundAddr], proto: Proto) -> Option<SocketAddr> {
    addrs.iter().find_map(|b| match b.addr {
        ListenAddr::Tcp(a) if b.proto == proto => Some(a),
        _ => None,
    })
}

fn local_inet(s: &socket2::Socket) -> io::Result<SocketAddr> {
    s.local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an inet socket"))
}

/// Refuses, before binding anything, the combinations a model cannot serve.
fn check_model_support(config: &ServerConfig) -> Result<(), Error> {
    use crate::error::ConfigError;
    if config.model == Model::Processes
        && config
            .listeners
            .iter()
            .any(|l| matches!(l.addr, ListenAddr::Unix(_)))
    {
        return Err(ConfigError::new(
            "the processes model serves TCP and UDP listeners only, not unix sockets",
        )
        .into());
    }
    Ok(())
}

/// A running server. [`ServerHandle::shutdown`] stops it gracefully and returns the final counters;
/// dropping the handle does the same and discards them.
#[derive(Debug)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
    addrs: Vec<BoundAddr>,
    thread: Option<JoinHandle<io::Result<StatsSnapshot>>>,
}

impl ServerHandle {
    /// The live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Every listener as bound.
    pub fn local_addrs(&self) -> &[BoundAddr] {
        &self.addrs
    }

    /// The first TCP listener of `proto`.
    pub fn tcp_addr(&self, proto: Proto) -> Option<SocketAddr> {
        tcp_addr(&self.addrs, proto)
    }

    /// Stops accepting, lets connections finish the requests they already received (up to the shutdown
    /// deadline), and returns the final counters.
    pub fn shutdown(mut self) -> StatsSnapshot {
        self.stop().unwrap_or_else(|| self.stats.snapshot())
    }

    /// True when the server has stopped: after a shutdown, or at once when its model could not start (bind
    /// errors surface in [`Server::bind`]; this catches a `processes` worker that would not start). Then
    /// [`ServerHandle::wait`] returns the error.
    pub fn is_finished(&self) -> bool {
        self.shared.ended.load(std::sync::atomic::Ordering::SeqCst)
            || self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Resolves when the server begins to stop: after [`ServerHandle::shutdown`], or by itself when its model
    /// fails (a worker that ends on an error stops the others). [`ServerHandle::wait`] then tells which.
    pub async fn stopping(&self) {
        self.shutdown.cancelled().await
    }

    /// Waits until the server stops by itself (it does not, unless its model fails) or is shut down.
    pub fn wait(mut self) -> io::Result<StatsSnapshot> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("server thread panicked"))),
            None => Ok(self.stats.snapshot()),
        }
    }

    fn stop(&mut self) -> Option<StatsSnapshot> {
        self.shared.begin_shutdown();
        let t = self.thread.take()?;
        t.join().ok()?.ok()
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
