//! `--html FILE`: one self-contained HTML file (no scripts run, nothing fetched) with hand-written SVG plots:
//!
//! 1. each cell's percentile spectrum on HdrHistogram's plotter axis, `x = 1/(1−p)` on a log scale
//!    (1 = p0, 10 = p90, 100 = p99, 1000 = p99.9 …), corrected latency on a log y axis;
//! 2. the latency-versus-rate curve of the SLO search (p50, p99 and the SLO's quantile against the target
//!    rate, latency on a log axis, the limit drawn as a line), when `--slo` was given; each point's marker
//!    says what its set of runs showed (dot: passed, cross: failed, hollow square: the load generator fell
//!    behind).
//!
//! Every point has a marker. The latency axes span whole decades; a value beyond one (at most three decades
//! above the SLO on the rate plot, or a zero on a log axis) is drawn as a triangle on the edge pointing
//! away with its value written beside it, never silently clamped. The legend sits right of the plot area,
//! outside the data.
//!
//! then the table. The document is well-formed XML (every element closed, no raw `<` or `&` even in the
//! embedded JSON, see [`script_json`]) so tests can parse it, each plotted
//! line carries its data-space points in a `data-points` attribute, and the JSON document is embedded in
//! `<script type="application/json" id="tune-data">` so a test can check that the plots match it.

use std::fmt::Write as _;

use super::slo::Outcome;
use super::table::fmt_us;
use super::{round3, spectrum, TuneReport};

/// Width of the plot area; the legend sits to its right, outside the data.
const PW: f64 = 760.0;
const ML: f64 = 80.0;
const LEGEND: f64 = 300.0;
const W: f64 = ML + PW + LEGEND;
const H: f64 = 440.0;
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

/// A point marker's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mark {
    /// A filled dot (a measured point; a passing step).
    Dot,
    /// A cross (a step that failed the SLO).
    Cross,
    /// A hollow square (a step where the load generator fell behind).
    Square,
}

/// One plotted line: a name, its points in data space and each point's marker.
struct Series {
    name: String,
    points: Vec<[f64; 2]>,
    marks: Vec<Mark>,
    dashed: bool,
}

impl Series {
    fn dots(name: String, points: Vec<[f64; 2]>, dashed: bool) -> Series {
        let marks = vec![Mark::Dot; points.len()];
        Series {
            name,
            points,
            marks,
            dashed,
        }
    }
}

/// An axis: data range to pixels, linear or log10.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

/// Where a value falls on an axis.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    /// Inside, at this fraction of the axis (0 = low end).
    In(f64),
    /// Below the low end (or not representable: ≤ 0 on a log axis).
    Below,
    /// Above the high end.
    Above,
}

