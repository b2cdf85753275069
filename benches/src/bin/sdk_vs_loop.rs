//! The SDK against a minimal hand-written tokio client, on the same sockpool-server (issue 3, item 9).
//!
//! ```text
//! sdk_vs_loop [--addr HOST:PORT] [--seconds S] [--conns N] [--payload BYTES] [--rounds R] [--threads T]
//!             [--only loop|p1|p16|conn]
//! ```
//!
//! Three contenders send framed ECHO requests of `--payload` bytes (default 64) for `--seconds` each (default 3,
//! after a 0.5 s warm-up that is not counted):
//! - `loop`: N (default 50) connections, each a task doing `write_all` of one request then `read_exact` of its
//!   reply; no pool, no pipelining, nothing else.
//! - `sdk p1`: one `sockpool::Client` with a pool of N connections and pipelining 1, called by N tasks.
//! - `sdk p16`: the same with pipelining 16, called by N × 16 tasks.
//!
//! The three run in turn, `--rounds` times (default 3); the table shows each one's median rate, the median of the
//! rounds' ratios to the loop (a round's runs are back to back: pairs), each round's ratio (the spread) and the client process's CPU time per request inside the window (all its threads'
//! `/proc/self/task/*/schedstat`): on a loaded machine, where every rate is held down by scheduling, the CPU a
//! request costs the client still compares the contenders. Without `--addr` a
//! reference server (framed, async model, 1 worker) runs in this process on a free loopback port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use sockpool::codec::framed::{Op, LEN_PREFIX, REQUEST_HEADER, RESPONSE_HEADER};
use sockpool::protocol::Framed;
use sockpool::{Client, PoolConfig};
use sockpool_benches::measure::{median, Measured, Window};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Settings from the command line.
struct Args {
    addr: Option<SocketAddr>,
    seconds: f64,
    conns: usize,
    payload: usize,
    rounds: usize,
    threads: usize,
    only: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        addr: None,
        seconds: 3.0,
        conns: 50,
        payload: 64,
        rounds: 3,
        threads: 2,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = Some(value()?.parse().context("--addr HOST:PORT")?),
            "--seconds" => a.seconds = value()?.parse().context("--seconds")?,
            "--conns" => a.conns = value()?.parse().context("--conns")?,
            "--payload" => a.payload = value()?.parse().context("--payload")?,
            "--rounds" => a.rounds = value()?.parse().context("--rounds")?,
            "--threads" => a.threads = value()?.parse().context("--threads")?,
            "--only" => match value()?.as_str() {
                o @ ("loop" | "p1" | "p16" | "conn") => a.only = Some(o.to_string()),
                o => bail!("--only loop|p1|p16|conn, not {o}"),
            },
            other => {
                bail!("unknown flag {other}; see the doc comment of benches/src/bin/sdk_vs_loop.rs")
            }
        }
    }
    if a.conns == 0 || a.rounds == 0 || a.threads == 0 || !(a.seconds > 0.0 && a.seconds <= 600.0) {
        bail!("--conns, --rounds and --threads must be positive, --seconds in (0, 600]");
    }
    Ok(a)
}

