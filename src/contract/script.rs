//! The contract's wire types between the runner and a client under test:
//! script steps (client stdin) and output lines (client stdout).
use crate::model::tls::TlsMode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where and how a client connects: its options (the default connection), or
/// a step's own `connection`. Equal connections share one channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    pub server: String,
    #[serde(default, skip_serializing_if = "is_plaintext")]
    pub tls_mode: TlsMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// HTTP/2 keepalive: a PING every this many ms, with or without calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_ms: Option<u64>,
    /// A keepalive PING unanswered this long closes the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_timeout_ms: Option<u64>,
}

fn is_plaintext(m: &TlsMode) -> bool {
    *m == TlsMode::None
}

impl Connection {
    /// The client options that stand for this connection.
    pub fn options(&self) -> Vec<String> {
        let mut args = vec![
            "--server".to_string(),
            self.server.clone(),
            "--tls-mode".into(),
            self.tls_mode.to_string(),
        ];
        let files = [
            ("--ca-file", &self.ca_file),
            ("--cert-file", &self.cert_file),
            ("--key-file", &self.key_file),
        ];
        for (flag, file) in files {
            if let Some(f) = file {
                args.extend([flag.to_string(), f.to_string_lossy().into_owned()]);
            }
        }
        if let Some(name) = &self.server_name {
            args.extend(["--server-name".to_string(), name.clone()]);
        }
        let keepalive = [
            ("--keepalive-ms", self.keepalive_ms),
            ("--keepalive-timeout-ms", self.keepalive_timeout_ms),
        ];
        for (flag, ms) in keepalive {
            if let Some(ms) = ms {
                args.extend([flag.to_string(), ms.to_string()]);
            }
        }
        args
    }
}

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
    /// Cancel the call (a Monitor) right after this many response messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_after_messages: Option<u32>,
    /// Run this many copies of the call at once on the one channel; copy k
    /// prints its lines with the id `ID*k`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<u32>,
    /// Wait this long after each response message before reading the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_pause_ms: Option<u64>,
    /// This call's own connection instead of the client's default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    /// Steps of one lane run in order; lanes run at the same time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lane: u32,
    /// Large `value`s the client builds itself instead of reading them as JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fill: Vec<Fill>,
    /// A load step: the call over and over, C at once, for D ms (`stock-matrix bench`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bench: Option<crate::contract::bench::Load>,
    /// The Rust reference client only: make the call misbehave this way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rude: Option<crate::model::misbehaviour::Rude>,
    /// The Rust reference client only: a call that ends UNIMPLEMENTED is made
    /// once more at this method, which takes the same messages (grpcurl's
    /// way with server reflection: v1, then v1alpha).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_method: Option<String>,
}

/// A step's `fill` entry: the `value` of request message `request` is the
/// bytes of `repeat` (base64) repeated `times` times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fill {
    pub request: usize,
    pub repeat: String,
    pub times: u64,
}

impl Fill {
    /// The bytes this entry stands for.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        let unit = decode_b64(&self.repeat)?;
        let times = usize::try_from(self.times).map_err(|_| format!("`times` {} is too large", self.times))?;
        Ok(unit.repeat(times))
    }
}

