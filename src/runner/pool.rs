//! Servers shared by the cells of a run: one per (server language, TLS mode,
//! key type, server certificate), started when a cell first needs it,
//! restarted when a cell finds it gone, stopped when its last cell ends, or
//! earlier while no cell uses it when the machine runs short of memory (a
//! cell that needs it later starts it again).
//! Test keys carry the client's name, so cells of different clients on one
//! server never meet.
use super::Runner;
use crate::exec::process::{Proc, Stopped};
use crate::input::cases::ServerCert;
use crate::model::cell::CellKey;
use crate::model::run::ProcessCpu;
use crate::plan::admit::low_memory;
use crate::plan::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which server a cell needs: its cell key without the client, and the certificate.
pub(super) type ServerKey = (
    String,
    crate::model::tls::TlsMode,
    crate::model::tls::KeyType,
    ServerCert,
    Option<crate::model::cell::Net>,
);

fn server_key(key: &CellKey, cert: ServerCert) -> ServerKey {
    (key.server.clone(), key.tls, key.key_type, cert, key.net)
}

/// The server's side of a cell key (no client).
fn cell_of(key: &ServerKey) -> CellKey {
    CellKey {
        client: String::new(),
        server: key.0.clone(),
        tls: key.1,
        key_type: key.2,
        net: key.4,
    }
}

/// One shared server, while it runs.
struct Running {
    proc: Proc,
    addr: String,
    /// Counts the instances started for this key (a restart makes a new one).
    generation: u32,
}

#[derive(Default)]
struct Slot {
    running: Option<Running>,
    generation: u32,
    /// Cells that will still ask for this server.
    remaining: usize,
    /// Cells using it now.
    users: usize,
}

/// The shared servers of a run.
#[derive(Default)]
pub struct Pool {
    slots: Mutex<HashMap<ServerKey, Arc<tokio::sync::Mutex<Slot>>>>,
    /// Per server address: the calls at once its clients' many-call phases
    /// may still take (`phases::SERVER_CALLS` in all).
    calls: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// A cell's use of a shared server.
pub(super) struct Lease {
    key: ServerKey,
    pub addr: String,
    generation: u32,
    /// When this cell started the server: its ready time and any note.
    pub started: Option<(f64, Option<String>)>,
    /// A note when the server had to be restarted for this cell.
    pub restarted: Option<String>,
}

impl Pool {
    fn slot(&self, key: &ServerKey) -> Arc<tokio::sync::Mutex<Slot>> {
        self.slots.lock().expect("pool").entry(key.clone()).or_default().clone()
    }

    /// The calls at once that the server at `addr` has left for many-call
    /// phases: one count per address, shared by every client process.
    pub(super) fn calls_of(&self, addr: &str) -> Arc<tokio::sync::Semaphore> {
        let mut calls = self.calls.lock().expect("pool");
        let full = || Arc::new(tokio::sync::Semaphore::new(super::phases::SERVER_CALLS as usize));
        calls.entry(addr.to_string()).or_insert_with(full).clone()
    }

    /// The cells about to run will each ask once per certificate they use.
    pub(super) async fn expect(&self, cells: &[Cell]) {
        for cell in cells {
            for cert in cell.groups().into_keys() {
                self.slot(&server_key(&cell.key, cert)).lock().await.remaining += 1;
            }
        }
    }
}

impl Runner {
    /// The shared server of a cell: the running one, or one started now.
    pub(super) async fn lease(&self, key: &CellKey, cert: ServerCert) -> Result<Lease, (String, String)> {
        let skey = server_key(key, cert);
        let slot = self.pool.slot(&skey);
        let mut slot = slot.lock().await;
        let mut restarted = None;
        if let Some(r) = slot.running.as_mut() {
            if let Some(status) = r.proc.try_exit() {
                restarted = Some(format!(
                    "server {} had exited ({status}) since an earlier cell; started it again",
                    key.server
                ));
                if let Some(gone) = slot.running.take() {
                    self.after_stop(&cell_of(&skey), &gone.addr);
                }
            }
        }
        let mut started = None;
        if slot.running.is_none() {
            if let Some(m) = crate::exec::load::memory().filter(|m| m.free_share() < low_memory()) {
                self.stop_idle(&skey, m).await;
            }
            let (proc, addr, ready, note) = self.start_server(key, cert).await?;
            slot.generation += 1;
            let generation = slot.generation;
            slot.running = Some(Running { proc, addr, generation });
            started = Some((ready, note));
        }
        slot.users += 1;
        let running = slot.running.as_ref().expect("running");
        Ok(Lease {
            key: skey,
            addr: running.addr.clone(),
            generation: running.generation,
            started,
            restarted,
        })
    }

    /// Whether the lease's server instance has exited, with its status, and its stderr.
    pub(super) async fn server_gone(&self, lease: &Lease) -> (Option<String>, String) {
        let slot = self.pool.slot(&lease.key);
        let mut slot = slot.lock().await;
        match slot.running.as_mut().filter(|r| r.generation == lease.generation) {
            Some(r) => (r.proc.try_exit().map(|s| s.to_string()), r.proc.stderr_tail()),
            None => (Some("it was restarted by another cell meanwhile".into()), String::new()),
        }
    }

    /// The cell is done with the server; the last cell stops it. Returns a
    /// note when it did not stop cleanly.
    pub(super) async fn release(&self, lease: Lease) -> Option<String> {
        self.done_with(&lease.key, true).await
    }

