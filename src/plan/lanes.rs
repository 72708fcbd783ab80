//! Which lane of its client each test of a cell runs in (pure): tests that
//! mostly wait (server delays, deadlines, cancellations, slow reads) are
//! spread over lanes 1..=N, longest first onto the least loaded lane, so
//! that their waits overlap; every other test runs in lane 0, one after the
//! other, as before. With one lane everything runs in lane 0.
use crate::input::cases::CaseStep;
use crate::input::matchers::StatusPattern;

/// A test that waits at least this long (estimated) gets a lane of its own kind.
const WAITING_MS: u64 = 250;

/// How long a step waits on purpose, in ms (an estimate from the case data:
/// the server's delay, the deadline it expects to pass, the client's
/// cancellation and read pauses, the runner's settling time before it, and
/// its nested steps).
pub fn waiting_ms(step: &CaseStep) -> u64 {
    let delay = crate::contract::script::delay_ms(&step.metadata);
    let timeout = step.timeout_ms.unwrap_or(u64::MAX);
    let ends_at_deadline = StatusPattern::parse(&step.expect.status).is_ok_and(|p| p.expects("DEADLINE_EXCEEDED"));
    let call = match (step.cancel_after_ms, ends_at_deadline) {
        (Some(cancel), _) => cancel.min(timeout),
        (None, true) => step.timeout_ms.unwrap_or(0),
        (None, false) => delay.min(timeout),
    };
    let messages = step.expect.messages.as_ref().map_or(0, |m| m.len() as u64);
    let pauses = step.read_pause_ms.unwrap_or(0) * messages;
    let settle = step.settle_ms.unwrap_or(0);
    settle + call + pauses + step.after_first.iter().map(waiting_ms).sum::<u64>()
}

/// The lanes of a client process that runs `cells` cells with `per_cell`
/// lanes each (64 at most).
pub fn of_process(per_cell: u32, cells: usize) -> u32 {
    (per_cell as usize * cells.max(1)).min(64) as u32
}

/// The estimated waits of a test's steps.
pub fn test_waiting_ms(case: &crate::input::cases::Case) -> u64 {
    case.steps.iter().map(waiting_ms).sum()
}

/// The lane of each test, given the estimated waits of its steps, for a
/// client with `lanes` lanes.
pub fn assign(waits: &[u64], lanes: u32) -> Vec<u32> {
    spread(waits, lanes).0
}

/// How long the waiting lanes of such a client keep it busy (estimated): its
/// most loaded lane.
pub fn longest_lane_ms(waits: &[u64], lanes: u32) -> u64 {
    match lanes {
        0 | 1 => waits.iter().sum(),
        _ => spread(waits, lanes).1.into_iter().max().unwrap_or(0),
    }
}

/// Each test's lane, and what the waiting lanes (1..) carry.
fn spread(waits: &[u64], lanes: u32) -> (Vec<u32>, Vec<u64>) {
    let mut out = vec![0; waits.len()];
    if lanes <= 1 {
        return (out, Vec::new());
    }
    let mut load = vec![0u64; lanes as usize - 1];
    let mut waiting: Vec<usize> = (0..waits.len()).filter(|&i| waits[i] >= WAITING_MS).collect();
    waiting.sort_by_key(|&i| std::cmp::Reverse(waits[i]));
    for i in waiting {
        let (lane, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| **l)
            .expect("at least one lane");
        load[lane] += waits[i];
        out[i] = lane as u32 + 1;
    }
    (out, load)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(toml: &str) -> CaseStep {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn a_step_waits_for_its_delay_deadline_cancellation_and_pauses() {
        assert_eq!(waiting_ms(&step("method = \"Get\"")), 0);
        let delayed = "method = \"Get\"\nmetadata = { x-stock-delay-ms = \"1300\" }\ntimeout_ms = 10000";
        assert_eq!(waiting_ms(&step(delayed)), 1300);
        let deadline = "method = \"Put\"\nmetadata = { x-stock-delay-ms = \"1000\" }\ntimeout_ms = 150\nexpect.status = \"DEADLINE_EXCEEDED\"";
        assert_eq!(waiting_ms(&step(deadline)), 150);
        let must_not_hang = "method = \"Put\"\ntimeout_ms = 5000\nexpect.status = \"!OK|DEADLINE_EXCEEDED\"";
        assert_eq!(
            waiting_ms(&step(must_not_hang)),
            0,
            "a deadline it must not reach is no wait"
        );
        let cancelled = "method = \"Put\"\nmetadata = { x-stock-delay-ms = \"1000\" }\ncancel_after_ms = 150";
        assert_eq!(waiting_ms(&step(cancelled)), 150);
        let slow = "method = \"Monitor\"\nread_pause_ms = 100\nexpect.messages = [{}, {}, {}]";
        assert_eq!(waiting_ms(&step(slow)), 300);
    }

    #[test]
    fn waiting_tests_spread_longest_first_and_the_rest_stay_in_lane_zero() {
        assert_eq!(assign(&[2000, 0, 1500, 300, 10, 900], 3), vec![1, 0, 2, 1, 0, 2]);
        assert_eq!(assign(&[2000, 1500], 1), vec![0, 0], "one lane: one after the other");
        assert_eq!(longest_lane_ms(&[2000, 0, 1500, 300, 10, 900], 3), 2400);
        assert_eq!(longest_lane_ms(&[2000, 1500], 1), 3500);
        assert_eq!(of_process(8, 3), 24);
        assert_eq!(of_process(8, 12), 64, "64 at most");
    }
}
