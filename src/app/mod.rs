//! The commands, top to bottom: config → cases → plan → build → run →
//! reports → exit code. Errors here are the runner's own (bad input, no
//! report folder); an implementation's misbehaviour is a red test instead.
pub mod bench;
pub mod cli;
pub mod exit;
pub mod external;
pub mod followup;
pub mod ghz;
pub mod passthrough;
pub mod run;
pub mod serve;
pub mod toolchain;
use self::cli::{Cli, Command, Filters, Format};
use crate::exec::builder;
use crate::exec::run_folder;
use crate::input::cases::{self, CaseSet};
use crate::input::config::Matrix;
use crate::model::cell::Net;
use crate::model::run::{BuildInfo, RunSummary};
use crate::model::tls::{KeyType, TlsMode};
use crate::plan::{self, Selection};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub use self::exit::Exit;
use self::exit::{runner as setup_err, usage};

impl From<run_folder::FolderError> for Exit {
    fn from(e: run_folder::FolderError) -> Exit {
        setup_err(e)
    }
}

pub fn load_matrix(path: &Path) -> Result<Matrix, Exit> {
    Matrix::load(path).map_err(usage)
}

/// The selection a profile and the command-line lists name.
pub fn selection(m: &Matrix, f: &Filters) -> Result<Selection, Exit> {
    let base = match &f.profile {
        Some(p) => m.profile(p).map_err(usage)?.clone(),
        None => crate::input::config::Profile {
            description: String::new(),
            clients: m.clients(),
            servers: m.languages.keys().cloned().collect(),
            tls: TlsMode::ALL.to_vec(),
            sets: m.sets.keys().cloned().collect(),
            key_types: vec![KeyType::default()],
            pivot: None,
        },
    };
    let check = |names: &[String], known: &[String], what: &str| -> Result<(), Exit> {
        match names.iter().find(|n| !known.contains(n)) {
            Some(n) => Err(usage(format!("unknown {what} `{n}` (known: {})", known.join(", ")))),
            None => Ok(()),
        }
    };
    let langs: Vec<String> = m.languages.keys().cloned().collect();
    let clients: Vec<String> = m.clients();
    let sets: Vec<String> = m.sets.keys().cloned().collect();
    // `--client '*'` (as in a profile): every language (that has a client).
    let every = |names: &[String], all: &[String]| match names.iter().any(|n| n == "*") {
        true => all.to_vec(),
        false => names.to_vec(),
    };
    let f = &Filters {
        clients: every(&f.clients, &clients),
        servers: every(&f.servers, &langs),
        ..f.clone()
    };
    if let Some(c) = f.clients.iter().find(|c| langs.contains(c) && !clients.contains(c)) {
        return Err(usage(format!("`{c}` serves only (a plugin server): it has no client")));
    }
    check(&f.clients, &langs, "language")?;
    check(&f.servers, &langs, "language")?;
    check(&f.sets, &sets, "set")?;
    let pick = |cli: &Vec<String>, base: Vec<String>| if cli.is_empty() { base } else { cli.clone() };
    Ok(Selection {
        clients: pick(&f.clients, base.clients),
        servers: pick(&f.servers, base.servers),
        tls: if f.tls.is_empty() { base.tls } else { f.tls.clone() },
        sets: pick(&f.sets, base.sets),
        key_types: if f.key_types.is_empty() {
            base.key_types
        } else {
            f.key_types.clone()
        },
        cases: f.cases.clone(),
        plugins: plugin_servers(m, &f.transports),
        pivot: base.pivot,
        shard: f.shard.as_deref().map(plan::parse_shard).transpose().map_err(usage)?,
    })
}

/// The matrix's plugin servers and the transports to ask each for (`None`:
/// whatever it picks), narrowed to `only` when it is not empty.
pub fn plugin_servers(m: &Matrix, only: &[Net]) -> BTreeMap<String, Vec<Option<Net>>> {
    m.languages
        .iter()
        .filter(|(_, l)| l.is_plugin())
        .map(|(name, l)| {
            let nets = match l.transports.is_empty() {
                true => vec![None],
                false => l
                    .transports
                    .keys()
                    .filter(|n| only.is_empty() || only.contains(n))
                    .map(|n| Some(*n))
                    .collect(),
            };
            (name.clone(), nets)
        })
        .collect()
}

