//! Running a load generator binary (`sockpool-loadgen`, or the same program under a test-only name) and reading
//! its JSON report.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::run_with_timeout;

/// Runs `bin ARGS` (bounded by `limit`): (exit ok, stdout, stderr).
pub fn run(bin: &Path, args: &[&str], limit: Duration) -> (bool, String, String) {
    let out = run_with_timeout(Command::new(bin).args(args), limit)
        .unwrap_or_else(|e| panic!("{} {args:?}: {e}", bin.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `bin run --quiet --json - ARGS`: (exit ok, the JSON document, stderr). The report is written whether the
/// run passed or not.
pub fn run_json_any(bin: &Path, args: &[&str], limit: Duration) -> (bool, Value, String) {
    let mut all = vec!["run", "--quiet", "--json", "-"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = run(bin, &all, limit);
    let v = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout} (stderr: {stderr})"));
    (ok, v, stderr)
}

/// Like [`run_json_any`], asserting that the run passed.
pub fn run_json(bin: &Path, args: &[&str], limit: Duration) -> Value {
    let (ok, v, stderr) = run_json_any(bin, args, limit);
    assert!(ok, "loadgen {args:?} failed: {stderr}");
    v
}

/// The number at a dotted `path` of a JSON document (`"latency.corrected.p99_9"`).
pub fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}
