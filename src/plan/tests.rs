use super::*;
use crate::input::cases;

fn sets() -> BTreeMap<String, CaseSet> {
    let a = "[[case]]\nname = \"a1\"\n[[case.step]]\nmethod = \"Inventory\"\n[[case]]\nname = \"a2\"\n[[case.step]]\nmethod = \"Inventory\"\n";
    let t = "[[case]]\nname = \"no-cert\"\nconnect = \"no-client-cert\"\n[[case.step]]\nmethod = \"Inventory\"\nexpect.status = \"!OK\"\n";
    let e = "[[case]]\nname = \"expired\"\nserver_cert = \"expired\"\n[[case.step]]\nmethod = \"Inventory\"\nexpect.status = \"!OK\"\n[[case]]\nname = \"ok\"\n[[case.step]]\nmethod = \"Inventory\"\n[[case]]\nname = \"chained\"\nserver_cert = \"chained\"\n[[case.step]]\nmethod = \"Inventory\"\n[[case]]\nname = \"bundle\"\nconnect = \"ca-bundle\"\n[[case.step]]\nmethod = \"Inventory\"\n[[case]]\nname = \"chained-client\"\nconnect = \"chained-client-cert\"\n[[case.step]]\nmethod = \"Inventory\"\n";
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

/// The ids of every test the selection plans, cell by cell.
fn test_ids(s: &Selection, all: &BTreeMap<String, CaseSet>) -> Vec<String> {
    plan(s, all)
        .unwrap()
        .iter()
        .flat_map(|c| c.tests.iter().map(|t| t.id(&c.key)).collect::<Vec<_>>())
        .collect()
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
    // Its own certificate only: the cases that need the runner's expired or
    // chained one, or a bundle of the runner's CAs, are not planned; a
    // chained client certificate (the plugin trusts the run's CA) is.
    let names = |id: &str| -> Vec<String> {
        let c = cells.iter().find(|c| c.key.id() == id).unwrap();
        c.tests.iter().map(|t| t.case.name.clone()).collect()
    };
    assert_eq!(
        names("client=go/server=go/tls=mtls"),
        [
            "a1",
            "a2",
            "no-cert",
            "expired",
            "ok",
            "chained",
            "bundle",
            "chained-client"
        ]
    );
    assert_eq!(names("client=go/server=go/tls=none"), ["a1", "a2", "ok"]);
    assert_eq!(
        names("client=go/server=go/tls=server"),
        ["a1", "a2", "expired", "ok", "chained", "bundle"]
    );
    assert_eq!(
        names("client=go/server=plug/net=tcp/tls=mtls"),
        ["a1", "a2", "no-cert", "ok", "chained-client"]
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

/// Last time's costs of pairs (their cells of TLS mode none and server,
/// key type ec-p256), each cell with `tests` tests.
fn measured(pairs: &[((&str, &str), f64)], tests: usize) -> Costs {
    let mut out = Costs::new();
    for ((c, s), ms) in pairs {
        for tls in [TlsMode::None, TlsMode::Server] {
            let key = CellKey {
                client: c.to_string(),
                server: s.to_string(),
                tls,
                key_type: KeyType::EcP256,
                net: None,
            };
            out.insert(key, order::Measured { ms: *ms, tests });
        }
    }
    out
}

fn pair_order(groups: &[Vec<Cell>], last: &Costs) -> Vec<String> {
    longest_first(groups, last, 8)
        .into_iter()
        .map(|i| format!("{}>{}", groups[i][0].key.client, groups[i][0].key.server))
        .collect()
}

#[test]
fn longest_pairs_start_first_when_each_was_measured_with_the_same_tests() {
    let s = sel(&["a", "b"], &[TlsMode::None], &["a"]);
    let groups = pairs(plan(&s, &sets()).unwrap(), true);
    let all = [
        (("a", "a"), 100.0),
        (("a", "b"), 900.0),
        (("b", "a"), 50.0),
        (("b", "b"), 500.0),
    ];
    assert_eq!(pair_order(&groups, &measured(&all, 2)), ["a>b", "b>b", "a>a", "b>a"]);
    // One pair not measured, or measured with other tests: the estimates
    // (all equal here) for all, in the plan's order.
    assert_eq!(
        pair_order(&groups, &measured(&all[..3], 2)),
        ["a>a", "a>b", "b>a", "b>b"]
    );
    assert_eq!(pair_order(&groups, &measured(&all, 1)), ["a>a", "a>b", "b>a", "b>b"]);
    // One client process per cell: each cell's own measure.
    let cells = pairs(plan(&s, &sets()).unwrap(), false);
    assert_eq!(pair_order(&cells, &measured(&all, 2)), ["a>b", "b>b", "a>a", "b>a"]);
}

#[test]
fn without_measures_the_pairs_that_wait_longest_start_first() {
    let mut all = sets();
    let slow = "[[case]]\nname = \"slow\"\n[[case.step]]\nmethod = \"Get\"\nrequest = { key = \"k\" }\nmetadata = { x-stock-delay-ms = \"3000\" }\ntimeout_ms = 5000\nexpect.status = \"NOT_FOUND\"\n";
    all.insert("w".into(), cases::parse("w", slow).unwrap());
    let mut s = sel(&["a", "b"], &[TlsMode::None], &["a", "w"]);
    s.cases = vec!["a1".into(), "client=b/server=a/*".into()];
    let groups = pairs(plan(&s, &all).unwrap(), true);
    assert_eq!(pair_order(&groups, &Costs::new()), ["b>a", "a>a", "a>b", "b>b"]);
    let slow_pair = &groups[2];
    assert_eq!(slow_pair[0].key.pair(), ("b".to_string(), "a".to_string()));
    // 3 s waiting, and 10 ms for each of its 3 tests.
    assert_eq!(order::estimate_ms(slow_pair, 8), 3030.0);
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
    let ids: Vec<String> = test_ids(&s, &all)
        .into_iter()
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

#[test]
fn one_key_type_starts_after_the_other_each_longest_first() {
    let mut s = sel(&["a", "b"], &[TlsMode::Server], &["a"]);
    s.key_types = vec![KeyType::EcP256, KeyType::Rsa2048];
    let groups = pairs(plan(&s, &sets()).unwrap(), true);
    let mut last = measured(
        &[
            (("a", "a"), 100.0),
            (("a", "b"), 900.0),
            (("b", "a"), 950.0),
            (("b", "b"), 500.0),
        ],
        2,
    );
    let rsa: Vec<_> = last
        .iter()
        .map(|(key, m)| {
            let key = CellKey {
                key_type: KeyType::Rsa2048,
                ..key.clone()
            };
            (key, *m)
        })
        .collect();
    last.extend(rsa);
    let order: Vec<String> = longest_first(&groups, &last, 8)
        .into_iter()
        .map(|i| {
            let k = &groups[i][0].key;
            format!("{}>{} {}", k.client, k.server, k.key_type.as_str())
        })
        .collect();
    assert_eq!(
        order,
        [
            "b>a ec-p256",
            "a>b ec-p256",
            "b>b ec-p256",
            "a>a ec-p256",
            "b>a rsa-2048",
            "a>b rsa-2048",
            "b>b rsa-2048",
            "a>a rsa-2048"
        ]
    );
}

#[test]
fn a_case_for_some_servers_only_runs_against_those_servers() {
    let mut all = sets();
    let own = "[[case]]\nname = \"every\"\n[[case.step]]\nmethod = \"Inventory\"\n[[case]]\nname = \"own\"\nservers = [\"rust\"]\n[[case.step]]\nmethod = \"Inventory\"\n";
    all.insert("own".into(), cases::parse("own", own).unwrap());
    let s = sel(&["go", "rust"], &[TlsMode::None], &["own"]);
    let ids: Vec<String> = test_ids(&s, &all)
        .into_iter()
        .filter(|i| i.ends_with("case=own"))
        .collect();
    assert_eq!(
        ids,
        [
            "client=go/server=rust/tls=none/set=own/case=own",
            "client=rust/server=rust/tls=none/set=own/case=own"
        ]
    );
    let empty = own.replace("[\"rust\"]", "[]");
    let err = cases::parse("own", &empty).unwrap_err();
    assert!(err.contains("case `own`") && err.contains("servers"), "{err}");
}

#[test]
fn a_lifecycle_test_is_in_no_group_of_its_cell_the_shared_servers() {
    let lc = "[[case]]\nname = \"exits\"\nlifecycle = { stop = \"stdin-eof\", within_ms = 3000 }\n";
    let mut all = sets();
    all.insert("lc".into(), cases::parse("lc", lc).unwrap());
    let cells = plan(&sel(&["go"], &[TlsMode::None], &["a", "lc"]), &all).unwrap();
    assert_eq!(cells[0].tests.len(), 3, "planned as a test of the cell");
    let grouped: Vec<&str> = cells[0]
        .groups()
        .values()
        .flatten()
        .map(|t| t.case.name.as_str())
        .collect();
    assert_eq!(grouped, ["a1", "a2"]);
    let alone = plan(&sel(&["go"], &[TlsMode::None], &["lc"]), &all).unwrap();
    assert!(alone[0].groups().is_empty(), "no shared server to start for it");
}
