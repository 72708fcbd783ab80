//! One call of a step: the tonic call itself, and how its outcome becomes
//! the contract's status line (with the reference client's faults applied).
use super::retry::{Tries, Unprocessed};
use super::settle::{settle, Deadlines, BROKEN};
use super::{emit, Runner, UsageError};
use crate::contract::codes;
use crate::contract::proto::{self, Kind, MethodInfo};
use crate::contract::script::{Line, Status as StatusLine, Step};
use crate::reference::cause;
use crate::reference::faults::ClientFault;
use crate::reference::rude;
use crate::reference::transport::{stock_metadata, DynCodec};
use futures::future::BoxFuture;
use prost_reflect::DynamicMessage;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Status};

/// The status line of a call that got no headers, trailers or details.
fn emit_bare_status(id: String, code: String, message: String, start: Instant) {
    emit_rude_end(
        id,
        rude::End {
            code,
            message,
            ..Default::default()
        },
        start,
    );
}

/// The status line of a rude call (or of a call that got no headers,
/// trailers or details): its status and the details its trailers carried.
fn emit_rude_end(id: String, end: rude::End, start: Instant) {
    let rude::End { code, message, details } = end;
    super::ended(&code);
    emit(&Line {
        id,
        message: None,
        status: Some(StatusLine { code, message }),
        headers: Some(BTreeMap::new()),
        trailers: Some(BTreeMap::new()),
        elapsed_ms: Some(start.elapsed().as_secs_f64() * 1000.0),
        response_encoding: Some("identity".into()),
        response_compressed: None,
        details: Some(details),
    });
}

