//! `processes`: `workers` pre-started worker processes of the `sockpool-server` executable (the hidden
//! `--worker-config` flag), each a single-thread `per-core` server listening on the same TCP ports with
//! SO_REUSEPORT, so the kernel spreads connections over the processes.
//!
//! - The parent binds each TCP port first (SO_REUSEPORT, not listening) so port 0 resolves and the port stays
//!   reserved; the workers listen on it. Unix-socket listeners are refused (`Server::bind`); UDP listeners are
//!   served by the parent, like in every model. TLS works (each worker loads the certificate).
//! - `max_connections` is one limit over every worker: a pool of places in a pipe (`shared::ConnPool`). When a
//!   worker dies, the parent returns the places it held to the pool before starting another.
//! - RESP data is per worker process: each worker has its own key space, so a key set through one connection
//!   is seen by the connections the kernel gives the same worker, not by the others (docs/PROTOCOL.md).
//! - `STATS` answers the counters of the worker process that serves the connection. `Server::stats` in the
//!   parent counts UDP only while running; at shutdown the parent sends SIGTERM to every worker, adds their
//!   final counters (their `stats` line) to its own, and returns the sum.
//! - A worker also stops when the parent goes away (its stdin closes).
//! - The parent supervises its workers: one that exits while the server runs (killed, crashed) is logged on
//!   stderr, counted in `worker_restarts`, and started again, so the port never stays dark. Its counters are
//!   lost with it.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{ListenAddr, ListenSpec, Model};
use crate::listen::{Bound, Listener};
use crate::shared::{ConnPool, Shared};
use crate::stats::StatsSnapshot;

/// How long a worker may take to bind and say `ready`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Extra time past the shutdown deadline before a worker is killed.
const KILL_GRACE: Duration = Duration::from_secs(2);

struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
}

