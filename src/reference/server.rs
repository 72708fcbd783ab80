//! The reference server: `stock-matrix reference server`, the contract's
//! server side in tonic. Semantics are those of proto/stock.proto.
use super::connection::Conn;
use super::faults::Fault;
use super::kv::KvService;
use super::service::StockService;
use super::store::{Prefix, Store};
use super::wire::{Details, HookFaults, WireFaults, WireLayer, HEADER_LIST_LIMIT};
use crate::contract::channel::first_certificate;
use crate::contract::proto::kv::kv_server::KvServer;
use crate::contract::proto::stock::stock_server::StockServer;
use crate::model::tls::TlsMode;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// The contract's server flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    #[arg(long, required_unless_present = "unix", default_value_t = 0)]
    pub port: u16,
    /// Serve on this Unix socket instead of HOST:PORT (the reference only:
    /// plugin servers listen on one; the test hooks' connection faults need TCP).
    #[arg(long)]
    pub unix: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, value_enum, default_value_t = TlsMode::None)]
    pub tls_mode: TlsMode,
    #[arg(long)]
    pub cert_file: Option<PathBuf>,
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Deliberate bugs, so tests can prove the cases catch them.
    #[arg(long = "break", value_enum, hide = true)]
    pub faults: Vec<Fault>,
}

fn read(path: &Option<PathBuf>, flag: &str) -> anyhow::Result<Vec<u8>> {
    let path = path
        .as_ref()
        .with_context(|| format!("--{flag} is required for this --tls-mode"))?;
    std::fs::read(path).with_context(|| format!("failed to read --{flag} {}", path.display()))
}

