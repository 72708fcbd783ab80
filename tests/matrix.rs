//! End-to-end tests: the real binary runs real matrices, and each test reads
//! the run's summary.json back. They prove the reference passes everything,
//! that deliberate bugs are caught with readable reasons, and that broken
//! implementations end as clear red tests without stopping the run.
mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn the_reference_passes_every_case_in_every_tls_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (out, s) = run(
        &["run", "--client", "rust", "--server", "rust", "--profile", "full"],
        dir.path(),
    );
    let tests = tests_of(&s);
    let failed: Vec<String> = tests
        .iter()
        .filter(|t| t["outcome"] != "passed")
        .map(|t| format!("{}: {}", t["id"], reasons(t)))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(out.status.success(), "exit {:?}", out.status);
    assert!(tests.len() > 150, "only {} tests", tests.len());
    for mode in ["none", "server", "mtls"] {
        assert!(tests.iter().any(|t| t["cell"]["tls"] == mode), "no test in tls={mode}");
    }
    for set in SETS {
        assert!(tests.iter().any(|t| t["set"] == set), "no test of set {set}");
    }
    for f in ["junit.xml", "summary.md", "summary.json"] {
        assert!(dir.path().join("latest").join(f).is_file(), "{f} missing");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} passed, 0 failed", tests.len())));
    // One client process ran the cells of all three TLS modes (and the
    // servers with other certificates): its connections were per step.
    assert_eq!(s["per_pair"], true);
    let key_types: std::collections::BTreeSet<String> = s["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"]["key_type"].to_string())
        .collect();
    assert_eq!(s["floor"]["clients_started"], key_types.len(), "{}", s["floor"]);
    assert!(s["floor"]["servers_started"].as_u64().unwrap() >= 3, "{}", s["floor"]);
}

