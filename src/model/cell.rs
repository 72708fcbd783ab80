//! The key of a cell: one server start (client, server, TLS mode, key type,
//! and for a plugin server the transport it was asked to serve on).
use crate::model::tls::{KeyType, TlsMode};
use serde::{Deserialize, Serialize};

/// The transport a plugin server is asked for (go-plugin's handshake NETWORK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    Unix,
    Tcp,
}

impl Net {
    pub fn as_str(self) -> &'static str {
        match self {
            Net::Unix => "unix",
            Net::Tcp => "tcp",
        }
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One server start.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellKey {
    pub client: String,
    pub server: String,
    pub tls: TlsMode,
    pub key_type: KeyType,
    /// A plugin server's transport, when the matrix chooses it (else the
    /// runner's port, or whatever the plugin picks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<Net>,
}

impl CellKey {
    /// `client=go/server=java/tls=mtls`, plus `/net=…` after the server for a
    /// plugin's chosen transport and `/key=…` off the default key type.
    pub fn id(&self) -> String {
        let net = self.net.map(|n| format!("/net={n}")).unwrap_or_default();
        let mut id = format!("client={}/server={}{net}/tls={}", self.client, self.server, self.tls);
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
