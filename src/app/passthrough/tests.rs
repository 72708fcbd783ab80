use super::*;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn person(args: &[&str]) -> PersonClient {
    PersonClient::try_parse_from(std::iter::once("client").chain(args.iter().copied())).unwrap()
}

#[test]
fn options_go_anywhere_and_become_the_connection() {
    let p = person(&[
        "get",
        "mykey",
        "--server",
        "localhost:1",
        "--tls-mode=server",
        "--ca-file",
        "/c/ca.pem",
    ]);
    assert_eq!(
        p.connection().options(),
        strings(&[
            "--server",
            "localhost:1",
            "--tls-mode",
            "server",
            "--ca-file",
            "/c/ca.pem"
        ])
    );
    let step = p.step("").unwrap().unwrap();
    assert_eq!((step.id.as_str(), step.method.as_str()), ("get", "Get"));
    assert_eq!(step.request, Some(json!({"key": "mykey"})));
    assert_eq!(person(&["inventory"]).connection().server, "localhost:50051");
}

#[test]
fn commands_become_one_step_with_the_call_options() {
    let p = person(&[
        "--metadata",
        "x-stock-echo=hi",
        "monitor",
        "k*",
        "--max-events",
        "2",
        "--timeout-ms=500",
        "--compression",
        "gzip",
    ]);
    let step = p.step("").unwrap().unwrap();
    assert_eq!(
        step.request,
        Some(json!({"pattern": "k*", "maxEvents": 2, "includeExisting": false}))
    );
    assert_eq!(step.metadata.get("x-stock-echo").map(String::as_str), Some("hi"));
    assert_eq!(
        (step.timeout_ms, step.compression.as_deref()),
        (Some(500), Some("gzip"))
    );
    let put = person(&["put", "k", "--", "--server"]).step("").unwrap().unwrap();
    assert_eq!(
        put.request,
        Some(json!({"key": "k", "value": "LS1zZXJ2ZXI="})),
        "after -- everything is an argument"
    );
    let batch = person(&["batch"]);
    assert!(batch.reads_stdin());
    let items = batch.step("{\"key\":\"a\"}\n\n{\"key\":\"b\"}\n").unwrap().unwrap();
    assert_eq!(items.requests.map(|r| r.len()), Some(2));
    assert!(person(&["batch", "a=1"]).step("").unwrap().unwrap().requests.is_some());
    assert!(person(&["batch"]).step("not json").is_err());
    assert!(person(&["script"]).step("").unwrap().is_none());
    assert!(PersonClient::try_parse_from(["client", "frobnicate"]).is_err());
}

#[test]
fn path_flags_become_absolute() {
    let out = absolute_paths(&strings(&[
        "--ca-file",
        "certs/ca.pem",
        "get",
        "certs/x",
        "--key-file=k.pem",
    ]));
    assert!(out[1].starts_with('/') && out[1].ends_with("certs/ca.pem"), "{out:?}");
    assert_eq!(out[3], "certs/x");
    assert!(
        out[4].starts_with("--key-file=/") && out[4].ends_with("/k.pem"),
        "{out:?}"
    );
}

#[test]
fn text_values_are_shown_decoded_and_raw_kept() {
    let out: Value = serde_json::from_str(&humanize(
        r#"{"id":"get","message":{"value":"aGVsbG8=","version":"1"}}"#,
    ))
    .unwrap();
    assert_eq!(out["decoded"]["value"], "hello");
    assert_eq!(out["message"]["value"], "aGVsbG8=");
    assert_eq!(humanize("not json"), "not json");
    let status = r#"{"id":"get","status":{"code":"OK","message":""}}"#;
    assert!(!humanize(status).contains("decoded"));
}
