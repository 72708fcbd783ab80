//! The reference client's `bench` step (CONTRACT.md, "Bench steps"): the
//! step's call run by C tasks on one channel for D ms, counted and bucketed,
//! reported as one line.
use super::client::{emit, Runner, UsageError};
use super::faults::ClientFault;
use super::transport::DynCodec;
use crate::contract::bench::{BenchLine, Buckets, Counts, Load};
use crate::contract::codes;
use crate::contract::proto::{Kind, MethodInfo};
use crate::contract::script::{Status as StatusLine, Step};
use prost_reflect::DynamicMessage;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// One call as a bench step makes it, built once and made many times.
struct Call {
    info: MethodInfo,
    path: http::uri::PathAndQuery,
    requests: Vec<DynamicMessage>,
    metadata: MetadataMap,
    timeout: Option<Duration>,
    gzip: bool,
}

/// What one worker counted.
#[derive(Default)]
struct Tally {
    calls: u64,
    errors: u64,
    messages: u64,
    buckets: Buckets,
    first_error: Option<(Instant, Status)>,
}

impl Call {
    /// One call to its end; the messages it counts (CONTRACT.md).
    async fn once(&self, channel: Channel) -> Result<u64, Status> {
        let mut grpc = tonic::client::Grpc::new(channel)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_encoding_message_size(usize::MAX);
        if self.gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
        let codec = DynCodec(self.info.output.clone());
        let lock_step = self.info.kind == Kind::Bidi;
        let (tx, rx) = mpsc::channel::<DynamicMessage>(self.requests.len().max(1));
        let mut pending = self.requests.iter().cloned();
        let first: Vec<_> = if lock_step {
            pending.next().into_iter().collect()
        } else {
            pending.by_ref().collect()
        };
        for m in first {
            let _ = tx.send(m).await;
        }
        let mut tx = (lock_step && pending.len() > 0).then_some(tx);
        let mut request = Request::new(ReceiverStream::new(rx));
        *request.metadata_mut() = self.metadata.clone();
        if let Some(t) = self.timeout {
            request.set_timeout(t);
        }
        let mut stream = grpc.streaming(request, self.path.clone(), codec).await?.into_inner();
        let mut received = 0u64;
        while stream.message().await?.is_some() {
            received += 1;
            if let Some(sender) = tx.as_ref() {
                let sent = match pending.next() {
                    Some(next) => sender.send(next).await.is_ok(),
                    None => false,
                };
                if !sent {
                    tx = None; // half-close after the last order, or the stream ended
                }
            }
        }
        stream.trailers().await?;
        Ok(match self.info.kind {
            Kind::Unary => 1,
            Kind::ClientStream => self.requests.len() as u64,
            Kind::ServerStream | Kind::Bidi => received,
        })
    }
}

impl Runner {
    /// Runs a bench step and prints its one line.
    pub(super) async fn run_bench(&self, step: &Step, load: Load) -> Result<(), UsageError> {
        let (info, requests) = self.prepare(step)?;
        if load.concurrency == 0 {
            return Err(UsageError(format!(
                "step {:?}: bench concurrency must be at least 1",
                step.id
            )));
        }
        let start = Instant::now();
        let prepared = self
            .request_metadata(step)
            .and_then(|metadata| {
                let channel = self.channel_for(step.connection.as_ref())?;
                Ok((metadata, channel))
            })
            .map(|(metadata, channel)| {
                let call = Call {
                    path: info.path.parse().expect("valid path"),
                    info,
                    requests,
                    metadata,
                    timeout: step.timeout_ms.filter(|t| *t > 0).map(Duration::from_millis),
                    gzip: step.compression.as_deref() == Some("gzip"),
                };
                (call, channel)
            });
        let tallies = match &prepared {
            Ok((call, channel)) => {
                let end = start + Duration::from_millis(load.duration_ms);
                let faults = &self.args().faults;
                let workers = match faults.contains(&ClientFault::BenchOneInFlight) {
                    true => 1,
                    false => load.concurrency,
                };
                let divide = match faults.contains(&ClientFault::BenchInMillis) {
                    true => 1000,
                    false => 1,
                };
                let workers = (0..workers).map(|_| worker(call, channel.clone(), end, divide));
                futures::future::join_all(workers).await
            }
            Err(status) => vec![Tally {
                errors: 1,
                first_error: Some((start, status.clone())),
                ..Tally::default()
            }],
        };
        let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
        let mut buckets = Buckets::default();
        tallies.iter().for_each(|t| buckets.merge(&t.buckets));
        let first_error = tallies
            .iter()
            .filter_map(|t| t.first_error.as_ref())
            .min_by_key(|(at, _)| *at)
            .map(|(_, s)| StatusLine {
                code: codes::name(s.code()).into(),
                message: s.message().to_string(),
            });
        emit(&BenchLine {
            id: step.id.clone(),
            bench: Counts {
                calls: tallies.iter().map(|t| t.calls).sum(),
                errors: tallies.iter().map(|t| t.errors).sum(),
                messages: tallies.iter().map(|t| t.messages).sum(),
                elapsed_ms,
                histogram: buckets.list(),
                first_error,
            },
        });
        Ok(())
    }
}

/// One worker: the call again and again until `end`.
/// (`divide`: what the latency in µs is divided by before it is counted; 1 but for a fault.)
async fn worker(call: &Call, channel: Channel, end: Instant, divide: u64) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < end {
        let began = Instant::now();
        let result = match call.timeout {
            Some(t) => tokio::time::timeout(t, call.once(channel.clone()))
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded("deadline exceeded (client side)"))),
            None => call.once(channel.clone()).await,
        };
        match result {
            Ok(messages) => {
                tally.calls += 1;
                tally.messages += messages;
                tally.buckets.record(began.elapsed().as_micros() as u64 / divide);
            }
            Err(status) => {
                tally.errors += 1;
                tally.first_error.get_or_insert((began, status));
            }
        }
    }
    tally
}
