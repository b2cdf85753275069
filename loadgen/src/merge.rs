//! `sockpool-loadgen merge`: the agents' reports of one shared run (`run --agents N`) as one report, of exactly
//! the shape of a single run (terminal table, `--json`, `--hgrm`, `--hlog`).
//!
//! Percentiles cannot be averaged, so nothing here averages: every histogram is added bucket by bucket
//! (HdrHistogram `add`, exact), counts and errors are summed, and the measured window is the union of the
//! agents' windows (its rate is every reply over that union). Seconds are aligned by wall clock (each agent's
//! `started_unix_s`), so `--start-at` agents' seconds add up one to one. Inputs are JSON reports (`--json`;
//! they carry every histogram losslessly), `.hlog` files (corrected latency only, with the agent's counts in
//! their last comment line), or `-`: JSON documents one per line on stdin, as `kubectl logs` prints them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

use crate::agents::Identity;
use crate::args::RunArgs;
use crate::config::{Config, Load};
use crate::hdr::from_base64;
use crate::health::{Health, LAG_WARN};
use crate::recorder::{quantile_us, window_replies, ErrorKind, Interval};
use crate::report::{fmt_duration, RunResult, SCHEMA};

/// The flags of `sockpool-loadgen merge`.
#[derive(Debug, Clone, Default, Args)]
pub struct MergeArgs {
    /// Agents' reports: JSON files (`run --json FILE`), `.hlog` files (`run --hlog FILE`), or `-` for JSON
    /// documents one per line on stdin (`kubectl logs -l job-name=…`; lines that are not reports are skipped).
    #[arg(required = true, value_name = "FILE")]
    pub inputs: Vec<String>,
    /// Merge even when the agents drove different targets or protocols, one agent's report is given twice, or
    /// an agent's report is missing (a warning instead of a refusal).
    #[arg(long)]
    pub force: bool,
    /// Write the merged JSON report to FILE, or to stdout with `-`.
    #[arg(long)]
    pub json: Option<String>,
    /// Write the merged corrected-latency percentile distribution to FILE.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write the merged HdrHistogram interval log (one interval a second) to FILE.
    #[arg(long)]
    pub hlog: Option<PathBuf>,
    /// No terminal table (files and `--json -` are still written).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Why the reports cannot be merged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MergeError(pub String);

fn bad(msg: impl Into<String>) -> MergeError {
    MergeError(msg.into())
}

/// One agent's report, read back.
#[derive(Debug)]
pub struct AgentReport {
    /// Where it came from (a file name, `stdin line N`).
    pub source: String,
    /// Who the agent was.
    pub identity: Identity,
    /// The endpoint it drove.
    pub target: String,
    /// Its measured window's start, seconds since the Unix epoch.
    pub started_unix_s: f64,
    /// Its measured part's length (until its last request finished), seconds.
    pub duration_s: f64,
    /// Its measurement window's length (to the end of its duration), seconds: its rates' divisor.
    pub window_s: f64,
    /// Its whole measured run. From a `.hlog`: the corrected histogram and the counts only.
    pub total: Interval,
    /// Its seconds: `(start since its window opened, length, drain, the second)`; `drain` when it began at or
    /// after the end of the agent's measurement window.
    pub seconds: Vec<(f64, f64, bool, Interval)>,
    /// Its own health.
    pub health: Health,
    /// It was stopped early.
    pub interrupted: bool,
    /// Read from a `.hlog`: corrected latency only (no raw, connect or pool-wait histograms).
    pub hlog: bool,
}

/// A merged report's agents and warnings (`merge` in the JSON; a table in the terminal report).
#[derive(Debug, Clone, Serialize)]
pub struct Merged {
    /// One row per agent, in index order.
    pub agents: Vec<AgentRow>,
    /// What makes the merged figures less than one clean run: a bottleneck agent, send lag, a late start,
    /// different configurations or targets, missing agents.
    pub warnings: Vec<String>,
}

/// One agent in a merged report.
#[derive(Debug, Clone, Serialize)]
pub struct AgentRow {
    /// `--agent-index`.
    pub index: usize,
    /// Host name.
    pub host: String,
    /// `--bind`, if any.
    pub bind: Option<String>,
    /// The input it was read from.
    pub source: String,
    /// Requests finished.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Replies per second over its own window.
    pub rate: f64,
    /// Corrected latency p99, µs.
    pub p99_us: f64,
    /// When its window opened, seconds after the first agent's.
    pub start_offset_s: f64,
    /// Warm-up it lost by starting after `--start-at`, seconds.
    pub late_start_s: f64,
    /// Its observed clock offset at the window's opening, ms ([`Identity::clock_offset_ms`]).
    pub clock_offset_ms: f64,
    /// Its sender's lag p99, µs.
    pub send_lag_p99_us: f64,
    /// It judged itself the bottleneck.
    pub bottleneck: bool,
}

/// A window opening this much after the first agent's is a late start. Default: 100 ms.
pub const LATE_WINDOW: Duration = Duration::from_millis(100);

/// The tag of the comment line that ends an agent's `.hlog` (`#sockpool-agent {json}`).
pub const HLOG_TAG: &str = "sockpool-agent ";

/// The comment line that ends an agent's `.hlog`: its identity and what the histograms do not say.
pub fn hlog_trailer(id: &Identity, r: &RunResult) -> String {
    let doc = json!({
        "agent": id,
        "target": r.target,
        "started_unix_s": crate::agents::unix_s(r.started),
        "duration_s": r.elapsed.as_secs_f64(),
        "window_s": r.window.as_secs_f64(),
        "drain_requests": r.total.drain.requests,
        "drain_replies": r.total.drain.replies,
        "drain_bytes_sent": r.total.drain.bytes_sent,
        "drain_bytes_received": r.total.drain.bytes_received,
        "ok": r.total.ok,
        "corrected_count": r.total.corrected.len(),
        "errors": &r.total.errors,
        "bytes_sent": r.total.bytes_sent,
        "bytes_received": r.total.bytes_received,
        "health": &r.health,
        "interrupted": r.interrupted,
    });
    format!("{HLOG_TAG}{doc}")
}

fn hist(v: &Value, what: &str, source: &str) -> Result<Histogram<u64>, MergeError> {
    match v.as_str() {
        Some(s) => from_base64(s)
            .ok_or_else(|| bad(format!("{source}: {what}: not an HdrHistogram V2 base64 histogram"))),
        None => Err(bad(format!(
            "{source}: no {what} histogram (a report of an older sockpool-loadgen? run the agents again)"
        ))),
    }
}

fn u64_at(v: &Value, source: &str, what: &str) -> Result<u64, MergeError> {
    v.as_u64()
        .ok_or_else(|| bad(format!("{source}: {what} is missing or not a count")))
}

/// The drain (`drain_requests`, `drain_replies`, `drain_bytes_*`) of a report's summary or a `.hlog`'s agent
/// line; zeros when absent.
fn drain_of(v: &Value) -> crate::recorder::Drain {
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    crate::recorder::Drain {
        requests: n("drain_requests"),
        replies: n("drain_replies"),
        bytes_sent: n("drain_bytes_sent"),
        bytes_received: n("drain_bytes_received"),
    }
}

/// A report's (or agent line's) `window_s`, or its `duration_s` when it has none.
fn window_of(v: &Value) -> f64 {
    v["window_s"]
        .as_f64()
        .or_else(|| v["duration_s"].as_f64())
        .unwrap_or(0.0)
}

fn errors_of(v: &Value, into: &mut Interval) {
    if let Some(m) = v.as_object() {
        for (name, n) in m {
            if let (Some(kind), Some(n)) = (ErrorKind::by_name(name), n.as_u64()) {
                into.errors.add_n(kind, n);
            }
        }
    }
}

/// A second as a report lists it: its histograms, and counts split so that `requests`, `errors` and `replies`
/// come out as reported (server errors and bad replies together count as `server_error`).
/// `window_s` is the report's: a second without a `drain` field (an older report) is the drain's when it
/// began at the window's end or later.
fn second_of(
    v: &Value,
    source: &str,
    window_s: f64,
) -> Result<(f64, f64, bool, Interval), MergeError> {
    let mut i = Interval {
        corrected: hist(&v["histogram"], "interval", source)?,
        raw: hist(&v["raw_histogram"], "interval raw", source)?,
        ..Interval::default()
    };
    let requests = u64_at(&v["requests"], source, "intervals[].requests")?;
    let errors = u64_at(&v["errors"], source, "intervals[].errors")?;
    let replied = u64_at(&v["replies"], source, "intervals[].replies")?;
    i.ok = requests.saturating_sub(errors);
    let answered_errors = replied.saturating_sub(i.ok).min(errors);
    i.errors.add_n(ErrorKind::ServerError, answered_errors);
    i.errors.add_n(ErrorKind::Other, errors - answered_errors);
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let drain = v["drain"]
        .as_bool()
        .unwrap_or_else(|| is_drain(f("start_s"), window_s));
    Ok((f("start_s"), f("length_s"), drain, i))
}

/// Whether an interval that began `start_s` after measuring began is the drain of a window of `window_s`
/// (a `.hlog`'s timestamps have three decimals: within a millisecond of the window's end is at it).
fn is_drain(start_s: f64, window_s: f64) -> bool {
    start_s > 0.0 && start_s >= window_s - 1e-3
}

impl AgentReport {
    /// Reads one agent's JSON report.
    pub fn from_json(v: &Value, source: &str) -> Result<AgentReport, MergeError> {
        if v["schema"] != SCHEMA {
            return Err(bad(format!("{source}: not a {SCHEMA} report")));
        }
        let identity: Identity = serde_json::from_value(v["agent"].clone()).map_err(|e| {
            bad(format!(
                "{source}: no agent identity ({e}); reports of an older sockpool-loadgen cannot be merged"
            ))
        })?;
        let lat = &v["latency"];
        let mut total = Interval {
            corrected: hist(&lat["corrected"]["histogram"], "latency.corrected", source)?,
            raw: hist(&lat["raw"]["histogram"], "latency.raw", source)?,
            connect: hist(&lat["connect"]["histogram"], "latency.connect", source)?,
            pool_wait: hist(&lat["pool_wait"]["histogram"], "latency.pool_wait", source)?,
            ok: u64_at(&v["summary"]["ok"], source, "summary.ok")?,
            bytes_sent: v["summary"]["bytes_sent"].as_u64().unwrap_or(0),
            bytes_received: v["summary"]["bytes_received"].as_u64().unwrap_or(0),
            drain: drain_of(&v["summary"]),
            ..Interval::default()
        };
        errors_of(&v["errors"], &mut total);
        if let Some(m) = v["error_codes"].as_object() {
            for (kind, codes) in m {
                let Some(kind) = ErrorKind::by_name(kind) else {
                    continue;
                };
                for (code, n) in codes.as_object().into_iter().flatten() {
                    total.details.add_code(kind, code, n.as_u64().unwrap_or(0));
                }
            }
        }
        for e in v["error_examples"].as_array().into_iter().flatten() {
            if let (Some(kind), Some(text)) = (
                e["kind"].as_str().and_then(ErrorKind::by_name),
                e["text"].as_str(),
            ) {
                total.details.add_example(kind, text);
            }
        }
        let seconds = v["intervals"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| second_of(s, source, window_of(&v["summary"])))
            .collect::<Result<_, _>>()?;
        Ok(AgentReport {
            source: source.to_string(),
            identity,
            target: v["target"].as_str().unwrap_or_default().to_string(),
            started_unix_s: v["started_unix_s"].as_f64().unwrap_or(0.0),
            duration_s: v["summary"]["duration_s"].as_f64().unwrap_or(0.0),
            window_s: window_of(&v["summary"]),
            total,
            seconds,
            health: serde_json::from_value(v["health"].clone()).unwrap_or_default(),
            interrupted: v["interrupted"].as_bool().unwrap_or(false),
            hlog: false,
        })
    }