/// Serves `bound` with worker processes until shutdown and drain.
pub(crate) fn run(bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    let exe = worker_exe(shared.config.worker_exe.as_deref())?;
    let n = shared.config.workers.max(1);
    let mut cfg = shared.config.clone();
    cfg.model = Model::PerCore;
    cfg.workers = 1;
    cfg.reuse_port = true;
    cfg.admin = None;
    cfg.worker_exe = None;
    cfg.listeners = bound
        .iter()
        .filter(|b| matches!(b.listener, Listener::Reserved(_)))
        .map(|b| ListenSpec {
            proto: b.addr.proto,
            tls: b.addr.tls,
            addr: b.addr.addr.clone(),
        })
        .collect();
    if cfg.listeners.is_empty() {
        shared.mark_ready();
        futures::executor::block_on(shared.shutdown.cancelled());
        return Ok(());
    }
    debug_assert!(cfg
        .listeners
        .iter()
        .all(|l| matches!(l.addr, ListenAddr::Tcp(_))));
    // The connection pool, full, and one held pipe per worker (kept open here while workers run).
    let max = shared.config.limits.max_connections;
    let (pool_r, pool_w) = pipe_holding(max)?;
    let pool_w = std::fs::File::from(pool_w);
    (&pool_w).write_all(&vec![0; max])?;
    let held: Vec<(OwnedFd, OwnedFd)> = (0..n)
        .map(|_| pipe_holding(max))
        .collect::<io::Result<_>>()?;
    let proc_fd = |fd: i32| PathBuf::from(format!("/proc/{}/fd/{fd}", std::process::id()));
    let mut jsons = Vec::with_capacity(n);
    let mut pools = Vec::with_capacity(n);
    for (r, _) in &held {
        let paths = (proc_fd(pool_r.as_raw_fd()), proc_fd(r.as_raw_fd()));
        pools.push(ConnPool::open(&paths)?);
        cfg.connection_pool = Some(paths);
        jsons.push(serde_json::to_string(&cfg).map_err(io::Error::other)?);
    }

    let mut workers = Vec::with_capacity(n);
    let started = (|| -> io::Result<()> {
        for json in &jsons {
            workers.push(start_worker(&exe, json)?);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for w in &mut workers {
            wait_ready(w, deadline)?;
        }
        Ok(())
    })();
    shared.mark_ready();
    if started.is_ok() {
        supervise(&mut workers, &exe, &jsons, &pools, &shared);
    }
    // Stop every worker and add up their counters.
    for w in &workers {
        if let Ok(pid) = i32::try_from(w.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let deadline = Instant::now() + shared.config.shutdown_deadline + KILL_GRACE;
    for mut w in workers {
        if let Some(s) = final_stats(&w, deadline) {
            shared.stats.add_snapshot(&s);
        }
        let _ = w.child.kill();
        let _ = w.child.wait();
    }
    drop(bound);
    drop((pool_r, pool_w, held));
    started
}

/// A pipe that can hold `bytes` (at most `/proc/sys/fs/pipe-max-size`, 1 MiB by default).
fn pipe_holding(bytes: usize) -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe()?;
    let size = i32::try_from(bytes.max(4096)).unwrap_or(i32::MAX);
    let got = nix::fcntl::fcntl(w.as_raw_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(size));
    match got {
        Ok(got) if got as usize >= bytes => Ok((r, w)),
        _ => Err(io::Error::other(format!(
            "processes: --max-connections {bytes} is more than a pipe holds (/proc/sys/fs/pipe-max-size): \
             the workers share the limit through one"
        ))),
    }
}

/// How often the supervisor looks at its workers and at the shutdown signal.
const SUPERVISE_EVERY: Duration = Duration::from_millis(50);

/// Until shutdown, starts a worker again whenever one exits: logged once per exit, counted in
/// `worker_restarts`, the connection places it held returned to the pool. A worker that cannot be started is
/// tried again a second later (logged and counted again).
fn supervise(
    workers: &mut [Worker],
    exe: &PathBuf,
    jsons: &[String],
    pools: &[ConnPool],
    shared: &Shared,
) {
    while !shared.shutdown.is_cancelled() {
        std::thread::sleep(SUPERVISE_EVERY);
        for ((w, json), pool) in workers.iter_mut().zip(jsons).zip(pools) {
            let Ok(Some(status)) = w.child.try_wait() else {
                continue;
            };
            if shared.shutdown.is_cancelled() {
                return;
            }
            let places = pool.reclaim();
            eprintln!(
                "sockpool-server: worker process {} exited ({status}); {places} connection places returned; \
                 starting another",
                w.child.id()
            );
            shared.stats.inc(crate::stats::Counter::WorkerRestarts);
            let restarted = start_worker(exe, json).and_then(|mut fresh| {
                wait_ready(&mut fresh, Instant::now() + START_TIMEOUT)?;
                Ok(fresh)
            });
            match restarted {
                Ok(fresh) => *w = fresh,
                Err(e) => {
                    eprintln!(
                        "sockpool-server: starting a worker again failed: {e}; retrying in 1s"
                    );
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

/// The executable to start workers from: the configured one; else this process if it is `sockpool-server`;
/// else a `sockpool-server` beside it or one directory up (`target/debug/deps/…` test binaries).
fn worker_exe(configured: Option<&std::path::Path>) -> io::Result<PathBuf> {
    if let Some(p) = configured {
        return Ok(p.to_path_buf());
    }
    let me = std::env::current_exe()?;
    if me.file_stem().is_some_and(|s| s == "sockpool-server") {
        return Ok(me);
    }
    let mut dir = me.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join("sockpool-server");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "the processes model needs the sockpool-server executable: none beside {}; set worker_exe",
            me.display()
        ),
    ))
}

fn start_worker(exe: &PathBuf, json: &str) -> io::Result<Worker> {
    let mut child = Command::new(exe)
        .arg("--worker-config")
        .arg(json)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("start worker {}: {e}", exe.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("worker stdout"))?;
    let (tx, lines) = mpsc::channel();
    std::thread::Builder::new()
        .name("sockpool-worker-out".into())
        .spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        })?;
    Ok(Worker { child, lines })
}

fn wait_ready(w: &mut Worker, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match w.lines.recv_timeout(left) {
            Ok(line) if line == "ready" => return Ok(()),
            Ok(_) => {}
            Err(_) => {
                return Err(io::Error::other(format!(
                    "worker process {} did not become ready (exit status: {:?})",
                    w.child.id(),
                    w.child.try_wait().ok().flatten()
                )))
            }
        }
    }
}

fn final_stats(w: &Worker, deadline: Instant) -> Option<StatsSnapshot> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = w.lines.recv_timeout(left).ok()?;
        if let Some(json) = line.strip_prefix("stats ") {
            return serde_json::from_str(json).ok();
        }
    }
}
