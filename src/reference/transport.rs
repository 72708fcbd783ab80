//! How the reference client talks: one lazy tonic channel built from the
//! contract's flags, a codec of dynamic messages (so a step's JSON request is
//! sent as the case wrote it, for any method of the descriptor pool), and the
//! `x-stock-` metadata it prints.
use super::client::ClientArgs;
use super::faults::ClientFault;
use crate::tls::TlsMode;
use anyhow::Context as _;
use base64::Engine as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{KeyAndValueRef, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
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

/// Builds the channel the contract describes (lazy: connection errors become call statuses).
pub fn channel(args: &ClientArgs) -> anyhow::Result<Channel> {
    let scheme = if args.tls_mode == TlsMode::None { "http" } else { "https" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", args.server)).with_context(|| format!("invalid --server {:?}", args.server))?;
    if args.tls_mode != TlsMode::None {
        let host = args.server.rsplit_once(':').map(|(h, _)| h).unwrap_or(&args.server).trim_matches(['[', ']']);
        let ca_path = args.ca_file.as_ref().context("--ca-file is required with --tls-mode server|mtls")?;
        let mut ca = std::fs::read(ca_path).with_context(|| format!("failed to read --ca-file {}", ca_path.display()))?;
        if args.faults.contains(&ClientFault::TrustAnyCa) {
            for entry in std::fs::read_dir(ca_path.parent().unwrap_or(Path::new(".")))?.flatten() {
                let text = std::fs::read(entry.path()).unwrap_or_default();
                if String::from_utf8_lossy(&text).contains("BEGIN CERTIFICATE") {
                    ca.extend_from_slice(&text);
                }
            }
        }
        let name = args.server_name.clone().filter(|_| !args.faults.contains(&ClientFault::IgnoreServerName));
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name(name.unwrap_or_else(|| host.to_string()));
        if args.tls_mode == TlsMode::Mtls {
            let read = |p: &Option<PathBuf>, flag: &str| -> anyhow::Result<Vec<u8>> {
                let p = p.as_ref().with_context(|| format!("--{flag} is required with --tls-mode mtls"))?;
                std::fs::read(p).with_context(|| format!("failed to read --{flag} {}", p.display()))
            };
            tls = tls.identity(Identity::from_pem(read(&args.cert_file, "cert-file")?, read(&args.key_file, "key-file")?));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    // Streams this client resets (at its deadline) are forgotten at once, so a
    // late frame on one is answered with a STREAM_CLOSED stream error, as RFC
    // 9113 section 5.1 asks. With h2's default memory of reset streams, a
    // server RST_STREAM racing the client's own reset turns the stream into
    // "reset by the peer", and a frame after that (gRPC C++ 1.51 sends its
    // end-of-stream twice after a deadline) tears down the whole connection,
    // failing whatever unrelated call is in flight on it.
    Ok(endpoint
        .connect_timeout(Duration::from_secs(10))
        .http2_max_concurrent_reset_streams(0)
        .connect_lazy())
}

/// The `x-stock-` entries of received metadata; `-bin` values in base64.
pub fn stock_metadata(md: &MetadataMap) -> BTreeMap<String, String> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    md.iter()
        .filter_map(|kv| match kv {
            KeyAndValueRef::Ascii(k, v) if k.as_str().starts_with("x-stock-") => Some((k.as_str().to_string(), v.to_str().unwrap_or_default().to_string())),
            KeyAndValueRef::Binary(k, v) if k.as_str().starts_with("x-stock-") => Some((k.as_str().to_string(), b64(&v.to_bytes().unwrap_or_default()))),
            _ => None,
        })
        .collect()
}
