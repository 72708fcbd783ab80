//! The channel a contract client opens for a connection, in tonic: used by
//! the reference client and by the runner's health probe.
use crate::contract::script::Connection;
use crate::model::tls::TlsMode;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Deliberate deviations, for the reference client's TLS faults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tweaks {
    /// Trusts every certificate found next to the CA file.
    pub trust_any_ca: bool,
    /// Verifies against the host name even when a server name is given.
    pub ignore_server_name: bool,
    /// Keepalive pings only while a call is in flight.
    pub keepalive_only_with_calls: bool,
    /// Trusts only the first certificate of the CA file.
    pub first_ca_only: bool,
    /// Presents only the first certificate of the certificate file (the
    /// leaf, not the chain after it).
    pub leaf_only: bool,
}

/// The first certificate of a PEM file (what a loader that reads one
/// block keeps); the whole text when it has none.
pub fn first_certificate(pem: &[u8]) -> Vec<u8> {
    const END: &[u8] = b"-----END CERTIFICATE-----";
    match pem.windows(END.len()).position(|w| w == END) {
        Some(at) => [&pem[..at + END.len()], b"\n"].concat(),
        None => pem.to_vec(),
    }
}

/// The socket path of a `unix:PATH` (or `unix:///PATH`) address, gRPC's name syntax.
pub fn unix_path(server: &str) -> Option<&str> {
    let rest = server.strip_prefix("unix:")?;
    Some(match rest.strip_prefix("//") {
        Some(abs) => abs,
        None => rest,
    })
}

/// Builds the channel the contract describes (lazy: connection errors become call statuses).
pub fn channel(args: &Connection, tweaks: Tweaks) -> anyhow::Result<Channel> {
    let endpoint = endpoint(args, tweaks)?;
    Ok(match unix_path(&args.server) {
        Some(path) => {
            let path = PathBuf::from(path);
            endpoint.connect_with_connector_lazy(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    let io = tokio::net::UnixStream::connect(&path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(io))
                }
            }))
        }
        None => endpoint.connect_lazy(),
    })
}

/// The endpoint of that channel, for a caller that brings its own TCP connector.
pub fn endpoint(args: &Connection, tweaks: Tweaks) -> anyhow::Result<Endpoint> {
    let scheme = if args.tls_mode == TlsMode::None {
        "http"
    } else {
        "https"
    };
    // A Unix socket's authority (and TLS name) is the server name, else localhost.
    let unix = unix_path(&args.server).is_some();
    let authority = match unix {
        true => args.server_name.as_deref().unwrap_or("localhost"),
        false => args.server.as_str(),
    };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
        .with_context(|| format!("invalid --server {:?}", args.server))?;
    if args.tls_mode != TlsMode::None {
        let host = authority
            .rsplit_once(':')
            .filter(|_| !unix)
            .map(|(h, _)| h)
            .unwrap_or(authority)
            .trim_matches(['[', ']']);
        let ca_path = args
            .ca_file
            .as_ref()
            .context("--ca-file is required with --tls-mode server|mtls")?;
        let mut ca =
            std::fs::read(ca_path).with_context(|| format!("failed to read --ca-file {}", ca_path.display()))?;
        if tweaks.first_ca_only {
            ca = first_certificate(&ca);
        }
        if tweaks.trust_any_ca {
            for entry in std::fs::read_dir(ca_path.parent().unwrap_or(Path::new(".")))?.flatten() {
                let text = std::fs::read(entry.path()).unwrap_or_default();
                if String::from_utf8_lossy(&text).contains("BEGIN CERTIFICATE") {
                    ca.extend_from_slice(&text);
                }
            }
        }
        let name = args.server_name.clone().filter(|_| !tweaks.ignore_server_name);
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name(name.unwrap_or_else(|| host.to_string()));
        if args.tls_mode == TlsMode::Mtls {
            let read = |p: &Option<PathBuf>, flag: &str| -> anyhow::Result<Vec<u8>> {
                let p = p
                    .as_ref()
                    .with_context(|| format!("--{flag} is required with --tls-mode mtls"))?;
                std::fs::read(p).with_context(|| format!("failed to read --{flag} {}", p.display()))
            };
            let mut cert = read(&args.cert_file, "cert-file")?;
            if tweaks.leaf_only {
                cert = first_certificate(&cert);
            }
            tls = tls.identity(Identity::from_pem(cert, read(&args.key_file, "key-file")?));
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
    if let Some(ms) = args.keepalive_ms {
        endpoint = endpoint
            .http2_keep_alive_interval(Duration::from_millis(ms))
            .keep_alive_while_idle(!tweaks.keepalive_only_with_calls);
        if let Some(timeout) = args.keepalive_timeout_ms {
            endpoint = endpoint.keep_alive_timeout(Duration::from_millis(timeout));
        }
    }
    Ok(endpoint
        .connect_timeout(Duration::from_secs(10))
        .http2_max_concurrent_reset_streams(0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_certificate_is_the_first_pem_block() {
        let two = b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBB==\n-----END CERTIFICATE-----\n";
        let first = super::first_certificate(two);
        assert_eq!(first, b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n");
        assert_eq!(super::first_certificate(&first), first);
        assert_eq!(super::first_certificate(b"no pem"), b"no pem");
    }

    #[test]
    fn unix_addresses_follow_grpc_name_syntax() {
        assert_eq!(super::unix_path("unix:/tmp/a.sock"), Some("/tmp/a.sock"));
        assert_eq!(super::unix_path("unix:///tmp/a.sock"), Some("/tmp/a.sock"));
        assert_eq!(super::unix_path("127.0.0.1:50051"), None);
    }
}
