//! Shared by the tune_* tests: a deterministic fake cell runner and a small XML well-formedness parser for
//! the HTML report (the report is written as well-formed XML so that this is enough; no new dependency).

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::time::Duration;

use sockpool_loadgen::tune::{CellConfig, CellResult, CellRunner, PoolMode, TuneArgs, TuneError};

/// A fake server: capacity = 10 000 req/s × pipeline (× 0.2 per request), latency uniform in `[L, 2L)` with
/// `L = 100µs × pipeline / (1 − load)` where `load` is the open-loop rate over the capacity. Repeats jitter by
/// 0 %, +1 %, +2 % in turn. `timeout` has no effect at all (a technique that must come out "within noise").
#[derive(Default)]
pub struct Fake {
    pub calls: RefCell<Vec<CellConfig>>,
    pub n: Cell<u64>,
}

impl Fake {
    pub fn capacity(cell: &CellConfig) -> f64 {
        let pool = if cell.pool == PoolMode::Pooled {
            1.0
        } else {
            0.2
        };
        10_000.0 * cell.pipeline as f64 * pool
    }
}

impl CellRunner for Fake {
    fn run(&self, cell: &CellConfig) -> Result<CellResult, TuneError> {
        self.calls.borrow_mut().push(cell.clone());
        let jitter = 1.0 + 0.01 * (self.n.get() % 3) as f64;
        self.n.set(self.n.get() + 1);
        let cap = Self::capacity(cell);
        let secs = cell.duration.as_secs_f64();
        let (rate, load) = match cell.rate {
            None => (cap, 0.0),
            Some(r) => (r.min(cap), (r / cap).min(0.99)),
        };
        let l_ns = 100_000.0 * cell.pipeline as f64 / (1.0 - load) * jitter;
        let mut r = CellResult::empty(Duration::from_secs_f64(secs));
        for i in 0..1000u64 {
            let v = (l_ns * (1.0 + i as f64 / 1000.0)) as u64;
            r.corrected.record(v).unwrap();
            r.raw.record(v / 2 + 1).unwrap();
        }
        r.replies = (rate * secs / jitter).round() as u64;
        Ok(r)
    }
}

/// The flags of a fake tune: 1 s cells without warm-up against an address nothing is sent to (the fake runs).
pub fn args(vary: &[&str], repeat: usize, slo: Option<&str>) -> TuneArgs {
    TuneArgs {
        target: Some("127.0.0.1:9".into()),
        vary: vary.iter().map(|s| s.to_string()).collect(),
        repeat: Some(repeat),
        duration: Some("1s".into()),
        warmup: Some("0s".into()),
        slo: slo.map(str::to_string),
        ..TuneArgs::default()
    }
}

/// `h` with every value multiplied by `factor`: a run that much slower.
pub fn slowed(h: &hdrhistogram::Histogram<u64>, factor: u64) -> hdrhistogram::Histogram<u64> {
    let mut slow = h.clone();
    slow.reset();
    for v in h.iter_recorded() {
        slow.record_n(v.value_iterated_to() * factor, v.count_at_value())
            .unwrap();
    }
    slow
}

/// One XML element.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    pub text: String,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Every descendant (self included) named `name`, in document order.
    pub fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Node>) {
        if self.name == name {
            out.push(self);
        }
        for c in &self.children {
            c.find_all(name, out);
        }
    }
    pub fn all(&self, name: &str) -> Vec<&Node> {
        let mut v = Vec::new();
        self.find_all(name, &mut v);
        v
    }
}

fn check_entities(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let semi = rest[i..]
            .find(';')
            .ok_or_else(|| format!("bare & in {s:?}"))?;
        let ent = &rest[i + 1..i + semi];
        out.push_str(match ent {
            "amp" => "&",
            "lt" => "<",
            "gt" => ">",
            "quot" => "\"",
            "#39" | "apos" => "'",
            e if e.starts_with('#') && e[1..].chars().all(|c| c.is_ascii_digit()) => "?",
            e => return Err(format!("unknown entity &{e};")),
        });
        rest = &rest[i + semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_attrs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut attrs = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("attribute without value in {s:?}"))?;
        let name = rest[..eq].trim().to_string();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("bad attribute name in {s:?}"));
        }
        let after = &rest[eq + 1..];
        let after = after
            .strip_prefix('"')
            .ok_or_else(|| format!("unquoted attribute {name} in {s:?}"))?;
        let end = after
            .find('"')
            .ok_or_else(|| format!("unterminated attribute {name}"))?;
        let value = check_entities(&after[..end])?;
        if attrs.iter().any(|(k, _): &(String, String)| *k == name) {
            return Err(format!("duplicate attribute {name}"));
        }
        attrs.push((name, value));
        rest = after[end + 1..].trim_start();
    }
    Ok(attrs)
}

