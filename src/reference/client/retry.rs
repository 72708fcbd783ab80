//! gRPC's transparent retry (pure): which failed calls the server never
//! processed go again, and how often (gRFC A6).
use crate::reference::cause;
use tonic::Status;

/// How often a call that never left this side is sent again: a channel
/// whose connection is closing drops the one or two calls queued on it
/// before it reconnects.
const UNSENT_TRIES: usize = 8;

/// Why the server never processed a call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Unprocessed {
    /// Its request never left this side.
    NeverSent,
    /// The server refused its stream (REFUSED_STREAM, or a graceful GOAWAY
    /// before it).
    Refused,
}

impl Unprocessed {
    pub(super) fn of(status: &Status) -> Option<Unprocessed> {
        match () {
            _ if cause::never_sent(status) => Some(Unprocessed::NeverSent),
            _ if cause::refused(status) => Some(Unprocessed::Refused),
            _ => None,
        }
    }
}

/// The tries of one call so far.
#[derive(Default)]
pub(super) struct Tries {
    unsent: usize,
    refusals: usize,
    /// The `refused-stream-internal` fault: a refused call is not retried.
    refused_final: bool,
}

impl Tries {
    pub(super) fn new(refused_final: bool) -> Tries {
        Tries {
            refused_final,
            ..Default::default()
        }
    }

    /// Whether a call that just failed so goes again: one that never left
    /// goes as long as its channel drops it; one the server refused, once.
    pub(super) fn again(&mut self, why: Option<Unprocessed>) -> bool {
        match why {
            Some(Unprocessed::NeverSent) => {
                self.unsent += 1;
                self.unsent <= UNSENT_TRIES
            }
            Some(Unprocessed::Refused) if !self.refused_final => {
                self.refusals += 1;
                self.refusals == 1
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsent_call_goes_again_a_few_times_and_a_refused_one_once() {
        let mut tries = Tries::default();
        let unsent = (0..20)
            .take_while(|_| tries.again(Some(Unprocessed::NeverSent)))
            .count();
        assert_eq!(unsent, UNSENT_TRIES);
        let mut tries = Tries::default();
        assert!(tries.again(Some(Unprocessed::NeverSent)));
        assert!(tries.again(Some(Unprocessed::Refused)), "refused after unsent: once");
        assert!(tries.again(Some(Unprocessed::NeverSent)));
        assert!(!tries.again(Some(Unprocessed::Refused)), "refused twice");
        assert!(!Tries::default().again(None), "a processed call");
        let mut faulty = Tries::new(true);
        assert!(!faulty.again(Some(Unprocessed::Refused)));
        assert!(faulty.again(Some(Unprocessed::NeverSent)));
    }

    #[test]
    fn a_status_of_the_server_was_processed() {
        assert_eq!(Unprocessed::of(&Status::not_found("no such key")), None);
        assert_eq!(Unprocessed::of(&Status::cancelled("operation was canceled")), None);
    }
}