#[test]
fn client_per_cell_starts_one_client_for_each_cell() {
    let dir = tempfile::tempdir().unwrap();
    let (out, s) = run(
        &[
            "run",
            "--client",
            "rust",
            "--server",
            "rust",
            "--set",
            "unary",
            "--client-per",
            "cell",
            "--jobs",
            "1",
            "--at-most",
            "1",
            "--no-blame",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "exit {:?}", out.status);
    assert_eq!(s["per_pair"], false);
    // --at-most equal to --jobs: one process at a time, whatever the load.
    assert_eq!((s["jobs"].as_u64(), s["at_most"].as_u64()), (Some(1), Some(1)));
    assert_eq!(s["most_at_once"], 1);
    assert!(s["cpu_ms"].as_f64().unwrap() > 0.0, "the run's CPU is measured");
    assert_eq!(s["floor"]["clients_started"], 3, "{}", s["floor"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("client processes at a time (one per cell)"), "{said}");
}

#[test]
fn deliberate_bugs_in_a_server_fail_the_matching_cases_with_readable_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let faults = [
        "wrong-status",
        "drop-stream-message",
        "no-echo",
        "mtls-optional",
        "hold-fills",
        "kv-own-store",
    ];
    let extra: String = faults
        .iter()
        .map(|f| format!("[languages.{f}]\nfolder = \"{}\"\nstack = \"tonic, broken\"\nserver = [\"{{stock-matrix}}\", \"reference\", \"server\", \"--break\", \"{f}\"]\nclient = [\"{{stock-matrix}}\", \"reference\", \"client\"]\n", dir.path().display()))
        .collect();
    let m = matrix_with(dir.path(), &extra, "step_grace_ms = 3000");
    let m = m.to_str().unwrap();
    let servers = faults.join(",");
    let reports = dir.path().join("reports");
    let (out, s) = run(
        &[
            "--matrix",
            m,
            "run",
            "--client",
            "rust",
            "--server",
            &servers,
            "--tls",
            "none,mtls",
            "--set",
            "unary,server-stream,bidi,metadata,tls,kv-compat",
        ],
        &reports,
    );
    assert_eq!(out.status.code(), Some(1));
    let expect = [
        (
            "wrong-status",
            "none",
            "unary/case=get-missing",
            "status: expected NOT_FOUND, got UNKNOWN \"oops\"",
        ),
        (
            "drop-stream-message",
            "none",
            "server-stream/case=existing-in-key-order",
            "expected 3 message(s), got 2",
        ),
        (
            "no-echo",
            "none",
            "metadata/case=echo-unary",
            "header x-stock-echo: expected \"unary-echo-1\", got nothing",
        ),
        (
            "no-echo",
            "none",
            "metadata/case=echo-on-failure",
            "trailer x-stock-echo: expected \"failure-echo\", got nothing",
        ),
        (
            "mtls-optional",
            "mtls",
            "tls/case=no-client-cert",
            "status: expected any code but OK, got OK",
        ),
        (
            "hold-fills",
            "none",
            "bidi/case=lock-step",
            "step 0 Trade: expected 4 message(s), got 0",
        ),
        (
            "kv-own-store",
            "none",
            "kv-compat/case=kv-put-stock-get",
            "step 1 Get: status: expected OK, got NOT_FOUND",
        ),
        (
            "kv-own-store",
            "none",
            "kv-compat/case=stock-put-kv-get",
            "step 1 proto.KV.Get: status: expected OK, got NOT_FOUND",
        ),
    ];
    for (server, tls, case, reason) in expect {
        let id = format!("client=rust/server={server}/tls={tls}/set={case}");
        let t = find(&s, &id);
        assert_eq!(t["outcome"], "failed", "{id}: {}", reasons(t));
        let r = reasons(t);
        assert!(r.contains(reason), "{id}: {r}");
        assert!(
            t["reproduce"]
                .as_str()
                .unwrap()
                .contains(&format!("--server {server} --tls {tls} --set")),
            "{}",
            t["reproduce"]
        );
    }
    // A bug fails only what it breaks: the same servers pass unrelated cases.
    for (server, case) in [
        ("wrong-status", "unary/case=put-then-get"),
        ("no-echo", "unary/case=put-then-get"),
        ("drop-stream-message", "bidi/case=lock-step"),
        ("mtls-optional", "tls/case=untrusted-ca"),
        ("kv-own-store", "kv-compat/case=kv-get-missing"),
        ("wrong-status", "kv-compat/case=kv-put-stock-get"),
    ] {
        let id = format!(
            "client=rust/server={server}/tls={}/set={case}",
            if case.starts_with("tls/") { "mtls" } else { "none" }
        );
        assert_eq!(find(&s, &id)["outcome"], "passed", "{id}");
    }
}

#[test]
fn a_wrong_expectation_fails_with_a_field_level_diff() {
    let dir = tempfile::tempdir().unwrap();
    let m = matrix_with(dir.path(), "", "");
    add_set(&m, "wrong", "[[case]]\nname = \"wrong-version\"\n[[case.step]]\nmethod = \"Put\"\nrequest = { key = \"{ns}k\", value = \"{b64:v}\" }\n[[case.step]]\nmethod = \"Get\"\nrequest = { key = \"{ns}k\" }\nexpect.messages = [{ value = \"{b64:v}\", version = \"2\" }]\n");
    let (out, s) = run(
        &[
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            "rust",
            "--server",
            "rust",
            "--tls",
            "none",
            "--set",
            "wrong",
        ],
        &dir.path().join("r"),
    );
    assert_eq!(out.status.code(), Some(1));
    let t = find(&s, "client=rust/server=rust/tls=none/set=wrong/case=wrong-version");
    assert_eq!(
        reasons(t),
        "step 1 Get: message 0: field version: expected \"2\", got \"1\""
    );
    let md = std::fs::read_to_string(dir.path().join("r/latest/summary.md")).unwrap();
    assert!(md.contains("field version: expected \"2\", got \"1\""), "{md}");
    let junit = std::fs::read_to_string(dir.path().join("r/latest/junit.xml")).unwrap();
    assert!(junit.contains("reproduce: stock-matrix --matrix"), "{junit}");
}

#[test]
fn a_server_that_cannot_start_and_a_hung_client_are_red_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[languages.nostart]\nfolder = \"{d}\"\nstack = \"sh\"\nserver = [\"sh\", \"-c\", \"echo cannot bind, sorry >&2; exit 7\"]\nclient = [\"sh\", \"-c\", \"exit 1\"]\n\
         [languages.hangs]\nfolder = \"{d}\"\nstack = \"sh\"\nserver = [\"sh\", \"-c\", \"exit 1\"]\nclient = [\"sh\", \"-c\", \"sleep 6173\"]\n",
        d = dir.path().display()
    );
    let m = matrix_with(
        dir.path(),
        &extra,
        "step_grace_ms = 300\nclient_startup_ms = 300\nserver_ready_ms = 5000",
    );
    let m = m.to_str().unwrap();
    let (out, s) = run(
        &[
            "--matrix",
            m,
            "run",
            "--client",
            "rust,hangs",
            "--server",
            "rust,nostart",
            "--tls",
            "none",
            "--set",
            "unary",
        ],
        &dir.path().join("r"),
    );
    assert_eq!(out.status.code(), Some(1));
    let t = find(&s, "client=rust/server=nostart/tls=none/set=unary/case=put-then-get");
    assert_eq!(t["outcome"], "error");
    assert!(
        reasons(t).contains("server exited (exit status: 7) before printing `listening on`"),
        "{}",
        reasons(t)
    );
    assert!(t["server_stderr"].as_str().unwrap().contains("cannot bind, sorry"));
    let t = find(&s, "client=hangs/server=rust/tls=none/set=unary/case=put-then-get");
    assert_eq!(t["outcome"], "error");
    assert!(
        reasons(t).contains("client hung: no status line for step"),
        "{}",
        reasons(t)
    );
    // A test it never began ran in a new client process, which hung too.
    let later = find(&s, "client=hangs/server=rust/tls=none/set=unary/case=get-missing");
    assert!(
        reasons(later).contains("(run in a new client process") && reasons(later).contains("client hung"),
        "{}",
        reasons(later)
    );
    // The healthy cell in the same run still passed.
    assert_eq!(
        find(&s, "client=rust/server=rust/tls=none/set=unary/case=put-then-get")["outcome"],
        "passed"
    );
    // Nothing was left behind.
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ps.stdout)
            .lines()
            .any(|l| l.starts_with("sleep 6173")),
        "the hung client survived"
    );
}

