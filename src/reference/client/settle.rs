//! How a finished call's outcome reads in the contract (pure): the
//! deadline that ended it, and the codes tonic names apart from the gRPC
//! spec, with the reference client's faults that change them.
use crate::contract::proto::Kind;
use crate::reference::cause;
use crate::reference::faults::ClientFault;
use std::time::{Duration, Instant};
use tonic::Status;

/// How the status message of a call whose connection broke starts.
pub(super) const BROKEN: &str = "connection broken: ";

/// A call's deadlines, as the reference client's faults bend them.
#[derive(Debug, PartialEq)]
pub(super) struct Deadlines {
    /// What the call sends as grpc-timeout.
    pub timeout: Option<Duration>,
    /// The `deadline-after-the-fact` fault: a unary call's deadline, only
    /// checked once it has ended.
    pub late: Option<Duration>,
    /// This side's own timer (which also covers a server that ignores
    /// grpc-timeout).
    pub own_timer: Option<Duration>,
    /// The `timer-in-32-bit-ms` fault: a timer past 2^31-1 ms, which Node
    /// fires after 1 ms, fires here before the call starts.
    pub overflowed: bool,
}

impl Deadlines {
    pub(super) fn of(timeout_ms: Option<u64>, faults: &[ClientFault], kind: Kind) -> Deadlines {
        let has = |f: ClientFault| faults.contains(&f);
        let timeout = timeout_ms
            .filter(|t| *t > 0)
            .or(has(ClientFault::DefaultDeadline).then_some(60_000))
            .map(|ms| match () {
                _ if has(ClientFault::DeadlineInWholeSeconds) => ms / 1000 * 1000,
                _ if has(ClientFault::DeadlineUpToWholeSeconds) => ms.div_ceil(1000) * 1000,
                _ => ms,
            })
            .map(Duration::from_millis);
        let (timeout, late) = match has(ClientFault::DeadlineAfterTheFact) && kind == Kind::Unary {
            true => (None, timeout),
            false => (timeout, None),
        };
        let streams_untimed = has(ClientFault::NoTimerOnStreams) && kind != Kind::Unary;
        let own_timer = timeout
            .filter(|_| !has(ClientFault::DeadlineByServerOnly) && !streams_untimed)
            .or((has(ClientFault::ShortDefaultDeadline) && timeout.is_none()).then_some(Duration::from_millis(250)));
        let overflowed =
            has(ClientFault::TimerIn32BitMs) && own_timer.is_some_and(|t| t.as_millis() > i32::MAX as u128);
        Deadlines {
            timeout,
            late,
            own_timer,
            overflowed,
        }
    }
}

/// How a finished call's outcome reads in the contract: the deadline that
/// ended it, and the codes tonic names apart from the gRPC spec (with the
/// reference client's faults that change them).
pub(super) fn settle(
    faults: &[ClientFault],
    result: Result<(), Status>,
    start: Instant,
    timeout: Option<Duration>,
    late: Option<Duration>,
    cancelled: bool,
) -> Result<(), Status> {
    // A call cancelled once its own deadline has passed ended by that
    // deadline: tonic's local timer says CANCELLED "Timeout expired", and
    // a server that resets the stream at the deadline (grpc-go) arrives
    // as CANCELLED too. gRPC clients report DEADLINE_EXCEEDED (grpc-go does).
    let past_deadline = |t: Duration| start.elapsed() + Duration::from_millis(1) >= t;
    let result = result.map_err(|s| match timeout {
        Some(t)
            if s.code() == tonic::Code::Cancelled
                && !cancelled
                && (s.message() == "Timeout expired" || past_deadline(t)) =>
        {
            Status::deadline_exceeded(format!(
                "deadline exceeded (client side; the transport said: {})",
                s.message()
            ))
        }
        _ => s,
    });
    let result = match late {
        Some(t) if start.elapsed() >= t => Err(Status::deadline_exceeded("deadline exceeded (after the answer)")),
        _ => result,
    };
    // tonic says UNKNOWN for a broken connection ("transport error",
    // "h2 protocol error"); the gRPC spec (statuscodes.md: data sent
    // before the connection breaks) says UNAVAILABLE. A status the
    // server sent carries no source error.
    let result = result.map_err(|s| match s.code() {
        tonic::Code::Unknown if std::error::Error::source(&s).is_some() => {
            Status::unavailable(format!("{BROKEN}{}", s.message()))
        }
        _ => s,
    });
    let result = result.map_err(|s| {
        if faults.contains(&ClientFault::StreamResetUnknown) && cause::stream_reset(&s) {
            Status::unknown(format!("stream reset: {}", s.message()))
        } else if faults.contains(&ClientFault::ResetCodeIgnored) && cause::stream_reset(&s) {
            Status::internal(format!("stream reset: {}", s.message()))
        } else if faults.contains(&ClientFault::TrailersOnlyUnknown) && s.metadata().contains_key("content-type") {
            // A trailers-only response's status comes with the response headers.
            Status::unknown("missing trailers")
        } else {
            s
        }
    });
    // tonic says OUT_OF_RANGE for a message over the receive limit;
    // the gRPC spec (and every other stack) says RESOURCE_EXHAUSTED.
    result.map_err(|s| match s.code() {
        tonic::Code::OutOfRange if s.message().contains("message length too large") => {
            Status::resource_exhausted(s.message())
        }
        _ => s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_faults_bend_what_is_sent_and_what_this_side_times() {
        let of = |ms, faults: &[ClientFault], kind| Deadlines::of(ms, faults, kind);
        let plain = of(Some(1500), &[], Kind::Unary);
        assert_eq!(
            (plain.timeout, plain.own_timer),
            (Some(Duration::from_millis(1500)), plain.timeout)
        );
        assert_eq!((plain.late, plain.overflowed), (None, false));
        assert_eq!(of(Some(0), &[], Kind::Unary).own_timer, None, "0 is no deadline");
        let whole = of(Some(1500), &[ClientFault::DeadlineInWholeSeconds], Kind::Unary);
        assert_eq!(whole.timeout, Some(Duration::from_secs(1)));
        let up = of(Some(1500), &[ClientFault::DeadlineUpToWholeSeconds], Kind::Unary);
        assert_eq!(up.timeout, Some(Duration::from_secs(2)));
        let after = of(Some(100), &[ClientFault::DeadlineAfterTheFact], Kind::Unary);
        assert_eq!((after.timeout, after.late), (None, Some(Duration::from_millis(100))));
        let stream = of(Some(100), &[ClientFault::DeadlineAfterTheFact], Kind::ServerStream);
        assert_eq!(stream.late, None, "only unary calls");
        let untimed = of(Some(100), &[ClientFault::NoTimerOnStreams], Kind::Bidi);
        assert_eq!((untimed.timeout.is_some(), untimed.own_timer), (true, None));
        let server_only = of(Some(100), &[ClientFault::DeadlineByServerOnly], Kind::Unary);
        assert_eq!(server_only.own_timer, None);
        let short = of(None, &[ClientFault::ShortDefaultDeadline], Kind::Unary);
        assert_eq!(
            (short.timeout, short.own_timer),
            (None, Some(Duration::from_millis(250)))
        );
        let default = of(None, &[ClientFault::DefaultDeadline], Kind::Unary);
        assert_eq!(default.timeout, Some(Duration::from_secs(60)));
        let huge = of(Some(1 << 32), &[ClientFault::TimerIn32BitMs], Kind::Unary);
        assert!(huge.overflowed);
        assert!(!of(Some(1 << 32), &[], Kind::Unary).overflowed);
    }
}
