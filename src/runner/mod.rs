//! Runs the cells of a plan, a pair at a time (`pair`): the pair's servers
//! come from `pool` (shared by every client of the run; `server` starts and
//! probes them), one client process (`client`) runs the tests of all the
//! pair's cells in `script` mode, waiting tests in lanes side by side, with a time
//! budget per step, and every test is judged (`per_test` names it). A
//! misbehaving implementation becomes a red test, never a runner error.
//! Spawning and killing go through `exec::process`.
use crate::exec::certs::CertFiles;
use crate::input::config::Matrix;
use crate::model::cell::CellKey;
use crate::model::run::{CellInfo, TestResult};
use crate::model::tls::KeyType;
use crate::plan::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod client;
mod held;
mod lifecycle;
mod pair;
mod per_test;
mod phases;
mod pool;
mod progress;
mod server;
mod usage;

/// A server someone started themselves (`run --target`): cells whose server
/// is `label` are driven against it instead of a server the runner starts.
#[derive(Debug, Clone)]
pub struct ExternalServer {
    /// The name the target goes by in test ids (its language, or any label).
    pub label: String,
    /// `HOST:PORT`.
    pub addr: String,
    /// CA that signed the target's certificate (TLS modes server, mtls).
    pub ca: Option<PathBuf>,
    /// Client certificate and key the target accepts (mtls).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Name to verify the target's certificate against (default: HOST).
    pub server_name: Option<String>,
}

/// Everything a run needs besides the plan.
pub struct Runner {
    pub matrix: Arc<Matrix>,
    pub certs: BTreeMap<KeyType, CertFiles>,
    /// This program, for `{stock-matrix}` in command lines.
    pub exe: PathBuf,
    /// Languages that cannot run, with the reason (build failed, tool missing).
    pub unavailable: BTreeMap<String, String>,
    /// Client processes at once: `jobs` always, up to `at_most` while cores are idle.
    pub slots: crate::plan::admit::Slots,
    /// Lanes of each client: its waiting tests run side by side (`plan::lanes`).
    pub lanes: u32,
    /// One client process for all the cells of a pair (else one per cell).
    pub per_pair: bool,
    /// What each pair took in the last run: the longest start first.
    pub last_costs: crate::plan::Costs,
    /// The servers shared by the cells (`pool`).
    pub pool: pool::Pool,
    pub cancelled: Arc<AtomicBool>,
    /// The most client processes that ran at once.
    pub most_at_once: AtomicUsize,
    /// How busy the run was, about once a second, since its first cells began.
    pub load: std::sync::Mutex<Vec<crate::model::run::LoadSample>>,
    /// When the first cells began (the load samples' zero).
    pub load_epoch: std::sync::OnceLock<Instant>,
    /// The CPU of each client and server process that ended.
    pub processes: std::sync::Mutex<Vec<crate::model::run::ProcessCpu>>,
    /// `--fail-fast` saw a red test: cells not yet started do not run.
    pub stopped: Arc<AtomicBool>,
    /// How `reproduce` commands start (`stock-matrix run`, plus `--matrix` when not the default).
    pub repro_prefix: String,
    /// `run --target`: the already-running server, if any.
    pub external: Option<ExternalServer>,
    /// Run id: keeps keys of this run apart on a shared (external) server.
    pub run_id: String,
    /// The CPU servers are pinned to (`bench`), if any.
    pub server_cpu: Option<usize>,
    /// Plugin servers in automatic mTLS: address → the certificate their
    /// handshake carried (PEM file), the one their clients trust.
    pub plugin_ca: std::sync::Mutex<std::collections::HashMap<String, PathBuf>>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Runner {
    /// A runner for servers started one at a time outside a run (`serve`,
    /// `bench`): one key type's certificates, no run id, no slots to share.
    pub fn standalone(
        matrix: Matrix,
        key_type: KeyType,
        certs: CertFiles,
        server_cpu: Option<usize>,
    ) -> std::io::Result<Runner> {
        Ok(Runner {
            matrix: Arc::new(matrix),
            certs: BTreeMap::from([(key_type, certs)]),
            exe: std::env::current_exe()?,
            unavailable: BTreeMap::new(),
            slots: crate::plan::admit::Slots::new(1, 1),
            lanes: 1,
            per_pair: false,
            last_costs: Default::default(),
            pool: Default::default(),
            most_at_once: Default::default(),
            load: Default::default(),
            load_epoch: Default::default(),
            processes: Default::default(),
            cancelled: Arc::new(AtomicBool::new(false)),
            stopped: Arc::new(AtomicBool::new(false)),
            repro_prefix: String::new(),
            external: None,
            run_id: String::new(),
            server_cpu,
            plugin_ca: Default::default(),
        })
    }

    /// A command line of matrix.toml with `{stock-matrix}` made this
    /// program, even once a rebuild has replaced its file.
    pub(crate) fn argv(&self, template: &[String]) -> Vec<String> {
        let exe = crate::exec::own_exe::runnable(&self.exe);
        template
            .iter()
            .map(|a| a.replace("{stock-matrix}", &exe.to_string_lossy()))
            .collect()
    }

    /// A process's span, from `start` to now, in ms since the run's first
    /// pair started (`None` outside a run).
    fn span_ms(&self, start: Instant) -> Option<[f64; 2]> {
        self.load_epoch.get().map(|epoch| {
            let since = |at: Instant| ms(at.saturating_duration_since(*epoch));
            [since(start), since(Instant::now())]
        })
    }

    /// Why nothing more starts, once the run was interrupted (Ctrl-C) or
    /// stopped by `--fail-fast`; `None` while it goes on.
    fn halted(&self) -> Option<&'static str> {
        if self.cancelled.load(Ordering::SeqCst) {
            Some("not run: interrupted")
        } else if self.stopped.load(Ordering::SeqCst) {
            Some("not run: --fail-fast stopped the run after a red test")
        } else {
            None
        }
    }

