//! The script of a client process (its lines, in phases, and the steps the
//! runner waits for), with the fault proxies and misbehaving peers its tests
//! dial.
use super::client::{Entry, GroupRun};
use super::progress::Pending;
use super::Runner;
use crate::contract::script::{self, Connection};
use crate::exec::proxy;
use crate::input::cases::{script_steps, Case};
use crate::model::cell::CellKey;
use crate::model::misbehaviour::THOUSAND_STREAMS;
use crate::plan::{lanes, Test};
use crate::reference::peer;
use std::sync::Arc;

/// The most of a step's deadline its budget counts: no case waits longer on
/// purpose, and a deadline days away (deadlines/month-long-deadline-seen-by-server)
/// must not let a client that hangs hold its process for days.
const WAITED_DEADLINE_MS: u64 = 120_000;

/// Budget of one top-level step: its own deadline or cancel, the later (at
/// most `WAITED_DEADLINE_MS`), its delay, the grace, and its nested steps.
fn step_budget(step: &script::Step, grace: u64) -> u64 {
    // A call the client cancels lasts until then, with or without a deadline
    // (which still bounds a client that ignores the cancel).
    let call = step.timeout_ms.unwrap_or(0).max(step.cancel_after_ms.unwrap_or(0));
    grace
        + call.min(WAITED_DEADLINE_MS)
        + script::delay_ms(&step.metadata)
        + step.after_first.iter().map(|s| step_budget(s, 0)).sum::<u64>()
}

/// A test whose script lines take more bytes than this runs in the phase of
/// large scripts.
const LARGE_SCRIPT: usize = 1 << 20;

/// A test that opens this many calls at once or more (past the common
/// limit of 100 streams) runs after the others, in a phase that holds its
/// calls of the server (`SERVER_CALLS`).
const MANY_CALLS: u32 = 100;

/// The calls at once that the contract asks a server to take (1,000 on one
/// connection): what the many-call tests of all the clients sharing a
/// server hold of it together. Past it, a shared server would see more than
/// any one client asks of it: gRPC C-core (python, pyvider) then ends some
/// calls CANCELLED once 1,000 wait to be taken (`grpc.server.max_pending_requests`).
pub(super) const SERVER_CALLS: u32 = THOUSAND_STREAMS;

/// Part of the script written at once: its steps as the runner waits for
/// them, and their lines.
#[derive(Default)]
pub(super) struct Phase {
    pub order: Vec<Pending>,
    pub lines: Vec<Lines>,
    /// The server (its address) and the calls of it the phase holds while it
    /// runs (`SERVER_CALLS` in all).
    pub hold: Option<(String, u32)>,
}

/// One line of a script: its step's id, its JSON, and what it waits for.
#[derive(Debug, PartialEq)]
pub(super) struct ScriptLine {
    pub id: String,
    pub text: String,
    pub gate: Option<Gate>,
}

/// A line is written only once every status line of the step before it has
/// arrived, and `ms` after that (a case step's `settle_ms`).
#[derive(Debug, PartialEq)]
pub(super) struct Gate {
    pub after: Vec<String>,
    pub ms: u64,
}

/// Lines of a script: made already, or a test's, made when they are written.
pub(super) enum Lines {
    Made(Vec<ScriptLine>),
    Later(Box<Recipe>),
}

impl Lines {
    /// The lines, made now if they were not yet.
    pub(super) fn made(self) -> Vec<ScriptLine> {
        match self {
            Lines::Made(lines) => lines,
            Lines::Later(recipe) => recipe.steps().map(|s| gated(&recipe.case, &s)).unwrap_or_default(),
        }
    }
}

