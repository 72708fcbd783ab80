//! Where a client process is in its script (pure): which step's status line
//! comes next, when a step ends, and what to say about the tests a client
//! left unfinished — hung, exited early, never reached — or for a line that
//! is not contract output.
use std::collections::BTreeMap;

/// One top-level step of the script, as the runner waits for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Index of the test the step belongs to.
    pub test: usize,
    pub id: String,
    /// How long its status line may take, in ms.
    pub budget_ms: u64,
    /// Status-line ids still to come (one per copy).
    pub waiting: Vec<String>,
}

/// How the client's output ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Every step printed its status line.
    Finished,
    /// No status line within the step's budget: the client was killed.
    Hung,
    /// The output closed early; the exit status as shown, and whether the
    /// exit code was 2 (a usage error: it refused its input).
    Exited { status: String, usage: bool },
}

#[derive(Debug, Default)]
pub struct Progress {
    steps: Vec<Pending>,
    current: usize,
}

impl Progress {
    pub fn new(steps: Vec<Pending>) -> Progress {
        Progress { steps, current: 0 }
    }

    /// The step whose status line comes next (`None` when all ended).
    pub fn current(&self) -> Option<&Pending> {
        self.steps.get(self.current)
    }

    pub fn first_test(&self) -> Option<usize> {
        self.steps.first().map(|s| s.test)
    }

    /// A status line with this id arrived; returns the test whose step it
    /// ended, if it was the last status the step waited for.
    pub fn status_line(&mut self, id: &str) -> Option<usize> {
        let step = self.steps.get_mut(self.current)?;
        step.waiting.retain(|w| w != id);
        if !step.waiting.is_empty() {
            return None;
        }
        self.current += 1;
        Some(step.test)
    }

    /// The reasons, per test, for what the client did not finish.
    pub fn unfinished(&self, end: &End) -> BTreeMap<usize, String> {
        let mut out = BTreeMap::new();
        let Some(stopped) = self.current() else { return out };
        let why = match end {
            End::Finished => return out,
            End::Hung => format!(
                "client hung: no status line for step {:?} within its budget (killed)",
                stopped.id
            ),
            End::Exited { status, usage } => {
                let usage = if *usage {
                    " — it rejected its input as a usage error"
                } else {
                    ""
                };
                format!("client exited ({status}){usage} before finishing step {:?}", stopped.id)
            }
        };
        out.insert(stopped.test, why);
        for later in &self.steps[self.current..] {
            out.entry(later.test).or_insert_with(|| {
                format!(
                    "not run: the client stopped at step {:?} of an earlier test",
                    stopped.id
                )
            });
        }
        out
    }
}

/// The reason for a line that is not contract output.
pub fn garbage(shown: &str, error: &str) -> String {
    format!("client printed a line that is not contract output: {shown}: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script() -> Progress {
        let step = |test, id: &str, waiting: &[&str]| Pending {
            test,
            id: id.into(),
            budget_ms: 100,
            waiting: waiting.iter().map(|s| s.to_string()).collect(),
        };
        Progress::new(vec![
            step(0, "a#0", &["a#0"]),
            step(0, "a#1", &["a#1*0", "a#1*1"]),
            step(1, "b#0", &["b#0"]),
            step(2, "c#0", &["c#0"]),
        ])
    }

    #[test]
    fn a_step_ends_with_its_last_status_line() {
        let mut p = script();
        assert_eq!(p.status_line("a#0"), Some(0));
        assert_eq!(p.status_line("a#1*1"), None, "one copy of two");
        assert_eq!(p.status_line("zzz"), None, "a stray id ends nothing");
        assert_eq!(p.status_line("a#1*0"), Some(0));
        assert_eq!(p.current().map(|s| s.id.as_str()), Some("b#0"));
        assert_eq!(p.status_line("b#0"), Some(1));
        assert_eq!(p.status_line("c#0"), Some(2));
        assert!(p.current().is_none());
        assert!(p.unfinished(&End::Hung).is_empty(), "nothing left to blame");
    }

    #[test]
    fn a_hung_client_blames_its_step_and_skips_the_rest() {
        let mut p = script();
        p.status_line("a#0");
        let why = p.unfinished(&End::Hung);
        assert!(
            why[&0].starts_with("client hung: no status line for step \"a#1\""),
            "{why:?}"
        );
        assert!(
            why[&1].starts_with("not run: the client stopped at step \"a#1\""),
            "{why:?}"
        );
        assert!(why[&2].starts_with("not run:"), "{why:?}");
    }

    #[test]
    fn an_early_exit_says_how_and_a_usage_error_says_so() {
        let p = script();
        let why = p.unfinished(&End::Exited {
            status: "exit status: 2".into(),
            usage: true,
        });
        assert_eq!(
            why[&0],
            "client exited (exit status: 2) — it rejected its input as a usage error before finishing step \"a#0\""
        );
        let why = p.unfinished(&End::Exited {
            status: "signal: 9 (SIGKILL)".into(),
            usage: false,
        });
        assert_eq!(
            why[&0],
            "client exited (signal: 9 (SIGKILL)) before finishing step \"a#0\""
        );
        assert_eq!(why.len(), 3);
        assert!(p.unfinished(&End::Finished).is_empty());
    }

    #[test]
    fn a_garbage_line_is_named() {
        assert_eq!(
            garbage("\"hello\"", "expected value"),
            "client printed a line that is not contract output: \"hello\": expected value"
        );
    }
}
