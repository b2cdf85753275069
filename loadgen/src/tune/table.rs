//! The terminal table: one row per cell with rate, p50, p99, p99.9 and errors (medians over the repeats,
//! with the spread when there are several), and the ratio of rate and each latency to the baseline. The
//! HTML report's table is made of the same [`row`]s.

use std::fmt::Write as _;

use super::stats::{CellStats, Stat};
use super::{CellOutcome, TuneReport};

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

/// The column headings, shared by the terminal and the HTML table.
pub const HEADER: [&str; 10] = [
    "cell", "rate/s", "p50", "p99", "p99.9", "errors", "rate×", "p50×", "p99×", "p99.9×",
];

/// One cell's row as text, column by column ([`HEADER`]): medians with `±` half the spread (as a share of
/// the median) when there are repeats, and each ratio to the baseline with `~` when it is within noise.
pub fn row(c: &CellOutcome, base: &CellStats) -> [String; 10] {
    let st = &c.stats;
    let both = |v: String, s: &Stat| format!("{v}{}", spread(s));
    let r = |s: &Stat, b: &Stat| ratio(s.ratio(b), s.within_noise(b));
    [
        c.cell.label.clone(),
        both(fmt_rate(st.rate.median), &st.rate),
        both(fmt_us(st.p50_us.median), &st.p50_us),
        both(fmt_us(st.p99_us.median), &st.p99_us),
        both(fmt_us(st.p99_9_us.median), &st.p99_9_us),
        format!("{:.0}", st.errors.median),
        r(&st.rate, &base.rate),
        r(&st.p50_us, &base.p50_us),
        r(&st.p99_us, &base.p99_us),
        r(&st.p99_9_us, &base.p99_9_us),
    ]
}

/// The line under the table: what the figures are, what `±` and `~` mean when there are repeats, and the
/// baseline's values when its row is labelled `baseline` (one key at a time).
pub fn footnote(report: &TuneReport) -> String {
    let base = &report.baseline().cell;
    let values = if base.label == "baseline" && !base.settings.is_empty() {
        let kv: Vec<String> = base
            .settings
            .iter()
            .map(|(k, v)| format!("{}={v}", k.name()))
            .collect();
        format!(" ({})", kv.join(" "))
    } else {
        String::new()
    };
    format!(
        "(corrected latency; {} run{} per cell{}; ratios against the first row, the baseline{values})",
        report.repeat,
        if report.repeat == 1 { "" } else { "s" },
        if report.repeat > 1 {
            ", median ±half the spread, ~ = within noise (the runs' ranges overlap the baseline's)"
        } else {
            ""
        }
    )
}

/// The table. A `~` after a ratio marks a difference within noise (only with `--repeat` ≥ 2).
pub fn render(report: &TuneReport) -> String {
    let base = &report.baseline().stats;
    let rows: Vec<[String; 10]> = report.cells.iter().map(|c| row(c, base)).collect();
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, v) in widths.iter_mut().zip(r) {
            *w = (*w).max(v.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cols: Vec<&str>| {
        let mut l = String::new();
        for (i, (v, w)) in cols.iter().zip(&widths).enumerate() {
            let pad = w.saturating_sub(v.chars().count());
            match i {
                0 => {
                    l.push_str(v);
                    l.push_str(&" ".repeat(pad));
                }
                _ => {
                    l.push_str(if i == 1 || i == 6 { "  " } else { " " });
                    l.push_str(&" ".repeat(pad));
                    l.push_str(v);
                }
            }
        }
        let _ = writeln!(s, "{}", l.trim_end());
    };
    line(HEADER.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    let _ = writeln!(s, "{}", footnote(report));
    s
}
