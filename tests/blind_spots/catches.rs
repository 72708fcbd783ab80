//! What each deliberate bug of the reference (`--break`) must turn red:
//! the sets it is run against, and per fault a case and part of its reason.

/// The sets these faults are run against (every set a new case lives in).
pub(crate) const RUN_SETS: &str =
    "unary,client-stream,metadata,errors,deadlines,large,compression,cancellation,concurrency,flow-control,kv-compat,kv-only,faults";

/// The sets of the misbehaving HTTP/2 peers and keepalive, run with the
/// faults they catch (and the faults set beside them, which shares those
/// faults' catches; unary holds the control case).
pub(crate) const PEER_SETS: &str = "unary,faults,h2-servers,h2-clients,keepalive";

/// (fault, a set it may turn red, a case of that set it must turn red, part
/// of that case's reason); a fault may turn red only the sets named with it.
pub(crate) type Catch = (&'static str, &'static str, &'static str, &'static str);

pub(crate) const SERVER_FAULTS: &[Catch] = &[
    (
        "no-compress-response",
        "compression",
        "response-gzip-unary",
        "response encoding: expected gzip, got identity",
    ),
    (
        "no-compress-response",
        "compression",
        "response-gzip-server-stream",
        "response encoding: expected gzip, got identity",
    ),
    (
        "truncate-bin-at-nul",
        "metadata",
        "binary-echo-unary",
        "header x-stock-echo-bin: expected",
    ),
    (
        "lose-deadline",
        "deadlines",
        "deadline-seen-by-server",
        "trailer x-stock-deadline-ms: expected a number in 3000..=5500, got \"none\"",
    ),
    (
        "apply-after-cancel",
        "cancellation",
        "deadline-put-not-applied",
        "step 1 Get: status: expected NOT_FOUND, got OK",
    ),
    (
        "apply-after-cancel",
        "cancellation",
        "cancelled-batch-applies-nothing",
        "step 1 Get: status: expected NOT_FOUND, got OK",
    ),
    (
        "keep-cancelled-monitors",
        "cancellation",
        "cancelled-monitor-unregistered",
        "trailer x-stock-watchers: expected \"0\", got \"1\"",
    ),
    (
        "no-size-limit",
        "large",
        "request-over-4mib",
        "status: expected RESOURCE_EXHAUSTED, got INVALID_ARGUMENT",
    ),
    (
        "batch-no-value-limit",
        "client-stream",
        "batch-value-over-limit",
        "step 1 Batch: status: expected INVALID_ARGUMENT, got OK",
    ),
    (
        "inventory-miscount",
        "unary",
        "inventory-after-overwrites",
        "field totalValueBytes: expected",
    ),
    (
        "racy-put",
        "concurrency",
        "parallel-puts-none-lost",
        "step 1 Get: message 0: field version: expected \"200\"",
    ),
    (
        "drop-when-slow",
        "flow-control",
        "slow-reader-monitor",
        "step 32 Monitor: expected 32 message(s), got",
    ),
    (
        "batch-no-value-limit",
        "errors",
        "details-bad-value",
        "step 1 Batch: status: expected INVALID_ARGUMENT, got OK",
    ),
    (
        "no-error-details",
        "errors",
        "details-bad-key",
        "step 0 Put: error details: expected 1 [\"google.rpc.BadRequest\"], got 0 []",
    ),
    (
        "no-size-limit",
        "large",
        "gzip-request-over-4mib",
        "status: expected RESOURCE_EXHAUSTED, got INVALID_ARGUMENT",
    ),
    (
        "compress-always",
        "compression",
        "response-identity-unless-asked",
        "response encoding: expected identity, got gzip",
    ),
    (
        "keep-finished-monitors",
        "cancellation",
        "monitor-counted-while-open",
        "step 2 Inventory: trailer x-stock-watchers: expected \"0\", got \"1\"",
    ),
    (
        "details-on-every-error",
        "errors",
        "no-details-on-not-found",
        "error details: expected 0 [], got 1 [\"google.rpc.ErrorInfo\"]",
    ),
    // a server that closes the connection (every call on it) for one call's
    // headers over its limit, and one that never answers such a call
    (
        "close-on-big-headers",
        "metadata",
        "metadata-over-header-limit",
        "step 1 Monitor: status: expected OK, got",
    ),
    (
        "stall-on-big-headers",
        "metadata",
        "metadata-over-header-limit",
        "step 1.0 Put: status: expected any code but OK or DEADLINE_EXCEEDED, got DEADLINE_EXCEEDED",
    ),
    // a server that counts every key whatever x-stock-count-prefix says
    (
        "inventory-ignores-prefix",
        "unary",
        "inventory-by-prefix",
        "step 3 Inventory: message 0: field keyCount: expected",
    ),
    // a server that answers HTTP 431 to headers over its limit
    (
        "small-header-limit",
        "metadata",
        "metadata-4kib",
        "status: expected OK, got UNKNOWN",
    ),
    (
        "small-header-limit",
        "errors",
        "status-message-2kib",
        "status: expected INTERNAL, got UNKNOWN",
    ),
    (
        "batch-limit-off-by-one",
        "client-stream",
        "batch-value-at-limit",
        "status: expected OK, got INVALID_ARGUMENT",
    ),
    (
        "batch-limit-off-by-one",
        "flow-control",
        "large-client-stream",
        "status: expected OK, got INVALID_ARGUMENT",
    ),
    (
        "no-trailers-on-error",
        "metadata",
        "trailer-on-immediate-failure",
        "trailer x-stock-echo-trailer: expected \"failed-trailer\", got nothing",
    ),
    (
        "no-details-on-streams",
        "errors",
        "details-bad-stream-request",
        "step 0 Monitor: error details: expected 1 [\"google.rpc.BadRequest\"], got 0 []",
    ),
    (
        "batch-no-key-limit",
        "client-stream",
        "batch-key-over-limit",
        "step 0 Batch: status: expected INVALID_ARGUMENT, got OK",
    ),
    ("shared-trade-book", "concurrency", "parallel-trades", "Trade: message "),
    (
        "shed-over-16-calls",
        "concurrency",
        "parallel-gets",
        "Too many active requests for the connection",
    ),
    (
        "batch-buffer-limit",
        "flow-control",
        "large-client-stream",
        "step 0 Batch: status: expected OK, got RESOURCE_EXHAUSTED",
    ),
    (
        "batch-kept-on-broken-connection",
        "faults",
        "reset-mid-batch",
        "step 1 Get: status: expected NOT_FOUND, got OK",
    ),
    (
        "apply-after-cancel",
        "faults",
        "reset-mid-batch",
        "step 1 Get: status: expected NOT_FOUND, got OK",
    ),
];

