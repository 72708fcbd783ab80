//! One client process over the tests of a cell, or of every cell of a pair
//! (a test on another connection than the process's own carries it in each
//! of its steps): its script, written in
//! phases (the tests that run alone come after all the others have ended),
//! read back line by line with a time budget per step and lane, and what it
//! left unfinished.
use super::progress::{self, End, Pending, Progress};
use super::Runner;
use crate::contract::script::{self, Connection, Line};
use crate::exec::{process, proxy};
use crate::input::cases::script_steps;
use crate::judge::{self, Observations};
use crate::model::cell::CellKey;
use crate::plan::{lanes, Test};
use crate::reference::peer;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Budget of one top-level step: its own deadline and delay, the grace, and its nested steps.
fn step_budget(step: &script::Step, grace: u64) -> u64 {
    grace
        + step.timeout_ms.unwrap_or(0)
        + script::delay_ms(&step.metadata)
        + step.after_first.iter().map(|s| step_budget(s, 0)).sum::<u64>()
}

/// A test whose script lines take more bytes than this runs in the phase of
/// large scripts.
const LARGE_SCRIPT: usize = 1 << 20;

/// A test as a client process runs it: its cell and its connection.
#[derive(Clone)]
pub(super) struct Entry<'a> {
    pub key: &'a CellKey,
    pub test: &'a Test,
    pub conn: Connection,
}

/// What a client process did for a group of tests (indexed as its entries).
pub(super) struct GroupRun {
    pub obs: Observations,
    /// Per test index: reasons that make it an error (crash, hang, garbage).
    pub errors: BTreeMap<usize, Vec<String>>,
    pub durations: BTreeMap<usize, f64>,
    pub first_line_ms: Option<f64>,
    pub stderr: String,
    /// Tests the client never reached (it stopped on another one first).
    pub untouched: Vec<usize>,
    /// The stderr of the process that ran a test, when not the first one.
    pub stderr_of: BTreeMap<usize, String>,
    /// Per new process started for untouched tests: how many it was given.
    pub restarts: Vec<usize>,
}

impl GroupRun {
    fn new() -> GroupRun {
        GroupRun {
            obs: Observations::new(),
            errors: BTreeMap::new(),
            durations: BTreeMap::new(),
            first_line_ms: None,
            stderr: String::new(),
            untouched: Vec::new(),
            stderr_of: BTreeMap::new(),
            restarts: Vec::new(),
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
            let stderr = more.stderr_of.remove(&j).unwrap_or_else(|| more.stderr.clone());
            self.stderr_of.insert(i, stderr);
        }
        self.untouched = more.untouched.iter().map(|&j| again[j]).collect();
        self.obs.extend(more.obs);
    }

    /// The stderr of the client process that ran test `i`.
    pub fn stderr_for(&self, i: usize) -> &str {
        self.stderr_of.get(&i).unwrap_or(&self.stderr)
    }
}

/// Part of the script written at once: its steps as the runner waits for
/// them, and their lines (step id, JSON line).
#[derive(Default)]
struct Phase {
    order: Vec<Pending>,
    lines: Vec<(String, String)>,
}

/// The prefix of a test's step ids: unique among the tests of a client
/// process, which may run a case in several TLS modes (and a plugin's transports).
pub(super) fn step_prefix(key: &CellKey, t: &Test) -> String {
    match key.net {
        Some(net) => format!("{}@{net}/{}/{}", key.tls, t.set, t.case.name),
        None => format!("{}/{}/{}", key.tls, t.set, t.case.name),
    }
}

