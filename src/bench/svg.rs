//! SVG charts of a bench run, written by hand (rectangles and text): per
//! operation a client × server heat map of the median throughput, and a bar
//! per pair (median) with its spread (min–max of the repeats).
use super::render::{axes, rate};
use super::{BenchReport, Op, OpResult, Spread};
use std::fmt::Write as _;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// YlGnBu, light to dark.
const PALETTE: [(u8, u8, u8); 6] = [
    (255, 255, 204),
    (199, 233, 180),
    (127, 205, 187),
    (65, 182, 196),
    (44, 127, 184),
    (37, 52, 148),
];

/// The colour of `t` in 0..=1, and whether text on it should be white.
fn colour(t: f64) -> (String, bool) {
    let t = t.clamp(0.0, 1.0) * (PALETTE.len() - 1) as f64;
    let i = (t.floor() as usize).min(PALETTE.len() - 2);
    let f = t - i as f64;
    let (a, b) = (PALETTE[i], PALETTE[i + 1]);
    let mix = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * f).round() as u8;
    let (r, g, bl) = (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2));
    (format!("#{r:02x}{g:02x}{bl:02x}"), t > 2.5)
}

fn median(o: Option<&OpResult>) -> Option<f64> {
    o.and_then(|o| o.throughput.as_ref())
        .map(|t| t.median)
        .filter(|m| *m > 0.0)
}

const FONT: &str = r#"font-family="sans-serif" font-size="12""#;

/// A client × server heat map of one operation's median throughput (colour
/// on a log scale), with ghz as an extra row for unary operations.
pub fn heatmap(r: &BenchReport, op: Op) -> String {
    let (clients, servers) = axes(r);
    let mut rows: Vec<(String, Vec<Option<f64>>)> = clients
        .iter()
        .map(|c| {
            let values = servers
                .iter()
                .map(|s| {
                    median(
                        r.pairs
                            .iter()
                            .find(|p| &p.client == c && &p.server == s)
                            .and_then(|p| p.ops.get(&op)),
                    )
                })
                .collect();
            (c.clone(), values)
        })
        .collect();
    if op.unary() && !r.anchors.is_empty() {
        let values = servers
            .iter()
            .map(|s| median(r.anchors.iter().find(|a| &a.server == s).and_then(|a| a.ops.get(&op))))
            .collect();
        rows.push(("ghz".into(), values));
    }
    let all: Vec<f64> = rows.iter().flat_map(|(_, v)| v.iter().flatten().copied()).collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(1e-9).ln();
    let hi = all.iter().copied().fold(0.0, f64::max).max(1e-9).ln();
    let (cw, ch, left, top) = (78.0, 34.0, 96.0, 64.0);
    let width = left + cw * servers.len() as f64 + 16.0;
    let height = top + ch * rows.len() as f64 + 40.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    let _ = write!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="8" y="20" {FONT} font-weight="bold">{} — median {} (client ↓, server →)</text>"#,
        op.name(),
        op.unit()
    );
    for (j, server) in servers.iter().enumerate() {
        let x = left + cw * j as f64 + cw / 2.0;
        let _ = write!(
            s,
            r#"<text x="{x}" y="{}" {FONT} text-anchor="middle">{}</text>"#,
            top - 10.0,
            esc(server)
        );
    }
    for (i, (client, values)) in rows.iter().enumerate() {
        let y = top + ch * i as f64;
        let style = if client == "ghz" { r#" font-style="italic""# } else { "" };
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" {FONT}{style} text-anchor="end">{}</text>"#,
            left - 8.0,
            y + ch / 2.0 + 4.0,
            esc(client)
        );
        for (j, v) in values.iter().enumerate() {
            let x = left + cw * j as f64;
            let (fill, light_text, label) = match v {
                Some(v) => {
                    let t = if hi > lo { (v.ln() - lo) / (hi - lo) } else { 1.0 };
                    let (c, white) = colour(t);
                    (c, white, rate(*v))
                }
                None => ("#e0e0e0".to_string(), false, "–".to_string()),
            };
            let text = if light_text { "white" } else { "black" };
            let _ = write!(
                s,
                r#"<rect x="{x}" y="{y}" width="{cw}" height="{ch}" fill="{fill}" stroke="white"/><text x="{}" y="{}" {FONT} fill="{text}" text-anchor="middle">{label}</text>"#,
                x + cw / 2.0,
                y + ch / 2.0 + 4.0
            );
        }
    }
    let _ = write!(
        s,
        r##"<text x="8" y="{}" {FONT} fill="#555">colour: log scale from {} (light) to {} (dark); grey: not measured</text></svg>"##,
        height - 12.0,
        rate(lo.exp()),
        rate(hi.exp())
    );
    s
}

