//! The server's counters: [`Stats`] (relaxed atomics sharded per thread, shared by every connection) and [`StatsSnapshot`] (what
//! `STATS`, the `stats <json>` exit line and `/metrics` show).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// One counter of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Connections open now (a gauge: opened minus closed).
    ConnectionsOpen,
    /// Connections accepted since start (refused ones included).
    ConnectionsTotal,
    /// Connections refused at `max_connections`.
    ConnectionsRefused,
    /// Requests answered, all protocols (an echo chunk, a line, an HTTP request, a RESP command, a datagram).
    Requests,
    /// Bytes read from clients.
    BytesIn,
    /// Bytes written to clients.
    BytesOut,
    /// Connections closed for a protocol error.
    ErrorsProtocol,
    /// Connections closed for going over a size limit.
    ErrorsTooLarge,
    /// Connections closed because a partial request did not complete within the read timeout.
    ErrorsReadTimeout,
    /// Connections closed at the idle timeout.
    ErrorsIdleTimeout,
    /// Connections closed because a client did not read its replies within the write timeout.
    ErrorsWriteTimeout,
    /// Connections closed by a socket error (reset, TLS failure …).
    ErrorsIo,
    /// Worker processes of the `processes` model that exited while serving and were started again.
    WorkerRestarts,
    /// Connections closed because handling their input panicked (a bug; the panic is printed on stderr).
    ErrorsPanic,
    /// Large requests refused with the protocol's busy answer over `--memory-budget` (their connections close).
    ErrorsBusy,
    /// RESP writes refused with `-OOM` because they would take the key space past `--max-store` (the connection
    /// goes on).
    StoreRefused,
}

const COUNTERS: usize = 16;

/// Shards of the counters: threads add to their own shard (picked round-robin when a thread first counts),
/// so two cores never fight over one cache line on every request.
const SHARDS: usize = 16;

/// One shard: every counter, on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard([AtomicU64; COUNTERS]);

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Relaxed) % SHARDS
    };
}

/// Live counters: relaxed atomics, sharded per thread. Read them together with [`Stats::snapshot`].
#[derive(Debug)]
pub struct Stats {
    shards: Box<[Shard]>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
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
    /// Connections closed because handling their input panicked (a server bug, printed on stderr).
    #[serde(default)]
    pub panic: u64,
    /// Large requests refused with the busy answer while the server's buffers were over `--memory-budget`.
    #[serde(default)]
    pub busy: u64,
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
    /// Worker processes (`processes` model) that exited while serving and were started again.
    #[serde(default)]
    pub worker_restarts: u64,
    /// RESP writes refused with `-OOM` at `--max-store` (each connection goes on).
    #[serde(default)]
    pub store_refused: u64,
}

