//! Language-first commands for people: `stock-matrix <lang> server …` and
//! `stock-matrix <lang> client …`, and the shortcuts (`get`, `put`, …) that
//! use the Rust reference client. Client output stays the contract's JSON
//! lines, with byte values also shown decoded as text.
use crate::app::cli::Target;
use crate::app::exit::{self, Exit};
use crate::contract::script::{Connection, Step};
use crate::exec::builder;
use crate::exec::process;
use crate::input::config::Matrix;
use crate::model::tls::{KeyType, TlsMode};
use base64::Engine as _;
use clap::Parser as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
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

/// A person's client command line, before it becomes one script step:
/// options anywhere (`go client get mykey --server localhost:50051`).
#[derive(Debug, clap::Parser)]
#[command(name = "client", about = "Run one call with a language's client")]
struct PersonClient {
    #[arg(long, global = true, default_value = "localhost:50051")]
    server: String,
    #[arg(long, global = true, value_enum, default_value_t = TlsMode::None)]
    tls_mode: TlsMode,
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    #[arg(long, global = true)]
    cert_file: Option<PathBuf>,
    #[arg(long, global = true)]
    key_file: Option<PathBuf>,
    #[arg(long, global = true)]
    server_name: Option<String>,
    /// The call's deadline in ms.
    #[arg(long, global = true)]
    timeout_ms: Option<u64>,
    /// Request metadata K=V (repeatable; a `-bin` key takes base64).
    #[arg(long = "metadata", global = true, value_parser = parse_pair)]
    metadata: Vec<(String, String)>,
    #[arg(long, global = true, value_parser = ["gzip", "identity"])]
    compression: Option<String>,
    #[command(subcommand)]
    command: PersonCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum PersonCommand {
    /// Get KEY.
    Get { key: String },
    /// Put KEY VALUE (the value's UTF-8 bytes).
    Put { key: String, value: String },
    /// Monitor PATTERN, printing events as they arrive.
    Monitor {
        pattern: String,
        #[arg(long)]
        max_events: Option<i32>,
        #[arg(long)]
        include_existing: bool,
    },
    /// Batch of KEY=VALUE items (or BatchItem JSON lines on stdin).
    Batch { items: Vec<String> },
    /// Trade with TradeOrder JSON lines from stdin.
    Trade,
    /// Inventory.
    Inventory,
    /// Script steps (JSON lines) from stdin, as the runner sends them.
    Script,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected K=V, got {s:?}"))
}

impl PersonClient {
    fn connection(&self) -> Connection {
        Connection {
            server: self.server.clone(),
            tls_mode: self.tls_mode,
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            server_name: self.server_name.clone(),
            keepalive_ms: None,
            keepalive_timeout_ms: None,
        }
    }

    /// Does the command read its messages from stdin?
    fn reads_stdin(&self) -> bool {
        matches!(&self.command, PersonCommand::Trade)
            || matches!(&self.command, PersonCommand::Batch { items } if items.is_empty())
    }

    /// The script step the command stands for (`script` has none); `stdin`
    /// holds the JSON lines of `batch` without items and of `trade`.
    fn step(&self, stdin: &str) -> Result<Option<Step>, String> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let json_lines = || -> Result<Vec<Value>, String> {
            let lines = stdin.lines().filter(|l| !l.trim().is_empty());
            lines
                .map(|l| serde_json::from_str(l).map_err(|e| format!("invalid JSON line {l:?}: {e}")))
                .collect()
        };
        let (method, request, requests) = match &self.command {
            PersonCommand::Get { key } => ("Get", Some(json!({ "key": key })), None),
            PersonCommand::Put { key, value } => ("Put", Some(json!({ "key": key, "value": b64(value) })), None),
            PersonCommand::Monitor {
                pattern,
                max_events,
                include_existing,
            } => {
                let req = json!({ "pattern": pattern, "maxEvents": max_events.unwrap_or(0), "includeExisting": include_existing });
                ("Monitor", Some(req), None)
            }
            PersonCommand::Batch { items } if items.is_empty() => ("Batch", None, Some(json_lines()?)),
            PersonCommand::Batch { items } => {
                let reqs = items
                    .iter()
                    .map(|i| parse_pair(i).map(|(k, v)| json!({ "key": k, "value": b64(&v) })));
                ("Batch", None, Some(reqs.collect::<Result<_, _>>()?))
            }
            PersonCommand::Trade => ("Trade", None, Some(json_lines()?)),
            PersonCommand::Inventory => ("Inventory", None, None),
            PersonCommand::Script => return Ok(None),
        };
        Ok(Some(Step {
            id: method.to_lowercase(),
            method: method.into(),
            request,
            requests,
            metadata: self.metadata.iter().cloned().collect(),
            timeout_ms: self.timeout_ms,
            compression: self.compression.clone(),
            after_first: vec![],
            cancel_after_ms: None,
            cancel_after_messages: None,
            copies: None,
            read_pause_ms: None,
            lane: 0,
            fill: vec![],
            bench: None,
            rude: None,
            fallback_method: None,
            connection: None,
        }))
    }
}

