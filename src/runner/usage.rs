//! A usage case's test: a client process of its own, given the case's
//! options and its one stdin line, then stdin's end; judged on how it ended
//! and what it printed (`judge::usage`).
use super::{ms, Runner};
use crate::contract::script::Connection;
use crate::exec::process;
use crate::judge::usage::{self, Ended};
use crate::model::cell::CellKey;
use crate::model::run::{Outcome, TestResult};
use crate::plan::Test;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// At most this much of its stdout is kept: a refused line prints nothing.
const STDOUT_KEEP: u64 = 64 * 1024;

impl Runner {
    /// Runs a usage case's test in a client process of its own, started
    /// with the `conn` connection's options.
    pub(super) async fn run_usage(&self, key: &CellKey, t: &Test, conn: &Connection, attempt: u32) -> TestResult {
        let usage = t.case.usage.as_ref().expect("a usage case");
        let start = Instant::now();
        if let Some(why) = self.halted() {
            return self.result(key, t, Outcome::Interrupted, vec![why.into()], 0.0);
        }
        let lang = match self.matrix.language(&key.client) {
            Ok(l) => l,
            Err(e) => return self.result(key, t, Outcome::Error, vec![e], 0.0),
        };
        let mut argv = self.argv(&lang.client);
        argv.extend(conn.options());
        argv.extend(usage.args.iter().cloned());
        argv.push("script".into());
        let mut proc = match process::spawn(&argv, &lang.folder) {
            Ok(p) => p,
            Err(e) => {
                return self.result(
                    key,
                    t,
                    Outcome::Error,
                    vec![format!("client could not start: {e}")],
                    0.0,
                )
            }
        };
        let line = usage.line.replace("{ns}", &self.namespace(key, t, attempt));
        if let Some(mut stdin) = proc.stdin.take() {
            // A client that exits before reading its stdin is not an error here.
            let _ = stdin.write_all(format!("{line}\n").as_bytes()).await;
            let _ = stdin.shutdown().await;
        }
        let stdout = proc.stdout.take().expect("piped");
        let reader = tokio::spawn(async move {
            let mut out = String::new();
            let _ = stdout.take(STDOUT_KEEP).read_to_string(&mut out).await;
            out
        });
        let limit = self.matrix.run.client_startup_ms + self.matrix.run.step_grace_ms;
        let deadline = Instant::now() + Duration::from_millis(limit);
        // Its stdout ends when it exits: its CPU is read then, before it is reaped.
        let stdout = tokio::time::timeout(Duration::from_millis(limit), reader).await;
        let cpu_ms = proc.cpu_ms().unwrap_or(0.0);
        let ended = match proc.wait_for(deadline.saturating_duration_since(Instant::now())).await {
            Some(status) => match status.code() {
                Some(code) => Ended::Code(code),
                None => Ended::Signal(status.to_string()),
            },
            None => {
                proc.kill().await;
                Ended::Hung(limit)
            }
        };
        let stdout = stdout.ok().and_then(Result::ok).unwrap_or_default();
        self.test_process_cpu("client", key, t, cpu_ms, start);
        proc.drain_stderr().await;
        let stderr = proc.stderr_tail();
        let reasons = usage::judge(&ended, &stdout, &stderr);
        let outcome = match (&ended, reasons.is_empty()) {
            (Ended::Hung(_), _) => Outcome::Error,
            (_, true) => Outcome::Passed,
            (_, false) => Outcome::Failed,
        };
        let mut r = self.result(key, t, outcome, reasons, ms(start.elapsed()));
        if outcome.is_red() {
            r.client_stderr = stderr;
        }
        r
    }
}
