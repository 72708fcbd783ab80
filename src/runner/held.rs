//! A client process's output lines, held per test until the test's last
//! top-level step ends (pure): then its lines go to the judge and the
//! process no longer holds them (a pair's large messages are tens of MiB).
//! A line that comes after its place is a reason of its test's: a message
//! after its own step's status line, any line after the test's last status.
use crate::contract::script::{Line, WARM_UP};
use crate::judge;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Default)]
pub(super) struct Held {
    /// Each test by its step ids' prefix (the id up to its first `#`).
    test_of: HashMap<String, usize>,
    /// Per test: its top-level steps that have not ended yet.
    steps_left: Vec<usize>,
    lines: BTreeMap<usize, Vec<Line>>,
    /// Step ids whose status line arrived.
    ended: HashSet<String>,
    /// Tests whose lines went to the judge.
    released: HashSet<usize>,
    late: BTreeMap<usize, Vec<String>>,
    /// The warm-up calls' lines (no test's).
    pub warm_up: Vec<Line>,
}

impl Held {
    /// `prefixes`: each test's step-id prefix, by test index; `steps`: each
    /// top-level step of the script, its id and test (a warm-up call counts
    /// for none).
    pub fn new<'a>(
        prefixes: impl IntoIterator<Item = String>,
        steps: impl IntoIterator<Item = (&'a str, usize)>,
    ) -> Held {
        let test_of: HashMap<String, usize> = prefixes.into_iter().enumerate().map(|(i, p)| (p, i)).collect();
        let mut steps_left = vec![0; test_of.len()];
        for (_, test) in steps.into_iter().filter(|(id, _)| !id.starts_with(WARM_UP)) {
            if let Some(n) = steps_left.get_mut(test) {
                *n += 1;
            }
        }
        Held {
            test_of,
            steps_left,
            ..Held::default()
        }
    }

    /// Takes one line; `ended` is the test whose top-level step it ended, if
    /// it did (ignored for a warm-up call's). Returns that test's lines when
    /// it was the test's last step.
    pub fn take(&mut self, line: Line, ended: Option<usize>) -> Option<(usize, Vec<Line>)> {
        if line.id.starts_with(WARM_UP) {
            self.warm_up.push(line);
            return None;
        }
        let (prefix, step) = line.id.split_once('#').unwrap_or((line.id.as_str(), ""));
        if let Some(&test) = self.test_of.get(prefix) {
            let shown = || judge::short(&serde_json::to_value(&line).unwrap_or_default());
            if self.released.contains(&test) {
                let why = format!("output after the test's last status line: {}", shown());
                self.late.entry(test).or_default().push(why);
            } else {
                if line.status.is_some() {
                    self.ended.insert(line.id.clone());
                } else if self.ended.contains(&line.id) {
                    let why = format!("step #{step} printed a message after its status line: {}", shown());
                    self.late.entry(test).or_default().push(why);
                }
                self.lines.entry(test).or_default().push(line);
            }
        }
        let test = ended?;
        let left = self.steps_left.get_mut(test)?;
        *left = left.saturating_sub(1);
        if *left > 0 || !self.released.insert(test) {
            return None;
        }
        Some((test, self.lines.remove(&test).unwrap_or_default()))
    }

    /// The lines of each test that did not end (none for a test that
    /// printed nothing), releasing them.
    pub fn unended(&mut self, tests: usize) -> Vec<(usize, Vec<Line>)> {
        let open: Vec<usize> = (0..tests).filter(|t| !self.released.contains(t)).collect();
        open.into_iter()
            .map(|t| {
                self.released.insert(t);
                (t, self.lines.remove(&t).unwrap_or_default())
            })
            .collect()
    }

    /// The reasons of the lines of each test that came after their place.
    pub fn late(&mut self) -> BTreeMap<usize, Vec<String>> {
        std::mem::take(&mut self.late)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::script::Status;

    fn message(id: &str) -> Line {
        Line::parse(&format!(r#"{{"id":"{id}","message":{{"value":"aGk="}}}}"#)).unwrap()
    }

    fn status(id: &str) -> Line {
        let mut line = message(id);
        line.message = None;
        line.status = Some(Status {
            code: "OK".into(),
            message: String::new(),
        });
        line
    }

    /// Two tests: `a` with steps #0 and #1 (after a warm-up call counted
    /// for it), `b` with step #0.
    fn held() -> Held {
        let warm_up = format!("{WARM_UP}0");
        let steps = [
            (warm_up.as_str(), 0),
            ("none/s/a#0", 0),
            ("none/s/a#1", 0),
            ("none/s/b#0", 1),
        ];
        Held::new(["none/s/a".to_string(), "none/s/b".to_string()], steps)
    }

    #[test]
    fn a_test_s_lines_are_released_when_its_last_step_ends_and_not_before() {
        let mut h = held();
        assert_eq!(h.take(message("none/s/a#0"), None), None);
        assert_eq!(h.take(status("none/s/a#0"), Some(0)), None);
        assert_eq!(h.take(message("none/s/b#0"), None), None);
        let (test, lines) = h.take(status("none/s/a#1"), Some(0)).expect("a ended");
        assert_eq!(test, 0);
        let ids: Vec<&str> = lines.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["none/s/a#0", "none/s/a#0", "none/s/a#1"]);
        // b never ended: its lines are still there at the end, a's are not.
        let rest = h.unended(2);
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].0, rest[0].1.len()), (1, 1));
        assert!(h.late().is_empty());
    }

    #[test]
    fn a_message_after_its_step_s_status_and_a_line_after_the_test_s_last_are_late() {
        let mut h = held();
        h.take(status("none/s/a#0"), Some(0));
        h.take(message("none/s/a#0"), None);
        h.take(status("none/s/b#0"), Some(1));
        h.take(message("none/s/b#0"), None);
        let late = h.late();
        assert_eq!(late.len(), 2, "{late:?}");
        assert!(
            late[&0][0].starts_with("step #0 printed a message after its status line: {"),
            "{late:?}"
        );
        assert!(
            late[&1][0].starts_with("output after the test's last status line: {"),
            "{late:?}"
        );
    }

    #[test]
    fn warm_up_lines_and_lines_of_no_test_are_no_test_s() {
        let mut h = held();
        assert_eq!(h.take(status(&format!("{WARM_UP}0")), Some(0)), None);
        h.take(message("none/s/zzz#0"), None);
        assert_eq!(h.warm_up.len(), 1);
        assert!(h.unended(2).iter().all(|(_, lines)| lines.is_empty()));
        assert!(h.late().is_empty());
    }
}
