//! The legacy `proto.KV` service (proto/kv.proto) over the reference
//! server's store: the same validation and statuses as Stock.Get/Put, and a
//! KV.Put is a put like any other (version bump, Monitor events).
use super::server::enter;
use super::store::{validate_key, validate_value, Store};
use crate::contract::proto::kv::kv_server::Kv;
use crate::contract::proto::kv::{Empty, GetRequest, GetResponse, PutRequest};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct KvService {
    pub store: Arc<Store>,
    /// Off only for the `kv-no-value-limit` fault.
    pub check_values: bool,
    /// Off only for the `kv-no-key-limit` fault.
    pub check_keys: bool,
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        enter(&req, true).await?;
        let key = req.into_inner().key;
        validate_key(&key)?;
        let (value, _version) = self
            .store
            .get(&key)
            .ok_or_else(|| Status::not_found(format!("key {key:?} not found")))?;
        Ok(Response::new(GetResponse { value }))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<Empty>, Status> {
        enter(&req, true).await?;
        let PutRequest { key, value } = req.into_inner();
        if self.check_keys {
            validate_key(&key)?;
        }
        if self.check_values {
            validate_value(&value)?;
        }
        self.store.put(&key, value);
        Ok(Response::new(Empty {}))
    }
}