/// Runs a contract client (`client_argv`: its program and fixed arguments)
/// for a person's command line: the options become the default connection,
/// the command one script step on the client's stdin.
async fn person_client(bin: &str, client_argv: Vec<String>, cwd: &Path, args: &[String]) -> Result<i32, Exit> {
    let person = match PersonClient::try_parse_from(std::iter::once(bin.to_string()).chain(args.iter().cloned())) {
        Ok(p) => p,
        Err(e) if !e.use_stderr() => {
            say!("{e}");
            return Ok(exit::OK);
        }
        Err(e) => {
            return Err(Exit(
                exit::USAGE,
                e.to_string().trim_start_matches("error: ").trim_end().to_string(),
            ))
        }
    };
    let mut stdin = String::new();
    if person.reads_stdin() {
        use std::io::Read;
        std::io::stdin()
            .read_to_string(&mut stdin)
            .map_err(|e| Exit(exit::RUNNER, format!("reading stdin: {e}")))?;
    }
    let step = person.step(&stdin).map_err(|e| Exit(exit::USAGE, e))?;
    let input = step.map(|s| serde_json::to_string(&s).expect("steps serialize") + "\n");
    let mut argv = client_argv;
    argv.extend(person.connection().options());
    argv.push("script".into());
    process::passthrough(&argv, cwd, input, humanize)
        .await
        .map_err(|e| Exit(exit::RUNNER, format!("failed to run the client: {e}")))
}

/// `stock-matrix <lang> server|client ARGS…`
pub async fn language(m: &Matrix, args: &[String]) -> Result<i32, Exit> {
    let (name, rest) = args.split_first().expect("clap gives at least the name");
    let lang = m
        .language(name)
        .map_err(|e| Exit(exit::USAGE, format!("unknown command or {e}")))?;
    let Some((side, rest)) = rest.split_first().filter(|(s, _)| *s == "server" || *s == "client") else {
        return Err(Exit(
            exit::USAGE,
            format!("usage: stock-matrix {name} server|client ARGS…"),
        ));
    };
    if *side == "client" && !lang.has_client() {
        return Err(Exit(
            exit::USAGE,
            format!("{name} serves only (a plugin server): it has no client; drive it with another language's client"),
        ));
    }
    let plugin = lang.is_plugin();
    if *side == "server" && plugin && !rest.is_empty() {
        return Err(Exit(
            exit::USAGE,
            format!("{name} is a plugin server: a host starts it bare, with its environment (matrix.toml server_env); it takes no arguments"),
        ));
    }
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
            return Err(Exit(exit::RED, b.status));
        }
    }
    let exe = std::env::current_exe().map_err(|e| Exit(exit::RUNNER, e.to_string()))?;
    let template = if side == "server" { &lang.server } else { &lang.client };
    let mut argv: Vec<String> = template
        .iter()
        .map(|a| a.replace("{stock-matrix}", &exe.to_string_lossy()))
        .collect();
    if side == "server" {
        argv.extend(auto_tls(m, rest)?);
        // A plugin prints its handshake line (where it serves) and serves plaintext.
        let env: Vec<(String, String)> = lang.server_env.clone().into_iter().collect();
        process::serve(&argv, &lang.folder, &env)
            .await
            .map_err(|e| Exit(exit::RUNNER, format!("failed to start {name} server: {e}")))
    } else {
        person_client(&format!("stock-matrix {name} client"), argv, &lang.folder, rest).await
    }
}

/// Replaces `--tls-mode auto` with throwaway certificates (server TLS).
fn auto_tls(m: &Matrix, args: &[String]) -> Result<Vec<String>, Exit> {
    let Some(i) = args.windows(2).position(|w| w[0] == "--tls-mode" && w[1] == "auto") else {
        return Ok(args.to_vec());
    };
    let dir = m.root.join("target/stock-matrix/auto-certs");
    let f = crate::exec::certs::generate(&dir, KeyType::EcP256).map_err(|e| Exit(exit::RUNNER, format!("{e:#}")))?;
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
    let exe = std::env::current_exe().map_err(|e| Exit(exit::RUNNER, e.to_string()))?;
    let argv = vec![exe.to_string_lossy().into_owned(), "reference".into(), "client".into()];
    let mut args = command.to_vec();
    args.extend(["--server".into(), target.server.clone()]);
    args.extend(absolute_paths(&target.client_flags));
    person_client("stock-matrix", argv, Path::new("."), &args).await
}

#[cfg(test)]
mod tests;