/// Client faults that the misbehaving servers (h2-servers) and keepalive
/// show, with the faults-set catches of the same faults.
pub(crate) const PEER_CLIENT_FAULTS: &[Catch] = &[
    (
        "no-reconnect",
        "h2-servers",
        "goaway-in-first-call",
        // The GOAWAY came before the Put ended: the Get needs a new connection.
        "step 1 Get: status: expected OK, got UNAVAILABLE \"this channel opens one connection only",
    ),
    (
        "refused-stream-internal",
        "h2-servers",
        "refused-stream",
        "step 1 Get: status: expected OK or UNAVAILABLE, got INTERNAL",
    ),
    (
        "no-reconnect",
        "h2-servers",
        "too-many-pings",
        "step 2 Get: status: expected OK, got UNAVAILABLE",
    ),
    (
        "no-reconnect",
        "faults",
        "reset-mid-response",
        "step 2 Get: status: expected OK, got UNAVAILABLE",
    ),
    (
        "dead-channel-kept",
        "h2-servers",
        "too-many-pings",
        "step 2 Get: status: expected OK, got UNAVAILABLE",
    ),
    (
        "stream-reset-unknown",
        "h2-servers",
        "reset-after-headers",
        "step 1 Get: status: expected INTERNAL, got UNKNOWN",
    ),
    (
        "stream-reset-unknown",
        "h2-servers",
        "reset-after-first-message",
        "step 2 Monitor: status: expected INTERNAL, got UNKNOWN",
    ),
    (
        "reset-ignored",
        "h2-servers",
        "reset-after-headers",
        "step 1 Get: status: expected INTERNAL, got DEADLINE_EXCEEDED",
    ),
    (
        "reset-ignored",
        "h2-servers",
        "reset-after-first-message",
        "step 2 Monitor: status: expected INTERNAL, got DEADLINE_EXCEEDED",
    ),
    (
        "deadline-by-server-only",
        "h2-servers",
        "no-trailers",
        "client hung: no status line for step",
    ),
    (
        "deadline-after-the-fact",
        "h2-servers",
        "no-trailers",
        "client hung: no status line for step",
    ),
    (
        "no-timer-on-streams",
        "h2-servers",
        "no-trailers",
        "client hung: no status line for step \"none/h2-servers/no-trailers#2\"",
    ),
    (
        "short-default-deadline",
        "h2-servers",
        "one-stream-at-a-time",
        "step 1 copy 1 Get: status: expected OK, got DEADLINE_EXCEEDED",
    ),
    (
        "short-default-deadline",
        "h2-servers",
        "ping-flood",
        "step 0 Put: status: expected OK, got DEADLINE_EXCEEDED",
    ),
    (
        "window-updates-ignored",
        "h2-servers",
        "tiny-window",
        "step 0 Put: status: expected OK, got DEADLINE_EXCEEDED",
    ),
    (
        "window-updates-ignored",
        "faults",
        "reset-mid-response",
        "step 0 Put: status: expected OK, got DEADLINE_EXCEEDED",
    ),
    (
        "ping-acks-dropped",
        "h2-servers",
        "ping-flood",
        "step 1 Get: status: expected OK, got UNAVAILABLE",
    ),
    (
        "reset-behind-unread-missed",
        "faults",
        "reset-behind-unread-bytes",
        "step 1 Get: status: expected UNAVAILABLE, got DEADLINE_EXCEEDED",
    ),
    (
        "keepalive-ignored",
        "keepalive",
        "keepalive-finds-a-dead-connection",
        "step 0 Monitor: status: expected UNAVAILABLE, got DEADLINE_EXCEEDED",
    ),
    (
        "no-reconnect",
        "faults",
        "reset-mid-request",
        "step 2 Put: status: expected OK, got UNAVAILABLE",
    ),
    (
        "no-reconnect",
        "faults",
        "close-mid-response",
        "step 2 Get: status: expected OK, got UNAVAILABLE",
    ),
    (
        "window-updates-ignored",
        "faults",
        "close-mid-response",
        "step 0 Put: status: expected OK, got DEADLINE_EXCEEDED",
    ),
    (
        "window-updates-ignored",
        "faults",
        "blackhole-mid-response",
        "step 0 Put: status: expected OK, got DEADLINE_EXCEEDED",
    ),
    (
        "dead-channel-kept",
        "faults",
        "reset-mid-request",
        "step 2 Put: status: expected OK, got UNAVAILABLE",
    ),
    (
        "deadline-by-server-only",
        "faults",
        "blackhole-mid-response",
        "client hung: no status line for step",
    ),
    (
        "deadline-after-the-fact",
        "faults",
        "blackhole-mid-response",
        "client hung: no status line for step",
    ),
    (
        "no-timer-on-streams",
        "faults",
        "blackhole-mid-stream",
        "client hung: no status line for step",
    ),
    (
        "short-default-deadline",
        "faults",
        "shaped-calls",
        "step 1 Put: status: expected OK, got DEADLINE_EXCEEDED",
    ),
];

