//! Which client process runs which cells, and in what order they start
//! (pure): the cells of one pair together, one key type after the other,
//! the longest pairs first.
use super::Cell;
use crate::model::tls::KeyType;
use std::collections::BTreeMap;

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

/// What a cell took in an earlier run (with one client process per pair,
/// its pair's time), and with how many tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub ms: f64,
    pub tests: usize,
}

/// What each cell took last time, as a run's cells say.
pub type Costs = BTreeMap<crate::model::cell::CellKey, Measured>;

/// The costs a run's cells measured.
pub fn costs(cells: &[crate::model::run::CellInfo]) -> Costs {
    cells
        .iter()
        .map(|c| {
            (
                c.key.clone(),
                Measured {
                    ms: c.duration_ms,
                    tests: c.tests,
                },
            )
        })
        .collect()
}

/// A client process's cost beyond its waits, per test (the JVM clients
/// spend about 9 ms of CPU on each, rust 1.5 ms).
const PER_TEST_MS: f64 = 10.0;

/// What a group of cells should take from its cases alone: its waiting
/// tests spread over the lanes its client process will have (the longest
/// lane), and a little for every test.
pub fn estimate_ms(group: &[Cell], lanes_per_cell: u32) -> f64 {
    let waits: Vec<u64> = group
        .iter()
        .flat_map(|c| c.tests.iter().map(|t| super::lanes::test_waiting_ms(&t.case)))
        .collect();
    let lanes = super::lanes::of_process(lanes_per_cell, group.len());
    super::lanes::longest_lane_ms(&waits, lanes) as f64 + PER_TEST_MS * waits.len() as f64
}

/// The order to start the groups in (their indices): one key type after
/// the other (in the plan's order), and within a key type the longest first,
/// so that no long one starts last: by what the groups took last time if
/// every cell of them ran the same tests then, else by their estimates from
/// their cases (a run of other cases, or none, says nothing of this one:
/// after a quick run, or on a fresh machine, the full run's pairs started in
/// the plan's order and it took 818 s where the same run took 433 s in the
/// measured order); equal ones keep their order. The groups themselves keep
/// the plan's order (the reports').
///
/// Key type first because a shared server lives from its first cell to its
/// last: taken longest first across key types, every pair's four key types
/// start together and every server of the run is up at once (a full run of
/// all four key types on 24 GiB was killed by the kernel's OOM killer after
/// 11 minutes, 100-odd servers up, the JVM ones 0.4 to 0.8 GiB each). One key
/// type at a time keeps a key type's servers up only while its cells run.
pub fn longest_first(groups: &[Vec<Cell>], last: &Costs, lanes_per_cell: u32) -> Vec<usize> {
    let mut key_types: Vec<KeyType> = Vec::new();
    for g in groups {
        if let Some(c) = g.first() {
            if !key_types.contains(&c.key.key_type) {
                key_types.push(c.key.key_type);
            }
        }
    }
    let rank = |i: usize| {
        groups[i]
            .first()
            .and_then(|c| key_types.iter().position(|k| *k == c.key.key_type))
            .unwrap_or(0)
    };
    // A group's measure: its longest cell, if each of its cells ran the same tests then.
    let measured = |g: &Vec<Cell>| {
        g.iter()
            .map(|c| last.get(&c.key).filter(|m| m.tests == c.tests.len()).map(|m| m.ms))
            .try_fold(0.0, |most: f64, ms| ms.map(|ms| most.max(ms)))
    };
    // Measures and estimates are not on one scale: all of one or the other.
    let costs: Vec<f64> = groups
        .iter()
        .map(measured)
        .collect::<Option<_>>()
        .unwrap_or_else(|| groups.iter().map(|g| estimate_ms(g, lanes_per_cell)).collect());
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|&a, &b| rank(a).cmp(&rank(b)).then(costs[b].total_cmp(&costs[a])));
    order
}
