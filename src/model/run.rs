//! A run's results as data: outcomes, test results, cell timings and the
//! run summary that every reporter renders (types only).
use crate::model::cell::CellKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How one test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every step returned what the case expects.
    Passed,
    /// The implementation answered, but not as the case expects.
    Failed,
    /// The test could not run as it should: a build failed, a toolchain is
    /// missing, the server did not start, the client crashed or hung.
    Error,
    /// Not run: the run was interrupted.
    Interrupted,
    /// Red, but on the known-failing list (its reason is the first reason).
    ExpectedFailure,
    /// Passed only on a retry: red unless on the known-flaky list.
    Flaky,
    /// Flaky and on the known-flaky list.
    KnownFlaky,
}

impl Outcome {
    /// Does this outcome fail the run?
    pub fn is_red(self) -> bool {
        !matches!(self, Outcome::Passed | Outcome::ExpectedFailure | Outcome::KnownFlaky)
    }
}

/// One earlier try of a test that was retried.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub outcome: Outcome,
    pub reasons: Vec<String>,
    pub duration_ms: f64,
}

/// One test's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestResult {
    pub id: String,
    pub cell: CellKey,
    pub set: String,
    pub case: String,
    pub description: String,
    pub outcome: Outcome,
    /// Why it is red, one reason per line.
    pub reasons: Vec<String>,
    pub duration_ms: f64,
    /// One command that reruns exactly this test.
    pub reproduce: String,
    /// What the steps that allow several statuses ended with (`judge::choices`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// The client's stderr tail, when it is red.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_stderr: String,
    /// The server's stderr tail, when it is red.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_stderr: String,
    /// Earlier tries, when it was retried (`--retries`, `--stress`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Who is likely at fault, from the same case against the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blame: Option<String>,
    /// The language that could not run (missing toolchain, failed build):
    /// the test is an ERROR that says nothing about the other side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// What a cell's processes cost and did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellInfo {
    pub key: CellKey,
    /// Server start to health SERVING, when it got there.
    pub server_ready_ms: Option<f64>,
    /// Client start to its first output line, per client process.
    pub client_first_line_ms: Vec<f64>,
    pub duration_ms: f64,
    /// The tests the cell ran (0 in older summaries): a later run trusts
    /// this cell's time as its pair's cost only for the same tests.
    #[serde(default)]
    pub tests: usize,
    /// Contract deviations that fail no case (e.g. ignoring stdin EOF).
    pub notes: Vec<String>,
}

/// The CPU (user + system) of one process the run started, read when it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessCpu {
    /// `client` or `server`.
    pub role: String,
    pub language: String,
    /// Which one: `client=C/server=S` (a pair's), a cell id, or `server=S/tls=M`.
    pub process: String,
    pub cpu_ms: f64,
    /// When a client process's pair began and ended, since the run's
    /// cells began (servers and older summaries: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_ms: Option<[f64; 2]>,
}

/// How busy the run was at one moment: sampled about once a second while
/// its cells ran, so wall ÷ floor can be explained by when cores sat idle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadSample {
    /// Since the cells began (retries and later key types included).
    pub at_ms: f64,
    /// Client processes running.
    pub running: usize,
    /// Idle cores over about the last second.
    pub idle_cores: f64,
    /// The share of the memory still available (`None`: not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_free: Option<f64>,
}

/// One language's build in this run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildInfo {
    /// "built", "up to date", "nothing to build", or "failed: …" / "unavailable: …".
    pub status: String,
    pub duration_ms: f64,
    pub ok: bool,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub started_at: String,
    pub duration_ms: f64,
    /// Wall time of the cells alone (builds excluded), retries included.
    #[serde(default)]
    pub execute_ms: f64,
    /// Client processes that always ran at once (0 when not known, e.g. merged shards).
    #[serde(default)]
    pub jobs: usize,
    /// Client processes at once at most, more than `jobs` while cores were idle (0: not known).
    #[serde(default)]
    pub at_most: usize,
    /// The most client processes that did run at once.
    #[serde(default)]
    pub most_at_once: usize,
    /// CPU time (user + system) of the runner and of the processes it started
    /// and reaped, over the cells (0: not known).
    #[serde(default)]
    pub cpu_ms: f64,
    /// One client process ran every cell of a pair (else one per cell).
    #[serde(default)]
    pub per_pair: bool,
    /// The machine's cores (0 when not known).
    #[serde(default)]
    pub cores: usize,
    pub profile: Option<String>,
    pub command: String,
    pub builds: BTreeMap<String, BuildInfo>,
    pub cells: Vec<CellInfo>,
    pub tests: Vec<TestResult>,
    pub interrupted: bool,
    /// The CPU of each client and server process (empty in older summaries).
    #[serde(default)]
    pub processes: Vec<ProcessCpu>,
    /// How busy the run was, about once a second (empty in older summaries).
    #[serde(default)]
    pub load: Vec<LoadSample>,
    /// Run-level problems that fail it (stale known-failing patterns).
    #[serde(default)]
    pub problems: Vec<String>,
}

