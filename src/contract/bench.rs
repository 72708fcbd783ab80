//! The contract's `bench` step (CONTRACT.md, "Bench steps"): the load a step
//! asks for, the one line a client prints for it, and the log-scale latency
//! buckets every language counts in.
use super::script::Status;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A step's `bench` object: C calls in flight for D ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    pub duration_ms: u64,
    pub concurrency: u32,
}

/// What a client reports for a bench step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub calls: u64,
    pub errors: u64,
    pub messages: u64,
    pub elapsed_ms: f64,
    /// Non-empty buckets, ascending: `[bucket, count]`.
    pub histogram: Vec<(u32, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<Status>,
}

/// The output line of a bench step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchLine {
    pub id: String,
    pub bench: Counts,
}

impl BenchLine {
    /// Parses a bench line and checks what the contract promises of it.
    pub fn parse(text: &str) -> Result<BenchLine, String> {
        let line: BenchLine = serde_json::from_str(text).map_err(|e| format!("not a bench line ({e})"))?;
        let c = &line.bench;
        if !c.histogram.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(format!("{}: histogram buckets are not ascending", line.id));
        }
        let counted: u64 = c.histogram.iter().map(|(_, n)| n).sum();
        if counted != c.calls {
            return Err(format!(
                "{}: the histogram counts {counted} calls, `calls` says {}",
                line.id, c.calls
            ));
        }
        if !(c.elapsed_ms.is_finite() && c.elapsed_ms >= 0.0) {
            return Err(format!("{}: `elapsed_ms` {} is not a duration", line.id, c.elapsed_ms));
        }
        Ok(line)
    }
}

/// The bucket of a latency of `micros` whole microseconds: the value itself
/// below 32, then 16 buckets per power of two.
pub fn bucket(micros: u64) -> u32 {
    let n = 64 - micros.leading_zeros();
    if n <= 5 {
        micros as u32
    } else {
        16 * (n - 4) + ((micros >> (n - 5)) & 15) as u32
    }
}

/// The latencies bucket `b` holds: `[low, high)` in microseconds.
pub fn bounds(b: u32) -> (u64, u64) {
    if b < 32 {
        return (u64::from(b), u64::from(b) + 1);
    }
    let shift = b / 16 - 1;
    let low = (16 + u64::from(b % 16)) << shift;
    (low, low + (1 << shift))
}

/// The latency a bucket stands for in sums and percentiles: its middle
/// (its one value for a bucket one µs wide).
pub fn middle(b: u32) -> u64 {
    let (lo, hi) = bounds(b);
    lo + (hi - lo) / 2
}

/// Counts latencies into buckets (the reference client's side).
#[derive(Debug, Default, Clone)]
pub struct Buckets(BTreeMap<u32, u64>);

impl Buckets {
    pub fn record(&mut self, micros: u64) {
        *self.0.entry(bucket(micros)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Buckets) {
        for (b, n) in &other.0 {
            *self.0.entry(*b).or_default() += n;
        }
    }

    pub fn list(&self) -> Vec<(u32, u64)> {
        self.0.iter().map(|(b, n)| (*b, *n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_contract_examples() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(31), 31);
        assert_eq!((bucket(32), bucket(33), bucket(34)), (32, 32, 33));
        assert_eq!(
            (bucket(62), bucket(63), bucket(64), bucket(67), bucket(68)),
            (47, 47, 48, 48, 49)
        );
        assert_eq!(bounds(47), (62, 64));
        assert_eq!(bounds(48), (64, 68));
    }

    #[test]
    fn every_latency_falls_inside_its_bucket_and_buckets_are_contiguous() {
        for v in (0..5000u64).chain([1 << 20, (1 << 33) + 12345, u64::from(u32::MAX) * 7]) {
            let (lo, hi) = bounds(bucket(v));
            assert!(lo <= v && v < hi, "{v} outside {lo}..{hi}");
        }
        for b in 0..600 {
            assert_eq!(bounds(b).1, bounds(b + 1).0, "gap after bucket {b}");
            let (lo, hi) = bounds(b);
            assert!(lo <= middle(b) && middle(b) < hi, "middle of {b} outside {lo}..{hi}");
        }
        // A bucket one µs wide is its value; a wider one, its middle.
        assert_eq!((middle(5), middle(31), middle(32), middle(48)), (5, 31, 33, 66));
    }

    #[test]
    fn bench_lines_whose_histogram_disagrees_with_calls_are_refused() {
        let ok =
            r#"{"id":"g","bench":{"calls":3,"errors":0,"messages":3,"elapsed_ms":10.5,"histogram":[[40,1],[41,2]]}}"#;
        assert_eq!(BenchLine::parse(ok).unwrap().bench.calls, 3);
        let short = ok.replace("[41,2]", "[41,1]");
        assert!(BenchLine::parse(&short).unwrap_err().contains("counts 2 calls"));
        let unordered = ok.replace("[[40,1],[41,2]]", "[[41,2],[40,1]]");
        assert!(BenchLine::parse(&unordered).unwrap_err().contains("ascending"));
        assert!(BenchLine::parse(r#"{"id":"g","status":{"code":"OK"}}"#).is_err());
    }
}
