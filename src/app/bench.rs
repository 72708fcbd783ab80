//! `stock-matrix bench`: for each server, one server process; against it,
//! each client runs its `bench` steps in its own process, then ghz loads
//! the same server as an anchor; the lines are added up (`bench`) and
//! written as bench.json, bench.md and SVG charts. Servers go on one CPU,
//! the load (a client, or ghz) on another, when the machine has two.
use crate::app::cli::BenchArgs;
use crate::app::exit::{self, runner as setup_err, usage, Exit};
use crate::app::toolchain;
use crate::bench::{self, Anchor, BenchReport, Environment, Op, OpResult, Pair, Percentiles, Settings, Spread};
use crate::contract::bench::{BenchLine, Counts};
use crate::contract::script::{Connection, Line, Status};
use crate::exec::process;
use crate::exec::run_folder;
use crate::input::cases::{Connect, ServerCert};
use crate::input::config::Matrix;
use crate::model::cell::CellKey;
use crate::model::tls::{KeyType, TlsMode};
use crate::runner::Runner;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// ghz, from the Go module proxy into target/tools/.
const GHZ: &str = "github.com/bojand/ghz/cmd/ghz@v0.120.0";

/// Where servers and loads run: (server CPU, load CPU) and what the report says of it.
fn placement(no_pin: bool) -> (Option<usize>, Option<usize>, usize, String) {
    let cpus = process::usable_cpus();
    let n = cpus.len().max(1);
    if no_pin {
        return (
            None,
            None,
            n,
            "not pinned (--no-pin): servers and loads share every CPU".into(),
        );
    }
    match cpus.as_slice() {
        [a, b, ..] => (
            Some(*a),
            Some(*b),
            n,
            format!("servers pinned to CPU {a}, the client under test (or ghz) to CPU {b} (sched_setaffinity, as `taskset -c`)"),
        ),
        _ => (None, None, n, "one CPU: servers and loads share it (not pinned)".into()),
    }
}

/// The commit checked out at `root`, read from .git (no git process).
fn commit(root: &Path) -> Option<String> {
    let git = root.join(".git");
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(name) = head.strip_prefix("ref: ") else {
        return Some(head.chars().take(12).collect());
    };
    let id = std::fs::read_to_string(git.join(name)).ok().or_else(|| {
        let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
        packed
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .map(|l| l[..40.min(l.len())].to_string())
    })?;
    Some(id.trim().chars().take(12).collect())
}

/// ghz, installed into target/tools/ when missing; or why there is none.
async fn ghz(m: &Matrix, log: &Path) -> Result<PathBuf, String> {
    let tools = m.root.join("target/tools");
    let exe = tools.join("ghz");
    if exe.is_file() {
        return Ok(exe);
    }
    note!("installing ghz ({GHZ}) into {}", tools.display());
    let argv = vec![
        "env".to_string(),
        format!("GOBIN={}", tools.display()),
        "go".into(),
        "install".into(),
        GHZ.into(),
    ];
    match process::run_logged(&argv, &m.root, log, Duration::from_secs(600)).await {
        Ok(s) if s.success() && exe.is_file() => Ok(exe),
        Ok(s) => Err(format!("`go install {GHZ}` failed ({s}); see {}", log.display())),
        Err(e) => Err(format!("`go install {GHZ}`: {e}")),
    }
}

/// The server's own `Inventory.stack`, if it answers.
async fn stack_of(conn: &Connection) -> Option<String> {
    use crate::contract::proto::stock::stock_client::StockClient;
    let ch = crate::contract::channel::channel(conn, Default::default()).ok()?;
    let mut client = StockClient::new(ch);
    let call = client.inventory(crate::contract::proto::stock::Empty {});
    let r = tokio::time::timeout(Duration::from_secs(5), call).await.ok()?.ok()?;
    Some(r.into_inner().stack).filter(|s| !s.is_empty())
}

