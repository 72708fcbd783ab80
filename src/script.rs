//! The contract's wire types between the runner and a client under test:
//! script steps (client stdin) and output lines (client stdout).
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One script step, as CONTRACT.md describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_first: Vec<Step>,
    /// Cancel the call this many ms after it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_after_ms: Option<u64>,
    /// Run this many copies of the call at once on the one channel; copy k
    /// prints its lines with the id `ID*k`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<u32>,
    /// Wait this long after each response message before reading the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_pause_ms: Option<u64>,
}

impl Step {
    /// The ids the step's status lines carry: its own, or one per copy.
    pub fn status_ids(&self) -> Vec<String> {
        match self.copies {
            Some(n) if n > 1 => (0..n).map(|k| copy_id(&self.id, k)).collect(),
            _ => vec![self.id.clone()],
        }
    }
}

/// The id of copy `k` of a step.
pub fn copy_id(id: &str, k: u32) -> String {
    format!("{id}*{k}")
}

/// A call's final status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// One line of client output: a response message, or the final status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<f64>,
    /// The `grpc-encoding` of the responses (`identity` when uncompressed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_encoding: Option<String>,
    /// The rich error details of a failed call (google.rpc.Status details),
    /// each in proto3 JSON with `@type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<serde_json::Value>>,
}

impl Line {
    /// Parses one output line; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Line, String> {
        let line: Line = serde_json::from_str(text).map_err(|e| format!("not a contract output line ({e})"))?;
        match (&line.message, &line.status) {
            (Some(_), None) | (None, Some(_)) => Ok(line),
            _ => Err("an output line holds exactly one of `message` and `status`".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_message_lines_parse() {
        let l = Line::parse(r#"{"id":"a","message":{"value":"aGk="}}"#).unwrap();
        assert!(l.message.is_some());
        let l = Line::parse(r#"{"id":"a","status":{"code":"OK","message":""},"headers":{},"trailers":{},"elapsed_ms":1.5}"#).unwrap();
        assert_eq!(l.status.unwrap().code, "OK");
    }

    #[test]
    fn garbage_and_ambiguous_lines_are_rejected() {
        assert!(Line::parse("hello").is_err());
        assert!(Line::parse(r#"{"id":"a"}"#).is_err());
        assert!(Line::parse(r#"{"id":"a","message":{},"status":{"code":"OK"}}"#).is_err());
    }
}
