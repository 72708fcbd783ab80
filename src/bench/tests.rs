use super::stats::in_flight;
use super::*;
use crate::contract::bench::bucket;
use crate::contract::bench::Counts;

fn counts(latencies_us: &[u64], messages: u64, elapsed_ms: f64) -> Counts {
    let mut b = crate::contract::bench::Buckets::default();
    latencies_us.iter().for_each(|v| b.record(*v));
    Counts {
        calls: latencies_us.len() as u64,
        errors: 0,
        messages,
        elapsed_ms,
        histogram: b.list(),
        first_error: None,
    }
}

fn settings() -> Settings {
    Settings {
        duration_ms: 1000,
        warmup_ms: 500,
        concurrency: 8,
        payload: 64,
        repeat: 3,
        stream_len: 10,
        call_timeout_ms: 10_000,
        tls: TlsMode::None,
        ops: Op::ALL.to_vec(),
    }
}

#[test]
fn percentiles_of_known_latencies_are_within_a_bucket() {
    // 1..=1000 µs, once each: p50 500, p90 900, p99 990, max 1000.
    let all: Vec<u64> = (1..=1000).collect();
    let (a, b) = all.split_at(400);
    let r = summarize(Op::Get, &[counts(a, 400, 1000.0), counts(b, 600, 1000.0)]);
    let p = r.latency_us.unwrap();
    for (got, want) in [(p.p50, 500.0), (p.p90, 900.0), (p.p99, 990.0), (p.max, 1000.0)] {
        assert!((got - want).abs() / want < 0.04, "got {got}, want {want} ± one bucket");
    }
    assert_eq!(r.calls, 1000);
}

#[test]
fn a_slow_tail_moves_p99_and_max_but_not_the_median() {
    let mut lat = vec![100u64; 980];
    lat.extend([50_000u64; 20]);
    let p = summarize(Op::Get, &[counts(&lat, 1000, 1000.0)]).latency_us.unwrap();
    assert!((p.p50 - 100.0).abs() < 4.0, "{p:?}");
    assert!((p.p99 - 50_000.0).abs() / 50_000.0 < 0.04, "{p:?}");
    assert!((p.max - 50_000.0).abs() / 50_000.0 < 0.04, "{p:?}");
    // Buckets under 32 µs are exact.
    let p = summarize(Op::Get, &[counts(&[7, 7, 7, 9], 4, 1.0)]).latency_us.unwrap();
    assert_eq!((p.p50, p.max), (7.0, 9.0));
    assert_eq!(bucket(7), 7);
}

#[test]
fn throughput_is_messages_per_second_per_repeat_with_its_spread() {
    let r = summarize(
        Op::Monitor,
        &[
            counts(&[100; 10], 1000, 1000.0),
            counts(&[100; 10], 1200, 1000.0),
            counts(&[100; 10], 900, 500.0),
        ],
    );
    let t = r.throughput.unwrap();
    assert_eq!(t.values, vec![1000.0, 1200.0, 1800.0]);
    assert_eq!((t.median, t.min, t.max), (1200.0, 1000.0, 1800.0));
    assert!((t.relative() - 800.0 / 1200.0).abs() < 1e-9);
    assert_eq!(r.unit, "messages/s");
    assert!(summarize(Op::Get, &[]).throughput.is_none());
}

#[test]
fn the_script_writes_the_keys_then_warms_up_and_repeats_each_operation() {
    let s = settings();
    let steps = script("go", &s);
    assert_eq!(steps[0].method, "Batch");
    assert_eq!(steps[0].requests.as_ref().unwrap().len(), 11); // the Get key and 10 Monitor keys
    assert!(steps[0].bench.is_none());
    let ids: Vec<&str> = steps[1..5].iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["warmup/get", "get/1", "get/2", "get/3"]);
    assert_eq!(steps.len(), 1 + 5 * 4);
    assert_eq!(steps[1].bench.unwrap().duration_ms, 500);
    assert_eq!(
        steps[2].bench.unwrap(),
        Load {
            duration_ms: 1000,
            concurrency: 8
        }
    );
    let monitor = steps.iter().find(|s| s.id == "monitor/1").unwrap();
    assert_eq!(monitor.request.as_ref().unwrap()["maxEvents"], 10);
    for st in &steps {
        assert_eq!(parse_id(&st.id).is_some(), st.bench.is_some(), "{}", st.id);
    }
    assert_eq!(parse_id("trade/3"), Some((Op::Trade, Some(3))));
}

