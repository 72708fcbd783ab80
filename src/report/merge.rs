//! Shards (`run --shard K/N` on several CI runners) → one run summary (pure),
//! so the weekend's full matrix gets one JUnit file and one Markdown grid.
use crate::model::run::RunSummary;
use std::collections::BTreeMap;

/// Merges the summaries of a sharded run. Every test id must appear once: a
/// test seen in two parts means the parts were not shards of one run. The
/// merged run's id is left empty for the caller to give it its folder's.
pub fn merge(command: &str, parts: Vec<(String, RunSummary)>) -> Result<RunSummary, String> {
    let Some((_, first)) = parts.first() else {
        return Err("nothing to merge".into());
    };
    let profile = first
        .profile
        .clone()
        .filter(|p| parts.iter().all(|(_, s)| s.profile.as_ref() == Some(p)));
    let started_at = parts
        .iter()
        .map(|(_, s)| s.started_at.clone())
        .min()
        .unwrap_or_default();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = RunSummary {
        run_id: String::new(),
        started_at,
        // Shards run side by side: the merged run took as long as its slowest part.
        duration_ms: parts.iter().map(|(_, s)| s.duration_ms).fold(0.0, f64::max),
        execute_ms: parts.iter().map(|(_, s)| s.execute_ms).fold(0.0, f64::max),
        jobs: 0, // several machines: no one floor
        at_most: 0,
        most_at_once: 0,
        cpu_ms: parts.iter().map(|(_, s)| s.cpu_ms).sum(),
        per_pair: parts.iter().all(|(_, s)| s.per_pair),
        cores: 0,
        profile,
        command: command.to_string(),
        builds: BTreeMap::new(),
        cells: Vec::new(),
        tests: Vec::new(),
        interrupted: parts.iter().any(|(_, s)| s.interrupted),
        problems: Vec::new(),
        load: Vec::new(), // several machines: no one timeline
        processes: parts.iter().flat_map(|(_, s)| s.processes.clone()).collect(),
    };
    for (name, part) in parts {
        for t in &part.tests {
            if let Some(other) = seen.insert(t.id.clone(), name.clone()) {
                return Err(format!(
                    "test {} is in both {other} and {name}: merge the shards of one run (run --shard K/N), not two runs",
                    t.id
                ));
            }
        }
        out.tests.extend(part.tests);
        out.cells.extend(part.cells);
        // A language that failed to build on any runner stays failed.
        for (lang, b) in part.builds {
            match out.builds.get(&lang) {
                Some(kept) if !kept.ok => {}
                _ => {
                    out.builds.insert(lang, b);
                }
            }
        }
        for p in part.problems {
            let p = if p.contains(&name) { p } else { format!("{p} ({name})") };
            out.problems.push(p);
        }
    }
    out.tests.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::run::fixtures::*;
    use crate::model::run::{BuildInfo, Outcome};
    use crate::model::tls::TlsMode;

    fn part(tests: Vec<crate::model::run::TestResult>, secs: f64) -> RunSummary {
        let mut s = summary(tests);
        s.duration_ms = secs * 1000.0;
        s
    }

    #[test]
    fn shards_become_one_run() {
        let a = part(vec![result("go", "rust", TlsMode::None, "get", Outcome::Passed)], 10.0);
        let mut b = part(vec![result("rust", "go", TlsMode::Mtls, "get", Outcome::Failed)], 25.0);
        b.builds.insert(
            "go".into(),
            BuildInfo {
                status: "failed: build.sh exited 1".into(),
                duration_ms: 1.0,
                ok: false,
            },
        );
        b.problems.push("stale pattern x".into());
        let m = merge("stock-matrix merge a b", vec![("a".into(), a), ("b".into(), b)]).unwrap();
        assert_eq!(m.tests.len(), 2);
        assert_eq!(m.counts().passed, 1);
        assert_eq!(m.counts().red, 1);
        assert_eq!(m.duration_ms, 25_000.0);
        assert_eq!(m.cells.len(), 2);
        assert!(!m.builds["go"].ok, "a failed build on one runner stays failed");
        assert_eq!(m.problems, vec!["stale pattern x (b)".to_string()]);
        assert_eq!(m.profile.as_deref(), Some("quick"));
    }

    #[test]
    fn the_same_test_twice_is_not_a_shard() {
        let a = part(vec![result("go", "rust", TlsMode::None, "get", Outcome::Passed)], 1.0);
        let b = part(vec![result("go", "rust", TlsMode::None, "get", Outcome::Failed)], 1.0);
        let err = merge("c", vec![("a".into(), a), ("b".into(), b)]).unwrap_err();
        assert!(
            err.contains("client=go/server=rust/tls=none/set=unary/case=get is in both a and b"),
            "{err}"
        );
        assert!(merge("c", vec![]).is_err());
    }
}
