//! Where a run's CPU went (pure): the CPU of every client and server process,
//! summed per language and role, per test for the clients; what is left of
//! the run's CPU is the runner's own (judging, fault proxies, misbehaving
//! peers) and what no process was read for.
use crate::model::run::RunSummary;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One language's CPU in a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Share {
    pub language: String,
    pub client_processes: usize,
    pub client_ms: f64,
    /// The tests its client processes ran.
    pub client_tests: usize,
    pub server_processes: usize,
    pub server_ms: f64,
}

impl Share {
    fn total_ms(&self) -> f64 {
        self.client_ms + self.server_ms
    }
}

/// Per language, the costliest first; `None` when no process was read.
pub fn shares(s: &RunSummary) -> Option<Vec<Share>> {
    if s.processes.is_empty() {
        return None;
    }
    let mut by: BTreeMap<&str, Share> = BTreeMap::new();
    for p in &s.processes {
        let e = by.entry(&p.language).or_insert_with(|| Share {
            language: p.language.clone(),
            ..Default::default()
        });
        if p.role == "server" {
            e.server_processes += 1;
            e.server_ms += p.cpu_ms;
        } else {
            e.client_processes += 1;
            e.client_ms += p.cpu_ms;
        }
    }
    for t in &s.tests {
        if let Some(e) = by.get_mut(t.cell.client.as_str()) {
            e.client_tests += 1;
        }
    }
    let mut out: Vec<Share> = by.into_values().collect();
    out.sort_by(|a, b| b.total_ms().total_cmp(&a.total_ms()));
    Some(out)
}

/// The Markdown section.
pub fn render(s: &RunSummary) -> String {
    let Some(shares) = shares(s) else {
        return String::new();
    };
    let sec = |ms: f64| format!("{:.1} s", ms / 1000.0);
    let clients: f64 = shares.iter().map(|x| x.client_ms).sum();
    let servers: f64 = shares.iter().map(|x| x.server_ms).sum();
    let mut out = String::from("## Where the CPU went\n\n");
    let _ = write!(
        out,
        "Client processes used **{}**, servers **{}**",
        sec(clients),
        sec(servers)
    );
    if s.cpu_ms > 0.0 {
        let _ = write!(
            out,
            ", and the runner itself (judging, fault proxies, misbehaving peers) about **{}**, of the run's {}",
            sec((s.cpu_ms - clients - servers).max(0.0)),
            sec(s.cpu_ms)
        );
    }
    out.push_str(" (user + system, each process read when it ended).\n\n");
    out.push_str("| language | as client | client processes | per test | as server | server processes |\n|---|---|---|---|---|---|\n");
    for x in &shares {
        let per_test = match x.client_tests {
            0 => "–".to_string(),
            n => format!("{:.1} ms", x.client_ms / n as f64),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {per_test} | {} | {} |",
            x.language,
            sec(x.client_ms),
            x.client_processes,
            sec(x.server_ms),
            x.server_processes
        );
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::run::ProcessCpu;

    fn p(role: &str, language: &str, cpu_ms: f64) -> ProcessCpu {
        ProcessCpu {
            role: role.into(),
            language: language.into(),
            process: format!("{role}={language}"),
            cpu_ms,
            span_ms: None,
        }
    }

    #[test]
    fn cpu_is_summed_per_language_and_role_costliest_first() {
        use crate::model::run::{fixtures, Outcome};
        use crate::model::tls::TlsMode;
        let t = |client: &str, case: &str| fixtures::result(client, "rust", TlsMode::None, case, Outcome::Passed);
        let mut s = fixtures::summary(vec![t("go", "a"), t("go", "b"), t("go", "c"), t("scala", "a")]);
        s.cpu_ms = 10_000.0;
        s.processes = vec![
            p("client", "go", 1000.0),
            p("server", "go", 500.0),
            p("client", "scala", 4000.0),
            p("client", "scala", 2000.0),
        ];
        let got = shares(&s).unwrap();
        assert_eq!(got[0].language, "scala");
        assert_eq!(
            (got[0].client_processes, got[0].client_ms, got[0].client_tests),
            (2, 6000.0, 1)
        );
        assert_eq!(
            (got[1].server_processes, got[1].server_ms, got[1].client_tests),
            (1, 500.0, 3)
        );
        let md = render(&s);
        assert!(
            md.contains("Client processes used **7.0 s**, servers **0.5 s**"),
            "{md}"
        );
        assert!(md.contains("about **2.5 s**, of the run's 10.0 s"), "{md}");
        assert!(md.contains("| scala | 6.0 s | 2 | 6000.0 ms | 0.0 s | 0 |"), "{md}");
        s.processes.clear();
        assert_eq!(render(&s), "");
    }
}
