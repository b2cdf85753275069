//! `async`: one tokio multi-thread runtime with `workers` worker threads; every listener has an accept task,
//! every connection a task.

use std::io;
use std::sync::Arc;

use crate::listen::Bound;
use crate::model::tokio_io;
use crate::shared::Shared;

/// Serves `bound` until shutdown and drain.
pub(crate) fn run(bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(shared.config.workers)
        .thread_name("sockpool-async")
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let listeners = tokio_io::register(bound)?;
        shared.mark_ready();
        tokio_io::serve(listeners, shared).await;
        Ok(())
    });
    rt.shutdown_background();
    result
}
