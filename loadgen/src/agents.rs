//! One run shared by N agents (processes, pods): `run --agents N --agent-index I --start-at TIME --bind IP`.
//!
//! Each agent takes its exact share of the run ([`split`]): connections, `--rate`/`--ramp` and `--requests`
//! divided so that the shares sum to the totals (the remainder of an integer split goes to the lowest indexes),
//! and `{seq}` values in the residue class `I mod N`, so that no two agents send the same sequence number.
//! `--start-at` makes the load begin at the same wall-clock moment everywhere ([`schedule`]); the measured
//! window opens `--warmup` after it. What an agent was and saw ([`Identity`]) goes into its JSON report and
//! `.hlog`, which `sockpool-loadgen merge` ([`crate::merge`]) adds up.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::args::RunArgs;
use crate::config::{Config, ConfigError, Load, Stop};

/// This agent's place in a shared run, as resolved from `--agents`/`--agent-index`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentShare {
    /// This agent's index, `0..count`.
    pub index: usize,
    /// Agents sharing the run.
    pub count: usize,
    /// The whole run's connections (this agent opens `Config::connections` of them).
    pub total_connections: usize,
    /// The whole run's pacing (this agent follows `Config::load`, its share).
    pub total_load: Load,
}

/// `share` of `total` split `count` ways: `total / count`, the remainder spread one each over the lowest
/// indexes. The shares of `0..count` sum to `total`.
pub fn share_u64(total: u64, index: usize, count: usize) -> u64 {
    let n = count.max(1) as u64;
    total / n + u64::from((index as u64) < total % n)
}

/// A rate's share: a whole-number rate at least `count` splits as [`share_u64`] (whole numbers, summing to the
/// total exactly); any other rate splits evenly.
pub fn share_rate(total: f64, index: usize, count: usize) -> f64 {
    let n = count.max(1);
    if total.fract() == 0.0 && total >= n as f64 && total < u64::MAX as f64 {
        share_u64(total as u64, index, n) as f64
    } else {
        total / n as f64
    }
}

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Parses `--start-at`: RFC 3339 in UTC (`2026-12-04T10:30:00Z`, `2026-12-04T10:30:00.250Z`) or Unix
/// milliseconds (`1796380200000`).
pub fn parse_start_at(s: &str) -> Result<SystemTime, ConfigError> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = s
            .parse()
            .map_err(|_| bad(format!("--start-at {s:?}: too large")))?;
        return Ok(UNIX_EPOCH + Duration::from_millis(ms));
    }
    humantime::parse_rfc3339(s).map_err(|e| {
        bad(format!(
            "--start-at {s:?}: {e}; expected RFC 3339 in UTC (2026-12-04T10:30:00Z) or Unix milliseconds"
        ))
    })
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_s(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Serde helper: an optional wall-clock time as Unix milliseconds or null.
pub fn opt_unix_ms<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&unix_ms(*t)),
        None => s.serialize_none(),
    }
}

