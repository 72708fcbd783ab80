//! RunSummary → JUnit XML (pure), with quick-junit: one testsuite per
//! client/server/TLS cell, one testcase per case; failure text holds every
//! reason and the command that reproduces the test.
use crate::model::run::{Outcome, RunSummary, TestResult};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};
use std::collections::BTreeMap;
use std::time::Duration;

fn details(t: &TestResult) -> String {
    let mut s = t.reasons.join("\n");
    s.push_str(&format!("\n\nreproduce: {}", t.reproduce));
    if !t.client_stderr.is_empty() {
        s.push_str(&format!("\n\nclient stderr (tail):\n{}", t.client_stderr));
    }
    if !t.server_stderr.is_empty() {
        s.push_str(&format!("\n\nserver stderr (tail):\n{}", t.server_stderr));
    }
    s
}

pub fn render(summary: &RunSummary) -> String {
    let mut report = Report::new("stock-matrix");
    report.set_time(Duration::from_secs_f64(summary.duration_ms / 1000.0));
    let mut suites: BTreeMap<String, TestSuite> = BTreeMap::new();
    for t in &summary.tests {
        let cell = t.cell.id();
        let mut status = match t.outcome {
            Outcome::Passed | Outcome::Flaky | Outcome::KnownFlaky => TestCaseStatus::success(),
            Outcome::ExpectedFailure => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(format!(
                    "expected failure: {}",
                    t.reasons.first().cloned().unwrap_or_default()
                ));
                s.set_description(details(t));
                s
            }
            Outcome::Failed | Outcome::Error => {
                let kind = if t.outcome == Outcome::Failed {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut s = TestCaseStatus::non_success(kind);
                s.set_message(t.reasons.first().cloned().unwrap_or_default());
                s.set_type(if t.outcome == Outcome::Failed {
                    "mismatch"
                } else {
                    "error"
                });
                s.set_description(details(t));
                s
            }
            Outcome::Interrupted => {
                let mut s = TestCaseStatus::skipped();
                s.set_message("not run: the run was interrupted");
                s
            }
        };
        // Earlier tries: flaky runs of a success, reruns of a failure.
        for a in &t.attempts {
            if a.outcome.is_red() {
                let kind = if a.outcome == Outcome::Error {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
                let mut rerun = TestRerun::new(kind);
                rerun.set_message(a.reasons.first().cloned().unwrap_or_default());
                rerun.set_description(a.reasons.join("\n"));
                rerun.set_time(Duration::from_secs_f64(a.duration_ms / 1000.0));
                status.add_rerun(rerun);
            }
        }
        let mut case = TestCase::new(format!("{}/{}", t.set, t.case), status);
        case.set_classname(cell.clone());
        case.set_time(Duration::from_secs_f64(t.duration_ms / 1000.0));
        suites
            .entry(cell.clone())
            .or_insert_with(|| TestSuite::new(cell))
            .add_test_case(case);
    }
    report.add_test_suites(suites.into_values());
    report.to_string().expect("JUnit serialization of in-memory data")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::run::fixtures::*;
    use crate::model::tls::TlsMode;

    #[test]
    fn flaky_and_expected_failures_are_marked() {
        let mut flaky = result("go", "rust", TlsMode::None, "get", Outcome::Flaky);
        flaky.attempts.push(crate::model::run::Attempt {
            outcome: Outcome::Failed,
            reasons: vec!["boom".into()],
            duration_ms: 1.0,
        });
        let mut expected = result("go", "rust", TlsMode::None, "put", Outcome::ExpectedFailure);
        expected.reasons.insert(0, "known failing (x): P-521".into());
        let xml = render(&summary(vec![flaky, expected]));
        assert!(xml.contains("<flakyFailure") && xml.contains("boom"), "{xml}");
        assert!(
            xml.contains("<skipped") && xml.contains("expected failure: known failing (x): P-521"),
            "{xml}"
        );
    }

    #[test]
    fn one_suite_per_cell_with_failures_reasons_and_reproduction() {
        let s = summary(vec![
            result("go", "rust", TlsMode::None, "get", Outcome::Passed),
            result("go", "rust", TlsMode::None, "put", Outcome::Failed),
            result("rust", "go", TlsMode::Mtls, "get", Outcome::Error),
        ]);
        let xml = render(&s);
        assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
        assert!(
            xml.contains(r#"<testsuite name="client=go/server=rust/tls=none" tests="2""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"failures="1""#) && xml.contains(r#"errors="1""#),
            "{xml}"
        );
        assert!(
            xml.contains("reproduce: stock-matrix run --client go --server rust --tls none --set unary --case put"),
            "{xml}"
        );
        assert!(
            xml.contains("expected OK, got NOT_FOUND &quot;&lt;gone&gt;&quot;"),
            "{xml}"
        );
    }
}
