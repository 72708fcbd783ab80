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
    /// The client lane it runs in.
    pub lane: u32,
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
    /// The output closed early; the exit status as shown, whether the exit
    /// code was 2 (a usage error: it refused its input), and the last line
    /// the client wrote to stderr (its own word on why, if any).
    Exited {
        status: String,
        usage: bool,
        last_words: Option<String>,
    },
}

/// The last non-empty line of a client's stderr, cut to 200 characters.
pub fn last_line(stderr: &str) -> Option<String> {
    let line = stderr.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    Some(match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    })
}

/// One lane's steps, in order; the lane runs them one after the other.
#[derive(Debug, Default)]
struct Lane {
    steps: Vec<Pending>,
    current: usize,
    /// When its current step started (ms since the start).
    since_ms: u64,
    /// Extra time for its first step (the client's start-up).
    startup_ms: u64,
}

impl Lane {
    fn current(&self) -> Option<&Pending> {
        self.steps.get(self.current)
    }
}

/// Where each lane of a client is. Times are ms since the client started.
///
/// A step's budget counts from when it started (its lane's previous step
/// ended) or, if later, from when its line was written to the client's
/// stdin: a client still reading a long script has not seen it yet. A line
/// not yet written counts from the last line that was, so a client that
/// stops reading is still found out.
#[derive(Debug, Default)]
pub struct Progress {
    lanes: Vec<Lane>,
    /// When each step's line was written (by id).
    written: BTreeMap<String, u64>,
    last_written_ms: u64,
}

impl Progress {
    /// The steps in script order, written at `now_ms`; `startup_ms` is the
    /// first steps' extra time.
    pub fn new(steps: Vec<Pending>, now_ms: u64, startup_ms: u64) -> Progress {
        let mut lanes: Vec<Lane> = Vec::new();
        let mut index: BTreeMap<u32, usize> = BTreeMap::new();
        for step in steps {
            let i = *index.entry(step.lane).or_insert_with(|| {
                lanes.push(Lane::default());
                lanes.len() - 1
            });
            lanes[i].steps.push(step);
        }
        for lane in &mut lanes {
            lane.since_ms = now_ms;
            lane.startup_ms = startup_ms;
        }
        Progress {
            lanes,
            written: BTreeMap::new(),
            last_written_ms: now_ms,
        }
    }

    /// The line of step `id` was written to the client at `now_ms`.
    pub fn written(&mut self, id: &str, now_ms: u64) {
        self.written.insert(id.to_string(), now_ms);
        self.last_written_ms = self.last_written_ms.max(now_ms);
    }

    /// When a lane's current step is due at the latest.
    fn lane_due(&self, lane: &Lane) -> Option<u64> {
        let step = lane.current()?;
        let seen = self.written.get(&step.id).copied().unwrap_or(self.last_written_ms);
        Some(seen.max(lane.since_ms) + lane.startup_ms + step.budget_ms)
    }

    /// When the next status line is due at the latest (`None` when all ended).
    pub fn due_ms(&self) -> Option<u64> {
        self.lanes.iter().filter_map(|l| self.lane_due(l)).min()
    }

    /// The test whose step is waited for longest (for a line that cannot be placed).
    pub fn oldest_test(&self) -> Option<usize> {
        let open = self.lanes.iter().filter(|l| l.current().is_some());
        open.min_by_key(|l| l.since_ms)
            .and_then(|l| l.current())
            .map(|s| s.test)
    }

    /// A status line with this id arrived at `now_ms`; returns the test whose
    /// step it ended, with the step's time, if it was the last status the
    /// step waited for.
    pub fn status_line(&mut self, id: &str, now_ms: u64) -> Option<(usize, u64)> {
        let lane = self
            .lanes
            .iter_mut()
            .find(|l| l.current().is_some_and(|s| s.waiting.iter().any(|w| w == id)))?;
        let step = &mut lane.steps[lane.current];
        step.waiting.retain(|w| w != id);
        if !step.waiting.is_empty() {
            return None;
        }
        let ended = (step.test, now_ms.saturating_sub(lane.since_ms));
        lane.current += 1;
        lane.since_ms = now_ms;
        lane.startup_ms = 0;
        Some(ended)
    }

    /// The tests whose steps were running when the client stopped.
    pub fn stopped(&self) -> Vec<usize> {
        self.lanes.iter().filter_map(|l| l.current()).map(|s| s.test).collect()
    }

