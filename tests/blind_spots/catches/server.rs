//! What each deliberate bug of the reference server must turn red.
use super::{Catch, TlsCatch};

pub(crate) const SERVER_FAULTS: &[Catch] = &[
    (
        "echo-skips-empty",
        "metadata",
        "echo-empty-values",
        "header x-stock-echo: expected \"\", got nothing",
    ),
    (
        "keys-trimmed",
        "unary",
        "keys-are-exact",
        "step 2 Get: status: expected NOT_FOUND, got OK",
    ),
    (
        "keys-case-folded",
        "unary",
        "keys-are-exact",
        "step 2 Get: status: expected NOT_FOUND, got OK",
    ),
    (
        "unchanged-put-skipped",
        "unary",
        "same-value-put-bumps-version",
        "step 2 Get: message 0: field version: expected \"2\", got \"1\"",
    ),
    (
        "keys-cut-at-nul",
        "unary",
        "key-with-nul",
        "step 1 Get: status: expected NOT_FOUND, got OK",
    ),
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
        "counted-monitor-unwatched-on-next-event",
        "cancellation",
        "counted-monitor-unregistered-early",
        "step 3 Inventory: trailer x-stock-watchers: expected \"0\", got \"2\"",
    ),
    (
        "no-size-limit",
        "large",
        "request-over-4mib",
        "status: expected RESOURCE_EXHAUSTED, got INVALID_ARGUMENT",
    ),
    (
        "receive-limit-counts-prefix",
        "large",
        "request-at-4mib",
        "step 0 Put: status: expected INVALID_ARGUMENT, got RESOURCE_EXHAUSTED",
    ),
    (
        "receive-limit-counts-prefix",
        "large",
        "gzip-request-at-4mib",
        "step 0 Put: status: expected INVALID_ARGUMENT, got RESOURCE_EXHAUSTED",
    ),
    (
        "forced-put-applied",
        "errors",
        "forced-put-applies-nothing",
        "step 1 Get: status: expected NOT_FOUND, got OK",
    ),
    (
        "validate-before-hooks",
        "errors",
        "forced-failure-before-validation",
        "step 0 Put: status: expected UNAVAILABLE, got INVALID_ARGUMENT",
    ),
    (
        "kv-no-details",
        "kv-compat",
        "kv-get-invalid-key",
        "step 0 proto.KV.Get: error details: expected 1 [\"google.rpc.BadRequest\"], got 0 []",
    ),
    (
        "kv-no-details",
        "kv-compat",
        "kv-put-invalid-key",
        "step 1 proto.KV.Put: error details: expected 1 [\"google.rpc.BadRequest\"], got 0 []",
    ),
    (
        "kv-bad-key-not-found",
        "kv-compat",
        "kv-get-invalid-key",
        "step 0 proto.KV.Get: status: expected INVALID_ARGUMENT, got NOT_FOUND",
    ),
    (
        "batch-key-named-value",
        "client-stream",
        "batch-key-over-limit",
        "step 0 Batch: error details: detail 0.fieldViolations[0].field: expected \"key\", got \"value\"",
    ),
    (
        "report-deadline-after-delay",
        "deadlines",
        "deadline-seen-before-the-delay",
        "step 0 Inventory: trailer x-stock-deadline-ms: expected a number in 5100..=10400, got",
    ),
    (
        "lenient-hook-numbers",
        "errors",
        "bad-hook-value-refused",
        "step 1 Put: status: expected INVALID_ARGUMENT, got OK",
    ),
    (
        "negative-hook-numbers",
        "errors",
        "bad-hook-value-refused",
        "step 2 Put: status: expected INVALID_ARGUMENT, got OK",
    ),
    (
        "case-blind-fail-codes",
        "errors",
        "bad-fail-code-refused",
        "step 0 Get: status: expected INVALID_ARGUMENT, got ABORTED \"forced ABORTED\"",
    ),
    (
        "case-blind-fail-codes",
        "errors",
        "bad-fail-code-refused",
        "step 1 Put: status: expected INVALID_ARGUMENT, got OK",
    ),
    (
        "fail-after-on-unary",
        "errors",
        "forced-unary-ignores-fail-after",
        "step 0 Put: status: expected ABORTED, got OK",
    ),
    (
        "fail-message-beats-special",
        "errors",
        "special-message-with-code",
        "step 0 Get: status message: expected \"\\t\\ntest with whitespace",
    ),
    (
        "batch-forced-without-details",
        "errors",
        "forced-batch-failure-applies-nothing",
        "step 0 Batch: error details: expected 1 [\"google.rpc.ErrorInfo\"], got 0 []",
    ),
    (
        "trade-forced-without-details",
        "errors",
        "forced-trade-failure-at-once",
        "step 0 Trade: error details: expected 1 [\"google.rpc.ErrorInfo\"], got 0 []",
    ),
    (
        "trade-fail-after-reading",
        "errors",
        "forced-trade-failure-at-once",
        "step 0 Trade: status: expected RESOURCE_EXHAUSTED, got OK",
    ),
    (
        "delay-in-whole-seconds",
        "errors",
        "forced-failure-after-delay",
        "step 0 Get: took",
    ),
    (
        "fail-before-delay",
        "errors",
        "forced-failure-after-delay",
        "step 0 Get: took",
    ),
    (
        "inventory-skips-empty-values",
        "unary",
        "empty-value",
        "step 3 Inventory: message 0: field keyCount: expected",
    ),
    (
        "trade-fail-after-reading",
        "errors",
        "forced-trade-failure-after-last-fill",
        "step 0 Trade: status: expected ABORTED, got OK",
    ),
    (
        "refused-monitor-registered",
        "cancellation",
        "refused-monitor-unregistered",
        "step 1 Inventory: trailer x-stock-watchers: expected \"0\", got \"1\"",
    ),
    (
        "watch-queue-of-64",
        "flow-control",
        "slow-reader-live-burst",
        "step 1 Monitor: expected 101 message(s), got",
    ),
    (
        "inventory-only-with-prefix",
        "unary",
        "inventory-counts-every-key",
        "step 2 Inventory: message 0: field keyCount: expected at least 1 (0 from step `before` +1), got \"0\"",
    ),
    (
        "batch-skips-empty-items",
        "client-stream",
        "batch-empty-values",
        "step 0 Batch: message 0: field items: expected 3, got 1",
    ),
    (
        "details-code-ok",
        "errors",
        "details-bad-key",
        "step 0 Put: error details: expected 1 [\"google.rpc.BadRequest\"], got 0 []",
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
        "delay-in-whole-seconds",
        "deadlines",
        "delay-within-deadline",
        "less than the 290 ms the step lasts at least",
    ),
    (
        "unwatch-only-with-deadline",
        "cancellation",
        "cancelled-monitor-without-deadline-unregistered",
        "step 2 Inventory: trailer x-stock-watchers: expected \"0\", got \"1\"",
    ),
    (
        "echo-lowercased",
        "metadata",
        "echo-unary",
        "step 0 Inventory: header x-stock-echo: expected \"Unary-Echo 1\", got \"unary-echo 1\"",
    ),
    (
        "json-field-names",
        "errors",
        "details-bad-stream-request",
        "step 1 Monitor: error details: detail 0.fieldViolations[0].field: expected \"max_events\", got \"maxEvents\"",
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
        "keep-failed-monitors",
        "cancellation",
        "failed-monitor-unregistered",
        "step 3 Inventory: trailer x-stock-watchers: expected \"0\", got \"1\"",
    ),
    (
        "watchers-by-pattern",
        "cancellation",
        "two-monitors-of-one-pattern-counted",
        "trailer x-stock-watchers: expected \"2\", got \"1\"",
    ),
    (
        "headers-before-delay",
        "cancellation",
        "cancelled-put-not-applied",
        "step 4 Monitor: header x-stock-echo: expected none, got \"late\"",
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
    (
        "stream-oversize-unknown",
        "large",
        "gzip-batch-item-over-4mib",
        "step 0 Batch: status: expected RESOURCE_EXHAUSTED, got UNKNOWN",
    ),
    (
        "resource-info-on-not-found",
        "errors",
        "no-details-on-not-found",
        "error details: expected 0 [], got 1 [\"google.rpc.ResourceInfo\"]",
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
        "header-limit-8kib",
        "metadata",
        "metadata-under-header-limit",
        "step 0 Put: status: expected OK, got UNKNOWN",
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

/// Server faults that the misbehaving reference client (h2-clients) shows.
pub(crate) const H2_CLIENT_FAULTS: &[Catch] = &[
    (
        "gzip-header-only",
        "h2-clients",
        "response-messages-compressed",
        "step 2 Get: response messages with the Compressed-Flag set: expected 1/1, got 0/1",
    ),
    (
        // Here deterministically: no timer on the client's side races the
        // server's status (deadlines/delayed-unary checks it too, when the
        // server's status arrives first, as it does on an idle machine).
        "deadline-with-errorinfo",
        "h2-clients",
        "deadline-ended-by-server",
        "step 0 Get: error details: expected 0 [], got 1 [\"google.rpc.ErrorInfo\"]",
    ),
    (
        "reset-at-deadline",
        "h2-clients",
        "deadline-ended-by-server",
        "step 0 Get: status: expected DEADLINE_EXCEEDED, got CANCELLED \"the server reset the stream (RST_STREAM CANCEL), no trailers\"",
    ),
    (
        "send-limit-at-receive-limit",
        "h2-clients",
        "response-over-4mib-sent-whole",
        "step 1 Get: status: expected OK, got RESOURCE_EXHAUSTED",
    ),
    (
        "timeout-overflow",
        "h2-clients",
        "huge-timeout",
        "step 0 Put: status: expected OK, got DEADLINE_EXCEEDED",
    ),
    (
        "gunzip-any-encoding",
        "h2-clients",
        "unknown-request-encoding",
        "step 0 Put: status: expected UNIMPLEMENTED, got OK",
    ),
    (
        "gunzip-any-encoding",
        "h2-clients",
        "compressed-flag-without-encoding",
        "step 0 Put: status: expected INTERNAL, got OK",
    ),
    (
        "cardinality-unchecked",
        "h2-clients",
        "two-request-messages",
        "step 0 Put: status: expected UNIMPLEMENTED, got OK",
    ),
    (
        "cardinality-unchecked",
        "h2-clients",
        "two-request-messages",
        "step 1 Get: status: expected NOT_FOUND, got OK",
    ),
    (
        "cardinality-unchecked",
        "h2-clients",
        "two-request-messages",
        "step 2 Monitor: status: expected UNIMPLEMENTED, got DEADLINE_EXCEEDED",
    ),
    (
        "cardinality-unchecked",
        "h2-clients",
        "no-request-message",
        "step 0 Inventory: status: expected UNIMPLEMENTED, got INTERNAL",
    ),
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

/// The server's own exit (cases/lifecycle.toml): each case has a server of
/// its own, so a fault is told apart case by case.
pub(crate) const LIFECYCLE_FAULTS: &[Catch] = &[
    (
        "ignore-stdin-eof",
        "lifecycle",
        "exits-on-stdin-eof",
        "exit: expected within 3000 ms of its stdin's end with a Monitor open, but it had not exited (then it exited on SIGTERM)",
    ),
    (
        "ignore-sigterm",
        "lifecycle",
        "exits-on-sigterm",
        "exit: expected within 3000 ms of SIGTERM with a Monitor open, but it had not exited",
    ),
    (
        "drain-on-stop",
        "lifecycle",
        "exits-on-stdin-eof",
        "but it had not exited (then it needed SIGKILL)",
    ),
    (
        "drain-on-stop",
        "lifecycle",
        "exits-on-sigterm",
        "but it had not exited (then it needed SIGKILL)",
    ),
    (
        "ignore-sigint",
        "lifecycle",
        "exits-on-sigint",
        "exit: expected within 3000 ms of SIGINT with a Monitor open, but it had not exited",
    ),
    (
        "drain-on-stop",
        "lifecycle",
        "exits-on-sigint",
        "but it had not exited (then it needed SIGKILL)",
    ),
];

/// Server bugs that the bidi set shows (run with `BIDI_SETS`).
pub(crate) const BIDI_SERVER_FAULTS: &[Catch] = &[
    (
        "unnamed-side-unspecified",
        "bidi",
        "unknown-side-kept",
        "step 0 Trade: message 1: field side: expected 7, got \"SIDE_UNSPECIFIED\"",
    ),
    (
        "price-must-be-positive",
        "bidi",
        "odd-orders-filled-as-sent",
        "step 0 Trade: status: expected OK, got INVALID_ARGUMENT",
    ),
];

/// Server bugs of the server-stream set.
pub(crate) const STREAM_SERVER_FAULTS: &[Catch] = &[
    (
        "batch-notified-from-store",
        "server-stream",
        "batch-overwrites-seen-in-turn",
        "step 1 Monitor: message 1: field value: expected \"dHdv\", got \"Zm91cg==\"",
    ),
    (
        "snapshot-uncounted",
        "server-stream",
        "max-events-counts-existing-keys",
        "step 3 Monitor: expected 2 message(s), got 3",
    ),
    (
        "snapshot-skips-empty-values",
        "server-stream",
        "existing-empty-value-sent",
        "step 3 Monitor: message 1: field key: expected",
    ),
    (
        "pattern-as-glob",
        "server-stream",
        "patterns-are-not-globs",
        "step 2 Monitor: message 0: field key: expected \"rust/server-stream.patterns-are-not-globs/?\"",
    ),
    // a path glob's star stops at '/': the d/x/y step, and the lone star
    // matches no key (every key here holds a '/')
    (
        "pattern-as-glob",
        "server-stream",
        "patterns-are-not-globs",
        "step 11 Monitor: expected 2 message(s), got 1",
    ),
    (
        "pattern-as-glob",
        "server-stream",
        "lone-star-matches-every-key",
        "step 1 Monitor: expected 1 message(s), got 0",
    ),
    (
        "pattern-as-regex",
        "server-stream",
        "patterns-are-not-globs",
        "step 8 Monitor: message 0: field key: expected \"rust/server-stream.patterns-are-not-globs/a.c\", got \"rust/server-stream.patterns-are-not-globs/a-c\"",
    ),
];

/// A server that reads only the first PEM block of its certificate file
/// (the chain is lost) or of its CA file (a bundle's second CA is lost).
pub(crate) const TLS_SERVER_FAULTS: &[TlsCatch] = &[
    (
        "cert-chain-leaf-only",
        "server",
        "server-chain-via-intermediate",
        "step 0 Inventory: status: expected OK, got UNAVAILABLE \"invalid peer certificate: UnknownIssuer\"",
    ),
    (
        "cert-chain-leaf-only",
        "mtls",
        "server-chain-via-intermediate",
        "step 0 Inventory: status: expected OK, got UNAVAILABLE \"invalid peer certificate: UnknownIssuer\"",
    ),
    (
        "client-ca-first-only",
        "mtls",
        "server-chain-via-intermediate",
        "step 0 Inventory: status: expected OK, got UNAVAILABLE",
    ),
];
