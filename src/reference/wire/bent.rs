//! The request hooks as the faults that bend them leave them: the service
//! then reads the bent headers as it reads any.
use crate::contract::proto::{kind_at, Kind};
use http::{HeaderMap, HeaderValue};
use std::time::Duration;

/// The faults that bend the request hooks before the service reads them.
#[derive(Clone, Copy, Debug, Default)]
pub struct HookFaults {
    /// x-stock-delay-ms is cut to whole seconds (an integer division).
    pub delay_in_whole_seconds: bool,
    /// x-stock-fail skips x-stock-delay-ms (the fail hook run first).
    pub fail_before_delay: bool,
    /// x-stock-fail-message wins over x-stock-fail-special.
    pub fail_message_beats_special: bool,
    /// A hook number that is not one (x-stock-delay-ms: soon) reads as 0.
    pub lenient_hook_numbers: bool,
    /// A negative hook number reads as 0.
    pub negative_hook_numbers: bool,
    /// x-stock-fail is read case-blind, and OK as no failure.
    pub case_blind_fail_codes: bool,
    /// A unary call's x-stock-fail waits for x-stock-fail-after messages.
    pub fail_after_on_unary: bool,
    /// x-stock-deadline-ms is what is left once the delay is over.
    pub report_deadline_after_delay: bool,
    /// x-stock-watchers counts the open Monitors' distinct patterns, not
    /// the open streams.
    pub watchers_by_pattern: bool,
}

const NUMBERS: [&str; 3] = ["x-stock-delay-ms", "x-stock-fail-after", "x-stock-repeat-value"];

