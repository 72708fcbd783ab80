//! Exit codes, in one place: the constants, the one function from a run's
//! summary to its code (used by `run` and `merge`), the error type commands
//! return, and the help text that documents them.
use crate::model::run::RunSummary;

/// Every test passed (or the command succeeded).
pub const OK: i32 = 0;
/// At least one test was red (failed, error, unlisted flaky), or a command
/// found a problem (a build failed, a tool is missing).
pub const RED: i32 = 1;
/// Bad command line, matrix.toml or case file.
pub const USAGE: i32 = 2;
/// The runner itself failed (certificates, report folder, a child it could not start).
pub const RUNNER: i32 = 3;
/// Interrupted by Ctrl-C.
pub const INTERRUPTED: i32 = 130;

/// The exit codes as `--help` shows them.
pub const HELP: &str = "Exit codes: 0 all passed, 1 a test was red, 2 usage or configuration error, \
3 the runner itself failed, 130 interrupted.";

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Exit(pub i32, pub String);

pub fn usage(e: impl std::fmt::Display) -> Exit {
    Exit(USAGE, e.to_string())
}

pub fn runner(e: impl std::fmt::Display) -> Exit {
    Exit(RUNNER, e.to_string())
}

/// The code of a finished (or merged) run: interrupted before red before ok.
pub fn for_summary(s: &RunSummary) -> i32 {
    if s.interrupted {
        INTERRUPTED
    } else if s.counts().red > 0 || !s.problems.is_empty() {
        RED
    } else {
        OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::run::fixtures::{result, summary};
    use crate::model::run::Outcome;
    use crate::model::tls::TlsMode;

    #[test]
    fn a_summary_maps_to_one_code() {
        let passed = || result("go", "rust", TlsMode::None, "get", Outcome::Passed);
        assert_eq!(for_summary(&summary(vec![passed()])), OK);
        let listed = result("go", "rust", TlsMode::None, "put", Outcome::ExpectedFailure);
        assert_eq!(for_summary(&summary(vec![passed(), listed])), OK);
        let red = result("go", "rust", TlsMode::None, "put", Outcome::Failed);
        assert_eq!(for_summary(&summary(vec![passed(), red.clone()])), RED);
        let mut problem = summary(vec![passed()]);
        problem
            .problems
            .push("known-failing.toml: entry matches nothing".into());
        assert_eq!(for_summary(&problem), RED);
        let mut interrupted = summary(vec![red]);
        interrupted.interrupted = true;
        assert_eq!(
            for_summary(&interrupted),
            INTERRUPTED,
            "an interrupted run says so, red or not"
        );
    }

    #[test]
    fn help_names_every_code() {
        for code in [OK, RED, USAGE, RUNNER, INTERRUPTED] {
            assert!(HELP.contains(&format!("{code} ")), "{code} missing from {HELP:?}");
        }
    }
}
