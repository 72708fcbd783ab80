//! Every case added for "green must mean interoperable" can fail: each
//! deliberate bug of the reference (`--break`) turns exactly its cases red,
//! with a reason that names what was wrong, and nothing outside its set.
mod catches;
#[path = "../common/mod.rs"]
mod common;
use catches::*;
use common::*;
use serde_json::Value;
use std::path::Path;

fn faults(catches: &[Catch]) -> Vec<&'static str> {
    let mut f: Vec<_> = catches.iter().map(|c| c.0).collect();
    f.sort();
    f.dedup();
    f
}

/// The tests of a summary whose ids start with `prefix`.
fn tests_under<'a>(s: &'a Value, prefix: &str) -> Vec<&'a Value> {
    tests_of(s)
        .iter()
        .filter(|t| t["id"].as_str().unwrap().starts_with(prefix))
        .collect()
}

/// The cases of the tests under `prefix` that are not green.
fn red_cases<'a>(s: &'a Value, prefix: &str) -> Vec<&'a str> {
    let red = tests_under(s, prefix).into_iter().filter(|t| t["outcome"] != "passed");
    red.map(|t| t["case"].as_str().unwrap()).collect()
}

/// The cell of a fault's broken side (`server` or `client`) against the reference.
fn cell_of(side: &str, fault: &str) -> String {
    match side {
        "server" => format!("client=rust/server={fault}"),
        _ => format!("client={fault}/server=rust"),
    }
}

/// Checks that each fault of `catches` turned red, in `set` (tls=none),
/// exactly the cases named with it.
fn assert_red_exactly_named(s: &Value, side: &str, catches: &[Catch], set: &str) {
    for fault in faults(catches) {
        let prefix = format!("{}/tls=none/set={set}/case=", cell_of(side, fault));
        let mut red = red_cases(s, &prefix);
        let mut named: Vec<&str> = catches.iter().filter(|c| c.0 == fault).map(|c| c.2).collect();
        red.sort();
        named.sort();
        named.dedup();
        assert_eq!(red, named, "{fault}");
    }
}

/// Runs the broken side, a language per fault, against the reference in
/// these TLS modes and sets, and checks that the run is red; returns its
/// arguments (for a rerun) and its summary.
fn run_broken(dir: &Path, side: &str, names: &[&str], tls: &str, sets: &str) -> (Vec<String>, Value) {
    let m = matrix_with(dir, &broken(dir, side, names), "step_grace_ms = 3000");
    let list = names.join(",");
    let (clients, servers) = match side {
        "server" => ("rust", list.as_str()),
        _ => (list.as_str(), "rust"),
    };
    let m = m.to_str().unwrap();
    let args = ["--matrix", m, "run", "--client", clients, "--server", servers];
    let more = ["--tls", tls, "--set", sets, "--no-blame"];
    let args: Vec<String> = args.iter().chain(&more).map(|a| a.to_string()).collect();
    let (out, s) = run(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &dir.join("reports"),
    );
    assert_eq!(out.status.code(), Some(1));
    (args, s)
}

/// Runs the broken side against the reference and checks every catch, that
/// the fault's red tests all lie in its set, and that a control case passes.
fn check(dir: &Path, side: &str, catches: &[Catch], sets: &str) -> Value {
    let names = faults(catches);
    let (args, s) = run_broken(dir, side, &names, "none", sets);
    let cell = |f: &str| cell_of(side, f);
    for (fault, set, case, reason) in catches {
        let t = find(&s, &format!("{}/tls=none/set={set}/case={case}", cell(fault)));
        // A client that hangs is an error (killed), any other catch a failure.
        assert!(
            t["outcome"] == "failed" || t["outcome"] == "error",
            "{fault} not caught by {set}/{case}: {}",
            reasons(t)
        );
        assert!(reasons(t).contains(reason), "{fault}: {set}/{case}: {}", reasons(t));
    }
    // A red test outside a fault's sets is a stray only if it is red again
    // when run once more by itself: the faults set's recovery steps have
    // timed out once under CI's load (rust -> rust, reset-mid-response).
    let stray = |t: &Value| {
        let id = t["id"].as_str().unwrap();
        let fault = names.iter().find(|f| id.starts_with(&format!("{}/", cell(f))));
        let mut sets: Vec<&str> = catches.iter().filter(|c| Some(&c.0) == fault).map(|c| c.1).collect();
        sets.extend(ALSO_RED.iter().filter(|a| Some(&a.0) == fault).map(|a| a.1));
        fault.is_some() && t["outcome"] != "passed" && !sets.iter().any(|s| t["set"] == *s)
    };
    let first: Vec<&Value> = tests_of(&s).iter().filter(|t| stray(t)).collect();
    let again = if first.is_empty() {
        Value::Null
    } else {
        let mut rerun: Vec<&str> = args.iter().map(String::as_str).collect();
        for t in &first {
            rerun.extend(["--case", t["id"].as_str().unwrap()]);
        }
        run(&rerun, &dir.join("reports-again")).1
    };
    for fault in names {
        let prefix = format!("{}/", cell(fault));
        let strays: Vec<&&Value> = first
            .iter()
            .filter(|t| t["id"].as_str().unwrap().starts_with(&prefix))
            .filter(|t| {
                tests_of(&again)
                    .iter()
                    .any(|a| a["id"] == t["id"] && a["outcome"] != "passed")
            })
            .collect();
        assert!(
            strays.is_empty(),
            "{fault} also turned other sets red, twice: {strays:#?}"
        );
        let control = format!("{prefix}tls=none/set=unary/case=put-then-get");
        assert_eq!(find(&s, &control)["outcome"], "passed", "{control}");
    }
    s
}

