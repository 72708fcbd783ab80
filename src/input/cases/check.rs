//! The checks a case passes when its file is loaded.
use super::{Case, CaseStep, Connect};
use crate::contract::proto::{self, Kind};
use crate::input::macros::{expand, expand_str};
use crate::input::matchers::split_matchers;
use serde_json::Value;

/// A step's method, requests and expectations make sense together.
pub(super) fn check_step(step: &CaseStep, names: &mut Vec<String>) -> Result<(), String> {
    let info = proto::method(&step.method).ok_or_else(|| {
        format!(
            "unknown method `{}` (known: {})",
            step.method,
            proto::method_names().join(", ")
        )
    })?;
    let streaming_in = matches!(info.kind, Kind::ClientStream | Kind::Bidi);
    let requests: Vec<&Value> = match (&step.request, &step.requests, streaming_in) {
        (None, Some(r), true) => r.iter().collect(),
        (Some(r), None, false) => vec![r],
        (None, None, false) => vec![],
        _ => {
            return Err(format!(
                "{} takes `{}`",
                step.method,
                if streaming_in { "requests" } else { "request" }
            ))
        }
    };
    for r in requests {
        proto::parse_json(&info.input, &expand(r, "ns/")?).map_err(|e| format!("request: {e}"))?;
    }
    if let Some(other) = &step.fallback_method {
        let alt = proto::method(other).ok_or_else(|| format!("unknown fallback_method `{other}`"))?;
        let same =
            alt.kind == info.kind && alt.input.name() == info.input.name() && alt.output.name() == info.output.name();
        if !same {
            return Err(format!(
                "fallback_method `{other}` does not take and return what `{}` does",
                step.method
            ));
        }
    }
    if !step.after_first.is_empty() && info.kind != Kind::ServerStream {
        return Err("`after_first` is only for server-streaming methods".into());
    }
    match step.cancel_after_messages {
        Some(_) if info.kind != Kind::ServerStream => {
            return Err("`cancel_after_messages` is only for server-streaming methods".into())
        }
        Some(0) => return Err("cancel_after_messages must be at least 1".into()),
        _ => {}
    }
    if let Some(n) = step.copies {
        if !(1..=1000).contains(&n) {
            return Err(format!("copies must be 1 to 1000, got {n}"));
        }
        if !step.after_first.is_empty() || step.name.is_some() {
            return Err("a step with `copies` has no `after_first` and no `name`".into());
        }
    }
    let e = &step.expect;
    crate::input::matchers::StatusPattern::parse(&e.status).map_err(|err| format!("expect.status: {err}"))?;
    for (what, map) in [("headers", &e.headers), ("trailers", &e.trailers)] {
        for (key, want) in map {
            crate::input::matchers::check_metadata_expectation(key, want)
                .map_err(|e| format!("expect.{what}.{key}: {e}"))?;
        }
    }
    for (key, value) in &step.metadata {
        if key.ends_with("-bin") {
            crate::contract::script::decode_b64(&expand_str(value, "ns/")?)
                .map_err(|e| format!("metadata.{key}: {e}"))?;
        }
    }
    for d in e.details.iter().flatten() {
        proto::canonical_detail(d).map_err(|e| format!("expect.details: {e}"))?;
    }
    let count = |c: &str| {
        c.split_once('/')
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
    };
    if let Some(c) = e.response_compressed.as_deref().filter(|c| !count(c)) {
        return Err(format!("expect.response_compressed: `{c}` (C/M expected, e.g. 2/2)"));
    }
    if let Some(enc) = &e.response_encoding {
        if !["gzip", "identity"].contains(&enc.as_str()) {
            return Err(format!("expect.response_encoding: `{enc}` (known: gzip, identity)"));
        }
    }
    for m in e.messages.iter().flatten() {
        let (plain, matchers) = split_matchers(m);
        proto::parse_json(&info.output, &expand(&plain, "ns/")?).map_err(|e| format!("expect.messages: {e}"))?;
        for (field, matcher) in matchers {
            if info
                .output
                .get_field_by_json_name(&field)
                .or_else(|| info.output.get_field_by_name(&field))
                .is_none()
            {
                return Err(format!("expect.messages: matcher on unknown field `{field}`"));
            }
            crate::input::matchers::check_matcher_syntax(&matcher, names)
                .map_err(|e| format!("expect.messages.{field}: {e}"))?;
        }
    }
    if let Some(name) = &step.name {
        names.push(name.clone());
    }
    for s in &step.after_first {
        if s.copies.is_some() {
            return Err("`copies` is for top-level steps only".into());
        }
        check_step(s, names)?;
    }
    Ok(())
}

/// A fault needs steps that go through it, and a connection of the cell's own.
pub(super) fn check_fault(case: &Case) -> Result<(), String> {
    let faulty = case.steps.iter().any(|s| s.faulty);
    if case.peer.is_some() {
        if case.fault.is_some() {
            return Err("a case has a `fault` or a `peer`, not both".into());
        }
        if !faulty {
            return Err("has a `peer` but no step with `faulty = true`".into());
        }
        if case.connect != Connect::Normal {
            return Err("a `peer` needs `connect = \"normal\"`".into());
        }
    }
    match &case.fault {
        Some(f) => {
            f.check()?;
            if !faulty {
                return Err("has a `fault` but no step with `faulty = true`".into());
            }
            if case.connect != Connect::Normal {
                return Err("a `fault` needs `connect = \"normal\"`".into());
            }
        }
        None if faulty && case.peer.is_none() => {
            return Err("a step is `faulty` but the case has no `fault` or `peer`".into())
        }
        None => {}
    }
    if case.steps.iter().any(|s| s.after_first.iter().any(|n| n.faulty)) {
        return Err("`faulty` is for top-level steps (nested ones share their call's connection)".into());
    }
    Ok(())
}

/// The longest `settle_ms` a step may ask for.
const SETTLE_MAX_MS: u64 = 5_000;

/// `settle_ms` holds back the lines written after it, so it is for a later
/// top-level step of a case that runs alone.
pub(super) fn check_settle(case: &Case) -> Result<(), String> {
    if case
        .steps
        .iter()
        .any(|s| s.after_first.iter().any(|n| n.settle_ms.is_some()))
    {
        return Err("`settle_ms` is for top-level steps".into());
    }
    for (i, step) in case.steps.iter().enumerate() {
        let Some(ms) = step.settle_ms else { continue };
        if i == 0 {
            return Err("step 0: `settle_ms` needs a step before it".into());
        }
        if !case.alone {
            return Err(format!("step {i}: `settle_ms` needs `alone = true`"));
        }
        if ms == 0 || ms > SETTLE_MAX_MS {
            return Err(format!("step {i}: settle_ms must be 1 to {SETTLE_MAX_MS}, got {ms}"));
        }
    }
    Ok(())
}
