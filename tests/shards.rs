//! A sharded run (`run --shard K/N` on several CI runners) merged back into
//! one report: every test once, the same verdicts as an unsharded run.
mod common;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn stock_matrix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stock-matrix"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("stock-matrix runs")
}

/// Test id → outcome of the run in `reports/latest`.
fn outcomes(reports: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(reports.join("latest/summary.json")).expect("a summary");
    let s: Value = serde_json::from_str(&text).unwrap();
    s["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn shards_merge_into_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    // Two pairs (shards split pairs): rust -> rust and rust2 -> rust.
    let extra = format!(
        "[languages.rust2]\nfolder = \"{d}\"\nstack = \"tonic\"\nserver = [\"{{stock-matrix}}\", \"reference\", \"server\"]\nclient = [\"{{stock-matrix}}\", \"reference\", \"client\"]\n",
        d = dir.path().display()
    );
    let m = common::matrix_with(dir.path(), &extra, "");
    let select = [
        "--matrix",
        m.to_str().unwrap(),
        "run",
        "--client",
        "rust,rust2",
        "--server",
        "rust",
        "--tls",
        "none,mtls",
        "--set",
        "unary,errors,tls",
    ];
    let whole = stock_matrix(&[&select[..], &["--reports", &path("whole")]].concat());
    assert!(whole.status.success(), "{}", String::from_utf8_lossy(&whole.stderr));
    for k in ["1/2", "2/2"] {
        let out = stock_matrix(
            &[
                &select[..],
                &["--shard", k, "--reports", &path(&format!("shard{}", &k[..1]))],
            ]
            .concat(),
        );
        assert!(
            out.status.success(),
            "shard {k}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (one, two) = (
        outcomes(&dir.path().join("shard1")),
        outcomes(&dir.path().join("shard2")),
    );
    assert!(!one.is_empty() && !two.is_empty(), "each shard ran something");

    let merged = stock_matrix(&[
        "merge",
        &path("shard1/latest"),
        &path("shard2/latest"),
        "--reports",
        &path("merged"),
    ]);
    assert!(merged.status.success(), "{}", String::from_utf8_lossy(&merged.stderr));
    assert_eq!(
        outcomes(&dir.path().join("merged")),
        outcomes(&dir.path().join("whole"))
    );
    let junit = std::fs::read_to_string(dir.path().join("merged/latest/junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), one.len() + two.len());

    // The same shard twice is not a sharded run: a usage error that says why.
    let twice = stock_matrix(&[
        "merge",
        &path("shard1/latest"),
        &path("shard1/latest"),
        "--reports",
        &path("bad"),
    ]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("is in both"),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );
}
