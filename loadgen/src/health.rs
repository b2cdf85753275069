//! The load generator's own health: CPU time of its worker threads and how far the sender fell behind.
//!
//! A load generator that saturates its own CPU, or cannot send on schedule, measures itself rather than the
//! server. [`Health::warnings`] says so in words.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// CPU time (user + system) used so far by the calling thread (`getrusage(RUSAGE_THREAD)`), or by the whole
/// process where per-thread figures are unavailable.
pub fn thread_cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let who = UsageWho::RUSAGE_THREAD;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let who = UsageWho::RUSAGE_SELF;
    match getrusage(who) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::from_secs(tv.tv_sec().max(0) as u64)
                    + Duration::from_micros(tv.tv_usec().max(0) as u64)
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// Time the calling thread has spent so far runnable but waiting for a CPU (the second field of Linux's
/// `/proc/thread-self/schedstat`, the scheduler's run delay), or `None` where the kernel does not say.
pub fn thread_cpu_wait() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Share of the measured time above which a worker thread that waited for a CPU makes the load generator a
/// bottleneck: its replies were read late, and that wait is inside every latency and pool wait it measured.
/// Default: 25 %.
///
/// The embedded default run (the load generator and the reference server on two cores) waits about 10 %.
pub const CPU_WAIT_WARN: f64 = 0.25;

/// Share of one core above which a worker thread counts as saturated.
pub const CPU_BOUND_SHARE: f64 = 0.90;
/// Sender lag (p99) above which an open-loop run warns that the schedule was not kept, and counts the load
/// generator as a bottleneck. Default: 500 µs.
///
/// The sender waits on a high-resolution timer ([`crate::pacer`]) and is normally within tens of
/// microseconds of its schedule; more means its thread did not get to run in time (CPU-bound, or descheduled
/// on a busy machine), and that lag is inside every corrected latency.
pub const LAG_WARN: Duration = Duration::from_micros(500);

/// How the run's connections ended and were reopened.
#[derive(Debug, Clone, Default)]
pub struct Reopened {
    /// Connections opened beyond `--connections`.
    pub reconnects: u64,
    /// Closed by the server as it announced, or while idle.
    pub announced: u64,
    /// Failed.
    pub broken: u64,
    /// Why the first failed one did.
    pub first_break: Option<String>,
    /// Of the failed ones, those that got bytes with no request in flight.
    pub stray: u64,
}

/// How the load generator itself fared.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Health {
    /// CPU seconds used by each worker thread during the measured part.
    pub worker_cpu_seconds: Vec<f64>,
    /// Busiest worker's CPU use, as a share of one core (1.0 = a full core).
    pub max_worker_cpu_share: f64,
    /// Sender lag p50 in microseconds (actual − intended send time, open loop; 0 closed loop).
    pub send_lag_p50_us: f64,
    /// Sender lag p99 in microseconds.
    pub send_lag_p99_us: f64,
    /// Sender lag max in microseconds.
    pub send_lag_max_us: f64,
    /// Connections opened beyond `--connections`: reopened after the server closed one (as announced, or
    /// not) or it failed.
    pub reconnects: u64,
    /// Connections the server closed as it had announced (HTTP `Connection: close`, e.g. nginx's
    /// `keepalive_requests`) or while they were idle (its idle timeout: an EOF, or HTTP `408`, with no
    /// request in flight): not a failure.
    pub closed_by_server: u64,
    /// Connections that failed (reset, closed unannounced, a timeout, bytes nobody asked for).
    pub broken: u64,
    /// Of them, those closed because the server sent bytes with no request in flight: it broke the protocol,
    /// and replies on such a connection may have answered other requests than they seemed to. The `stray`
    /// threshold judges it (default `stray>0`: the run fails).
    pub stray: u64,
    /// Seconds each worker thread spent runnable but waiting for a CPU during the measured part (empty where
    /// the kernel does not say).
    pub worker_cpu_wait_seconds: Vec<f64>,
    /// The longest such wait, as a share of the measured time.
    pub max_worker_cpu_wait_share: f64,
    /// True when the load generator, not the server, probably limited the result.
    pub bottleneck: bool,
    /// Human-readable warnings.
    pub warnings: Vec<String>,
}

