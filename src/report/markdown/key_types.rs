//! The crypto axis: which pairs work with which certificate key types.
use super::cell_text;
use crate::model::run::{Counts, RunSummary};
use std::collections::BTreeSet;
use std::fmt::Write;

/// The key-type table, when the run has more than one key type.
pub(super) fn render(out: &mut String, s: &RunSummary) {
    let key_types: BTreeSet<&str> = s.tests.iter().map(|t| t.cell.key_type.as_str()).collect();
    if key_types.len() > 1 {
        table(out, s, &key_types);
    }
}

/// Which pairs work with which certificate key types (TLS cells only). In a
/// wide run the pairs that pass with every key type are folded into one line,
/// so the rows left are the incompatibilities.
fn table(out: &mut String, s: &RunSummary, key_types: &BTreeSet<&str>) {
    const FOLD_ABOVE: usize = 12;
    let pairs: BTreeSet<(&str, &str)> = s
        .tests
        .iter()
        .map(|t| (t.cell.client.as_str(), t.cell.server.as_str()))
        .collect();
    let rows: Vec<((&str, &str), Vec<Counts>)> = pairs
        .into_iter()
        .map(|(c, sv)| {
            let counts = key_types
                .iter()
                .map(|k| {
                    Counts::of(s.tests.iter().filter(|t| {
                        t.cell.client == c
                            && t.cell.server == sv
                            && t.cell.key_type.as_str() == *k
                            && t.cell.tls != crate::model::tls::TlsMode::None
                    }))
                })
                .collect();
            ((c, sv), counts)
        })
        .collect();
    let all_pass = |counts: &[Counts]| counts.iter().all(|c| c.total() > 0 && c.passed == c.total());
    let fold = rows.len() > FOLD_ABOVE;
    let folded = if fold {
        rows.iter().filter(|(_, c)| all_pass(c)).count()
    } else {
        0
    };
    let _ = writeln!(out, "## Certificate key types (TLS cells)\n");
    if fold {
        let _ = writeln!(
            out,
            "{folded} of {} pairs pass every TLS test with every key type; the other {} are listed.\n",
            rows.len(),
            rows.len() - folded
        );
    }
    if folded == rows.len() {
        return;
    }
    let _ = writeln!(
        out,
        "| client → server | {} |",
        key_types.iter().copied().collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---|".repeat(key_types.len()));
    for ((c, sv), counts) in rows.iter().filter(|(_, counts)| !fold || !all_pass(counts)) {
        let cells: Vec<String> = counts.iter().map(|k| cell_text(*k)).collect();
        let _ = writeln!(out, "| {c} → {sv} | {} |", cells.join(" | "));
    }
    let _ = writeln!(out);
}
