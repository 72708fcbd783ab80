//! The in-memory store behind the reference server: keys, versions and
//! watchers guarded by one lock, so a watch's snapshot and its registration
//! are atomic (the contract's "no put is missed, none is sent twice").
use super::rich::bad_field;
use crate::contract::proto::stock::{BatchItem, BatchSummary, WatchEvent};
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::mpsc;
use tonic::Status;

/// Largest value the contract allows.
pub const MAX_VALUE: usize = 1 << 20;
/// Largest key the contract allows, in bytes.
pub const MAX_KEY: usize = 256;

#[derive(Default)]
pub struct Store {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: BTreeMap<String, Entry>,
    watchers: Vec<Watcher>,
    /// Watches let go of by the `unwatch-by-pattern` fault, kept open but
    /// told nothing more.
    muted: Vec<Watcher>,
    /// The `inventory-miscount` fault: an overwrite adds its new length to
    /// the total without taking the old one off.
    miscount_overwrites: bool,
    /// How a prefix pattern matches (right, or as a `--break` fault has it).
    prefix: Prefix,
}

/// How a prefix pattern (`prefix*`) matches a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prefix {
    /// At the key's start, the key that is the prefix itself included.
    #[default]
    AtStart,
    /// Anywhere in the key (the `prefix-anywhere` fault).
    Anywhere,
    /// At the start, with at least one byte after it (the
    /// `star-needs-a-byte` fault): `user/*` misses the key `user/`.
    NeedsAByte,
    /// Any pattern with a star is a prefix up to its first star (the
    /// `star-inside-cuts` fault): the exact pattern `a*b` matches `ax`.
    UpToFirstStar,
    /// The pattern is a path glob (the `pattern-as-glob` fault, as Go's
    /// path.Match or Python's fnmatch): `?` and `[b]` match other keys, and a
    /// star stops at a '/'.
    Glob,
    /// The pattern is a regular expression with its star made `.*` (the
    /// `pattern-as-regex` fault): `a.c` matches `a-c`.
    Regex,
}

struct Entry {
    value: Vec<u8>,
    version: i64,
    /// The bytes Inventory counts for this key, kept as puts happen (the
    /// value's length, unless the miscount fault piles overwrites up).
    counted: i64,
}

struct Watcher {
    pattern: String,
    tx: mpsc::UnboundedSender<WatchEvent>,
}

/// Does `key` match a watch pattern (`prefix*` or exact)?
pub fn matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => pattern == key,
    }
}

/// `matches`, or as a `--break` fault has a prefix match.
fn matches_as(how: Prefix, pattern: &str, key: &str) -> bool {
    match (pattern.strip_suffix('*'), how) {
        (Some(prefix), Prefix::Anywhere) => key.contains(prefix),
        (Some(prefix), Prefix::NeedsAByte) => key.len() > prefix.len() && key.starts_with(prefix),
        (_, Prefix::UpToFirstStar) => match pattern.split_once('*') {
            Some((prefix, _)) => key.starts_with(prefix),
            None => pattern == key,
        },
        (_, Prefix::Glob) => globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .is_ok_and(|g| g.compile_matcher().is_match(key)),
        (_, Prefix::Regex) => {
            regex::Regex::new(&format!("^{}$", pattern.replace('*', ".*"))).is_ok_and(|r| r.is_match(key))
        }
        _ => matches(pattern, key),
    }
}

pub fn validate_key(key: &str) -> Result<(), Status> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(bad_field(
            "key",
            format!("key must be 1 to {MAX_KEY} bytes, got {}", key.len()),
        ));
    }
    Ok(())
}

pub fn validate_value(value: &[u8]) -> Result<(), Status> {
    if value.len() > MAX_VALUE {
        return Err(bad_field(
            "value",
            format!("value must be at most {MAX_VALUE} bytes, got {}", value.len()),
        ));
    }
    Ok(())
}

impl Inner {
    /// Writes one key, notifies matching watchers; true when it was created.
    fn put(&mut self, key: &str, value: Vec<u8>) -> bool {
        let version = self.map.get(key).map(|e| e.version).unwrap_or(0) + 1;
        self.put_as(key, value, version)
    }

    /// Writes one key with the given version.
    fn put_as(&mut self, key: &str, value: Vec<u8>, version: i64) -> bool {
        let entry = self.map.entry(key.to_string()).or_insert(Entry {
            value: Vec::new(),
            version: 0,
            counted: 0,
        });
        let created = entry.version == 0;
        if !self.miscount_overwrites {
            entry.counted = 0;
        }
        entry.counted += value.len() as i64;
        entry.version = version;
        entry.value = value;
        self.notify(key);
        created
    }

