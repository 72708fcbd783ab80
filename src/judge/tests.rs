use super::*;
use crate::input::cases;
use serde_json::json;

fn case(src: &str) -> Case {
    cases::parse("t", src).unwrap().cases.remove(0)
}

fn line(v: Value) -> Line {
    serde_json::from_value(v).unwrap()
}

fn ok(id: &str) -> Line {
    line(json!({"id": id, "status": {"code": "OK", "message": ""}, "headers": {}, "trailers": {}, "elapsed_ms": 1.0}))
}

const GET: &str = r#"
[[case]]
name = "get"
[[case.step]]
method = "Get"
request = { key = "{ns}a" }
expect.messages = [{ value = "{b64:hi}", version = "1" }]
"#;

#[test]
fn a_matching_result_passes_in_any_proto3_json_spelling() {
    let c = case(GET);
    let obs = group([
        line(json!({"id": "p#0", "message": {"value": "aGk=", "version": 1}})),
        ok("p#0"),
    ]);
    assert_eq!(judge(&c, "p", "n/", &obs), Vec::<String>::new());
}

#[test]
fn a_wrong_field_is_named_with_expected_and_actual() {
    let c = case(GET);
    let obs = group([
        line(json!({"id": "p#0", "message": {"value": "aGk=", "version": "2"}})),
        ok("p#0"),
    ]);
    let r = judge(&c, "p", "n/", &obs);
    assert_eq!(
        r,
        vec![r#"step 0 Get: message 0: field version: expected "1", got "2""#]
    );
}

#[test]
fn a_wrong_status_code_fails() {
    let c = case(GET);
    let obs = group([line(
        json!({"id": "p#0", "status": {"code": "UNKNOWN", "message": "boom"}}),
    )]);
    let r = judge(&c, "p", "n/", &obs);
    assert!(r[0].contains("status: expected OK, got UNKNOWN \"boom\""), "{r:?}");
    assert!(r[1].contains("expected 1 message(s), got 0"), "{r:?}");
}

#[test]
fn a_missing_status_line_fails() {
    let c = case(GET);
    let r = judge(&c, "p", "n/", &Observations::new());
    assert!(r[0].contains("no result"), "{r:?}");
}

#[test]
fn a_dropped_stream_message_fails() {
    let c = case(
        r#"
[[case]]
name = "m"
[[case.step]]
method = "Monitor"
request = { pattern = "{ns}*", includeExisting = true, maxEvents = 2 }
expect.messages = [{ key = "{ns}a", existing = true, version = "1" }, { key = "{ns}b", existing = true, version = "1" }]
"#,
    );
    let obs = group([
        line(json!({"id": "p#0", "message": {"key": "n/a", "existing": true, "version": "1"}})),
        ok("p#0"),
    ]);
    let r = judge(&c, "p", "n/", &obs);
    assert!(r[0].contains("expected 2 message(s), got 1"), "{r:?}");
}

#[test]
fn output_that_is_not_the_response_type_fails() {
    let c = case(GET);
    let obs = group([line(json!({"id": "p#0", "message": {"colour": "red"}})), ok("p#0")]);
    let r = judge(&c, "p", "n/", &obs);
    assert!(
        r.iter().any(|r| r.contains("not a valid stock.v1.GetResponse")),
        "{r:?}"
    );
}

#[test]
fn headers_trailers_and_message_text_are_checked() {
    let c = case(
        r#"
[[case]]
name = "e"
[[case.step]]
method = "Get"
request = { key = "x" }
metadata = { x-stock-echo = "v" }
expect = { status = "NOT_FOUND", message_contains = "x", headers = { x-stock-echo = "v" }, trailers = { x-stock-echo = "v" } }
"#,
    );
    let got = line(
        json!({"id": "p#0", "status": {"code": "NOT_FOUND", "message": "key \"x\" not found"}, "headers": {}, "trailers": {"x-stock-echo": "v"}}),
    );
    let r = judge(&c, "p", "n/", &group([got]));
    assert_eq!(r, vec!["step 0 Get: header x-stock-echo: expected \"v\", got nothing"]);
}

#[test]
fn not_ok_accepts_any_failure_but_not_success() {
    let c = case("[[case]]\nname = \"t\"\n[[case.step]]\nmethod = \"Inventory\"\nexpect.status = \"!OK\"\n");
    let failed = line(json!({"id": "p#0", "status": {"code": "UNAVAILABLE", "message": "handshake"}}));
    assert!(judge(&c, "p", "", &group([failed])).is_empty());
    let r = judge(&c, "p", "", &group([ok("p#0")]));
    assert!(r[0].contains("expected any code but OK, got OK"), "{r:?}");
}

/// Two Inventory steps, the second's keyCount judged by `matcher` against the first's.
fn inventory_delta_case(matcher: &str) -> Case {
    case(&format!(
        r#"
[[case]]
name = "inv"
[[case.step]]
name = "before"
method = "Inventory"
expect = {{ messages = [{{ keyCount = {{ "$any" = true }}, totalValueBytes = {{ "$any" = true }}, language = {{ "$nonempty" = true }}, stack = {{ "$nonempty" = true }} }}] }}
[[case.step]]
method = "Inventory"
expect = {{ messages = [{{ keyCount = {matcher}, totalValueBytes = {{ "$any" = true }}, language = {{ "$any" = true }}, stack = {{ "$any" = true }} }}] }}
"#
    ))
}

fn inventory_line(id: &str, n: &str, lang: &str) -> Line {
    line(json!({"id": id, "message": {"keyCount": n, "language": lang, "stack": "s 1"}}))
}

#[test]
fn delta_and_nonempty_matchers() {
    let c = inventory_delta_case(r#"{ "$delta" = 1, "$from" = "before" }"#);
    let inv = inventory_line;
    let good = group([inv("p#0", "3", "go"), ok("p#0"), inv("p#1", "4", "go"), ok("p#1")]);
    assert!(judge(&c, "p", "", &good).is_empty());
    let bad = group([inv("p#0", "3", ""), ok("p#0"), inv("p#1", "3", "go"), ok("p#1")]);
    let r = judge(&c, "p", "", &bad);
    assert!(r[0].contains("field language: expected a non-empty value"), "{r:?}");
    assert!(
        r[1].contains("field keyCount: expected 4 (3 from step `before` +1), got \"3\""),
        "{r:?}"
    );
}

#[test]
fn delta_at_least_takes_the_delta_or_more() {
    let c = inventory_delta_case(r#"{ "$delta_at_least" = 1, "$from" = "before" }"#);
    let inv = |id: &str, n: &str| inventory_line(id, n, "go");
    for after in ["4", "9"] {
        let grown = group([inv("p#0", "3"), ok("p#0"), inv("p#1", after), ok("p#1")]);
        assert!(judge(&c, "p", "", &grown).is_empty(), "{after}");
    }
    let same = group([inv("p#0", "3"), ok("p#0"), inv("p#1", "3"), ok("p#1")]);
    let r = judge(&c, "p", "", &same);
    assert!(
        r[0].contains("field keyCount: expected at least 4 (3 from step `before` +1), got \"3\""),
        "{r:?}"
    );
}

#[test]
fn nested_after_first_steps_are_judged() {
    let c = case(
        r#"
[[case]]
name = "live"
[[case.step]]
method = "Monitor"
request = { pattern = "{ns}*", includeExisting = true, maxEvents = 2 }
expect.messages = [{ key = "{ns}a", existing = true, version = "1", value = "" }, { key = "{ns}b", version = "1", value = "" }]
[[case.step.after_first]]
method = "Put"
request = { key = "{ns}b" }
"#,
    );
    let ev = |k: &str, e: bool| line(json!({"id": "p#0", "message": {"key": k, "existing": e, "version": "1"}}));
    let good = group([
        ev("n/a", true),
        line(json!({"id": "p#0.#0", "message": {}})),
        ok("p#0.#0"),
        ev("n/b", false),
        ok("p#0"),
    ]);
    assert_eq!(judge(&c, "p", "n/", &good), Vec::<String>::new());
    let missing_put = group([ev("n/a", true), ev("n/b", false), ok("p#0")]);
    let r = judge(&c, "p", "n/", &missing_put);
    assert!(r[0].starts_with("step 0.0 Put: no result"), "{r:?}");
}

#[test]
fn metadata_matchers_absent_range_and_binary_compare_as_meant() {
    assert_eq!(metadata_matches("x-stock-a", &json!({"$absent": true}), None), Ok(()));
    assert!(
        metadata_matches("x-stock-a", &json!({"$absent": true}), Some(&"v".into()))
            .unwrap_err()
            .contains("expected none")
    );
    assert_eq!(
        metadata_matches("x-stock-d", &json!({"$range": [3000, 5500]}), Some(&"5010".into())),
        Ok(())
    );
    assert!(metadata_matches("x-stock-d", &json!({"$range": [3000, 5500]}), Some(&"none".into())).is_err());
    // -bin values compare as bytes: padding is optional
    assert_eq!(
        metadata_matches("x-stock-echo-bin", &json!("AA=="), Some(&"AA".into())),
        Ok(())
    );
    assert!(metadata_matches("x-stock-echo-bin", &json!("AA=="), Some(&"QUE9PQ==".into())).is_err());
    assert!(crate::input::matchers::check_metadata_expectation("x-stock-b-bin", &json!("not base64!")).is_err());
    assert!(crate::input::matchers::check_metadata_expectation("x-stock-a", &json!({"$range": [1]})).is_err());
}

#[test]
fn details_compare_by_type_and_the_fields_named() {
    let got = vec![
        json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "key", "description": "too long"}]}),
    ];
    let want =
        vec![json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "key"}]})];
    assert_eq!(details_match(&want, &got), Ok(()));
    let other =
        vec![json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "value"}]})];
    assert!(details_match(&other, &got)
        .unwrap_err()
        .contains("expected \"value\", got \"key\""));
    let info = vec![json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "FORCED"})];
    assert!(details_match(&info, &got)
        .unwrap_err()
        .contains("expected a google.rpc.ErrorInfo, got a google.rpc.BadRequest"));
    assert!(details_match(&want, &[]).unwrap_err().contains("expected 1"));
    assert_eq!(details_match(&[], &[]), Ok(()));
}

