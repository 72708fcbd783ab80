//! One pair's turn: the servers its cells need leased from `pool` (or the
//! external server), one client process for all its tests, and each test
//! judged against what that process printed.
use super::client::{Entry, GroupRun};
use super::{ms, pool, Runner};
use crate::contract::script::Connection;
use crate::input::cases::{Connect, ServerCert};
use crate::judge::lifecycle;
use crate::model::cell::CellKey;
use crate::model::run::{CellInfo, Outcome, ProcessCpu, TestResult};
use crate::plan::{Cell, Test};
use std::time::Instant;

/// Tests of one cell served by one server (one certificate), each with its
/// connection, and the lease on that server.
struct Group<'a> {
    cell: usize,
    lease: Option<pool::Lease>,
    addr: String,
    tests: Vec<(&'a Test, Connection)>,
}

impl Runner {
    /// The results of a cell that does not run (a language unavailable, the
    /// run interrupted), or `None` when it runs.
    async fn not_run(&self, cell: &Cell, info: &mut CellInfo) -> Option<Vec<TestResult>> {
        let key = &cell.key;
        let (why, outcome, unavailable) = match [&key.client, &key.server]
            .into_iter()
            .find_map(|l| self.unavailable.get(l).map(|r| (l, r)))
        {
            Some((lang, reason)) => (
                format!("{lang} is unavailable: {reason}"),
                Outcome::Error,
                Some(lang.clone()),
            ),
            None => (self.halted()?.to_string(), Outcome::Interrupted, None),
        };
        info.notes.extend(self.skip_cell(cell).await);
        Some(
            cell.tests
                .iter()
                .map(|t| TestResult {
                    unavailable: unavailable.clone(),
                    ..self.result(key, t, outcome, vec![why.clone()], 0.0)
                })
                .collect(),
        )
    }

    /// Runs the cells of one pair (one client language against one server
    /// language and key type: every TLS mode and certificate) with one
    /// client process; returns each cell's results and info.
    pub async fn run_pair(&self, cells: &[Cell], attempt: u32) -> Vec<(Vec<TestResult>, CellInfo)> {
        let start = Instant::now();
        let mut out: Vec<(Vec<TestResult>, CellInfo)> = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        // Usage cases, and cases with an `exit`: a client process each
        // (`usage`, `run_own`), after the shared one.
        let mut own: Vec<(usize, &Test, Connection)> = Vec::new();
        // Lifecycle cases: a server each and no client (`lifecycle`), last.
        let mut lifecycle: Vec<(usize, &Test)> = Vec::new();
        for (c, cell) in cells.iter().enumerate() {
            let key = &cell.key;
            let mut info = CellInfo {
                key: key.clone(),
                server_ready_ms: None,
                client_first_line_ms: vec![],
                duration_ms: 0.0,
                tests: cell.tests.len(),
                notes: vec![],
            };
            let mut results = Vec::new();
            if let Some(r) = self.not_run(cell, &mut info).await {
                out.push((r, info));
                continue;
            }
            lifecycle.extend(cell.tests.iter().filter(|t| t.case.lifecycle.is_some()).map(|t| (c, t)));
            for (cert, tests) in cell.groups() {
                let leased = match self.external(key) {
                    Some(e) => self
                        .external_answers(key, e)
                        .await
                        .map(|()| (e.addr.clone(), None))
                        .map_err(|why| (why, String::new())),
                    None => self.lease(key, cert).await.map(|l| (l.addr.clone(), Some(l))),
                };
                let (addr, lease) = match leased {
                    Ok(l) => l,
                    Err((why, stderr)) => {
                        if self.external(key).is_none() {
                            info.notes.extend(self.skip(key, cert).await);
                        }
                        for t in &tests {
                            let mut r = self.result(key, t, Outcome::Error, vec![why.clone()], 0.0);
                            r.server_stderr = stderr.clone();
                            results.push(r);
                        }
                        continue;
                    }
                };
                if let Some(l) = &lease {
                    if let Some((ready, note)) = &l.started {
                        if cert == ServerCert::Normal {
                            info.server_ready_ms = Some(*ready);
                        }
                        info.notes.extend(note.clone());
                    }
                    info.notes.extend(l.restarted.clone());
                }
                let (alone, tests): (Vec<_>, Vec<_>) = tests
                    .into_iter()
                    .map(|t| {
                        let mut conn = self.connection(key, &addr, t.case.connect);
                        if let Some(k) = &t.case.keepalive {
                            conn.keepalive_ms = Some(k.ms);
                            conn.keepalive_timeout_ms = k.timeout_ms;
                        }
                        (t, conn)
                    })
                    .partition(|(t, _)| t.case.usage.is_some() || t.case.exit.is_some());
                own.extend(alone.into_iter().map(|(t, conn)| (c, t, conn)));
                groups.push(Group {
                    cell: c,
                    lease,
                    addr,
                    tests,
                });
            }
            out.push((results, info));
        }
        if let Some(first) = groups.iter().find(|g| !g.tests.is_empty()) {
            let default = self.connection(&cells[first.cell].key, &first.addr, Connect::Normal);
            let entries: Vec<Entry> = groups
                .iter()
                .flat_map(|g| {
                    g.tests.iter().map(|(test, conn)| Entry {
                        key: &cells[g.cell].key,
                        test,
                        conn: conn.clone(),
                    })
                })
                .collect();
            let run = self.run_group_again(&entries, &default, attempt).await;
            out[first.cell].1.client_first_line_ms.extend(run.first_line_ms);
            let k = &cells[first.cell].key;
            self.processes.lock().expect("process CPU").push(ProcessCpu {
                role: "client".into(),
                language: k.client.clone(),
                process: match self.per_pair {
                    true => format!("client={}/server={}", k.client, k.server),
                    false => k.id(),
                },
                cpu_ms: run.cpu_ms,
                span_ms: self.span_ms(start),
            });
            // Each restart is noted in the cell of the test the client stopped on.
            let cell_of: Vec<usize> = groups.iter().flat_map(|g| g.tests.iter().map(|_| g.cell)).collect();
            for r in &run.restarts {
                let on: Vec<&Entry> = r.stopped_on.iter().map(|&i| &entries[i]).collect();
                let cell = r.stopped_on.first().map_or(first.cell, |&i| cell_of[i]);
                out[cell].1.notes.push(restart_note(&on, r.given));
            }
            let mut i = 0;
            for g in &groups {
                let (server_gone, server_stderr) = match &g.lease {
                    Some(l) => self.server_gone(l).await,
                    None => (None, String::new()),
                };
                let key = &cells[g.cell].key;
                for (t, _) in &g.tests {
                    let r = self.verdict(key, t, i, &run, server_gone.as_deref(), &server_stderr);
                    out[g.cell].0.push(r);
                    i += 1;
                }
            }
        }
        for (c, t, conn) in &own {
            let r = match t.case.usage.is_some() {
                true => self.run_usage(&cells[*c].key, t, conn, attempt).await,
                false => self.run_own(&cells[*c].key, t, conn, attempt).await,
            };
            out[*c].0.push(r);
        }
        for (c, t) in lifecycle {
            out[c].0.push(self.run_lifecycle(&cells[c].key, t, attempt).await);
        }
        for g in groups {
            if let Some(l) = g.lease {
                out[g.cell].1.notes.extend(self.release(l).await);
            }
        }
        let took = ms(start.elapsed());
        for (_, info) in &mut out {
            info.duration_ms = took;
        }
        out
    }

