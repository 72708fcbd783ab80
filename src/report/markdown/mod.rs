//! RunSummary → Markdown (pure): totals, a client × server grid per TLS
//! mode, the resilience grid (`report::resilience`), per-language timings,
//! the key-type table (`key_types`), the listed failures and the red cells
//! with their likely culprit, then every red test with its reasons and the
//! command that reproduces it (`red`).
use crate::model::run::{median, Counts, RunSummary, TestResult};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

mod key_types;
mod red;

/// A grid cell: ✅ only when nothing failed; a listed failure is not a pass
/// (⚠️, with how many), a listed flake is shown as such.
fn cell_text(c: Counts) -> String {
    let mut text = if c.total() == 0 {
        return "·".into();
    } else if c.interrupted + c.unavailable == c.total() {
        return "not run".into();
    } else if c.red > 0 {
        format!("❌ {}/{}", c.passed, c.total())
    } else if c.expected_failure > 0 {
        format!("⚠️ {}/{}, {} known-failing", c.passed, c.total(), c.expected_failure)
    } else {
        format!("✅ {}/{}", c.passed, c.total())
    };
    if c.known_flaky > 0 {
        text.push_str(&format!(", {} known flaky", c.known_flaky));
    }
    text
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0} ms")).unwrap_or_else(|| "–".into())
}

pub fn render(s: &RunSummary) -> String {
    let mut out = String::new();
    head(&mut out, s);
    unavailable(&mut out, s);
    grids(&mut out, s);
    super::resilience::render(&mut out, &s.tests);
    if !s.cells.is_empty() {
        timings(&mut out, s);
    }
    key_types::render(&mut out, s);
    red::listed(&mut out, s);
    red::render(&mut out, s);
    out
}