/// Parses `html` as XML (after its `<!DOCTYPE html>`), requiring every element to be closed in order.
pub fn parse(html: &str) -> Result<Node, String> {
    let mut stack: Vec<Node> = vec![Node {
        name: "#document".into(),
        ..Node::default()
    }];
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            let text = check_entities(rest)?;
            stack.last_mut().unwrap().text.push_str(&text);
            break;
        };
        let text = check_entities(&rest[..lt])?;
        stack.last_mut().unwrap().text.push_str(&text);
        rest = &rest[lt..];
        if let Some(r) = rest.strip_prefix("<!--") {
            let end = r.find("-->").ok_or("unterminated comment")?;
            rest = &r[end + 3..];
            continue;
        }
        if rest.starts_with("<!") {
            let end = rest.find('>').ok_or("unterminated doctype")?;
            rest = &rest[end + 1..];
            continue;
        }
        let gt = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let node = stack.pop().ok_or("close without open")?;
            if node.name != name.trim() {
                return Err(format!("</{}> closes <{}>", name.trim(), node.name));
            }
            stack
                .last_mut()
                .ok_or("closed the document")?
                .children
                .push(node);
            continue;
        }
        let (tag, self_closing) = match tag.strip_suffix('/') {
            Some(t) => (t, true),
            None => (tag, false),
        };
        let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
        let name = tag[..name_end].to_string();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("bad tag <{tag}>"));
        }
        let mut node = Node {
            name: name.clone(),
            attrs: parse_attrs(&tag[name_end..])?,
            ..Node::default()
        };
        if self_closing {
            stack.last_mut().unwrap().children.push(node);
            continue;
        }
        if name == "script" || name == "style" {
            // XML has no raw-text elements: a `<` or a bare `&` inside is not well-formed.
            let close = format!("</{name}>");
            let end = rest
                .find(&close)
                .ok_or_else(|| format!("unterminated <{name}>"))?;
            let raw = &rest[..end];
            if let Some(i) = raw.find('<') {
                let around = &raw[i.saturating_sub(20)..(i + 20).min(raw.len())];
                return Err(format!("raw < inside <{name}>: {around:?}"));
            }
            node.text = check_entities(raw)?;
            rest = &rest[end + close.len()..];
            stack.last_mut().unwrap().children.push(node);
            continue;
        }
        stack.push(node);
    }
    if stack.len() != 1 {
        return Err(format!("unclosed <{}>", stack.last().unwrap().name));
    }
    Ok(stack.pop().unwrap())
}

/// `"x,y x,y"` → points.
pub fn points(attr: &str) -> Vec<[f64; 2]> {
    attr.split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').expect("x,y");
            [x.parse().expect("x"), y.parse().expect("y")]
        })
        .collect()
}

/// JSON `[[x, y], …]` → points.
pub fn json_points(v: &serde_json::Value) -> Vec<[f64; 2]> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
        .collect()
}

