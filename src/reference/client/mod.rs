//! The reference client: `stock-matrix reference client`, the contract's
//! client side in tonic. Every call goes through one generic streaming path
//! with dynamic messages, so headers and trailers stay apart for unary calls
//! too, and a step's JSON request is sent exactly as the case wrote it.
mod call;
mod encoding;
mod retry;
mod settle;

use super::connector;
use super::faults::ClientFault;
use super::rude;
use crate::contract::channel::Tweaks;
use crate::contract::proto::{self, Kind, MethodInfo};
use crate::contract::script::{Connection, Step};
use crate::model::tls::TlsMode;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt as _};
use prost_reflect::DynamicMessage;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::Status;

/// The contract's client options: the default connection, then `script`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    #[arg(long)]
    pub server: String,
    #[arg(long, value_enum, default_value_t = TlsMode::None)]
    pub tls_mode: TlsMode,
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    #[arg(long)]
    pub cert_file: Option<PathBuf>,
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    #[arg(long)]
    pub server_name: Option<String>,
    #[arg(long)]
    pub keepalive_ms: Option<u64>,
    #[arg(long)]
    pub keepalive_timeout_ms: Option<u64>,
    /// Deliberate bugs, so tests can prove the negative TLS cases catch them.
    #[arg(long = "break", value_enum, hide = true)]
    pub faults: Vec<ClientFault>,
    /// A test aid: the first call on each connection waits this long inside
    /// its timed part, as in a client whose connection set-up is slow (a
    /// JVM's TLS start-up on a loaded machine). Not a bug: no case may fail
    /// because of it.
    #[arg(long, hide = true)]
    pub slow_first_call_ms: Option<u64>,
    #[command(subcommand)]
    pub command: ScriptCommand,
}

/// The client's one command.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum ScriptCommand {
    /// Run script steps (JSON lines) from stdin.
    Script,
}

impl ClientArgs {
    /// The default connection the options describe.
    pub fn connection(&self) -> Connection {
        Connection {
            server: self.server.clone(),
            tls_mode: self.tls_mode,
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            server_name: self.server_name.clone(),
            keepalive_ms: self.keepalive_ms,
            keepalive_timeout_ms: self.keepalive_timeout_ms,
        }
    }
}

/// The channel deviations the client's TLS and keepalive faults ask for.
fn tweaks(faults: &[ClientFault]) -> Tweaks {
    Tweaks {
        trust_any_ca: faults.contains(&ClientFault::TrustAnyCa),
        ignore_server_name: faults.contains(&ClientFault::IgnoreServerName),
        keepalive_only_with_calls: faults.contains(&ClientFault::KeepaliveOnlyWithCalls),
        first_ca_only: faults.contains(&ClientFault::FirstCaOnly),
        leaf_only: faults.contains(&ClientFault::CertChainLeafOnly),
    }
}

/// A usage error: the process exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs steps, one channel per connection, and prints the contract's output lines.
pub struct Runner {
    default: Connection,
    /// Channels by connection, opened when a step first needs one.
    channels: Mutex<HashMap<Connection, Result<Channel, String>>>,
    /// The `dead-channel-kept` fault: connections a call found broken.
    dead: Mutex<std::collections::HashSet<Connection>>,
    /// What rude calls keep open on purpose.
    kept: rude::Kept,
    /// Connections that had a call (`--slow-first-call-ms`, `first-call-unavailable`).
    called: Mutex<std::collections::HashSet<Connection>>,
    /// The `wait-for-ready` fault: connections the server answered on.
    answered: Mutex<std::collections::HashSet<Connection>>,
    args: ClientArgs,
}

