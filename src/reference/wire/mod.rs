//! The tower layer of the reference server that works on the HTTP level for
//! every method: it sends the `x-stock-*` echoes and reports as headers and
//! trailers, turns per-call response compression on or off, and ends a call
//! whose `grpc-timeout` passed with DEADLINE_EXCEEDED (tonic's own timeout
//! layer would answer CANCELLED "Timeout expired", which the deadline cases
//! flag).
use super::hooks::parse_grpc_timeout;
use super::store::Store;
use bytes::Bytes;
use http::HeaderValue;
use http_body::Body;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

mod bent;
pub use bent::HookFaults;
mod body;
mod details;
mod reply;

pub use body::ClientReset;
pub(crate) use body::{Flags, MessageCount};
use body::{Watched, WireBody};
pub use details::Details;
use reply::Reply;

/// Answers 50 ms ahead of the deadline (CONTRACT.md, "Cancellation and deadlines at the
/// server"), so tonic's own timeout layer, which fires at the deadline, never does.
const DEADLINE_LEAD: Duration = Duration::from_millis(50);

/// Deliberate bugs of the HTTP-level hooks (see `faults::Fault`).
#[derive(Clone, Copy, Debug, Default)]
pub struct WireFaults {
    /// x-stock-echo (and -bin) are not echoed.
    pub no_echo: bool,
    /// x-stock-compress is ignored: responses are never compressed.
    pub no_compress_response: bool,
    /// x-stock-compress answers `grpc-encoding: gzip`, but every message
    /// goes out uncompressed (Compressed-Flag 0).
    pub gzip_header_only: bool,
    /// The echoed value is lowercased (as metadata keys are).
    pub echo_lowercased: bool,
    /// An empty echo value is not echoed (empty taken for missing).
    pub echo_skips_empty: bool,
    /// A binary echo stops at its first 0x00 byte (a C-string bug).
    pub truncate_bin_at_nul: bool,
    /// grpc-timeout is not read: no deadline is reported or enforced.
    pub lose_deadline: bool,
    /// A call still running at its deadline is reset (RST_STREAM CANCEL).
    pub reset_at_deadline: bool,
    /// How the request hooks are bent before the service reads them.
    pub hooks: HookFaults,
    /// What happens to the rich error details (grpc-status-details-bin).
    pub details: Details,
    /// Responses are compressed for every client that accepts gzip.
    pub compress_always: bool,
    /// The echo and report trailers are left out when the call fails.
    pub no_trailers_on_error: bool,
    /// Request headers past HEADER_LIST_LIMIT close the connection.
    pub close_on_big_headers: bool,
    /// Request headers past HEADER_LIST_LIMIT are never answered.
    pub stall_on_big_headers: bool,
    /// Any content-type is served as gRPC (no 415).
    pub any_content_type: bool,
    /// One call at a time, its response included: a call waits for every
    /// call before it to end (one lock around the whole server).
    pub serial_calls: bool,
    /// The number of request messages is not checked (tonic takes the first
    /// of two and calls a missing one INTERNAL).
    pub cardinality_unchecked: bool,
    /// A compressed request is gunzipped whatever its grpc-encoding says.
    pub gunzip_any_encoding: bool,
    /// grpc-timeout is kept as signed 64-bit nanoseconds, wrapping.
    pub timeout_overflow: bool,
}

/// Does the method at this path take exactly one request message (unary,
/// server stream)? Methods outside the contract's protos are not checked.
fn one_request(path: &str) -> bool {
    use crate::contract::proto::{kind_at, Kind};
    matches!(kind_at(path), Some(Kind::Unary | Kind::ServerStream))
}

/// The lock of the `serial-calls` fault.
static SERIAL: std::sync::LazyLock<Arc<tokio::sync::Mutex<()>>> = std::sync::LazyLock::new(Arc::default);

/// The contract's request header-list limit (HTTP/2
/// SETTINGS_MAX_HEADER_LIST_SIZE): 16 KiB, names, values and 32 bytes per entry.
pub const HEADER_LIST_LIMIT: u32 = 16 << 10;

