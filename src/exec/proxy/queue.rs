//! How many bytes a peer of the proxy has received and not read yet: the
//! receive queue of its socket, which on loopback is on this machine too
//! (Linux's `/proc/net/tcp` and `/proc/net/tcp6`). A reset sent while the
//! peer still has bytes to read reaches it behind them, and some stacks
//! then miss it; a case says which of the two it means (`exec::proxy`).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The unread bytes of the socket whose own address is `local` and whose
/// peer is `remote`, or `None` when no such socket is listed (another
/// network namespace, a platform without `/proc/net`).
pub fn unread(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let file = match local {
        SocketAddr::V4(_) => "/proc/net/tcp",
        SocketAddr::V6(_) => "/proc/net/tcp6",
    };
    find(&std::fs::read_to_string(file).ok()?, local, remote)
}

/// The receive queue of the line of `table` (a `/proc/net/tcp` listing)
/// for the socket from `local` to `remote`.
fn find(table: &str, local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let (l, r) = (address(fields.next()?)?, address(fields.next()?)?);
        let queues = fields.nth(1)?;
        let rx = queues.split_once(':')?.1;
        (l == local && r == remote).then(|| u64::from_str_radix(rx, 16).ok())?
    })
}

/// `0100007F:1F90` (the address's 32-bit words in the machine's byte order,
/// the port in hex) as an address.
fn address(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok();
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?.to_ne_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex4(ip: Ipv4Addr) -> String {
        format!("{:08X}", u32::from_ne_bytes(ip.octets()))
    }

    #[test]
    fn the_listed_socket_gives_its_receive_queue_and_another_none() {
        let lo = Ipv4Addr::LOCALHOST;
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: {h}:1F90 {h}:C350 01 00000010:00004000 00:00000000 00000000     0        0 1 1 0 20 4 30 10 -1\n",
            h = hex4(lo)
        );
        let (a, b) = (SocketAddr::new(lo.into(), 8080), SocketAddr::new(lo.into(), 50000));
        assert_eq!(find(&table, a, b), Some(0x4000));
        assert_eq!(find(&table, b, a), None);
    }

    #[tokio::test]
    async fn bytes_sent_and_not_read_show_on_the_readers_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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
        r.read_exact(&mut [0u8; 1000]).await.unwrap();
        assert_eq!(unread(local, remote), Some(0));
    }
}
