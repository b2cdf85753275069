//! The terminal table: one row per cell with rate, p50, p99, p99.9 and errors (medians over the repeats,
//! with the spread when there are several), and the ratio of rate and latency to the baseline.

use std::fmt::Write as _;

use super::stats::Stat;
use super::TuneReport;

/// Adaptive human units for microseconds: `850ns`, `123µs`, `4.56ms`, `1.20s`.
pub fn fmt_us(v: f64) -> String {
    if v < 1.0 {
        format!("{:.0}ns", v * 1e3)
    } else if v < 1e3 {
        format!("{v:.0}µs")
    } else if v < 1e6 {
        format!("{:.2}ms", v / 1e3)
    } else {
        format!("{:.2}s", v / 1e6)
    }
}

/// A rate with k/M suffixes: `950`, `12.3k`, `1.20M`.
pub fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn spread(s: &Stat) -> String {
    if s.runs < 2 || s.median == 0.0 {
        String::new()
    } else {
        format!(" ±{:.0}%", 50.0 * s.spread / s.median)
    }
}

fn ratio(r: Option<f64>, noise: Option<bool>) -> String {
    match r {
        None => "-".into(),
        Some(r) if noise == Some(true) => format!("{r:.2}~"),
        Some(r) => format!("{r:.2}"),
    }
}

/// The table. A `~` after a ratio marks a difference within noise (only with `--repeat` ≥ 2).
pub fn render(report: &TuneReport) -> String {
    let base = &report.baseline().stats;
    let width = report
        .cells
        .iter()
        .map(|c| c.cell.label.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<width$}  {:>13} {:>9} {:>13} {:>9} {:>7}  {:>6} {:>6} {:>6}",
        "cell", "rate/s", "p50", "p99", "p99.9", "errors", "rate×", "p99×", "p99.9×"
    );
    for c in &report.cells {
        let st = &c.stats;
        let _ = writeln!(
            s,
            "{:<width$}  {:>13} {:>9} {:>13} {:>9} {:>7}  {:>6} {:>6} {:>6}",
            c.cell.label,
            format!("{}{}", fmt_rate(st.rate.median), spread(&st.rate)),
            fmt_us(st.p50_us.median),
            format!("{}{}", fmt_us(st.p99_us.median), spread(&st.p99_us)),
            fmt_us(st.p99_9_us.median),
            format!("{:.0}", st.errors.median),
            ratio(st.rate.ratio(&base.rate), st.rate.within_noise(&base.rate)),
            ratio(
                st.p99_us.ratio(&base.p99_us),
                st.p99_us.within_noise(&base.p99_us)
            ),
            ratio(
                st.p99_9_us.ratio(&base.p99_9_us),
                st.p99_9_us.within_noise(&base.p99_9_us)
            ),
        );
    }
    let _ = writeln!(
        s,
        "(corrected latency; {} run{} per cell{}; ratios against the first row, the baseline)",
        report.repeat,
        if report.repeat == 1 { "" } else { "s" },
        if report.repeat > 1 {
            ", median ±half the spread, ~ = within noise"
        } else {
            ""
        }
    );
    s
}
