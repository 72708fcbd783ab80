//! Who broke a red cell (pure): for a red `X → Y` test, the same case as
//! `X → reference` and `reference → Y` names the likely culprit.
use crate::plan::CellKey;
use crate::report::{Outcome, TestResult};

/// The language every other one is measured against.
pub const REFERENCE: &str = "rust";

fn id_with(t: &TestResult, client: &str, server: &str) -> String {
    let key = CellKey {
        client: client.into(),
        server: server.into(),
        ..t.cell.clone()
    };
    format!("{}/set={}/case={}", key.id(), t.set, t.case)
}

/// Test ids of `client → reference` and `reference → server` for a test.
pub fn reference_ids(t: &TestResult) -> (String, String) {
    (id_with(t, &t.cell.client, REFERENCE), id_with(t, REFERENCE, &t.cell.server))
}

fn state(o: Option<Outcome>) -> Option<bool> {
    o.map(|o| o == Outcome::Passed)
}

/// The blame line for a red test, given the outcomes of other tests by id.
pub fn blame(t: &TestResult, outcome_of: impl Fn(&str) -> Option<Outcome>) -> String {
    let (c, s) = (t.cell.client.as_str(), t.cell.server.as_str());
    let (to_ref, from_ref) = reference_ids(t);
    let word = |ok: Option<bool>| match ok {
        Some(true) => "passes",
        Some(false) => "fails",
        None => "was not run",
    };
    match (c == REFERENCE, s == REFERENCE) {
        (true, true) => "the reference itself: the case or the reference is wrong".into(),
        (true, false) => format!("server {s} (the reference client is the other side)"),
        (false, true) => format!("client {c} (the reference server is the other side)"),
        (false, false) => {
            let (cr, rs) = (state(outcome_of(&to_ref)), state(outcome_of(&from_ref)));
            let evidence = format!("{c} → {REFERENCE} {}, {REFERENCE} → {s} {}", word(cr), word(rs));
            let culprit = match (cr, rs) {
                (Some(true), Some(false)) => format!("server {s}"),
                (Some(false), Some(true)) => format!("client {c}"),
                (Some(false), Some(false)) => format!("client {c} and server {s}"),
                (Some(true), Some(true)) => format!("the pair {c} → {s}"),
                _ => "unknown".into(),
            };
            format!("{culprit} ({evidence})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::result;
    use crate::tls::TlsMode;
    use std::collections::HashMap;

    fn with(outcomes: &[(&str, &str, Outcome)]) -> HashMap<String, Outcome> {
        outcomes.iter().map(|(c, s, o)| (result(c, s, TlsMode::Mtls, "get", *o).id, *o)).collect()
    }

    #[test]
    fn the_side_that_fails_against_the_reference_is_blamed() {
        let t = result("go", "java", TlsMode::Mtls, "get", Outcome::Failed);
        let m = with(&[("go", "rust", Outcome::Passed), ("rust", "java", Outcome::Failed)]);
        assert_eq!(blame(&t, |id| m.get(id).copied()), "server java (go → rust passes, rust → java fails)");
        let m = with(&[("go", "rust", Outcome::Failed), ("rust", "java", Outcome::Passed)]);
        assert_eq!(blame(&t, |id| m.get(id).copied()), "client go (go → rust fails, rust → java passes)");
        let m = with(&[("go", "rust", Outcome::Passed), ("rust", "java", Outcome::Passed)]);
        assert!(blame(&t, |id| m.get(id).copied()).starts_with("the pair go → java"));
        assert!(blame(&t, |_| None).starts_with("unknown (go → rust was not run"));
    }

    #[test]
    fn against_the_reference_the_other_side_is_blamed() {
        let t = result("rust", "java", TlsMode::Mtls, "get", Outcome::Failed);
        assert_eq!(blame(&t, |_| None), "server java (the reference client is the other side)");
        let (a, b) = reference_ids(&result("go", "java", TlsMode::Mtls, "get", Outcome::Failed));
        assert_eq!(a, "client=go/server=rust/tls=mtls/set=unary/case=get");
        assert_eq!(b, "client=rust/server=java/tls=mtls/set=unary/case=get");
    }
}