/// Where the reference server listens.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// Runs the server until a stop signal; open streams get one second.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let mut builder = Server::builder();
    if args.tls_mode != TlsMode::None {
        let only_first = |pem: Vec<u8>, fault: Fault| match args.faults.contains(&fault) {
            true => first_certificate(&pem),
            false => pem,
        };
        let cert = only_first(read(&args.cert_file, "cert-file")?, Fault::CertChainLeafOnly);
        let identity = Identity::from_pem(cert, read(&args.key_file, "key-file")?);
        let mut tls = ServerTlsConfig::new().identity(identity);
        if args.tls_mode == TlsMode::Mtls {
            let ca = only_first(read(&args.ca_file, "ca-file")?, Fault::ClientCaFirstOnly);
            tls = tls
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(args.faults.contains(&Fault::MtlsOptional));
        }
        builder = builder.tls_config(tls).context("invalid TLS configuration")?;
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    if !args.faults.contains(&Fault::HealthOverallOnly) {
        health.set_serving::<StockServer<StockService>>().await;
    }
    if args.faults.contains(&Fault::HealthForUnservedServices) {
        health
            .set_service_status("stock.v1.Ledger", tonic_health::ServingStatus::Serving)
            .await;
    }
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection = super::reflection::service(&args.faults)?;
    let mut faults = args.faults.clone();
    if faults.contains(&Fault::FlakyOnce) && std::fs::File::create_new(".stock-matrix-flaky-once").is_ok() {
        faults.push(Fault::WrongStatus);
    }
    let store = Store::new(faults.contains(&Fault::InventoryMiscount));
    let prefix = match () {
        _ if faults.contains(&Fault::PrefixAnywhere) => Prefix::Anywhere,
        _ if faults.contains(&Fault::StarNeedsAByte) => Prefix::NeedsAByte,
        _ if faults.contains(&Fault::StarInsideCuts) => Prefix::UpToFirstStar,
        _ if faults.contains(&Fault::PatternAsGlob) => Prefix::Glob,
        _ if faults.contains(&Fault::PatternAsRegex) => Prefix::Regex,
        _ => Prefix::AtStart,
    };
    let store = Arc::new(store.prefix_matching(prefix));
    let kv_store = if faults.contains(&Fault::KvOwnStore) {
        Arc::default()
    } else {
        store.clone()
    };
    let kv = KvServer::new(KvService {
        store: kv_store,
        check_values: !faults.contains(&Fault::KvNoValueLimit),
        check_keys: !faults.contains(&Fault::KvNoKeyLimit),
        faults: faults.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip);
    if !args.faults.contains(&Fault::HealthOverallOnly) {
        health.set_serving::<KvServer<KvService>>().await;
    }
    let receive_limit = if faults.contains(&Fault::NoSizeLimit) {
        16 << 20
    } else if faults.contains(&Fault::ReceiveLimitCountsPrefix) {
        (4 << 20) - 5
    } else {
        4 << 20
    };
    let wire = WireLayer {
        store: store.clone(),
        faults: WireFaults {
            no_echo: faults.contains(&Fault::NoEcho),
            no_compress_response: faults.contains(&Fault::NoCompressResponse),
            gzip_header_only: faults.contains(&Fault::GzipHeaderOnly),
            truncate_bin_at_nul: faults.contains(&Fault::TruncateBinAtNul),
            echo_lowercased: faults.contains(&Fault::EchoLowercased),
            echo_skips_empty: faults.contains(&Fault::EchoSkipsEmpty),
            lose_deadline: faults.contains(&Fault::LoseDeadline),
            reset_at_deadline: faults.contains(&Fault::ResetAtDeadline),
            hooks: HookFaults {
                delay_in_whole_seconds: faults.contains(&Fault::DelayInWholeSeconds),
                fail_before_delay: faults.contains(&Fault::FailBeforeDelay),
                fail_message_beats_special: faults.contains(&Fault::FailMessageBeatsSpecial),
                lenient_hook_numbers: faults.contains(&Fault::LenientHookNumbers),
                negative_hook_numbers: faults.contains(&Fault::NegativeHookNumbers),
                case_blind_fail_codes: faults.contains(&Fault::CaseBlindFailCodes),
                fail_after_on_unary: faults.contains(&Fault::FailAfterOnUnary),
                report_deadline_after_delay: faults.contains(&Fault::ReportDeadlineAfterDelay),
                watchers_by_pattern: faults.contains(&Fault::WatchersByPattern),
            },
            details: if faults.contains(&Fault::NoErrorDetails) {
                Details::Dropped
            } else if faults.contains(&Fault::DetailsCodeOk) {
                Details::CodeOk
            } else if faults.contains(&Fault::DeadlineWithErrorinfo) {
                Details::OnDeadline
            } else {
                Details::Sent
            },
            compress_always: faults.contains(&Fault::CompressAlways),
            no_trailers_on_error: faults.contains(&Fault::NoTrailersOnError),
            close_on_big_headers: faults.contains(&Fault::CloseOnBigHeaders),
            stall_on_big_headers: faults.contains(&Fault::StallOnBigHeaders),
            any_content_type: faults.contains(&Fault::AnyContentType),
            serial_calls: faults.contains(&Fault::SerialCalls),
            cardinality_unchecked: faults.contains(&Fault::CardinalityUnchecked),
            gunzip_any_encoding: faults.contains(&Fault::GunzipAnyEncoding),
            timeout_overflow: faults.contains(&Fault::TimeoutOverflow),
        },
    };
    // Compresses for every client that accepts gzip; WireLayer hides the
    // acceptance from calls that did not ask for x-stock-compress.
    let stock = StockServer::new(StockService::new(store, faults.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(receive_limit)
        .max_encoding_message_size(match faults.contains(&Fault::SendLimitAtReceiveLimit) {
            true => 4 << 20,
            false => 64 << 20,
        });

    let listener = match &args.unix {
        Some(path) => {
            let _ = std::fs::remove_file(path);
            let l =
                tokio::net::UnixListener::bind(path).with_context(|| format!("failed to bind {}", path.display()))?;
            say!("listening on unix:{}", path.display());
            Listener::Unix(l)
        }
        None => {
            let addr: SocketAddr = tokio::net::lookup_host((args.host.as_str(), args.port))
                .await
                .with_context(|| format!("failed to resolve {}", args.host))?
                .next()
                .with_context(|| format!("{} resolves to no address", args.host))?;
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("failed to bind {addr}"))?;
            // The port bound (`--port 0`: the one the system chose). A closed
            // stdout (a server started by hand, piped to `head`) is no reason to stop.
            let port = l.local_addr().map_or(args.port, |a| a.port());
            say!("listening on {}:{}", args.host, port);
            Listener::Tcp(l)
        }
    };
    let _ = std::io::Write::flush(&mut std::io::stdout());

    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    // 100 concurrent streams per connection, the common default: the
    // concurrency cases send more, and clients must queue them.
    // The contract's header-list limit; the big-header faults raise it so
    // that such requests reach WireLayer, which misbehaves with them.
    builder = builder.http2_max_header_list_size(match () {
        _ if faults.contains(&Fault::SmallHeaderLimit) => 2048,
        _ if faults.contains(&Fault::HeaderLimit8Kib) => 8192,
        _ if faults.contains(&Fault::CloseOnBigHeaders) || faults.contains(&Fault::StallOnBigHeaders) => 1 << 20,
        _ => HEADER_LIST_LIMIT,
    });
    if faults.contains(&Fault::ShedOver16Calls) {
        builder = builder.concurrency_limit_per_connection(16).load_shed(true);
    }
    let punish = faults.contains(&Fault::PunishPings);
    let router = builder
        .max_concurrent_streams(Some(100))
        .layer(wire)
        .add_service(health_service)
        .add_optional_service(reflection.tonic)
        .add_optional_service(reflection.hand_made)
        .add_service(stock)
        .add_service(kv);
    let deaf = crate::exec::process::Deaf {
        stdin: faults.contains(&Fault::IgnoreStdinEof),
        sigterm: faults.contains(&Fault::IgnoreSigterm),
        sigint: faults.contains(&Fault::IgnoreSigint),
    };
    let drain = faults.contains(&Fault::DrainOnStop);
    let shutdown = async move {
        crate::exec::process::stop_signal_but(deaf).await;
        let _ = stopped_tx.send(());
    };
    let serve = async move {
        match listener {
            Listener::Tcp(l) => {
                let incoming = tokio_stream::StreamExt::map(TcpIncoming::from(l).with_nodelay(Some(true)), move |c| {
                    c.map(|io| match punish {
                        true => Conn::new(io).punishing_pings(),
                        false => Conn::new(io),
                    })
                });
                router.serve_with_incoming_shutdown(incoming, shutdown).await
            }
            Listener::Unix(l) => {
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
                router.serve_with_incoming_shutdown(incoming, shutdown).await
            }
        }
    };
    tokio::select! {
        r = serve => r.context("server failed")?,
        _ = async {
            let _ = stopped_rx.await;
            if drain {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await
        } => {}
    }
    Ok(())
}
