//! Command-line definitions (clap). No logic; exit codes live in `exit`.
use crate::model::tls::{KeyType, TlsMode};
use crate::reference::{client::ClientArgs, server::ServerArgs};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "stock-matrix",
    version,
    about = "Cross-language gRPC conformance matrix for the Stock service",
    after_help = format!(
        "{}\nLanguage-first: `stock-matrix <language> server --port 50051`, \
         `stock-matrix <language> client get KEY --server HOST:PORT`.",
        super::exit::HELP
    )
)]
pub struct Cli {
    /// The matrix file.
    #[arg(long, global = true, default_value = "matrix.toml")]
    pub matrix: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Which tests: a profile, narrowed or widened by explicit lists.
#[derive(clap::Args, Clone)]
pub struct Filters {
    /// Profile (quick, standard, full, …); without it, every axis not given is "everything".
    #[arg(long)]
    pub profile: Option<String>,
    /// Client languages (repeat or comma-separate).
    #[arg(long = "client", value_delimiter = ',')]
    pub clients: Vec<String>,
    /// Server languages.
    #[arg(long = "server", value_delimiter = ',')]
    pub servers: Vec<String>,
    /// TLS modes.
    #[arg(long = "tls", value_delimiter = ',')]
    pub tls: Vec<TlsMode>,
    /// Operation sets.
    #[arg(long = "set", value_delimiter = ',')]
    pub sets: Vec<String>,
    /// Certificate key types.
    #[arg(long = "key-type", value_delimiter = ',')]
    pub key_types: Vec<KeyType>,
    /// A plugin server's transports (matrix.toml `transports`; others serve on the runner's port).
    #[arg(long = "transport", value_delimiter = ',')]
    pub transports: Vec<crate::model::cell::Net>,
    /// Glob over case name, set/case or test id.
    #[arg(long = "case")]
    pub cases: Vec<String>,
    /// Run only shard K of N (client/server pairs split round-robin, deterministic; a pair's cells stay together).
    #[arg(long)]
    pub shard: Option<String>,
}

/// What a run does before it starts: set-up and builds.
#[derive(clap::Args, Clone, Default)]
pub struct Prepare {
    /// Rebuild every language even when up to date.
    #[arg(long)]
    pub rebuild: bool,
    /// Do not install missing system packages (by default a run as root runs
    /// the setup scripts of the languages it needs, as `stock-matrix setup` does).
    #[arg(long)]
    pub no_setup: bool,
}

/// `stock-matrix bench`.
#[derive(clap::Args, Clone)]
pub struct BenchArgs {
    /// Profile naming the clients, servers and TLS mode.
    #[arg(long, default_value = "bench")]
    pub profile: String,
    /// Client languages (repeat or comma-separate).
    #[arg(long = "client", value_delimiter = ',')]
    pub clients: Vec<String>,
    /// Server languages.
    #[arg(long = "server", value_delimiter = ',')]
    pub servers: Vec<String>,
    /// TLS mode (default: the profile's first).
    #[arg(long, value_enum)]
    pub tls: Option<TlsMode>,
    /// Seconds each measured repeat of an operation lasts.
    #[arg(long, default_value_t = 1.0)]
    pub duration: f64,
    /// Seconds of warm-up before each operation's repeats (not counted).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Calls in flight at once, on one channel.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u32,
    /// Bytes of each value put, batched or read.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Measured repeats of each operation (their spread is reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// Operations (default: get, put, monitor, batch, trade).
    #[arg(long = "op", value_enum, value_delimiter = ',')]
    pub ops: Vec<crate::bench::Op>,
    /// Messages per streaming call: Monitor events, Batch items, Trade orders.
    #[arg(long, default_value_t = 100)]
    pub stream_len: usize,
    /// An earlier bench.json: flag throughputs that changed beyond the noise of the repeats.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Do not run ghz against each server.
    #[arg(long)]
    pub no_ghz: bool,
    /// Do not pin servers and loads to separate CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Do not install missing system packages first.
    #[arg(long)]
    pub no_setup: bool,
    /// Reports go to REPORTS/bench/<run id>/.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show the combinations a profile covers, with counts.
    List {
        #[command(flatten)]
        filters: Filters,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Build what is needed, run the matrix, write reports.
    Run(Box<RunArgs>),
    /// Measure every client against every server under load (throughput,
    /// latency), with ghz as an anchor; writes bench.json, bench.md and SVG charts.
    Bench(Box<BenchArgs>),
    /// Build languages (all when none given) if anything changed.
    Build {
        languages: Vec<String>,
        #[arg(long)]
        force: bool,
    },
    /// Install system packages the languages need (runs their setup scripts; needs root).
    Setup { languages: Vec<String> },
    /// For each language: toolchain found or missing, how to get it, build state.
    Doctor,
    /// Start servers (all when none given) with fresh certificates and print
    /// ready-to-paste grpcurl, grpc-health-probe and client command lines;
    /// Ctrl-C or closing stdin stops them all.
    Serve {
        /// Server languages (repeat or comma-separate).
        #[arg(long = "server", value_delimiter = ',')]
        servers: Vec<String>,
        /// TLS modes (default: none).
        #[arg(long = "tls", value_delimiter = ',')]
        tls: Vec<TlsMode>,
        #[arg(long, value_enum, default_value_t = KeyType::EcP256)]
        key_type: KeyType,
    },
    /// Write a CA, server and client certificates (and an untrusted CA) into a folder.
    Certs {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = KeyType::EcP256)]
        key_type: KeyType,
    },
    /// Merge the reports of a sharded run (`run --shard K/N` on several machines) into one run folder.
    Merge {
        /// Run folders (or their summary.json files), one per shard.
        #[arg(required = true)]
        parts: Vec<PathBuf>,
        /// Where the merged run folder goes.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
    },
    /// The bundled Rust reference implementation (the `rust` language).
    #[command(subcommand)]
    Reference(Reference),
    /// Get KEY with the reference client.
    Get {
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Put KEY VALUE with the reference client.
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        target: Target,
    },
    /// Monitor PATTERN with the reference client.
    Monitor {
        pattern: String,
        #[arg(long)]
        max_events: Option<i32>,
        #[arg(long)]
        include_existing: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Inventory with the reference client.
    Inventory {
        #[command(flatten)]
        target: Target,
    },
    /// `<language> server|client ARGS…`: run one side of a language by hand.
    #[command(external_subcommand)]
    Language(Vec<String>),
}

/// `run --target`: drive the clients against a server started by hand.
#[derive(clap::Args, Clone, Default)]
pub struct ExternalTarget {
    /// Do not start servers: drive the clients against this running server
    /// (HOST:PORT). `--server NAME` names it in test ids (its language, or any
    /// label); `--tls` says which one mode it serves. Runs one cell at a time.
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// CA certificate that signed the target's certificate (--tls server|mtls).
    #[arg(long, requires = "target")]
    pub target_ca: Option<PathBuf>,
    /// Client certificate the target accepts (--tls mtls).
    #[arg(long, requires = "target")]
    pub target_cert: Option<PathBuf>,
    /// Key of --target-cert.
    #[arg(long, requires = "target")]
    pub target_key: Option<PathBuf>,
    /// Name to check the target's certificate against (default: HOST).
    #[arg(long, requires = "target")]
    pub target_name: Option<String>,
    /// Start this plugin server the way a host starts a go-plugin or pyvider
    /// plugin ('CMD ARG…', split like a shell, no expansion; run in the current
    /// folder), read its handshake line, and drive the clients against it,
    /// plaintext. `--server NAME` names it in test ids (default `plugin`).
    #[arg(long, value_name = "CMD", conflicts_with = "target")]
    pub target_plugin: Option<String>,
    /// Environment for --target-plugin, K=V (repeatable): its magic cookie, PLUGIN_PROTOCOL_VERSIONS, …
    #[arg(long = "plugin-env", value_name = "K=V", requires = "target_plugin")]
    pub plugin_env: Vec<String>,
}

/// How results become verdicts: lists, retries, blame.
#[derive(clap::Args, Clone)]
pub struct Verdicts {
    /// Known-failing list (globs over test ids, each with a reason and
    /// optionally the symptom, a regular expression its failure must show).
    #[arg(long, default_value = "known-failing.toml")]
    pub known_failing: PathBuf,
    /// Known-flaky list (same format; every entry names its symptom).
    #[arg(long, default_value = "known-flaky.toml")]
    pub known_flaky: PathBuf,
    /// Rerun a red test up to N times; a pass on retry is reported as flaky.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// Run the chosen cells N times to hunt flakes.
    #[arg(long, default_value_t = 1)]
    pub stress: u32,
    /// Write the minimal known-failing list for this run's failures to FILE
    /// (each entry's symptom is the failure's first reason, numbers free).
    #[arg(long)]
    pub write_known_failing: Option<PathBuf>,
    /// Rerun exactly the red tests of the last run (reports/latest).
    #[arg(long)]
    pub rerun_failed: bool,
    /// Skip the extra runs against the reference that name a culprit.
    #[arg(long)]
    pub no_blame: bool,
    /// Stop starting client processes after the first red test that is not
    /// known-failing (those in flight finish; the rest are reported not run).
    #[arg(long)]
    pub fail_fast: bool,
}

/// What one client process runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientPer {
    Pair,
    Cell,
}

