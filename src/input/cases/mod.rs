//! Case files (`cases/<set>.toml`) → typed cases (pure). A case is a list of
//! steps (calls) with what each must return. Strings may use the macros of
//! `input::macros`, expanded per test.
use crate::input::config::Matrix;
use crate::model::tls::TlsMode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod check;
mod lifecycle;
mod steps;

use check::{check_fault, check_settle, check_step};
pub use lifecycle::{ClientExit, Lifecycle, StopBy};
pub use steps::script_steps;

/// How the client connects for a case: the cell's own TLS settings, a
/// deliberately wrong variant that the server (or client) must refuse, or a
/// valid one made another way (a CA bundle, a chained certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connect {
    /// The cell's TLS mode with the run's certificates.
    #[default]
    Normal,
    /// Verifies the server against a CA that did not sign it.
    UntrustedCa,
    /// TLS but no client certificate (against an mtls server).
    NoClientCert,
    /// A client certificate signed by an unrelated CA (against mtls).
    ForeignClientCert,
    /// Plaintext against a TLS server.
    Plaintext,
    /// Verifies the server certificate against a name it does not carry.
    WrongName,
    /// TLS (trusting the run's CA) against a plaintext server.
    TlsToPlaintext,
    /// The cell's TLS mode with a CA file that does not exist (a
    /// certificate file the client cannot read).
    UnreadableCa,
    /// The cell's TLS mode with a CA file of two CAs, an unrelated one
    /// first: the run's CA is the second.
    CaBundle,
    /// A client certificate signed by an intermediate CA, sent with that
    /// intermediate, which the run's CA signed (against mtls).
    ChainedClientCert,
}

/// Which certificate the cell's server presents for a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerCert {
    /// The run's server certificate.
    #[default]
    Normal,
    /// A certificate from the trusted CA that has expired.
    Expired,
    /// The run's server certificate, on a server apart from the shared one:
    /// its store holds only the keys of the cases that ask for it (a case
    /// that reads every key of the store).
    Apart,
    /// A certificate signed by an intermediate CA, the intermediate after it
    /// in the file; in mtls the server trusts a CA bundle whose second CA is
    /// the run's.
    Chained,
}

/// Whether every field of an expected message is compared, or only the ones it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    #[default]
    Exact,
    Partial,
}

/// What a step must return.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// A status pattern: `NOT_FOUND`, `A|B`, `!OK` (see `StatusPattern`).
    #[serde(default = "ok")]
    pub status: String,
    /// The exact status message.
    #[serde(default)]
    pub message: Option<String>,
    /// A substring of the status message.
    #[serde(default)]
    pub message_contains: Option<String>,
    /// The exact list of response messages (proto3 JSON, macros and matchers
    /// allowed). Absent: a unary call that ends OK must return exactly one
    /// message (unchecked), one that fails none; streams are not counted.
    #[serde(default)]
    pub messages: Option<Vec<Value>>,
    #[serde(default, rename = "match")]
    pub match_mode: MatchMode,
    /// Response headers: a value that must be there (a `-bin` key's in
    /// base64), or a matcher (`$absent`, `$range`).
    #[serde(default)]
    pub headers: BTreeMap<String, Value>,
    /// Trailers, as `headers`.
    #[serde(default)]
    pub trailers: BTreeMap<String, Value>,
    /// The `grpc-encoding` the client must report for the responses.
    #[serde(default)]
    pub response_encoding: Option<String>,
    /// How many response messages came with the Compressed-Flag set, of
    /// how many ("2/2"), as only the reference client reports it: for sets
    /// run by the reference client alone.
    #[serde(default)]
    pub response_compressed: Option<String>,
    /// The rich error details, in order: each `@type` and the fields named
    /// (others unchecked); `[]` = none.
    #[serde(default)]
    pub details: Option<Vec<Value>>,
    /// Upper bound on the call's elapsed time as the client measured it.
    #[serde(default)]
    pub max_elapsed_ms: Option<f64>,
    /// Lower bound on it: what the step makes the call last at least (its
    /// `read_pause_ms` between reads), so a client that skips the wait fails.
    #[serde(default)]
    pub min_elapsed_ms: Option<f64>,
}

