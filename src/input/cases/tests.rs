use super::*;
use crate::contract::script;

const FILE: &str = r#"
description = "example"
[[case]]
name = "put-get"
[[case.step]]
method = "Put"
request = { key = "{ns}a", value = "{b64:hi}" }
[[case.step]]
method = "Get"
request = { key = "{ns}a" }
expect.messages = [{ value = "{b64:hi}", version = "1" }]
"#;

#[test]
fn a_case_file_loads_and_makes_steps() {
    let set = parse("unary", FILE).unwrap();
    assert_eq!(set.cases.len(), 1);
    let steps = script_steps(&set.cases[0].steps, "x", "p/").unwrap();
    assert_eq!(steps[1].id, "x#1");
    assert_eq!(steps[1].request.as_ref().unwrap()["key"], "p/a");
}

#[test]
fn large_repeated_values_go_to_the_client_as_fill() {
    let src = r#"
[[case]]
name = "big"
[[case.step]]
method = "Batch"
requests = [{ key = "{ns}s", value = "{b64repeat:ab:3}" }, { key = "{ns}l", value = "{b64repeat:ab:512}" }]
[[case.step]]
method = "Put"
request = { key = "{ns}p", value = "{b64repeat:x:1048576}" }
[[case.step]]
method = "Get"
request = { key = "{ns}p" }
expect.messages = [{ value = "{b64repeat:x:1048576}" }]
"#;
    let set = parse("s", src).unwrap();
    let steps = script_steps(&set.cases[0].steps, "x", "p/").unwrap();
    let batch = steps[0].requests.as_ref().unwrap();
    assert_eq!(batch[0]["value"], "YWJhYmFi", "small values stay inline");
    assert_eq!(batch[1], serde_json::json!({"key": "p/l"}));
    let fill = |request, repeat: &str, times| script::Fill {
        request,
        repeat: repeat.into(),
        times,
    };
    assert_eq!(steps[0].fill, vec![fill(1, "YWI=", 512)]);
    assert_eq!(steps[1].request, Some(serde_json::json!({"key": "p/p"})));
    assert_eq!(steps[1].fill, vec![fill(0, "eA==", 1048576)]);
    assert_eq!(steps[1].fill[0].bytes().unwrap(), vec![b'x'; 1048576]);
    assert!(steps[2].fill.is_empty());
}

