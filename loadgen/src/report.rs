//! The results of a run and their forms: the terminal table, the JSON document (schema in
//! `docs/LOADGEN_JSON.md`), and the `.hgrm` text (see [`crate::hdr`]).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Config, Load};
use crate::health::Health;
use crate::recorder::{quantile_us, replies, us, window_replies, Interval, SecondSummary};

/// The JSON document's schema name and version.
pub const SCHEMA: &str = "sockpool-loadgen/1";

/// Everything a run measured.
#[derive(Debug)]
pub struct RunResult {
    /// The configuration the run used.
    pub config: Config,
    /// The endpoint actually driven (the embedded server's address when there was no `--target`).
    pub target: String,
    /// True when the target was the embedded reference server.
    pub embedded: bool,
    /// Wall-clock time when measuring began (after warm-up).
    pub started: SystemTime,
    /// Length of the measured part: from its start until the last request finished.
    pub elapsed: Duration,
    /// The measurement window: from its start to the end of `--duration` (or Ctrl-C; with `--requests`,
    /// `elapsed`). Rates are measured over it, counting what finished in it; the rest of `elapsed` is the drain
    /// (`total.drain`).
    pub window: Duration,
    /// The whole measured run, merged over workers.
    pub total: Interval,
    /// Per-second series.
    pub series: Vec<SecondSummary>,
    /// Ramp steps (empty unless `--ramp`).
    pub steps: Vec<Interval>,
    /// The load generator's own health.
    pub health: Health,
    /// True when Ctrl-C or SIGTERM ended the run early: the figures cover the time measured until then.
    pub interrupted: bool,
    /// Who ran it (`--agents`, `--start-at`, `--bind`, host, clock offset); `None` for a merged report.
    pub agent: Option<crate::agents::Identity>,
    /// A merged report's agents and warnings (`sockpool-loadgen merge`); `None` for one agent's run.
    pub merged: Option<crate::merge::Merged>,
}

/// Latency percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99.99th percentile.
    pub p99_99: f64,
    /// Largest value.
    pub max: f64,
}

impl LatencySummary {
    /// Summarises a nanosecond histogram.
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        let e = h.is_empty();
        LatencySummary {
            count: h.len(),
            min: if e { 0.0 } else { us(h.min()) },
            mean: if e { 0.0 } else { h.mean() / 1e3 },
            stdev: if e { 0.0 } else { h.stdev() / 1e3 },
            p50: quantile_us(h, 0.50),
            p90: quantile_us(h, 0.90),
            p99: quantile_us(h, 0.99),
            p99_9: quantile_us(h, 0.999),
            p99_99: quantile_us(h, 0.9999),
            max: if e { 0.0 } else { us(h.max()) },
        }
    }
}

/// Adaptive human units: `850ns`, `123µs`, `4.56ms`, `1.20s`.
pub fn fmt_duration(d: Duration) -> String {
    fmt_us(d.as_secs_f64() * 1e6)
}

fn fmt_us(v: f64) -> String {
    if v < 1.0 {
        format!("{:.0}ns", v * 1e3)
    } else if v < 1e3 {
        format!("{v:.0}µs")
    } else if v < 1e6 {
        format!("{:.2}ms", v / 1e3)
    } else {
        format!("{:.2}s", v / 1e6)
    }
}

fn fmt_bytes_per_s(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB/s", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB/s", b / 1024.0)
    } else {
        format!("{b:.0} B/s")
    }
}

impl RunResult {
    /// Replies (successes and server error replies) per second over the measurement window, counting those
    /// that came in it (see [`crate::recorder::Drain`]).
    pub fn rate(&self) -> f64 {
        window_replies(&self.total) as f64 / self.window_secs()
    }

    /// The measurement window in seconds (never 0, to divide by).
    fn window_secs(&self) -> f64 {
        self.window.as_secs_f64().max(1e-9)
    }

    /// Payload bytes sent and received per second over the measurement window, counting requests that
    /// finished in it.
    pub fn bytes_per_s(&self) -> (f64, f64) {
        let (t, secs) = (&self.total, self.window_secs());
        (
            t.bytes_sent.saturating_sub(t.drain.bytes_sent) as f64 / secs,
            t.bytes_received.saturating_sub(t.drain.bytes_received) as f64 / secs,
        )
    }

    /// The drain: seconds from the window's end until the last request finished.
    pub fn drain_s(&self) -> f64 {
        self.elapsed.saturating_sub(self.window).as_secs_f64()
    }

