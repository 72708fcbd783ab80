//! `run --target HOST:PORT`: checks the command line and shapes the plan for
//! a server someone started by hand (pure; the runner drives it).
use crate::app::cli::{ExternalTarget, Filters};
use crate::input::cases::{Connect, ServerCert};
use crate::input::config::{Language, Ready};
use crate::model::tls::{KeyType, TlsMode};
use crate::plan::{Cell, Selection};
use crate::runner::ExternalServer;
use std::path::PathBuf;

/// `run --target-plugin CMD`: the plugin as a language of its own (started
/// by the runner, ready by its go-plugin handshake, nothing to build), its
/// label, and the filters narrowed to it (plaintext, or automatic mTLS with `--tls mtls`).
pub fn plugin_language(
    t: &ExternalTarget,
    f: &mut Filters,
    cwd: &std::path::Path,
) -> Result<Option<(String, Language)>, String> {
    let Some(cmd) = &t.target_plugin else { return Ok(None) };
    let argv = shlex::split(cmd)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| format!("--target-plugin {cmd:?}: not a command line (unbalanced quotes?)"))?;
    let mut env = std::collections::BTreeMap::new();
    for kv in &t.plugin_env {
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("--plugin-env {kv:?}: expected KEY=VALUE"))?;
        env.insert(k.to_string(), v.to_string());
    }
    let label = match f.servers.as_slice() {
        [] => "plugin".to_string(),
        [one] => one.clone(),
        _ => return Err("--target-plugin: pass at most one --server NAME (its label in test ids)".into()),
    };
    let tls = match f.tls.as_slice() {
        [] => vec![TlsMode::None],
        modes if modes.contains(&TlsMode::Server) => {
            return Err(
                "--target-plugin: a go-plugin server serves plaintext (--tls none) or automatic mTLS (--tls mtls), not --tls server"
                    .into(),
            )
        }
        modes => modes.to_vec(),
    };
    f.servers = vec![label.clone()];
    f.tls = tls;
    Ok(Some((
        label,
        Language {
            folder: cwd.to_path_buf(),
            stack: format!("plugin: {cmd}"),
            requires: vec![],
            install: String::new(),
            setup: vec![],
            build: vec![],
            outputs: vec![],
            server: argv,
            client: vec![],
            ready: Ready::GoPlugin,
            server_env: env,
            transports: Default::default(),
            uses: vec![],
            used: vec![],
        },
    )))
}

/// The `--target-plugin` and `--plugin-env` flags of a reproduce command
/// (empty without a plugin).
pub fn plugin_flags(t: &ExternalTarget) -> String {
    let Some(cmd) = &t.target_plugin else {
        return String::new();
    };
    let quote = |s: &str| {
        shlex::try_quote(s)
            .map(|q| q.into_owned())
            .unwrap_or_else(|_| s.to_string())
    };
    let mut out = format!(" --target-plugin {}", quote(cmd));
    for e in &t.plugin_env {
        out.push_str(&format!(" --plugin-env {}", quote(e)));
    }
    out
}

/// Checks `--target` and its companions against the filters and narrows the
/// selection to the one server and TLS mode it has. `sel` must have been made
/// from the filters without `--server` (the label need not be a language of
/// the matrix).
pub fn apply(t: &ExternalTarget, f: &Filters, sel: &mut Selection) -> Result<Option<ExternalServer>, String> {
    let Some(addr) = &t.target else { return Ok(None) };
    let valid = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid {
        return Err(format!("--target {addr:?}: expected HOST:PORT, e.g. localhost:50051"));
    }
    let label = match f.servers.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(
                "--target needs exactly one --server NAME: the target's language (or any label), used in test ids"
                    .into(),
            )
        }
    };
    let mode = match f.tls.as_slice() {
        [] => TlsMode::None,
        [one] => *one,
        _ => return Err("--target: the server serves one TLS mode; pass exactly one --tls none|server|mtls".into()),
    };
    let file = |p: &Option<PathBuf>, flag: &str| -> Result<Option<PathBuf>, String> {
        match p {
            None => Ok(None),
            Some(p) if !p.is_file() => Err(format!("{flag} {}: no such file", p.display())),
            Some(p) => std::path::absolute(p)
                .map(Some)
                .map_err(|e| format!("{flag} {}: {e}", p.display())),
        }
    };
    let ca = file(&t.target_ca, "--target-ca")?;
    let cert = file(&t.target_cert, "--target-cert")?;
    let key = file(&t.target_key, "--target-key")?;
    if mode != TlsMode::None && ca.is_none() {
        return Err(format!(
            "--tls {mode} with --target needs --target-ca FILE (the CA that signed the target's certificate)"
        ));
    }
    if mode == TlsMode::Mtls && (cert.is_none() || key.is_none()) {
        return Err("--tls mtls with --target needs --target-cert FILE and --target-key FILE (a client certificate the target accepts)".into());
    }
    sel.servers = vec![label.clone()];
    sel.tls = vec![mode];
    sel.key_types = vec![KeyType::default()];
    sel.pivot = None;
    Ok(Some(ExternalServer {
        label,
        addr: addr.clone(),
        ca,
        cert,
        key,
        server_name: t.target_name.clone(),
    }))
}