#[test]
fn each_server_bug_of_the_blind_spots_is_caught_by_its_cases_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut catches = SERVER_FAULTS.to_vec();
    catches.extend_from_slice(KV_FAULTS);
    check(dir.path(), "server", &catches, RUN_SETS);
}

#[test]
fn each_client_bug_of_the_blind_spots_is_caught_by_its_cases_only() {
    let dir = tempfile::tempdir().unwrap();
    check(dir.path(), "client", CLIENT_FAULTS, RUN_SETS);
}

#[test]
fn each_client_bug_of_the_server_stream_cases_is_caught_by_its_cases_only() {
    let dir = tempfile::tempdir().unwrap();
    check(dir.path(), "client", STREAM_CLIENT_FAULTS, STREAM_SETS);
}

/// A server that tells a Monitor of a Batch's items only once all are
/// applied, reading them back from the store, turns red the case that
/// writes one key three times in a Batch; one that sends its whole snapshot
/// before it counts toward max_events, the case whose count is under the
/// existing keys; one whose snapshot skips empty values, the case with an
/// existing empty value; one that reads a pattern as a glob or a regular
/// expression, the case of metacharacters (and, a glob, the lone star).
/// Each turns red no other case of the set.
#[test]
fn each_server_bug_of_the_server_stream_cases_is_caught_by_its_cases_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = check(dir.path(), "server", STREAM_SERVER_FAULTS, STREAM_SETS);
    assert_red_exactly_named(&s, "server", STREAM_SERVER_FAULTS, "server-stream");
}

/// A certificate loader that reads only the first PEM block of a file, on
/// either side, turns red exactly the tls case of that file, in the TLS modes
/// that read it, and nothing else of the tls and unary sets.
#[test]
fn each_pem_loader_that_reads_one_block_is_caught_by_its_tls_case_only() {
    for (side, catches) in [("server", TLS_SERVER_FAULTS), ("client", TLS_CLIENT_FAULTS)] {
        let dir = tempfile::tempdir().unwrap();
        let mut names: Vec<&str> = catches.iter().map(|c| c.0).collect();
        names.dedup();
        let (_, s) = run_broken(dir.path(), side, &names, "server,mtls", TLS_SETS);
        for fault in names {
            let cell = cell_of(side, fault);
            let red = tests_under(&s, &format!("{cell}/"))
                .into_iter()
                .filter(|t| t["outcome"] != "passed");
            let text = |v: &Value| v.as_str().unwrap().to_string();
            let mut red: Vec<String> = red
                .map(|t| format!("{}/{}", text(&t["cell"]["tls"]), text(&t["case"])))
                .collect();
            let mut named: Vec<String> = catches
                .iter()
                .filter(|c| c.0 == fault)
                .map(|(_, mode, case, _)| format!("{mode}/{case}"))
                .collect();
            red.sort();
            named.sort();
            assert_eq!(red, named, "{fault}");
            for (_, mode, case, reason) in catches.iter().filter(|c| c.0 == fault) {
                let t = find(&s, &format!("{cell}/tls={mode}/set=tls/case={case}"));
                assert!(reasons(t).contains(reason), "{fault}: {mode} {case}: {}", reasons(t));
            }
        }
    }
}

/// A lifecycle case has a server of its own: each fault turns red exactly
/// the cases named with it, and the other case of the set passes.
#[test]
fn each_server_lifecycle_bug_is_caught_by_its_lifecycle_cases_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = check(dir.path(), "server", LIFECYCLE_FAULTS, LIFECYCLE_SETS);
    assert_red_exactly_named(&s, "server", LIFECYCLE_FAULTS, "lifecycle");
}

