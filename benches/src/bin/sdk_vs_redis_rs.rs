//! The SDK's Redis client with its defaults against redis-rs and deadpool-redis, on one redis-server (issue 16,
//! must-show 1). Run by `benches/compare/sdk_vs_redis_rs.sh`, which starts the redis-server.
//!
//! ```text
//! sdk_vs_redis_rs --addr HOST:PORT [--tasks N] [--seconds S] [--rounds R] [--threads T]
//!                 [--only sockpool|redis-rs|deadpool] [--depth D] [--conns C]
//! ```
//!
//! `--tasks` tokio tasks (default 50) each run `SET k:<task> <value>`, `GET k:<task>`, `INCRBY n:<task> 1` in a
//! loop for `--seconds` (default 3, after a 0.5 s warm-up that is not counted), through one shared client:
//! - `sockpool`: `Client::redis(url).build()`, every setting at its default (`--depth`/`--conns` override the
//!   pipelining depth and the pool's `max_size`, to measure other settings; the table then says so);
//! - `redis-rs`: one `redis::aio::ConnectionManager` (a multiplexed connection that reconnects), cloned per task;
//! - `deadpool`: a `deadpool_redis::Pool` with its default configuration; each loop turn checks a connection
//!   out for its three commands.
//!
//! The three run one after another in each round, the order rotating by one each round, `--rounds` times
//! (default 5); the table shows each contender's median commands per second, the ratios of the medians, each
//! round's ratio (the spread) and the client process's CPU time per command. Every reply is checked (`GET`
//! returns what `SET` stored, `INCRBY` counts up by one), so a contender that skipped work would fail.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use redis::AsyncCommands;
use sockpool::{Client, PoolConfig};
use sockpool_benches::measure::{median, Measured, Window};

/// Settings from the command line.
struct Args {
    addr: SocketAddr,
    tasks: usize,
    seconds: f64,
    rounds: usize,
    threads: usize,
    only: Option<Contender>,
    depth: Option<usize>,
    conns: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Contender {
    Sockpool,
    RedisRs,
    Deadpool,
}

const ALL: [Contender; 3] = [Contender::Sockpool, Contender::RedisRs, Contender::Deadpool];

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        addr: "127.0.0.1:6379".parse()?,
        tasks: 50,
        seconds: 3.0,
        rounds: 5,
        threads: 2,
        only: None,
        depth: None,
        conns: None,
    };
    let mut addr = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => addr = Some(value()?.parse().context("--addr HOST:PORT")?),
            "--tasks" => a.tasks = value()?.parse().context("--tasks")?,
            "--seconds" => a.seconds = value()?.parse().context("--seconds")?,
            "--rounds" => a.rounds = value()?.parse().context("--rounds")?,
            "--threads" => a.threads = value()?.parse().context("--threads")?,
            "--depth" => a.depth = Some(value()?.parse().context("--depth")?),
            "--conns" => a.conns = Some(value()?.parse().context("--conns")?),
            "--only" => {
                a.only = Some(match value()?.as_str() {
                    "sockpool" => Contender::Sockpool,
                    "redis-rs" => Contender::RedisRs,
                    "deadpool" => Contender::Deadpool,
                    o => bail!("--only sockpool|redis-rs|deadpool, not {o}"),
                })
            }
            other => bail!(
                "unknown flag {other}; see the doc comment of benches/src/bin/sdk_vs_redis_rs.rs"
            ),
        }
    }
    a.addr = addr.context("--addr HOST:PORT of a redis-server is required")?;
    ensure!(
        a.addr.ip().is_loopback(),
        "--addr must be a loopback address: this benchmark loads the server as hard as it can"
    );
    if a.tasks == 0 || a.rounds == 0 || a.threads == 0 || !(a.seconds > 0.0 && a.seconds <= 600.0) {
        bail!("--tasks, --rounds and --threads must be positive, --seconds in (0, 600]");
    }
    Ok(a)
}

