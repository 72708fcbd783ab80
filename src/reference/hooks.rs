//! The contract's `x-stock-*` request-metadata hooks, read once per call, and
//! the tower layer that works on the HTTP level for every method: it echoes
//! `x-stock-echo` as a header and a trailer, and ends a call whose
//! `grpc-timeout` passed with DEADLINE_EXCEEDED (tonic's own timeout layer
//! would answer CANCELLED "Timeout expired", which the deadline cases flag).
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
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| Status::invalid_argument(format!("{key} must be a number, got {v:?}")))
                })
                .transpose()
        };
        let special = text(md, "x-stock-fail-special") == Some("true");
        let code = match text(md, "x-stock-fail") {
            Some(name) => Some(
                codes::from_name(name)
                    .filter(|c| *c != Code::Ok)
                    .ok_or_else(|| Status::invalid_argument(format!("x-stock-fail: unknown code {name:?}")))?,
            ),
            None if special => Some(Code::Unknown),
            None => None,
        };
        let fail = code.map(|code| {
            let message = if special {
                SPECIAL_MESSAGE.to_string()
            } else {
                text(md, "x-stock-fail-message")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("forced {}", codes::name(code)))
            };
            Status::new(code, message)
        });
        Ok(Hooks {
            delay: number("x-stock-delay-ms")?.map(Duration::from_millis),
            fail,
            fail_after: number("x-stock-fail-after")?.unwrap_or(0),
        })
    }

    /// Sleeps for the requested delay.
    pub async fn delay(&self) {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
    }
}

const ECHO: HeaderName = HeaderName::from_static("x-stock-echo");

/// Parses a `grpc-timeout` value (`100m`, `2S`, …).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Answers ahead of tonic's own timeout layer, which fires at the deadline.
const DEADLINE_LEAD: Duration = Duration::from_millis(5);

/// Echo and deadline handling for every call (see the module comment).
#[derive(Clone)]
pub struct WireLayer {
    /// Echo `x-stock-echo` (off only to prove the metadata cases catch it).
    pub echo: bool,
}

impl<S> Layer<S> for WireLayer {
    type Service = Wire<S>;
    fn layer(&self, inner: S) -> Wire<S> {
        Wire { inner, echo: self.echo }
    }
}

#[derive(Clone)]
pub struct Wire<S> {
    inner: S,
    echo: bool,
}

fn deadline_trailers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("grpc-status", HeaderValue::from_static("4"));
    h.insert("grpc-message", HeaderValue::from_static("deadline%20exceeded"));
    h
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> Service<http::Request<ReqBody>> for Wire<S>
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
        let echo = req.headers().get(&ECHO).cloned().filter(|_| self.echo);
        let deadline = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(|d| tokio::time::Instant::now() + d.saturating_sub(DEADLINE_LEAD));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = match deadline {
                Some(at) => match tokio::time::timeout_at(at, fut).await {
                    Ok(r) => r?,
                    Err(_) => {
                        // Trailers-only DEADLINE_EXCEEDED.
                        let mut resp = http::Response::new(tonic::body::Body::empty());
                        resp.headers_mut().insert("content-type", HeaderValue::from_static("application/grpc"));
                        resp.headers_mut().extend(deadline_trailers());
                        resp
                    }
                },
                None => fut.await?,
            };
            let (mut parts, body) = resp.into_parts();
            if let Some(echo) = &echo {
                // In a trailers-only response these headers are the trailers.
                parts.headers.insert(ECHO, echo.clone());
            }
            let sleep = deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
            Ok(http::Response::from_parts(
                parts,
                tonic::body::Body::new(WireBody {
                    inner: body,
                    echo,
                    deadline: sleep,
                    ended: false,
                }),
            ))
        })
    }
}

struct WireBody {
    inner: tonic::body::Body,
    echo: Option<HeaderValue>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    ended: bool,
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
        let echo = self.echo.clone();
        let with_echo = move |mut trailers: http::HeaderMap| {
            if let Some(e) = &echo {
                trailers.insert(ECHO, e.clone());
            }
            trailers
        };
        if let Some(sleep) = self.deadline.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                self.ended = true;
                return Poll::Ready(Some(Ok(Frame::trailers(with_echo(deadline_trailers())))));
            }
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended = true;
        }
        polled.map(|frame| {
            frame.map(|r| {
                r.map(|f| match f.into_trailers() {
                    Ok(trailers) => Frame::trailers(with_echo(trailers)),
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
        let h = Hooks::from_metadata(&md(&[
            ("x-stock-fail", "ABORTED"),
            ("x-stock-fail-message", "boom"),
            ("x-stock-fail-after", "2"),
        ]))
        .unwrap();
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
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("300m"), Some(Duration::from_millis(300)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
    }

    #[test]
    fn unknown_code_and_bad_numbers_are_invalid_argument() {
        assert!(Hooks::from_metadata(&md(&[("x-stock-fail", "OK")])).is_err());
        assert!(Hooks::from_metadata(&md(&[("x-stock-delay-ms", "soon")])).is_err());
    }
}
