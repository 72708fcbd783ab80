//! Ports for the servers a run starts.

/// The first port `free_port` tries below the kernel's ephemeral range.
const FIRST_PORT: u16 = 20_000;

/// A port that was free a moment ago on 127.0.0.1, for a server to bind.
/// It is chosen below the kernel's ephemeral range when there is room: a
/// port in that range can be taken by any outgoing connection (a client's,
/// a proxy's) between this probe and the server's bind, which a full run
/// with a dozen clients at once did; one below it only by another listener.
pub fn free_port() -> std::io::Result<u16> {
    if let Some(low) = below_ephemeral() {
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new();
        for attempt in 0..64u32 {
            let port = FIRST_PORT + (random.hash_one(attempt) % u64::from(low - FIRST_PORT)) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The low end of this machine's ephemeral range when there is room below
/// it for `free_port` (from `FIRST_PORT`), else `None`.
fn below_ephemeral() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    ephemeral_low(&range).filter(|low| *low > FIRST_PORT + 1000)
}

/// The low end of `ip_local_port_range` ("32768\t60999").
fn ephemeral_low(text: &str) -> Option<u16> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_get_ports_below_the_ephemeral_range() {
        assert_eq!(ephemeral_low("32768\t60999\n"), Some(32768));
        assert_eq!(ephemeral_low(""), None);
        let port = free_port().unwrap();
        match below_ephemeral() {
            Some(low) => assert!((FIRST_PORT..low).contains(&port), "{port}"),
            None => assert!(port > 0),
        }
    }
}