    /// A cell that will not ask for its server after all (it could not start,
    /// a language is unavailable, the run was interrupted).
    pub(super) async fn skip(&self, key: &CellKey, cert: ServerCert) -> Option<String> {
        self.done_with(&server_key(key, cert), false).await
    }

    /// A cell that will ask for none of its servers; notes of servers that
    /// did not stop cleanly.
    pub(super) async fn skip_cell(&self, cell: &Cell) -> Vec<String> {
        let mut notes = Vec::new();
        for cert in cell.groups().into_keys() {
            notes.extend(self.skip(&cell.key, cert).await);
        }
        notes
    }

    async fn done_with(&self, key: &ServerKey, leased: bool) -> Option<String> {
        let slot = self.pool.slot(key);
        let mut slot = slot.lock().await;
        if leased {
            slot.users = slot.users.saturating_sub(1);
        }
        slot.remaining = slot.remaining.saturating_sub(1);
        if slot.users > 0 || slot.remaining > 0 {
            return None;
        }
        let mut running = slot.running.take()?;
        match self.stop_running(key, &mut running).await {
            Stopped::OnStdinClose => None,
            Stopped::OnSigterm => Some(format!(
                "server {} did not exit within 3 s of its stdin closing (needed SIGTERM)",
                key.0
            )),
            Stopped::Killed => Some(format!(
                "server {} ignored stdin EOF and SIGTERM (needed SIGKILL)",
                key.0
            )),
        }
    }

    /// Short of memory: stops the shared servers no cell uses now, but the
    /// one about to start (`except`) and those another cell is starting or
    /// leasing (their slot is locked).
    async fn stop_idle(&self, except: &ServerKey, m: crate::exec::load::Memory) {
        let slots: Vec<(ServerKey, Arc<tokio::sync::Mutex<Slot>>)> = self
            .pool
            .slots
            .lock()
            .expect("pool")
            .iter()
            .filter(|(k, _)| *k != except)
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        let mut stopping = Vec::new();
        for (key, slot) in slots {
            let Ok(mut slot) = slot.try_lock_owned() else {
                continue;
            };
            if slot.users > 0 {
                continue;
            }
            let Some(mut r) = slot.running.take() else {
                continue;
            };
            stopping.push(async move {
                self.stop_running(&key, &mut r).await;
                drop(slot);
                key.0
            });
        }
        let stopped = futures::future::join_all(stopping).await;
        if !stopped.is_empty() {
            const MIB: u64 = 1024 * 1024;
            note!(
                "memory: {} of {} MiB available; stopped {} shared server(s) no cell was using ({}); a cell that needs one starts it again",
                m.available / MIB,
                m.total / MIB,
                stopped.len(),
                stopped.join(", ")
            );
        }
    }

    /// Stops every server still running (the end of a batch of cells).
    pub(super) async fn stop_all(&self) {
        let slots: Vec<(ServerKey, _)> = self
            .pool
            .slots
            .lock()
            .expect("pool")
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        for (key, slot) in slots {
            let mut slot = slot.lock().await;
            slot.remaining = 0;
            if let Some(mut r) = slot.running.take() {
                self.stop_running(&key, &mut r).await;
            }
        }
    }

    /// Stops a shared server: its CPU noted, a plugin asked to shut down
    /// first and its socket removed after (server.rs).
    async fn stop_running(&self, key: &ServerKey, r: &mut Running) -> Stopped {
        self.server_cpu(key, &r.proc);
        let cell = cell_of(key);
        self.before_stop(&cell, &r.addr).await;
        let stopped = r.proc.stop(Duration::from_secs(3)).await;
        self.after_stop(&cell, &r.addr);
        stopped
    }

    /// Notes the CPU a shared server used, before it is stopped.
    fn server_cpu(&self, key: &ServerKey, proc: &Proc) {
        let (server, tls, key_type, cert, net) = key;
        let mut process = format!("server={server}");
        if let Some(net) = net {
            process.push_str(&format!("/net={net}"));
        }
        process.push_str(&format!("/tls={tls}"));
        if *key_type != crate::model::tls::KeyType::default() {
            process.push_str(&format!("/key={}", key_type.as_str()));
        }
        if *cert != ServerCert::Normal {
            process.push_str(&format!("/cert={cert:?}"));
        }
        self.processes.lock().expect("process CPU").push(ProcessCpu {
            role: "server".into(),
            language: server.clone(),
            process,
            cpu_ms: proc.cpu_ms().unwrap_or(0.0),
            span_ms: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_of_one_server_share_its_calls_at_once_and_another_server_has_its_own() {
        let pool = Pool::default();
        let calls = super::super::phases::SERVER_CALLS as usize;
        let first = pool
            .calls_of("127.0.0.1:1")
            .try_acquire_many_owned(calls as u32 - 200)
            .unwrap();
        let same = pool.calls_of("127.0.0.1:1");
        assert_eq!(
            same.available_permits(),
            200,
            "what another client's phase may still take"
        );
        assert!(same.clone().try_acquire_many_owned(201).is_err(), "201 more wait");
        assert_eq!(pool.calls_of("127.0.0.1:2").available_permits(), calls);
        drop(first);
        assert_eq!(same.available_permits(), calls, "given back when the phase ends");
    }
}
