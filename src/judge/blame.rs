//! Who broke a red cell (pure): for a red `X → Y` test, the same case as
//! `X → reference` and `reference → Y` names the likely culprit; when that
//! does not decide (both pass, or were not run), the rest of the run does:
//! a server red with several clients that pass the case against other
//! servers is the culprit (and likewise a client).
use crate::model::cell::CellKey;
use crate::model::run::{Outcome, TestResult};
use std::collections::{BTreeMap, BTreeSet};

/// The language every other one is measured against.
pub const REFERENCE: &str = "rust";

fn id_with(t: &TestResult, client: &str, server: &str) -> String {
    let key = CellKey {
        client: client.into(),
        server: server.into(),
        // The reference serves on the runner's port, not a plugin's transport.
        net: t.cell.net.filter(|_| server != REFERENCE),
        ..t.cell.clone()
    };
    format!("{}/set={}/case={}", key.id(), t.set, t.case)
}

/// Test ids of `client → reference` and `reference → server` for a test.
pub fn reference_ids(t: &TestResult) -> (String, String) {
    (
        id_with(t, &t.cell.client, REFERENCE),
        id_with(t, REFERENCE, &t.cell.server),
    )
}

fn state(o: Option<Outcome>) -> Option<bool> {
    o.map(|o| o == Outcome::Passed)
}

/// The same test (same case, TLS mode, key type) of every pair in the run,
/// by (client, server): passed or not.
fn same_test<'a>(t: &TestResult, run: &'a [TestResult]) -> BTreeMap<(&'a str, &'a str), bool> {
    let like = |o: &TestResult| {
        o.set == t.set
            && o.case == t.case
            && CellKey {
                client: t.cell.client.clone(),
                server: t.cell.server.clone(),
                ..o.cell.clone()
            } == t.cell
    };
    run.iter()
        .filter(|o| like(o) && o.outcome != Outcome::Interrupted)
        .map(|o| {
            (
                (o.cell.client.as_str(), o.cell.server.as_str()),
                o.outcome == Outcome::Passed,
            )
        })
        .collect()
}

/// What the rest of the run says about a red test: `server S (...)` when S
/// is red with at least two clients that each pass the same test against
/// another server, `client C (...)` the other way round; nothing when
/// neither or both hold.
pub fn across_run(t: &TestResult, run: &[TestResult]) -> Option<String> {
    let same = same_test(t, run);
    // Peers red with `me` (on side `me_is_server`) that pass with someone else.
    let witnesses = |me: &str, me_is_server: bool| -> BTreeSet<&str> {
        same.iter()
            .filter(|((c, s), passed)| !**passed && if me_is_server { *s == me } else { *c == me })
            .map(|((c, s), _)| if me_is_server { *c } else { *s })
            .filter(|peer| {
                same.iter().any(|((c, s), passed)| {
                    *passed
                        && if me_is_server {
                            c == peer && *s != me
                        } else {
                            s == peer && *c != me
                        }
                })
            })
            .collect()
    };
    let list = |w: &BTreeSet<&str>| w.iter().copied().collect::<Vec<_>>().join(", ");
    let by_server = witnesses(&t.cell.server, true);
    let by_client = witnesses(&t.cell.client, false);
    match (by_server.len() >= 2, by_client.len() >= 2) {
        (true, false) => Some(format!(
            "server {} (across the run: red with clients {}, which pass this test against other servers)",
            t.cell.server,
            list(&by_server)
        )),
        (false, true) => Some(format!(
            "client {} (across the run: red with servers {}, which pass this test with other clients)",
            t.cell.client,
            list(&by_client)
        )),
        _ => None,
    }
}

