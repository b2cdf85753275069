//! One whole run: preflight, worker threads, the collector on the calling thread, progress, the result.

use std::io::BufWriter;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{Config, Load, Protocol, Stop};
use crate::driver::{run_worker, Plan, Report, Transport, WorkerSummary};
use crate::hdr::HlogWriter;
use crate::health::Health;
use crate::progress::Progress;
use crate::recorder::{quantile_us, Collector};
use crate::report::RunResult;
use crate::scenario::Generator;
use tokio_util::sync::CancellationToken;

/// Why a run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The target did not accept a connection within the connect timeout.
    #[error("cannot reach {target}: {reason} (connect timeout {timeout})")]
    Unreachable {
        /// The target.
        target: String,
        /// What went wrong.
        reason: String,
        /// The connect timeout, human-readable.
        timeout: String,
    },
    /// Setting up a worker failed (bad TLS files, runtime creation …).
    #[error("setup failed: {0}")]
    Setup(String),
    /// `--start-at` is past by more than the warm-up: this agent would not measure the others' window.
    #[error("{0}")]
    TooLate(String),
    /// An output file could not be written.
    #[error("{path}: {source}")]
    Output {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Descriptors kept beside the connections: the runtime, output files, a reconnect's overlap.
const SPARE_DESCRIPTORS: u64 = 64;

/// Makes room for `connections` sockets (and as many for the embedded server's side, in this process too): raises the soft open-file limit toward the hard one when it is too
/// low (as Go programs and nginx's `worker_rlimit_nofile` do), and refuses a run the hard limit cannot hold,
/// before it starts. Before, `-c 2000` under `ulimit -n 1024` ran and reported 175,720 `other` errors (Too
/// many open files) from a reconnect loop.
pub(crate) fn descriptors(connections: usize, embedded: bool) -> Result<(), String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let sides = if embedded { 2 } else { 1 };
    let need = connections as u64 * sides + SPARE_DESCRIPTORS;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Ok(());
    };
    if need <= soft {
        return Ok(());
    }
    if need <= hard && setrlimit(Resource::RLIMIT_NOFILE, need, hard).is_ok() {
        return Ok(());
    }
    Err(format!(
        "--connections {connections} needs about {need} open files, and this process may open {soft} (hard \
         limit {hard}): raise it (`ulimit -n {need}`) or use fewer connections"
    ))
}

/// Time given to worker threads to start before the schedule begins.
const START_DELAY: Duration = Duration::from_millis(50);

/// Checks that `endpoint` accepts a connection within `timeout` (TCP or Unix; UDP has nothing to check).
/// It opens and closes one connection and sends nothing, so servers' request counters are untouched.
pub fn preflight(endpoint: &str, protocol: Protocol, timeout: Duration) -> Result<(), RunError> {
    if protocol == Protocol::Udp {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Setup(e.to_string()))?;
    let address = endpoint
        .strip_prefix("tls://")
        .unwrap_or(endpoint)
        .to_string();
    let fail = |reason: String| RunError::Unreachable {
        target: endpoint.to_string(),
        reason,
        timeout: humantime::format_duration(timeout).to_string(),
    };
    let endpoint: sockpool::Endpoint = address
        .parse()
        .map_err(|e: sockpool::Error| fail(e.to_string()))?;
    // The SDK's connector, as every request uses it: the same resolution, socket set-up and connect timeout.
    let timeouts = sockpool::Timeouts::default().with_connect(timeout);
    let connector =
        sockpool::transport::Connector::new(sockpool::SocketOptions::default(), &timeouts, None)
            .map_err(|e| RunError::Setup(e.to_string()))?;
    rt.block_on(async {
        match connector.connect(&endpoint, None).await {
            Ok(stream) => {
                drop(stream);
                Ok(())
            }
            Err(e) if e.is_timeout() => Err(fail("no answer".into())),
            Err(e) => Err(fail(
                std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), |s| s.to_string())
                    .to_lowercase(),
            )),
        }
    })
}

/// The warning of a run in which no connection opened and no attempt failed.
pub(crate) fn connects_in_progress(connect_timeout: Duration) -> String {
    format!(
        "no connection to the target opened and no attempt failed: every connect (TCP, or a TLS handshake the \
         server never answered) was still in progress when the run ended (--connect-timeout {})",
        crate::report::fmt_duration(connect_timeout)
    )
}

/// What Ctrl-C and SIGTERM do during a run.
#[derive(Debug, Clone)]
pub enum Signals {
    /// Stop gracefully and keep the report (`run`): see [`crate::signals::watch`].
    Graceful,
    /// Leave them alone: they end the process as usual.
    Default,
    /// A caller that runs several runs (`tune`) watches the signals itself and cancels this token: the run
    /// stops as a `Graceful` one does, and its result says it was interrupted.
    Shared(CancellationToken),
}

