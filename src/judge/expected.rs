//! A case's expected message made ready for comparison: macros expanded,
//! matchers split off, the rest canonicalised (pure). The size cases expect
//! the same megabyte values in every cell, so an expectation that does not
//! depend on the test (no `{ns}`) is made once per run and kept.
use crate::contract::proto;
use crate::input::macros::expand;
use crate::input::matchers::split_matchers;
use prost_reflect::MessageDescriptor;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// An expected message, ready to compare with canonical client output.
#[derive(Debug)]
pub(super) struct Expected {
    /// The canonical form of its plain fields (every field, defaults included).
    pub canon: Value,
    /// The JSON names of the fields the case wrote (`match = "partial"`
    /// compares only those).
    pub named: Vec<String>,
    /// The fields given as matchers (`{ "$any" = true }` …), by JSON name.
    pub matchers: BTreeMap<String, Value>,
}

/// Why an expected message could not be made ready.
#[derive(Debug, Clone)]
pub(super) enum NotReady {
    /// A macro did not expand.
    Macro(String),
    /// The expansion is not a valid message of its type.
    Invalid(String),
}

type Memo = HashMap<String, Result<Arc<Expected>, NotReady>>;

/// `want` (as the case wrote it) for the test whose key prefix is `ns`.
pub(super) fn expected(desc: &MessageDescriptor, want: &Value, ns: &str) -> Result<Arc<Expected>, NotReady> {
    let text = want.to_string();
    if text.contains("{ns}") {
        return prepare(desc, want, ns).map(Arc::new);
    }
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    let key = format!("{}\n{text}", desc.full_name());
    if let Some(hit) = memo.lock().expect("memo lock").get(&key) {
        return hit.clone();
    }
    let made = prepare(desc, want, ns).map(Arc::new);
    memo.lock().expect("memo lock").insert(key, made.clone());
    made
}

fn prepare(desc: &MessageDescriptor, want: &Value, ns: &str) -> Result<Expected, NotReady> {
    let want = expand(want, ns).map_err(NotReady::Macro)?;
    let (plain, matchers) = split_matchers(&want);
    let canon = proto::canonical_json(desc, &plain).map_err(NotReady::Invalid)?;
    let json_name = |k: &str| {
        desc.get_field_by_name(k)
            .map(|f| f.json_name().to_string())
            .unwrap_or_else(|| k.to_string())
    };
    let named = plain
        .as_object()
        .map(|o| o.keys().map(|k| json_name(k)).collect())
        .unwrap_or_default();
    let matchers = matchers.into_iter().map(|(k, v)| (json_name(&k), v)).collect();
    Ok(Expected { canon, named, matchers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desc() -> MessageDescriptor {
        proto::pool().get_message_by_name("stock.v1.GetResponse").unwrap()
    }

    #[test]
    fn an_expectation_with_ns_is_made_per_test() {
        let want = json!({ "value": "{b64:x}", "version": "{ns}" });
        // version is an int64: "{ns}" must expand to a number for the message to be valid
        let a = expected(&desc(), &want, "1").unwrap();
        let b = expected(&desc(), &want, "2").unwrap();
        assert_eq!(a.canon["version"], json!("1"));
        assert_eq!(b.canon["version"], json!("2"));
    }

    #[test]
    fn an_expectation_without_ns_is_made_once_and_equals_a_fresh_one() {
        let want = json!({ "value": "{b64noise:7:5000}", "version": { "$any": true } });
        let first = expected(&desc(), &want, "t1/").unwrap();
        let again = expected(&desc(), &want, "t2/").unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let fresh = prepare(&desc(), &want, "t3/").unwrap();
        assert_eq!(first.canon, fresh.canon);
        assert_eq!(first.named, vec!["value".to_string()]);
        assert_eq!(first.matchers.keys().collect::<Vec<_>>(), vec!["version"]);
    }

    #[test]
    fn errors_say_which_step_failed() {
        assert!(matches!(
            expected(&desc(), &json!({ "value": "{nope}" }), ""),
            Err(NotReady::Macro(_))
        ));
        let bad = json!({ "value": "{b64:x}", "version": "not a number" });
        assert!(matches!(expected(&desc(), &bad, ""), Err(NotReady::Invalid(_))));
    }
}
