//! `stock-matrix bench`, the pure part: the script steps of each operation
//! (here), what the clients' bench lines add up to (`stats`: throughput per
//! repeat, the spread of the repeats, latency percentiles from the merged
//! buckets), and `bench.json` with its comparison with an earlier one
//! (`report`). Starting the processes lives in `app::bench`; rendering in
//! `render` and `svg`.
pub mod ghz;
pub mod render;
mod report;
mod stats;
pub mod svg;

pub use report::{compare, Anchor, BenchReport, Environment, Pair, MIN_BAND};
pub use stats::{check_load, summarize, OpResult, Percentiles, Spread};

use crate::contract::bench::Load;
use crate::contract::script::{Fill, Step};
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
        cancel_after_messages: None,
        copies: None,
        read_pause_ms: None,
        connection: None,
        lane: 0,
        fill: vec![],
        bench: None,
        rude: None,
        fallback_method: None,
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

#[cfg(test)]
mod tests;
