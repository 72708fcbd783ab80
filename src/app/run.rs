//! `stock-matrix run` as a linear pipeline of named steps:
//! plan (what to run) → prepare (run folder, certificates, set-up, builds) →
//! execute (first try, stress, retries, blame) → conclude (verdicts, reports,
//! exit code). Only `conclude` writes reports; only `execute` runs tests.
use super::cli::{Filters, RunArgs};
use super::exit::{self, runner as setup_err, usage, Exit};
use super::external;
use super::followup::{all_ids, assign_blame, cells_for, merge, rerun_filters};
use super::{build_all, load_sets, selection, toolchain};
use crate::exec::{certs, process, retention, run_folder};
use crate::input::cases::CaseSet;
use crate::input::config::Matrix;
use crate::judge::{verdict, KnownList};
use crate::model::cell::CellKey;
use crate::model::run::{BuildInfo, Outcome, RunSummary, TestResult};
use crate::plan::{self, Cell};
use crate::report::console::Console;
use crate::runner::{ExternalServer, Runner};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a run covers: its filters, the case sets and cells, the known lists.
struct Planned {
    filters: Filters,
    sets: BTreeMap<String, CaseSet>,
    cells: Vec<Cell>,
    external: Option<ExternalServer>,
    failing: KnownList,
    flaky: KnownList,
    /// Every test id the matrix can name (to find stale list entries).
    every_id: Vec<String>,
    keep_reports: usize,
}

/// The run's folder and what was made ready in it.
struct Prepared {
    reports: PathBuf,
    id: String,
    dir: PathBuf,
    certs: BTreeMap<crate::model::tls::KeyType, certs::CertFiles>,
    builds: BTreeMap<String, BuildInfo>,
}

pub async fn run(mut m: Matrix, matrix_path: &Path, a: &RunArgs) -> Result<i32, Exit> {
    // --target-plugin: the plugin joins the matrix as a language of its own.
    let mut with_plugin = a.clone();
    let cwd = std::env::current_dir().map_err(setup_err)?;
    if let Some((label, lang)) = external::plugin_language(&a.target, &mut with_plugin.filters, &cwd).map_err(usage)? {
        // It serves only (no client): "every client" stays the matrix's languages.
        m.languages.insert(label, lang);
    }
    let a = &with_plugin;
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let Some(planned) = plan(&m, a)? else {
        return Ok(exit::OK);
    };
    let prepared = prepare(&m, &planned, a).await?;
    let cancelled = stop_on_ctrl_c();
    let mut runner = runner(
        m,
        matrix_path,
        &planned,
        &prepared,
        (a.jobs, a.at_most, a.lanes, a.client_per),
        cancelled.clone(),
    )?;
    runner.repro_prefix.push_str(&external::plugin_flags(&a.target));
    let runner = Arc::new(runner);
    let total: usize = planned.cells.iter().map(|c| c.tests.len()).sum();
    let slots = runner.slots;
    let more = if slots.at_most > slots.jobs {
        format!(", up to {} while cores are idle", slots.at_most)
    } else {
        String::new()
    };
    note!(
        "running {total} tests in {} cells, {} client processes at a time{more} (one per {}); reports in {}",
        planned.cells.len(),
        slots.jobs,
        if runner.per_pair { "client and server" } else { "cell" },
        prepared.dir.display()
    );
    let console = Arc::new(Console::new(total));
    let executing = Instant::now();
    let cpu_before = crate::exec::load::cpu_time();
    let (tests, cells) = execute(&runner, &planned, a, console.clone()).await;
    let cpu_ms = (crate::exec::load::cpu_time().saturating_sub(cpu_before)).as_secs_f64() * 1000.0;
    let summary = RunSummary {
        run_id: prepared.id.clone(),
        started_at,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        execute_ms: executing.elapsed().as_secs_f64() * 1000.0,
        jobs: runner.slots.jobs,
        at_most: runner.slots.at_most,
        most_at_once: runner.most_at_once.load(Ordering::SeqCst),
        cpu_ms,
        per_pair: runner.per_pair,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        profile: planned.filters.profile.clone(),
        command: run_folder::command_line(),
        builds: prepared.builds.clone(),
        cells,
        tests,
        interrupted: cancelled.load(Ordering::SeqCst),
        problems: vec![],
        load: std::mem::take(&mut *runner.load.lock().expect("load")),
        processes: std::mem::take(&mut *runner.processes.lock().expect("process CPU")),
    };
    conclude(summary, &planned, &prepared, a, &console)
}