/// Whether a call of this process ended with another status than OK.
static NOT_OK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes a call's final status code (for `ExitOneOnErrorStatus`).
pub(super) fn ended(code: &str) {
    if code != "OK" {
        NOT_OK.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

pub(super) fn emit(line: &impl serde::Serialize) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

impl Runner {
    pub(super) fn args(&self) -> &ClientArgs {
        &self.args
    }

    /// A runner whose default connection is ready (an unusable one is an error).
    pub fn new(args: ClientArgs) -> anyhow::Result<Runner> {
        let default = args.connection();
        let ch = connector::open(&default, tweaks(&args.faults), &args.faults)?;
        let channels = Mutex::new(HashMap::from([(default.clone(), Ok(ch))]));
        Ok(Runner {
            default,
            channels,
            dead: Default::default(),
            kept: Default::default(),
            called: Default::default(),
            answered: Default::default(),
            args,
        })
    }

    /// The channel of a step's connection; one that cannot be built fails the call.
    pub(super) fn channel_for(&self, connection: Option<&Connection>) -> Result<Channel, Status> {
        let conn = connection.unwrap_or(&self.default);
        if self.dead.lock().expect("dead connections").contains(conn) {
            return Err(Status::unavailable(format!(
                "connection to {}: broken earlier",
                conn.server
            )));
        }
        let open = || connector::open(conn, tweaks(&self.args.faults), &self.args.faults).map_err(|e| format!("{e:#}"));
        let channel = if self.args.faults.contains(&ClientFault::ChannelPerCall) {
            open()
        } else {
            let mut channels = self.channels.lock().expect("channel cache");
            channels.entry(conn.clone()).or_insert_with(open).clone()
        };
        let message = |e| format!("connection to {}: {e}", conn.server);
        match self.args.faults.contains(&ClientFault::UnusableChannelInternal) {
            true => channel.map_err(|e| Status::internal(message(e))),
            false => channel.map_err(|e| Status::unavailable(message(e))),
        }
    }

    /// Checks a step's method and requests before anything is sent.
    pub(super) fn prepare(&self, step: &Step) -> Result<(MethodInfo, Vec<DynamicMessage>), UsageError> {
        let faults = &self.args.faults;
        let Some(info) = proto::method(&step.method) else {
            let why = format!("step {:?}: unknown method {:?}", step.id, step.method);
            if faults.contains(&ClientFault::UnknownMethodExit1) {
                crate::reference::faults::usage::exit_1(&why);
            }
            return Err(UsageError(why));
        };
        let bad_bin = step.metadata.iter().filter(|(k, _)| k.ends_with("-bin"));
        for (k, v) in bad_bin.filter(|(_, v)| crate::contract::script::decode_b64(v).is_err()) {
            if !faults.contains(&ClientFault::BadBinMetadataInternal) {
                return Err(UsageError(format!(
                    "step {:?}: metadata {k}: {v:?} is not base64",
                    step.id
                )));
            }
        }
        let refuse = |why: String| Err(UsageError(format!("step {:?}: {why}", step.id)));
        match step.compression.as_deref() {
            None | Some("gzip" | "identity") => {}
            Some(_) if faults.contains(&ClientFault::UnknownCompressionUncompressed) => {}
            Some(c) => return refuse(format!("compression {c:?}: \"gzip\" or \"identity\" expected")),
        }
        // The fields only a Monitor takes, each with the fault that lets it pass elsewhere.
        let monitor_only = [
            (
                "after_first",
                !step.after_first.is_empty(),
                ClientFault::AfterFirstOffMonitorIgnored,
            ),
            (
                "cancel_after_messages",
                step.cancel_after_messages.is_some(),
                ClientFault::CancelAfterMessagesOffMonitorIgnored,
            ),
        ];
        for (field, given, ignored) in monitor_only {
            if given && step.method != "Monitor" && !faults.contains(&ignored) {
                return refuse(format!("{field} is for a Monitor step, not {}", step.method));
            }
        }
        let lenient = faults.contains(&ClientFault::UnknownMessageFieldsIgnored);
        let streaming_in = matches!(info.kind, Kind::ClientStream | Kind::Bidi);
        let jsons: Vec<serde_json::Value> = match (&step.request, &step.requests) {
            (_, Some(reqs)) if streaming_in => reqs.clone(),
            (Some(req), None) if !streaming_in => vec![req.clone()],
            (None, None) if !streaming_in => vec![serde_json::json!({})],
            (None, None) => vec![],
            _ => {
                return Err(UsageError(format!(
                    "step {:?}: {} takes `{}`",
                    step.id,
                    step.method,
                    if streaming_in { "requests" } else { "request" }
                )))
            }
        };
        let mut msgs = jsons
            .iter()
            .map(|j| proto::parse_json_with(&info.input, j, lenient))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| UsageError(format!("step {:?}: {e}", step.id)))?;
        proto::fill_values(&step.method, &mut msgs, &step.fill)
            .map_err(|e| UsageError(format!("step {:?}: {e}", step.id)))?;
        for s in &step.after_first {
            self.prepare(s)?;
        }
        Ok((info, msgs))
    }

    /// Runs one step (and its `after_first` steps), printing every line;
    /// with `copies`, that many calls at once on the channel.
    pub fn run_step<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<(), UsageError>> {
        Box::pin(async move {
            if let Some(load) = step.bench {
                return self.run_bench(step, load).await;
            }
            match step.copies {
                Some(n) if n > 1 => {
                    let all = (0..n).map(|k| self.run_call(step, crate::contract::script::copy_id(&step.id, k)));
                    futures::future::try_join_all(all).await.map(|_| ())
                }
                _ => self.run_call(step, step.id.clone()).await,
            }
        })
    }

    /// A step's request metadata (`-bin` values decoded from base64).
    pub(in crate::reference) fn request_metadata(&self, step: &Step) -> Result<tonic::metadata::MetadataMap, Status> {
        let mut map = tonic::metadata::MetadataMap::new();
        for (k, v) in &step.metadata {
            if k.ends_with("-bin") {
                let key = tonic::metadata::BinaryMetadataKey::from_bytes(k.as_bytes())
                    .map_err(|_| Status::internal(format!("invalid metadata key {k:?}")))?;
                let bytes = if self.args.faults.contains(&ClientFault::BinAsText) {
                    v.as_bytes().to_vec()
                } else {
                    crate::contract::script::decode_b64(v)
                        .map_err(|e| Status::internal(format!("metadata {k}: {e}")))?
                };
                map.append_bin(key, tonic::metadata::BinaryMetadataValue::from_bytes(&bytes));
                continue;
            }
            let key = tonic::metadata::MetadataKey::from_bytes(k.as_bytes())
                .map_err(|_| Status::internal(format!("invalid metadata key {k:?}")))?;
            let value = v
                .parse()
                .map_err(|_| Status::internal(format!("invalid metadata value {v:?}")))?;
            map.append(key, value);
        }
        Ok(map)
    }

    /// Runs script steps read from stdin, one JSON object per line: each
    /// is handed to its lane at once; lanes run at the same time.
    pub async fn script(&self) -> Result<(), UsageError> {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut queues: HashMap<u32, mpsc::UnboundedSender<Step>> = HashMap::new();
        let mut lanes = FuturesUnordered::new();
        let mut reading = true;
        loop {
            tokio::select! {
                line = lines.next_line(), if reading => {
                    let Some(line) = line.map_err(|e| UsageError(format!("reading stdin: {e}")))? else {
                        reading = false;
                        queues.clear(); // each lane ends after its last step
                        continue;
                    };
                    if line.trim().is_empty() {
                        continue;
                    }
                    let faults = &self.args.faults;
                    let step = crate::reference::faults::usage::read_step(&line, faults).map_err(|e| {
                        let why = format!("invalid step line: {e}");
                        let syntax = matches!(e.classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof);
                        if syntax && faults.contains(&ClientFault::InvalidJsonExit1) {
                            crate::reference::faults::usage::exit_1(&why);
                        }
                        UsageError(why)
                    })?;
                    let lane = step.lane;
                    let queue = queues.entry(lane).or_insert_with(|| {
                        let (tx, rx) = mpsc::unbounded_channel();
                        lanes.push(self.lane(rx));
                        tx
                    });
                    let _ = queue.send(step);
                }
                Some(ended) = lanes.next() => ended?,
                else => return Ok(()),
            }
        }
    }

    /// One lane: its steps in order, as they arrive.
    async fn lane(&self, mut steps: mpsc::UnboundedReceiver<Step>) -> Result<(), UsageError> {
        while let Some(step) = steps.recv().await {
            self.run_step(&step).await?;
        }
        Ok(())
    }
}

/// Entry point of `stock-matrix reference client`; returns the exit code
/// (0 ran, 1 fatal, 2 usage error).
pub async fn run(args: ClientArgs) -> i32 {
    let faults = args.faults.clone();
    let runner = match Runner::new(args) {
        Ok(r) => r,
        Err(e) => {
            note!("error: {e:#}");
            return 1;
        }
    };
    match runner.script().await {
        Ok(()) if faults.contains(&ClientFault::LingerAfterScript) => std::future::pending().await,
        Ok(())
            if faults.contains(&ClientFault::ExitOneOnErrorStatus)
                && NOT_OK.load(std::sync::atomic::Ordering::Relaxed) =>
        {
            1
        }
        Ok(()) => 0,
        Err(e) => {
            note!("error: {e}");
            2
        }
    }
}