#[test]
fn an_unavailable_language_is_one_line_not_run_in_the_grid_and_never_blamed() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[languages.missing]\nfolder = \"{}\"\nstack = \"needs a tool this machine lacks\"\nrequires = [\"no-such-tool-5123\"]\ninstall = \"`stock-matrix setup missing`\"\nserver = [\"./server\"]\nclient = [\"./client\"]\n",
        dir.path().display()
    );
    let m = matrix_with(dir.path(), &extra, "");
    let (out, s) = run(
        &[
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            "rust,missing",
            "--server",
            "rust",
            "--tls",
            "none",
            "--set",
            "unary",
        ],
        &dir.path().join("reports"),
    );
    assert_eq!(out.status.code(), Some(1), "a language that cannot run fails the run");
    let tests = tests_of(&s);
    let missing: Vec<&Value> = tests.iter().filter(|t| t["cell"]["client"] == "missing").collect();
    assert!(!missing.is_empty());
    for t in &missing {
        assert_eq!(t["outcome"], "error");
        assert_eq!(t["unavailable"], "missing");
        assert!(
            reasons(t).contains("no-such-tool-5123 not found on PATH (`stock-matrix setup missing`)"),
            "{}",
            reasons(t)
        );
        assert!(t.get("blame").is_none(), "blamed: {t}");
    }
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("client=missing") || l.starts_with("UNAVAILABLE") || l.starts_with("BLAME"))
        .collect();
    assert_eq!(lines.len(), 1, "{console}");
    assert!(
        lines[0].starts_with(&format!(
            "UNAVAILABLE missing: {} test(s) not run; missing is unavailable",
            missing.len()
        )),
        "{console}"
    );
    let rust_tests = tests.len() - missing.len();
    assert!(
        console.contains(&format!(
            "{rust_tests} passed, 0 failed, {} not run, 0 skipped",
            missing.len()
        )),
        "{console}"
    );
    let md = std::fs::read_to_string(dir.path().join("reports/latest/summary.md")).unwrap();
    assert!(md.contains("| **missing** | not run |"), "{md}");
    assert!(md.contains("## Not run: unavailable languages"), "{md}");
    assert!(!md.contains("ERROR `client=missing"), "listed one by one: {md}");
}

