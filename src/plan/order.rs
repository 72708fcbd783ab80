//! Which client process runs which cells, and in what order they start
//! (pure): the cells of one pair together, the longest pairs first.
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
