//! The matchers a case file may use in place of a value (`$any`, `$delta`, `$delta_at_least`,
//! `$absent`, `$range`, …): their syntax, checked when cases load (pure).
use serde_json::Value;
use std::collections::BTreeMap;

/// Checks a matcher's shape when cases load.
pub fn check_matcher_syntax(m: &Value, names: &[String]) -> Result<(), String> {
    let o = m.as_object().ok_or("a matcher is an object")?;
    if o.get("$any") == Some(&Value::Bool(true)) || o.get("$nonempty") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    if o.keys().all(|k| k == "$includes" || k == "$excludes") {
        for name in o.values().flat_map(message_names) {
            crate::contract::proto::pool()
                .get_message_by_name(&name)
                .ok_or_else(|| format!("$message: unknown message type `{name}`"))?;
        }
        return Ok(());
    }
    let delta = o.get("$delta").or_else(|| o.get("$delta_at_least"));
    match (delta.and_then(Value::as_i64), o.get("$from").and_then(Value::as_str)) {
        (Some(_), Some(from)) if names.iter().any(|n| n == from) => Ok(()),
        (Some(_), Some(from)) => Err(format!("$from names no earlier step: `{from}`")),
        _ => Err(format!(
            "unknown matcher {m} (known: {{\"$any\"=true}}, {{\"$nonempty\"=true}}, {{\"$delta\"=N, \"$from\"=STEP}}, {{\"$delta_at_least\"=N, \"$from\"=STEP}}, {{\"$includes\"=V}}, {{\"$excludes\"=V}})"
        )),
    }
}

/// The `$message` names in an `$includes` or `$excludes` value: each must
/// be a message type the pool knows.
fn message_names(want: &Value) -> Vec<String> {
    match want {
        Value::Object(o) => {
            let own = o.get("$message").and_then(Value::as_str).map(str::to_string);
            own.into_iter().chain(o.values().flat_map(message_names)).collect()
        }
        Value::Array(a) => a.iter().flat_map(message_names).collect(),
        _ => Vec::new(),
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

/// An expected status: a code (`NOT_FOUND`), one of several (`A|B`), or any
/// code but those listed (`!OK`, `!OK|DEADLINE_EXCEEDED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPattern {
    negated: bool,
    codes: Vec<String>,
}

impl StatusPattern {
    /// Parses a pattern; an unknown code is an error naming it.
    pub fn parse(s: &str) -> Result<StatusPattern, String> {
        let (negated, list) = match s.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let codes: Vec<String> = list.split('|').map(str::to_string).collect();
        match codes.iter().find(|c| crate::contract::codes::from_name(c).is_none()) {
            Some(bad) => Err(format!(
                "unknown code `{bad}` in `{s}` (canonical names like NOT_FOUND; `A|B` for either, `!A|B` for neither)"
            )),
            None => Ok(StatusPattern { negated, codes }),
        }
    }

    /// Does a received code match?
    pub fn matches(&self, code: &str) -> bool {
        self.codes.iter().any(|c| c == code) != self.negated
    }

    /// Is this code one the pattern names as expected (not merely allowed by
    /// a negation)?
    pub fn expects(&self, code: &str) -> bool {
        !self.negated && self.codes.iter().any(|c| c == code)
    }

    /// What a failure message says was expected.
    /// Does the pattern allow more than one code?
    pub fn has_choice(&self) -> bool {
        self.negated || self.codes.len() > 1
    }

    pub fn describe(&self) -> String {
        match self.negated {
            true => format!("any code but {}", self.codes.join(" or ")),
            false => self.codes.join(" or "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StatusPattern;

    #[test]
    fn a_status_pattern_is_one_code_one_of_several_or_none_of_them() {
        let one = StatusPattern::parse("NOT_FOUND").unwrap();
        assert!(one.matches("NOT_FOUND") && !one.matches("OK"));
        assert_eq!(one.describe(), "NOT_FOUND");
        let either = StatusPattern::parse("CANCELLED|UNAVAILABLE").unwrap();
        assert!(either.matches("UNAVAILABLE") && !either.matches("INTERNAL"));
        let neither = StatusPattern::parse("!OK|DEADLINE_EXCEEDED").unwrap();
        assert!(neither.matches("INTERNAL") && !neither.matches("OK") && !neither.matches("DEADLINE_EXCEEDED"));
        assert_eq!(neither.describe(), "any code but OK or DEADLINE_EXCEEDED");
        assert!(!neither.expects("DEADLINE_EXCEEDED") && !neither.expects("INTERNAL"));
        assert!(either.expects("CANCELLED"));
        assert!(StatusPattern::parse("!OK|MISSING").unwrap_err().contains("`MISSING`"));
    }
}
