//! Starting the cell's server (or checking the external one) and waiting
//! until it answers: the server half of the runner.
use super::{ms, ExternalServer, Runner};
use crate::contract::channel::channel;
use crate::contract::plugin::Handshake;
use crate::contract::script::Connection;
use crate::exec::process::{self, Proc};
use crate::input::cases::ServerCert;
use crate::input::config::Language;
use crate::model::cell::CellKey;
use crate::model::tls::TlsMode;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// One health check (service "") with the given client settings.
async fn probe(conn: Connection) -> Result<(), String> {
    let ch = channel(&conn, Default::default()).map_err(|e| format!("{e:#}"))?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(ch);
    let probe = client.check(tonic_health::pb::HealthCheckRequest { service: String::new() });
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(r)) if r.get_ref().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 => {
            Ok(())
        }
        Ok(Ok(r)) => Err(format!("health status {}", r.get_ref().status)),
        Ok(Err(status)) => Err(format!(
            "{} {}",
            crate::contract::codes::name(status.code()),
            status.message()
        )),
        Err(_) => Err("health check timed out".into()),
    }
}

/// Asks a go-plugin server to stop the way go-plugin's host does
/// (`Client.Kill`, then `GRPCClient.Close`): one
/// `plugin.GRPCController/Shutdown` call, whose answer may never come (the
/// plugin stops its server while answering), so it is given 2 s at most.
/// The plugin then exits and removes its Unix socket, where SIGTERM (Go's
/// default: exit at once) would leave the socket file behind.
async fn plugin_shutdown(conn: Connection) {
    let Ok(ch) = channel(&conn, Default::default()) else {
        return;
    };
    let mut grpc = tonic::client::Grpc::new(ch);
    let call = async move {
        grpc.ready().await.ok()?;
        let path = http::uri::PathAndQuery::from_static("/plugin.GRPCController/Shutdown");
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        grpc.unary(tonic::Request::new(()), path, codec).await.ok()
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), call).await;
}

/// Removes the Unix socket of `unix:PATH` (or `unix:///PATH`) if one is
/// still there; anything else at PATH is left alone.
fn remove_left_socket(addr: &str) {
    let Some(path) = addr.strip_prefix("unix:") else {
        return;
    };
    let path = std::path::Path::new(path.strip_prefix("//").unwrap_or(path));
    let socket = std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    });
    if socket {
        let _ = std::fs::remove_file(path);
    }
}

/// A started server: its process, its address (`HOST:PORT` or `unix:PATH`),
/// its start-up in ms, and a note when it was only reachable, not healthy.
pub(crate) type Started = (Proc, String, f64, Option<String>);

impl Runner {
    pub(super) fn server_tls(&self, key: &CellKey, cert: ServerCert) -> Vec<String> {
        let c = &self.certs[&key.key_type];
        let p = |p: &PathBuf| p.to_string_lossy().into_owned();
        let mut args = vec!["--tls-mode".to_string(), key.tls.to_string()];
        let (server_cert, server_key, ca) = match cert {
            ServerCert::Normal | ServerCert::Apart => (&c.server_cert, &c.server_key, &c.ca),
            ServerCert::Expired => (&c.expired_server_cert, &c.expired_server_key, &c.ca),
            ServerCert::Chained => (&c.chained_server_cert, &c.chained_server_key, &c.ca_bundle),
        };
        if key.tls != TlsMode::None {
            args.extend(["--cert-file".into(), p(server_cert), "--key-file".into(), p(server_key)]);
        }
        if key.tls == TlsMode::Mtls {
            args.extend(["--ca-file".into(), p(ca)]);
        }
        args
    }

    /// Is the server healthy? One health check over the cell's own TLS.
    /// (A server with an expired certificate is checked without verification of
    /// dates being possible, so it counts as ready once it printed `listening on`;
    /// so is one with a chained certificate, whose handshake is what its cases
    /// check: a server that fails it is red in them, not a server that never
    /// became ready.)
    pub(super) async fn healthy(&self, key: &CellKey, port: u16, cert: ServerCert) -> Result<(), String> {
        if matches!(cert, ServerCert::Expired | ServerCert::Chained) {
            return tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
        }
        let c = &self.certs[&key.key_type];
        probe(Connection {
            server: format!("127.0.0.1:{port}"),
            tls_mode: key.tls,
            ca_file: Some(c.ca.clone()),
            cert_file: Some(c.client_cert.clone()),
            key_file: Some(c.client_key.clone()),
            server_name: None,
            keepalive_ms: None,
            keepalive_timeout_ms: None,
        })
        .await
    }

    /// Does the external server answer, over the cell's TLS mode?
    pub(super) async fn external_answers(&self, key: &CellKey, e: &ExternalServer) -> Result<(), String> {
        let r = probe(Connection {
            server: e.addr.clone(),
            tls_mode: key.tls,
            ca_file: e.ca.clone(),
            cert_file: e.cert.clone(),
            key_file: e.key.clone(),
            server_name: e.server_name.clone(),
            keepalive_ms: None,
            keepalive_timeout_ms: None,
        })
        .await;
        match r {
            // A server without the health service still answered over gRPC.
            Err(e) if e.starts_with("UNIMPLEMENTED") => Ok(()),
            r => r.map_err(|why| {
                format!(
                    "the target {} ({}) did not answer a health check over tls={}: {why}",
                    e.label, e.addr, key.tls
                )
            }),
        }
    }

