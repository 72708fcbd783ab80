//! The single commands of the reference client (`get`, `put`, `monitor`,
//! `batch`, `trade`, `inventory`) as the script step each stands for.
use super::client::{ClientCommand, UsageError};
use crate::script::Step;
use base64::Engine as _;
use std::collections::BTreeMap;

pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected K=V, got {s:?}"))
}

fn stdin_json_lines() -> Result<Vec<serde_json::Value>, UsageError> {
    let mut out = Vec::new();
    for line in std::io::stdin().lines() {
        let line = line.map_err(|e| UsageError(format!("reading stdin: {e}")))?;
        if !line.trim().is_empty() {
            out.push(serde_json::from_str(&line).map_err(|e| UsageError(format!("invalid JSON line {line:?}: {e}")))?);
        }
    }
    Ok(out)
}

/// The step a single command stands for (`script` has none).
pub fn command_step(cmd: &ClientCommand) -> Result<Option<Step>, UsageError> {
    use serde_json::json;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let step = |id: &str, method: &str| Step {
        id: id.into(),
        method: method.into(),
        request: None,
        requests: None,
        metadata: BTreeMap::new(),
        timeout_ms: None,
        compression: None,
        after_first: vec![],
        cancel_after_ms: None,
        copies: None,
        read_pause_ms: None,
    };
    Ok(Some(match cmd {
        ClientCommand::Get { key } => Step {
            request: Some(json!({ "key": key })),
            ..step("get", "Get")
        },
        ClientCommand::Put { key, value } => Step {
            request: Some(json!({ "key": key, "value": b64(value) })),
            ..step("put", "Put")
        },
        ClientCommand::Monitor {
            pattern,
            max_events,
            include_existing,
        } => Step {
            request: Some(json!({ "pattern": pattern, "maxEvents": max_events.unwrap_or(0), "includeExisting": include_existing })),
            ..step("monitor", "Monitor")
        },
        ClientCommand::Batch { items } => {
            let reqs = if items.is_empty() {
                stdin_json_lines()?
            } else {
                items
                    .iter()
                    .map(|i| parse_pair(i).map(|(k, v)| json!({ "key": k, "value": b64(&v) })).map_err(UsageError))
                    .collect::<Result<_, _>>()?
            };
            Step {
                requests: Some(reqs),
                ..step("batch", "Batch")
            }
        }
        ClientCommand::Trade => Step {
            requests: Some(stdin_json_lines()?),
            ..step("trade", "Trade")
        },
        ClientCommand::Inventory => step("inventory", "Inventory"),
        ClientCommand::Script => return Ok(None),
    }))
}
