//! What each test of a cell is called (its id, its reproduce command), where
//! its keys live on the server, and how its client connects.
use super::Runner;
use crate::contract::script::Connection;
use crate::input::cases::Connect;
use crate::model::cell::CellKey;
use crate::model::run::{Outcome, ProcessCpu, TestResult};
use crate::model::tls::{KeyType, TlsMode};
use crate::plan::Test;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Runner {
    /// Notes the CPU of a process started for one test alone (a usage or
    /// `exit` case's client, a lifecycle case's server), from `start`.
    pub(super) fn test_process_cpu(&self, role: &str, key: &CellKey, t: &Test, cpu_ms: f64, start: Instant) {
        let language = match role {
            "server" => &key.server,
            _ => &key.client,
        };
        self.processes.lock().expect("process CPU").push(ProcessCpu {
            role: role.into(),
            language: language.clone(),
            process: format!("{}/set={}/case={}", key.id(), t.set, t.case.name),
            cpu_ms,
            span_ms: self.span_ms(start),
        });
    }

    /// Key prefix of a test: its own set and case, and on an external server
    /// (which other runs and clients share) also the run and the client.
    pub(super) fn namespace(&self, key: &CellKey, t: &Test, attempt: u32) -> String {
        // A plugin may keep each key in a file of its own: no '/' in its keys.
        let plugin = self.matrix.languages.get(&key.server).is_some_and(|l| l.is_plugin());
        if plugin {
            return format!("{}.{}", key.client, t.namespace(attempt).replace('/', "."));
        }
        match self.external(key) {
            Some(_) => format!("{}.{}/{}", self.run_id, key.client, t.namespace(attempt)),
            None => format!("{}/{}", key.client, t.namespace(attempt)),
        }
    }

    fn reproduce(&self, key: &CellKey, test: &Test) -> String {
        let mut s = format!(
            "{} --client {} --server {} --tls {}",
            self.repro_prefix, key.client, key.server, key.tls
        );
        if let Some(net) = key.net {
            s.push_str(&format!(" --transport {net}"));
        }
        if let Some(e) = self.external(key) {
            s.push_str(&format!(" --target {}", e.addr));
            for (flag, v) in [
                ("--target-ca", &e.ca),
                ("--target-cert", &e.cert),
                ("--target-key", &e.key),
            ] {
                if let Some(v) = v {
                    s.push_str(&format!(" {flag} {}", v.display()));
                }
            }
            if let Some(n) = &e.server_name {
                s.push_str(&format!(" --target-name {n}"));
            }
        }
        if key.key_type != KeyType::default() {
            s.push_str(&format!(" --key-type {}", key.key_type.as_str()));
        }
        format!("{s} --set {} --case {}", test.set, test.case.name)
    }

    pub(super) fn result(
        &self,
        key: &CellKey,
        test: &Test,
        outcome: Outcome,
        reasons: Vec<String>,
        duration_ms: f64,
    ) -> TestResult {
        let outcome = if outcome == Outcome::Error && self.cancelled.load(Ordering::SeqCst) {
            Outcome::Interrupted
        } else {
            outcome
        };
        TestResult {
            id: test.id(key),
            cell: key.clone(),
            set: test.set.clone(),
            case: test.case.name.clone(),
            description: test.case.description.clone(),
            outcome,
            reasons,
            duration_ms,
            reproduce: self.reproduce(key, test),
            choices: vec![],
            client_stderr: String::new(),
            server_stderr: String::new(),
            attempts: vec![],
            blame: None,
            unavailable: None,
        }
    }

    /// How the client connects for a case: the cell's own settings, or a
    /// deliberately wrong variant.
    pub(crate) fn connection(&self, key: &CellKey, addr: &str, connect: Connect) -> Connection {
        let c = &self.certs[&key.key_type];
        let tls_mode = match (key.tls, connect) {
            (_, Connect::Plaintext) => TlsMode::None,
            (_, Connect::NoClientCert | Connect::TlsToPlaintext) => TlsMode::Server,
            (m, _) => m,
        };
        // An external server presents and trusts its own certificates.
        let ext = self.external(key);
        let own_ca = ext.and_then(|e| e.ca.as_ref()).unwrap_or(&c.ca);
        let own_cert = ext.and_then(|e| e.cert.as_ref()).unwrap_or(&c.client_cert);
        let own_key = ext.and_then(|e| e.key.as_ref()).unwrap_or(&c.client_key);
        let missing = c.ca.with_extension("missing.pem");
        let ca = (tls_mode != TlsMode::None).then_some(match connect {
            Connect::UntrustedCa => &c.other_ca,
            Connect::UnreadableCa => &missing,
            Connect::CaBundle => &c.ca_bundle,
            _ => own_ca,
        });
        let (cert, client_key) = match (tls_mode, connect) {
            (TlsMode::Mtls, Connect::ForeignClientCert) => (Some(&c.other_client_cert), Some(&c.other_client_key)),
            (TlsMode::Mtls, Connect::ChainedClientCert) => (Some(&c.chained_client_cert), Some(&c.chained_client_key)),
            (TlsMode::Mtls, _) => (Some(own_cert), Some(own_key)),
            _ => (None, None),
        };
        let server_name = match connect {
            Connect::WrongName => Some("wrong-name.stock-matrix.test".to_string()),
            _ => ext.and_then(|e| e.server_name.clone()),
        };
        // A plugin in automatic mTLS: trust exactly its handshake's certificate (go-plugin's name: localhost).
        let plugin_ca = self.plugin_ca.lock().expect("plugin certificates").get(addr).cloned();
        let (ca, server_name) = match (&plugin_ca, tls_mode) {
            (Some(own), TlsMode::Mtls | TlsMode::Server)
                if !matches!(connect, Connect::UntrustedCa | Connect::UnreadableCa) =>
            {
                (Some(own), Some(server_name.unwrap_or_else(|| "localhost".into())))
            }
            _ => (ca, server_name),
        };
        Connection {
            server: addr.to_string(),
            tls_mode,
            ca_file: ca.cloned(),
            cert_file: cert.cloned(),
            key_file: client_key.cloned(),
            server_name,
            keepalive_ms: None,
            keepalive_timeout_ms: None,
        }
    }
}
