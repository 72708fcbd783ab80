//! `stock-matrix bench`, the pure part: the script steps of each operation,
//! and what the clients' bench lines add up to (throughput per repeat, the
//! spread of the repeats, latency percentiles from the merged buckets), and
//! a comparison with an earlier `bench.json`. Starting the processes lives in
//! `app::bench`; rendering in `render` and `svg`.
pub mod ghz;
pub mod render;
pub mod svg;

use crate::contract::bench::{middle, Counts, Load};
use crate::contract::script::{Fill, Status, Step};
use crate::model::tls::TlsMode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An operation the bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Get,
    Put,
    Monitor,
    Batch,
    Trade,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Get, Op::Put, Op::Monitor, Op::Batch, Op::Trade];

    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Monitor => "monitor",
            Op::Batch => "batch",
            Op::Trade => "trade",
        }
    }

    /// What its throughput counts.
    pub fn unit(self) -> &'static str {
        match self {
            Op::Get | Op::Put => "calls/s",
            Op::Monitor => "messages/s",
            Op::Batch => "items/s",
            Op::Trade => "round trips/s",
        }
    }

    /// A unary call, which ghz can load as well.
    pub fn unary(self) -> bool {
        matches!(self, Op::Get | Op::Put)
    }

    fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }
}

/// The load of a bench run; the same for every pair and for ghz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub duration_ms: u64,
    pub warmup_ms: u64,
    pub concurrency: u32,
    /// Bytes of each value that is put, batched or read.
    pub payload: usize,
    pub repeat: u32,
    /// Messages per streaming call: events per Monitor, items per Batch, orders per Trade.
    pub stream_len: usize,
    /// Deadline of each call.
    pub call_timeout_ms: u64,
    pub tls: TlsMode,
    pub ops: Vec<Op>,
}

/// Values of `payload` bytes at or above this go to the client as `fill`.
const FILL_FROM: usize = 1024;

/// The id of a step: `warmup/get`, or `get/2` for the second repeat.
pub fn step_id(op: Op, repeat: Option<u32>) -> String {
    match repeat {
        None => format!("warmup/{}", op.name()),
        Some(r) => format!("{}/{r}", op.name()),
    }
}

/// The operation and repeat (None: the warm-up) of a step id.
pub fn parse_id(id: &str) -> Option<(Op, Option<u32>)> {
    let (a, b) = id.split_once('/')?;
    match a {
        "warmup" => Some((Op::parse(b)?, None)),
        _ => Some((Op::parse(a)?, Some(b.parse().ok()?))),
    }
}

/// Messages with a `value` of `payload` bytes: the JSON and the `fill`s.
fn with_values(mut messages: Vec<serde_json::Value>, payload: usize) -> (Vec<serde_json::Value>, Vec<Fill>) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    if payload >= FILL_FROM {
        let fills = (0..messages.len())
            .map(|request| Fill {
                request,
                repeat: b64.encode(b"x"),
                times: payload as u64,
            })
            .collect();
        return (messages, fills);
    }
    let value = b64.encode(vec![b'x'; payload]);
    for m in &mut messages {
        m["value"] = value.clone().into();
    }
    (messages, Vec::new())
}

fn step(id: String, method: &str, s: &Settings) -> Step {
    Step {
        id,
        method: method.into(),
        request: None,
        requests: None,
        metadata: BTreeMap::new(),
        timeout_ms: Some(s.call_timeout_ms),
        compression: None,
        after_first: vec![],
        cancel_after_ms: None,
        copies: None,
        read_pause_ms: None,
        connection: None,
        lane: 0,
        fill: vec![],
        bench: None,
        rude: None,
    }
}

