//! The reference server in-process, on `127.0.0.1:0`, for any model.

use std::net::SocketAddr;
use std::time::Duration;

use sockpool_server::{ListenAddr, Model, Proto, Server, ServerConfig, ServerHandle};

/// A configuration for `model` with these listeners (`"framed=127.0.0.1:0"` …): 2 workers and a 1 s shutdown
/// deadline. The `processes` model also needs `worker_exe` (the `sockpool-server` binary), which only the
/// server's own tests have (`CARGO_BIN_EXE_sockpool-server`).
pub fn config(model: Model, listeners: &[&str]) -> ServerConfig {
    ServerConfig {
        listeners: listeners
            .iter()
            .map(|l| l.parse().unwrap_or_else(|e| panic!("listener `{l}`: {e}")))
            .collect(),
        model,
        workers: 2,
        shutdown_deadline: Duration::from_secs(1),
        ..ServerConfig::default()
    }
}

/// A running server with these listeners under the default `async` model.
pub fn start(listeners: &[&str]) -> ServerHandle {
    start_with(listeners, |_| {})
}

/// Like [`start`], adjusting the configuration first.
pub fn start_with(listeners: &[&str], adjust: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    let mut c = config(Model::Async, listeners);
    adjust(&mut c);
    Server::bind(c).expect("bind the server").spawn()
}

/// A framed server on 127.0.0.1, and its address.
pub fn framed() -> (ServerHandle, SocketAddr) {
    let handle = start(&["framed=127.0.0.1:0"]);
    let addr = handle.tcp_addr(Proto::Framed).expect("framed listener");
    (handle, addr)
}

/// A running server and its first listener's address as a target string (`127.0.0.1:PORT`, `[::1]:PORT` or
/// `unix:/path`), as the load generator's `--target` takes it.
pub fn start_target(c: ServerConfig) -> (ServerHandle, String) {
    let server = Server::bind(c).expect("bind the server");
    let target = match &server.local_addrs()[0].addr {
        ListenAddr::Tcp(a) | ListenAddr::Udp(a) => a.to_string(),
        ListenAddr::Unix(p) => format!("unix:{}", p.display()),
    };
    (server.spawn(), target)
}

/// A one-worker `async` server with this listener, and its address as a `--target` string: the load
/// generator's tests measure the load generator, so the server stays on one thread.
pub fn one_worker_target(listener: &str) -> (ServerHandle, String) {
    start_target(ServerConfig {
        workers: 1,
        ..config(Model::Async, &[listener])
    })
}

/// Shuts the server down off the async runtime (its shutdown blocks) and returns its final counters.
pub async fn stop(handle: ServerHandle) -> sockpool_server::StatsSnapshot {
    tokio::task::spawn_blocking(move || handle.shutdown())
        .await
        .expect("shutdown task")
}
