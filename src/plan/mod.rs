//! Matrix × case sets × filters → the cells and tests of a run, with stable
//! ids (pure). A cell is one server start (client, server, TLS mode, key
//! type); its tests are the cases that apply to that TLS mode.
pub mod admit;
pub mod lanes;

use crate::input::cases::{Case, CaseSet, ServerCert};
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
    /// client process each), those on the cell's own connection first.
    pub fn groups(&self) -> BTreeMap<ServerCert, Vec<&Test>> {
        let mut groups: BTreeMap<ServerCert, Vec<&Test>> = BTreeMap::new();
        for t in &self.tests {
            groups.entry(t.case.server_cert).or_default().push(t);
        }
        for tests in groups.values_mut() {
            tests.sort_by_key(|t| t.case.connect);
        }
        groups
    }
}

/// Cells in the groups one client process each runs: per pair, the cells of
/// one client against one server and key type (every TLS mode), in the
/// order their first cell comes; else one cell each.
pub fn pairs(cells: Vec<Cell>, per_pair: bool) -> Vec<Vec<Cell>> {
    if !per_pair {
        return cells.into_iter().map(|c| vec![c]).collect();
    }
    let mut out: Vec<Vec<Cell>> = Vec::new();
    let mut at: BTreeMap<((String, String), KeyType), usize> = BTreeMap::new();
    for c in cells {
        let k = (c.key.pair(), c.key.key_type);
        match at.get(&k) {
            Some(&i) => out[i].push(c),
            None => {
                at.insert(k, out.len());
                out.push(vec![c]);
            }
        }
    }
    out
}

/// What each pair took last time (client, server → ms), as a run's cells say.
pub type Costs = BTreeMap<(String, String), f64>;

/// The costs a run's cells measured: per pair, its longest cell.
pub fn costs(cells: &[crate::model::run::CellInfo]) -> Costs {
    let mut out = Costs::new();
    for c in cells {
        let e = out.entry(c.key.pair()).or_insert(0.0);
        *e = e.max(c.duration_ms);
    }
    out
}

