//! Issue 4 item 3: the `.hlog` reads back with the hdrhistogram crate and its intervals add up to the run's
//! total; the JSON document matches its documented schema (docs/LOADGEN_JSON.md); the `.hgrm` is the
//! percentile distribution of the same histogram.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{args, decode, num, run_json, run_json_at, Hlog};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

fn server() -> (sockpool_server::ServerHandle, String) {
    sockpool_testkit::server::one_worker_target("framed=127.0.0.1:0")
}

#[test]
fn hlog_intervals_add_up_to_the_total_and_json_and_hgrm_agree() {
    let (_server, target) = server();
    let dir = tempfile::tempdir().unwrap();
    let hlog = dir.path().join("run.hlog");
    let hgrm = dir.path().join("run.hgrm");
    let line = "--target {} --rate 500 --duration 3500ms --warmup 500ms --connections 4 --hlog {} --hgrm {}";
    let paths = (hlog.to_str().unwrap(), hgrm.to_str().unwrap());
    let v = run_json(&args(line, &[&target, paths.0, paths.1]), LIMIT);
    let log = Hlog::read(&std::fs::read(&hlog).unwrap());
    for (duration, _) in &log.intervals {
        assert!(
            *duration <= Duration::from_millis(1001),
            "one interval a second"
        );
    }
    let (intervals, sum, saw_start) = (log.intervals.len(), log.count(), log.has_start_time);
    assert!(
        saw_start,
        "the log has a StartTime for HistogramLogProcessor"
    );
    assert!(
        (4..=5).contains(&intervals),
        "3.5 s of measurement: {intervals} intervals"
    );
    let total = num(&v, "latency.corrected.count") as u64;
    assert_eq!(sum, total, "hlog intervals add up to the run's total");
    assert_eq!(
        total,
        num(&v, "summary.requests") as u64,
        "no errors, so every request is in the histogram"
    );
    assert_eq!(total, 1750, "500 req/s for 3.5 s, warm-up excluded");
    let json_hist = decode(v["latency"]["corrected"]["histogram"].as_str().unwrap());
    let merged = log.merged();
    assert_eq!(json_hist.len(), merged.len());
    assert_eq!(json_hist.max(), merged.max());
    let series: u64 = v["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(series, total, "per-second series adds up too");

    let hgrm = std::fs::read_to_string(&hgrm).unwrap();
    assert!(
        hgrm.contains("Value     Percentile TotalCount 1/(1-Percentile)"),
        "{hgrm}"
    );
    assert!(
        hgrm.contains(&format!("Total count    = {total:>12}")),
        "{hgrm}"
    );
}

/// The field names a section of docs/LOADGEN_JSON.md documents: the backticked names in the first column of
/// its table (several per cell allowed), or, for sections without a table, every backticked word.
fn documented(section: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/LOADGEN_JSON.md"
    ))
    .unwrap();
    let start = doc
        .find(&format!("## {section}\n"))
        .unwrap_or_else(|| panic!("section {section}"));
    let body = &doc[start + section.len() + 4..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let ticks = |s: &str| -> Vec<String> {
        s.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let rows: Vec<&str> = body.lines().filter(|l| l.starts_with("| `")).collect();
    if rows.is_empty() {
        ticks(body)
    } else {
        rows.iter()
            .flat_map(|r| ticks(r.split('|').nth(1).unwrap()))
            .collect()
    }
}

#[test]
fn json_matches_the_documented_schema() {
    let (_server, target) = server();
    let v = run_json_at(&target, "--requests 300 --connections 2", LIMIT);
    let check = |obj: &Value, names: &[String], what: &str| {
        assert!(!names.is_empty(), "{what}: nothing documented");
        for n in names {
            assert!(
                obj.get(n).is_some(),
                "{what}.{n} is documented but missing: {obj}"
            );
        }
        let keys: BTreeMap<_, _> = obj.as_object().unwrap().iter().collect();
        for k in keys.keys() {
            assert!(
                names.iter().any(|n| n == *k),
                "{what}.{k} is in the document but not documented"
            );
        }
    };
    check(&v, &documented("Top level"), "top level");
    check(&v["summary"], &documented("`summary`"), "summary");
    check(&v["health"], &documented("`health`"), "health");
    let mut lat = documented("`latency`");
    lat.retain(|n| !["corrected", "raw", "connect", "pool_wait", "us", "ns"].contains(&n.as_str()));
    check(&v["latency"]["corrected"], &lat, "latency.corrected");
    check(&v["latency"]["raw"], &lat, "latency.raw");
    assert_eq!(v["latency"]["unit"], "us");
    let errors = documented("`errors`");
    check(&v["errors"], &errors, "errors");
    for k in ["requests", "errors", "rate"] {
        assert!(v["summary"][k].is_number(), "summary.{k}");
    }
    for k in ["p50", "p90", "p99", "p99_9", "p99_99", "max"] {
        assert!(
            v["latency"]["corrected"][k].as_f64().unwrap() > 0.0,
            "corrected.{k}"
        );
        assert!(v["latency"]["raw"][k].as_f64().unwrap() > 0.0, "raw.{k}");
    }
    assert_eq!(v["schema"], "sockpool-loadgen/1");
    assert_eq!(num(&v, "summary.requests"), 300.0);
}