    /// The intended rate of an open-loop run (a ramp's mean rate), `None` for a closed loop.
    pub fn target_rate(&self) -> Option<f64> {
        match self.config.load {
            Load::Closed => None,
            Load::Open { rate } => Some(rate),
            Load::Ramp { from, to, .. } => Some((from + to) / 2.0),
        }
    }

    /// Achieved rate ÷ target rate (open loop only).
    pub fn achieved_ratio(&self) -> Option<f64> {
        self.target_rate().map(|t| self.rate() / t)
    }

    /// Achieved rates ÷ target rate for the health check (open loop only): of replies, and of replies and the
    /// requests that failed fast (without a reply or a timeout).
    pub fn achieved(&self) -> Option<crate::health::Achieved> {
        let secs = self.window_secs();
        let t = &self.total;
        // Every request that was sent and ended in the window but did not time out: replies, and failures
        // without one. The unsent never went out: they are no fast failure.
        let unsent = t.errors.get(crate::recorder::ErrorKind::Unsent);
        let not_timed_out = (t.ok + t.errors.total() - t.errors.timeouts() - unsent)
            .saturating_sub(t.drain.replies);
        self.target_rate().map(|target| crate::health::Achieved {
            replies: self.rate() / target,
            replies_and_fast_failures: not_timed_out as f64 / secs / target,
        })
    }

