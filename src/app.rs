//! The commands, top to bottom: config → cases → plan → build → run →
//! reports → exit code. Errors here are the runner's own (bad input, no
//! report folder); an implementation's misbehaviour is a red test instead.
use crate::builder;
use crate::cases::{self, CaseSet};
use crate::cli::{self, Cli, Command, ExternalTarget, Filters, Format, Verdicts};
use crate::config::Matrix;
use crate::external;
use crate::followup::{all_ids, assign_blame, cells_for, merge, rerun_filters};
use crate::plan::{self, CellKey, Selection};
use crate::process;
use crate::report::{console::Console, retention, BuildInfo, Outcome, RunSummary, TestResult};
use crate::run_folder;
use crate::runner::Runner;
use crate::tls::{self, KeyType, TlsMode};
use crate::toolchain;
use crate::verdict::{self, KnownList};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An error with the exit code it maps to.
pub struct Exit(pub i32, pub String);

pub fn usage(e: impl std::fmt::Display) -> Exit {
    Exit(cli::EXIT_USAGE, e.to_string())
}

pub fn setup_err(e: impl std::fmt::Display) -> Exit {
    Exit(cli::EXIT_SETUP, e.to_string())
}

pub fn load_matrix(path: &Path) -> Result<Matrix, Exit> {
    Matrix::load(path).map_err(usage)
}

/// The selection a profile and the command-line lists name.
pub fn selection(m: &Matrix, f: &Filters) -> Result<Selection, Exit> {
    let base = match &f.profile {
        Some(p) => m.profile(p).map_err(usage)?.clone(),
        None => crate::config::Profile {
            description: String::new(),
            clients: m.languages.keys().cloned().collect(),
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
    let sets: Vec<String> = m.sets.keys().cloned().collect();
    check(&f.clients, &langs, "language")?;
    check(&f.servers, &langs, "language")?;
    check(&f.sets, &sets, "set")?;
    let pick = |cli: &Vec<String>, base: Vec<String>| if cli.is_empty() { base } else { cli.clone() };
    Ok(Selection {
        clients: pick(&f.clients, base.clients),
        servers: pick(&f.servers, base.servers),
        tls: if f.tls.is_empty() { base.tls } else { f.tls.clone() },
        sets: pick(&f.sets, base.sets),
        key_types: if f.key_types.is_empty() { base.key_types } else { f.key_types.clone() },
        cases: f.cases.clone(),
        pivot: base.pivot,
        shard: f.shard.as_deref().map(plan::parse_shard).transpose().map_err(usage)?,
    })
}

pub fn load_sets(m: &Matrix, names: &[String]) -> Result<BTreeMap<String, CaseSet>, Exit> {
    names
        .iter()
        .map(|n| {
            let path = &m.sets[n];
            let set = cases::load(n, path).map_err(usage)?;
            if let Some(unknown) = set.clients.iter().flatten().find(|c| !m.languages.contains_key(*c)) {
                return Err(usage(format!(
                    "{}: `clients` names `{unknown}`, which matrix.toml does not define",
                    path.display()
                )));
            }
            Ok((n.clone(), set))
        })
        .collect()
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
                .map(|c| serde_json::json!({"cell": c.key.id(), "client": c.key.client, "server": c.key.server, "tls": c.key.tls, "key_type": c.key.key_type, "tests": c.tests.iter().map(|t| t.id(&c.key)).collect::<Vec<_>>()}))
                .collect();
            let out = serde_json::json!({"profile": f.profile, "combinations": combos, "cells": rows, "tests": tests,
                "clients": sel.clients, "servers": sel.servers, "tls": sel.tls, "sets": sel.sets});
            say!("{}", serde_json::to_string_pretty(&out).expect("json"));
        }
        Format::Table => {
            say!("{:<12} {:<12} {:<7} {:<15} {:>5}", "CLIENT", "SERVER", "TLS", "SET", "CASES");
            for c in &cells {
                let mut per_set: BTreeMap<&str, usize> = BTreeMap::new();
                for t in &c.tests {
                    *per_set.entry(&t.set).or_default() += 1;
                }
                for (set, n) in per_set {
                    let tls = if c.key.key_type == KeyType::default() {
                        c.key.tls.to_string()
                    } else {
                        format!("{}+{}", c.key.tls, c.key.key_type.as_str())
                    };
                    say!("{:<12} {:<12} {:<7} {:<15} {:>5}", c.key.client, c.key.server, tls, set, n);
                }
            }
            say!();
            for (name, set) in &sets {
                say!("set {name:<14} {} cases — {}", set.cases.len(), set.description);
            }
            say!(
                "\n{} combinations ({} clients × {} servers × {} TLS modes × {} sets), {} cells (server starts), {} tests",
                combos,
                sel.clients.len(),
                sel.servers.len(),
                sel.tls.len(),
                sel.sets.len(),
                cells.len(),
                tests
            );
        }
    }
    Ok(cli::EXIT_OK)
}