pub async fn bench(m: Matrix, a: &BenchArgs) -> Result<i32, Exit> {
    let started = std::time::SystemTime::now();
    let profile = m.profile(&a.profile).map_err(usage)?.clone();
    let known: Vec<String> = m.languages.keys().cloned().collect();
    let pick = |cli: &[String], base: &[String]| -> Result<Vec<String>, Exit> {
        let names = if cli.is_empty() { base.to_vec() } else { cli.to_vec() };
        match names.iter().find(|n| !known.contains(n)) {
            Some(n) => Err(usage(format!("unknown language `{n}` (known: {})", known.join(", ")))),
            None => Ok(names),
        }
    };
    let clients = pick(&a.clients, &profile.clients)?;
    let servers = pick(&a.servers, &profile.servers)?;
    let tls = a.tls.or(profile.tls.first().copied()).unwrap_or(TlsMode::None);
    let settings = Settings {
        duration_ms: (a.duration * 1000.0).round() as u64,
        warmup_ms: (a.warmup * 1000.0).round() as u64,
        concurrency: a.concurrency,
        payload: a.payload,
        repeat: a.repeat,
        stream_len: a.stream_len,
        call_timeout_ms: 10_000,
        tls,
        ops: if a.ops.is_empty() {
            Op::ALL.to_vec()
        } else {
            a.ops.clone()
        },
    };
    if settings.concurrency == 0 || settings.repeat == 0 || settings.duration_ms == 0 || settings.stream_len == 0 {
        return Err(usage(
            "bench: --concurrency, --repeat, --duration and --stream-len must be above 0",
        ));
    }
    let baseline = match &a.baseline {
        Some(f) => {
            let text = std::fs::read_to_string(f).map_err(|e| usage(format!("--baseline {}: {e}", f.display())))?;
            let r: BenchReport = serde_json::from_str(&text)
                .map_err(|e| usage(format!("--baseline {}: not a bench.json: {e}", f.display())))?;
            Some((f.display().to_string(), r))
        }
        None => None,
    };
    let (server_cpu, load_cpu, cores, placement) = placement(a.no_pin);
    let (bench_reports, _, dir) = run_folder::create(&a.reports.join("bench"))?;
    let certs = crate::exec::certs::generate(&dir.join("certs"), KeyType::EcP256)
        .map_err(|e| setup_err(format!("certificates: {e:#}")))?;
    let mut langs: Vec<String> = clients.iter().chain(&servers).cloned().collect();
    langs.sort();
    langs.dedup();
    if !a.no_setup {
        toolchain::auto_setup(&m, &langs, &dir).await;
    }
    let builds = super::build_all(&m, &langs, &dir, false, |s| note!("{s}")).await;
    let unavailable: BTreeMap<String, String> = builds
        .into_iter()
        .filter(|(_, b)| !b.ok)
        .map(|(l, b)| (l, b.status))
        .collect();
    let ghz = match a.no_ghz {
        true => Err("not run (--no-ghz)".to_string()),
        false => ghz(&m, &dir.join("ghz-install.log")).await,
    };
    let mut stacks: BTreeMap<String, String> = langs
        .iter()
        .map(|l| (l.clone(), m.languages[l].stack.clone()))
        .collect();
    let runner = Runner {
        matrix: Arc::new(m.clone()),
        certs: BTreeMap::from([(KeyType::EcP256, certs.clone())]),
        exe: std::env::current_exe().map_err(setup_err)?,
        unavailable: BTreeMap::new(),
        slots: crate::plan::admit::Slots::new(1, 1),
        lanes: 1,
        per_pair: false,
        last_costs: Default::default(),
        pool: Default::default(),
        most_at_once: Default::default(),
        cancelled: Arc::new(AtomicBool::new(false)),
        stopped: Arc::new(AtomicBool::new(false)),
        repro_prefix: String::new(),
        external: None,
        run_id: String::new(),
        server_cpu,
        plugin_ca: Default::default(),
    };
    note!(
        "bench: {} client(s) × {} server(s), tls={tls}, {} in flight, {} B, {} × {} ms after {} ms warm-up; {placement}",
        clients.len(),
        servers.len(),
        settings.concurrency,
        settings.payload,
        settings.repeat,
        settings.duration_ms,
        settings.warmup_ms
    );
    let mut pairs = Vec::new();
    let mut anchors = Vec::new();
    for server in &servers {
        let key = CellKey {
            client: server.clone(),
            server: server.clone(),
            tls,
            key_type: KeyType::EcP256,
        };
        let not_measured = |why: String| -> Vec<Pair> {
            clients
                .iter()
                .map(|c| Pair {
                    client: c.clone(),
                    server: server.clone(),
                    ops: BTreeMap::new(),
                    error: Some(why.clone()),
                })
                .collect()
        };
        if let Some(why) = unavailable.get(server) {
            pairs.extend(not_measured(format!("server {server} unavailable: {why}")));
            continue;
        }
        let (mut proc, addr) = match runner.start_server(&key, ServerCert::Normal).await {
            Ok((proc, addr, _, _)) => (proc, addr),
            Err((why, stderr)) => {
                pairs.extend(not_measured(format!("server {server} did not start: {why}\n{stderr}")));
                continue;
            }
        };
        let conn = runner.connection(&key, &addr, Connect::Normal);
        if let Some(s) = stack_of(&conn).await {
            stacks.insert(server.clone(), s);
        }
        for client in &clients {
            let pair = match unavailable.get(client) {
                Some(why) => Pair {
                    client: client.clone(),
                    server: server.clone(),
                    ops: BTreeMap::new(),
                    error: Some(format!("client {client} unavailable: {why}")),
                },
                None => measure(&runner, client, server, &conn, &settings, load_cpu).await,
            };
            say!("{}", pair_line(&pair, &settings));
            pairs.push(pair);
        }
        if settings.ops.iter().any(|o| o.unary()) {
            let anchor = match &ghz {
                Ok(exe) => anchor(exe, &m.root, server, &conn, &settings, load_cpu, &dir).await,
                Err(why) => Anchor {
                    server: server.clone(),
                    tool: "ghz".into(),
                    ops: BTreeMap::new(),
                    error: Some(why.clone()),
                },
            };
            if anchor.error.is_none() || ghz.is_ok() {
                say!("{}", anchor_line(&anchor));
            }
            anchors.push(anchor);
        }
        proc.stop(Duration::from_secs(2)).await;
    }
    let mut report = BenchReport {
        settings,
        environment: Environment {
            started: humantime::format_rfc3339_seconds(started).to_string(),
            duration_s: started.elapsed().map(|d| d.as_secs_f64()).unwrap_or_default(),
            command: run_folder::command_line(),
            commit: commit(&m.root),
            cores,
            placement,
            stacks,
        },
        pairs,
        anchors,
        baseline: None,
    };
    if let Some((file, before)) = &baseline {
        report.baseline = Some(bench::compare(file, before, &report));
    }
    write(&dir, &report).map_err(|e| setup_err(format!("writing the bench reports: {e}")))?;
    run_folder::point_latest(&bench_reports, &dir);
    say!("\n{}", bench::render::console(&report));
    let failed = report.pairs.iter().filter(|p| p.error.is_some()).count();
    say!(
        "bench: {} pair(s), {} not (fully) measured; reports in {}",
        report.pairs.len(),
        failed,
        dir.display()
    );
    Ok(if failed == 0 { exit::OK } else { exit::RED })
}

