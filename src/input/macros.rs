//! The macros a case file may use in its strings (requests, metadata,
//! expectations), expanded per test (pure): `{ns}` (the test's own key
//! prefix), `{repeat:TEXT:N}` (TEXT N times), `{b64:TEXT}` (TEXT in base64),
//! `{b64repeat:TEXT:N}` (TEXT repeated N times, in base64), `{b64noise:SEED:N}`
//! (N bytes that do not compress, the same for the same SEED, in base64).
use base64::Engine as _;
use serde_json::Value;

/// Expands the macros in one string.
pub fn expand_str(s: &str, ns: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find('}').ok_or_else(|| format!("unclosed macro in {s:?}"))?;
        let inner = &tail[1..end];
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        if inner == "ns" {
            out.push_str(ns);
        } else if let Some(args) = inner.strip_prefix("repeat:") {
            let (text, n) = args
                .rsplit_once(':')
                .ok_or_else(|| format!("{{repeat:TEXT:N}} expected, got {{{inner}}}"))?;
            out.push_str(&text.repeat(n.parse().map_err(|_| format!("bad count in {{{inner}}}"))?));
        } else if let Some(text) = inner.strip_prefix("b64:") {
            out.push_str(&b64(text.as_bytes()));
        } else if let Some(args) = inner.strip_prefix("b64repeat:") {
            let (text, n) = args
                .rsplit_once(':')
                .ok_or_else(|| format!("{{b64repeat:TEXT:N}} expected, got {{{inner}}}"))?;
            let n: usize = n.parse().map_err(|_| format!("bad count in {{{inner}}}"))?;
            out.push_str(&b64(text.repeat(n).as_bytes()));
        } else if let Some(args) = inner.strip_prefix("b64noise:") {
            let (seed, n) = args
                .split_once(':')
                .ok_or_else(|| format!("{{b64noise:SEED:N}} expected, got {{{inner}}}"))?;
            let seed: u64 = seed.parse().map_err(|_| format!("bad seed in {{{inner}}}"))?;
            let n: usize = n.parse().map_err(|_| format!("bad count in {{{inner}}}"))?;
            out.push_str(&b64(&noise(seed, n)));
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
        assert!(expand_str("{ns", "").is_err());
    }
}