/// The server delay a step's metadata asks for (`x-stock-delay-ms`), in ms; 0 when none.
pub fn delay_ms(metadata: &BTreeMap<String, String>) -> u64 {
    metadata
        .get("x-stock-delay-ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The id prefix of warm-up steps (see [`Step::warm_up`]).
pub const WARM_UP: &str = "warm-up/";

impl Step {
    /// The call that opens connection `n` of a client process before any
    /// test uses it: a `Get` of a key nobody writes, so that a connection's
    /// set-up (a JVM's TLS start-up, a plugin's handshake, a loaded machine)
    /// is paid before the tests, never inside a test's timed step
    /// (`max_elapsed_ms`). Only a status that says the connection could not
    /// be used counts against the first test on it ([`warm_up_failed`]).
    pub fn warm_up(n: usize, key: &str, conn: Option<&Connection>) -> Step {
        Step {
            id: format!("{WARM_UP}{n}"),
            method: "Get".into(),
            request: Some(serde_json::json!({ "key": key })),
            requests: None,
            metadata: BTreeMap::new(),
            timeout_ms: Some(WARM_UP_TIMEOUT_MS),
            compression: None,
            after_first: Vec::new(),
            cancel_after_ms: None,
            cancel_after_messages: None,
            copies: None,
            read_pause_ms: None,
            connection: conn.cloned(),
            lane: (n % 64) as u32,
            fill: Vec::new(),
            bench: None,
            rude: None,
            fallback_method: None,
        }
    }

    /// Puts the step, and the steps it runs inside, on this connection.
    pub fn use_connection(&mut self, conn: &Connection) {
        self.connection = Some(conn.clone());
        self.after_first.iter_mut().for_each(|s| s.use_connection(conn));
    }

    /// The ids the step's status lines carry: its own, or one per copy.
    pub fn status_ids(&self) -> Vec<String> {
        match self.copies {
            Some(n) if n > 1 => (0..n).map(|k| copy_id(&self.id, k)).collect(),
            _ => vec![self.id.clone()],
        }
    }
}

/// A warm-up call's deadline.
const WARM_UP_TIMEOUT_MS: u64 = 10_000;

/// Why a warm-up call's status shows that the client could not use its
/// connection: UNAVAILABLE or DEADLINE_EXCEEDED. Any other status (NOT_FOUND
/// for the missing key, UNIMPLEMENTED from a server without Stock, a broken
/// server's wrong code) came back over the connection.
pub fn warm_up_failed(status: &Status) -> Option<String> {
    matches!(status.code.as_str(), "UNAVAILABLE" | "DEADLINE_EXCEEDED").then(|| {
        format!(
            "the first call on this test's connection (the runner's warm-up Get of a key nobody writes, before any test) ended {} {:?}: the client could not use a connection that works for the tests after it",
            status.code, status.message
        )
    })
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
    /// The reference client only: how many response messages came with the
    /// Compressed-Flag set, of how many ("2/2").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_compressed: Option<String>,
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

/// Decodes base64 with or without padding (stacks differ).
pub fn decode_b64(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("not base64 ({e}): {:?}", s.chars().take(60).collect::<String>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warm_up_counts_against_a_test_only_when_its_connection_was_unusable() {
        let st = |code: &str| Status {
            code: code.into(),
            message: "m".into(),
        };
        for code in ["NOT_FOUND", "UNIMPLEMENTED", "UNKNOWN", "OK"] {
            assert_eq!(warm_up_failed(&st(code)), None, "{code}");
        }
        for code in ["UNAVAILABLE", "DEADLINE_EXCEEDED"] {
            assert!(warm_up_failed(&st(code))
                .unwrap()
                .contains(&format!("ended {code} \"m\"")));
        }
        let step = Step::warm_up(65, "ns/warm-up", None);
        assert_eq!((step.id.as_str(), step.lane, step.connection), ("warm-up/65", 1, None));
    }

    #[test]
    fn status_and_message_lines_parse() {
        let l = Line::parse(r#"{"id":"a","message":{"value":"aGk="}}"#).unwrap();
        assert!(l.message.is_some());
        let l = Line::parse(
            r#"{"id":"a","status":{"code":"OK","message":""},"headers":{},"trailers":{},"elapsed_ms":1.5}"#,
        )
        .unwrap();
        assert_eq!(l.status.unwrap().code, "OK");
    }

    #[test]
    fn garbage_and_ambiguous_lines_are_rejected() {
        assert!(Line::parse("hello").is_err());
        assert!(Line::parse(r#"{"id":"a"}"#).is_err());
        assert!(Line::parse(r#"{"id":"a","message":{},"status":{"code":"OK"}}"#).is_err());
    }
}
