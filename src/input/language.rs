//! One language's entry of matrix.toml (pure): how to build it, start its
//! server and client, and, for a plugin server, how it starts and where it
//! may serve.
use crate::model::cell::Net;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One language's entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// Folder of its implementation, relative to matrix.toml.
    pub folder: PathBuf,
    /// The gRPC stack it uses, for humans.
    pub stack: String,
    /// Programs that must be on PATH to build and run it.
    #[serde(default)]
    pub requires: Vec<String>,
    /// How to get what `requires` names, for `doctor`.
    #[serde(default)]
    pub install: String,
    /// Installs system packages (run as root by `stock-matrix setup`), in the folder.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Builds it, in the folder; empty = nothing to build.
    #[serde(default)]
    pub build: Vec<String>,
    /// Folders (relative to `folder`) the build writes; ignored when
    /// deciding whether a rebuild is needed.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Server command line; `{stock-matrix}` is this program.
    pub server: Vec<String>,
    /// Client command line; `{stock-matrix}` is this program. Empty: it
    /// serves only (a plugin server), and is never a client of the matrix.
    #[serde(default)]
    pub client: Vec<String>,
    /// How its server says it is ready (default `port`).
    #[serde(default)]
    pub ready: Ready,
    /// Environment of its server process (a plugin's magic cookie, `PLUGIN_PROTOCOL_VERSIONS`).
    #[serde(default)]
    pub server_env: BTreeMap<String, String>,
    /// A plugin server's transports (`ready = "go-plugin"`): each one is a
    /// cell of its own (`net=unix`, `net=tcp`), with the environment that
    /// asks the plugin for it. Empty: whatever the plugin picks.
    #[serde(default)]
    pub transports: BTreeMap<Net, BTreeMap<String, String>>,
    /// Languages whose folders its build uses too (a plugin adapter over a
    /// language's service): a change there rebuilds it.
    #[serde(default)]
    pub uses: Vec<String>,
    /// What `uses` names, resolved at load: each folder and its build outputs.
    #[serde(skip)]
    pub used: Vec<(PathBuf, Vec<String>)>,
}

impl Language {
    /// Whether it has a client: a plugin server serves only.
    pub fn has_client(&self) -> bool {
        !self.client.is_empty()
    }

    /// Whether it is a plugin server (started bare, ready by go-plugin's handshake).
    pub fn is_plugin(&self) -> bool {
        self.ready == Ready::GoPlugin
    }

    /// What is wrong with its entry, if anything (`all`: every language, by name).
    pub(super) fn check(&self, name: &str, all: &BTreeMap<String, Language>) -> Result<(), String> {
        let plugin = self.is_plugin();
        if self.server.is_empty() {
            return Err("`server` must not be empty".into());
        }
        if self.client.is_empty() && !plugin {
            return Err("`client` must not be empty (only a plugin server, ready = \"go-plugin\", serves only)".into());
        }
        if !self.transports.is_empty() && !plugin {
            return Err("`transports` are for a plugin server (ready = \"go-plugin\")".into());
        }
        match self.uses.iter().find(|u| !all.contains_key(*u) || *u == name) {
            Some(u) => Err(format!("`uses`: `{u}` is not another language of the matrix")),
            None => Ok(()),
        }
    }
}

/// Fills each language's `used` from its `uses`: the folders (and build
/// outputs) of the languages it builds upon, checked to exist by `check`.
pub(super) fn resolve_uses(languages: &mut BTreeMap<String, Language>) {
    let folders: BTreeMap<String, (PathBuf, Vec<String>)> = languages
        .iter()
        .map(|(k, l)| (k.clone(), (l.folder.clone(), l.outputs.clone())))
        .collect();
    for l in languages.values_mut() {
        l.used = l.uses.iter().map(|u| folders[u].clone()).collect();
    }
}

/// How the runner starts a server and knows it serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ready {
    /// The runner passes `--port` (and the TLS options); the server prints
    /// `listening on`, and answers a health check.
    #[default]
    Port,
    /// A plugin server (HashiCorp go-plugin, pyvider-rpcplugin): it picks its
    /// own address and prints go-plugin's handshake line
    /// (`CORE|APP|NETWORK|ADDRESS|grpc|CERT`) on stdout once it serves.
    GoPlugin,
}
