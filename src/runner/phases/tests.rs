use super::*;

#[test]
fn a_step_budget_counts_a_deadline_days_away_as_two_minutes() {
    let step = |timeout_ms| script::Step {
        id: "p#0".into(),
        method: "Inventory".into(),
        timeout_ms: Some(timeout_ms),
        ..serde_json::from_str(r#"{"id": "p#0", "method": "Inventory"}"#).unwrap()
    };
    assert_eq!(step_budget(&step(600_000), 3000), 3000 + WAITED_DEADLINE_MS);
    assert_eq!(step_budget(&step(2_592_000_000), 3000), 3000 + WAITED_DEADLINE_MS);
    assert_eq!(step_budget(&step(5000), 3000), 8000);
}

#[test]
fn a_step_budget_counts_a_cancel_after_its_deadline_or_without_one() {
    let step = |timeout_ms, cancel_after_ms| script::Step {
        timeout_ms,
        cancel_after_ms,
        ..serde_json::from_str(r#"{"id": "p#0", "method": "Monitor"}"#).unwrap()
    };
    assert_eq!(step_budget(&step(None, Some(4000)), 3000), 7000);
    assert_eq!(step_budget(&step(Some(10_000), Some(4000)), 3000), 13_000);
    assert_eq!(step_budget(&step(Some(1000), Some(4000)), 3000), 7000);
    assert_eq!(step_budget(&step(None, None), 3000), 3000);
}

/// A runner over the repository's matrix (no process starts here).
fn runner() -> Runner {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let m = crate::input::config::Matrix::load(&root.join("matrix.toml")).unwrap();
    let certs = crate::exec::certs::CertFiles::in_dir(std::path::Path::new("/c"));
    Runner::standalone(m, crate::model::tls::KeyType::EcP256, certs, None).unwrap()
}

#[test]
fn tests_with_many_calls_at_once_run_last_each_server_s_in_a_phase_that_holds_its_calls() {
    let src = r#"
clients = ["rust"]
[[case]]
name = "one"
[[case.step]]
method = "Get"
request = { key = "{ns}a" }
[[case]]
name = "alone"
alone = true
[[case.step]]
method = "Get"
request = { key = "{ns}a" }
[[case]]
name = "two-hundred"
[[case.step]]
method = "Get"
request = { key = "{ns}a" }
copies = 200
[[case]]
name = "thousand"
[[case.step]]
method = "Get"
rude = "thousand-streams"
request = { key = "{ns}a" }
"#;
    let set = crate::input::cases::parse("s", src).unwrap();
    let tests: Vec<Test> = set
        .cases
        .into_iter()
        .map(|c| Test {
            set: "s".into(),
            case: Arc::new(c),
        })
        .collect();
    let key = |tls| CellKey {
        client: "rust".into(),
        server: "go".into(),
        tls,
        key_type: crate::model::tls::KeyType::EcP256,
        net: None,
    };
    let keys = [
        key(crate::model::tls::TlsMode::None),
        key(crate::model::tls::TlsMode::Server),
    ];
    let conn = |server: &str| Connection {
        server: server.into(),
        ..serde_json::from_str(r#"{"server": "x"}"#).unwrap()
    };
    // Cell 0 on server :1 (every case), cell 1 on server :2 (the 200 copies).
    let mut entries: Vec<Entry> = tests
        .iter()
        .map(|test| Entry {
            key: &keys[0],
            test,
            conn: conn("127.0.0.1:1"),
        })
        .collect();
    entries.push(Entry {
        key: &keys[1],
        test: &tests[2],
        conn: conn("127.0.0.1:2"),
    });
    let mut run = GroupRun::new();
    let (phases, _) = runner().phases(&entries, &conn("127.0.0.1:1"), 1, &mut run);
    let tests_of = |p: &Phase| p.order.iter().map(|s| s.test).collect::<Vec<_>>();
    let holds: Vec<Option<(String, u32)>> = phases.iter().map(|p| p.hold.clone()).collect();
    assert_eq!(tests_of(&phases[1]), [0], "the one call among the others");
    assert_eq!(tests_of(&phases[3]), [1], "the test alone after them");
    assert_eq!(phases.len(), 6, "then one phase per server for the many calls");
    assert_eq!((tests_of(&phases[4]), tests_of(&phases[5])), (vec![2, 3], vec![4]));
    assert_eq!(holds[..4], [None, None, None, None]);
    assert_eq!(
        holds[4],
        Some(("127.0.0.1:1".into(), SERVER_CALLS)),
        "the larger of 200 and 1,000"
    );
    assert_eq!(holds[5], Some(("127.0.0.1:2".into(), 200)));
    assert!(phases[4].order.iter().all(|s| s.lane == 0), "one after the other");
}

#[test]
fn a_step_with_settle_ms_waits_for_every_status_line_of_the_step_before_it() {
    let src = r#"
[[case]]
name = "c"
alone = true
[[case.step]]
method = "Get"
request = { key = "a" }
copies = 2
[[case.step]]
method = "Get"
request = { key = "a" }
settle_ms = 100
[[case.step]]
method = "Get"
request = { key = "a" }
"#;
    let case = crate::input::cases::parse("s", src).unwrap().cases.remove(0);
    let steps = script_steps(&case.steps, "p", "ns/").unwrap();
    let lines = gated(&case, &steps);
    let gates: Vec<Option<&Gate>> = lines.iter().map(|l| l.gate.as_ref()).collect();
    let after = vec![script::copy_id("p#0", 0), script::copy_id("p#0", 1)];
    assert_eq!(gates, [None, Some(&Gate { after, ms: 100 }), None]);
    assert_eq!(lines[1].id, "p#1");
    assert!(lines[1].text.ends_with('\n') && !lines[1].text.contains("settle"));
}