/// The filters (the last run's red tests with `--rerun-failed`; `None` when
/// there is nothing to rerun), the known lists, the case sets and the cells.
fn plan(m: &Matrix, a: &RunArgs) -> Result<Option<Planned>, Exit> {
    let filters = if a.verdicts.rerun_failed {
        match rerun_filters(&a.reports, &a.filters)? {
            Some(f) => f,
            None => return Ok(None),
        }
    } else {
        a.filters.clone()
    };
    let failing = KnownList::load(&m.root.join(&a.verdicts.known_failing)).map_err(usage)?;
    let flaky = KnownList::load(&m.root.join(&a.verdicts.known_flaky))
        .and_then(KnownList::with_symptoms)
        .map_err(usage)?;
    // With --target, --server names the running server: it need not be a language here.
    let mut sel = match a.target.target {
        Some(_) => selection(
            m,
            &Filters {
                servers: vec![],
                ..filters.clone()
            },
        )?,
        None => selection(m, &filters)?,
    };
    let external = external::apply(&a.target, &filters, &mut sel).map_err(usage)?;
    let sets = load_sets(m, &sel.sets)?;
    let mut cells = plan::plan(&sel, &sets).map_err(usage)?;
    if let Some(e) = &external {
        let dropped = external::drop_unreachable(&mut cells, &e.label);
        if let Some(first) = dropped.first() {
            note!(
                "--target: left out {} test(s) that need a server the runner starts itself (expired or chained certificate) or one that trusts the run's CA, e.g. {first}",
                dropped.len()
            );
        }
    }
    if cells.is_empty() {
        return Err(usage("the selection holds no test (check --case and --set)"));
    }
    let every_id = all_ids(m, &sets)?;
    let keep_reports = m.run.keep_reports;
    Ok(Some(Planned {
        filters,
        sets,
        cells,
        external,
        failing,
        flaky,
        every_id,
        keep_reports,
    }))
}

/// The run folder, its certificates, the languages' set-up and builds.
async fn prepare(m: &Matrix, p: &Planned, a: &RunArgs) -> Result<Prepared, Exit> {
    let (reports, id, dir) = run_folder::create(&a.reports)?;
    let mut certs = BTreeMap::new();
    let key_types: std::collections::BTreeSet<_> = p.cells.iter().map(|c| c.key.key_type).collect();
    for kt in key_types {
        let files = certs::generate(&dir.join("certs").join(kt.as_str()), kt)
            .map_err(|e| setup_err(format!("certificates ({}): {e:#}", kt.as_str())))?;
        certs.insert(kt, files);
    }
    let mut langs: Vec<String> = p
        .cells
        .iter()
        .flat_map(|c| [c.key.client.clone(), c.key.server.clone()])
        .collect();
    langs.sort();
    langs.dedup();
    // The target is running already: nothing to build for it.
    langs.retain(|l| m.languages.contains_key(l) && p.external.as_ref().is_none_or(|e| &e.label != l));
    if !a.prepare.no_setup {
        toolchain::auto_setup(m, &langs, &dir).await;
    }
    let builds = build_all(m, &langs, &dir, a.prepare.rebuild, |s| note!("{s}")).await;
    Ok(Prepared {
        reports,
        id,
        dir,
        certs,
        builds,
    })
}

/// Ctrl-C stops every process the run started (a second one quits at once);
/// the flag tells the runner to start nothing new.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = cancelled.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
            note!("\ninterrupted: stopping every process the run started (Ctrl-C again to quit at once)");
            tokio::task::spawn_blocking(|| process::kill_all(Duration::from_millis(300)));
            if tokio::signal::ctrl_c().await.is_ok() {
                process::kill_all(Duration::ZERO);
                std::process::exit(exit::INTERRUPTED);
            }
        }
    });
    cancelled
}

/// The runner for this run: how many cells at once, how to reproduce a test.
fn runner(
    m: Matrix,
    matrix_path: &Path,
    p: &Planned,
    r: &Prepared,
    (jobs, at_most, lanes, client_per): (Option<usize>, Option<usize>, Option<u32>, crate::app::cli::ClientPer),
    cancelled: Arc<AtomicBool>,
) -> Result<Runner, Exit> {
    let lanes = lanes.unwrap_or(m.run.lanes.max(1));
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
    let at_most = at_most.unwrap_or(m.run.at_most);
    let slots = match p.external {
        Some(_) => plan::admit::Slots::new(1, 1),
        None => plan::admit::Slots::new(jobs, at_most),
    };
    let unavailable = r
        .builds
        .iter()
        .filter(|(_, b)| !b.ok)
        .map(|(l, b)| (l.clone(), b.status.clone()))
        .collect();
    Ok(Runner {
        matrix: Arc::new(m),
        certs: r.certs.clone(),
        exe: std::env::current_exe().map_err(setup_err)?,
        unavailable,
        slots,
        lanes,
        per_pair: client_per == crate::app::cli::ClientPer::Pair,
        last_costs: r.dir.parent().map(last_costs).unwrap_or_default(),
        pool: Default::default(),
        most_at_once: Default::default(),
        load: Default::default(),
        load_epoch: Default::default(),
        processes: Default::default(),
        cancelled,
        stopped: Arc::new(AtomicBool::new(false)),
        repro_prefix,
        external: p.external.clone(),
        run_id: r.id.clone(),
        server_cpu: None,
        plugin_ca: Default::default(),
    })
}