#[test]
fn bad_cases_are_rejected_with_the_case_named() {
    let err = parse("s", &FILE.replace("method = \"Get\"", "method = \"Fetch\"")).unwrap_err();
    assert!(err.contains("put-get") && err.contains("Fetch"), "{err}");
    let err = parse("s", &FILE.replace("version = \"1\"", "versoin = \"1\"")).unwrap_err();
    assert!(err.contains("versoin"), "{err}");
    let err = parse(
        "s",
        &FILE.replace(
            "key = \"{ns}a\" }\nexpect",
            "key = \"{ns}a\" }\nexpect.status = \"MISSING\"\nexpect",
        ),
    )
    .unwrap_err();
    assert!(err.contains("MISSING"), "{err}");
    let err = parse(
        "s",
        &FILE.replace(
            "[[case.step]]\nmethod = \"Get\"",
            "[[case.step]]\nmethod = \"Get\"\ncolour = 1",
        ),
    )
    .unwrap_err();
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn negative_connects_apply_only_where_meaningful() {
    let mut case = parse("s", FILE).unwrap().cases.remove(0);
    case.connect = Connect::NoClientCert;
    assert!(!case.applies_to(TlsMode::Server));
    assert!(case.applies_to(TlsMode::Mtls));
    case.connect = Connect::Plaintext;
    assert!(!case.applies_to(TlsMode::None));
}

#[test]
fn only_a_case_with_the_cells_server_certificates_and_no_keepalive_is_on_its_connection() {
    let normal = parse("s", FILE).unwrap().cases.remove(0);
    assert!(normal.on_cells_connection());
    let mut c = normal.clone();
    c.connect = Connect::UntrustedCa;
    assert!(!c.on_cells_connection());
    let mut c = normal.clone();
    c.server_cert = ServerCert::Expired;
    assert!(!c.on_cells_connection());
    let mut c = normal;
    c.keepalive = Some(Keepalive {
        ms: 1000,
        timeout_ms: None,
    });
    assert!(!c.on_cells_connection());
}

#[test]
fn settle_ms_is_for_a_later_step_of_a_case_that_runs_alone() {
    let alone = FILE.replace("name = \"put-get\"", "name = \"put-get\"\nalone = true");
    let later = |src: &str, ms: &str| {
        src.replace(
            "[[case.step]]\nmethod = \"Get\"",
            &format!("[[case.step]]\nmethod = \"Get\"\nsettle_ms = {ms}"),
        )
    };
    let set = parse("s", &later(&alone, "100")).unwrap();
    assert_eq!(set.cases[0].steps[1].settle_ms, Some(100));
    let err = parse("s", &later(FILE, "100")).unwrap_err();
    assert!(
        err.contains("put-get") && err.contains("step 1: `settle_ms` needs `alone = true`"),
        "{err}"
    );
    let first = alone.replace("method = \"Put\"", "method = \"Put\"\nsettle_ms = 100");
    let err = parse("s", &first).unwrap_err();
    assert!(err.contains("step 0: `settle_ms` needs a step before it"), "{err}");
    for ms in ["0", "5001"] {
        let err = parse("s", &later(&alone, ms)).unwrap_err();
        assert!(err.contains(&format!("settle_ms must be 1 to 5000, got {ms}")), "{err}");
    }
}

#[test]
fn a_fallback_method_takes_the_same_messages_and_the_reference_client() {
    let step = |fallback: &str| {
        format!(
            "[[case]]\nname = \"list\"\n[[case.step]]\nmethod = \"grpc.reflection.v1.ServerReflection.ServerReflectionInfo\"\nfallback_method = \"{fallback}\"\nrequests = [{{ list_services = \"\" }}]\n"
        )
    };
    let v1alpha = step("grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo");
    let set = parse("r", &format!("clients = [\"rust\"]\n{v1alpha}")).unwrap();
    let steps = script_steps(&set.cases[0].steps, "p", "ns/").unwrap();
    assert_eq!(
        steps[0].fallback_method.as_deref(),
        Some("grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo")
    );
    let everyone = parse("r", &v1alpha).unwrap_err();
    assert!(
        everyone.contains("case `list`: a `fallback_method` step is the reference client's"),
        "{everyone}"
    );
    let other = parse("r", &format!("clients = [\"rust\"]\n{}", step("Trade"))).unwrap_err();
    assert!(
        other.contains("fallback_method `Trade` does not take and return what"),
        "{other}"
    );
    let unknown = parse("r", &format!("clients = [\"rust\"]\n{}", step("Nope"))).unwrap_err();
    assert!(unknown.contains("unknown fallback_method `Nope`"), "{unknown}");
}

#[test]
fn cancel_after_messages_is_for_a_monitor_and_at_least_one() {
    let step = |method: &str, n: u32| {
        format!("[[case]]\nname = \"c\"\n[[case.step]]\nmethod = \"{method}\"\ncancel_after_messages = {n}\n")
    };
    let set = parse("s", &step("Monitor", 1)).unwrap();
    let steps = script_steps(&set.cases[0].steps, "p", "ns/").unwrap();
    assert_eq!(steps[0].cancel_after_messages, Some(1));
    let line = serde_json::to_string(&steps[0]).unwrap();
    assert!(line.contains(r#""cancel_after_messages":1"#), "{line}");
    let get = parse("s", &step("Get", 1)).unwrap_err();
    assert!(
        get.contains("case `c`") && get.contains("`cancel_after_messages` is only for server-streaming methods"),
        "{get}"
    );
    let none = parse("s", &step("Monitor", 0)).unwrap_err();
    assert!(none.contains("cancel_after_messages must be at least 1"), "{none}");
}

#[test]
fn an_includes_matcher_names_only_message_types_the_pool_knows() {
    let src = |name: &str| {
        format!(
            "[[case]]\nname = \"d\"\n[[case.step]]\nmethod = \"grpc.reflection.v1.ServerReflection.ServerReflectionInfo\"\nrequests = [{{ file_containing_symbol = \"stock.v1.Stock\" }}]\nexpect.messages = [{{ fileDescriptorResponse = {{ \"$includes\" = {{ fileDescriptorProto = [{{ \"$message\" = \"{name}\" }}] }} }} }}]\n"
        )
    };
    assert!(parse("r", &src("google.protobuf.FileDescriptorProto")).is_ok());
    let err = parse("r", &src("google.protobuf.Nope")).unwrap_err();
    assert!(
        err.contains("$message: unknown message type `google.protobuf.Nope`"),
        "{err}"
    );
}

#[test]
fn a_case_opens_its_copies_times_its_misbehaviour_s_calls_at_once() {
    let src = r#"
clients = ["rust"]
[[case]]
name = "many"
[[case.step]]
method = "Put"
request = { key = "{ns}p", value = "{b64:x}" }
copies = 200
[[case.step]]
method = "Get"
rude = "thousand-streams"
request = { key = "{ns}p" }
[[case]]
name = "one-by-one"
[[case.step]]
method = "Monitor"
request = { pattern = "{ns}p" }
after_first = [{ method = "Put", request = { key = "{ns}p", value = "{b64:y}" } }]
[[case.step]]
method = "Get"
request = { key = "{ns}p" }
copies = 3
[[case.step]]
method = "Get"
request = { key = "{ns}p" }
"#;
    let set = parse("s", src).unwrap();
    let calls: Vec<u32> = set.cases.iter().map(Case::calls_at_once).collect();
    assert_eq!(
        calls,
        [1000, 3],
        "the larger step: 1,000 streams; 3 Gets (a Monitor and its Put, 2)"
    );
    let monitor = &set.cases[1];
    let only_monitor = Case {
        steps: monitor.steps[..1].to_vec(),
        ..monitor.clone()
    };
    assert_eq!(
        only_monitor.calls_at_once(),
        2,
        "a step's nested calls are open with it"
    );
    let file = |name: &str| {
        load(
            name,
            &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("cases/{name}.toml")),
        )
    };
    let concurrency = file("concurrency").unwrap();
    assert!(
        concurrency.cases.iter().all(|c| c.calls_at_once() >= 50),
        "every concurrency case opens 50 or more"
    );
    let unary = file("unary").unwrap();
    assert!(
        unary.cases.iter().all(|c| c.calls_at_once() <= 2),
        "a unary case one call at a time"
    );
}

#[test]
fn a_usage_case_has_a_line_and_no_steps() {
    let usage = "[[case]]\nname = \"u\"\nusage = { line = '{\"id\": \"u\"}', args = [\"--x\"] }\n";
    let set = parse("usage", usage).unwrap();
    let u = set.cases[0].usage.as_ref().unwrap();
    assert_eq!(
        (u.line.as_str(), u.args.as_slice()),
        ("{\"id\": \"u\"}", &["--x".to_string()][..])
    );
    let with_steps = format!("{usage}[[case.step]]\nmethod = \"Get\"\n");
    assert_eq!(
        parse("usage", &with_steps).unwrap_err(),
        "case `u`: a `usage` case has no steps (its client exits on the line)"
    );
    let neither = parse("usage", "[[case]]\nname = \"u\"\n").unwrap_err();
    assert_eq!(neither, "case `u` has no steps");
}

#[test]
fn a_lifecycle_case_has_a_stop_and_no_steps() {
    let lc = "[[case]]\nname = \"l\"\nlifecycle = { stop = \"sigterm\", open_monitor = true, within_ms = 3000 }\n";
    let set = parse("lifecycle", lc).unwrap();
    let l = set.cases[0].lifecycle.unwrap();
    assert_eq!((l.stop, l.open_monitor, l.within_ms), (StopBy::Sigterm, true, 3000));
    let with_steps = format!("{lc}[[case.step]]\nmethod = \"Get\"\n");
    assert_eq!(
        parse("lifecycle", &with_steps).unwrap_err(),
        "case `l`: a `lifecycle` case has no steps (the runner stops its server)"
    );
    let both = lc.replace("lifecycle =", "usage = { line = '{}' }\nlifecycle =");
    assert_eq!(
        parse("lifecycle", &both).unwrap_err(),
        "case `l`: a case is `usage` or `lifecycle`, not both"
    );
    let unknown = lc.replace("sigterm", "sighup");
    assert!(
        parse("lifecycle", &unknown).unwrap_err().contains("sighup"),
        "names the bad value"
    );
}

#[test]
fn an_exit_goes_with_steps_only() {
    let steps =
        "[[case]]\nname = \"e\"\nexit = { code = 0, within_ms = 3000 }\n[[case.step]]\nmethod = \"Inventory\"\n";
    let set = parse("client-exit", steps).unwrap();
    assert_eq!(
        set.cases[0].exit,
        Some(ClientExit {
            code: 0,
            within_ms: 3000
        })
    );
    let usage = "[[case]]\nname = \"e\"\nexit = { code = 0, within_ms = 3000 }\nusage = { line = '{}' }\n";
    assert_eq!(
        parse("client-exit", usage).unwrap_err(),
        "case `e`: `exit` is for a case with steps, not a `usage` or `lifecycle` one"
    );
}