    /// Starts a plugin server the way a host does: its environment (the
    /// magic cookie), then go-plugin's handshake line on its stdout, which
    /// says where it serves. The handshake is its readiness.
    ///
    /// tls=mtls is go-plugin's automatic mTLS: the runner passes the run's CA
    /// as `PLUGIN_CLIENT_CERT` (the plugin trusts it, so the run's client
    /// certificate), and the clients trust exactly the certificate the
    /// handshake carries, for the name `localhost`.
    async fn start_plugin(&self, key: &CellKey, lang: &Language) -> Result<Started, (String, String)> {
        if key.tls == TlsMode::Server {
            return Err((
                format!(
                    "{} is a plugin server (go-plugin handshake): it serves plaintext (tls=none) or automatic mTLS (tls=mtls), not tls=server",
                    key.server
                ),
                String::new(),
            ));
        }
        let limit = Duration::from_millis(self.matrix.run.server_ready_ms);
        let mut env: Vec<(String, String)> = lang.server_env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(net) = key.net {
            let ask = lang.transports.get(&net).into_iter().flatten();
            env.extend(ask.map(|(k, v)| (k.clone(), v.clone())));
        }
        let certs = &self.certs[&key.key_type];
        if key.tls == TlsMode::Mtls {
            let ca = std::fs::read_to_string(&certs.ca)
                .map_err(|e| (format!("reading {}: {e}", certs.ca.display()), String::new()))?;
            env.push(("PLUGIN_CLIENT_CERT".into(), ca));
        }
        let start = Instant::now();
        let argv = self.argv(&lang.server);
        let mut proc = process::spawn_on(&argv, &lang.folder, self.server_cpu, &env)
            .map_err(|e| (e.to_string(), String::new()))?;
        let mut lines = BufReader::new(proc.stdout.take().expect("piped")).lines();
        let first = loop {
            match tokio::time::timeout(limit, lines.next_line()).await {
                Ok(Ok(Some(l))) if l.trim().is_empty() => continue,
                Ok(Ok(Some(l))) => break Ok(l),
                Ok(_) => break Err(None),
                Err(_) => break Err(Some(limit)),
            }
        };
        let fail = |mut proc: Proc, why: String| async move {
            proc.kill().await;
            proc.drain_stderr().await;
            Err((why, proc.stderr_tail()))
        };
        let line = match first {
            Ok(l) => l,
            Err(Some(limit)) => {
                let why = format!(
                    "plugin server printed no go-plugin handshake line within {} s",
                    limit.as_secs()
                );
                return fail(proc, why).await;
            }
            Err(None) => {
                let status = proc.wait_for(Duration::from_secs(2)).await;
                let why = format!(
                    "plugin server exited ({}) before printing its go-plugin handshake line",
                    status.map(|s| s.to_string()).unwrap_or_else(|| "no status".into())
                );
                return fail(proc, why).await;
            }
        };
        let handshake = match Handshake::parse(&line) {
            Ok(h) => h,
            Err(e) => return fail(proc, format!("plugin server printed a malformed handshake: {e}")).await,
        };
        if let Some(net) = key.net.filter(|n| n.as_str() != handshake.network) {
            let why = format!(
                "plugin server was asked for transport {net} but its handshake announces {}: {line:.160}",
                handshake.network
            );
            return fail(proc, why).await;
        }
        let addr = handshake.server();
        match (key.tls, handshake.cert_pem()) {
            (TlsMode::Mtls, Some(pem)) => {
                let file = certs.ca.with_file_name(format!("plugin-{}.pem", proc.pid()));
                if let Err(e) = std::fs::write(&file, pem) {
                    return fail(proc, format!("writing {}: {e}", file.display())).await;
                }
                self.plugin_ca
                    .lock()
                    .expect("plugin certificates")
                    .insert(addr.clone(), file);
            }
            (TlsMode::Mtls, None) => {
                let why = format!(
                    "plugin server was given PLUGIN_CLIENT_CERT (automatic mTLS) but its handshake carries no certificate: {line:.160}"
                );
                return fail(proc, why).await;
            }
            (_, Some(_)) => {
                let why = format!(
                    "plugin server turned on TLS (its handshake carries a certificate) although it was given no PLUGIN_CLIENT_CERT (tls=none): {line:.120}"
                );
                return fail(proc, why).await;
            }
            (_, None) => {}
        }
        // Keep draining stdout so a chatty server never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok((proc, addr, ms(start.elapsed()), None))
    }

    /// Is the server a plugin (started with go-plugin's handshake)?
    pub(super) fn is_plugin(&self, key: &CellKey) -> bool {
        self.matrix.language(&key.server).is_ok_and(|l| l.is_plugin())
    }

