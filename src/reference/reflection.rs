//! The reference server's reflection service (tonic-reflection, v1): what it
//! lists and the descriptors it hands out, with the `--break` faults that
//! make it describe another server than the one serving, or know fewer
//! symbols than the proto has.
use super::faults::Fault;
use crate::contract::proto::DESCRIPTOR_SET;
use anyhow::Context as _;
use prost::Message as _;
use tonic_reflection::pb::v1::server_reflection_server::{ServerReflection, ServerReflectionServer};

mod hand_made;

/// The reflection service to serve: tonic-reflection's, or for the
/// `reflection-no-method-symbols` fault a hand-made index (one of the two).
pub struct Reflection<T> {
    pub tonic: Option<ServerReflectionServer<T>>,
    pub hand_made: Option<ServerReflectionServer<hand_made::Index>>,
}

/// Reflection of what is served: Stock, the legacy KV, Health and
/// reflection itself (not Ledger, which is in the proto but deliberately
/// never registered).
pub fn service(faults: &[Fault]) -> anyhow::Result<Reflection<impl ServerReflection>> {
    let mut names = vec![
        "stock.v1.Stock",
        "proto.KV",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ];
    if faults.contains(&Fault::ReflectionListsUnserved) {
        names.push("stock.v1.Ledger");
    }
    let mut set = prost_types::FileDescriptorSet::decode(DESCRIPTOR_SET).context("build.rs's descriptor set")?;
    if faults.contains(&Fault::ReflectionStaleDescriptor) {
        let stock = set.file.iter_mut().flat_map(|f| f.service.iter_mut());
        for service in stock.filter(|s| s.name() == "Stock") {
            service.method.retain(|m| m.name() != "Inventory");
        }
    }
    let health = prost_types::FileDescriptorSet::decode(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .context("tonic-health's descriptor set")?;
    if faults.contains(&Fault::ReflectionNoMethodSymbols) {
        let own = prost_types::FileDescriptorSet::decode(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .context("tonic-reflection's descriptor set")?;
        let files = set.file.into_iter().chain(health.file).chain(own.file);
        return Ok(Reflection {
            tonic: None,
            hand_made: Some(ServerReflectionServer::new(hand_made::Index::new(&names, files))),
        });
    }
    let builder = names.into_iter().fold(
        tonic_reflection::server::Builder::configure()
            .register_file_descriptor_set(set)
            .register_file_descriptor_set(health),
        |b, name| b.with_service_name(name),
    );
    Ok(Reflection {
        tonic: Some(builder.build_v1().context("building the reflection service")?),
        hand_made: None,
    })
}
