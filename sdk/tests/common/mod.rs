//! Helpers shared by the SDK's integration tests (the servers and peers come from `sockpool_testkit`).
#![allow(dead_code)]

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
