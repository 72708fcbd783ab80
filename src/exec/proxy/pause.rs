//! The client process a proxy may pause (`pause_reader_bytes`): its process
//! group, known once the runner has started it, stopped with SIGSTOP and
//! continued with SIGCONT (at the latest when the proxy goes).
use crate::exec::process::group;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct State {
    pgid: Option<i32>,
    paused: bool,
}

/// Shared by a proxy and its connections.
#[derive(Debug, Clone, Default)]
pub struct Pauser(Arc<Mutex<State>>);

impl Pauser {
    /// The process group of the client that dials the proxy.
    pub fn set(&self, pgid: i32) {
        self.0.lock().unwrap().pgid = Some(pgid);
    }

    /// Stops the client; the process group it stopped, or why not.
    pub fn pause(&self) -> Result<i32, String> {
        let mut s = self.0.lock().unwrap();
        let pgid = s.pgid.ok_or("no client process is known to the proxy")?;
        killpg(Pid::from_raw(pgid), Signal::SIGSTOP).map_err(|e| format!("SIGSTOP to {pgid}: {e}"))?;
        s.paused = true;
        Ok(pgid)
    }

    /// Whether every thread of the paused client's processes has stopped
    /// (SIGSTOP is delivered to each thread in its own time: one may still
    /// read for a moment after `pause` returns).
    pub fn stopped(&self) -> bool {
        let s = self.0.lock().unwrap();
        match (s.paused, s.pgid) {
            (true, Some(pgid)) => group::stopped(pgid),
            _ => false,
        }
    }

    pub fn paused(&self) -> bool {
        self.0.lock().unwrap().paused
    }

    /// Continues the client if it is paused; whether it was.
    pub fn resume(&self) -> bool {
        let mut s = self.0.lock().unwrap();
        let was = std::mem::take(&mut s.paused);
        if let (true, Some(pgid)) = (was, s.pgid) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGCONT);
        }
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// The state letter of process `pid` (`T` when stopped).
    fn state(pid: u32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        group::state_and_group(&stat).unwrap().0
    }

    fn wait_for(pid: u32, want: char) -> char {
        for _ in 0..200 {
            if state(pid) == want {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        state(pid)
    }

    #[test]
    fn a_paused_client_stops_and_resumes_and_without_one_pausing_says_why() {
        assert!(Pauser::default().pause().unwrap_err().contains("no client process"));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let p = Pauser::default();
        p.set(child.id() as i32);
        assert_eq!(p.pause(), Ok(child.id() as i32));
        assert_eq!(wait_for(child.id(), 'T'), 'T');
        assert!(p.stopped());
        assert!(p.paused() && p.resume() && !p.paused());
        assert_eq!(wait_for(child.id(), 'S'), 'S');
        assert!(!p.stopped() && !group::stopped(child.id() as i32));
        assert!(!p.resume());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