/// One task's three commands through one client; `n` is the task's number, `turn` the loop turn (stored by
/// `SET` and read back by `GET`).
trait Contend: Clone + Send + Sync + 'static {
    fn turn(
        &self,
        keys: &Keys,
        turn: u64,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

/// One task's keys and what it expects back.
struct Keys {
    value: String,
    counter: String,
}

impl Keys {
    fn new(task: usize) -> Self {
        Keys {
            value: format!("bench:k:{task}"),
            counter: format!("bench:n:{task}"),
        }
    }
}

/// Checks one turn's replies: `GET` gave back what `SET` stored, `INCRBY` counted up by one.
fn check(
    turn: u64,
    got: Option<Vec<u8>>,
    count: i64,
    last: &mut Option<i64>,
) -> anyhow::Result<()> {
    ensure!(
        got.as_deref() == Some(turn.to_string().as_bytes()),
        "GET returned {got:?}, SET stored {turn}"
    );
    if let Some(prev) = *last {
        ensure!(count == prev + 1, "INCRBY went from {prev} to {count}");
    }
    *last = Some(count);
    Ok(())
}

#[derive(Clone)]
struct Sockpool(Client<sockpool::protocol::Resp>);

impl Contend for Sockpool {
    async fn turn(&self, keys: &Keys, turn: u64) -> anyhow::Result<()> {
        self.0.set(&keys.value, turn).await?;
        let got: Option<Vec<u8>> = self.0.get(&keys.value).await?;
        let n = self.0.incr(&keys.counter, 1).await?;
        LAST.with(|l| check(turn, got, n, &mut l.borrow_mut()))
    }
}

#[derive(Clone)]
struct RedisRs(redis::aio::ConnectionManager);

impl Contend for RedisRs {
    async fn turn(&self, keys: &Keys, turn: u64) -> anyhow::Result<()> {
        let mut c = self.0.clone();
        let () = c.set(&keys.value, turn).await?;
        let got: Option<Vec<u8>> = c.get(&keys.value).await?;
        let n: i64 = c.incr(&keys.counter, 1).await?;
        LAST.with(|l| check(turn, got, n, &mut l.borrow_mut()))
    }
}

#[derive(Clone)]
struct Deadpool(deadpool_redis::Pool);

impl Contend for Deadpool {
    async fn turn(&self, keys: &Keys, turn: u64) -> anyhow::Result<()> {
        let mut c = self.0.get().await?;
        let () = c.set(&keys.value, turn).await?;
        let got: Option<Vec<u8>> = c.get(&keys.value).await?;
        let n: i64 = c.incr(&keys.counter, 1).await?;
        drop(c);
        LAST.with(|l| check(turn, got, n, &mut l.borrow_mut()))
    }
}

tokio::task_local! {
    /// The task's last `INCRBY` result.
    static LAST: std::cell::RefCell<Option<i64>>;
}

/// `tasks` tasks, each running turns through `client` until the window ends; commands per second in the
/// window.
async fn drive<C: Contend>(client: C, tasks: usize, w: Window) -> anyhow::Result<Measured> {
    let count = Arc::new(AtomicU64::new(0));
    let cpu = w.cpu();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (client, count) = (client.clone(), count.clone());
        handles.push(tokio::spawn(LAST.scope(Default::default(), async move {
            let keys = Keys::new(task);
            for turn in 0.. {
                let now = Instant::now();
                if now >= w.end {
                    break;
                }
                client.turn(&keys, turn).await?;
                if now >= w.start {
                    count.fetch_add(3, Relaxed);
                }
            }
            anyhow::Ok(())
        })));
    }
    for h in handles {
        h.await??;
    }
    Ok(Measured::new(&w, count.load(Relaxed), cpu.await?))
}