    /// The reasons, per test, for what the client did not finish.
    pub fn unfinished(&self, end: &End) -> BTreeMap<usize, String> {
        let mut out = BTreeMap::new();
        let open: Vec<&Lane> = self.lanes.iter().filter(|l| l.current().is_some()).collect();
        let Some(late) = open.iter().min_by_key(|l| self.lane_due(l)).and_then(|l| l.current()) else {
            return out;
        };
        let stopped = |step: &Pending| match end {
            End::Finished => None,
            End::Hung if step.id == late.id => Some(format!(
                "client hung: no status line for step {:?} within its budget (killed)",
                step.id
            )),
            End::Hung => Some(format!(
                "not finished: the client was killed while at step {:?}, because step {:?} of another test hung",
                step.id, late.id
            )),
            End::Exited {
                status,
                usage,
                last_words,
            } => {
                let usage = if *usage {
                    " — it rejected its input as a usage error"
                } else {
                    ""
                };
                let words = last_words
                    .as_ref()
                    .map(|w| format!("; its last stderr line: {w:?}"))
                    .unwrap_or_default();
                Some(format!(
                    "client exited ({status}){usage} before finishing step {:?}{words}",
                    step.id
                ))
            }
        };
        for lane in &open {
            let Some(current) = lane.current() else { continue };
            let Some(why) = stopped(current) else { return out };
            out.entry(current.test).or_insert(why);
        }
        for lane in &open {
            let current = lane.current().expect("open lane");
            for later in &lane.steps[lane.current + 1..] {
                out.entry(later.test).or_insert_with(|| {
                    format!(
                        "not run: the client stopped at step {:?} of an earlier test",
                        current.id
                    )
                });
            }
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

    fn step(test: usize, id: &str, lane: u32, waiting: &[&str]) -> Pending {
        Pending {
            test,
            id: id.into(),
            lane,
            budget_ms: 100,
            waiting: waiting.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn script() -> Progress {
        Progress::new(
            vec![
                step(0, "a#0", 0, &["a#0"]),
                step(0, "a#1", 0, &["a#1*0", "a#1*1"]),
                step(1, "b#0", 0, &["b#0"]),
                step(2, "c#0", 0, &["c#0"]),
            ],
            0,
            1000,
        )
    }

    #[test]
    fn a_step_ends_with_its_last_status_line() {
        let mut p = script();
        assert_eq!(p.due_ms(), Some(1100), "the first step gets the start-up time");
        assert_eq!(p.status_line("a#0", 50), Some((0, 50)));
        assert_eq!(p.due_ms(), Some(150));
        assert_eq!(p.status_line("a#1*1", 60), None, "one copy of two");
        assert_eq!(p.status_line("zzz", 60), None, "a stray id ends nothing");
        assert_eq!(p.status_line("a#1*0", 70), Some((0, 20)));
        assert_eq!(p.status_line("b#0", 80), Some((1, 10)));
        assert_eq!(p.status_line("c#0", 90), Some((2, 10)));
        assert_eq!(p.due_ms(), None);
        assert!(p.unfinished(&End::Hung).is_empty(), "nothing left to blame");
    }

    #[test]
    fn lanes_go_on_side_by_side_each_with_its_own_budget() {
        let mut p = Progress::new(
            vec![
                step(0, "a#0", 0, &["a#0"]),
                step(1, "w#0", 1, &["w#0"]),
                step(1, "w#1", 1, &["w#1"]),
                step(2, "c#0", 0, &["c#0"]),
            ],
            0,
            0,
        );
        assert_eq!(p.status_line("w#0", 30), Some((1, 30)), "lane 1 ends first");
        assert_eq!(p.due_ms(), Some(100), "lane 0 is due first");
        assert_eq!(p.status_line("a#0", 40), Some((0, 40)));
        assert_eq!(p.due_ms(), Some(130));
        let why = p.unfinished(&End::Hung);
        assert!(
            why[&1].starts_with("client hung: no status line for step \"w#1\""),
            "{why:?}"
        );
        assert!(
            why[&2].starts_with("not finished: the client was killed while at step \"c#0\""),
            "{why:?}"
        );
        assert_eq!(p.stopped(), vec![2, 1]);
    }

    #[test]
    fn a_budget_counts_from_when_the_line_was_written() {
        let mut p = Progress::new(vec![step(0, "a#0", 0, &["a#0"]), step(1, "w#0", 1, &["w#0"])], 0, 0);
        p.written("a#0", 5);
        assert_eq!(
            p.due_ms(),
            Some(105),
            "w#0 is not written yet: it counts from a#0's line"
        );
        assert_eq!(p.status_line("a#0", 50), Some((0, 50)));
        p.written("w#0", 400);
        assert_eq!(p.due_ms(), Some(500), "the client could read w#0 only at 400");
        let mut stuck = Progress::new(vec![step(0, "a#0", 0, &["a#0"]), step(1, "w#0", 1, &["w#0"])], 0, 0);
        stuck.written("a#0", 5);
        stuck.status_line("a#0", 50);
        assert_eq!(
            stuck.due_ms(),
            Some(105),
            "a client that stops reading is due from its last line"
        );
    }

    #[test]
    fn a_hung_client_blames_its_step_and_skips_the_rest() {
        let mut p = script();
        p.status_line("a#0", 10);
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
            last_words: None,
        });
        assert_eq!(
            why[&0],
            "client exited (exit status: 2) — it rejected its input as a usage error before finishing step \"a#0\""
        );
        let why = p.unfinished(&End::Exited {
            status: "signal: 9 (SIGKILL)".into(),
            usage: false,
            last_words: None,
        });
        assert_eq!(
            why[&0],
            "client exited (signal: 9 (SIGKILL)) before finishing step \"a#0\""
        );
        let why = p.unfinished(&End::Exited {
            status: "exit status: 1".into(),
            usage: false,
            last_words: Some("error: a call never settled".into()),
        });
        assert_eq!(
            why[&0],
            "client exited (exit status: 1) before finishing step \"a#0\"; its last stderr line: \"error: a call never settled\""
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

    #[test]
    fn the_last_stderr_line_is_the_last_non_empty_one_cut_to_200_characters() {
        assert_eq!(last_line(""), None);
        assert_eq!(last_line("a\n  b  \n\n \n"), Some("b".into()));
        let long = "é".repeat(250);
        assert_eq!(last_line(&long), Some(format!("{}…", "é".repeat(200))));
    }
}
