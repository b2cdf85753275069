//! Issue 13 items 3 and 4: `tune` drives real servers in their own protocols (redis-server over RESP, nginx
//! over HTTP) through the SDK client each cell configures, and refuses a server that does not speak the
//! protocol instead of tabulating zeros.

use std::time::Duration;

use serde_json::Value;
use sockpool_testkit::peers::{peer, start_nginx, start_redis};

use crate::common::run_loadgen;

/// The must-show tune (`--vary pipeline=1,16 --vary connections=4,32 --slo 'p99<2ms'`) against `target` with
/// `flags`, short cells: its JSON document, after checking it measured every cell, without an error, and exited
/// 0 when a rate met the SLO, else 1 with the one-line reason (on a busy machine none may).
fn tune(target: &str, flags: &[&str]) -> Value {
    let mut args = vec!["tune", "--target", target];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[
        "--vary",
        "pipeline=1,16",
        "--vary",
        "connections=4,32",
        "--slo",
        "p99<2ms",
        "--duration",
        "300ms",
        "--warmup",
        "50ms",
        "--quiet",
        "--json",
        "-",
    ]);
    let (ok, stdout, stderr) = run_loadgen(&args, Duration::from_secs(120));
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let met = !json["slo"]["best_rate"].is_null();
    assert_eq!(ok, met, "exit 0 exactly when a rate met the SLO: {stderr}");
    if !met {
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("sockpool-loadgen: no rate met --slo p99<2.00ms on ["),
            "{stderr}"
        );
    }
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4, "{stderr}");
    for c in cells {
        let label = c["label"].as_str().unwrap();
        let run = &c["repeats"][0];
        assert!(run["requests"].as_u64().unwrap() > 0, "{label}: {c}");
        assert!(run["rate"].as_f64().unwrap() > 0.0, "{label}: {c}");
        assert_eq!(run["errors"], 0, "{label}: {}", c["errors_by_kind"]);
        // The cell is the SDK client it ran: its configuration is in the report.
        assert_eq!(
            c["config"]["pipeline"],
            c["settings"]["pipeline"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        );
    }
    // The SLO search ran from a measured cell's closed-loop rate and took at least one step.
    let slo = &json["slo"];
    assert!(slo["closed_rate"].as_f64().unwrap() > 0.0, "{slo}");
    assert!(!slo["points"].as_array().unwrap().is_empty(), "{slo}");
    eprintln!("{stderr}");
    json
}

/// Requests of every cell of `json` (the SLO search's steps come on top).
fn cell_requests(json: &Value) -> u64 {
    json["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["repeats"][0]["requests"].as_u64().unwrap())
        .sum()
}

pub fn tune_redis_over_resp() {
    let redis = start_redis(1);
    let target = redis.addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("redis.toml");
    let json = tune(
        &target,
        &["--protocol", "resp", "--recommend", rec.to_str().unwrap()],
    );
    // The recommendation is a RESP client's configuration for this redis: a service loads it and is served.
    let config = sockpool::ClientConfig::from_file(&rec).unwrap();
    assert_eq!(config.endpoints, vec![target.clone()]);
    let evidence: Value = config.evidence.clone().unwrap().deserialize().unwrap();
    assert_eq!(evidence["protocol"], "resp", "{evidence}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client =
            sockpool::Client::from_config(sockpool::protocol::Resp::default(), config).unwrap();
        client.set("tuned", "yes").await.unwrap();
        assert_eq!(client.get::<String>("tuned").await.unwrap(), "yes");
        client.close().await;
    });
    // Every request the cells counted reached redis as a PING.
    let out = std::process::Command::new(peer("redis-cli"))
        .args(["-h", "127.0.0.1", "-p", &redis.addr.port().to_string()])
        .args(["INFO", "commandstats"])
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&out.stdout);
    let pings: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no PING count in {info}"));
    assert!(
        pings >= cell_requests(&json),
        "redis counted {pings} PINGs, the cells {}",
        cell_requests(&json)
    );
}

pub fn tune_nginx_over_http() {
    let nginx = start_nginx(1, "tuned");
    tune(&nginx.addr.to_string(), &["--protocol", "http"]);
}

pub fn a_framed_tune_of_redis_stops_naming_the_protocol_mismatch() {
    let redis = start_redis(1);
    let target = redis.addr.to_string();
    let (ok, stdout, stderr) = run_loadgen(
        &[
            "tune",
            "--target",
            &target,
            "--protocol",
            "framed",
            "--vary",
            "pipeline=1,16",
            "--vary",
            "timeout=500ms",
            "--duration",
            "300ms",
        ],
        Duration::from_secs(60),
    );
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("protocol mismatch"), "{stderr}");
    assert!(stderr.contains("--protocol framed"), "{stderr}");
    // No table, no recommendation.
    assert!(!stdout.contains("rate/s"), "{stdout}");
    assert!(!stdout.contains("Recommendation"), "{stdout}");
}
