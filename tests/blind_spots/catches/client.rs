//! What each deliberate bug of the reference client must turn red.
use super::{Catch, TlsCatch};

/// Client faults that the misbehaving servers (h2-servers) and keepalive
/// show, with the faults-set catches of the same faults.
pub(crate) const PEER_CLIENT_FAULTS: &[Catch] = &[
    (
        "send-limit-4mib",
        "h2-servers",
        "request-over-4mib-sent-whole",
        "step 0 Put: status: expected OK, got INTERNAL",
    ),
    (
        "reset-code-ignored",
        "h2-servers",
        "cancel-after-headers",
        "step 1 Get: status: expected CANCELLED, got INTERNAL",
    ),
    (
        "reset-code-ignored",
        "h2-servers",
        "calm-after-headers",
        "step 1 Get: status: expected RESOURCE_EXHAUSTED, got INTERNAL",
    ),
    (
        "sends-all-orders-first",
        "h2-servers",
        "lock-step-trade",
        "step 0 Trade: status: expected OK, got FAILED_PRECONDITION \"peer: the next order came before the fill",
    ),
    (
        "broken-escape-drops-message",
        "h2-servers",
        "broken-percent-in-status-message",
        "step 0 Get: status message: expected it to contain \"peer: no such key\", got \"\"",
    ),
    (
        "gunzip-any-encoding",
        "h2-servers",
        "unknown-response-encoding",
        "step 1 Get: status: expected INTERNAL, got OK",
    ),
    (
        "gunzip-any-encoding",
        "h2-servers",
        "compressed-response-without-encoding",
        "step 1 Get: status: expected INTERNAL, got OK",
    ),
    (
        "ok-message-made-up",
        "h2-servers",
        "goaway-in-first-call",
        "step 1 Get: status message: expected \"\", got \"OK\"",
    ),
    (
        "trailers-only-as-headers",
        "h2-servers",
        "trailers-only-error",
        "step 0 Get: header x-stock-echo: expected none, got \"only-trailers\"",
    ),
    (
        "response-encoding-from-request",
        "h2-servers",
        "uncompressed-answer-to-gzip-request",
        "step 1 Get: response encoding: expected identity, got gzip",
    ),
    (
        "channel-per-call",
        "h2-servers",
        "calls-share-one-connection",
        "step 2 copy 0 Get: status: expected OK, got",
    ),
    (
        // The proxy's reset meets the Put on a connection of its own.
        "channel-per-call",
        "faults",
        "reset-mid-request",
        "step 1 Put: status: expected UNAVAILABLE, got OK",
    ),
    (
        "answer-of-failed-call",
        "h2-servers",
        "answer-then-error",
        "step 1 Get: expected 0 message(s), got 1",
    ),
    (
        "answer-of-failed-call",
        "h2-servers",
        "answer-then-error",
        "step 2 Batch: expected 0 message(s), got 1",
    ),
    (
        "cardinality-unchecked",
        "h2-servers",
        "no-response-message",
        "step 1 Get: status: expected UNIMPLEMENTED, got OK",
    ),
    (
        "cardinality-unchecked",
        "h2-servers",
        "no-response-message",
        "step 2 Batch: status: expected UNIMPLEMENTED, got OK",
    ),
    (
        "cardinality-unchecked",
        "h2-servers",
        "two-response-messages",
        "step 1 Get: status: expected UNIMPLEMENTED, got OK",
    ),
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
        // UNAVAILABLE at once when the GOAWAY came before the Get; under
        // load it can come just after the Get's stream opened, which then
        // waits on the dead connection until its deadline (cargo test, 2 cores).
        "step 2 Get: status: expected OK, got",
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
        "keepalive-only-with-calls",
        "keepalive",
        "keepalive-while-idle",
        "step 2 Get: status: expected OK, got",
    ),
    (
        "no-reconnect",
        "keepalive",
        "keepalive-while-idle",
        "step 2 Get: status: expected OK, got UNAVAILABLE",
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

pub(crate) const CLIENT_FAULTS: &[Catch] = &[
    (
        "batch-skips-empty-items",
        "client-stream",
        "batch-empty-values",
        "step 0 Batch: message 0: field items: expected 3, got 1",
    ),
    (
        "cancel-after-messages-ignored",
        "cancellation",
        "cancelled-monitor-unregistered",
        "step 1 Monitor: status: expected CANCELLED, got DEADLINE_EXCEEDED",
    ),
    (
        "cancel-after-messages-ignored",
        "cancellation",
        "counted-monitor-unregistered-early",
        "step 2 Monitor: status: expected CANCELLED, got DEADLINE_EXCEEDED",
    ),
    (
        "deadline-up-to-whole-seconds",
        "deadlines",
        "delayed-unary",
        "more than the 940 ms allowed",
    ),
    (
        "deadline-in-whole-seconds",
        "deadlines",
        "delayed-unary",
        "less than the 40 ms the step lasts at least",
    ),
    (
        "read-pause-ignored",
        "flow-control",
        "slow-reader-monitor",
        "ms, less than the 1240 ms the step lasts at least",
    ),
    (
        "timer-in-32-bit-ms",
        "deadlines",
        "month-long-deadline-seen-by-server",
        "step 0 Inventory: status: expected OK, got DEADLINE_EXCEEDED",
    ),
    (
        // The runner's own check: a line after its place is a reason.
        "last-message-after-status",
        "cancellation",
        "monitor-counted-while-open",
        "step #1 printed a message after its status line",
    ),
    (
        "last-message-after-status",
        "metadata",
        "echo-server-stream",
        "output after the test's last status line",
    ),
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
        "cancel-in-whole-seconds",
        "cancellation",
        "cancelled-put-not-applied",
        "step 0 Put: took ",
    ),
    (
        "cancel-in-whole-seconds",
        "cancellation",
        "cancelled-batch-applies-nothing",
        "less than the 100 ms the step lasts at least",
    ),
    (
        "cancel-in-whole-seconds",
        "cancellation",
        "cancelled-trade-then-channel-works",
        "step 0 Trade: took ",
    ),
    (
        "headerless-stream-unknown",
        "deadlines",
        "delayed-monitor",
        "step 0 Monitor: status: expected DEADLINE_EXCEEDED, got UNKNOWN",
    ),
    (
        "stream-requests-uncompressed",
        "compression",
        "gzip-messages-compressed",
        "step 2 Monitor: trailer x-stock-request-compressed: expected \"1/1\", got \"0/1\"",
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
        "receive-limit-5mib",
        "large",
        "response-at-4mib",
        "step 3 Get: status: expected RESOURCE_EXHAUSTED, got OK",
    ),
    (
        "receive-limit-plus-prefix",
        "large",
        "response-at-4mib",
        "step 3 Get: status: expected RESOURCE_EXHAUSTED, got OK",
    ),
    (
        "receive-limit-decimal",
        "large",
        "response-at-4mib",
        "step 1 Get: status: expected OK, got RESOURCE_EXHAUSTED",
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

/// Client bugs that the server-stream set shows (run with `STREAM_SETS`).
pub(crate) const STREAM_CLIENT_FAULTS: &[Catch] = &[(
    "after-first-at-once",
    "server-stream",
    "after-first-in-order",
    "step 1 Monitor: message 1: field value: expected \"Zmlyc3Q=\", got \"c2Vjb25k\"",
)];

/// Client bugs that the bidi set shows (run with `BIDI_SETS`).
pub(crate) const BIDI_CLIENT_FAULTS: &[Catch] = &[(
    "unnamed-side-sent-unspecified",
    "bidi",
    "unknown-side-kept",
    "step 0 Trade: message 1: field side: expected 7, got \"SIDE_UNSPECIFIED\"",
)];

/// Client bugs of the usage set (run with `USAGE_SETS`): each turns red its
/// one case of the set, and no other (checked case by case).
pub(crate) const USAGE_CLIENT_FAULTS: &[Catch] = &[
    (
        "invalid-json-exit-1",
        "usage",
        "invalid-json",
        "exit code: expected 2 (a usage error), got 1",
    ),
    (
        "unknown-step-fields-ignored",
        "usage",
        "unknown-step-field",
        "exit code: expected 2 (a usage error), got 0 (it ran the script)",
    ),
    (
        "unknown-connection-fields-ignored",
        "usage",
        "unknown-connection-field",
        "the first a status line for step \"usage\": UNAVAILABLE",
    ),
    (
        "unknown-message-fields-ignored",
        "usage",
        "unknown-request-field",
        "the first a status line for step \"usage\": INVALID_ARGUMENT",
    ),
    (
        "unknown-method-exit-1",
        "usage",
        "unknown-method",
        "exit code: expected 2 (a usage error), got 1",
    ),
    (
        "bad-bin-metadata-internal",
        "usage",
        "bad-bin-metadata",
        "the first a status line for step \"usage\": INTERNAL",
    ),
    (
        "unknown-options-ignored",
        "usage",
        "unknown-option",
        "the first a status line for step \"usage\": NOT_FOUND",
    ),
    (
        "unknown-compression-uncompressed",
        "usage",
        "unknown-compression",
        "the first a status line for step \"usage\": NOT_FOUND",
    ),
    (
        "after-first-off-monitor-ignored",
        "usage",
        "after-first-off-monitor",
        "the first a status line for step \"usage\": NOT_FOUND",
    ),
    (
        "cancel-after-messages-off-monitor-ignored",
        "usage",
        "cancel-after-messages-off-monitor",
        "the first a status line for step \"usage\": NOT_FOUND",
    ),
];

/// The client's own exit after its script (cases/client-exit.toml: a
/// client process of the test's own).
pub(crate) const EXIT_CLIENT_FAULTS: &[Catch] = &[
    (
        "exit-one-on-error-status",
        "client-exit",
        "exits-0-after-its-script",
        "exit code: expected 0 once every step was answered and stdin ended, got exit status: 1",
    ),
    (
        "linger-after-script",
        "client-exit",
        "exits-0-after-its-script",
        "exit code: expected 0 once every step was answered and stdin ended, but it had not exited 5000 ms after (killed)",
    ),
];

/// A client that reads only the first PEM block of its CA file (a bundle's
/// second CA is lost) or of its certificate file (the chain is lost).
pub(crate) const TLS_CLIENT_FAULTS: &[TlsCatch] = &[
    (
        "first-ca-only",
        "server",
        "ca-file-with-two-cas",
        "step 0 Inventory: status: expected OK, got UNAVAILABLE \"invalid peer certificate: UnknownIssuer\"",
    ),
    (
        "first-ca-only",
        "mtls",
        "ca-file-with-two-cas",
        "step 0 Inventory: status: expected OK, got UNAVAILABLE \"invalid peer certificate: UnknownIssuer\"",
    ),
    (
        "cert-chain-leaf-only",
        "mtls",
        "client-chain-via-intermediate",
        "step 0 Inventory: status: expected OK, got UNAVAILABLE",
    ),
];
