//! `run --target-plugin`: the runner starts a plugin server the way a
//! go-plugin host does (environment, then the handshake line on stdout) and
//! follows the handshake to a Unix socket or a TCP port; a handshake it
//! cannot follow is an ERROR that quotes what the plugin printed.
mod common;
use common::{bin, reasons, run, tests_of};
use std::path::Path;

/// A fake plugin: checks its magic cookie like go-plugin does, starts the
/// reference server where it chose, and prints `handshake` (with SOCK and
/// PORT filled in) once that server listens.
fn fake_plugin(dir: &Path, handshake: &str) -> String {
    let script = dir.join("plugin.sh");
    let text = format!(
        r#"#!/bin/sh
if [ "$BASIC_PLUGIN" != hello ]; then
  echo "This binary is a plugin. These are not meant to be executed directly." >&2
  exit 1
fi
sock="{dir}/p-$$.sock"
port=$(( 20000 + $$ % 20000 ))
tls=""
if [ -n "$PLUGIN_CLIENT_CERT" ]; then
  # Automatic mTLS: trust the host's certificate, serve with one of our own.
  printf '%s\n' "$PLUGIN_CLIENT_CERT" > "{dir}/host.pem"
  "{bin}" certs --out "{dir}/own" > /dev/null
  tls="--tls-mode mtls --cert-file {dir}/own/server.pem --key-file {dir}/own/server.key --ca-file {dir}/host.pem"
fi
cert=$( [ -f "{dir}/own/ca.pem" ] && sed '1d;$d' "{dir}/own/ca.pem" | tr -d '\n=' )
exec 3<&0
case "{handshake}" in
  *unix*) "{bin}" reference server --unix "$sock" $tls <&3 > /dev/null & ;;
  *) "{bin}" reference server --port "$port" $tls <&3 > /dev/null & ;;
esac
i=0
until [ -S "$sock" ] || (exec 4<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 200 ] && exit 3; sleep 0.05
done
echo "{handshake}" | sed "s#SOCK#$sock#; s#PORT#$port#; s#CERT#$cert#"
wait
"#,
        dir = dir.display(),
        bin = bin(),
    );
    std::fs::write(&script, text).unwrap();
    format!("bash {}", script.display())
}

type Ran = (std::process::Output, serde_json::Value);

fn run_plugin(dir: &Path, handshake: &str, env: &[&str], reports: &str) -> Ran {
    run_plugin_tls(dir, handshake, env, reports, "none")
}

/// `run --target-plugin` with the fake plugin, the rust client, kv-compat, in `tls`.
fn run_plugin_tls(dir: &Path, handshake: &str, env: &[&str], reports: &str, tls: &str) -> Ran {
    let cmd = fake_plugin(dir, handshake);
    let mut args = vec!["run", "--target-plugin", &cmd, "--client", "rust", "--set", "kv-compat"];
    args.extend(["--tls", tls, "--no-blame"]);
    for e in env {
        args.extend(["--plugin-env", e]);
    }
    run(&args, &dir.join(reports))
}

/// Runs kv-compat against the fake plugin; every test must pass, on the plugin, in `tls`.
fn passes(handshake: &str, tls: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (out, s) = run_plugin_tls(dir.path(), handshake, &["BASIC_PLUGIN=hello"], "r", tls);
    let tests = tests_of(&s);
    assert!(!tests.is_empty());
    let why: Vec<String> = tests.iter().map(reasons).collect();
    assert!(
        out.status.success(),
        "{handshake}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        why.join("\n")
    );
    let on_the_plugin = |t: &serde_json::Value| t["cell"]["server"] == "plugin" && t["cell"]["tls"] == tls;
    assert!(
        tests.iter().all(|t| t["outcome"] == "passed" && on_the_plugin(t)),
        "{handshake}"
    );
}

#[test]
fn the_runner_follows_the_handshake_to_a_unix_socket_or_a_tcp_port() {
    passes("1|1|unix|SOCK|grpc|", "none");
    passes("1|1|tcp|127.0.0.1:PORT|grpc|", "none");
}

#[test]
fn in_automatic_mtls_the_clients_trust_exactly_the_certificate_of_the_handshake() {
    passes("1|1|unix|SOCK|grpc|CERT", "mtls");
    passes("1|1|tcp|127.0.0.1:PORT|grpc|CERT", "mtls");
    // Given PLUGIN_CLIENT_CERT, a plugin whose handshake has no certificate cannot be trusted.
    let dir = tempfile::tempdir().unwrap();
    let (out, s) = run_plugin_tls(dir.path(), "1|1|unix|SOCK|grpc|", &["BASIC_PLUGIN=hello"], "r", "mtls");
    assert_eq!(out.status.code(), Some(1));
    assert!(tests_of(&s)
        .iter()
        .all(|t| t["outcome"] == "error" && reasons(t).contains("carries no certificate")));
}

#[test]
fn a_plugin_that_cannot_be_followed_is_an_error_quoting_what_it_printed() {
    let cases = [
        // A line that is not go-plugin's.
        (
            "listening on SOCK unix",
            vec!["BASIC_PLUGIN=hello"],
            "malformed handshake",
        ),
        ("2|1|unix|SOCK|grpc|", vec!["BASIC_PLUGIN=hello"], "core version 2"),
        // TLS the host did not ask for (no PLUGIN_CLIENT_CERT): said so, not guessed.
        (
            "1|1|unix|SOCK|grpc|MIIBCg",
            vec!["BASIC_PLUGIN=hello"],
            "given no PLUGIN_CLIENT_CERT",
        ),
        // No magic cookie: the plugin refuses to run, and its stderr says why.
        (
            "1|1|unix|SOCK|grpc|",
            vec![],
            "These are not meant to be executed directly",
        ),
    ];
    for (i, (handshake, env, says)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let (out, s) = run_plugin(dir.path(), handshake, &env, &format!("r{i}"));
        assert_eq!(out.status.code(), Some(1), "{handshake}");
        let tests = tests_of(&s);
        assert!(!tests.is_empty());
        for t in tests {
            assert_eq!(t["outcome"], "error", "{handshake}: {t}");
            let why = format!("{}\n{}", reasons(t), t["server_stderr"].as_str().unwrap_or_default());
            assert!(why.contains(says), "{handshake}: {why}");
            // One command reproduces it, the plugin and its environment included.
            let repro = t["reproduce"].as_str().unwrap();
            assert!(
                repro.contains("--target-plugin 'bash ") && repro.contains("--server plugin"),
                "{repro}"
            );
            assert_eq!(
                repro.contains("--plugin-env 'BASIC_PLUGIN=hello'"),
                !env.is_empty(),
                "{repro}"
            );
        }
    }
}

#[test]
fn target_plugin_refuses_what_it_cannot_do() {
    let out = std::process::Command::new(bin())
        .args(["run", "--target-plugin", "x", "--tls", "server", "--client", "rust"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not --tls server"));
    let out = std::process::Command::new(bin())
        .args(["run", "--target-plugin", "x 'y", "--client", "rust"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a command line"));
}