/// A test's lines, each step with a `settle_ms` gated on the step before it.
fn gated(case: &Case, steps: &[script::Step]) -> Vec<ScriptLine> {
    let mut out: Vec<ScriptLine> = steps.iter().map(line).collect();
    for (i, case_step) in case.steps.iter().enumerate().skip(1) {
        if let (Some(ms), Some(before), Some(l)) = (case_step.settle_ms, steps.get(i - 1), out.get_mut(i)) {
            l.gate = Some(Gate {
                after: before.status_ids(),
                ms,
            });
        }
    }
    out
}

/// How a test's steps are made from its case: again, the same, when its
/// lines are written, so that a process's large scripts (megabyte values)
/// are not held from its start until their phase.
#[derive(Clone)]
pub(super) struct Recipe {
    case: Arc<Case>,
    prefix: String,
    namespace: String,
    /// The connection of its `faulty` steps (through its proxy or peer).
    faulty: Option<Connection>,
    /// The connection of its other steps when not the process's default.
    variant: Option<Connection>,
    lane: u32,
}

impl Recipe {
    /// Its steps, made from its case.
    fn steps(&self) -> Result<Vec<script::Step>, String> {
        Ok(self.dress(script_steps(&self.case.steps, &self.prefix, &self.namespace)?))
    }

    /// The case's steps on their connections (the `faulty` ones through the
    /// middleman) and in its lane.
    fn dress(&self, steps: Vec<script::Step>) -> Vec<script::Step> {
        let steps = steps.into_iter().zip(&self.case.steps).map(|(mut s, case_step)| {
            match (&self.faulty, &self.variant) {
                (Some(conn), _) if case_step.faulty => s.use_connection(conn),
                (_, Some(conn)) => s.use_connection(conn),
                _ => {}
            }
            s.lane = self.lane;
            s
        });
        steps.collect()
    }
}

/// A step's line, with no gate.
fn line(s: &script::Step) -> ScriptLine {
    ScriptLine {
        id: s.id.clone(),
        text: serde_json::to_string(s).expect("steps serialize") + "\n",
        gate: None,
    }
}

/// Step `s` of test `test` as the runner waits for it, with `grace`.
fn pending(test: usize, s: &script::Step, grace: u64) -> Pending {
    Pending {
        test,
        id: s.id.clone(),
        lane: s.lane,
        budget_ms: step_budget(s, grace),
        waiting: s.status_ids(),
    }
}