impl Axis {
    /// A log10 axis over whole decades holding `lo..=hi` (both > 0).
    fn log_decades(lo: f64, hi: f64) -> Axis {
        let lo = 10f64.powf(lo.max(1e-9).log10().floor());
        let hi = 10f64.powf(hi.max(lo).log10().ceil()).max(lo * 10.0);
        Axis { lo, hi, log: true }
    }
    fn place(&self, v: f64) -> Place {
        if !v.is_finite() || (self.log && v <= 0.0) || v < self.lo * (1.0 - 1e-9) {
            return Place::Below;
        }
        if v > self.hi * (1.0 + 1e-9) {
            return Place::Above;
        }
        let (v, lo, hi) = if self.log {
            (v.log10(), self.lo.log10(), self.hi.log10())
        } else {
            (v, self.lo, self.hi)
        };
        Place::In(if hi > lo {
            ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.5
        })
    }
    /// The fraction for drawing: a value off the axis sits on its edge (and gets an off-axis marker).
    fn frac(&self, v: f64) -> f64 {
        match self.place(v) {
            Place::In(f) => f,
            Place::Below => 0.0,
            Place::Above => 1.0,
        }
    }
    fn x(&self, v: f64) -> f64 {
        ML + self.frac(v) * PW
    }
    fn y(&self, v: f64) -> f64 {
        H - MB - self.frac(v) * (H - MT - MB)
    }
    /// Ticks of a log axis: each decade (labelled), and 2× and 5× within it (labelled when few decades).
    fn log_ticks(&self) -> Vec<(f64, bool)> {
        let decades = (self.hi / self.lo).log10().round() as i32;
        let mut out = Vec::new();
        for d in 0..=decades {
            let v = self.lo * 10f64.powi(d);
            out.push((v, true));
            if d < decades {
                for m in [2.0, 5.0] {
                    out.push((v * m, decades <= 2));
                }
            }
        }
        out
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

/// `v` in the largest of `units` (`(size, suffix)`, largest first) it reaches, else in `base`, without
/// trailing zeros.
fn scaled(v: f64, units: &[(f64, &str)], base: &str) -> String {
    let (size, unit) = units
        .iter()
        .find(|(size, _)| v >= *size)
        .copied()
        .unwrap_or((1.0, base));
    format!("{}{unit}", (v / size * 1000.0).round() / 1000.0)
}

/// A latency tick's label: `10µs`, `200µs`, `1ms`, `20ms`, `1s`.
fn tick_us(v: f64) -> String {
    scaled(v, &[(1e6, "s"), (1e3, "ms")], "µs")
}

/// A rate tick's label, one style along the axis: `0`, `500`, `5k`, `12.5k`, `1.2M`.
fn tick_rate(v: f64) -> String {
    scaled(v, &[(1e6, "M"), (1e3, "k")], "")
}

/// One marker at pixel `(x, y)`.
fn marker(mark: Mark, x: f64, y: f64, color: &str, attrs: &str) -> String {
    match mark {
        Mark::Dot => format!(
            r#"<circle class="marker dot" cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{color}" {attrs}/>"#
        ),
        Mark::Cross => format!(
            r#"<path class="marker cross" d="M{:.1},{:.1}L{:.1},{:.1}M{:.1},{:.1}L{:.1},{:.1}" stroke="{color}" stroke-width="2.5" data-cx="{x:.1}" data-cy="{y:.1}" {attrs}/>"#,
            x - 4.5,
            y - 4.5,
            x + 4.5,
            y + 4.5,
            x - 4.5,
            y + 4.5,
            x + 4.5,
            y - 4.5
        ),
        Mark::Square => format!(
            r##"<rect class="marker square" x="{:.1}" y="{:.1}" width="8" height="8" fill="#ffffff" stroke="{color}" stroke-width="2" data-cx="{x:.1}" data-cy="{y:.1}" {attrs}/>"##,
            x - 4.0,
            y - 4.0
        ),
    }
}

/// A value beyond the y axis: a triangle on the edge pointing away, with the true value written beside it.
fn off_axis(above: bool, x: f64, y: f64, v: f64, color: &str, attrs: &str) -> String {
    let (tip, base, ty) = if above {
        (y - 7.0, y + 2.0, y + 14.0)
    } else {
        (y + 7.0, y - 2.0, y - 6.0)
    };
    let value = if v.is_finite() && v > 0.0 {
        fmt_us(v)
    } else {
        format!("{v}")
    };
    format!(
        r#"<path class="marker off-axis" d="M{:.1},{base:.1}L{x:.1},{tip:.1}L{:.1},{base:.1}Z" fill="{color}" data-side="{}" {attrs}/><text class="off-axis-value" x="{:.1}" y="{ty:.1}" fill="{color}" font-size="10">{}{}</text>"#,
        x - 5.0,
        x + 5.0,
        if above { "above" } else { "below" },
        x + 7.0,
        if above { "↑" } else { "↓" },
        esc(&value)
    )
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
    legend_notes: &[(Mark, &str)],
) -> String {
    let mut s = String::new();
    let (top, bottom) = (MT, H - MB);
    let _ = writeln!(
        s,
        r#"<figure><figcaption>{}</figcaption><svg id="{id}" class="plot" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12" data-y-scale="{}" data-y-lo="{}" data-y-hi="{}" data-x-scale="{}">"#,
        esc(title),
        if ya.log { "log" } else { "linear" },
        ya.lo,
        ya.hi,
        if xa.log { "log" } else { "linear" },
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
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom:.1}" stroke="#dddddd" /><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            esc(label)
        );
    }
    let y_ticks: Vec<(f64, bool)> = if ya.log {
        ya.log_ticks()
    } else {
        linear_ticks(ya.hi).into_iter().map(|v| (v, true)).collect()
    };
    for (v, labelled) in y_ticks {
        let y = ya.y(v);
        let (stroke, text) = if labelled {
            let t = if ya.log { tick_us(v) } else { fmt_us(v) };
            (
                "#cccccc",
                format!(
                    r#"<text class="y-tick" data-value="{v}" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    ML - 6.0,
                    y + 4.0,
                    esc(&t)
                ),
            )
        } else {
            ("#eeeeee", String::new())
        };
        let _ = writeln!(
            s,
            r##"<line class="y-grid" x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{stroke}" />{text}"##,
            ML + PW,
        );
    }
    let _ = writeln!(
        s,
        r##"<rect class="frame" x="{ML}" y="{top}" width="{PW}" height="{:.1}" fill="none" stroke="#333333" />"##,
        bottom - top
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="14" y="{:.1}" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"#,
        ML + PW / 2.0,
        H - 12.0,
        esc(x_label),
        top + (bottom - top) / 2.0,
        top + (bottom - top) / 2.0,
        esc(&format!(
            "{y_label}{}",
            if ya.log { ", log scale" } else { "" }
        ))
    );
    if let Some((v, _)) = &hline {
        let y = ya.y(*v);
        let _ = writeln!(
            s,
            r##"<line class="limit" data-value="{v}" x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#000000" stroke-width="1.5" stroke-dasharray="8 4" />"##,
            ML + PW,
        );
    }
    // The data, then the legend to the right of the frame.
    let mut legend = Vec::new();
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
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = writeln!(
            s,
            r#"<polyline class="series" data-series="{}" data-points="{}" points="{}" fill="none" stroke="{color}" stroke-width="1.5"{dash} />"#,
            esc(&se.name),
            data.join(" "),
            px.join(" ")
        );
        let _ = write!(s, r#"<g class="markers" data-series="{}">"#, esc(&se.name));
        for (p, mark) in se.points.iter().zip(&se.marks) {
            let (x, y) = (xa.x(p[0]), ya.y(p[1]));
            let attrs = format!(r#"data-x="{}" data-y="{}" "#, p[0], p[1]);
            let _ = write!(
                s,
                "{}",
                match ya.place(p[1]) {
                    Place::In(_) => marker(*mark, x, y, color, &attrs),
                    Place::Above => off_axis(true, x, y, p[1], color, &attrs),
                    Place::Below => off_axis(false, x, y, p[1], color, &attrs),
                }
            );
        }
        s.push_str("</g>\n");
        legend.push((se.name.clone(), color, dash, Some(Mark::Dot)));
    }
    if let Some((_, label)) = &hline {
        legend.push((label.clone(), "#000000", r#" stroke-dasharray="8 4""#, None));
    }
    let lx = ML + PW + 16.0;
    let _ = write!(s, r#"<g class="legend">"#);
    let mut ly = top + 12.0;
    for (name, color, dash, mark) in &legend {
        let _ = write!(
            s,
            r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2"{dash} />"#,
            ly - 4.0,
            lx + 26.0,
            ly - 4.0
        );
        if let Some(m) = mark {
            s.push_str(&marker(*m, lx + 13.0, ly - 4.0, color, ""));
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{ly:.1}">{}</text>"#,
            lx + 32.0,
            esc(&truncate(name, 36))
        );
        ly += 18.0;
    }
    ly += 6.0;
    let notes: Vec<(Option<Mark>, &str)> = legend_notes
        .iter()
        .map(|(m, t)| (Some(*m), *t))
        .chain([(None, "value beyond the axis, written beside it")])
        .collect();
    for (mark, text) in notes {
        match mark {
            Some(m) => s.push_str(&marker(m, lx + 13.0, ly - 4.0, "#555555", "")),
            None => {
                let _ = write!(
                    s,
                    r##"<path d="M{:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}Z" fill="#555555" />"##,
                    lx + 8.0,
                    ly - 1.0,
                    lx + 13.0,
                    ly - 10.0,
                    lx + 18.0,
                    ly - 1.0
                );
            }
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{ly:.1}" font-size="11">{}</text>"#,
            lx + 32.0,
            esc(text)
        );
        ly += 16.0;
    }
    s.push_str("</g></svg></figure>\n");
    s
}

/// `text` cut to `n` characters with an ellipsis.
fn truncate(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        return text.to_string();
    }
    let mut t: String = text.chars().take(n - 1).collect();
    t.push('…');
    t
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
        .map(|c| Series::dots(c.cell.label.clone(), spectrum(&c.corrected), false))
        .collect();
    let x_hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p[0]))
        .fold(10.0, f64::max);
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p[1]));
    let y_hi = ys().fold(1.0, f64::max);
    let y_lo = ys().filter(|v| *v > 0.0).fold(y_hi, f64::min);
    let decades = x_hi.log10().ceil().max(1.0) as i32;
    let xa = Axis {
        lo: 1.0,
        hi: 10f64.powi(decades),
        log: true,
    };
    let ya = Axis::log_decades(y_lo, y_hi);
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
        &[],
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
    // Each point's marker says what its set of runs showed.
    let marks: Vec<Mark> = curve
        .iter()
        .map(|p| match p.outcome {
            Outcome::Pass => Mark::Dot,
            Outcome::Fail => Mark::Cross,
            Outcome::GeneratorLimited => Mark::Square,
        })
        .collect();
    let line = |name: String, f: fn(&super::RatePoint) -> f64, dashed: bool| Series {
        name,
        points: pts(f),
        marks: marks.clone(),
        dashed,
    };
    let mut series = vec![
        line("p50".into(), |p| p.p50_us, true),
        line("p99".into(), |p| p.p99_us, false),
    ];
    if (s.slo.quantile - 0.99).abs() > 1e-12 {
        series.push(line(
            format!("p{} (the SLO's quantile)", s.slo.quantile * 100.0),
            |p| p.slo_us,
            false,
        ));
    }
    let x_hi = curve.iter().map(|p| p.target_rate).fold(1.0, f64::max) * 1.05;
    // Log latency axis over whole decades from the lowest value to the highest, the limit included, but at
    // most three decades above the limit: the SLO stays readable, and what is beyond is marked as such.
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p[1]));
    let y_hi = ys()
        .fold(s.slo.limit_us, f64::max)
        .min(s.slo.limit_us * 1000.0);
    let y_lo = ys().filter(|v| *v > 0.0).fold(s.slo.limit_us, f64::min);
    let xa = Axis {
        lo: 0.0,
        hi: x_hi,
        log: false,
    };
    let ya = Axis::log_decades(y_lo, y_hi);
    let ticks: Vec<(f64, String)> = linear_ticks(x_hi)
        .into_iter()
        .filter(|v| *v <= x_hi)
        .map(|v| (v, tick_rate(v)))
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
        &[
            (Mark::Dot, "step passed"),
            (Mark::Cross, "step failed the SLO"),
            (Mark::Square, "load generator fell behind"),
        ],
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
    let rec = r.conclusion();
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\" />\n");
    s.push_str("<title>sockpool-loadgen tune</title>\n<style>\n");
    s.push_str(
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}\
         figure{margin:1em 0}pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}\n",
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
    fn log_tick_labels_have_no_trailing_zeros() {
        let l: Vec<String> = [10.0, 200.0, 1000.0, 20_000.0, 1e6, 5e6]
            .iter()
            .map(|v| super::tick_us(*v))
            .collect();
        assert_eq!(l, ["10µs", "200µs", "1ms", "20ms", "1s", "5s"]);
        let r: Vec<String> = [0.0, 500.0, 5000.0, 12_500.0, 1.2e6]
            .iter()
            .map(|v| super::tick_rate(*v))
            .collect();
        assert_eq!(r, ["0", "500", "5k", "12.5k", "1.2M"]);
    }

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