/// Runs `config` against `target`. `make(worker, connections)` builds each worker's transport on the
/// worker's own thread.
pub fn run<T, F>(
    config: &Config,
    target: &str,
    embedded: bool,
    signals: Signals,
    make: F,
) -> Result<RunResult, RunError>
where
    T: Transport,
    F: Fn(usize, usize) -> Result<T, String> + Sync,
{
    preflight(target, config.protocol, config.connect_timeout)?;
    descriptors(config.connections, embedded).map_err(RunError::Setup)?;
    let workers = config.threads.min(config.connections).max(1);
    let (now, now_wall) = (Instant::now(), SystemTime::now());
    let schedule = crate::agents::schedule(config.start_at, config.warmup, now_wall, START_DELAY)
        .map_err(RunError::TooLate)?;
    let start = now + schedule.delay;
    // With --start-at every agent's measured window opens at the same wall-clock moment: start + warm-up.
    let started = match config.start_at {
        Some(at) => at + config.warmup,
        None => now_wall + schedule.delay + schedule.warmup,
    };

    // The `.hlog` is written as the run goes, to a temporary file renamed into place once complete: a second
    // Ctrl-C leaves no truncated log behind.
    let (hlog, hlog_file) = match &config.hlog {
        None => (None, None),
        Some(path) => {
            let err = |source| RunError::Output {
                path: path.display().to_string(),
                source,
            };
            let (staged, file) = crate::outfile::Staged::create(path).map_err(err)?;
            let out: Box<dyn std::io::Write + Send> = Box::new(BufWriter::new(file));
            let comment = format!("sockpool-loadgen corrected latency, ns; target {target}");
            (
                Some(HlogWriter::new(out, started, &comment).map_err(err)?),
                Some(staged),
            )
        }
    };
    let step_len = match config.load {
        Load::Ramp { step, steps, .. } => Some((step, steps as usize)),
        _ => None,
    };
    let mut collector = Collector::new(workers, step_len, hlog);
    let progress = Progress::new(crate::progress::wanted(config.quiet), config.duration());
    if !config.warmup.is_zero() {
        progress.phase("warming up");
    }
    let (interrupt, watch) = match signals {
        Signals::Graceful => {
            let interrupt = CancellationToken::new();
            let what = format!(
                "no new requests; those in flight get up to {}",
                humantime::format_duration(config.timeout)
            );
            let watch = crate::signals::watch(interrupt.clone(), progress.bar(), what);
            (interrupt, watch)
        }
        Signals::Default => (CancellationToken::new(), None),
        Signals::Shared(token) => (token, None),
    };

    let (tx, rx) = mpsc::channel::<Result<Report, String>>();
    let mut summaries: Vec<WorkerSummary> = Vec::new();
    let mut setup_error = None;
    // Where every worker's measurement window closes on Ctrl-C: the first one to see it says when.
    let interrupted_at = std::sync::Arc::new(std::sync::OnceLock::new());
    let mut opened_at = None;
    std::thread::scope(|scope| {
        // Reads the wall clock when the measured window opens: the agent's observed offset from its plan. A
        // Ctrl-C before then ends its wait (the window never opened: `None`).
        let interrupted = interrupt.clone();
        let opened = std::thread::Builder::new()
            .name("loadgen-clock".into())
            .spawn_scoped(scope, move || {
                let opens = start + schedule.warmup;
                loop {
                    let left = opens.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Some(SystemTime::now());
                    }
                    if interrupted.is_cancelled() {
                        return None;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(50)));
                }
            })
            .ok();
        for w in 0..workers {
            let tx = tx.clone();
            let make = &make;
            let conns =
                config.connections / workers + usize::from(w < config.connections % workers);
            let plan = Plan {
                worker: w,
                workers,
                slots: conns * config.pipeline,
                load: config.load.clone(),
                stop: match config.stop {
                    Stop::Requests(n) => Stop::Requests(Plan::share(n, w, workers)),
                    s => s,
                },
                warmup: schedule.warmup,
                timeout: config.timeout,
                interrupt: interrupt.clone(),
                interrupted_at: interrupted_at.clone(),
            };
            let (first, step) = crate::agents::seq_plan(config, w, workers);
            let gen = Generator::new(config, 0x5eed ^ first << 32).with_seq(first, step);
            std::thread::Builder::new()
                .name(format!("loadgen-worker-{w}"))
                .spawn_scoped(scope, move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => return drop(tx.send(Err(e.to_string()))),
                    };
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&rt, async move {
                        let transport = match make(w, conns) {
                            Ok(t) => t,
                            Err(e) => return drop(tx.send(Err(e))),
                        };
                        let sink_tx = tx.clone();
                        let sink = move |r: Report| drop(sink_tx.send(Ok(r)));
                        run_worker(
                            transport,
                            gen,
                            plan,
                            tokio::time::Instant::from_std(start),
                            sink,
                        )
                        .await;
                    });
                })
                .map_err(|e| RunError::Setup(e.to_string()))
                .ok();
        }
        drop(tx);
        let mut shown = 0;
        for msg in rx.iter() {
            match msg {
                Err(e) => {
                    setup_error.get_or_insert(e);
                }
                Ok(Report::Done(s)) => summaries.push(s),
                Ok(Report::Interval {
                    index,
                    start,
                    length,
                    drain,
                    interval,
                }) => {
                    collector.add(index, start, length, drain, &interval);
                    if collector.series.len() > shown {
                        shown = collector.series.len();
                        if let Some(last) = collector.series.last() {
                            progress.update(
                                Duration::from_secs_f64(last.start_s + last.length_s),
                                last.rate,
                                Duration::from_secs_f64(
                                    quantile_us(&collector.total.corrected, 0.99) / 1e6,
                                ),
                                collector.total.errors.total(),
                            );
                        }
                    }
                }
            }
        }
        opened_at = opened.and_then(|h| h.join().ok()).flatten();
    });
    drop(watch);
    progress.finish();
    if let Some(e) = setup_error {
        return Err(RunError::Setup(e));
    }
    collector.close();
    if let (Some(e), Some(path)) = (collector.hlog_error.take(), &config.hlog) {
        return Err(RunError::Output {
            path: path.display().to_string(),
            source: e,
        });
    }

    let elapsed = summaries
        .iter()
        .map(|s| s.elapsed)
        .max()
        .unwrap_or_default();
    let window = summaries
        .iter()
        .map(|s| s.window)
        .max()
        .unwrap_or_default()
        .min(elapsed);
    let cpu: Vec<Duration> = summaries.iter().map(|s| s.cpu).collect();
    let connects: u64 = summaries.iter().map(|s| s.connects).sum();
    let reconnects = if config.protocol == Protocol::Udp {
        0
    } else {
        connects.saturating_sub(config.connections as u64)
    };
    let lag = &collector.total.send_lag;
    let q = |p: f64| {
        if lag.is_empty() {
            Duration::ZERO
        } else {
            Duration::from_nanos(lag.value_at_quantile(p))
        }
    };
    let lag = (
        q(0.5),
        q(0.99),
        if lag.is_empty() {
            Duration::ZERO
        } else {
            Duration::from_nanos(lag.max())
        },
    );
    let mut result = RunResult {
        config: config.clone(),
        target: target.to_string(),
        embedded,
        started,
        elapsed,
        window,
        total: std::mem::take(&mut collector.total),
        series: std::mem::take(&mut collector.series),
        steps: std::mem::take(&mut collector.steps),
        health: Health::default(),
        interrupted: interrupt.is_cancelled(),
        agent: None,
        merged: None,
    };
    let open = !matches!(config.load, Load::Closed);
    let reopened = crate::health::Reopened {
        reconnects,
        announced: summaries.iter().map(|s| s.announced_closes).sum(),
        broken: summaries.iter().map(|s| s.broken).sum(),
        first_break: summaries.iter_mut().find_map(|s| s.first_break.take()),
        stray: summaries.iter().map(|s| s.stray).sum(),
    };
    // What each worker waited for a CPU, where every one of them could say.
    let waits: Vec<Duration> = summaries
        .iter()
        .map(|s| s.cpu_wait)
        .collect::<Option<_>>()
        .unwrap_or_default();
    result.health = Health::assess(&cpu, elapsed, open, lag, result.achieved(), reopened)
        .with_cpu_wait(&waits, elapsed);
    if connects == 0
        && config.protocol != Protocol::Udp
        && result.total.ok == 0
        && result.total.errors.total() == 0
    {
        result
            .health
            .warnings
            .push(connects_in_progress(config.connect_timeout));
    }
    let offset_s = opened_at.map_or(0.0, |t| match t.duration_since(started) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    });
    let identity = crate::agents::Identity::new(config, schedule.late_by, offset_s);
    collector.trailer(&crate::merge::hlog_trailer(&identity, &result));
    if let (Some(e), Some(path)) = (collector.hlog_error.take(), &config.hlog) {
        return Err(RunError::Output {
            path: path.display().to_string(),
            source: e,
        });
    }
    // Flushed by the trailer: complete.
    if let (Some(staged), Some(path)) = (hlog_file, &config.hlog) {
        staged.commit().map_err(|source| RunError::Output {
            path: path.display().to_string(),
            source,
        })?;
    }
    result.agent = Some(identity);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_target_is_one_clear_error_after_the_connect_timeout() {
        // Bound, never listening: connections are refused.
        let (_reserved, addr) = sockpool_testkit::ports::refused_addr();
        let target = addr.to_string();
        let e = preflight(&target, Protocol::Framed, Duration::from_millis(300)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("cannot reach {target}: ")),
            "{msg}"
        );
        assert!(msg.contains("refused"), "{msg}");
        assert!(!msg.contains('\n'));
        let dir = tempfile::tempdir().unwrap();
        let sock = format!("unix:{}", dir.path().join("none.sock").display());
        assert!(preflight(&sock, Protocol::Line, Duration::from_millis(300)).is_err());
    }
}
