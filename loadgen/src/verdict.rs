//! Thresholds (`--fail-on`) and the verdict they give: passed, or which threshold was crossed, and the exit
//! status that says so.
//!
//! A threshold is a failure condition, `METRIC OP VALUE`:
//!
//! | metric | value | measured |
//! |---|---|---|
//! | `errors` | a count (`errors>10`) or a share of requests (`errors>1%`) | failed requests, every kind |
//! | `p50` `p90` `p99` `p99.9` `p99.99` `max` `mean` | a duration (`5ms`, `250us`, `1s`) | corrected latency |
//! | `rate` | requests per second (`rate<50000`) | replies per second |
//! | `stray` | a count of connections (`stray>10`) | connections closed because the server sent bytes with no request in flight |
//!
//! `OP` is `>`, `>=`, `<` or `<=`. Without an `errors` threshold of the user's own, `errors>0` applies:
//! any failed request fails the run. Without a `stray` threshold, `stray>0` applies: a server that sends
//! bytes nobody asked for breaks the protocol, and on RESP or the line protocol (no tags) its replies may
//! have answered other requests than they seemed to, so the run's counts cannot be trusted.

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::recorder::{quantile_us, replies, Interval};

/// Exit statuses of `run`, documented in `run --help` and the README.
pub mod exit {
    /// The run passed every threshold.
    pub const PASSED: u8 = 0;
    /// A threshold was crossed (the report and stderr name it).
    pub const THRESHOLD: u8 = 1;
    /// Bad usage: a flag is wrong, or an input or output file cannot be used.
    pub const USAGE: u8 = 2;
    /// The target never answered: no connection could be opened, or no request got any reply.
    pub const NO_ANSWER: u8 = 3;
    /// Interrupted (Ctrl-C, SIGTERM) before anything was measured, or a second time (128 + SIGINT).
    pub const INTERRUPTED: u8 = crate::signals::EXIT_INTERRUPTED;
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Failed requests: a count, or (`percent`) their share of all requests in percent.
    Errors {
        /// The limit is a percentage of requests.
        percent: bool,
    },
    /// A corrected-latency quantile (0.5 … 1.0 = max).
    Quantile(f64),
    /// The mean corrected latency.
    Mean,
    /// Replies per second.
    Rate,
    /// Connections closed because the server sent bytes with no request in flight.
    Stray,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
        }
    }
}

/// One `--fail-on` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written (`p99>5ms`).
    pub expr: String,
    /// What is measured.
    pub metric: Metric,
    /// How it is compared.
    pub op: Op,
    /// The limit, in the metric's unit: µs for latencies, requests/s, a count or a percentage.
    pub limit: f64,
    /// True for the default `errors>0`.
    pub default: bool,
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.expr)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl Threshold {
    /// Parses `METRIC OP VALUE` (spaces allowed).
    pub fn parse(s: &str) -> Result<Threshold, String> {
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let at = t.find(['<', '>']).ok_or_else(|| {
            format!("{s:?}: expected METRIC OP VALUE, e.g. errors>1%, p99>5ms, rate<50000")
        })?;
        let (name, rest) = t.split_at(at);
        let (op, value) = if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Op::Gt, v)
        } else {
            (Op::Lt, &rest[1..])
        };
        if value.is_empty() {
            return Err(format!("{s:?}: the value is missing"));
        }
        let number = |v: &str| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("{s:?}: {v:?} is not a number ≥ 0"))
        };
        let latency = |v: &str| -> Result<f64, String> {
            humantime::parse_duration(v)
                .map(|d: Duration| d.as_secs_f64() * 1e6)
                .map_err(|e| format!("{s:?}: {v:?} is not a duration ({e}; e.g. 5ms, 250us)"))
        };
        let (metric, limit) = match name.to_ascii_lowercase().as_str() {
            "errors" => match value.strip_suffix('%') {
                Some(p) => {
                    let p = number(p)?;
                    if p > 100.0 {
                        return Err(format!("{s:?}: a share is at most 100%"));
                    }
                    (Metric::Errors { percent: true }, p)
                }
                None => (Metric::Errors { percent: false }, number(value)?),
            },
            "rate" => (Metric::Rate, number(value)?),
            "stray" => (Metric::Stray, number(value)?),
            "mean" => (Metric::Mean, latency(value)?),
            "max" => (Metric::Quantile(1.0), latency(value)?),
            q => {
                let Some(p) = q.strip_prefix('p').and_then(|p| p.parse::<f64>().ok()) else {
                    return Err(format!(
                        "{s:?}: unknown metric {name:?} (errors, p50, p90, p99, p99.9, p99.99, max, mean, rate, \
                         stray)"
                    ));
                };
                if !(p > 0.0 && p <= 100.0) {
                    return Err(format!("{s:?}: a percentile is in (0, 100]"));
                }
                (Metric::Quantile(p / 100.0), latency(value)?)
            }
        };
        Ok(Threshold {
            expr: t,
            metric,
            op,
            limit,
            default: false,
        })
    }

    /// The default threshold: any failed request fails the run.
    pub fn default_errors() -> Threshold {
        Threshold {
            expr: "errors>0".into(),
            metric: Metric::Errors { percent: false },
            op: Op::Gt,
            limit: 0.0,
            default: true,
        }
    }

    /// The default stray threshold: any connection that got bytes with no request in flight fails the run.
    pub fn default_stray() -> Threshold {
        Threshold {
            expr: "stray>0".into(),
            metric: Metric::Stray,
            op: Op::Gt,
            limit: 0.0,
            default: true,
        }
    }

    /// The thresholds of a run: the user's, plus `errors>0` and `stray>0` unless they set an `errors` or a
    /// `stray` threshold themselves.
    pub fn with_default(mut user: Vec<Threshold>) -> Vec<Threshold> {
        if !user.iter().any(|t| t.metric == Metric::Stray) {
            user.insert(0, Threshold::default_stray());
        }
        if !user
            .iter()
            .any(|t| matches!(t.metric, Metric::Errors { .. }))
        {
            user.insert(0, Threshold::default_errors());
        }
        user
    }

    /// The measured value in the limit's unit; `rate` is the run's replies per second over its measurement
    /// window ([`crate::report::RunResult::rate`]), `stray` its connections closed for stray bytes
    /// ([`crate::health::Health::stray`]).
    pub fn measure(&self, total: &Interval, rate: f64, stray: u64) -> f64 {
        let h = &total.corrected;
        match self.metric {
            Metric::Errors { percent: false } => total.errors.total() as f64,
            Metric::Errors { percent: true } => {
                let n = total.requests();
                if n == 0 {
                    0.0
                } else {
                    total.errors.total() as f64 * 100.0 / n as f64
                }
            }
            Metric::Quantile(q) if q >= 1.0 => {
                if h.is_empty() {
                    0.0
                } else {
                    crate::recorder::us(h.max())
                }
            }
            Metric::Quantile(q) => quantile_us(h, q),
            Metric::Mean => {
                if h.is_empty() {
                    0.0
                } else {
                    h.mean() / 1e3
                }
            }
            Metric::Rate => rate,
            Metric::Stray => stray as f64,
        }
    }

    /// The unit the JSON gives `value` and `limit` in.
    pub fn unit(&self) -> &'static str {
        match self.metric {
            Metric::Errors { percent: true } => "%",
            Metric::Errors { percent: false } => "requests",
            Metric::Stray => "connections",
            Metric::Rate => "req/s",
            Metric::Quantile(_) | Metric::Mean => "us",
        }
    }
}