/// Server faults that the misbehaving reference client (h2-clients) shows.
pub(crate) const H2_CLIENT_FAULTS: &[Catch] = &[
    (
        "apply-after-cancel",
        "h2-clients",
        "reset-mid-batch",
        "step 1 Get: status: expected NOT_FOUND, got OK",
    ),
    (
        "batch-kept-on-broken-connection",
        "h2-clients",
        "close-mid-frame",
        "step 1 Get: status: expected NOT_FOUND, got OK",
    ),
    (
        "shed-over-16-calls",
        "h2-clients",
        "thousand-streams",
        "step 1 Get: status: expected OK, got RESOURCE_EXHAUSTED",
    ),
    (
        "any-content-type",
        "h2-clients",
        "bad-content-type",
        "step 1 Get: status: expected any code but OK or UNAVAILABLE, got OK",
    ),
];

pub(crate) const KV_FAULTS: &[Catch] = &[
    (
        "kv-value-suffix",
        "kv-only",
        "kv-round-trip",
        "step 1 proto.KV.Get: message 0: field value: expected \"aGVsbG8sIHBsdWdpbg==\"",
    ),
    (
        "kv-value-suffix",
        "kv-compat",
        "kv-put-stock-get",
        "step 1 Get: message 0: field value: expected \"bGVnYWN5\"",
    ),
    (
        "kv-value-as-text",
        "kv-only",
        "kv-binary-value",
        "step 1 proto.KV.Get: message 0: field value: expected \"AAECAwQF",
    ),
    (
        "kv-first-write-wins",
        "kv-only",
        "kv-overwrite",
        "step 2 proto.KV.Get: message 0: field value: expected \"c2Vjb25k\", got \"Zmlyc3Q=\"",
    ),
    (
        "kv-first-write-wins",
        "kv-compat",
        "kv-put-bumps-version",
        "expected \"Mg==\", got \"MQ==\"",
    ),
    (
        "kv-missing-unknown",
        "kv-only",
        "kv-missing-key",
        "step 0 proto.KV.Get: status: expected NOT_FOUND, got UNKNOWN",
    ),
    (
        "kv-missing-unknown",
        "kv-compat",
        "kv-get-missing",
        "step 0 proto.KV.Get: status: expected NOT_FOUND, got UNKNOWN",
    ),
    (
        "kv-no-value-limit",
        "kv-compat",
        "kv-put-value-over-limit",
        "step 1 proto.KV.Put: status: expected INVALID_ARGUMENT, got OK",
    ),
    (
        "kv-no-key-limit",
        "kv-compat",
        "kv-put-key-over-limit",
        "step 0 proto.KV.Put: status: expected INVALID_ARGUMENT, got OK",
    ),
];

