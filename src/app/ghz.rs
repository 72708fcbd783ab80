//! ghz beside the clients (`stock-matrix bench`): installed from the Go
//! module proxy when missing, run against each server with the clients' load
//! on the load CPU, its JSON report read back (`bench::ghz`).
use crate::bench::ghz::{ghz_counts, ghz_result};
use crate::bench::{Anchor, Op, Settings};
use crate::contract::script::Connection;
use crate::exec::process;
use crate::input::config::Matrix;
use crate::model::tls::TlsMode;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// ghz, from the Go module proxy into target/tools/.
pub const GHZ: &str = "github.com/bojand/ghz/cmd/ghz@v0.120.0";

/// ghz, installed into target/tools/ when missing; or why there is none.
pub async fn install(m: &Matrix, log: &Path) -> Result<PathBuf, String> {
    let tools = m.root.join("target/tools");
    let exe = tools.join("ghz");
    if exe.is_file() {
        return Ok(exe);
    }
    note!("installing ghz ({GHZ}) into {}", tools.display());
    let argv = vec![
        "env".to_string(),
        format!("GOBIN={}", tools.display()),
        "go".into(),
        "install".into(),
        GHZ.into(),
    ];
    match process::run_logged(&argv, &m.root, log, Duration::from_secs(600)).await {
        Ok(s) if s.success() && exe.is_file() => Ok(exe),
        Ok(s) => Err(format!("`go install {GHZ}` failed ({s}); see {}", log.display())),
        Err(e) => Err(format!("`go install {GHZ}`: {e}")),
    }
}

/// ghz against the server: Get and Put, the same load as the clients.
pub async fn anchor(
    ghz: &Path,
    root: &Path,
    server: &str,
    conn: &Connection,
    s: &Settings,
    cpu: Option<usize>,
    dir: &Path,
) -> Anchor {
    use base64::Engine as _;
    let mut a = Anchor {
        server: server.into(),
        tool: format!("ghz ({GHZ})"),
        ops: BTreeMap::new(),
        error: None,
    };
    let work = dir.join("ghz").join(server);
    if let Err(e) = std::fs::create_dir_all(&work) {
        a.error = Some(format!("{}: {e}", work.display()));
        return a;
    }
    let value = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; s.payload]);
    let data = |key: &str, with_value: bool| match with_value {
        true => serde_json::json!({"key": key, "value": value}),
        false => serde_json::json!({"key": key}),
    };
    let mut base = vec![
        ghz.to_string_lossy().into_owned(),
        "--proto".into(),
        root.join("proto/stock.proto").to_string_lossy().into_owned(),
        "--import-paths".into(),
        root.join("proto").to_string_lossy().into_owned(),
        "--connections".into(),
        "1".into(),
        "-t".into(),
        format!("{}ms", s.call_timeout_ms),
        "-O".into(),
        "json".into(),
    ];
    if cpu.is_some() {
        base.extend(["--cpus".into(), "1".into()]);
    }
    match conn.tls_mode {
        TlsMode::None => base.push("--insecure".into()),
        mode => {
            if let Some(ca) = &conn.ca_file {
                base.extend(["--cacert".into(), ca.to_string_lossy().into_owned()]);
            }
            if mode == TlsMode::Mtls {
                for (flag, f) in [("--cert", &conn.cert_file), ("--key", &conn.key_file)] {
                    if let Some(f) = f {
                        base.extend([flag.into(), f.to_string_lossy().into_owned()]);
                    }
                }
            }
            base.extend([
                "--cname".into(),
                conn.server_name.clone().unwrap_or_else(|| "localhost".into()),
            ]);
        }
    }
    base.push(conn.server.clone());
    let run = |name: String, call: &str, data: serde_json::Value, load: Vec<String>| {
        let mut argv = base.clone();
        let data_file = work.join(format!("{name}.data.json"));
        let out = work.join(format!("{name}.json"));
        argv.pop();
        argv.extend(["--call".into(), format!("stock.v1.Stock/{call}")]);
        argv.extend(["-D".into(), data_file.to_string_lossy().into_owned()]);
        argv.extend(["-o".into(), out.to_string_lossy().into_owned()]);
        argv.extend(load);
        argv.push(conn.server.clone());
        let log = work.join(format!("{name}.log"));
        let limit = Duration::from_millis(s.duration_ms.max(s.warmup_ms) + s.call_timeout_ms + 30_000);
        async move {
            std::fs::write(&data_file, data.to_string()).map_err(|e| format!("{}: {e}", data_file.display()))?;
            match process::run_logged_on(&argv, root, &log, limit, cpu).await {
                Ok(st) if st.success() => {}
                Ok(st) => return Err(format!("ghz exited {st}: {}", tail(&log))),
                Err(e) => return Err(format!("ghz: {e}")),
            }
            let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            // It lists every call (megabytes): keep only what it adds up to.
            let _ = std::fs::remove_file(&out);
            ghz_counts(&text)
        }
    };
    let load = |ms: u64| vec!["-c".into(), s.concurrency.to_string(), "-z".into(), format!("{ms}ms")];
    // The key Get reads.
    let once = vec!["-c".into(), "1".into(), "-n".into(), "1".into()];
    if let Err(e) = run("setup".into(), "Put", data("bench/ghz/get", true), once).await {
        a.error = Some(format!("set-up Put: {e}"));
        return a;
    }
    for &op in s.ops.iter().filter(|o| o.unary()) {
        let (call, d) = match op {
            Op::Get => ("Get", data("bench/ghz/get", false)),
            _ => ("Put", data("bench/ghz/put", true)),
        };
        if let Err(e) = run(format!("warmup-{}", op.name()), call, d.clone(), load(s.warmup_ms)).await {
            a.error = Some(format!("{}: {e}", op.name()));
            continue;
        }
        let mut runs = Vec::new();
        for r in 1..=s.repeat {
            match run(format!("{}-{r}", op.name()), call, d.clone(), load(s.duration_ms)).await {
                Ok(c) => runs.push(c),
                Err(e) => {
                    a.error = Some(format!("{}: {e}", op.name()));
                    break;
                }
            }
        }
        if !runs.is_empty() {
            a.ops.insert(op, ghz_result(op, &runs));
        }
    }
    a
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" ⏎ ")
}
