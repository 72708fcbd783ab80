//! One client process over the tests of a cell, or of every cell of a pair
//! (a test on another connection than the process's own carries it in each
//! of its steps): its script (`phases`), written phase by phase (the tests
//! that run alone come after all the others have ended, and those with many
//! calls at once last, holding their share of the server the clients share),
//! read back line by line with a time budget per step and lane, and what it
//! left unfinished. Each test is judged as soon as its last status line
//! arrives (`held`).
use super::held::Held;
use super::phases::{self, Lines, Phase};
use super::progress::{self, End, Progress};
use super::{ms, Runner};
use crate::contract::script::{self, Connection, Line};
use crate::exec::process;
use crate::judge;
use crate::judge::lifecycle::ClientEnd;
use crate::model::cell::CellKey;
use crate::plan::Test;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// How long a client whose steps are all answered may take to exit once its
/// stdin has ended, before it is killed.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// A test as a client process runs it: its cell and its connection.
#[derive(Clone)]
pub(super) struct Entry<'a> {
    pub key: &'a CellKey,
    pub test: &'a Test,
    pub conn: Connection,
}

/// What the judge said of a test's output.
#[derive(Default)]
pub(super) struct Judged {
    pub reasons: Vec<String>,
    /// What its steps with a choice of statuses ended with (`judge::choices`).
    pub choices: Vec<String>,
}

/// What a client process did for a group of tests (indexed as its entries).
pub(super) struct GroupRun {
    /// Per test index: the judge's verdict on its output.
    pub judged: BTreeMap<usize, Judged>,
    /// Per test index: reasons that make it an error (crash, hang, garbage).
    pub errors: BTreeMap<usize, Vec<String>>,
    pub durations: BTreeMap<usize, f64>,
    pub first_line_ms: Option<f64>,
    pub stderr: String,
    /// Tests the client never reached (it stopped on another one first).
    pub untouched: Vec<usize>,
    /// The stderr of the process that ran a test, when not the first one.
    pub stderr_of: BTreeMap<usize, String>,
    /// The tests the process was in when it stopped (crashed or hung).
    pub stopped_on: Vec<usize>,
    /// Per new process started for untouched tests: where the one before
    /// it stopped, and how many tests the new one was given.
    pub restarts: Vec<Restart>,
    /// The CPU its client processes used.
    pub cpu_ms: f64,
    /// Per test index: what its fault proxy did (`exec::proxy::journal`).
    pub proxied: BTreeMap<usize, Vec<String>>,
    /// How the process ended once every step was answered (`None`: it
    /// stopped before that).
    pub exit: Option<ClientEnd>,
}

/// A new client process for the tests its predecessor never reached.
pub(super) struct Restart {
    /// The tests the process before it was in when it stopped.
    pub stopped_on: Vec<usize>,
    /// How many tests the new process was given.
    pub given: usize,
}

impl GroupRun {
    pub(super) fn new() -> GroupRun {
        GroupRun {
            judged: BTreeMap::new(),
            errors: BTreeMap::new(),
            durations: BTreeMap::new(),
            first_line_ms: None,
            stderr: String::new(),
            untouched: Vec::new(),
            stderr_of: BTreeMap::new(),
            stopped_on: Vec::new(),
            restarts: Vec::new(),
            cpu_ms: 0.0,
            proxied: BTreeMap::new(),
            exit: None,
        }
    }

    /// Takes in the run of `again` (this run's test indices, in the order
    /// of `more`'s entries) in a new process.
    fn absorb(&mut self, again: &[usize], mut more: GroupRun) {
        for (j, &i) in again.iter().enumerate() {
            let mut errors = more.errors.remove(&j).unwrap_or_default();
            if errors.is_empty() {
                self.errors.remove(&i);
            } else {
                errors.push("(run in a new client process: the first one stopped before this test)".into());
                self.errors.insert(i, errors);
            }
            if let Some(d) = more.durations.remove(&j) {
                self.durations.insert(i, d);
            }
            if let Some(lines) = more.proxied.remove(&j) {
                self.proxied.insert(i, lines);
            }
            if let Some(judged) = more.judged.remove(&j) {
                self.judged.insert(i, judged);
            }
            let stderr = more.stderr_of.remove(&j).unwrap_or_else(|| more.stderr.clone());
            self.stderr_of.insert(i, stderr);
        }
        self.untouched = more.untouched.iter().map(|&j| again[j]).collect();
        self.stopped_on = more.stopped_on.iter().map(|&j| again[j]).collect();
        self.cpu_ms += more.cpu_ms;
        self.exit = more.exit;
    }

    /// The stderr of the client process that ran test `i`.
    pub fn stderr_for(&self, i: usize) -> &str {
        self.stderr_of.get(&i).unwrap_or(&self.stderr)
    }
}

