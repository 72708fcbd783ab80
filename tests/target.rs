//! End-to-end test of `run --target`: the clients against a server started
//! by hand.
mod common;
use common::*;
use std::process::Command;

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
        // wrong-status fails every unary case that expects NOT_FOUND.
        let cell = "client=rust/server=hand-made/tls=mtls/set=unary/case=";
        let red_by_design = ["get-missing", "key-with-nul", "keys-are-exact"].map(|c| format!("{cell}{c}"));
        for id in &red_by_design {
            let t = find(&s, id);
            assert_eq!(t["outcome"], "failed", "{id}");
            assert!(
                reasons(t).contains("expected NOT_FOUND, got UNKNOWN"),
                "{id}: {}",
                reasons(t)
            );
        }
        let bad = find(&s, &red_by_design[0]);
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
            .filter(|t| t["outcome"] != "passed" && !red_by_design.iter().any(|id| t["id"] == id.as_str()))
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
        // A server with an expired or a chained certificate cannot be had
        // from a target, nor one that trusts the run's CA.
        let own = [
            "expired-server-cert",
            "server-chain-via-intermediate",
            "client-chain-via-intermediate",
            "ca-file-with-two-cas",
        ];
        assert!(tests_of(&s).iter().all(|t| !own.iter().any(|c| t["case"] == *c)));
        assert!(String::from_utf8_lossy(&out.stderr).contains("left out 4 test(s)"));
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