fn ok() -> String {
    "OK".into()
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            status: ok(),
            message: None,
            message_contains: None,
            messages: None,
            match_mode: MatchMode::Exact,
            headers: BTreeMap::new(),
            trailers: BTreeMap::new(),
            response_encoding: None,
            response_compressed: None,
            details: None,
            max_elapsed_ms: None,
            min_elapsed_ms: None,
        }
    }
}

/// One call of a case.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaseStep {
    /// Optional name, for `$from` matchers.
    #[serde(default)]
    pub name: Option<String>,
    pub method: String,
    #[serde(default)]
    pub request: Option<Value>,
    #[serde(default)]
    pub requests: Option<Vec<Value>>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub compression: Option<String>,
    #[serde(default)]
    pub after_first: Vec<CaseStep>,
    /// The client cancels the call this many ms after it started.
    #[serde(default)]
    pub cancel_after_ms: Option<u64>,
    /// The client cancels the call right after it has received this many
    /// response messages (a server-streaming call's): a cancel at a point
    /// it has seen, whatever the machine's load.
    #[serde(default)]
    pub cancel_after_messages: Option<u32>,
    /// Copies of the call run at once on the client's one channel; each
    /// must meet `expect`.
    #[serde(default)]
    pub copies: Option<u32>,
    /// The client waits this long after each response before reading on.
    #[serde(default)]
    pub read_pause_ms: Option<u64>,
    /// The runner hands the step to the client only this long after the
    /// step before it ended (an `alone` case's later top-level step): a call
    /// that must not race the client's handling of what the step before set
    /// off, such as a broken connection.
    #[serde(default)]
    pub settle_ms: Option<u64>,
    /// The call goes through the case's `fault` (the runner's proxy) on a
    /// connection of its own; other steps connect directly.
    #[serde(default)]
    pub faulty: bool,
    /// The reference client makes the call misbehave this way (a set that
    /// uses it says `clients = ["rust"]`).
    #[serde(default)]
    pub rude: Option<crate::model::misbehaviour::Rude>,
    /// A call that ends UNIMPLEMENTED is made once more at this method, which
    /// takes the same messages: grpcurl's way with server reflection (v1,
    /// then v1alpha). The reference client's (`clients = ["rust"]`).
    #[serde(default)]
    pub fallback_method: Option<String>,
    #[serde(default)]
    pub expect: Expect,
}

/// The client's keepalive for a case's connection (CONTRACT.md, "Keepalive").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Keepalive {
    /// A PING every this many ms, with or without calls in flight.
    pub ms: u64,
    /// An unanswered PING closes the connection after this long.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// One case: a named list of steps.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// TLS modes the case applies to (default: all).
    #[serde(default)]
    pub tls: Option<Vec<TlsMode>>,
    #[serde(default)]
    pub connect: Connect,
    #[serde(default)]
    pub server_cert: ServerCert,
    /// Runs by itself, after every other test of its client: it may cost the
    /// connection (a peer may close it) or fill its streams, which must not
    /// take other tests down or hold them up.
    #[serde(default)]
    pub alone: bool,
    /// HTTP/2 keepalive on the test's connection (every step carries it).
    #[serde(default)]
    pub keepalive: Option<Keepalive>,
    /// What the runner's proxy does to the connection of the `faulty` steps.
    #[serde(default)]
    pub fault: Option<crate::model::fault::Fault>,
    /// The `faulty` steps call an HTTP/2 server of the runner's that
    /// misbehaves this way, instead of the cell's server.
    #[serde(default)]
    pub peer: Option<crate::model::misbehaviour::Misbehaviour>,
    /// Server languages the case runs against, of those its set runs
    /// against (default: all): a check that only some servers can make,
    /// such as a report of the reference server's own.
    #[serde(default)]
    pub servers: Option<Vec<String>>,
    /// A script the client must refuse as a usage error, in a process of
    /// its own, instead of steps.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// The runner stops a server of the test's own this way and watches it
    /// exit, instead of steps (no client takes part).
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    /// The test's steps run in a client process of its own, which must then
    /// exit this way.
    #[serde(default)]
    pub exit: Option<ClientExit>,
    #[serde(default, rename = "step")]
    pub steps: Vec<CaseStep>,
}