#[test]
fn large_payloads_go_as_fill_small_ones_inline() {
    let mut s = settings();
    s.payload = 4096;
    let put = script("go", &s).into_iter().find(|s| s.id == "put/1").unwrap();
    assert_eq!(put.fill.len(), 1);
    assert_eq!(put.fill[0].bytes().unwrap().len(), 4096);
    assert!(put.request.unwrap().get("value").is_none());
    s.payload = 3;
    let put = script("go", &s).into_iter().find(|s| s.id == "put/1").unwrap();
    assert!(put.fill.is_empty());
    assert_eq!(put.request.unwrap()["value"], "eHh4");
}

fn report(values: &[(&str, Vec<f64>)]) -> BenchReport {
    let pairs = values
        .iter()
        .map(|(server, v)| Pair {
            client: "go".into(),
            server: server.to_string(),
            ops: BTreeMap::from([(
                Op::Get,
                OpResult {
                    unit: "calls/s".into(),
                    throughput: Spread::of(v.clone()),
                    latency_us: None,
                    calls: 1,
                    errors: 0,
                    first_error: None,
                },
            )]),
            error: None,
        })
        .collect();
    BenchReport {
        settings: settings(),
        environment: Environment {
            started: "then".into(),
            duration_s: 0.0,
            command: String::new(),
            commit: None,
            cores: 2,
            placement: String::new(),
            stacks: BTreeMap::new(),
        },
        pairs,
        anchors: vec![],
        baseline: None,
    }
}

#[test]
fn only_changes_beyond_the_noise_of_the_repeats_are_flagged() {
    let before = report(&[
        ("rust", vec![1000.0, 1010.0, 990.0]),
        ("java", vec![1000.0, 1300.0, 700.0]),
    ]);
    // rust: +20% with repeats 2% apart -> flagged; java: +20% with repeats 60% apart -> noise.
    let after = report(&[
        ("rust", vec![1200.0, 1190.0, 1210.0]),
        ("java", vec![1200.0, 1250.0, 1150.0]),
    ]);
    let b = compare("old.json", &before, &after);
    assert_eq!(b.compared, 2);
    assert_eq!(b.changes.len(), 1, "{:?}", b.changes);
    let c = &b.changes[0];
    assert_eq!(c.pair, "go → rust");
    assert!((c.change - 0.2).abs() < 1e-9 && (c.band - MIN_BAND).abs() < 1e-9);
    // Within 5% is never flagged, however close the repeats.
    let after = report(&[("rust", vec![1040.0, 1040.0, 1040.0])]);
    assert!(compare("old.json", &before, &after).changes.is_empty());
}

#[test]
fn littles_law_tells_a_client_that_kept_fewer_calls_in_flight() {
    // 8 workers busy for 1 s with 1 ms calls: 8000 calls of ~1000 µs.
    let full = counts(&vec![1000; 8000], 8000, 1000.0);
    assert!((in_flight(&full) - 8.0).abs() < 0.3, "{}", in_flight(&full));
    assert!(check_load(8, &full).is_ok());
    // One worker at a time: 1000 calls of 1 ms in 1 s.
    let one = counts(&vec![1000; 1000], 1000, 1000.0);
    assert!(check_load(8, &one).unwrap_err().contains("kept 1.0"));
    // Latencies counted in ms: a thousand times too little time in calls.
    let millis = counts(&vec![1; 8000], 8000, 1000.0);
    assert!(check_load(8, &millis).is_err());
    // Too few calls, or failed calls, to judge.
    assert!(check_load(8, &counts(&[1; 50], 50, 1000.0)).is_ok());
    let mut failing = one.clone();
    failing.errors = 3;
    assert!(check_load(8, &failing).is_ok());
}
