//! A small tune (2×2, with repeats and an SLO) through a fake runner: the table, the JSON and the HTML agree.

mod tune_common;

use sockpool_loadgen::tune::{self, CellConfig, CellResult, CellRunner, Plan, TuneError};
use tune_common::{args, check_html, Fake};

#[test]
fn a_two_by_two_tune_agrees_in_table_json_and_html() {
    let plan = Plan::from_args(&args(
        &["pipeline=1,4", "pool=pooled,per-request"],
        3,
        Some("p99<700us"),
    ))
    .unwrap();
    let fake = Fake::default();
    let mut lines = Vec::new();
    let report = tune::run(&fake, &plan, &mut |l| lines.push(l.to_string())).unwrap();

    // 4 cells × 3 repeats, then the SLO search.
    let calls = fake.calls.borrow();
    assert_eq!(calls.iter().filter(|c| c.rate.is_none()).count(), 12);
    assert!(calls.iter().any(|c| c.rate.is_some()));
    assert_eq!(lines.iter().filter(|l| l.starts_with('[')).count(), 12);

    // Table: a row per cell in matrix order, the baseline first with ratio 1.00.
    let table = tune::table::render(&report);
    let rows: Vec<&str> = table.lines().skip(1).take(4).collect();
    let labels = [
        "pipeline=1 pool=pooled",
        "pipeline=1 pool=per-request",
        "pipeline=4 pool=pooled",
        "pipeline=4 pool=per-request",
    ];
    for (row, label) in rows.iter().zip(labels) {
        assert!(row.starts_with(label), "{row}");
    }
    assert!(rows[0].contains("1.00"));
    // pipeline=4 pooled has 4× the fake capacity: the table says so.
    assert!(
        rows[2]
            .split_whitespace()
            .any(|w| w.starts_with("3.9") || w.starts_with("4.0")),
        "{}",
        rows[2]
    );

    // JSON: every cell, repeats, medians, ratios to the baseline.
    let json = report.to_json();
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    assert_eq!(json["repeat"], 3);
    for (c, label) in cells.iter().zip(labels) {
        assert_eq!(c["label"], label);
        assert_eq!(c["repeats"].as_array().unwrap().len(), 3);
        let median = c["rate"]["median"].as_f64().unwrap();
        let base = cells[0]["rate"]["median"].as_f64().unwrap();
        assert!((c["ratio"]["rate"].as_f64().unwrap() - median / base).abs() < 1e-9);
        let mut rates: Vec<f64> = c["repeats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["rate"].as_f64().unwrap())
            .collect();
        rates.sort_by(f64::total_cmp);
        assert_eq!(median, rates[1]);
        assert!((c["rate"]["spread"].as_f64().unwrap() - (rates[2] - rates[0])).abs() < 1e-9);
    }
    assert_eq!(cells[2]["within_noise"]["rate"], false);
    assert_eq!(cells[0]["settings"]["pool"], "pooled");

    // The SLO search ran on the best cell that meets it in the closed loop; the recommendation follows it.
    let slo = &json["slo"];
    assert_eq!(
        slo["cell"], 0,
        "pipeline=4 breaks 700µs even unloaded; pipeline=1 pooled is the best that meets it"
    );
    assert!(slo["best_rate"].as_f64().unwrap() > 0.0);
    assert_eq!(json["recommendation"]["cell"], slo["cell"]);
    assert_eq!(json["recommendation"]["meets_slo"], true);

    // HTML: parses, one SVG per plot, plotted points = JSON points; and it embeds the same JSON.
    let html = tune::html::render(&report);
    let (doc, embedded) = check_html(&html, true);
    assert!(
        tune_common::approx_eq(&embedded, &json),
        "the HTML embeds the JSON document"
    );
    // The SLO's `<` is escaped in the embedded JSON (the file stays well-formed XML) and parses back.
    assert_eq!(embedded["slo"]["spec"], "p99<700µs");
    assert!(html.contains("p99\\u003c700µs"), "escaped in the file");
    let table_rows = doc.all("tr");
    assert_eq!(table_rows.len(), 5, "header + a row per cell");

    // The HTML table is the terminal table: the same columns (p50× included), the same text, ± and ~ too.
    let heads: Vec<&str> = doc.all("th").iter().map(|t| t.text.as_str()).collect();
    assert_eq!(heads, tune::table::HEADER.to_vec());
    assert!(table.lines().next().unwrap().contains("p50×"), "{table}");
    let p50x = heads.iter().position(|h| *h == "p50×").unwrap();
    for (i, tr) in table_rows[1..].iter().enumerate() {
        let tds: Vec<&str> = tr.all("td").iter().map(|t| t.text.as_str()).collect();
        assert_eq!(tds.len(), heads.len());
        assert_eq!(tds[0], labels[i]);
        let line = table.lines().find(|l| l.starts_with(labels[i])).unwrap();
        for td in &tds {
            assert!(
                line.contains(td),
                "terminal row {line:?} lacks HTML cell {td:?}"
            );
        }
        let want = cells[i]["ratio"]["p50"].as_f64().unwrap();
        assert!(tds[p50x].starts_with(&format!("{want:.2}")), "{tds:?}");
        assert!(tds[1].contains('±'), "rate with its spread: {tds:?}");
    }
    let html_text: Vec<String> = doc.all("td").iter().map(|t| t.text.clone()).collect();
    assert!(
        html_text.iter().any(|t| t.ends_with('~')),
        "a ratio within noise is marked in the HTML too: {html_text:?}"
    );
    assert!(table.contains('~'), "and in the terminal table: {table}");
}

#[test]
fn the_rate_search_stops_at_the_first_failure_and_bisects() {
    // Fake p99 ≈ 199µs / (1 − rate/capacity): under 700µs up to 71.6 % of the capacity.
    let plan = Plan::from_args(&args(&["pipeline=1"], 1, Some("p99<700us"))).unwrap();
    let fake = Fake::default();
    let report = tune::run(&fake, &plan, &mut |_| {}).unwrap();
    let s = report.slo.as_ref().unwrap();
    let cap = s.closed_rate;
    assert!((cap - 10_000.0).abs() < 1.0);
    let targets: Vec<f64> = s
        .points
        .iter()
        .map(|p| (p.target_rate / cap * 100.0).round())
        .collect();
    // Each failure is confirmed by a second set at the same rate before the search turns.
    assert_eq!(
        targets,
        vec![20.0, 40.0, 60.0, 80.0, 80.0, 70.0, 75.0, 75.0]
    );
    let pass: Vec<bool> = s.points.iter().map(|p| p.pass).collect();
    assert_eq!(
        pass,
        vec![true, true, true, false, false, true, false, false]
    );
    assert_eq!(s.limit, tune::slo::Limit::Server);
    assert_eq!(s.limit_rate.map(|r| (r / cap * 100.0).round()), Some(75.0));
    assert_eq!(s.best_rate.map(|b| (b / cap * 100.0).round()), Some(70.0));
    let curve = s.curve();
    assert!(curve
        .windows(2)
        .all(|w| w[0].target_rate <= w[1].target_rate && w[0].p99_us <= w[1].p99_us * 1.03));
    assert_eq!(report.recommendation.rate, s.best_rate.unwrap());
    // Its p99 is the one measured at that open-loop rate, not the closed loop's, and it says so.
    let rec = &report.recommendation;
    let at = s
        .points
        .iter()
        .find(|p| p.target_rate == s.best_rate.unwrap())
        .unwrap();
    assert_eq!(rec.p99_us, at.p99_us);
    assert_eq!(rec.measured, "open-loop");
    assert_eq!(rec.closed_loop_p99_us, report.cells[0].stats.p99_us.median);
    assert_ne!(rec.p99_us, rec.closed_loop_p99_us);
    let json = report.to_json();
    assert_eq!(json["recommendation"]["measured"], "open-loop");
    assert_eq!(json["recommendation"]["p99_us"].as_f64(), Some(at.p99_us));
    let text = tune::recommend::render(rec, Some(s));
    let want = format!(
        "at {:.0} req/s open-loop: p99 {}",
        rec.rate,
        tune::table::fmt_us(at.p99_us)
    );
    assert!(text.contains(&want), "{text}");
}

#[test]
fn an_slo_nothing_meets_is_reported_as_such() {
    let plan = Plan::from_args(&args(&["pipeline=1,2"], 1, Some("p99<50us"))).unwrap();
    let report = tune::run(&Fake::default(), &plan, &mut |_| {}).unwrap();
    let s = report.slo.as_ref().unwrap();
    assert_eq!(s.best_rate, None);
    assert!(s.points.iter().all(|p| !p.pass));
    assert_eq!(report.recommendation.meets_slo, Some(false));
    let text = tune::recommend::render(&report.recommendation, Some(s));
    assert!(
        text.contains("highest rate meeting the SLO: none"),
        "{text}"
    );
    // Without an SLO the HTML has the spectrum only.
    let plan = Plan::from_args(&args(&["pipeline=1,2"], 1, None)).unwrap();
    let report = tune::run(&Fake::default(), &plan, &mut |_| {}).unwrap();
    check_html(&tune::html::render(&report), false);
}

#[test]
fn a_technique_with_no_effect_is_within_noise_and_a_real_one_is_not() {
    let plan = Plan::from_args(&args(&["timeout=5s,6s", "pipeline=1,2"], 3, None)).unwrap();
    let report = tune::run(&Fake::default(), &plan, &mut |_| {}).unwrap();
    let t = &report.recommendation.techniques;
    let timeout = t.iter().find(|t| t.key == "timeout").unwrap();
    assert_eq!(timeout.within_noise, Some(true));
    assert_eq!(timeout.pairs, 2);
    let pipeline = t.iter().find(|t| t.key == "pipeline").unwrap();
    assert_eq!(pipeline.within_noise, Some(false));
    assert!((pipeline.rate_ratio.unwrap() - 2.0).abs() < 0.05);
    assert!((pipeline.p99_ratio.unwrap() - 2.0).abs() < 0.05);
    // With one run there is no noise measured, and the report does not pretend otherwise.
    let plan = Plan::from_args(&args(&["timeout=5s,6s"], 1, None)).unwrap();
    let report = tune::run(&Fake::default(), &plan, &mut |_| {}).unwrap();
    assert_eq!(report.recommendation.techniques[0].within_noise, None);
    assert!(report.to_json()["cells"][1]["within_noise"]["rate"].is_null());
}

/// The fake, but every second run of a `pipeline=2` cell is ten times slower: a cell with a huge spread.
#[derive(Default)]
struct Noisy(Fake);

impl CellRunner for Noisy {
    fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError> {
        let mut r = self.0.run(cell)?;
        let runs = self
            .0
            .calls
            .borrow()
            .iter()
            .filter(|c| c.pipeline == 2)
            .count();
        if cell.pipeline == 2 && runs % 2 == 0 {
            r.corrected = tune_common::slowed(&r.corrected, 10);
        }
        Ok(r)
    }
}

#[test]
fn a_noisy_cell_whose_runs_all_differ_from_the_baseline_is_not_called_noise() {
    // Baseline p99 ≈ 200µs ±1%; pipeline=2 runs at ≈ 400µs and ≈ 4ms: median ≈ 2.2ms ±80%. The difference is
    // smaller than that spread, but every run of the cell is slower than every baseline run: not noise.
    let plan = Plan::from_args(&args(&["pipeline=1,2"], 2, None)).unwrap();
    let report = tune::run(&Noisy::default(), &plan, &mut |_| {}).unwrap();
    let cell = &report.cells[1].stats.p99_us;
    let base = &report.baseline().stats.p99_us;
    assert!(cell.min > base.max, "{cell:?} vs {base:?}");
    assert!(
        (cell.median - base.median).abs() <= cell.spread,
        "the case the old rule got wrong: {cell:?}"
    );
    assert_eq!(cell.within_noise(base), Some(false));
    let json = report.to_json();
    assert_eq!(json["cells"][1]["within_noise"]["p99"], false);
    let row = tune::table::render(&report)
        .lines()
        .find(|l| l.starts_with("pipeline=2"))
        .unwrap()
        .to_string();
    assert!(row.contains('±'), "{row}");
    assert!(
        !row.contains('~'),
        "no ratio of this row is within noise: {row}"
    );
    let t = &report.recommendation.techniques[0];
    assert_eq!(t.within_noise, Some(false));
    // Overlapping ranges are noise, touching ones too; disjoint ones are not, whatever the spreads.
    use tune::Stat;
    let base = Stat::of(&[233.0, 237.0]);
    assert_eq!(
        Stat::of(&[5015.0, 27365.0]).within_noise(&base),
        Some(false)
    );
    assert_eq!(Stat::of(&[237.0, 900.0]).within_noise(&base), Some(true));
    assert_eq!(Stat::of(&[100.0, 234.0]).within_noise(&base), Some(true));
}

#[test]
fn one_at_a_time_rows_are_labelled_by_the_key_that_differs_and_the_footnote_gives_the_baseline() {
    let mut a = args(&["pipeline=1,2", "pool=pooled,per-request"], 1, None);
    a.one_at_a_time = true;
    let report = tune::run(&Fake::default(), &Plan::from_args(&a).unwrap(), &mut |_| {}).unwrap();
    let table = tune::table::render(&report);
    let rows: Vec<&str> = table.lines().skip(1).take(3).collect();
    for (row, label) in rows
        .iter()
        .zip(["baseline ", "pipeline=2 ", "pool=per-request "])
    {
        assert!(row.starts_with(label), "{table}");
    }
    assert!(
        table.contains("the baseline (pipeline=1 pool=pooled)"),
        "{table}"
    );
    assert_eq!(report.to_json()["cells"][2]["settings"]["pipeline"], "1");
}

#[test]
fn without_an_slo_a_varied_rate_recommends_the_highest_rate_kept_up_with_and_keeps_it_out_of_the_config(
) {
    // The fake serves 10k req/s × pipeline: at 15k only pipeline=2 keeps up; at 5k both do.
    let plan = Plan::from_args(&args(&["rate=5000,15000", "pipeline=1,2"], 1, None)).unwrap();
    let report = tune::run(&Fake::default(), &plan, &mut |_| {}).unwrap();
    let rec = &report.recommendation;
    assert_eq!(rec.label, "rate=15000 pipeline=2", "{rec:?}");
    assert_eq!(rec.measured, "fixed-rate");
    assert!(rec.reason.contains("rates offered"), "{}", rec.reason);
    let text = tune::recommend::render(rec, None);
    assert!(text.contains("open loop at its --vary rate"), "{text}");
    assert!(!text.contains("closed loop"), "{text}");
    // The rate is the load, not a client setting: the file keeps it as evidence only.
    let config = tune::recommend::recommendation_file(&report, Some("127.0.0.1:9"), "framed");
    let e: serde_json::Value = config.evidence.unwrap().deserialize().unwrap();
    assert_eq!(e["not_in_config"], serde_json::json!(["rate=15000"]));
    assert_eq!(config.pipeline_depth, 2);
}