pub fn load_sets(m: &Matrix, names: &[String]) -> Result<BTreeMap<String, CaseSet>, Exit> {
    cases::load_sets(m, names).map_err(usage)
}

fn list(m: &Matrix, f: &Filters, format: Format) -> Result<i32, Exit> {
    let sel = selection(m, f)?;
    let sets = load_sets(m, &sel.sets)?;
    let cells = plan::plan(&sel, &sets).map_err(usage)?;
    let tests: usize = cells.iter().map(|c| c.tests.len()).sum();
    let combos = plan::combinations(&sel, &sets);
    match format {
        Format::Json => {
            let rows: Vec<_> = cells
                .iter()
                .map(|c| serde_json::json!({"cell": c.key.id(), "client": c.key.client, "server": c.key.server, "tls": c.key.tls, "key_type": c.key.key_type, "net": c.key.net, "tests": c.tests.iter().map(|t| t.id(&c.key)).collect::<Vec<_>>()}))
                .collect();
            let out = serde_json::json!({"profile": f.profile, "combinations": combos, "cells": rows, "tests": tests,
                "clients": sel.clients, "servers": sel.servers, "tls": sel.tls, "sets": sel.sets});
            say!("{}", serde_json::to_string_pretty(&out).expect("json"));
        }
        Format::Table => {
            say!(
                "{:<12} {:<12} {:<7} {:<15} {:>5}",
                "CLIENT",
                "SERVER",
                "TLS",
                "SET",
                "CASES"
            );
            for c in &cells {
                let mut per_set: BTreeMap<&str, usize> = BTreeMap::new();
                for t in &c.tests {
                    *per_set.entry(&t.set).or_default() += 1;
                }
                for (set, n) in per_set {
                    let mut tls = if c.key.key_type == KeyType::default() {
                        c.key.tls.to_string()
                    } else {
                        format!("{}+{}", c.key.tls, c.key.key_type.as_str())
                    };
                    if let Some(net) = c.key.net {
                        tls.push_str(&format!("@{net}"));
                    }
                    say!(
                        "{:<12} {:<12} {:<7} {:<15} {:>5}",
                        c.key.client,
                        c.key.server,
                        tls,
                        set,
                        n
                    );
                }
            }
            say!();
            for (name, set) in &sets {
                say!("set {name:<14} {} cases — {}", set.cases.len(), set.description);
            }
            let servers: std::collections::BTreeSet<_> = cells
                .iter()
                .flat_map(|c| {
                    c.groups()
                        .into_keys()
                        .map(|cert| (&c.key.server, c.key.tls, c.key.key_type, cert, c.key.net))
                })
                .collect();
            say!(
                "\n{} combinations ({} clients × {} servers × {} TLS modes × {} sets), {} cells, {} servers (shared by their clients), {} tests",
                combos,
                sel.clients.len(),
                sel.servers.len(),
                sel.tls.len(),
                sel.sets.len(),
                cells.len(),
                servers.len(),
                tests
            );
        }
    }
    Ok(exit::OK)
}

async fn build_all(
    m: &Matrix,
    langs: &[String],
    logs: &Path,
    force: bool,
    say: impl Fn(&str),
) -> BTreeMap<String, BuildInfo> {
    let proto = m.root.join("proto");
    let mut out = BTreeMap::new();
    for name in langs {
        let lang = &m.languages[name];
        if !force
            && (lang.build.is_empty() || builder::up_to_date(lang, &proto))
            && builder::missing_tools(lang).is_empty()
        {
            out.insert(
                name.clone(),
                BuildInfo {
                    status: if lang.build.is_empty() {
                        "nothing to build".into()
                    } else {
                        "up to date".into()
                    },
                    duration_ms: 0.0,
                    ok: true,
                },
            );
            continue;
        }
        say(&format!("building {name} …"));
        let info = builder::ensure_built(
            name,
            lang,
            &proto,
            &logs.join(format!("build-{name}.log")),
            Duration::from_millis(m.run.build_timeout_ms),
            force,
        )
        .await;
        say(&format!(
            "{} {name}: {} ({:.1} s)",
            if info.ok { "built" } else { "FAILED" },
            info.status.lines().next().unwrap_or_default(),
            info.duration_ms / 1000.0
        ));
        out.insert(name.clone(), info);
    }
    out
}

