//! # sockpool-loadgen
//!
//! A load generator on the sockpool SDK: it drives any server, measures latency from the *intended* send
//! time (corrected for coordinated omission) with the raw figure beside it, records everything in
//! HdrHistograms with memory bounded whatever the run length, and says when it, not the server, was the
//! bottleneck.
//!
//! ## Layout
//!
//! - [`args`]: the raw flags as clap parses them.
//! - [`config`]: the validated configuration (one clear message for bad or conflicting flags); every default.
//! - [`scenario`]: what to send per protocol (payload sizes, HTTP requests, RESP templates with random keys);
//!   the one template parser.
//! - [`check`]: what every reply must be (the protocol's promise, `--expect`, `--expect-status`), judged in
//!   one place for both loops.
//! - [`verdict`]: `--fail-on` thresholds, the verdict and the documented exit statuses.
//! - [`driver`]: one worker's load: the feed its senders take requests from (closed loop, open loop, ramp),
//!   warm-up, stops, and the senders of call-based transports (UDP).
//! - [`open`]: the open loop's feed: the schedule, its dispatcher and pacer, pool-wait timeouts in bulk.
//! - [`interrupt`]: Ctrl-C/SIGTERM as both feeds read it per request taken (once per clock reading).
//! - [`transport`]: the SDK adapters (TCP, TLS and Unix on [`pipeline`]; UDP) behind the driver's `Transport`.
//! - [`pipeline`]: the senders of both loops over TCP, TLS and Unix: one task per connection, owning a
//!   `sockpool::Pipelined`, keeping up to `--pipeline` requests in flight.
//! - [`signals`]: Ctrl-C and SIGTERM: the first stops gracefully and keeps the report, a second exits.
//! - [`outfile`]: output files written whole or not at all (a temporary file renamed into place), so that a
//!   second Ctrl-C leaves no truncated report.
//! - [`runner`]: one whole run: preflight, worker threads, the collector, the result.
//! - [`recorder`]: per-worker histograms (corrected, raw, connect, pool wait, send lag) and error counts; the
//!   [`recorder::Collector`] that merges them per second and in total.
//! - [`report`]: the terminal table and the JSON document (`docs/LOADGEN_JSON.md`).
//! - [`hdr`]: `.hgrm` percentile text, `.hlog` interval log, V2-compressed base64 histograms.
//! - [`health`]: the load generator's own CPU use and send lag, and the bottleneck warning.
//! - [`pacer`]: waking the open-loop sender on time (a `timerfd`, not tokio's millisecond timer).
//! - [`progress`]: indicatif progress on stderr, only on a terminal.
//! - [`tune`]: `tune`, the tuning lab: matrices of settings, noise, SLO rate search, recommendation, HTML.
//! - [`stream`]: `stream`, bulk-transfer throughput per buffer size (like iperf3).
//! - [`agents`]: one run shared by N agents (`--agents`, `--agent-index`, `--start-at`, `--bind`): exact shares,
//!   the common start, each agent's identity.
//! - [`merge`]: `merge`, the agents' reports as one, histograms added bucket by bucket.
#![warn(missing_docs)]

pub mod agents;
pub mod app;
pub mod args;
pub mod check;
pub mod config;
pub mod driver;
pub mod hdr;
pub mod health;
pub mod interrupt;
pub mod merge;
pub mod open;
pub mod outfile;
pub mod pacer;
pub mod pipeline;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod signals;
pub mod stream;
pub mod transport;
pub mod tune;
pub mod verdict;
