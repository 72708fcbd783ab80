//! What the end-to-end tests share: running the real binary, reading its
//! summary back, and matrix files with deliberately broken languages.
#![allow(dead_code, reason = "each test binary uses a different part of the helpers")]
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stock-matrix")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs stock-matrix with `args` from the repo root; returns output and the parsed summary.
pub fn run(args: &[&str], reports: &Path) -> (Output, Value) {
    run_with(args, reports, |_| {})
}

/// As `run`, with `prepare` applied to the command before it starts (its
/// limits, its environment).
pub fn run_with(args: &[&str], reports: &Path, prepare: impl FnOnce(&mut Command)) -> (Output, Value) {
    let mut cmd = Command::new(bin());
    cmd.current_dir(repo()).args(args).arg("--reports").arg(reports);
    prepare(&mut cmd);
    let out = cmd.output().expect("stock-matrix runs");
    let summary = std::fs::read_to_string(reports.join("latest/summary.json"))
        .unwrap_or_else(|e| panic!("no summary ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr)));
    (out, serde_json::from_str(&summary).unwrap())
}

pub fn tests_of(summary: &Value) -> &Vec<Value> {
    summary["tests"].as_array().unwrap()
}

pub fn find<'a>(summary: &'a Value, id: &str) -> &'a Value {
    tests_of(summary)
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no test {id}"))
}

pub fn reasons(t: &Value) -> String {
    t["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every operation set of matrix.toml.
pub const SETS: [&str; 24] = [
    "unary",
    "server-stream",
    "client-stream",
    "bidi",
    "metadata",
    "errors",
    "deadlines",
    "large",
    "compression",
    "tls",
    "cancellation",
    "concurrency",
    "flow-control",
    "kv-compat",
    "kv-only",
    "faults",
    "keepalive",
    "h2-servers",
    "h2-clients",
    "health",
    "reflection",
    "usage",
    "lifecycle",
    "client-exit",
];

/// A matrix file with the repo's case sets and extra languages.
pub fn matrix_with(dir: &Path, extra: &str, run: &str) -> PathBuf {
    let cases = repo().join("cases");
    let sets: String = SETS
        .iter()
        .map(|s| format!("{s} = \"{}\"\n", cases.join(format!("{s}.toml")).display()))
        .collect();
    let text = format!(
        "[run]\n{run}\n[sets]\n{sets}\n[languages.rust]\nfolder = \"{root}\"\nstack = \"tonic\"\nserver = [\"{{stock-matrix}}\", \"reference\", \"server\"]\nclient = [\"{{stock-matrix}}\", \"reference\", \"client\"]\n{extra}\n[profiles.all]\nclients = [\"*\"]\nservers = [\"*\"]\ntls = [\"*\"]\nsets = [\"*\"]\n",
        root = dir.display()
    );
    let path = dir.join("matrix.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes a case file `NAME.toml` beside the matrix file and registers it as
/// the set NAME.
pub fn add_set(matrix: &Path, name: &str, cases: &str) {
    let file = matrix.with_file_name(format!("{name}.toml"));
    std::fs::write(&file, cases).unwrap();
    let text = std::fs::read_to_string(matrix)
        .unwrap()
        .replace("[sets]\n", &format!("[sets]\n{name} = \"{}\"\n", file.display()));
    std::fs::write(matrix, text).unwrap();
}

/// `[languages.F]` tables for the reference with `--break F`, on the given
/// side (`server` or `client`); the other side is the plain reference.
pub fn broken(dir: &Path, side: &str, faults: &[&str]) -> String {
    faults
        .iter()
        .map(|f| {
            let (server, client) = if side == "server" { (format!(", \"--break\", \"{f}\""), String::new()) } else { (String::new(), format!(", \"--break\", \"{f}\"")) };
            format!(
                "[languages.{f}]\nfolder = \"{}\"\nstack = \"tonic, broken\"\nserver = [\"{{stock-matrix}}\", \"reference\", \"server\"{server}]\nclient = [\"{{stock-matrix}}\", \"reference\", \"client\"{client}]\n",
                dir.display()
            )
        })
        .collect()
}
