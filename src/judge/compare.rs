//! How one observed value is compared with what a case wants: messages as
//! subsets (canonical proto3 JSON), metadata and error details with their
//! matchers.
use crate::contract::proto;
use crate::contract::script::decode_b64;
use crate::input::matchers::range;
use serde_json::Value;

/// Shortens a value for a reason line.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}… ({} chars)", s.chars().take(100).collect::<String>(), s.len())
    } else {
        s
    }
}

/// One expected header or trailer against what the client printed for it.
pub(super) fn metadata_matches(key: &str, want: &Value, got: Option<&String>) -> Result<(), String> {
    let shown = || {
        got.map(|g| short(&Value::String(g.clone())))
            .unwrap_or_else(|| "nothing".into())
    };
    if want.get("$absent").is_some() {
        return match got {
            None => Ok(()),
            Some(_) => Err(format!("expected none, got {}", shown())),
        };
    }
    if let Some((lo, hi)) = range(want) {
        return match got.and_then(|g| g.trim().parse::<i64>().ok()) {
            Some(n) if (lo..=hi).contains(&n) => Ok(()),
            _ => Err(format!("expected a number in {lo}..={hi}, got {}", shown())),
        };
    }
    let want_s = want.as_str().unwrap_or_default();
    let equal = match got {
        Some(g) if key.ends_with("-bin") => decode_b64(g).ok().is_some_and(|b| decode_b64(want_s).ok() == Some(b)),
        Some(g) => g == want_s,
        None => false,
    };
    if equal {
        Ok(())
    } else {
        Err(format!("expected {}, got {}", short(want), shown()))
    }
}

/// Expected details (each `@type` and the fields it names) against the
/// details a client printed, in order.
pub(super) fn details_match(want: &[Value], got: &[Value]) -> Result<(), String> {
    let types = |l: &[Value]| {
        l.iter()
            .map(|d| {
                d.get("@type")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .rsplit('/')
                    .next()
                    .unwrap_or("?")
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    if want.len() != got.len() {
        return Err(format!(
            "expected {} {:?}, got {} {:?}",
            want.len(),
            types(want),
            got.len(),
            types(got)
        ));
    }
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        let g = proto::canonical_detail(g).map_err(|e| format!("detail {i}: {e}: {}", short(g)))?;
        subset(w, &g, &format!("detail {i}"))?;
    }
    Ok(())
}

/// Every field of `want` (recursively; arrays element by element) is in `got`.
pub(super) fn subset(want: &Value, got: &Value, at: &str) -> Result<(), String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let gv = g.get(k).ok_or_else(|| format!("{at}: no field {k}"))?;
                if k == "@type" {
                    let name = |v: &Value| {
                        v.as_str()
                            .unwrap_or_default()
                            .rsplit('/')
                            .next()
                            .unwrap_or_default()
                            .to_string()
                    };
                    if name(wv) != name(gv) {
                        return Err(format!("{at}: expected a {}, got a {}", name(wv), name(gv)));
                    }
                    continue;
                }
                subset(wv, gv, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .try_for_each(|(i, (a, b))| subset(a, b, &format!("{at}[{i}]"))),
        (w, g) if w == g || (w.as_i64().is_some() && as_i64(g) == w.as_i64()) => Ok(()),
        (w, g) => Err(format!("{at}: expected {}, got {}", short(w), short(g))),
    }
}

pub(super) fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

pub(super) fn is_default(v: &Value) -> bool {
    matches!(v, Value::Null)
        || v == ""
        || v == "0"
        || v == &Value::Bool(false)
        || v.as_i64() == Some(0)
        || v.as_array().is_some_and(|a| a.is_empty())
        || v.as_object().is_some_and(|o| o.is_empty())
}