/// Counts the bytes written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The bytes of a step's line.
fn line_len(s: &script::Step) -> usize {
    let mut n = Counter(1);
    serde_json::to_writer(&mut n, s).expect("steps serialize");
    n.0
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

/// What stands between a test's `faulty` steps and the cell's server: the
/// fault proxies and misbehaving peers of a client process, which live as
/// long as it does.
pub(super) struct Middlemen {
    /// Each with the index of its test.
    proxies: Vec<(usize, proxy::Proxy)>,
    _peers: Vec<peer::Peer>,
}

impl Middlemen {
    /// What each test's proxy did, by test index.
    pub(super) fn journals(&self) -> std::collections::BTreeMap<usize, Vec<String>> {
        self.proxies.iter().map(|(i, p)| (*i, p.journal.lines())).collect()
    }

    /// The client process (its process group) that the proxies may pause.
    pub(super) fn client_started(&self, pgid: i32) {
        for (_, p) in &self.proxies {
            p.pauser.set(pgid);
        }
    }
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

    /// The script of a group of tests, in phases: first one warm-up call per
    /// connection the tests use (see [`script::Step::warm_up`]); then the tests that wait spread
    /// over lanes; then, the same way, the tests with a large script (their
    /// lines are written only then: a client parsing megabytes of JSON on its
    /// one event loop, node or typescript, would delay the deadlines of the
    /// tests beside them); then the tests that run alone. A test whose case
    /// cannot become steps is left out with its error.
    ///
    /// A test whose case has a `fault` gets a proxy (returned: it lives as
    /// long as the process), and its `faulty` steps a connection through it.
    pub(super) fn phases(
        &self,
        entries: &[Entry],
        default: &Connection,
        attempt: u32,
        run: &mut GroupRun,
    ) -> (Vec<Phase>, Middlemen) {
        let grace = self.matrix.run.step_grace_ms;
        let waits: Vec<u64> = entries.iter().map(|e| lanes::test_waiting_ms(&e.test.case)).collect();
        // `lanes` per cell: a process that runs a pair's cells has that many for each.
        let cells = entries
            .iter()
            .map(|e| e.key)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let lane_of = lanes::assign(&waits, lanes::of_process(self.lanes, cells));
        let mut phases: Vec<Phase> = (0..4).map(|_| Phase::default()).collect();
        // The tests with many calls at once, by the server they call.
        let mut many: std::collections::BTreeMap<&str, Phase> = Default::default();
        let mut opened: Vec<&Connection> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            // Only a cell's own connection: a case's (another certificate,
            // another server's, keepalive settings) is part of what it checks.
            if !e.test.case.on_cells_connection() || opened.contains(&&e.conn) {
                continue;
            }
            let key = format!("{}warm-up", self.namespace(e.key, e.test, attempt));
            let step = script::Step::warm_up(opened.len(), &key, (e.conn != *default).then_some(&e.conn));
            opened.push(&e.conn);
            phases[0].order.push(pending(i, &step, grace));
            phases[0].lines.push(Lines::Made(vec![line(&step)]));
        }
        let mut proxies = Vec::new();
        let mut peers = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let t = e.test;
            let calls = t.case.calls_at_once();
            let many_calls = calls >= MANY_CALLS;
            let mut recipe = Recipe {
                case: t.case.clone(),
                prefix: step_prefix(e.key, t),
                namespace: self.namespace(e.key, t, attempt),
                faulty: None,
                variant: (e.conn != *default).then(|| e.conn.clone()),
                lane: if t.case.alone || many_calls { 0 } else { lane_of[i] },
            };
            // A case that cannot become steps is left out before its proxy starts.
            let steps = match script_steps(&t.case.steps, &recipe.prefix, &recipe.namespace) {
                Ok(steps) => steps,
                Err(e) => {
                    run.errors.entry(i).or_default().push(format!("case error: {e}"));
                    continue;
                }
            };
            // The address the `faulty` steps dial instead of the server's.
            let middleman = match (&t.case.fault, t.case.peer) {
                (Some(fault), _) => Some(
                    proxy::start(&e.conn.server, fault, seed(&recipe.prefix))
                        .map(|p| {
                            let addr = p.addr.clone();
                            proxies.push((i, p));
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
            recipe.faulty = faulty;
            let steps = recipe.dress(steps);
            // A test alone is written last anyway, and one with many calls
            // after it, on its own; the others' size says whether they wait
            // for the phase of large scripts, which makes its lines then too.
            let large = steps.iter().map(line_len).sum::<usize>() > LARGE_SCRIPT;
            let phase = match (many_calls, t.case.alone, large) {
                (true, _, _) => {
                    let phase = many.entry(e.conn.server.as_str()).or_default();
                    let held = phase.hold.get_or_insert_with(|| (e.conn.server.clone(), 0));
                    held.1 = held.1.max(calls.min(SERVER_CALLS));
                    phase
                }
                (false, true, _) => &mut phases[3],
                (false, false, true) => &mut phases[2],
                (false, false, false) => &mut phases[1],
            };
            // A gated step's budget counts from when its line is written,
            // after its settle: the budget needs no room for it.
            phase.order.extend(steps.iter().map(|s| pending(i, s, grace)));
            phase.lines.push(match many_calls || t.case.alone || large {
                false => Lines::Made(gated(&t.case, &steps)),
                true => Lines::Later(Box::new(recipe)),
            });
        }
        phases.extend(many.into_values());
        (phases, Middlemen { proxies, _peers: peers })
    }
}

#[cfg(test)]
mod tests;
