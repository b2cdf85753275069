//! Helpers shared by the load generator's integration tests: this package's binary, run through
//! `sockpool_testkit::loadgen`.
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde_json::Value;
pub use sockpool_testkit::loadgen::{args, num};

/// The load generator binary built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sockpool-loadgen"))
}

/// The load generator binary, as a command to add arguments to.
pub fn loadgen() -> Command {
    Command::new(bin())
}

/// Runs the load generator with `args` (bounded by `limit`), returning (exit ok, stdout, stderr).
pub fn run_loadgen(args: &[&str], limit: Duration) -> (bool, String, String) {
    sockpool_testkit::loadgen::run(bin(), args, limit)
}

/// Runs `sockpool-loadgen run --quiet --json - ARGS` and returns the JSON document.
pub fn run_json(args: &[&str], limit: Duration) -> Value {
    sockpool_testkit::loadgen::run_json(bin(), args, limit)
}

/// Like [`run_json`], for a run that may fail: (exit ok, the JSON document, stderr).
pub fn run_json_any(args: &[&str], limit: Duration) -> (bool, Value, String) {
    sockpool_testkit::loadgen::run_json_any(bin(), args, limit)
}

/// Like [`run_json`], with the command line `--target TARGET FLAGS`, FLAGS written as [`args`] reads them.
pub fn run_json_at(target: &str, flags: &str, limit: Duration) -> Value {
    run_json(
        &[&["--target", target][..], &args(flags, &[])].concat(),
        limit,
    )
}

/// Like [`run_json_any`], with the command line `--target TARGET FLAGS`, FLAGS written as [`args`] reads them.
pub fn run_json_any_at(target: &str, flags: &str, limit: Duration) -> (bool, Value, String) {
    run_json_any(
        &[&["--target", target][..], &args(flags, &[])].concat(),
        limit,
    )
}

/// A histogram from its base64 encoding (the JSON's `histogram`, an `.hlog` interval's).
pub fn decode(b64: &str) -> Histogram<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Deserializer::new().deserialize(&mut &bytes[..]).unwrap()
}

/// An `.hlog` read back with the `hdrhistogram` crate's log reader.
pub struct Hlog {
    /// Each interval's length and histogram, in order.
    pub intervals: Vec<(Duration, Histogram<u64>)>,
    /// Whether the log has a `StartTime` (which HistogramLogProcessor needs).
    pub has_start_time: bool,
}

impl Hlog {
    /// Reads `log`; panics unless every entry parses.
    pub fn read(log: &[u8]) -> Hlog {
        let mut hlog = Hlog {
            intervals: Vec::new(),
            has_start_time: false,
        };
        for entry in IntervalLogIterator::new(log) {
            match entry.expect("every hlog entry parses") {
                LogEntry::Interval(i) => hlog
                    .intervals
                    .push((i.duration(), decode(i.encoded_histogram()))),
                LogEntry::StartTime(_) => hlog.has_start_time = true,
                LogEntry::BaseTime(_) => {}
            }
        }
        hlog
    }

    /// The values recorded in all intervals.
    pub fn count(&self) -> u64 {
        self.intervals.iter().map(|(_, h)| h.len()).sum()
    }

    /// Every interval merged into one histogram; panics when there is none.
    pub fn merged(&self) -> Histogram<u64> {
        let mut intervals = self.intervals.iter().map(|(_, h)| h);
        let mut merged = intervals.next().expect("at least one interval").clone();
        merged.auto(true);
        for h in intervals {
            merged.add(h).unwrap();
        }
        merged
    }
}

/// A one-worker reference server with one listener (`proto=addr`), serving TLS with the `(cert, key)` PEM files
/// when given, and its address as a `--target` (`127.0.0.1:PORT`, `[::1]:PORT` or `unix:/path`).
pub fn serve(
    listen: &str,
    cert: Option<(&Path, &Path)>,
) -> (sockpool_server::ServerHandle, String) {
    use sockpool_server::{ListenAddr, Server, ServerConfig};
    let c = ServerConfig {
        listeners: vec![listen.parse().unwrap()],
        workers: 1,
        tls_cert: cert.map(|c| c.0.to_path_buf()),
        tls_key: cert.map(|c| c.1.to_path_buf()),
        ..ServerConfig::default()
    };
    let s = Server::bind(c).unwrap();
    let target = match &s.local_addrs()[0].addr {
        ListenAddr::Tcp(a) | ListenAddr::Udp(a) => a.to_string(),
        ListenAddr::Unix(p) => format!("unix:{}", p.display()),
    };
    (s.spawn(), target)
}

/// A self-signed certificate for `localhost` and its key, written as PEM files into `dir`: (cert, key).
pub fn localhost_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, key.cert.pem()).unwrap();
    std::fs::write(&key_path, key.key_pair.serialize_pem()).unwrap();
    (cert_path, key_path)
}
