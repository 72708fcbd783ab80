//! `bench.md` and the console summary of a bench run: a client × server
//! table per operation (median throughput, spread of the repeats, p99).
use super::{BenchReport, Op, OpResult};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// 12345.6 → "12.3k"; 812.4 → "812".
pub fn rate(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e4 => format!("{:.1}k", v / 1e3),
        v if v >= 1e3 => format!("{:.2}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// 1534 µs → "1.53 ms".
pub fn micros(us: f64) -> String {
    match us {
        us if us >= 1e6 => format!("{:.2} s", us / 1e6),
        us if us >= 1e3 => format!("{:.2} ms", us / 1e3),
        us => format!("{us:.0} µs"),
    }
}

/// A table cell: median ±spread, p99; or why there is none.
fn cell(o: Option<&OpResult>) -> String {
    let Some(o) = o else { return "–".into() };
    match (&o.throughput, &o.latency_us) {
        (Some(t), lat) if o.calls > 0 => {
            let mut s = format!("{} ±{:.0}%", rate(t.median), t.relative() * 100.0);
            if let Some(l) = lat {
                s.push_str(&format!("<br>p99 {}", micros(l.p99)));
            }
            if o.errors > 0 {
                s.push_str(&format!("<br>{} errors", o.errors));
            }
            s
        }
        _ => match &o.first_error {
            Some(e) => format!("no OK call: {}", e.code),
            None => "no call".into(),
        },
    }
}

/// The languages on each axis, in order.
pub fn axes(r: &BenchReport) -> (Vec<String>, Vec<String>) {
    let clients: BTreeSet<String> = r.pairs.iter().map(|p| p.client.clone()).collect();
    let servers: BTreeSet<String> = r.pairs.iter().map(|p| p.server.clone()).collect();
    (clients.into_iter().collect(), servers.into_iter().collect())
}

fn op_table(out: &mut String, r: &BenchReport, op: Op) {
    let (clients, servers) = axes(r);
    let _ = writeln!(out, "| client ↓ server → | {} |", servers.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(servers.len()));
    let find = |c: &str, s: &str| r.pairs.iter().find(|p| p.client == c && p.server == s);
    for c in &clients {
        let cells: Vec<String> = servers
            .iter()
            .map(|s| match find(c, s) {
                Some(p) if p.ops.contains_key(&op) => cell(p.ops.get(&op)),
                Some(p) if p.error.is_some() => "not measured".into(),
                _ => "–".into(),
            })
            .collect();
        let _ = writeln!(out, "| **{c}** | {} |", cells.join(" | "));
    }
    if op.unary() && !r.anchors.is_empty() {
        let cells: Vec<String> = servers
            .iter()
            .map(|s| match r.anchors.iter().find(|a| &a.server == s) {
                Some(a) if a.ops.contains_key(&op) => cell(a.ops.get(&op)),
                Some(_) => "not measured".into(),
                None => "–".into(),
            })
            .collect();
        let _ = writeln!(out, "| *ghz* | {} |", cells.join(" | "));
    }
}

/// The whole `bench.md`.
pub fn markdown(r: &BenchReport) -> String {
    let s = &r.settings;
    let e = &r.environment;
    let mut out = String::from("# Benchmark: each client against each server\n\n");
    let _ = writeln!(
        out,
        "- Started {} · took {:.0} s · `{}`",
        e.started, e.duration_s, e.command
    );
    let _ = writeln!(
        out,
        "- Commit: {}",
        e.commit.as_deref().unwrap_or("unknown (not a git checkout)")
    );
    let _ = writeln!(out, "- Machine: {} CPU(s) for this run; {}", e.cores, e.placement);
    let _ = writeln!(
        out,
        "- Load: {} calls in flight on one channel · payload {} B · TLS {} · {} × {} ms per operation after a {} ms warm-up · {} messages per streaming call · deadline {} ms per call",
        s.concurrency, s.payload, s.tls, s.repeat, s.duration_ms, s.warmup_ms, s.stream_len, s.call_timeout_ms
    );
    out.push_str(
        "- Each cell: the median throughput of the repeats, ±(max − min) ÷ median of the repeats, and the p99 latency of every OK call of the repeats (log buckets about 6% wide). All numbers are from this one run; numbers from another run are only compared under \"Compared with\".\n",
    );
    out.push_str("- The load comes from the client under test, inside its own process (the contract's `bench` step); *ghz* loads the same server at the same concurrency and payload, as a dedicated load generator.\n");
    for &op in &s.ops {
        let _ = writeln!(out, "\n## {} ({})\n", op.name(), op.unit());
        let _ = writeln!(out, "![{0} heat map](svg/{0}-heatmap.svg)\n", op.name());
        op_table(&mut out, r, op);
        let _ = writeln!(out, "\n![{0}: every pair with its spread](svg/{0}-bars.svg)", op.name());
    }
    let failed: Vec<_> = r.pairs.iter().filter(|p| p.error.is_some()).collect();
    let anchor_failed: Vec<_> = r.anchors.iter().filter(|a| a.error.is_some()).collect();
    if !failed.is_empty() || !anchor_failed.is_empty() {
        out.push_str("\n## Not measured\n\n");
        for p in failed {
            let _ = writeln!(out, "- {} → {}: {}", p.client, p.server, one_line(p.error.as_deref()));
        }
        for a in anchor_failed {
            let _ = writeln!(out, "- ghz → {}: {}", a.server, one_line(a.error.as_deref()));
        }
    }
    if let Some(b) = &r.baseline {
        let _ = writeln!(
            out,
            "\n## Compared with {} (started {})\n\nThese numbers come from two runs. A change is flagged when it is larger than the noise band: the larger relative spread of the two runs' repeats, and at least {:.0}%. {} throughputs compared, {} flagged.\n",
            b.file,
            b.started,
            super::MIN_BAND * 100.0,
            b.compared,
            b.changes.len()
        );
        if !b.changes.is_empty() {
            out.push_str("| pair | operation | before | after | change | noise band |\n|---|---|---|---|---|---|\n");
            for c in &b.changes {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {:+.0}% | ±{:.0}% |",
                    c.pair,
                    c.op.name(),
                    rate(c.before),
                    rate(c.after),
                    c.change * 100.0,
                    c.band * 100.0
                );
            }
        }
    }
    out.push_str("\n## Stacks\n\n| language | stack |\n|---|---|\n");
    for (l, s) in &e.stacks {
        let _ = writeln!(out, "| {l} | {s} |");
    }
    out
}

fn one_line(s: Option<&str>) -> String {
    s.unwrap_or_default().replace('\n', " ⏎ ").chars().take(400).collect()
}

/// What the console shows at the end: the first operation's table as text.
pub fn console(r: &BenchReport) -> String {
    let Some(&op) = r.settings.ops.first() else {
        return String::new();
    };
    let (clients, servers) = axes(r);
    let mut out = format!(
        "{} ({}, median of {} repeats)\n",
        op.name(),
        op.unit(),
        r.settings.repeat
    );
    let _ = write!(out, "{:<12}", "client\\server");
    servers.iter().for_each(|s| {
        let _ = write!(out, "{s:>11}");
    });
    out.push('\n');
    let value = |o: Option<&OpResult>| match o.and_then(|o| o.throughput.as_ref()) {
        Some(t) => rate(t.median),
        None => "–".into(),
    };
    for c in &clients {
        let _ = write!(out, "{c:<12}");
        for s in &servers {
            let p = r.pairs.iter().find(|p| &p.client == c && &p.server == s);
            let _ = write!(out, "{:>11}", value(p.and_then(|p| p.ops.get(&op))));
        }
        out.push('\n');
    }
    if op.unary() && !r.anchors.is_empty() {
        let _ = write!(out, "{:<12}", "ghz");
        for s in &servers {
            let a = r.anchors.iter().find(|a| &a.server == s);
            let _ = write!(out, "{:>11}", value(a.and_then(|a| a.ops.get(&op))));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_latencies_read_like_a_person_writes_them() {
        assert_eq!(rate(812.4), "812");
        assert_eq!(rate(1234.0), "1.23k");
        assert_eq!(rate(12345.6), "12.3k");
        assert_eq!(rate(2_500_000.0), "2.50M");
        assert_eq!(micros(87.0), "87 µs");
        assert_eq!(micros(1534.0), "1.53 ms");
    }
}
