//! Processes run to completion (builds, set-up scripts, tools, with their
//! output in a log) and in the foreground for a person (a client's output
//! passed through, a server started by hand), each in its own group and
//! tracked like every other child.
use super::{pin, program, registry};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Runs `argv` in `cwd` to completion with stdout and stderr appended to
/// `log` and no stdin, killing its group after `limit`.
pub async fn run_logged(argv: &[String], cwd: &Path, log: &Path, limit: Duration) -> Result<ExitStatus, String> {
    run_logged_on(argv, cwd, log, limit, None).await
}

/// `run_logged`, on one CPU when `cpu` is given.
pub async fn run_logged_on(
    argv: &[String],
    cwd: &Path,
    log: &Path,
    limit: Duration,
    cpu: Option<usize>,
) -> Result<ExitStatus, String> {
    let (program, args) = program(argv, cwd).map_err(|e| e.to_string())?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("failed to open {}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&program);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: only an async-signal-safe call (sched_setaffinity) between fork and exec.
    unsafe {
        cmd.pre_exec(move || pin(cpu));
    }
    let mut child = cmd.spawn().map_err(|e| format!("failed to start {program}: {e}"))?;
    let pgid = child.id().unwrap_or_default() as i32;
    registry().lock().unwrap().insert(pgid);
    let result = tokio::time::timeout(limit, child.wait()).await;
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    registry().lock().unwrap().remove(&pgid);
    match result {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(e)) => Err(format!("waiting for {program}: {e}")),
        Err(_) => {
            let _ = child.wait().await;
            Err(format!("did not finish within {} s (killed)", limit.as_secs()))
        }
    }
}

/// Runs a command in the foreground for a person: stdin and stderr
/// inherited, each stdout line passed through `map`. Returns its exit code.
pub async fn passthrough(
    argv: &[String],
    cwd: &Path,
    input: Option<String>,
    map: impl Fn(&str) -> String,
) -> std::io::Result<i32> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (program, args) = program(argv, cwd)?;
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::inherit()
    };
    let mut child = Command::new(&program)
        .args(args)
        .current_dir(cwd)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    if let (Some(text), Some(mut pipe)) = (input, child.stdin.take()) {
        // Written aside: a client may print before it has read all its input.
        tokio::spawn(async move {
            let _ = pipe.write_all(text.as_bytes()).await;
            let _ = pipe.shutdown().await;
        });
    }
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    while let Some(line) = lines.next_line().await? {
        use std::io::Write;
        // A reader that went away (`| head`) ends the output, not with a panic.
        if writeln!(std::io::stdout(), "{}", map(&line)).is_err() {
            let _ = child.start_kill();
            break;
        }
    }
    Ok(child.wait().await?.code().unwrap_or(1))
}

/// Runs a server started by hand in the foreground, with its output on the
/// terminal. Its stdin is a pipe this process holds, so it neither sees the
/// terminal (a `&` job is not stopped by SIGTTIN, a script's /dev/null does
/// not end it at once) nor outlives this process: when `stock-matrix` ends,
/// however it ends, the pipe closes and the contract makes the server exit.
/// SIGINT, SIGTERM and SIGHUP stop its whole group. Returns the exit code.
pub async fn serve(argv: &[String], cwd: &Path, env: &[(String, String)]) -> std::io::Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let (program, args) = program(argv, cwd)?;
    let mut cmd = Command::new(&program);
    cmd.args(args)
        .envs(env.iter().cloned())
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe calls (prctl) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("failed to start {program}: {e}")))?;
    let pgid = Pid::from_raw(child.id().expect("a just-spawned child has a pid") as i32);
    let stdin = child.stdin.take();
    let (mut int, mut term, mut hup) = (
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
        signal(SignalKind::hangup())?,
    );
    let code = tokio::select! {
        status = child.wait() => return Ok(status?.code().unwrap_or(1)),
        _ = int.recv() => 130,
        _ = term.recv() => 143,
        _ = hup.recv() => 129,
    };
    drop(stdin);
    let _ = killpg(pgid, Signal::SIGTERM);
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    Ok(code)
}

/// Resolves when the process should stop: SIGTERM, SIGINT or stdin EOF.
pub async fn stop_signal() {
    stop_signal_but(Deaf::default()).await
}

/// Stops `stop_signal_but` does not hear (a signal is still caught, so it
/// does not kill the process): the reference server's lifecycle faults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deaf {
    pub stdin: bool,
    pub sigterm: bool,
    pub sigint: bool,
}

/// `stop_signal`, deaf to the stops `deaf` names.
pub async fn stop_signal_but(deaf: Deaf) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    let term = async {
        term.recv().await;
        if deaf.sigterm {
            std::future::pending::<()>().await;
        }
    };
    let int = async {
        let _ = tokio::signal::ctrl_c().await;
        if deaf.sigint {
            std::future::pending::<()>().await;
        }
    };
    let stdin_eof = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        if deaf.stdin {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = term => {}
        _ = int => {}
        _ = stdin_eof => {}
    }
}