/// bench.json, bench.md and svg/<op>-heatmap.svg, svg/<op>-bars.svg.
fn write(dir: &Path, r: &BenchReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("svg"))?;
    std::fs::write(dir.join("bench.json"), serde_json::to_string_pretty(r).expect("json"))?;
    std::fs::write(dir.join("bench.md"), bench::render::markdown(r))?;
    for &op in &r.settings.ops {
        std::fs::write(
            dir.join(format!("svg/{}-heatmap.svg", op.name())),
            bench::svg::heatmap(r, op),
        )?;
        std::fs::write(dir.join(format!("svg/{}-bars.svg", op.name())), bench::svg::bars(r, op))?;
    }
    Ok(())
}

fn pair_line(p: &Pair, s: &Settings) -> String {
    let ops: Vec<String> = s
        .ops
        .iter()
        .filter_map(|op| {
            let t = p.ops.get(op)?.throughput.as_ref()?;
            Some(format!("{} {}", op.name(), bench::render::rate(t.median)))
        })
        .collect();
    let mut line = format!("{:>10} → {:<10} {}", p.client, p.server, ops.join(" · "));
    if let Some(e) = &p.error {
        line.push_str(&format!("  NOT MEASURED: {}", e.lines().next().unwrap_or_default()));
    }
    line
}

