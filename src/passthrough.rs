//! Language-first commands for people: `stock-matrix <lang> server …` and
//! `stock-matrix <lang> client …`, and the shortcuts (`get`, `put`, …) that
//! use the Rust reference client. Client output stays the contract's JSON
//! lines, with byte values also shown decoded as text.
use crate::app::Exit;
use crate::builder;
use crate::cli::{self, Target};
use crate::config::Matrix;
use crate::process;
use crate::tls::{self, KeyType};
use base64::Engine as _;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Adds `"decoded": {"value": "text"}` to a message line whose bytes are UTF-8 text.
pub fn humanize(line: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(line) else {
        return line.to_string();
    };
    let decoded: serde_json::Map<String, Value> = v
        .get("message")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() == "value")
                .filter_map(|(k, val)| {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(val.as_str()?).ok()?;
                    Some((k.clone(), Value::String(String::from_utf8(bytes).ok()?)))
                })
                .collect()
        })
        .unwrap_or_default();
    if !decoded.is_empty() {
        v["decoded"] = Value::Object(decoded);
    }
    v.to_string()
}

/// Makes the values of path flags absolute: the program runs in its own folder.
fn absolute_paths(args: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(args.len());
    const PATH_FLAGS: [&str; 3] = ["--ca-file", "--cert-file", "--key-file"];
    let absolute = |p: &str| std::path::absolute(p).map_or_else(|_| p.to_string(), |abs| abs.display().to_string());
    for a in args {
        let after_path_flag = out.last().is_some_and(|prev| PATH_FLAGS.contains(&prev.as_str()));
        match a.split_once('=') {
            _ if after_path_flag => out.push(absolute(a)),
            Some((flag, path)) if PATH_FLAGS.contains(&flag) => out.push(format!("{flag}={}", absolute(path))),
            _ => out.push(a.clone()),
        }
    }
    out
}

/// The contract client's options that take a value and belong before the
/// command (`client --server A get k`).
const CLIENT_OPTIONS: [&str; 9] = [
    "--server",
    "--tls-mode",
    "--ca-file",
    "--cert-file",
    "--key-file",
    "--server-name",
    "--timeout-ms",
    "--metadata",
    "--compression",
];

/// Moves the contract's client options in front of the command, so a person
/// can write them anywhere (`go client get mykey --server localhost:50051`)
/// while every implementation's parser sees the contract's order. The
/// command's own flags (`--max-events`) stay where they are; nothing after
/// `--` is touched.
fn options_first(args: &[String]) -> Vec<String> {
    let (mut options, mut rest) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            rest.push(a.clone());
            rest.extend(it.by_ref().cloned());
            break;
        }
        let (name, value) = a.split_once('=').map_or((a.as_str(), None), |(n, v)| (n, Some(v)));
        if CLIENT_OPTIONS.contains(&name) {
            // `--flag=value` becomes two words: not every stack's parser takes it.
            options.push(name.to_string());
            options.extend(value.map(str::to_string).or_else(|| it.next().cloned()));
        } else {
            rest.push(a.clone());
        }
    }
    options.extend(rest);
    options
}

/// `stock-matrix <lang> server|client ARGS…`
pub async fn language(m: &Matrix, args: &[String]) -> Result<i32, Exit> {
    let (name, rest) = args.split_first().expect("clap gives at least the name");
    let lang = m.language(name).map_err(|e| Exit(cli::EXIT_USAGE, format!("unknown command or {e}")))?;
    let Some((side, rest)) = rest.split_first().filter(|(s, _)| *s == "server" || *s == "client") else {
        return Err(Exit(cli::EXIT_USAGE, format!("usage: stock-matrix {name} server|client ARGS…")));
    };
    let rest = &absolute_paths(rest);
    let proto = m.root.join("proto");
    if !builder::up_to_date(lang, &proto) && !lang.build.is_empty() {
        note!("building {name} …");
        let b = builder::ensure_built(
            name,
            lang,
            &proto,
            &builder::default_log(&m.root, name),
            Duration::from_millis(m.run.build_timeout_ms),
            false,
        )
        .await;
        if !b.ok {
            return Err(Exit(cli::EXIT_FAILED, b.status));
        }
    }
    let exe = std::env::current_exe().map_err(|e| Exit(cli::EXIT_SETUP, e.to_string()))?;
    let template = if side == "server" { &lang.server } else { &lang.client };
    let mut argv: Vec<String> = template.iter().map(|a| a.replace("{stock-matrix}", &exe.to_string_lossy())).collect();
    if side == "server" {
        argv.extend(auto_tls(m, rest)?);
        process::serve(&argv, &lang.folder)
            .await
            .map_err(|e| Exit(cli::EXIT_SETUP, format!("failed to start {name} server: {e}")))
    } else {
        argv.extend(options_first(rest));
        process::passthrough(&argv, &lang.folder, humanize)
            .await
            .map_err(|e| Exit(cli::EXIT_SETUP, format!("failed to run {name} client: {e}")))
    }
}

