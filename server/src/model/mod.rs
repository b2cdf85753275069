//! The concurrency models, one module each, all the same shape: `run(bound, shared)` serves the bound
//! listeners with [`Session`](crate::session::Session)s until `shared.shutdown` is cancelled, lets the
//! connections finish what they already received (up to the shutdown deadline), and returns.
//!
//! | module | `--model` | how |
//! |---|---|---|
//! | [`async_rt`] | `async` | tokio multi-thread runtime, `workers` threads |
//! | [`per_core`] | `per-core` | `workers` current-thread runtimes, each with its own SO_REUSEPORT listener |
//! | [`threads`] | `threads` | blocking std::net, a thread per connection |
//! | [`event_loop`] | `event-loop` | one thread, one mio poll loop |
//! | [`processes`] | `processes` | `workers` worker processes sharing the port with SO_REUSEPORT |
//!
//! UDP listeners are served by one thread each, whatever the model (see [`crate::protocol::udp`]).

pub(crate) mod async_rt;
pub(crate) mod blocking_io;
pub(crate) mod event_loop;
pub(crate) mod per_core;
pub(crate) mod processes;
pub(crate) mod threads;
pub(crate) mod tokio_io;

use std::io;
use std::sync::Arc;

use crate::config::Model;
use crate::listen::Bound;
use crate::shared::Shared;

/// Runs `model` over `bound` until shutdown and drain.
pub(crate) fn run(model: Model, bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    match model {
        Model::Async => async_rt::run(bound, shared),
        Model::PerCore => per_core::run(bound, shared),
        Model::Threads => threads::run(bound, shared),
        Model::EventLoop => event_loop::run(bound, shared),
        Model::Processes => processes::run(bound, shared),
    }
}
