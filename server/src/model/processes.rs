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
//!   is seen by the connections the kernel gives the same worker, not by the others (docs/PROTOCOL.md); each
//!   key space is capped at `--max-store / --workers`, so together they hold at most `--max-store`.
//! - Counters: each worker writes its counters, when they changed, every [`REPORT_EVERY`] to its stdout
//!   (`counters <json>`, cumulative), and its final ones at exit (`stats <json>`). A thread of the parent per
//!   worker reads them and adds each report's difference from the previous one to the parent's counters, so
//!   `Server::stats` (the admin endpoint's `/metrics`, the exit `stats` line) is the parent's own (UDP,
//!   `worker_restarts`) plus the latest report of every worker, live or gone: at most [`REPORT_EVERY`] old, and
//!   nothing counted twice across a restart (a new worker starts from zero). When a worker's stdout ends, its
//!   connections leave `connections_open`. A worker killed outright loses what it counted after its last
//!   report. `STATS` on a connection answers the counters of the worker process serving it.
//! - At shutdown the parent sends SIGTERM to every worker and waits for its final `stats` line up to
//!   `shutdown_deadline` + [`KILL_GRACE`], then kills it (SIGKILL).
//! - A worker also stops when the parent goes away (its stdin closes).
//! - The parent supervises its workers: one that exits while the server runs (killed, crashed) is logged on
//!   stderr and started again, so the port never stays dark; `worker_restarts` counts it once its
//!   replacement is ready. A replacement that fails to start is logged, reaped, and tried again a second
//!   later.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{ListenAddr, ListenSpec, Model};
use crate::listen::{Bound, Listener};
use crate::shared::{ConnPool, Shared};
use crate::stats::{Counter, Stats, StatsSnapshot};

/// How long a worker may take to bind and say `ready`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Extra time past the shutdown deadline before a worker is killed.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How often a worker reports its counters to the parent (when they changed).
pub(crate) const REPORT_EVERY: Duration = Duration::from_millis(250);
/// How long a replacement that failed to start waits before the next try.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// One worker process.
struct Worker {
    /// The process.
    child: Child,
    /// Its stdout's lines other than counter reports (`listening …`, `ready`), and its final `stats` line.
    lines: mpsc::Receiver<String>,
    /// The thread reading its stdout; it ends when the worker's stdout closes.
    reader: JoinHandle<()>,
    /// A replacement that has not said `ready` yet: the time it has until then.
    ready_by: Option<Instant>,
}

impl Worker {
    /// Stops following this worker (it exited, or is to be killed): waits for its final `stats` line (or the end
    /// of its stdout) until `deadline`, kills and reaps it, and waits until its counters are settled. True when
    /// it said `ready` among the lines read here.
    fn retire(mut self, deadline: Instant) -> bool {
        let mut ready = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("stats ") => break,
                Ok(line) => ready |= line == "ready",
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Dead, so its stdout is closed: the reader ends at once.
        let _ = self.reader.join();
        ready
    }
}

