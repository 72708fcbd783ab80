//! The generated Stock types, the descriptor pool built from the same proto,
//! and proto3-JSON helpers. Everything that turns JSON into messages (case
//! expectations and client output alike) goes through `canonical_json`, so
//! two spellings of the same message compare equal.
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde::Serialize as _;
use std::sync::OnceLock;

/// Code generated from proto/stock.proto.
#[allow(clippy::all, missing_docs)]
pub mod stock {
    tonic::include_proto!("stock.v1");
}

/// Code generated from proto/kv.proto: the legacy `proto.KV` service.
#[allow(clippy::all, missing_docs)]
pub mod kv {
    tonic::include_proto!("proto");
}

/// The encoded `FileDescriptorSet` of proto/stock.proto and proto/kv.proto.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/stock_descriptor.bin"));

/// The descriptor pool of proto/stock.proto.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTOR_SET).expect("descriptor set built by build.rs"))
}

/// How a method streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Unary,
    ServerStream,
    ClientStream,
    Bidi,
}

/// A method a script step may call, as named in the contract: `Get`,
/// `Ledger.Balance` for another stock.v1 service, `proto.KV.Get` for a
/// service of another package.
#[derive(Debug, Clone)]
pub struct MethodInfo {
    /// The HTTP/2 path: `/stock.v1.Stock/Get`.
    pub path: String,
    pub kind: Kind,
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
}

/// Looks up a method by its step name (`Get`, `Audit`, `Ledger.Balance`,
/// `proto.KV.Get`).
pub fn method(name: &str) -> Option<MethodInfo> {
    let (service, method) = match name.rsplit_once('.') {
        Some((s, m)) if s.contains('.') => (s.to_string(), m),
        Some((s, m)) => (format!("stock.v1.{s}"), m),
        None => ("stock.v1.Stock".to_string(), name),
    };
    let svc = pool().get_service_by_name(&service)?;
    let m = svc.methods().find(|m| m.name() == method)?;
    let kind = match (m.is_client_streaming(), m.is_server_streaming()) {
        (false, false) => Kind::Unary,
        (false, true) => Kind::ServerStream,
        (true, false) => Kind::ClientStream,
        (true, true) => Kind::Bidi,
    };
    Some(MethodInfo {
        path: format!("/{service}/{method}"),
        kind,
        input: m.input(),
        output: m.output(),
    })
}

/// Every method name a step may use.
pub fn method_names() -> Vec<String> {
    let mut names = Vec::new();
    for svc in pool().services() {
        for m in svc.methods() {
            if svc.full_name() == "stock.v1.Stock" {
                names.push(m.name().to_string());
            } else if svc.package_name() != "stock.v1" {
                names.push(format!("{}.{}", svc.full_name(), m.name()));
            } else {
                names.push(format!("{}.{}", svc.name(), m.name()));
            }
        }
    }
    names
}

/// Parses any valid proto3 JSON for `desc` and prints it back in one
/// canonical form: lowerCamelCase names, every field present (defaults
/// included), int64 as strings, enums by name, bytes in standard base64.
pub fn canonical_json(desc: &MessageDescriptor, json: &serde_json::Value) -> Result<serde_json::Value, String> {
    let msg = parse_json(desc, json)?;
    to_canonical(&msg)
}

/// Parses proto3 JSON into a dynamic message.
pub fn parse_json(desc: &MessageDescriptor, json: &serde_json::Value) -> Result<DynamicMessage, String> {
    DynamicMessage::deserialize(desc.clone(), json).map_err(|e| format!("not a valid {} in proto3 JSON: {e}", desc.full_name()))
}

/// Prints a message in the canonical form described at `canonical_json`.
pub fn to_canonical(msg: &DynamicMessage) -> Result<serde_json::Value, String> {
    let opts = SerializeOptions::new().skip_default_fields(false);
    msg.serialize_with_options(serde_json::value::Serializer, &opts).map_err(|e| e.to_string())
}