/// The blame line for a red test, given the outcomes of other tests by id
/// and the whole run.
pub fn blame_in_run(t: &TestResult, outcome_of: impl Fn(&str) -> Option<Outcome>, run: &[TestResult]) -> String {
    let by_reference = blame(t, outcome_of);
    let undecided = by_reference.starts_with("the pair ") || by_reference.starts_with("unknown ");
    match across_run(t, run) {
        Some(culprit) if undecided => format!(
            "{culprit}; against the reference: {}",
            by_reference
                .split_once(" (")
                .map(|(_, e)| e.trim_end_matches(')'))
                .unwrap_or("")
        ),
        _ => by_reference,
    }
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
    use crate::model::run::fixtures::result;
    use crate::model::tls::TlsMode;
    use std::collections::HashMap;

    fn with(outcomes: &[(&str, &str, Outcome)]) -> HashMap<String, Outcome> {
        outcomes
            .iter()
            .map(|(c, s, o)| (result(c, s, TlsMode::Mtls, "get", *o).id, *o))
            .collect()
    }

    #[test]
    fn the_side_that_fails_against_the_reference_is_blamed() {
        let t = result("go", "java", TlsMode::Mtls, "get", Outcome::Failed);
        let m = with(&[("go", "rust", Outcome::Passed), ("rust", "java", Outcome::Failed)]);
        assert_eq!(
            blame(&t, |id| m.get(id).copied()),
            "server java (go → rust passes, rust → java fails)"
        );
        let m = with(&[("go", "rust", Outcome::Failed), ("rust", "java", Outcome::Passed)]);
        assert_eq!(
            blame(&t, |id| m.get(id).copied()),
            "client go (go → rust fails, rust → java passes)"
        );
        let m = with(&[("go", "rust", Outcome::Passed), ("rust", "java", Outcome::Passed)]);
        assert!(blame(&t, |id| m.get(id).copied()).starts_with("the pair go → java"));
        assert!(blame(&t, |_| None).starts_with("unknown (go → rust was not run"));
    }

    #[test]
    fn a_server_red_with_several_clients_that_pass_elsewhere_is_blamed_when_the_reference_cannot_tell() {
        // A server that asks for a client certificate without requiring it:
        // the reference client sends one anyway, go and java do not.
        use Outcome::*;
        let run: Vec<TestResult> = [
            ("rust", "cpp", Passed),
            ("go", "cpp", Failed),
            ("java", "cpp", Failed),
            ("go", "rust", Passed),
            ("java", "rust", Passed),
            ("go", "python", Passed),
            ("java", "python", Passed),
            ("python", "cpp", Passed),
        ]
        .iter()
        .map(|(c, s, o)| result(c, s, TlsMode::Mtls, "get", *o))
        .collect();
        let m: HashMap<String, Outcome> = run.iter().map(|t| (t.id.clone(), t.outcome)).collect();
        let t = &run[1];
        assert!(blame(t, |id| m.get(id).copied()).starts_with("the pair go → cpp"));
        assert_eq!(
            blame_in_run(t, |id| m.get(id).copied(), &run),
            "server cpp (across the run: red with clients go, java, which pass this test against other servers); against the reference: go → rust passes, rust → cpp passes"
        );
        // One red client is not enough evidence: the pair stays the verdict.
        let alone: Vec<TestResult> = run.iter().filter(|t| t.cell.client != "java").cloned().collect();
        assert!(blame_in_run(&alone[1], |id| m.get(id).copied(), &alone).starts_with("the pair go → cpp"));
        // Decisive reference evidence is kept.
        let m2 = with(&[("go", "rust", Failed), ("rust", "cpp", Passed)]);
        assert!(blame_in_run(t, |id| m2.get(id).copied(), &run).starts_with("client go"));
    }

    #[test]
    fn a_client_red_with_several_servers_that_pass_elsewhere_is_blamed() {
        use Outcome::*;
        let run: Vec<TestResult> = [
            ("node", "go", Failed),
            ("node", "java", Failed),
            ("python", "go", Passed),
            ("python", "java", Passed),
        ]
        .iter()
        .map(|(c, s, o)| result(c, s, TlsMode::Mtls, "get", *o))
        .collect();
        assert_eq!(
            across_run(&run[0], &run).as_deref(),
            Some("client node (across the run: red with servers go, java, which pass this test with other clients)")
        );
    }

    #[test]
    fn against_the_reference_the_other_side_is_blamed() {
        let t = result("rust", "java", TlsMode::Mtls, "get", Outcome::Failed);
        assert_eq!(
            blame(&t, |_| None),
            "server java (the reference client is the other side)"
        );
        let (a, b) = reference_ids(&result("go", "java", TlsMode::Mtls, "get", Outcome::Failed));
        assert_eq!(a, "client=go/server=rust/tls=mtls/set=unary/case=get");
        assert_eq!(b, "client=rust/server=java/tls=mtls/set=unary/case=get");
    }
}
