//! Observability: a `tracing` event per call, and the client's counters as Prometheus text.
//!
//! **Per call.** With a subscriber that enables `DEBUG` for the target `sockpool::call`, every call emits one
//! event when it ends, with fields `protocol`, `endpoint` (of its last attempt), `outcome` (`ok`, or the error
//! kind), `phase` (of a failure), `pool_wait_us`, `connect_us` (0 when no connection was opened for it),
//! `request_us`, `total_us` and `retries`. Only then does a call read the clock for its timings; without such
//! a subscriber the cost is one cached check per call.
//!
//! ```text
//! # e.g. tracing-subscriber's fmt with the filter sockpool::call=debug:
//! DEBUG sockpool::call: call protocol="resp" endpoint="127.0.0.1:6379" outcome="ok" phase="" pool_wait_us=3 …
//! ```
//!
//! **Metrics.** [`ClientStats::to_prometheus`] renders a snapshot ([`Client::stats`](crate::Client::stats)) in
//! the Prometheus text exposition format, for a `/metrics` handler:
//!
//! ```no_run
//! # async fn demo(client: sockpool::Client<sockpool::protocol::Resp>) {
//! let body: String = client.stats().to_prometheus("myservice_redis");
//! // myservice_redis_requests_total 1042
//! // myservice_redis_connections_closed_total{reason="idle_timeout"} 3
//! // myservice_redis_pool_connections{endpoint="127.0.0.1:6379"} 8
//! # let _ = body;
//! # }
//! ```

use std::fmt::Write;
use std::time::Duration;

use crate::client::CallTimings;
use crate::error::Error;
use crate::stats::ClientStats;

/// The `tracing` target of the per-call event.
pub const CALL_TARGET: &str = "sockpool::call";

fn us(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// The event of one finished call.
pub(crate) fn call_event<T>(
    protocol: &str,
    endpoint: &str,
    timings: &CallTimings,
    result: &Result<T, Error>,
) {
    let (outcome, phase) = match result {
        Ok(_) => ("ok".to_string(), String::new()),
        Err(e) => (format!("{:?}", e.kind()), e.phase().to_string()),
    };
    tracing::debug!(
        target: CALL_TARGET,
        protocol,
        endpoint,
        outcome = outcome.as_str(),
        phase = phase.as_str(),
        pool_wait_us = us(timings.pool_wait),
        connect_us = timings.connect.map(us).unwrap_or(0),
        request_us = us(timings.request),
        total_us = us(timings.total),
        retries = timings.retries,
        "call"
    );
}

/// `{endpoint="…"}` for one endpoint's samples.
fn endpoint_label(e: &crate::stats::EndpointStats) -> String {
    format!("{{endpoint=\"{}\"}}", label(&e.endpoint))
}

/// A label value with `\`, `"` and newlines escaped, as the text format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes Prometheus text, one metric family at a time.
struct Text<'a> {
    out: String,
    prefix: &'a str,
}

