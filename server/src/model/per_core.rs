//! `per-core`: `workers` threads, each with a current-thread tokio runtime and its own listeners. TCP
//! listeners are bound once per worker with SO_REUSEPORT, so the kernel spreads connections over the
//! workers and no connection ever moves between threads; a Unix listener is shared (each worker polls a
//! duplicate of it). [`workers`] is that layout, shared with `uring` (a ring per worker).

use std::io;
use std::sync::Arc;

use crate::config::ListenAddr;
use crate::listen::{self, Bound, Listener};
use crate::model::tokio_io;
use crate::shared::Shared;

/// Serves `bound` until shutdown and drain.
pub(crate) fn run(bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    workers(bound, shared, "sockpool-core", |mine, shared| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let result = rt.block_on(async {
            let listeners = tokio_io::register(mine)?;
            tokio_io::serve(listeners, shared).await;
            Ok(())
        });
        rt.shutdown_background();
        result
    })
}

/// Runs `serve` on `workers` threads named `name-N`, each over its own listeners, until every one returns; the
/// first that fails stops the others (the server is not whole any more).
pub(crate) fn workers(
    bound: Vec<Bound>,
    shared: Arc<Shared>,
    name: &str,
    serve: fn(Vec<Bound>, Arc<Shared>) -> io::Result<()>,
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
    let mut threads = Vec::with_capacity(workers);
    for (i, mine) in per_worker.into_iter().enumerate() {
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || -> io::Result<()> {
                    let result = serve(mine, shared.clone());
                    if result.is_err() {
                        shared.shutdown.cancel();
                    }
                    result
                })?,
        );
    }
    // Every listener is bound and listening: connections queue until their worker accepts them.
    shared.mark_ready();
    let mut result = Ok(());
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err(io::Error::other(format!("a {name} worker panicked"))),
        }
    }
    result
}