    /// The external server this cell's server side is, if any.
    fn external(&self, key: &CellKey) -> Option<&ExternalServer> {
        self.external.as_ref().filter(|e| e.label == key.server)
    }

    /// Notes, about once a second until aborted, the client processes
    /// running, the idle cores and the memory available.
    async fn sample_load(self: Arc<Self>, running: Arc<AtomicUsize>, epoch: Instant) {
        let mut meter = crate::exec::load::CpuMeter::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Some(idle_cores) = meter.idle_cores() {
                self.load.lock().expect("load").push(crate::model::run::LoadSample {
                    at_ms: ms(epoch.elapsed()),
                    running: running.load(Ordering::SeqCst),
                    idle_cores,
                    memory_free: crate::exec::load::memory().map(|m| m.free_share()),
                });
            }
        }
    }

    /// Runs cells, `slots.jobs` client processes at a time (one per pair, or
    /// per cell) and more while cores are idle (`plan::admit`), calling
    /// `on_result` as each test ends.
    /// `attempt` > 1 gives every test fresh keys (retries, stress).
    pub async fn run(
        self: Arc<Self>,
        cells: Vec<Cell>,
        attempt: u32,
        on_result: Arc<dyn Fn(&TestResult) + Send + Sync>,
    ) -> (Vec<TestResult>, Vec<CellInfo>) {
        self.pool.expect(&cells).await;
        let mut set = tokio::task::JoinSet::new();
        let groups = crate::plan::pairs(cells, self.per_pair);
        let order = crate::plan::longest_first(&groups, &self.last_costs, self.lanes);
        let mut groups: Vec<Option<Vec<Cell>>> = groups.into_iter().map(Some).collect();
        let running = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(tokio::sync::Notify::new());
        // Set before the first pair starts: its span counts from here too.
        let epoch = *self.load_epoch.get_or_init(Instant::now);
        let sampler = tokio::spawn(self.clone().sample_load(running.clone(), epoch));
        let mut meter = crate::exec::load::CpuMeter::default();
        let mut last_extra: Option<Instant> = None;
        // Started longest first; `idx` keeps the plan's order for the results.
        for idx in order {
            // Admitted here, not in the task: tasks would race for the slots,
            // and the start order (and --fail-fast's cut) would be lost.
            loop {
                let now = crate::plan::admit::Now {
                    running: running.load(Ordering::SeqCst),
                    idle_cores: meter.idle_cores(),
                    since_extra_ms: last_extra.map(|t| t.elapsed().as_millis() as u64),
                    memory_free: crate::exec::load::memory().map(|m| m.free_share()),
                };
                if crate::plan::admit::admit(self.slots, now) {
                    if now.running >= self.slots.jobs {
                        last_extra = Some(Instant::now());
                    }
                    break;
                }
                tokio::select! {
                    _ = ended.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
            let at_once = running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(at_once, Ordering::SeqCst);
            let pair = groups[idx].take().expect("each group starts once");
            let (me, on_result) = (self.clone(), on_result.clone());
            let (running, ended) = (running.clone(), ended.clone());
            set.spawn(async move {
                let done = me.run_pair(&pair, attempt).await;
                for r in done.iter().flat_map(|(r, _)| r) {
                    on_result(r);
                }
                // Only now: --fail-fast has seen this pair's results before
                // the next pair may start.
                running.fetch_sub(1, Ordering::SeqCst);
                ended.notify_one();
                (idx, done)
            });
        }
        let mut done = Vec::new();
        while let Some(r) = set.join_next().await {
            done.push(r.expect("cell task panicked"));
        }
        sampler.abort();
        self.stop_all().await;
        done.sort_by_key(|(i, _)| *i);
        let mut results = Vec::new();
        let mut infos = Vec::new();
        for (r, i) in done.into_iter().flat_map(|(_, d)| d) {
            results.extend(r);
            infos.push(i);
        }
        (results, infos)
    }
}
