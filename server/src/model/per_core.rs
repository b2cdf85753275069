//! `per-core`: `workers` threads, each with a current-thread tokio runtime and its own listeners. TCP
//! listeners are bound once per worker with SO_REUSEPORT, so the kernel spreads connections over the
//! workers and no connection ever moves between threads; a Unix listener is shared (each worker polls a
//! duplicate of it). [`workers`] is that layout, shared with `uring` (a ring per worker).

use std::io;
use std::sync::{mpsc, Arc};

use crate::config::ListenAddr;
use crate::listen::{self, Bound, Listener};
use crate::model::tokio_io;
use crate::shared::Shared;

/// Serves `bound` until shutdown and drain.
pub(crate) fn run(bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    workers(bound, shared, "sockpool-core", |mine, shared, started| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let result = rt.block_on(async {
            let listeners = tokio_io::register(mine)?;
            started.done();
            tokio_io::serve(listeners, shared).await;
            Ok(())
        });
        // The connections still open past the shutdown deadline are dropped with the runtime: waited for (up to
        // `TEARDOWN`), so the exit's counters are taken after they closed. `shutdown_background` dropped them on
        // the worker threads after `run` had returned: the `stats` line said one was still open.
        rt.shutdown_timeout(crate::model::TEARDOWN);
        result
    })
}

/// A worker's word that it is set up (its runtime or ring built, its listeners registered): [`workers`] says
/// `ready` only when every worker has said so.
pub(crate) struct Started(mpsc::Sender<()>);

impl Started {
    pub(crate) fn done(self) {
        let _ = self.0.send(());
    }
}

/// Runs `serve` on `workers` threads named `name-N`, each over its own listeners, until every one returns; the
/// first that fails stops the others (the server is not whole any more). A worker that fails before it is set
/// up (out of file descriptors or memory for its runtime or ring) fails the start: the server never says
/// `ready` with fewer workers than asked for.
pub(crate) fn workers(
    bound: Vec<Bound>,
    shared: Arc<Shared>,
    name: &str,
    serve: fn(Vec<Bound>, Arc<Shared>, Started) -> io::Result<()>,
) -> io::Result<()> {
    let workers = shared.config.workers.max(1);
    // Worker 0 takes the listeners bound by `Server::bind`; the others bind their own now, before any
    // thread starts, so a failure is reported at once.
    let mut per_worker: Vec<Vec<Bound>> = Vec::with_capacity(workers);
    for _ in 1..workers {
        let mut mine = Vec::new();
        for b in &bound {
            let listener = match (&b.listener, &b.addr.addr) {
                (Listener::Tcp(_), ListenAddr::Tcp(addr)) => {
                    Listener::Tcp(listen::tcp_listener(*addr, true)?)
                }
                (Listener::Unix(l), _) => Listener::Unix(l.try_clone()?),
                _ => continue,
            };
            mine.push(Bound {
                addr: b.addr.clone(),
                listener,
            });
        }
        per_worker.push(mine);
    }
    per_worker.insert(0, bound);
    let (started_tx, started_rx) = mpsc::channel();
    let mut threads = Vec::with_capacity(workers);
    let mut spawned = Ok(());
    for (i, mine) in per_worker.into_iter().enumerate() {
        let (shared, started) = (shared.clone(), Started(started_tx.clone()));
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || -> io::Result<()> {
                let result = serve(mine, shared.clone(), started);
                if result.is_err() {
                    shared.begin_shutdown();
                }
                result
            });
        match thread {
            Ok(t) => threads.push(t),
            Err(e) => {
                spawned = Err(e);
                break;
            }
        }
    }
    drop(started_tx);
    // Each worker's `Started` is used or dropped (it failed) before it serves: this ends once all have.
    let set_up = started_rx.iter().count();
    if spawned.is_ok() && set_up == workers {
        // Every listener is bound and listening: connections queue until their worker accepts them.
        shared.mark_ready();
    } else {
        shared.begin_shutdown();
    }
    let mut result = spawned;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err(io::Error::other(format!("a {name} worker panicked"))),
        }
    }
    if result.is_ok() && set_up < workers {
        result = Err(io::Error::other(format!(
            "{} of {workers} {name} workers stopped before they were set up",
            workers - set_up
        )));
    }
    result
}