/// An open loop's achieved rates, each ÷ its target rate.
#[derive(Debug, Clone, Copy)]
pub struct Achieved {
    /// Replies (good or not) per second.
    pub replies: f64,
    /// Replies and requests that failed fast (closed, refused, reset …: no reply and no timeout) per second.
    pub replies_and_fast_failures: f64,
}

impl Health {
    /// Judges the run: `measured` is its length, `open_loop` whether a schedule was followed,
    /// `lag_*` the scheduler's lag figures, `achieved` the open loop's rates ÷ its target: of replies, and of
    /// replies and requests that failed fast (closed, refused, reset: neither answered nor timed out).
    pub fn assess(
        worker_cpu: &[Duration],
        measured: Duration,
        open_loop: bool,
        lag: (Duration, Duration, Duration),
        achieved: Option<Achieved>,
        reopened: Reopened,
    ) -> Health {
        let secs = measured.as_secs_f64().max(1e-9);
        let shares: Vec<f64> = worker_cpu.iter().map(|d| d.as_secs_f64() / secs).collect();
        let max_share = shares.iter().cloned().fold(0.0, f64::max);
        let mut warnings = Vec::new();
        let mut bottleneck = false;
        if max_share >= CPU_BOUND_SHARE {
            bottleneck = true;
            warnings.push(format!(
                "the load generator was CPU-bound (a worker thread used {:.0}% of a core): the result \
                 measures the load generator, not the server; add --threads or use a bigger machine",
                max_share * 100.0
            ));
        }
        let (p50, p99, max) = lag;
        if open_loop && p99 > LAG_WARN {
            bottleneck = true;
            warnings.push(format!(
                "the sender fell behind its schedule (send lag p99 {}, max {}); corrected latency includes this lag",
                crate::report::fmt_duration(p99),
                crate::report::fmt_duration(max)
            ));
        }
        match achieved {
            Some(a) if a.replies < 0.99 && a.replies_and_fast_failures >= 0.99 => {
                warnings.push(format!(
                    "achieved {:.1}% of the target rate in replies: the other requests went out on schedule and \
                     failed without a reply or a timeout (see the errors)",
                    a.replies * 100.0
                ))
            }
            // The load generator itself was the limit (above): the shortfall says nothing of the server.
            Some(a) if a.replies < 0.99 && bottleneck => warnings.push(format!(
                "achieved {:.1}% of the target rate, with the load generator at its own limit (see above): the \
                 server's capacity may be higher",
                a.replies * 100.0
            )),
            // Connections failed (a killed server: refused, reset): not a server too slow for the rate.
            Some(a) if a.replies < 0.99 && reopened.broken > 0 => warnings.push(format!(
                "achieved {:.1}% of the target rate, with {} connection(s) failing during the run (see the errors \
                 and below): the server failed or dropped connections",
                a.replies * 100.0,
                reopened.broken
            )),
            Some(a) if a.replies < 0.99 => warnings.push(format!(
                "achieved {:.1}% of the target rate: the server (or too few --connections × --pipeline) could not \
                 keep up",
                a.replies * 100.0
            )),
            _ => {}
        }
        let Reopened {
            reconnects,
            announced,
            broken,
            first_break,
            stray,
        } = reopened;
        if broken > 0 {
            // Reopened only as far as the target let it (a server killed mid-run refuses every attempt).
            let reopened = if reconnects >= broken {
                "and were reopened".to_string()
            } else {
                format!("and {reconnects} were reopened (the target refused or did not answer the others)")
            };
            warnings.push(format!(
                "{broken} connection(s) broke during the run {reopened}; the first: {}",
                first_break.as_deref().unwrap_or("no reason recorded")
            ));
        }
        // Reopened, but neither announced nor seen failing here (the pooled client reopens on its own).
        let unexplained = reconnects.saturating_sub(announced + broken);
        if unexplained > 0 {
            warnings.push(format!(
                "{unexplained} connection(s) broke during the run and were reopened"
            ));
        }
        Health {
            worker_cpu_seconds: worker_cpu.iter().map(Duration::as_secs_f64).collect(),
            max_worker_cpu_share: max_share,
            send_lag_p50_us: p50.as_secs_f64() * 1e6,
            send_lag_p99_us: p99.as_secs_f64() * 1e6,
            send_lag_max_us: max.as_secs_f64() * 1e6,
            reconnects,
            closed_by_server: announced,
            broken,
            stray,
            worker_cpu_wait_seconds: Vec::new(),
            max_worker_cpu_wait_share: 0.0,
            bottleneck,
            warnings,
        }
    }