/// The step of `op` for `client` (without its load).
fn op_step(op: Op, client: &str, s: &Settings, id: String) -> Step {
    let mut st = step(id, "", s);
    match op {
        Op::Get => {
            st.method = "Get".into();
            st.request = Some(serde_json::json!({"key": format!("bench/{client}/get")}));
        }
        Op::Put => {
            st.method = "Put".into();
            let (mut msgs, fill) = with_values(
                vec![serde_json::json!({"key": format!("bench/{client}/put")})],
                s.payload,
            );
            st.request = msgs.pop();
            st.fill = fill;
        }
        Op::Monitor => {
            st.method = "Monitor".into();
            st.request = Some(serde_json::json!({
                "pattern": format!("bench/{client}/m/*"),
                "maxEvents": s.stream_len,
                "includeExisting": true,
            }));
        }
        Op::Batch => {
            st.method = "Batch".into();
            let items = (0..s.stream_len)
                .map(|i| serde_json::json!({"key": format!("bench/{client}/b/{i:04}")}))
                .collect();
            let (msgs, fill) = with_values(items, s.payload);
            st.requests = Some(msgs);
            st.fill = fill;
        }
        Op::Trade => {
            st.method = "Trade".into();
            let orders = (0..s.stream_len)
                .map(|i| serde_json::json!({"orderId": i.to_string(), "symbol": "BENCH", "side": "BUY", "quantity": 1, "priceCents": 100}))
                .collect();
            st.requests = Some(orders);
        }
    }
    st
}

/// A pair's script: one Batch that writes the keys Get and Monitor read,
/// then for each operation a warm-up and the measured repeats.
pub fn script(client: &str, s: &Settings) -> Vec<Step> {
    let mut keys: Vec<serde_json::Value> = vec![serde_json::json!({"key": format!("bench/{client}/get")})];
    keys.extend((0..s.stream_len).map(|i| serde_json::json!({"key": format!("bench/{client}/m/{i:04}")})));
    let (msgs, fill) = with_values(keys, s.payload);
    let mut setup = step("setup".into(), "Batch", s);
    setup.requests = Some(msgs);
    setup.fill = fill;
    let mut steps = vec![setup];
    for &op in &s.ops {
        let runs = std::iter::once((None, s.warmup_ms)).chain((1..=s.repeat).map(|r| (Some(r), s.duration_ms)));
        for (repeat, duration_ms) in runs {
            let mut st = op_step(op, client, s, step_id(op, repeat));
            st.bench = Some(Load {
                duration_ms,
                concurrency: s.concurrency,
            });
            steps.push(st);
        }
    }
    steps
}

/// The median, smallest and largest of the repeats, and each one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub values: Vec<f64>,
}

impl Spread {
    pub fn of(values: Vec<f64>) -> Option<Spread> {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            values,
        })
    }

    /// (max − min) ÷ median: how far apart the repeats are.
    pub fn relative(&self) -> f64 {
        if self.median > 0.0 {
            (self.max - self.min) / self.median
        } else {
            0.0
        }
    }
}

/// Latency percentiles of the calls that ended OK, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// One operation of one pair (or of ghz against a server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpResult {
    pub unit: String,
    /// Per repeat: messages (or calls) of OK calls per second.
    pub throughput: Option<Spread>,
    pub latency_us: Option<Percentiles>,
    pub calls: u64,
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<Status>,
}

/// Adds up the measured repeats of one operation: throughput per repeat,
/// latency percentiles over every OK call of every repeat (hdrhistogram,
/// each bucket counted at its middle: the buckets are about 6% wide).
pub fn summarize(op: Op, repeats: &[Counts]) -> OpResult {
    let throughput = Spread::of(
        repeats
            .iter()
            .filter(|c| c.elapsed_ms > 0.0)
            .map(|c| c.messages as f64 * 1000.0 / c.elapsed_ms)
            .collect(),
    );
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << 42, 3).expect("valid bounds");
    for (b, n) in repeats.iter().flat_map(|c| c.histogram.iter()) {
        let _ = h.record_n(middle(*b).clamp(1, 1 << 42), *n);
    }
    let latency_us = (!h.is_empty()).then(|| Percentiles {
        p50: h.value_at_quantile(0.50) as f64,
        p90: h.value_at_quantile(0.90) as f64,
        p99: h.value_at_quantile(0.99) as f64,
        max: h.max() as f64,
    });
    OpResult {
        unit: op.unit().into(),
        throughput,
        latency_us,
        calls: repeats.iter().map(|c| c.calls).sum(),
        errors: repeats.iter().map(|c| c.errors).sum(),
        first_error: repeats.iter().find_map(|c| c.first_error.clone()),
    }
}

/// Calls in flight on average over a bench step, by Little's law: the
/// summed latency of its OK calls (each at its bucket's middle) ÷ its time.
pub fn in_flight(c: &Counts) -> f64 {
    let busy_us: f64 = c.histogram.iter().map(|(b, n)| middle(*b) as f64 * *n as f64).sum();
    if c.elapsed_ms > 0.0 {
        busy_us / (c.elapsed_ms * 1000.0)
    } else {
        0.0
    }
}

