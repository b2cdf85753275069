//! `async`: one tokio multi-thread runtime with `workers` worker threads; every listener has an accept task,
//! every connection a task. With one worker the runtime is a current-thread one, as each of `per-core`'s: a
//! multi-thread scheduler with one worker served 8,000 busy connections unevenly (its local run queue holds 256
//! tasks, the rest of a wake-up batch overflows to the global queue, which it checks only every few dozen
//! polls), at 1.7–1.95× nginx's p99, against 0.98–1.14× for the current-thread runtime in the same A/B run
//! (docs/PERFORMANCE.md).

use std::io;
use std::sync::Arc;

use crate::listen::Bound;
use crate::model::tokio_io;
use crate::shared::Shared;

/// Serves `bound` until shutdown and drain.
pub(crate) fn run(bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    let mut builder = match shared.config.workers {
        0 | 1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let rt = builder.thread_name("sockpool-async").enable_all().build()?;
    let result = rt.block_on(async {
        let listeners = tokio_io::register(bound)?;
        shared.mark_ready();
        tokio_io::serve(listeners, shared).await;
        Ok(())
    });
    // The connections still open past the shutdown deadline are dropped with the runtime: waited for (up to
    // `TEARDOWN`), so the exit's counters are taken after they closed. `shutdown_background` dropped them on
    // the worker threads after `run` had returned: the `stats` line said one was still open.
    rt.shutdown_timeout(crate::model::TEARDOWN);
    result
}
