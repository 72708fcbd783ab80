//! A connection's set-up is paid before the tests: a client whose first call
//! on a connection is slow (a JVM's TLS start-up on a loaded machine) gets
//! the same verdicts as a fast one.
mod common;
use common::*;

#[test]
fn a_slow_first_call_on_each_connection_is_not_timed_in_any_test() {
    let dir = tempfile::tempdir().unwrap();
    // The first call on each connection waits 4.5 s inside its timed part:
    // more than the 4 s that the deadline and cancellation cases allow.
    let extra = format!(
        "[languages.slow]\nfolder = \"{}\"\nstack = \"tonic, slow to connect\"\nserver = [\"{{stock-matrix}}\", \"reference\", \"server\"]\nclient = [\"{{stock-matrix}}\", \"reference\", \"client\", \"--slow-first-call-ms\", \"4500\"]\n",
        dir.path().display()
    );
    let m = matrix_with(dir.path(), &extra, "");
    // The controls: a case whose step has a connection of its own (through
    // the runner's proxy, or with keepalive settings; no warm-up call opens
    // it) does see the wait.
    add_set(
        &m,
        "own-connection",
        "description = \"x\"\n[[case]]\nname = \"timed-first-call\"\ndescription = \"x\"\nfault.down = { latency_ms = 1 }\n[[case.step]]\nmethod = \"Inventory\"\nfaulty = true\ntimeout_ms = 5000\nexpect = { messages = [{}], max_elapsed_ms = 4000 }\n[[case]]\nname = \"timed-keepalive-call\"\ndescription = \"x\"\nkeepalive = { ms = 60000 }\n[[case.step]]\nmethod = \"Inventory\"\ntimeout_ms = 5000\nexpect = { messages = [{}], max_elapsed_ms = 4000 }\n",
    );
    let (out, s) = run(
        &[
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            "slow",
            "--server",
            "rust",
            "--set",
            "deadlines,cancellation,own-connection",
            "--no-blame",
        ],
        &dir.path().join("r"),
    );
    let tests = tests_of(&s);
    let timed: Vec<&serde_json::Value> = tests.iter().filter(|t| t["set"] != "own-connection").collect();
    // Both sets in all three TLS modes, each mode a connection of the one process.
    assert!(timed.len() >= 3 * 16, "{} tests", timed.len());
    for t in &timed {
        assert_eq!(t["outcome"], "passed", "{}: {}", t["id"], reasons(t));
    }
    for case in ["timed-first-call", "timed-keepalive-call"] {
        let control = find(
            &s,
            &format!("client=slow/server=rust/tls=mtls/set=own-connection/case={case}"),
        );
        assert_eq!(control["outcome"], "failed", "{}", reasons(control));
        assert!(
            reasons(control).contains("more than the 4000 ms allowed"),
            "{}",
            reasons(control)
        );
    }
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_client_whose_first_call_on_a_connection_fails_is_red_on_the_first_test_there() {
    let dir = tempfile::tempdir().unwrap();
    let m = matrix_with(
        dir.path(),
        &broken(dir.path(), "client", &["first-call-unavailable"]),
        "",
    );
    let (out, s) = run(
        &[
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            "first-call-unavailable",
            "--server",
            "rust",
            "--tls",
            "none,mtls",
            "--set",
            "unary,deadlines",
            "--no-blame",
        ],
        &dir.path().join("r"),
    );
    assert_eq!(out.status.code(), Some(1));
    // The warm-up call took the failure on each connection (one per TLS
    // mode), and it counts against the first test there; the rest pass.
    let red: Vec<&serde_json::Value> = tests_of(&s).iter().filter(|t| t["outcome"] != "passed").collect();
    assert_eq!(red.len(), 2, "{:?}", red.iter().map(|t| &t["id"]).collect::<Vec<_>>());
    for t in red {
        assert!(
            reasons(t).contains("the first call on this test's connection (the runner's warm-up Get of a key nobody writes, before any test) ended UNAVAILABLE"),
            "{}",
            reasons(t)
        );
    }
    for tls in ["none", "mtls"] {
        let in_mode = tests_of(&s)
            .iter()
            .filter(|t| t["cell"]["tls"] == tls && t["outcome"] != "passed");
        assert_eq!(in_mode.count(), 1, "{tls}");
    }
}
