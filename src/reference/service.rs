//! The Stock service of the reference server: the semantics of
//! proto/stock.proto over `store`, with the server faults (`--break`).
use super::book::Book;
use super::faults::Fault;
use super::hooks::Hooks;
use super::rich::{bad_field, with_info, with_resource_info, without_details};
use super::store::{validate_key, validate_value, BatchChecks, Store};
use crate::contract::proto::stock::stock_server::Stock;
use crate::contract::proto::stock::*;
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

mod trade;

/// The Stock service, with the faults it was started with.
#[derive(Default)]
pub struct StockService {
    store: Arc<Store>,
    faults: Vec<Fault>,
    /// The one book of the `shared-trade-book` fault.
    shared_book: Arc<Mutex<Book>>,
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Reads the hooks, sleeps the delay; for unary methods also applies `fail`.
pub(super) async fn enter<T>(req: &Request<T>, unary: bool) -> Result<Hooks, Status> {
    let mut hooks = Hooks::from_metadata(req.metadata())?;
    hooks.delay().await;
    if unary {
        if let Some(status) = hooks.fail.take() {
            return Err(status);
        }
    }
    Ok(hooks)
}

impl StockService {
    /// The service over `store`, with the faults it was started with.
    pub fn new(store: Arc<Store>, faults: Vec<Fault>) -> StockService {
        StockService {
            store,
            faults,
            shared_book: Arc::default(),
        }
    }

    /// INVALID_ARGUMENT naming `field` (without details for a stream under
    /// the `no-details-on-streams` fault).
    fn refuse_stream(&self, field: &str, description: String) -> Status {
        if self.faults.contains(&Fault::NoDetailsOnStreams) {
            Status::invalid_argument(description)
        } else {
            bad_field(field, description)
        }
    }

    /// Runs a call's work; with the `apply-after-cancel` fault, in a task of
    /// its own that finishes even when the call is dropped.
    async fn detached_if_faulty<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, Status>> + Send + 'static,
    ) -> Result<T, Status> {
        if self.faults.contains(&Fault::ApplyAfterCancel) {
            tokio::spawn(work).await.map_err(|e| Status::internal(e.to_string()))?
        } else {
            work.await
        }
    }
}

