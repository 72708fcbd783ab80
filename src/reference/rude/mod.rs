//! A client that misbehaves on purpose, on `h2` directly (not tonic): the
//! reference client runs a step with `rude` this way, on a connection of its
//! own (TLS as the step's connection says), so a case can check that the
//! server under test survives it. The result is reported as a status line
//! like any call's: what the server answered, or what the client did.
mod end;
mod link;

use crate::contract::script::Connection;
use crate::model::misbehaviour::THOUSAND_STREAMS;
pub use crate::model::misbehaviour::{Rude, SERVER_DEADLINE_GRACE_MS};
use crate::model::tls::TlsMode;
use bytes::{BufMut, Bytes, BytesMut};
pub use end::End;
use end::{broke, reset_or_broke, status_of};
use h2::client::SendRequest;
use h2::{Reason, RecvStream};
use http::Request;
use link::{authority, open};
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// The request encoding of `unknown-encoding`: no stack knows it.
pub const UNKNOWN_ENCODING: &str = "x-stock-unknown";

/// Streams and connections kept open on purpose (`monitor-never-read`).
pub type Kept = Mutex<Vec<Box<dyn Any + Send>>>;

/// Where a rude call goes: its connection, method path and metadata.
pub struct Target<'a> {
    pub conn: &'a Connection,
    pub path: &'a str,
    pub metadata: &'a BTreeMap<String, String>,
    /// The step's deadline: every rude call ends DEADLINE_EXCEEDED by its own
    /// timer when it passes; the cardinality calls also send it as grpc-timeout.
    pub timeout: Option<Duration>,
}

impl Target<'_> {
    /// The call's request headers, with this content-type.
    fn request(&self, content_type: &str) -> Request<()> {
        let scheme = if self.conn.tls_mode == TlsMode::None {
            "http"
        } else {
            "https"
        };
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("{scheme}://{}{}", authority(&self.conn.server), self.path))
            .header("content-type", content_type)
            .header("te", "trailers");
        // A `-bin` value is already base64, as it travels.
        for (k, v) in self.metadata {
            req = req.header(k.as_str(), v.as_str());
        }
        req.body(()).expect("a valid request")
    }
}

/// A gRPC message frame: the Compressed-Flag, the length, the bytes.
fn envelope(flag: u8, bytes: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + bytes.len());
    b.put_u8(flag);
    b.put_u32(bytes.len() as u32);
    b.extend_from_slice(bytes);
    b.freeze()
}

/// A gRPC message frame (uncompressed).
pub(super) fn frame(msg: &[u8]) -> Bytes {
    envelope(0, msg)
}

/// A gRPC message frame with its Compressed-Flag set, gzipped.
pub(crate) fn gzipped_frame(msg: &[u8]) -> Bytes {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(msg).expect("gzip into memory");
    envelope(1, &gz.finish().expect("gzip into memory"))
}

/// Sends one call and reads it to its end.
async fn exchange(send: &mut SendRequest<Bytes>, req: Request<()>, messages: &[Vec<u8>]) -> anyhow::Result<End> {
    let frames: Vec<Bytes> = messages.iter().map(|m| frame(m)).collect();
    exchange_frames(send, req, &frames).await
}

/// Sends one call of these message frames and reads it to its end.
async fn exchange_frames(send: &mut SendRequest<Bytes>, req: Request<()>, frames: &[Bytes]) -> anyhow::Result<End> {
    Ok(exchange_sizes(send, req, frames).await?.0)
}

/// Sizes of the messages of a response, read from their prefixes as its
/// bytes come, however they are split (pure).
#[derive(Default)]
struct MessageSizes {
    sizes: Vec<u64>,
    /// Bytes still owed to the message being read.
    owed: u64,
    /// The prefix being read.
    prefix: Vec<u8>,
}

impl MessageSizes {
    fn feed(&mut self, mut d: &[u8]) {
        while !d.is_empty() {
            if self.owed > 0 {
                let n = self.owed.min(d.len() as u64);
                self.owed -= n;
                d = &d[n as usize..];
                continue;
            }
            let n = (5 - self.prefix.len()).min(d.len());
            self.prefix.extend_from_slice(&d[..n]);
            d = &d[n..];
            if let [_, a, b, c, e] = self.prefix[..] {
                self.owed = u32::from_be_bytes([a, b, c, e]).into();
                self.sizes.push(self.owed);
                self.prefix.clear();
            }
        }
    }
}