/// The order to start the groups in (their indices): longest first by what
/// they took last time, so that no long one starts last; a pair without a
/// measure counts as longest (it may be new or slow), and equal ones keep
/// their order. The groups themselves keep the plan's order (the reports').
pub fn longest_first(groups: &[Vec<Cell>], last: &Costs) -> Vec<usize> {
    let cost = |i: &usize| {
        groups[*i]
            .first()
            .and_then(|c| last.get(&c.key.pair()))
            .copied()
            .unwrap_or(f64::INFINITY)
    };
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|a, b| cost(b).total_cmp(&cost(a)));
    order
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
                        let runner_cert = |c: &Case| plugin.is_some() && c.server_cert != ServerCert::Normal;
                        for case in shared[set].iter().filter(|c| c.applies_to(tls) && !runner_cert(c)) {
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
mod tests {
    use super::*;
    use crate::input::cases;

    fn sets() -> BTreeMap<String, CaseSet> {
        let a = "[[case]]\nname = \"a1\"\n[[case.step]]\nmethod = \"Inventory\"\n[[case]]\nname = \"a2\"\n[[case.step]]\nmethod = \"Inventory\"\n";
        let t = "[[case]]\nname = \"no-cert\"\nconnect = \"no-client-cert\"\n[[case.step]]\nmethod = \"Inventory\"\nexpect.status = \"!OK\"\n";
        let e = "[[case]]\nname = \"expired\"\nserver_cert = \"expired\"\n[[case.step]]\nmethod = \"Inventory\"\nexpect.status = \"!OK\"\n[[case]]\nname = \"ok\"\n[[case.step]]\nmethod = \"Inventory\"\n";
        [("a", a), ("tls", t), ("expired", e)]
            .into_iter()
            .map(|(n, s)| (n.to_string(), cases::parse(n, s).unwrap()))
            .collect()
    }

    fn sel(clients: &[&str], tls: &[TlsMode], sets: &[&str]) -> Selection {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Selection {
            clients: v(clients),
            servers: v(clients),
            tls: tls.to_vec(),
            sets: v(sets),
            key_types: vec![KeyType::EcP256],
            cases: vec![],
            plugins: BTreeMap::new(),
            pivot: None,
            shard: None,
        }
    }

    #[test]
    fn cells_cover_every_pair_and_ids_are_stable() {
        let s = sel(&["go", "rust"], &[TlsMode::None], &["a"]);
        let cells = plan(&s, &sets()).unwrap();
        assert_eq!(cells.len(), 4);
        assert_eq!(
            cells[0].tests[1].id(&cells[0].key),
            "client=go/server=go/tls=none/set=a/case=a2"
        );
        assert_eq!(combinations(&s, &sets()), 4);
    }

    #[test]
    fn a_plugin_server_gets_a_cell_per_transport_and_none_it_cannot_serve() {
        let mut s = sel(&["go"], &TlsMode::ALL, &["a", "tls", "expired"]);
        s.servers = vec!["go".into(), "plug".into(), "any".into()];
        s.plugins = BTreeMap::from([
            ("plug".to_string(), vec![Some(Net::Unix), Some(Net::Tcp)]),
            ("any".to_string(), vec![None]),
        ]);
        let cells = plan(&s, &sets()).unwrap();
        let ids: Vec<String> = cells.iter().map(|c| c.key.id()).collect();
        assert_eq!(
            ids,
            [
                "client=go/server=any/tls=none",
                "client=go/server=any/tls=mtls",
                "client=go/server=go/tls=none",
                "client=go/server=go/tls=server",
                "client=go/server=go/tls=mtls",
                "client=go/server=plug/net=unix/tls=none",
                "client=go/server=plug/net=tcp/tls=none",
                "client=go/server=plug/net=unix/tls=mtls",
                "client=go/server=plug/net=tcp/tls=mtls",
            ]
        );
        // Its own certificate only: the case that needs the runner's expired one is not planned.
        let names = |id: &str| -> Vec<String> {
            let c = cells.iter().find(|c| c.key.id() == id).unwrap();
            c.tests.iter().map(|t| t.case.name.clone()).collect()
        };
        assert_eq!(
            names("client=go/server=go/tls=mtls"),
            ["a1", "a2", "no-cert", "expired", "ok"]
        );
        assert_eq!(
            names("client=go/server=plug/net=tcp/tls=mtls"),
            ["a1", "a2", "no-cert", "ok"]
        );
        // Its own certificate: the runner's key types do not multiply its cells.
        s.key_types = vec![KeyType::EcP256, KeyType::Rsa2048];
        s.plugins.insert("plug".into(), vec![Some(Net::Unix)]);
        let plug: Vec<String> = plan(&s, &sets())
            .unwrap()
            .iter()
            .filter(|c| c.key.server == "plug")
            .map(|c| c.key.id())
            .collect();
        assert_eq!(
            plug,
            [
                "client=go/server=plug/net=unix/tls=none",
                "client=go/server=plug/net=unix/tls=mtls"
            ]
        );
        // A transport filter that leaves a plugin none: no cell for it.
        s.plugins.insert("plug".into(), vec![]);
        assert!(plan(&s, &sets()).unwrap().iter().all(|c| c.key.server != "plug"));
    }

    #[test]
    fn negative_cases_only_where_they_mean_something() {
        let cells = plan(&sel(&["rust"], &TlsMode::ALL, &["tls"]), &sets()).unwrap();
        assert_eq!(cells.len(), 1);
        assert_eq!(cells[0].key.tls, TlsMode::Mtls);
    }

    #[test]
    fn case_globs_filter_by_name_or_id() {
        let mut s = sel(&["rust"], &[TlsMode::None], &["a"]);
        s.cases = vec!["a2".into()];
        assert_eq!(plan(&s, &sets()).unwrap()[0].tests.len(), 1);
        s.cases = vec!["client=rust/*/case=a1".into()];
        assert_eq!(plan(&s, &sets()).unwrap()[0].tests[0].case.name, "a1");
    }

    #[test]
    fn shards_partition_the_cells() {
        let mut s = sel(&["a", "b", "c"], &[TlsMode::None], &["a"]);
        let all: Vec<String> = plan(&s, &sets()).unwrap().iter().map(|c| c.key.id()).collect();
        let mut union = Vec::new();
        for k in 1..=4 {
            s.shard = Some((k, 4));
            union.extend(plan(&s, &sets()).unwrap().iter().map(|c| c.key.id()));
        }
        union.sort();
        assert_eq!(union, all);
        s.tls = TlsMode::ALL.to_vec();
        s.shard = Some((2, 4));
        let shard: Vec<String> = plan(&s, &sets()).unwrap().iter().map(|c| c.key.id()).collect();
        assert_eq!(
            shard.len(),
            6,
            "two pairs (9 over 4 shards), every TLS mode of each: {shard:?}"
        );
        assert!(
            shard[..3].iter().all(|id| id.starts_with("client=a/server=b/")),
            "{shard:?}"
        );
        assert_eq!(parse_shard("2/3"), Ok((2, 3)));
        assert!(parse_shard("4/3").is_err());
    }

    #[test]
    fn a_pivot_keeps_only_pairs_with_that_language() {
        let mut s = sel(&["a", "b", "rust"], &[TlsMode::None], &["a"]);
        s.pivot = Some("rust".into());
        let ids: Vec<String> = plan(&s, &sets())
            .unwrap()
            .iter()
            .map(|c| format!("{}>{}", c.key.client, c.key.server))
            .collect();
        assert_eq!(ids, ["a>rust", "b>rust", "rust>a", "rust>b", "rust>rust"]);
        assert_eq!(combinations(&s, &sets()), 5);
    }

    #[test]
    fn pairs_gather_the_tls_modes_of_one_client_and_server() {
        let s = sel(&["go", "rust"], &TlsMode::ALL, &["a"]);
        let ids = |per_pair| -> Vec<Vec<String>> {
            pairs(plan(&s, &sets()).unwrap(), per_pair)
                .iter()
                .map(|p| p.iter().map(|c| c.key.id()).collect())
                .collect()
        };
        let by_pair = ids(true);
        assert_eq!(by_pair.len(), 4);
        assert_eq!(
            by_pair[0],
            [
                "client=go/server=go/tls=none",
                "client=go/server=go/tls=server",
                "client=go/server=go/tls=mtls"
            ]
        );
        assert!(by_pair
            .iter()
            .all(|p| p.len() == 3 && p.iter().all(|id| id.starts_with(&p[0][..24]))));
        assert_eq!(ids(false).len(), 12);
    }

    #[test]
    fn longest_pairs_start_first_and_unmeasured_ones_before_them() {
        let s = sel(&["a", "b"], &[TlsMode::None], &["a"]);
        let groups = pairs(plan(&s, &sets()).unwrap(), true);
        let last: Costs = [(("a", "a"), 100.0), (("a", "b"), 900.0), (("b", "b"), 500.0)]
            .into_iter()
            .map(|((c, s), ms)| ((c.to_string(), s.to_string()), ms))
            .collect();
        let order: Vec<String> = longest_first(&groups, &last)
            .into_iter()
            .map(|i| format!("{}>{}", groups[i][0].key.client, groups[i][0].key.server))
            .collect();
        assert_eq!(order, ["b>a", "a>b", "b>b", "a>a"]);
    }

    #[test]
    fn key_types_multiply_tls_cells_only() {
        let mut s = sel(&["rust"], &[TlsMode::None, TlsMode::Server], &["a"]);
        s.key_types = vec![KeyType::EcP256, KeyType::Rsa2048];
        let ids: Vec<String> = plan(&s, &sets()).unwrap().iter().map(|c| c.key.id()).collect();
        assert_eq!(
            ids,
            [
                "client=rust/server=rust/tls=none",
                "client=rust/server=rust/tls=server",
                "client=rust/server=rust/tls=server/key=rsa-2048"
            ]
        );
    }

    #[test]
    fn a_set_for_some_clients_only_runs_with_those_clients() {
        let mut all = sets();
        let kv = "clients = [\"rust\"]\n[[case]]\nname = \"k\"\n[[case.step]]\nmethod = \"proto.KV.Get\"\nrequest = { key = \"x\" }\nexpect.status = \"NOT_FOUND\"\n";
        all.insert("kv".into(), cases::parse("kv", kv).unwrap());
        let s = sel(&["go", "rust"], &[TlsMode::None], &["a", "kv"]);
        let ids: Vec<String> = plan(&s, &all)
            .unwrap()
            .iter()
            .flat_map(|c| c.tests.iter().map(|t| t.id(&c.key)).collect::<Vec<_>>())
            .filter(|i| i.contains("set=kv"))
            .collect();
        assert_eq!(
            ids,
            [
                "client=rust/server=go/tls=none/set=kv/case=k",
                "client=rust/server=rust/tls=none/set=kv/case=k"
            ]
        );
        // 4 pairs run `a`, the 2 with a rust client also run `kv`.
        assert_eq!(combinations(&s, &all), 6);
        assert!(cases::parse(
            "kv",
            "clients = []\n[[case]]\nname = \"k\"\n[[case.step]]\nmethod = \"Inventory\"\n"
        )
        .is_err());
    }
}
