//! How many bytes a peer of the proxy has received and not read yet: the
//! receive queue of its socket, which on loopback is on this machine too.
//! A reset sent while the peer still has bytes to read reaches it behind
//! them, and some stacks then miss it; a case says which of the two it
//! means (`exec::proxy`).
//!
//! The socket is looked up by its addresses with the kernel's sock_diag
//! netlink interface (what `ss` uses), a few microseconds a query; reading
//! `/proc/net/tcp` instead walks the whole established-socket hash table
//! (4 ms a read here), and the proxy asks every 2 ms while it waits.
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, TCP_LISTEN};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};
use std::net::SocketAddr;

/// The unread bytes of the socket whose own address is `local` and whose
/// peer is `remote`, or `None` when no such socket is found (closed,
/// another network namespace, a platform without sock_diag).
pub fn unread(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).ok()?;
    socket.bind_auto().ok()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0)).ok()?;
    socket.send(&request(local, remote), 0).ok()?;
    let mut answer = vec![0u8; 4096];
    let n = socket.recv(&mut &mut answer[..], 0).ok()?;
    receive_queue(&answer[..n], remote)
}

/// A request for the one socket from `local` to `remote` (not a dump: the
/// kernel looks it up by its addresses).
fn request(local: SocketAddr, remote: SocketAddr) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let family = if local.is_ipv4() { AF_INET } else { AF_INET6 };
    let mut message = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id: SocketId {
                source_port: local.port(),
                destination_port: remote.port(),
                source_address: local.ip(),
                destination_address: remote.ip(),
                interface_id: 0,
                cookie: [0xff; 8], // no cookie: match by the addresses
            },
        })
        .into(),
    );
    message.finalize();
    let mut bytes = vec![0u8; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

/// The receive queue in the kernel's `answer`, when it is the connection
/// to `remote`: without it, the lookup falls back to the socket listening
/// on the local address, whose queue is its backlog.
fn receive_queue(answer: &[u8], remote: SocketAddr) -> Option<u64> {
    let message = NetlinkMessage::<SockDiagMessage>::deserialize(answer).ok()?;
    match message.payload {
        NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r))
            if r.header.state != TCP_LISTEN
                && r.header.socket_id.destination_port == remote.port()
                && r.header.socket_id.destination_address == remote.ip() =>
        {
            Some(u64::from(r.header.recv_queue))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over `host` (v4 or v6): bytes written and not read show on the
    /// reader's socket, not on the writer's, and go once read; a peer that
    /// is not connected gives `None`, not the listening socket's backlog.
    async fn unread_bytes_show_on_the_readers_socket_only(host: &str) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind(host).await.unwrap();
        let mut w = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut r, _) = l.accept().await.unwrap();
        w.write_all(&[7u8; 1000]).await.unwrap();
        let (local, remote) = (r.local_addr().unwrap(), r.peer_addr().unwrap());
        let mut n = None;
        for _ in 0..100 {
            n = unread(local, remote);
            if n == Some(1000) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(n, Some(1000));
        assert_eq!(unread(remote, local), Some(0));
        let stranger = SocketAddr::new(remote.ip(), 1);
        assert_eq!(unread(local, stranger), None);
        r.read_exact(&mut [0u8; 1000]).await.unwrap();
        assert_eq!(unread(local, remote), Some(0));
    }

    #[tokio::test]
    async fn unread_bytes_over_ipv4() {
        unread_bytes_show_on_the_readers_socket_only("127.0.0.1:0").await;
    }

    #[tokio::test]
    async fn unread_bytes_over_ipv6() {
        unread_bytes_show_on_the_readers_socket_only("[::1]:0").await;
    }
}
