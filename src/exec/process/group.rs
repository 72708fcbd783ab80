//! Process groups as /proc shows them: the state of each thread of each
//! process in a group.
use std::path::Path;

/// The state letter and process group of a `/proc/.../stat` line (the
/// command name may hold spaces and parentheses).
pub fn state_and_group(stat: &str) -> Option<(char, i32)> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let group = fields.nth(1)?.parse().ok()?;
    Some((state, group))
}

/// The states of the threads (`task/*/stat`) of every process in group
/// `pgid`; empty when it has none or there is no /proc.
pub fn thread_states(pgid: i32) -> Vec<char> {
    let stat = |p: &Path| std::fs::read_to_string(p.join("stat")).ok();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let numeric = |e: &std::fs::DirEntry| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit());
    let members = procs
        .flatten()
        .filter(numeric)
        .filter(|p| stat(&p.path()).as_deref().and_then(state_and_group).map(|(_, g)| g) == Some(pgid));
    let mut states = Vec::new();
    for p in members {
        let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else {
            continue;
        };
        let of = |t: std::fs::DirEntry| stat(&t.path()).as_deref().and_then(state_and_group).map(|(s, _)| s);
        states.extend(tasks.flatten().filter_map(of));
    }
    states
}

/// Whether every thread of group `pgid` is stopped (SIGSTOP) or gone.
pub fn stopped(pgid: i32) -> bool {
    thread_states(pgid).iter().all(|s| matches!(s, 'T' | 't' | 'Z' | 'X'))
}

/// Whether any thread of group `pgid` is still alive (not a zombie): what
/// the tests of killing a group check.
#[cfg(test)]
pub fn alive(pgid: i32) -> bool {
    thread_states(pgid).iter().any(|s| !matches!(s, 'Z' | 'X'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_state_and_group() {
        let line = "42 (tokio-runtime (w)) T 1 4242 4242 0 -1";
        assert_eq!(state_and_group(line), Some(('T', 4242)));
        assert_eq!(state_and_group("garbage"), None);
    }

    #[test]
    fn a_group_with_no_members_is_neither_alive_nor_running() {
        // Group ids are process ids; i32::MAX is above any pid_max.
        assert!(thread_states(i32::MAX).is_empty());
        assert!(!alive(i32::MAX) && stopped(i32::MAX));
    }
}
