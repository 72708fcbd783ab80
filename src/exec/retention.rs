//! Keeps `reports/` from growing without bound: after a run, only the newest
//! `keep_reports` run folders stay. Which folders go is a pure decision over
//! folder names; `prune` only carries it out.
use std::path::{Path, PathBuf};

/// Whether a folder name is a run id (`YYYYMMDD-HHMMSS-mmm-PID`, see
/// `app::run_id`). Anything else in `reports/` (the README, `latest`, a
/// folder a person made) is never touched.
pub fn is_run_folder(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let digits = |s: &str, n: Option<usize>| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && n.is_none_or(|n| s.len() == n)
    };
    parts.len() == 4
        && digits(parts[0], Some(8))
        && digits(parts[1], Some(6))
        && digits(parts[2], Some(3))
        && digits(parts[3], None)
}

/// The run folders to remove so that the newest `keep` remain (0 keeps all).
/// `current` (the run just written) is never removed.
pub fn to_prune(names: &[String], keep: usize, current: &str) -> Vec<String> {
    if keep == 0 {
        return Vec::new();
    }
    let mut runs: Vec<&String> = names.iter().filter(|n| is_run_folder(n)).collect();
    // Run ids start with their start time, so name order is age order.
    runs.sort();
    let excess = runs.len().saturating_sub(keep);
    runs.into_iter()
        .take(excess)
        .filter(|n| n.as_str() != current)
        .cloned()
        .collect()
}

/// Removes the old run folders under `reports`; returns the ones removed and
/// the ones that could not be (with why), so the caller can say so.
pub fn prune(reports: &Path, keep: usize, current: &str) -> (Vec<PathBuf>, Vec<String>) {
    let Ok(entries) = std::fs::read_dir(reports) else {
        return (Vec::new(), Vec::new());
    };
    let names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let (mut removed, mut failed) = (Vec::new(), Vec::new());
    for name in to_prune(&names, keep, current) {
        let path = reports.join(&name);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(e) => failed.push(format!("{}: {e}", path.display())),
        }
    }
    (removed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_run_folders_count_and_the_oldest_go() {
        let all = names(&[
            "20261124-210442-003-24646",
            "latest",
            "README.md",
            "my-notes",
            "20261123-090000-000-1",
            "20261124-120000-500-777",
            "2026112-120000-500-777",
        ]);
        assert_eq!(
            to_prune(&all, 2, "20261124-210442-003-24646"),
            names(&["20261123-090000-000-1"])
        );
        assert_eq!(
            to_prune(&all, 1, "20261124-210442-003-24646"),
            names(&["20261123-090000-000-1", "20261124-120000-500-777"])
        );
        assert!(to_prune(&all, 3, "x").is_empty());
        assert!(to_prune(&all, 0, "x").is_empty(), "0 keeps everything");
    }

    #[test]
    fn the_current_run_is_never_removed() {
        // A clock set back makes the current run sort first.
        let all = names(&["20301124-000000-000-1", "20201124-000000-000-2"]);
        assert!(to_prune(&all, 1, "20201124-000000-000-2").is_empty());
    }

    #[test]
    fn prune_removes_folders_and_leaves_the_rest() {
        let dir = std::env::temp_dir().join(format!("stock-matrix-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for n in [
            "20261120-000000-000-1",
            "20261121-000000-000-1",
            "20261122-000000-000-1",
            "keep-me",
        ] {
            std::fs::create_dir_all(dir.join(n)).unwrap();
        }
        std::fs::write(dir.join("README.md"), "x").unwrap();
        let (removed, failed) = prune(&dir, 2, "20261122-000000-000-1");
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(removed, vec![dir.join("20261120-000000-000-1")]);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            names(&["20261121-000000-000-1", "20261122-000000-000-1", "README.md", "keep-me"])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
