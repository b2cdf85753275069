//! Following a host name's addresses ([`PoolConfig::re_resolve_interval`], `sockpool::resolve`): a resolver whose
//! answer the test changes, three in-process servers on 127.0.0.1:0, callers running all along.
//!
//! On paused time, held still: the test never sleeps while it waits (it yields, so the runtime never idles and
//! tokio never advances the paused clock by itself), so the clock moves only when the test advances it. What
//! the resolver does at the interval is then exact; the servers run on threads of their own, in real time.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sockpool::resolve::Resolving;
use sockpool::{Client, PoolConfig, Timeouts};
use sockpool_server::ServerHandle;
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_secs(5);

/// The answer the test's resolver gives.
struct Answer {
    addrs: Mutex<io::Result<Vec<SocketAddr>>>,
}

impl Default for Answer {
    fn default() -> Self {
        Answer {
            addrs: Mutex::new(Ok(Vec::new())),
        }
    }
}

impl Answer {
    fn set(&self, addrs: io::Result<Vec<SocketAddr>>) {
        *self.addrs.lock().unwrap() = addrs;
    }
}

/// A client of `replicas.test:7000` whose resolver answers what `answer` holds; timeouts far beyond anything the
/// test advances the clock by, and no reaper pass (so the only timer that fires is the resolver's).
fn client(answer: &Arc<Answer>) -> Client<sockpool::protocol::Framed> {
    builder(answer).build().unwrap()
}

/// The builder of [`client`].
fn builder(answer: &Arc<Answer>) -> sockpool::ClientBuilder<sockpool::protocol::Framed> {
    let answer = answer.clone();
    let long = Duration::from_secs(3600);
    Client::framed()
        .endpoint("replicas.test:7000")
        .pool(
            PoolConfig::default()
                .with_max_size(16)
                .with_reap_interval(long)
                .with_re_resolve_interval(Some(INTERVAL)),
        )
        .timeouts(
            Timeouts::default()
                .with_connect(long)
                .with_tls_handshake(long)
                .with_pool_wait(long)
                .with_request(long)
                .with_total(None),
        )
        .resolver(move |_host: &str, _port: u16| {
            let got = match &*answer.addrs.lock().unwrap() {
                Ok(addrs) => Ok(addrs.clone()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            Box::pin(async move { got }) as Resolving
        })
}

fn requests(s: &ServerHandle) -> u64 {
    s.stats().snapshot().requests
}

fn open(s: &ServerHandle) -> u64 {
    s.stats().snapshot().connections_open
}

/// The client's endpoints, sorted.
fn endpoints(client: &Client<sockpool::protocol::Framed>) -> Vec<String> {
    let mut names: Vec<String> = client
        .stats()
        .endpoints
        .into_iter()
        .map(|e| e.endpoint)
        .collect();
    names.sort();
    names
}

/// The endpoints `replicas.test:7000` resolved to `addrs` should have, sorted.
fn names_of(addrs: &[SocketAddr]) -> Vec<String> {
    let mut names: Vec<String> = addrs
        .iter()
        .map(|a| format!("replicas.test:7000 ({a})"))
        .collect();
    names.sort();
    names
}

/// Waits until `cond` holds without letting the paused clock move (yields, never sleeps); panics after 20 s of
/// real time, a bound on waiting for the servers' threads and not a measurement.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < give_up,
            "never happened: {what}"
        );
        tokio::task::yield_now().await;
    }
}

