//! Every child process the runner starts goes through here: each in its own
//! process group, killed with the runner (parent-death signal), tracked in a
//! registry so Ctrl-C can end them all, and killed as a group when dropped.
//! Nothing else in the crate spawns or signals processes.
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::HashSet;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

fn registry() -> &'static Mutex<HashSet<i32>> {
    static R: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Terminates every process group still running (Ctrl-C): SIGTERM, a short
/// grace, then SIGKILL.
pub fn kill_all(grace: Duration) {
    let groups: Vec<i32> = registry().lock().unwrap().iter().copied().collect();
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGTERM);
    }
    std::thread::sleep(grace);
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
}

/// How a stopped process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Exited on its own once stdin was closed.
    OnStdinClose,
    /// Needed SIGTERM.
    OnSigterm,
    /// Needed SIGKILL.
    Killed,
}

/// A running child in its own process group.
pub struct Proc {
    child: Child,
    pgid: i32,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_task: Option<tokio::task::JoinHandle<()>>,
    reaped: bool,
}

const STDERR_KEEP: usize = 16 * 1024;

/// The program of `argv` and its arguments. A relative program with a
/// slash (`./server`) is relative to `cwd`, where it runs.
fn program<'a>(argv: &'a [String], cwd: &Path) -> std::io::Result<(String, &'a [String])> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command line"))?;
    if program.contains('/') && !program.starts_with('/') {
        Ok((cwd.join(program).to_string_lossy().into_owned(), args))
    } else {
        Ok((program.to_string(), args))
    }
}

/// Starts `argv` in `cwd` with piped stdio. A relative program with a slash
/// (`./server`) is resolved against `cwd`.
pub fn spawn(argv: &[String], cwd: &Path) -> std::io::Result<Proc> {
    spawn_on(argv, cwd, None, &[])
}

/// The CPUs this process may run on (its affinity mask), in order.
pub fn usable_cpus() -> Vec<usize> {
    match nix::sched::sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Restricts the calling process (a child between fork and exec) to `cpu`.
fn pin(cpu: Option<usize>) -> std::io::Result<()> {
    if let Some(cpu) = cpu {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu).map_err(std::io::Error::from)?;
        nix::sched::sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// `spawn`, the child (and every thread and process it starts) on one CPU
/// when `cpu` is given, with `env` added to its environment.
pub fn spawn_on(argv: &[String], cwd: &Path, cpu: Option<usize>, env: &[(String, String)]) -> std::io::Result<Proc> {
    let (program, args) = program(argv, cwd)?;
    let failed = |e: std::io::Error| std::io::Error::new(e.kind(), format!("failed to start {program}: {e}"));
    let mut cmd = match (cpu, death_signal::wrapper()) {
        (None, Some(wrapper)) => {
            death_signal::startable(&program).map_err(failed)?;
            let mut cmd = Command::new(wrapper);
            cmd.args(death_signal::WRAPPER_ARGS).arg(&program);
            cmd
        }
        _ => {
            let mut cmd = Command::new(&program);
            // SAFETY: only async-signal-safe calls (prctl, sched_setaffinity) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                    pin(cpu)
                });
            }
            cmd
        }
    };
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(failed)?;
    let pgid = child.id().expect("a just-spawned child has a pid") as i32;
    registry().lock().unwrap().insert(pgid);
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let mut stderr_task = None;
    if let Some(mut err) = child.stderr.take() {
        let buf = stderr.clone();
        stderr_task = Some(tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                let mut b = buf.lock().unwrap();
                b.extend_from_slice(&chunk[..n]);
                if b.len() > 2 * STDERR_KEEP {
                    let cut = b.len() - STDERR_KEEP;
                    b.drain(..cut);
                }
            }
        }));
    }
    Ok(Proc {
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        child,
        pgid,
        stderr,
        stderr_task,
        reaped: false,
    })
}

impl Proc {
    /// Its process id (its process group's too).
    pub fn pid(&self) -> i32 {
        self.pgid
    }

