//! A usage case's verdict (pure): the client was given a script line (or an
//! option) it must refuse, so it must exit 2 with its reason on stderr and
//! without a line on stdout (CONTRACT.md, the client's exit codes).
use super::compare::short;
use crate::contract::script::Line;
use serde_json::Value;

/// How a usage case's client process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Code(i32),
    /// It was ended by this signal (not the runner's).
    Signal(String),
    /// It had not exited this many ms after its stdin closed; it was killed.
    Hung(u64),
}

/// The reasons a usage case failed; empty = passed.
pub fn judge(ended: &Ended, stdout: &str, stderr: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    match ended {
        Ended::Code(2) => {}
        Ended::Code(0) => reasons.push("exit code: expected 2 (a usage error), got 0 (it ran the script)".into()),
        Ended::Code(c) => reasons.push(format!("exit code: expected 2 (a usage error), got {c}")),
        Ended::Signal(s) => reasons.push(format!("exit code: expected 2 (a usage error), got {s}")),
        Ended::Hung(ms) => reasons.push(format!(
            "exit code: expected 2 (a usage error), but it had not exited {ms} ms after its stdin closed (killed)"
        )),
    }
    let printed: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    if let Some(first) = printed.first() {
        let what = match Line::parse(first) {
            Ok(line) => match (&line.status, &line.message) {
                (Some(s), _) => format!("a status line for step {:?}: {}", line.id, s.code),
                (None, Some(_)) => format!("a response message for step {:?}", line.id),
                (None, None) => format!("an output line for step {:?}", line.id),
            },
            Err(_) => format!(
                "a line that is not an output line: {}",
                short(&Value::String(first.to_string()))
            ),
        };
        reasons.push(format!(
            "stdout: expected nothing (a refused line makes no call), got {} line(s), the first {what}",
            printed.len()
        ));
    }
    if ended == &Ended::Code(2) && stderr.trim().is_empty() {
        reasons.push("stderr: expected the usage error's reason, got nothing".into());
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS_LINE: &str = r#"{"id":"u","status":{"code":"NOT_FOUND","message":"no"},"headers":{},"trailers":{}}"#;

    #[test]
    fn exit_2_with_a_reason_and_no_output_passes() {
        assert!(judge(&Ended::Code(2), "", "error: step \"u\": unknown field \"x\"\n").is_empty());
    }

    #[test]
    fn a_client_that_ran_the_line_is_told_so_with_what_it_printed() {
        let r = judge(&Ended::Code(0), &format!("{STATUS_LINE}\n"), "");
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0], "exit code: expected 2 (a usage error), got 0 (it ran the script)");
        assert_eq!(
            r[1],
            "stdout: expected nothing (a refused line makes no call), got 1 line(s), the first a status line for step \"u\": NOT_FOUND"
        );
    }

    #[test]
    fn a_usage_error_reported_as_a_fatal_one_fails() {
        let r = judge(&Ended::Code(1), "", "Traceback …");
        assert_eq!(r, vec!["exit code: expected 2 (a usage error), got 1".to_string()]);
    }

    #[test]
    fn a_silent_exit_2_a_hang_a_signal_and_garbage_each_fail() {
        assert_eq!(
            judge(&Ended::Code(2), "", " \n"),
            vec!["stderr: expected the usage error's reason, got nothing".to_string()]
        );
        assert!(judge(&Ended::Hung(10000), "", "")[0].contains("had not exited 10000 ms after its stdin closed"));
        assert!(judge(&Ended::Signal("signal 11 (SIGSEGV)".into()), "", "x")[0].ends_with("got signal 11 (SIGSEGV)"));
        let r = judge(&Ended::Code(2), "oops\n", "x");
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].ends_with("the first a line that is not an output line: \"oops\""),
            "{r:?}"
        );
    }
}
