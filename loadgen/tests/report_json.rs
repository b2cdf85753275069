//! Issue 15 item 6: docs/LOADGEN_JSON.md matches what is written, field by field. The page's tables are read
//! (each `## `path`` heading and the backticked names in its table's first column) and a real run's document
//! must have exactly those fields at each path: none undocumented, none documented and missing.

mod common;
mod fake_servers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use common::run_json_any;
use serde_json::Value;

/// `path → fields` from the page: `""` is the top level, `x[]` each element of the array `x`.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/LOADGEN_JSON.md"
    ))
    .expect("docs/LOADGEN_JSON.md");
    let mut out = BTreeMap::new();
    let mut section: Option<String> = None;
    let mut rows = 0;
    for line in page.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = if h == "Top level" {
                Some(String::new())
            } else {
                h.strip_prefix('`')
                    .and_then(|r| r.split('`').next())
                    .map(str::to_string)
            };
            rows = 0;
            continue;
        }
        let Some(path) = &section else { continue };
        if !line.starts_with('|') {
            continue;
        }
        rows += 1;
        if rows <= 2 {
            continue; // header and separator
        }
        let first = line.split('|').nth(1).unwrap_or_default();
        let names: BTreeSet<String> = first
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        out.entry(path.clone())
            .or_insert_with(BTreeSet::new)
            .extend(names);
    }
    out
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, each) = match part.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (part, false),
        };
        cur = &cur[name];
        if each {
            let arr = cur
                .as_array()
                .unwrap_or_else(|| panic!("{path}: {name} is not an array"));
            cur = arr
                .first()
                .unwrap_or_else(|| panic!("{path}: {name} is empty in this report"));
        }
    }
    cur
}

fn keys(v: &Value, path: &str) -> BTreeSet<String> {
    at(v, path)
        .as_object()
        .unwrap_or_else(|| panic!("{path} is not an object"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn a_real_report_has_exactly_the_documented_fields() {
    let doc = documented();
    for path in [
        "",
        "summary",
        "latency",
        "errors",
        "error_examples[]",
        "verdict",
        "verdict.thresholds[]",
        "intervals[]",
        "steps[]",
        "health",
        "config",
    ] {
        assert!(
            doc.contains_key(path),
            "the page documents no table for {path:?}"
        );
    }
    // A ramp (steps), against an echo server that corrupts replies (bad replies, examples).
    let addr = fake_servers::corrupting_echo(500, Arc::new(AtomicU64::new(0))).to_string();
    let (_, v, stderr) = run_json_any(
        &[
            "--target",
            &addr,
            "--protocol",
            "echo",
            "--payload",
            "100",
            "--ramp",
            "200..400:2:1s",
            "--connections",
            "4",
            "--fail-on",
            "p99>1s",
        ],
        Duration::from_secs(60),
    );
    assert!(v["errors"]["bad_reply"].as_u64().unwrap() > 0, "{stderr}");
    for (path, fields) in &doc {
        // The `latency` table describes each of its latency objects; its own members are named in the prose.
        let path = if path == "latency" {
            "latency.corrected"
        } else {
            path.as_str()
        };
        assert_eq!(
            &keys(&v, path),
            fields,
            "fields of {path:?}: the report vs docs/LOADGEN_JSON.md"
        );
    }
    let members: BTreeSet<String> = [
        "unit",
        "histogram_unit",
        "corrected",
        "raw",
        "connect",
        "pool_wait",
    ]
    .map(String::from)
    .into();
    assert_eq!(keys(&v, "latency"), members);
    // The objects described by reference to another.
    let corrected = &doc["latency"];
    let short: BTreeSet<String> = corrected
        .iter()
        .filter(|k| *k != "percentiles" && *k != "histogram")
        .cloned()
        .collect();
    assert_eq!(&keys(&v, "latency.raw"), corrected);
    // `connect` and `pool_wait` carry their histogram (for `merge`), not the spectrum.
    let with_histogram: BTreeSet<String> = corrected
        .iter()
        .filter(|k| *k != "percentiles")
        .cloned()
        .collect();
    for path in ["latency.connect", "latency.pool_wait"] {
        assert_eq!(keys(&v, path), with_histogram, "{path}");
    }
    for path in ["steps[].corrected", "steps[].raw"] {
        assert_eq!(keys(&v, path), short, "{path}");
    }
    assert!(v["error_codes"].is_object());
    assert_eq!(v["verdict"]["thresholds"].as_array().unwrap().len(), 3);
}
