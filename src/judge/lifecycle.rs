//! A lifecycle case's verdict (pure): the runner stopped a server of the
//! test's own (stdin's end, SIGTERM or SIGINT), maybe with a Monitor open, and the
//! server must have exited with code 0 within the case's time, ending the
//! Monitor as it went (CONTRACT.md, the server's exit); and how a client
//! process of a test's own ended after its script (`client`).
use crate::input::cases::{ClientExit, Lifecycle};

/// How the server ended once the runner had stopped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited by itself with this code, this many ms after the stop.
    Code(i32, u64),
    /// It was ended by this signal (not a later one of the runner's), this
    /// many ms after the stop.
    Signal(String, u64),
    /// It had not exited within the case's time; then it `then` (exited on
    /// SIGTERM, needed SIGKILL).
    Hung { then: String },
}

/// What the runner saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The Monitor the case holds open: opened (its first event came), or why not.
    pub monitor: Option<Result<(), String>>,
    pub exit: Exit,
    /// How long after the server's exit the open Monitor ended (`None`: it
    /// had not ended 1 s after).
    pub monitor_end_after_exit_ms: Option<u64>,
}

/// The reasons a lifecycle case failed; empty = passed.
pub fn judge(l: &Lifecycle, seen: &Observed) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(Err(why)) = &seen.monitor {
        reasons.push(format!(
            "the Monitor to hold open while the server stops did not start: {why}"
        ));
    }
    let on = l.stop.said();
    let with = match seen.monitor {
        Some(Ok(())) => " with a Monitor open",
        _ => "",
    };
    match &seen.exit {
        Exit::Code(0, ms) if *ms <= l.within_ms => {}
        Exit::Code(0, ms) => reasons.push(format!(
            "exit: expected within {} ms of {on}{with}, took {ms} ms",
            l.within_ms
        )),
        Exit::Code(c, ms) => reasons.push(format!("exit code: expected 0 on {on}{with}, got {c} (after {ms} ms)")),
        Exit::Signal(s, ms) => reasons.push(format!("exit code: expected 0 on {on}{with}, got {s} (after {ms} ms)")),
        Exit::Hung { then } => reasons.push(format!(
            "exit: expected within {} ms of {on}{with}, but it had not exited (then it {then})",
            l.within_ms
        )),
    }
    let exited = !matches!(seen.exit, Exit::Hung { .. });
    if exited && seen.monitor == Some(Ok(())) && seen.monitor_end_after_exit_ms.is_none() {
        reasons.push(
            "the open Monitor had not ended 1 s after the server's process exited (something else still serves it)"
                .into(),
        );
    }
    reasons
}

/// How a client process ended once its last step was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEnd {
    /// It exited with this code (`None`: by this signal), this many ms after.
    Exited {
        code: Option<i32>,
        how: String,
        after_ms: u64,
    },
    /// It had not exited this many ms after; it was killed.
    Killed { after_ms: u64 },
}

/// The reasons a client's exit after its script is not the case's `exit`.
pub fn client(expect: &ClientExit, end: &ClientEnd) -> Vec<String> {
    let want = format!(
        "exit code: expected {} once every step was answered and stdin ended",
        expect.code
    );
    match end {
        ClientEnd::Exited { code, after_ms, .. } if *code == Some(expect.code) && *after_ms <= expect.within_ms => {
            vec![]
        }
        ClientEnd::Exited { code, after_ms, .. } if *code == Some(expect.code) => {
            vec![format!("{want}, within {} ms: it took {after_ms} ms", expect.within_ms)]
        }
        ClientEnd::Exited { how, after_ms, .. } => vec![format!("{want}, got {how} (after {after_ms} ms)")],
        ClientEnd::Killed { after_ms } => vec![format!("{want}, but it had not exited {after_ms} ms after (killed)")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::cases::StopBy;

    const STDIN: Lifecycle = Lifecycle {
        stop: StopBy::StdinEof,
        open_monitor: true,
        within_ms: 3000,
    };

    fn seen(exit: Exit) -> Observed {
        Observed {
            monitor: Some(Ok(())),
            exit,
            monitor_end_after_exit_ms: Some(2),
        }
    }

    #[test]
    fn an_exit_0_in_time_that_ends_the_monitor_passes() {
        assert!(judge(&STDIN, &seen(Exit::Code(0, 420))).is_empty());
    }

    #[test]
    fn a_server_that_ignores_the_stop_is_told_what_ended_it() {
        let r = judge(
            &STDIN,
            &seen(Exit::Hung {
                then: "exited on SIGTERM".into(),
            }),
        );
        assert_eq!(
            r,
            ["exit: expected within 3000 ms of its stdin's end with a Monitor open, but it had not exited (then it exited on SIGTERM)"]
        );
    }

    #[test]
    fn a_late_exit_a_bad_code_and_a_signal_each_fail() {
        let late = judge(&STDIN, &seen(Exit::Code(0, 3001)));
        assert_eq!(
            late,
            ["exit: expected within 3000 ms of its stdin's end with a Monitor open, took 3001 ms"]
        );
        let sigterm = Lifecycle {
            stop: StopBy::Sigterm,
            ..STDIN
        };
        let code = judge(&sigterm, &seen(Exit::Code(143, 80)));
        assert_eq!(
            code,
            ["exit code: expected 0 on SIGTERM with a Monitor open, got 143 (after 80 ms)"]
        );
        let signal = judge(&sigterm, &seen(Exit::Signal("signal: 15 (SIGTERM)".into(), 5)));
        assert_eq!(signal.len(), 1);
        assert!(signal[0].contains("got signal: 15 (SIGTERM)"), "{signal:?}");
    }

    #[test]
    fn a_monitor_that_outlives_the_process_or_never_opened_fails() {
        let outlived = Observed {
            monitor_end_after_exit_ms: None,
            ..seen(Exit::Code(0, 100))
        };
        assert_eq!(judge(&STDIN, &outlived).len(), 1);
        assert!(judge(&STDIN, &outlived)[0].contains("something else still serves it"));
        let refused = Observed {
            monitor: Some(Err("UNIMPLEMENTED: no Monitor".into())),
            monitor_end_after_exit_ms: None,
            ..seen(Exit::Code(0, 100))
        };
        assert_eq!(
            judge(&STDIN, &refused),
            ["the Monitor to hold open while the server stops did not start: UNIMPLEMENTED: no Monitor"]
        );
    }

    const EXIT_0: ClientExit = ClientExit {
        code: 0,
        within_ms: 3000,
    };

    fn exited(code: i32, after_ms: u64) -> ClientEnd {
        ClientEnd::Exited {
            code: Some(code),
            how: format!("exit status: {code}"),
            after_ms,
        }
    }

    #[test]
    fn a_client_that_exits_0_in_time_passes_and_any_other_end_says_what_it_did() {
        assert!(client(&EXIT_0, &exited(0, 12)).is_empty());
        assert_eq!(
            client(&EXIT_0, &exited(1, 12)),
            ["exit code: expected 0 once every step was answered and stdin ended, got exit status: 1 (after 12 ms)"]
        );
        assert_eq!(
            client(&EXIT_0, &exited(0, 3500)),
            ["exit code: expected 0 once every step was answered and stdin ended, within 3000 ms: it took 3500 ms"]
        );
        assert_eq!(
            client(&EXIT_0, &ClientEnd::Killed { after_ms: 5000 }),
            ["exit code: expected 0 once every step was answered and stdin ended, but it had not exited 5000 ms after (killed)"]
        );
    }
}