    /// Reads one agent's `.hlog`: its seconds' corrected histograms and, from its last comment line, who it
    /// was and its counts.
    pub fn from_hlog(text: &str, source: &str) -> Result<AgentReport, MergeError> {
        use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
        let trailer = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix('#').and_then(|l| l.strip_prefix(HLOG_TAG)))
            .ok_or_else(|| {
                bad(format!(
                    "{source}: no `#{HLOG_TAG}…` line: not an agent's .hlog, or the run did not finish"
                ))
            })?;
        let t: Value = serde_json::from_str(trailer)
            .map_err(|e| bad(format!("{source}: the agent line is not JSON: {e}")))?;
        let identity: Identity = serde_json::from_value(t["agent"].clone())
            .map_err(|e| bad(format!("{source}: the agent line has no identity: {e}")))?;
        let mut total = Interval {
            ok: u64_at(&t["ok"], source, "ok")?,
            bytes_sent: t["bytes_sent"].as_u64().unwrap_or(0),
            bytes_received: t["bytes_received"].as_u64().unwrap_or(0),
            drain: drain_of(&t),
            ..Interval::default()
        };
        errors_of(&t["errors"], &mut total);
        let mut seconds = Vec::new();
        for e in IntervalLogIterator::new(text.as_bytes()) {
            let e = e.map_err(|e| bad(format!("{source}: not an interval log: {e:?}")))?;
            if let LogEntry::Interval(i) = e {
                let corrected = from_base64(i.encoded_histogram())
                    .ok_or_else(|| bad(format!("{source}: an interval's histogram is corrupt")))?;
                let _ = total.corrected.add(&corrected);
                let second = Interval {
                    ok: corrected.len(),
                    corrected,
                    ..Interval::default()
                };
                let start = i.start_timestamp().as_secs_f64();
                seconds.push((
                    start,
                    i.duration().as_secs_f64(),
                    is_drain(start, window_of(&t)),
                    second,
                ));
            }
        }
        // Every latency the agent recorded is in one interval: fewer means intervals were lost (a cut or
        // edited file), and the merged figures would silently cover part of the run. Every reply that was
        // right has a latency, so an agent line without the count (an older file) still bounds it by `ok`.
        let kept = total.corrected.len();
        let recorded = t["corrected_count"].as_u64();
        if recorded.is_some_and(|n| n != kept) || kept < total.ok {
            return Err(bad(format!(
                "{source}: its intervals hold {kept} latencies but the agent line counts {}: intervals are \
                 missing (the file was cut or edited)",
                recorded.unwrap_or(total.ok)
            )));
        }
        Ok(AgentReport {
            hlog: true,
            source: source.to_string(),
            identity,
            target: t["target"].as_str().unwrap_or_default().to_string(),
            started_unix_s: t["started_unix_s"].as_f64().unwrap_or(0.0),
            duration_s: t["duration_s"].as_f64().unwrap_or(0.0),
            window_s: window_of(&t),
            total,
            seconds,
            health: serde_json::from_value(t["health"].clone()).unwrap_or_default(),
            interrupted: t["interrupted"].as_bool().unwrap_or(false),
        })
    }