/// A header list's size as HTTP/2 counts it against SETTINGS_MAX_HEADER_LIST_SIZE.
fn header_list_size(h: &http::HeaderMap) -> usize {
    h.iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum()
}

/// Did the call fail (its trailers, or a trailers-only response's headers)?
fn failed(h: &http::HeaderMap) -> bool {
    h.get("grpc-status").is_some_and(|s| s.as_bytes() != b"0")
}

/// Echo, reports, per-call compression and deadline handling for every call
/// (see the module comment).
#[derive(Clone)]
pub struct WireLayer {
    pub store: Arc<Store>,
    pub faults: WireFaults,
}

impl<S> Layer<S> for WireLayer {
    type Service = Wire<S>;
    fn layer(&self, inner: S) -> Wire<S> {
        Wire {
            inner,
            store: self.store.clone(),
            faults: self.faults,
        }
    }
}

#[derive(Clone)]
pub struct Wire<S> {
    inner: S,
    store: Arc<Store>,
    faults: WireFaults,
}

/// A trailers-only DEADLINE_EXCEEDED response.
fn deadline_exceeded() -> http::Response<tonic::body::Body> {
    let mut resp = http::Response::new(tonic::body::Body::empty());
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    resp.headers_mut().extend(deadline_trailers());
    resp
}

fn deadline_trailers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("grpc-status", HeaderValue::from_static("4"));
    h.insert("grpc-message", HeaderValue::from_static("deadline%20exceeded"));
    h
}

/// tonic ends a call whose request is over the receive limit with
/// OUT_OF_RANGE; the gRPC spec (and every other stack) says
/// RESOURCE_EXHAUSTED, which the size cases expect.
fn size_limit_is_resource_exhausted(h: &mut http::HeaderMap) {
    let too_large = h.get("grpc-message").is_some_and(|m| {
        let m = String::from_utf8_lossy(m.as_bytes()).replace("%20", " ");
        m.contains("message length too large")
    });
    if too_large && h.get("grpc-status").is_some_and(|s| s.as_bytes() == b"11") {
        h.insert("grpc-status", HeaderValue::from_static("8"));
    }
}

/// The call's `grpc-timeout`, unless the `lose-deadline` fault drops it.
fn deadline_of(h: &http::HeaderMap, faults: WireFaults) -> Option<Duration> {
    if faults.lose_deadline {
        return None;
    }
    let timeout = h
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)?;
    if faults.timeout_overflow {
        // Cut to 64 bits and read as signed: a deadline in the past is now.
        let ns = timeout.as_nanos() as u64 as i64;
        return Some(Duration::from_nanos(ns.max(0) as u64));
    }
    Some(timeout)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> Service<http::Request<ReqBody>> for Wire<S>
