//! Observed client output vs. a case's expectations → reasons it failed
//! (pure; empty = pass). Messages are compared after both sides went through
//! the same proto3-JSON canonicalisation, field by field, so a reason names
//! the step, the message and the field.
pub mod blame;
mod compare;
mod expected;
mod includes;
mod known;
pub mod lifecycle;
pub mod usage;
pub mod verdict;
use crate::contract::proto;
use crate::contract::script::Line;
use crate::input::cases::{Case, CaseStep, MatchMode};
use crate::input::macros::{expand, expand_str};
use expected::NotReady;
pub use known::KnownList;
use serde_json::Value;
use std::collections::BTreeMap;

pub use compare::short;
use compare::{as_i64, details_match, is_default, metadata_matches};

/// What the client printed for one step id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepObservation {
    pub messages: Vec<Value>,
    pub status: Option<Line>,
}

/// Output lines grouped by step id.
pub type Observations = BTreeMap<String, StepObservation>;

/// Groups output lines by step id, in order.
pub fn group(lines: impl IntoIterator<Item = Line>) -> Observations {
    let mut obs = Observations::new();
    for mut line in lines {
        let entry = obs.entry(line.id.clone()).or_default();
        match line.message.take() {
            Some(m) => entry.messages.push(m),
            None => entry.status = Some(line),
        }
    }
    obs
}

struct Judge<'a> {
    ns: &'a str,
    obs: &'a Observations,
    named: BTreeMap<String, Value>,
    reasons: Vec<String>,
}

