//! Following a host name's addresses: endpoints given by name are resolved to all their addresses, each address
//! gets a pool of its own, and the name is resolved again every [`PoolConfig::re_resolve_interval`] (and, no
//! sooner than a quarter of that interval after the last answer, when a connection to one of its addresses is
//! reset or closed by the peer).
//!
//! This is what a client of a Kubernetes headless Service needs: the Service's name resolves to one address per
//! ready pod, and that set changes as pods come and go. When the answer changes:
//!
//! - a **new address** gets a pool like every other endpoint and takes its share of the calls (power of two
//!   choices on calls in progress, with ejection, as between any endpoints);
//! - an address that **left** is drained: no new call picks it, its idle connections are closed at once,
//!   connections busy with a call finish that call and are closed when it returns, and a call that had picked it
//!   in the very instant it left (and found its pool closed, before anything was sent) is retried elsewhere.
//!
//! An answer that fails or is empty keeps the addresses of the last good answer (a DNS hiccup or a moment with no
//! ready pod does not drain every connection). Until the first answer arrives — right after
//! [`ClientBuilder::build`](crate::ClientBuilder::build), in the background, or at once with
//! [`Client::re_resolve`](crate::Client::re_resolve) — calls go to the name as given, resolved at each connect.
//!
//! IP literals and `unix:` paths are not resolved. The resolver is [`SystemResolver`] (tokio's `lookup_host`,
//! i.e. the system's `getaddrinfo`) unless one is given with
//! [`ClientBuilder::resolver`](crate::ClientBuilder::resolver): tests use that to change the answer without DNS.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use sockpool::{Client, PoolConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sockpool::Error> {
//! // An answer the test controls: `replicas.test` resolves to whatever is in `answer`.
//! let answer: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
//! let shared = answer.clone();
//! let client = Client::framed()
//!     .endpoint("replicas.test:7000")
//!     .pool(PoolConfig::default().with_re_resolve_interval(Some(Duration::from_secs(5))))
//!     .resolver(move |_host: &str, _port: u16| {
//!         let addrs = shared.lock().unwrap().clone();
//!         Box::pin(async move { Ok(addrs) }) as sockpool::resolve::Resolving
//!     })
//!     .build()?;
//! *answer.lock().unwrap() = vec!["127.0.0.1:7000".parse().unwrap(), "127.0.0.2:7000".parse().unwrap()];
//! client.re_resolve().await; // or wait for the interval
//! assert_eq!(client.stats().endpoints.len(), 2);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

#[cfg(doc)]
use crate::config::PoolConfig;

/// What a [`Resolve`] returns: the addresses of a name, boxed so resolvers of any kind fit one client.
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Resolves a host name and port to socket addresses.
///
/// Implemented for closures `Fn(&str, u16) -> Resolving`, so a test can hand the client any answer.
pub trait Resolve: Send + Sync + 'static {
    /// All the addresses of `host` at `port`. An error or an empty answer keeps the previous addresses.
    fn resolve(&self, host: &str, port: u16) -> Resolving;
}

impl<F> Resolve for F
where
    F: Fn(&str, u16) -> Resolving + Send + Sync + 'static,
{
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        self(host, port)
    }
}

/// The system's resolver, through tokio's `lookup_host` (`getaddrinfo` on a blocking thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        let host = host.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

/// A resolver as the client keeps it: shared, cloneable, printable.
#[derive(Clone)]
pub(crate) struct Resolver(pub(crate) Arc<dyn Resolve>);

impl Default for Resolver {
    fn default() -> Self {
        Resolver(Arc::new(SystemResolver))
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver(..)")
    }
}

/// An answer made canonical: sorted, without duplicates (the order of a DNS answer means nothing here).
pub(crate) fn canonical(mut addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    addrs.sort_unstable();
    addrs.dedup();
    addrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_sorted_and_deduplicated() {
        let a: SocketAddr = "127.0.0.2:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(canonical(vec![a, b, a]), vec![b, a]);
    }

    #[tokio::test]
    async fn the_system_resolver_resolves_an_ip_literal_without_dns() {
        let got = SystemResolver.resolve("127.0.0.1", 9).await.unwrap();
        assert_eq!(got, vec!["127.0.0.1:9".parse::<SocketAddr>().unwrap()]);
    }
}
