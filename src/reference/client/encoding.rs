//! The reference client's check of a response's `grpc-encoding`, under
//! tonic: an encoding the client did not offer ends the call INTERNAL
//! (compression.md), where tonic's decoder would answer UNIMPLEMENTED, the
//! server's code for a request it cannot read. Under the `gunzip-any-encoding`
//! fault the client gunzips whatever came instead: any compressed response is
//! read as gzip. The `broken-escape-drops-message` fault lives here too: it
//! sees a trailers-only status as it travels. The response messages'
//! Compressed-Flags are counted here too (`response_compressed`).
use crate::reference::wire::{Flags, MessageCount};
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::transport::Channel;

/// The encodings the reference client accepts (it offers gzip).
const ACCEPTED: [&[u8]; 2] = [b"gzip", b"identity"];

/// The `grpc-encoding` a response came with (absent: identity), kept in its
/// extensions when the `gunzip-any-encoding` fault rewrote the header.
#[derive(Debug, Clone)]
pub struct CameWith(pub String);

/// A response body whose messages are counted as they arrive, the count
/// shared with `flags` (kept in the response's extensions).
struct Counted {
    inner: Body,
    count: MessageCount,
    flags: Flags,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let this = &mut *self;
                this.count.feed(data);
                this.flags.set(&this.count);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A channel whose responses' encodings are checked (see the module comment).
#[derive(Clone)]
pub struct Checked {
    inner: Channel,
    gunzip_any: bool,
    drop_broken_messages: bool,
}

impl Checked {
    pub fn new(inner: Channel, gunzip_any: bool, drop_broken_messages: bool) -> Checked {
        Checked {
            inner,
            gunzip_any,
            drop_broken_messages,
        }
    }
}

/// Does a percent-encoded text hold a `%` not followed by two hex digits?
fn broken_escape(text: &[u8]) -> bool {
    text.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .any(|(i, _)| !matches!(text.get(i + 1..i + 3), Some([a, b]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit()))
}

/// A trailers-only INTERNAL response saying why.
fn refused(encoding: &HeaderValue) -> Response<Body> {
    let name = String::from_utf8_lossy(encoding.as_bytes()).into_owned();
    let message = format!("the response is compressed with {name:?}, which the client did not offer (it accepts gzip)");
    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(13));
    // Printable ASCII travels as it is (PROTOCOL-HTTP2.md); a name that is not is left out.
    let value = HeaderValue::from_str(&message).unwrap_or(HeaderValue::from_static(
        "the response is compressed with an encoding the client did not offer",
    ));
    h.insert("grpc-message", value);
    resp
}

impl tower::Service<Request<Body>> for Checked {
    type Response = Response<Body>;
    type Error = <Channel as tower::Service<Request<Body>>>::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let fut = self.inner.call(req);
        let gunzip_any = self.gunzip_any;
        let drop_broken_messages = self.drop_broken_messages;
        Box::pin(async move {
            let resp = fut.await?;
            let flags = Flags::default();
            let mut resp = resp.map(|inner| {
                Body::new(Counted {
                    inner,
                    count: MessageCount::default(),
                    flags: flags.clone(),
                })
            });
            resp.extensions_mut().insert(flags);
            if drop_broken_messages
                && resp
                    .headers()
                    .get("grpc-message")
                    .is_some_and(|m| broken_escape(m.as_bytes()))
            {
                resp.headers_mut().remove("grpc-message");
            }
            let came = resp.headers().get("grpc-encoding").cloned();
            if gunzip_any {
                let name = came.as_ref().map_or("identity".into(), |v| {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                });
                resp.extensions_mut().insert(CameWith(name));
                resp.headers_mut()
                    .insert("grpc-encoding", HeaderValue::from_static("gzip"));
                return Ok(resp);
            }
            match came {
                Some(e) if !ACCEPTED.contains(&e.as_bytes()) => Ok(refused(&e)),
                _ => Ok(resp),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::broken_escape;

    #[test]
    fn a_percent_without_two_hex_digits_is_a_broken_escape() {
        assert!(broken_escape(b"100%zz sure"));
        assert!(broken_escape(b"ends with 50%"));
        assert!(broken_escape(b"one digit %4"));
        assert!(!broken_escape(b"caf%C3%A9 100%25"));
        assert!(!broken_escape(b"no escape at all"));
    }
}
