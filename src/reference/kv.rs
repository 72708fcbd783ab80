//! The legacy `proto.KV` service (proto/kv.proto) over the reference
//! server's store: the same validation and statuses as Stock.Get/Put, and a
//! KV.Put is a put like any other (version bump, Monitor events).
use super::faults::Fault;
use super::service::enter;
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
    /// The faults below that bend proto.KV's own behaviour.
    pub faults: Vec<Fault>,
}

impl KvService {
    /// A refusal as sent: with its details, or without them (`kv-no-details`).
    fn refused(&self, status: Status) -> Status {
        match self.faults.contains(&Fault::KvNoDetails) {
            true => super::rich::without_details(&status),
            false => status,
        }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        enter(&req, true).await?;
        let key = req.into_inner().key;
        let missing = || match self.faults.contains(&Fault::KvMissingUnknown) {
            true => Status::unknown(format!("open kv_{key}: no such file or directory")),
            false => Status::not_found(format!("key {key:?} not found")),
        };
        validate_key(&key).map_err(|s| match self.faults.contains(&Fault::KvBadKeyNotFound) {
            true => missing(),
            false => self.refused(s),
        })?;
        let (value, _version) = self.store.get(&key).ok_or_else(missing)?;
        Ok(Response::new(GetResponse { value }))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<Empty>, Status> {
        enter(&req, true).await?;
        let PutRequest { key, value } = req.into_inner();
        if self.check_keys {
            validate_key(&key).map_err(|s| self.refused(s))?;
        }
        if self.check_values {
            validate_value(&value).map_err(|s| self.refused(s))?;
        }
        let value = match () {
            _ if self.faults.contains(&Fault::KvValueSuffix) => [value, b"\n\nwritten by a plugin".to_vec()].concat(),
            _ if self.faults.contains(&Fault::KvValueAsText) => {
                String::from_utf8_lossy(&value).into_owned().into_bytes()
            }
            _ => value,
        };
        if self.faults.contains(&Fault::KvFirstWriteWins) && self.store.get(&key).is_some() {
            return Ok(Response::new(Empty {}));
        }
        self.store.put(&key, value);
        Ok(Response::new(Empty {}))
    }
}
