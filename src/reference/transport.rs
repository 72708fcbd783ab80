//! How the reference client talks besides its channel (`contract::channel`):
//! a codec of dynamic messages (so a step's JSON request is sent as the case
//! wrote it, for any method of the descriptor pool), and the `x-stock-`
//! metadata it prints.
use base64::Engine as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use std::collections::BTreeMap;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{KeyAndValueRef, MetadataMap};
use tonic::Status;

#[derive(Clone)]
pub struct DynCodec(pub MessageDescriptor);
pub struct DynEncoder;
pub struct DynDecoder(MessageDescriptor);

impl Codec for DynCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynEncoder;
    type Decoder = DynDecoder;
    fn encoder(&mut self) -> DynEncoder {
        DynEncoder
    }
    fn decoder(&mut self) -> DynDecoder {
        DynDecoder(self.0.clone())
    }
}

impl Encoder for DynEncoder {
    type Item = DynamicMessage;
    type Error = Status;
    fn encode(&mut self, item: DynamicMessage, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        prost::Message::encode(&item, buf).map_err(|e| Status::internal(e.to_string()))
    }
}

impl Decoder for DynDecoder {
    type Item = DynamicMessage;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), buf)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// The `x-stock-` entries of received metadata; `-bin` values in base64.
pub fn stock_metadata(md: &MetadataMap) -> BTreeMap<String, String> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    md.iter()
        .filter_map(|kv| match kv {
            KeyAndValueRef::Ascii(k, v) if k.as_str().starts_with("x-stock-") => {
                Some((k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
            }
            KeyAndValueRef::Binary(k, v) if k.as_str().starts_with("x-stock-") => {
                Some((k.as_str().to_string(), b64(&v.to_bytes().unwrap_or_default())))
            }
            _ => None,
        })
        .collect()
}