/// The `percent-encoded-message` fault: the message as it travels.
fn percent_encoded(message: &str) -> String {
    message
        .bytes()
        .map(|b| {
            if (0x20..0x7f).contains(&b) && b != b'%' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What one call saw besides its messages.
#[derive(Default)]
struct Seen {
    headers: BTreeMap<String, String>,
    trailers: BTreeMap<String, String>,
    /// The responses' `grpc-encoding`, once headers arrived.
    encoding: Option<String>,
    /// The responses' Compressed-Flags, counted as they arrive.
    flags: Option<crate::reference::wire::Flags>,
    /// The `last-message-after-status` fault: a stream's last message so
    /// far, printed when the next one comes or after the status line.
    late: Option<Line>,
}

impl Runner {
    /// One call of a step, its lines under `id`.
    pub(super) fn run_call<'a>(&'a self, step: &'a Step, id: String) -> BoxFuture<'a, Result<(), UsageError>> {
        Box::pin(async move {
            let (info, mut requests) = self.prepare(step)?;
            if step.method == "Batch" && self.args.faults.contains(&ClientFault::BatchSkipsEmptyItems) {
                requests.retain(|m| {
                    m.get_field_by_name("value")
                        .is_some_and(|v| v.as_bytes().is_some_and(|b| !b.is_empty()))
                });
            }
            if step.method == "Trade" && self.args.faults.contains(&ClientFault::UnnamedSideSentUnspecified) {
                for order in &mut requests {
                    let side = order.get_field_by_name("side").and_then(|v| v.as_enum_number());
                    if side.is_some_and(|n| proto::stock::Side::try_from(n).is_err()) {
                        order.set_field_by_name("side", prost_reflect::Value::EnumNumber(0));
                    }
                }
            }
            if step.method == "Trade" && self.args.faults.contains(&ClientFault::ExitOnTrade) {
                std::process::exit(3);
            }
            let start = Instant::now();
            let conn = step.connection.as_ref().unwrap_or(&self.default);
            if self.called.lock().expect("called connections").insert(conn.clone()) {
                if let Some(ms) = self.args.slow_first_call_ms {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                if self.args.faults.contains(&ClientFault::FirstCallUnavailable) {
                    emit_bare_status(
                        id,
                        "UNAVAILABLE".into(),
                        "the channel is still connecting".into(),
                        start,
                    );
                    return Ok(());
                }
            }
            if let Some(how) = step.rude {
                let conn = step.connection.as_ref().unwrap_or(&self.default);
                let encoded: Vec<Vec<u8>> = requests.iter().map(prost::Message::encode_to_vec).collect();
                let to = rude::Target {
                    conn,
                    path: &info.path,
                    metadata: &step.metadata,
                    timeout: step.timeout_ms.filter(|t| *t > 0).map(Duration::from_millis),
                };
                let end = rude::call(how, &to, &encoded, &self.kept).await;
                emit_rude_end(id, end, start);
                return Ok(());
            }
            let mut seen = Seen::default();
            let Deadlines {
                timeout,
                late,
                own_timer,
                overflowed,
            } = Deadlines::of(step.timeout_ms, &self.args.faults, info.kind);
            let fallback = step
                .fallback_method
                .as_deref()
                .map(|name| {
                    proto::method(name)
                        .ok_or_else(|| UsageError(format!("step {:?}: unknown fallback_method {name:?}", step.id)))
                })
                .transpose()?;
            let call = async {
                // gRPC's transparent retry: a call the server never processed
                // (its connection died first, or its stream was refused) is
                // tried again (retry.rs).
                let mut first = self.call(step, &id, &info, requests.clone(), timeout, &mut seen).await;
                if self.args.faults.contains(&ClientFault::WaitForReady) {
                    // Until the server first answers on a connection, a call
                    // that failed on this side waits for it to become ready.
                    let answered = |first: &Result<(), Status>, seen: &Seen| !matches!(first, Err(s) if seen.headers.is_empty() && cause::never_connected(s));
                    let given_up = |s: &Status| match s.code() {
                        tonic::Code::DeadlineExceeded => true,
                        tonic::Code::Cancelled => Unprocessed::of(s).is_none(),
                        _ => false,
                    };
                    let mut ready = self.answered.lock().expect("answered connections").contains(conn);
                    while !ready && !answered(&first, &seen) && !matches!(&first, Err(s) if given_up(s)) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        seen = Seen::default();
                        first = self.call(step, &id, &info, requests.clone(), timeout, &mut seen).await;
                        ready = self.answered.lock().expect("answered connections").contains(conn);
                    }
                    if answered(&first, &seen) {
                        self.answered.lock().expect("answered connections").insert(conn.clone());
                    }
                }
                // Each try gets the time the call has left.
                let refused_internal = self.args.faults.contains(&ClientFault::RefusedStreamInternal);
                let mut tries = Tries::new(refused_internal);
                while matches!(&first, Err(s) if tries.again(Unprocessed::of(s))) {
                    seen = Seen::default();
                    let left = timeout.map(|t| t.saturating_sub(start.elapsed()).max(Duration::from_millis(1)));
                    first = self.call(step, &id, &info, requests.clone(), left, &mut seen).await;
                }
                let first = match first {
                    Err(s) if refused_internal && cause::refused(&s) => {
                        Err(Status::internal("stream closed with REFUSED_STREAM"))
                    }
                    Err(s) if self.args.faults.contains(&ClientFault::ResetIgnored) && cause::stream_reset(&s) => {
                        futures::future::pending().await
                    }
                    r => r,
                };
                match (first, &fallback) {
                    (Err(s), Some(alt)) if s.code() == tonic::Code::Unimplemented => {
                        seen = Seen::default();
                        self.call(step, &id, alt, requests, timeout, &mut seen).await
                    }
                    (r, _) => r,
                }
            };
            // Dropping a call's future resets its stream: tonic's cancellation.
            let whole_seconds = self.args.faults.contains(&ClientFault::CancelInWholeSeconds);
            let cancel_after = step
                .cancel_after_ms
                .filter(|_| !self.args.faults.contains(&ClientFault::IgnoreCancel))
                .map(|ms| if whole_seconds { ms / 1000 * 1000 } else { ms });
            let call = async move {
                match cancel_after {
                    Some(ms) => tokio::time::timeout(Duration::from_millis(ms), call)
                        .await
                        .unwrap_or_else(|_| Err(Status::cancelled("cancelled by the client (cancel_after_ms)"))),
                    None => call.await,
                }
            };
            let faults = &self.args.faults;
            let result = match own_timer {
                _ if overflowed => {
                    drop(call);
                    Err(Status::deadline_exceeded("deadline exceeded (client side)"))
                }
                // The local deadline also covers a server that ignores grpc-timeout.
                Some(t) => tokio::time::timeout(t, call)
                    .await
                    .unwrap_or_else(|_| Err(Status::deadline_exceeded("deadline exceeded (client side)"))),
                None => call.await,
            };
            let cancels = cancel_after.is_some() || step.cancel_after_messages.is_some();
            let result = match settle(faults, result, start, timeout, late, cancels) {
                Err(s)
                    if s.code() == tonic::Code::DeadlineExceeded
                        && info.kind == Kind::ServerStream
                        && seen.encoding.is_none()
                        && faults.contains(&ClientFault::HeaderlessStreamUnknown) =>
                {
                    Err(Status::unknown("the stream ended before it opened"))
                }
                r => r,
            };
            if matches!(&result, Err(s) if s.message().starts_with(BROKEN))
                && self.args.faults.contains(&ClientFault::DeadChannelKept)
            {
                let conn = step.connection.as_ref().unwrap_or(&self.default).clone();
                self.dead.lock().expect("dead connections").insert(conn);
            }
            let details = match &result {
                Err(s) if !s.details().is_empty() && !self.args.faults.contains(&ClientFault::NoDetails) => {
                    proto::status_details(s.details(), s.code() as i32).unwrap_or_else(|e| {
                        note!("step {id:?}: {e}");
                        Vec::new()
                    })
                }
                _ => Vec::new(),
            };
            let status = match result {
                Ok(()) => StatusLine {
                    code: "OK".into(),
                    message: match self.args.faults.contains(&ClientFault::OkMessageMadeUp) {
                        true => "OK".into(),
                        false => String::new(),
                    },
                },
                Err(s) => {
                    if seen.trailers.is_empty() {
                        seen.trailers = stock_metadata(s.metadata());
                        if self.args.faults.contains(&ClientFault::TrailersOnlyAsHeaders) && seen.headers.is_empty() {
                            seen.headers = seen.trailers.clone();
                        }
                    }
                    let message = if self.args.faults.contains(&ClientFault::PercentEncodedMessage) {
                        percent_encoded(s.message())
                    } else {
                        s.message().to_string()
                    };
                    StatusLine {
                        code: codes::name(s.code()).into(),
                        message,
                    }
                }
            };
            if self.args.faults.contains(&ClientFault::HeadersAsTrailers) {
                seen.trailers.extend(seen.headers.clone());
            }
            let late = seen.late.take();
            super::ended(&status.code);
            emit(&Line {
                id,
                message: None,
                status: Some(status),
                headers: Some(seen.headers),
                trailers: Some(seen.trailers),
                elapsed_ms: Some(start.elapsed().as_secs_f64() * 1000.0),
                response_encoding: Some(
                    match self.args.faults.contains(&ClientFault::ResponseEncodingFromRequest) {
                        true if step.compression.as_deref() == Some("gzip") => "gzip".into(),
                        _ => seen.encoding.unwrap_or_else(|| "identity".into()),
                    },
                ),
                response_compressed: seen.flags.map(|f| f.report()),
                details: Some(details),
            });
            late.iter().for_each(emit);
            Ok(())
        })
    }

    async fn call(
        &self,
        step: &Step,
        id: &str,
        info: &MethodInfo,
        requests: Vec<DynamicMessage>,
        timeout: Option<Duration>,
        seen: &mut Seen,
    ) -> Result<(), Status> {
        let path: http::uri::PathAndQuery = info.path.parse().expect("valid path");
        // No cap on what is sent: the size cases send over 4 MiB on purpose.
        let channel = self.channel_for(step.connection.as_ref())?;
        let faults = &self.args.faults;
        let checked = super::encoding::Checked::new(
            channel,
            faults.contains(&ClientFault::GunzipAnyEncoding),
            faults.contains(&ClientFault::BrokenEscapeDropsMessage),
        );
        let mut grpc = tonic::client::Grpc::new(checked)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(if self.args.faults.contains(&ClientFault::NoReceiveLimit) {
                64 << 20
            } else if self.args.faults.contains(&ClientFault::ReceiveLimitDecimal) {
                4_000_000
            } else if self.args.faults.contains(&ClientFault::ReceiveLimit5Mib) {
                5 << 20
            } else if self.args.faults.contains(&ClientFault::ReceiveLimitPlusPrefix) {
                (4 << 20) + 5
            } else {
                4 << 20
            })
            .max_encoding_message_size(match self.args.faults.contains(&ClientFault::SendLimit4Mib) {
                true => 4 << 20,
                false => usize::MAX,
            });
        let compress =
            step.compression.as_deref() == Some("gzip") || self.args.faults.contains(&ClientFault::CompressAlways);
        let header_only =
            compress && info.kind != Kind::Unary && faults.contains(&ClientFault::StreamRequestsUncompressed);
        if compress && !faults.contains(&ClientFault::NoCompress) && !header_only {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;

        let lock_step = info.kind == Kind::Bidi && !faults.contains(&ClientFault::SendsAllOrdersFirst);
        let (tx, rx) = mpsc::channel::<DynamicMessage>(requests.len().max(1));
        let mut pending = requests.into_iter();
        // Lock-step sends the first order before waiting for headers (a server may hold them until it answers).
        let first_batch: Vec<_> = if lock_step {
            pending.next().into_iter().collect()
        } else {
            pending.by_ref().collect()
        };
        for m in first_batch {
            let _ = tx.send(m).await;
        }
        let mut tx = if lock_step && pending.len() > 0 {
            Some(tx)
        } else {
            drop(tx); // half-close now: nothing more to send
            None
        };

        let mut request = Request::new(ReceiverStream::new(rx));
        *request.metadata_mut() = self.request_metadata(step)?;
        if header_only {
            request
                .metadata_mut()
                .insert("grpc-encoding", tonic::metadata::MetadataValue::from_static("gzip"));
        }
        if let Some(t) = timeout {
            request.set_timeout(t);
        }
        let response = grpc.streaming(request, path, DynCodec(info.output.clone())).await?;
        seen.headers = stock_metadata(response.metadata());
        seen.flags = response.extensions().get::<crate::reference::wire::Flags>().cloned();
        seen.encoding = Some(match response.extensions().get::<super::encoding::CameWith>() {
            Some(came) => came.0.clone(),
            None => response
                .metadata()
                .get("grpc-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity")
                .to_string(),
        });
        let mut stream = response.into_inner();
        let mut count = 0usize;
        // A call with one response message returns it only with its status:
        // one that fails after the message arrived returns none.
        let single = matches!(info.kind, Kind::Unary | Kind::ClientStream);
        let mut held = Vec::new();
        loop {
            let msg = match stream.message().await {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(status) => {
                    if faults.contains(&ClientFault::AnswerOfFailedCall) {
                        held.iter().for_each(emit);
                    }
                    return Err(status);
                }
            };
            count += 1;
            let line = Line {
                id: id.to_string(),
                message: Some(proto::to_proto3_json(&msg)),
                status: None,
                headers: None,
                trailers: None,
                elapsed_ms: None,
                response_encoding: None,
                response_compressed: None,
                details: None,
            };
            match single {
                true => held.push(line),
                false if self.args.faults.contains(&ClientFault::LastMessageAfterStatus) => {
                    seen.late.replace(line).iter().for_each(emit)
                }
                false => emit(&line),
            }
            if count == 1 && faults.contains(&ClientFault::AfterFirstAtOnce) {
                let all = step.after_first.iter().map(|nested| self.run_step(nested));
                for r in futures::future::join_all(all).await {
                    r.map_err(|e| Status::internal(e.0))?;
                }
            } else if count == 1 {
                for nested in &step.after_first {
                    self.run_step(nested).await.map_err(|e| Status::internal(e.0))?;
                }
            }
            let cancel_here = step.cancel_after_messages.is_some_and(|n| n as usize == count)
                && !faults.contains(&ClientFault::CancelAfterMessagesIgnored);
            if cancel_here {
                // Dropping the stream resets it: tonic's cancellation.
                return Err(Status::cancelled("cancelled by the client (cancel_after_messages)"));
            }
            if let Some(pause) = step
                .read_pause_ms
                .filter(|_| !faults.contains(&ClientFault::ReadPauseIgnored))
            {
                // A slow reader: nothing is read from the stream meanwhile.
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            if let Some(sender) = tx.as_ref() {
                match pending.next() {
                    Some(next) => {
                        if sender.send(next).await.is_err() {
                            // The stream ended: read its status.
                            tx = None;
                        }
                    }
                    None => tx = None,
                }
            }
        }
        if let Some(trailers) = stream.trailers().await? {
            seen.trailers = stock_metadata(&trailers);
        }
        // statuscodes.md: a response cardinality violation is UNIMPLEMENTED,
        // generated at the client.
        if single && count != 1 && !self.args.faults.contains(&ClientFault::CardinalityUnchecked) {
            return Err(Status::unimplemented(format!(
                "response cardinality violation: {count} response messages where the method has one"
            )));
        }
        held.iter().for_each(emit);
        Ok(())
    }
}
