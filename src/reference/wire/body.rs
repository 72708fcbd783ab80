//! The bodies the wire layer wraps: a request body that notes a client's
//! reset, and a response body that adds the replies and the deadline.
use super::{deadline_trailers, failed, size_limit_is_resource_exhausted, BoxError, Reply};
use bytes::Bytes;
use http_body::{Body, Frame};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tonic::Status;

/// Set on a request whose client reset its stream (RST_STREAM CANCEL).
/// tonic 0.14's decoder ends a request stream that the client cancelled as
/// if the client had half-closed it (codec/decode.rs: a `Cancelled` error on
/// the request side becomes the end of the stream), so a Batch reset midway
/// would look complete; a handler asks this before it applies anything.
#[derive(Clone, Default)]
pub struct ClientReset(Arc<AtomicBool>);

impl ClientReset {
    /// The watch of a request's stream.
    pub fn of<T>(req: &tonic::Request<T>) -> Option<ClientReset> {
        req.extensions().get::<ClientReset>().cloned()
    }

    /// Has the client reset it (so far)?
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A request body that counts its messages as they arrive: it notes when
/// the client reset the stream, for a method of one request message
/// refuses any other number of them, and shares the count with `flags`.
pub(super) struct Watched<B> {
    pub(super) inner: B,
    pub(super) reset: ClientReset,
    /// The request's messages so far.
    pub(super) count: MessageCount,
    /// Checked to be one message (unary, server stream; until refused).
    pub(super) one: bool,
    /// `x-stock-report-encoding`: where the count is shared.
    pub(super) flags: Option<Flags>,
}

/// How many of a body's messages so far came with the Compressed-Flag set,
/// and of how many, shared with what reports them: the reference server's
/// `x-stock-request-compressed` for a request, the reference client's
/// `response_compressed` for a response (a gzip call whose messages go out
/// uncompressed only says it compresses).
#[derive(Debug, Clone, Default)]
pub(crate) struct Flags(Arc<Mutex<(usize, usize)>>);

impl Flags {
    pub(crate) fn set(&self, count: &MessageCount) {
        *self.0.lock().expect("flags") = (count.compressed, count.count);
    }

    /// "compressed/messages", e.g. "2/3".
    pub(crate) fn report(&self) -> String {
        let (compressed, messages) = *self.0.lock().expect("flags");
        format!("{compressed}/{messages}")
    }
}

/// Counts the gRPC messages of a body as its bytes arrive: a 5-byte prefix
/// (flag, length), then the message.
#[derive(Debug, Default)]
pub(crate) struct MessageCount {
    prefix: Vec<u8>,
    left: usize,
    count: usize,
    /// Messages whose Compressed-Flag was set.
    compressed: usize,
}

impl MessageCount {
    /// Takes the next bytes of the body; returns the messages begun so far.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> usize {
        while !bytes.is_empty() {
            if self.left > 0 {
                let n = self.left.min(bytes.len());
                self.left -= n;
                bytes = &bytes[n..];
                continue;
            }
            if self.prefix.is_empty() {
                self.count += 1;
            }
            let n = (5 - self.prefix.len()).min(bytes.len());
            self.prefix.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if let [flag, a, b, c, d] = self.prefix[..] {
                self.compressed += usize::from(flag != 0);
                self.left = u32::from_be_bytes([a, b, c, d]) as usize;
                self.prefix.clear();
            }
        }
        self.count
    }
}

/// statuscodes.md: a request cardinality violation is UNIMPLEMENTED (tonic
/// would take the first of two messages, and call a missing one INTERNAL).
fn cardinality(what: &str) -> BoxError {
    Box::new(Status::unimplemented(format!(
        "request cardinality violation: {what} where the method takes one request message"
    )))
}