fn anchor_line(a: &Anchor) -> String {
    let ops: Vec<String> = a
        .ops
        .iter()
        .filter_map(|(op, o)| {
            Some(format!(
                "{} {}",
                op.name(),
                bench::render::rate(o.throughput.as_ref()?.median)
            ))
        })
        .collect();
    let mut line = format!("{:>10} → {:<10} {}", "ghz", a.server, ops.join(" · "));
    if let Some(e) = &a.error {
        line.push_str(&format!("  NOT MEASURED: {}", e.lines().next().unwrap_or_default()));
    }
    line
}

/// One client against the running server: its script, its lines.
async fn measure(
    runner: &Runner,
    client: &str,
    server: &str,
    conn: &Connection,
    s: &Settings,
    cpu: Option<usize>,
) -> Pair {
    let mut pair = Pair {
        client: client.into(),
        server: server.into(),
        ops: BTreeMap::new(),
        error: None,
    };
    let mut repeats: BTreeMap<Op, Vec<Counts>> = BTreeMap::new();
    let result = drive(runner, client, conn, s, cpu, &mut repeats).await;
    let mut wrong_load = Vec::new();
    for (op, counts) in &repeats {
        match counts.iter().find_map(|c| bench::check_load(s.concurrency, c).err()) {
            Some(why) => wrong_load.push(format!("{}: {why}", op.name())),
            None => {
                pair.ops.insert(*op, bench::summarize(*op, counts));
            }
        }
    }
    if let Err(e) = result {
        pair.error = Some(e);
    } else if !wrong_load.is_empty() {
        pair.error = Some(wrong_load.join("; "));
    } else if let Some((op, o)) = pair.ops.iter().find(|(_, o)| o.calls == 0) {
        let why = o.first_error.as_ref().map(|e| format!("{} {}", e.code, e.message));
        pair.error = Some(format!("{}: no call ended OK ({})", op.name(), why.unwrap_or_default()));
    }
    pair
}

