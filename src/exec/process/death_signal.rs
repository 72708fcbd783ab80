//! The parent-death signal without code between fork and exec.
//!
//! Every child must die with the runner (`PR_SET_PDEATHSIG`). A `pre_exec`
//! hook can set it, but any such hook makes the standard library start the
//! child with fork, which copies the runner's page tables (hundreds of MB
//! through a full run, so each start costs milliseconds of CPU on both
//! sides). util-linux's `setpriv --pdeathsig KILL` sets the signal and then
//! execs the program, so the runner can start it with posix_spawn, which
//! copies nothing. Where `setpriv` is missing or too old to know
//! `--pdeathsig`, the runner keeps the hook.
//!
//! One difference: with the hook, the start returns once the program runs,
//! the signal already set; through the wrapper it returns once the wrapper
//! runs, and the wrapper sets the signal a moment later. A runner killed in
//! that moment (about a millisecond after a start) leaves that child behind
//! with its stdin closed, which ends every program that follows CONTRACT.md.
use std::io::Error;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// What goes between the wrapper and the program.
pub const WRAPPER_ARGS: [&str; 3] = ["--pdeathsig", "KILL", "--"];

/// `setpriv`, once it was seen to work here (asked once per process).
pub fn wrapper() -> Option<&'static Path> {
    static WRAPPER: OnceLock<Option<PathBuf>> = OnceLock::new();
    WRAPPER
        .get_or_init(|| {
            let path = which::which("setpriv").ok()?;
            let works = Command::new(&path)
                .args(WRAPPER_ARGS)
                .arg("true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            works.then_some(path)
        })
        .as_deref()
}

/// Whether exec could start `program` (a path, or a name looked up in
/// PATH): the wrapper starts whatever it is given, so without this a missing
/// program would show only as the wrapper's exit status, not as the error
/// the start itself reports.
pub fn startable(program: &str) -> std::io::Result<()> {
    if !program.contains('/') {
        return which::which(program)
            .map(|_| ())
            .map_err(|_| Error::from_raw_os_error(libc::ENOENT));
    }
    let meta = std::fs::metadata(program)?;
    if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::from_raw_os_error(libc::EACCES));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn a_program_exec_could_not_start_is_refused_as_exec_would() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let path = |p: &Path| p.to_str().unwrap().to_string();
        let kind = |p: &str| startable(p).unwrap_err().kind();
        assert_eq!(kind(&path(&dir.path().join("missing"))), ErrorKind::NotFound);
        assert_eq!(kind(&path(&plain)), ErrorKind::PermissionDenied);
        assert_eq!(kind(&path(dir.path())), ErrorKind::PermissionDenied);
        assert_eq!(kind("no-such-program-anywhere"), ErrorKind::NotFound);
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(startable(&path(&plain)).is_ok());
        assert!(startable("sh").is_ok());
    }
}
