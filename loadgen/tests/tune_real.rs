//! A small real tune through the binary: 2×2 short cells against the embedded server, checking the table,
//! the JSON and the HTML (the same checks as with the fake runner, on measured data).

mod tune_common;

use std::process::Command;

#[test]
fn a_real_two_by_two_tune_writes_a_consistent_table_json_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("tune.json");
    let html_path = dir.path().join("tune.html");
    let out = Command::new(env!("CARGO_BIN_EXE_sockpool-loadgen"))
        .args([
            "tune",
            "--vary",
            "pipeline=1,8",
            "--vary",
            "pool=pooled,per-request",
        ])
        .args([
            "--connections",
            "2",
            "--duration",
            "300ms",
            "--warmup",
            "50ms",
            "--quiet",
        ])
        .arg("--json")
        .arg(&json_path)
        .arg("--html")
        .arg(&html_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells {
        let label = c["label"].as_str().unwrap();
        let row = stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no row for {label}:\n{stdout}"));
        let s = &c["repeats"][0];
        assert!(s["requests"].as_u64().unwrap() > 0, "{label} sent nothing");
        assert_eq!(s["errors"], 0, "{label}");
        assert!(c["p99_us"]["median"].as_f64().unwrap() >= c["p50_us"]["median"].as_f64().unwrap());
        assert!(
            row.contains(&format!("{:.2}", c["ratio"]["rate"].as_f64().unwrap())),
            "{row}"
        );
    }
    // A connection per request costs a handshake each time: its connect-per-request cells are slower than
    // their pooled partners at the same pipeline depth (the effect is an order of magnitude, far above noise).
    let rate = |i: usize| cells[i]["rate"]["median"].as_f64().unwrap();
    assert!(
        rate(1) < rate(0) && rate(3) < rate(2),
        "per-request should be slower: {stdout}"
    );

    let html = std::fs::read_to_string(&html_path).unwrap();
    let (_, embedded) = tune_common::check_html(&html, false);
    assert!(tune_common::approx_eq(&embedded, &json));
}