impl Judge<'_> {
    fn step(&mut self, step: &CaseStep, id: &str, label: &str) {
        let info = proto::method(&step.method).expect("checked when cases load");
        let empty = StepObservation::default();
        let obs = self.obs.get(id).unwrap_or(&empty);
        let e = &step.expect;
        let mut fail = |r: String| self.reasons.push(format!("{label} {}: {r}", step.method));

        let Some(status_line) = &obs.status else {
            fail(format!(
                "no result (the client printed no status line for step id {id:?})"
            ));
            return;
        };
        let status = status_line.status.as_ref().expect("status lines carry a status");
        let pattern = crate::input::matchers::StatusPattern::parse(&e.status).expect("checked when cases load");
        if !pattern.matches(&status.code) {
            let want = pattern.describe();
            fail(format!(
                "status: expected {want}, got {} {}",
                status.code,
                short(&Value::String(status.message.clone()))
            ));
        }
        let expand_or = |s: &str| expand_str(s, self.ns).unwrap_or_else(|_| s.to_string());
        if let Some(m) = &e.message {
            let want = expand_or(m);
            if status.message != want {
                fail(format!(
                    "status message: expected {}, got {}",
                    short(&Value::String(want)),
                    short(&Value::String(status.message.clone()))
                ));
            }
        }
        if let Some(m) = &e.message_contains {
            let want = expand_or(m);
            if !status.message.contains(&want) {
                fail(format!(
                    "status message: expected it to contain {}, got {}",
                    short(&Value::String(want)),
                    short(&Value::String(status.message.clone()))
                ));
            }
        }
        for (what, want, got) in [
            ("header", &e.headers, &status_line.headers),
            ("trailer", &e.trailers, &status_line.trailers),
        ] {
            for (k, v) in want {
                let v = expand(v, self.ns).unwrap_or_else(|_| v.clone());
                if let Err(r) = metadata_matches(k, &v, got.as_ref().and_then(|g| g.get(k))) {
                    fail(format!("{what} {k}: {r}"));
                }
            }
        }
        if let Some(want) = &e.details {
            let got = status_line.details.clone().unwrap_or_default();
            if let Err(r) = details_match(want, &got) {
                fail(format!("error details: {r}"));
            }
        }
        // What the client reports of the responses besides their messages.
        let reported = [
            (
                "response encoding",
                &e.response_encoding,
                &status_line.response_encoding,
            ),
            (
                "response messages with the Compressed-Flag set",
                &e.response_compressed,
                &status_line.response_compressed,
            ),
        ];
        for (what, want, got) in reported {
            match (want, got) {
                (None, _) => {}
                (Some(want), Some(got)) if got == want => {}
                (Some(want), Some(got)) => fail(format!("{what}: expected {want}, got {got}")),
                (Some(want), None) => fail(format!("{what}: expected {want}, the client reported none")),
            }
        }
        if let (Some(max), Some(elapsed)) = (e.max_elapsed_ms, status_line.elapsed_ms) {
            if elapsed > max {
                fail(format!("took {elapsed:.0} ms, more than the {max:.0} ms allowed"));
            }
        }
        if let Some(min) = e.min_elapsed_ms {
            match status_line.elapsed_ms {
                Some(elapsed) if elapsed >= min => {}
                Some(elapsed) => fail(format!(
                    "took {elapsed:.0} ms, less than the {min:.0} ms the step lasts at least"
                )),
                None => fail(format!("no elapsed_ms reported (the step lasts at least {min:.0} ms)")),
            }
        }

        // Messages: parse every one; a message that is not valid proto3 JSON is a failure.
        let mut actual = Vec::new();
        for (i, m) in obs.messages.iter().enumerate() {
            match proto::canonical_json(&info.output, m) {
                Ok(c) => actual.push(c),
                Err(err) => fail(format!("message {i}: {err}: {}", short(m))),
            }
        }
        if let Some(name) = &step.name {
            if let Some(first) = actual.first() {
                self.named.insert(name.clone(), first.clone());
            }
        }
        match &e.messages {
            Some(expected) => self.messages(&info.output, expected, &actual, e.match_mode, label, &step.method),
            None => {
                let unary_out = matches!(info.kind, proto::Kind::Unary | proto::Kind::ClientStream);
                let want = if status.code == "OK" { 1 } else { 0 };
                if unary_out && obs.messages.len() != want {
                    self.reasons.push(format!(
                        "{label} {}: expected {want} response message(s), got {}",
                        step.method,
                        obs.messages.len()
                    ));
                }
            }
        }
        for (j, nested) in step.after_first.iter().enumerate() {
            self.step(nested, &format!("{id}.#{j}"), &format!("{label}.{j}"));
        }
    }

    /// Every copy must meet the step's expectations; the first copy that
    /// does not is reported, with how many others failed.
    fn copies(&mut self, step: &CaseStep, id: &str, i: usize, n: u32) {
        let before = self.reasons.len();
        let mut failed = Vec::new();
        for k in 0..n {
            let mark = self.reasons.len();
            self.step(
                step,
                &crate::contract::script::copy_id(id, k),
                &format!("step {i} copy {k}"),
            );
            if self.reasons.len() > mark {
                failed.push(k);
                if failed.len() > 1 {
                    self.reasons.truncate(mark);
                }
            }
        }
        if failed.len() > 1 {
            self.reasons.push(format!(
                "step {i}: {} of {n} copies failed (the first is shown)",
                failed.len()
            ));
        }
        debug_assert!(self.reasons.len() >= before);
    }

    fn messages(
        &mut self,
        desc: &prost_reflect::MessageDescriptor,
        wanted: &[Value],
        actual: &[Value],
        mode: MatchMode,
        label: &str,
        method: &str,
    ) {
        if wanted.len() != actual.len() {
            let got: Vec<String> = actual.iter().map(short).collect();
            self.reasons.push(format!(
                "{label} {method}: expected {} message(s), got {}: [{}]",
                wanted.len(),
                actual.len(),
                got.join(", ")
            ));
        }
        for (i, (want, got)) in wanted.iter().zip(actual).enumerate() {
            let want = match expected::expected(desc, want, self.ns) {
                Ok(w) => w,
                Err(NotReady::Macro(e)) => {
                    self.reasons.push(format!("{label} {method}: message {i}: {e}"));
                    continue;
                }
                Err(NotReady::Invalid(e)) => {
                    self.reasons
                        .push(format!("{label} {method}: expected message {i}: {e}"));
                    continue;
                }
            };
            // A matcher's field may be absent from the canonical form (an
            // unset member of a oneof), so matchers are checked on their own.
            for (field, m) in &want.matchers {
                let got_v = got.get(field).unwrap_or(&Value::Null);
                if let Err(r) = self.matcher(m, field, got_v) {
                    self.reasons
                        .push(format!("{label} {method}: message {i}: field {field}: {r}"));
                }
            }
            let empty = serde_json::Map::new();
            for (field, want_v) in want.canon.as_object().unwrap_or(&empty) {
                let got_v = got.get(field).unwrap_or(&Value::Null);
                if want.matchers.contains_key(field) {
                    continue;
                }
                if mode == MatchMode::Partial && !want.named.contains(field) {
                    continue;
                }
                if want_v != got_v {
                    self.reasons.push(format!(
                        "{label} {method}: message {i}: field {field}: expected {}, got {}",
                        short(want_v),
                        short(got_v)
                    ));
                }
            }
        }
    }

    fn matcher(&self, m: &Value, field: &str, got: &Value) -> Result<(), String> {
        if m.get("$any").is_some() {
            return Ok(());
        }
        if m.get("$nonempty").is_some() {
            return if is_default(got) {
                Err(format!("expected a non-empty value, got {}", short(got)))
            } else {
                Ok(())
            };
        }
        if m.get("$includes").is_some() || m.get("$excludes").is_some() {
            if let Some(want) = m.get("$includes") {
                includes::includes(got, want)?;
            }
            if let Some(want) = m.get("$excludes") {
                includes::excludes(got, want)?;
            }
            return Ok(());
        }
        // `$delta`: exactly base + delta; `$delta_at_least`: that or more.
        let (delta, at_least) = match m.get("$delta_at_least").and_then(Value::as_i64) {
            Some(d) => (d, true),
            None => (m.get("$delta").and_then(Value::as_i64).unwrap_or(0), false),
        };
        let from = m.get("$from").and_then(Value::as_str).unwrap_or_default();
        let base = self
            .named
            .get(from)
            .and_then(|msg| msg.get(field))
            .and_then(as_i64)
            .ok_or_else(|| format!("step `{from}` has no value to compare with"))?;
        match as_i64(got) {
            Some(g) if g == base + delta || (at_least && g > base + delta) => Ok(()),
            _ => Err(format!(
                "expected {}{} ({base} from step `{from}` {delta:+}), got {}",
                if at_least { "at least " } else { "" },
                base + delta,
                short(got)
            )),
        }
    }
}

