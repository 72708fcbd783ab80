//! `stock-matrix bench`: for each server, one server process; against it,
//! each client runs its `bench` steps in its own process, then ghz loads
//! the same server as an anchor; the lines are added up (`bench`) and
//! written as bench.json, bench.md and SVG charts. Servers go on one CPU,
//! the load (a client, or ghz) on another, when the machine has two.
use crate::app::cli::BenchArgs;
use crate::app::exit::{self, runner as setup_err, usage, Exit};
use crate::app::toolchain;
use crate::bench::{self, Anchor, BenchReport, Environment, Op, Pair, Settings};
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
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

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
        false => super::ghz::install(&m, &dir.join("ghz-install.log")).await,
    };
    let mut stacks: BTreeMap<String, String> = langs
        .iter()
        .map(|l| (l.clone(), m.languages[l].stack.clone()))
        .collect();
    let runner = Runner::standalone(m.clone(), KeyType::EcP256, certs.clone(), server_cpu).map_err(setup_err)?;
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
            net: None,
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
                Ok(exe) => super::ghz::anchor(exe, &m.root, server, &conn, &settings, load_cpu, &dir).await,
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
