//! Cost of a request through the SDK, layer by layer, against an in-process `sockpool-server` (framed ECHO,
//! 64 B payload, loopback TCP).
//!
//! `cargo bench -p sockpool-benches --bench sdk` (about a minute). The server runs on its own threads
//! (`--model async --workers 1`); the client side on a single-threaded tokio runtime. Each group measures the same
//! request at three layers, so the differences are the layers' own costs:
//!
//! - `raw_tokio`: a hand-written loop on one `TcpStream`, `write_all` of the frame then `read_exact` of the
//!   reply (no SDK at all): the floor set by the server and the loopback round trip.
//! - `connection`: [`sockpool::Connection::call`], one connection, no pool: adds the driver task, the request
//!   channel and the reply `oneshot`.
//! - `client`: [`sockpool::Client::call`] with a pool: adds pool checkout + return (deadpool `get`, recycle
//!   checks, slot reservation, check-in), admission, timeouts and stats. `client` − `connection` is what the
//!   client layer adds to a request.
//!
//! Group `pool`: `checkout_return`, [`sockpool::Client::checkout`] of a warm connection and its return to the
//! pool (dropping it), with no request: deadpool `get`, the recycle checks, the check-in.
//!
//! Group `echo_64B_serial`: one caller, one request at a time (latency per request). Group `echo_64B_x50`: 50
//! requests at once over 50 connections (pool of 50, pipelining 1), one element per request (throughput).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::future::join_all;
use sockpool::codec::framed;
use sockpool::connection::ConnectionOptions;
use sockpool::protocol::Framed;
use sockpool::transport::Connector;
use sockpool::{Client, Connection, Endpoint, PoolConfig, SocketOptions, Timeouts};
use sockpool_server::{Model, Proto, Server, ServerConfig, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

/// The payload of every request.
const PAYLOAD: usize = 64;
/// Concurrent requests (and connections) in the `x50` group.
const CONCURRENCY: usize = 50;
/// How long criterion measures each benchmark.
const MEASURE: Duration = Duration::from_secs(3);
/// Criterion's warm-up per benchmark.
const WARM_UP: Duration = Duration::from_secs(1);

/// A framed server on 127.0.0.1:0, running on its own threads until the handle drops.
fn start_server() -> (ServerHandle, SocketAddr) {
    let config = ServerConfig {
        listeners: vec!["framed=127.0.0.1:0".parse().expect("listen spec")],
        model: Model::Async,
        workers: 1,
        ..ServerConfig::default()
    };
    let server = Server::bind(config).expect("bind the in-process server");
    let addr = server.tcp_addr(Proto::Framed).expect("framed listener");
    (server.spawn(), addr)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn payload() -> Bytes {
    Bytes::from(vec![0x5a; PAYLOAD])
}

/// A client with a pool of `max_size` connections, pipelining 1, opened before measuring.
fn client(rt: &Runtime, addr: SocketAddr, max_size: usize) -> Client<Framed> {
    rt.block_on(async {
        let pool = PoolConfig::default()
            .with_max_size(max_size)
            .with_min_idle(max_size);
        let client = Client::framed()
            .endpoint(addr)
            .pool(pool)
            .pipeline_depth(1)
            .build()
            .expect("client");
        client.warm().await.expect("warm the pool");
        client
    })
}

/// One connection without a pool.
async fn connection(addr: SocketAddr) -> Connection<Framed> {
    let timeouts = Timeouts::default();
    let connector = Connector::new(SocketOptions::default(), &timeouts, None).unwrap();
    Connection::connect(
        &Endpoint::tcp(addr),
        Arc::new(Framed::default()),
        &connector,
        ConnectionOptions::default(),
    )
    .await
    .expect("connect")
}

/// A raw connection and the encoded ECHO frame the hand-written loop sends (same bytes as the SDK's).
async fn raw(addr: SocketAddr) -> (TcpStream, Vec<u8>, Vec<u8>) {
    use sockpool::codec::Encode;
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut wire = BytesMut::new();
    framed::ClientCodec::default()
        .encode(framed::Request::echo(1, payload()), &mut wire)
        .expect("encode");
    let mut reply = BytesMut::new();
    framed::ServerCodec::default()
        .encode(framed::Response::ok(1, payload()), &mut reply)
        .expect("encode reply");
    let reply_len = reply.len();
    (stream, wire.to_vec(), vec![0; reply_len])
}

async fn raw_roundtrip(stream: &mut TcpStream, wire: &[u8], reply: &mut [u8]) {
    stream.write_all(wire).await.expect("write");
    stream.read_exact(reply).await.expect("read");
}

fn check_echo(reply: Result<framed::Response, sockpool::Error>) {
    let reply = reply.expect("echo");
    assert_eq!(reply.payload.len(), PAYLOAD, "echo payload");
}

fn serial(c: &mut Criterion) {
    let (_server, addr) = start_server();
    let rt = runtime();
    let mut g = c.benchmark_group("echo_64B_serial");
    g.measurement_time(MEASURE).warm_up_time(WARM_UP);
    g.throughput(Throughput::Elements(1));

    let (mut stream, wire, mut reply) = rt.block_on(raw(addr));
    g.bench_function("raw_tokio", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    raw_roundtrip(&mut stream, &wire, &mut reply).await;
                }
                start.elapsed()
            })
        })
    });

    let conn = rt.block_on(connection(addr));
    g.bench_function("connection", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    check_echo(conn.call(framed::Request::echo(i + 1, payload())).await);
                }
                start.elapsed()
            })
        })
    });

    let client = client(&rt, addr, 1);
    g.bench_function("client", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let id = client.next_id();
                    check_echo(client.call(framed::Request::echo(id, payload())).await);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    rt.block_on(client.close());
}