impl<B> Body for Watched<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let this = &mut *self;
        let seen = match &polled {
            Poll::Ready(Some(Ok(f))) => f.data_ref().map(|d| this.count.feed(d)),
            Poll::Ready(None) => Some(this.count.feed(&[])),
            _ => None,
        };
        if let (Some(flags), Some(_)) = (&this.flags, seen) {
            flags.set(&this.count);
        }
        if this.one {
            let refused = match (seen, &polled) {
                (Some(n), _) if n > 1 => Some("more than one request message"),
                (Some(0), Poll::Ready(None)) => Some("no request message"),
                _ => None,
            };
            if let Some(what) = refused {
                this.one = false;
                return Poll::Ready(Some(Err(cardinality(what))));
            }
        }
        polled.map(|frame| {
            frame.map(|r| {
                r.map_err(|e| {
                    let e: BoxError = e.into();
                    let h2 = crate::reference::cause::find_from::<h2::Error>(Some(e.as_ref()));
                    if h2.and_then(h2::Error::reason) == Some(h2::Reason::CANCEL) {
                        self.reset.0.store(true, Ordering::SeqCst);
                    }
                    e
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        // An empty request is polled to its end, so that it is refused.
        self.inner.is_end_stream() && (!self.one || self.count.count > 0)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that adds the call's replies (echoes, reports) and ends it at its deadline.
pub(super) struct WireBody {
    pub(super) inner: tonic::body::Body,
    pub(super) reply: Reply,
    pub(super) deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(super) ended: bool,
    pub(super) details: super::Details,
    pub(super) no_trailers_on_error: bool,
    /// At the deadline, reset the stream (RST_STREAM CANCEL) instead.
    pub(super) reset_at_deadline: bool,
    /// The `serial-calls` lock, held until the response ends.
    pub(super) _held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Body for WireBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        // A trailers-only reply has an empty body: keep END_STREAM on its
        // headers (C-core clients reject a trailers-only reply followed by DATA).
        if self.ended || self.inner.is_end_stream() {
            return Poll::Ready(None);
        }
        let extra = self.reply.trailers();
        let details = self.details;
        let no_trailers_on_error = self.no_trailers_on_error;
        let with_reply = move |mut trailers: http::HeaderMap| {
            size_limit_is_resource_exhausted(&mut trailers);
            details.apply(&mut trailers);
            let extra = if no_trailers_on_error && failed(&trailers) {
                Vec::new()
            } else {
                extra
            };
            for (k, v) in extra {
                trailers.insert(k, v);
            }
            trailers
        };
        if let Some(sleep) = self.deadline.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                self.ended = true;
                if self.reset_at_deadline {
                    // hyper resets the stream with the reason of an h2::Error it finds in the chain.
                    let mut reset = Status::deadline_exceeded("reset at the deadline");
                    reset.set_source(std::sync::Arc::new(h2::Error::from(h2::Reason::CANCEL)));
                    return Poll::Ready(Some(Err(reset)));
                }
                return Poll::Ready(Some(Ok(Frame::trailers(with_reply(deadline_trailers())))));
            }
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended = true;
        }
        polled.map(|frame| {
            frame.map(|r| {
                r.map(|f| match f.into_trailers() {
                    Ok(trailers) => Frame::trailers(with_reply(trailers)),
                    Err(f) => f,
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response of headers only whose body never ends by itself: the
/// `reset-at-deadline` fault's answer to a call whose deadline came first
/// (its `WireBody` deadline, already due, then resets the stream).
pub(super) fn never_ending() -> http::Response<tonic::body::Body> {
    struct Never;
    impl Body for Never {
        type Data = Bytes;
        type Error = Status;
        fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            Poll::Pending
        }
    }
    let mut resp = http::Response::new(tonic::body::Body::new(Never));
    resp.headers_mut()
        .insert("content-type", http::HeaderValue::from_static("application/grpc"));
    resp
}

#[cfg(test)]
mod tests {
    use super::MessageCount;

    fn framed(lens: &[usize]) -> Vec<u8> {
        let mut b = Vec::new();
        for &n in lens {
            b.push(0);
            b.extend_from_slice(&(n as u32).to_be_bytes());
            b.extend(std::iter::repeat_n(7u8, n));
        }
        b
    }

    #[test]
    fn messages_are_counted_however_the_bytes_are_cut() {
        for lens in [vec![], vec![0], vec![3], vec![0, 0], vec![300, 2], vec![1, 0, 70000]] {
            let bytes = framed(&lens);
            for cut in [1, 2, 4, 5, 6, 7, 4096, usize::MAX] {
                let mut c = MessageCount::default();
                let mut n = 0;
                for chunk in bytes.chunks(cut.min(bytes.len().max(1))) {
                    n = c.feed(chunk);
                }
                assert_eq!(n, lens.len(), "{lens:?} cut every {cut}");
            }
        }
    }

    #[test]
    fn compressed_flags_are_counted_once_each_prefix_is_whole() {
        let mut bytes = framed(&[3, 0, 4]);
        bytes[0] = 1; // the first message compressed
        bytes[13] = 1; // the third (after 5 + 3 and 5 + 0 bytes)
        for cut in [1, 3, 5, 64] {
            let mut c = MessageCount::default();
            for chunk in bytes.chunks(cut) {
                c.feed(chunk);
            }
            assert_eq!((c.compressed, c.count), (2, 3), "cut every {cut}");
        }
    }

    #[test]
    fn the_second_message_counts_from_its_first_byte() {
        let bytes = framed(&[2, 9]);
        let mut c = MessageCount::default();
        assert_eq!(c.feed(&bytes[..7]), 1);
        assert_eq!(c.feed(&bytes[7..8]), 2);
    }
}
