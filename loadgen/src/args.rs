//! Raw command-line flags, exactly as clap parses them (the "low args").
//!
//! Nothing here is validated beyond clap's own parsing; [`crate::config::Config::from_args`] turns these into
//! the validated configuration the rest of the program uses, once.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// `sockpool-loadgen`: drive a server, measure latency honestly (coordinated-omission corrected), report it.
#[derive(Debug, Parser)]
#[command(name = "sockpool-loadgen", version, about, long_about = None)]
pub struct Cli {
    /// What to do; with no subcommand, a short benchmark against an embedded reference server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a benchmark against a target (or, without `--target`, against an embedded reference server).
    #[command(after_help = RUN_EXIT_HELP)]
    Run(Box<RunArgs>),
    /// The tuning lab: vary settings, repeat, search the rate that meets an SLO, recommend (no args: a tour).
    #[command(after_help = TUNE_EXIT_HELP)]
    Tune(Box<crate::tune::TuneArgs>),
    /// Bulk-transfer throughput per buffer size (framed SINK/SOURCE or echo), like iperf3.
    #[command(after_help = STREAM_EXIT_HELP)]
    Stream(Box<crate::stream::StreamArgs>),
    /// Merge agents' reports (`run --agents N`): JSON files, `.hlog` files, or `-` for JSON lines on stdin.
    Merge(Box<crate::merge::MergeArgs>),
}

/// `tune --help`'s closing section.
pub const TUNE_EXIT_HELP: &str = "\
Exit status: 0 done (with --slo: a rate met it); 1 a cell failed, the target does not speak the protocol, or
no rate met --slo (one line on stderr says why; the table, --json, --html and --recommend are written first;
after a failed cell, the cells finished before it, without a recommendation); 2 bad usage; 130 interrupted.

Ctrl-C (SIGINT) or SIGTERM stops the run in progress gracefully; the cells whose runs all finished are printed
and written (--json, --html) marked interrupted, without a recommendation (--recommend is not written). A second
Ctrl-C exits at once.";

/// `stream --help`'s closing section.
pub const STREAM_EXIT_HELP: &str = "\
Exit status: 0 done; 1 a transfer failed (the sizes measured before it are still printed); 2 bad usage;
130 interrupted: Ctrl-C (SIGINT) or SIGTERM drops the size being measured and prints those measured before it.";