impl Text<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let p = self.prefix;
        let _ = writeln!(self.out, "# HELP {p}_{name} {help}");
        let _ = writeln!(self.out, "# TYPE {p}_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let p = self.prefix;
        let _ = writeln!(self.out, "{p}_{name}{labels} {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }
}

impl ClientStats {
    /// This snapshot in the Prometheus text exposition format (version 0.0.4), every metric named
    /// `{prefix}_…`: call outcomes and retries as counters, connect and pool-wait time in seconds, closes by
    /// `reason`, and each endpoint's pool as gauges labelled `endpoint`.
    pub fn to_prometheus(&self, prefix: &str) -> String {
        let mut t = Text {
            out: String::new(),
            prefix,
        };
        let secs = |us: u64| us as f64 / 1e6;
        for (name, help, v) in [
            ("requests_total", "Calls made.", self.requests),
            ("succeeded_total", "Calls that succeeded.", self.succeeded),
            (
                "failed_total",
                "Calls that failed (after retries).",
                self.failed,
            ),
            (
                "cancelled_total",
                "Calls dropped by their caller before they ended.",
                self.cancelled,
            ),
            ("retries_total", "Retries made.", self.retries),
            (
                "retries_denied_total",
                "Retries the retry budget refused.",
                self.retries_denied_by_budget,
            ),
            (
                "resent_after_close_total",
                "Requests sent again: the server closed without processing them.",
                self.resent_after_close,
            ),
            (
                "pool_exhausted_total",
                "Calls failed fast: too many waiters.",
                self.pool_exhausted,
            ),
            (
                "timeouts_total",
                "Calls that failed with a timeout.",
                self.timeouts,
            ),
            ("connects_total", "Connections opened.", self.connects),
            (
                "connect_failures_total",
                "Connection attempts that failed.",
                self.connect_failures,
            ),
            ("pool_waits_total", "Pool check-outs.", self.pool_waits),
        ] {
            t.one(name, "counter", help, v);
        }
        t.one(
            "in_flight",
            "gauge",
            "Requests in flight on the pools' connections.",
            self.in_flight,
        );
        t.one(
            "connect_seconds_total",
            "counter",
            "Time spent opening connections.",
            secs(self.connect_us_total),
        );
        t.one(
            "connect_seconds_max",
            "gauge",
            "Longest connect.",
            secs(self.connect_us_max),
        );
        t.one(
            "pool_wait_seconds_total",
            "counter",
            "Time spent waiting for a connection or a slot.",
            secs(self.pool_wait_us_total),
        );
        t.one(
            "pool_wait_seconds_max",
            "gauge",
            "Longest pool wait.",
            secs(self.pool_wait_us_max),
        );
        let c = &self.closes;
        t.family(
            "connections_closed_total",
            "counter",
            "Connections closed, by reason.",
        );
        for (reason, v) in [
            ("peer_closed", c.peer_closed),
            ("reset", c.reset),
            ("cancelled", c.cancelled),
            ("protocol", c.protocol),
            ("stray_bytes", c.stray_bytes),
            ("idle_timeout", c.idle_timeout),
            ("max_lifetime", c.max_lifetime),
            ("endpoint_reset", c.endpoint_reset),
            ("local", c.local),
            ("server_close", c.server_close),
        ] {
            t.sample(
                "connections_closed_total",
                &format!("{{reason=\"{reason}\"}}"),
                v,
            );
        }
        type Field = fn(&crate::stats::EndpointStats) -> usize;
        let gauges: [(&str, &str, Field); 7] = [
            ("pool_connections", "Connections open.", |e| e.size),
            (
                "pool_idle_connections",
                "Connections with nothing in flight.",
                |e| e.idle,
            ),
            ("pool_max_connections", "The pool's maximum size.", |e| {
                e.max_size
            }),
            ("endpoint_calls", "Calls in progress.", |e| e.calls),
            ("endpoint_waiting", "Callers waiting in the pool.", |e| {
                e.waiting
            }),
            ("endpoint_slots_in_use", "Pipelining slots taken.", |e| {
                e.slots_in_use
            }),
            (
                "endpoint_ejected",
                "1 while ejected after repeated failures.",
                |e| usize::from(e.ejected),
            ),
        ];
        for (name, help, field) in gauges {
            t.family(name, "gauge", help);
            for e in &self.endpoints {
                t.sample(name, &endpoint_label(e), field(e));
            }
        }
        // Requests / writes is the pipelined connections' average batch (see `EndpointStats::writes`).
        let writes = "endpoint_writes_total";
        t.family(
            writes,
            "counter",
            "Write calls of the endpoint's pipelined connections.",
        );
        for e in &self.endpoints {
            t.sample(writes, &endpoint_label(e), e.writes);
        }
        t.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::EndpointStats;

    #[test]
    fn prometheus_text_has_every_family_typed_once_and_escapes_labels() {
        let stats = ClientStats {
            requests: 7,
            connect_us_total: 1_500_000,
            endpoints: vec![EndpointStats {
                endpoint: "a\"b".into(),
                size: 3,
                writes: 9,
                ..EndpointStats::default()
            }],
            ..ClientStats::default()
        };
        let text = stats.to_prometheus("svc");
        assert!(
            text.contains("# TYPE svc_requests_total counter\nsvc_requests_total 7\n"),
            "{text}"
        );
        assert!(text.contains("svc_connect_seconds_total 1.5\n"), "{text}");
        assert!(
            text.contains("svc_pool_connections{endpoint=\"a\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("svc_connections_closed_total{reason=\"local\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE svc_endpoint_writes_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("svc_endpoint_writes_total{endpoint=\"a\\\"b\"} 9\n"),
            "{text}"
        );
        // Each sample's family is declared once, before it.
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert!(
                    declared.insert(rest.split(' ').next().unwrap().to_string()),
                    "{line}"
                );
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "undeclared: {line}");
            }
        }
    }
}
