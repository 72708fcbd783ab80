//! How a rude call ended, read from what the server sent: its status (the
//! trailers, a trailers-only response, or the HTTP status), the error
//! details, or the reset or broken connection that ended it instead.
use crate::contract::codes;
use h2::Reason;
use http::HeaderMap;

/// A call's end: a status code name and message, and the error details its
/// trailers carried (grpc-status-details-bin, printed as the client prints them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct End {
    pub code: String,
    pub message: String,
    pub details: Vec<serde_json::Value>,
}

impl End {
    pub(super) fn new(code: impl Into<String>, message: impl Into<String>) -> End {
        End {
            code: code.into(),
            message: message.into(),
            details: Vec::new(),
        }
    }
}

/// The status a response carries (trailers, or trailers-only headers), or
/// what its HTTP status maps to (http-grpc-status-mapping.md).
pub(super) fn status_of(http: u16, headers: &HeaderMap, trailers: Option<&HeaderMap>) -> End {
    let from = |h: &HeaderMap| {
        let code = h.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
        // Percent-encoded as it travels (PROTOCOL-HTTP2.md): shown decoded.
        let message = h.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let message = percent_encoding::percent_decode_str(message).decode_utf8_lossy();
        let mut end = End::new(codes::name(tonic::Code::from_i32(code)), message);
        end.details = details_of(h, code);
        Some(end)
    };
    if let Some(end) = trailers.and_then(from).or_else(|| from(headers)) {
        return end;
    }
    let code = match http {
        400 => "INTERNAL",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "UNIMPLEMENTED",
        429 | 502 | 503 | 504 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    End::new(code, format!("HTTP status {http} and no grpc-status"))
}

/// The error details of a status in these headers: grpc-status-details-bin
/// decoded (padded or not) as the reference client prints a call's details;
/// none, with a note, when they are not a google.rpc.Status of this code.
fn details_of(h: &HeaderMap, code: i32) -> Vec<serde_json::Value> {
    let Some(value) = h.get("grpc-status-details-bin") else {
        return Vec::new();
    };
    let read = value
        .to_str()
        .map_err(|e| format!("grpc-status-details-bin is not text: {e}"))
        .and_then(crate::contract::script::decode_b64)
        .map_err(|e| format!("grpc-status-details-bin: {e}"))
        .and_then(|bytes| crate::contract::proto::status_details(&bytes, code));
    read.unwrap_or_else(|e| {
        note!("rude call: {e}");
        Vec::new()
    })
}

/// The status a reset from the server maps to (PROTOCOL-HTTP2.md, "Errors"),
/// else the broken connection.
pub(super) fn reset_or_broke(e: anyhow::Error) -> End {
    let Some(reason) = crate::reference::cause::find_from::<h2::Error>(Some(e.as_ref()))
        .filter(|h| h.is_reset() && h.is_remote())
        .and_then(h2::Error::reason)
    else {
        return broke(format!("{e:#}"));
    };
    let code = match reason {
        Reason::REFUSED_STREAM => "UNAVAILABLE",
        Reason::CANCEL => "CANCELLED",
        Reason::ENHANCE_YOUR_CALM => "RESOURCE_EXHAUSTED",
        Reason::INADEQUATE_SECURITY => "PERMISSION_DENIED",
        _ => "INTERNAL",
    };
    End::new(
        code,
        format!("the server reset the stream (RST_STREAM {reason:?}), no trailers"),
    )
}

pub(super) fn broke(e: impl std::fmt::Display) -> End {
    End::new("UNAVAILABLE", format!("connection broken: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_message_is_shown_percent_decoded() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "4".parse().unwrap());
        trailers.insert("grpc-message", "the%20operation%20timed%20out, 100%zz".parse().unwrap());
        let end = status_of(200, &HeaderMap::new(), Some(&trailers));
        assert_eq!(end, End::new("DEADLINE_EXCEEDED", "the operation timed out, 100%zz"));
    }

    #[test]
    fn the_details_of_a_status_are_read_padded_or_not() {
        use base64::Engine as _;
        let forced = crate::reference::rich::forced(tonic::Code::DeadlineExceeded, String::new());
        let bytes = forced.details();
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
        ] {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "4".parse().unwrap());
            trailers.insert("grpc-status-details-bin", engine.encode(bytes).parse().unwrap());
            let end = status_of(200, &HeaderMap::new(), Some(&trailers));
            assert_eq!(end.details.len(), 1, "{end:?}");
            assert_eq!(end.details[0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
            assert_eq!(end.details[0]["reason"], "FORCED");
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "5".parse().unwrap());
        trailers.insert("grpc-status-details-bin", "not base64!".parse().unwrap());
        assert_eq!(
            status_of(200, &HeaderMap::new(), Some(&trailers)).details,
            Vec::<serde_json::Value>::new()
        );
    }
}