/// Applies `--bind`, `--start-at` and `--agents`/`--agent-index` to the whole run's `config`: afterwards it
/// describes this agent's share.
pub fn split(config: &mut Config, a: &RunArgs) -> Result<(), ConfigError> {
    if let Some(b) = &a.bind {
        let ip: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| bad(format!("--bind {b:?}: not an IP address (e.g. 127.0.0.2)")))?;
        if config.target.as_ref().is_some_and(|t| t.unix) {
            return Err(bad("--bind applies to TCP and UDP targets, not unix:"));
        }
        // A literal target of the other family cannot be reached from it (a name may resolve to either).
        let literal = config.target.as_ref().and_then(|t| {
            let addr = t.endpoint.strip_prefix("tls://").unwrap_or(&t.endpoint);
            addr.parse::<std::net::SocketAddr>().ok()
        });
        if let Some(target) = literal.filter(|t| t.is_ipv4() != ip.is_ipv4()) {
            return Err(bad(format!(
                "--bind {ip}: cannot reach {target} (another address family)"
            )));
        }
        // An address this machine does not have fails every connect ("cannot assign requested address"):
        // refused now, not after a run of errors.
        if let Err(e) = sockpool::transport::check_local_address(ip) {
            return Err(bad(format!("--bind {ip}: {e}")));
        }
        config.bind = Some(ip);
    }
    config.start_at = a.start_at.as_deref().map(parse_start_at).transpose()?;
    if let (Some(at), Some(given)) = (config.start_at, a.start_at.as_deref()) {
        // `date +%s` gives seconds: as milliseconds that is January 1970, refused only after the wait as
        // "1794776189s ago". Said now, with the value meant.
        let as_seconds = UNIX_EPOCH + (at.duration_since(UNIX_EPOCH).unwrap_or_default() * 1000);
        let now = SystemTime::now();
        let near = |t: SystemTime| {
            t.duration_since(now)
                .or_else(|e| Ok::<_, ()>(e.duration()))
                .is_ok_and(|d| d <= crate::config::defaults::MAX_WAIT)
        };
        if !near(at) && near(as_seconds) {
            return Err(bad(format!(
                "--start-at {given}: Unix seconds ({}); it takes Unix milliseconds ({}000) or RFC 3339",
                humantime::format_rfc3339_seconds(as_seconds),
                given.trim()
            )));
        }
    }
    if let Some(at) = config.start_at {
        // A start further ahead is a typo (`99999999999999999` ms waited 3 million years).
        let ahead = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        if ahead > crate::config::defaults::MAX_WAIT {
            return Err(bad(format!(
                "--start-at {}: {} ahead; at most {} (agents are started shortly before their common start)",
                a.start_at.as_deref().unwrap_or_default(),
                humantime::format_duration(Duration::from_secs(ahead.as_secs())),
                crate::config::days(crate::config::defaults::MAX_WAIT)
            )));
        }
    }
    let Some(count) = a.agents else {
        return Ok(());
    };
    if count == 0 {
        return Err(bad("--agents must be at least 1"));
    }
    let index = a.agent_index.ok_or_else(|| {
        bad("--agents needs this agent's index: --agent-index I, or JOB_COMPLETION_INDEX in the environment")
    })?;
    if index >= count {
        return Err(bad(format!(
            "--agent-index {index} is out of range for --agents {count} (0..{})",
            count - 1
        )));
    }
    let total_connections = config.connections;
    if total_connections < count {
        return Err(bad(format!(
            "--connections {total_connections} is fewer than --agents {count}: each agent needs a connection"
        )));
    }
    config.connections = share_u64(total_connections as u64, index, count) as usize;
    if config.threads > config.connections {
        return Err(bad(format!(
            "--threads {} is more than this agent's {} of the {total_connections} connections",
            config.threads, config.connections
        )));
    }
    let total_load = config.load.clone();
    config.load = match total_load {
        Load::Closed => Load::Closed,
        Load::Open { rate } => Load::Open {
            rate: share_rate(rate, index, count),
        },
        Load::Ramp {
            from,
            to,
            steps,
            step,
        } => Load::Ramp {
            from: share_rate(from, index, count),
            to: share_rate(to, index, count),
            steps,
            step,
        },
    };
    if let Stop::Requests(n) = config.stop {
        if n < count as u64 {
            return Err(bad(format!(
                "--requests {n} is fewer than --agents {count}: each agent needs a request"
            )));
        }
        config.stop = Stop::Requests(share_u64(n, index, count));
    }
    config.agent = Some(AgentShare {
        index,
        count,
        total_connections,
        total_load,
    });
    Ok(())
}

/// `{seq}` for worker `w` of `workers` on this agent: `(first, step)` for
/// [`crate::scenario::Generator::with_seq`]. Agent `I` of `N` sends only values `≡ I (mod N)`, whatever each
/// agent's `--threads`, so the agents' values are disjoint and together dense.
pub fn seq_plan(config: &Config, w: usize, workers: usize) -> (u64, u64) {
    let (i, n) = config
        .agent
        .as_ref()
        .map_or((0, 1), |a| (a.index as u64, a.count as u64));
    (i + n * w as u64, n * workers.max(1) as u64)
}

/// When this agent's load begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// From now until the load (warm-up first) begins.
    pub delay: Duration,
    /// The warm-up actually run: `--warmup`, less whatever a late start lost.
    pub warmup: Duration,
    /// How late the agent was for `--start-at` (the warm-up it lost).
    pub late_by: Duration,
}