/// Sends one call of these message frames and reads it to its end: its
/// end and the size of each response message (no limit on them).
async fn exchange_sizes(
    send: &mut SendRequest<Bytes>,
    req: Request<()>,
    frames: &[Bytes],
) -> anyhow::Result<(End, Vec<u64>)> {
    let mut send = send.clone().ready().await?;
    let (response, mut body) = send.send_request(req, frames.is_empty())?;
    for (i, f) in frames.iter().enumerate() {
        // The server may answer (and end the stream) before the request is
        // sent, as with a refused content-type: its answer says how it ended.
        if body.send_data(f.clone(), i + 1 == frames.len()).is_err() {
            break;
        }
    }
    let response = response.await?;
    let http = response.status().as_u16();
    let headers = response.headers().clone();
    let mut rb: RecvStream = response.into_body();
    let mut sizes = MessageSizes::default();
    while let Some(d) = rb.data().await {
        let d = d?;
        let _ = rb.flow_control().release_capacity(d.len());
        sizes.feed(&d);
    }
    let trailers = rb.trailers().await?;
    Ok((status_of(http, &headers, trailers.as_ref()), sizes.sizes))
}

/// What `no-receive-limit` got: `2 message(s): 10, 5242887 bytes`.
fn received(sizes: &[u64]) -> String {
    if sizes.is_empty() {
        return "no message".into();
    }
    let each: Vec<String> = sizes.iter().map(u64::to_string).collect();
    format!("{} message(s): {} bytes", sizes.len(), each.join(", "))
}

/// One call with these request messages on a connection of its own, with
/// this grpc-timeout, else the step's deadline (`call` keeps the timer).
async fn timed(to: &Target<'_>, messages: &[Vec<u8>], grpc_timeout: Option<&str>) -> anyhow::Result<End> {
    let mut req = to.request("application/grpc");
    let value = grpc_timeout
        .map(str::to_string)
        .or(to.timeout.map(|t| format!("{}m", t.as_millis())));
    if let Some(v) = value {
        req.headers_mut().insert("grpc-timeout", v.parse()?);
    }
    exchange(&mut open(to.conn).await?.0, req, messages).await
}

/// Runs a rude call of `path` with these (encoded) request messages, ended
/// DEADLINE_EXCEEDED by its own timer when the step's deadline passes (a
/// server that never answers must not hang the client).
pub async fn call(rude: Rude, to: &Target<'_>, messages: &[Vec<u8>], kept: &Kept) -> End {
    let ran = run(rude, to, messages, kept);
    let grace = match rude {
        Rude::ServerDeadline => Duration::from_millis(SERVER_DEADLINE_GRACE_MS),
        _ => Duration::ZERO,
    };
    let ended = match to.timeout.map(|t| t + grace) {
        Some(t) => tokio::time::timeout(t, ran).await.unwrap_or_else(|_| {
            Ok(End::new(
                "DEADLINE_EXCEEDED",
                match rude {
                    Rude::ServerDeadline => format!(
                        "the server did not end the call within {SERVER_DEADLINE_GRACE_MS} ms after its deadline (the client's timer)"
                    ),
                    _ => "no answer within the call's deadline (the client's timer)".into(),
                },
            ))
        }),
        None => ran.await,
    };
    ended.unwrap_or_else(|e| broke(format!("{e:#}")))
}