/// Runs the client's script and collects the measured repeats; an error
/// says what went wrong (with the client's stderr).
async fn drive(
    runner: &Runner,
    client: &str,
    conn: &Connection,
    s: &Settings,
    cpu: Option<usize>,
    repeats: &mut BTreeMap<Op, Vec<Counts>>,
) -> Result<(), String> {
    let m = &runner.matrix;
    let lang = m.language(client)?;
    let mut argv = runner.argv(&lang.client);
    argv.extend(conn.options());
    argv.push("script".into());
    let steps = bench::script(client, s);
    let mut proc = process::spawn_on(&argv, &lang.folder, cpu, &[]).map_err(|e| e.to_string())?;
    let mut stdin = proc.stdin.take().expect("piped");
    let mut text = String::new();
    for st in &steps {
        text.push_str(&serde_json::to_string(st).expect("json"));
        text.push('\n');
    }
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(text.as_bytes()).await;
        drop(stdin); // the client ends after its last step
    });
    let mut lines = BufReader::new(proc.stdout.take().expect("piped")).lines();
    let mut startup = Duration::from_millis(m.run.client_startup_ms);
    let grace = Duration::from_millis(m.run.step_grace_ms + s.call_timeout_ms);
    let outcome: Result<(), String> = async {
        for st in &steps {
            let load = st.bench.map(|l| l.duration_ms).unwrap_or(0);
            let budget = startup + grace + Duration::from_millis(load);
            startup = Duration::ZERO;
            loop {
                let line = match tokio::time::timeout(budget, lines.next_line()).await {
                    Ok(Ok(Some(l))) => l,
                    Ok(Ok(None)) | Ok(Err(_)) => return Err(format!("the client ended before step {}", st.id)),
                    Err(_) => {
                        return Err(format!(
                            "no line for step {} within {} s (killed)",
                            st.id,
                            budget.as_secs()
                        ))
                    }
                };
                if st.bench.is_none() {
                    let l = Line::parse(&line).map_err(|e| format!("step {}: {e}: {:.200}", st.id, line))?;
                    match l.status {
                        None => continue, // the Batch summary
                        Some(Status { code, .. }) if code == "OK" => break,
                        Some(Status { code, message }) => {
                            return Err(format!("the set-up Batch ended {code}: {message}"));
                        }
                    }
                }
                let b = BenchLine::parse(&line).map_err(|e| format!("step {}: {e}: {:.200}", st.id, line))?;
                if b.id != st.id {
                    return Err(format!("expected the line of step {}, got one of {}", st.id, b.id));
                }
                if let Some((op, Some(_))) = bench::parse_id(&b.id) {
                    repeats.entry(op).or_default().push(b.bench);
                }
                break;
            }
        }
        Ok(())
    }
    .await;
    writer.abort();
    let status = match outcome {
        Ok(()) => proc.wait_for(Duration::from_secs(5)).await,
        Err(_) => None,
    };
    if status.is_none() {
        proc.kill().await;
    }
    proc.drain_stderr().await;
    outcome.map_err(|e| {
        let tail = proc.stderr_tail();
        let tail = tail.trim();
        match tail.is_empty() {
            true => e,
            false => format!(
                "{e}; stderr: {}",
                tail.chars()
                    .rev()
                    .take(600)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<String>()
            ),
        }
    })
}

