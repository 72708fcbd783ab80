//! What a run does after its first pass, and how it picks its tests for a
//! rerun: retries and stress (merging tries), blame (extra runs against the
//! reference), `--rerun-failed`, and every id of the matrix for stale
//! known-failing patterns.
use crate::app::cli::Filters;
use crate::app::exit::{usage, Exit};
use crate::input::cases::CaseSet;
use crate::input::config::Matrix;
use crate::judge::blame;
use crate::judge::verdict;
use crate::model::cell::CellKey;
use crate::model::run::{Outcome, RunSummary, TestResult};
use crate::model::tls::{KeyType, TlsMode};
use crate::plan::{self, Cell, Selection, Test};
use crate::runner::Runner;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The red tests of the last run, as filters that select exactly them;
/// `None` when it had none (nothing to rerun).
pub fn rerun_filters(reports: &Path, f: &Filters) -> Result<Option<Filters>, Exit> {
    let path = reports.join("latest/summary.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| usage(format!("--rerun-failed: cannot read {}: {e}", path.display())))?;
    let last: RunSummary =
        serde_json::from_str(&text).map_err(|e| usage(format!("--rerun-failed: {}: {e}", path.display())))?;
    let red: Vec<&TestResult> = last.tests.iter().filter(|t| t.outcome.is_red()).collect();
    if red.is_empty() {
        note!("--rerun-failed: the last run ({}) had no red test", last.run_id);
        return Ok(None);
    }
    let uniq = |v: Vec<String>| -> Vec<String> {
        let mut v = v;
        v.sort();
        v.dedup();
        v
    };
    let mut tls: Vec<TlsMode> = red.iter().map(|t| t.cell.tls).collect();
    tls.sort();
    tls.dedup();
    let mut key_types: Vec<KeyType> = red.iter().map(|t| t.cell.key_type).collect();
    key_types.sort();
    key_types.dedup();
    Ok(Some(Filters {
        profile: None,
        clients: uniq(red.iter().map(|t| t.cell.client.clone()).collect()),
        servers: uniq(red.iter().map(|t| t.cell.server.clone()).collect()),
        tls,
        sets: uniq(red.iter().map(|t| t.set.clone()).collect()),
        key_types,
        transports: uniq_nets(red.iter().filter_map(|t| t.cell.net).collect()),
        cases: red.iter().map(|t| t.id.clone()).collect(),
        shard: f.shard.clone(),
    }))
}

fn uniq_nets(mut v: Vec<crate::model::cell::Net>) -> Vec<crate::model::cell::Net> {
    v.sort();
    v.dedup();
    v
}

/// Cells holding only the tests whose ids are in `ids` (keys from `plan`).
pub fn cells_for(
    ids: &std::collections::HashSet<String>,
    sets: &BTreeMap<String, CaseSet>,
    wanted: &[(CellKey, String, String)],
) -> Vec<Cell> {
    let mut by_cell: BTreeMap<CellKey, Vec<Test>> = BTreeMap::new();
    for (key, set, case) in wanted {
        let Some(c) = sets.get(set).and_then(|s| s.cases.iter().find(|c| &c.name == case)) else {
            continue;
        };
        let test = Test {
            set: set.clone(),
            case: Arc::new(c.clone()),
        };
        if ids.contains(&test.id(key)) {
            let tests = by_cell.entry(key.clone()).or_default();
            if !tests.iter().any(|t| t.set == test.set && t.case.name == test.case.name) {
                tests.push(test);
            }
        }
    }
    by_cell.into_iter().map(|(key, tests)| Cell { key, tests }).collect()
}

/// Every test id the whole matrix can have (for stale known-failing patterns).
/// Sets the run has loaded already are not loaded (and checked) again.
pub fn all_ids(m: &Matrix, loaded: &BTreeMap<String, CaseSet>) -> Result<Vec<String>, Exit> {
    let names: Vec<String> = m.sets.keys().cloned().collect();
    let missing: Vec<String> = names.iter().filter(|n| !loaded.contains_key(*n)).cloned().collect();
    let mut sets = crate::input::cases::load_sets(m, &missing).map_err(usage)?;
    sets.extend(loaded.iter().map(|(name, set)| (name.clone(), set.clone())));
    let langs: Vec<String> = m.languages.keys().cloned().collect();
    let sel = Selection {
        clients: m.clients(),
        servers: langs,
        tls: TlsMode::ALL.to_vec(),
        sets: names,
        key_types: KeyType::ALL.to_vec(),
        cases: vec![],
        plugins: super::plugin_servers(m, &[]),
        pivot: None,
        shard: None,
    };
    Ok(plan::plan(&sel, &sets)
        .map_err(usage)?
        .iter()
        .flat_map(|c| c.tests.iter().map(|t| t.id(&c.key)).collect::<Vec<_>>())
        .collect())
}

/// Folds the results of another try into the first results, by id.
pub fn merge(tests: &mut [TestResult], again: Vec<TestResult>) {
    let mut by_id: BTreeMap<String, TestResult> = again.into_iter().map(|t| (t.id.clone(), t)).collect();
    for t in tests.iter_mut() {
        if let Some(next) = by_id.remove(&t.id) {
            verdict::merge_attempt(t, next);
        }
    }
}

/// Names a culprit for every red test, running the reference pairs this run lacks.
pub async fn assign_blame(
    tests: &mut [TestResult],
    runner: &Arc<Runner>,
    sets: &BTreeMap<String, CaseSet>,
    quiet: Arc<dyn Fn(&TestResult) + Send + Sync>,
) {
    let mut known: BTreeMap<String, Outcome> = tests.iter().map(|t| (t.id.clone(), t.outcome)).collect();
    // A side that could not run tells nothing about the other: no blame.
    let blamable = |t: &TestResult| t.outcome.is_red() && t.outcome != Outcome::Interrupted && t.unavailable.is_none();
    let red: Vec<&TestResult> = tests.iter().filter(|t| blamable(t)).collect();
    let mut missing = std::collections::HashSet::new();
    let mut wanted = Vec::new();
    for t in &red {
        if t.cell.client == blame::REFERENCE || t.cell.server == blame::REFERENCE {
            continue;
        }
        let (a, b) = blame::reference_ids(t);
        for (id, client, server) in [
            (a, &t.cell.client, blame::REFERENCE.to_string()),
            (b, &blame::REFERENCE.to_string(), t.cell.server.clone()),
        ] {
            if !known.contains_key(&id) && runner.matrix.languages.contains_key(blame::REFERENCE) {
                missing.insert(id);
                wanted.push((
                    CellKey {
                        client: client.clone(),
                        server: server.clone(),
                        net: t.cell.net.filter(|_| server != blame::REFERENCE),
                        ..t.cell.clone()
                    },
                    t.set.clone(),
                    t.case.clone(),
                ));
            }
        }
    }
    if !missing.is_empty() {
        note!("blame: running {} tests against the reference", missing.len());
        let (extra, _) = runner.clone().run(cells_for(&missing, sets, &wanted), 1, quiet).await;
        known.extend(extra.into_iter().map(|t| (t.id, t.outcome)));
    }
    let run = tests.to_vec();
    for t in tests.iter_mut().filter(|t| blamable(t)) {
        t.blame = Some(blame::blame_in_run(t, |id| known.get(id).copied(), &run));
    }
}
