//! Matrix × case sets × filters → the cells and tests of a run, with stable
//! ids (pure). A cell is one server start (client, server, TLS mode, key
//! type); its tests are the cases that apply to that TLS mode.
pub mod admit;
pub mod lanes;
pub mod order;

pub use order::{costs, longest_first, pairs, Costs};

use crate::input::cases::{Case, CaseSet, Connect, ServerCert};
use crate::model::cell::{CellKey, Net};
use crate::model::tls::{KeyType, TlsMode};
use globset::{Glob, GlobMatcher};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a run covers, after the profile and the command-line filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub clients: Vec<String>,
    pub servers: Vec<String>,
    pub tls: Vec<TlsMode>,
    pub sets: Vec<String>,
    pub key_types: Vec<KeyType>,
    /// Globs over the case name, `set/case` or the whole test id; empty = all.
    pub cases: Vec<String>,
    /// Plugin servers and the transports to ask each for (`None`: whatever
    /// it picks). They serve plaintext or their own automatic mTLS, with
    /// their own certificate: no tls=server cells, no case that needs the
    /// runner's server certificates.
    pub plugins: BTreeMap<String, Vec<Option<Net>>>,
    /// Keep only cells whose client or server is this language.
    pub pivot: Option<String>,
    /// `(k, n)`: keep cells whose index is k-1 modulo n.
    pub shard: Option<(usize, usize)>,
}

/// One test: a case in a cell.
#[derive(Debug, Clone)]
pub struct Test {
    pub set: String,
    pub case: Arc<Case>,
}

impl Test {
    pub fn id(&self, cell: &CellKey) -> String {
        format!("{}/set={}/case={}", cell.id(), self.set, self.case.name)
    }

    /// The case's own key prefix in this test.
    pub fn namespace(&self, attempt: u32) -> String {
        if attempt <= 1 {
            format!("{}.{}/", self.set, self.case.name)
        } else {
            format!("{}.{}.{attempt}/", self.set, self.case.name)
        }
    }
}

/// A cell and its tests.
#[derive(Debug, Clone)]
pub struct Cell {
    pub key: CellKey,
    pub tests: Vec<Test>,
}

impl Cell {
    /// Tests grouped by the server certificate (one server start and one
    /// client process each), those on the cell's own connection first. A
    /// lifecycle case's test is in none: it has a server of its own.
    pub fn groups(&self) -> BTreeMap<ServerCert, Vec<&Test>> {
        let mut groups: BTreeMap<ServerCert, Vec<&Test>> = BTreeMap::new();
        for t in self.tests.iter().filter(|t| t.case.lifecycle.is_none()) {
            groups.entry(t.case.server_cert).or_default().push(t);
        }
        for tests in groups.values_mut() {
            tests.sort_by_key(|t| t.case.connect);
        }
        groups
    }
}

/// Parses `K/N` for `--shard`.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("--shard takes K/N, got {s:?}"))?;
    let (k, n): (usize, usize) = (
        k.parse().map_err(|_| format!("bad K in {s:?}"))?,
        n.parse().map_err(|_| format!("bad N in {s:?}"))?,
    );
    if n == 0 || k == 0 || k > n {
        return Err(format!("--shard K/N needs 1 <= K <= N, got {s:?}"));
    }
    Ok((k, n))
}

/// Every cell of a selection, sorted, with the tests that apply to it.
/// Cells with no applicable test are dropped.
pub fn plan(sel: &Selection, sets: &BTreeMap<String, CaseSet>) -> Result<Vec<Cell>, String> {
    let globs: Vec<GlobMatcher> = sel
        .cases
        .iter()
        .map(|g| {
            Glob::new(g)
                .map(|g| g.compile_matcher())
                .map_err(|e| format!("--case {g:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    // One shared copy of each case for all the cells that run it.
    let shared: BTreeMap<&String, Vec<Arc<Case>>> = sets
        .iter()
        .map(|(name, cs)| (name, cs.cases.iter().cloned().map(Arc::new).collect()))
        .collect();
    let mut cells = Vec::new();
    for client in &sel.clients {
        for server in &sel.servers {
            if sel.pivot.as_ref().is_some_and(|p| p != client && p != server) {
                continue;
            }
            let plugin = sel.plugins.get(server);
            let nets = plugin.map_or(&[None][..], |n| &n[..]);
            for &tls in &sel.tls {
                if plugin.is_some() && tls == TlsMode::Server {
                    continue;
                }
                // The key type only matters with TLS, and the runner's
                // certificates (a plugin serves with its own).
                let key_types = if tls == TlsMode::None || plugin.is_some() {
                    &sel.key_types[..1]
                } else {
                    &sel.key_types[..]
                };
                for (&key_type, &net) in key_types.iter().flat_map(|k| nets.iter().map(move |n| (k, n))) {
                    let key = CellKey {
                        client: client.clone(),
                        server: server.clone(),
                        tls,
                        key_type,
                        net,
                    };
                    let mut tests = Vec::new();
                    for set in &sel.sets {
                        let cs = sets.get(set).ok_or_else(|| format!("unknown set `{set}`"))?;
                        if !cs.drivable_by(client) || !cs.served_by(server) {
                            continue;
                        }
                        // A plugin presents the certificate of its handshake,
                        // which the clients trust alone.
                        let runner_cert = |c: &Case| {
                            plugin.is_some()
                                && (matches!(c.server_cert, ServerCert::Expired | ServerCert::Chained)
                                    || c.connect == Connect::CaBundle)
                        };
                        for case in shared[set]
                            .iter()
                            .filter(|c| c.applies_to(tls) && c.served_by(server) && !runner_cert(c))
                        {
                            let test = Test {
                                set: set.clone(),
                                case: case.clone(),
                            };
                            let id = test.id(&key);
                            let short = format!("{set}/{}", case.name);
                            if globs.is_empty()
                                || globs
                                    .iter()
                                    .any(|g| g.is_match(&case.name) || g.is_match(&short) || g.is_match(&id))
                            {
                                tests.push(test);
                            }
                        }
                    }
                    if !tests.is_empty() {
                        cells.push(Cell { key, tests });
                    }
                }
            }
        }
    }
    cells.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some((k, n)) = sel.shard {
        // Round-robin over pairs, so that a pair's cells share one client process.
        let mut pair: Option<(String, String)> = None;
        let mut i = 0;
        cells.retain(|c| {
            let this = c.key.pair();
            if pair.as_ref().is_some_and(|p| *p != this) {
                i += 1;
            }
            pair = Some(this);
            i % n == k - 1
        });
    }
    Ok(cells)
}

/// Combinations (client × server × TLS × set) a selection names, as the
/// profiles count them; a set only counts for the clients that can drive it.
pub fn combinations(sel: &Selection, sets: &BTreeMap<String, CaseSet>) -> usize {
    let pairs = sel
        .clients
        .iter()
        .flat_map(|c| sel.servers.iter().map(move |s| (c, s)))
        .filter(|(c, s)| sel.pivot.as_ref().is_none_or(|p| p == *c || p == *s));
    let per_pair = |client: &str| {
        sel.sets
            .iter()
            .filter(|s| sets.get(*s).is_none_or(|cs| cs.drivable_by(client)))
            .count()
    };
    // A plugin server: no tls=server, and each of its transports.
    let modes = |server: &str| match sel.plugins.get(server) {
        Some(nets) => sel.tls.iter().filter(|t| **t != TlsMode::Server).count() * nets.len(),
        None => sel.tls.len(),
    };
    pairs.map(|(c, s)| per_pair(c) * modes(s)).sum::<usize>()
}

#[cfg(test)]
mod tests;