#[test]
fn a_broken_matrix_file_names_line_and_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let m = matrix_with(dir.path(), "", "");
    let text = std::fs::read_to_string(&m)
        .unwrap()
        .replace("stack = \"tonic\"", "stack = \"tonic\"\nbuild_comand = [\"x\"]");
    std::fs::write(&m, text).unwrap();
    let out = Command::new(bin())
        .args(["--matrix", m.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("matrix.toml:") && err.contains("languages.rust.build_comand: unknown field `build_comand`"),
        "{err}"
    );
}

#[test]
fn list_counts_the_profiles_as_designed() {
    for (profile, combos) in [
        (
            "quick",
            "18 combinations (3 clients × 3 servers × 1 TLS modes × 2 sets)",
        ),
        (
            "standard",
            "150 combinations (5 clients × 5 servers × 2 TLS modes × 3 sets)",
        ),
    ] {
        let out = Command::new(bin())
            .current_dir(repo())
            .args(["list", "--profile", profile])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(combos),
            "{profile}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out = Command::new(bin())
        .current_dir(repo())
        .args(["list", "--profile", "quick", "--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["combinations"], 18);
    assert_eq!(v["cells"].as_array().unwrap().len(), 9);
}

#[test]
fn clients_that_skip_verification_are_caught_by_the_negative_tls_cases() {
    let dir = tempfile::tempdir().unwrap();
    let extra: String = ["trust-any-ca", "ignore-server-name"]
        .iter()
        .map(|f| format!("[languages.{f}]\nfolder = \"{}\"\nstack = \"tonic, broken\"\nserver = [\"{{stock-matrix}}\", \"reference\", \"server\"]\nclient = [\"{{stock-matrix}}\", \"reference\", \"client\", \"--break\", \"{f}\"]\n", dir.path().display()))
        .collect();
    let m = matrix_with(dir.path(), &extra, "");
    let (out, s) = run(
        &[
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            "trust-any-ca,ignore-server-name",
            "--server",
            "rust",
            "--tls",
            "server",
            "--set",
            "tls",
        ],
        &dir.path().join("r"),
    );
    assert_eq!(out.status.code(), Some(1));
    for (client, case) in [
        ("trust-any-ca", "untrusted-ca"),
        ("ignore-server-name", "wrong-server-name"),
    ] {
        let t = find(
            &s,
            &format!("client={client}/server=rust/tls=server/set=tls/case={case}"),
        );
        assert_eq!(t["outcome"], "failed", "{client}: {}", reasons(t));
        assert!(
            reasons(t).contains("status: expected any code but OK, got OK"),
            "{}",
            reasons(t)
        );
        assert_eq!(
            t["blame"],
            format!("client {client} (the reference server is the other side)")
        );
    }
    // The same broken clients still pass the positive control.
    assert_eq!(
        find(
            &s,
            "client=trust-any-ca/server=rust/tls=server/set=tls/case=configured-tls-works"
        )["outcome"],
        "passed"
    );
}

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
    std::fs::remove_file(dir.path().join(".stock-matrix-flaky-once")).unwrap();
    std::fs::write(
        dir.path().join("known-flaky.toml"),
        "[[known]]\npattern = \"client=*/server=flaky/*/case=get-missing\"\nreason = \"the flaky-once fault\"\n",
    )
    .unwrap();
    let mut listed = args.to_vec();
    let kf = dir.path().join("known-flaky.toml");
    listed.extend(["--known-flaky", kf.to_str().unwrap()]);
    let (out, s) = run(&listed, &dir.path().join("r2"));
    assert_eq!(
        find(&s, "client=rust/server=flaky/tls=none/set=unary/case=get-missing")["outcome"],
        "known-flaky"
    );
    assert_eq!(out.status.code(), Some(0));
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
    assert_eq!(written.matches("[[known]]").count(), 1, "{written}");
    assert!(
        written.contains("case=get-missing") && written.contains("expected NOT_FOUND"),
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

/// A server started by hand (here the reference, once with a deliberate bug,
/// once in mtls) is driven with `run --target`: cases judge it like any other,
/// two runs against one server do not see each other's keys, and the
/// reproduce command names the target.
#[test]
fn run_target_drives_a_server_started_by_hand() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    assert!(Command::new(bin())
        .args(["certs", "--out"])
        .arg(&certs)
        .status()
        .unwrap()
        .success());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = |f: &str| certs.join(f).to_string_lossy().into_owned();
    let mut server = Command::new(bin())
        .args([
            "reference",
            "server",
            "--port",
            &port.to_string(),
            "--break",
            "wrong-status",
            "--tls-mode",
            "mtls",
        ])
        .args([
            "--cert-file",
            &c("server.pem"),
            "--key-file",
            &c("server.key"),
            "--ca-file",
            &c("ca.pem"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    let target = format!("localhost:{port}");
    let args = [
        "run",
        "--target",
        &target,
        "--server",
        "hand-made",
        "--client",
        "rust",
        "--tls",
        "mtls",
        "--set",
        "unary,tls,kv-compat",
        "--target-ca",
        &c("ca.pem"),
        "--target-cert",
        &c("client.pem"),
        "--target-key",
        &c("client.key"),
        "--target-name",
        "localhost",
        "--no-blame",
    ];
    for round in 0..2 {
        let reports = dir.path().join(format!("reports{round}"));
        let (out, s) = run(&args, &reports);
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
        let bad = find(&s, "client=rust/server=hand-made/tls=mtls/set=unary/case=get-missing");
        assert_eq!(bad["outcome"], "failed");
        assert!(
            reasons(bad).contains("expected NOT_FOUND, got UNKNOWN"),
            "{}",
            reasons(bad)
        );
        assert!(
            bad["reproduce"]
                .as_str()
                .unwrap()
                .contains(&format!("--target {target}")),
            "{}",
            bad["reproduce"]
        );
        // Everything else passes, the second time too: its keys are its own.
        let red: Vec<String> = tests_of(&s)
            .iter()
            .filter(|t| t["outcome"] != "passed" && t["id"] != bad["id"])
            .map(|t| format!("{}: {}", t["id"], reasons(t)))
            .collect();
        assert!(red.is_empty(), "round {round}: {red:#?}");
        for case in [
            "tls/case=no-client-cert",
            "tls/case=untrusted-ca",
            "unary/case=put-then-get",
            "kv-compat/case=kv-put-stock-get",
        ] {
            find(&s, &format!("client=rust/server=hand-made/tls=mtls/set={case}"));
        }
        // A server with an expired certificate cannot be had from a target.
        assert!(tests_of(&s).iter().all(|t| t["case"] != "expired-server-cert"));
        assert!(String::from_utf8_lossy(&out.stderr).contains("left out 1 test(s)"));
    }
    drop(server.stdin.take());
    assert!(server.wait().unwrap().success());
    // Nothing listening: every test is an error that says so.
    let (out, s) = run(
        &[
            "run",
            "--target",
            &target,
            "--server",
            "gone",
            "--client",
            "rust",
            "--set",
            "unary",
            "--no-blame",
        ],
        &dir.path().join("r3"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(tests_of(&s)
        .iter()
        .all(|t| t["outcome"] == "error" && reasons(t).contains("did not answer a health check")));
}

#[test]
fn a_run_whose_output_is_closed_still_writes_its_reports_and_its_exit_code() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .current_dir(repo())
        .args([
            "run",
            "--client",
            "rust",
            "--server",
            "rust",
            "--tls",
            "none",
            "--set",
            "unary",
            "--reports",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -1` gone away: read one line, then close both pipes.
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stderr.take().unwrap()), &mut first).unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert!(first.starts_with("running "), "{first}");
    assert_eq!(status.code(), Some(0), "a closed pipe must not change the exit code");
    for f in ["junit.xml", "summary.md", "summary.json"] {
        assert!(dir.path().join("latest").join(f).is_file(), "{f} missing");
    }
}

#[test]
fn a_copied_checkout_rebuilds_in_its_own_folder_and_leaves_the_original_alone() {
    // A build whose output remembers where it was made, as CMake's cache does:
    // rebuilt in a copy, it must write into the copy, not the original.
    let dir = tempfile::tempdir().unwrap();
    let make = |root: &Path| {
        let lang = root.join("lang");
        std::fs::create_dir_all(&lang).unwrap();
        // A build is stamped with the fingerprint of the matrix's proto folder too.
        std::fs::create_dir_all(root.join("proto")).unwrap();
        std::fs::write(root.join("proto/x.proto"), "syntax = \"proto3\";\n").unwrap();
        std::fs::write(
            lang.join("build.sh"),
            "#!/bin/sh\nset -e\n[ -f out/home ] || { mkdir -p out; pwd > out/home; }\necho built >> \"$(cat out/home)/built-here\"\n",
        )
        .unwrap();
        let extra = format!(
            "[languages.made]\nfolder = \"{}\"\nstack = \"sh\"\nbuild = [\"sh\", \"build.sh\"]\noutputs = [\"out\", \"built-here\"]\nserver = [\"true\"]\nclient = [\"true\"]\n",
            lang.display()
        );
        (lang, matrix_with(root, &extra, ""))
    };
    let build = |matrix: &Path| {
        let out = Command::new(bin())
            .args(["--matrix", matrix.to_str().unwrap(), "build", "made"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let (a, matrix_a) = make(&dir.path().join("a"));
    build(&matrix_a);
    assert_eq!(std::fs::read_to_string(a.join("built-here")).unwrap(), "built\n");
    // The copy: the same files, outputs and stamp included.
    let b_root = dir.path().join("b");
    let status = Command::new("cp")
        .args(["-a"])
        .arg(dir.path().join("a"))
        .arg(&b_root)
        .status()
        .unwrap();
    assert!(status.success());
    let (b, matrix_b) = make(&b_root);
    let said = build(&matrix_b);
    assert!(said.contains("last built in"), "{said}");
    assert_eq!(
        std::fs::read_to_string(a.join("built-here")).unwrap(),
        "built\n",
        "the original was written to"
    );
    assert_eq!(std::fs::read_to_string(b.join("built-here")).unwrap(), "built\n");
    // Built where it is now: up to date, nothing rebuilt.
    build(&matrix_b);
    assert_eq!(std::fs::read_to_string(b.join("built-here")).unwrap(), "built\n");
}

#[test]
fn a_shared_server_that_dies_fails_its_cell_and_is_started_again_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    // Only the client `rust` drives this set; `rust2` (the same reference
    // client) runs unary against the same shared server after it.
    let extra = format!(
        "{}[languages.rust2]\nfolder = \"{d}\"\nstack = \"tonic\"\nserver = [\"{{stock-matrix}}\", \"reference\", \"server\"]\nclient = [\"{{stock-matrix}}\", \"reference\", \"client\"]\n",
        broken(dir.path(), "server", &["exit-on-audit"]),
        d = dir.path().display()
    );
    let m = matrix_with(dir.path(), &extra, "jobs = 1\nat_most = 1");
    add_set(&m, "crash", "clients = [\"rust\"]\n[[case]]\nname = \"audit-crashes\"\n[[case.step]]\nmethod = \"Audit\"\nexpect.status = \"UNIMPLEMENTED\"\n");
    let (out, s) = run(
        &[
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            "rust,rust2",
            "--server",
            "exit-on-audit",
            "--tls",
            "none",
            "--set",
            "crash,unary",
            "--no-blame",
        ],
        &dir.path().join("r"),
    );
    assert_eq!(out.status.code(), Some(1));
    let crashed = find(
        &s,
        "client=rust/server=exit-on-audit/tls=none/set=crash/case=audit-crashes",
    );
    assert_eq!(crashed["outcome"], "error");
    assert!(
        reasons(crashed).contains("the server exited during the cell (exit status: 3)"),
        "{}",
        reasons(crashed)
    );
    let after = tests_of(&s)
        .iter()
        .filter(|t| t["cell"]["client"] == "rust2")
        .collect::<Vec<_>>();
    assert!(!after.is_empty());
    assert!(after.iter().all(|t| t["outcome"] == "passed"), "{after:#?}");
    let notes = s["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"]["client"] == "rust2")
        .map(|c| c["notes"].to_string())
        .unwrap();
    assert!(
        notes.contains("server exit-on-audit had exited (exit status: 3) since an earlier cell; started it again"),
        "{notes}"
    );
}

#[test]
fn a_client_that_dies_in_one_test_does_not_take_the_tests_it_never_reached() {
    let dir = tempfile::tempdir().unwrap();
    let m = matrix_with(dir.path(), &broken(dir.path(), "client", &["exit-on-trade"]), "");
    let (out, s) = run(
        &[
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            "exit-on-trade",
            "--server",
            "rust",
            "--tls",
            "none",
            "--set",
            "bidi,unary",
            "--case",
            "bidi/lock-step",
            "--case",
            "unary/*",
            "--lanes",
            "1",
            "--no-blame",
        ],
        &dir.path().join("r"),
    );
    assert_eq!(out.status.code(), Some(1));
    let tests = tests_of(&s);
    let crashed = find(&s, "client=exit-on-trade/server=rust/tls=none/set=bidi/case=lock-step");
    assert_eq!(crashed["outcome"], "error");
    assert!(
        reasons(crashed).contains("client exited (exit status: 3)"),
        "{}",
        reasons(crashed)
    );
    // In one lane, every unary test came after the crash: a new process ran them.
    let notes = s["cells"][0]["notes"].to_string();
    assert!(notes.contains("they ran in a new client process"), "{notes}");
    let unary: Vec<&Value> = tests.iter().filter(|t| t["set"] == "unary").collect();
    assert!(unary.len() > 5);
    for t in unary {
        assert_eq!(t["outcome"], "passed", "{t}");
    }
}

#[test]
fn fail_fast_stops_starting_clients_after_the_first_red_test() {
    let dir = tempfile::tempdir().unwrap();
    let m = matrix_with(
        dir.path(),
        &broken(dir.path(), "server", &["no-echo"]),
        "jobs = 1\nat_most = 1",
    );
    let m = m.to_str().unwrap();
    // Pairs run in order: rust -> no-echo (red: metadata echo) before rust -> rust.
    let args = |extra: &'static [&'static str]| {
        let mut a = vec!["--matrix", m, "run", "--client", "rust", "--server", "no-echo,rust"];
        a.extend(["--tls", "none", "--set", "metadata", "--no-blame"]);
        a.extend(extra);
        a
    };
    let (out, s) = run(&args(&["--fail-fast"]), &dir.path().join("a"));
    assert_eq!(out.status.code(), Some(1));
    let after: Vec<&Value> = tests_of(&s).iter().filter(|t| t["cell"]["server"] == "rust").collect();
    assert!(!after.is_empty());
    for t in &after {
        assert_eq!(t["outcome"], "interrupted", "{t}");
        assert!(
            reasons(t).contains("--fail-fast stopped the run after a red test"),
            "{t}"
        );
    }
    assert!(tests_of(&s)
        .iter()
        .any(|t| t["cell"]["server"] == "no-echo" && t["outcome"] == "failed"));
    // Without it, the same run goes on to rust -> rust, which passes.
    let (_, s) = run(&args(&[]), &dir.path().join("b"));
    let after: Vec<&Value> = tests_of(&s).iter().filter(|t| t["cell"]["server"] == "rust").collect();
    assert!(after.iter().all(|t| t["outcome"] == "passed"), "{after:#?}");
}