pub(crate) const CLIENT_FAULTS: &[Catch] = &[
    (
        "no-compress",
        "compression",
        "gzip-unary",
        "trailer x-stock-request-encoding: expected \"gzip\", got \"identity\"",
    ),
    (
        "no-compress",
        "compression",
        "gzip-client-stream",
        "trailer x-stock-request-encoding: expected \"gzip\", got \"identity\"",
    ),
    (
        "headers-as-trailers",
        "metadata",
        "header-or-trailer-unary",
        "trailer x-stock-echo-header: expected none, got \"only-a-header\"",
    ),
    (
        "ignore-cancel",
        "cancellation",
        "cancelled-put-not-applied",
        "step 0 Put: status: expected CANCELLED, got OK",
    ),
    (
        "bin-as-text",
        "metadata",
        "binary-echo-on-failure",
        "trailer x-stock-echo-bin: expected \"AA==\", got",
    ),
    // the non-ASCII status message travels to the server as -bin metadata
    (
        "bin-as-text",
        "errors",
        "status-message-unicode",
        "status message: expected \"prix: 12 €",
    ),
    (
        "percent-encoded-message",
        "errors",
        "status-message-unicode",
        "status message: expected \"prix: 12 €",
    ),
    (
        "no-receive-limit",
        "large",
        "response-over-4mib",
        "step 1 Get: status: expected RESOURCE_EXHAUSTED, got OK",
    ),
    (
        "compress-always",
        "compression",
        "identity-unless-asked",
        "trailer x-stock-request-encoding: expected \"identity\", got \"gzip\"",
    ),
    (
        "deadline-after-the-fact",
        "deadlines",
        "delayed-unary",
        "step 0 Inventory: took 50",
    ),
    (
        "deadline-after-the-fact",
        "cancellation",
        "deadline-put-not-applied",
        "more than the 4000 ms allowed",
    ),
    (
        "default-deadline",
        "deadlines",
        "no-deadline-seen-by-server",
        "trailer x-stock-deadline-ms: expected \"none\", got \"60000\"",
    ),
    (
        "no-details",
        "errors",
        "details-forced",
        "step 0 Get: error details: expected 1 [\"google.rpc.ErrorInfo\"], got 0 []",
    ),
    (
        "deadline-after-the-fact",
        "faults",
        "blackhole-mid-response",
        "client hung: no status line for step",
    ),
    (
        "deadline-by-server-only",
        "faults",
        "blackhole-mid-response",
        "client hung: no status line for step",
    ),
    (
        "deadline-by-server-only",
        "faults",
        "blackhole-mid-stream",
        "client hung: no status line for step",
    ),
    (
        "no-timer-on-streams",
        "faults",
        "blackhole-mid-stream",
        "client hung: no status line for step",
    ),
    (
        "dead-channel-kept",
        "faults",
        "reset-mid-request",
        "step 2 Put: status: expected OK, got UNAVAILABLE",
    ),
    (
        "dead-channel-kept",
        "faults",
        "reset-mid-response",
        "step 2 Get: status: expected OK, got UNAVAILABLE",
    ),
    (
        "dead-channel-kept",
        "faults",
        "close-mid-response",
        "step 2 Get: status: expected OK, got UNAVAILABLE",
    ),
    (
        "short-default-deadline",
        "faults",
        "shaped-calls",
        "step 1 Put: status: expected OK, got DEADLINE_EXCEEDED",
    ),
];

/// Sets a fault may also turn red, beside those of its catches: the other
/// Inventory counts see the keys of tests running beside them.
pub(crate) const ALSO_RED: &[(&str, &str)] = &[
    ("inventory-ignores-prefix", "client-stream"),
    ("inventory-ignores-prefix", "kv-compat"),
];
