//! Issue 15 item 1 against real peers: memcached driven and checked with `--expect`, nginx's 404s counted by
//! status, redis's error replies counted by their first word.

use std::time::Duration;

use serde_json::Value;
use sockpool_testkit::peers::{start_memcached, start_nginx_returning, start_redis};

use crate::common::{num, run_json_any_at, run_json_at};

const LIMIT: Duration = Duration::from_secs(60);

fn kind(v: &Value, k: &str) -> f64 {
    num(v, &format!("errors.{k}"))
}

pub fn memcached_version_and_set_get_are_checked_with_expect() {
    let mc = start_memcached();
    let target = mc.addr.to_string();
    let t = target.as_str();

    // `version` answers one line; the regex checks its shape.
    let v = run_json_at(
        t,
        r"--protocol line --command version --expect 're:^VERSION \d+\.\d+' --requests 2000 --connections 4",
        LIMIT,
    );
    assert_eq!(num(&v, "summary.ok"), 2000.0, "{}", v["errors"]);

    // `set key:{seq} 0 0 N\r\n<data>\r` + the codec's `\n`: 300 distinct keys, each answered `STORED`.
    let v = run_json_at(
        t,
        r"--protocol line --command 'set key:{seq} 0 0 {payload_len}\r\n{payload}\r' --payload 16 --expect STORED
          --requests 300 --connections 1",
        LIMIT,
    );
    assert_eq!(num(&v, "summary.ok"), 300.0, "{}", v["errors"]);

    // `get` of a stored key answers three lines: VALUE, the data, END.
    let v = run_json_at(
        t,
        r"--protocol line --command 'get key:{rand:300}' --reply-lines 3
          --expect 're:^VALUE key:\d+ 0 16\nabcdefghijklmnop\nEND$' --requests 2000 --connections 4 --pipeline 4",
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
    let (ok, v, _) = run_json_any_at(t, "--protocol line --requests 500 --connections 2", LIMIT);
    assert!(!ok);
    assert_eq!(kind(&v, "bad_reply"), 500.0, "{}", v["errors"]);
    assert_eq!(num(&v, "summary.ok"), 0.0);
    let example = v["error_examples"][0]["text"].as_str().unwrap();
    assert!(example.contains("got \"ERROR\""), "{example}");
    // An expectation that memcached's `version` does not meet fails every request, through the open loop too.
    let (ok, v, _) = run_json_any_at(
        t,
        "--protocol line --command version --expect 'VERSION 0' --rate 500 --duration 1s --connections 2",
        LIMIT,
    );
    // Every request sent got the wrong reply; one still due when the second ended (a loaded machine's sender a
    // little behind) was never sent and is counted `unsent`, not answered.
    assert!(!ok);
    assert_eq!(
        kind(&v, "bad_reply") + kind(&v, "unsent"),
        num(&v, "summary.requests"),
        "{}",
        v["errors"]
    );
    assert!(kind(&v, "bad_reply") >= 400.0, "{}", v["errors"]);
}

pub fn nginx_404s_are_counted_by_status_and_fail_the_run() {
    let nginx = start_nginx_returning(1, 404, "nope");
    let addr = nginx.addr.to_string();
    let t = addr.as_str();
    let (ok, v, stderr) =
        run_json_any_at(t, "--protocol http --requests 1000 --connections 4", LIMIT);
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
    let v = run_json_at(
        &url,
        "--expect-status 404 --expect nope --requests 500",
        LIMIT,
    );
    assert_eq!(num(&v, "summary.ok"), 500.0, "{}", v["errors"]);
    assert_eq!(v["config"]["request"]["path"], "/missing");
}

pub fn redis_error_replies_are_counted_by_their_first_word_and_values_checked() {
    let redis = start_redis(1);
    let url = format!("redis://{}", redis.addr);
    let t = url.as_str();
    let (ok, v, _) = run_json_any_at(
        t,
        "--command 'NOSUCHCMD x' --requests 300 --connections 2",
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
    run_json_at(
        t,
        r#"--command 'SET "a b" "hello world"' --expect OK --requests 10"#,
        LIMIT,
    );
    let v = run_json_at(
        t,
        r#"--command 'GET "a b"' --expect 'hello world' --requests 500"#,
        LIMIT,
    );
    assert_eq!(num(&v, "summary.ok"), 500.0);
    let (ok, v, _) = run_json_any_at(
        t,
        "--command 'INCR n' --expect 're:^[0-9]*[02468]$' --requests 100",
        LIMIT,
    );
    assert!(!ok, "odd counts fail the regex");
    assert_eq!(kind(&v, "bad_reply"), 50.0, "{}", v["errors"]);
}
