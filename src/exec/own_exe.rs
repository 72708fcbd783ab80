//! The runner's own executable as a command to start (`{stock-matrix}` in
//! matrix.toml: the rust reference server and client). A rebuild during a
//! run (`cargo build`) replaces the file under the running process, and the
//! path then names another program, or none; the running image stays
//! reachable as `/proc/PID/exe`, which still starts it.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `path` while it is still this process's executable, else
/// `/proc/PID/exe` (when there is one: Linux).
pub fn runnable(path: &Path) -> PathBuf {
    let running = PathBuf::from(format!("/proc/{}/exe", std::process::id()));
    match (std::fs::metadata(path), std::fs::metadata(&running)) {
        (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino() => path.to_path_buf(),
        (_, Ok(_)) => running,
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_stays_while_it_is_this_program_and_proc_exe_stands_in_after() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(runnable(&exe), exe);
        let running = PathBuf::from(format!("/proc/{}/exe", std::process::id()));
        let dir = tempfile::tempdir().unwrap();
        let replaced = dir.path().join("stock-matrix");
        std::fs::write(&replaced, b"#!/bin/sh\n").unwrap();
        assert_eq!(runnable(&replaced), running, "a file rebuilt in its place");
        assert_eq!(runnable(&dir.path().join("gone")), running, "a file removed");
    }
}
