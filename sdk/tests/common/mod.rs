//! Helpers shared by the integration tests: start a real sockpool-server on loopback.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use sockpool_server::{Model, Proto, Server, ServerConfig, ServerHandle};

/// A sockpool-server with the given listeners (`"framed=127.0.0.1:0"` …), 2 async workers.
pub fn server(listeners: &[&str]) -> ServerHandle {
    server_with(listeners, |_| {})
}

/// Like [`server`], adjusting the configuration first.
pub fn server_with(listeners: &[&str], adjust: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    let mut config = ServerConfig {
        listeners: listeners.iter().map(|l| l.parse().unwrap()).collect(),
        model: Model::Async,
        workers: 2,
        shutdown_deadline: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    adjust(&mut config);
    Server::bind(config).expect("bind the server").spawn()
}

/// A framed server on 127.0.0.1, and its address.
pub fn framed_server() -> (ServerHandle, SocketAddr) {
    let handle = server(&["framed=127.0.0.1:0"]);
    let addr = handle.tcp_addr(Proto::Framed).unwrap();
    (handle, addr)
}

/// Poll `cond` every millisecond until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cond()
}
