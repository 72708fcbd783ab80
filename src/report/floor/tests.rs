use super::*;
use crate::model::cell::CellKey;
use crate::model::run::{fixtures, CellInfo, Outcome, TestResult};
use crate::model::tls::TlsMode;

fn key(client: &str) -> CellKey {
    fixtures::key(client, "rust", TlsMode::None)
}

/// A passed test of `client` against rust, case `case` of set `s`, that took `ms`.
fn test(client: &str, case: &str, ms: f64) -> TestResult {
    let t = fixtures::result(client, "rust", TlsMode::None, case, Outcome::Passed);
    TestResult {
        id: format!("{}/set=s/case={case}", key(client).id()),
        set: "s".into(),
        duration_ms: ms,
        ..t
    }
}

#[test]
fn the_floor_spreads_start_ups_and_longest_tests_over_the_jobs() {
    let cell = |client: &str, ready: Option<f64>, first: f64, duration: f64| CellInfo {
        key: key(client),
        server_ready_ms: ready,
        client_first_line_ms: vec![first],
        duration_ms: duration,
        tests: 1,
        notes: vec![],
    };
    let s = RunSummary {
        duration_ms: 9000.0,
        execute_ms: 1000.0,
        jobs: 2,
        // one server shared by both cells: one start-up
        cells: vec![cell("go", Some(100.0), 300.0, 900.0), cell("java", None, 700.0, 1000.0)],
        ..fixtures::summary(vec![
            test("go", "a", 50.0),
            test("go", "b", 200.0),
            test("java", "a", 100.0),
        ])
    };
    let f = floor(&s).unwrap();
    // (100 + 300 + 700 + 200 + 100) / 2
    assert_eq!(f.floor_ms, 700.0);
    assert!((f.ratio - 1000.0 / 700.0).abs() < 1e-9);
    assert_eq!((f.servers_started, f.clients_started), (1, 2));
    assert_eq!(f.busiest[0].process, key("java").id());
    assert_eq!(f.busiest[1].longest_test, "s/b");
    let md = render(&f);
    assert!(md.contains("wall ÷ floor = **1.43**"), "{md}");
    assert!(
        md.contains("| `client=java/server=rust/tls=none` | 1.0 s | shared | 0.7 s | s/a (0.1 s) |"),
        "{md}"
    );
    let three_jobs_two_cores = RunSummary {
        jobs: 3,
        at_most: 0,
        most_at_once: 0,
        cpu_ms: 0.0,
        cores: 2,
        ..s.clone()
    };
    assert_eq!(
        floor(&three_jobs_two_cores).unwrap().floor_ms,
        650.0,
        "(100 + 300 + 700) / 2 cores + (200 + 100) / 3 at a time"
    );
    let more_at_once = RunSummary {
        at_most: 4,
        most_at_once: 3,
        ..s.clone()
    };
    let f = floor(&more_at_once).unwrap();
    assert_eq!(
        f.floor_ms, 625.0,
        "(100 + 300 + 700) / 2 + (200 + 100) / 4 at once at most"
    );
    assert!(
        render(&f).contains("2 client processes at a time, up to 4 while cores were idle (3 at the most)"),
        "{}",
        render(&f)
    );
    let busy = RunSummary {
        cpu_ms: 3000.0,
        cores: 2,
        ..s.clone()
    };
    let f = floor(&busy).unwrap();
    assert_eq!((f.cpu_floor_ms, f.floor_ms), (1500.0, 1500.0), "3 core-s on 2 cores");
    assert!(render(&f).contains("the CPU the run used, 3.0 s"), "{}", render(&f));
    // Start-ups that stretched each other count no more than the run's CPU.
    let side_by_side = RunSummary {
        cpu_ms: 600.0,
        cores: 2,
        ..s.clone()
    };
    let f = floor(&side_by_side).unwrap();
    assert_eq!(f.startups_counted_ms, 600.0);
    assert_eq!(
        f.floor_ms,
        (600.0 + 300.0) / 2.0,
        "start-ups at most the 600 ms of CPU, + longest tests"
    );
    assert!(
        render(&f).contains("counted as the run's CPU, 0.6 s, since they stretched each other"),
        "{}",
        render(&f)
    );
    let none = RunSummary { jobs: 0, ..s };
    assert!(floor(&none).is_none(), "an old summary without jobs has no floor");
}

#[test]
fn one_process_per_pair_counts_its_longest_test_once() {
    let mut tls = test("go", "t", 400.0);
    tls.cell.tls = TlsMode::Server;
    let cell = |key: CellKey, ready: f64, first: Vec<f64>| CellInfo {
        key,
        server_ready_ms: Some(ready),
        client_first_line_ms: first,
        duration_ms: 800.0,
        tests: 1,
        notes: vec![],
    };
    let s = RunSummary {
        duration_ms: 900.0,
        execute_ms: 800.0,
        jobs: 1,
        per_pair: true,
        cells: vec![cell(key("go"), 10.0, vec![90.0]), cell(tls.cell.clone(), 20.0, vec![])],
        ..fixtures::summary(vec![test("go", "a", 300.0), tls])
    };
    let f = floor(&s).unwrap();
    // 10 + 20 (two servers) + 90 (one client) + 400 (the pair's longest)
    assert_eq!(f.floor_ms, 520.0);
    assert_eq!(f.busiest.len(), 1);
    assert_eq!(f.busiest[0].process, "client=go/server=rust");
    assert_eq!(f.busiest[0].server_ready_ms, Some(30.0));
    assert_eq!(f.busiest[0].longest_test, "s/t");
}

#[test]
fn idle_cores_are_summed_and_split_by_what_held_processes_back() {
    use crate::model::run::LoadSample;
    let sample = |at_ms: f64, running: usize, idle_cores: f64, memory_free: Option<f64>| LoadSample {
        at_ms,
        running,
        idle_cores,
        memory_free,
    };
    let s = RunSummary {
        at_most: 4,
        load: vec![
            sample(1000.0, 2, 0.25, Some(0.6)),
            sample(2000.0, 4, 1.0, Some(0.5)),
            sample(3000.0, 3, 1.5, Some(0.2)),
            sample(5000.0, 2, 2.0, None),
        ],
        ..crate::model::run::fixtures::summary(vec![])
    };
    let i = idle(&s).unwrap();
    assert_eq!(i.core_ms, 250.0 + 1000.0 + 1500.0 + 4000.0);
    assert_eq!(i.short_of_memory_ms, 1500.0, "the third second only");
    assert_eq!(i.at_most_ms, 1000.0, "the second second only");
    assert_eq!(i.below_spare_cores_ms, 250.0, "the first second only (0.25 idle)");
    assert_eq!(i.mean_running, (2.0 + 4.0 + 3.0 + 2.0 * 2.0) / 5.0);
    let f = Floor {
        idle: Some(i),
        wall_ms: 5000.0,
        machine_cores: 2,
        at_once: 4,
        ..floor(&RunSummary {
            jobs: 2,
            execute_ms: 5000.0,
            ..s.clone()
        })
        .unwrap()
    };
    let md = render(&f);
    assert!(
        md.contains("Cores sat idle for 6.8 s (core-seconds; 68% of wall × cores), 2.6 client processes running on average; 1.5 s of it while less than 25% of the memory was available"),
        "{md}"
    );
    assert!(
        md.contains(", 1.0 s with 4 processes running, 0.2 s in seconds with less than 0.35 of a core idle"),
        "{md}"
    );
    assert_eq!(idle(&RunSummary { load: vec![], ..s }), None);
}
