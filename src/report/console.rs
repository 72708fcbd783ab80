//! The terminal reporter: an indicatif progress bar while tests finish,
//! each red test printed as it happens, and the final totals. The only
//! module that draws on the terminal.
use crate::model::run::{Counts, Outcome, RunSummary, TestResult};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;

pub struct Console {
    bar: ProgressBar,
}

impl Console {
    pub fn new(total: usize) -> Console {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tests {msg}")
                .expect("valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Console { bar }
    }

    /// A test ended; `listed`: it is on the known-failing list (then its
    /// failure is expected and not printed).
    pub fn test_done(&self, t: &TestResult, listed: bool) {
        self.bar.inc(1);
        // An unavailable language is one line at the end, not one per test.
        if matches!(t.outcome, Outcome::Failed | Outcome::Error) && t.unavailable.is_none() && !listed {
            let label = if t.outcome == Outcome::Failed { "FAIL " } else { "ERROR" };
            let mut text = format!("{label} {}", t.id);
            for r in t.reasons.iter().take(3) {
                text.push_str(&format!("\n      {}", r.lines().next().unwrap_or_default()));
            }
            if t.reasons.len() > 3 {
                text.push_str(&format!("\n      … {} more", t.reasons.len() - 3));
            }
            text.push_str(&format!("\n      reproduce: {}", t.reproduce));
            if self.bar.is_hidden() {
                note!("{text}"); // not a terminal (CI): plain lines
            } else {
                self.bar.println(text);
            }
        }
    }

    pub fn finish(&self, s: &RunSummary, report_dir: &str) {
        self.bar.finish_and_clear();
        let c = s.counts();
        for p in &s.problems {
            note!("PROBLEM {p}");
        }
        for t in s.tests.iter().filter(|t| t.outcome == Outcome::Flaky) {
            note!("FLAKY {} ({} tries)", t.id, t.attempts.len() + 1);
        }
        // Listed failures keep their blame in the reports; the console names the red ones.
        for t in s.tests.iter().filter(|t| t.blame.is_some() && t.outcome.is_red()) {
            note!("BLAME {}: {}", t.id, t.blame.as_deref().unwrap_or_default());
        }
        for (lang, (n, reason)) in unavailable(s) {
            note!("UNAVAILABLE {lang}: {n} test(s) not run; {reason}");
        }
        note!("reports: {report_dir}/summary.md, junit.xml, summary.json");
        // The plain closing line CI systems read: expected failures count as skipped.
        let mut listed = Vec::new();
        if c.expected_failure > 0 {
            listed.push(format!("{} known-failing", c.expected_failure));
        }
        if c.known_flaky > 0 {
            listed.push(format!("{} known flaky, counted as passed", c.known_flaky));
        }
        let listed = if listed.is_empty() {
            String::new()
        } else {
            format!(" ({})", listed.join("; "))
        };
        say!("{}", closing_line(c, &listed));
    }
}

/// Per unavailable language: its tests, and the first line of why.
fn unavailable(s: &RunSummary) -> BTreeMap<&str, (usize, &str)> {
    let mut out = BTreeMap::new();
    for t in &s.tests {
        if let Some(lang) = t.unavailable.as_deref().filter(|_| t.outcome == Outcome::Error) {
            let reason = t.reasons.first().and_then(|r| r.lines().next()).unwrap_or_default();
            out.entry(lang).or_insert((0, reason)).0 += 1;
        }
    }
    out
}

/// The plain closing line CI systems read: tests that did not run (an
/// interrupted run, an unavailable language) are "not run", never "failed".
fn closing_line(c: Counts, listed: &str) -> String {
    let not_run = c.interrupted + c.unavailable;
    let not_run = if not_run > 0 {
        format!(", {not_run} not run")
    } else {
        String::new()
    };
    format!(
        "{} passed, {} failed{not_run}, {} skipped{listed}",
        c.total() - c.red - c.expected_failure,
        c.red - c.interrupted - c.unavailable,
        c.expected_failure
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::run::fixtures::{result, summary};
    use crate::model::tls::TlsMode;

    #[test]
    fn the_closing_line_counts_what_did_not_run_as_not_run() {
        let mut tests = vec![
            result("go", "rust", TlsMode::None, "a", Outcome::Passed),
            result("go", "rust", TlsMode::None, "b", Outcome::Failed),
            result("go", "rust", TlsMode::None, "c", Outcome::Interrupted),
            result("cpp", "rust", TlsMode::None, "d", Outcome::Error),
            result("cpp", "rust", TlsMode::None, "e", Outcome::Error),
        ];
        for t in &mut tests[3..] {
            t.unavailable = Some("cpp".into());
            t.reasons = vec!["cpp is unavailable: protoc not found on PATH (`stock-matrix setup cpp`)".into()];
        }
        let s = summary(tests);
        assert_eq!(closing_line(s.counts(), ""), "1 passed, 1 failed, 3 not run, 0 skipped");
        let u = unavailable(&s);
        assert_eq!(u.len(), 1);
        assert_eq!(
            u["cpp"],
            (
                2,
                "cpp is unavailable: protoc not found on PATH (`stock-matrix setup cpp`)"
            )
        );
    }
}