pub async fn main(cli: Cli) -> Result<i32, Exit> {
    match cli.command {
        Command::Reference(cli::Reference::Server(a)) => crate::reference::server::run(a)
            .await
            .map(|_| 0)
            .map_err(|e| Exit(1, format!("{e:#}"))),
        Command::Reference(cli::Reference::Client(a)) => Ok(crate::reference::client::run(a).await),
        Command::Serve { servers, tls, key_type } => {
            serve::serve(load_matrix(&cli.matrix)?, &servers, &tls, key_type).await
        }
        Command::Certs { out, key_type } => {
            let f = crate::exec::certs::generate(&out, key_type).map_err(|e| setup_err(format!("{e:#}")))?;
            say!(
                "CA            {}\nserver cert   {}\nserver key    {}\nclient cert   {}\nclient key    {}\nuntrusted CA  {}",
                f.ca.display(),
                f.server_cert.display(),
                f.server_key.display(),
                f.client_cert.display(),
                f.client_key.display(),
                f.other_ca.display()
            );
            Ok(exit::OK)
        }
        Command::List { filters, format } => list(&load_matrix(&cli.matrix)?, &filters, format),
        Command::Run(args) => run::run(load_matrix(&cli.matrix)?, &cli.matrix, &args).await,
        Command::Bench(args) => bench::bench(load_matrix(&cli.matrix)?, &args).await,
        Command::Build { languages, force } => {
            let m = load_matrix(&cli.matrix)?;
            let langs = toolchain::pick_languages(&m, &languages)?;
            let builds = build_all(&m, &langs, &m.root.join("target/stock-matrix/build-logs"), force, |s| {
                note!("{s}")
            })
            .await;
            for (l, b) in &builds {
                say!("{l:<11} {}", b.status);
            }
            Ok(if builds.values().all(|b| b.ok) {
                exit::OK
            } else {
                exit::RED
            })
        }
        Command::Setup { languages } => toolchain::setup(&load_matrix(&cli.matrix)?, &languages).await,
        Command::Doctor => Ok(toolchain::doctor(&load_matrix(&cli.matrix)?)),
        Command::Merge { parts, reports } => merge_shards(&parts, &reports),
        Command::Get { key, target } => passthrough::shortcut(&cli.matrix, &target, &["get".into(), key]).await,
        Command::Put { key, value, target } => {
            passthrough::shortcut(&cli.matrix, &target, &["put".into(), key, value]).await
        }
        Command::Monitor {
            pattern,
            max_events,
            include_existing,
            target,
        } => {
            let mut args = vec!["monitor".to_string(), pattern];
            if let Some(n) = max_events {
                args.extend(["--max-events".into(), n.to_string()]);
            }
            if include_existing {
                args.push("--include-existing".into());
            }
            passthrough::shortcut(&cli.matrix, &target, &args).await
        }
        Command::Inventory { target } => passthrough::shortcut(&cli.matrix, &target, &["inventory".into()]).await,
        Command::Language(args) => passthrough::language(&load_matrix(&cli.matrix)?, &args).await,
    }
}

/// `stock-matrix merge PART…`: one run folder from the shards' summaries.
fn merge_shards(parts: &[std::path::PathBuf], reports: &Path) -> Result<i32, Exit> {
    let mut loaded = Vec::new();
    for p in parts {
        let file = if p.is_dir() { p.join("summary.json") } else { p.clone() };
        let text =
            std::fs::read_to_string(&file).map_err(|e| usage(format!("merge: cannot read {}: {e}", file.display())))?;
        let s: RunSummary =
            serde_json::from_str(&text).map_err(|e| usage(format!("merge: {}: {e}", file.display())))?;
        loaded.push((p.display().to_string(), s));
    }
    // Merge before making the folder: parts that do not merge leave nothing behind.
    let mut summary = crate::report::merge::merge(&run_folder::command_line(), loaded).map_err(usage)?;
    let (reports, id, dir) = run_folder::create(reports)?;
    summary.run_id = id;
    run_folder::write_reports(&dir, &reports, &summary)?;
    let c = summary.counts();
    note!(
        "merged {} part(s): {} tests, {} passed, {} red; reports in {}",
        parts.len(),
        c.total(),
        c.passed,
        c.red,
        dir.display()
    );
    Ok(exit::for_summary(&summary))
}
