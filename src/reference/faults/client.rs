//! The deliberate bugs of the reference client (`stock-matrix reference client --break`).

/// A deliberate bug the reference client can be started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientFault {
    /// Trusts every certificate found beside --ca-file, as if it skipped verification.
    TrustAnyCa,
    /// Ignores --server-name.
    IgnoreServerName,
    /// Trusts only the first certificate of a CA file (a loader that reads
    /// one PEM block): a CA bundle's later CAs are not trusted.
    FirstCaOnly,
    /// Presents only the first certificate of --cert-file, not the chain
    /// after it: a server that trusts only the root cannot verify it.
    CertChainLeafOnly,
    /// Never compresses requests, whatever `compression` says.
    NoCompress,
    /// Reports the response headers among the trailers too.
    HeadersAsTrailers,
    /// Ignores `cancel_after_ms`.
    IgnoreCancel,
    /// Ignores `cancel_after_messages`: reads the Monitor on.
    CancelAfterMessagesIgnored,
    /// `cancel_after_messages` on a step that is not a Monitor is accepted
    /// (and ignored) instead of being a usage error.
    CancelAfterMessagesOffMonitorIgnored,
    /// Sends a `-bin` value's base64 text as the bytes instead of decoding it.
    BinAsText,
    /// Prints status messages percent-encoded, as they travel.
    PercentEncodedMessage,
    /// Accepts responses up to 64 MiB instead of the usual 4 MiB.
    NoReceiveLimit,
    /// Caps what it sends at 4 MiB (a send limit set to match the receive
    /// one): a server that takes larger requests never gets them.
    #[value(name = "send-limit-4mib")]
    SendLimit4Mib,
    /// Never prints rich error details.
    NoDetails,
    /// A Batch step leaves out the items whose value is empty (a proto3 JSON
    /// item without `value` read as no item).
    BatchSkipsEmptyItems,
    /// A Trade order's side that the enum does not name (a number, as from
    /// a newer proto) is sent as SIDE_UNSPECIFIED: a closed-enum JSON parser
    /// that drops an unknown value to the default.
    UnnamedSideSentUnspecified,
    /// Compresses every request, whatever `compression` says.
    CompressAlways,
    /// Gives every call without a deadline one of 60 s.
    DefaultDeadline,
    /// Converts a step's timeout_ms to whole seconds (an integer division):
    /// a 300 ms deadline becomes one already past, 1500 ms becomes 1 s.
    DeadlineInWholeSeconds,
    /// Rounds a step's timeout_ms up to whole seconds (a ceiling division):
    /// a 300 ms deadline becomes 1 s.
    DeadlineUpToWholeSeconds,
    /// Checks a unary call's deadline only once its answer came (no
    /// grpc-timeout, no timer): DEADLINE_EXCEEDED, but as late as the server.
    DeadlineAfterTheFact,
    /// Sends grpc-timeout but runs no timer of its own: the deadline holds
    /// only while the server can still say so.
    DeadlineByServerOnly,
    /// Once a call's connection breaks under it, every later call on that
    /// connection fails UNAVAILABLE at once: a broken channel kept and reused.
    DeadChannelKept,
    /// Streaming calls run no timer of their own (unary calls do): a
    /// deadline wrapper around unary calls only.
    NoTimerOnStreams,
    /// The process exits (status 3) when a step calls Trade: a crash, for
    /// the runner's handling of a client that dies in one test.
    ExitOnTrade,
    /// A call without a deadline ends after 250 ms by a timer of the
    /// client's own (no grpc-timeout): a hard-coded timeout that holds on
    /// loopback.
    ShortDefaultDeadline,
    /// The channel opens one connection only: once it is gone (GOAWAY, a
    /// reset, a close), every call fails UNAVAILABLE.
    NoReconnect,
    /// A call whose stream the server reset (RST_STREAM) is reported
    /// UNKNOWN instead of the status the reset's code maps to.
    StreamResetUnknown,
    /// A call whose stream the server refused (REFUSED_STREAM) is neither
    /// retried nor reported UNAVAILABLE: INTERNAL, as the reset's name.
    RefusedStreamInternal,
    /// A trailers-only response (the status in the only HEADERS frame) is
    /// reported UNKNOWN "missing trailers".
    TrailersOnlyUnknown,
    /// The client ignores the server's stream WINDOW_UPDATEs (plaintext
    /// only: a frame filter under HTTP/2): a send larger than the window stalls.
    WindowUpdatesIgnored,
    /// The client never answers the server's PINGs (plaintext only).
    PingAcksDropped,
    /// The client ignores the keepalive settings of its connections.
    KeepaliveIgnored,
    /// Keepalive pings only while a call is in flight (grpc-go's default
    /// `PermitWithoutStream: false`, grpc-js's `keepalive_permit_without_calls: 0`).
    KeepaliveOnlyWithCalls,
    /// A call whose stream the server reset waits on as if nothing came:
    /// it hangs until its deadline (or for ever).
    ResetIgnored,
    /// A connection reset that arrives behind bytes the client had not read
    /// yet is missed (plaintext only): the connection goes quiet, and its
    /// calls and the channel's next ones wait for their deadlines.
    ResetBehindUnreadMissed,
    /// A bench step runs one call at a time, whatever its concurrency.
    BenchOneInFlight,
    /// A bench step counts latencies in milliseconds, not microseconds.
    BenchInMillis,
    /// The first call on each connection ends UNAVAILABLE at once: a client
    /// that fails a call while its channel is still connecting instead of
    /// waiting for the connection.
    FirstCallUnavailable,
    /// A call with one response message (unary, client stream) that got
    /// none or two, then OK, is reported OK with whatever came: a missing
    /// answer read as an empty one.
    CardinalityUnchecked,
    /// Every call opens a channel (and so a connection) of its own instead
    /// of sharing its connection's one channel.
    ChannelPerCall,
    /// A stream's last response message is printed after its status line
    /// (a message callback racing the status callback on another thread).
    LastMessageAfterStatus,
    /// A compressed response message is gunzipped whatever its grpc-encoding
    /// says (an unknown one, or none): gzip is the one encoding it knows.
    GunzipAnyEncoding,
    /// A trailers-only status whose grpc-message has a broken %-escape loses
    /// its message (a strict percent-decoder that gives up with nothing).
    BrokenEscapeDropsMessage,
    /// The client's own deadline timer counts milliseconds in a signed 32-bit
    /// integer (Node's setTimeout): a deadline over 24.8 days away fires at once.
    #[value(name = "timer-in-32-bit-ms")]
    TimerIn32BitMs,
    /// A Trade step sends every order, half-closes, then reads the fills:
    /// a buffered, half-duplex call where the step asks for lock-step.
    SendsAllOrdersFirst,
    /// `read_pause_ms` is ignored: the client reads a stream as fast as it
    /// comes, so a step meant as a slow reader is none.
    ReadPauseIgnored,
    /// A stream the server reset is reported INTERNAL whatever the reset's
    /// code (CANCEL and ENHANCE_YOUR_CALM too): one status for every reset.
    ResetCodeIgnored,
    /// Calls wait for their connection until their deadline (gRPC's
    /// wait-for-ready): a call that fails on this side before any response
    /// header (a refused certificate, plaintext against TLS, no connection)
    /// is tried again every 100 ms instead of failing at once.
    WaitForReady,
    /// A response's encoding is reported as the request's: a step that
    /// compresses its request says its answer came gzipped, however it came.
    ResponseEncodingFromRequest,
    /// The receive limit is 4 MB (4,000,000 bytes), not 4 MiB: a response
    /// message between the two is refused RESOURCE_EXHAUSTED.
    ReceiveLimitDecimal,
    /// The receive limit is 5 MiB: a response just over 4 MiB is taken
    /// (one over 5 MiB is still refused).
    #[value(name = "receive-limit-5mib")]
    ReceiveLimit5Mib,
    /// The receive limit counts the 5-byte message prefix the other way: a
    /// message of up to 4 MiB and 5 bytes is taken.
    ReceiveLimitPlusPrefix,
    /// The metadata of a trailers-only response is reported among the
    /// headers too (a stack's header accessor that falls back to the
    /// trailers when no headers came).
    TrailersOnlyAsHeaders,
    /// A connection whose channel cannot be made (a certificate file that
    /// cannot be read) fails its calls INTERNAL, an exception passed on as
    /// it came, instead of UNAVAILABLE.
    UnusableChannelInternal,
    /// An OK status is printed with a message of its own making ("OK"),
    /// where the server sent none.
    OkMessageMadeUp,
    /// A call with one response message (unary, client stream) whose answer
    /// came, then an error status, prints that answer before the status (a
    /// raw call API's message callback taken as the result).
    AnswerOfFailedCall,
    /// Converts `cancel_after_ms` to whole seconds (an integer division): a
    /// cancel asked for after 150 ms comes at once, before the server had
    /// the call.
    CancelInWholeSeconds,
    /// A server-stream call whose deadline passes before any response header
    /// came is reported UNKNOWN (a stack's streaming helper that raises an
    /// error of its own for a call that never opened).
    HeaderlessStreamUnknown,
    /// A stream call (Monitor, Batch, Trade) asked to compress sends
    /// `grpc-encoding: gzip` but its messages uncompressed (Compressed-Flag
    /// 0): the stub's compression set for unary calls only, the header by hand.
    StreamRequestsUncompressed,
    /// A Monitor's `after_first` steps are started all at once instead of
    /// each after the one before it ended (a `Promise.all` over them).
    AfterFirstAtOnce,
    /// A stdin line that is not JSON ends the client with exit 1, an
    /// uncaught parse exception, instead of a usage error (2).
    #[value(name = "invalid-json-exit-1")]
    InvalidJsonExit1,
    /// A step's fields the contract does not define are dropped (a lenient
    /// JSON reader): a mistyped `timeout_msec` runs as a call without one.
    UnknownStepFieldsIgnored,
    /// A `connection`'s fields the contract does not define are dropped.
    UnknownConnectionFieldsIgnored,
    /// A request message's unknown fields are dropped (proto3 JSON parsed
    /// with "ignore unknown fields").
    UnknownMessageFieldsIgnored,
    /// A step with a method it does not know ends the client with exit 1
    /// (an uncaught lookup exception) instead of a usage error (2).
    #[value(name = "unknown-method-exit-1")]
    UnknownMethodExit1,
    /// A `-bin` metadata value that is not base64 fails the step's call
    /// INTERNAL instead of being a usage error.
    BadBinMetadataInternal,
    /// An option it does not know is dropped, with its value (a
    /// `parse_known_args`), instead of being a usage error.
    UnknownOptionsIgnored,
    /// A `compression` other than `gzip` or `identity` (a typo, `gzp`) runs the call
    /// uncompressed instead of being a usage error.
    UnknownCompressionUncompressed,
    /// `after_first` steps on a step that is not a Monitor are accepted
    /// instead of being a usage error.
    AfterFirstOffMonitorIgnored,
    /// Exits 1 when a call ended with another status than OK (the exit
    /// code read as "every call succeeded", not "the steps could be run").
    ExitOneOnErrorStatus,
    /// Never exits once its script is done (a thread or channel kept alive
    /// at the end): its stdin's end is not the end of the process.
    LingerAfterScript,
}