/// One contender's window, with its client built (and connected) before the window opens; and the connections
/// it opened.
async fn measure(which: Contender, args: &Args) -> anyhow::Result<(Measured, u64)> {
    let url = format!("redis://{}/", args.addr);
    let w = Window::new(args.seconds);
    match which {
        Contender::Sockpool => {
            let mut b = Client::redis(&url)?;
            if let Some(d) = args.depth {
                b = b.pipeline_depth(d);
            }
            if let Some(c) = args.conns {
                b = b.pool(PoolConfig::default().with_max_size(c));
            }
            let client = b.build()?;
            let m = drive(Sockpool(client.clone()), args.tasks, w).await?;
            let conns = client.stats().connects;
            client.close().await;
            Ok((m, conns))
        }
        Contender::RedisRs => {
            let c = redis::Client::open(url)?;
            let manager = redis::aio::ConnectionManager::new(c).await?;
            Ok((drive(RedisRs(manager), args.tasks, w).await?, 1))
        }
        Contender::Deadpool => {
            let pool = deadpool_redis::Config::from_url(url)
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
            let m = drive(Deadpool(pool.clone()), args.tasks, w).await?;
            Ok((m, pool.status().size as u64))
        }
    }
}

fn main() -> std::process::ExitCode {
    sockpool_benches::run_main("sdk_vs_redis_rs", run)
}

fn run() -> anyhow::Result<()> {
    let args = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    let contenders: Vec<Contender> = match args.only {
        Some(c) => vec![c],
        None => ALL.to_vec(),
    };
    let mut results: Vec<Vec<Measured>> = vec![Vec::new(); contenders.len()];
    let mut conns: Vec<u64> = vec![0; contenders.len()];
    rt.block_on(async {
        for round in 0..args.rounds {
            let mut line = format!("round {}:", round + 1);
            for k in 0..contenders.len() {
                let i = (k + round) % contenders.len();
                let (m, c) = measure(contenders[i], &args).await?;
                line += &format!(
                    " {:?} {:.0}/s ({:.2} us CPU/command, {c} connections);",
                    contenders[i], m.rate, m.cpu_us
                );
                conns[i] = conns[i].max(c);
                results[i].push(m);
            }
            eprintln!("{line}");
        }
        anyhow::Ok(())
    })?;
    let rate = |v: &[Measured]| median(v.iter().map(|m| m.rate).collect());
    let cpu = |v: &[Measured]| median(v.iter().map(|m| m.cpu_us).collect());
    let sockpool_settings = match (args.depth, args.conns) {
        (None, None) => "defaults".to_string(),
        (d, c) => format!(
            "depth {}, max_size {} (NOT the defaults)",
            d.map_or("default".into(), |d| d.to_string()),
            c.map_or("default".into(), |c| c.to_string())
        ),
    };
    println!(
        "{} tasks x SET+GET+INCRBY, {} s x {} rounds (median, order rotating), client runtime {} threads, redis-server {}",
        args.tasks, args.seconds, args.rounds, args.threads, args.addr
    );
    println!("| client | commands/s | client CPU per command | connections (most in a round) |");
    println!("|---|---|---|---|");
    for ((c, r), n) in contenders.iter().zip(&results).zip(&conns) {
        let name = match c {
            Contender::Sockpool => format!("sockpool `Client::redis(url)`, {sockpool_settings}"),
            Contender::RedisRs => "redis-rs `ConnectionManager`".to_string(),
            Contender::Deadpool => "deadpool-redis, default pool".to_string(),
        };
        println!("| {name} | {:.0} | {:.2} us | {n} |", rate(r), cpu(r));
    }
    if let Some(s) = contenders.iter().position(|c| *c == Contender::Sockpool) {
        for (o, name) in [
            (Contender::RedisRs, "redis-rs"),
            (Contender::Deadpool, "deadpool-redis"),
        ] {
            let Some(i) = contenders.iter().position(|c| *c == o) else {
                continue;
            };
            let each: Vec<String> = results[s]
                .iter()
                .zip(&results[i])
                .map(|(a, b)| format!("{:.2}", a.rate / b.rate))
                .collect();
            println!(
                "sockpool / {name}: **{:.2}x** (target >= 1.2), each round: {}",
                rate(&results[s]) / rate(&results[i]),
                each.join(", ")
            );
        }
    }
    Ok(())
}
