//! A lifecycle case's test: a server of the test's own, a Monitor held open
//! on it when the case says so, then the case's stop (stdin's end, SIGTERM
//! or SIGINT); judged on how and how soon the server exited
//! (`judge::lifecycle`). No client process takes part.
use super::{ms, Runner};
use crate::contract::proto::stock::{stock_client::StockClient, PutRequest, WatchRequest};
use crate::contract::script::Connection;
use crate::exec::process::{Proc, Stopped};
use crate::input::cases::{Lifecycle, ServerCert, StopBy};
use crate::judge::lifecycle::{self, Exit, Observed};
use crate::model::cell::CellKey;
use crate::model::run::{Outcome, TestResult};
use crate::plan::Test;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The held Monitor's deadline: far beyond any stop the case allows.
const MONITOR_DEADLINE: Duration = Duration::from_secs(60);
/// How long the held Monitor may take to open (a Put, then its first event).
const OPEN_LIMIT: Duration = Duration::from_secs(10);

impl Runner {
    /// Runs a lifecycle case's test against a server started for it alone.
    pub(super) async fn run_lifecycle(&self, key: &CellKey, t: &Test, attempt: u32) -> TestResult {
        let l = t.case.lifecycle.expect("a lifecycle case");
        let start = Instant::now();
        if let Some(why) = self.halted() {
            return self.result(key, t, Outcome::Interrupted, vec![why.into()], 0.0);
        }
        let (mut proc, addr, _, _) = match self.start_server(key, ServerCert::Normal).await {
            Ok(s) => s,
            Err((why, stderr)) => {
                let mut r = self.result(key, t, Outcome::Error, vec![why], 0.0);
                r.server_stderr = stderr;
                return r;
            }
        };
        let conn = self.connection(key, &addr, t.case.connect);
        let held = match l.open_monitor {
            true => Some(hold_monitor(&conn, &self.namespace(key, t, attempt)).await),
            false => None,
        };
        let cpu_ms = proc.cpu_ms().unwrap_or(0.0);
        let (exit, exited_at) = stop(&mut proc, &l).await;
        let (monitor, ended) = match held {
            Some(Ok(ended)) => (Some(Ok(())), Some(ended)),
            Some(Err(why)) => (Some(Err(why)), None),
            None => (None, None),
        };
        let monitor_end_after_exit_ms = match (ended, exited_at) {
            (Some(ended), Some(exited)) => {
                let limit = tokio::time::Instant::from_std(exited + Duration::from_secs(1));
                match tokio::time::timeout_at(limit, ended).await {
                    Ok(Ok(at)) => Some(ms(at.saturating_duration_since(exited)) as u64),
                    Ok(Err(_)) => Some(0),
                    Err(_) => None,
                }
            }
            _ => None,
        };
        self.after_stop(key, &addr);
        self.test_process_cpu("server", key, t, cpu_ms, start);
        let seen = Observed {
            monitor,
            exit,
            monitor_end_after_exit_ms,
        };
        let reasons = lifecycle::judge(&l, &seen);
        let outcome = match reasons.is_empty() {
            true => Outcome::Passed,
            false => Outcome::Failed,
        };
        let mut r = self.result(key, t, outcome, reasons, ms(start.elapsed()));
        if outcome.is_red() {
            proc.drain_stderr().await;
            r.server_stderr = proc.stderr_tail();
        }
        r
    }
}

/// Stops the server the case's way and waits the case's time for its exit;
/// a server still running then is stopped the runner's way (SIGTERM, then
/// SIGKILL). Returns how it ended and, when it exited in time, when.
async fn stop(proc: &mut Proc, l: &Lifecycle) -> (Exit, Option<Instant>) {
    let stopped = Instant::now();
    match l.stop {
        StopBy::StdinEof => proc.stdin = None,
        StopBy::Sigterm => proc.terminate(),
        StopBy::Sigint => proc.interrupt(),
    }
    match proc.wait_for(Duration::from_millis(l.within_ms)).await {
        Some(status) => {
            let at = Instant::now();
            let after = ms(at - stopped) as u64;
            let exit = match status.code() {
                Some(code) => Exit::Code(code, after),
                None => Exit::Signal(status.to_string(), after),
            };
            (exit, Some(at))
        }
        None => {
            let then = match (l.stop, proc.stop(Duration::from_secs(2)).await) {
                (StopBy::StdinEof, Stopped::OnStdinClose) => "exited by itself within 2 s more",
                (StopBy::Sigterm | StopBy::Sigint, Stopped::OnStdinClose) => "exited on its stdin's end",
                (_, Stopped::OnSigterm) => "exited on SIGTERM",
                (_, Stopped::Killed) => "needed SIGKILL",
            };
            (Exit::Hung { then: then.into() }, None)
        }
    }
}

/// Opens a Monitor the server must end when it stops: a Put of the test's
/// own key, then a Monitor of it with the existing value, open once that
/// value came. The receiver gets the time the Monitor ended (any status).
async fn hold_monitor(conn: &Connection, ns: &str) -> Result<oneshot::Receiver<Instant>, String> {
    let channel = crate::contract::channel::channel(conn, Default::default()).map_err(|e| format!("{e:#}"))?;
    let mut client = StockClient::new(channel);
    let key = format!("{ns}held");
    let open = async {
        let put = PutRequest {
            key: key.clone(),
            value: b"held".to_vec(),
        };
        client
            .put(put)
            .await
            .map_err(|s| format!("Put: {:?}: {}", s.code(), s.message()))?;
        let mut watch = tonic::Request::new(WatchRequest {
            pattern: key.clone(),
            max_events: 0,
            include_existing: true,
        });
        watch.set_timeout(MONITOR_DEADLINE);
        let mut stream = client
            .monitor(watch)
            .await
            .map_err(|s| format!("Monitor: {:?}: {}", s.code(), s.message()))?
            .into_inner();
        match stream.message().await {
            Ok(Some(_)) => Ok(stream),
            Ok(None) => Err("Monitor: ended OK before its first event".to_string()),
            Err(s) => Err(format!("Monitor: {:?}: {}", s.code(), s.message())),
        }
    };
    let mut stream = match tokio::time::timeout(OPEN_LIMIT, open).await {
        Ok(r) => r?,
        Err(_) => return Err(format!("no first event within {} s", OPEN_LIMIT.as_secs())),
    };
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        while let Ok(Some(_)) = stream.message().await {}
        let _ = tx.send(Instant::now());
    });
    Ok(rx)
}