/// The hand-written client: `conns` tasks, each with its own connection, one request at a time.
async fn run_loop(
    addr: SocketAddr,
    conns: usize,
    payload: usize,
    w: Window,
) -> anyhow::Result<Measured> {
    let count = Arc::new(AtomicU64::new(0));
    let cpu = w.cpu();
    let mut frame = BytesMut::with_capacity(LEN_PREFIX + REQUEST_HEADER + payload);
    frame.put_u32((REQUEST_HEADER + payload) as u32);
    frame.put_u8(Op::Echo.to_u8());
    frame.put_u64(1);
    frame.put_u32(0);
    frame.put_bytes(b'p', payload);
    let frame = frame.freeze();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (count, frame) = (count.clone(), frame.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let mut reply = vec![0u8; LEN_PREFIX + RESPONSE_HEADER + payload];
            loop {
                let now = Instant::now();
                if now >= w.end {
                    return anyhow::Ok(());
                }
                s.write_all(&frame).await?;
                s.read_exact(&mut reply).await?;
                if reply[LEN_PREFIX] != 0 {
                    bail!("server answered status {}", reply[LEN_PREFIX]);
                }
                if now >= w.start {
                    count.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(Measured::new(&w, count.load(Relaxed), cpu.await?))
}

/// The SDK: one client, a pool of `conns`, pipelining `depth`, called by `conns * depth` tasks.
async fn run_sdk(
    addr: SocketAddr,
    conns: usize,
    depth: usize,
    payload: usize,
    w: Window,
) -> anyhow::Result<Measured> {
    let client = Client::builder(Framed::default())
        .endpoint(addr.to_string())
        .pool(PoolConfig::default().with_max_size(conns))
        .pipeline_depth(depth)
        .build()?;
    let client = Arc::new(client);
    let callers = (0..conns * depth)
        .map(|_| SdkCaller(client.clone()))
        .collect();
    let rate = drive(callers, payload, w).await;
    client.close().await;
    rate
}

/// The SDK's connection layer alone: `conns` tasks, each calling `Connection::call` on its own connection.
async fn run_conn(
    addr: SocketAddr,
    conns: usize,
    payload: usize,
    w: Window,
) -> anyhow::Result<Measured> {
    let connector = sockpool::transport::Connector::new(
        sockpool::SocketOptions::default(),
        &sockpool::Timeouts::default(),
        None,
    )?;
    let endpoint: sockpool::Endpoint = addr.to_string().parse()?;
    let mut callers = Vec::new();
    for _ in 0..conns {
        let conn = sockpool::Connection::connect(
            &endpoint,
            Arc::new(Framed::default()),
            &connector,
            Default::default(),
        )
        .await?;
        callers.push(ConnCaller { conn, next_id: 0 });
    }
    drive(callers, payload, w).await
}

/// One contender's caller: sends one echo of `body` and returns the reply's length. Each task owns its
/// caller, so the measured loop does nothing per request but the call (no reference counting, no lookups).
trait Caller: Send + 'static {
    fn call(
        &mut self,
        body: Bytes,
    ) -> impl std::future::Future<Output = anyhow::Result<usize>> + Send;
}

/// A task calling the pooled client.
struct SdkCaller(Arc<Client<Framed>>);

impl Caller for SdkCaller {
    async fn call(&mut self, body: Bytes) -> anyhow::Result<usize> {
        Ok(self.0.echo(body).await?.len())
    }
}

/// A task with a connection of its own.
struct ConnCaller {
    conn: sockpool::Connection<Framed>,
    next_id: u64,
}

impl Caller for ConnCaller {
    async fn call(&mut self, body: Bytes) -> anyhow::Result<usize> {
        self.next_id += 1;
        let req = sockpool::codec::framed::Request::echo(self.next_id, body);
        Ok(self.conn.call(req).await?.payload.len())
    }
}

/// One task per caller, each echoing `payload` bytes in a loop until the window ends; the rate of replies
/// inside the window. A reply of the wrong length is an error.
async fn drive<C: Caller>(callers: Vec<C>, payload: usize, w: Window) -> anyhow::Result<Measured> {
    let count = Arc::new(AtomicU64::new(0));
    let cpu = w.cpu();
    let body = Bytes::from(vec![b'p'; payload]);
    let mut tasks = Vec::new();
    for mut caller in callers {
        // Each task its own payload, as the loop's tasks each write their own frame: a body shared by every task
        // would put one reference count, written by every call, between the client's threads.
        let (count, body) = (count.clone(), Bytes::copy_from_slice(&body));
        tasks.push(tokio::spawn(async move {
            loop {
                let now = Instant::now();
                if now >= w.end {
                    return anyhow::Ok(());
                }
                let len = caller.call(body.clone()).await?;
                if len != body.len() {
                    bail!("echo of {} bytes came back as {len}", body.len());
                }
                if now >= w.start {
                    count.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(Measured::new(&w, count.load(Relaxed), cpu.await?))
}

fn main() -> std::process::ExitCode {
    sockpool_benches::run_main("sdk_vs_loop", run)
}

fn run() -> anyhow::Result<()> {
    let args = parse_args()?;
    // Without --addr: the reference server, in this process but on its own threads.
    let _embedded;
    let addr = match args.addr {
        Some(a) => a,
        None => {
            let config = sockpool_server::ServerConfig {
                listeners: vec!["framed=127.0.0.1:0".parse()?],
                workers: 1,
                ..Default::default()
            };
            let server = sockpool_server::Server::bind(config)?;
            let addr = server
                .tcp_addr(sockpool_server::Proto::Framed)
                .context("the embedded server has a framed listener")?;
            _embedded = server.spawn();
            addr
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    if let Some(only) = &args.only {
        return rt.block_on(async {
            for round in 1..=args.rounds {
                let w = Window::new(args.seconds);
                let m = match only.as_str() {
                    "loop" => run_loop(addr, args.conns, args.payload, w).await?,
                    "p1" => run_sdk(addr, args.conns, 1, args.payload, w).await?,
                    "conn" => run_conn(addr, args.conns, args.payload, w).await?,
                    _ => run_sdk(addr, args.conns, 16, args.payload, w).await?,
                };
                println!(
                    "round {round}: {only} {:.0}/s, client CPU {:.2} us/request",
                    m.rate, m.cpu_us
                );
            }
            Ok(())
        });
    }
    let (mut lp, mut p1, mut p16) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        for round in 1..=args.rounds {
            lp.push(run_loop(addr, args.conns, args.payload, Window::new(args.seconds)).await?);
            p1.push(run_sdk(addr, args.conns, 1, args.payload, Window::new(args.seconds)).await?);
            p16.push(
                run_sdk(
                    addr,
                    args.conns,
                    16,
                    args.payload,
                    Window::new(args.seconds),
                )
                .await?,
            );
            let r = round - 1;
            eprintln!(
                "round {round}: loop {:.0}/s ({:.2} us CPU/request), sdk p1 {:.0}/s ({:.2}), sdk p16 {:.0}/s ({:.2}); p1/loop {:.2}, p16/loop {:.2}",
                lp[r].rate,
                lp[r].cpu_us,
                p1[r].rate,
                p1[r].cpu_us,
                p16[r].rate,
                p16[r].cpu_us,
                p1[r].rate / lp[r].rate,
                p16[r].rate / lp[r].rate
            );
        }
        anyhow::Ok(())
    })?;
    let rate = |v: &[Measured]| median(v.iter().map(|m| m.rate).collect());
    let cpu = |v: &[Measured]| median(v.iter().map(|m| m.cpu_us).collect());
    let spread = |v: &[Measured]| {
        let ratios: Vec<String> = v
            .iter()
            .zip(&lp)
            .map(|(m, l)| format!("{:.2}", m.rate / l.rate))
            .collect();
        ratios.join(", ")
    };
    let (l, r1, r16) = (rate(&lp), rate(&p1), rate(&p16));
    // The median of the rounds' own ratios: a round's three clients ran back to back on the same state of the
    // host, so its ratios are pairs; a ratio of medians can pair one client's fast round with another's slow one.
    let paired = |v: &[Measured]| {
        let mut ratios: Vec<f64> = v.iter().zip(&lp).map(|(m, l)| m.rate / l.rate).collect();
        ratios.sort_by(f64::total_cmp);
        ratios
            .get((ratios.len().max(1) - 1) / 2)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "framed ECHO {} B, {} connections, {} s x {} rounds (median), client runtime {} threads, server {addr}",
        args.payload, args.conns, args.seconds, args.rounds, args.threads
    );
    println!("| client | req/s | ratio to the loop | target | each round's ratio | client CPU per request |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| hand-written tokio loop, {} connections, write_all/read_exact | {l:.0} | 1.00 | | | {:.2} us |",
        args.conns,
        cpu(&lp)
    );
    println!(
        "| sockpool SDK, pool {}, pipelining 1 | {r1:.0} | **{:.2}** | >= 1.0 | {} | {:.2} us |",
        args.conns,
        paired(&p1),
        spread(&p1),
        cpu(&p1)
    );
    println!(
        "| sockpool SDK, pool {}, pipelining 16 | {r16:.0} | **{:.2}** | >= 4.0 | {} | {:.2} us |",
        args.conns,
        paired(&p16),
        spread(&p16),
        cpu(&p16)
    );
    Ok(())
}
