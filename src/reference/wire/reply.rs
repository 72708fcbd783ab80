//! What a call's metadata asks the reference server to send back besides
//! its answer: the echoes and the reports (CONTRACT.md's `x-stock-*` hooks).
use super::body::Flags;
use super::{bent, deadline_of, details, WireFaults};
use crate::reference::store::Store;
use http::{HeaderName, HeaderValue};
use std::sync::Arc;

type Entries = Vec<(HeaderName, HeaderValue)>;

/// What a call's metadata asks the server to send back, besides its answer.
#[derive(Default)]
pub(super) struct Reply {
    pub(super) headers: Entries,
    trailers: Entries,
    /// `x-stock-report-watchers`: counted when the trailers are sent.
    watchers: Option<(String, Arc<Store>, bool)>,
    /// `x-stock-report-encoding`: the request's Compressed-Flags, counted
    /// as it arrives and reported with the trailers.
    pub(super) flags: Option<Flags>,
}

impl Reply {
    pub(super) fn read(h: &http::HeaderMap, store: &Arc<Store>, faults: WireFaults) -> Reply {
        let get = |k: &str| h.get(k).cloned();
        let echoed = |k: &str| get(k).filter(|v| !(faults.echo_skips_empty && v.is_empty()));
        let is_true = |k: &str| h.get(k).is_some_and(|v| v.as_bytes() == b"true");
        let mut r = Reply::default();
        let both = |name: &'static str, v: Option<HeaderValue>, r: &mut Reply| {
            if let Some(v) = v {
                r.headers.push((HeaderName::from_static(name), v.clone()));
                r.trailers.push((HeaderName::from_static(name), v));
            }
        };
        if !faults.no_echo {
            let echo = echoed("x-stock-echo").map(|v| match faults.echo_lowercased {
                true => HeaderValue::from_bytes(&v.as_bytes().to_ascii_lowercase()).unwrap_or(v),
                false => v,
            });
            both("x-stock-echo", echo, &mut r);
            let bin = echoed("x-stock-echo-bin").map(|v| {
                if faults.truncate_bin_at_nul {
                    truncate_at_nul(&v)
                } else {
                    v
                }
            });
            both("x-stock-echo-bin", bin, &mut r);
        }
        if let Some(v) = get("x-stock-echo-header") {
            r.headers.push((HeaderName::from_static("x-stock-echo-header"), v));
        }
        if let Some(v) = get("x-stock-echo-trailer") {
            r.trailers.push((HeaderName::from_static("x-stock-echo-trailer"), v));
        }
        if is_true("x-stock-report-encoding") {
            let enc = get("grpc-encoding")
                .filter(|v| !v.is_empty())
                .unwrap_or(HeaderValue::from_static("identity"));
            r.trailers
                .push((HeaderName::from_static("x-stock-request-encoding"), enc));
            r.flags = Some(Flags::default());
        }
        if is_true("x-stock-report-deadline") {
            let left = deadline_of(h, faults)
                .map(|d| bent::reported(h, d, faults.hooks).as_millis().to_string())
                .unwrap_or_else(|| "none".into());
            r.trailers.push((
                HeaderName::from_static("x-stock-deadline-ms"),
                HeaderValue::from_str(&left).expect("digits"),
            ));
        }
        if let Some(prefix) = h.get("x-stock-report-watchers").and_then(|v| v.to_str().ok()) {
            r.watchers = Some((prefix.to_string(), store.clone(), faults.hooks.watchers_by_pattern));
        }
        r
    }

    pub(super) fn trailers(&self) -> Entries {
        let mut t = self.trailers.clone();
        if let Some((prefix, store, by_pattern)) = &self.watchers {
            let mut open = store.open_watchers(prefix);
            if *by_pattern {
                open.sort();
                open.dedup();
            }
            let n = open.len().to_string();
            t.push((
                HeaderName::from_static("x-stock-watchers"),
                HeaderValue::from_str(&n).expect("digits"),
            ));
        }
        if let Some(flags) = &self.flags {
            t.push((
                HeaderName::from_static("x-stock-request-compressed"),
                HeaderValue::from_str(&flags.report()).expect("digits"),
            ));
        }
        t
    }
}

/// The `truncate-bin-at-nul` fault: the bytes of a `-bin` value up to its first 0x00.
fn truncate_at_nul(v: &HeaderValue) -> HeaderValue {
    let Some(mut bytes) = details::bin_bytes(v) else {
        return v.clone();
    };
    if let Some(i) = bytes.iter().position(|b| *b == 0) {
        bytes.truncate(i);
    }
    details::bin_value(&bytes)
}
