//! Issue 15 item 1: every reply is checked against what the protocol promises (and `--expect`,
//! `--expect-status`), against servers that answer wrongly. (Against real peers, memcached, nginx and redis:
//! `tests/peers/verdicts.rs`.)

mod common;
mod fake_servers;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{num, run_json_any};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

fn kind(v: &Value, k: &str) -> f64 {
    num(v, &format!("errors.{k}"))
}

#[test]
fn a_line_server_answering_wrong_gives_100_percent_bad_reply() {
    let addr = fake_servers::line_answering("WRONG").to_string();
    for extra in [
        &["--requests", "3000", "--pipeline", "8"][..],
        &["--rate", "1000", "--duration", "1s"][..],
    ] {
        let mut args = vec![
            "--target",
            addr.as_str(),
            "--protocol",
            "line",
            "--connections",
            "4",
        ];
        args.extend_from_slice(extra);
        let (ok, v, stderr) = run_json_any(&args, LIMIT);
        assert!(!ok, "{extra:?}");
        let n = num(&v, "summary.requests");
        assert!(n >= 900.0, "{extra:?}: {n}");
        assert_eq!(kind(&v, "bad_reply"), n, "{extra:?}: {}", v["errors"]);
        assert_eq!(kind(&v, "total"), n);
        assert_eq!(
            num(&v, "summary.replies"),
            n,
            "a wrong reply is still a reply"
        );
        assert_eq!(v["verdict"]["exit_status"], 1);
        let examples = v["error_examples"].as_array().unwrap();
        assert!(!examples.is_empty() && examples.len() <= 3, "{examples:?}");
        let text = examples[0]["text"].as_str().unwrap();
        assert!(text.starts_with("got \"WRONG\", expected \""), "{text}");
        assert!(stderr.contains("errors>0"), "{stderr}");
    }
}

#[test]
fn an_echo_server_corrupting_one_byte_in_1000_gives_exactly_that_many_errors() {
    // 100-byte requests: every corrupted byte lands in a request of its own.
    for (what, extra) in [
        (
            "closed, pipelined",
            &["--requests", "20000", "--pipeline", "4"][..],
        ),
        ("open loop", &["--rate", "4000", "--duration", "2s"][..]),
    ] {
        let flipped = Arc::new(AtomicU64::new(0));
        let addr = fake_servers::corrupting_echo(1000, flipped.clone()).to_string();
        let mut args = vec![
            "--target",
            addr.as_str(),
            "--protocol",
            "echo",
            "--payload",
            "100",
            "--connections",
            "4",
        ];
        args.extend_from_slice(extra);
        let (ok, v, _) = run_json_any(&args, LIMIT);
        let flipped = flipped.load(Ordering::SeqCst) as f64;
        eprintln!(
            "{what}: {} requests, {flipped} bytes corrupted",
            num(&v, "summary.requests")
        );
        assert!(!ok);
        assert!(flipped >= 5.0, "{what}: the server corrupted {flipped}");
        assert_eq!(kind(&v, "bad_reply"), flipped, "{what}: {}", v["errors"]);
        assert_eq!(kind(&v, "total"), flipped, "{what}");
        assert_eq!(
            num(&v, "summary.ok") + flipped,
            num(&v, "summary.requests"),
            "{what}"
        );
    }
}
