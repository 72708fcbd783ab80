//! `stock-matrix serve`: the chosen servers, started and health-checked as a
//! run starts them, with a fresh set of certificates, and for each the
//! command lines to paste (grpcurl, grpc-health-probe, the language's own
//! client). They stop together on Ctrl-C, SIGTERM or stdin closing.
use crate::app::exit::{self, runner as setup_err, Exit};
use crate::app::toolchain;
use crate::exec::certs::CertFiles;
use crate::exec::process::{self, Proc};
use crate::input::cases::ServerCert;
use crate::input::config::Matrix;
use crate::model::cell::CellKey;
use crate::model::tls::{KeyType, TlsMode};
use crate::runner::Runner;
use std::collections::BTreeMap;
use std::time::Duration;

/// Ready-to-paste command lines for a server at `addr` (a TCP address or
/// `unix:/PATH`), `lang`'s client among them.
pub fn command_lines(lang: &str, addr: &str, mode: TlsMode, c: &CertFiles) -> Vec<String> {
    let p = |p: &std::path::Path| p.display().to_string();
    // grpcurl names a Unix socket by its path, with -unix.
    let (unix, target) = match addr.strip_prefix("unix:") {
        Some(path) => (" -unix", path),
        None => ("", addr),
    };
    let (grpcurl, probe, client) = match mode {
        TlsMode::None => ("-plaintext".to_string(), String::new(), String::new()),
        TlsMode::Server => (
            format!("-cacert {}", p(&c.ca)),
            format!(" -tls -tls-ca-cert {}", p(&c.ca)),
            format!(" --tls-mode server --ca-file {}", p(&c.ca)),
        ),
        TlsMode::Mtls => (
            format!(
                "-cacert {} -cert {} -key {}",
                p(&c.ca),
                p(&c.client_cert),
                p(&c.client_key)
            ),
            format!(
                " -tls -tls-ca-cert {} -tls-client-cert {} -tls-client-key {}",
                p(&c.ca),
                p(&c.client_cert),
                p(&c.client_key)
            ),
            format!(
                " --tls-mode mtls --ca-file {} --cert-file {} --key-file {}",
                p(&c.ca),
                p(&c.client_cert),
                p(&c.client_key)
            ),
        ),
    };
    vec![
        format!("grpcurl {grpcurl}{unix} {target} list"),
        format!("grpcurl {grpcurl}{unix} -d '{{\"key\":\"mykey\"}}' {target} stock.v1.Stock/Get"),
        format!("grpc-health-probe -addr {addr}{probe}"),
        format!("stock-matrix {lang} client inventory --server {addr}{client}"),
    ]
}

pub async fn serve(m: Matrix, servers: &[String], modes: &[TlsMode], key_type: KeyType) -> Result<i32, Exit> {
    let langs = toolchain::pick_languages(&m, servers)?;
    let modes = if modes.is_empty() {
        vec![TlsMode::None]
    } else {
        modes.to_vec()
    };
    // Its own folder: two `serve`s at once must not overwrite each other's certificates.
    let dir = m
        .root
        .join("target/stock-matrix/serve")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    let certs = crate::exec::certs::generate(&dir.join("certs"), key_type)
        .map_err(|e| setup_err(format!("certificates: {e:#}")))?;
    toolchain::auto_setup(&m, &langs, &dir).await;
    let builds = super::build_all(&m, &langs, &dir, false, |s| note!("{s}")).await;
    let unavailable: BTreeMap<String, String> = builds
        .into_iter()
        .filter(|(_, b)| !b.ok)
        .map(|(l, b)| (l, b.status))
        .collect();
    let runner = Runner::standalone(m, key_type, certs.clone(), None).map_err(setup_err)?;
    let mut running: Vec<Proc> = Vec::new();
    let mut failed = 0;
    for name in &langs {
        if let Some(why) = unavailable.get(name) {
            failed += 1;
            note!("{name}: not started: {}", why.lines().next().unwrap_or_default());
            continue;
        }
        let lang = &runner.matrix.languages[name];
        let plugin = lang.is_plugin();
        // A plugin has no client of its own (the reference's is offered), and
        // serves TCP where it can, for the tools that cannot reach a Unix socket.
        let client = if lang.has_client() { name.as_str() } else { "rust" };
        let net = lang.transports.keys().copied().max();
        for &tls in &modes {
            if plugin && tls != TlsMode::None {
                say!("{name} (tls={tls}): skipped: a plugin server serves plaintext here (its automatic mTLS: `run --server {name} --tls mtls`)");
                continue;
            }
            let key = CellKey {
                client: client.to_string(),
                server: name.clone(),
                tls,
                key_type,
                net,
            };
            match runner.start_server(&key, ServerCert::Normal).await {
                Ok((proc, addr, ready_ms, note)) => {
                    say!("{name} (tls={tls}) on {addr}, ready in {ready_ms:.0} ms");
                    if let Some(n) = note {
                        say!("  note: {n}");
                    }
                    for line in command_lines(client, &addr, tls, &certs) {
                        say!("  {line}");
                    }
                    running.push(proc);
                }
                Err((why, stderr)) => {
                    failed += 1;
                    note!("{name} (tls={tls}): not started: {why}\n{stderr}");
                }
            }
        }
    }
    say!(
        "{} server(s) running; certificates in {}; Ctrl-C (or closing stdin) stops them all",
        running.len(),
        dir.join("certs").display()
    );
    if !running.is_empty() {
        process::stop_signal().await;
    }
    for p in &mut running {
        p.stop(Duration::from_secs(2)).await;
    }
    // The certificates are of no use once their servers are gone.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(if failed == 0 { exit::OK } else { exit::RED })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn certs() -> CertFiles {
        CertFiles::in_dir(Path::new("/c"))
    }

    #[test]
    fn command_lines_carry_the_tls_flags_of_each_tool() {
        let none = command_lines("go", "127.0.0.1:1", TlsMode::None, &certs());
        assert_eq!(none[0], "grpcurl -plaintext 127.0.0.1:1 list");
        assert_eq!(none[2], "grpc-health-probe -addr 127.0.0.1:1");
        assert_eq!(none[3], "stock-matrix go client inventory --server 127.0.0.1:1");
        let mtls = command_lines("go", "127.0.0.1:1", TlsMode::Mtls, &certs());
        assert_eq!(
            mtls[0],
            "grpcurl -cacert /c/ca.pem -cert /c/client.pem -key /c/client.key 127.0.0.1:1 list"
        );
        assert_eq!(
            mtls[2],
            "grpc-health-probe -addr 127.0.0.1:1 -tls -tls-ca-cert /c/ca.pem -tls-client-cert /c/client.pem -tls-client-key /c/client.key"
        );
        assert!(
            mtls[3].ends_with("--tls-mode mtls --ca-file /c/ca.pem --cert-file /c/client.pem --key-file /c/client.key")
        );
        let server = command_lines("go", "127.0.0.1:1", TlsMode::Server, &certs());
        assert_eq!(
            server[1],
            "grpcurl -cacert /c/ca.pem -d '{\"key\":\"mykey\"}' 127.0.0.1:1 stock.v1.Stock/Get"
        );
    }
}