/// A client that exits 1 because a call failed, or that never exits once its
/// script is done, passes every test of a shared client process: only the
/// client-exit case, a process of its own, sees how it ends.
#[test]
fn each_client_exit_bug_is_caught_by_the_client_exit_case() {
    let dir = tempfile::tempdir().unwrap();
    let s = check(dir.path(), "client", EXIT_CLIENT_FAULTS, EXIT_SETS);
    for fault in faults(EXIT_CLIENT_FAULTS) {
        let prefix = format!("client={fault}/server=rust/tls=none/set=unary/");
        let unary = tests_under(&s, &prefix);
        assert!(!unary.is_empty());
        assert!(
            unary.iter().all(|t| t["outcome"] == "passed"),
            "{fault}: the shared process's tests pass"
        );
    }
}

/// What a Trade order may hold (an enum number the proto does not name, a
/// price at or below zero) must pass both ways: each fault turns red its
/// bidi case, and no other case of the set.
#[test]
fn each_bidi_bug_of_the_blind_spots_is_caught_by_its_case_only() {
    for (side, catches) in [("client", BIDI_CLIENT_FAULTS), ("server", BIDI_SERVER_FAULTS)] {
        let dir = tempfile::tempdir().unwrap();
        let s = check(dir.path(), side, catches, BIDI_SETS);
        assert_red_exactly_named(&s, side, catches, "bidi");
    }
}

/// A usage case runs in a client process of its own, so a fault can be
/// told apart case by case: each turns red its own case of the set only.
#[test]
fn each_client_usage_bug_is_caught_by_its_usage_case_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = check(dir.path(), "client", USAGE_CLIENT_FAULTS, USAGE_SETS);
    assert_red_exactly_named(&s, "client", USAGE_CLIENT_FAULTS, "usage");
}

#[test]
fn each_client_bug_the_misbehaving_servers_and_keepalive_show_is_caught_by_its_cases_only() {
    let dir = tempfile::tempdir().unwrap();
    check(dir.path(), "client", PEER_CLIENT_FAULTS, PEER_SETS);
}

#[test]
fn each_server_bug_the_misbehaving_client_shows_is_caught_by_its_cases_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut catches = H2_CLIENT_FAULTS.to_vec();
    // the faults set's catch of a server fault shown here too
    catches.push((
        "batch-kept-on-broken-connection",
        "faults",
        "reset-mid-batch",
        "step 1 Get: status: expected NOT_FOUND, got OK",
    ));
    catches.push((
        "apply-after-cancel",
        "faults",
        "reset-mid-batch",
        "step 1 Get: status: expected NOT_FOUND, got OK",
    ));
    check(dir.path(), "server", &catches, PEER_SETS);
}

/// corrupt-tls-record runs in the TLS modes only, which the checks above
/// leave out: a client that keeps a channel whose connection broke fails its
/// recovery step there.
#[test]
fn a_dead_channel_kept_fails_the_recovery_after_a_corrupt_tls_record() {
    let dir = tempfile::tempdir().unwrap();
    let m = matrix_with(dir.path(), &broken(dir.path(), "client", &["dead-channel-kept"]), "");
    let (out, s) = run(
        &[
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            "dead-channel-kept,rust",
            "--server",
            "rust",
            "--tls",
            "server",
            "--set",
            "faults",
            "--case",
            "corrupt-tls-record",
            "--no-blame",
        ],
        &dir.path().join("reports"),
    );
    assert_eq!(out.status.code(), Some(1));
    let t = find(
        &s,
        "client=dead-channel-kept/server=rust/tls=server/set=faults/case=corrupt-tls-record",
    );
    assert_eq!(t["outcome"], "failed");
    assert!(
        reasons(t).contains("step 2 Get: status: expected OK, got UNAVAILABLE"),
        "{}",
        reasons(t)
    );
    let good = find(
        &s,
        "client=rust/server=rust/tls=server/set=faults/case=corrupt-tls-record",
    );
    assert_eq!(good["outcome"], "passed", "{}", reasons(good));
}

/// A client that misses a reset arriving behind bytes it has not read
/// fails the case that pauses it for those bytes, and only that one: the
/// other resets come once it has read everything before them.
#[test]
fn a_reset_missed_behind_unread_bytes_fails_only_the_case_that_pauses_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let s = run_case(
        dir.path(),
        "client",
        &["reset-behind-unread-missed"],
        "reset-behind-unread-missed,rust",
        "rust",
        "faults",
        "reset-*",
    );
    let id = |client: &str, case: &str| format!("client={client}/server=rust/tls=none/set=faults/case={case}");
    let t = find(&s, &id("reset-behind-unread-missed", "reset-behind-unread-bytes"));
    assert_eq!(t["outcome"], "failed", "{}", reasons(t));
    assert!(
        reasons(t).contains("step 1 Get: status: expected UNAVAILABLE, got DEADLINE_EXCEEDED"),
        "{}",
        reasons(t)
    );
    for case in ["reset-mid-request", "reset-mid-batch", "reset-mid-response"] {
        let t = find(&s, &id("reset-behind-unread-missed", case));
        assert_eq!(t["outcome"], "passed", "{case}: {}", reasons(t));
    }
    let good = find(&s, &id("rust", "reset-behind-unread-bytes"));
    assert_eq!(good["outcome"], "passed", "{}", reasons(good));
}

