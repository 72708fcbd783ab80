//! `stock-matrix bench`: for each server, one server process; against it,
//! each client runs its `bench` steps in its own process, then ghz loads
//! the same server as an anchor; the lines are added up (`bench`) and
//! written as bench.json, bench.md and SVG charts. Servers go on one CPU,
//! the load (a client, or ghz) on another, when the machine has two.
use crate::app::cli::BenchArgs;
use crate::app::exit::{self, runner as setup_err, usage, Exit};
use crate::app::toolchain;
use crate::bench::{self, Anchor, BenchReport, Environment, Op, Pair, Settings};
use crate::exec::process;
use crate::exec::run_folder;
use crate::input::cases::{Connect, ServerCert};
use crate::input::config::Matrix;
use crate::model::cell::CellKey;
use crate::model::tls::{KeyType, TlsMode};
use crate::runner::Runner;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

mod client;

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
    let settings = settings_of(a, profile.tls.first().copied())?;
    let baseline = baseline_of(a)?;
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
        false => super::ghz::install(&m, &dir.join("ghz-install.log")).await,
    };
    let mut stacks: BTreeMap<String, String> = langs
        .iter()
        .map(|l| (l.clone(), m.languages[l].stack.clone()))
        .collect();
    let runner = Runner::standalone(m.clone(), KeyType::EcP256, certs.clone(), server_cpu).map_err(setup_err)?;
    note!(
        "bench: {} client(s) × {} server(s), tls={}, {} in flight, {} B, {} × {} ms after {} ms warm-up; {placement}",
        clients.len(),
        servers.len(),
        settings.tls,
        settings.concurrency,
        settings.payload,
        settings.repeat,
        settings.duration_ms,
        settings.warmup_ms
    );
    let bench = Bench {
        m: &m,
        runner: &runner,
        clients: &clients,
        unavailable: &unavailable,
        settings: &settings,
        ghz: &ghz,
        load_cpu,
        dir: &dir,
    };
    let mut pairs = Vec::new();
    let mut anchors = Vec::new();
    for server in &servers {
        let measured = bench.server(server).await;
        pairs.extend(measured.pairs);
        anchors.extend(measured.anchor);
        if let Some(s) = measured.stack {
            stacks.insert(server.clone(), s);
        }
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

/// The load settings from the options (the TLS mode: the option's, else the
/// profile's first); a zero where a count is needed is a usage error.
fn settings_of(a: &BenchArgs, profile_tls: Option<TlsMode>) -> Result<Settings, Exit> {
    let settings = Settings {
        duration_ms: (a.duration * 1000.0).round() as u64,
        warmup_ms: (a.warmup * 1000.0).round() as u64,
        concurrency: a.concurrency,
        payload: a.payload,
        repeat: a.repeat,
        stream_len: a.stream_len,
        call_timeout_ms: 10_000,
        tls: a.tls.or(profile_tls).unwrap_or(TlsMode::None),
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
    Ok(settings)
}

/// The earlier bench.json of `--baseline`, with its file name.
fn baseline_of(a: &BenchArgs) -> Result<Option<(String, BenchReport)>, Exit> {
    let Some(f) = &a.baseline else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(f).map_err(|e| usage(format!("--baseline {}: {e}", f.display())))?;
    let r: BenchReport =
        serde_json::from_str(&text).map_err(|e| usage(format!("--baseline {}: not a bench.json: {e}", f.display())))?;
    Ok(Some((f.display().to_string(), r)))
}

/// What a bench run shares across its servers.
struct Bench<'a> {
    m: &'a Matrix,
    runner: &'a Runner,
    clients: &'a [String],
    unavailable: &'a BTreeMap<String, String>,
    settings: &'a Settings,
    ghz: &'a Result<std::path::PathBuf, String>,
    load_cpu: Option<usize>,
    dir: &'a Path,
}

/// What one server's turn measured.
struct Measured {
    pairs: Vec<Pair>,
    anchor: Option<Anchor>,
    stack: Option<String>,
}

impl Bench<'_> {
    /// One server process; each client against it in turn, then ghz.
    async fn server(&self, server: &str) -> Measured {
        let s = self.settings;
        let not_measured = |why: String| Measured {
            pairs: self
                .clients
                .iter()
                .map(|c| Pair {
                    client: c.clone(),
                    server: server.into(),
                    ops: BTreeMap::new(),
                    error: Some(why.clone()),
                })
                .collect(),
            anchor: None,
            stack: None,
        };
        if let Some(why) = self.unavailable.get(server) {
            return not_measured(format!("server {server} unavailable: {why}"));
        }
        let key = CellKey {
            client: server.into(),
            server: server.into(),
            tls: s.tls,
            key_type: KeyType::EcP256,
            net: None,
        };
        let (mut proc, addr) = match self.runner.start_server(&key, ServerCert::Normal).await {
            Ok((proc, addr, _, _)) => (proc, addr),
            Err((why, stderr)) => return not_measured(format!("server {server} did not start: {why}\n{stderr}")),
        };
        let conn = self.runner.connection(&key, &addr, Connect::Normal);
        let stack = client::stack_of(&conn).await;
        let mut pairs = Vec::new();
        for c in self.clients {
            let pair = match self.unavailable.get(c) {
                Some(why) => Pair {
                    client: c.clone(),
                    server: server.into(),
                    ops: BTreeMap::new(),
                    error: Some(format!("client {c} unavailable: {why}")),
                },
                None => client::measure(self.runner, c, server, &conn, s, self.load_cpu).await,
            };
            say!("{}", pair_line(&pair, s));
            pairs.push(pair);
        }
        let mut anchor = None;
        if s.ops.iter().any(|o| o.unary()) {
            let a = match self.ghz {
                Ok(exe) => super::ghz::anchor(exe, &self.m.root, server, &conn, s, self.load_cpu, self.dir).await,
                Err(why) => Anchor {
                    server: server.into(),
                    tool: "ghz".into(),
                    ops: BTreeMap::new(),
                    error: Some(why.clone()),
                },
            };
            if a.error.is_none() || self.ghz.is_ok() {
                say!("{}", anchor_line(&a));
            }
            anchor = Some(a);
        }
        proc.stop(Duration::from_secs(2)).await;
        Measured { pairs, anchor, stack }
    }
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