const COPIES: &str = r#"
[[case]]
name = "copies"
[[case.step]]
method = "Put"
request = { key = "{ns}a", value = "{b64:x}" }
copies = 3
"#;

#[test]
fn every_copy_of_a_step_is_judged_and_the_first_failure_is_shown() {
    let c = case(COPIES);
    let good = |id: &str| vec![line(json!({"id": id, "message": {}})), ok(id)];
    let mut lines: Vec<Line> = ["p#0*0", "p#0*1", "p#0*2"].iter().flat_map(|id| good(id)).collect();
    assert_eq!(judge(&c, "p", "n/", &group(lines.clone())), Vec::<String>::new());
    lines.retain(|l| l.id != "p#0*2");
    let r = judge(&c, "p", "n/", &group(lines));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("step 0 copy 2 Put: no result"), "{r:?}");
}

#[test]
fn a_call_shorter_than_its_step_can_be_fails_with_both_times() {
    let c = case(
        r#"
[[case]]
name = "slow"
[[case.step]]
method = "Monitor"
request = { pattern = "{ns}*", maxEvents = 1 }
read_pause_ms = 40
expect = { min_elapsed_ms = 1240 }
"#,
    );
    let quick = group([ok("p#0")]);
    assert_eq!(
        judge(&c, "p", "n/", &quick),
        vec!["step 0 Monitor: took 1 ms, less than the 1240 ms the step lasts at least".to_string()]
    );
    let slow = group([line(
        json!({"id": "p#0", "status": {"code": "OK", "message": ""}, "headers": {}, "trailers": {}, "elapsed_ms": 1300.5}),
    )]);
    assert_eq!(judge(&c, "p", "n/", &slow), Vec::<String>::new());
    let silent = group([line(json!({"id": "p#0", "status": {"code": "OK", "message": ""}}))]);
    assert_eq!(
        judge(&c, "p", "n/", &silent),
        vec!["step 0 Monitor: no elapsed_ms reported (the step lasts at least 1240 ms)".to_string()]
    );
}

