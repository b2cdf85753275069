//! The concurrency models, one module each, all the same shape: `run(bound, shared)` serves the bound
//! listeners until `shared.shutdown` is cancelled, lets the connections finish what they already received (up
//! to the shutdown deadline), and returns. Each connection is a [`Conn`](crate::conn::Conn); the models only
//! schedule them and move their bytes, through four I/O shells: [`tokio_io`] (the tokio models),
//! [`blocking_io`] (`threads`), [`event_loop`] and [`uring`] (the last two share [`timers`]).
//!
//! | module | `--model` | how |
//! |---|---|---|
//! | [`async_rt`] | `async` | tokio multi-thread runtime, `workers` threads |
//! | [`per_core`] | `per-core` | `workers` current-thread runtimes, each with its own SO_REUSEPORT listener |
//! | [`threads`] | `threads` | blocking std::net, a thread per connection |
//! | [`event_loop`] | `event-loop` | one thread, one mio poll loop |
//! | [`processes`] | `processes` | `workers` worker processes sharing the port with SO_REUSEPORT |
//! | [`uring`] | `uring` | `workers` threads, each with an io_uring and its own SO_REUSEPORT listener |
//!
//! UDP listeners are served by one thread each, whatever the model (see [`crate::protocol::udp`]).

pub(crate) mod async_rt;
pub(crate) mod blocking_io;
pub(crate) mod event_loop;
pub(crate) mod per_core;
pub(crate) mod processes;
pub(crate) mod threads;
pub(crate) mod timers;
pub(crate) mod tokio_io;
pub(crate) mod uring;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::Model;
use crate::listen::Bound;
use crate::shared::Shared;

/// How long a model waits, once the shutdown deadline has cut the connections left, for them to finish closing
/// (their threads or tasks wake, drop their `Conn`, leave `connections_open`) before it returns: the exit's
/// `stats` line is taken after it. Bounded; closing takes milliseconds.
pub(crate) const TEARDOWN: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs `model` over `bound` until shutdown and drain.
pub(crate) fn run(model: Model, bound: Vec<Bound>, shared: Arc<Shared>) -> io::Result<()> {
    match model {
        Model::Async => async_rt::run(bound, shared),
        Model::PerCore => per_core::run(bound, shared),
        Model::Threads => threads::run(bound, shared),
        Model::EventLoop => event_loop::run(bound, shared),
        Model::Processes => processes::run(bound, shared),
        Model::Uring => uring::run(bound, shared),
    }
}

/// Runs `wake` on a thread of its own (`name`) once shutdown begins: how the loops that block in the kernel
/// (`event-loop`, `uring`) learn of it.
pub(crate) fn on_shutdown(
    shared: &Arc<Shared>,
    name: &str,
    wake: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    let shared = shared.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            futures::executor::block_on(shared.shutdown.cancelled());
            wake();
        })
}

/// A socket of either kind, for the shells that are not tokio's: `Sock<std TcpStream, std UnixStream>` for
/// `threads`, the mio ones for `event-loop`.
#[derive(Debug)]
pub(crate) enum Sock<T, U> {
    Tcp(T),
    Unix(U),
}

/// `sock!(s, x => expr)`: `expr` on whichever socket `s` holds.
macro_rules! sock {
    ($s:expr, $x:ident => $e:expr) => {
        match $s {
            $crate::model::Sock::Tcp($x) => $e,
            $crate::model::Sock::Unix($x) => $e,
        }
    };
}
pub(crate) use sock;

impl<T: Read, U: Read> Read for Sock<T, U> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sock!(self, s => s.read(buf))
    }
}

impl<T: Write, U: Write> Write for Sock<T, U> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sock!(self, s => s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `shutdown(2)` on a stream socket.
pub(crate) trait Shut {
    fn shut(&self, how: Shutdown) -> io::Result<()>;
}

macro_rules! shut {
    ($($t:ty),*) => {$(
        impl Shut for $t {
            fn shut(&self, how: Shutdown) -> io::Result<()> {
                self.shutdown(how)
            }
        }
    )*};
}
shut!(
    std::net::TcpStream,
    std::os::unix::net::UnixStream,
    mio::net::TcpStream,
    mio::net::UnixStream
);

impl<T: Shut, U: Shut> Sock<T, U> {
    /// Shuts the socket (errors ignored: the peer may be gone already).
    pub(crate) fn shutdown(&self, how: Shutdown) {
        let _ = sock!(self, s => s.shut(how));
    }
}
