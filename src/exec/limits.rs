//! The process's own limits: its soft limit on open files raised to the hard
//! limit, as Go's runtime does for every Go program. A run holds pipes to
//! each client process and the sockets of its fault proxies and misbehaving
//! peers, and the clients and servers it starts inherit the limit. Below what
//! a run needs, fault cases went red for the wrong reason (a proxy that could
//! not reach the server: DEADLINE_EXCEEDED where UNAVAILABLE is expected).
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft limit on open files to the hard one. Returns the soft
/// limit before and after when it changed; `None` when it was already there
/// or the system refused (the run goes on with what it has).
pub fn raise_open_files() -> Option<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= hard {
        return None;
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).ok()?;
    Some((soft, hard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let _ = raise_open_files();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, hard);
        assert_eq!(raise_open_files(), None, "nothing left to raise");
    }
}