/// Judges one test: the case's steps against what the client printed under
/// ids `PREFIX#i`. Returns every reason it failed (empty = passed).
pub fn judge(case: &Case, prefix: &str, ns: &str, obs: &Observations) -> Vec<String> {
    let mut j = Judge {
        ns,
        obs,
        named: BTreeMap::new(),
        reasons: Vec::new(),
    };
    for (i, step) in case.steps.iter().enumerate() {
        let id = format!("{prefix}#{i}");
        match step.copies {
            Some(n) if n > 1 => j.copies(step, &id, i, n),
            _ => j.step(step, &id, &format!("step {i}")),
        }
    }
    j.reasons
}

/// What the top-level steps that allow a choice of statuses (`A|B`, `!A`)
/// ended with, e.g. `step 1 Get: UNAVAILABLE`: which way a pair went where
/// the spec leaves a choice (a ping policy, a server's reset).
pub fn choices(case: &Case, prefix: &str, obs: &Observations) -> Vec<String> {
    case.steps
        .iter()
        .enumerate()
        .filter(|(_, s)| crate::input::matchers::StatusPattern::parse(&s.expect.status).is_ok_and(|p| p.has_choice()))
        .filter_map(|(i, s)| {
            let code = &obs
                .get(&format!("{prefix}#{i}"))?
                .status
                .as_ref()?
                .status
                .as_ref()?
                .code;
            Some(format!("step {i} {}: {code}", s.method))
        })
        .collect()
}

#[cfg(test)]
mod tests;
