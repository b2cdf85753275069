//! Helpers shared by the SDK's integration tests (the servers and peers come from `sockpool_testkit`).
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;

use sockpool::protocol::Framed;
use sockpool::{Client, ClientBuilder, PoolConfig};

/// A framed client of `addr` whose pool holds at most `max_size` connections, every other setting at its
/// default: add to it, then `build()`.
pub fn framed_client(addr: SocketAddr, max_size: usize) -> ClientBuilder<Framed> {
    Client::framed()
        .endpoint(addr)
        .pool(PoolConfig::default().with_max_size(max_size))
}

/// A TCP server on a free loopback port that runs `serve` on each connection it accepts, each in a task of its
/// own, until the test's runtime ends. Returns its address.
pub async fn tcp_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s));
        }
    });
    addr
}