/// ghz against the server: Get and Put, the same load as the clients.
async fn anchor(
    ghz: &Path,
    root: &Path,
    server: &str,
    conn: &Connection,
    s: &Settings,
    cpu: Option<usize>,
    dir: &Path,
) -> Anchor {
    use base64::Engine as _;
    let mut a = Anchor {
        server: server.into(),
        tool: format!("ghz ({GHZ})"),
        ops: BTreeMap::new(),
        error: None,
    };
    let work = dir.join("ghz").join(server);
    if let Err(e) = std::fs::create_dir_all(&work) {
        a.error = Some(format!("{}: {e}", work.display()));
        return a;
    }
    let value = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; s.payload]);
    let data = |key: &str, with_value: bool| match with_value {
        true => serde_json::json!({"key": key, "value": value}),
        false => serde_json::json!({"key": key}),
    };
    let mut base = vec![
        ghz.to_string_lossy().into_owned(),
        "--proto".into(),
        root.join("proto/stock.proto").to_string_lossy().into_owned(),
        "--import-paths".into(),
        root.join("proto").to_string_lossy().into_owned(),
        "--connections".into(),
        "1".into(),
        "-t".into(),
        format!("{}ms", s.call_timeout_ms),
        "-O".into(),
        "json".into(),
    ];
    if cpu.is_some() {
        base.extend(["--cpus".into(), "1".into()]);
    }
    match conn.tls_mode {
        TlsMode::None => base.push("--insecure".into()),
        mode => {
            if let Some(ca) = &conn.ca_file {
                base.extend(["--cacert".into(), ca.to_string_lossy().into_owned()]);
            }
            if mode == TlsMode::Mtls {
                for (flag, f) in [("--cert", &conn.cert_file), ("--key", &conn.key_file)] {
                    if let Some(f) = f {
                        base.extend([flag.into(), f.to_string_lossy().into_owned()]);
                    }
                }
            }
            base.extend([
                "--cname".into(),
                conn.server_name.clone().unwrap_or_else(|| "localhost".into()),
            ]);
        }
    }
    base.push(conn.server.clone());
    let run = |name: String, call: &str, data: serde_json::Value, load: Vec<String>| {
        let mut argv = base.clone();
        let data_file = work.join(format!("{name}.data.json"));
        let out = work.join(format!("{name}.json"));
        argv.pop();
        argv.extend(["--call".into(), format!("stock.v1.Stock/{call}")]);
        argv.extend(["-D".into(), data_file.to_string_lossy().into_owned()]);
        argv.extend(["-o".into(), out.to_string_lossy().into_owned()]);
        argv.extend(load);
        argv.push(conn.server.clone());
        let log = work.join(format!("{name}.log"));
        let limit = Duration::from_millis(s.duration_ms.max(s.warmup_ms) + s.call_timeout_ms + 30_000);
        async move {
            std::fs::write(&data_file, data.to_string()).map_err(|e| format!("{}: {e}", data_file.display()))?;
            match process::run_logged_on(&argv, root, &log, limit, cpu).await {
                Ok(st) if st.success() => {}
                Ok(st) => return Err(format!("ghz exited {st}: {}", tail(&log))),
                Err(e) => return Err(format!("ghz: {e}")),
            }
            let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            // It lists every call (megabytes): keep only what it adds up to.
            let _ = std::fs::remove_file(&out);
            ghz_counts(&text)
        }
    };
    let load = |ms: u64| vec!["-c".into(), s.concurrency.to_string(), "-z".into(), format!("{ms}ms")];
    // The key Get reads.
    let once = vec!["-c".into(), "1".into(), "-n".into(), "1".into()];
    if let Err(e) = run("setup".into(), "Put", data("bench/ghz/get", true), once).await {
        a.error = Some(format!("set-up Put: {e}"));
        return a;
    }
    for &op in s.ops.iter().filter(|o| o.unary()) {
        let (call, d) = match op {
            Op::Get => ("Get", data("bench/ghz/get", false)),
            _ => ("Put", data("bench/ghz/put", true)),
        };
        if let Err(e) = run(format!("warmup-{}", op.name()), call, d.clone(), load(s.warmup_ms)).await {
            a.error = Some(format!("{}: {e}", op.name()));
            continue;
        }
        let mut runs = Vec::new();
        for r in 1..=s.repeat {
            match run(format!("{}-{r}", op.name()), call, d.clone(), load(s.duration_ms)).await {
                Ok(c) => runs.push(c),
                Err(e) => {
                    a.error = Some(format!("{}: {e}", op.name()));
                    break;
                }
            }
        }
        if !runs.is_empty() {
            a.ops.insert(op, ghz_result(op, &runs));
        }
    }
    a
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" ⏎ ")
}

/// One ghz run: OK calls per second, its percentiles (µs), errors.
#[derive(Debug, Clone, PartialEq)]
pub struct GhzRun {
    pub ok: u64,
    pub errors: u64,
    pub rate: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub first_error: Option<String>,
}

/// How ghz reports the calls its own stop at the end of a timed run cut off.
const STOPPED_BY_GHZ: [&str; 3] = [
    "use of closed network connection",
    "context canceled",
    "the client connection is closing",
];

