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
exec 3<&0
case "{handshake}" in
  *unix*) "{bin}" reference server --unix "$sock" <&3 > /dev/null & ;;
  *) "{bin}" reference server --port "$port" <&3 > /dev/null & ;;
esac
i=0
until [ -S "$sock" ] || (exec 4<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 200 ] && exit 3; sleep 0.05
done
echo "{handshake}" | sed "s#SOCK#$sock#; s#PORT#$port#"
wait
"#,
        dir = dir.display(),
        bin = bin(),
    );
    std::fs::write(&script, text).unwrap();
    format!("bash {}", script.display())
}

fn run_plugin(dir: &Path, handshake: &str, env: &[&str], reports: &str) -> (std::process::Output, serde_json::Value) {
    let cmd = fake_plugin(dir, handshake);
    let mut args = vec![
        "run",
        "--target-plugin",
        &cmd,
        "--client",
        "rust",
        "--set",
        "kv-compat",
        "--no-blame",
    ];
    for e in env {
        args.extend(["--plugin-env", e]);
    }
    run(&args, &dir.join(reports))
}

#[test]
fn the_runner_follows_the_handshake_to_a_unix_socket_or_a_tcp_port() {
    for handshake in ["1|1|unix|SOCK|grpc|", "1|1|tcp|127.0.0.1:PORT|grpc|"] {
        let dir = tempfile::tempdir().unwrap();
        let (out, s) = run_plugin(dir.path(), handshake, &["BASIC_PLUGIN=hello"], "r");
        let tests = tests_of(&s);
        assert!(!tests.is_empty());
        assert!(
            out.status.success(),
            "{handshake}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            tests.iter().map(reasons).collect::<Vec<_>>().join("\n")
        );
        assert!(
            tests
                .iter()
                .all(|t| t["outcome"] == "passed" && t["cell"]["server"] == "plugin"),
            "{handshake}"
        );
    }
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
        // Automatic mTLS (a certificate in the handshake) is not driven yet: said so, not faked.
        (
            "1|1|unix|SOCK|grpc|MIIBCg",
            vec!["BASIC_PLUGIN=hello"],
            "automatic mTLS",
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
        .args(["run", "--target-plugin", "x", "--tls", "mtls", "--client", "rust"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plaintext"));
    let out = std::process::Command::new(bin())
        .args(["run", "--target-plugin", "x 'y", "--client", "rust"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a command line"));
}