/// What a usage case gives the client: it must exit 2, say why on stderr
/// and print nothing (CONTRACT.md, the client's exit codes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// The stdin line, sent as it is but for `{ns}` (the test's own key
    /// prefix): other braces are the line's own JSON.
    pub line: String,
    /// Options added before the `script` command.
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    description: String,
    #[serde(default)]
    clients: Option<Vec<String>>,
    #[serde(default)]
    servers: Option<Vec<String>>,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

/// An operation set: the cases of one file.
#[derive(Debug, Clone)]
pub struct CaseSet {
    pub description: String,
    /// Client languages that can drive this set (it calls a service only
    /// they speak, e.g. the legacy KV client); `None` = every client.
    pub clients: Option<Vec<String>>,
    /// Server languages the set runs against (its steps call the runner's
    /// own peers, so one server is enough); `None` = every server.
    pub servers: Option<Vec<String>>,
    pub cases: Vec<Case>,
}

impl CaseSet {
    /// Whether this client language can drive the set.
    pub fn drivable_by(&self, client: &str) -> bool {
        self.clients.as_ref().is_none_or(|c| c.iter().any(|x| x == client))
    }

    /// Whether the set runs against this server language.
    pub fn served_by(&self, server: &str) -> bool {
        self.servers.as_ref().is_none_or(|s| s.iter().any(|x| x == server))
    }
}

impl Case {
    /// Whether the case runs against this server language.
    pub fn served_by(&self, server: &str) -> bool {
        self.servers.as_ref().is_none_or(|s| s.iter().any(|x| x == server))
    }

    pub fn applies_to(&self, mode: TlsMode) -> bool {
        let listed = self.tls.as_ref().is_none_or(|m| m.contains(&mode));
        let meaningful = match self.connect {
            Connect::Normal => true,
            Connect::UntrustedCa
            | Connect::Plaintext
            | Connect::WrongName
            | Connect::UnreadableCa
            | Connect::CaBundle => mode != TlsMode::None,
            Connect::NoClientCert | Connect::ForeignClientCert | Connect::ChainedClientCert => mode == TlsMode::Mtls,
            Connect::TlsToPlaintext => mode == TlsMode::None,
        };
        let cert_ok = !matches!(self.server_cert, ServerCert::Expired | ServerCert::Chained) || mode != TlsMode::None;
        listed && meaningful && cert_ok
    }

    /// The most calls its test has open at once at the server: a top-level
    /// step's copies, each with its misbehaviour's calls and its nested
    /// steps'.
    pub fn calls_at_once(&self) -> u32 {
        fn calls(s: &CaseStep) -> u32 {
            let one = s.rude.map_or(1, |r| r.calls()) + s.after_first.iter().map(calls).sum::<u32>();
            s.copies.unwrap_or(1).saturating_mul(one)
        }
        self.steps.iter().map(calls).max().unwrap_or(0)
    }

    /// Does its test use its cell's own connection: the cell's server and
    /// certificates, no keepalive settings? (Its `faulty` steps may still
    /// dial a proxy or a peer.) Anything else is part of what the case checks.
    pub fn on_cells_connection(&self) -> bool {
        self.connect == Connect::Normal && self.server_cert == ServerCert::Normal && self.keepalive.is_none()
    }
}

/// A case file that could not be used; the message names the file, and the
/// case and step where there is one.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("failed to read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: {where_}`{key}` names `{language}`, which matrix.toml does not define", path.display())]
    UnknownLanguage {
        path: PathBuf,
        /// `case `NAME`: ` for a case's own list, empty for the file's.
        where_: String,
        key: &'static str,
        language: String,
    },
}

/// Loads and checks one case file.
pub fn load(name: &str, path: &Path) -> Result<CaseSet, CaseError> {
    let path_buf = || path.to_path_buf();
    let src = std::fs::read_to_string(path).map_err(|source| CaseError::Read {
        path: path_buf(),
        source,
    })?;
    parse(name, &src).map_err(|message| CaseError::Invalid {
        path: path_buf(),
        message,
    })
}

