//! Rich errors (tonic-types): every refused request carries a
//! `google.rpc.BadRequest` naming the field, and every forced failure a
//! `google.rpc.ErrorInfo`, in `grpc-status-details-bin`.
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// INVALID_ARGUMENT for `field`, with a BadRequest detail naming it.
pub fn bad_field(field: &str, description: String) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        description.clone(),
        ErrorDetails::with_bad_request_violation(field, description),
    )
}

/// The status an `x-stock-fail` hook forces, with an ErrorInfo detail.
pub fn forced(code: Code, message: String) -> Status {
    with_info(code, message, "FORCED")
}

/// The same code and message without the details (the faults that lose them).
pub fn without_details(status: &Status) -> Status {
    Status::new(status.code(), status.message())
}

/// A status with one ErrorInfo detail of domain `stock.v1`.
pub fn with_info(code: Code, message: String, reason: &str) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, "stock.v1", HashMap::new()),
    )
}

/// A status with one ResourceInfo detail naming a key (the
/// `resource-info-on-not-found` fault: a detail the contract does not use).
pub fn with_resource_info(code: Code, message: String, key: &str) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_resource_info("key", key, "", ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_travel_with_the_status() {
        let s = bad_field("key", "key must be 1 to 256 bytes, got 0".into());
        let d = s.get_error_details();
        let v = d.bad_request().unwrap();
        assert_eq!(v.field_violations[0].field, "key");
        let f = forced(Code::Aborted, "boom".into());
        assert_eq!(f.get_error_details().error_info().unwrap().reason, "FORCED");
        assert_eq!((f.code(), f.message()), (Code::Aborted, "boom"));
    }
}