async fn build_all(m: &Matrix, langs: &[String], logs: &Path, force: bool, say: impl Fn(&str)) -> BTreeMap<String, BuildInfo> {
    let proto = m.root.join("proto");
    let mut out = BTreeMap::new();
    for name in langs {
        let lang = &m.languages[name];
        if !force && (lang.build.is_empty() || builder::up_to_date(lang, &proto)) && builder::missing_tools(lang).is_empty() {
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

#[allow(clippy::too_many_arguments)]
async fn run(
    m: Matrix,
    matrix_path: &Path,
    f: &Filters,
    jobs: Option<usize>,
    reports: &Path,
    prepare: &cli::Prepare,
    v: &Verdicts,
    target: &ExternalTarget,
) -> Result<i32, Exit> {
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let rerun;
    let f = if v.rerun_failed {
        rerun = rerun_filters(reports, f).map_err(|e| {
            if e.0 == cli::EXIT_OK {
                note!("{}", e.1);
                Exit(cli::EXIT_OK, String::new())
            } else {
                e
            }
        })?;
        &rerun
    } else {
        f
    };
    let failing = KnownList::load(&m.root.join(&v.known_failing)).map_err(usage)?;
    let flaky = KnownList::load(&m.root.join(&v.known_flaky)).map_err(usage)?;
    // With --target, --server names the running server: it need not be a language here.
    let mut sel = if target.target.is_some() {
        selection(&m, &Filters { servers: vec![], ..f.clone() })?
    } else {
        selection(&m, f)?
    };
    let external = external::apply(target, f, &mut sel).map_err(usage)?;
    let sets = load_sets(&m, &sel.sets)?;
    let mut cells = plan::plan(&sel, &sets).map_err(usage)?;
    if let Some(e) = &external {
        let dropped = external::drop_unreachable(&mut cells, &e.label);
        if !dropped.is_empty() {
            note!(
                "--target: left out {} test(s) that need a server the runner starts itself (expired certificate), e.g. {}",
                dropped.len(),
                dropped[0]
            );
        }
    }
    if cells.is_empty() {
        return Err(usage("the selection holds no test (check --case and --set)"));
    }
    let (reports, id, dir) = run_folder::create(reports)?;
    let reports = &reports;
    let mut certs = BTreeMap::new();
    for kt in &sel.key_types {
        let files = tls::generate(&dir.join("certs").join(kt.as_str()), *kt).map_err(|e| setup_err(format!("certificates ({}): {e:#}", kt.as_str())))?;
        certs.insert(*kt, files);
    }
    let mut langs: Vec<String> = cells.iter().flat_map(|c| [c.key.client.clone(), c.key.server.clone()]).collect();
    langs.sort();
    langs.dedup();
    // The target is running already: nothing to build for it.
    langs.retain(|l| m.languages.contains_key(l) && external.as_ref().is_none_or(|e| &e.label != l));
    if !prepare.no_setup {
        toolchain::auto_setup(&m, &langs, &dir).await;
    }
    let builds = build_all(&m, &langs, &dir, prepare.rebuild, |s| note!("{s}")).await;
    let unavailable = builds.iter().filter(|(_, b)| !b.ok).map(|(l, b)| (l.clone(), b.status.clone())).collect();

    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = cancelled.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
            note!("\ninterrupted: stopping every process the run started (Ctrl-C again to quit at once)");
            tokio::task::spawn_blocking(|| process::kill_all(Duration::from_millis(300)));
            if tokio::signal::ctrl_c().await.is_ok() {
                process::kill_all(Duration::ZERO);
                std::process::exit(cli::EXIT_INTERRUPTED);
            }
        }
    });
    let exe = std::env::current_exe().map_err(setup_err)?;
    let repro_prefix = if matrix_path == Path::new("matrix.toml") {
        "stock-matrix run".to_string()
    } else {
        format!("stock-matrix --matrix {} run", matrix_path.display())
    };
    let jobs = jobs.unwrap_or(if m.run.jobs > 0 {
        m.run.jobs
    } else {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    });
    // One server, one store: cells take turns, so Inventory counts stay theirs.
    let jobs = if external.is_some() { 1 } else { jobs };
    let total: usize = cells.iter().map(|c| c.tests.len()).sum();
    note!("running {total} tests in {} cells, {jobs} at a time; reports in {}", cells.len(), dir.display());
    let console = Arc::new(Console::new(total));
    let c2 = console.clone();
    let every_id = all_ids(&m)?;
    let keep_reports = m.run.keep_reports;
    let runner = Arc::new(Runner {
        matrix: Arc::new(m),
        certs,
        exe,
        unavailable,
        jobs,
        cancelled: cancelled.clone(),
        repro_prefix,
        external,
        run_id: id.clone(),
    });
    let (mut tests, cell_infos) = runner.clone().run(cells.clone(), 1, Arc::new(move |r: &TestResult| c2.test_done(r))).await;
    let quiet: Arc<dyn Fn(&TestResult) + Send + Sync> = Arc::new(|_: &TestResult| {});
    let wanted: Vec<(CellKey, String, String)> = cells
        .iter()
        .flat_map(|c| c.tests.iter().map(|t| (c.key.clone(), t.set.clone(), t.case.name.clone())).collect::<Vec<_>>())
        .collect();
    let mut attempt = 1;
    for _ in 1..v.stress {
        attempt += 1;
        note!("stress: try {attempt} of {}", v.stress);
        let (again, _) = runner.clone().run(cells.clone(), attempt, quiet.clone()).await;
        merge(&mut tests, again);
    }
    for _ in 0..v.retries {
        // A listed failure is expected, not a flake to hunt, and a language
        // that could not run will not run on a retry either.
        let red: std::collections::HashSet<String> = tests
            .iter()
            .filter(|t| matches!(t.outcome, Outcome::Failed | Outcome::Error) && t.unavailable.is_none() && failing.find(&t.id).is_none())
            .map(|t| t.id.clone())
            .collect();
        if red.is_empty() || cancelled.load(Ordering::SeqCst) {
            break;
        }
        attempt += 1;
        note!("retrying {} red tests (try {attempt})", red.len());
        let (again, _) = runner.clone().run(cells_for(&red, &sets, &wanted), attempt, quiet.clone()).await;
        merge(&mut tests, again);
    }
    if !v.no_blame && !cancelled.load(Ordering::SeqCst) {
        assign_blame(&mut tests, &runner, &sets, quiet.clone()).await;
    }
    let problems = verdict::apply(&mut tests, &failing, &flaky, &every_id);
    if let Some(path) = &v.write_known_failing {
        std::fs::write(path, verdict::write_list(&tests)).map_err(|e| setup_err(format!("failed to write {}: {e}", path.display())))?;
        note!("wrote the known-failing list for this run's failures to {}", path.display());
    }
    let command = run_folder::command_line();
    let summary = RunSummary {
        run_id: id,
        started_at,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        profile: f.profile.clone(),
        command,
        builds,
        cells: cell_infos,
        tests,
        interrupted: cancelled.load(Ordering::SeqCst),
        problems,
    };
    run_folder::write_reports(&dir, reports, &summary)?;
    let (pruned, not_pruned) = retention::prune(reports, keep_reports, &summary.run_id);
    if !pruned.is_empty() {
        note!(
            "removed {} old run folder(s) from {} (run.keep_reports = {})",
            pruned.len(),
            reports.display(),
            keep_reports
        );
    }
    for why in not_pruned {
        note!("warning: could not remove an old run folder: {why}");
    }
    console.finish(&summary, &dir.display().to_string());
    Ok(if summary.interrupted {
        cli::EXIT_INTERRUPTED
    } else if summary.counts().red > 0 || !summary.problems.is_empty() {
        cli::EXIT_FAILED
    } else {
        cli::EXIT_OK
    })
}

