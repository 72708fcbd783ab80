//! One client's bench script against a running server (`measure`), and the
//! server's own stack name (`stack_of`).
use crate::bench::{self, Op, Pair, Settings};
use crate::contract::bench::{BenchLine, Counts};
use crate::contract::script::{Connection, Line, Status};
use crate::exec::process;
use crate::runner::Runner;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The server's own `Inventory.stack`, if it answers.
pub async fn stack_of(conn: &Connection) -> Option<String> {
    use crate::contract::proto::stock::stock_client::StockClient;
    let ch = crate::contract::channel::channel(conn, Default::default()).ok()?;
    let mut client = StockClient::new(ch);
    let call = client.inventory(crate::contract::proto::stock::Empty {});
    let r = tokio::time::timeout(Duration::from_secs(5), call).await.ok()?.ok()?;
    Some(r.into_inner().stack).filter(|s| !s.is_empty())
}

/// One client against the running server: its script, its lines.
pub async fn measure(
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
