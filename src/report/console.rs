//! The terminal reporter: an indicatif progress bar while tests finish,
//! each red test printed as it happens, and the final totals. The only
//! module that draws on the terminal.
use super::{Outcome, RunSummary, TestResult};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Console {
    bar: ProgressBar,
}

impl Console {
    pub fn new(total: usize) -> Console {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tests {msg}").expect("valid template"));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Console { bar }
    }

    pub fn test_done(&self, t: &TestResult) {
        self.bar.inc(1);
        if matches!(t.outcome, Outcome::Failed | Outcome::Error) {
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
        for t in s.tests.iter().filter(|t| t.blame.is_some()) {
            note!("BLAME {}: {}", t.id, t.blame.as_deref().unwrap_or_default());
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
        say!(
            "{} passed, {} failed, {} skipped{listed}",
            c.total() - c.red - c.expected_failure,
            c.red,
            c.expected_failure
        );
    }
}
