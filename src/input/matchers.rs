//! The matchers a case file may use in place of a value (`$any`, `$delta`,
//! `$absent`, `$range`, …): their syntax, checked when cases load (pure).
use serde_json::Value;
use std::collections::BTreeMap;

/// Checks a matcher's shape when cases load.
pub fn check_matcher_syntax(m: &Value, names: &[String]) -> Result<(), String> {
    let o = m.as_object().ok_or("a matcher is an object")?;
    if o.get("$any") == Some(&Value::Bool(true)) || o.get("$nonempty") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    match (
        o.get("$delta").and_then(Value::as_i64),
        o.get("$from").and_then(Value::as_str),
    ) {
        (Some(_), Some(from)) if names.iter().any(|n| n == from) => Ok(()),
        (Some(_), Some(from)) => Err(format!("$from names no earlier step: `{from}`")),
        _ => Err(format!(
            "unknown matcher {m} (known: {{\"$any\"=true}}, {{\"$nonempty\"=true}}, {{\"$delta\"=N, \"$from\"=STEP}})"
        )),
    }
}

/// Checks an expected header or trailer when cases load: a string (base64
/// for a `-bin` key), `{"$absent"=true}` or `{"$range"=[LO, HI]}`.
pub fn check_metadata_expectation(key: &str, want: &Value) -> Result<(), String> {
    match want {
        Value::String(s) if key.ends_with("-bin") && !s.contains('{') => {
            crate::contract::script::decode_b64(s).map(|_| ())
        }
        Value::String(_) => Ok(()),
        Value::Object(o) if o.get("$absent") == Some(&Value::Bool(true)) && o.len() == 1 => Ok(()),
        Value::Object(o) if o.len() == 1 && range(want).is_some() => Ok(()),
        _ => Err(format!(
            "expected a string, {{\"$absent\"=true}} or {{\"$range\"=[LO, HI]}}, got {want}"
        )),
    }
}

pub fn range(m: &Value) -> Option<(i64, i64)> {
    match m.get("$range")?.as_array()?.as_slice() {
        [lo, hi] => Some((lo.as_i64()?, hi.as_i64()?)),
        _ => None,
    }
}

/// Splits `{"$...": ...}` matcher fields off an expected message.
pub fn split_matchers(expected: &Value) -> (Value, BTreeMap<String, Value>) {
    let mut plain = serde_json::Map::new();
    let mut matchers = BTreeMap::new();
    if let Value::Object(o) = expected {
        for (k, v) in o {
            match v {
                Value::Object(m) if m.keys().any(|k| k.starts_with('$')) => {
                    matchers.insert(k.clone(), v.clone());
                }
                _ => {
                    plain.insert(k.clone(), v.clone());
                }
            }
        }
    }
    (Value::Object(plain), matchers)
}
