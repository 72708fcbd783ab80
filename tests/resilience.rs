//! End-to-end tests of what goes wrong around a run: a server that cannot
//! start, a hung or dying client, a server that dies, an unavailable language,
//! a closed stdout, a copied checkout, --fail-fast. Each ends as clear red
//! tests (or a clear line), and the run goes on and writes its reports; a
//! runner killed outright takes its children along.
mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

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
            "none,server",
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
    // One process served both TLS modes' cells: it crashed in each cell's
    // lock-step, and each cell's note names its own crash (not the first
    // cell's). In one lane, every unary test came after the crash: a new
    // process ran them.
    for cell in s["cells"].as_array().unwrap() {
        let notes = cell["notes"].to_string();
        assert_eq!(
            notes.matches("the client stopped during bidi/lock-step before").count(),
            1,
            "{}: {notes}",
            cell["key"]
        );
    }
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

#[test]
fn a_run_killed_with_sigkill_takes_its_children_along() {
    let dir = tempfile::tempdir().unwrap();
    // A client that ignores its stdin and every signal SIGKILL aside: once the
    // runner is gone, only the parent-death signal ends it.
    let extra = format!(
        "[languages.stubborn]\nfolder = \"{d}\"\nstack = \"sh\"\nserver = [\"sh\", \"-c\", \"exit 1\"]\nclient = [\"sh\", \"-c\", \"trap '' TERM INT HUP; exec sleep 6176\"]\n",
        d = dir.path().display()
    );
    let m = matrix_with(dir.path(), &extra, "client_startup_ms = 600000");
    let mut runner = Command::new(bin())
        .current_dir(repo())
        .args([
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            "stubborn",
            "--server",
            "rust",
        ])
        .args(["--tls", "none", "--set", "unary", "--reports"])
        .arg(dir.path().join("r"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stubborn = || -> Vec<String> {
        let ps = Command::new("ps").args(["-eo", "pid=,args="]).output().unwrap();
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .filter(|l| {
                l.trim_start()
                    .split_once(' ')
                    .is_some_and(|(_, a)| a.starts_with("sleep 6176"))
            })
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let waited = |what: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !what() && start.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        what()
    };
    let started = waited(&|| !stubborn().is_empty());
    runner.kill().unwrap(); // SIGKILL: no handler of the runner's runs
    runner.wait().unwrap();
    let gone = waited(&|| stubborn().is_empty());
    let left = stubborn();
    for pid in &left {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    assert!(started, "the client never started");
    assert!(gone, "the client outlived the runner: {left:?}");
}