/// Callers that call until told to stop; each returns its failures.
fn callers(
    client: &Client<sockpool::protocol::Framed>,
    n: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<sockpool::Error>>> {
    (0..n)
        .map(|i| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                let payload = Bytes::from(format!("caller {i}"));
                while !stop.load(Ordering::Relaxed) {
                    match client.echo(payload.clone()).await {
                        Ok(reply) => assert_eq!(reply, payload),
                        Err(e) => failures.push(e),
                    }
                }
                failures
            })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_answer_changing_from_a_b_to_b_c_moves_calls_to_c_and_drains_a_without_a_failed_call() {
    let servers: Vec<(ServerHandle, SocketAddr)> =
        (0..3).map(|_| sockpool_testkit::server::framed()).collect();
    let mut servers = servers.into_iter();
    let (a, addr_a) = servers.next().unwrap();
    let (b, addr_b) = servers.next().unwrap();
    let (c, addr_c) = servers.next().unwrap();
    let answer = Arc::new(Answer::default());
    answer.set(Ok(vec![addr_a, addr_b]));
    let start = Instant::now();
    let client = client(&answer);
    client.re_resolve().await.unwrap();
    assert_eq!(endpoints(&client), names_of(&[addr_a, addr_b]));

    let stop = Arc::new(AtomicBool::new(false));
    let running = callers(&client, 8, &stop);
    until("both A and B serve calls", || {
        requests(&a) >= 100 && requests(&b) >= 100
    })
    .await;

    // The answer changes: nothing moves before the resolver's next turn.
    answer.set(Ok(vec![addr_b, addr_c]));
    let changed_at = Instant::now();
    assert_eq!(changed_at, start, "the paused clock is held still");
    let b_before = requests(&b);
    until("B serves 200 more calls", || requests(&b) >= b_before + 200).await;
    assert_eq!(
        c.stats().snapshot().connections_total,
        0,
        "C is not used before the interval"
    );
    assert!(open(&a) > 0);

    // One interval later the resolver asks again: C gets calls, A is drained.
    tokio::time::advance(INTERVAL).await;
    until("C serves calls", || requests(&c) > 0).await;
    assert_eq!(
        Instant::now() - changed_at,
        INTERVAL,
        "C got calls within one interval"
    );
    until("every connection to A is closed", || open(&a) == 0).await;
    let a_served = requests(&a);
    assert_eq!(a.stats().snapshot().connections_open, 0);

    // A goes away; calls keep going to B and C only.
    let a_final = sockpool_testkit::server::stop(a).await;
    let (b_mid, c_mid) = (requests(&b), requests(&c));
    until("B and C serve 200 more calls each", || {
        requests(&b) >= b_mid + 200 && requests(&c) >= c_mid + 200
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    until("the callers finish", || {
        running.iter().all(|r| r.is_finished())
    })
    .await;
    let mut failures = Vec::new();
    for r in running {
        failures.extend(r.await.unwrap());
    }
    assert!(failures.is_empty(), "failed calls: {failures:?}");
    assert_eq!(
        a_final.requests, a_served,
        "nothing was sent to A once drained"
    );
    let stats = client.stats();
    assert_eq!(stats.failed, 0);
    assert_eq!(endpoints(&client), names_of(&[addr_b, addr_c]));
    client.close().await;
}

/// In real time: the calls here wait for the server with nothing else to do, and a paused clock would jump to
/// their timeout meanwhile.
#[tokio::test]
async fn a_failed_or_empty_answer_keeps_the_last_addresses() {
    let (a, addr_a) = sockpool_testkit::server::framed();
    let answer = Arc::new(Answer::default());
    answer.set(Ok(vec![addr_a]));
    let client = client(&answer);
    client.re_resolve().await.unwrap();
    assert_eq!(client.echo(&b"x"[..]).await.unwrap(), &b"x"[..]);

    answer.set(Err(io::Error::other("SERVFAIL")));
    let err = client.re_resolve().await.unwrap_err();
    assert!(err.to_string().contains("SERVFAIL"), "{err}");
    answer.set(Ok(Vec::new()));
    let err = client.re_resolve().await.unwrap_err();
    assert!(err.to_string().contains("no address"), "{err}");

    let stats = client.stats();
    assert_eq!(stats.endpoints.len(), 1);
    assert_eq!(
        stats.endpoints[0].endpoint,
        format!("replicas.test:7000 ({addr_a})")
    );
    assert_eq!(client.echo(&b"y"[..]).await.unwrap(), &b"y"[..]);
    assert_eq!(open(&a), 1, "the connection to A was kept");
    client.close().await;
}

#[tokio::test]
async fn without_an_interval_a_name_is_one_endpoint_and_is_not_followed() {
    let answer = Arc::new(Answer::default());
    answer.set(Ok(vec!["127.0.0.1:1".parse().unwrap()]));
    let client = Client::framed()
        .endpoint("replicas.test:7000")
        .resolver({
            let answer = answer.clone();
            move |_: &str, _: u16| {
                let got = answer
                    .addrs
                    .lock()
                    .unwrap()
                    .as_ref()
                    .map(Clone::clone)
                    .unwrap();
                Box::pin(async move { Ok(got) }) as Resolving
            }
        })
        .build()
        .unwrap();
    client.re_resolve().await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.endpoints.len(), 1);
    assert_eq!(stats.endpoints[0].endpoint, "replicas.test:7000");
}

/// A replica that goes away closes its connections: that brings the next resolution forward, to a quarter of
/// the interval after the last one. (Pipelined, so a driver reads the connection and sees the peer's EOF at
/// once; at depth 1 the reaper's probe of idle connections sees it, every `reap_interval`.)
#[tokio::test(start_paused = true)]
async fn a_replica_closing_its_connections_brings_the_next_resolution_forward() {
    let (a, addr_a) = sockpool_testkit::server::framed();
    let (b, addr_b) = sockpool_testkit::server::framed();
    let answer = Arc::new(Answer::default());
    answer.set(Ok(vec![addr_a]));
    let start = Instant::now();
    let client = builder(&answer).pipeline_depth(2).build().unwrap();
    client.re_resolve().await.unwrap();
    // One connection to A, opened by a call that runs while the test yields (the clock held still).
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.echo(&b"a"[..]).await }
    });
    until("the call to A returns", || call.is_finished()).await;
    call.await.unwrap().unwrap();
    assert_eq!(open(&a), 1);

    answer.set(Ok(vec![addr_b]));
    sockpool_testkit::server::stop(a).await;
    tokio::time::advance(INTERVAL / 4).await;
    until("the client follows the answer to B", || {
        endpoints(&client) == names_of(&[addr_b])
    })
    .await;
    assert_eq!(
        Instant::now() - start,
        INTERVAL / 4,
        "well before the interval"
    );
    assert_eq!(requests(&b), 0);
}