/// The schedule for a run starting no sooner than `min_delay` from `now`. With `--start-at T` the measured
/// window opens at `T + warmup` on every agent: an agent that gets here late shortens its warm-up; one later
/// than its whole warm-up refuses (its window would not be the others').
pub fn schedule(
    start_at: Option<SystemTime>,
    warmup: Duration,
    now: SystemTime,
    min_delay: Duration,
) -> Result<Schedule, String> {
    let Some(at) = start_at else {
        return Ok(Schedule {
            delay: min_delay,
            warmup,
            late_by: Duration::ZERO,
        });
    };
    let earliest = now + min_delay;
    match at.duration_since(earliest) {
        Ok(wait) => Ok(Schedule {
            delay: min_delay + wait,
            warmup,
            late_by: Duration::ZERO,
        }),
        Err(e) => {
            let late = e.duration();
            if late > warmup {
                return Err(format!(
                    "--start-at {} was {} ago, more than the warm-up ({}): this agent cannot measure the same \
                     window as the others; run again with a later --start-at (or a longer --warmup)",
                    humantime::format_rfc3339_millis(at),
                    crate::report::fmt_duration(late),
                    humantime::format_duration(warmup)
                ));
            }
            Ok(Schedule {
                delay: min_delay,
                warmup: warmup - late,
                late_by: late,
            })
        }
    }
}

/// Who an agent was and what it saw, in its JSON report (`agent`) and at the end of its `.hlog`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// `--agent-index` (0 for a run without `--agents`).
    pub index: usize,
    /// `--agents` (1 without).
    pub count: usize,
    /// The host name (a pod's name in Kubernetes).
    pub host: String,
    /// `--bind`, if given.
    pub bind: Option<String>,
    /// `--start-at` as Unix milliseconds, if given.
    pub start_at_unix_ms: Option<u64>,
    /// Warm-up this agent lost by starting after `--start-at`, seconds.
    pub late_start_s: f64,
    /// The wall clock read when the measured window opened, minus when it should have opened
    /// (`--start-at` + `--warmup`, or the planned start), milliseconds: this agent's scheduling error as its
    /// own clock saw it. Agents' clocks are assumed synchronised (NTP); this cannot see a clock that is wrong.
    pub clock_offset_ms: f64,
    /// The flags this agent ran with, so that `merge` can rebuild the whole run's configuration.
    pub args: RunArgs,
}

