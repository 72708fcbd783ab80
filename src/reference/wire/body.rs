//! The bodies the wire layer wraps: a request body that notes a client's
//! reset, and a response body that adds the replies and the deadline.
use super::{deadline_trailers, failed, size_limit_is_resource_exhausted, BoxError, Reply};
use bytes::Bytes;
use http_body::{Body, Frame};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// A request body that notes when the client reset the stream.
pub(super) struct Watched<B> {
    pub(super) inner: B,
    pub(super) reset: ClientReset,
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
        self.inner.is_end_stream()
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
    pub(super) no_details: bool,
    pub(super) no_trailers_on_error: bool,
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
        let no_details = self.no_details;
        let no_trailers_on_error = self.no_trailers_on_error;
        let with_reply = move |mut trailers: http::HeaderMap| {
            size_limit_is_resource_exhausted(&mut trailers);
            if no_details {
                trailers.remove("grpc-status-details-bin");
            }
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
