//! Known-failing and known-flaky lists applied to a run's results (pure).
//! A listed test that fails is an expected failure (not a pass); a listed
//! test that passes is red ("remove it from the list"); a pattern that can
//! match no test of the whole matrix is stale and fails the run.
use super::known::{Entry, KnownList};
use crate::model::run::{Outcome, TestResult};

/// Applies the lists to the results; returns run-level problems (stale patterns).
pub fn apply(results: &mut [TestResult], failing: &KnownList, flaky: &KnownList, all_ids: &[String]) -> Vec<String> {
    for t in results.iter_mut() {
        let listed: Vec<&Entry> = failing.matching(&t.id).collect();
        match (t.outcome, listed.first()) {
            (Outcome::Failed | Outcome::Error, Some(first)) => match listed.iter().find(|e| e.covers(&t.reasons)) {
                Some(e) => {
                    t.outcome = Outcome::ExpectedFailure;
                    t.reasons
                        .insert(0, format!("known failing ({}): {}", e.label(), e.reason));
                }
                None => t.reasons.insert(0, not_as_listed(&failing.path, first)),
            },
            (Outcome::Passed | Outcome::Flaky | Outcome::KnownFlaky, Some(e)) => {
                t.outcome = Outcome::Failed;
                t.reasons.insert(
                    0,
                    format!(
                        "unexpected pass: listed in {} as known failing ({}: {}) but it passed — remove it from the list",
                        failing.path, e.pattern, e.reason
                    ),
                );
            }
            (Outcome::Flaky, None) => {
                let listed: Vec<&Entry> = flaky.matching(&t.id).collect();
                let tries = failed_tries(t);
                let covering = listed.iter().find(|e| tries.iter().all(|r| e.covers(r))).copied();
                match (covering, listed.first()) {
                    (Some(e), _) => {
                        t.outcome = Outcome::KnownFlaky;
                        t.reasons
                            .insert(0, format!("known flaky ({}): {}", e.label(), e.reason));
                    }
                    (None, Some(first)) => t.reasons.insert(0, not_as_listed(&flaky.path, first)),
                    (None, None) => {}
                }
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    for list in [failing, flaky] {
        for e in list.stale(all_ids) {
            problems.push(format!(
                "{}: pattern {:?} matches no test of the matrix — remove or fix it",
                list.path, e.pattern
            ));
        }
    }
    problems
}

/// Why a listed test stays red: it failed, but not the way its entry says.
fn not_as_listed(path: &str, e: &Entry) -> String {
    format!(
        "not the listed failure: {path} lists this test ({}) for a failure its reasons here do not show, so it stays red",
        e.label()
    )
}

/// The reasons of each failed try of a flaky test: the tries that failed,
/// and a pass or fail after a different outcome keeps the failure after
/// its first line ("flaky: failed on try N after passing").
fn failed_tries(t: &TestResult) -> Vec<&[String]> {
    let attempts = t.attempts.iter().filter_map(|a| failure(a.outcome, &a.reasons));
    attempts.chain(failure(t.outcome, &t.reasons)).collect()
}

/// The failure a try's outcome and reasons record, if any.
fn failure(outcome: Outcome, reasons: &[String]) -> Option<&[String]> {
    match outcome {
        Outcome::Failed | Outcome::Error => Some(reasons),
        Outcome::Flaky if reasons.first().is_some_and(|r| r.starts_with("flaky: failed on try")) => Some(&reasons[1..]),
        _ => None,
    }
}

/// Folds another try of a test into its result. Red then green (or green
/// then red, under `--stress`) is flaky; the earlier try is kept as an attempt.
pub fn merge_attempt(first: &mut TestResult, next: TestResult) {
    first.attempts.push(crate::model::run::Attempt {
        outcome: first.outcome,
        reasons: first.reasons.clone(),
        duration_ms: first.duration_ms,
    });
    let tries = first.attempts.len() + 1;
    let was_red = first.attempts.iter().any(|a| a.outcome.is_red());
    let was_green = first.attempts.iter().any(|a| a.outcome == Outcome::Passed);
    match (next.outcome, was_red, was_green) {
        (Outcome::Passed, true, _) => {
            first.outcome = Outcome::Flaky;
            first.reasons = vec![format!("flaky: passed on try {tries} after failing")];
        }
        (o, _, true) if o.is_red() => {
            first.outcome = Outcome::Flaky;
            first.reasons = std::iter::once(format!("flaky: failed on try {tries} after passing"))
                .chain(next.reasons)
                .collect();
        }
        _ => {
            if first.outcome != Outcome::Flaky {
                first.outcome = next.outcome;
                first.reasons = next.reasons;
            }
        }
    }
    first.duration_ms = next.duration_ms;
    if next.outcome.is_red() {
        first.client_stderr = next.client_stderr;
        first.server_stderr = next.server_stderr;
    }
}

/// The minimal known-failing list for the red tests of a run: an entry per
/// test, whose reason is the test's first failure reason and whose symptom
/// is that reason taken literally but for its numbers (ports, times and byte
/// counts differ from run to run). The reason is the place for the evidence.
pub fn write_list(results: &[TestResult]) -> String {
    let mut out = String::from(
        "# Known-failing tests: a listed test that fails is reported as an expected failure;\n\
         # one that passes fails the run. Every entry needs a reason with its evidence,\n\
         # and may name the symptom: a regular expression a reason of the failure must match.\n",
    );
    for t in results
        .iter()
        .filter(|t| matches!(t.outcome, Outcome::Failed | Outcome::Error | Outcome::ExpectedFailure))
    {
        let reason = t
            .reasons
            .iter()
            .find(|r| !r.starts_with("known failing") && !r.starts_with("not the listed failure"))
            .cloned()
            .unwrap_or_else(|| format!("{:?} without a reason", t.outcome));
        out.push_str(&format!(
            "\n[[known]]\npattern = {}\nsymptom = {}\nreason = {}\n",
            toml_string(&t.id),
            toml_string(&symptom_of(&reason)),
            toml_string(&reason)
        ));
    }
    out
}

/// A reason as a regular expression that matches it, with any run of digits
/// standing for any number.
fn symptom_of(reason: &str) -> String {
    let digits = regex::Regex::new("[0-9]+").expect("a valid regular expression");
    digits.replace_all(&regex::escape(reason), "[0-9]+").into_owned()
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::run::fixtures::result;
    use crate::model::tls::TlsMode;

    const LIST: &str = "[[known]]\npattern = \"client=go/server=rust/*/case=put\"\nreason = \"go sends X\"\n";

    fn ids(rs: &[TestResult]) -> Vec<String> {
        rs.iter().map(|r| r.id.clone()).collect()
    }

    #[test]
    fn a_listed_failure_is_expected_not_passed() {
        let mut rs = vec![result("go", "rust", TlsMode::None, "put", Outcome::Failed)];
        let all = ids(&rs);
        let problems = apply(
            &mut rs,
            &KnownList::parse("kf", LIST).unwrap(),
            &KnownList::default(),
            &all,
        );
        assert!(problems.is_empty());
        assert_eq!(rs[0].outcome, Outcome::ExpectedFailure);
        assert!(!rs[0].outcome.is_red());
        assert!(rs[0].reasons[0].contains("go sends X"));
    }

    #[test]
    fn a_listed_pass_is_red() {
        let mut rs = vec![result("go", "rust", TlsMode::None, "put", Outcome::Passed)];
        let all = ids(&rs);
        apply(
            &mut rs,
            &KnownList::parse("kf", LIST).unwrap(),
            &KnownList::default(),
            &all,
        );
        assert_eq!(rs[0].outcome, Outcome::Failed);
        assert!(rs[0].reasons[0].starts_with("unexpected pass"), "{:?}", rs[0].reasons);
    }

    #[test]
    fn a_stale_pattern_is_a_problem() {
        let mut rs = vec![result("rust", "rust", TlsMode::None, "get", Outcome::Passed)];
        let all = ids(&rs);
        let problems = apply(
            &mut rs,
            &KnownList::parse("kf", LIST).unwrap(),
            &KnownList::default(),
            &all,
        );
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("matches no test"), "{problems:?}");
    }

    #[test]
    fn flaky_is_red_unless_listed() {
        let mut rs = vec![
            result("go", "go", TlsMode::None, "get", Outcome::Flaky),
            result("go", "go", TlsMode::None, "put", Outcome::Flaky),
        ];
        let all = ids(&rs);
        let flaky = KnownList::parse("kflaky", "[[known]]\npattern = \"*/case=get\"\nreason = \"races\"\n").unwrap();
        apply(&mut rs, &KnownList::default(), &flaky, &all);
        assert_eq!(rs[0].outcome, Outcome::KnownFlaky);
        assert!(!rs[0].outcome.is_red());
        assert_eq!(rs[1].outcome, Outcome::Flaky);
        assert!(rs[1].outcome.is_red());
    }

    /// A try of `get` that failed with this reason.
    fn failed_with(reason: &str) -> TestResult {
        let mut t = result("go", "go", TlsMode::None, "get", Outcome::Failed);
        t.reasons = vec![reason.to_string()];
        t
    }

    const GONE: &str =
        "[[known]]\npattern = \"*/case=get\"\nreason = \"races\"\nsymptom = 'got UNAVAILABLE \"Socket closed\"'\n";

    #[test]
    fn a_listed_flake_is_covered_only_when_every_failed_try_shows_the_symptom() {
        let pass = || result("go", "go", TlsMode::None, "get", Outcome::Passed);
        let listed = failed_with(r#"step 2 Get: status: expected OK, got UNAVAILABLE "Socket closed""#);
        let other = failed_with(r#"step 1 Put: status: expected UNAVAILABLE, got DEADLINE_EXCEEDED "Deadline""#);
        // fail as listed, then pass; fail otherwise, then pass; under --stress:
        // pass, fail as listed, pass; fail as listed, fail otherwise, pass
        let mut runs = vec![listed.clone(), other.clone(), pass(), listed.clone()];
        merge_attempt(&mut runs[0], pass());
        merge_attempt(&mut runs[1], pass());
        merge_attempt(&mut runs[2], listed.clone());
        merge_attempt(&mut runs[2], pass());
        merge_attempt(&mut runs[3], other);
        merge_attempt(&mut runs[3], pass());
        let all = ids(&runs);
        let flaky = KnownList::parse("kflaky", GONE).unwrap();
        apply(&mut runs, &KnownList::default(), &flaky, &all);
        let outcomes: Vec<Outcome> = runs.iter().map(|t| t.outcome).collect();
        use Outcome::{Flaky, KnownFlaky};
        assert_eq!(outcomes, [KnownFlaky, Flaky, KnownFlaky, Flaky]);
        assert!(
            runs[0].reasons[0].contains("symptom /got UNAVAILABLE"),
            "{:?}",
            runs[0].reasons
        );
        assert!(
            runs[1].reasons[0].starts_with("not the listed failure: kflaky lists this test"),
            "{:?}",
            runs[1].reasons
        );
    }

    #[test]
    fn a_listed_test_failing_another_way_stays_red() {
        let mut rs = vec![
            failed_with(r#"step 2 Get: status: expected OK, got UNAVAILABLE "Socket closed""#),
            failed_with(r#"step 2 Get: status: expected OK, got INTERNAL "boom""#),
        ];
        let all = ids(&rs);
        apply(
            &mut rs,
            &KnownList::parse("kf", GONE).unwrap(),
            &KnownList::default(),
            &all,
        );
        assert_eq!(rs[0].outcome, Outcome::ExpectedFailure);
        assert_eq!(rs[1].outcome, Outcome::Failed);
        assert!(
            rs[1].reasons[0].contains("for a failure its reasons here do not show"),
            "{:?}",
            rs[1].reasons
        );
        assert_eq!(
            rs[1].reasons[1],
            r#"step 2 Get: status: expected OK, got INTERNAL "boom""#
        );
        // another entry for the same test that shows this symptom covers it
        let both = format!("{GONE}[[known]]\npattern = \"*\"\nreason = \"boom\"\nsymptom = 'INTERNAL'\n");
        let mut rs = vec![failed_with(r#"step 2 Get: status: expected OK, got INTERNAL "boom""#)];
        apply(
            &mut rs,
            &KnownList::parse("kf", &both).unwrap(),
            &KnownList::default(),
            &all[1..],
        );
        assert_eq!(rs[0].outcome, Outcome::ExpectedFailure, "{:?}", rs[0].reasons);
        assert!(
            rs[0].reasons[0].starts_with("known failing (*, symptom /INTERNAL/): boom"),
            "{:?}",
            rs[0].reasons
        );
    }

    #[test]
    fn a_pass_on_retry_is_flaky_and_keeps_the_failed_try() {
        let mut t = result("go", "go", TlsMode::None, "get", Outcome::Failed);
        merge_attempt(&mut t, result("go", "go", TlsMode::None, "get", Outcome::Passed));
        assert_eq!(t.outcome, Outcome::Flaky);
        assert!(t.outcome.is_red());
        assert_eq!(t.attempts.len(), 1);
        assert_eq!(t.attempts[0].outcome, Outcome::Failed);
        assert!(t.reasons[0].contains("passed on try 2"));
    }

    #[test]
    fn failing_every_try_stays_failed_and_stress_finds_flakes() {
        let mut t = result("go", "go", TlsMode::None, "get", Outcome::Failed);
        merge_attempt(&mut t, result("go", "go", TlsMode::None, "get", Outcome::Failed));
        assert_eq!((t.outcome, t.attempts.len()), (Outcome::Failed, 1));
        let mut s = result("go", "go", TlsMode::None, "get", Outcome::Passed);
        merge_attempt(&mut s, result("go", "go", TlsMode::None, "get", Outcome::Passed));
        assert_eq!(s.outcome, Outcome::Passed);
        merge_attempt(&mut s, result("go", "go", TlsMode::None, "get", Outcome::Error));
        assert_eq!(s.outcome, Outcome::Flaky);
        assert!(s.reasons[0].contains("failed on try 3 after passing"));
    }

    #[test]
    fn entries_need_a_reason_and_the_written_list_reloads() {
        assert!(KnownList::parse("kf", "[[known]]\npattern = \"x\"\nreason = \" \"\n")
            .unwrap_err()
            .to_string()
            .contains("no reason"));
        let rs = vec![
            result("go", "rust", TlsMode::None, "put", Outcome::Failed),
            result("go", "rust", TlsMode::None, "get", Outcome::Passed),
        ];
        let text = write_list(&rs);
        let list = KnownList::parse("w", &text).unwrap();
        assert_eq!(list.entries.len(), 1);
        assert!(list.find(&rs[0].id).is_some() && list.find(&rs[1].id).is_none());
    }

    #[test]
    fn the_written_list_covers_the_same_failure_with_other_numbers_but_not_another_failure() {
        let reason = "step 1 Get: status: expected UNAVAILABLE, got DEADLINE_EXCEEDED \"Deadline exceeded after 10.001s (remote_addr=127.0.0.1:38913) [x]*\"";
        let failed = |reason: &str| {
            let mut t = result("go", "rust", TlsMode::None, "get", Outcome::Failed);
            t.reasons = vec![reason.to_string(), "fault proxy: conn 1: accepted at 36786 ms".into()];
            t
        };
        let list = KnownList::parse("w", &write_list(&[failed(reason)])).unwrap();
        let symptom = list.entries[0]
            .symptom
            .as_ref()
            .expect("a written entry names its symptom");
        assert!(symptom.as_str().contains(r"\(remote_addr="), "{symptom}");
        let judged = |reason: &str| {
            let mut rs = vec![failed(reason)];
            let all = ids(&rs);
            apply(&mut rs, &list, &KnownList::default(), &all);
            rs.remove(0).outcome
        };
        assert_eq!(judged(reason), Outcome::ExpectedFailure);
        assert_eq!(
            judged(&reason.replace("10.001s", "9.998s").replace("38913", "40007")),
            Outcome::ExpectedFailure
        );
        assert_eq!(
            judged("step 1 Get: status: expected UNAVAILABLE, got CANCELLED \"Call cancelled\""),
            Outcome::Failed
        );
        assert_eq!(
            judged(&reason.replace("[x]*", "xx")),
            Outcome::Failed,
            "brackets are literal"
        );
    }
}