    /// Adds what each worker thread waited for a CPU during the `measured` time (`waits`, one per worker; empty
    /// where the kernel does not say). Over [`CPU_WAIT_WARN`] of it, the load generator was starved by the
    /// machine (a server on the same cores, other work) and the result says so.
    pub fn with_cpu_wait(mut self, waits: &[Duration], measured: Duration) -> Health {
        let secs = measured.as_secs_f64().max(1e-9);
        self.worker_cpu_wait_seconds = waits.iter().map(Duration::as_secs_f64).collect();
        self.max_worker_cpu_wait_share = self
            .worker_cpu_wait_seconds
            .iter()
            .map(|w| w / secs)
            .fold(0.0, f64::max);
        if self.max_worker_cpu_wait_share >= CPU_WAIT_WARN {
            self.bottleneck = true;
            self.warnings.push(format!(
                "a load-generator thread waited for a CPU {:.0}% of the run (the machine's cores were busy: the \
                 server on the same cores, or other work): replies were read late, so latency and pool wait \
                 include that wait; give the load generator cores of its own (taskset) to measure the server",
                self.max_worker_cpu_wait_share * 100.0
            ));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_starved_of_cpu_is_a_bottleneck_and_says_so() {
        let closed = |waits: &[Duration]| {
            Health::assess(
                &[Duration::from_millis(500)],
                Duration::from_secs(1),
                false,
                (Duration::ZERO, Duration::ZERO, Duration::ZERO),
                None,
                Reopened::default(),
            )
            .with_cpu_wait(waits, Duration::from_secs(1))
        };
        let fine = closed(&[Duration::from_millis(100)]);
        assert!(!fine.bottleneck, "{:?}", fine.warnings);
        assert!((fine.max_worker_cpu_wait_share - 0.1).abs() < 1e-9);
        let starved = closed(&[Duration::from_millis(50), Duration::from_millis(300)]);
        assert!(starved.bottleneck);
        assert!((starved.max_worker_cpu_wait_share - 0.3).abs() < 1e-9);
        assert!(
            starved.warnings[0]
                .starts_with("a load-generator thread waited for a CPU 30% of the run"),
            "{:?}",
            starved.warnings
        );
        // Where the kernel does not say: nothing is claimed.
        let unknown = closed(&[]);
        assert!(!unknown.bottleneck && unknown.worker_cpu_wait_seconds.is_empty());
    }

    #[test]
    fn cpu_wait_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(thread_cpu_wait().is_some());
        }
    }