/// Reads ghz's JSON report (`-O json`): times are in nanoseconds.
pub fn ghz_counts(text: &str) -> Result<GhzRun, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("ghz report is not JSON: {e}"))?;
    let count = v["count"].as_u64().ok_or("ghz report has no `count`")?;
    let total_ns = v["total"].as_f64().ok_or("ghz report has no `total`")?;
    let ok = v["statusCodeDistribution"]["OK"].as_u64().unwrap_or(0);
    let pct = |p: u64| -> f64 {
        v["latencyDistribution"]
            .as_array()
            .and_then(|l| l.iter().find(|d| d["percentage"].as_u64() == Some(p)))
            .and_then(|d| d["latency"].as_f64())
            .unwrap_or(0.0)
            / 1000.0
    };
    // ghz ends a timed run by closing its connection: the calls in flight
    // then fail on its side. They are its own stop, not the server's errors.
    let stopped = |m: &str| STOPPED_BY_GHZ.iter().any(|p| m.contains(p));
    let errors = v["errorDistribution"].as_object().cloned().unwrap_or_default();
    let cut: u64 = errors
        .iter()
        .filter(|(m, _)| stopped(m))
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    let first_error = errors.keys().find(|m| !stopped(m)).cloned();
    Ok(GhzRun {
        ok,
        errors: count.saturating_sub(ok).saturating_sub(cut),
        rate: if total_ns > 0.0 {
            ok as f64 / (total_ns / 1e9)
        } else {
            0.0
        },
        p50: pct(50),
        p90: pct(90),
        p99: pct(99),
        max: v["slowest"].as_f64().unwrap_or(0.0) / 1000.0,
        first_error,
    })
}

/// ghz's repeats as one result: throughput per repeat, the median of each
/// percentile, the largest maximum.
pub fn ghz_result(op: Op, runs: &[GhzRun]) -> OpResult {
    let med = |f: fn(&GhzRun) -> f64| {
        Spread::of(runs.iter().map(f).collect())
            .map(|s| s.median)
            .unwrap_or(0.0)
    };
    let calls: u64 = runs.iter().map(|r| r.ok).sum();
    OpResult {
        unit: op.unit().into(),
        throughput: Spread::of(runs.iter().map(|r| r.rate).collect()),
        latency_us: (calls > 0).then(|| Percentiles {
            p50: med(|r| r.p50),
            p90: med(|r| r.p90),
            p99: med(|r| r.p99),
            max: runs.iter().map(|r| r.max).fold(0.0, f64::max),
        }),
        calls,
        errors: runs.iter().map(|r| r.errors).sum(),
        first_error: runs.iter().find_map(|r| r.first_error.clone()).map(|message| Status {
            code: "ERROR".into(),
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghz_reports_are_read_as_ok_calls_per_second_and_microseconds() {
        let text = r#"{"count":1003,"total":500000000,"average":400000,"fastest":100000,"slowest":9000000,
            "rps":2000,"statusCodeDistribution":{"OK":990,"NotFound":10,"Unavailable":3},"errorDistribution":{"rpc error: code = NotFound":10,
            "rpc error: code = Unavailable desc = error reading from server: read tcp: use of closed network connection":3},
            "latencyDistribution":[{"percentage":50,"latency":300000},{"percentage":90,"latency":700000},{"percentage":99,"latency":2000000}]}"#;
        let r = ghz_counts(text).unwrap();
        assert_eq!((r.ok, r.errors), (990, 10));
        assert!((r.rate - 1980.0).abs() < 1e-9);
        assert_eq!((r.p50, r.p90, r.p99, r.max), (300.0, 700.0, 2000.0, 9000.0));
        assert!(r.first_error.as_deref().unwrap().contains("NotFound"));
        let o = ghz_result(
            Op::Get,
            &[
                r.clone(),
                GhzRun {
                    rate: 2200.0,
                    p99: 1000.0,
                    ..r
                },
            ],
        );
        assert_eq!(o.throughput.unwrap().median, 2090.0);
        assert_eq!(o.latency_us.unwrap().p99, 1500.0);
        assert!(ghz_counts("{}").is_err());
    }
}