    /// Its replies per second over its own measurement window (its drain left out, as its report's `rate`).
    fn rate(&self) -> f64 {
        window_replies(&self.total) as f64 / self.window_s.max(1e-9)
    }
}

/// Reads every input: a file (a JSON report, JSON lines, or a `.hlog`), or `-` (JSON lines on stdin).
pub fn read_inputs(inputs: &[String]) -> Result<Vec<AgentReport>, MergeError> {
    let mut out = Vec::new();
    for input in inputs {
        if input == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| bad(format!("stdin: {e}")))?;
            out.extend(json_lines(&text, "stdin")?);
            continue;
        }
        let text = std::fs::read_to_string(input).map_err(|e| bad(format!("{input}: {e}")))?;
        if text.starts_with('#') || Path::new(input).extension().is_some_and(|e| e == "hlog") {
            out.push(AgentReport::from_hlog(&text, input)?);
        } else if let Ok(v) = serde_json::from_str::<Value>(&text) {
            out.push(AgentReport::from_json(&v, input)?);
        } else {
            out.extend(json_lines(&text, input)?);
        }
    }
    Ok(out)
}

/// The reports among `text`'s lines (one JSON document a line); other lines (a table, log lines) are skipped.
/// A line that is JSON cut short, or that names the report schema but is not JSON (an agent killed while
/// writing, a line cut by a pipe), is refused: skipped, that agent's load would silently be missing from the totals.
pub fn json_lines(text: &str, source: &str) -> Result<Vec<AgentReport>, MergeError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.starts_with('{') {
            continue;
        }
        let v = match serde_json::from_str::<Value>(line) {
            Ok(v) => v,
            Err(e) if e.is_eof() || line.contains(SCHEMA) => {
                return Err(bad(format!(
                    "{source} line {}: a report cut short or damaged ({e}); its agent's load would be missing \
                     from the totals",
                    n + 1
                )))
            }
            Err(_) => continue,
        };
        if v["schema"] == SCHEMA {
            out.push(AgentReport::from_json(
                &v,
                &format!("{source} line {}", n + 1),
            )?);
        }
    }
    if out.is_empty() {
        return Err(bad(format!(
            "{source}: no report found (expected one JSON document per line, as `run --agents N --json -` prints)"
        )));
    }
    Ok(out)
}

/// The flags that make two agents' runs the same configuration: all but where each agent writes and binds.
fn shared_flags(a: &RunArgs) -> RunArgs {
    RunArgs {
        agent_index: None,
        bind: None,
        json: None,
        hgrm: None,
        hlog: None,
        quiet: false,
        ..a.clone()
    }
}