    fn step_rows(&self) -> Vec<Value> {
        let Load::Ramp { step, .. } = self.config.load else {
            return Vec::new();
        };
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let target = self.config.load.rate_at_step(i as u32).unwrap_or(0.0);
                // The last step's drain (replies after the ramp ended) is in its counts, not its rate.
                let achieved = window_replies(s) as f64 / step.as_secs_f64();
                json!({
                    "step": i,
                    "start_s": step.as_secs_f64() * i as f64,
                    "target_rate": target,
                    "rate": achieved,
                    "requests": s.requests(),
                    "errors": s.errors.total(),
                    "corrected": LatencySummary::of(&s.corrected),
                    "raw": LatencySummary::of(&s.raw),
                })
            })
            .collect()
    }

    /// The verdict of the run's thresholds (`--fail-on`, default `errors>0` and `stray>0`) on what was measured.
    pub fn verdict(&self) -> crate::verdict::Verdict {
        let v = crate::verdict::Verdict::judge(
            &self.config.fail_on,
            &self.total,
            self.rate(),
            self.health.stray,
        );
        if self.interrupted && self.total.requests() == 0 {
            return v.unmeasured();
        }
        v
    }

    /// The JSON document (schema: `docs/LOADGEN_JSON.md`).
    pub fn to_json(&self) -> Value {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let t = &self.total;
        let (sent_per_s, received_per_s) = self.bytes_per_s();
        let lat = |h: &Histogram<u64>, full: bool| {
            let mut v = serde_json::to_value(LatencySummary::of(h)).unwrap_or(Value::Null);
            if full {
                v["percentiles"] = spectrum(h);
            }
            // Lossless, so that `merge` adds agents' histograms bucket by bucket.
            v["histogram"] = Value::String(crate::hdr::to_base64(h));
            v
        };
        let started = self
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        json!({
            "schema": SCHEMA,
            "target": self.target,
            "embedded_server": self.embedded,
            "started_unix_s": started,
            "interrupted": self.interrupted,
            "config": &self.config,
            "summary": {
                "requests": t.requests(),
                "ok": t.ok,
                "errors": t.errors.total(),
                "replies": replies(t),
                "duration_s": secs,
                "window_s": self.window.as_secs_f64(),
                "drain_s": self.drain_s(),
                "drain_requests": t.drain.requests,
                "drain_replies": t.drain.replies,
                "drain_bytes_sent": t.drain.bytes_sent,
                "drain_bytes_received": t.drain.bytes_received,
                "rate": self.rate(),
                "target_rate": self.target_rate(),
                "achieved_ratio": self.achieved_ratio(),
                "bytes_sent": t.bytes_sent,
                "bytes_received": t.bytes_received,
                "bytes_sent_per_s": sent_per_s,
                "bytes_received_per_s": received_per_s,
            },
            "latency": {
                "unit": "us",
                "histogram_unit": "ns",
                "corrected": lat(&t.corrected, true),
                "raw": lat(&t.raw, true),
                "connect": lat(&t.connect, false),
                "pool_wait": lat(&t.pool_wait, false),
            },
            "errors": &t.errors,
            "error_codes": t.details.codes_json(),
            "error_examples": t.details.examples_json(),
            "verdict": self.verdict(),
            "intervals": &self.series,
            "steps": self.step_rows(),
            "health": &self.health,
            "agent": &self.agent,
            "merge": &self.merged,
        })
    }

    /// The terminal report.
    pub fn to_table(&self) -> String {
        let c = &self.config;
        let t = &self.total;
        let mut o = String::new();
        let load = match c.load {
            Load::Closed => "closed loop".to_string(),
            Load::Open { rate } => format!("open loop at {rate} req/s"),
            Load::Ramp {
                from,
                to,
                steps,
                step,
            } => {
                format!(
                    "ramp {from}..{to} req/s in {steps} steps of {}",
                    humantime::format_duration(step)
                )
            }
        };
        let _ = writeln!(
            o,
            "sockpool-loadgen: {} {} → {}{}\n  {} connection(s) × pipeline {}, {} thread(s), {load}",
            c.protocol.name(),
            request_label(c),
            self.target,
            if self.embedded { " (embedded reference server)" } else { "" },
            c.connections,
            c.pipeline,
            c.threads,
        );
        let _ = writeln!(
            o,
            "\n  requests   {} replies, {} errors in {:.2}s{}",
            replies(t),
            t.errors.total(),
            self.window.as_secs_f64(),
            if c.warmup.is_zero() {
                String::new()
            } else {
                format!(" (after {} warm-up)", humantime::format_duration(c.warmup))
            }
        );
        if t.drain.requests > 0 {
            // Requests in flight when the window closed were awaited (up to --timeout): in the counts and
            // latencies above, not in the rates below, which cover the window only (as wrk's do).
            let _ = writeln!(
                o,
                "  drain      {} of them ({} repl{}) finished in the {:.2}s after the end: counted, not in the \
                 rates",
                t.drain.requests,
                t.drain.replies,
                if t.drain.replies == 1 { "y" } else { "ies" },
                self.drain_s()
            );
        }
        let _ = write!(o, "  rate       {:.1} req/s", self.rate());
        if let (Some(target), Some(r)) = (self.target_rate(), self.achieved_ratio()) {
            // A rate under 10 a second with three decimals: `--rate 0.001` is not "target 0.0".
            let digits = if target < 10.0 { 3 } else { 1 };
            let _ = write!(
                o,
                "  (target {target:.digits$}, achieved {:.1}%)",
                r * 100.0
            );
        }
        let (sent_per_s, received_per_s) = self.bytes_per_s();
        let _ = writeln!(
            o,
            // Payload bytes (docs/LOADGEN_JSON.md: `bytes_sent`): an HTTP GET has none, and "bytes 0 B/s sent"
            // read as if nothing had been sent.
            "\n  payload    {} sent, {} received (request and reply payload: no headers or framing)",
            fmt_bytes_per_s(sent_per_s),
            fmt_bytes_per_s(received_per_s)
        );
        let _ = writeln!(
            o,
            "\n  {:<11}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "latency", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        );
        let rows = [
            ("corrected", &t.corrected),
            ("raw", &t.raw),
            ("connect", &t.connect),
            ("pool wait", &t.pool_wait),
        ];
        for (name, h) in rows {
            if h.is_empty() {
                let _ = writeln!(o, "  {name:<11}{:>10}", "-");
                continue;
            }
            let s = LatencySummary::of(h);
            let _ = writeln!(
                o,
                "  {name:<11}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
                fmt_us(s.p50),
                fmt_us(s.p90),
                fmt_us(s.p99),
                fmt_us(s.p99_9),
                fmt_us(s.p99_99),
                fmt_us(s.max)
            );
        }
        if matches!(c.load, Load::Closed) {
            let _ = writeln!(
                o,
                "  (closed loop: corrected = raw; use --rate to measure from intended send times)"
            );
        }
        let errs: Vec<String> = t
            .errors
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            o,
            "\n  errors     {}",
            if errs.is_empty() {
                "none".to_string()
            } else {
                errs.join(", ")
            }
        );
        let mut by_kind: Vec<(&str, Vec<String>)> = Vec::new();
        for (k, code, n) in t.details.codes() {
            let line = format!("{code} {n}");
            match by_kind.iter_mut().find(|(name, _)| *name == k.name()) {
                Some((_, v)) => v.push(line),
                None => by_kind.push((k.name(), vec![line])),
            }
        }
        for (kind, codes) in by_kind {
            let _ = writeln!(o, "             {kind} by code: {}", codes.join(", "));
        }
        for (k, text) in t.details.examples() {
            let _ = writeln!(o, "             e.g. {}: {text}", k.name());
        }
        if !self.steps.is_empty() {
            let _ = writeln!(
                o,
                "\n  {:<6}{:>12}{:>12}{:>10}{:>10}{:>10}{:>8}",
                "step", "target/s", "achieved/s", "p50", "p99", "max", "errors"
            );
            for row in self.step_rows() {
                let _ = writeln!(
                    o,
                    "  {:<6}{:>12.1}{:>12.1}{:>10}{:>10}{:>10}{:>8}",
                    // Numbers, not JSON values: a `Value` ignores the column width.
                    row["step"].as_u64().unwrap_or(0),
                    row["target_rate"].as_f64().unwrap_or(0.0),
                    row["rate"].as_f64().unwrap_or(0.0),
                    fmt_us(row["corrected"]["p50"].as_f64().unwrap_or(0.0)),
                    fmt_us(row["corrected"]["p99"].as_f64().unwrap_or(0.0)),
                    fmt_us(row["corrected"]["max"].as_f64().unwrap_or(0.0)),
                    row["errors"].as_u64().unwrap_or(0)
                );
            }
        }
        let h = &self.health;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let cpu = h.worker_cpu_seconds.iter().sum::<f64>() / secs * 100.0;
        let lag = if matches!(c.load, Load::Closed) {
            "no schedule (closed loop)".to_string()
        } else {
            format!(
                "send lag p99 {} max {}",
                fmt_us(h.send_lag_p99_us),
                fmt_us(h.send_lag_max_us)
            )
        };
        let wait = if h.worker_cpu_wait_seconds.is_empty() {
            String::new()
        } else {
            format!(
                ", waited for a CPU {:.0}%",
                h.max_worker_cpu_wait_share * 100.0
            )
        };
        let _ = writeln!(
            o,
            "\n  health     load generator CPU {cpu:.0}% of a core (busiest thread {:.0}%{wait}), {lag}",
            h.max_worker_cpu_share * 100.0,
        );
        if h.closed_by_server > 0 {
            let _ = writeln!(
                o,
                "             {} connection(s) closed by the server as it announced (HTTP `Connection: close`) or \
                 while idle, and reopened",
                h.closed_by_server
            );
        }
        for w in &h.warnings {
            let _ = writeln!(o, "  WARNING    {w}");
        }
        if !h.bottleneck {
            let _ = writeln!(
                o,
                "             the load generator kept up: these figures measure the server"
            );
        }
        if self.interrupted {
            let _ = writeln!(
                o,
                "\n  INTERRUPTED the run was stopped early; these figures cover the {secs:.2}s measured"
            );
        }
        if let Some(m) = &self.merged {
            o.push_str(&m.to_table());
        }
        let v = self.verdict();
        let exprs: Vec<&str> = v.thresholds.iter().map(|j| j.expr.as_str()).collect();
        if v.unmeasured {
            let _ = writeln!(
                o,
                "\n  verdict    none: interrupted before the measured window opened, nothing was measured"
            );
        } else if v.no_answer {
            let _ = writeln!(o, "\n  verdict    FAILED: no request got a reply");
        } else if v.passed {
            let _ = writeln!(
                o,
                "\n  verdict    passed: no --fail-on threshold crossed ({})",
                exprs.join(", ")
            );
        } else {
            let _ = writeln!(o, "\n  verdict    FAILED: {}", v.crossed_lines().join("; "));
        }
        o
    }
}

