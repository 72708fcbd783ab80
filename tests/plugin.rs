//! `run --target-plugin`: the runner starts a plugin server the way a
//! go-plugin host does (environment, then the handshake line on stdout) and
//! follows the handshake to a Unix socket or a TCP port; a handshake it
//! cannot follow is an ERROR that quotes what the plugin printed.
mod common;
use common::{bin, matrix_with, reasons, run, tests_of};
use std::path::Path;

/// A fake plugin: checks its magic cookie like go-plugin does, starts the
/// reference server where it chose, and prints `handshake` (with SOCK and
/// PORT filled in) once that server listens.
fn fake_plugin(dir: &Path, handshake: &str) -> String {
    fake_plugin_named(dir, "plugin.sh", handshake)
}

fn fake_plugin_named(dir: &Path, name: &str, handshake: &str) -> String {
    let script = dir.join(name);
    let text = format!(
        r#"#!/bin/sh
if [ "$BASIC_PLUGIN" != hello ]; then
  echo "This binary is a plugin. These are not meant to be executed directly." >&2
  exit 1
fi
sock="{dir}/p-$$.sock"
out="{dir}/out-$$"
tls="" cert=""
if [ -n "$PLUGIN_CLIENT_CERT" ]; then
  # Automatic mTLS: trust the host's certificate, serve with one of our own.
  own="{dir}/own-$$"
  printf '%s\n' "$PLUGIN_CLIENT_CERT" > "{dir}/host-$$.pem"
  "{bin}" certs --out "$own" > /dev/null
  tls="--tls-mode mtls --cert-file $own/server.pem --key-file $own/server.key --ca-file {dir}/host-$$.pem"
  cert=$(sed '1d;$d' "$own/ca.pem" | tr -d '\n=')
fi
exec 3<&0
case "{handshake}" in
  *unix*) "{bin}" reference server --unix "$sock" $tls <&3 > "$out" & ;;
  *) "{bin}" reference server --port 0 $tls <&3 > "$out" & ;;
esac
# The server's own port (a port picked here could be another process's).
i=0
until grep -q '^listening on' "$out" 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 200 ] && exit 3; sleep 0.05
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
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

#[test]
fn a_plugin_language_of_the_matrix_gets_a_cell_per_transport_and_must_serve_the_one_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fake_plugin_named(d, "unix.sh", "1|1|unix|SOCK|grpc|CERT");
    fake_plugin_named(d, "tcp.sh", "1|1|tcp|127.0.0.1:PORT|grpc|CERT");
    // Serves where NET asks, as pyvider does with PLUGIN_SERVER_TRANSPORTS.
    std::fs::write(d.join("any.sh"), "exec bash \"$(dirname \"$0\")/$NET.sh\"\n").unwrap();
    let lang = |name: &str, script: &str| {
        format!(
            "[languages.{name}]\nfolder = \"{}\"\nstack = \"a fake plugin\"\nserver = [\"bash\", \"{}\"]\nready = \"go-plugin\"\nserver_env = {{ BASIC_PLUGIN = \"hello\" }}\ntransports = {{ unix = {{ NET = \"unix\" }}, tcp = {{ NET = \"tcp\" }} }}\n",
            d.display(),
            d.join(script).display()
        )
    };
    // `liar` announces a Unix socket whatever it is asked for.
    let extra = format!("{}{}", lang("fake", "any.sh"), lang("liar", "unix.sh"));
    let matrix = matrix_with(d, &extra, "");
    let m = matrix.to_str().unwrap();
    let args = [
        "--matrix",
        m,
        "run",
        "--client",
        "*",
        "--server",
        "fake,liar",
        "--set",
        "kv-only",
        "--no-blame",
    ];
    let (out, s) = run(&args, &d.join("r"));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let mut cells: Vec<String> = tests_of(&s)
        .iter()
        .map(|t| {
            let c = &t["cell"];
            format!("{}/{}/{}/{}", c["client"], c["server"], c["tls"], c["net"]).replace('"', "")
        })
        .collect();
    cells.dedup();
    // Only the rust client (the plugins have none), no tls=server, both transports.
    assert_eq!(
        cells,
        [
            "rust/fake/none/unix",
            "rust/fake/none/tcp",
            "rust/fake/mtls/unix",
            "rust/fake/mtls/tcp",
            "rust/liar/none/unix",
            "rust/liar/none/tcp",
            "rust/liar/mtls/unix",
            "rust/liar/mtls/tcp",
        ]
    );
    for t in tests_of(&s) {
        let liar_on_tcp = t["cell"]["server"] == "liar" && t["cell"]["net"] == "tcp";
        if liar_on_tcp {
            assert_eq!(t["outcome"], "error", "{t}");
            assert!(
                reasons(t).contains("asked for transport tcp but its handshake announces unix"),
                "{t}"
            );
            assert!(t["reproduce"].as_str().unwrap().contains("--server liar --tls "), "{t}");
            assert!(t["reproduce"].as_str().unwrap().contains(" --transport tcp"), "{t}");
        } else {
            assert_eq!(t["outcome"], "passed", "{}: {}", t["id"], reasons(t));
        }
    }
    // --transport narrows to one; a plugin has no client.
    let one = [
        "--matrix",
        m,
        "run",
        "--client",
        "rust",
        "--server",
        "fake",
        "--set",
        "kv-only",
        "--transport",
        "tcp",
    ];
    let (_, s) = run(&one, &d.join("r2"));
    assert!(!tests_of(&s).is_empty());
    for t in tests_of(&s) {
        assert_eq!(t["cell"]["net"], "tcp", "{t}");
        assert_eq!(t["outcome"], "passed", "{}: {}", t["id"], reasons(t));
    }
    let out = std::process::Command::new(bin())
        .args(["--matrix", m, "run", "--client", "fake", "--server", "rust"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`fake` serves only"));
}
