//! The resilience grid (pure): for the sets of faults (the network's, the
//! misbehaving HTTP/2 servers', keepalive's), one row per case
//! and one column per language, as a client and as a server, each cell saying
//! what that language did: ✅, or what went wrong instead (the status it
//! reported, a hang, a crash), so a person sees which stack does what on a
//! network that misbehaves.
use crate::model::run::{Outcome, TestResult};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The sets whose tests the grid shows, and the sides that mean something:
/// (client side, server side). The `h2-servers` steps call the runner's own
/// peers, not the cell's server; the `h2-clients` calls are the reference
/// client's, whatever the cell's client.
pub const SETS: [(&str, bool, bool); 4] = [
    ("faults", true, true),
    ("keepalive", true, true),
    ("h2-servers", true, false),
    ("h2-clients", false, true),
];

fn in_grid(t: &TestResult, server_side: bool) -> bool {
    SETS.iter()
        .any(|(s, client, server)| t.set == *s && if server_side { *server } else { *client })
}

fn in_any(t: &TestResult) -> bool {
    in_grid(t, false) || in_grid(t, true)
}

/// What one red test shows, in a word or two.
fn observed(t: &TestResult) -> String {
    let all = t.reasons.join("\n");
    if all.contains("client hung") {
        return "hang".into();
    }
    if all.contains("client exited") {
        return "crash".into();
    }
    for r in &t.reasons {
        if let Some((_, rest)) = r.split_once("status: expected ") {
            if let Some((_, got)) = rest.split_once(", got ") {
                let code: String = got
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                if !code.is_empty() {
                    return code;
                }
            }
        }
    }
    "wrong result".into()
}

/// One grid cell over the tests of a (case, language, side).
fn cell(tests: &[&TestResult]) -> String {
    if tests.is_empty() {
        return "·".into();
    }
    let red: Vec<&&TestResult> = tests
        .iter()
        .filter(|t| !matches!(t.outcome, Outcome::Passed | Outcome::KnownFlaky | Outcome::Interrupted))
        .collect();
    if red.is_empty() {
        // Where the spec leaves a choice, which way the passing tests went
        // (other than OK), e.g. a call a ping policy cut: UNAVAILABLE.
        let mut chose: BTreeMap<&str, usize> = BTreeMap::new();
        for t in tests {
            let codes: BTreeSet<&str> = t
                .choices
                .iter()
                .filter_map(|c| c.rsplit_once(": ").map(|(_, code)| code))
                .filter(|code| *code != "OK")
                .collect();
            codes.into_iter().for_each(|c| *chose.entry(c).or_default() += 1);
        }
        let chose: Vec<String> = chose
            .into_iter()
            .map(|(c, n)| format!("{c} {n}/{}", tests.len()))
            .collect();
        return match chose.is_empty() {
            true => "✅".into(),
            false => format!("✅ ({})", chose.join(", ")),
        };
    }
    let seen: BTreeSet<String> = red.iter().map(|t| observed(t)).collect();
    let mark = if red.iter().any(|t| t.outcome.is_red()) {
        "❌"
    } else {
        "⚠️"
    };
    format!(
        "{mark} {} ({}/{})",
        seen.into_iter().collect::<Vec<_>>().join(", "),
        red.len(),
        tests.len()
    )
}

