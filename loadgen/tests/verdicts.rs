//! Issue 15 item 1: every reply is checked against what the protocol promises (and `--expect`,
//! `--expect-status`), against real peers (memcached, nginx, redis) and servers that answer wrongly.

mod common;
mod fake_servers;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{num, run_json, run_json_any};
use serde_json::Value;
use sockpool_server::testing::{
    free_port, peer, start_memcached, start_redis, wait_for_port, ChildGuard,
};

const LIMIT: Duration = Duration::from_secs(60);

fn kind(v: &Value, k: &str) -> f64 {
    num(v, &format!("errors.{k}"))
}

#[test]
fn memcached_version_and_set_get_are_checked_with_expect() {
    let Some(mc) = start_memcached() else {
        return;
    };
    let target = mc.addr.to_string();
    let t = target.as_str();

    // `version` answers one line; the regex checks its shape.
    let v = run_json(
        &[
            "--target",
            t,
            "--protocol",
            "line",
            "--command",
            "version",
            "--expect",
            r"re:^VERSION \d+\.\d+",
            "--requests",
            "2000",
            "--connections",
            "4",
        ],
        LIMIT,
    );
    assert_eq!(num(&v, "summary.ok"), 2000.0, "{}", v["errors"]);

    // `set key:{seq} 0 0 N\r\n<data>\r` + the codec's `\n`: 300 distinct keys, each answered `STORED`.
    let v = run_json(
        &[
            "--target",
            t,
            "--protocol",
            "line",
            "--command",
            r"set key:{seq} 0 0 {payload_len}\r\n{payload}\r",
            "--payload",
            "16",
            "--expect",
            "STORED",
            "--requests",
            "300",
            "--connections",
            "1",
        ],
        LIMIT,
    );
    assert_eq!(num(&v, "summary.ok"), 300.0, "{}", v["errors"]);

    // `get` of a stored key answers three lines: VALUE, the data, END.
    let v = run_json(
        &[
            "--target",
            t,
            "--protocol",
            "line",
            "--command",
            "get key:{rand:300}",
            "--reply-lines",
            "3",
            "--expect",
            r"re:^VALUE key:\d+ 0 16\nabcdefghijklmnop\nEND$",
            "--requests",
            "2000",
            "--connections",
            "4",
            "--pipeline",
            "4",
        ],
        LIMIT,
    );
    assert_eq!(
        num(&v, "summary.ok"),
        2000.0,
        "{} {}",
        v["errors"],
        v["error_examples"]
    );

    // The original bug: memcached answers a bare payload line with ERROR, which was counted as success.
    let (ok, v, _) = run_json_any(
        &[
            "--target",
            t,
            "--protocol",
            "line",
            "--requests",
            "500",
            "--connections",
            "2",
        ],
        LIMIT,
    );
    assert!(!ok);
    assert_eq!(kind(&v, "bad_reply"), 500.0, "{}", v["errors"]);
    assert_eq!(num(&v, "summary.ok"), 0.0);
    let example = v["error_examples"][0]["text"].as_str().unwrap();
    assert!(example.contains("got \"ERROR\""), "{example}");
    // An expectation that memcached's `version` does not meet fails every request, through the open loop too.
    let (ok, v, _) = run_json_any(
        &[
            "--target",
            t,
            "--protocol",
            "line",
            "--command",
            "version",
            "--expect",
            "VERSION 0",
            "--rate",
            "500",
            "--duration",
            "1s",
            "--connections",
            "2",
        ],
        LIMIT,
    );
    assert!(!ok);
    assert_eq!(
        kind(&v, "bad_reply"),
        num(&v, "summary.requests"),
        "{}",
        v["errors"]
    );
    assert!(num(&v, "summary.requests") >= 400.0);
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

/// An nginx whose every location answers `return STATUS "body"`.
struct Nginx404 {
    addr: String,
    _guard: ChildGuard,
    _dir: tempfile::TempDir,
}

fn start_nginx_returning(status: u16) -> Option<Nginx404> {
    let bin = peer("nginx")?;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    for _ in 0..5 {
        let port = free_port();
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             keepalive_requests 100000000;\n\
             server {{\n    listen 127.0.0.1:{port};\n    location / {{ return {status} \"nope\"; }}\n  }}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(&bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn nginx");
        let guard = ChildGuard::group(child);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if wait_for_port(addr, Duration::from_secs(5)) {
            return Some(Nginx404 {
                addr: addr.to_string(),
                _guard: guard,
                _dir: dir,
            });
        }
    }
    panic!("nginx did not start");
}

use std::os::unix::process::CommandExt;

#[test]
fn nginx_404s_are_counted_by_status_and_fail_the_run() {
    let Some(nginx) = start_nginx_returning(404) else {
        return;
    };
    let t = nginx.addr.as_str();
    let (ok, v, stderr) = run_json_any(
        &[
            "--target",
            t,
            "--protocol",
            "http",
            "--requests",
            "1000",
            "--connections",
            "4",
        ],
        LIMIT,
    );
    assert!(!ok);
    assert_eq!(kind(&v, "server_error"), 1000.0, "{}", v["errors"]);
    assert_eq!(
        v["error_codes"]["server_error"]["404"], 1000,
        "{}",
        v["error_codes"]
    );
    assert_eq!(v["verdict"]["exit_status"], 1);
    assert!(stderr.contains("threshold crossed: errors>0"), "{stderr}");
    // The same replies pass when 404 is what the user expects, via an http:// URL target.
    let url = format!("http://{t}/missing");
    let v = run_json(
        &[
            "--target",
            url.as_str(),
            "--expect-status",
            "404",
            "--expect",
            "nope",
            "--requests",
            "500",
        ],
        LIMIT,
    );
    assert_eq!(num(&v, "summary.ok"), 500.0, "{}", v["errors"]);
    assert_eq!(v["config"]["request"]["path"], "/missing");
}

#[test]
fn redis_error_replies_are_counted_by_their_first_word_and_values_checked() {
    let Some(redis) = start_redis(1) else {
        return;
    };
    let url = format!("redis://{}", redis.addr);
    let t = url.as_str();
    let (ok, v, _) = run_json_any(
        &[
            "--target",
            t,
            "--command",
            "NOSUCHCMD x",
            "--requests",
            "300",
            "--connections",
            "2",
        ],
        LIMIT,
    );
    assert!(!ok);
    assert_eq!(
        v["error_codes"]["server_error"]["ERR"], 300,
        "{}",
        v["error_codes"]
    );
    assert!(
        v["error_examples"][0]["text"]
            .as_str()
            .unwrap()
            .contains("unknown command"),
        "{}",
        v["error_examples"]
    );
    // redis-cli quoting: three arguments, the value with a space in it, read back and checked.
    run_json(
        &[
            "--target",
            t,
            "--command",
            r#"SET "a b" "hello world""#,
            "--expect",
            "OK",
            "--requests",
            "10",
        ],
        LIMIT,
    );
    let v = run_json(
        &[
            "--target",
            t,
            "--command",
            r#"GET "a b""#,
            "--expect",
            "hello world",
            "--requests",
            "500",
        ],
        LIMIT,
    );
    assert_eq!(num(&v, "summary.ok"), 500.0);
    let (ok, v, _) = run_json_any(
        &[
            "--target",
            t,
            "--command",
            "INCR n",
            "--expect",
            "re:^[0-9]*[02468]$",
            "--requests",
            "100",
        ],
        LIMIT,
    );
    assert!(!ok, "odd counts fail the regex");
    assert_eq!(kind(&v, "bad_reply"), 50.0, "{}", v["errors"]);
}
