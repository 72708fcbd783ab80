//! End-to-end tests of the known-failing and known-flaky lists: a pass on
//! retry is flaky and red unless listed, and known-failing lists are exact
//! both ways.
mod common;
use common::*;
use std::path::{Path, PathBuf};

fn flaky_matrix(dir: &Path) -> PathBuf {
    let extra = format!("[languages.flaky]\nfolder = \"{}\"\nstack = \"tonic, flaky\"\nserver = [\"{{stock-matrix}}\", \"reference\", \"server\", \"--break\", \"flaky-once\"]\nclient = [\"{{stock-matrix}}\", \"reference\", \"client\"]\n", dir.display());
    matrix_with(dir, &extra, "")
}

#[test]
fn a_pass_on_retry_is_flaky_and_fails_the_run_unless_listed() {
    let dir = tempfile::tempdir().unwrap();
    let m = flaky_matrix(dir.path());
    let args = [
        "--matrix",
        m.to_str().unwrap(),
        "run",
        "--client",
        "rust",
        "--server",
        "flaky",
        "--tls",
        "none",
        "--set",
        "unary",
        "--case",
        "get-missing",
        "--retries",
        "2",
    ];
    let (out, s) = run(&args, &dir.path().join("r1"));
    assert_eq!(out.status.code(), Some(1), "a flaky test must fail the run");
    let t = find(&s, "client=rust/server=flaky/tls=none/set=unary/case=get-missing");
    assert_eq!(t["outcome"], "flaky");
    assert_eq!(t["attempts"].as_array().unwrap().len(), 1);
    assert!(t["attempts"][0]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("expected NOT_FOUND, got UNKNOWN"));
    let junit = std::fs::read_to_string(dir.path().join("r1/latest/junit.xml")).unwrap();
    assert!(junit.contains("<flakyFailure"), "{junit}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("FLAKY client=rust/server=flaky"));

    // Listed as known flaky, the same thing passes the run.
    // Listed as known flaky for its symptom, the same thing passes the run;
    // listed for another symptom, it is not the listed failure and stays red.
    let kf = dir.path().join("known-flaky.toml");
    let mut listed = args.to_vec();
    listed.extend(["--known-flaky", kf.to_str().unwrap()]);
    for (symptom, outcome, code) in [
        ("expected NOT_FOUND, got UNKNOWN", "known-flaky", 0),
        ("got UNAVAILABLE", "flaky", 1),
    ] {
        std::fs::remove_file(dir.path().join(".stock-matrix-flaky-once")).unwrap();
        let entry = format!("[[known]]\npattern = \"client=*/server=flaky/*/case=get-missing\"\nreason = \"the flaky-once fault\"\nsymptom = \"{symptom}\"\n");
        std::fs::write(&kf, entry).unwrap();
        let (out, s) = run(&listed, &dir.path().join(format!("r-{code}")));
        let t = find(&s, "client=rust/server=flaky/tls=none/set=unary/case=get-missing");
        assert_eq!(t["outcome"], outcome, "{t}");
        assert_eq!(out.status.code(), Some(code), "{symptom}");
    }
}

#[test]
fn known_failing_lists_are_exact_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let m = matrix_with(dir.path(), "[languages.broken]\nfolder = \"/tmp\"\nstack = \"x\"\nserver = [\"{stock-matrix}\", \"reference\", \"server\", \"--break\", \"wrong-status\"]\nclient = [\"{stock-matrix}\", \"reference\", \"client\"]\n", "");
    let m = m.to_str().unwrap();
    let base = [
        "--matrix",
        m,
        "run",
        "--client",
        "rust",
        "--server",
        "broken",
        "--tls",
        "none",
        "--set",
        "unary",
        "--no-blame",
    ];
    // 1. --write-known-failing writes the minimal list for what failed.
    let list = dir.path().join("known-failing.toml");
    let mut args = base.to_vec();
    args.extend(["--write-known-failing", list.to_str().unwrap()]);
    let (out, _) = run(&args, &dir.path().join("r1"));
    assert_eq!(out.status.code(), Some(1));
    let written = std::fs::read_to_string(&list).unwrap();
    // wrong-status fails every Get of a missing key: the unary cases that
    // expect NOT_FOUND, one entry each.
    let red = ["get-missing", "key-with-nul", "keys-are-exact"];
    assert_eq!(written.matches("[[known]]").count(), red.len(), "{written}");
    for case in red {
        assert!(written.contains(&format!("case={case}\"")), "{case}: {written}");
    }
    assert!(
        written.contains("expected NOT_FOUND") && written.matches("symptom = ").count() == red.len(),
        "{written}"
    );
    // 2. With that list the run passes, and the failure is an expected
    // failure, not retried (a listed failure is no flake to hunt).
    let mut args = base.to_vec();
    args.extend(["--known-failing", list.to_str().unwrap()]);
    let mut retried = args.clone();
    retried.extend(["--retries", "2"]);
    let (out, s) = run(&retried, &dir.path().join("r2"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let t = find(&s, "client=rust/server=broken/tls=none/set=unary/case=get-missing");
    assert_eq!(t["outcome"], "expected-failure");
    assert!(
        t["attempts"].as_array().is_none_or(|a| a.is_empty()),
        "{}",
        t["attempts"]
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("retrying"));
    let junit = std::fs::read_to_string(dir.path().join("r2/latest/junit.xml")).unwrap();
    assert!(
        junit.contains("<skipped") && junit.contains("expected failure"),
        "{junit}"
    );
    // 3. A listed test that passes fails the run.
    std::fs::write(
        &list,
        format!("{written}\n[[known]]\npattern = \"client=rust/server=broken/tls=none/set=unary/case=put-then-get\"\nreason = \"wrongly listed\"\n"),
    )
    .unwrap();
    let (out, s) = run(&args, &dir.path().join("r3"));
    assert_eq!(out.status.code(), Some(1));
    let t = find(&s, "client=rust/server=broken/tls=none/set=unary/case=put-then-get");
    assert_eq!(t["outcome"], "failed");
    assert!(reasons(t).starts_with("unexpected pass"), "{}", reasons(t));
    // 4. A pattern that matches no test of the matrix fails the run.
    std::fs::write(
        &list,
        format!("{written}\n[[known]]\npattern = \"client=cobol/*\"\nreason = \"typo\"\n"),
    )
    .unwrap();
    let (out, s) = run(&args, &dir.path().join("r4"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        s["problems"][0]
            .as_str()
            .unwrap()
            .contains("\"client=cobol/*\" matches no test"),
        "{}",
        s["problems"]
    );
}