/// Parses and checks case text.
pub fn parse(_name: &str, src: &str) -> Result<CaseSet, String> {
    let file: CaseFile = toml::from_str(src).map_err(|e| e.to_string())?;
    let mut seen = std::collections::HashSet::new();
    for case in &file.cases {
        if !seen.insert(case.name.as_str()) {
            return Err(format!("case `{}` is defined twice", case.name));
        }
        if case.name.is_empty()
            || !case
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("case name `{}` must be non-empty [A-Za-z0-9_-]", case.name));
        }
        match (&case.usage, &case.lifecycle, case.steps.is_empty()) {
            (None, None, true) => return Err(format!("case `{}` has no steps", case.name)),
            (Some(_), _, false) => {
                return Err(format!(
                    "case `{}`: a `usage` case has no steps (its client exits on the line)",
                    case.name
                ))
            }
            (_, Some(_), false) => {
                return Err(format!(
                    "case `{}`: a `lifecycle` case has no steps (the runner stops its server)",
                    case.name
                ))
            }
            _ if case.exit.is_some() && (case.usage.is_some() || case.lifecycle.is_some()) => {
                return Err(format!(
                    "case `{}`: `exit` is for a case with steps, not a `usage` or `lifecycle` one",
                    case.name
                ))
            }
            (Some(_), Some(_), _) => {
                return Err(format!(
                    "case `{}`: a case is `usage` or `lifecycle`, not both",
                    case.name
                ))
            }
            _ => {}
        }
        if case.servers.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(format!(
                "case `{}`: `servers` must name at least one server language (leave it out for every server)",
                case.name
            ));
        }
        check_fault(case).map_err(|e| format!("case `{}`: {e}", case.name))?;
        check_settle(case).map_err(|e| format!("case `{}`: {e}", case.name))?;
        let mut names = Vec::new();
        for (i, step) in case.steps.iter().enumerate() {
            check_step(step, &mut names).map_err(|e| format!("case `{}` step {i}: {e}", case.name))?;
        }
    }
    if file.clients.as_ref().is_some_and(|c| c.is_empty()) {
        return Err("`clients` must name at least one client language (leave it out for every client)".into());
    }
    let own = |s: &CaseStep| {
        let rude = s.rude.is_some().then_some("rude");
        rude.or(s.fallback_method.is_some().then_some("fallback_method"))
    };
    let reference_only = file
        .cases
        .iter()
        .find_map(|c| c.steps.iter().find_map(own).map(|k| (c, k)));
    if let Some((case, key)) = reference_only {
        if file.clients.as_deref() != Some(&["rust".to_string()][..]) {
            return Err(format!(
                "case `{}`: a `{key}` step is the reference client's, so the file needs `clients = [\"rust\"]`",
                case.name
            ));
        }
    }
    if file.servers.as_ref().is_some_and(|c| c.is_empty()) {
        return Err("`servers` must name at least one server language (leave it out for every server)".into());
    }
    Ok(CaseSet {
        description: file.description,
        clients: file.clients,
        servers: file.servers,
        cases: file.cases,
    })
}

/// The named case sets of a matrix, each checked against its languages.
pub fn load_sets(m: &Matrix, names: &[String]) -> Result<BTreeMap<String, CaseSet>, CaseError> {
    names
        .iter()
        .map(|n| {
            let path = &m.sets[n];
            let set = load(n, path)?;
            let case_servers = set
                .cases
                .iter()
                .map(|c| (format!("case `{}`: ", c.name), "servers", &c.servers));
            let lists = [
                (String::new(), "clients", &set.clients),
                (String::new(), "servers", &set.servers),
            ]
            .into_iter()
            .chain(case_servers);
            for (where_, key, langs) in lists {
                if let Some(unknown) = langs.iter().flatten().find(|c| !m.languages.contains_key(*c)) {
                    return Err(CaseError::UnknownLanguage {
                        path: path.clone(),
                        where_,
                        key,
                        language: unknown.clone(),
                    });
                }
            }
            Ok((n.clone(), set))
        })
        .collect()
}

#[cfg(test)]
mod tests;