/// Drops the tests that need a server the runner starts itself (one with an
/// expired or a chained certificate, or one it stops: a lifecycle case), or
/// one that trusts the run's CA (a chained client certificate, a CA bundle
/// made of the run's CAs); returns their ids.
pub fn drop_unreachable(cells: &mut Vec<Cell>, label: &str) -> Vec<String> {
    let mut dropped = Vec::new();
    for cell in cells.iter_mut().filter(|c| c.key.server == label) {
        let key = cell.key.clone();
        cell.tests.retain(|t| {
            let keep = t.case.server_cert == ServerCert::Normal
                && t.case.lifecycle.is_none()
                && !matches!(t.case.connect, Connect::CaBundle | Connect::ChainedClientCert);
            if !keep {
                dropped.push(t.id(&key));
            }
            keep
        });
    }
    cells.retain(|c| !c.tests.is_empty());
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::cases;
    use crate::plan::plan;
    use std::collections::BTreeMap;

    fn filters(servers: &[&str], tls: &[TlsMode]) -> Filters {
        Filters {
            profile: None,
            clients: vec![],
            servers: servers.iter().map(|s| s.to_string()).collect(),
            tls: tls.to_vec(),
            sets: vec![],
            key_types: vec![],
            transports: vec![],
            cases: vec![],
            shard: None,
        }
    }

    fn sel() -> Selection {
        Selection {
            clients: vec!["go".into(), "rust".into()],
            servers: vec!["go".into(), "rust".into()],
            tls: TlsMode::ALL.to_vec(),
            sets: vec!["tls".into()],
            key_types: vec![KeyType::EcP256, KeyType::Rsa2048],
            cases: vec![],
            plugins: BTreeMap::new(),
            pivot: Some("rust".into()),
            shard: None,
        }
    }

    fn target(addr: &str) -> ExternalTarget {
        ExternalTarget {
            target: Some(addr.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_target_narrows_the_selection_to_its_one_server_and_mode() {
        let mut s = sel();
        let e = apply(&target("localhost:50051"), &filters(&["php"], &[]), &mut s)
            .unwrap()
            .unwrap();
        assert_eq!((e.label.as_str(), e.addr.as_str()), ("php", "localhost:50051"));
        assert_eq!(s.servers, ["php"]);
        assert_eq!(s.tls, [TlsMode::None]);
        assert_eq!(s.key_types, [KeyType::EcP256]);
        assert_eq!(s.clients, ["go", "rust"]);
        assert_eq!(s.pivot, None);
        assert!(apply(&ExternalTarget::default(), &filters(&[], &[]), &mut sel())
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_target_without_what_it_needs_says_which_flag() {
        let err = |t: ExternalTarget, f: Filters| apply(&t, &f, &mut sel()).unwrap_err();
        assert!(err(target("nope"), filters(&["go"], &[])).contains("HOST:PORT"));
        assert!(err(target("h:0"), filters(&["go"], &[])).contains("HOST:PORT"));
        assert!(err(target("h:1"), filters(&[], &[])).contains("exactly one --server"));
        assert!(err(target("h:1"), filters(&["go", "rust"], &[])).contains("exactly one --server"));
        assert!(err(target("h:1"), filters(&["go"], &[TlsMode::None, TlsMode::Mtls])).contains("exactly one --tls"));
        assert!(err(target("h:1"), filters(&["go"], &[TlsMode::Server])).contains("--target-ca"));
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let mut t = target("h:1");
        t.target_ca = Some(ca.clone());
        assert!(err(t.clone(), filters(&["go"], &[TlsMode::Mtls])).contains("--target-cert"));
        assert!(apply(&t, &filters(&["go"], &[TlsMode::Server]), &mut sel()).is_ok());
        t.target_ca = Some(dir.path().join("missing.pem"));
        assert!(err(t, filters(&["go"], &[TlsMode::Server])).contains("no such file"));
    }

    #[test]
    fn tests_that_need_a_server_the_runner_starts_are_dropped_by_id() {
        let tls = "[[case]]\nname = \"ok\"\n[[case.step]]\nmethod = \"Inventory\"\n[[case]]\nname = \"expired\"\nserver_cert = \"expired\"\n[[case.step]]\nmethod = \"Inventory\"\nexpect.status = \"!OK\"\n[[case]]\nname = \"exits\"\nlifecycle = { stop = \"stdin-eof\", within_ms = 3000 }\n[[case]]\nname = \"bundle\"\nconnect = \"ca-bundle\"\n[[case.step]]\nmethod = \"Inventory\"\n";
        let sets: BTreeMap<_, _> = [("tls".to_string(), cases::parse("tls", tls).unwrap())].into();
        let mut s = sel();
        s.servers = vec!["ext".into()];
        s.tls = vec![TlsMode::Server];
        s.pivot = None;
        s.key_types = vec![KeyType::EcP256];
        let mut cells = plan(&s, &sets).unwrap();
        let dropped = drop_unreachable(&mut cells, "ext");
        assert_eq!(
            dropped,
            [
                "client=go/server=ext/tls=server/set=tls/case=expired",
                "client=go/server=ext/tls=server/set=tls/case=exits",
                "client=go/server=ext/tls=server/set=tls/case=bundle",
                "client=rust/server=ext/tls=server/set=tls/case=expired",
                "client=rust/server=ext/tls=server/set=tls/case=exits",
                "client=rust/server=ext/tls=server/set=tls/case=bundle"
            ]
        );
        assert!(cells.iter().all(|c| c.tests.iter().all(|t| t.case.name == "ok")));
    }
}