#[tonic::async_trait]
impl Stock for StockService {
    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let hooks = enter(&req, true).await?;
        let key = req.into_inner().key;
        validate_key(&key)?;
        let key = KeyBend::of(&self.faults).stored(key);
        let missing = if self.faults.contains(&Fault::WrongStatus) {
            Status::unknown("oops")
        } else if self.faults.contains(&Fault::DetailsOnEveryError) {
            with_info(tonic::Code::NotFound, format!("key {key:?} not found"), "NOT_FOUND")
        } else if self.faults.contains(&Fault::ResourceInfoOnNotFound) {
            with_resource_info(tonic::Code::NotFound, format!("key {key:?} not found"), &key)
        } else {
            Status::not_found(format!("key {key:?} not found"))
        };
        let (value, version) = self.store.get(&key).ok_or(missing)?;
        let value = value.repeat(hooks.repeat_value as usize);
        Ok(Response::new(GetResponse { value, version }))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<Empty>, Status> {
        let store = self.store.clone();
        let racy = self.faults.contains(&Fault::RacyPut);
        let forced_applied = self.faults.contains(&Fault::ForcedPutApplied);
        let validate_first = self.faults.contains(&Fault::ValidateBeforeHooks);
        let skip_unchanged = self.faults.contains(&Fault::UnchangedPutSkipped);
        let bend = KeyBend::of(&self.faults);
        // A call that is over (cancelled, deadline) is dropped by tonic with
        // its future, so nothing after the delay runs: the contract's "not
        // applied". The fault detaches the work so that it finishes anyway.
        let work = async move {
            if validate_first {
                validate_key(&req.get_ref().key)?;
            }
            let hooks = enter(&req, !forced_applied).await?;
            let PutRequest { key, value } = req.into_inner();
            validate_key(&key)?;
            let key = bend.stored(key);
            validate_value(&value)?;
            if racy {
                let version = store.get(&key).map(|(_, v)| v).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(1)).await;
                store.put_as_version(&key, value, version + 1);
            } else if !(skip_unchanged && store.get(&key).is_some_and(|(stored, _)| stored == value)) {
                store.put(&key, value);
            }
            // Left for after the work by the forced-put-applied fault only.
            if let Some(status) = hooks.fail {
                return Err(status);
            }
            Ok(Response::new(Empty {}))
        };
        self.detached_if_faulty(work).await
    }

    type MonitorStream = EventStream<WatchEvent>;

    async fn monitor(&self, req: Request<WatchRequest>) -> Result<Response<Self::MonitorStream>, Status> {
        let early = self.faults.contains(&Fault::HeadersBeforeDelay);
        let mut hooks = match early {
            true => Hooks::from_metadata(req.metadata())?,
            false => enter(&req, false).await?,
        };
        // The headers-before-delay fault's delay, slept in the stream.
        let late_delay = hooks.delay.take().filter(|_| early);
        let timed = req.metadata().contains_key("grpc-timeout");
        let w = req.into_inner();
        let blank = self.faults.contains(&Fault::BlankPatternRefused) && w.pattern.trim().is_empty();
        let refusal = if w.pattern.is_empty() || blank {
            Some(self.refuse_stream("pattern", "pattern must not be empty".into()))
        } else if w.max_events < 0 {
            let field = match self.faults.contains(&Fault::JsonFieldNames) {
                true => "maxEvents",
                false => "max_events",
            };
            Some(self.refuse_stream(field, "max_events must not be negative".into()))
        } else {
            None
        };
        if let Some(status) = refusal {
            if self.faults.contains(&Fault::RefusedMonitorRegistered) {
                // Registered before the validation, and never let go.
                std::mem::forget(self.store.watch(&w.pattern, false));
            }
            return Err(status);
        }
        let pattern = match w.pattern.as_str() {
            // a key no case writes: the lone star matches nothing
            "*" if self.faults.contains(&Fault::LoneStarMatchesNothing) => "\u{0}",
            pattern => pattern,
        };
        let (mut existing, mut live) = self.store.watch(pattern, w.include_existing);
        if self.faults.contains(&Fault::ExistingInUtf16Order) {
            existing.sort_by(|a, b| a.key.encode_utf16().cmp(b.key.encode_utf16()));
        }
        if self.faults.contains(&Fault::SnapshotSkipsEmptyValues) {
            existing.retain(|e| !e.value.is_empty());
        }
        let limit = if w.max_events > 0 {
            Some(w.max_events as u64)
        } else {
            None
        };
        let (tx, rx) = mpsc::channel(16);
        let drop_second = self.faults.contains(&Fault::DropStreamMessage);
        let keep = self.faults.contains(&Fault::KeepCancelledMonitors)
            || (self.faults.contains(&Fault::UnwatchOnlyWithDeadline) && !timed);
        let unwatched_on_next_event =
            self.faults.contains(&Fault::CountedMonitorUnwatchedOnNextEvent) && limit.is_some();
        let drop_when_slow = self.faults.contains(&Fault::DropWhenSlow);
        let queue_of_64 = self.faults.contains(&Fault::WatchQueueOf64);
        let keep_finished = self.faults.contains(&Fault::KeepFinishedMonitors);
        let keep_failed = self.faults.contains(&Fault::KeepFailedMonitors);
        let snapshot_uncounted = self.faults.contains(&Fault::SnapshotUncounted);
        let mute = self
            .faults
            .contains(&Fault::UnwatchByPattern)
            .then(|| (self.store.clone(), pattern.to_string()));
        tokio::spawn(async move {
            if let Some(d) = late_delay {
                tokio::time::sleep(d).await;
            }
            let mut sent = 0u64;
            let mut existing = existing.into_iter();
            loop {
                if let Some(status) = hooks.fail.as_ref().filter(|_| sent == hooks.fail_after) {
                    let _ = tx.send(Err(status.clone())).await;
                    if keep_failed {
                        // The error ends the stream; the watch stays.
                        let _watch = live;
                        futures::future::pending::<()>().await;
                    }
                    return;
                }
                let counted = !(snapshot_uncounted && existing.len() > 0);
                if counted && limit.is_some_and(|l| sent >= l) {
                    if let Some((store, pattern)) = &mute {
                        store.mute_pattern(pattern);
                    }
                    if keep_finished {
                        // Ends the stream but never lets go of the watch.
                        drop(tx);
                        let _watch = live;
                        futures::future::pending::<()>().await;
                    }
                    return;
                }
                let event = match existing.next() {
                    Some(e) => e,
                    None => tokio::select! {
                        e = live.recv() => match e {
                            Some(e) => {
                                // What a 64-place queue that drops when full would have lost.
                                while queue_of_64 && live.len() > 64 {
                                    let _ = live.try_recv();
                                }
                                e
                            }
                            None => return,
                        },
                        _ = tx.closed(), if !keep && !unwatched_on_next_event => return,
                    },
                };
                if drop_when_slow {
                    // A full queue loses the event.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(event)) {
                        return;
                    }
                } else if !(drop_second && sent == 1) && tx.send(Ok(event)).await.is_err() {
                    if keep {
                        // Never notices that its client left: the watch stays.
                        futures::future::pending::<()>().await;
                    }
                    return;
                }
                sent += 1;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn batch(&self, req: Request<Streaming<BatchItem>>) -> Result<Response<BatchSummary>, Status> {
        let store = self.store.clone();
        let careless = self.faults.contains(&Fault::ApplyAfterCancel);
        let checks = BatchChecks {
            keys: !self.faults.contains(&Fault::BatchNoKeyLimit),
            values: !self.faults.contains(&Fault::BatchNoValueLimit),
            off_by_one: self.faults.contains(&Fault::BatchLimitOffByOne),
            unwatched: self.faults.contains(&Fault::BatchUnwatched),
            skip_empty: self.faults.contains(&Fault::BatchSkipsEmptyItems),
            key_named_value: self.faults.contains(&Fault::BatchKeyNamedValue),
            notified_late: self.faults.contains(&Fault::BatchNotifiedFromStore),
        };
        let buffer_limit = self.faults.contains(&Fault::BatchBufferLimit).then_some(8usize << 20);
        let kept_on_break = self.faults.contains(&Fault::BatchKeptOnBrokenConnection);
        let oversize_unknown = self.faults.contains(&Fault::StreamOversizeUnknown);
        let bare = self.faults.contains(&Fault::BatchForcedWithoutDetails);
        let work = async move {
            let hooks = enter(&req, false).await?;
            let reset = super::wire::ClientReset::of(&req);
            let mut stream = req.into_inner();
            let mut items = Vec::new();
            let mut buffered = 0usize;
            loop {
                match stream.message().await {
                    Ok(Some(item)) => {
                        buffered += item.key.len() + item.value.len();
                        if buffer_limit.is_some_and(|limit| buffered > limit) {
                            return Err(Status::resource_exhausted("batch buffer full (8 MiB)"));
                        }
                        items.push(item)
                    }
                    Ok(None) if !careless && reset.as_ref().is_some_and(super::wire::ClientReset::happened) => {
                        return Err(Status::cancelled("the client reset the stream"));
                    }
                    Ok(None) => break,
                    // A stream that ends in a cancellation is not a half-close.
                    Err(_) if careless => break,
                    Err(status) if kept_on_break && super::cause::connection_broke(&status) => break,
                    Err(status) if oversize_unknown && status.code() == tonic::Code::ResourceExhausted => {
                        return Err(Status::unknown(status.message()))
                    }
                    Err(status) => return Err(status),
                }
            }
            match hooks.fail {
                Some(status) if bare => return Err(without_details(&status)),
                Some(status) => return Err(status),
                None => {}
            }
            Ok(Response::new(store.batch(items, checks)?))
        };
        self.detached_if_faulty(work).await
    }

    type TradeStream = EventStream<TradeFill>;

    async fn trade(&self, req: Request<Streaming<TradeOrder>>) -> Result<Response<Self::TradeStream>, Status> {
        self.run_trade(req).await
    }

    async fn inventory(&self, req: Request<Empty>) -> Result<Response<InventoryStatus>, Status> {
        enter(&req, true).await?;
        let prefix = req.metadata().get("x-stock-count-prefix").and_then(|v| v.to_str().ok());
        let prefix = prefix.filter(|_| !self.faults.contains(&Fault::InventoryIgnoresPrefix));
        let (key_count, total_value_bytes) = match prefix {
            None if self.faults.contains(&Fault::InventoryOnlyWithPrefix) => (0, 0),
            _ => {
                let skip_empty = self.faults.contains(&Fault::InventorySkipsEmptyValues);
                self.store.totals(prefix.unwrap_or_default(), skip_empty)
            }
        };
        let stack = format!("tonic {}", env!("STOCK_TONIC_VERSION"));
        Ok(Response::new(InventoryStatus {
            key_count,
            total_value_bytes,
            language: "rust".into(),
            stack,
        }))
    }

    async fn audit(&self, _req: Request<Empty>) -> Result<Response<Empty>, Status> {
        if self.faults.contains(&Fault::ExitOnAudit) {
            std::process::exit(3);
        }
        Err(Status::unimplemented(
            "stock.v1.Stock/Audit is deliberately not implemented",
        ))
    }
}

/// How Get and Put store a key: as sent, unless a fault bends it
/// (`keys-cut-at-nul`: up to its first NUL; `keys-trimmed`: trimmed;
/// `keys-case-folded`: in lower case). Read from the faults once per call.
#[derive(Clone, Copy)]
struct KeyBend {
    cut_at_nul: bool,
    trimmed: bool,
    case_folded: bool,
}

impl KeyBend {
    fn of(faults: &[Fault]) -> KeyBend {
        KeyBend {
            cut_at_nul: faults.contains(&Fault::KeysCutAtNul),
            trimmed: faults.contains(&Fault::KeysTrimmed),
            case_folded: faults.contains(&Fault::KeysCaseFolded),
        }
    }

    /// The key as stored.
    fn stored(self, key: String) -> String {
        let key = match key.split_once('\0') {
            Some((before, _)) if self.cut_at_nul => before.to_owned(),
            _ => key,
        };
        match () {
            _ if self.trimmed => key.trim().to_owned(),
            _ if self.case_folded => key.to_lowercase(),
            _ => key,
        }
    }
}