    /// Before a plugin server is stopped: its controller's Shutdown, over
    /// the connection its cells used (`plugin_shutdown`). Other servers stop
    /// on stdin's end. (rustls cannot take go-plugin's own automatic-mTLS
    /// certificate, a CA used as the end entity, so such a plugin is left to
    /// stdin and SIGTERM.)
    pub(super) async fn before_stop(&self, key: &CellKey, addr: &str) {
        if self.is_plugin(key) {
            plugin_shutdown(self.connection(key, addr, crate::input::cases::Connect::Normal)).await;
        }
    }

    /// After a plugin server exited: its Unix socket, if it left it behind
    /// (a plugin killed by a signal does), is removed.
    pub(super) fn after_stop(&self, key: &CellKey, addr: &str) {
        if self.is_plugin(key) {
            remove_left_socket(addr);
        }
    }

    /// Starts the cell's server and waits until it is ready.
    /// Returns the server, its address, its ready time and a note when it was
    /// only reachable, not healthy (a TLS probe that the server refuses).
    pub(crate) async fn start_server(&self, key: &CellKey, cert: ServerCert) -> Result<Started, (String, String)> {
        let lang = self.matrix.language(&key.server).map_err(|e| (e, String::new()))?;
        if lang.is_plugin() {
            return self.start_plugin(key, lang).await;
        }
        let limit = Duration::from_millis(self.matrix.run.server_ready_ms);
        let mut last = (String::new(), String::new());
        for _attempt in 0..3 {
            let port = process::free_port().map_err(|e| (format!("no free port: {e}"), String::new()))?;
            let mut argv = self.argv(&lang.server);
            argv.extend(["--port".into(), port.to_string(), "--host".into(), "127.0.0.1".into()]);
            argv.extend(self.server_tls(key, cert));
            let start = Instant::now();
            let mut proc = process::spawn_on(&argv, &lang.folder, self.server_cpu, &[])
                .map_err(|e| (e.to_string(), String::new()))?;
            let mut lines = BufReader::new(proc.stdout.take().expect("piped")).lines();
            let deadline = tokio::time::Instant::now() + limit;
            let listening = loop {
                match tokio::time::timeout_at(deadline, lines.next_line()).await {
                    Ok(Ok(Some(l))) if l.starts_with("listening on") => break Ok(()),
                    Ok(Ok(Some(_))) => continue,
                    Ok(_) => break Err(false),
                    Err(_) => break Err(true),
                }
            };
            match listening {
                Err(timed_out) => {
                    let status = if timed_out {
                        None
                    } else {
                        proc.wait_for(Duration::from_secs(2)).await
                    };
                    proc.kill().await;
                    proc.drain_stderr().await;
                    let stderr = proc.stderr_tail();
                    let why = if timed_out {
                        format!("server did not print `listening on` within {} s", limit.as_secs())
                    } else {
                        format!(
                            "server exited ({}) before printing `listening on`",
                            status.map(|s| s.to_string()).unwrap_or_else(|| "no status".into())
                        )
                    };
                    let port_clash = [
                        "in use",
                        "EADDRINUSE",
                        "Address already",
                        "address already",
                        "Failed to bind",
                    ]
                    .iter()
                    .any(|p| stderr.contains(p));
                    last = (why, stderr);
                    if port_clash {
                        continue; // someone took the port between our probe and its bind
                    }
                    return Err(last);
                }
                Ok(()) => {
                    // Keep draining stdout so a chatty server never blocks.
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                }
            }
            let listening_at = Instant::now();
            loop {
                let last = match self.healthy(key, port, cert).await {
                    Ok(()) => return Ok((proc, format!("127.0.0.1:{port}"), ms(start.elapsed()), None)),
                    Err(e) => e,
                };
                // Listening, accepting TCP, but refusing the runner's TLS probe (e.g. a
                // key type its stack rejects): run the cell so every client shows it.
                if key.tls != TlsMode::None
                    && listening_at.elapsed() > Duration::from_secs(3)
                    && tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
                {
                    let note = format!(
                        "server {} accepts connections but its health check over TLS fails ({last}); ran the cell anyway",
                        key.server
                    );
                    return Ok((proc, format!("127.0.0.1:{port}"), ms(start.elapsed()), Some(note)));
                }
                if let Some(status) = proc.try_exit() {
                    proc.drain_stderr().await;
                    return Err((
                        format!("server exited ({status}) before its health check answered SERVING"),
                        proc.stderr_tail(),
                    ));
                }
                if tokio::time::Instant::now() >= deadline {
                    proc.kill().await;
                    proc.drain_stderr().await;
                    return Err((
                        format!(
                            "server did not become ready in {} s (last health check: {last})",
                            limit.as_secs()
                        ),
                        proc.stderr_tail(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::remove_left_socket;

    #[test]
    fn a_socket_left_behind_is_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("plugin.sock");
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        assert!(sock.exists(), "a dropped listener leaves its socket file");
        remove_left_socket(&format!("unix:{}", sock.display()));
        assert!(!sock.exists());
        let file = dir.path().join("not-a-socket");
        std::fs::write(&file, "keep").unwrap();
        remove_left_socket(&format!("unix://{}", file.display()));
        remove_left_socket(&format!("{}", file.display()));
        assert!(file.exists());
    }
}