/// Everything `run` takes.
#[derive(clap::Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub filters: Filters,
    /// Client processes that always run at once: the CPU-heavy work (default:
    /// matrix.toml run.jobs, else the CPU count).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Client processes at once at most: beyond --jobs, another starts only
    /// while the machine has a core idle (they mostly wait); equal to --jobs
    /// turns this off (default: matrix.toml run.at_most, else 24 × jobs).
    #[arg(long)]
    pub at_most: Option<usize>,
    /// Lanes per cell of each client process: tests that wait run side by
    /// side in lanes 1..N-1, the rest in lane 0; 1 runs every test one after
    /// the other (default: matrix.toml run.lanes).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub lanes: Option<u32>,
    /// One client process per `pair` (client and server language: the cells of
    /// every TLS mode and certificate share it) or per `cell`.
    #[arg(long, value_enum, default_value = "pair")]
    pub client_per: ClientPer,
    /// Where run folders go.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    #[command(flatten)]
    pub prepare: Prepare,
    #[command(flatten)]
    pub verdicts: Verdicts,
    #[command(flatten)]
    pub target: ExternalTarget,
}

#[derive(Subcommand)]
pub enum Reference {
    Server(ServerArgs),
    Client(ClientArgs),
}

/// Where a shortcut command connects.
#[derive(clap::Args, Clone)]
pub struct Target {
    #[arg(long, default_value = "localhost:50051")]
    pub server: String,
    /// Extra client flags, e.g. `--tls-mode server --ca-file ca.pem`.
    #[arg(last = true)]
    pub client_flags: Vec<String>,
}
