//! HTTP/2 servers that misbehave on purpose, built on `h2` directly (not
//! tonic), each selected by a case's `peer`: the runner starts one per test
//! on 127.0.0.1 (TLS in the cell's mode, with the run's server certificate)
//! and the case's `faulty` steps call it instead of the cell's server. It
//! speaks just enough of `stock.v1.Stock` (Put, Get, Monitor over the keys
//! it holds, Batch) to answer well where it does not misbehave, and honours
//! `x-stock-delay-ms`. A Put is always answered well, so that a case can set
//! up keys: the misbehaviours of one stream apply to the other methods. It stops, with its connections, when dropped.

mod answer;
mod lock_step;

use super::filtered::{Filtered, Way};
pub use crate::model::misbehaviour::Misbehaviour;
use answer::answer;
use bytes::{Buf, Bytes, BytesMut};
use h2::server::{self, SendResponse};
use h2::{Ping, Reason, RecvStream};
use http::{HeaderMap, HeaderValue, Request, Response};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::rustls;

/// A running peer; `addr` is what the client dials.
pub struct Peer {
    pub addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The certificate and key a TLS peer presents.
pub struct PeerTls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// Starts a peer. Must be called inside the runtime.
pub fn start(how: Misbehaviour, tls: Option<PeerTls>) -> anyhow::Result<Peer> {
    let acceptor = tls.map(|t| acceptor(&t)).transpose()?;
    let std = std::net::TcpListener::bind("127.0.0.1:0")?;
    std.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std)?;
    let addr = listener.local_addr()?.to_string();
    let store = Arc::new(Mutex::new(BTreeMap::new()));
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        let mut accepted = 0usize;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            accepted += 1;
            if how == Misbehaviour::OneConnectionOnly && accepted > 1 {
                drop(tcp);
                continue;
            }
            let _ = tcp.set_nodelay(true);
            let store = store.clone();
            let acceptor = acceptor.clone();
            conns.spawn(async move {
                let seen = Arc::new(Seen::default());
                let rule = seen.clone().rule();
                match acceptor {
                    Some(a) => {
                        if let Ok(io) = a.accept(tcp).await {
                            connection(Filtered::new(io, false, rule), how, store, seen).await;
                        }
                    }
                    None => connection(Filtered::new(tcp, false, rule), how, store, seen).await,
                }
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Ok(Peer { addr, task })
}

fn acceptor(tls: &PeerTls) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(tls.cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(tls.key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // No client certificate is asked for: a client set up for mTLS offers none.
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

type Store = Arc<Mutex<BTreeMap<String, (Vec<u8>, i64)>>>;

/// What a connection's frames told the peer: PINGs received, and GOAWAYs
/// sent. h2's graceful shutdown sends two: GOAWAY with the largest stream
/// id and a PING, then, once that PING is answered, GOAWAY with the last
/// stream it took; a stream the client opens after that one is refused.
#[derive(Default)]
struct Seen {
    pings: AtomicUsize,
    goaways: AtomicUsize,
    /// Told when the second GOAWAY has been written: what the peer writes
    /// after it reaches the client after it.
    last_goaway: tokio::sync::Notify,
}

impl Seen {
    fn rule(self: Arc<Self>) -> crate::reference::filtered::Rule {
        Box::new(move |way: Way, f: &crate::reference::frames::Frame| {
            if way == Way::In && f.is_ping() {
                self.pings.fetch_add(1, Ordering::SeqCst);
            }
            if way == Way::Out
                && f.kind == crate::reference::frames::GOAWAY
                && self.goaways.fetch_add(1, Ordering::SeqCst) == 1
            {
                self.last_goaway.notify_one();
            }
            true
        })
    }
}

/// How long the first call of `GoawayInFirstCall` waits for the client to
/// answer the shutdown's PING before it ends anyway.
const GOAWAY_WAIT: Duration = Duration::from_secs(3);

async fn connection<T: AsyncRead + AsyncWrite + Unpin>(io: T, how: Misbehaviour, store: Store, seen: Arc<Seen>) {
    let mut builder = server::Builder::new();
    match how {
        Misbehaviour::OneStreamAtATime => {
            builder.max_concurrent_streams(1);
        }
        Misbehaviour::TinyWindow => {
            builder.initial_window_size(1024);
        }
        _ => {}
    }
    let Ok(mut conn) = builder.handshake::<_, Bytes>(io).await else {
        return;
    };
    let (order, mut orders) = mpsc::unbounded_channel();
    if how == Misbehaviour::PingFlood {
        if let Some(pp) = conn.ping_pong() {
            tokio::spawn(flood(pp, order.clone()));
        }
    }
    let mut served = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            next = conn.accept() => match next {
                Some(Ok((req, respond))) => {
                    served += 1;
                    let goaway = how == Misbehaviour::GoawayInFirstCall && served == 1;
                    if goaway {
                        // The GOAWAYs go out while the call is in flight; its
                        // trailers wait for the last one (`stream`).
                        conn.graceful_shutdown();
                    }
                    if how == Misbehaviour::RefuseSecondStream && served == 2 {
                        let mut respond = respond;
                        respond.send_reset(Reason::REFUSED_STREAM);
                        drop(req);
                        continue;
                    }
                    let last_goaway = goaway.then(|| seen.clone());
                    tokio::spawn(stream(req, respond, how, store.clone(), last_goaway));
                }
                Some(Err(_)) | None => return,
            },
            Some(reason) = orders.recv() => conn.abrupt_shutdown(reason),
            _ = tick.tick(), if how == Misbehaviour::TooManyPings => {
                if seen.pings.load(Ordering::SeqCst) >= 3 {
                    conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                    seen.pings.store(0, Ordering::SeqCst);
                }
            }
        }
    }
}

/// How long a flood lasts from the connection's start: the case's calls
/// take about 1.3 s; a client keeps its channel (and so the flood) until
/// it exits.
const FLOOD_FOR: Duration = Duration::from_secs(5);
/// A PING every this often, each after the last one's ACK.
const FLOOD_EVERY: Duration = Duration::from_millis(1);

/// A PING every millisecond for the first seconds of the connection; one
/// unanswered for 1 s closes the connection.
async fn flood(mut pp: h2::PingPong, order: mpsc::UnboundedSender<Reason>) {
    let until = tokio::time::Instant::now() + FLOOD_FOR;
    let mut every = tokio::time::interval(FLOOD_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while tokio::time::Instant::now() < until {
        every.tick().await;
        match tokio::time::timeout(Duration::from_secs(1), pp.ping(Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                let _ = order.send(Reason::PROTOCOL_ERROR);
                return;
            }
        }
    }
}

fn grpc_response() -> Response<()> {
    Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-accept-encoding", "gzip")
        .body(())
        .expect("a valid response")
}

fn status(code: i32, message: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("grpc-status", HeaderValue::from(code));
    if !message.is_empty() {
        if let Ok(v) = HeaderValue::from_str(message) {
            h.insert("grpc-message", v);
        }
    }
    h
}

/// The request's messages (uncompressed frames only), read as the peer
/// reads: slowly under `TinyWindow`.
async fn messages(mut body: RecvStream, how: Misbehaviour) -> Result<Vec<Bytes>, h2::Error> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        if how == Misbehaviour::TinyWindow {
            tokio::time::sleep(Duration::from_millis(2 * (chunk.len() as u64).div_ceil(1024))).await;
        }
        let _ = body.flow_control().release_capacity(chunk.len());
        buf.extend_from_slice(&chunk);
    }
    let mut out = Vec::new();
    while let Some(msg) = next_message(&mut buf)? {
        out.push(msg);
    }
    Ok(out)
}

/// The first whole message at the front of `buf`, taken off it
/// (decompressed), or None while it is not all there.
fn next_message(buf: &mut BytesMut) -> Result<Option<Bytes>, h2::Error> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let compressed = buf[0] == 1;
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return Ok(None);
    }
    buf.advance(5);
    let msg = buf.split_to(len).freeze();
    Ok(Some(match compressed {
        // The only encoding a client may use here (the peer accepts gzip).
        true => {
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&msg[..]), &mut plain)
                .map_err(|_| h2::Error::from(Reason::PROTOCOL_ERROR))?;
            Bytes::from(plain)
        }
        false => msg,
    }))
}