    /// A case with an `exit`: its steps in a client process of its own,
    /// judged as any test's, and then how that process ended.
    async fn run_own(&self, key: &CellKey, t: &Test, conn: &Connection, attempt: u32) -> TestResult {
        let start = Instant::now();
        let entry = Entry {
            key,
            test: t,
            conn: conn.clone(),
        };
        let run = self.run_group(std::slice::from_ref(&entry), conn, attempt).await;
        self.test_process_cpu("client", key, t, run.cpu_ms, start);
        let mut r = self.verdict(key, t, 0, &run, None, "");
        let expect = t.case.exit.as_ref().expect("a case with an exit");
        let wrong = run
            .exit
            .as_ref()
            .map(|end| lifecycle::client(expect, end))
            .unwrap_or_default();
        if !wrong.is_empty() {
            r.reasons.extend(wrong);
            if r.outcome == Outcome::Passed {
                r.outcome = Outcome::Failed;
            }
            r.client_stderr = run.stderr.clone();
        }
        r
    }

    /// The result of entry `i` of a client process: what it left unfinished,
    /// whether the server went away, and the judge's verdict on its output.
    fn verdict(
        &self,
        key: &CellKey,
        t: &Test,
        i: usize,
        run: &GroupRun,
        server_gone: Option<&str>,
        server_stderr: &str,
    ) -> TestResult {
        let mut reasons = run.errors.get(&i).cloned().unwrap_or_default();
        let infra = !reasons.is_empty();
        if let Some(status) = server_gone {
            reasons.push(format!("the server exited during the cell ({status})"));
        }
        let judged = run.judged.get(&i);
        reasons.extend(judged.into_iter().flat_map(|j| j.reasons.iter().cloned()));
        let outcome = if infra || server_gone.is_some() {
            Outcome::Error
        } else if reasons.is_empty() {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        let mut r = self.result(key, t, outcome, reasons, run.durations.get(&i).copied().unwrap_or(0.0));
        r.choices = judged.map(|j| j.choices.clone()).unwrap_or_default();
        if outcome.is_red() {
            let proxied = run.proxied.get(&i).into_iter().flatten();
            r.reasons.extend(proxied.map(|line| format!("fault proxy: {line}")));
            r.client_stderr = run.stderr_for(i).to_string();
            r.server_stderr = server_stderr.to_string();
        }
        r
    }
}

/// The cell note for a new client process: which test(s) the one before it
/// stopped on, and how many tests it had not begun.
fn restart_note(stopped_on: &[&Entry], given: usize) -> String {
    let on: Vec<String> = stopped_on
        .iter()
        .map(|e| format!("{}/{}", e.test.set, e.test.case.name))
        .collect();
    let during = match on.is_empty() {
        true => String::new(),
        false => format!(" during {}", on.join(", ")),
    };
    format!("the client stopped{during} before {given} test(s) it had not begun; they ran in a new client process")
}