/// One threshold's outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Judged {
    /// The condition as written.
    pub expr: String,
    /// The measured value ([`Threshold::unit`]).
    pub value: f64,
    /// The limit, same unit.
    pub limit: f64,
    /// `us`, `req/s`, `requests` or `%`.
    pub unit: &'static str,
    /// True when the condition held: the run fails.
    pub crossed: bool,
    /// True for the default `errors>0`.
    pub default: bool,
}

/// The run's verdict.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    /// True when no threshold was crossed and the target answered.
    pub passed: bool,
    /// The process exit status ([`exit`]).
    pub exit_status: u8,
    /// True when no request got any reply (exit status 3).
    pub no_answer: bool,
    /// True when Ctrl-C (or SIGTERM) came before the measured window opened (during the wait for
    /// `--start-at` or the warm-up): nothing was measured, so nothing is judged (exit status 130).
    pub unmeasured: bool,
    /// Every threshold and its outcome.
    pub thresholds: Vec<Judged>,
}

impl Verdict {
    /// Judges `total` (whose replies per second over the measurement window were `rate`, and `stray` the
    /// connections closed for bytes with no request in flight) against `thresholds`.
    pub fn judge(thresholds: &[Threshold], total: &Interval, rate: f64, stray: u64) -> Verdict {
        let judged: Vec<Judged> = thresholds
            .iter()
            .map(|t| {
                let value = t.measure(total, rate, stray);
                Judged {
                    expr: t.expr.clone(),
                    value,
                    limit: t.limit,
                    unit: t.unit(),
                    crossed: t.op.holds(value, t.limit),
                    default: t.default,
                }
            })
            .collect();
        let no_answer = replies(total) == 0;
        let crossed = judged.iter().any(|j| j.crossed);
        let exit_status = if no_answer {
            exit::NO_ANSWER
        } else if crossed {
            exit::THRESHOLD
        } else {
            exit::PASSED
        };
        Verdict {
            passed: exit_status == exit::PASSED,
            exit_status,
            no_answer,
            unmeasured: false,
            thresholds: judged,
        }
    }

    /// The verdict of a run interrupted before its measured window opened: see [`Verdict::unmeasured`].
    pub fn unmeasured(mut self) -> Verdict {
        self.passed = false;
        self.no_answer = false;
        self.unmeasured = true;
        self.exit_status = exit::INTERRUPTED;
        self
    }

