//! The rude client's connection: TCP or a Unix socket, TLS as the step's
//! connection says, and HTTP/2 on `h2`, with the scissors that cut it after
//! so many bytes written.
use crate::contract::script::Connection;
use crate::model::tls::TlsMode;
use bytes::Bytes;
use h2::client::SendRequest;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection (TCP or a Unix socket) that shuts down once it has written `budget` bytes (set at
/// any time; `u64::MAX`: no limit).
struct Cut<T> {
    io: T,
    scissors: Scissors,
}

/// How much a connection's `Cut` may write in all, and has written.
#[derive(Clone, Default)]
pub(super) struct Scissors {
    budget: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl Scissors {
    fn new() -> Scissors {
        let s = Scissors::default();
        s.budget.store(u64::MAX, Ordering::SeqCst);
        s
    }

    /// The connection closes once it has written `extra` bytes more.
    pub(super) fn cut_after(&self, extra: u64) {
        self.budget
            .store(self.written.load(Ordering::SeqCst) + extra, Ordering::SeqCst);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Cut<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Cut<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let (budget, written) = (&this.scissors.budget, &this.scissors.written);
        let left = budget
            .load(Ordering::SeqCst)
            .saturating_sub(written.load(Ordering::SeqCst));
        if left == 0 {
            let _ = Pin::new(&mut this.io).poll_shutdown(cx);
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let r = Pin::new(&mut this.io).poll_write(cx, &buf[..n]);
        if let Poll::Ready(Ok(k)) = &r {
            let now = written.fetch_add(*k as u64, Ordering::SeqCst) + *k as u64;
            if now >= budget.load(Ordering::SeqCst) {
                let _ = Pin::new(&mut this.io).poll_shutdown(cx);
            }
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

fn tls_config(conn: &Connection) -> anyhow::Result<rustls::ClientConfig> {
    use anyhow::Context as _;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    let ca = conn.ca_file.as_ref().context("a TLS connection needs ca_file")?;
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match (&conn.cert_file, &conn.key_file, conn.tls_mode) {
        (Some(cert), Some(key), TlsMode::Mtls) => builder.with_client_auth_cert(
            CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?,
            PrivateKeyDer::from_pem_file(key)?,
        )?,
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The `:authority` of a call to `server`: a Unix socket's is `localhost`.
pub(super) fn authority(server: &str) -> &str {
    if server.starts_with("unix:") {
        "localhost"
    } else {
        server
    }
}

/// An HTTP/2 connection to the step's server, and the scissors that cut it.
pub(super) async fn open(conn: &Connection) -> anyhow::Result<(SendRequest<Bytes>, Scissors)> {
    // A Unix socket (`unix:/PATH`, `unix:///PATH`) is named `localhost`, as the contract's clients name it.
    let (raw, host): (Box<dyn Io>, &str) = match conn.server.strip_prefix("unix:") {
        Some(path) => {
            let path = path.strip_prefix("//").unwrap_or(path);
            (
                Box::new(tokio::net::UnixStream::connect(path).await?),
                authority(&conn.server),
            )
        }
        None => {
            let tcp = tokio::net::TcpStream::connect(&conn.server).await?;
            let _ = tcp.set_nodelay(true);
            let host = conn.server.rsplit_once(':').map_or(conn.server.as_str(), |(h, _)| h);
            (Box::new(tcp), host)
        }
    };
    let scissors = Scissors::new();
    let tcp = Cut {
        io: raw,
        scissors: scissors.clone(),
    };
    let io: Box<dyn Io> = match conn.tls_mode {
        TlsMode::None => Box::new(tcp),
        _ => {
            let name = conn
                .server_name
                .clone()
                .unwrap_or_else(|| host.trim_matches(['[', ']']).to_string());
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(conn)?));
            Box::new(
                connector
                    .connect(rustls::pki_types::ServerName::try_from(name)?, tcp)
                    .await?,
            )
        }
    };
    // h2 closes a connection where more than about 100 small DATA frames
    // wait unread (its guard against framing overhead); 1,000 calls with a
    // small answer each may all be waiting at once.
    let (send, connection) = h2::client::Builder::new()
        .data_frame_budget(1 << 24)
        .handshake(io)
        .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((send, scissors))
}
