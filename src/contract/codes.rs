//! gRPC status code names, as the contract spells them.
use tonic::Code;

/// Every code in numeric order; index = numeric value.
pub const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The canonical name of a code.
pub fn name(code: Code) -> &'static str {
    NAMES[code as usize]
}

/// The code with this canonical name.
pub fn from_name(name: &str) -> Option<Code> {
    NAMES.iter().position(|n| *n == name).map(|i| Code::from_i32(i as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_all_seventeen_codes() {
        for (i, n) in NAMES.iter().enumerate() {
            let code = from_name(n).unwrap();
            assert_eq!(code as usize, i);
            assert_eq!(name(code), *n);
        }
        assert_eq!(from_name("not_found"), None);
    }
}
