//! The request hooks as the faults that bend them leave them: the service
//! then reads the bent headers as it reads any.
use super::WireFaults;
use http::{HeaderMap, HeaderValue};

/// `x-stock-delay-ms` cut to whole seconds (`delay-in-whole-seconds`), or
/// gone when the call is to fail (`fail-before-delay`).
pub(super) fn delay(h: &mut HeaderMap, faults: WireFaults) {
    if faults.fail_before_delay && h.contains_key("x-stock-fail") {
        h.remove("x-stock-delay-ms");
    }
    if faults.delay_in_whole_seconds {
        let ms = h
            .get("x-stock-delay-ms")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(ms) = ms {
            h.insert("x-stock-delay-ms", HeaderValue::from(ms / 1000 * 1000));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn the_delay_is_cut_to_seconds_or_skipped_before_a_fail() {
        let whole = WireFaults {
            delay_in_whole_seconds: true,
            ..Default::default()
        };
        let mut h = hooks(&[("x-stock-delay-ms", "1300")]);
        delay(&mut h, whole);
        assert_eq!(h["x-stock-delay-ms"], "1000");
        let first = WireFaults {
            fail_before_delay: true,
            ..Default::default()
        };
        let mut h = hooks(&[("x-stock-delay-ms", "300")]);
        delay(&mut h, first);
        assert_eq!(h["x-stock-delay-ms"], "300", "no fail: the delay stays");
        let mut h = hooks(&[("x-stock-delay-ms", "300"), ("x-stock-fail", "UNAVAILABLE")]);
        delay(&mut h, first);
        assert!(!h.contains_key("x-stock-delay-ms"));
        delay(&mut h, WireFaults::default());
    }
}