async fn stream(
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    how: Misbehaviour,
    store: Store,
    last_goaway: Option<Arc<Seen>>,
) {
    let method = req.uri().path().rsplit('/').next().unwrap_or_default().to_string();
    let echo = req.headers().get("x-stock-echo").cloned();
    let delay = req
        .headers()
        .get("x-stock-delay-ms")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    if how == Misbehaviour::StrictLockStep && method == "Trade" {
        return lock_step::trade(req.into_body(), respond).await;
    }
    let Ok(requests) = messages(req.into_body(), how).await else {
        return;
    };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let (mut msgs, code, message) = answer(&method, &requests, &store);
    let how = if method == "Put" && how.of_a_stream() {
        None
    } else {
        Some(how)
    };
    if how == Some(Misbehaviour::BrokenPercentMessage) && matches!(method.as_str(), "Get" | "Monitor") {
        let broken = status(5, crate::model::misbehaviour::BROKEN_PERCENT_MESSAGE);
        let mut head = grpc_response();
        if method == "Get" {
            head.headers_mut().extend(broken);
            let _ = respond.send_response(head, true);
        } else if let Ok(mut out) = respond.send_response(head, false) {
            let _ = out.send_trailers(broken);
        }
        return;
    }
    if how == Some(Misbehaviour::TrailersOnlyError) {
        let mut head = grpc_response();
        head.headers_mut()
            .extend(status(5, "peer: no such key (trailers only)"));
        // The echo goes back in the one HEADERS frame, a trailer.
        if let Some(v) = echo {
            head.headers_mut().insert("x-stock-echo", v);
        }
        let _ = respond.send_response(head, true);
        return;
    }
    // The cardinality misbehaviours hit Get (unary) and Batch (client
    // stream), which answer with one message; Put, unary too, stays the
    // case's well-behaved call before and after them.
    let single = matches!(method.as_str(), "Get" | "Batch") && code == 0;
    match how {
        Some(Misbehaviour::NoResponseMessage) if single => msgs.clear(),
        Some(Misbehaviour::TwoResponseMessages) if single => msgs.extend(msgs.first().cloned()),
        _ => {}
    }
    let (code, message) = match how {
        Some(Misbehaviour::AnswerThenError) if single => {
            (10, crate::model::misbehaviour::ANSWER_THEN_ERROR_MESSAGE.to_string())
        }
        _ => (code, message),
    };
    let mut head = grpc_response();
    let misencoded = matches!(
        how,
        Some(Misbehaviour::UnknownResponseEncoding | Misbehaviour::CompressedWithoutEncoding)
    ) && method == "Get";
    if misencoded {
        msgs = msgs
            .iter()
            .map(|m| crate::reference::rude::gzipped_frame(&m[5..]))
            .collect();
        if how == Some(Misbehaviour::UnknownResponseEncoding) {
            head.headers_mut().insert(
                "grpc-encoding",
                HeaderValue::from_static(crate::reference::rude::UNKNOWN_ENCODING),
            );
        }
    }
    let Ok(mut out) = respond.send_response(head, false) else {
        return;
    };
    let reset = match how {
        Some(Misbehaviour::ResetAfterHeaders) => Some(Reason::INTERNAL_ERROR),
        Some(Misbehaviour::CancelAfterHeaders) => Some(Reason::CANCEL),
        Some(Misbehaviour::CalmAfterHeaders) => Some(Reason::ENHANCE_YOUR_CALM),
        _ => None,
    };
    if let Some(reason) = reset {
        out.send_reset(reason);
        return;
    }
    for (i, m) in msgs.into_iter().enumerate() {
        out.reserve_capacity(m.len());
        if out.send_data(m, false).is_err() {
            return;
        }
        if i == 0 && how == Some(Misbehaviour::ResetAfterFirstMessage) {
            // Let the message leave before the reset that follows it.
            tokio::time::sleep(Duration::from_millis(20)).await;
            out.send_reset(Reason::INTERNAL_ERROR);
            return;
        }
    }
    if how == Some(Misbehaviour::NoTrailers) {
        // Held open until the client resets it (at its deadline) or leaves.
        let _ = futures::future::poll_fn(|cx| out.poll_reset(cx)).await;
        return;
    }
    if let Some(seen) = last_goaway {
        let _ = tokio::time::timeout(GOAWAY_WAIT, seen.last_goaway.notified()).await;
    }
    let _ = out.send_trailers(status(code, &message));
}
