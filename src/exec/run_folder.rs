//! A run's folder under `reports/`: its id, the files written into it, the
//! `latest` link.
use crate::model::run::RunSummary;
use crate::report::{junit, markdown};
use std::path::{Path, PathBuf};

/// A run's id: its start time (sortable) and the process id.
fn run_id() -> String {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    format!(
        "{}-{}",
        now.replace([':', '-'], "")
            .replace('T', "-")
            .trim_end_matches('Z')
            .replace('.', "-"),
        std::process::id()
    )
}

/// Makes a new run folder under `reports`. Returns `reports` made absolute
/// (implementations run in their own folders and get certificate paths), the
/// run id, and the folder.
pub fn create(reports: &Path) -> Result<(PathBuf, String, PathBuf), FolderError> {
    let id = run_id();
    let at = |path: PathBuf| move |source| FolderError::Create { path, source };
    let reports = std::path::absolute(reports).map_err(at(reports.to_path_buf()))?;
    let dir = reports.join(&id);
    std::fs::create_dir_all(&dir).map_err(at(dir.clone()))?;
    Ok((reports, id, dir))
}

/// A run folder or report that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("failed to create the run folder {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("failed to write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Points `reports/latest` at the run folder `dir` (a relative link).
pub fn point_latest(reports: &Path, dir: &Path) {
    let latest = reports.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.file_name().expect("run folder name"), &latest);
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
pub fn write_reports(dir: &Path, reports: &Path, s: &RunSummary) -> Result<(), FolderError> {
    let w = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| FolderError::Write { path, source })
    };
    let md = markdown::render(s);
    w("junit.xml", junit::render(s))?;
    w("summary.md", md.clone())?;
    let mut json = serde_json::to_value(s).expect("json");
    json["floor"] = serde_json::to_value(crate::report::floor::floor(s)).expect("json");
    w("summary.json", serde_json::to_string_pretty(&json).expect("json"))?;
    point_latest(reports, dir);
    if let Ok(path) = std::env::var("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(path) {
            let _ = f.write_all(md.as_bytes());
        }
    }
    Ok(())
}
