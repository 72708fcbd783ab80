//! What the peer answers where it behaves: Put, Get, Monitor and Batch over
//! the keys it holds.

use super::Store;
use crate::contract::proto::stock::{
    BatchItem, BatchSummary, GetRequest, GetResponse, PutRequest, WatchEvent, WatchRequest,
};
use bytes::Bytes;
use prost::Message;

/// One gRPC message frame (uncompressed).
pub(super) fn frame(msg: &impl Message) -> Bytes {
    crate::reference::rude::frame(&msg.encode_to_vec())
}

/// The answer the peer would give if it behaved: messages and a status.
pub(super) fn answer(method: &str, requests: &[Bytes], store: &Store) -> (Vec<Bytes>, i32, String) {
    let mut kv = store.lock().expect("peer store");
    let first = requests.first().cloned().unwrap_or_default();
    match method {
        "Put" => match PutRequest::decode(first) {
            Ok(p) => {
                let version = kv.get(&p.key).map_or(1, |(_, v)| v + 1);
                kv.insert(p.key, (p.value, version));
                (vec![frame(&crate::contract::proto::stock::Empty {})], 0, String::new())
            }
            Err(e) => (vec![], 13, format!("peer: bad PutRequest: {e}")),
        },
        "Get" => match GetRequest::decode(first) {
            Ok(g) => match kv.get(&g.key) {
                Some((value, version)) => (
                    vec![frame(&GetResponse {
                        value: value.clone(),
                        version: *version,
                    })],
                    0,
                    String::new(),
                ),
                None => (vec![], 5, format!("key not found: {}", g.key)),
            },
            Err(e) => (vec![], 13, format!("peer: bad GetRequest: {e}")),
        },
        "Monitor" => match WatchRequest::decode(first) {
            Ok(w) => {
                let events = kv
                    .iter()
                    .filter(|(k, _)| crate::reference::store::matches(&w.pattern, k))
                    .map(|(k, (value, version))| {
                        frame(&WatchEvent {
                            key: k.clone(),
                            value: value.clone(),
                            version: *version,
                            existing: true,
                        })
                    })
                    .collect();
                (events, 0, String::new())
            }
            Err(e) => (vec![], 13, format!("peer: bad WatchRequest: {e}")),
        },
        "Batch" => {
            let mut summary = BatchSummary::default();
            for r in requests {
                let Ok(item) = BatchItem::decode(r.clone()) else {
                    return (vec![], 13, "peer: bad BatchItem".into());
                };
                summary.items += 1;
                summary.value_bytes += item.value.len() as i64;
                match kv.get(&item.key).map(|(_, v)| *v) {
                    Some(v) => {
                        summary.updated += 1;
                        kv.insert(item.key, (item.value, v + 1));
                    }
                    None => {
                        summary.created += 1;
                        kv.insert(item.key, (item.value, 1));
                    }
                }
            }
            (vec![frame(&summary)], 0, String::new())
        }
        other => (vec![], 12, format!("peer: {other} is not served here")),
    }
}