/// This machine's host name (`HOSTNAME`, else the kernel's), or `unknown`.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl Identity {
    /// The identity of a run of `config`, which lost `late_by` of its warm-up and whose measured
    /// window opened `clock_offset` (signed, seconds) off its plan.
    pub fn new(config: &Config, late_by: Duration, clock_offset_s: f64) -> Identity {
        let (index, count) = config.agent.as_ref().map_or((0, 1), |a| (a.index, a.count));
        Identity {
            index,
            count,
            host: host_name(),
            bind: config.bind.map(|b| b.to_string()),
            start_at_unix_ms: config.start_at.map(unix_ms),
            late_start_s: late_by.as_secs_f64(),
            clock_offset_ms: clock_offset_s * 1e3,
            args: config.args.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(f: impl FnOnce(&mut RunArgs)) -> Result<Config, ConfigError> {
        let mut a = RunArgs {
            target: Some("127.0.0.1:7000".into()),
            ..RunArgs::default()
        };
        f(&mut a);
        Config::from_args(&a)
    }

    #[test]
    fn shares_sum_to_the_totals_with_the_remainder_spread() {
        for (total, n) in [(10u64, 3usize), (7, 7), (1000, 4), (5, 2), (0, 3)] {
            let shares: Vec<u64> = (0..n).map(|i| share_u64(total, i, n)).collect();
            assert_eq!(shares.iter().sum::<u64>(), total, "{total}/{n}: {shares:?}");
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
        }
        let rates: Vec<f64> = (0..3).map(|i| share_rate(1000.0, i, 3)).collect();
        assert_eq!(rates, vec![334.0, 333.0, 333.0]);
        assert_eq!(share_rate(2.0, 1, 4), 0.5, "below one per agent: even");
        let sum: f64 = (0..3).map(|i| share_rate(10.5, i, 3)).sum();
        assert!((sum - 10.5).abs() < 1e-9);
    }

    #[test]
    fn an_agent_runs_its_share_of_connections_rate_ramp_and_requests() {
        let shares: Vec<Config> = (0..3)
            .map(|i| {
                config(|a| {
                    a.connections = Some(16);
                    a.rate = Some(1000.0);
                    a.agents = Some(3);
                    a.agent_index = Some(i);
                })
                .unwrap()
            })
            .collect();
        let conns: Vec<usize> = shares.iter().map(|c| c.connections).collect();
        assert_eq!(conns, vec![6, 5, 5]);
        let rates: Vec<Option<f64>> = shares.iter().map(|c| c.load.rate_at_step(0)).collect();
        assert_eq!(rates, vec![Some(334.0), Some(333.0), Some(333.0)]);
        assert_eq!(shares[2].agent.as_ref().unwrap().total_connections, 16);

        let ramp = config(|a| {
            a.ramp = Some("100..501:3:1s".into());
            a.agents = Some(2);
            a.agent_index = Some(1);
        })
        .unwrap();
        assert!(matches!(ramp.load, Load::Ramp { from, to, .. } if from == 50.0 && to == 250.0));
        let n = config(|a| {
            a.requests = Some(11);
            a.agents = Some(2);
            a.agent_index = Some(0);
        })
        .unwrap();
        assert_eq!(n.stop, Stop::Requests(6));
    }

    #[test]
    fn bad_agent_flags_get_one_clear_message() {
        let e = |f: fn(&mut RunArgs)| config(f).unwrap_err().0;
        assert!(e(|a| a.agents = Some(2)).contains("JOB_COMPLETION_INDEX"));
        assert!(e(|a| {
            a.agents = Some(2);
            a.agent_index = Some(2)
        })
        .contains("out of range"));
        assert!(e(|a| {
            a.agents = Some(32);
            a.agent_index = Some(0)
        })
        .contains("each agent needs a connection"));
        assert!(e(|a| a.bind = Some("localhost".into())).contains("--bind"));
        assert!(e(|a| a.start_at = Some("tomorrow".into())).contains("RFC 3339"));
        // Issue 32 item 4: a start 3 million years ahead waited for it.
        let far = e(|a| a.start_at = Some("99999999999999999".into()));
        assert!(far.contains("ahead; at most 1 day"), "{far}");
        // `date +%s` (seconds) where milliseconds are taken: said at once, with the value meant.
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        let mut a = RunArgs {
            target: Some("127.0.0.1:9".into()),
            start_at: Some(secs.to_string()),
            ..RunArgs::default()
        };
        let msg = Config::from_args(&a).unwrap_err().0;
        assert!(
            msg.starts_with(&format!("--start-at {secs}: Unix seconds ("))
                && msg.ends_with(&format!(
                    "); it takes Unix milliseconds ({secs}000) or RFC 3339"
                )),
            "{msg}"
        );
        // Milliseconds of the same instant are taken.
        a.start_at = Some(format!("{secs}000"));
        assert!(Config::from_args(&a).is_ok());
        let c = config(|a| a.agent_index = Some(5)).unwrap();
        assert!(c.agent.is_none(), "an index without --agents is ignored");
    }

    #[test]
    fn seq_values_of_agents_are_disjoint_whatever_their_threads() {
        let mut seen = std::collections::HashSet::new();
        for (i, threads) in [(0usize, 1usize), (1, 3), (2, 2)] {
            let c = config(|a| {
                a.connections = Some(9);
                a.threads = Some(threads);
                a.agents = Some(3);
                a.agent_index = Some(i);
            })
            .unwrap();
            for w in 0..threads {
                let (first, step) = seq_plan(&c, w, threads);
                for k in 0..50 {
                    assert!(seen.insert(first + k * step), "agent {i} worker {w}");
                }
            }
        }
    }

    #[test]
    fn start_times_parse_as_rfc3339_or_unix_ms() {
        let a = parse_start_at("2026-12-04T10:30:00.250Z").unwrap();
        let b = parse_start_at("1796380200250").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_late_agent_shortens_its_warmup_or_refuses() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let d = Duration::from_millis(50);
        let s = |at: u64, warm: u64| {
            schedule(
                Some(UNIX_EPOCH + Duration::from_millis(at)),
                Duration::from_millis(warm),
                now,
                d,
            )
        };
        assert_eq!(s(1_002_000, 0).unwrap().delay, Duration::from_secs(2));
        let late = s(999_000, 2000).unwrap();
        assert_eq!(late.late_by, Duration::from_millis(1050));
        assert_eq!(late.warmup, Duration::from_millis(950));
        assert_eq!(
            late.delay + late.warmup,
            Duration::from_secs(1),
            "window opens at T + warm-up"
        );
        let e = s(999_000, 500).unwrap_err();
        assert!(e.contains("more than the warm-up"), "{e}");
        assert_eq!(
            schedule(None, Duration::ZERO, now, d).unwrap().delay,
            d,
            "without --start-at: the usual short delay"
        );
    }
}