/// What each pair took in the last run in `reports` (none when there is
/// no readable one): the order to start them in.
fn last_costs(reports: &Path) -> plan::Costs {
    /// The part of a summary.json read here: its cells, not its (after a
    /// full run, 50 MB of) tests.
    #[derive(serde::Deserialize)]
    struct Cells {
        cells: Vec<crate::model::run::CellInfo>,
    }
    std::fs::read_to_string(reports.join("latest/summary.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Cells>(&text).ok())
        .map(|last| plan::costs(&last.cells))
        .unwrap_or_default()
}

/// Every test once, then `--stress` tries, then retries of the red ones,
/// then the blame runs; results as they are before the known lists apply.
async fn execute(
    runner: &Arc<Runner>,
    p: &Planned,
    a: &RunArgs,
    console: Arc<Console>,
) -> (Vec<TestResult>, Vec<crate::model::run::CellInfo>) {
    let v = &a.verdicts;
    let (failing, fail_fast, stopped) = (p.failing.clone(), v.fail_fast, runner.stopped.clone());
    let on_result = Arc::new(move |r: &TestResult| {
        let listed = failing.find(&r.id).is_some();
        console.test_done(r, listed);
        if fail_fast && r.outcome.is_red() && r.outcome != Outcome::Interrupted && !listed {
            stopped.store(true, Ordering::SeqCst);
        }
    });
    let (mut tests, cells) = runner.clone().run(p.cells.clone(), 1, on_result).await;
    let quiet: Arc<dyn Fn(&TestResult) + Send + Sync> = Arc::new(|_: &TestResult| {});
    let wanted: Vec<(CellKey, String, String)> = p
        .cells
        .iter()
        .flat_map(|c| {
            c.tests
                .iter()
                .map(|t| (c.key.clone(), t.set.clone(), t.case.name.clone()))
        })
        .collect();
    let mut attempt = 1;
    for _ in 1..v.stress {
        attempt += 1;
        note!("stress: try {attempt} of {}", v.stress);
        let (again, _) = runner.clone().run(p.cells.clone(), attempt, quiet.clone()).await;
        merge(&mut tests, again);
    }
    let interrupted = || runner.cancelled.load(Ordering::SeqCst);
    for _ in 0..v.retries {
        // A listed failure is expected, not a flake to hunt, and a language
        // that could not run will not run on a retry either.
        let red: HashSet<String> = tests
            .iter()
            .filter(|t| matches!(t.outcome, Outcome::Failed | Outcome::Error) && t.unavailable.is_none())
            .filter(|t| p.failing.find(&t.id).is_none())
            .map(|t| t.id.clone())
            .collect();
        if red.is_empty() || interrupted() {
            break;
        }
        attempt += 1;
        note!("retrying {} red tests (try {attempt})", red.len());
        let (again, _) = runner
            .clone()
            .run(cells_for(&red, &p.sets, &wanted), attempt, quiet.clone())
            .await;
        merge(&mut tests, again);
    }
    if !v.no_blame && !interrupted() {
        assign_blame(&mut tests, runner, &p.sets, quiet).await;
    }
    (tests, cells)
}

/// The known lists' verdicts, the reports, old run folders pruned, the
/// console's closing lines, and the exit code.
fn conclude(mut summary: RunSummary, p: &Planned, r: &Prepared, a: &RunArgs, console: &Console) -> Result<i32, Exit> {
    summary.problems = verdict::apply(&mut summary.tests, &p.failing, &p.flaky, &p.every_id);
    if let Some(path) = &a.verdicts.write_known_failing {
        std::fs::write(path, verdict::write_list(&summary.tests))
            .map_err(|e| setup_err(format!("failed to write {}: {e}", path.display())))?;
        note!(
            "wrote the known-failing list for this run's failures to {}",
            path.display()
        );
    }
    run_folder::write_reports(&r.dir, &r.reports, &summary)?;
    let (pruned, not_pruned) = retention::prune(&r.reports, p.keep_reports, &summary.run_id);
    if !pruned.is_empty() {
        note!(
            "removed {} old run folder(s) from {} (run.keep_reports = {})",
            pruned.len(),
            r.reports.display(),
            p.keep_reports
        );
    }
    for why in not_pruned {
        note!("warning: could not remove an old run folder: {why}");
    }
    console.finish(&summary, &r.dir.display().to_string());
    Ok(exit::for_summary(&summary))
}
