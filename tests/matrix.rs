//! End-to-end tests: the real binary runs real matrices, and each test reads
//! the run's summary.json back. They prove the reference passes everything,
//! that deliberate bugs are caught with readable reasons, and that the
//! everyday commands (list, a broken matrix.toml) say what they should.
mod common;
use common::*;
use serde_json::Value;
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
        "unspecified-side-buys",
        "existing-in-utf16-order",
        "health-overall-only",
        "health-for-unserved-services",
        "batch-unwatched",
        "lone-star-matches-nothing",
        "reflection-lists-unserved",
        "reflection-stale-descriptor",
        "reflection-no-method-symbols",
        "prefix-anywhere",
        "star-needs-a-byte",
        "unwatch-by-pattern",
        "star-inside-cuts",
        "int64-through-double",
        "blank-pattern-refused",
        "symbols-case-folded",
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
            "unary,server-stream,bidi,metadata,tls,kv-compat,health,reflection",
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
            "header x-stock-echo: expected \"Unary-Echo 1\", got nothing",
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
            "unspecified-side-buys",
            "none",
            "bidi/case=unspecified-side-sells",
            "step 0 Trade: message 1: field netPosition: expected \"7\", got \"13\"",
        ),
        (
            "existing-in-utf16-order",
            "none",
            "server-stream/case=existing-in-byte-order",
            "step 5 Monitor: message 3: field key: expected",
        ),
        (
            "health-overall-only",
            "none",
            "health/case=check-serving",
            "step 1 grpc.health.v1.Health.Check: status: expected OK, got NOT_FOUND",
        ),
        (
            "health-for-unserved-services",
            "none",
            "health/case=check-unserved-service",
            "step 0 grpc.health.v1.Health.Check: status: expected NOT_FOUND, got OK",
        ),
        (
            "batch-unwatched",
            "none",
            "server-stream/case=batch-seen-by-monitor",
            "step 1 Monitor: expected 4 message(s), got 1",
        ),
        (
            "lone-star-matches-nothing",
            "none",
            "server-stream/case=lone-star-matches-every-key",
            "step 1 Monitor: expected 1 message(s), got 0",
        ),
        (
            "reflection-lists-unserved",
            "none",
            "reflection/case=lists-served-services",
            "field listServicesResponse: holds {\"service\":[{\"name\":\"stock.v1.Ledger\"}]}, which it must not",
        ),
        (
            "reflection-stale-descriptor",
            "none",
            "reflection/case=describes-stock",
            "fileDescriptorProto[0].service[0].method: no element holds {\"inputType\":\".stock.v1.Empty\",\"name\":\"Inventory\"",
        ),
        (
            "reflection-no-method-symbols",
            "none",
            "reflection/case=describes-method-and-message",
            "message 0: field fileDescriptorResponse: expected an object, got null",
        ),
        (
            "prefix-anywhere",
            "none",
            "server-stream/case=prefix-not-substring",
            "step 2 Monitor: message 1: field key: expected",
        ),
        (
            "star-needs-a-byte",
            "none",
            "server-stream/case=prefix-matches-the-prefix-itself",
            "step 1 Monitor: expected 2 message(s), got 0",
        ),
        (
            "unwatch-by-pattern",
            "none",
            "server-stream/case=two-monitors-one-pattern",
            "step 1 Monitor: expected 2 message(s), got 1",
        ),
        (
            "star-inside-cuts",
            "none",
            "server-stream/case=star-inside-is-a-character",
            "step 3 Monitor: message 0: field key: expected",
        ),
        (
            "int64-through-double",
            "none",
            "bidi/case=int64-beyond-double",
            "step 0 Trade: message 0: field quantity: expected \"9007199254740993\", got \"9007199254740992\"",
        ),
        (
            "blank-pattern-refused",
            "none",
            "server-stream/case=blank-pattern-is-a-key",
            "step 1 Monitor: status: expected OK, got INVALID_ARGUMENT",
        ),
        (
            "symbols-case-folded",
            "none",
            "bidi/case=symbols-are-exact",
            "step 0 Trade: message 1: field netPosition: expected \"3\", got \"13\"",
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
        ("unspecified-side-buys", "bidi/case=lock-step"),
        ("unspecified-side-buys", "bidi/case=invalid-quantity-mid-stream"),
        ("existing-in-utf16-order", "server-stream/case=existing-in-key-order"),
        ("health-overall-only", "health/case=check-unserved-service"),
        ("health-for-unserved-services", "health/case=check-serving"),
        ("reflection-lists-unserved", "reflection/case=describes-stock"),
        ("reflection-stale-descriptor", "reflection/case=lists-served-services"),
        ("reflection-stale-descriptor", "unary/case=put-then-get"),
        ("reflection-no-method-symbols", "reflection/case=describes-stock"),
        ("reflection-no-method-symbols", "reflection/case=lists-served-services"),
        ("batch-unwatched", "server-stream/case=existing-then-live"),
        ("batch-unwatched", "kv-compat/case=kv-put-seen-by-monitor"),
        ("lone-star-matches-nothing", "server-stream/case=existing-in-key-order"),
        ("prefix-anywhere", "server-stream/case=existing-in-key-order"),
        ("prefix-anywhere", "server-stream/case=exact-pattern"),
        ("star-needs-a-byte", "server-stream/case=prefix-not-substring"),
        ("star-needs-a-byte", "server-stream/case=existing-in-key-order"),
        ("unwatch-by-pattern", "server-stream/case=existing-then-live"),
        ("star-inside-cuts", "server-stream/case=prefix-not-substring"),
        ("star-inside-cuts", "server-stream/case=exact-pattern"),
        ("int64-through-double", "bidi/case=lock-step"),
        ("symbols-case-folded", "bidi/case=lock-step"),
        ("symbols-case-folded", "bidi/case=unspecified-side-sells"),
        ("int64-through-double", "bidi/case=unspecified-side-sells"),
        ("blank-pattern-refused", "server-stream/case=invalid-watch"),
        ("blank-pattern-refused", "server-stream/case=exact-pattern"),
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
fn clients_that_skip_verification_wait_for_ready_or_misreport_a_bad_ca_are_caught_by_the_tls_cases() {
    let dir = tempfile::tempdir().unwrap();
    let faults = [
        "trust-any-ca",
        "ignore-server-name",
        "wait-for-ready",
        "unusable-channel-internal",
    ];
    let extra: String = faults
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
            &faults.join(","),
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
    let refused = "status: expected any code but OK, got OK";
    // A client that waits for a connection refused at once ends by its
    // deadline. (plaintext-to-tls may end in a reset, which the fault takes
    // for a connection that broke, not one that never came up.)
    let waited = "Inventory: took 5";
    for (client, case, reason) in [
        ("trust-any-ca", "untrusted-ca", refused),
        ("ignore-server-name", "wrong-server-name", refused),
        ("wait-for-ready", "untrusted-ca", waited),
        ("wait-for-ready", "wrong-server-name", waited),
        ("wait-for-ready", "expired-server-cert", waited),
        (
            "unusable-channel-internal",
            "unreadable-ca-file",
            "status: expected UNAVAILABLE, got INTERNAL",
        ),
    ] {
        let t = find(
            &s,
            &format!("client={client}/server=rust/tls=server/set=tls/case={case}"),
        );
        assert_eq!(t["outcome"], "failed", "{client} {case}: {}", reasons(t));
        assert!(reasons(t).contains(reason), "{}", reasons(t));
        assert_eq!(
            t["blame"],
            format!("client {client} (the reference server is the other side)")
        );
    }
    // The same broken clients still pass the positive control.
    for client in faults {
        let id = format!("client={client}/server=rust/tls=server/set=tls/case=configured-tls-works");
        assert_eq!(find(&s, &id)["outcome"], "passed", "{id}");
    }
}

/// A case's own `servers` list that names a language matrix.toml does not
/// define is refused before anything runs, naming the file and the case.
#[test]
fn a_case_naming_an_unknown_server_is_refused_with_its_case() {
    let dir = tempfile::tempdir().unwrap();
    let m = matrix_with(dir.path(), "", "");
    add_set(
        &m,
        "odd",
        "[[case]]\nname = \"put-get\"\nservers = [\"cobol\"]\n[[case.step]]\nmethod = \"Get\"\nrequest = { key = \"{ns}k\" }\n",
    );
    let out = Command::new(bin())
        .args(["--matrix", m.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("odd.toml: case `put-get`: `servers` names `cobol`, which matrix.toml does not define"),
        "{stderr}"
    );
}