async fn run(rude: Rude, to: &Target<'_>, messages: &[Vec<u8>], kept: &Kept) -> anyhow::Result<End> {
    let conn = to.conn;
    let grpc = "application/grpc";
    match rude {
        Rude::ResetMidBatch => {
            let mut send = open(conn).await?.0.ready().await?;
            let (response, mut body) = send.send_request(to.request(grpc), false)?;
            for m in &messages[..messages.len().saturating_sub(1)] {
                body.send_data(frame(m), false)?;
            }
            // Let the items reach the server before the reset.
            tokio::time::sleep(Duration::from_millis(200)).await;
            body.send_reset(Reason::CANCEL);
            drop(response);
            Ok(End::new("CANCELLED", "the client reset the stream (RST_STREAM CANCEL)"))
        }
        Rude::CloseMidFrame => {
            // The first half of the items goes through and reaches the
            // server; then the connection carries 1 KiB more, which ends
            // inside the next item's DATA frame, and closes.
            let (send, scissors) = open(conn).await?;
            let mut send = send.ready().await?;
            let (response, mut body) = send.send_request(to.request(grpc), false)?;
            let half = messages.len() / 2;
            for m in &messages[..half] {
                body.send_data(frame(m), false)?;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            scissors.cut_after(1024);
            for m in &messages[half..] {
                let _ = body.send_data(frame(m), false);
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), response).await;
            Ok(End::new("UNAVAILABLE", "the client closed its connection mid-frame"))
        }
        Rude::ThousandStreams => {
            let mut send = open(conn).await?.0;
            // One call first, so that the server's SETTINGS (its stream
            // limit) are known before the burst: streams past the limit are
            // then queued here, not refused there.
            let first = exchange(&mut send, to.request(grpc), messages)
                .await
                .unwrap_or_else(broke);
            // A task per call, so each reads its stream at once.
            let calls = (1..THOUSAND_STREAMS).map(|_| {
                let mut send = send.clone();
                let req = to.request(grpc);
                let messages = messages.to_vec();
                tokio::spawn(async move { exchange(&mut send, req, &messages).await.unwrap_or_else(broke) })
            });
            let mut ends: Vec<End> = futures::future::join_all(calls)
                .await
                .into_iter()
                .map(|r| r.unwrap_or_else(|e| End::new("INTERNAL", format!("the call's task failed: {e}"))))
                .collect();
            ends.insert(0, first);
            let bad: Vec<&End> = ends.iter().filter(|e| e.code != "OK").collect();
            Ok(match bad.first() {
                None => End::new("OK", ""),
                Some(first) => End::new(
                    first.code.clone(),
                    format!(
                        "{} of {THOUSAND_STREAMS} streams failed; the first: {}",
                        bad.len(),
                        first.message
                    ),
                ),
            })
        }
        Rude::BadContentType => {
            let mut send = open(conn).await?.0;
            let bad = exchange(&mut send, to.request("text/plain"), messages)
                .await
                .unwrap_or_else(broke);
            let good = exchange(&mut send, to.request(grpc), messages)
                .await
                .unwrap_or_else(broke);
            Ok(match good.code.as_str() {
                "OK" => End::new(bad.code, format!("text/plain answered: {}", bad.message)),
                _ => End::new(
                    "UNAVAILABLE",
                    format!(
                        "after the text/plain call ({}), the next call on the connection ended {} {}",
                        bad.code, good.code, good.message
                    ),
                ),
            })
        }
        Rude::TwoRequests => {
            let twice: Vec<Vec<u8>> = messages.iter().chain(messages).cloned().collect();
            timed(to, &twice, None).await
        }
        Rude::NoRequest => timed(to, &[], None).await,
        Rude::ServerDeadline => Ok(timed(to, messages, None).await.unwrap_or_else(reset_or_broke)),
        // 8 digits at most (PROTOCOL-HTTP2.md, Timeout), hours the largest unit.
        Rude::HugeTimeout => timed(to, messages, Some("99999999H")).await,
        Rude::UnknownEncoding | Rude::CompressedWithoutEncoding => {
            let mut req = to.request(grpc);
            if rude == Rude::UnknownEncoding {
                req.headers_mut()
                    .insert("grpc-encoding", http::HeaderValue::from_static(UNKNOWN_ENCODING));
            }
            let frames: Vec<Bytes> = messages.iter().map(|m| gzipped_frame(m)).collect();
            exchange_frames(&mut open(conn).await?.0, req, &frames).await
        }
        Rude::NoReceiveLimit => {
            let frames: Vec<Bytes> = messages.iter().map(|m| frame(m)).collect();
            let (status, sizes) = exchange_sizes(&mut open(conn).await?.0, to.request(grpc), &frames).await?;
            Ok(match status.code.as_str() {
                "OK" => End::new(status.code, received(&sizes)),
                _ => status,
            })
        }
        Rude::MonitorNeverRead => {
            let mut send = open(conn).await?.0.ready().await?;
            let (response, mut body) = send.send_request(to.request(grpc), false)?;
            if let Some(m) = messages.first() {
                body.send_data(frame(m), true)?;
            }
            let response = tokio::time::timeout(Duration::from_secs(5), response).await??;
            kept.lock()
                .expect("kept streams")
                .push(Box::new((send, body, response)));
            Ok(End::new("OK", "opened; never read"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_sizes_are_read_from_prefixes_split_anywhere() {
        let bytes: Vec<u8> = [frame(&[7; 3]), frame(&[]), frame(&[1; 300])].concat();
        for cut in [1, 2, 4, 5, 6, 9, 64] {
            let mut sizes = MessageSizes::default();
            bytes.chunks(cut).for_each(|c| sizes.feed(c));
            assert_eq!(sizes.sizes, [3, 0, 300], "chunks of {cut}");
        }
    }

    #[test]
    fn no_receive_limit_reports_each_message_size() {
        assert_eq!(received(&[]), "no message");
        assert_eq!(received(&[5_242_887]), "1 message(s): 5242887 bytes");
        assert_eq!(received(&[10, 3]), "2 message(s): 10, 3 bytes");
    }
}
