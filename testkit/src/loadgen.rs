//! Running a load generator binary (`sockpool-loadgen`, or the same program under a test-only name) and reading
//! its JSON report.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::run_with_timeout;

/// A command line as one types it in a shell: `line` split at white space, a `'quoted string'` kept as one
/// argument (without its quotes), and each bare `{}` replaced by the next of `values` (a target, a path).
///
/// `args("--target {} --header 'X-Test: 1' --requests 100", &[&target])` is
/// `["--target", &target, "--header", "X-Test: 1", "--requests", "100"]`. Panics unless every `{}` has a value
/// and every value a `{}`, or on a quote left open.
pub fn args<'a>(line: &'a str, values: &[&'a str]) -> Vec<&'a str> {
    let mut values = values.iter().copied();
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let (word, tail) = match rest.strip_prefix('\'') {
            Some(quoted) => quoted
                .split_once('\'')
                .unwrap_or_else(|| panic!("a quote left open in {line:?}")),
            None => {
                let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                match word {
                    "{}" => (
                        values
                            .next()
                            .unwrap_or_else(|| panic!("more {{}} than values in {line:?}")),
                        tail,
                    ),
                    _ => (word, tail),
                }
            }
        };
        out.push(word);
        rest = tail.trim_start();
    }
    assert!(values.next().is_none(), "more values than {{}} in {line:?}");
    out
}

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

#[cfg(test)]
mod tests {
    use super::args;

    #[test]
    fn args_splits_quotes_and_fills_placeholders() {
        assert_eq!(
            args(
                " --target {}  --header 'X-Test: 1' --expect '' --json {}",
                &["t:1", "/tmp/r.json"]
            ),
            [
                "--target",
                "t:1",
                "--header",
                "X-Test: 1",
                "--expect",
                "",
                "--json",
                "/tmp/r.json"
            ]
        );
        assert_eq!(args("--command '{}'", &[]), ["--command", "{}"]);
        assert!(args("  ", &[]).is_empty());
    }

    #[test]
    #[should_panic(expected = "more {} than values")]
    fn args_wants_a_value_for_every_placeholder() {
        args("--target {}", &[]);
    }

    #[test]
    #[should_panic(expected = "more values than {}")]
    fn args_wants_a_placeholder_for_every_value() {
        args("--requests 1", &["x"]);
    }

    #[test]
    #[should_panic(expected = "a quote left open")]
    fn args_refuses_an_open_quote() {
        args("--header 'X-Test: 1", &[]);
    }
}