/// The grid, or nothing when the run has no test of the set.
pub fn render(out: &mut String, tests: &[TestResult]) {
    let faults: Vec<&TestResult> = tests.iter().filter(|t| in_any(t)).collect();
    if faults.is_empty() {
        return;
    }
    let sets: Vec<&str> = SETS
        .iter()
        .map(|s| s.0)
        .filter(|s| faults.iter().any(|t| t.set == *s))
        .collect();
    // Rows are (set, case); a case name that two sets share is shown with its set.
    let cases: Vec<(&str, &str)> = {
        let mut seen = BTreeSet::new();
        faults
            .iter()
            .map(|t| (t.set.as_str(), t.case.as_str()))
            .filter(|c| seen.insert(*c))
            .collect()
    };
    let label = |(set, case): (&str, &str)| match cases.iter().filter(|c| c.1 == case).count() {
        1 => case.to_string(),
        _ => format!("{set}/{case}"),
    };
    let _ = writeln!(
        out,
        "## Resilience (set {})\n\nWhat each language did when the network or its peer misbehaved, over every peer and TLS mode of the run: ✅, or the status it reported instead, `hang` or `crash` (❌ red, ⚠️ known-failing; how many tests of the cell). The `h2-servers` cases test clients only (the runner's own HTTP/2 server stands in for the server), the `h2-clients` cases servers only (the reference client misbehaves).\n",
        sets.join(", ")
    );
    for (side, lang_of) in [
        (
            "as a client",
            (|t: &TestResult| t.cell.client.clone()) as fn(&TestResult) -> String,
        ),
        ("as a server", |t: &TestResult| t.cell.server.clone()),
    ] {
        let server_side = side == "as a server";
        let faults: Vec<&TestResult> = faults.iter().copied().filter(|t| in_grid(t, server_side)).collect();
        let mut by: BTreeMap<(String, (&str, &str)), Vec<&TestResult>> = BTreeMap::new();
        for t in &faults {
            by.entry((lang_of(t), (t.set.as_str(), t.case.as_str())))
                .or_default()
                .push(t);
        }
        if faults.is_empty() {
            continue;
        }
        let langs: BTreeSet<String> = faults.iter().map(|t| lang_of(t)).collect();
        let _ = writeln!(out, "### {side}\n");
        let _ = writeln!(
            out,
            "| fault ↓ language → | {} |\n|---|{}",
            langs.iter().cloned().collect::<Vec<_>>().join(" | "),
            "---|".repeat(langs.len())
        );
        for case in cases
            .iter()
            .filter(|c| faults.iter().any(|t| (t.set.as_str(), t.case.as_str()) == **c))
        {
            let row: Vec<String> = langs
                .iter()
                .map(|l| cell(by.get(&(l.clone(), *case)).map(Vec::as_slice).unwrap_or(&[])))
                .collect();
            let _ = writeln!(out, "| {} | {} |", label(*case), row.join(" | "));
        }
        let _ = writeln!(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::run::fixtures::result;
    use crate::model::tls::TlsMode;

    fn fault(client: &str, server: &str, case: &str, outcome: Outcome, reasons: &[&str]) -> TestResult {
        let mut t = result(client, server, TlsMode::None, case, outcome);
        t.set = "faults".into();
        t.reasons = reasons.iter().map(|r| r.to_string()).collect();
        t
    }

    #[test]
    fn misbehaving_client_cases_show_on_the_server_side_only() {
        let mut t = fault(
            "rust",
            "node",
            "reset-mid-batch",
            Outcome::ExpectedFailure,
            &["step 1 Get: status: expected NOT_FOUND, got OK \"\""],
        );
        t.set = "h2-clients".into();
        let mut md = String::new();
        render(&mut md, std::slice::from_ref(&t));
        assert!(!md.contains("### as a client"), "{md}");
        assert!(md.contains("| reset-mid-batch | ⚠️ OK (1/1) |"), "{md}");
        // the faults set has a case of the same name: each row names its set
        let mut u = fault("rust", "node", "reset-mid-batch", Outcome::Passed, &[]);
        u.set = "faults".into();
        let mut md = String::new();
        render(&mut md, &[t.clone(), u]);
        assert!(md.contains("| h2-clients/reset-mid-batch | ⚠️ OK (1/1) |"), "{md}");
        assert!(md.contains("| faults/reset-mid-batch | ✅ |"), "{md}");
    }

    #[test]
    fn a_green_cell_says_which_allowed_status_it_went_with() {
        let mut a = fault("node", "go", "aggressive-keepalive", Outcome::Passed, &[]);
        a.set = "keepalive".into();
        a.choices = vec!["step 1 Get: RESOURCE_EXHAUSTED".into()];
        let mut b = a.clone();
        b.cell.tls = crate::model::tls::TlsMode::Mtls;
        b.choices = vec!["step 1 Get: OK".into()];
        let mut c = b.clone();
        c.cell.client = "go".into();
        let mut md = String::new();
        render(&mut md, &[a, b, c]);
        // as a client: go only went OK; as a server: go's two from node and one from go
        assert!(
            md.contains("| aggressive-keepalive | ✅ | ✅ (RESOURCE_EXHAUSTED 1/2) |"),
            "{md}"
        );
        assert!(
            md.contains("| aggressive-keepalive | ✅ (RESOURCE_EXHAUSTED 1/3) |"),
            "{md}"
        );
    }

    #[test]
    fn each_language_shows_what_it_did_on_each_side() {
        let tests = vec![
            fault("go", "rust", "reset", Outcome::Passed, &[]),
            fault(
                "ts",
                "rust",
                "reset",
                Outcome::Failed,
                &["step 1 Get: status: expected UNAVAILABLE, got CANCELLED \"http/2\""],
            ),
            fault(
                "ts",
                "rust",
                "corrupt",
                Outcome::ExpectedFailure,
                &["known", "client exited (exit status: 1) before finishing step"],
            ),
            fault(
                "go",
                "rust",
                "corrupt",
                Outcome::Error,
                &["client hung: no status line for step"],
            ),
            fault(
                "rust",
                "rb",
                "reset",
                Outcome::Failed,
                &["step 1 Get: expected 1 message(s), got 0"],
            ),
        ];
        let mut md = String::new();
        render(&mut md, &tests);
        assert!(
            md.contains("### as a client\n\n| fault ↓ language → | go | rust | ts |"),
            "{md}"
        );
        assert!(
            md.contains("| reset | ✅ | ❌ wrong result (1/1) | ❌ CANCELLED (1/1) |"),
            "{md}"
        );
        assert!(md.contains("| corrupt | ❌ hang (1/1) | · | ⚠️ crash (1/1) |"), "{md}");
        assert!(
            md.contains("### as a server\n\n| fault ↓ language → | rb | rust |"),
            "{md}"
        );
        assert!(
            md.contains("| reset | ❌ wrong result (1/1) | ❌ CANCELLED (1/2) |"),
            "{md}"
        );
        // A cell with a red test is red, even beside a known failure.
        assert!(md.contains("| corrupt | · | ❌ crash, hang (2/2) |"), "{md}");
        let mut none = String::new();
        render(
            &mut none,
            &[result("go", "rust", TlsMode::None, "get", Outcome::Passed)],
        );
        assert!(none.is_empty());
    }
}
