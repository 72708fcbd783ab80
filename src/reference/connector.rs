//! How the reference client opens a channel: tonic's own connector, or,
//! for the faults that act under HTTP/2, a TCP connector of its own that
//! opens one connection only (`no-reconnect`), drops frames
//! (`window-updates-ignored`, `ping-acks-dropped`) or misses a reset
//! (`reset-behind-unread-missed`; plaintext only, since the filter sees the
//! bytes below TLS).
use super::faults::ClientFault;
use super::filtered::{Filtered, Way};
use super::frames::{Frame, WINDOW_UPDATE};
use super::heedless::Heedless;
use crate::contract::channel::{channel, endpoint, Tweaks};
use crate::contract::script::Connection;
use crate::model::tls::TlsMode;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tonic::transport::{Channel, Uri};

/// The channel of a connection, with the client's faults that shape it.
pub fn open(conn: &Connection, tweaks: Tweaks, faults: &[ClientFault]) -> anyhow::Result<Channel> {
    let mut conn = conn.clone();
    if faults.contains(&ClientFault::KeepaliveIgnored) {
        conn.keepalive_ms = None;
        conn.keepalive_timeout_ms = None;
    }
    let plaintext = conn.tls_mode == TlsMode::None;
    let drop_updates = faults.contains(&ClientFault::WindowUpdatesIgnored) && plaintext;
    let drop_acks = faults.contains(&ClientFault::PingAcksDropped) && plaintext;
    let once = faults.contains(&ClientFault::NoReconnect);
    let heedless = faults.contains(&ClientFault::ResetBehindUnreadMissed) && plaintext;
    // The faults below shape a TCP connection; over a Unix socket there is none.
    let unix = crate::contract::channel::unix_path(&conn.server).is_some();
    if !(drop_updates || drop_acks || once || heedless) || unix {
        return channel(&conn, tweaks);
    }
    let used = Arc::new(AtomicBool::new(false));
    let connector = tower::service_fn(move |uri: Uri| {
        let used = used.clone();
        async move {
            if once && used.swap(true, Ordering::SeqCst) {
                return Err(std::io::Error::other(
                    "this channel opens one connection only (no-reconnect fault)",
                ));
            }
            let host = uri.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']).to_string();
            let port = uri.port_u16().unwrap_or(80);
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let rule = Box::new(move |way: Way, f: &Frame| match way {
                Way::In => !(drop_updates && f.kind == WINDOW_UPDATE && f.stream != 0),
                Way::Out => !(drop_acks && f.is_ping_ack()),
            });
            let tcp = Heedless::new(tcp, heedless);
            Ok::<_, std::io::Error>(TokioIo::new(Filtered::new(tcp, true, rule)))
        }
    });
    Ok(endpoint(&conn, tweaks)?.connect_with_connector_lazy(connector))
}
