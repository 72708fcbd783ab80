//! Everything a bench run measured (`bench.json`), and its comparison with
//! an earlier one.
use super::{Op, OpResult, Settings, Spread};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One client against one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub client: String,
    pub server: String,
    pub ops: BTreeMap<Op, OpResult>,
    /// Why the pair (or some of its operations) could not be measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// ghz against one server: the dedicated load generator beside the clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    pub server: String,
    pub tool: String,
    pub ops: BTreeMap<Op, OpResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where and how the numbers were taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub started: String,
    /// The whole run, builds included, in seconds.
    #[serde(default)]
    pub duration_s: f64,
    pub command: String,
    pub commit: Option<String>,
    /// CPUs this process may use.
    pub cores: usize,
    /// How servers and clients were placed on the CPUs (or why not).
    pub placement: String,
    /// Language → its stack (the server's own `Inventory.stack` when it answered).
    pub stacks: BTreeMap<String, String>,
}

/// A throughput that moved beyond the noise band since the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `client → server`, or `ghz → server`.
    pub pair: String,
    pub op: Op,
    pub before: f64,
    pub after: f64,
    /// after ÷ before − 1.
    pub change: f64,
    /// The larger relative spread of the two runs' repeats (at least `MIN_BAND`).
    pub band: f64,
}

/// Compared with an earlier run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub file: String,
    pub started: String,
    pub changes: Vec<Change>,
    /// Pairs and operations measured in both runs.
    pub compared: usize,
}

/// Everything a bench run measured (`bench.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub settings: Settings,
    pub environment: Environment,
    pub pairs: Vec<Pair>,
    pub anchors: Vec<Anchor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

/// No change under 5% is flagged, however close the repeats.
pub const MIN_BAND: f64 = 0.05;

/// Throughputs by `pair` label and operation.
fn medians(r: &BenchReport) -> BTreeMap<(String, Op), &Spread> {
    let pairs = r.pairs.iter().flat_map(|p| {
        p.ops
            .iter()
            .map(move |(op, o)| (format!("{} → {}", p.client, p.server), *op, o))
    });
    let anchors = r
        .anchors
        .iter()
        .flat_map(|a| a.ops.iter().map(move |(op, o)| (format!("ghz → {}", a.server), *op, o)));
    pairs
        .chain(anchors)
        .filter_map(|(label, op, o)| Some(((label, op), o.throughput.as_ref()?)))
        .collect()
}

/// The throughputs that changed beyond the noise band: the larger relative
/// spread of the two runs' repeats, and at least `MIN_BAND`.
pub fn compare(file: &str, before: &BenchReport, after: &BenchReport) -> Baseline {
    let old = medians(before);
    let new = medians(after);
    let mut compared = 0;
    let mut changes = Vec::new();
    for (key, now) in &new {
        let Some(then) = old.get(key) else { continue };
        if then.median <= 0.0 {
            continue;
        }
        compared += 1;
        let change = now.median / then.median - 1.0;
        let band = now.relative().max(then.relative()).max(MIN_BAND);
        if change.abs() > band {
            changes.push(Change {
                pair: key.0.clone(),
                op: key.1,
                before: then.median,
                after: now.median,
                change,
                band,
            });
        }
    }
    changes.sort_by(|a, b| b.change.abs().total_cmp(&a.change.abs()));
    Baseline {
        file: file.into(),
        started: before.environment.started.clone(),
        changes,
        compared,
    }
}
