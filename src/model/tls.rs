//! The TLS axes of the matrix: the contract's three modes and the key types
//! of a run's certificates (types only).

/// The contract's three TLS modes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    None,
    Server,
    Mtls,
}

impl TlsMode {
    pub const ALL: [TlsMode; 3] = [TlsMode::None, TlsMode::Server, TlsMode::Mtls];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Server => "server",
            TlsMode::Mtls => "mtls",
        }
    }

    pub fn parse(s: &str) -> Option<TlsMode> {
        TlsMode::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key type of a run's certificates (the crypto axis).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    #[default]
    EcP256,
    EcP384,
    EcP521,
    #[value(name = "rsa-2048")]
    #[serde(rename = "rsa-2048")]
    Rsa2048,
}

impl KeyType {
    pub const ALL: [KeyType; 4] = [KeyType::EcP256, KeyType::EcP384, KeyType::EcP521, KeyType::Rsa2048];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcP256 => "ec-p256",
            KeyType::EcP384 => "ec-p384",
            KeyType::EcP521 => "ec-p521",
            KeyType::Rsa2048 => "rsa-2048",
        }
    }

    pub fn parse(s: &str) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|k| k.as_str() == s)
    }
}