    #[test]
    fn cpu_time_grows_when_the_thread_works() {
        let before = thread_cpu_time();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_time() > before);
    }

    #[test]
    fn a_saturated_worker_is_called_the_bottleneck() {
        let secs = Duration::from_secs(10);
        let h = Health::assess(
            &[Duration::from_millis(9800)],
            secs,
            false,
            Default::default(),
            None,
            Reopened::default(),
        );
        assert!(h.bottleneck);
        assert!(h.warnings[0].contains("CPU-bound"));
        let h = Health::assess(
            &[Duration::from_secs(2)],
            secs,
            false,
            Default::default(),
            None,
            Reopened::default(),
        );
        assert!(!h.bottleneck);
        assert!(h.warnings.is_empty());
    }

    #[test]
    fn lag_and_missed_rate_are_reported() {
        let lag = (
            Duration::ZERO,
            Duration::from_millis(20),
            Duration::from_millis(40),
        );
        let h = Health::assess(
            &[Duration::ZERO],
            Duration::from_secs(1),
            true,
            lag,
            Some(Achieved {
                replies: 0.5,
                replies_and_fast_failures: 0.6,
            }),
            Reopened {
                reconnects: 2,
                ..Reopened::default()
            },
        );
        assert_eq!(h.warnings.len(), 3);
        assert!(h.warnings.iter().any(|w| w.contains("fell behind")));
        assert!(h.warnings.iter().any(|w| w.contains("50.0% of the target")));
        assert_eq!(h.reconnects, 2);
    }

    /// A server killed mid-run (`kill -9 redis-server`): 8 connections broke and none could be reopened, and the
    /// warning said they "were reopened".
    #[test]
    fn broken_connections_that_could_not_be_reopened_are_not_called_reopened() {
        let warn = |reconnects| {
            let h = Health::assess(
                &[Duration::ZERO],
                Duration::from_secs(1),
                false,
                (Duration::ZERO, Duration::ZERO, Duration::ZERO),
                None,
                Reopened {
                    reconnects,
                    broken: 8,
                    first_break: Some("Connection reset by peer".into()),
                    ..Reopened::default()
                },
            );
            h.warnings.concat()
        };
        assert!(
            warn(0).contains("8 connection(s) broke during the run and 0 were reopened"),
            "{}",
            warn(0)
        );
        assert!(warn(8).contains("8 connection(s) broke during the run and were reopened"));
    }

    /// An open loop whose missing replies are requests that failed fast (a server closing connections, say)
    /// does not say the server could not keep up; one whose requests timed out or were never sent does.
    #[test]
    fn a_shortfall_of_fast_failures_is_not_blamed_on_the_servers_pace() {
        let warn = |replies, replies_and_fast_failures| {
            Health::assess(
                &[Duration::ZERO],
                Duration::from_secs(1),
                true,
                (Duration::ZERO, Duration::ZERO, Duration::ZERO),
                Some(Achieved {
                    replies,
                    replies_and_fast_failures,
                }),
                Reopened::default(),
            )
            .warnings
        };
        let w = warn(0.4, 1.0);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("40.0% of the target rate in replies"),
            "{w:?}"
        );
        assert!(!w[0].contains("keep up"), "{w:?}");
        let w = warn(0.4, 0.5);
        assert!(w[0].contains("could not keep up"), "{w:?}");
        assert!(warn(1.0, 1.0).is_empty());
    }

    /// A server killed mid-run (refused, reset, most requests unsent) read "the server could not keep up".
    #[test]
    fn a_shortfall_with_failing_connections_says_they_failed_not_that_the_server_was_slow() {
        let h = Health::assess(
            &[Duration::ZERO],
            Duration::from_secs(4),
            true,
            (Duration::ZERO, Duration::ZERO, Duration::ZERO),
            Some(Achieved {
                replies: 0.4,
                replies_and_fast_failures: 0.5,
            }),
            Reopened {
                broken: 3,
                ..Reopened::default()
            },
        );
        let w = &h.warnings;
        assert!(
            w.iter()
                .any(|w| w.contains("3 connection(s) failing during the run")),
            "{w:?}"
        );
        assert!(!w.iter().any(|w| w.contains("keep up")), "{w:?}");
    }

    /// A CPU-bound load generator that missed its rate says so, and does not blame the server for the
    /// shortfall (an attack at 2M req/s read "CPU-bound" and "the server could not keep up" side by side).
    #[test]
    fn a_shortfall_of_a_cpu_bound_generator_is_not_blamed_on_the_server() {
        let h = Health::assess(
            &[Duration::from_millis(990)],
            Duration::from_secs(1),
            true,
            (Duration::ZERO, Duration::ZERO, Duration::ZERO),
            Some(Achieved {
                replies: 0.062,
                replies_and_fast_failures: 0.062,
            }),
            Reopened::default(),
        );
        assert!(h.bottleneck);
        let w = &h.warnings;
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("CPU-bound"), "{w:?}");
        let shortfall = &w[1];
        assert!(shortfall.contains("6.2% of the target rate"), "{w:?}");
        assert!(shortfall.contains("capacity may be higher"), "{w:?}");
        assert!(!shortfall.contains("keep up"), "{w:?}");
    }

    #[test]
    fn closes_the_server_announced_are_no_warning_and_a_break_says_why() {
        let h = Health::assess(
            &[Duration::ZERO],
            Duration::from_secs(1),
            false,
            Default::default(),
            None,
            Reopened {
                reconnects: 105,
                announced: 100,
                broken: 5,
                first_break: Some("connection reset by peer".into()),
                stray: 0,
            },
        );
        assert_eq!((h.reconnects, h.closed_by_server, h.broken), (105, 100, 5));
        assert_eq!(h.warnings.len(), 1, "{:?}", h.warnings);
        assert!(
            h.warnings[0].starts_with("5 connection(s) broke"),
            "{:?}",
            h.warnings
        );
        assert!(
            h.warnings[0].contains("connection reset by peer"),
            "{:?}",
            h.warnings
        );
    }
}