    /// The CPU time (user + system, its own and its waited-for children's)
    /// it has used so far, from /proc; `None` once reaped or where there is
    /// no /proc.
    pub fn cpu_ms(&self) -> Option<f64> {
        if self.reaped {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pgid)).ok()?;
        super::load::cpu_ms_of_stat(&stat)
    }

    /// Waits (briefly) until everything an exited process wrote to stderr was read.
    pub async fn drain_stderr(&mut self) {
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
        }
    }

    /// The last few KiB the process wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        let b = self.stderr.lock().unwrap();
        let start = b.len().saturating_sub(STDERR_KEEP);
        String::from_utf8_lossy(&b[start..]).trim_end().to_string()
    }

    /// Sends SIGTERM to its process group.
    pub fn terminate(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// Sends SIGINT to its process group.
    pub fn interrupt(&self) {
        self.signal(Signal::SIGINT);
    }

    fn signal(&self, sig: Signal) {
        let _ = killpg(Pid::from_raw(self.pgid), sig);
    }

    fn reap(&mut self) {
        self.reaped = true;
        // The leader is gone; stragglers in its group go too.
        self.signal(Signal::SIGKILL);
        registry().lock().unwrap().remove(&self.pgid);
    }

    /// Has it exited? Does not block.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten();
        if status.is_some() {
            self.reap();
        }
        status
    }

    /// Waits for exit up to `limit`.
    pub async fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        if status.is_some() {
            self.reap();
        }
        status
    }

    /// Kills the whole group at once and reaps the leader.
    pub async fn kill(&mut self) -> Option<ExitStatus> {
        self.signal(Signal::SIGKILL);
        self.wait_for(Duration::from_secs(5)).await
    }

    /// Closes stdin, then escalates to SIGTERM and SIGKILL, each after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> Stopped {
        self.stdin = None;
        if self.wait_for(grace).await.is_some() {
            return Stopped::OnStdinClose;
        }
        self.signal(Signal::SIGTERM);
        if self.wait_for(grace).await.is_some() {
            return Stopped::OnSigterm;
        }
        self.kill().await;
        Stopped::Killed
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(Signal::SIGKILL);
            registry().lock().unwrap().remove(&self.pgid);
        }
    }
}

mod death_signal;
pub mod group;
mod oneshot;
mod port;
pub use oneshot::{passthrough, run_logged, run_logged_on, serve, stop_signal, stop_signal_but, Deaf};
pub use port::free_port;

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn stop_escalates_and_kills_the_whole_group() {
        // Ignores stdin and SIGTERM, and has a grandchild: only SIGKILL of the group ends both.
        let mut p = spawn(&sh("trap '' TERM; sleep 30 & sleep 30"), Path::new("/")).unwrap();
        let pgid = p.pgid;
        assert_eq!(p.stop(Duration::from_millis(200)).await, Stopped::Killed);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!group::alive(pgid), "group {pgid} still has members");
    }

    #[tokio::test]
    async fn a_well_behaved_child_exits_on_stdin_close() {
        let mut p = spawn(&sh("cat >/dev/null; echo bye >&2"), Path::new("/")).unwrap();
        assert_eq!(p.stop(Duration::from_secs(5)).await, Stopped::OnStdinClose);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(p.stderr_tail(), "bye");
    }

    #[test]
    fn a_child_dies_with_the_thread_that_started_it() {
        // The parent-death signal: a child never outlives a runner that was killed.
        let pid = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let p = spawn(&sh("exec sleep 30"), Path::new("/")).unwrap();
                let pid = p.pgid;
                // No kill on drop: only the signal can end it.
                std::mem::forget(p);
                // A wrapper sets the signal before it execs the program: the
                // thread must outlive that (see `death_signal`).
                let runs = || std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep"));
                let start = std::time::Instant::now();
                while !runs() && start.elapsed() < Duration::from_secs(5) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                pid
            })
        })
        .join()
        .unwrap();
        let start = std::time::Instant::now();
        let status = nix::sys::wait::waitpid(Pid::from_raw(pid), None).unwrap();
        assert_eq!(
            status,
            nix::sys::wait::WaitStatus::Signaled(Pid::from_raw(pid), Signal::SIGKILL, false)
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "it ran on for {:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn dropping_kills_the_group() {
        let p = spawn(&sh("sleep 30"), Path::new("/")).unwrap();
        let pgid = p.pgid;
        drop(p);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!group::alive(pgid));
    }
}
