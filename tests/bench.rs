//! `stock-matrix bench` end to end with the reference: the numbers it
//! writes, and the clients whose numbers it must not take (one call at a
//! time, latencies in the wrong unit, no bench step at all).
mod common;
use common::{bin, broken, matrix_with, repo};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn bench(matrix: &Path, args: &[&str], reports: &Path) -> (Output, Value) {
    let out = Command::new(bin())
        .current_dir(repo())
        .arg("--matrix")
        .arg(matrix)
        .args([
            "bench",
            "--profile",
            "all",
            "--no-ghz",
            "--no-setup",
            "--warmup",
            "0.1",
            "--repeat",
            "2",
        ])
        .args(args)
        .arg("--reports")
        .arg(reports)
        .output()
        .expect("stock-matrix runs");
    let json = std::fs::read_to_string(reports.join("bench/latest/bench.json"))
        .unwrap_or_else(|e| panic!("no bench.json ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr)));
    (out, serde_json::from_str(&json).unwrap())
}

fn pair<'a>(r: &'a Value, client: &str) -> &'a Value {
    r["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["client"] == client)
        .unwrap()
}

#[test]
fn the_reference_against_itself_gives_every_operation_with_its_spread_and_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let m = matrix_with(dir.path(), "", "");
    let reports = dir.path().join("reports");
    let (out, r) = bench(
        &m,
        &[
            "--client",
            "rust",
            "--server",
            "rust",
            "--duration",
            "0.3",
            "--stream-len",
            "10",
        ],
        &reports,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = pair(&r, "rust");
    assert!(p["error"].is_null(), "{p}");
    for op in ["get", "put", "monitor", "batch", "trade"] {
        let o = &p["ops"][op];
        let t = &o["throughput"];
        assert_eq!(t["values"].as_array().unwrap().len(), 2, "{op}: one value per repeat");
        assert!(t["median"].as_f64().unwrap() > 100.0, "{op}: {o}");
        assert!(t["min"].as_f64() <= t["median"].as_f64() && t["median"].as_f64() <= t["max"].as_f64());
        let l = &o["latency_us"];
        assert!(
            l["p50"].as_f64() <= l["p99"].as_f64() && l["p99"].as_f64() <= l["max"].as_f64(),
            "{op}: {l}"
        );
        assert_eq!(o["errors"], 0, "{op}: {o}");
    }
    // Streaming throughput counts messages: Monitor's is stream-len times its calls.
    let calls = p["ops"]["monitor"]["calls"].as_u64().unwrap();
    assert!(calls > 0);
    let run = reports.join("bench/latest");
    let md = std::fs::read_to_string(run.join("bench.md")).unwrap();
    assert!(md.contains("## get (calls/s)") && md.contains("| **rust** |"), "{md}");
    assert!(md.contains("16 calls in flight"), "{md}");
    for op in ["get", "trade"] {
        let svg = std::fs::read_to_string(run.join(format!("svg/{op}-heatmap.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains(">rust<"));
        assert!(run.join(format!("svg/{op}-bars.svg")).is_file());
    }
    // Compared with itself: nothing moved beyond the noise band.
    let baseline = run.canonicalize().unwrap().join("bench.json");
    let args = [
        "--client",
        "rust",
        "--server",
        "rust",
        "--duration",
        "0.3",
        "--op",
        "get",
        "--baseline",
    ];
    let mut args: Vec<&str> = args.to_vec();
    let file = baseline.to_string_lossy().into_owned();
    args.push(&file);
    let (out, again) = bench(&m, &args, &reports);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        again["baseline"]["compared"], 1,
        "get of rust → rust, in both runs: {}",
        again["baseline"]
    );
    assert_eq!(again["baseline"]["file"], file.as_str());
    let md = std::fs::read_to_string(reports.join("bench/latest/bench.md")).unwrap();
    assert!(md.contains("These numbers come from two runs"), "{md}");
}

#[test]
fn numbers_of_a_client_that_does_not_keep_the_load_or_cannot_bench_are_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = broken(dir.path(), "client", &["bench-one-in-flight", "bench-in-millis"]);
    extra.push_str(&format!(
        "[languages.old]\nfolder = \"{}\"\nstack = \"a client without bench\"\nserver = [\"{{stock-matrix}}\", \"reference\", \"server\"]\nclient = [\"sh\", \"-c\", \"echo 'invalid step line: unknown field bench' >&2; exit 2\", \"old\"]\n",
        dir.path().display()
    ));
    let m = matrix_with(dir.path(), &extra, "");
    let reports = dir.path().join("reports");
    let clients = "rust,bench-one-in-flight,bench-in-millis,old";
    let (out, r) = bench(
        &m,
        &[
            "--client",
            clients,
            "--server",
            "rust",
            "--duration",
            "0.4",
            "--op",
            "get",
        ],
        &reports,
    );
    assert_eq!(out.status.code(), Some(1), "a pair not measured makes the run red");
    assert!(pair(&r, "rust")["error"].is_null(), "{}", pair(&r, "rust"));
    for broken in ["bench-one-in-flight", "bench-in-millis"] {
        let p = pair(&r, broken);
        let why = p["error"].as_str().unwrap_or_default();
        assert!(why.contains("Little's law"), "{broken}: {p}");
        assert!(p["ops"]["get"].is_null(), "{broken}: its numbers are not reported: {p}");
    }
    let one = pair(&r, "bench-one-in-flight")["error"].as_str().unwrap().to_string();
    assert!(one.contains("kept 1.") || one.contains("kept 0.9"), "{one}");
    let old = pair(&r, "old")["error"].as_str().unwrap().to_string();
    assert!(
        old.contains("ended before step setup") && old.contains("unknown field bench"),
        "{old}"
    );
    let md = std::fs::read_to_string(reports.join("bench/latest/bench.md")).unwrap();
    assert!(md.contains("## Not measured") && md.contains("- old → rust:"), "{md}");
}