    /// The crossed thresholds, one line each (`p99>1us: measured 85µs`).
    pub fn crossed_lines(&self) -> Vec<String> {
        self.thresholds
            .iter()
            .filter(|j| j.crossed)
            .map(|j| {
                let v = match j.unit {
                    "us" => crate::report::fmt_duration(Duration::from_secs_f64(j.value / 1e6)),
                    "%" => format!("{:.3}%", j.value),
                    "req/s" => format!("{:.1} req/s", j.value),
                    _ => format!("{}", j.value),
                };
                format!("{}: measured {v}", j.expr)
            })
            .collect()
    }

    /// The exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::{ErrorKind, Recorder, Sample};

    fn total(ok: u64, errors: u64, latency: Duration) -> Interval {
        let mut r = Recorder::new();
        for _ in 0..ok {
            r.record_ok(&Sample {
                corrected: latency,
                raw: latency,
                ..Sample::default()
            });
        }
        for _ in 0..errors {
            r.record_error(ErrorKind::BadReply, latency, None);
        }
        r.take_interval()
    }

    #[test]
    fn thresholds_parse_in_every_form() {
        let t = Threshold::parse("p99 > 5ms").unwrap();
        assert_eq!(
            (t.metric, t.op, t.limit),
            (Metric::Quantile(0.99), Op::Gt, 5000.0)
        );
        assert_eq!(t.expr, "p99>5ms");
        let t = Threshold::parse("p99.9>=20ms").unwrap();
        assert_eq!((t.op, t.limit), (Op::Ge, 20_000.0));
        assert!(matches!(t.metric, Metric::Quantile(q) if (q - 0.999).abs() < 1e-12));
        let t = Threshold::parse("errors>1%").unwrap();
        assert_eq!(t.metric, Metric::Errors { percent: true });
        assert_eq!(Threshold::parse("rate<50000").unwrap().limit, 50_000.0);
        assert_eq!(
            Threshold::parse("max>1s").unwrap().metric,
            Metric::Quantile(1.0)
        );
        for bad in [
            "p99",
            "p99>",
            "p101>1ms",
            "lat>1ms",
            "errors>150%",
            "p99>fast",
            "rate<-1",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_default_fails_on_any_error_unless_the_user_sets_an_error_threshold() {
        let d = Threshold::with_default(vec![Threshold::parse("p99>1s").unwrap()]);
        assert_eq!(d.len(), 3);
        assert!(d[0].default && d[1].default);
        let d = Threshold::with_default(vec![Threshold::parse("errors>1%").unwrap()]);
        assert_eq!(d.len(), 2);
        let sec = 999.0; // replies in a 1 s window
        let t = total(999, 1, Duration::from_millis(1));
        let v = Verdict::judge(&Threshold::with_default(vec![]), &t, sec, 0);
        assert_eq!(v.exit_status, exit::THRESHOLD);
        assert_eq!(v.crossed_lines(), vec!["errors>0: measured 1".to_string()]);
        let v = Verdict::judge(&d, &t, sec, 0);
        assert_eq!(v.exit_status, exit::PASSED, "0.1% is under 1%");
    }

    #[test]
    fn bytes_nobody_asked_for_fail_the_run_unless_the_user_allows_them() {
        // Every request answered, but 4 connections were closed for stray bytes: replies on them may have
        // answered other requests than they seemed to.
        let t = total(1000, 0, Duration::from_millis(1));
        let v = Verdict::judge(&Threshold::with_default(vec![]), &t, 1000.0, 4);
        assert_eq!(v.exit_status, exit::THRESHOLD);
        assert_eq!(v.crossed_lines(), vec!["stray>0: measured 4".to_string()]);
        let j = v.thresholds.iter().find(|j| j.expr == "stray>0").unwrap();
        assert_eq!((j.unit, j.default), ("connections", true));
        assert!(Verdict::judge(&Threshold::with_default(vec![]), &t, 1000.0, 0).passed);
        // A user's own stray threshold replaces the default (and leaves errors>0 in place).
        let own = Threshold::with_default(vec![Threshold::parse("stray > 10").unwrap()]);
        assert_eq!(own.len(), 2);
        assert!(Verdict::judge(&own, &t, 1000.0, 4).passed);
        assert!(!Verdict::judge(&own, &t, 1000.0, 11).passed);
        assert!(Threshold::parse("stray>-1").is_err());
    }

    #[test]
    fn latency_and_rate_thresholds_compare_in_their_units() {
        let t = total(100, 0, Duration::from_millis(2));
        let sec = 100.0; // replies in a 1 s window
        let judge = |e: &str| Verdict::judge(&[Threshold::parse(e).unwrap()], &t, sec, 0);
        assert!(!judge("p99>1us").passed);
        assert!(judge("p99>5ms").passed);
        assert!(!judge("rate<1000").passed);
        assert!(judge("rate<50").passed);
        let none = Interval::default();
        let v = Verdict::judge(&[], &none, 0.0, 0);
        assert_eq!(v.exit_status, exit::NO_ANSWER);
    }
}
