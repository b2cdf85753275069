//! `--html FILE`: one self-contained HTML file (no scripts run, nothing fetched) with hand-written SVG plots:
//!
//! 1. each cell's percentile spectrum on HdrHistogram's plotter axis, `x = 1/(1−p)` on a log scale
//!    (1 = p0, 10 = p90, 100 = p99, 1000 = p99.9 …), corrected latency on the y axis;
//! 2. the latency-versus-rate curve of the SLO search (p50, p99 and the SLO's quantile against the target
//!    rate, with the limit drawn), when `--slo` was given;
//!
//! then the table. The document is well-formed XML (every element closed, no raw `<` or `&` even in the
//! embedded JSON, see [`script_json`]) so tests can parse it, each plotted
//! line carries its data-space points in a `data-points` attribute, and the JSON document is embedded in
//! `<script type="application/json" id="tune-data">` so a test can check that the plots match it.

use std::fmt::Write as _;

use super::table::{fmt_rate, fmt_us};
use super::{round3, spectrum, TuneReport};

const W: f64 = 900.0;
const H: f64 = 420.0;
const ML: f64 = 70.0;
const MR: f64 = 40.0;
const MT: f64 = 20.0;
const MB: f64 = 50.0;

const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Escapes text for HTML/XML content and attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// One plotted line: a name and its points in data space.
struct Series {
    name: String,
    points: Vec<[f64; 2]>,
    dashed: bool,
}

/// An axis: data range to pixels, linear or log10.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn frac(&self, v: f64) -> f64 {
        let (v, lo, hi) = if self.log {
            (v.max(1e-9).log10(), self.lo.log10(), self.hi.log10())
        } else {
            (v, self.lo, self.hi)
        };
        if hi > lo {
            ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }
    fn x(&self, v: f64) -> f64 {
        ML + self.frac(v) * (W - ML - MR)
    }
    fn y(&self, v: f64) -> f64 {
        H - MB - self.frac(v) * (H - MT - MB)
    }
}

/// "Nice" linear ticks over `0..=hi`, none past `hi` (it would be drawn outside the plot, over the label below).
fn linear_ticks(hi: f64) -> Vec<f64> {
    if hi <= 0.0 {
        return vec![0.0];
    }
    let raw = hi / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| hi / s <= 6.0)
        .unwrap_or(raw);
    (0..=((hi / step).ceil() as usize))
        .map(|i| i as f64 * step)
        .filter(|v| *v <= hi * (1.0 + 1e-9))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn plot(
    id: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    xa: &Axis,
    ya: &Axis,
    x_ticks: &[(f64, String)],
    series: &[Series],
    hline: Option<(f64, String)>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<figure><figcaption>{}</figcaption><svg id="{id}" class="plot" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#,
        esc(title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff" />"##
    );
    // Grid and ticks.
    for (v, label) in x_ticks {
        let x = xa.x(*v);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{MT}" x2="{x:.1}" y2="{:.1}" stroke="#dddddd" /><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            H - MB,
            H - MB + 16.0,
            esc(label)
        );
    }
    for v in linear_ticks(ya.hi) {
        let y = ya.y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#dddddd" /><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - MR,
            ML - 6.0,
            y + 4.0,
            esc(&if v == 0.0 { "0".to_string() } else { fmt_us(v) })
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{ML}" y="{MT}" width="{:.1}" height="{:.1}" fill="none" stroke="#333333" />"##,
        W - ML - MR,
        H - MT - MB
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="14" y="{:.1}" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"#,
        ML + (W - ML - MR) / 2.0,
        H - 12.0,
        esc(x_label),
        MT + (H - MT - MB) / 2.0,
        MT + (H - MT - MB) / 2.0,
        esc(y_label)
    );
    if let Some((v, label)) = hline {
        let y = ya.y(v);
        let _ = writeln!(
            s,
            r##"<line class="limit" x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#000000" stroke-dasharray="6 4" /><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - MR,
            W - MR - 4.0,
            y - 4.0,
            esc(&label)
        );
    }
    for (i, se) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let data: Vec<String> = se
            .points
            .iter()
            .map(|p| format!("{},{}", p[0], p[1]))
            .collect();
        let px: Vec<String> = se
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", xa.x(p[0]), ya.y(p[1])))
            .collect();
        let dash = if se.dashed {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = writeln!(
            s,
            r#"<polyline class="series" data-series="{}" data-points="{}" points="{}" fill="none" stroke="{color}" stroke-width="2"{dash} />"#,
            esc(&se.name),
            data.join(" "),
            px.join(" ")
        );
        // Legend.
        let ly = MT + 14.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="3"{dash} /><text x="{:.1}" y="{:.1}">{}</text>"#,
            ML + 10.0,
            ly - 4.0,
            ML + 34.0,
            ly - 4.0,
            ML + 40.0,
            ly,
            esc(&se.name)
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let mut t = format!("{p:.4}");
    while t.ends_with('0') {
        t.pop();
    }
    if t.ends_with('.') {
        t.pop();
    }
    format!("p{t}")
}

