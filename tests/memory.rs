//! A run short of memory stops the shared servers no cell is using, and
//! starts them again for the cells that need them: every test still passes.
//! (`STOCK_MATRIX_LOW_MEMORY=1` makes every moment short of memory.)
mod common;
use common::*;
use std::process::Command;

#[test]
fn short_of_memory_idle_shared_servers_stop_and_start_again_when_needed() {
    let dir = tempfile::tempdir().unwrap();
    // A second name for the reference: its own server, its own client.
    let extra = format!(
        "[languages.again]\nfolder = \"{d}\"\nstack = \"tonic\"\nserver = [\"{{stock-matrix}}\", \"reference\", \"server\"]\nclient = [\"{{stock-matrix}}\", \"reference\", \"client\"]\n",
        d = dir.path().display()
    );
    let m = matrix_with(dir.path(), &extra, "");
    let reports = dir.path().join("r");
    let out = Command::new(bin())
        .current_dir(repo())
        .env("STOCK_MATRIX_LOW_MEMORY", "1")
        .args([
            "--matrix",
            m.to_str().unwrap(),
            "run",
            "--client",
            "rust,again",
            "--server",
            "rust,again",
        ])
        .args([
            "--tls",
            "none",
            "--set",
            "unary",
            "--jobs",
            "1",
            "--at-most",
            "1",
            "--no-blame",
        ])
        .arg("--reports")
        .arg(&reports)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // One pair at a time, each server needed by two pairs: the second
    // server's start stops the first (idle, still needed), and so on.
    let stops = stderr.lines().filter(|l| l.starts_with("memory: ")).count();
    assert!(stops >= 2, "{stderr}");
    assert!(stderr.contains("no cell was using"), "{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("latest/summary.json")).unwrap()).unwrap();
    let tests = tests_of(&s);
    assert!(tests.len() >= 4 * 5, "{}", tests.len());
    assert!(tests.iter().all(|t| t["outcome"] == "passed"), "{s}");
    assert!(s["floor"]["servers_started"].as_u64().unwrap() >= 3, "{}", s["floor"]);
}