/// Counts per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub error: usize,
    pub interrupted: usize,
    pub expected_failure: usize,
    /// Flaky tests, listed or not.
    pub flaky: usize,
    /// Of those, the ones on the known-flaky list (not red).
    pub known_flaky: usize,
    /// Tests that fail the run (see `Outcome::is_red`).
    pub red: usize,
    /// Errors because a language could not run (also counted in `error`).
    pub unavailable: usize,
}

impl Counts {
    pub fn of<'a>(tests: impl IntoIterator<Item = &'a TestResult>) -> Counts {
        let mut c = Counts::default();
        for t in tests {
            c.red += usize::from(t.outcome.is_red());
            c.unavailable += usize::from(t.unavailable.is_some() && t.outcome == Outcome::Error);
            match t.outcome {
                Outcome::Passed => c.passed += 1,
                Outcome::Failed => c.failed += 1,
                Outcome::Error => c.error += 1,
                Outcome::Interrupted => c.interrupted += 1,
                Outcome::ExpectedFailure => c.expected_failure += 1,
                Outcome::Flaky => c.flaky += 1,
                Outcome::KnownFlaky => {
                    c.flaky += 1;
                    c.known_flaky += 1;
                }
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.passed + self.failed + self.error + self.interrupted + self.expected_failure + self.flaky
    }
}

impl RunSummary {
    pub fn counts(&self) -> Counts {
        Counts::of(&self.tests)
    }
}

/// Median of some samples (None when empty).
pub fn median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::model::tls::{KeyType, TlsMode};

    pub fn key(client: &str, server: &str, tls: TlsMode) -> CellKey {
        CellKey {
            client: client.into(),
            server: server.into(),
            tls,
            key_type: KeyType::EcP256,
            net: None,
        }
    }

    pub fn result(client: &str, server: &str, tls: TlsMode, case: &str, outcome: Outcome) -> TestResult {
        let cell = key(client, server, tls);
        TestResult {
            id: format!("{}/set=unary/case={case}", cell.id()),
            cell,
            set: "unary".into(),
            case: case.into(),
            description: String::new(),
            outcome,
            reasons: if outcome.is_red() {
                vec!["step 0 Get: status: expected OK, got NOT_FOUND \"<gone>\"".into()]
            } else {
                vec![]
            },
            duration_ms: 1.5,
            reproduce: format!(
                "stock-matrix run --client {client} --server {server} --tls {tls} --set unary --case {case}"
            ),
            choices: vec![],
            client_stderr: String::new(),
            server_stderr: String::new(),
            attempts: vec![],
            blame: None,
            unavailable: None,
        }
    }

    pub fn summary(tests: Vec<TestResult>) -> RunSummary {
        RunSummary {
            run_id: "20261124-150000".into(),
            started_at: "2026-11-24T15:00:00Z".into(),
            duration_ms: 1234.0,
            execute_ms: 1000.0,
            jobs: 2,
            at_most: 0,
            most_at_once: 0,
            cpu_ms: 0.0,
            per_pair: false,
            cores: 0,
            profile: Some("quick".into()),
            command: "stock-matrix run --profile quick".into(),
            builds: BTreeMap::new(),
            cells: vec![CellInfo {
                key: key("go", "rust", TlsMode::None),
                server_ready_ms: Some(3.0),
                client_first_line_ms: vec![5.0],
                duration_ms: 20.0,
                tests: 1,
                notes: vec![],
            }],
            tests,
            interrupted: false,
            problems: vec![],
            load: vec![],
            processes: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
