//! Helpers shared by the load generator's integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sockpool_server::testing::{run_with_timeout, ChildGuard};

/// The load generator binary built for these tests.
pub fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sockpool-loadgen"))
}

/// Runs the load generator with `args` (bounded by `limit`), returning (exit ok, stdout, stderr).
pub fn run_loadgen(args: &[&str], limit: Duration) -> (bool, String, String) {
    let out = run_with_timeout(loadgen().args(args), limit).expect("loadgen finished in time");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `sockpool-loadgen run --quiet --json - ARGS` and returns the JSON document.
pub fn run_json(args: &[&str], limit: Duration) -> Value {
    let (ok, v, stderr) = run_json_any(args, limit);
    assert!(ok, "loadgen {args:?} failed: {stderr}");
    v
}

/// Like [`run_json`], for a run that may fail (every request an error): (exit ok, the JSON document, stderr).
/// The report is written either way.
pub fn run_json_any(args: &[&str], limit: Duration) -> (bool, Value, String) {
    let mut all = vec!["run", "--quiet", "--json", "-"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = run_loadgen(&all, limit);
    let v = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout} (stderr: {stderr})"));
    (ok, v, stderr)
}

/// The `sockpool-server` binary next to this test's executable (target/<profile>/sockpool-server).
///
/// Binaries of another crate are not exposed through `CARGO_BIN_EXE_*`, so the first call runs
/// `cargo build -p sockpool-server --bin sockpool-server` (same profile; a no-op when it is up to date, and it
/// keeps a stale binary from an older checkout from being used).
pub fn server_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable");
            // target/<profile>/deps/<test>-<hash>
            let dir = exe
                .parent()
                .and_then(|d| d.parent())
                .expect("target/<profile>")
                .to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "sockpool-server", "--bin", "sockpool-server"]);
            if dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let out = run_with_timeout(&mut cmd, Duration::from_secs(900))
                .expect("cargo build -p sockpool-server");
            assert!(
                out.status.success(),
                "building sockpool-server failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let bin = dir.join("sockpool-server");
            assert!(bin.is_file(), "{} missing after the build", bin.display());
            bin
        })
        .clone()
}

/// A `sockpool-server` child process.
pub struct ServerChild {
    /// Kills it on drop.
    pub guard: ChildGuard,
    /// `(proto, addr)` per listener, from its `listening` lines.
    pub listeners: Vec<(String, String)>,
}

impl ServerChild {
    /// Starts the server binary with `--listen` for each of `listens` (e.g. `framed=127.0.0.1:0`) and waits
    /// for `ready`.
    pub fn start(listens: &[&str], extra: &[&str]) -> ServerChild {
        let mut cmd = Command::new(server_binary());
        for l in listens {
            cmd.args(["--listen", l]);
        }
        cmd.args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn sockpool-server");
        let stdout = child.stdout.take().expect("stdout");
        let guard = ChildGuard::new(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut listeners = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("listening ") {
                    if let Some((p, a)) = rest.split_once(' ') {
                        listeners.push((p.to_string(), a.to_string()));
                    }
                } else if line == "ready" {
                    let _ = tx.send(listeners.clone());
                }
            }
        });
        let listeners = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("sockpool-server printed ready");
        ServerChild { guard, listeners }
    }

    /// The address of the first listener of `proto`.
    pub fn addr(&self, proto: &str) -> String {
        self.listeners
            .iter()
            .find(|(p, _)| p == proto)
            .map(|(_, a)| a.clone())
            .expect("listener")
    }

    /// The child's pid.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.guard.id() as i32)
    }
}

/// The JSON value at a dotted `path` as f64.
pub fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}