#[test]
fn an_includes_matcher_checks_a_oneof_member_the_answer_left_unset() {
    let c = case(
        r#"
[[case]]
name = "list"
[[case.step]]
method = "grpc.reflection.v1.ServerReflection.ServerReflectionInfo"
requests = [{ list_services = "" }]
expect.match = "partial"
expect.messages = [{ listServicesResponse = { "$includes" = { service = [{ name = "stock.v1.Stock" }] } } }]
"#,
    );
    let listed = |answer: Value| group([line(json!({"id": "p#0", "message": answer})), ok("p#0")]);
    let good = listed(json!({"listServicesResponse": {"service": [{"name": "proto.KV"}, {"name": "stock.v1.Stock"}]}}));
    assert_eq!(judge(&c, "p", "n/", &good), Vec::<String>::new());
    let refused = listed(json!({"errorResponse": {"errorCode": 12, "errorMessage": "no"}}));
    assert_eq!(
        judge(&c, "p", "n/", &refused),
        vec!["step 0 grpc.reflection.v1.ServerReflection.ServerReflectionInfo: message 0: field listServicesResponse: expected an object, got null"]
    );
}

#[test]
fn response_compressed_is_the_reported_count_of_flags_or_a_failure() {
    let c = case(
        r#"
[[case]]
name = "z"
[[case.step]]
method = "Get"
request = { key = "{ns}a" }
metadata = { x-stock-compress = "gzip" }
expect = { messages = [{ value = "{b64:hi}", version = "1" }], response_compressed = "1/1" }
"#,
    );
    let with = |flags: Option<&str>| {
        let mut status = ok("p#0");
        status.response_compressed = flags.map(String::from);
        let msg = line(json!({"id": "p#0", "message": {"value": "aGk=", "version": "1"}}));
        judge(&c, "p", "n/", &group([msg, status]))
    };
    assert_eq!(with(Some("1/1")), Vec::<String>::new());
    let prefix = "step 0 Get: response messages with the Compressed-Flag set: expected 1/1";
    assert_eq!(with(Some("0/1")), vec![format!("{prefix}, got 0/1")]);
    assert_eq!(with(None), vec![format!("{prefix}, the client reported none")]);
}