    /// Tells the watchers of `key` its value and version as stored now.
    fn notify(&mut self, key: &str) {
        let Some(entry) = self.map.get(key) else { return };
        let event = WatchEvent {
            key: key.to_string(),
            value: entry.value.clone(),
            version: entry.version,
            existing: false,
        };
        self.watchers.retain(|w| {
            if w.tx.is_closed() {
                return false;
            }
            !matches_as(self.prefix, &w.pattern, key) || w.tx.send(event.clone()).is_ok()
        });
    }
}

/// Which store rules a Batch follows: all of them, but for a fault.
#[derive(Debug, Clone, Copy)]
pub struct BatchChecks {
    pub keys: bool,
    pub values: bool,
    /// The `batch-limit-off-by-one` fault: a value of exactly the limit is refused.
    pub off_by_one: bool,
    /// The `batch-unwatched` fault: the items are written without a word
    /// to the watchers.
    pub unwatched: bool,
    /// The `batch-skips-empty-items` fault: an item with an empty value is
    /// neither counted nor applied.
    pub skip_empty: bool,
    /// The `batch-key-named-value` fault: a bad key's violation names `value`.
    pub key_named_value: bool,
    /// The `batch-notified-from-store` fault: the watchers hear of the items
    /// once all are applied, each event read back from the store.
    pub notified_late: bool,
}

impl Default for BatchChecks {
    fn default() -> Self {
        BatchChecks {
            keys: true,
            values: true,
            off_by_one: false,
            unwatched: false,
            skip_empty: false,
            key_named_value: false,
            notified_late: false,
        }
    }
}

impl Store {
    pub fn new(miscount_overwrites: bool) -> Store {
        Store {
            inner: Mutex::new(Inner {
                miscount_overwrites,
                ..Inner::default()
            }),
        }
    }

    /// The store whose prefix patterns match `how`.
    pub fn prefix_matching(mut self, how: Prefix) -> Store {
        self.inner.get_mut().unwrap().prefix = how;
        self
    }

    /// The `unwatch-by-pattern` fault: every watch of `pattern` stops
    /// hearing of puts, its Monitor left open.
    pub fn mute_pattern(&self, pattern: &str) {
        let mut inner = self.inner.lock().unwrap();
        let (muted, kept) = std::mem::take(&mut inner.watchers)
            .into_iter()
            .partition(|w| w.pattern == pattern);
        inner.watchers = kept;
        inner.muted.extend::<Vec<Watcher>>(muted);
    }

    /// The patterns of the open watches (their Monitor has not ended) whose
    /// pattern starts with `prefix`, one per watch.
    pub fn open_watchers(&self, prefix: &str) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        inner
            .watchers
            .iter()
            .filter(|w| !w.tx.is_closed() && w.pattern.starts_with(prefix))
            .map(|w| w.pattern.clone())
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<(Vec<u8>, i64)> {
        let inner = self.inner.lock().unwrap();
        inner.map.get(key).map(|e| (e.value.clone(), e.version))
    }

    pub fn put(&self, key: &str, value: Vec<u8>) {
        self.inner.lock().unwrap().put(key, value);
    }

    /// The `racy-put` fault's write: a version computed outside the lock.
    pub fn put_as_version(&self, key: &str, value: Vec<u8>, version: i64) {
        self.inner.lock().unwrap().put_as(key, value, version);
    }

    /// Registers a watch and returns the existing matches (when asked) taken
    /// in the same critical section, in key order.
    pub fn watch(
        &self,
        pattern: &str,
        include_existing: bool,
    ) -> (Vec<WatchEvent>, mpsc::UnboundedReceiver<WatchEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.inner.lock().unwrap();
        let existing = if include_existing {
            inner
                .map
                .iter()
                .filter(|(k, _)| matches_as(inner.prefix, pattern, k))
                .map(|(k, e)| WatchEvent {
                    key: k.clone(),
                    value: e.value.clone(),
                    version: e.version,
                    existing: true,
                })
                .collect()
        } else {
            Vec::new()
        };
        inner.watchers.push(Watcher {
            pattern: pattern.to_string(),
            tx,
        });
        (existing, rx)
    }

    /// Validates every item, then applies them all in order under one lock.
    pub fn batch(&self, items: Vec<BatchItem>, checks: BatchChecks) -> Result<BatchSummary, Status> {
        for (i, item) in items.iter().enumerate() {
            let refused = |field: &str, s: Status| bad_field(field, format!("item {i}: {}", s.message()));
            if checks.keys {
                let field = if checks.key_named_value { "value" } else { "key" };
                validate_key(&item.key).map_err(|s| refused(field, s))?;
            }
            if checks.values {
                validate_value(&item.value).map_err(|s| refused("value", s))?;
            }
            if checks.off_by_one && item.value.len() == MAX_VALUE {
                let message = format!("value must be under {MAX_VALUE} bytes, got {}", item.value.len());
                return Err(refused("value", Status::invalid_argument(message)));
            }
        }
        let mut inner = self.inner.lock().unwrap();
        let muted = checks.unwatched || checks.notified_late;
        let watchers = muted.then(|| std::mem::take(&mut inner.watchers));
        let mut summary = BatchSummary::default();
        let mut applied = Vec::new();
        for item in items {
            if checks.skip_empty && item.value.is_empty() {
                continue;
            }
            summary.items += 1;
            summary.value_bytes += item.value.len() as i64;
            if inner.put(&item.key, item.value) {
                summary.created += 1;
            } else {
                summary.updated += 1;
            }
            applied.extend(checks.notified_late.then_some(item.key));
        }
        if let Some(watchers) = watchers {
            inner.watchers = watchers;
        }
        for key in applied {
            inner.notify(&key);
        }
        Ok(summary)
    }

