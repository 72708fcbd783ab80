//! ghz's JSON report (`-O json`) read back as the bench's numbers.
use super::{Op, OpResult, Percentiles, Spread};
use crate::contract::script::Status;

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
