//! Known-failing and known-flaky lists applied to a run's results (pure).
//! A listed test that fails is an expected failure (not a pass); a listed
//! test that passes is red ("remove it from the list"); a pattern that can
//! match no test of the whole matrix is stale and fails the run.
use crate::model::run::{Outcome, TestResult};
use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "known")]
    entries: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    /// Glob over test ids (`client=python/server=*/tls=*/key=ec-p521/*`).
    pattern: String,
    /// Why it is on the list: the evidence, in words.
    reason: String,
}

/// One pattern of a list.
#[derive(Debug, Clone)]
pub struct Entry {
    pub pattern: String,
    pub reason: String,
    glob: GlobMatcher,
}

/// A known-failing or known-flaky list.
#[derive(Debug, Clone, Default)]
pub struct KnownList {
    pub path: String,
    pub entries: Vec<Entry>,
}

/// A known list that could not be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("failed to read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: pattern {pattern:?} has no reason; every entry needs one")]
    NoReason { path: String, pattern: String },
    #[error("{path}: pattern {pattern:?}: {message}")]
    BadPattern {
        path: String,
        pattern: String,
        message: String,
    },
}

impl KnownList {
    /// Parses a list; every entry needs a pattern and a non-empty reason.
    pub fn parse(path: &str, src: &str) -> Result<KnownList, ListError> {
        let path = path.to_string();
        let file: File = toml::from_str(src).map_err(|e| ListError::Syntax {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut entries = Vec::new();
        for e in file.entries {
            if e.reason.trim().is_empty() {
                return Err(ListError::NoReason {
                    path,
                    pattern: e.pattern,
                });
            }
            let glob = Glob::new(&e.pattern)
                .map_err(|err| ListError::BadPattern {
                    path: path.clone(),
                    pattern: e.pattern.clone(),
                    message: err.to_string(),
                })?
                .compile_matcher();
            entries.push(Entry {
                pattern: e.pattern,
                reason: e.reason,
                glob,
            });
        }
        Ok(KnownList { path, entries })
    }

    /// Loads a list; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<KnownList, ListError> {
        match std::fs::read_to_string(path) {
            Ok(src) => KnownList::parse(&path.display().to_string(), &src),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownList {
                path: path.display().to_string(),
                entries: vec![],
            }),
            Err(source) => Err(ListError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    pub fn find(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.glob.is_match(id))
    }

    /// Patterns that match none of `ids` (every test id the matrix can have).
    pub fn stale<'a>(&'a self, ids: &[String]) -> Vec<&'a Entry> {
        self.entries
            .iter()
            .filter(|e| !ids.iter().any(|id| e.glob.is_match(id)))
            .collect()
    }
}

/// Applies the lists to the results; returns run-level problems (stale patterns).
pub fn apply(results: &mut [TestResult], failing: &KnownList, flaky: &KnownList, all_ids: &[String]) -> Vec<String> {
    for t in results.iter_mut() {
        match (t.outcome, failing.find(&t.id)) {
            (Outcome::Failed | Outcome::Error, Some(e)) => {
                t.outcome = Outcome::ExpectedFailure;
                t.reasons
                    .insert(0, format!("known failing ({}): {}", e.pattern, e.reason));
            }
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
                if let Some(e) = flaky.find(&t.id) {
                    t.outcome = Outcome::KnownFlaky;
                    t.reasons
                        .insert(0, format!("known flaky ({}): {}", e.pattern, e.reason));
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

/// The minimal known-failing list for the red tests of a run.
pub fn write_list(results: &[TestResult]) -> String {
    let mut out = String::from("# Known-failing tests: a listed test that fails is reported as an expected failure;\n# one that passes fails the run. Every entry needs a reason with its evidence.\n");
    for t in results
        .iter()
        .filter(|t| matches!(t.outcome, Outcome::Failed | Outcome::Error | Outcome::ExpectedFailure))
    {
        let reason = t
            .reasons
            .iter()
            .find(|r| !r.starts_with("known failing"))
            .cloned()
            .unwrap_or_default();
        out.push_str(&format!("\n[[known]]\npattern = {:?}\nreason = {:?}\n", t.id, reason));
    }
    out
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
}
