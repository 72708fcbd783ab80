//! The contract's `x-stock-*` request-metadata hooks, read once per call, and
//! the tower layer that echoes `x-stock-echo` as a header and a trailer for
//! every method (handlers never deal with echo).
use crate::codes;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body::{Body, Frame};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use tower::{Layer, Service};

/// The interop suite's special status message.
pub const SPECIAL_MESSAGE: &str = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";

/// What the metadata of one call asks the server to do.
#[derive(Debug, Default)]
pub struct Hooks {
    pub delay: Option<Duration>,
    pub fail: Option<Status>,
    pub fail_after: u64,
}

fn text<'a>(md: &'a MetadataMap, key: &str) -> Option<&'a str> {
    md.get(key).and_then(|v| v.to_str().ok())
}

impl Hooks {
    pub fn from_metadata(md: &MetadataMap) -> Result<Hooks, Status> {
        let number = |key: &str| -> Result<Option<u64>, Status> {
            text(md, key)
                .map(|v| v.trim().parse::<u64>().map_err(|_| Status::invalid_argument(format!("{key} must be a number, got {v:?}"))))
                .transpose()
        };
        let special = text(md, "x-stock-fail-special") == Some("true");
        let code = match text(md, "x-stock-fail") {
            Some(name) => Some(codes::from_name(name).filter(|c| *c != Code::Ok).ok_or_else(|| Status::invalid_argument(format!("x-stock-fail: unknown code {name:?}")))?),
            None if special => Some(Code::Unknown),
            None => None,
        };
        let fail = code.map(|code| {
            let message = if special {
                SPECIAL_MESSAGE.to_string()
            } else {
                text(md, "x-stock-fail-message").map(str::to_string).unwrap_or_else(|| format!("forced {}", codes::name(code)))
            };
            Status::new(code, message)
        });
        Ok(Hooks { delay: number("x-stock-delay-ms")?.map(Duration::from_millis), fail, fail_after: number("x-stock-fail-after")?.unwrap_or(0) })
    }

    /// Sleeps for the requested delay.
    pub async fn delay(&self) {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
    }
}

const ECHO: HeaderName = HeaderName::from_static("x-stock-echo");

/// Adds `x-stock-echo` to the response headers and to the trailers.
#[derive(Clone, Default)]
pub struct EchoLayer;

impl<S> Layer<S> for EchoLayer {
    type Service = Echo<S>;
    fn layer(&self, inner: S) -> Echo<S> {
        Echo { inner }
    }
}

#[derive(Clone)]
pub struct Echo<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> Service<http::Request<ReqBody>> for Echo<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let echo = req.headers().get(&ECHO).cloned();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let Some(echo) = echo else { return Ok(resp) };
            let (mut parts, body) = resp.into_parts();
            // In a trailers-only response these headers are the trailers.
            parts.headers.insert(ECHO, echo.clone());
            Ok(http::Response::from_parts(parts, tonic::body::Body::new(EchoBody { inner: body, echo })))
        })
    }
}

struct EchoBody {
    inner: tonic::body::Body,
    echo: HeaderValue,
}

impl Body for EchoBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let echo = self.echo.clone();
        Pin::new(&mut self.inner).poll_frame(cx).map(|frame| {
            frame.map(|r| {
                r.map(|f| match f.into_trailers() {
                    Ok(mut trailers) => {
                        trailers.insert(ECHO, echo);
                        Frame::trailers(trailers)
                    }
                    Err(f) => f,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&'static str, &'static str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn fail_takes_code_and_message() {
        let h = Hooks::from_metadata(&md(&[("x-stock-fail", "ABORTED"), ("x-stock-fail-message", "boom"), ("x-stock-fail-after", "2")])).unwrap();
        let s = h.fail.unwrap();
        assert_eq!((s.code(), s.message()), (Code::Aborted, "boom"));
        assert_eq!(h.fail_after, 2);
    }

    #[test]
    fn special_defaults_to_unknown() {
        let h = Hooks::from_metadata(&md(&[("x-stock-fail-special", "true")])).unwrap();
        let s = h.fail.unwrap();
        assert_eq!((s.code(), s.message()), (Code::Unknown, SPECIAL_MESSAGE));
    }

    #[test]
    fn unknown_code_and_bad_numbers_are_invalid_argument() {
        assert!(Hooks::from_metadata(&md(&[("x-stock-fail", "OK")])).is_err());
        assert!(Hooks::from_metadata(&md(&[("x-stock-delay-ms", "soon")])).is_err());
    }
}
