//! The macros a case file may use in its strings (requests, metadata,
//! expectations), expanded per test (pure): `{ns}` (the test's own key
//! prefix), `{repeat:TEXT:N}` (TEXT N times), `{b64:TEXT}` (TEXT in base64),
//! `{b64repeat:TEXT:N}` (TEXT repeated N times, in base64), `{b64noise:SEED:N}`
//! (N bytes that do not compress, the same for the same SEED, in base64).
//! The long expansions are made once per run and kept (`long`): the size
//! cases ask for the same megabytes in every cell.
use base64::Engine as _;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Expands the macros in one string.
pub fn expand_str(s: &str, ns: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find('}').ok_or_else(|| format!("unclosed macro in {s:?}"))?;
        let inner = &tail[1..end];
        if inner == "ns" {
            out.push_str(ns);
        } else if let Some(text) = inner.strip_prefix("b64:") {
            out.push_str(&b64(text.as_bytes()));
        } else if inner.starts_with("repeat:") || inner.starts_with("b64repeat:") || inner.starts_with("b64noise:") {
            out.push_str(&long(inner)?);
        } else {
            return Err(format!(
                "unknown macro {{{inner}}} in {s:?} (known: {{ns}}, {{repeat:TEXT:N}}, {{b64:TEXT}}, {{b64repeat:TEXT:N}}, {{b64noise:SEED:N}})"
            ));
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A macro that makes long text (`repeat`, `b64repeat`, `b64noise`),
/// expanded once and kept when its text is long.
fn long(inner: &str) -> Result<Arc<str>, String> {
    static MEMO: OnceLock<Mutex<HashMap<String, Arc<str>>>> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    if let Some(hit) = memo.lock().expect("memo lock").get(inner) {
        return Ok(hit.clone());
    }
    let count = |n: &str| n.parse::<usize>().map_err(|_| format!("bad count in {{{inner}}}"));
    let made: Arc<str> = if let Some(args) = inner.strip_prefix("repeat:") {
        let (text, n) = args
            .rsplit_once(':')
            .ok_or_else(|| format!("{{repeat:TEXT:N}} expected, got {{{inner}}}"))?;
        text.repeat(count(n)?).into()
    } else if let Some(args) = inner.strip_prefix("b64repeat:") {
        let (text, n) = args
            .rsplit_once(':')
            .ok_or_else(|| format!("{{b64repeat:TEXT:N}} expected, got {{{inner}}}"))?;
        b64(text.repeat(count(n)?).as_bytes()).into()
    } else {
        let args = inner.strip_prefix("b64noise:").expect("a long macro");
        let (seed, n) = args
            .split_once(':')
            .ok_or_else(|| format!("{{b64noise:SEED:N}} expected, got {{{inner}}}"))?;
        let seed: u64 = seed.parse().map_err(|_| format!("bad seed in {{{inner}}}"))?;
        b64(&noise(seed, count(n)?)).into()
    };
    if made.len() >= 4096 {
        memo.lock().expect("memo lock").insert(inner.to_string(), made.clone());
    }
    Ok(made)
}

/// Bytes in base64 (standard alphabet, padded).
fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `n` bytes that do not compress, the same for the same seed (xorshift64*).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Expands the macros in every string of a JSON value (keys included).
pub fn expand(v: &Value, ns: &str) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(expand_str(s, ns)?),
        Value::Array(a) => Value::Array(a.iter().map(|x| expand(x, ns)).collect::<Result<_, _>>()?),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((expand_str(k, ns)?, expand(x, ns)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macros_expand() {
        assert_eq!(expand_str("{ns}k", "t1/").unwrap(), "t1/k");
        assert_eq!(expand_str("{b64:hi}", "").unwrap(), "aGk=");
        assert_eq!(expand_str("{b64repeat:ab:3}", "").unwrap(), "YWJhYmFi");
        assert_eq!(expand_str("{repeat:☃:2}", "").unwrap(), "☃☃");
        let a = expand_str("{b64noise:1:1000}", "").unwrap();
        assert_eq!(a, expand_str("{b64noise:1:1000}", "").unwrap());
        assert_ne!(a, expand_str("{b64noise:2:1000}", "").unwrap());
        assert_eq!(crate::contract::script::decode_b64(&a).unwrap().len(), 1000);
        assert!(expand_str("{nope}", "").is_err());
        assert!(expand_str("{repeat:x}", "").is_err());
        assert!(expand_str("{b64noise:x:10}", "").is_err());
        assert!(expand_str("{ns", "").is_err());
    }

    #[test]
    fn long_expansions_are_kept_and_equal_fresh_ones() {
        let big = expand_str("a{repeat:xy:5000}b", "").unwrap();
        assert_eq!(big.len(), 10_002);
        assert_eq!(big, expand_str("a{repeat:xy:5000}b", "").unwrap());
        assert_eq!(&big[1..11], "xyxyxyxyxy");
        let noise = expand_str("{b64noise:9:9000}", "").unwrap();
        assert_eq!(noise, expand_str("{b64noise:9:9000}", "").unwrap());
        assert_eq!(
            crate::contract::script::decode_b64(&noise).unwrap(),
            super::noise(9, 9000)
        );
    }
}