/// The verdict and the totals, the run's problems, its command line.
fn head(out: &mut String, s: &RunSummary) {
    let c = s.counts();
    let verdict = if c.red == 0 && c.total() > 0 && s.problems.is_empty() {
        "✅ all passed"
    } else {
        "❌ red"
    };
    let _ = writeln!(out, "# stock-matrix run {}\n", s.run_id);
    let _ = writeln!(
        out,
        "{verdict}: **{} passed, {} failed, {} errors, {} flaky, {} expected failures, {} not run** of {} tests in {:.1} s.\n",
        c.passed,
        c.failed,
        c.error,
        c.flaky,
        c.expected_failure,
        c.interrupted,
        c.total(),
        s.duration_ms / 1000.0
    );
    if !s.problems.is_empty() {
        let _ = writeln!(out, "## Run problems\n");
        for p in &s.problems {
            let _ = writeln!(out, "- {p}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "Command: `{}`\n", s.command);
    if s.interrupted {
        let _ = writeln!(
            out,
            "**The run was interrupted**: tests not run are counted as not run.\n"
        );
    }
}

/// The languages that could not be built or set up, with the tests not run.
fn unavailable(out: &mut String, s: &RunSummary) {
    let red_builds: Vec<_> = s.builds.iter().filter(|(_, b)| !b.ok).collect();
    if !red_builds.is_empty() {
        let _ = writeln!(out, "## Not run: unavailable languages\n");
        let _ = writeln!(out, "| language | tests not run | why |\n|---|---|---|");
        for (lang, b) in red_builds {
            let n = s
                .tests
                .iter()
                .filter(|t| t.unavailable.as_deref() == Some(lang.as_str()))
                .count();
            let why = b.status.lines().next().unwrap_or_default().replace('|', "\\|");
            let _ = writeln!(out, "| **{lang}** | {n} | {why} |");
        }
        let _ = writeln!(out);
    }
}

/// A client × server grid per connection mode (transport, TLS, key type).
fn grids(out: &mut String, s: &RunSummary) {
    // The same axes in every grid, so grids line up.
    let clients: BTreeSet<&str> = s.tests.iter().map(|t| t.cell.client.as_str()).collect();
    let servers: BTreeSet<&str> = s.tests.iter().map(|t| t.cell.server.as_str()).collect();
    let mode_of = |t: &TestResult| t.cell.id().split('/').skip(2).collect::<Vec<_>>().join("/");
    let modes: BTreeSet<String> = s.tests.iter().map(mode_of).collect();
    for mode in modes {
        let tests: Vec<_> = s.tests.iter().filter(|t| mode_of(t) == mode).collect();
        let _ = writeln!(out, "## {}\n", mode.replace('/', ", ").replace('=', " "));
        let _ = writeln!(
            out,
            "| client ↓ server → | {} |",
            servers.iter().copied().collect::<Vec<_>>().join(" | ")
        );
        let _ = writeln!(out, "|---|{}", "---|".repeat(servers.len()));
        for client in &clients {
            let row: Vec<String> = servers
                .iter()
                .map(|server| {
                    cell_text(Counts::of(
                        tests
                            .iter()
                            .copied()
                            .filter(|t| t.cell.client == *client && t.cell.server == *server),
                    ))
                })
                .collect();
            let _ = writeln!(out, "| **{client}** | {} |", row.join(" | "));
        }
        let _ = writeln!(out);
    }
}

/// Start-up medians per language, the floor, the CPU used, the cells' notes.
fn timings(out: &mut String, s: &RunSummary) {
    let mut ready: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut first: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for cell in &s.cells {
        ready.entry(&cell.key.server).or_default().extend(cell.server_ready_ms);
        first
            .entry(&cell.key.client)
            .or_default()
            .extend(cell.client_first_line_ms.iter().copied());
    }
    let langs: BTreeSet<&str> = ready.keys().chain(first.keys()).copied().collect();
    let _ = writeln!(out, "## Timings (median per language)\n");
    let _ = writeln!(
        out,
        "| language | server start → ready | client start → first result |\n|---|---|---|"
    );
    for l in langs {
        let _ = writeln!(
            out,
            "| {l} | {} | {} |",
            ms(ready.get(l).and_then(|v| median(v))),
            ms(first.get(l).and_then(|v| median(v)))
        );
    }
    let _ = writeln!(out);
    if let Some(f) = super::floor::floor(s) {
        out.push_str(&super::floor::render(&f));
    }
    out.push_str(&super::cpu::render(s));
    let notes: Vec<_> = s
        .cells
        .iter()
        .flat_map(|c| c.notes.iter().map(move |n| (c.key.id(), n)))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out, "## Notes\n");
        for (id, n) in notes {
            let _ = writeln!(out, "- `{id}`: {n}");
        }
        let _ = writeln!(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::run::fixtures::*;
    use crate::model::run::Outcome;
    use crate::model::tls::TlsMode;

    #[test]
    fn grid_counts_and_failures_are_rendered() {
        let s = summary(vec![
            result("go", "rust", TlsMode::None, "get", Outcome::Passed),
            result("go", "rust", TlsMode::None, "put", Outcome::Failed),
            result("rust", "rust", TlsMode::None, "get", Outcome::Passed),
            result("rust", "go", TlsMode::Mtls, "get", Outcome::Passed),
        ]);
        let md = render(&s);
        assert!(
            md.contains("❌ red: **3 passed, 1 failed, 0 errors, 0 flaky, 0 expected failures, 0 not run** of 4 tests"),
            "{md}"
        );
        assert!(md.contains("## tls none\n"), "{md}");
        assert!(
            md.contains("## tls none\n\n| client ↓ server → | go | rust |\n|---|---|---|\n| **go** | · | ❌ 1/2 |\n| **rust** | · | ✅ 1/1 |"),
            "{md}"
        );
        assert!(
            md.contains("## tls mtls\n\n| client ↓ server → | go | rust |\n|---|---|---|\n| **go** | · | · |\n| **rust** | ✅ 1/1 | · |"),
            "{md}"
        );
        assert!(
            md.contains("### FAIL `client=go/server=rust/tls=none/set=unary/case=put`"),
            "{md}"
        );
        assert!(
            md.contains("Reproduce: `stock-matrix run --client go --server rust --tls none --set unary --case put`"),
            "{md}"
        );
        assert!(md.contains("| go | – | 5 ms |"), "{md}");
    }

    #[test]
    fn listed_failures_and_flakes_are_not_shown_as_plain_passes() {
        let c = |p, x, kf| Counts {
            passed: p,
            expected_failure: x,
            flaky: kf,
            known_flaky: kf,
            ..Counts::default()
        };
        assert_eq!(cell_text(c(3, 0, 0)), "✅ 3/3");
        assert_eq!(cell_text(c(1, 2, 0)), "⚠️ 1/3, 2 known-failing");
        assert_eq!(cell_text(c(2, 0, 1)), "✅ 2/3, 1 known flaky");
        let red = Counts {
            failed: 1,
            ..c(2, 0, 0)
        };
        assert_eq!(cell_text(Counts { red: 1, ..red }), "❌ 2/3");
        assert_eq!(cell_text(Counts::default()), "·");
        let not_run = Counts {
            error: 2,
            red: 2,
            unavailable: 2,
            ..Counts::default()
        };
        assert_eq!(cell_text(not_run), "not run");
    }

    fn with_key(mut t: crate::model::run::TestResult, k: crate::model::tls::KeyType) -> crate::model::run::TestResult {
        t.cell.key_type = k;
        t.id = format!("{}/set=unary/case={}", t.cell.id(), t.case);
        t
    }

    #[test]
    fn the_key_type_table_shows_each_pair_and_folds_a_wide_run() {
        use crate::model::tls::KeyType::{EcP256, EcP521};
        let mut tests = vec![
            with_key(result("python", "go", TlsMode::Server, "get", Outcome::Passed), EcP256),
            with_key(
                result("python", "go", TlsMode::Server, "get", Outcome::ExpectedFailure),
                EcP521,
            ),
            with_key(result("go", "go", TlsMode::Mtls, "get", Outcome::Passed), EcP256),
            with_key(result("go", "go", TlsMode::Mtls, "get", Outcome::Passed), EcP521),
            with_key(result("go", "go", TlsMode::None, "get", Outcome::Failed), EcP256),
        ];
        let md = render(&summary(tests.clone()));
        assert!(
            md.contains(
                "## Certificate key types (TLS cells)\n\n| client → server | ec-p256 | ec-p521 |\n|---|---|---|\n"
            ),
            "{md}"
        );
        assert!(
            md.contains("| go → go | ✅ 1/1 | ✅ 1/1 |"),
            "a plaintext failure is not a key-type result: {md}"
        );
        assert!(
            md.contains("| python → go | ✅ 1/1 | ⚠️ 0/1, 1 known-failing |"),
            "{md}"
        );
        // Wide: 13 pairs, 12 of them green with both key types.
        for server in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"] {
            for k in [EcP256, EcP521] {
                tests.push(with_key(
                    result("go", server, TlsMode::Server, "get", Outcome::Passed),
                    k,
                ));
            }
        }
        let md = render(&summary(tests));
        assert!(
            md.contains("12 of 13 pairs pass every TLS test with every key type; the other 1 are listed."),
            "{md}"
        );
        assert!(
            md.contains("| python → go | ✅ 1/1 | ⚠️ 0/1, 1 known-failing |"),
            "{md}"
        );
        assert!(!md.contains("| go → a |"), "{md}");
    }

    #[test]
    fn red_cells_name_the_culprit_per_cell() {
        let mut tests = vec![
            result("go", "java", TlsMode::None, "get", Outcome::Failed),
            result("go", "java", TlsMode::None, "put", Outcome::Failed),
            result("go", "java", TlsMode::None, "inventory", Outcome::Passed),
            result("rust", "python", TlsMode::Mtls, "get", Outcome::Failed),
            result("rust", "python", TlsMode::Mtls, "put", Outcome::Failed),
            result("rust", "rust", TlsMode::None, "get", Outcome::ExpectedFailure),
        ];
        tests[0].blame = Some("server java (go → rust passes, rust → java fails)".into());
        tests[1].blame = tests[0].blame.clone();
        tests[3].blame = Some("the pair".into());
        let md = render(&summary(tests));
        assert!(
            md.contains("## Red cells (2)\n\n| cell | red | likely culprit |\n|---|---|---|\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "| `client=go/server=java/tls=none` | 2/3 | server java (go → rust passes, rust → java fails) |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| `client=rust/server=python/tls=mtls` | 2/2 | not assessed ×1; the pair ×1 |"),
            "{md}"
        );
        assert!(
            !md.contains("`client=rust/server=rust/tls=none` |"),
            "an expected failure is not a red cell: {md}"
        );
    }

    #[test]
    fn an_all_green_run_says_so() {
        let md = render(&summary(vec![result(
            "go",
            "go",
            TlsMode::None,
            "get",
            Outcome::Passed,
        )]));
        assert!(md.contains("✅ all passed"), "{md}");
        assert!(!md.contains("## Failures"), "{md}");
    }
}