/// Runs one case of a set with these clients against these servers, in
/// plaintext, with `faults` built as languages of the given side.
fn run_case(dir: &Path, side: &str, faults: &[&str], clients: &str, servers: &str, set: &str, case: &str) -> Value {
    let m = matrix_with(dir, &broken(dir, side, faults), "step_grace_ms = 3000");
    let (out, s) = run(
        &[
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            clients,
            "--server",
            servers,
            "--tls",
            "none",
            "--set",
            set,
            "--case",
            case,
            "--no-blame",
        ],
        &dir.join("reports"),
    );
    assert_eq!(out.status.code(), Some(1));
    s
}

/// Real servers (tonic, grpc-go) answer an immediate error trailers-only,
/// so a client that cannot read such a response fails cases in every set;
/// trailers-only-error is the one that shows it on purpose.
#[test]
fn a_client_that_cannot_read_a_trailers_only_response_fails_trailers_only_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = run_case(
        dir.path(),
        "client",
        &["trailers-only-unknown"],
        "trailers-only-unknown,rust",
        "rust",
        "h2-servers",
        "trailers-only-error",
    );
    let t = find(
        &s,
        "client=trailers-only-unknown/server=rust/tls=none/set=h2-servers/case=trailers-only-error",
    );
    assert_eq!(t["outcome"], "failed");
    assert!(
        reasons(t).contains("step 0 Get: status: expected NOT_FOUND, got UNKNOWN \"missing trailers\""),
        "{}",
        reasons(t)
    );
    let good = find(
        &s,
        "client=rust/server=rust/tls=none/set=h2-servers/case=trailers-only-error",
    );
    assert_eq!(good["outcome"], "passed", "{}", reasons(good));
}

/// The reference server has no ping policy; with a strict one (punish-pings:
/// the connection closes at the third PING), aggressive-keepalive fails a
/// client that does not open a new connection, and a good client passes.
#[test]
fn a_strict_ping_policy_fails_a_client_that_does_not_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let m = matrix_with(
        dir.path(),
        &(broken(dir.path(), "server", &["punish-pings"]) + &broken(dir.path(), "client", &["no-reconnect"])),
        "step_grace_ms = 3000",
    );
    let (out, s) = run(
        &[
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            "no-reconnect,rust",
            "--server",
            "punish-pings",
            "--tls",
            "none",
            "--set",
            "keepalive",
            "--case",
            "aggressive-keepalive",
            "--no-blame",
        ],
        &dir.path().join("reports"),
    );
    assert_eq!(out.status.code(), Some(1));
    let t = find(
        &s,
        "client=no-reconnect/server=punish-pings/tls=none/set=keepalive/case=aggressive-keepalive",
    );
    assert_eq!(t["outcome"], "failed");
    assert!(
        reasons(t).contains("step 2 Get: status: expected OK, got UNAVAILABLE"),
        "{}",
        reasons(t)
    );
    let good = find(
        &s,
        "client=rust/server=punish-pings/tls=none/set=keepalive/case=aggressive-keepalive",
    );
    assert_eq!(good["outcome"], "passed", "{}", reasons(good));
}

/// A server that serves one call at a time stalls every call behind a
/// Monitor whose reader never reads: monitor-never-read shows it (the fault
/// also slows every set that runs calls side by side, so it runs alone here).
#[test]
fn a_server_stalled_by_one_unread_stream_fails_monitor_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = run_case(
        dir.path(),
        "server",
        &["serial-calls"],
        "rust",
        "serial-calls,rust",
        "h2-clients",
        "monitor-never-read",
    );
    let t = find(
        &s,
        "client=rust/server=serial-calls/tls=none/set=h2-clients/case=monitor-never-read",
    );
    assert_eq!(t["outcome"], "failed");
    assert!(
        reasons(t).contains("step 2 Put: status: expected OK, got DEADLINE_EXCEEDED"),
        "{}",
        reasons(t)
    );
    let good = find(
        &s,
        "client=rust/server=rust/tls=none/set=h2-clients/case=monitor-never-read",
    );
    assert_eq!(good["outcome"], "passed", "{}", reasons(good));
}