/// Replaces `--tls-mode auto` with throwaway certificates (server TLS).
fn auto_tls(m: &Matrix, args: &[String]) -> Result<Vec<String>, Exit> {
    let Some(i) = args.windows(2).position(|w| w[0] == "--tls-mode" && w[1] == "auto") else {
        return Ok(args.to_vec());
    };
    let dir = m.root.join("target/stock-matrix/auto-certs");
    let f = tls::generate(&dir, KeyType::EcP256).map_err(|e| Exit(cli::EXIT_SETUP, format!("{e:#}")))?;
    note!(
        "--tls-mode auto: certificates in {}; connect with --tls-mode server --ca-file {}",
        dir.display(),
        f.ca.display()
    );
    let mut out = args[..i].to_vec();
    out.extend([
        "--tls-mode".into(),
        "server".into(),
        "--cert-file".into(),
        f.server_cert.display().to_string(),
        "--key-file".into(),
        f.server_key.display().to_string(),
    ]);
    out.extend(args[i + 2..].iter().cloned());
    Ok(out)
}

/// `stock-matrix get|put|monitor|inventory …` with the reference client.
pub async fn shortcut(_matrix: &Path, target: &Target, command: &[String]) -> Result<i32, Exit> {
    let exe = std::env::current_exe().map_err(|e| Exit(cli::EXIT_SETUP, e.to_string()))?;
    let mut argv = vec![
        exe.to_string_lossy().into_owned(),
        "reference".into(),
        "client".into(),
        "--server".into(),
        target.server.clone(),
    ];
    argv.extend(target.client_flags.iter().cloned());
    argv.extend(command.iter().cloned());
    process::passthrough(&argv, Path::new("."), humanize)
        .await
        .map_err(|e| Exit(cli::EXIT_SETUP, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn client_options_move_before_the_command() {
        assert_eq!(
            options_first(&strings(&["get", "mykey", "--server", "localhost:50051"])),
            strings(&["--server", "localhost:50051", "get", "mykey"])
        );
        assert_eq!(
            options_first(&strings(&[
                "--tls-mode",
                "server",
                "monitor",
                "k*",
                "--max-events",
                "2",
                "--ca-file=ca.pem",
                "--metadata",
                "a=b"
            ])),
            strings(&[
                "--tls-mode",
                "server",
                "--ca-file",
                "ca.pem",
                "--metadata",
                "a=b",
                "monitor",
                "k*",
                "--max-events",
                "2"
            ])
        );
        assert_eq!(
            options_first(&strings(&["put", "k", "--", "--server", "v"])),
            strings(&["put", "k", "--", "--server", "v"]),
            "after -- everything is an argument"
        );
    }

    #[test]
    fn path_flags_become_absolute() {
        let out = absolute_paths(&strings(&["--ca-file", "certs/ca.pem", "get", "certs/x", "--key-file=k.pem"]));
        assert!(out[1].starts_with('/') && out[1].ends_with("certs/ca.pem"), "{out:?}");
        assert_eq!(out[3], "certs/x");
        assert!(out[4].starts_with("--key-file=/") && out[4].ends_with("/k.pem"), "{out:?}");
    }

    #[test]
    fn text_values_are_shown_decoded_and_raw_kept() {
        let out: Value = serde_json::from_str(&humanize(r#"{"id":"get","message":{"value":"aGVsbG8=","version":"1"}}"#)).unwrap();
        assert_eq!(out["decoded"]["value"], "hello");
        assert_eq!(out["message"]["value"], "aGVsbG8=");
        assert_eq!(humanize("not json"), "not json");
        let status = r#"{"id":"get","status":{"code":"OK","message":""}}"#;
        assert!(!humanize(status).contains("decoded"));
    }
}