/// Serves `bound` with worker processes until shutdown and drain.
pub(crate) fn run(bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    let exe = worker_exe(shared.config.worker_exe.as_deref())?;
    let n = shared.config.workers.max(1);
    let mut cfg = shared.config.clone();
    cfg.model = Model::PerCore;
    cfg.workers = 1;
    // Each worker has a key space of its own: each gets its share of `--max-store`, so the server's keys stay
    // within the flag (docs/OPERATIONS.md).
    cfg.limits.max_store = shared.config.limits.max_store / n;
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

    let mut workers: Vec<Option<Worker>> = Vec::with_capacity(n);
    let started = (|| -> io::Result<()> {
        for json in &jsons {
            workers.push(Some(start_worker(&exe, json, &shared.stats)?));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for w in workers.iter_mut().flatten() {
            wait_ready(w, deadline)?;
        }
        Ok(())
    })();
    shared.mark_ready();
    if started.is_ok() {
        supervise(&mut workers, &exe, &jsons, &pools, &shared);
    }
    // Stop every worker; their final counters come in as they exit.
    for w in workers.iter().flatten() {
        if let Ok(pid) = i32::try_from(w.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let deadline = Instant::now() + shared.config.shutdown_deadline + KILL_GRACE;
    for w in workers.into_iter().flatten() {
        // A replacement whose `ready` came as shutdown began is counted as it would have been a tick later.
        let starting = w.ready_by.is_some();
        if w.retire(deadline) && starting {
            shared.stats.inc(Counter::WorkerRestarts);
        }
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

/// Until shutdown, starts a worker again whenever one exits: the exit logged once, the connection places it
/// held returned to the pool, its last counters kept; `worker_restarts` counted once a replacement is ready.
/// A replacement that cannot be started (or does not become ready within [`START_TIMEOUT`]) is logged, reaped,
/// and tried again [`RETRY_EVERY`] later (the slot stays empty meanwhile). Nothing here waits on one worker:
/// a replacement's start is watched a tick at a time like the running workers, so a second worker that dies
/// while the first one's replacement starts is noticed, logged and replaced as promptly, and so is shutdown.
fn supervise(
    workers: &mut [Option<Worker>],
    exe: &PathBuf,
    jsons: &[String],
    pools: &[ConnPool],
    shared: &Shared,
) {
    let mut retry_at = vec![Instant::now(); workers.len()];
    while !shared.shutdown.is_cancelled() {
        std::thread::sleep(SUPERVISE_EVERY);
        for (((slot, json), pool), retry_at) in
            workers.iter_mut().zip(jsons).zip(pools).zip(&mut retry_at)
        {
            if shared.shutdown.is_cancelled() {
                return;
            }
            if let Some(w) = slot.as_mut().filter(|w| w.ready_by.is_some()) {
                match poll_ready(w) {
                    None => continue,
                    Some(Ok(())) => {
                        w.ready_by = None;
                        shared.stats.inc(Counter::WorkerRestarts);
                    }
                    Some(Err(e)) => {
                        if let Some(w) = slot.take() {
                            w.retire(Instant::now());
                        }
                        pool.reclaim();
                        eprintln!(
                            "sockpool-server: starting a worker again failed: {e}; retrying in {}s",
                            RETRY_EVERY.as_secs()
                        );
                        *retry_at = Instant::now() + RETRY_EVERY;
                    }
                }
                continue;
            }
            if let Some(w) = slot {
                let Ok(Some(status)) = w.child.try_wait() else {
                    continue;
                };
                let pid = w.child.id();
                if let Some(w) = slot.take() {
                    w.retire(Instant::now());
                }
                let places = pool.reclaim();
                eprintln!(
                    "sockpool-server: worker process {pid} exited ({status}); {places} connection places returned; \
                     starting another"
                );
                *retry_at = Instant::now();
            }
            if Instant::now() < *retry_at {
                continue;
            }
            match start_worker(exe, json, &shared.stats) {
                Ok(mut fresh) => {
                    fresh.ready_by = Some(Instant::now() + START_TIMEOUT);
                    *slot = Some(fresh);
                }
                Err(e) => {
                    pool.reclaim();
                    eprintln!(
                        "sockpool-server: starting a worker again failed: {e}; retrying in {}s",
                        RETRY_EVERY.as_secs()
                    );
                    *retry_at = Instant::now() + RETRY_EVERY;
                }
            }
        }
    }
}

/// Whether a starting worker said `ready` yet, without waiting: `None` while it may still (before
/// [`Worker::ready_by`]).
fn poll_ready(w: &mut Worker) -> Option<io::Result<()>> {
    let deadline = w.ready_by?;
    loop {
        match w.lines.try_recv() {
            Ok(line) if line == "ready" => return Some(Ok(())),
            Ok(_) => {}
            Err(mpsc::TryRecvError::Empty) if Instant::now() < deadline => return None,
            Err(_) => return Some(Err(not_ready(w))),
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

/// Starts a worker process and the thread that reads its stdout: counter reports go into `stats` (each one's
/// difference from the one before; at the end of its stdout, its connections leave `connections_open`), every
/// other line (and the final `stats` line, once counted) to [`Worker::lines`].
fn start_worker(exe: &PathBuf, json: &str, stats: &Arc<Stats>) -> io::Result<Worker> {
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
    let stats = stats.clone();
    let reader = std::thread::Builder::new()
        .name("sockpool-worker-out".into())
        .spawn(move || {
            let mut reported = StatsSnapshot::default();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let report = line
                    .strip_prefix("counters ")
                    .or_else(|| line.strip_prefix("stats "));
                if let Some(json) = report {
                    if let Ok(now) = serde_json::from_str::<StatsSnapshot>(json) {
                        stats.add_difference(&reported, &now);
                        reported = now;
                    }
                    if line.starts_with("counters ") {
                        continue;
                    }
                }
                // Nobody listening any more is fine: keep counting.
                let _ = tx.send(line);
            }
            // The worker is gone (or going): it holds no connection any more.
            let gone = StatsSnapshot {
                connections_open: 0,
                ..reported
            };
            stats.add_difference(&reported, &gone);
        });
    let reader = match reader {
        Ok(r) => r,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    Ok(Worker {
        child,
        lines,
        reader,
        ready_by: None,
    })
}

fn wait_ready(w: &mut Worker, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match w.lines.recv_timeout(left) {
            Ok(line) if line == "ready" => return Ok(()),
            Ok(_) => {}
            Err(_) => return Err(not_ready(w)),
        }
    }
}

/// A worker that did not say `ready` (it exited, or its time ran out).
fn not_ready(w: &mut Worker) -> io::Error {
    io::Error::other(format!(
        "worker process {} did not become ready (exit status: {:?})",
        w.child.id(),
        w.child.try_wait().ok().flatten()
    ))
}