/// `run --help`'s closing section: the exit statuses (kept in step with [`crate::verdict::exit`] and the
/// README).
pub const RUN_EXIT_HELP: &str = "\
Every reply is checked: echo/udp bytes come back equal, a line reply equals the request line (or --expect),
HTTP statuses are in --expect-status, RESP replies are not errors (and a PING's is PONG or its message),
framed replies have status OK and their request's id.

Exit status:
  0  passed: no --fail-on threshold crossed (default thresholds: errors>0, any failed request fails the run;
     stray>0, a server that sends bytes with no request in flight fails it)
  1  a threshold was crossed (the report and stderr name which)
  2  bad usage: a flag is wrong, or an input or output file cannot be used, or --start-at is past by more
     than the warm-up
  3  the target never answered: no connection could be opened, or no request got a reply (a reply refused
     over --max-reply is none: stderr says so and names the flag)
  130  interrupted before anything was measured (Ctrl-C waiting for --start-at or in the warm-up), or twice

Nothing is sent after --duration: in an open loop behind its schedule, requests still waiting for a connection
when it ends are counted as `unsent` errors (never sent to the server: stderr says how many of a crossed errors
threshold they are); those in flight get up to their deadline (intended time + --timeout).
A connection still being opened then (or at Ctrl-C) is given up: it could carry nothing, whatever is left of
its --connect-timeout.

Ctrl-C (SIGINT) or SIGTERM stops the run gracefully: no new requests, those in flight get up to --timeout,
then the report and every output file are written for the time measured, marked interrupted (the thresholds
are judged on it). A second Ctrl-C exits at once (130): output files are written whole or not at all, so none
is left half-written, and none an earlier run left at those paths remains.";

/// The flags of `sockpool-loadgen run`. Defaults are documented in [`crate::config::defaults`].
///
/// An agent's JSON report carries them (`agent.args`), so that `merge` can rebuild the whole run's configuration.
#[derive(Debug, Default, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(default)]
pub struct RunArgs {
    /// Server to drive: `host:port`, `[::1]:port`, `unix:/path`, `tls://host:port`, or a URL that also sets
    /// the protocol: `redis://host[:port]`, `rediss://…`, `http://host[:port]/path`, `https://…`.
    /// Without it, an embedded reference server is started on a free loopback port.
    #[arg(long, short = 't')]
    pub target: Option<String>,
    /// The protocol, TLS and what to send: shared with `tune`.
    #[command(flatten)]
    #[serde(flatten)]
    pub service: ServiceArgs,
    /// Connections to open. Default: 16.
    #[arg(long, short = 'c')]
    pub connections: Option<usize>,
    /// Requests in flight per connection (pipeline depth). Default: 1. `--connections` × `--pipeline` × the
    /// largest `--payload` is at most 1 GiB (each request in flight is held encoded).
    #[arg(long)]
    pub pipeline: Option<usize>,
    /// Worker threads (each owns a share of the connections and its own histograms). Default: 1.
    #[arg(long)]
    pub threads: Option<usize>,
    /// How long to measure, e.g. `10s`, `1m`; at least 10ms, at most 365 days. Default: 10s (unless --requests
    /// is given).
    #[arg(long, short = 'd')]
    pub duration: Option<String>,
    /// Stop after this many measured requests instead of after a duration.
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Load applied before measuring starts, excluded from the results, e.g. `2s`; at most 1 day. Default: 0s.
    #[arg(long)]
    pub warmup: Option<String>,
    /// Payload size in bytes (`64`, `4KiB`) or a uniform range `MIN..MAX`, at most what one request of the
    /// protocol holds: 16 MiB − 13 (framed), 64 KiB (line), 65,507 (udp), 16 MiB (the others). Default: 64.
    #[arg(long)]
    pub payload: Option<String>,
    /// Per-request timeout; a timed-out request is an error. At most 1 day. Default: 5s.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Timeout for establishing a connection. At most 1 day. Default: 2s.
    #[arg(long)]
    pub connect_timeout: Option<String>,
    /// TCP_NODELAY: `on` or `off` (`--nodelay` alone is on). Default: on.
    #[arg(long, num_args = 0..=1, default_missing_value = "on", value_name = "on|off")]
    pub nodelay: Option<String>,
    /// SO_SNDBUF in bytes. Default: the OS default.
    #[arg(long)]
    pub send_buffer: Option<String>,
    /// SO_RCVBUF in bytes. Default: the OS default.
    #[arg(long)]
    pub recv_buffer: Option<String>,
    /// The most one reply may hold (`64KiB`, `2GiB`), as the SDK's `buffers.max_reply`: a reply announcing more
    /// is refused before its bytes arrive, counted as a `reply_too_large` error, and its connection is
    /// reopened (requests pipelined behind it on that connection count as `closed`). It is the only limit on a reply's size (a resp bulk string, an http body, each line of a line
    /// reply; framed frames also keep the protocol's 16 MiB): raise it to measure larger replies, lower it to
    /// bound what a run may hold (about this much per connection at most; an http body is not held unless
    /// `--expect` reads it: it is counted and dropped as it arrives). From 1 byte to 1 TiB (`1024G`).
    /// Default: 1GiB.
    #[arg(long, value_name = "SIZE")]
    pub max_reply: Option<String>,
    /// TCP keepalive idle time, e.g. `30s`: whole seconds from 1s to 32767s. Default: off.
    #[arg(long)]
    pub keepalive: Option<String>,
    /// Open loop: requests per second on a fixed schedule (latency measured from the intended send time),
    /// from 0.001 to 1e9.
    // A negative rate reaches the check that names the range (clap took `-5` for an unknown flag).
    #[arg(long, short = 'R', allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Open-loop staircase `A..B:STEPS:DURATION`: STEPS steps (at least 2) from A to B requests/s, each lasting
    /// DURATION, a whole number of seconds (at least 1s; STEPS × DURATION at most 365 days).
    #[arg(long)]
    pub ramp: Option<String>,
    /// Fail the run (exit status 1) when this holds, e.g. `errors>1%`, `p99>5ms`, `p99.9>20ms`,
    /// `rate<50000` (repeatable). Metrics: errors (count or %), p50 p90 p99 p99.9 p99.99 max mean (corrected
    /// latency), rate (replies/s), stray (connections closed because the server sent bytes with no request
    /// in flight). Default: `errors>0` and `stray>0`, unless a threshold on that metric is given.
    #[arg(long = "fail-on", value_name = "EXPR")]
    pub fail_on: Vec<String>,
    /// Write the JSON report to FILE, or to stdout with `-`.
    #[arg(long)]
    pub json: Option<String>,
    /// Write the corrected-latency percentile distribution (as wrk2 -L prints) to FILE.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write an HdrHistogram interval log (one interval a second, corrected latency) to FILE.
    #[arg(long)]
    pub hlog: Option<PathBuf>,
    /// No progress bar and no terminal table (files and `--json -` are still written).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Run as one of N agents (processes, pods) sharing this load: this one takes its exact share of
    /// --connections, --rate/--ramp and --requests (remainders go to the lowest indexes). Merge their reports
    /// with `sockpool-loadgen merge`.
    #[arg(long, value_name = "N")]
    pub agents: Option<usize>,
    /// This agent's index, 0..N-1. Default: the JOB_COMPLETION_INDEX environment variable (Kubernetes Indexed
    /// Jobs set it). Ignored without --agents.
    #[arg(long, value_name = "I", env = "JOB_COMPLETION_INDEX")]
    pub agent_index: Option<usize>,
    /// Start the load at this wall-clock time, the same on every agent: RFC 3339 in UTC
    /// (`2026-12-04T10:30:00Z`, fractions allowed) or Unix milliseconds. The measured window opens --warmup
    /// later on every agent. An agent that starts late shortens its warm-up; one later than its warm-up refuses
    /// to run. At most 1 day ahead.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
    /// Open every connection from this local IP address (e.g. 127.0.0.2), so that agents on one host are told
    /// apart by the server.
    #[arg(long, value_name = "IP")]
    pub bind: Option<String>,
}

/// What a target speaks and what to send it: the protocol, TLS and request flags, shared by `run` and `tune`
/// (a tune cell is a run with these). Validated by [`crate::config::Config::from_args`].
#[derive(Debug, Default, Clone, PartialEq, Args, Serialize, Deserialize)]
pub struct ServiceArgs {
    /// Wire protocol: framed, echo, line, http, resp or udp. Default: framed.
    #[arg(long, short = 'p')]
    pub protocol: Option<String>,
    /// Speak TLS to the target (implied by `tls://`); TCP targets only (not `unix:`).
    #[arg(long)]
    pub tls: bool,
    /// PEM file with the CA certificate(s) that sign the server's certificate.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[arg(long)]
    pub insecure: bool,
    /// PEM certificate chain to present to a server that asks for one (mutual TLS); with --key.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// framed: the operation, echo, sink, source or sleep. Default: echo.
    #[arg(long)]
    pub op: Option<String>,
    /// framed `--op sleep`: the service time the server simulates per request (one not below --timeout makes
    /// every request time out, on purpose: the run warns). Default: 1ms.
    #[arg(long)]
    pub sleep: Option<String>,
    /// http: the request method. Default: GET.
    #[arg(long)]
    pub method: Option<String>,
    /// http: the request path. Default: /.
    #[arg(long)]
    pub path: Option<String>,
    /// http: an extra header `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// http: the request body, a template (`{payload}`, `{payload_len}`, `{rand:N}`, `{seq}`; `{{` is a
    /// literal brace). Default: empty.
    #[arg(long)]
    pub body: Option<String>,
    /// resp: the command, quoted as redis-cli quotes (`SET "a b" {payload}` is 3 arguments), each argument a
    /// template, e.g. `SET key:{rand:100000} {payload}`. Default: PING.
    /// line: the line to send, a template with `\r`, `\n`, `\t`, `\\`, `\xHH` escapes. Default: the payload.
    #[arg(long)]
    pub command: Option<String>,
    /// line, resp, http: what every reply (resp: its value as redis-cli prints it; http: the body) must be:
    /// exact text, or `re:REGEX` to match a regular expression. Default: line replies equal the request line; a
    /// resp `PING [message]` is answered `PONG` (or its message); other resp and http replies are not checked
    /// beyond their status.
    #[arg(long)]
    pub expect: Option<String>,
    /// http: the statuses that count as success, e.g. `2xx`, `200,204`, `2xx,304`. Default: 2xx.
    #[arg(long)]
    pub expect_status: Option<String>,
    /// line: lines per reply (e.g. 3 for memcached's `get` of a stored key: VALUE, data, END). Default: 1.
    #[arg(long)]
    pub reply_lines: Option<usize>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// `<sub> --help`, as a user reads it.
    fn help_of(sub: &str) -> String {
        Cli::command()
            .find_subcommand_mut(sub)
            .unwrap_or_else(|| panic!("no subcommand {sub}"))
            .render_long_help()
            .to_string()
    }

    /// `run --help`.
    fn run_help() -> String {
        help_of("run")
    }

    /// The part of `help` from `start` to `end` (`None` when `start` is not in it).
    fn section<'h>(help: &'h str, start: &str, end: &str) -> Option<&'h str> {
        help.split(start)
            .nth(1)
            .and_then(|rest| rest.split(end).next())
    }

    #[test]
    fn run_help_names_the_url_targets_the_parser_takes() {
        // Each of these sets the protocol (`Config::from_args`, `url_targets_set_the_protocol_or_say_why_not`).
        let help = run_help();
        for scheme in [
            "redis://",
            "rediss://",
            "http://",
            "https://",
            "tls://",
            "unix:",
        ] {
            assert!(
                help.contains(scheme),
                "{scheme} missing in run --help:\n{help}"
            );
        }
    }

    #[test]
    fn run_help_gives_the_bounds_the_ramp_is_checked_against() {
        // `config::parse_ramp` refuses fewer than 2 steps and a step that is not whole seconds (`300ms`).
        let help = run_help();
        let ramp = section(&help, "--ramp <RAMP>", "--fail-on").expect("--ramp in run --help");
        for bound in ["at least 2", "whole number of seconds", "at least 1s"] {
            assert!(
                ramp.contains(bound),
                "{bound:?} missing in --ramp's help:{ramp}"
            );
        }
    }

    #[test]
    fn run_and_tune_help_give_max_reply_its_bounds_and_default() {
        // `config::max_reply` refuses 0 and more than the SDK's 1 TiB; the default is the SDK's 1 GiB.
        for name in ["run", "tune"] {
            let help = help_of(name);
            let flag = section(&help, "--max-reply <SIZE>", "\n      --")
                .unwrap_or_else(|| panic!("--max-reply in {name} --help:\n{help}"));
            for needle in ["1 byte to 1 TiB", "Default: 1GiB"] {
                assert!(flag.contains(needle), "{name}: {needle:?} missing:{flag}");
            }
        }
    }

    #[test]
    fn run_help_says_that_a_ping_reply_is_checked() {
        // A PING answered with anything but PONG or its message is a bad_reply (`check.rs`), so the help must not
        // say that resp replies go unchecked beyond their status.
        let help = run_help();
        let expect =
            section(&help, "--expect <EXPECT>", "--expect-status").expect("--expect in run --help");
        assert!(expect.contains("PONG"), "--expect's help:{expect}");
        let checks = help
            .split("Every reply is checked")
            .nth(1)
            .expect("closing section");
        assert!(
            checks.contains("PONG"),
            "run --help's closing section:{checks}"
        );
    }
}
