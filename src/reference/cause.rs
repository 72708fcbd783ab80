//! What lies under a tonic status: the first error of a type in its source
//! chain (hyper, h2), which says how a call really ended.
use std::error::Error;

/// The first error of type `E` under `status`.
pub fn find<E: Error + 'static>(status: &tonic::Status) -> Option<&E> {
    find_from(Error::source(status))
}

/// The first error of type `E` in a chain, from `cause` down.
pub fn find_from<'a, E: Error + 'static>(mut cause: Option<&'a (dyn Error + 'static)>) -> Option<&'a E> {
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

/// The call's request never left the client: hyper cancels a request still
/// queued on a connection that closed (or was not ready). Such a call, like
/// a refused one, the server never processed (client/retry.rs).
pub fn never_sent(status: &tonic::Status) -> bool {
    find::<hyper::Error>(status).is_some_and(hyper::Error::is_canceled)
}

/// The server refused the call's stream: RST_STREAM REFUSED_STREAM, or a
/// graceful GOAWAY that came before the stream.
pub fn refused(status: &tonic::Status) -> bool {
    let refused = |e: &h2::Error| {
        e.is_remote()
            && match e.reason() {
                Some(h2::Reason::REFUSED_STREAM) => e.is_reset(),
                Some(h2::Reason::NO_ERROR) => e.is_go_away(),
                _ => false,
            }
    };
    find::<h2::Error>(status).is_some_and(refused)
}

/// The call's connection broke under it (an I/O error under HTTP/2), not the
/// peer's cancel or a protocol error.
pub fn connection_broke(status: &tonic::Status) -> bool {
    find::<h2::Error>(status).is_some_and(h2::Error::is_io)
}

/// The call failed on this side before its connection was up (a TCP connect
/// or TLS handshake refused, an HTTP/2 preface answered with something else),
/// not by a connection that broke under it: the status has a source (the
/// server's statuses carry none) and no lost connection in it.
pub fn never_connected(status: &tonic::Status) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let lost = |e: &std::io::Error| {
        matches!(
            e.kind(),
            BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
        )
    };
    Error::source(status).is_some() && !connection_broke(status) && !find::<std::io::Error>(status).is_some_and(lost)
}

/// The peer reset the call's stream (RST_STREAM).
pub fn stream_reset(status: &tonic::Status) -> bool {
    find::<h2::Error>(status).is_some_and(|e| e.is_reset() && e.is_remote())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_without_a_source_has_no_cause() {
        let s = tonic::Status::internal("from the server");
        assert!(!never_sent(&s) && !refused(&s) && !connection_broke(&s) && !stream_reset(&s));
    }

    #[test]
    fn a_reset_stream_is_found_under_the_status() {
        let s = tonic::Status::from_error(Box::new(h2::Error::from(h2::Reason::INTERNAL_ERROR)));
        assert!(find::<h2::Error>(&s).is_some());
        assert!(!connection_broke(&s));
    }
}
