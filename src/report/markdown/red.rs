//! What is not green: the listed failures and flakes, then the red cells
//! with their likely culprit and every red test with its reasons, its tries,
//! the ends of both sides' stderr and the command that reproduces it.
use crate::model::run::{Outcome, RunSummary, TestResult};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The known-failing and known-flaky tests, with the first reason of each.
pub(super) fn listed(out: &mut String, s: &RunSummary) {
    let listed: Vec<_> = s
        .tests
        .iter()
        .filter(|t| matches!(t.outcome, Outcome::ExpectedFailure | Outcome::KnownFlaky))
        .collect();
    if !listed.is_empty() {
        let _ = writeln!(out, "## Expected failures and known flakes ({})\n", listed.len());
        for t in listed {
            let _ = writeln!(
                out,
                "- `{}`: {}",
                t.id,
                t.reasons.first().map(|r| r.replace('\n', " ")).unwrap_or_default()
            );
        }
        let _ = writeln!(out);
    }
}

/// The red cells, then each red test.
pub(super) fn render(out: &mut String, s: &RunSummary) {
    // Tests of an unavailable language are in the table above, not one by one.
    let red: Vec<_> = s
        .tests
        .iter()
        .filter(|t| t.outcome.is_red() && t.outcome != Outcome::Interrupted && t.unavailable.is_none())
        .collect();
    if !red.is_empty() {
        red_cells(out, s, &red);
        let _ = writeln!(out, "## Failures ({})\n", red.len());
        for t in red {
            let label = match t.outcome {
                Outcome::Failed => "FAIL",
                Outcome::Flaky => "FLAKY",
                _ => "ERROR",
            };
            let _ = writeln!(out, "### {label} `{}`\n", t.id);
            if let Some(b) = &t.blame {
                let _ = writeln!(out, "Likely culprit: **{b}**\n");
            }
            for r in &t.reasons {
                let _ = writeln!(out, "- {}", r.replace('\n', " "));
            }
            for (i, a) in t.attempts.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "- try {}: {:?}: {}",
                    i + 1,
                    a.outcome,
                    a.reasons
                        .first()
                        .map(|r| r.replace('\n', " "))
                        .unwrap_or_else(|| "passed".into())
                );
            }
            for (who, text) in [("server", &t.server_stderr), ("client", &t.client_stderr)] {
                if !text.is_empty() {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = lines[lines.len().saturating_sub(12)..].join("\n");
                    let _ = writeln!(
                        out,
                        "\n<details><summary>{who} stderr (last lines)</summary>\n\n```\n{tail}\n```\n</details>"
                    );
                }
            }
            let _ = writeln!(out, "\nReproduce: `{}`\n", t.reproduce);
        }
    }
}

/// One row per cell with red tests: how many, and who the blame runs point
/// at (each distinct verdict with its count), so the culprit of a wide run
/// reads at a glance before the per-test details.
fn red_cells(out: &mut String, s: &RunSummary, red: &[&TestResult]) {
    let mut cells: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for t in red {
        let blame = t.blame.clone().unwrap_or_else(|| "not assessed".into());
        *cells.entry(t.cell.id()).or_default().entry(blame).or_default() += 1;
    }
    let _ = writeln!(out, "## Red cells ({})\n", cells.len());
    let _ = writeln!(out, "| cell | red | likely culprit |\n|---|---|---|");
    for (cell, blames) in cells {
        let n: usize = blames.values().sum();
        let total = s.tests.iter().filter(|t| t.cell.id() == cell).count();
        let blame = if blames.len() == 1 {
            blames.into_keys().next().unwrap_or_default()
        } else {
            blames
                .iter()
                .map(|(b, k)| format!("{b} ×{k}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = writeln!(out, "| `{cell}` | {n}/{total} | {} |", blame.replace('|', "\\|"));
    }
    let _ = writeln!(out);
}