    /// (key count, total value bytes) of the keys that start with `prefix`
    /// (leaving out the keys of empty values when `skip_empty`: the
    /// `inventory-skips-empty-values` fault).
    pub fn totals(&self, prefix: &str, skip_empty: bool) -> (i64, i64) {
        let inner = self.inner.lock().unwrap();
        let under = inner
            .map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| !(skip_empty && e.value.is_empty()));
        under.fold((0, 0), |(n, bytes), (_, e)| (n + 1, bytes + e.counted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_prefix_or_exact() {
        assert!(matches("a/*", "a/b"));
        assert!(matches("*", "anything"));
        assert!(matches("a", "a"));
        assert!(!matches("a", "ab"));
        assert!(!matches("a/*", "b/a"));
        assert!(matches("a/*", "a/"), "the empty suffix");
        assert!(!matches_as(Prefix::AtStart, "a/*", "b/a/c"));
        assert!(
            matches_as(Prefix::Anywhere, "a/*", "b/a/c"),
            "the prefix-anywhere fault"
        );
        assert!(
            !matches_as(Prefix::Anywhere, "a", "b/a"),
            "an exact pattern stays exact"
        );
        assert!(
            !matches_as(Prefix::NeedsAByte, "a/*", "a/"),
            "the star-needs-a-byte fault"
        );
        assert!(matches_as(Prefix::NeedsAByte, "a/*", "a/b"));
        assert!(!matches("a*b", "ax"), "a star inside is a character");
        assert!(
            matches_as(Prefix::UpToFirstStar, "a*b", "ax"),
            "the star-inside-cuts fault"
        );
    }

    #[test]
    fn versions_count_puts_and_watchers_see_later_puts() {
        let store = Store::default();
        store.put("k", b"1".to_vec());
        let (existing, mut rx) = store.watch("k", true);
        assert_eq!(existing.len(), 1);
        assert!(existing[0].existing);
        store.put("k", b"2".to_vec());
        let ev = rx.try_recv().unwrap();
        assert_eq!((ev.version, ev.existing, ev.value), (2, false, b"2".to_vec()));
    }

    #[test]
    fn a_bad_item_rejects_the_whole_batch() {
        let store = Store::default();
        let items = vec![
            BatchItem {
                key: "a".into(),
                value: vec![],
            },
            BatchItem {
                key: String::new(),
                value: vec![],
            },
        ];
        assert_eq!(
            store.batch(items, BatchChecks::default()).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(store.totals("", false), (0, 0));
    }

    #[test]
    fn batch_counts_created_and_updated() {
        let store = Store::default();
        store.put("a", b"x".to_vec());
        let items = ["a", "b", "b"]
            .iter()
            .map(|k| BatchItem {
                key: k.to_string(),
                value: b"yy".to_vec(),
            })
            .collect();
        let s = store.batch(items, BatchChecks::default()).unwrap();
        assert_eq!((s.items, s.value_bytes, s.created, s.updated), (3, 6, 1, 2));
        assert_eq!(store.totals("", false), (2, 4));
    }

    #[test]
    fn overwrites_move_the_total_by_the_difference_unless_miscounting() {
        for (miscount, total) in [(false, 2), (true, 7)] {
            let store = Store::new(miscount);
            store.put("a", b"12345".to_vec());
            store.put("a", b"12".to_vec());
            assert_eq!(store.totals("", false), (1, total));
            store.put("b", b"123".to_vec());
            assert_eq!(store.totals("a", false), (1, total), "by prefix");
        }
    }

    #[test]
    fn ended_watches_are_not_counted() {
        let store = Store::default();
        let (_, rx) = store.watch("p/a*", false);
        let (_, _keep) = store.watch("p/b", false);
        let (_, _twin) = store.watch("p/b", false);
        let open = |prefix| store.open_watchers(prefix).len();
        assert_eq!((open("p/"), open("p/a"), open("p/b")), (3, 1, 2), "one per stream");
        drop(rx);
        assert_eq!(open("p/"), 2);
    }
}