pub async fn main(cli: Cli) -> Result<i32, Exit> {
    match cli.command {
        Command::Reference(cli::Reference::Server(a)) => crate::reference::server::run(a).await.map(|_| 0).map_err(|e| Exit(1, format!("{e:#}"))),
        Command::Reference(cli::Reference::Client(a)) => Ok(crate::reference::client::run(a).await),
        Command::Serve { servers, tls, key_type } => crate::serve::serve(load_matrix(&cli.matrix)?, &servers, &tls, key_type).await,
        Command::Certs { out, key_type } => {
            let f = tls::generate(&out, key_type).map_err(|e| setup_err(format!("{e:#}")))?;
            say!(
                "CA            {}\nserver cert   {}\nserver key    {}\nclient cert   {}\nclient key    {}\nuntrusted CA  {}",
                f.ca.display(),
                f.server_cert.display(),
                f.server_key.display(),
                f.client_cert.display(),
                f.client_key.display(),
                f.other_ca.display()
            );
            Ok(cli::EXIT_OK)
        }
        Command::List { filters, format } => list(&load_matrix(&cli.matrix)?, &filters, format),
        Command::Run {
            filters,
            jobs,
            reports,
            prepare,
            verdicts,
            target,
        } => run(load_matrix(&cli.matrix)?, &cli.matrix, &filters, jobs, &reports, &prepare, &verdicts, &target).await,
        Command::Build { languages, force } => {
            let m = load_matrix(&cli.matrix)?;
            let langs = toolchain::pick_languages(&m, &languages)?;
            let builds = build_all(&m, &langs, &m.root.join("target/stock-matrix/build-logs"), force, |s| note!("{s}")).await;
            for (l, b) in &builds {
                say!("{l:<11} {}", b.status);
            }
            Ok(if builds.values().all(|b| b.ok) { cli::EXIT_OK } else { cli::EXIT_FAILED })
        }
        Command::Setup { languages } => toolchain::setup(&load_matrix(&cli.matrix)?, &languages).await,
        Command::Doctor => Ok(toolchain::doctor(&load_matrix(&cli.matrix)?)),
        Command::Merge { parts, reports } => run_folder::merge_shards(&parts, &reports),
        Command::Get { key, target } => crate::passthrough::shortcut(&cli.matrix, &target, &["get".into(), key]).await,
        Command::Put { key, value, target } => crate::passthrough::shortcut(&cli.matrix, &target, &["put".into(), key, value]).await,
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
            crate::passthrough::shortcut(&cli.matrix, &target, &args).await
        }
        Command::Inventory { target } => crate::passthrough::shortcut(&cli.matrix, &target, &["inventory".into()]).await,
        Command::Language(args) => crate::passthrough::language(&load_matrix(&cli.matrix)?, &args).await,
    }
}
