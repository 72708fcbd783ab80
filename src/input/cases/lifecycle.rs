//! The processes' own exits (CONTRACT.md): a lifecycle case, where the
//! runner watches a server of the case's own stop instead of a client running
//! steps, and a case's `exit`, the code its client process of its own must
//! end with once its steps are answered.
use serde::{Deserialize, Serialize};

/// How the runner asks the case's server to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopBy {
    /// Closes the server's stdin.
    StdinEof,
    /// Sends SIGTERM to the server's process group.
    Sigterm,
    /// Sends SIGINT to the server's process group (Ctrl-C in a terminal).
    Sigint,
}

impl StopBy {
    /// What the runner did, for a reason.
    pub fn said(self) -> &'static str {
        match self {
            StopBy::StdinEof => "its stdin's end",
            StopBy::Sigterm => "SIGTERM",
            StopBy::Sigint => "SIGINT",
        }
    }
}

/// What a lifecycle case does to its server, and how soon the server must
/// have exited (code 0) after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    pub stop: StopBy,
    /// A Monitor stays open while the server is stopped: the server must
    /// end it, not wait for it.
    #[serde(default)]
    pub open_monitor: bool,
    /// The server must have exited this long after the stop.
    pub within_ms: u64,
}

/// How a client process of the test's own must end once every step of its
/// script is answered and its stdin has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientExit {
    pub code: i32,
    /// It must have exited this long after its last step was answered.
    pub within_ms: u64,
}
