//! `sockpool-loadgen tune` with no arguments: a guided tour of the techniques on the embedded server, in
//! well under a minute. Each stop is a small tune of two (or more) cells with the same machinery as a full
//! tune, printed with one line saying what the technique bought:
//!
//! 1. a connection pool against a new connection per request;
//! 2. pipelining 1 against 16;
//! 3. TCP_NODELAY on against off with small pipelined writes (Nagle's algorithm);
//! 4. 1 KiB against 64 KiB application buffers for a bulk upload ([`crate::stream`]);
//! 5. the server's concurrency models side by side (those this build of the server offers).

use std::time::Duration;

use super::real::LoadRunner;
use super::table::{fmt_rate, fmt_us};
use super::{CellConfig, Plan, TuneArgs, TuneError, TuneReport, Vary};

/// Length of each tour cell. Default: 1 s.
pub const CELL: Duration = Duration::from_secs(1);
/// Warm-up of each tour cell. Default: 200 ms.
pub const WARMUP: Duration = Duration::from_millis(200);

/// One stop of the tour.
#[derive(Debug, Clone)]
pub struct Stop {
    /// Heading.
    pub title: &'static str,
    /// What to look for.
    pub explain: &'static str,
    /// The `--vary` spec.
    pub vary: &'static str,
    /// Baseline adjustments: connections, pipeline, payload.
    pub connections: usize,
    /// Pipeline depth of the baseline.
    pub pipeline: usize,
    /// Payload bytes.
    pub payload: usize,
}

/// The request/response stops (the bulk-transfer stop is separate).
pub fn stops() -> Vec<Stop> {
    vec![
        Stop {
            title: "1. Connection pooling",
            explain: "A pool keeps connections open; per-request pays a TCP handshake (and teardown) every time.",
            vary: "pool=pooled,per-request",
            connections: 4,
            pipeline: 1,
            payload: 64,
        },
        Stop {
            title: "2. Pipelining",
            explain: "16 requests in flight per connection amortise the round trip and batch writes and reads.",
            vary: "pipeline=1,16",
            connections: 4,
            pipeline: 1,
            payload: 64,
        },
        Stop {
            title: "3. TCP_NODELAY with small pipelined writes",
            explain: "With Nagle on (nodelay=off), a small write waits for the previous one's ACK, which delayed ACKs hold back.",
            vary: "nodelay=on,off",
            connections: 2,
            pipeline: 4,
            payload: 16,
        },
        Stop {
            title: "5. Server concurrency models",
            explain: "The same load against each model the server offers (models this build lacks are skipped).",
            vary: "server-model=async,per-core,threads,event-loop,processes",
            connections: 8,
            pipeline: 1,
            payload: 64,
        },
    ]
}

fn headline(r: &TuneReport) -> String {
    let base = r.baseline();
    r.cells[1..]
        .iter()
        .map(|c| {
            format!(
                "{} vs {}: rate {:.2}×, p99 {:.2}× ({} → {} req/s, p99 {} → {})",
                c.cell.label,
                base.cell.label,
                c.stats.rate.ratio(&base.stats.rate).unwrap_or(0.0),
                c.stats.p99_us.ratio(&base.stats.p99_us).unwrap_or(0.0),
                fmt_rate(base.stats.rate.median),
                fmt_rate(c.stats.rate.median),
                fmt_us(base.stats.p99_us.median),
                fmt_us(c.stats.p99_us.median),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Keeps the server-model values this server build can bind (each is tried once with a framed listener).
fn available_models(vary: &str) -> String {
    let Some((key, values)) = vary.split_once('=') else {
        return vary.into();
    };
    if key != "server-model" {
        return vary.into();
    }
    let ok: Vec<&str> = values
        .split(',')
        .filter(|m| {
            let cell = CellConfig {
                server_model: Some((*m).into()),
                server_workers: Some(2),
                ..CellConfig::default()
            };
            match super::real::embedded_server(&cell) {
                Ok((h, _)) => {
                    let _ = h.shutdown();
                    true
                }
                Err(e) => {
                    eprintln!("   (skipping server-model={m}: {e})");
                    false
                }
            }
        })
        .collect();
    format!("{key}={}", ok.join(","))
}

/// Runs the tour and prints it.
pub fn run_tour(a: &TuneArgs) -> Result<(), TuneError> {
    let runner = LoadRunner::new(None)?;
    let quiet = a.quiet;
    println!(
        "sockpool-loadgen tune: a tour of the techniques against an embedded sockpool-server."
    );
    println!("Each cell runs {} after {} of warm-up; latency is corrected (from the intended send time).\n",
        humantime::format_duration(CELL), humantime::format_duration(WARMUP));
    let mut reports = Vec::new();
    for (i, stop) in stops().into_iter().enumerate() {
        if i == 3 {
            bulk_stop(quiet)?;
        }
        println!("== {} ==\n{}", stop.title, stop.explain);
        let vary = available_models(stop.vary);
        let v = Vary::parse(&vary)?;
        if v.values.len() < 2 {
            println!(
                "(only {} available here; nothing to compare)\n",
                v.values.join(",")
            );
            continue;
        }
        let baseline = CellConfig {
            connections: stop.connections,
            pipeline: stop.pipeline,
            payload: stop.payload,
            server_model: Some("async".into()),
            server_workers: Some(2),
            duration: CELL,
            warmup: WARMUP,
            ..CellConfig::default()
        };
        let plan = Plan {
            baseline,
            varies: vec![v],
            one_at_a_time: false,
            repeat: 1,
            slo: None,
        };
        let mut progress = |line: &str| {
            if !quiet {
                eprintln!("   {line}");
            }
        };
        let report = super::run(&runner, &plan, &mut progress)?;
        print!("{}", super::table::render(&report));
        println!("{}\n", headline(&report));
        reports.push(report);
    }
    println!("Point it at your own server: sockpool-loadgen tune --target HOST:PORT --vary pipeline=1,16 --vary connections=4,32 --slo 'p99<2ms' --html tune.html");
    Ok(())
}

fn bulk_stop(quiet: bool) -> Result<(), TuneError> {
    println!("== 4. Buffer size for bulk transfer ==");
    println!("Uploading through framed SINK with 1 KiB against 64 KiB application writes: bigger buffers mean fewer system calls and frames.");
    let cells = crate::stream::tour_cells(CELL);
    let results = crate::stream::run_cells(None, &cells, quiet).map_err(|e| TuneError::Cell {
        cell: "bulk transfer".into(),
        reason: e.to_string(),
    })?;
    print!(
        "{}",
        crate::stream::render(&results, crate::stream::defaults::FILE_SIZE)
    );
    if let [a, b] = results.as_slice() {
        println!(
            "buffer={} vs buffer={}: throughput {:.2}×\n",
            crate::stream::fmt_size(b.cell.buffer),
            crate::stream::fmt_size(a.cell.buffer),
            b.bytes_per_s() / a.bytes_per_s().max(1e-9)
        );
    }
    Ok(())
}

/// Entry from [`super::main`].
pub fn run(a: &TuneArgs) -> Result<(), TuneError> {
    run_tour(a)
}
