//! What the clients' bench lines add up to: throughput per repeat and the
//! spread of the repeats, latency percentiles from the merged buckets, and
//! whether a client kept the load it was asked for.
use super::Op;
use crate::contract::bench::{middle, Counts};
use crate::contract::script::Status;
use serde::{Deserialize, Serialize};

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