/// Merges `reports` into one run's result; `m` gives the outputs.
pub fn merge(mut reports: Vec<AgentReport>, m: &MergeArgs) -> Result<RunResult, MergeError> {
    if reports.is_empty() {
        return Err(bad("nothing to merge"));
    }
    reports.sort_by_key(|r| r.identity.index);
    let first = &reports[0];
    let mut warnings = Vec::new();
    let protocol = |r: &AgentReport| {
        Config::from_args(&r.identity.args)
            .map(|c| c.protocol)
            .map_err(|e| bad(format!("{}: its flags no longer validate: {e}", r.source)))
    };
    let proto0 = protocol(first)?;
    for r in &reports[1..] {
        let (p, who) = (protocol(r)?, agent_name(r));
        let what = if p != proto0 {
            Some(format!(
                "{who} spoke {}, agent {} spoke {}",
                p.name(),
                first.identity.index,
                proto0.name()
            ))
        } else if r.target != first.target {
            Some(format!(
                "{who} drove {}, agent {} drove {}",
                r.target, first.identity.index, first.target
            ))
        } else {
            None
        };
        if let Some(what) = what {
            if !m.force {
                return Err(bad(format!(
                    "{what}: these are not one run (merge them anyway with --force)"
                )));
            }
            warnings.push(format!("{what} (merged because of --force)"));
        } else if shared_flags(&r.identity.args) != shared_flags(&first.identity.args) {
            warnings.push(format!(
                "{who} measured a different configuration than agent {} (flags other than --agent-index, \
                 --bind and outputs differ)",
                first.identity.index
            ));
        }
    }
    check_membership(&reports, m.force, &mut warnings)?;
    let from_hlog = reports.iter().filter(|r| r.hlog).count();
    if from_hlog > 0 && from_hlog < reports.len() {
        warnings.push(format!(
            "{from_hlog} of {} agents were read from a .hlog, which holds corrected latency only: the raw, \
             connect and pool-wait latencies cover the other {} (merge their JSON reports for all of them)",
            reports.len(),
            reports.len() - from_hlog
        ));
    }

    let t0 = reports
        .iter()
        .map(|r| r.started_unix_s)
        .fold(f64::INFINITY, f64::min);
    let end = reports
        .iter()
        .map(|r| r.started_unix_s + r.duration_s)
        .fold(0.0, f64::max);
    // The union of the agents' measurement windows: the merged rates' divisor.
    let window_end = reports
        .iter()
        .map(|r| r.started_unix_s + r.window_s)
        .fold(0.0, f64::max);
    let mut total = Interval::default();
    // The agents' seconds by their whole second in the merged run and whether they are the drain (whose first
    // interval begins at the window's end, mid-second): each with its earliest start and latest end.
    let mut seconds: BTreeMap<(u64, bool), (Interval, f64, f64)> = BTreeMap::new();
    let mut rows = Vec::new();
    for r in &reports {
        total.merge(&r.total);
        let offset = r.started_unix_s - t0;
        for (start, length, drain, i) in &r.seconds {
            let from = (offset + start).max(0.0);
            let k = from.round() as u64;
            let e = seconds
                .entry((k, *drain))
                .or_insert_with(|| (Interval::default(), from, from + length));
            e.0.merge(i);
            e.1 = e.1.min(from);
            e.2 = e.2.max(from + length);
        }
        let row = row_of(r, offset);
        agent_warnings(r, &row, &mut warnings);
        rows.push(row);
    }

    let mut args = shared_flags(&first.identity.args);
    args.agents = None;
    args.start_at = None;
    args.json = m.json.clone();
    args.hgrm = m.hgrm.clone();
    args.hlog = m.hlog.clone();
    args.quiet = m.quiet;
    let config = Config::from_args(&args).map_err(|e| {
        bad(format!(
            "{}: the whole run's flags do not validate: {e}",
            first.source
        ))
    })?;

    let started = UNIX_EPOCH + Duration::from_secs_f64(t0.max(0.0));
    // Written to a temporary file renamed into place once complete (as `run` does): a kill or a failure half
    // way leaves no truncated `.hlog` that passes for the merge.
    let mut staged = None;
    let hlog = match &m.hlog {
        None => None,
        Some(p) => {
            let (s, file) = crate::outfile::Staged::create(p)
                .map_err(|e| bad(format!("{}: {e}", p.display())))?;
            staged = Some(s);
            let out: Box<dyn std::io::Write + Send> = Box::new(std::io::BufWriter::new(file));
            let comment = format!(
                "sockpool-loadgen merge of {} agents, corrected latency, ns; target {}",
                reports.len(),
                first.target
            );
            Some(
                crate::hdr::HlogWriter::new(out, started, &comment)
                    .map_err(|e| bad(format!("{}: {e}", p.display())))?,
            )
        }
    };
    let step_len = match config.load {
        Load::Ramp { step, steps, .. } => Some((step, steps as usize)),
        _ => None,
    };
    let mut collector = crate::recorder::Collector::new(1, step_len, hlog);
    for (index, ((_, drain), (i, from, until))) in seconds.iter().enumerate() {
        collector.add(
            index as u64,
            Duration::from_secs_f64(*from),
            Duration::from_secs_f64(until - from),
            *drain,
            i,
        );
    }
    collector.close();
    if let (Some(e), Some(p)) = (collector.hlog_error.take(), &m.hlog) {
        return Err(bad(format!("{}: {e}", p.display())));
    }
    // Flushed by `close`: complete.
    if let (Some(s), Some(p)) = (staged, &m.hlog) {
        s.commit()
            .map_err(|e| bad(format!("{}: {e}", p.display())))?;
    }
    let elapsed = Duration::from_secs_f64((end - t0).max(0.0));
    let window = Duration::from_secs_f64((window_end - t0).max(0.0)).min(elapsed);
    let health = merged_health(&reports);
    Ok(RunResult {
        config,
        target: first.target.clone(),
        embedded: false,
        started,
        elapsed,
        window,
        total,
        series: std::mem::take(&mut collector.series),
        steps: std::mem::take(&mut collector.steps),
        health,
        interrupted: reports.iter().any(|r| r.interrupted),
        agent: None,
        merged: Some(Merged {
            agents: rows,
            warnings,
        }),
    })
}

