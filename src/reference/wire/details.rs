//! The rich error details of a failed call (`grpc-status-details-bin`) as
//! the reference server sends them, or spoils them for a `--break` fault.
use base64::Engine as _;
use http::{HeaderMap, HeaderValue};
use prost::Message as _;

const KEY: &str = "grpc-status-details-bin";

/// What happens to the details tonic-types made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Details {
    /// Sent as made.
    #[default]
    Sent,
    /// Never sent (`no-error-details`).
    Dropped,
    /// Sent with the google.rpc.Status's code set to 0 (OK) whatever
    /// grpc-status says (`details-code-ok`).
    CodeOk,
    /// Sent, and the server's own DEADLINE_EXCEEDED, which has none, gets
    /// the ErrorInfo of a forced failure (`deadline-with-errorinfo`).
    OnDeadline,
}

impl Details {
    /// The details in these trailers (or a trailers-only response's headers).
    pub(super) fn apply(self, h: &mut HeaderMap) {
        match self {
            Details::Sent => {}
            Details::Dropped => {
                h.remove(KEY);
            }
            Details::CodeOk => {
                if let Some(v) = h.get(KEY).and_then(code_ok) {
                    h.insert(KEY, v);
                }
            }
            Details::OnDeadline => {
                if h.get("grpc-status").is_some_and(|s| s.as_bytes() == b"4") && !h.contains_key(KEY) {
                    let forced =
                        crate::reference::rich::forced(tonic::Code::DeadlineExceeded, "deadline exceeded".into());
                    h.insert(KEY, bin_value(forced.details()));
                }
            }
        }
    }
}

/// The same google.rpc.Status with code 0.
fn code_ok(v: &HeaderValue) -> Option<HeaderValue> {
    let mut status = tonic_types::pb::Status::decode(bin_bytes(v)?.as_slice()).ok()?;
    status.code = 0;
    Some(bin_value(&status.encode_to_vec()))
}

/// The bytes of a `-bin` metadata value (base64, padded or not).
pub(super) fn bin_bytes(v: &HeaderValue) -> Option<Vec<u8>> {
    crate::contract::script::decode_b64(v.to_str().ok()?).ok()
}

/// A `-bin` metadata value of these bytes.
pub(super) fn bin_value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(bytes)).expect("base64 is a header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt as _};

    fn trailers() -> HeaderMap {
        let s = tonic::Status::with_error_details(
            tonic::Code::InvalidArgument,
            "bad key",
            ErrorDetails::with_bad_request_violation("key", "empty"),
        );
        let mut h = HeaderMap::new();
        h.insert(KEY, bin_value(s.details()));
        h
    }

    fn status(h: &HeaderMap) -> tonic_types::pb::Status {
        tonic_types::pb::Status::decode(bin_bytes(&h[KEY]).unwrap().as_slice()).unwrap()
    }

    #[test]
    fn only_a_deadline_without_details_gets_an_errorinfo_on_deadline() {
        let mut deadline = HeaderMap::new();
        deadline.insert("grpc-status", HeaderValue::from_static("4"));
        Details::Sent.apply(&mut deadline);
        assert!(!deadline.contains_key(KEY));
        Details::OnDeadline.apply(&mut deadline);
        assert_eq!(status(&deadline).code, 4);
        assert_eq!(status(&deadline).details.len(), 1);
        let mut other = trailers();
        other.insert("grpc-status", HeaderValue::from_static("3"));
        let before = other[KEY].clone();
        Details::OnDeadline.apply(&mut other);
        assert_eq!(other[KEY], before);
    }

    #[test]
    fn details_are_sent_dropped_or_sent_with_code_ok() {
        let mut h = trailers();
        Details::Sent.apply(&mut h);
        assert_eq!(status(&h).code, 3);
        Details::CodeOk.apply(&mut h);
        let spoiled = status(&h);
        assert_eq!(
            (spoiled.code, spoiled.message.as_str(), spoiled.details.len()),
            (0, "bad key", 1)
        );
        Details::Dropped.apply(&mut h);
        assert!(!h.contains_key(KEY));
    }
}