/// The same jitter for the same test on every run (FNV-1a of its step prefix).
fn seed(prefix: &str) -> u64 {
    prefix.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What stands between a test's `faulty` steps and the cell's server: the
/// fault proxies and misbehaving peers of a client process, which live as
/// long as it does.
pub(super) struct Middlemen {
    _proxies: Vec<proxy::Proxy>,
    _peers: Vec<peer::Peer>,
}

impl Runner {
    /// A misbehaving peer for a test, in its cell's TLS mode.
    fn start_peer(&self, e: &Entry, how: peer::Misbehaviour) -> anyhow::Result<peer::Peer> {
        let c = &self.certs[&e.key.key_type];
        let tls = (e.conn.tls_mode != crate::model::tls::TlsMode::None).then(|| peer::PeerTls {
            cert: &c.server_cert,
            key: &c.server_key,
        });
        peer::start(how, tls)
    }

    /// The script of a group of tests, in phases: the tests that wait spread
    /// over lanes; then, the same way, the tests with a large script (their
    /// lines are written only then: a client parsing megabytes of JSON on its
    /// one event loop, node or typescript, would delay the deadlines of the
    /// tests beside them); then the tests that run alone. A test whose case
    /// cannot become steps is left out with its error.
    ///
    /// A test whose case has a `fault` gets a proxy (returned: it lives as
    /// long as the process), and its `faulty` steps a connection through it.
    fn phases(
        &self,
        entries: &[Entry],
        default: &Connection,
        attempt: u32,
        run: &mut GroupRun,
    ) -> ([Phase; 3], Middlemen) {
        let grace = self.matrix.run.step_grace_ms;
        let waits: Vec<u64> = entries
            .iter()
            .map(|e| e.test.case.steps.iter().map(lanes::waiting_ms).sum())
            .collect();
        // `lanes` per cell: a process that runs a pair's cells has that many for each.
        let cells = entries
            .iter()
            .map(|e| e.key)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let lane_of = lanes::assign(&waits, (self.lanes as usize * cells.max(1)).min(64) as u32);
        let mut phases: [Phase; 3] = Default::default();
        let mut proxies = Vec::new();
        let mut peers = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let t = e.test;
            let prefix = step_prefix(e.key, t);
            let variant = (e.conn != *default).then_some(&e.conn);
            let steps = match script_steps(&t.case.steps, &prefix, &self.namespace(e.key, t, attempt)) {
                Ok(steps) => steps,
                Err(e) => {
                    run.errors.entry(i).or_default().push(format!("case error: {e}"));
                    continue;
                }
            };
            // The address the `faulty` steps dial instead of the server's.
            let middleman = match (&t.case.fault, t.case.peer) {
                (Some(fault), _) => Some(
                    proxy::start(&e.conn.server, fault, seed(&prefix))
                        .map(|p| {
                            let addr = p.addr.clone();
                            proxies.push(p);
                            addr
                        })
                        .map_err(|err| format!("the fault proxy could not start: {err}")),
                ),
                (None, Some(how)) => Some(
                    self.start_peer(e, how)
                        .map(|p| {
                            let addr = p.addr.clone();
                            peers.push(p);
                            addr
                        })
                        .map_err(|err| format!("the misbehaving peer could not start: {err:#}")),
                ),
                (None, None) => None,
            };
            let faulty = match middleman {
                Some(Ok(server)) => Some(Connection {
                    server,
                    ..e.conn.clone()
                }),
                Some(Err(why)) => {
                    run.errors.entry(i).or_default().push(why);
                    continue;
                }
                None => None,
            };
            let mut test = Phase::default();
            for (mut s, case_step) in steps.into_iter().zip(&t.case.steps) {
                match (&faulty, variant) {
                    (Some(conn), _) if case_step.faulty => s.use_connection(conn),
                    (_, Some(conn)) => s.use_connection(conn),
                    _ => {}
                }
                s.lane = if t.case.alone { 0 } else { lane_of[i] };
                test.order.push(Pending {
                    test: i,
                    id: s.id.clone(),
                    lane: s.lane,
                    budget_ms: step_budget(&s, grace),
                    waiting: s.status_ids(),
                });
                let mut line = serde_json::to_string(&s).expect("steps serialize");
                line.push('\n');
                test.lines.push((s.id.clone(), line));
            }
            let large = test.lines.iter().map(|(_, l)| l.len()).sum::<usize>() > LARGE_SCRIPT;
            let phase = &mut phases[if t.case.alone { 2 } else { usize::from(large) }];
            phase.order.extend(test.order);
            phase.lines.extend(test.lines);
        }
        (
            phases,
            Middlemen {
                _proxies: proxies,
                _peers: peers,
            },
        )
    }

    /// Runs one client process over a group of tests (of one client
    /// language), started with the `default` connection.
    pub(super) async fn run_group(&self, entries: &[Entry<'_>], default: &Connection, attempt: u32) -> GroupRun {
        let mut run = GroupRun::new();
        let settings = &self.matrix.run;
        let (phases, _middlemen) = self.phases(entries, default, attempt, &mut run);
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
        let mut stdin = proc.stdin.take().expect("piped");
        // Written concurrently: a large script must not deadlock against
        // unread output. Each line says when it is written (a step's budget
        // counts from then); stdin closes when the last phase is written.
        let (feed, mut fed) = mpsc::unbounded_channel::<Vec<(String, String)>>();
        let (wrote, mut written) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(lines) = fed.recv().await {
                for (id, line) in lines {
                    if stdin.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                    let _ = wrote.send(id);
                }
            }
            let _ = stdin.shutdown().await;
        });
        let mut lines = BufReader::new(proc.stdout.take().expect("piped")).lines();
        let since = |at: Instant| (at - start).as_millis() as u64;
        let mut hung = false;
        let mut all: Vec<Line> = Vec::new();
        let mut later = phases.into_iter();
        let mut feed = Some(feed);
        let mut progress = Progress::default();
        let mut startup = settings.client_startup_ms;
        'phases: while let Some(phase) = later.next() {
            progress = Progress::new(phase.order, since(Instant::now()), startup);
            startup = 0;
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
                        let ended = line.status.as_ref().and_then(|_| progress.status_line(&line.id, now));
                        all.push(line);
                        if let Some((test, took_ms)) = ended {
                            *run.durations.entry(test).or_default() += took_ms as f64;
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
        let status = if hung {
            proc.kill().await
        } else {
            proc.wait_for(Duration::from_secs(5)).await
        };
        let status = match status {
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
            },
            (false, None) => End::Finished,
        };
        let stopped = progress.stopped();
        let mut unfinished = progress.unfinished(&end);
        for step in later.flat_map(|p| p.order) {
            unfinished.entry(step.test).or_insert_with(|| {
                "not run: the client stopped before this test's phase (large scripts, then the tests that run alone, come last)".to_string()
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
        run.obs = judge::group(&all);
        run
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
            run.restarts.push(again.len());
            run.absorb(&again, more);
        }
        run
    }
}