/// One horizontal bar per pair (and ghz): the median, with a whisker from
/// the slowest to the fastest repeat; fastest first.
pub fn bars(r: &BenchReport, op: Op) -> String {
    let mut rows: Vec<(String, Spread)> = r
        .pairs
        .iter()
        .filter_map(|p| {
            let t = p.ops.get(&op)?.throughput.clone()?;
            Some((format!("{} → {}", p.client, p.server), t))
        })
        .collect();
    if op.unary() {
        rows.extend(r.anchors.iter().filter_map(|a| {
            let t = a.ops.get(&op)?.throughput.clone()?;
            Some((format!("ghz → {}", a.server), t))
        }));
    }
    rows.sort_by(|a, b| b.1.median.total_cmp(&a.1.median));
    let top_value = rows.iter().map(|(_, t)| t.max).fold(0.0, f64::max).max(1e-9);
    let (row, left, plot, top) = (16.0, 170.0, 520.0, 40.0);
    let width = left + plot + 90.0;
    let height = top + row * rows.len() as f64 + 30.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    let _ = write!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="8" y="20" {FONT} font-weight="bold">{} — {}: median of the repeats, whisker from the slowest to the fastest</text>"#,
        op.name(),
        op.unit()
    );
    let x = |v: f64| left + plot * v / top_value;
    for (i, (label, t)) in rows.iter().enumerate() {
        let y = top + row * i as f64;
        let fill = if label.starts_with("ghz") { "#f28e2b" } else { "#4e79a7" };
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" {FONT} text-anchor="end">{}</text><rect x="{left}" y="{}" width="{:.1}" height="{}" fill="{fill}"/><line x1="{:.1}" x2="{:.1}" y1="{}" y2="{}" stroke="black"/><text x="{:.1}" y="{}" {FONT}>{}</text>"#,
            left - 6.0,
            y + 12.0,
            esc(label),
            y + 2.0,
            x(t.median) - left,
            row - 4.0,
            x(t.min),
            x(t.max),
            y + row / 2.0,
            y + row / 2.0,
            x(t.max) + 4.0,
            y + 12.0,
            rate(t.median)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Environment, Pair, Settings};
    use crate::model::tls::TlsMode;
    use std::collections::BTreeMap;

    fn result(v: &[f64]) -> OpResult {
        OpResult {
            unit: "calls/s".into(),
            throughput: Spread::of(v.to_vec()),
            latency_us: None,
            calls: 10,
            errors: 0,
            first_error: None,
        }
    }

    fn report() -> BenchReport {
        let pair = |c: &str, s: &str, v: &[f64]| Pair {
            client: c.into(),
            server: s.into(),
            ops: BTreeMap::from([(Op::Get, result(v))]),
            error: None,
        };
        BenchReport {
            settings: Settings {
                duration_ms: 1,
                warmup_ms: 1,
                concurrency: 1,
                payload: 1,
                repeat: 2,
                stream_len: 1,
                call_timeout_ms: 1,
                tls: TlsMode::None,
                ops: vec![Op::Get],
            },
            environment: Environment {
                started: String::new(),
                duration_s: 0.0,
                command: String::new(),
                commit: None,
                cores: 2,
                placement: String::new(),
                stacks: BTreeMap::new(),
            },
            pairs: vec![
                pair("go", "go", &[20000.0, 22000.0]),
                pair("go", "rust", &[1000.0, 1000.0]),
                pair("a<b", "go", &[500.0, 700.0]),
            ],
            anchors: vec![],
            baseline: None,
        }
    }

    #[test]
    fn the_heat_map_has_a_cell_per_pair_darkest_for_the_fastest() {
        let svg = heatmap(&report(), Op::Get);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(">21.0k<") && svg.contains(">1.00k<") && svg.contains(">600<"));
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
        // The fastest cell takes the palette's darkest colour, the slowest its lightest.
        assert!(svg.contains("#253494") && svg.contains("#ffffcc"));
        // a<b never ran against rust: one grey cell.
        assert_eq!(svg.matches("#e0e0e0").count(), 1);
    }

    #[test]
    fn bars_are_sorted_fastest_first_with_whiskers_from_min_to_max() {
        let svg = bars(&report(), Op::Get);
        let go = svg.find("go → go").unwrap();
        let rust = svg.find("go → rust").unwrap();
        let slow = svg.find("a&lt;b → go").unwrap();
        assert!(go < rust && rust < slow);
        assert_eq!(svg.matches("<line").count(), 3);
    }
}
