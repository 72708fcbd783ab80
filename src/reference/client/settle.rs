//! How a finished call's outcome reads in the contract (pure): the
//! deadline that ended it, and the codes tonic names apart from the gRPC
//! spec, with the reference client's faults that change them.
use crate::reference::cause;
use crate::reference::faults::ClientFault;
use std::time::{Duration, Instant};
use tonic::Status;

/// How the status message of a call whose connection broke starts.
pub(super) const BROKEN: &str = "connection broken: ";

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