/// The request hooks of a call to `path` as the faults leave them:
/// `x-stock-delay-ms` cut to whole seconds (`delay-in-whole-seconds`), or
/// gone when the call is to fail (`fail-before-delay`);
/// `x-stock-fail-special` gone when a fail message is given too
/// (`fail-message-beats-special`); a hook number that is not one, or a
/// negative one, read as 0 (`lenient-hook-numbers`, `negative-hook-numbers`);
/// a fail code upper-cased, or gone when it says OK (`case-blind-fail-codes`);
/// the fail gone from a unary call with a fail-after (`fail-after-on-unary`).
pub(super) fn hooks(h: &mut HeaderMap, path: &str, faults: HookFaults) {
    if faults.lenient_hook_numbers || faults.negative_hook_numbers {
        for key in NUMBERS {
            let text = h.get(key).and_then(|v| v.to_str().ok()).map(str::trim);
            let negative = text.and_then(|t| t.parse::<i64>().ok()).is_some_and(|n| n < 0);
            let not_one = text.is_some() && number(h, key).is_none();
            if (faults.lenient_hook_numbers && not_one) || (faults.negative_hook_numbers && negative) {
                h.insert(key, HeaderValue::from(0));
            }
        }
    }
    if faults.case_blind_fail_codes {
        let code = h
            .get("x-stock-fail")
            .and_then(|v| v.to_str().ok())
            .map(str::to_uppercase);
        match code.as_deref() {
            Some("OK") => {
                h.remove("x-stock-fail");
            }
            Some(upper) => {
                if let Ok(v) = HeaderValue::from_str(upper) {
                    h.insert("x-stock-fail", v);
                }
            }
            None => {}
        }
    }
    let unary = || matches!(kind_at(path), Some(Kind::Unary));
    if faults.fail_after_on_unary && unary() && number(h, "x-stock-fail-after").is_some_and(|n| n > 0) {
        h.remove("x-stock-fail");
        h.remove("x-stock-fail-special");
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
pub(super) fn reported(h: &HeaderMap, left: Duration, faults: HookFaults) -> Duration {
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

    const PUT: &str = "/stock.v1.Stock/Put";

    fn hooks_of(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn the_delay_is_cut_to_seconds_or_skipped_before_a_fail() {
        let whole = HookFaults {
            delay_in_whole_seconds: true,
            ..Default::default()
        };
        let mut h = hooks_of(&[("x-stock-delay-ms", "1300")]);
        hooks(&mut h, PUT, whole);
        assert_eq!(h["x-stock-delay-ms"], "1000");
        let first = HookFaults {
            fail_before_delay: true,
            ..Default::default()
        };
        let mut h = hooks_of(&[("x-stock-delay-ms", "300")]);
        hooks(&mut h, PUT, first);
        assert_eq!(h["x-stock-delay-ms"], "300", "no fail: the delay stays");
        let mut h = hooks_of(&[("x-stock-delay-ms", "300"), ("x-stock-fail", "UNAVAILABLE")]);
        hooks(&mut h, PUT, first);
        assert!(!h.contains_key("x-stock-delay-ms"));
        hooks(&mut h, PUT, HookFaults::default());
    }

    #[test]
    fn a_fail_message_drops_the_special_message_only_under_its_fault() {
        let beats = HookFaults {
            fail_message_beats_special: true,
            ..Default::default()
        };
        let both = [("x-stock-fail-special", "true"), ("x-stock-fail-message", "mine")];
        let mut h = hooks_of(&both);
        hooks(&mut h, PUT, HookFaults::default());
        assert!(h.contains_key("x-stock-fail-special"));
        hooks(&mut h, PUT, beats);
        assert!(!h.contains_key("x-stock-fail-special"));
        let mut alone = hooks_of(&[("x-stock-fail-special", "true")]);
        hooks(&mut alone, PUT, beats);
        assert!(alone.contains_key("x-stock-fail-special"));
    }

    #[test]
    fn the_reported_deadline_loses_the_delay_only_under_its_fault() {
        let after = HookFaults {
            report_deadline_after_delay: true,
            ..Default::default()
        };
        let h = hooks_of(&[("x-stock-delay-ms", "2000")]);
        let left = Duration::from_millis(4000);
        assert_eq!(reported(&h, left, HookFaults::default()), left);
        assert_eq!(reported(&h, left, after), Duration::from_millis(2000));
        assert_eq!(reported(&hooks_of(&[]), left, after), left);
    }

    #[test]
    fn a_bad_hook_number_reads_as_zero_only_under_its_fault() {
        let lenient = HookFaults {
            lenient_hook_numbers: true,
            ..Default::default()
        };
        let mut h = hooks_of(&[("x-stock-delay-ms", "soon"), ("x-stock-fail-after", "2")]);
        hooks(&mut h, PUT, HookFaults::default());
        assert_eq!(h["x-stock-delay-ms"], "soon");
        hooks(&mut h, PUT, lenient);
        assert_eq!(h["x-stock-delay-ms"], "0");
        assert_eq!(h["x-stock-fail-after"], "2");
    }

    #[test]
    fn a_negative_number_reads_as_zero_only_under_its_fault() {
        let negative = HookFaults {
            negative_hook_numbers: true,
            ..Default::default()
        };
        let mut h = hooks_of(&[("x-stock-delay-ms", "-5"), ("x-stock-fail-after", "soon")]);
        hooks(&mut h, PUT, HookFaults::default());
        assert_eq!(h["x-stock-delay-ms"], "-5");
        hooks(&mut h, PUT, negative);
        assert_eq!(h["x-stock-delay-ms"], "0");
        assert_eq!(h["x-stock-fail-after"], "soon", "not a number: another fault's");
    }

    #[test]
    fn fail_codes_are_upper_cased_and_ok_dropped_only_under_their_fault() {
        let blind = HookFaults {
            case_blind_fail_codes: true,
            ..Default::default()
        };
        let mut h = hooks_of(&[("x-stock-fail", "aborted")]);
        hooks(&mut h, PUT, HookFaults::default());
        assert_eq!(h["x-stock-fail"], "aborted");
        hooks(&mut h, PUT, blind);
        assert_eq!(h["x-stock-fail"], "ABORTED");
        let mut ok = hooks_of(&[("x-stock-fail", "OK")]);
        hooks(&mut ok, PUT, blind);
        assert!(!ok.contains_key("x-stock-fail"));
    }

    #[test]
    fn a_unary_fail_with_a_fail_after_is_dropped_only_under_its_fault() {
        let after = HookFaults {
            fail_after_on_unary: true,
            ..Default::default()
        };
        let both = [("x-stock-fail", "ABORTED"), ("x-stock-fail-after", "2")];
        let mut h = hooks_of(&both);
        hooks(&mut h, PUT, HookFaults::default());
        assert!(h.contains_key("x-stock-fail"));
        let mut stream = hooks_of(&both);
        hooks(&mut stream, "/stock.v1.Stock/Monitor", after);
        assert!(stream.contains_key("x-stock-fail"), "a stream keeps its fail");
        let mut at_once = hooks_of(&[("x-stock-fail", "ABORTED"), ("x-stock-fail-after", "0")]);
        hooks(&mut at_once, PUT, after);
        assert!(at_once.contains_key("x-stock-fail"), "fail-after 0 fails at once");
        hooks(&mut h, PUT, after);
        assert!(!h.contains_key("x-stock-fail"));
    }
}
