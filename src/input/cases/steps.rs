//! A case's steps as the script steps a client runs for one test.
use super::CaseStep;
use crate::contract::script;
use crate::input::macros::{expand, expand_str};
use serde_json::Value;

/// The script steps of a case for one test, ids `PREFIX#i` (`#i.j` nested).
pub fn script_steps(steps: &[CaseStep], prefix: &str, ns: &str) -> Result<Vec<script::Step>, String> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = format!("{prefix}#{i}");
            let mut fill = vec![];
            let fills = matches!(s.method.as_str(), "Put" | "Batch");
            let mut request = |at: usize, r: &Value| match fills.then(|| filled(r)).flatten() {
                Some((rest, f)) => {
                    fill.push(script::Fill { request: at, ..f });
                    expand(&rest, ns)
                }
                None => expand(r, ns),
            };
            let one = s.request.as_ref().map(|r| request(0, r)).transpose()?;
            let many = s
                .requests
                .as_ref()
                .map(|r| {
                    r.iter()
                        .enumerate()
                        .map(|(at, x)| request(at, x))
                        .collect::<Result<_, _>>()
                })
                .transpose()?;
            Ok(script::Step {
                request: one,
                requests: many,
                fill,
                metadata: s
                    .metadata
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), expand_str(v, ns)?)))
                    .collect::<Result<_, String>>()?,
                timeout_ms: s.timeout_ms,
                compression: s.compression.clone(),
                after_first: script_steps(&s.after_first, &format!("{id}."), ns)?,
                cancel_after_ms: s.cancel_after_ms,
                cancel_after_messages: s.cancel_after_messages,
                connection: None,
                copies: s.copies,
                read_pause_ms: s.read_pause_ms,
                lane: 0,
                bench: None,
                rude: s.rude,
                fallback_method: s.fallback_method.clone(),
                method: s.method.clone(),
                id,
            })
        })
        .collect()
}

/// Values of at least this many bytes go to the client as a `fill` entry
/// rather than as base64 in the request's JSON.
const FILL_FROM: usize = 1024;

/// A request whose `value` is one large `{b64repeat:TEXT:N}` macro: the
/// request without it, and the `fill` entry (its `request` index unset) that
/// has the client build it.
fn filled(request: &Value) -> Option<(Value, script::Fill)> {
    let macro_args = request
        .get("value")?
        .as_str()?
        .strip_prefix("{b64repeat:")?
        .strip_suffix('}')?;
    let (text, n) = macro_args.rsplit_once(':')?;
    let times: u64 = n.parse().ok()?;
    if text.contains(['{', '}']) || text.len().saturating_mul(times as usize) < FILL_FROM {
        return None;
    }
    let mut rest = request.clone();
    rest.as_object_mut()?.remove("value");
    let repeat = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, text);
    Some((
        rest,
        script::Fill {
            request: 0,
            repeat,
            times,
        },
    ))
}