fn agent_name(r: &AgentReport) -> String {
    format!("agent {} ({})", r.identity.index, r.identity.host)
}

/// Missing and repeated agents. An agent's report given twice (the same file twice, or two reports with one
/// `--agent-index`) is refused: its load would be counted twice, and no run has two agents of one index. A
/// missing agent is refused too: the totals would quietly describe part of the load (an agent that crashed
/// leaves no report line in `kubectl logs`), and a merge that exits 0 would pass a CI gate. With `--force`
/// (runs made by hand without `--agents`, each agent 0 of 1, merged as one load; or a partial merge wanted on
/// purpose) either is merged with a warning.
fn check_membership(
    reports: &[AgentReport],
    force: bool,
    warnings: &mut Vec<String>,
) -> Result<(), MergeError> {
    let count = reports.iter().map(|r| r.identity.count).max().unwrap_or(1);
    let mut seen = vec![0usize; count];
    for r in reports {
        if let Some(s) = seen.get_mut(r.identity.index) {
            *s += 1;
        }
    }
    let repeated = seen.iter().enumerate().find(|(_, n)| **n > 1);
    if let (false, Some((i, n))) = (force, repeated) {
        let sources: Vec<&str> = reports
            .iter()
            .filter(|r| r.identity.index == i)
            .map(|r| r.source.as_str())
            .collect();
        return Err(bad(format!(
            "agent {i} appears {n} times ({}): its load would be counted {n} times; give each agent's report \
             once (--force merges them anyway)",
            sources.join(", ")
        )));
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| seen[*i] == 0)
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        let what = format!(
            "{} of {count} agents reported: missing agent(s) {}",
            count - missing.len(),
            missing.join(", ")
        );
        if !force {
            return Err(bad(format!(
                "{what}: the totals would cover only these and understate the load that ran (did an agent \
                 fail, or its report not reach this merge?); give every agent's report (--force merges the \
                 ones given)"
            )));
        }
        warnings.push(format!(
            "{what}; the totals cover only these (merged because of --force)"
        ));
    }
    for (i, n) in seen.iter().enumerate() {
        if *n > 1 {
            warnings.push(format!(
                "agent {i} appears {n} times: its load is counted {n} times (merged because of --force)"
            ));
        }
    }
    Ok(())
}

fn row_of(r: &AgentReport, offset: f64) -> AgentRow {
    AgentRow {
        index: r.identity.index,
        host: r.identity.host.clone(),
        bind: r.identity.bind.clone(),
        source: r.source.clone(),
        requests: r.total.requests(),
        errors: r.total.errors.total(),
        rate: r.rate(),
        p99_us: quantile_us(&r.total.corrected, 0.99),
        start_offset_s: offset,
        late_start_s: r.identity.late_start_s,
        clock_offset_ms: r.identity.clock_offset_ms,
        send_lag_p99_us: r.health.send_lag_p99_us,
        bottleneck: r.health.bottleneck,
    }
}

fn agent_warnings(r: &AgentReport, row: &AgentRow, warnings: &mut Vec<String>) {
    let who = agent_name(r);
    if r.health.bottleneck {
        warnings.push(format!(
            "{who} was the bottleneck (its own health: {}): the merged figures partly measure it",
            r.health
                .warnings
                .first()
                .map_or("see its report", String::as_str)
        ));
    }
    let lag = Duration::from_secs_f64(row.send_lag_p99_us.max(0.0) / 1e6);
    // A bottleneck's warning already quotes its lag.
    if lag > LAG_WARN && !r.health.bottleneck {
        warnings.push(format!(
            "{who} had send lag p99 {}: it did not keep its schedule",
            fmt_duration(lag)
        ));
    }
    if row.late_start_s > 0.0 {
        warnings.push(format!(
            "{who} started {} late for --start-at (its warm-up was that much shorter)",
            fmt_duration(Duration::from_secs_f64(row.late_start_s))
        ));
    }
    let skew = Duration::from_secs_f64(row.start_offset_s.max(0.0));
    if skew > LATE_WINDOW {
        warnings.push(format!(
            "{who}'s measured window opened {} after the first agent's: not the same window",
            fmt_duration(skew)
        ));
    }
}

/// The agents' health together: every worker's CPU, the worst send lag, all reconnects, any bottleneck, each
/// agent's warnings under its name.
fn merged_health(reports: &[AgentReport]) -> Health {
    let worst = |f: fn(&Health) -> f64| reports.iter().map(|r| f(&r.health)).fold(0.0, f64::max);
    Health {
        worker_cpu_seconds: reports
            .iter()
            .flat_map(|r| r.health.worker_cpu_seconds.iter().copied())
            .collect(),
        max_worker_cpu_share: worst(|h| h.max_worker_cpu_share),
        send_lag_p50_us: worst(|h| h.send_lag_p50_us),
        send_lag_p99_us: worst(|h| h.send_lag_p99_us),
        send_lag_max_us: worst(|h| h.send_lag_max_us),
        reconnects: reports.iter().map(|r| r.health.reconnects).sum(),
        closed_by_server: reports.iter().map(|r| r.health.closed_by_server).sum(),
        broken: reports.iter().map(|r| r.health.broken).sum(),
        stray: reports.iter().map(|r| r.health.stray).sum(),
        worker_cpu_wait_seconds: reports
            .iter()
            .flat_map(|r| r.health.worker_cpu_wait_seconds.iter().copied())
            .collect(),
        max_worker_cpu_wait_share: worst(|h| h.max_worker_cpu_wait_share),
        bottleneck: reports.iter().any(|r| r.health.bottleneck),
        warnings: reports
            .iter()
            .flat_map(|r| {
                let who = agent_name(r);
                r.health.warnings.iter().map(move |w| format!("{who}: {w}"))
            })
            .collect(),
    }
}

