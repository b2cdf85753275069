//! Shared helpers for the sockpool benchmarks.

/// Runs a benchmark binary's `main` body: an error is one line on stderr (with its causes, no backtrace even when
/// `RUST_BACKTRACE` is set) and exit status 2.
pub fn run_main(name: &str, body: impl FnOnce() -> anyhow::Result<()>) -> std::process::ExitCode {
    match body() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Measuring one contender: its window, its rate and the client's CPU time per reply.
pub mod measure {
    use std::time::{Duration, Instant};

    /// When counting starts and stops for one contender.
    #[derive(Clone, Copy)]
    pub struct Window {
        /// When counting starts (after a 0.5 s warm-up).
        pub start: Instant,
        /// When counting stops.
        pub end: Instant,
    }

    impl Window {
        /// A window of `seconds` that opens 0.5 s from now.
        pub fn new(seconds: f64) -> Self {
            let start = Instant::now() + Duration::from_millis(500);
            Window {
                start,
                end: start + Duration::from_secs_f64(seconds),
            }
        }

        /// `count` events in the window, per second.
        pub fn rate(&self, count: u64) -> f64 {
            count as f64 / (self.end - self.start).as_secs_f64()
        }

        /// A task that reads this process's CPU time at the window's start and end: the client's CPU inside the
        /// window (the server is another process, or its own threads that sit idle as much with every contender).
        pub fn cpu(&self) -> tokio::task::JoinHandle<Duration> {
            let w = *self;
            tokio::spawn(async move {
                tokio::time::sleep_until(w.start.into()).await;
                let from = process_cpu();
                tokio::time::sleep_until(w.end.into()).await;
                process_cpu().saturating_sub(from)
            })
        }
    }

    /// CPU time of every thread of this process so far (the first field of each `/proc/self/task/*/schedstat`,
    /// in nanoseconds); zero where /proc cannot be read.
    pub fn process_cpu() -> Duration {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Duration::ZERO;
        };
        let ns: u64 = tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Duration::from_nanos(ns)
    }

    /// What one contender achieved in its window.
    #[derive(Clone, Copy)]
    pub struct Measured {
        /// Replies per second.
        pub rate: f64,
        /// The client process's CPU time per reply, in microseconds: comparable across contenders even when a
        /// loaded machine holds every rate down.
        pub cpu_us: f64,
    }

    impl Measured {
        /// `count` replies in `w`, which took `cpu` of the client process.
        pub fn new(w: &Window, count: u64, cpu: Duration) -> Self {
            Measured {
                rate: w.rate(count),
                cpu_us: cpu.as_secs_f64() * 1e6 / count.max(1) as f64,
            }
        }
    }

    /// The median of `v` (the upper one of an even count); 0 for none.
    pub fn median(mut v: Vec<f64>) -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    }
}