/// Checks the HTML report against the JSON document it embeds and returns both.
pub fn check_html(html: &str, with_rate_curve: bool) -> (Node, serde_json::Value) {
    let doc = parse(html).unwrap_or_else(|e| panic!("HTML is not well-formed: {e}"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    for bad in ["<link", "src=", "@import", "url("] {
        assert!(!html.contains(bad), "the report fetches something: {bad}");
    }
    let scripts = doc.all("script");
    let data: Vec<_> = scripts
        .iter()
        .filter(|s| s.attr("type") == Some("application/json"))
        .collect();
    assert_eq!(data.len(), 1, "one embedded JSON block");
    assert_eq!(scripts.len(), 1, "no executable script");
    let json: serde_json::Value =
        serde_json::from_str(&data[0].text).expect("embedded JSON parses");
    let svgs = doc.all("svg");
    let expected = if with_rate_curve { 2 } else { 1 };
    assert_eq!(svgs.len(), expected, "one SVG per plot");

    for svg in &svgs {
        check_log_axis_and_markers(svg);
    }

    // Spectrum: one line per cell with exactly the JSON's points.
    let spectrum = svgs
        .iter()
        .find(|s| s.attr("id") == Some("spectrum"))
        .expect("spectrum plot");
    let lines = spectrum.all("polyline");
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(lines.len(), cells.len());
    for cell in cells {
        let label = cell["label"].as_str().unwrap();
        let line = lines
            .iter()
            .find(|l| l.attr("data-series") == Some(label))
            .expect("a line per cell");
        let data = points(line.attr("data-points").unwrap());
        let want = json_points(&cell["spectrum"]);
        assert!(!want.is_empty());
        assert_eq!(data, want, "{label}: plotted points = JSON points");
        let px = points(line.attr("points").unwrap());
        assert_eq!(px.len(), data.len());
        assert!(
            px.windows(2).all(|w| w[0][0] <= w[1][0]),
            "x grows with the percentile"
        );
        assert!(
            px.windows(2).all(|w| w[0][1] >= w[1][1]),
            "y (up = larger) never falls"
        );
        assert!(data.iter().all(|p| p[0] >= 1.0), "x = 1/(1-p) ≥ 1");
    }
    if with_rate_curve {
        let curve = svgs
            .iter()
            .find(|s| s.attr("id") == Some("rate-curve"))
            .expect("rate curve");
        let mut pts: Vec<_> = json["slo"]["points"].as_array().unwrap().clone();
        pts.sort_by(|a, b| {
            a["target_rate"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["target_rate"].as_f64().unwrap())
        });
        let p99 = curve
            .all("polyline")
            .into_iter()
            .find(|l| l.attr("data-series") == Some("p99"))
            .unwrap();
        let data = points(p99.attr("data-points").unwrap());
        assert_eq!(data.len(), pts.len());
        for (d, p) in data.iter().zip(&pts) {
            assert!((d[0] - p["target_rate"].as_f64().unwrap()).abs() < 1e-3);
            assert!((d[1] - p["p99_us"].as_f64().unwrap()).abs() < 1e-3);
        }
        // Each point's marker shape is its set's outcome.
        let group = curve
            .all("g")
            .into_iter()
            .find(|g| g.attr("data-series") == Some("p99"))
            .unwrap();
        for (m, p) in markers(group).iter().zip(&pts) {
            let class = m.attr("class").unwrap();
            let want = match p["outcome"].as_str().unwrap() {
                "pass" => "dot",
                "fail" => "cross",
                _ => "square",
            };
            assert!(
                class.contains(want) || class.contains("off-axis"),
                "{class} for {}",
                p["outcome"]
            );
        }
        // The SLO is a line across the plot at its limit, on the same log scale as the points.
        let limit = curve
            .all("line")
            .into_iter()
            .find(|l| l.attr("class") == Some("limit"))
            .expect("the SLO drawn as a line");
        let limit_us = json["slo"]["slo"]["limit_us"].as_f64().unwrap();
        assert_eq!(num(limit, "data-value"), limit_us);
        let (lo, hi) = (num(curve, "data-y-lo"), num(curve, "data-y-hi"));
        let frame = frame(curve);
        assert!(
            (num(limit, "y1") - log_y(limit_us, lo, hi, frame)).abs() < 0.11,
            "the limit line sits at its value"
        );
        assert!(
            num(limit, "x2") - num(limit, "x1") >= frame.2 - 0.1,
            "across the plot"
        );
    }
    (doc, json)
}

/// A numeric attribute.
pub fn num(n: &Node, attr: &str) -> f64 {
    n.attr(attr)
        .unwrap_or_else(|| panic!("<{}> has no {attr}", n.name))
        .parse()
        .unwrap_or_else(|e| panic!("<{}> {attr}: {e}", n.name))
}

/// The plot area of an `<svg>`: `(x, y, width, height)`.
pub fn frame(svg: &Node) -> (f64, f64, f64, f64) {
    let f = svg
        .all("rect")
        .into_iter()
        .find(|r| r.attr("class") == Some("frame"))
        .expect("the plot frame");
    (num(f, "x"), num(f, "y"), num(f, "width"), num(f, "height"))
}

/// The pixel y of `v` on a log axis `lo..hi` drawn in `frame`.
pub fn log_y(v: f64, lo: f64, hi: f64, frame: (f64, f64, f64, f64)) -> f64 {
    let f = (v.log10() - lo.log10()) / (hi.log10() - lo.log10());
    frame.1 + frame.3 - f * frame.3
}

/// The markers of a series' `<g class="markers">`, in point order.
pub fn markers(group: &Node) -> Vec<&Node> {
    group
        .children
        .iter()
        .filter(|c| c.attr("class").is_some_and(|k| k.starts_with("marker")))
        .collect()
}

/// Every plot: a log latency axis over whole decades (labelled ticks at powers of ten, evenly spaced), one
/// marker per point at the point's log position, values beyond the axis marked as such (never drawn as if
/// inside), and the legend right of the plot area.
pub fn check_log_axis_and_markers(svg: &Node) {
    assert_eq!(svg.attr("data-y-scale"), Some("log"), "a log latency axis");
    let (lo, hi) = (num(svg, "data-y-lo"), num(svg, "data-y-hi"));
    let frame = frame(svg);
    let decade = |v: f64| (v.log10() - v.log10().round()).abs() < 1e-9;
    assert!(decade(lo) && decade(hi) && hi > lo, "{lo}..{hi}");
    let ticks: Vec<(f64, f64)> = svg
        .all("text")
        .into_iter()
        .filter(|t| t.attr("class") == Some("y-tick"))
        .map(|t| (num(t, "data-value"), num(t, "y") - 4.0))
        .collect();
    let decades: Vec<&(f64, f64)> = ticks.iter().filter(|(v, _)| decade(*v)).collect();
    assert_eq!(
        decades.len() as f64,
        (hi / lo).log10().round() + 1.0,
        "a labelled tick per decade: {ticks:?}"
    );
    let step = decades[0].1 - decades[1].1;
    assert!(step > 0.0);
    for w in decades.windows(2) {
        assert!((w[1].0 / w[0].0 - 10.0).abs() < 1e-6);
        assert!(
            ((w[0].1 - w[1].1) - step).abs() < 0.11,
            "decades evenly spaced: {ticks:?}"
        );
    }
    for (v, y) in &ticks {
        assert!(
            (y - log_y(*v, lo, hi, frame)).abs() < 0.11,
            "tick {v} at {y}"
        );
    }
    let lines = svg.all("polyline");
    let groups: Vec<&Node> = svg
        .all("g")
        .into_iter()
        .filter(|g| g.attr("class") == Some("markers"))
        .collect();
    assert_eq!(groups.len(), lines.len(), "markers for every line");
    for (line, group) in lines.iter().zip(&groups) {
        assert_eq!(line.attr("data-series"), group.attr("data-series"));
        let data = points(line.attr("data-points").unwrap());
        let ms = markers(group);
        assert_eq!(ms.len(), data.len(), "one marker per point");
        for (m, p) in ms.iter().zip(&data) {
            assert_eq!([num(m, "data-x"), num(m, "data-y")], *p);
            let class = m.attr("class").unwrap();
            let inside = p[1] > 0.0 && p[1] >= lo * (1.0 - 1e-9) && p[1] <= hi * (1.0 + 1e-9);
            if inside {
                assert!(!class.contains("off-axis"), "{p:?} is inside {lo}..{hi}");
                let cy = m
                    .attr("cy")
                    .or(m.attr("data-cy"))
                    .unwrap()
                    .parse::<f64>()
                    .unwrap();
                assert!(
                    (cy - log_y(p[1], lo, hi, frame)).abs() < 0.11,
                    "{p:?} drawn at {cy}, log position {}",
                    log_y(p[1], lo, hi, frame)
                );
            } else {
                assert!(
                    class.contains("off-axis"),
                    "{p:?} beyond {lo}..{hi} must say so"
                );
                let side = if p[1] > hi { "above" } else { "below" };
                assert_eq!(m.attr("data-side"), Some(side));
            }
        }
        let written = group
            .children
            .iter()
            .filter(|c| c.attr("class") == Some("off-axis-value"))
            .count();
        let off = ms
            .iter()
            .filter(|m| m.attr("class").unwrap().contains("off-axis"))
            .count();
        assert_eq!(written, off, "each value beyond the axis is written out");
    }
    let legend = svg
        .all("g")
        .into_iter()
        .find(|g| g.attr("class") == Some("legend"))
        .expect("a legend");
    let right = frame.0 + frame.2;
    let mut xs = Vec::new();
    for n in ["text", "line", "circle", "rect", "path"] {
        for e in legend.all(n) {
            for a in ["x", "x1", "cx"] {
                if let Some(v) = e.attr(a) {
                    xs.push(v.parse::<f64>().unwrap());
                }
            }
        }
    }
    assert!(!xs.is_empty());
    assert!(
        xs.iter().all(|x| *x > right),
        "the legend is outside the data (right of {right}): {xs:?}"
    );
}

/// Equal JSON up to float rounding in a parse round trip (relative 1e-12).
pub fn approx_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0)
        }
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| approx_eq(x, y))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| approx_eq(v, w)))
        }
        _ => a == b,
    }
}