impl Runner {
    /// Runs one client process over a group of tests (of one client
    /// language), started with the `default` connection.
    pub(super) async fn run_group(&self, entries: &[Entry<'_>], default: &Connection, attempt: u32) -> GroupRun {
        let mut run = GroupRun::new();
        let settings = &self.matrix.run;
        let (phases, middlemen) = self.phases(entries, default, attempt, &mut run);
        // Each warm-up call's id → the first test on its connection.
        let warm_ups: BTreeMap<String, usize> = phases[0].order.iter().map(|p| (p.id.clone(), p.test)).collect();
        let mut held = Held::new(
            entries.iter().map(|e| phases::step_prefix(e.key, e.test)),
            phases.iter().flat_map(|p| &p.order).map(|s| (s.id.as_str(), s.test)),
        );
        let mut phases: Vec<Phase> = phases.into_iter().collect();
        phases.retain(|p| !p.order.is_empty());
        let Some(first_test) = phases.first().and_then(|p| p.order.first()).map(|s| s.test) else {
            return run;
        };
        let lang = match self.matrix.language(&entries[first_test].key.client) {
            Ok(l) => l,
            Err(e) => {
                run.errors.entry(first_test).or_default().push(e);
                return run;
            }
        };
        let mut argv = self.argv(&lang.client);
        argv.extend(default.options());
        argv.push("script".into());
        let start = Instant::now();
        let mut proc = match process::spawn(&argv, &lang.folder) {
            Ok(p) => p,
            Err(e) => {
                for i in 0..entries.len() {
                    run.errors
                        .entry(i)
                        .or_default()
                        .push(format!("client could not start: {e}"));
                }
                return run;
            }
        };
        middlemen.client_started(proc.pid());
        let mut stdin = proc.stdin.take().expect("piped");
        // Written concurrently: a large script must not deadlock against
        // unread output. Each line says when it is written (a step's budget
        // counts from then); stdin closes when the last phase is written.
        // A gated line waits for the status lines of the step before it.
        let (feed, mut fed) = mpsc::unbounded_channel::<Vec<Lines>>();
        let (wrote, mut written) = mpsc::unbounded_channel::<String>();
        let (step_ended, mut step_ends) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            while let Some(scripts) = fed.recv().await {
                for l in scripts.into_iter().flat_map(Lines::made) {
                    if let Some(gate) = &l.gate {
                        while !gate.after.iter().all(|id| seen.contains(id)) {
                            match step_ends.recv().await {
                                Some(id) => seen.insert(id),
                                None => return,
                            };
                        }
                        tokio::time::sleep(Duration::from_millis(gate.ms)).await;
                    }
                    if stdin.write_all(l.text.as_bytes()).await.is_err() {
                        return;
                    }
                    let _ = wrote.send(l.id);
                }
            }
            let _ = stdin.shutdown().await;
        });
        let mut lines = BufReader::new(proc.stdout.take().expect("piped")).lines();
        let since = |at: Instant| (at - start).as_millis() as u64;
        let mut hung = false;
        let mut later = phases.into_iter();
        let mut feed = Some(feed);
        let mut progress = Progress::default();
        // The start-up's extra time for the warm-up calls and the first tests
        // (a JVM's first calls of each kind are slow too).
        let mut startup = [settings.client_startup_ms; 2].into_iter();
        'phases: while let Some(phase) = later.next() {
            // Many calls at once wait for their share of the server, which
            // other clients' processes may hold (`phases::SERVER_CALLS`).
            let _held = match &phase.hold {
                Some((server, calls)) => self.pool.calls_of(server).acquire_many_owned(*calls).await.ok(),
                None => None,
            };
            progress = Progress::new(phase.order, since(Instant::now()), startup.next().unwrap_or(0));
            if let Some(f) = &feed {
                let _ = f.send(phase.lines);
            }
            if later.len() == 0 {
                feed = None; // the last phase: stdin ends after it
            }
            while let Some(due_ms) = progress.due_ms() {
                let deadline = tokio::time::Instant::from_std(start + Duration::from_millis(due_ms));
                let text = tokio::select! {
                    line = lines.next_line() => match line {
                        Ok(Some(text)) => text,
                        _ => break 'phases, // EOF
                    },
                    Some(id) = written.recv() => {
                        progress.written(&id, since(Instant::now()));
                        continue;
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        hung = true;
                        break 'phases;
                    }
                };
                if run.first_line_ms.is_none() {
                    run.first_line_ms = Some(ms(start.elapsed()));
                }
                if text.trim().is_empty() {
                    continue;
                }
                match Line::parse(&text) {
                    Ok(line) => {
                        let now = since(Instant::now());
                        if line.status.is_some() {
                            let _ = step_ended.send(line.id.clone());
                        }
                        let ended = line.status.as_ref().and_then(|_| progress.status_line(&line.id, now));
                        let warm_up = line.id.starts_with(script::WARM_UP);
                        if let (Some((test, took_ms)), false) = (ended, warm_up) {
                            *run.durations.entry(test).or_default() += took_ms as f64;
                        }
                        if let Some((test, lines)) = held.take(line, ended.map(|(test, _)| test)) {
                            run.judged.insert(test, self.judge_test(&entries[test], attempt, lines));
                        }
                    }
                    Err(e) => {
                        let shown = judge::short(&serde_json::Value::String(text));
                        let test = progress.oldest_test().unwrap_or(first_test);
                        run.errors.entry(test).or_default().push(progress::garbage(&shown, &e));
                    }
                }
            }
        }
        drop(feed);
        // Read at the end of its output, before it is reaped.
        run.cpu_ms = proc.cpu_ms().unwrap_or(0.0);
        let done = Instant::now();
        let waited = match hung {
            true => None,
            false => Some(proc.wait_for(EXIT_WAIT).await),
        };
        let exit = waited.map(|status| match status {
            Some(s) => ClientEnd::Exited {
                code: s.code(),
                how: s.to_string(),
                after_ms: ms(done.elapsed()) as u64,
            },
            None => ClientEnd::Killed {
                after_ms: EXIT_WAIT.as_millis() as u64,
            },
        });
        let status = match waited.flatten() {
            Some(s) => Some(s),
            None => proc.kill().await,
        };
        writer.abort();
        proc.drain_stderr().await;
        run.stderr = proc.stderr_tail();
        let end = match (hung, progress.due_ms()) {
            (true, _) => End::Hung,
            (false, Some(_)) => End::Exited {
                status: status.map(|s| s.to_string()).unwrap_or_else(|| "killed".into()),
                usage: status.and_then(|s| s.code()) == Some(2),
                last_words: progress::last_line(&run.stderr),
            },
            (false, None) => End::Finished,
        };
        if end == End::Finished {
            run.exit = exit;
        }
        let stopped = progress.stopped();
        if end != End::Finished {
            run.stopped_on = stopped.clone();
        }
        let mut unfinished = progress.unfinished(&end);
        for step in later.flat_map(|p| p.order) {
            unfinished.entry(step.test).or_insert_with(|| {
                "not run: the client stopped before this test's phase (the connections' warm-up calls come first; large scripts, the tests that run alone, then those with 100 calls at once or more, last)".to_string()
            });
        }
        for (test, why) in unfinished {
            // A test that already has a reason (a case error) keeps it alone.
            if stopped.contains(&test) || !run.errors.contains_key(&test) {
                if !stopped.contains(&test) {
                    run.untouched.push(test);
                }
                run.errors.entry(test).or_default().push(why);
            }
        }
        for line in &held.warm_up {
            let warm_up = line.status.as_ref().zip(warm_ups.get(&line.id));
            if let Some(why) = warm_up.and_then(|(status, &test)| script::warm_up_failed(status).map(|w| (test, w))) {
                run.errors.entry(why.0).or_default().push(why.1);
            }
        }
        // The tests that did not end: judged on what they printed.
        for (test, lines) in held.unended(entries.len()) {
            run.judged.insert(test, self.judge_test(&entries[test], attempt, lines));
        }
        for (test, late) in held.late() {
            run.judged.entry(test).or_default().reasons.extend(late);
        }
        run.proxied = middlemen.journals();
        run
    }

    /// The judge on one test's output lines.
    fn judge_test(&self, e: &Entry, attempt: u32, lines: Vec<Line>) -> Judged {
        let prefix = phases::step_prefix(e.key, e.test);
        let obs = judge::group(lines);
        Judged {
            reasons: judge::judge(&e.test.case, &prefix, &self.namespace(e.key, e.test, attempt), &obs),
            choices: judge::choices(&e.test.case, &prefix, &obs),
        }
    }

    /// Runs a group of tests, and again in a new client process the tests
    /// that one never reached because it crashed or hung on another (up to
    /// three times): one test that takes its client down does not take the
    /// others' verdicts with it.
    pub(super) async fn run_group_again(&self, entries: &[Entry<'_>], default: &Connection, attempt: u32) -> GroupRun {
        let mut run = self.run_group(entries, default, attempt).await;
        for _ in 0..3 {
            if run.untouched.is_empty() || self.cancelled.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let again = std::mem::take(&mut run.untouched);
            let sub: Vec<Entry> = again.iter().map(|&i| entries[i].clone()).collect();
            let more = self.run_group(&sub, default, attempt).await;
            run.restarts.push(Restart {
                stopped_on: std::mem::take(&mut run.stopped_on),
                given: again.len(),
            });
            run.absorb(&again, more);
        }
        run
    }
}