/// Whether a client kept the load it was asked for: `concurrency` calls in
/// flight, by its own latencies (Little's law). Only judged on a step of at
/// least ten calls per worker and no failed call (a failed call's time is
/// not in the histogram). A client that runs fewer calls at once, or counts
/// its latencies in another unit, gives numbers that are not this load's.
pub fn check_load(concurrency: u32, c: &Counts) -> Result<(), String> {
    if c.errors > 0 || c.calls < 10 * u64::from(concurrency) {
        return Ok(());
    }
    let ratio = in_flight(c) / f64::from(concurrency);
    if (0.5..=1.5).contains(&ratio) {
        return Ok(());
    }
    Err(format!(
        "by its own latencies (Little's law) the client kept {:.2} calls in flight on average, not {concurrency}: it runs fewer calls at once, or counts latencies in another unit than µs",
        in_flight(c)
    ))
}

/// One client against one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub client: String,
    pub server: String,
    pub ops: BTreeMap<Op, OpResult>,
    /// Why the pair (or some of its operations) could not be measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// ghz against one server: the dedicated load generator beside the clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    pub server: String,
    pub tool: String,
    pub ops: BTreeMap<Op, OpResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where and how the numbers were taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub started: String,
    /// The whole run, builds included, in seconds.
    #[serde(default)]
    pub duration_s: f64,
    pub command: String,
    pub commit: Option<String>,
    /// CPUs this process may use.
    pub cores: usize,
    /// How servers and clients were placed on the CPUs (or why not).
    pub placement: String,
    /// Language → its stack (the server's own `Inventory.stack` when it answered).
    pub stacks: BTreeMap<String, String>,
}

/// A throughput that moved beyond the noise band since the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `client → server`, or `ghz → server`.
    pub pair: String,
    pub op: Op,
    pub before: f64,
    pub after: f64,
    /// after ÷ before − 1.
    pub change: f64,
    /// The larger relative spread of the two runs' repeats (at least `MIN_BAND`).
    pub band: f64,
}

/// Compared with an earlier run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub file: String,
    pub started: String,
    pub changes: Vec<Change>,
    /// Pairs and operations measured in both runs.
    pub compared: usize,
}

/// Everything a bench run measured (`bench.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub settings: Settings,
    pub environment: Environment,
    pub pairs: Vec<Pair>,
    pub anchors: Vec<Anchor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

/// No change under 5% is flagged, however close the repeats.
pub const MIN_BAND: f64 = 0.05;

/// Throughputs by `pair` label and operation.
fn medians(r: &BenchReport) -> BTreeMap<(String, Op), &Spread> {
    let pairs = r.pairs.iter().flat_map(|p| {
        p.ops
            .iter()
            .map(move |(op, o)| (format!("{} → {}", p.client, p.server), *op, o))
    });
    let anchors = r
        .anchors
        .iter()
        .flat_map(|a| a.ops.iter().map(move |(op, o)| (format!("ghz → {}", a.server), *op, o)));
    pairs
        .chain(anchors)
        .filter_map(|(label, op, o)| Some(((label, op), o.throughput.as_ref()?)))
        .collect()
}

/// The throughputs that changed beyond the noise band: the larger relative
/// spread of the two runs' repeats, and at least `MIN_BAND`.
pub fn compare(file: &str, before: &BenchReport, after: &BenchReport) -> Baseline {
    let old = medians(before);
    let new = medians(after);
    let mut compared = 0;
    let mut changes = Vec::new();
    for (key, now) in &new {
        let Some(then) = old.get(key) else { continue };
        if then.median <= 0.0 {
            continue;
        }
        compared += 1;
        let change = now.median / then.median - 1.0;
        let band = now.relative().max(then.relative()).max(MIN_BAND);
        if change.abs() > band {
            changes.push(Change {
                pair: key.0.clone(),
                op: key.1,
                before: then.median,
                after: now.median,
                change,
                band,
            });
        }
    }
    changes.sort_by(|a, b| b.change.abs().total_cmp(&a.change.abs()));
    Baseline {
        file: file.into(),
        started: before.environment.started.clone(),
        changes,
        compared,
    }
}

#[cfg(test)]
mod tests;
