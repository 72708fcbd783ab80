//! What each deliberate bug of the reference (`--break`) must turn red:
//! the sets it is run against, and per fault a case and part of its reason.

/// The sets these faults are run against (every set a new case lives in).
pub(crate) const RUN_SETS: &str =
    "unary,client-stream,metadata,errors,deadlines,large,compression,cancellation,concurrency,flow-control,kv-compat,kv-only,faults";

/// The sets of the misbehaving HTTP/2 peers and keepalive, run with the
/// faults they catch (and the faults set beside them, which shares those
/// faults' catches; unary holds the control case).
pub(crate) const PEER_SETS: &str = "unary,faults,h2-servers,h2-clients,keepalive";

/// The server-stream set, with the sets its faults may also turn red.
pub(crate) const STREAM_SETS: &str = "unary,server-stream,cancellation";

/// The bidi set, with the unary set's control case.
pub(crate) const BIDI_SETS: &str = "unary,bidi";

/// The usage set, with the unary set's control case.
pub(crate) const USAGE_SETS: &str = "unary,usage";

/// The client-exit set, with the unary set's control case.
pub(crate) const EXIT_SETS: &str = "unary,client-exit";

/// The lifecycle set, with the unary set's control case.
pub(crate) const LIFECYCLE_SETS: &str = "unary,lifecycle";

/// (fault, a set it may turn red, a case of that set it must turn red, part
/// of that case's reason); a fault may turn red only the sets named with it.
pub(crate) type Catch = (&'static str, &'static str, &'static str, &'static str);

/// The tls set with the unary set's control case, run in the two TLS modes.
pub(crate) const TLS_SETS: &str = "unary,tls";

/// (fault, a TLS mode, a case of the tls set it must turn red in that mode,
/// part of that case's reason); a fault turns red nothing else.
pub(crate) type TlsCatch = (&'static str, &'static str, &'static str, &'static str);

mod client;
mod server;
pub(crate) use client::{
    BIDI_CLIENT_FAULTS, CLIENT_FAULTS, EXIT_CLIENT_FAULTS, PEER_CLIENT_FAULTS, STREAM_CLIENT_FAULTS, TLS_CLIENT_FAULTS,
    USAGE_CLIENT_FAULTS,
};
pub(crate) use server::{
    BIDI_SERVER_FAULTS, H2_CLIENT_FAULTS, KV_FAULTS, LIFECYCLE_FAULTS, SERVER_FAULTS, STREAM_SERVER_FAULTS,
    TLS_SERVER_FAULTS,
};

/// Sets a fault may also turn red, beside those of its catches: the other
/// Inventory counts see the keys of tests running beside them.
pub(crate) const ALSO_RED: &[(&str, &str)] = &[
    ("inventory-ignores-prefix", "client-stream"),
    ("inventory-ignores-prefix", "kv-compat"),
    // concurrency/parallel-puts-none-lost puts one value 50 times and counts the versions
    ("unchanged-put-skipped", "concurrency"),
    // large/gzip-batch-item-over-4mib: a Batch whose stream failed applies nothing
    ("apply-after-cancel", "large"),
    // errors/bad-hook-value-refused checks the echo of a refused call
    ("no-trailers-on-error", "errors"),
    // every set with a case that checks error details
    ("details-code-ok", "client-stream"),
    ("details-code-ok", "kv-compat"),
    ("no-error-details", "client-stream"),
    ("no-error-details", "kv-compat"),
    ("no-details", "client-stream"),
    ("no-details", "kv-compat"),
    // cancellation/monitor-counted-while-open counts watchers in an
    // after_first step, which then races the Put beside it
    ("after-first-at-once", "cancellation"),
    // a Monitor without a deadline (cancellation/cancelled-monitor-without-
    // deadline-unregistered) is cancelled after its first event, which a
    // loaded machine may deliver after the fault's 250 ms default deadline
    ("short-default-deadline", "cancellation"),
    // every set with a streamed response
    ("last-message-after-status", "errors"),
    ("last-message-after-status", "large"),
    ("last-message-after-status", "compression"),
    ("last-message-after-status", "concurrency"),
    ("last-message-after-status", "flow-control"),
    ("last-message-after-status", "kv-compat"),
    ("last-message-after-status", "faults"),
];