/// The spectrum plot's series: one per cell, the same points as the JSON's `cells[i].spectrum`.
fn spectrum_plot(r: &TuneReport) -> String {
    let series: Vec<Series> = r
        .cells
        .iter()
        .map(|c| Series {
            name: c.cell.label.clone(),
            points: spectrum(&c.corrected),
            dashed: false,
        })
        .collect();
    let x_hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p[0]))
        .fold(10.0, f64::max);
    let y_hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p[1]))
        .fold(1.0, f64::max);
    let decades = x_hi.log10().ceil().max(1.0) as i32;
    let xa = Axis {
        lo: 1.0,
        hi: 10f64.powi(decades),
        log: true,
    };
    let ya = Axis {
        lo: 0.0,
        hi: y_hi * 1.05,
        log: false,
    };
    let ticks: Vec<(f64, String)> = (0..=decades)
        .map(|d| 10f64.powi(d))
        .map(|x| (x, percentile_label(x)))
        .collect();
    plot(
        "spectrum",
        "Latency by percentile (corrected), HdrHistogram axis 1/(1-p)",
        "percentile",
        "latency",
        &xa,
        &ya,
        &ticks,
        &series,
        None,
    )
}

/// The latency-versus-rate plot: p50, p99 and the SLO's quantile per target rate (the JSON's `slo.points`).
fn rate_plot(r: &TuneReport) -> Option<String> {
    let s = r.slo.as_ref()?;
    let curve = s.curve();
    if curve.is_empty() {
        return None;
    }
    let pts = |f: fn(&super::RatePoint) -> f64| -> Vec<[f64; 2]> {
        curve
            .iter()
            .map(|p| [round3(p.target_rate), round3(f(p))])
            .collect()
    };
    let mut series = vec![
        Series {
            name: "p50".into(),
            points: pts(|p| p.p50_us),
            dashed: true,
        },
        Series {
            name: "p99".into(),
            points: pts(|p| p.p99_us),
            dashed: false,
        },
    ];
    if (s.slo.quantile - 0.99).abs() > 1e-12 {
        series.push(Series {
            name: format!("p{} (the SLO's quantile)", s.slo.quantile * 100.0),
            points: pts(|p| p.slo_us),
            dashed: false,
        });
    }
    let x_hi = curve.iter().map(|p| p.target_rate).fold(1.0, f64::max) * 1.05;
    let y_hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p[1]))
        .fold(s.slo.limit_us, f64::max)
        .min(s.slo.limit_us * 20.0)
        * 1.05;
    let xa = Axis {
        lo: 0.0,
        hi: x_hi,
        log: false,
    };
    let ya = Axis {
        lo: 0.0,
        hi: y_hi,
        log: false,
    };
    let ticks: Vec<(f64, String)> = linear_ticks(x_hi)
        .into_iter()
        .filter(|v| *v <= x_hi)
        .map(|v| (v, fmt_rate(v)))
        .collect();
    Some(plot(
        "rate-curve",
        &format!(
            "Latency versus open-loop rate for [{}], SLO {}",
            s.label, s.spec
        ),
        "target rate (requests/s)",
        "latency (corrected)",
        &xa,
        &ya,
        &ticks,
        &series,
        Some((s.slo.limit_us, format!("SLO {}", s.spec))),
    ))
}

/// The table: the terminal table's columns and text ([`super::table::row`]), `±` and `~` included.
fn table_html(r: &TuneReport) -> String {
    let base = &r.baseline().stats;
    let mut s = String::from("<table><thead><tr>");
    for h in super::table::HEADER {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>\n");
    for c in &r.cells {
        s.push_str("<tr>");
        for v in super::table::row(c, base) {
            let _ = write!(s, "<td>{}</td>", esc(&v));
        }
        s.push_str("</tr>\n");
    }
    let _ = writeln!(
        s,
        "</tbody></table>\n<p>{}</p>",
        esc(&super::table::footnote(r))
    );
    s
}

/// `doc` as JSON fit for a `<script>` element of a well-formed XML document: `<`, `>` and `&` (which only occur
/// inside JSON strings) are written as `\u003c`, `\u003e` and `\u0026`, so the text holds no markup, no entity
/// and no `</script>`, and parses back to the same document.
pub fn script_json(doc: &serde_json::Value) -> String {
    serde_json::to_string(doc)
        .unwrap_or_else(|_| "{}".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The whole HTML document.
pub fn render(r: &TuneReport) -> String {
    let json = script_json(&r.to_json());
    let rec = super::recommend::render(&r.recommendation, r.slo.as_ref());
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\" />\n");
    s.push_str("<title>sockpool-loadgen tune</title>\n<style>\n");
    s.push_str(
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}\
         figure{margin:1em 0}pre{background:#f6f6f6;padding:1em}\n",
    );
    s.push_str("</style></head><body>\n<h1>sockpool-loadgen tune</h1>\n");
    let _ = writeln!(
        s,
        "<p>{} cells, {} run(s) each; varied: {}. Latency is corrected (from the intended send time).</p>",
        r.cells.len(),
        r.repeat,
        esc(&r.varied.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "))
    );
    s.push_str(&spectrum_plot(r));
    if let Some(p) = rate_plot(r) {
        s.push_str(&p);
    }
    s.push_str("<h2>Cells</h2>\n");
    s.push_str(&table_html(r));
    let _ = writeln!(s, "<h2>Recommendation</h2>\n<pre>{}</pre>", esc(&rec));
    let _ = writeln!(
        s,
        "<script type=\"application/json\" id=\"tune-data\">{json}</script>"
    );
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::linear_ticks;

    #[test]
    fn ticks_stay_inside_the_axis() {
        for hi in [0.5, 1.0, 6.2, 7.9, 8.0, 49.0, 1234.5] {
            let t = linear_ticks(hi);
            assert_eq!(t[0], 0.0);
            assert!(t.iter().all(|v| *v <= hi * (1.0 + 1e-9)), "{hi}: {t:?}");
            assert!(t.len() >= 3, "{hi}: too few ticks {t:?}");
        }
        // A tick that lands on the top is kept.
        assert_eq!(linear_ticks(8.0).last(), Some(&8.0));
    }
}