where
    ReqBody: Body<Data = Bytes> + Send + Unpin + 'static,
    ReqBody::Error: Into<BoxError>,
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let big_header_fault = self.faults.close_on_big_headers || self.faults.stall_on_big_headers;
        if big_header_fault && header_list_size(req.headers()) > HEADER_LIST_LIMIT as usize {
            if self.faults.close_on_big_headers {
                if let Some(c) = crate::reference::connection::Closer::of(&req) {
                    c.close();
                }
            }
            return Box::pin(std::future::pending());
        }
        let reply = Reply::read(req.headers(), &self.store, self.faults);
        let timeout = deadline_of(req.headers(), self.faults);
        let past = self.faults.timeout_overflow && timeout == Some(Duration::ZERO);
        let lead = match self.faults.reset_at_deadline {
            true => Duration::ZERO,
            false => DEADLINE_LEAD,
        };
        let deadline = timeout.map(|d| tokio::time::Instant::now() + d.saturating_sub(lead));
        let reset_at_deadline = self.faults.reset_at_deadline;
        if self.faults.lose_deadline {
            req.headers_mut().remove("grpc-timeout");
        }
        // The path beside the headers it bends (a Uri clone shares its bytes).
        let uri = req.uri().clone();
        bent::hooks(req.headers_mut(), uri.path(), self.faults.hooks);
        // After Reply::read: the reported request encoding stays the one
        // sent. Stock's service takes gzip (health, for one, takes none).
        if self.faults.gunzip_any_encoding && req.uri().path().starts_with("/stock.v1.Stock/") {
            req.headers_mut()
                .insert("grpc-encoding", HeaderValue::from_static("gzip"));
        }
        // Per-call response compression: the services are built to compress
        // for any client that accepts gzip; a call that did not ask for it
        // is served as if its client accepted no compression.
        let compress = req
            .headers()
            .get("x-stock-compress")
            .is_some_and(|v| v.as_bytes() == b"gzip");
        let header_only = compress && self.faults.gzip_header_only;
        if !(compress || self.faults.compress_always) || self.faults.no_compress_response || header_only {
            req.headers_mut().remove("grpc-accept-encoding");
        }
        // gRPC requires application/grpc (PROTOCOL-HTTP2.md); tonic serves
        // any content-type, so the refusal the spec asks for is made here.
        let grpc = req
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if !grpc && !self.faults.any_content_type {
            let mut resp = http::Response::new(tonic::body::Body::empty());
            *resp.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
            return Box::pin(async move { Ok(resp) });
        }
        let reset = ClientReset::default();
        req.extensions_mut().insert(reset.clone());
        let one = !self.faults.cardinality_unchecked && one_request(req.uri().path());
        let flags = reply.flags.clone();
        let req = req.map(|inner| {
            tonic::body::Body::new(Watched {
                inner,
                reset,
                count: Default::default(),
                one,
                flags,
            })
        });
        let fut = self.inner.call(req);
        let details = self.faults.details;
        let no_trailers_on_error = self.faults.no_trailers_on_error;
        let serial = self.faults.serial_calls;
        Box::pin(async move {
            let held = match serial {
                true => Some(SERIAL.clone().lock_owned().await),
                false => None,
            };
            let resp = match deadline {
                // The timeout-overflow fault's deadline that wrapped into the past.
                Some(_) if past => deadline_exceeded(),
                Some(at) => match tokio::time::timeout_at(at, fut).await {
                    Ok(r) => r?,
                    // Headers, then the reset: the body's deadline is due.
                    Err(_) if reset_at_deadline => body::never_ending(),
                    Err(_) => deadline_exceeded(),
                },
                None => fut.await?,
            };
            let (mut parts, body) = resp.into_parts();
            // In a trailers-only response these headers are the trailers.
            let trailers_only = parts.headers.contains_key("grpc-status");
            size_limit_is_resource_exhausted(&mut parts.headers);
            details.apply(&mut parts.headers);
            let entries = match trailers_only {
                true if no_trailers_on_error && failed(&parts.headers) => Vec::new(),
                true => reply.trailers(),
                false => reply.headers.clone(),
            };
            for (k, v) in entries {
                parts.headers.insert(k, v);
            }
            if header_only && !trailers_only {
                parts.headers.insert("grpc-encoding", HeaderValue::from_static("gzip"));
            }
            let sleep = deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
            Ok(http::Response::from_parts(
                parts,
                tonic::body::Body::new(WireBody {
                    inner: body,
                    reply,
                    deadline: sleep,
                    ended: false,
                    details,
                    no_trailers_on_error,
                    reset_at_deadline,
                    _held: held,
                }),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::one_request;

    #[test]
    fn methods_of_one_request_are_the_unary_and_server_streaming_ones_of_the_contract() {
        for path in [
            "/stock.v1.Stock/Put",
            "/stock.v1.Stock/Inventory",
            "/stock.v1.Stock/Monitor",
            "/proto.KV/Get",
        ] {
            assert!(one_request(path), "{path}");
        }
        for path in [
            "/stock.v1.Stock/Batch",
            "/stock.v1.Stock/Trade",
            "/stock.v1.Stock/Nope",
            "/grpc.health.v1.Health/Check",
            "/",
        ] {
            assert!(!one_request(path), "{path}");
        }
    }
}