/// The details of a `google.rpc.Status` (the bytes of
/// `grpc-status-details-bin`), each in proto3 JSON with `@type`.
pub fn status_details(bytes: &[u8]) -> Result<Vec<serde_json::Value>, String> {
    let desc = pool().get_message_by_name("google.rpc.Status").expect("google.rpc.Status is in the pool");
    let status = DynamicMessage::decode(desc, bytes).map_err(|e| format!("grpc-status-details-bin is not a google.rpc.Status: {e}"))?;
    let json = status
        .serialize(serde_json::value::Serializer)
        .map_err(|e| format!("a detail of an unknown type: {e}"))?;
    Ok(json.get("details").and_then(|d| d.as_array()).cloned().unwrap_or_default())
}

/// A detail (`{"@type": "type.googleapis.com/NAME", ...}`) in canonical form.
pub fn canonical_detail(detail: &serde_json::Value) -> Result<serde_json::Value, String> {
    let url = detail.get("@type").and_then(|t| t.as_str()).ok_or("a detail without @type")?;
    let name = url.rsplit('/').next().unwrap_or(url);
    let desc = pool().get_message_by_name(name).ok_or_else(|| format!("unknown detail type {url}"))?;
    let mut fields = detail.clone();
    fields.as_object_mut().map(|o| o.remove("@type"));
    let mut c = canonical_json(&desc, &fields)?;
    c.as_object_mut()
        .map(|o| o.insert("@type".into(), serde_json::Value::String(format!("type.googleapis.com/{name}"))));
    Ok(c)
}

/// Prints a dynamic message in the standard proto3 JSON form (defaults omitted).
pub fn to_proto3_json(msg: &DynamicMessage) -> serde_json::Value {
    msg.serialize(serde_json::value::Serializer).expect("serializing a valid message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get_response() -> MessageDescriptor {
        pool().get_message_by_name("stock.v1.GetResponse").unwrap()
    }

    #[test]
    fn spellings_of_one_message_are_equal() {
        let a = canonical_json(&get_response(), &json!({"value": "aGk=", "version": "1"})).unwrap();
        let b = canonical_json(&get_response(), &json!({"value": "aGk=", "version": 1})).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, json!({"value": "aGk=", "version": "1"}));
    }

    #[test]
    fn defaults_are_filled_in() {
        let a = canonical_json(&get_response(), &json!({})).unwrap();
        assert_eq!(a, json!({"value": "", "version": "0"}));
    }

    #[test]
    fn original_field_names_are_accepted() {
        let desc = pool().get_message_by_name("stock.v1.InventoryStatus").unwrap();
        let a = canonical_json(&desc, &json!({"key_count": "2"})).unwrap();
        assert_eq!(a["keyCount"], json!("2"));
    }

    #[test]
    fn invalid_json_is_an_error_naming_the_type() {
        let err = canonical_json(&get_response(), &json!({"nope": 1})).unwrap_err();
        assert!(err.contains("stock.v1.GetResponse"), "{err}");
    }

    #[test]
    fn rich_error_details_decode_with_their_type() {
        use tonic_types::StatusExt as _;
        let s = tonic::Status::with_error_details(
            tonic::Code::InvalidArgument,
            "bad",
            tonic_types::ErrorDetails::with_bad_request_violation("key", "empty"),
        );
        let d = status_details(s.details()).unwrap();
        assert_eq!(
            d,
            vec![json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "key", "description": "empty"}]})]
        );
        let c = canonical_detail(&json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "FORCED"})).unwrap();
        assert_eq!(c["domain"], json!(""));
        assert!(canonical_detail(&json!({"reason": "x"})).is_err());
    }

    #[test]
    fn methods_are_found_with_their_kind() {
        assert_eq!(method("Trade").unwrap().kind, Kind::Bidi);
        assert_eq!(method("Monitor").unwrap().kind, Kind::ServerStream);
        assert_eq!(method("Batch").unwrap().kind, Kind::ClientStream);
        assert_eq!(method("Ledger.Balance").unwrap().kind, Kind::Unary);
        assert!(method("Nope").is_none());
    }
}
