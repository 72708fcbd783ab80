//! The `$includes` and `$excludes` matchers (pure): whether an answer holds
//! a value, where the case cannot give the answer whole (the services a
//! server's reflection lists beside the contract's). An object holds the
//! wanted keys, each holding its wanted value; a list holds each wanted
//! element in some element; anything else is equal. A wanted object with
//! `"$message" = NAME` stands for bytes that hold a serialized NAME (base64
//! in proto3 JSON, as reflection's file descriptors are): the bytes are
//! decoded, turned into canonical JSON and compared as that.
use super::compare::short;
use crate::contract::proto;
use crate::contract::script::decode_b64;
use serde_json::Value;

/// Whether `got` holds `want`; if not, where it first does not (`service:
/// no element holds {"name":"stock.v1.Stock"}`).
pub(super) fn includes(got: &Value, want: &Value) -> Result<(), String> {
    holds(got, want, "")
}

/// Whether `got` does not hold `want`.
pub(super) fn excludes(got: &Value, want: &Value) -> Result<(), String> {
    match includes(got, want) {
        Ok(()) => Err(format!("holds {}, which it must not", short(want))),
        Err(_) => Ok(()),
    }
}

fn holds(got: &Value, want: &Value, at: &str) -> Result<(), String> {
    let here = |what: String| match at {
        "" => what,
        _ => format!("{at}: {what}"),
    };
    match want {
        Value::Object(w) if w.contains_key("$message") => {
            let decoded = decode(got, w.get("$message")).map_err(here)?;
            let mut rest = w.clone();
            rest.remove("$message");
            holds(&decoded, &Value::Object(rest), at)
        }
        Value::Object(w) => {
            let g = got
                .as_object()
                .ok_or_else(|| here(format!("expected an object, got {}", short(got))))?;
            for (k, want_v) in w {
                let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                let got_v = g.get(k).ok_or_else(|| format!("{path}: missing"))?;
                holds(got_v, want_v, &path)?;
            }
            Ok(())
        }
        Value::Array(w) => {
            let g = got
                .as_array()
                .ok_or_else(|| here(format!("expected a list, got {}", short(got))))?;
            for want_el in w {
                if g.iter().any(|got_el| holds(got_el, want_el, at).is_ok()) {
                    continue;
                }
                // The one element it can mean (the only one, or the only one
                // of its name) is gone into, so the reason names what differs.
                let name = want_el.get("name");
                let named: Vec<usize> = (0..g.len())
                    .filter(|&i| g.len() == 1 || (name.is_some() && g[i].get("name") == name))
                    .collect();
                if let [i] = named.as_slice() {
                    return holds(&g[*i], want_el, &format!("{at}[{i}]"));
                }
                let seen: Vec<String> = g.iter().map(brief).collect();
                return Err(here(format!(
                    "no element holds {} (got [{}])",
                    short(want_el),
                    seen.join(", ")
                )));
            }
            Ok(())
        }
        _ if got == want => Ok(()),
        _ => Err(here(format!("expected {}, got {}", short(want), short(got)))),
    }
}

/// An element of a list in a reason: its `name` where it has one (a
/// service, a method), else the element shortened.
fn brief(v: &Value) -> String {
    match v.get("name").and_then(Value::as_str) {
        Some(name) => name.to_string(),
        None => short(v),
    }
}

/// The canonical JSON of the message named `name` that `got` (base64) holds.
fn decode(got: &Value, name: Option<&Value>) -> Result<Value, String> {
    let name = name.and_then(Value::as_str).unwrap_or_default();
    let desc = proto::pool()
        .get_message_by_name(name)
        .ok_or_else(|| format!("unknown message type {name}"))?;
    let text = got
        .as_str()
        .ok_or_else(|| format!("expected the bytes of a {name}, got {}", short(got)))?;
    let bytes = decode_b64(text)?;
    let msg = prost_reflect::DynamicMessage::decode(desc, bytes.as_slice())
        .map_err(|e| format!("the bytes are not a {name}: {e}"))?;
    proto::to_canonical(&msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use serde_json::json;

    #[test]
    fn a_list_holds_what_some_element_holds() {
        let got = json!({"service": [{"name": "grpc.health.v1.Health"}, {"name": "stock.v1.Stock"}]});
        assert_eq!(
            includes(&got, &json!({"service": [{"name": "stock.v1.Stock"}]})),
            Ok(())
        );
        assert_eq!(
            includes(&got, &json!({"service": [{"name": "proto.KV"}]})).unwrap_err(),
            "service: no element holds {\"name\":\"proto.KV\"} (got [grpc.health.v1.Health, stock.v1.Stock])"
        );
        assert_eq!(
            excludes(&got, &json!({"service": [{"name": "stock.v1.Ledger"}]})),
            Ok(())
        );
        assert_eq!(
            excludes(&got, &json!({"service": [{"name": "stock.v1.Stock"}]})).unwrap_err(),
            "holds {\"service\":[{\"name\":\"stock.v1.Stock\"}]}, which it must not"
        );
        let one = json!({"service": [{"name": "stock.v1.Stock", "method": [{"name": "Get"}]}]});
        assert_eq!(
            includes(&one, &json!({"service": [{"method": [{"name": "Put"}]}]})).unwrap_err(),
            "service[0].method[0].name: expected \"Put\", got \"Get\""
        );
        let two = json!([{"name": "Get", "serverStreaming": false}, {"name": "Monitor", "serverStreaming": false}]);
        assert_eq!(
            includes(&two, &json!([{"name": "Monitor", "serverStreaming": true}])).unwrap_err(),
            "[1].serverStreaming: expected true, got false"
        );
    }

    #[test]
    fn a_missing_key_or_other_value_is_named_by_its_path() {
        let got = json!({"errorResponse": {"errorCode": 2}});
        assert_eq!(
            includes(&got, &json!({"errorResponse": {"errorCode": 5}})).unwrap_err(),
            "errorResponse.errorCode: expected 5, got 2"
        );
        assert_eq!(
            includes(&got, &json!({"fileDescriptorResponse": {}})).unwrap_err(),
            "fileDescriptorResponse: missing"
        );
    }

    #[test]
    fn bytes_holding_a_message_are_compared_as_that_message() {
        let file = prost_types::FileDescriptorProto {
            name: Some("stock.proto".into()),
            package: Some("stock.v1".into()),
            ..Default::default()
        };
        let got = json!([base64_of(&file.encode_to_vec())]);
        let want = |package: &str| json!([{"$message": "google.protobuf.FileDescriptorProto", "package": package}]);
        assert_eq!(includes(&got, &want("stock.v1")), Ok(()));
        assert_eq!(
            includes(&got, &want("proto")).unwrap_err(),
            "[0].package: expected \"proto\", got \"stock.v1\""
        );
        let err = holds(&json!("AAAA"), &want("stock.v1")[0], "").unwrap_err();
        assert!(err.contains("not a google.protobuf.FileDescriptorProto"), "{err}");
    }

    fn base64_of(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}