fn request_label(c: &Config) -> String {
    use crate::config::RequestSpec;
    let size = if c.payload.min == c.payload.max {
        format!("{}B", c.payload.min)
    } else {
        format!("{}..{}B", c.payload.min, c.payload.max)
    };
    match &c.request {
        RequestSpec::Framed { op, .. } => format!("{} {size}", format!("{op:?}").to_lowercase()),
        RequestSpec::Http { method, path, .. } => format!("{method} {path}"),
        RequestSpec::Resp { command, .. } => format!("'{command}'"),
        RequestSpec::Line {
            command: Some(t), ..
        } => format!("'{t}'"),
        _ => size,
    }
}

/// The full percentile spectrum (five ticks per half distance), values in microseconds.
pub fn spectrum(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Array(Vec::new());
    }
    let mut total = 0u64;
    let mut rows = Vec::new();
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        rows.push(json!({
            "percentile": v.quantile_iterated_to() * 100.0,
            "value_us": us(v.value_iterated_to()),
            "count": total,
        }));
    }
    Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::RunArgs;
    use crate::recorder::{ErrorKind, Phase, Recorder, Sample};

    pub(crate) fn result(rate: Option<f64>) -> RunResult {
        let a = RunArgs {
            target: Some("127.0.0.1:7".into()),
            rate,
            ..RunArgs::default()
        };
        let config = Config::from_args(&a).unwrap();
        let mut r = Recorder::new();
        for i in 1..=1000u64 {
            r.record_ok(&Sample {
                corrected: Duration::from_micros(i * 10),
                raw: Duration::from_micros(i),
                send_lag: Some(Duration::from_micros(3)),
                bytes_sent: 64,
                bytes_received: 64,
                ..Sample::default()
            });
        }
        r.record_error(
            ErrorKind::Timeout(Phase::Read),
            Duration::from_secs(5),
            None,
        );
        let total = r.take_interval();
        RunResult {
            config,
            target: "127.0.0.1:7".into(),
            embedded: false,
            started: SystemTime::now(),
            elapsed: Duration::from_secs(2),
            window: Duration::from_secs(2),
            series: vec![SecondSummary::of(
                &total,
                Duration::ZERO,
                Duration::from_secs(2),
                false,
            )],
            total,
            steps: Vec::new(),
            health: Health::default(),
            interrupted: false,
            agent: None,
            merged: None,
        }
    }

    #[test]
    fn json_has_the_documented_keys_in_microseconds() {
        let v = result(Some(1000.0)).to_json();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["summary"]["requests"], 1001);
        assert_eq!(v["summary"]["errors"], 1);
        assert_eq!(v["summary"]["rate"], 500.0);
        assert_eq!(v["summary"]["achieved_ratio"], 0.5);
        for k in ["p50", "p90", "p99", "p99_9", "p99_99", "max"] {
            assert!(v["latency"]["corrected"][k].is_f64(), "{k}");
            assert!(v["latency"]["raw"][k].is_f64(), "{k}");
        }
        let p50 = v["latency"]["raw"]["p50"].as_f64().unwrap();
        assert!((p50 - 500.0).abs() <= 1.0, "raw p50 {p50} µs");
        assert!(
            v["latency"]["corrected"]["max"].as_f64().unwrap() >= 4_990_000.0,
            "the timeout is in corrected"
        );
        let h = crate::hdr::from_base64(v["latency"]["corrected"]["histogram"].as_str().unwrap())
            .unwrap();
        assert_eq!(h.len(), 1001);
        let spectrum = v["latency"]["corrected"]["percentiles"].as_array().unwrap();
        assert_eq!(spectrum.last().unwrap()["count"], 1001);
        assert_eq!(v["errors"]["timeout_read"], 1);
        assert_eq!(v["intervals"][0]["requests"], 1001);
        assert_eq!(v["config"]["load"]["mode"], "open");
    }

    #[test]
    fn table_shows_rates_percentiles_errors_and_health() {
        let t = result(Some(1000.0)).to_table();
        for needle in [
            "500.0 req/s",
            "achieved 50.0%",
            "corrected",
            "raw",
            "p99.99",
            "timeout_read 1",
            "health",
        ] {
            assert!(t.contains(needle), "{needle} missing in\n{t}");
        }
        assert!(!t.contains("closed by the server"), "{t}");
        let mut r = result(None);
        r.health.closed_by_server = 12;
        let t = r.to_table();
        assert!(
            t.contains("12 connection(s) closed by the server as it announced"),
            "{t}"
        );
        assert!(
            !t.contains("WARNING"),
            "an announced close is no warning:\n{t}"
        );
    }

    /// The byte rates are payload (`bytes_sent` in the JSON): an HTTP GET's `0 B/s sent` read as if nothing had
    /// been sent when the line said `bytes`.
    #[test]
    fn the_byte_rates_say_they_are_payload() {
        let t = result(Some(1000.0)).to_table();
        let line = t
            .lines()
            .find(|l| l.contains("B/s sent"))
            .unwrap_or_else(|| panic!("no byte-rate line in\n{t}"));
        assert!(line.starts_with("  payload    "), "{line}");
        assert!(
            line.ends_with("(request and reply payload: no headers or framing)"),
            "{line}"
        );
        assert!(
            !t.lines().any(|l| l.trim_start().starts_with("bytes")),
            "{t}"
        );
    }

    #[test]
    fn units_are_human() {
        assert_eq!(fmt_duration(Duration::from_nanos(500)), "500ns");
        assert_eq!(fmt_duration(Duration::from_micros(123)), "123µs");
        assert_eq!(fmt_duration(Duration::from_micros(4560)), "4.56ms");
        assert_eq!(fmt_duration(Duration::from_millis(1200)), "1.20s");
    }
}