impl Merged {
    /// The per-agent table and the warnings, as the terminal report prints them.
    pub fn to_table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "\n  agents     {} merged (histograms added bucket by bucket; window = union of theirs)",
            self.agents.len()
        );
        let _ = writeln!(
            o,
            "  {:<6}{:<22}{:>12}{:>10}{:>8}{:>10}{:>11}  health",
            "agent", "host", "rate/s", "p99", "errors", "start", "send lag"
        );
        for a in &self.agents {
            let _ = writeln!(
                o,
                "  {:<6}{:<22}{:>12.1}{:>10}{:>8}{:>10}{:>11}  {}",
                a.index,
                truncate(&a.host, 21),
                a.rate,
                fmt_duration(Duration::from_secs_f64(a.p99_us.max(0.0) / 1e6)),
                a.errors,
                format!("+{:.3}s", a.start_offset_s),
                fmt_duration(Duration::from_secs_f64(a.send_lag_p99_us.max(0.0) / 1e6)),
                if a.bottleneck { "BOTTLENECK" } else { "ok" }
            );
        }
        for w in &self.warnings {
            let _ = writeln!(o, "  WARNING    {w}");
        }
        o
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

/// `sockpool-loadgen merge`: reads, merges, prints and writes as `run` does; the exit status is the merged
/// run's verdict on the agents' `--fail-on` thresholds.
pub fn main(m: &MergeArgs) -> Result<std::process::ExitCode, crate::app::AppError> {
    let reports = read_inputs(&m.inputs)?;
    let result = merge(reports, m)?;
    // Without the table (--quiet) the warnings would be only inside the JSON: a merge that counted an agent
    // twice, or missed one, says so on stderr.
    if m.quiet {
        for w in result.merged.iter().flat_map(|g| &g.warnings) {
            eprintln!("sockpool-loadgen merge: warning: {w}");
        }
    }
    crate::app::write_outputs(&result)?;
    let verdict = result.verdict();
    for line in verdict.crossed_lines() {
        eprintln!("sockpool-loadgen merge: threshold crossed: {line}");
    }
    Ok(verdict.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::{new_histogram, Recorder, Sample, SecondSummary};
    use rand::{Rng, SeedableRng};
    use std::time::SystemTime;

    /// `(value, count)` of every recorded bucket, and the percentiles reports print.
    fn buckets(h: &Histogram<u64>) -> Vec<(u64, u64)> {
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    fn percentiles(h: &Histogram<u64>) -> Vec<u64> {
        [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0]
            .iter()
            .map(|q| h.value_at_quantile(*q))
            .collect()
    }

    /// Agent `index` of `count`: its samples by second, as a run of the load generator would report them.
    fn agent(index: usize, count: usize, by_second: &[Vec<u64>], t0: SystemTime) -> RunResult {
        let args = RunArgs {
            target: Some("127.0.0.1:7".into()),
            rate: Some(1000.0),
            connections: Some(16),
            agents: Some(count),
            agent_index: Some(index),
            ..RunArgs::default()
        };
        let config = Config::from_args(&args).unwrap();
        let mut total = Interval::default();
        let mut series = Vec::new();
        for (s, samples) in by_second.iter().enumerate() {
            let mut r = Recorder::new();
            for &ns in samples {
                r.record_ok(&Sample {
                    corrected: Duration::from_nanos(ns),
                    raw: Duration::from_nanos(ns / 2 + 1),
                    ..Sample::default()
                });
            }
            let i = r.take_interval();
            total.merge(&i);
            let sec = Duration::from_secs(1);
            series.push(SecondSummary::of(&i, sec * s as u32, sec, false));
        }
        let identity = Identity::new(&config, Duration::ZERO, 0.0);
        RunResult {
            config,
            target: "127.0.0.1:7".into(),
            embedded: false,
            started: t0,
            elapsed: Duration::from_secs(by_second.len() as u64),
            window: Duration::from_secs(by_second.len() as u64),
            total,
            series,
            steps: Vec::new(),
            health: Health::default(),
            interrupted: false,
            agent: Some(identity),
            merged: None,
        }
    }

    /// The agent's `.hlog`, as the runner writes it.
    fn hlog(r: &RunResult, by_second: &[Vec<u64>]) -> String {
        let mut buf = Vec::new();
        let mut w = crate::hdr::HlogWriter::new(&mut buf, r.started, "test").unwrap();
        for (s, samples) in by_second.iter().enumerate() {
            let mut h = new_histogram();
            for &ns in samples {
                h.record(ns.max(1)).unwrap();
            }
            w.write(&h, Duration::from_secs(s as u64), Duration::from_secs(1))
                .unwrap();
        }
        w.comment(&hlog_trailer(r.agent.as_ref().unwrap(), r))
            .unwrap();
        drop(w);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn merged_histograms_equal_the_histogram_of_all_samples_bucket_by_bucket() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x005e_ed17);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for trial in 0..40 {
            let k = rng.gen_range(1..=6usize);
            let seconds = rng.gen_range(1..=3usize);
            let n = rng.gen_range(1..=4000usize);
            let mut all = new_histogram();
            let mut all_by_second = vec![new_histogram(); seconds];
            let mut split = vec![vec![Vec::new(); seconds]; k];
            for _ in 0..n {
                // Log-uniform from 1 µs to ~10 s, so that many bucket ranges are hit.
                let ns = 10f64.powf(rng.gen_range(3.0..10.0)) as u64;
                let (a, s) = (rng.gen_range(0..k), rng.gen_range(0..seconds));
                all.record(ns).unwrap();
                all_by_second[s].record(ns).unwrap();
                split[a][s].push(ns);
            }
            let agents: Vec<RunResult> = (0..k).map(|i| agent(i, k, &split[i], t0)).collect();
            let m = MergeArgs::default();
            let from_json = merge(
                agents
                    .iter()
                    .map(|r| AgentReport::from_json(&r.to_json(), "json").unwrap())
                    .collect(),
                &m,
            )
            .unwrap();
            let c = &from_json.total.corrected;
            assert_eq!(buckets(c), buckets(&all), "trial {trial}: k={k}, n={n}");
            assert_eq!(percentiles(c), percentiles(&all), "trial {trial}");
            assert_eq!(from_json.total.requests(), n as u64);
            assert_eq!(
                from_json.config.connections, 16,
                "the whole run's configuration"
            );
            for (s, want) in all_by_second.iter().enumerate() {
                let got = &from_json.series[s];
                assert_eq!(got.requests, want.len(), "trial {trial} second {s}");
                let h = from_base64(&got.histogram).unwrap();
                assert_eq!(buckets(&h), buckets(want), "trial {trial} second {s}");
            }

            let from_hlog = merge(
                agents
                    .iter()
                    .zip(&split)
                    .map(|(r, s)| AgentReport::from_hlog(&hlog(r, s), "hlog").unwrap())
                    .collect(),
                &m,
            )
            .unwrap();
            assert_eq!(
                buckets(&from_hlog.total.corrected),
                buckets(c),
                "trial {trial}"
            );
            assert_eq!(from_hlog.total.requests(), from_json.total.requests());
            assert_eq!(from_hlog.elapsed, from_json.elapsed);
            let p99 = |r: &RunResult| r.series.iter().map(|s| s.p99_us).collect::<Vec<_>>();
            assert_eq!(p99(&from_hlog), p99(&from_json), "trial {trial}");
        }
    }

    #[test]
    fn the_window_is_the_union_and_the_table_names_every_agent() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = agent(0, 2, &[vec![1_000; 10], vec![1_000; 10]], t0);
        let b = agent(1, 2, &[vec![2_000; 10]], t0 + Duration::from_secs(2));
        let r = merge(
            [a, b]
                .iter()
                .map(|r| AgentReport::from_json(&r.to_json(), "x").unwrap())
                .collect(),
            &MergeArgs::default(),
        )
        .unwrap();
        assert_eq!(r.elapsed, Duration::from_secs(3));
        assert_eq!(r.series.len(), 3, "agent 1's second lands at +2 s");
        let m = r.merged.as_ref().unwrap();
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("after the first agent's")),
            "{:?}",
            m.warnings
        );
        let table = r.to_table();
        assert!(table.contains("2 merged"), "{table}");
        assert_eq!(r.to_json()["merge"]["agents"].as_array().unwrap().len(), 2);
    }

    /// Issue 32 item 1: agents whose last request was still in flight at the end (a drain) merge into a report
    /// whose rate is their replies in their windows over the union of the windows, from JSON and `.hlog` alike.
    #[test]
    fn merged_rates_leave_the_agents_drains_out() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let by_second = [vec![1_000; 10], vec![1_000; 10], vec![1_000]];
        let mut agents: Vec<RunResult> = (0..2).map(|i| agent(i, 2, &by_second, t0)).collect();
        for a in &mut agents {
            // 2 s measured, then one reply 1 s later (its bytes included).
            a.window = Duration::from_secs(2);
            a.total.bytes_received = 21 * 10;
            a.total.drain = crate::recorder::Drain {
                requests: 1,
                replies: 1,
                bytes_sent: 0,
                bytes_received: 10,
            };
            assert_eq!(a.rate(), 10.0);
        }
        let from_json = merge(
            agents
                .iter()
                .map(|r| AgentReport::from_json(&r.to_json(), "json").unwrap())
                .collect(),
            &MergeArgs::default(),
        )
        .unwrap();
        let from_hlog = merge(
            agents
                .iter()
                .map(|r| AgentReport::from_hlog(&hlog(r, &by_second), "hlog").unwrap())
                .collect(),
            &MergeArgs::default(),
        )
        .unwrap();
        for r in [&from_json, &from_hlog] {
            assert_eq!(r.window, Duration::from_secs(2));
            assert_eq!(r.elapsed, Duration::from_secs(3));
            assert_eq!(r.total.drain.replies, 2);
            assert_eq!(r.rate(), 20.0, "40 replies in the 2 s window");
            assert_eq!(r.bytes_per_s().1, 200.0);
            let rows = &r.merged.as_ref().unwrap().agents;
            assert!(rows.iter().all(|a| a.rate == 10.0), "{rows:?}");
            let j = r.to_json();
            assert_eq!(j["summary"]["drain_replies"], 2);
            assert_eq!(j["summary"]["window_s"], 2.0);
        }
    }

    #[test]
    fn different_targets_or_protocols_are_refused_unless_forced() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = agent(0, 2, &[vec![1_000]], t0);
        let mut b = agent(1, 2, &[vec![1_000]], t0);
        b.target = "127.0.0.1:8".into();
        let reports = || {
            [&a, &b]
                .iter()
                .map(|r| AgentReport::from_json(&r.to_json(), "x").unwrap())
                .collect::<Vec<_>>()
        };
        let e = merge(reports(), &MergeArgs::default()).unwrap_err();
        assert!(e.0.contains("--force"), "{e}");
        let forced = MergeArgs {
            force: true,
            ..MergeArgs::default()
        };
        let r = merge(reports(), &forced).unwrap();
        assert!(r
            .merged
            .unwrap()
            .warnings
            .iter()
            .any(|w| w.contains("--force")));

        let mut c = agent(1, 2, &[vec![1_000]], t0);
        c.agent.as_mut().unwrap().args.rate = Some(10.0);
        let r = merge(
            [&a, &c]
                .iter()
                .map(|r| AgentReport::from_json(&r.to_json(), "x").unwrap())
                .collect(),
            &MergeArgs::default(),
        )
        .unwrap();
        let w = r.merged.unwrap().warnings;
        assert!(
            w.iter().any(|w| w.contains("different configuration")),
            "{w:?}"
        );
    }

    #[test]
    fn a_missing_agent_is_refused_unless_forced() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // Agents 0 and 2 of 4 reported; 1 and 3 (crashed, or their log lines lost) did not.
        let given = [
            agent(0, 4, &[vec![1_000; 10]], t0),
            agent(2, 4, &[vec![1_000; 10]], t0),
        ];
        let reports = || {
            given
                .iter()
                .map(|r| AgentReport::from_json(&r.to_json(), "x").unwrap())
                .collect::<Vec<_>>()
        };
        let e = merge(reports(), &MergeArgs::default()).unwrap_err();
        assert!(
            e.0.starts_with("2 of 4 agents reported: missing agent(s) 1, 3:")
                && e.0.contains("--force"),
            "{e}"
        );
        let forced = MergeArgs {
            force: true,
            ..MergeArgs::default()
        };
        let r = merge(reports(), &forced).unwrap();
        assert_eq!(r.total.requests(), 20, "the given agents' load, no more");
        let w = r.merged.unwrap().warnings;
        assert!(
            w.iter().any(|w| w
                == "2 of 4 agents reported: missing agent(s) 1, 3; the totals cover only these (merged because of \
                    --force)"),
            "{w:?}"
        );
    }

    #[test]
    fn a_report_line_cut_short_is_refused_not_skipped() {
        let whole = agent(0, 1, &[vec![1_000; 10]], UNIX_EPOCH)
            .to_json()
            .to_string();
        let cut = &whole[..whole.len() / 2];
        let text = format!("a log line\n{whole}\n{{\"other\": 1}}\n{cut}\n");
        let Err(e) = json_lines(&text, "agents.jsonl") else {
            panic!("a report cut short was read")
        };
        assert!(
            e.0.contains("agents.jsonl line 4: a report cut short or damaged"),
            "{e}"
        );
        // Whole, with lines that are not reports around it: read.
        let text = format!("a log line\n{whole}\n{{\"other\": 1}}\n{{not json}}\n");
        let read = json_lines(&text, "agents.jsonl").map(|r| r.len());
        assert_eq!(read.as_ref().ok(), Some(&1), "{:?}", read.as_ref().err());
    }

    #[test]
    fn the_merged_hlog_appears_whole_with_no_temporary_file_left() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let seconds = [vec![1_000; 10], vec![2_000; 10]];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.hlog");
        let m = MergeArgs {
            hlog: Some(path.clone()),
            ..MergeArgs::default()
        };
        merge(
            vec![
                AgentReport::from_json(&agent(0, 2, &seconds, t0).to_json(), "a.json").unwrap(),
                AgentReport::from_json(&agent(1, 2, &seconds, t0).to_json(), "b.json").unwrap(),
            ],
            &m,
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let intervals = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(','))
            .count();
        assert!(intervals >= 2, "{text}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the .hlog: {names:?}");
    }

    /// Agents of `-d 1.5s` each report their window's seconds 0–1 and 1–1.5 and their drain from 1.5 s. The
    /// merge rounded every start to a whole second and wrote them as 0, 1 and 2, the drain unmarked; it keeps
    /// the drain apart, marked, where it began.
    #[test]
    fn merged_intervals_keep_the_drain_apart_and_marked() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let seconds = [vec![1_000; 10], vec![2_000; 5], vec![3_000; 5]];
        let agent = |i| {
            let mut a = agent(i, 2, &seconds, t0);
            a.window = Duration::from_millis(1500);
            a.elapsed = Duration::from_millis(1600);
            a.series[1].length_s = 0.5;
            let d = &mut a.series[2];
            (d.start_s, d.length_s, d.drain) = (1.5, 0.1, true);
            a
        };
        let from_hlog = |a: &RunResult| {
            let mut buf = Vec::new();
            let mut w = crate::hdr::HlogWriter::new(&mut buf, a.started, "test").unwrap();
            for s in &a.series {
                let h = from_base64(&s.histogram).unwrap();
                let secs = Duration::from_secs_f64;
                w.write(&h, secs(s.start_s), secs(s.length_s)).unwrap();
            }
            w.comment(&hlog_trailer(a.agent.as_ref().unwrap(), a))
                .unwrap();
            drop(w);
            AgentReport::from_hlog(&String::from_utf8(buf).unwrap(), "a.hlog").unwrap()
        };
        let (a, b) = (agent(0), agent(1));
        for inputs in [
            vec![
                AgentReport::from_json(&a.to_json(), "a.json").unwrap(),
                AgentReport::from_json(&b.to_json(), "b.json").unwrap(),
            ],
            vec![from_hlog(&a), from_hlog(&b)],
        ] {
            let r = merge(inputs, &MergeArgs::default()).unwrap();
            let got: Vec<_> = r
                .series
                .iter()
                .map(|s| (s.start_s, s.length_s, s.drain, s.requests))
                .collect();
            assert_eq!(
                got,
                vec![
                    (0.0, 1.0, false, 20),
                    (1.0, 0.5, false, 10),
                    (1.5, 0.1, true, 10)
                ]
            );
        }
    }

    #[test]
    fn a_hlog_that_lost_intervals_is_refused_and_mixed_inputs_say_what_they_cover() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let seconds = [vec![1_000; 10], vec![2_000; 10], vec![3_000; 10]];
        let a = agent(0, 2, &seconds, t0);
        let text = hlog(&a, &seconds);
        assert!(AgentReport::from_hlog(&text, "a.hlog").is_ok());
        // One interval line deleted, the agent line kept: 2,000 µs's second is gone.
        let interval = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(','))
            .nth(2)
            .unwrap()
            .to_string();
        let cut = text.replace(&format!("{interval}\n"), "");
        assert_ne!(cut, text);
        let e = AgentReport::from_hlog(&cut, "cut.hlog").unwrap_err();
        assert!(
            e.0.contains("hold 20 latencies but the agent line counts 30"),
            "{e}"
        );

        // One agent from its JSON, one from its .hlog: the raw latency covers the JSON one only, and says so.
        let b = agent(1, 2, &seconds, t0);
        let r = merge(
            vec![
                AgentReport::from_json(&a.to_json(), "a.json").unwrap(),
                AgentReport::from_hlog(&hlog(&b, &seconds), "b.hlog").unwrap(),
            ],
            &MergeArgs::default(),
        )
        .unwrap();
        let w = r.merged.unwrap().warnings;
        assert!(
            w.iter()
                .any(|w| w.contains("1 of 2 agents were read from a .hlog")),
            "{w:?}"
        );
    }
}