fn concurrent(c: &mut Criterion) {
    let (_server, addr) = start_server();
    let rt = runtime();
    let mut g = c.benchmark_group(format!("echo_64B_x{CONCURRENCY}"));
    g.measurement_time(MEASURE).warm_up_time(WARM_UP);
    g.throughput(Throughput::Elements(CONCURRENCY as u64));

    let mut raws = rt.block_on(join_all((0..CONCURRENCY).map(|_| raw(addr))));
    g.bench_function(BenchmarkId::new("raw_tokio", CONCURRENCY), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    join_all(
                        raws.iter_mut()
                            .map(|(s, wire, reply)| raw_roundtrip(s, wire, reply)),
                    )
                    .await;
                }
                start.elapsed()
            })
        })
    });

    let conns = rt.block_on(join_all((0..CONCURRENCY).map(|_| connection(addr))));
    g.bench_function(BenchmarkId::new("connection", CONCURRENCY), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let replies = join_all(
                        conns
                            .iter()
                            .map(|conn| conn.call(framed::Request::echo(i + 1, payload()))),
                    )
                    .await;
                    replies.into_iter().for_each(check_echo);
                }
                start.elapsed()
            })
        })
    });

    let client = client(&rt, addr, CONCURRENCY);
    g.bench_function(BenchmarkId::new("client", CONCURRENCY), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let replies =
                        join_all((0..CONCURRENCY).map(|_| {
                            client.call(framed::Request::echo(client.next_id(), payload()))
                        }))
                        .await;
                    replies.into_iter().for_each(check_echo);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    rt.block_on(client.close());
}

fn pool(c: &mut Criterion) {
    let (_server, addr) = start_server();
    let rt = runtime();
    let client = client(&rt, addr, 1);
    // Open the one connection first, so that every iteration checks out a warm one.
    rt.block_on(async { check_echo(client.call(framed::Request::echo(1, payload())).await) });
    let mut g = c.benchmark_group("pool");
    g.measurement_time(MEASURE).warm_up_time(WARM_UP);
    g.throughput(Throughput::Elements(1));
    g.bench_function("checkout_return", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let conn = client.checkout().await.expect("a warm connection");
                    criterion::black_box(&conn);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    rt.block_on(client.close());
}

criterion_group!(benches, serial, concurrent, pool);
criterion_main!(benches);
