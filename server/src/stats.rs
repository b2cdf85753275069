//! The server's counters: [`Stats`] (relaxed atomics, shared by every connection) and [`StatsSnapshot`] (what
//! `STATS`, the `stats <json>` exit line and `/metrics` show).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// Live counters. Every field is a relaxed atomic; read them together with [`Stats::snapshot`].
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections accepted since start (refused ones included).
    pub connections_total: AtomicU64,
    /// Connections refused at `max_connections`.
    pub connections_refused: AtomicU64,
    /// Requests answered, all protocols (an echo chunk, a line, an HTTP request, a RESP command, a datagram).
    pub requests: AtomicU64,
    /// Bytes read from clients.
    pub bytes_in: AtomicU64,
    /// Bytes written to clients.
    pub bytes_out: AtomicU64,
    /// Connections closed for a protocol error.
    pub errors_protocol: AtomicU64,
    /// Connections closed for going over a size limit.
    pub errors_too_large: AtomicU64,
    /// Connections closed because a partial request did not complete within the read timeout.
    pub errors_read_timeout: AtomicU64,
    /// Connections closed at the idle timeout.
    pub errors_idle_timeout: AtomicU64,
    /// Connections closed because a client did not read its replies within the write timeout.
    pub errors_write_timeout: AtomicU64,
    /// Connections closed by a socket error (reset, TLS failure …).
    pub errors_io: AtomicU64,
}

/// The error counters of a [`StatsSnapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// Protocol errors.
    pub protocol: u64,
    /// Requests over a size limit.
    pub too_large: u64,
    /// Read timeouts (partial request).
    pub read_timeout: u64,
    /// Idle timeouts.
    pub idle_timeout: u64,
    /// Write timeouts.
    pub write_timeout: u64,
    /// Socket errors.
    pub io: u64,
}

/// The counters at one moment. Serialises as the documented `STATS` JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Connections open.
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections refused at `max_connections`.
    pub connections_refused: u64,
    /// Requests answered.
    pub requests: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_open: self.connections_open.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            connections_refused: self.connections_refused.load(Relaxed),
            requests: self.requests.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            errors: ErrorCounts {
                protocol: self.errors_protocol.load(Relaxed),
                too_large: self.errors_too_large.load(Relaxed),
                read_timeout: self.errors_read_timeout.load(Relaxed),
                idle_timeout: self.errors_idle_timeout.load(Relaxed),
                write_timeout: self.errors_write_timeout.load(Relaxed),
                io: self.errors_io.load(Relaxed),
            },
        }
    }

    /// Adds a snapshot taken elsewhere (a worker process) to these counters; `connections_open` included.
    pub fn add(&self, s: &StatsSnapshot) {
        self.connections_open.fetch_add(s.connections_open, Relaxed);
        self.connections_total
            .fetch_add(s.connections_total, Relaxed);
        self.connections_refused
            .fetch_add(s.connections_refused, Relaxed);
        self.requests.fetch_add(s.requests, Relaxed);
        self.bytes_in.fetch_add(s.bytes_in, Relaxed);
        self.bytes_out.fetch_add(s.bytes_out, Relaxed);
        self.errors_protocol.fetch_add(s.errors.protocol, Relaxed);
        self.errors_too_large.fetch_add(s.errors.too_large, Relaxed);
        self.errors_read_timeout
            .fetch_add(s.errors.read_timeout, Relaxed);
        self.errors_idle_timeout
            .fetch_add(s.errors.idle_timeout, Relaxed);
        self.errors_write_timeout
            .fetch_add(s.errors.write_timeout, Relaxed);
        self.errors_io.fetch_add(s.errors.io, Relaxed);
    }

    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}

impl StatsSnapshot {
    /// The snapshot as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The snapshot as Prometheus text exposition (`sockpool_server_*`).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(1024);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP sockpool_server_{name} {help}");
            let _ = writeln!(out, "# TYPE sockpool_server_{name} {kind}");
            let _ = writeln!(out, "sockpool_server_{name} {value}");
        };
        metric(
            "connections_open",
            "gauge",
            "Connections open now.",
            self.connections_open,
        );
        metric(
            "connections_total",
            "counter",
            "Connections accepted.",
            self.connections_total,
        );
        metric(
            "connections_refused",
            "counter",
            "Connections refused at the limit.",
            self.connections_refused,
        );
        metric(
            "requests_total",
            "counter",
            "Requests answered.",
            self.requests,
        );
        metric(
            "bytes_in_total",
            "counter",
            "Bytes read from clients.",
            self.bytes_in,
        );
        metric(
            "bytes_out_total",
            "counter",
            "Bytes written to clients.",
            self.bytes_out,
        );
        let _ = writeln!(
            out,
            "# HELP sockpool_server_errors_total Connections closed for an error, by kind."
        );
        let _ = writeln!(out, "# TYPE sockpool_server_errors_total counter");
        let e = &self.errors;
        for (kind, v) in [
            ("protocol", e.protocol),
            ("too_large", e.too_large),
            ("read_timeout", e.read_timeout),
            ("idle_timeout", e.idle_timeout),
            ("write_timeout", e.write_timeout),
            ("io", e.io),
        ] {
            let _ = writeln!(out, "sockpool_server_errors_total{{kind=\"{kind}\"}} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_json_has_the_documented_keys() {
        let s = Stats::default();
        Stats::inc(&s.requests);
        let v: serde_json::Value = serde_json::from_str(&s.snapshot().to_json()).unwrap();
        for k in [
            "connections_open",
            "connections_total",
            "connections_refused",
            "bytes_in",
            "bytes_out",
        ] {
            assert_eq!(v[k], 0, "{k}");
        }
        assert_eq!(v["requests"], 1);
        for k in [
            "protocol",
            "too_large",
            "read_timeout",
            "idle_timeout",
            "write_timeout",
            "io",
        ] {
            assert_eq!(v["errors"][k], 0, "{k}");
        }
    }
}
