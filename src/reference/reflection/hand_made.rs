//! The `reflection-no-method-symbols` fault: a reflection service whose
//! symbol index, made by hand, holds each file's messages, enums and
//! services but not its methods, so FileContainingSymbol of
//! `stock.v1.Stock.Get` (what `grpcurl describe` of a method asks) is
//! NOT_FOUND.
use futures::StreamExt as _;
use prost::Message as _;
use prost_types::{DescriptorProto, FileDescriptorProto};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::server_reflection_server::ServerReflection;
use tonic_reflection::pb::v1::{
    ErrorResponse, FileDescriptorResponse, ListServiceResponse, ServerReflectionRequest, ServerReflectionResponse,
    ServiceResponse,
};

/// Served names, and each file's encoded descriptor by file name and by symbol.
#[derive(Clone)]
pub struct Index(Arc<Inner>);

struct Inner {
    names: Vec<String>,
    by_file: HashMap<String, Vec<u8>>,
    by_symbol: HashMap<String, Vec<u8>>,
}

impl Index {
    pub fn new(names: &[&str], files: impl IntoIterator<Item = FileDescriptorProto>) -> Index {
        let mut inner = Inner {
            names: names.iter().map(|n| n.to_string()).collect(),
            by_file: HashMap::new(),
            by_symbol: HashMap::new(),
        };
        for file in files {
            let raw = file.encode_to_vec();
            let scope = file.package().to_string();
            let mut symbols = Vec::new();
            messages(&scope, &file.message_type, &mut symbols);
            symbols.extend(file.enum_type.iter().map(|e| qualified(&scope, e.name())));
            symbols.extend(file.service.iter().map(|s| qualified(&scope, s.name())));
            for symbol in symbols {
                inner.by_symbol.insert(symbol, raw.clone());
            }
            inner.by_file.insert(file.name().to_string(), raw);
        }
        Index(Arc::new(inner))
    }

    fn answer(&self, req: ServerReflectionRequest) -> ServerReflectionResponse {
        let file = |found: Option<&Vec<u8>>, what: &str| match found {
            Some(raw) => MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                file_descriptor_proto: vec![raw.clone()],
            }),
            None => error(tonic::Code::NotFound, format!("{what} not found")),
        };
        let message = match &req.message_request {
            Some(MessageRequest::FileByFilename(name)) => file(self.0.by_file.get(name), name),
            Some(MessageRequest::FileContainingSymbol(symbol)) => file(self.0.by_symbol.get(symbol), symbol),
            Some(MessageRequest::ListServices(_)) => MessageResponse::ListServicesResponse(ListServiceResponse {
                service: self
                    .0
                    .names
                    .iter()
                    .map(|name| ServiceResponse { name: name.clone() })
                    .collect(),
            }),
            _ => error(tonic::Code::Unimplemented, "not supported".into()),
        };
        ServerReflectionResponse {
            valid_host: req.host.clone(),
            original_request: Some(req),
            message_response: Some(message),
        }
    }
}

fn error(code: tonic::Code, error_message: String) -> MessageResponse {
    MessageResponse::ErrorResponse(ErrorResponse {
        error_code: code as i32,
        error_message,
    })
}

fn qualified(scope: &str, name: &str) -> String {
    match scope {
        "" => name.to_string(),
        _ => format!("{scope}.{name}"),
    }
}

/// The messages and enums declared in `scope`, nested ones too.
fn messages(scope: &str, declared: &[DescriptorProto], into: &mut Vec<String>) {
    for m in declared {
        let name = qualified(scope, m.name());
        into.extend(m.enum_type.iter().map(|e| qualified(&name, e.name())));
        messages(&name, &m.nested_type, into);
        into.push(name);
    }
}

type Answers = Pin<Box<dyn futures::Stream<Item = Result<ServerReflectionResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ServerReflection for Index {
    type ServerReflectionInfoStream = Answers;

    async fn server_reflection_info(
        &self,
        req: Request<Streaming<ServerReflectionRequest>>,
    ) -> Result<Response<Answers>, Status> {
        let index = self.clone();
        let answers = req.into_inner().map(move |r| r.map(|r| index.answer(r)));
        Ok(Response::new(Box::pin(answers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(index: &Index, symbol: &str) -> Option<MessageResponse> {
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
        };
        index.answer(req).message_response
    }

    #[test]
    fn services_and_messages_are_known_and_methods_are_not() {
        let set = prost_types::FileDescriptorSet::decode(crate::contract::proto::DESCRIPTOR_SET).unwrap();
        let index = Index::new(&["stock.v1.Stock"], set.file);
        for known in ["stock.v1.Stock", "stock.v1.GetRequest", "stock.v1.Side"] {
            assert!(
                matches!(ask(&index, known), Some(MessageResponse::FileDescriptorResponse(_))),
                "{known}"
            );
        }
        let Some(MessageResponse::ErrorResponse(e)) = ask(&index, "stock.v1.Stock.Get") else {
            panic!("a method is not indexed");
        };
        assert_eq!(e.error_code, tonic::Code::NotFound as i32);
    }
}
