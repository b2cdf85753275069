//! `sockpool-loadgen tune` with no arguments: a guided tour of the techniques on the embedded server, in
//! well under a minute. Each stop is a small tune of two (or more) cells with the same machinery as a full
//! tune, printed with one line saying what the technique bought:
//!
//! 1. a connection pool against a new connection per request;
//! 2. pipelining 1 against 16;
//! 3. TCP_NODELAY on against off with small pipelined writes (Nagle's algorithm);
//! 4. 1 KiB against 64 KiB application buffers for a bulk upload ([`crate::stream`]);
//! 5. the server's concurrency models side by side (those this build of the server offers).
//!
//! The tour honours `--duration`, `--warmup`, `--repeat` and `--quiet`. The flags it cannot honour (the report
//! files, the baseline flags, `--one-at-a-time`) are refused with one line rather than dropped: each stop has
//! its own baseline, and a tour is several small tunes, not one report.

use std::time::Duration;

use super::real::LoadRunner;
use super::stats::Stat;
use super::table::{fmt_rate, fmt_us};
use super::{CellConfig, Plan, Timing, TuneArgs, TuneError, TuneReport, Vary};

/// Length of each tour cell. Default: 1 s.
pub const CELL: Duration = Duration::from_secs(1);
/// Warm-up of each tour cell. Default: 200 ms.
pub const WARMUP: Duration = Duration::from_millis(200);

/// True when `tune` was given none of `--vary`, `--target` and `--slo`: the tour runs.
pub fn is_tour(a: &TuneArgs) -> bool {
    a.vary.is_empty() && a.target.is_none() && a.slo.is_none()
}

/// The tour's validated flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TourPlan {
    /// Cell length, warm-up and runs per cell. Default: [`CELL`], [`WARMUP`], 1.
    pub timing: Timing,
    /// No progress lines on stderr.
    pub quiet: bool,
}

impl TourPlan {
    /// Validates the flags the tour honours and refuses, in one line, those it cannot.
    pub fn from_args(a: &TuneArgs) -> Result<TourPlan, TuneError> {
        let refuse = |flag: &str, why: &str| {
            Err(TuneError::Config(format!(
                "{flag}: {why} in the tour (tune without --vary, --target or --slo); add e.g. --vary pipeline=1,16 to run a tune"
            )))
        };
        if a.json.is_some() {
            return refuse("--json", "no report file is written");
        }
        if a.html.is_some() {
            return refuse("--html", "no report file is written");
        }
        if a.recommend.is_some() {
            return refuse("--recommend", "nothing is recommended");
        }
        for (given, flag) in [
            (a.connections.is_some(), "--connections"),
            (a.pipeline.is_some(), "--pipeline"),
            (a.payload.is_some(), "--payload"),
            (a.threads.is_some(), "--threads"),
            (a.max_reply.is_some(), "--max-reply"),
        ] {
            if given {
                return refuse(flag, "each stop sets its own baseline");
            }
        }
        if a.service != crate::args::ServiceArgs::default() {
            return refuse(
                "--protocol, TLS and the request flags",
                "every stop drives the embedded server's framed echo",
            );
        }
        if a.one_at_a_time {
            return refuse("--one-at-a-time", "each stop varies a single key");
        }
        Ok(TourPlan {
            timing: Timing::from_args(a, CELL, WARMUP)?,
            quiet: a.quiet,
        })
    }
}

/// What a pair of medians says about noise: nothing with one run, otherwise whether both the rate and the p99
/// ranges overlap the baseline's.
fn noise(rate: (&Stat, &Stat), p99: (&Stat, &Stat)) -> &'static str {
    match (rate.0.within_noise(rate.1), p99.0.within_noise(p99.1)) {
        (Some(true), Some(true)) => " (within noise)",
        (Some(r), Some(p)) if r || p => {
            if r {
                " (rate within noise)"
            } else {
                " (p99 within noise)"
            }
        }
        (Some(_), Some(_)) => " (outside the noise)",
        _ => " (single run: noise unknown)",
    }
}

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
            vary: "server-model=async,per-core,threads,event-loop,processes,uring",
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
                "{} vs {}: rate {:.2}×, p99 {:.2}× ({} → {} req/s, p99 {} → {}){}",
                c.cell.label,
                base.cell.label,
                c.stats.rate.ratio(&base.stats.rate).unwrap_or(0.0),
                c.stats.p99_us.ratio(&base.stats.p99_us).unwrap_or(0.0),
                fmt_rate(base.stats.rate.median),
                fmt_rate(c.stats.rate.median),
                fmt_us(base.stats.p99_us.median),
                fmt_us(c.stats.p99_us.median),
                noise(
                    (&c.stats.rate, &base.stats.rate),
                    (&c.stats.p99_us, &base.stats.p99_us)
                ),
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
            match super::real::embedded_server(&cell, crate::config::Protocol::Framed) {
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
pub fn run(t: &TourPlan) -> Result<(), TuneError> {
    let runner = LoadRunner::new(None, crate::args::ServiceArgs::default())?;
    let quiet = t.quiet;
    let Timing {
        duration,
        warmup,
        repeat,
    } = t.timing;
    println!(
        "sockpool-loadgen tune: a tour of the techniques against an embedded sockpool-server."
    );
    println!(
        "Each cell runs {} after {} of warm-up, {repeat} time{}; latency is corrected (from the intended send time).\n",
        humantime::format_duration(duration),
        humantime::format_duration(warmup),
        if repeat == 1 { "" } else { "s" }
    );
    for (i, stop) in stops().into_iter().enumerate() {
        if i == 3 {
            bulk_stop(duration, quiet)?;
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
            duration,
            warmup,
            ..CellConfig::default()
        };
        let plan = Plan {
            baseline,
            varies: vec![v],
            one_at_a_time: false,
            repeat,
            slo: None,
            threads: crate::config::defaults::THREADS,
        };
        let mut progress = |line: &str| {
            if !quiet {
                eprintln!("   {line}");
            }
        };
        let report = super::run(&runner, &plan, &mut progress)?;
        print!("{}", super::table::render(&report));
        println!("{}\n", headline(&report));
    }
    println!("Point it at your own server: sockpool-loadgen tune --target HOST:PORT --vary pipeline=1,16 --vary connections=4,32 --slo 'p99<2ms' --html tune.html");
    Ok(())
}

fn bulk_stop(duration: Duration, quiet: bool) -> Result<(), TuneError> {
    println!("== 4. Buffer size for bulk transfer ==");
    println!("Uploading through framed SINK with 1 KiB against 64 KiB application writes: bigger buffers mean fewer system calls and frames.");
    let cells = crate::stream::tour_cells(duration);
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
            "buffer={} vs buffer={}: throughput {:.2}× (single run: noise unknown)\n",
            crate::stream::fmt_size(b.cell.buffer),
            crate::stream::fmt_size(a.cell.buffer),
            b.bytes_per_s() / a.bytes_per_s().max(1e-9)
        );
    }
    Ok(())
}
