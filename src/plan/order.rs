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

/// The order to start the groups in (their indices): one key type after
/// the other (in the plan's order), and within a key type the longest first
/// by what they took last time, so that no long one starts last; a pair
/// without a measure counts as longest (it may be new or slow), and equal
/// ones keep their order. The groups themselves keep the plan's order (the
/// reports').
///
/// Key type first because a shared server lives from its first cell to its
/// last: taken longest first across key types, every pair's four key types
/// start together and every server of the run is up at once (a full run of
/// all four key types on 24 GiB was killed by the kernel's OOM killer after
/// 11 minutes, 100-odd servers up, the JVM ones 0.4 to 0.8 GiB each). One key
/// type at a time keeps a key type's servers up only while its cells run.
pub fn longest_first(groups: &[Vec<Cell>], last: &Costs) -> Vec<usize> {
    let mut key_types: Vec<KeyType> = Vec::new();
    for g in groups {
        if let Some(c) = g.first() {
            if !key_types.contains(&c.key.key_type) {
                key_types.push(c.key.key_type);
            }
        }
    }
    let rank = |i: &usize| {
        groups[*i]
            .first()
            .and_then(|c| key_types.iter().position(|k| *k == c.key.key_type))
            .unwrap_or(0)
    };
    let cost = |i: &usize| {
        groups[*i]
            .first()
            .and_then(|c| last.get(&c.key.pair()))
            .copied()
            .unwrap_or(f64::INFINITY)
    };
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|a, b| rank(a).cmp(&rank(b)).then(cost(b).total_cmp(&cost(a))));
    order
}
