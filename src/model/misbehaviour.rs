//! The HTTP/2 misbehaviours a case can ask for (pure data): a server of the
//! runner's own that misbehaves (`peer`, src/reference/peer.rs) and a call
//! the reference client makes misbehave (`rude`, src/reference/rude/).
use serde::{Deserialize, Serialize};

/// What a peer does wrong (RFC 9113 and gRPC's PROTOCOL-HTTP2.md say what a
/// client must make of each; CONTRACT.md, "Misbehaving servers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Misbehaviour {
    /// GOAWAY (NO_ERROR) while the connection's first call is in flight,
    /// the last one (its last stream id that call's) before that call's
    /// trailers: the call ends well, and the next call must go to a new
    /// connection (a stream opened on this one is refused).
    GoawayInFirstCall,
    /// The connection's second stream is refused (RST_STREAM REFUSED_STREAM
    /// before any response): the server never processed it.
    RefuseSecondStream,
    /// RST_STREAM (INTERNAL_ERROR) right after the response headers.
    ResetAfterHeaders,
    /// RST_STREAM (INTERNAL_ERROR) right after the first response message.
    ResetAfterFirstMessage,
    /// RST_STREAM (CANCEL) right after the response headers: the server
    /// gave the call up (PROTOCOL-HTTP2.md maps it to CANCELLED).
    CancelAfterHeaders,
    /// RST_STREAM (ENHANCE_YOUR_CALM) right after the response headers: the
    /// server sheds load (PROTOCOL-HTTP2.md: RESOURCE_EXHAUSTED).
    CalmAfterHeaders,
    /// Every call fails with a trailers-only response (one HEADERS frame
    /// carrying grpc-status NOT_FOUND).
    TrailersOnlyError,
    /// Headers and messages, then never the trailers: the stream stays open.
    NoTrailers,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` = 1: a stream past it is refused.
    OneStreamAtATime,
    /// A stream flow-control window of 1 KiB, opened 1 KiB at a time as the
    /// peer reads slowly (2 ms per KiB).
    TinyWindow,
    /// A PING every millisecond (each after the last one's ACK) for the
    /// first 5 s of the connection; one not answered within 1 s closes it.
    PingFlood,
    /// A third PING from the client closes the connection with GOAWAY
    /// ENHANCE_YOUR_CALM (as a server enforcing a ping policy does).
    TooManyPings,
    /// The server takes one connection and closes every later one at once
    /// (a client keeps one channel, and so one connection, for its calls).
    OneConnectionOnly,
    /// A call with one response message (unary, client stream) ends OK
    /// without it: headers, then the trailers (a response cardinality
    /// violation).
    NoResponseMessage,
    /// A call with one response message (unary, client stream) gets it
    /// twice, then OK (a response cardinality violation).
    TwoResponseMessages,
    /// A call with one response message (unary, client stream) gets it,
    /// then ends ABORTED (`ANSWER_THEN_ERROR_MESSAGE`): the call failed, so
    /// it has no answer.
    AnswerThenError,
    /// A Get's answer comes gzipped under `grpc-encoding: x-stock-unknown`,
    /// an encoding the client never offered (compression.md: INTERNAL).
    UnknownResponseEncoding,
    /// A Get's answer comes gzipped, its Compressed-Flag set, with no
    /// `grpc-encoding` (compression.md: INTERNAL).
    CompressedWithoutEncoding,
    /// A Get (trailers-only) and a Monitor (after its headers) end NOT_FOUND
    /// with a `grpc-message` whose %-escapes are broken
    /// (`BROKEN_PERCENT_MESSAGE`): the client must keep the message
    /// (PROTOCOL-HTTP2.md: never an error, never thrown away).
    BrokenPercentMessage,
    /// Not wrong but strict: a Trade's fill goes out 50 ms after its order,
    /// and the next order arriving while a fill is owed ends the stream
    /// FAILED_PRECONDITION; a lock-step client never sees it, one that
    /// sends every order before it reads always does.
    StrictLockStep,
    /// Not wrong but lenient: takes a request of any size (as a server set
    /// up for large messages does), and otherwise behaves.
    TakesLargeRequests,
    /// Not wrong: answers every call uncompressed, whatever the request's
    /// encoding (compression.md lets a server pick any encoding the client
    /// accepts, identity included), where grpc-go's servers answer a gzip
    /// request gzipped.
    AnswersUncompressed,
}

/// The status message of `answer-then-error`.
pub const ANSWER_THEN_ERROR_MESSAGE: &str = "peer: failed after its answer";

/// The status message of `broken-percent-message`, as it travels.
pub const BROKEN_PERCENT_MESSAGE: &str = "peer: no such key, 100%zz sure 50%";

impl Misbehaviour {
    /// Whether it is done to one stream (not to the whole connection).
    pub fn of_a_stream(self) -> bool {
        use Misbehaviour::*;
        matches!(
            self,
            ResetAfterHeaders
                | ResetAfterFirstMessage
                | CancelAfterHeaders
                | CalmAfterHeaders
                | TrailersOnlyError
                | NoTrailers
                | NoResponseMessage
                | TwoResponseMessages
                | AnswerThenError
                | UnknownResponseEncoding
                | CompressedWithoutEncoding
                | BrokenPercentMessage
        )
    }
}

/// What the client does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rude {
    /// Sends all but the last item of a Batch, then resets the stream
    /// (RST_STREAM CANCEL): reported CANCELLED.
    ResetMidBatch,
    /// Closes its TCP connection in the middle of a request's DATA frame:
    /// reported UNAVAILABLE.
    CloseMidFrame,
    /// Opens 1,000 streams of the call at once on one connection (as many
    /// as the server's SETTINGS allow at a time): OK when every one is.
    ThousandStreams,
    /// Sends the call with `content-type: text/plain`, then the call as it
    /// should be on the same connection: the first one's status when the
    /// second worked, else UNAVAILABLE.
    BadContentType,
    /// Opens a Monitor and never reads it (its window stays closed), keeping
    /// it open for the rest of the process: OK once the headers came.
    MonitorNeverRead,
    /// Sends the call's one request message twice, then half-closes: the
    /// server's answer (a request cardinality violation).
    TwoRequests,
    /// Half-closes the call without its one request message: the server's
    /// answer (a request cardinality violation).
    NoRequest,
    /// Sends the request message gzipped under `grpc-encoding:
    /// x-stock-unknown`, an encoding no server knows: the server's answer
    /// (compression.md: UNIMPLEMENTED).
    UnknownEncoding,
    /// Sends the request message gzipped with its Compressed-Flag set and no
    /// `grpc-encoding`: the server's answer (compression.md: INTERNAL).
    CompressedWithoutEncoding,
    /// Sends the call with `grpc-timeout: 99999999H`, the largest deadline
    /// the header can carry (over 11,000 years): the server's answer, which
    /// must not be a deadline already past (an overflow).
    HugeTimeout,
    /// Reads the answer with no limit on its messages' size (as a client
    /// set up for large messages does), then reports the server's status
    /// with the size of each message it got (`N message(s): B bytes`), so
    /// a server that caps what it sends shows.
    NoReceiveLimit,
    /// Sends the step's deadline as `grpc-timeout` and keeps no timer of
    /// its own until 2 s after it, so the server alone ends the call:
    /// reports the status its trailers carry, or the reset it sent instead
    /// (RST_STREAM CANCEL as CANCELLED, PROTOCOL-HTTP2.md).
    ServerDeadline,
}

impl Rude {
    /// The calls it opens at once at the server (`thousand-streams`: its
    /// thousand; every other one, its one call).
    pub fn calls(self) -> u32 {
        match self {
            Rude::ThousandStreams => THOUSAND_STREAMS,
            _ => 1,
        }
    }
}

/// The calls `thousand-streams` opens at once.
pub const THOUSAND_STREAMS: u32 = 1000;

/// How long after the step's deadline `server-deadline` waits for the server.
pub const SERVER_DEADLINE_GRACE_MS: u64 = 2000;
