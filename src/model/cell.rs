//! The key of a cell: one server start (client, server, TLS mode, key type).
use crate::model::tls::{KeyType, TlsMode};
use serde::{Deserialize, Serialize};

/// One server start.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellKey {
    pub client: String,
    pub server: String,
    pub tls: TlsMode,
    pub key_type: KeyType,
}

impl CellKey {
    /// `client=go/server=java/tls=mtls`, plus `/key=…` off the default key type.
    pub fn id(&self) -> String {
        let mut id = format!("client={}/server={}/tls={}", self.client, self.server, self.tls);
        if self.key_type != KeyType::default() {
            id.push_str(&format!("/key={}", self.key_type.as_str()));
        }
        id
    }

    /// Its pair: the client and the server language.
    pub fn pair(&self) -> (String, String) {
        (self.client.clone(), self.server.clone())
    }
}
