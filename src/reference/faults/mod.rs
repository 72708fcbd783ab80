//! The deliberate bugs the reference can be started with (`--break`), so
//! that the tests prove each case can fail: every fault is a realistic bug of
//! a gRPC server or client, caught by the cases of its set (tests/blind_spots/).
//! The server's faults are here, the client's in client.rs.
mod client;
pub mod usage;
pub use client::ClientFault;

/// A deliberate bug the reference server can be started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Get of a missing key answers UNKNOWN instead of NOT_FOUND.
    WrongStatus,
    /// Monitor drops its second event.
    DropStreamMessage,
    /// x-stock-echo is not echoed.
    NoEcho,
    /// An mtls server accepts clients without a certificate.
    MtlsOptional,
    /// Serves only the first certificate of --cert-file, not the chain
    /// after it (a loader that reads one PEM block): a client that trusts
    /// only the root cannot verify it.
    CertChainLeafOnly,
    /// Trusts only the first certificate of --ca-file for client
    /// certificates: a CA bundle's later CAs are not trusted.
    ClientCaFirstOnly,
    /// Trade holds every fill until the client half-closes.
    HoldFills,
    /// Like wrong-status, but only in the first server started in this
    /// folder (a marker file remembers): a flaky implementation.
    FlakyOnce,
    /// The legacy KV service keeps a store of its own instead of sharing
    /// Stock's.
    KvOwnStore,
    /// x-stock-compress is ignored: responses are never compressed.
    NoCompressResponse,
    /// A binary echo stops at its first 0x00 byte (a C-string bug).
    TruncateBinAtNul,
    /// grpc-timeout is never read: the server sees no deadline.
    LoseDeadline,
    /// A call still running at its deadline is reset (RST_STREAM CANCEL, as
    /// grpc-go and grpc-java servers do), not ended DEADLINE_EXCEEDED in
    /// trailers 50 ms before it.
    ResetAtDeadline,
    /// x-stock-delay-ms is cut to whole seconds (an integer division): a
    /// delay under 1 s is none.
    DelayInWholeSeconds,
    /// x-stock-fail is applied before x-stock-delay-ms (the hooks run in
    /// the wrong order): a call that is to fail fails at once.
    FailBeforeDelay,
    /// x-stock-fail-message wins over x-stock-fail-special: a call with both
    /// ends with the given message, not the interop suite's special one.
    FailMessageBeatsSpecial,
    /// A test hook's number that is not one (`x-stock-delay-ms: soon`) is
    /// read as 0 instead of refusing the call INVALID_ARGUMENT.
    LenientHookNumbers,
    /// x-stock-deadline-ms reports what is left once x-stock-delay-ms is
    /// over, not the deadline the handler started with.
    ReportDeadlineAfterDelay,
    /// The server's own DEADLINE_EXCEEDED (a call still running at its
    /// deadline) carries the ErrorInfo of a forced failure: details where
    /// CONTRACT.md says other errors carry none.
    DeadlineWithErrorinfo,
    /// Inventory leaves keys whose value is empty out of key_count (an
    /// empty value read as no value).
    InventorySkipsEmptyValues,
    /// Put and Batch finish their work after the call was cancelled or its
    /// deadline passed (detached work; a Batch takes a cancelled stream as a
    /// half-close).
    ApplyAfterCancel,
    /// A Monitor whose client went away stays registered.
    KeepCancelledMonitors,
    /// A Monitor with max_events that ends before its count (deadline,
    /// cancel) stays registered until an event for it fails to send: only
    /// a Monitor without max_events watches for its client leaving.
    CountedMonitorUnwatchedOnNextEvent,
    /// The 4 MiB receive limit is raised to 16 MiB.
    NoSizeLimit,
    /// Batch does not check the value size (Put does).
    BatchNoValueLimit,
    /// Batch skips an item whose value is empty (`if item.value:` in
    /// Python, a falsy empty buffer in JavaScript): not counted, not applied.
    BatchSkipsEmptyItems,
    /// An overwrite adds the new value's length to Inventory's total bytes
    /// without taking off the old one.
    InventoryMiscount,
    /// proto.KV.Put does not check the value size (Stock.Put does).
    KvNoValueLimit,
    /// proto.KV.Put stores the value with a text appended (HashiCorp's
    /// example KV plugin appends "Written from plugin-go-grpc").
    KvValueSuffix,
    /// proto.KV.Put stores the value as text: bytes that are not UTF-8
    /// become U+FFFD.
    KvValueAsText,
    /// proto.KV.Put leaves a key that exists as it is (create only).
    KvFirstWriteWins,
    /// proto.KV.Get of a missing key ends UNKNOWN with a file error (a
    /// file-backed plugin), not NOT_FOUND.
    KvMissingUnknown,
    /// Put reads the version, yields, then writes version + 1: concurrent
    /// puts of one key lose updates.
    RacyPut,
    /// Monitor drops an event when its client reads slower than it sends
    /// (a non-blocking send to a full queue).
    DropWhenSlow,
    /// Errors carry no rich details (no grpc-status-details-bin).
    NoErrorDetails,
    /// The google.rpc.Status in grpc-status-details-bin carries code 0 (OK)
    /// whatever grpc-status says (a Status proto built without its code).
    DetailsCodeOk,
    /// Responses are compressed whenever the client accepts gzip, asked or not.
    CompressAlways,
    /// A Monitor that ends by max_events stays registered (a leaked watch).
    KeepFinishedMonitors,
    /// x-stock-compress: gzip is answered `grpc-encoding: gzip`, but the
    /// messages go out uncompressed (Compressed-Flag 0): it only says so.
    GzipHeaderOnly,
    /// A Monitor's x-stock-delay-ms is slept inside its stream, after the
    /// response headers went out, instead of before anything.
    HeadersBeforeDelay,
    /// x-stock-watchers counts the distinct patterns of the open Monitors
    /// (a map keyed by pattern), not the open streams: a second stream of a
    /// pattern, leaked or not, is not seen.
    WatchersByPattern,
    /// A Monitor that the server ends with an error (x-stock-fail-after)
    /// stays registered: the watch is let go on the happy path only.
    KeepFailedMonitors,
    /// Every error carries an ErrorInfo detail, NOT_FOUND included.
    DetailsOnEveryError,
    /// A Get of a missing key is NOT_FOUND with a google.rpc.ResourceInfo
    /// naming the key (a detail of a type the contract does not use).
    ResourceInfoOnNotFound,
    /// A Batch item over the 4 MiB receive limit ends the call UNKNOWN, not
    /// RESOURCE_EXHAUSTED (a request stream's reader that maps its size error
    /// by hand, as unary calls are not).
    StreamOversizeUnknown,
    /// Request headers are limited to 2 KiB in all (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE).
    SmallHeaderLimit,
    /// Request headers are limited to 8 KiB in all, not 16 KiB (C-core's
    /// soft `grpc.max_metadata_size` default, or a limit set in KiB twice).
    #[value(name = "header-limit-8kib")]
    HeaderLimit8Kib,
    /// Batch refuses a value of exactly the limit (`>=` for `>`).
    BatchLimitOffByOne,
    /// The echo and report trailers are sent only when the call succeeds.
    NoTrailersOnError,
    /// A refused Monitor or Trade request carries no details (unary calls do).
    NoDetailsOnStreams,
    /// Batch does not check the key length (Put does).
    BatchNoKeyLimit,
    /// A Batch item's bad key is refused with a field violation named
    /// `value` (a copy-paste slip).
    BatchKeyNamedValue,
    /// A Put that x-stock-fail fails is applied first (the hook's status
    /// returned after the work, as an interceptor on the way out does).
    ForcedPutApplied,
    /// Put validates its request before the hooks: an invalid Put beats
    /// x-stock-fail (INVALID_ARGUMENT where the contract says the forced code).
    ValidateBeforeHooks,
    /// proto.KV's refusals carry no rich details (a status built by hand).
    KvNoDetails,
    /// proto.KV.Get of a refused key (over 256 bytes) ends NOT_FOUND: every
    /// lookup error read as a missing key.
    KvBadKeyNotFound,
    /// Trade's forced failure carries no ErrorInfo (a status built by hand
    /// in the bidi handler).
    TradeForcedWithoutDetails,
    /// Batch's forced failure carries no ErrorInfo: the status rebuilt from
    /// its code and message once the items are read.
    BatchForcedWithoutDetails,
    /// Trade checks x-stock-fail after reading the next order: fail-after 0
    /// waits for an order, and a stream half-closed before one ends OK.
    TradeFailAfterReading,
    /// A Monitor that ends by max_events lets go of every watch of its
    /// pattern (a registry keyed by pattern): the other Monitors of that
    /// pattern stay open and never see another put.
    UnwatchByPattern,
    /// proto.KV.Put does not check the key length (Stock.Put does).
    KvNoKeyLimit,
    /// Trade keeps its sequence and positions in the service, shared by the
    /// streams open at the same time (per-call state on the servicer).
    SharedTradeBook,
    /// At most 16 calls at once per connection; more are refused at once
    /// (a concurrency limit with load shedding).
    #[value(name = "shed-over-16-calls")]
    ShedOver16Calls,
    /// Batch buffers the whole stream and refuses one over 8 MiB.
    BatchBufferLimit,
    /// Request headers past the 16 KiB limit close the whole connection
    /// (every call on it fails) instead of failing that one call.
    CloseOnBigHeaders,
    /// Request headers past the 16 KiB limit are never answered: the call
    /// hangs until its deadline.
    StallOnBigHeaders,
    /// Inventory ignores x-stock-count-prefix and counts every key.
    InventoryIgnoresPrefix,
    /// Inventory counts only under x-stock-count-prefix: without the test
    /// hook it answers 0 keys and 0 bytes (the real path left untried).
    InventoryOnlyWithPrefix,
    /// The process exits (status 3) when Audit is called: a crash, for the
    /// runner's handling of a shared server that dies.
    ExitOnAudit,
    /// A Batch whose stream breaks with its connection (not a cancel) applies
    /// the items that came before: a broken connection read as the end of
    /// the stream.
    BatchKeptOnBrokenConnection,
    /// A strict ping policy: the third PING on a connection closes it (no
    /// GOAWAY; plaintext only, the count is taken under HTTP/2).
    PunishPings,
    /// Serves a call of any content-type as gRPC (no HTTP 415).
    AnyContentType,
    /// One call at a time, its response included (one lock around the
    /// server): a stream whose reader stalls stalls every other call.
    SerialCalls,
    /// The number of request messages of a unary or server-streaming call
    /// is not checked: the first of two is served (and applied), a missing
    /// one is INTERNAL (tonic's own behaviour).
    CardinalityUnchecked,
    /// A compressed request message is gunzipped whatever its grpc-encoding
    /// says (an unknown one, or none): gzip is the one encoding it knows.
    GunzipAnyEncoding,
    /// grpc-timeout is kept as signed 64-bit nanoseconds and wraps: a
    /// deadline past ~292 years ends the call at once DEADLINE_EXCEEDED.
    TimeoutOverflow,
    /// Trade books an order without a side (SIDE_UNSPECIFIED) as a buy: a
    /// `side != SELL` test where the proto says every side but BUY sells.
    UnspecifiedSideBuys,
    /// Trade's fill carries SIDE_UNSPECIFIED for an order whose side the
    /// enum does not name (7, from a newer proto): a closed-enum decoder, or
    /// a servicer that copies the side through the generated enum type.
    UnnamedSideUnspecified,
    /// Trade refuses an order whose price is not above zero
    /// (INVALID_ARGUMENT), a check the proto does not make: only quantity
    /// must be > 0.
    PriceMustBePositive,
    /// Monitor sends the existing keys in the order of their UTF-16 code
    /// units (Java's `String.compareTo`, JavaScript's default sort), not of
    /// their bytes: a key past U+FFFF comes before one in U+E000..U+FFFF.
    #[value(name = "existing-in-utf16-order")]
    ExistingInUtf16Order,
    /// Health knows the server as a whole ("") only: Check of
    /// "stock.v1.Stock" is NOT_FOUND (a health service left at its default).
    HealthOverallOnly,
    /// Health answers SERVING for every service of the proto, Ledger too,
    /// which is never served (statuses set from the proto, not from what
    /// was registered).
    HealthForUnservedServices,
    /// Batch writes its items without telling the watchers: a Monitor never
    /// sees a put made by a Batch (a write path beside the one Put takes).
    BatchUnwatched,
    /// Batch tells the watchers of its items only once all are applied,
    /// each event read back from the store: an item that a later one of the
    /// Batch overwrote is seen with the later value and version.
    BatchNotifiedFromStore,
    /// Monitor sends every existing key before it counts toward max_events:
    /// a snapshot larger than the count is sent whole.
    SnapshotUncounted,
    /// Monitor's snapshot leaves out the keys whose value is empty (a
    /// truthiness test on the value): they are sent only as live events.
    SnapshotSkipsEmptyValues,
    /// A Put of the value a key already holds is skipped as a no-op: the
    /// version is not bumped and no watcher hears of it.
    UnchangedPutSkipped,
    /// Monitor matches its pattern as a path glob (Go's path.Match, Python's
    /// fnmatch): `?` and `[b]` match other keys, a star stops at a '/'.
    PatternAsGlob,
    /// Monitor matches its pattern as a regular expression, its star made
    /// `.*` and nothing escaped: a '.' matches any character.
    PatternAsRegex,
    /// Monitor reads the pattern "*" alone as the key "*" (a prefix pattern
    /// needs a prefix): it matches no key, where the proto says every key.
    LoneStarMatchesNothing,
    /// Monitor's prefix pattern matches a key that holds the prefix anywhere
    /// (a substring test, or an unanchored regular expression), not only at
    /// its start.
    PrefixAnywhere,
    /// Monitor's prefix pattern needs a byte after the prefix (`.+` for the
    /// star): `user/*` misses the key `user/` itself.
    StarNeedsAByte,
    /// Monitor reads any pattern with a star as a prefix up to its first
    /// star (a glob): the exact pattern `a*b` matches `a` and `ax`.
    StarInsideCuts,
    /// Monitor registers its watch before it validates the request: a
    /// refused Monitor leaves a watch behind, counted and fed for ever.
    RefusedMonitorRegistered,
    /// A watch queues at most 64 live events and drops the rest when its
    /// Monitor's reader falls behind (a bounded queue with a try-send).
    #[value(name = "watch-queue-of-64")]
    WatchQueueOf64,
    /// Trade reads quantities and prices as doubles (a JSON number, a
    /// JavaScript `Number`): past 2^53 they are rounded, and the fill and the
    /// position are off by one.
    Int64ThroughDouble,
    /// The 4 MiB receive limit counts the message's 5-byte prefix too: a
    /// request of exactly 4 MiB is refused RESOURCE_EXHAUSTED.
    ReceiveLimitCountsPrefix,
    /// Caps what it sends at the 4 MiB it receives (a send limit set to
    /// match the receive one): a client that takes larger messages gets
    /// an error instead of a 5 MiB answer.
    SendLimitAtReceiveLimit,
    /// Monitor refuses a pattern of spaces as if it were empty (a trim, or
    /// `isBlank`, before the emptiness check): " " is a valid exact key.
    BlankPatternRefused,
    /// A field violation names `max_events` by its JSON name `maxEvents`
    /// (the contract names the proto field).
    JsonFieldNames,
    /// A Monitor's watch is let go when its deadline passes but not when a
    /// call without a deadline is cancelled (cleanup hung on the deadline's
    /// timer, not on the call's end).
    UnwatchOnlyWithDeadline,
    /// x-stock-echo comes back lowercased: the value normalised along with
    /// the key (keys are case-insensitive, values are not).
    EchoLowercased,
    /// An empty x-stock-echo (or -bin) value is not echoed: an "is there a
    /// value" test that takes empty for missing (a truthiness check).
    EchoSkipsEmpty,
    /// Get and Put cut a key at its first NUL (a C string): the key
    /// "a\0b" is stored and read as "a".
    KeysCutAtNul,
    /// Get and Put trim the whitespace around a key: "a " is stored and
    /// read as "a" (a clean-up of input that is not free text).
    KeysTrimmed,
    /// Get and Put fold a key to lower case: "Key" is stored and read as
    /// "key" (a case-insensitive store).
    KeysCaseFolded,
    /// Reflection lists every service of the proto, Ledger too, which is
    /// never served (names taken from the proto, not from what was
    /// registered).
    ReflectionListsUnserved,
    /// Reflection hands out an older stock.proto, whose Stock has no
    /// Inventory (a descriptor set built once, not with the served code).
    ReflectionStaleDescriptor,
    /// Reflection's symbol index holds messages, enums and services but not
    /// methods (an index made by hand): FileContainingSymbol of
    /// `stock.v1.Stock.Get`, what `grpcurl describe` of a method sends, is
    /// NOT_FOUND.
    ReflectionNoMethodSymbols,
    /// A negative hook number (`x-stock-delay-ms: -5`) is read as 0 (a
    /// signed parse clamped at zero) instead of refusing the call
    /// INVALID_ARGUMENT.
    NegativeHookNumbers,
    /// x-stock-fail is read case-blind, and `OK` as no failure: `aborted`
    /// forces ABORTED and `OK` lets the call run (a code looked up by any
    /// spelling, OK included), where only the 16 upper-case non-OK names are codes.
    CaseBlindFailCodes,
    /// A unary call with x-stock-fail and x-stock-fail-after N > 0 runs
    /// normally: the fail waits for N response messages on every method.
    FailAfterOnUnary,
    /// Trade nets positions by the upper-cased symbol: ACME, acme and Acme
    /// share one position (each fill still names its symbol as sent).
    SymbolsCaseFolded,
    /// The server does not stop when its stdin ends (only on a signal): a
    /// runner that died leaves it behind.
    IgnoreStdinEof,
    /// The server catches SIGTERM and does nothing with it.
    IgnoreSigterm,
    /// The server catches SIGINT and does nothing with it.
    IgnoreSigint,
    /// Stopping, the server waits for its open calls to end (a graceful
    /// stop without a time limit) instead of cancelling them: an open
    /// Monitor keeps it running until the Monitor's deadline.
    DrainOnStop,
}
