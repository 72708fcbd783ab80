//! A run's folder under `reports/`: its id, the files written into it, the
//! `latest` link, and `merge`, which makes one folder from a sharded run's.
use crate::app::{setup_err, usage, Exit};
use crate::cli;
use crate::report::{junit, markdown, merge, RunSummary};
use std::path::{Path, PathBuf};

/// A run's id: its start time (sortable) and the process id.
fn run_id() -> String {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    format!(
        "{}-{}",
        now.replace([':', '-'], "").replace('T', "-").trim_end_matches('Z').replace('.', "-"),
        std::process::id()
    )
}

/// Makes a new run folder under `reports`. Returns `reports` made absolute
/// (implementations run in their own folders and get certificate paths), the
/// run id, and the folder.
pub fn create(reports: &Path) -> Result<(PathBuf, String, PathBuf), Exit> {
    let id = run_id();
    let reports = std::path::absolute(reports).map_err(setup_err)?;
    let dir = reports.join(&id);
    std::fs::create_dir_all(&dir).map_err(|e| setup_err(format!("failed to create {}: {e}", dir.display())))?;
    Ok((reports, id, dir))
}

/// This process's command line as the reports show it.
pub fn command_line() -> String {
    std::iter::once("stock-matrix".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes junit.xml, summary.md and summary.json, points `latest` at `dir`,
/// and appends the Markdown to `$GITHUB_STEP_SUMMARY` when set.
pub fn write_reports(dir: &Path, reports: &Path, s: &RunSummary) -> Result<(), Exit> {
    let w =
        |name: &str, text: String| std::fs::write(dir.join(name), text).map_err(|e| setup_err(format!("failed to write {}: {e}", dir.join(name).display())));
    let md = markdown::render(s);
    w("junit.xml", junit::render(s))?;
    w("summary.md", md.clone())?;
    w("summary.json", serde_json::to_string_pretty(s).expect("json"))?;
    let latest = reports.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.file_name().expect("run folder name"), &latest);
    if let Ok(path) = std::env::var("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(path) {
            let _ = f.write_all(md.as_bytes());
        }
    }
    Ok(())
}

/// `stock-matrix merge PART…`: one run folder from the shards' summaries.
pub fn merge_shards(parts: &[PathBuf], reports: &Path) -> Result<i32, Exit> {
    let mut loaded = Vec::new();
    for p in parts {
        let file = if p.is_dir() { p.join("summary.json") } else { p.clone() };
        let text = std::fs::read_to_string(&file).map_err(|e| usage(format!("merge: cannot read {}: {e}", file.display())))?;
        let s: RunSummary = serde_json::from_str(&text).map_err(|e| usage(format!("merge: {}: {e}", file.display())))?;
        loaded.push((p.display().to_string(), s));
    }
    // Merge before making the folder: parts that do not merge leave nothing behind.
    let mut summary = merge::merge(&command_line(), loaded).map_err(usage)?;
    let (reports, id, dir) = create(reports)?;
    summary.run_id = id;
    write_reports(&dir, &reports, &summary)?;
    let c = summary.counts();
    note!(
        "merged {} part(s): {} tests, {} passed, {} red; reports in {}",
        parts.len(),
        c.total(),
        c.passed,
        c.red,
        dir.display()
    );
    Ok(if c.red > 0 || !summary.problems.is_empty() || summary.interrupted {
        cli::EXIT_FAILED
    } else {
        cli::EXIT_OK
    })
}