impl Stats {
    /// Adds `n` to `counter`.
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        let shard = SHARD.with(|s| *s);
        self.shards[shard].0[counter as usize].fetch_add(n, Relaxed);
    }

    /// Adds 1 to `counter`.
    #[inline]
    pub fn inc(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// Subtracts 1 from `counter` (the open-connections gauge).
    #[inline]
    pub fn dec(&self, counter: Counter) {
        let shard = SHARD.with(|s| *s);
        self.shards[shard].0[counter as usize].fetch_sub(1, Relaxed);
    }

    /// The current value of `counter` (the sum over shards).
    pub fn get(&self, counter: Counter) -> u64 {
        self.shards.iter().fold(0u64, |sum, s| {
            sum.wrapping_add(s.0[counter as usize].load(Relaxed))
        })
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        use Counter::*;
        StatsSnapshot {
            connections_open: self.get(ConnectionsOpen),
            connections_total: self.get(ConnectionsTotal),
            connections_refused: self.get(ConnectionsRefused),
            requests: self.get(Requests),
            bytes_in: self.get(BytesIn),
            bytes_out: self.get(BytesOut),
            errors: ErrorCounts {
                protocol: self.get(ErrorsProtocol),
                too_large: self.get(ErrorsTooLarge),
                read_timeout: self.get(ErrorsReadTimeout),
                idle_timeout: self.get(ErrorsIdleTimeout),
                write_timeout: self.get(ErrorsWriteTimeout),
                io: self.get(ErrorsIo),
                panic: self.get(ErrorsPanic),
                busy: self.get(ErrorsBusy),
            },
            worker_restarts: self.get(WorkerRestarts),
            store_refused: self.get(StoreRefused),
        }
    }

    /// Adds a snapshot taken elsewhere (a worker process) to these counters; `connections_open` included.
    pub fn add_snapshot(&self, s: &StatsSnapshot) {
        for (c, v) in s.fields() {
            self.add(c, v);
        }
    }

    /// Adds what a snapshot taken elsewhere gained from `before` to `after` (a worker process's report after
    /// its previous one), every counter and the `connections_open` gauge alike, up or down: adding each
    /// report's difference keeps these counters at the sum of the latest reports, without counting anything
    /// twice.
    pub fn add_difference(&self, before: &StatsSnapshot, after: &StatsSnapshot) {
        for ((c, b), (_, a)) in before.fields().into_iter().zip(after.fields()) {
            // Wrapping, like the atomics: a gauge that went down adds its two's complement.
            self.add(c, a.wrapping_sub(b));
        }
    }
}

impl StatsSnapshot {
    /// Every counter with its value.
    fn fields(&self) -> [(Counter, u64); COUNTERS] {
        use Counter::*;
        [
            (ConnectionsOpen, self.connections_open),
            (ConnectionsTotal, self.connections_total),
            (ConnectionsRefused, self.connections_refused),
            (Requests, self.requests),
            (BytesIn, self.bytes_in),
            (BytesOut, self.bytes_out),
            (ErrorsProtocol, self.errors.protocol),
            (ErrorsTooLarge, self.errors.too_large),
            (ErrorsReadTimeout, self.errors.read_timeout),
            (ErrorsIdleTimeout, self.errors.idle_timeout),
            (ErrorsWriteTimeout, self.errors.write_timeout),
            (ErrorsIo, self.errors.io),
            (ErrorsPanic, self.errors.panic),
            (ErrorsBusy, self.errors.busy),
            (WorkerRestarts, self.worker_restarts),
            (StoreRefused, self.store_refused),
        ]
    }

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
        metric(
            "worker_restarts_total",
            "counter",
            "Worker processes that exited while serving and were started again.",
            self.worker_restarts,
        );
        metric(
            "store_refused_total",
            "counter",
            "RESP writes refused with -OOM because they would take the key space past --max-store.",
            self.store_refused,
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
            ("panic", e.panic),
            ("busy", e.busy),
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
    fn differences_keep_the_sum_of_the_latest_reports() {
        let s = Stats::default();
        s.inc(Counter::Requests); // the parent's own
        let first = StatsSnapshot {
            requests: 5,
            connections_open: 3,
            ..Default::default()
        };
        s.add_difference(&StatsSnapshot::default(), &first);
        let second = StatsSnapshot {
            requests: 9,
            connections_open: 1,
            ..Default::default()
        };
        s.add_difference(&first, &second);
        assert_eq!(
            (s.get(Counter::Requests), s.get(Counter::ConnectionsOpen)),
            (10, 1)
        );
    }

    #[test]
    fn snapshot_json_has_the_documented_keys() {
        let s = Stats::default();
        s.inc(Counter::Requests);
        let v: serde_json::Value = serde_json::from_str(&s.snapshot().to_json()).unwrap();
        for k in [
            "connections_open",
            "connections_total",
            "connections_refused",
            "bytes_in",
            "bytes_out",
            "store_refused",
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
            "panic",
            "busy",
        ] {
            assert_eq!(v["errors"][k], 0, "{k}");
        }
    }
}
