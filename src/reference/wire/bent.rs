//! The request hooks as the faults that bend them leave them: the service
//! then reads the bent headers as it reads any.
use super::WireFaults;
use http::{HeaderMap, HeaderValue};
use std::time::Duration;

/// The request hooks as the faults leave them: `x-stock-delay-ms` cut to
/// whole seconds (`delay-in-whole-seconds`), or gone when the call is to
/// fail (`fail-before-delay`); `x-stock-fail-special` gone when a fail
/// message is given too (`fail-message-beats-special`); a hook number that
/// is not one read as 0 (`lenient-hook-numbers`).
pub(super) fn hooks(h: &mut HeaderMap, faults: WireFaults) {
    if faults.lenient_hook_numbers {
        for key in ["x-stock-delay-ms", "x-stock-fail-after", "x-stock-repeat-value"] {
            if h.contains_key(key) && number(h, key).is_none() {
                h.insert(key, HeaderValue::from(0));
            }
        }
    }
    if faults.fail_message_beats_special && h.contains_key("x-stock-fail-message") {
        h.remove("x-stock-fail-special");
    }
    if faults.fail_before_delay && h.contains_key("x-stock-fail") {
        h.remove("x-stock-delay-ms");
    }
    if faults.delay_in_whole_seconds {
        if let Some(ms) = number(h, "x-stock-delay-ms") {
            h.insert("x-stock-delay-ms", HeaderValue::from(ms / 1000 * 1000));
        }
    }
}

/// The deadline a call reports: the one it came with, or what is left once
/// its delay is over (`report-deadline-after-delay`).
pub(super) fn reported(h: &HeaderMap, left: Duration, faults: WireFaults) -> Duration {
    match (faults.report_deadline_after_delay, number(h, "x-stock-delay-ms")) {
        (true, Some(ms)) => left.saturating_sub(Duration::from_millis(ms)),
        _ => left,
    }
}

/// A hook's number, as the service reads it (spaces around it allowed).
fn number(h: &HeaderMap, key: &str) -> Option<u64> {
    h.get(key)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks_of(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
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
        let mut h = hooks_of(&[("x-stock-delay-ms", "1300")]);
        hooks(&mut h, whole);
        assert_eq!(h["x-stock-delay-ms"], "1000");
        let first = WireFaults {
            fail_before_delay: true,
            ..Default::default()
        };
        let mut h = hooks_of(&[("x-stock-delay-ms", "300")]);
        hooks(&mut h, first);
        assert_eq!(h["x-stock-delay-ms"], "300", "no fail: the delay stays");
        let mut h = hooks_of(&[("x-stock-delay-ms", "300"), ("x-stock-fail", "UNAVAILABLE")]);
        hooks(&mut h, first);
        assert!(!h.contains_key("x-stock-delay-ms"));
        hooks(&mut h, WireFaults::default());
    }

    #[test]
    fn a_fail_message_drops_the_special_message_only_under_its_fault() {
        let beats = WireFaults {
            fail_message_beats_special: true,
            ..Default::default()
        };
        let both = [("x-stock-fail-special", "true"), ("x-stock-fail-message", "mine")];
        let mut h = hooks_of(&both);
        hooks(&mut h, WireFaults::default());
        assert!(h.contains_key("x-stock-fail-special"));
        hooks(&mut h, beats);
        assert!(!h.contains_key("x-stock-fail-special"));
        let mut alone = hooks_of(&[("x-stock-fail-special", "true")]);
        hooks(&mut alone, beats);
        assert!(alone.contains_key("x-stock-fail-special"));
    }

    #[test]
    fn the_reported_deadline_loses_the_delay_only_under_its_fault() {
        let after = WireFaults {
            report_deadline_after_delay: true,
            ..Default::default()
        };
        let h = hooks_of(&[("x-stock-delay-ms", "2000")]);
        let left = Duration::from_millis(4000);
        assert_eq!(reported(&h, left, WireFaults::default()), left);
        assert_eq!(reported(&h, left, after), Duration::from_millis(2000));
        assert_eq!(reported(&hooks_of(&[]), left, after), left);
    }

    #[test]
    fn a_bad_hook_number_reads_as_zero_only_under_its_fault() {
        let lenient = WireFaults {
            lenient_hook_numbers: true,
            ..Default::default()
        };
        let mut h = hooks_of(&[("x-stock-delay-ms", "soon"), ("x-stock-fail-after", "2")]);
        hooks(&mut h, WireFaults::default());
        assert_eq!(h["x-stock-delay-ms"], "soon");
        hooks(&mut h, lenient);
        assert_eq!(h["x-stock-delay-ms"], "0");
        assert_eq!(h["x-stock-fail-after"], "2");
    }
}
