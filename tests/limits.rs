//! The runner raises its soft limit on open files to the hard limit before a
//! run: it holds pipes to every client process and the sockets of its fault
//! proxies and misbehaving peers, and below what it needs the fault cases
//! went red for the wrong reason (a client not started: "Too many open
//! files"; a proxy that could not accept: DEADLINE_EXCEEDED where UNAVAILABLE
//! is expected).
mod common;
use common::*;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use std::os::unix::process::CommandExt;

/// Far below what the run below needs: before the runner raised it, 4 of
/// its 20 tests were red.
const LOW: u64 = 32;

#[test]
fn a_run_started_with_a_low_open_file_limit_raises_it_and_passes() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= 1024,
        "this machine's hard limit on open files is {hard}: too low to show anything"
    );
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "--no-setup",
        "--client",
        "rust",
        "--server",
        "rust",
        "--tls",
        "none",
        "--set",
        "faults,unary",
    ];
    let (out, summary) = run_with(&args, dir.path(), |cmd| {
        // SAFETY: only an async-signal-safe setrlimit between fork and exec.
        unsafe {
            cmd.pre_exec(move || setrlimit(Resource::RLIMIT_NOFILE, LOW, hard).map_err(std::io::Error::from));
        }
    });
    let red: Vec<String> = tests_of(&summary)
        .iter()
        .filter(|t| t["outcome"] != "passed")
        .map(|t| format!("{}: {}", t["id"], reasons(t)))
        .collect();
    assert!(red.is_empty(), "{red:#?}");
    assert_eq!(tests_of(&summary).len(), 23);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
