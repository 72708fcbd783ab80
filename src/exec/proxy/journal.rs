//! What a proxy did, a line per event, for the report of a test that failed
//! through it: when each connection came and reached the server, when the
//! fault was applied and how the bytes before it stood, and how many bytes
//! went each way. A client that saw no reset can then be told from a proxy
//! that sent none.
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The lines of one proxy (at most `MAX`), shared by its connections.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    /// A proxy serves a test's few connections; more lines are dropped.
    const MAX: usize = 32;

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap();
        if lines.len() < Self::MAX {
            lines.push(line);
        }
    }
}

/// One connection through a proxy: its number (from 1) and the clock of
/// the proxy, so that its lines read `conn 1: accepted at 3 ms`.
pub(super) struct Conn {
    n: u64,
    journal: Journal,
    opened: Instant,
}

impl Conn {
    pub(super) fn new(index: u64, journal: Journal, opened: Instant) -> Conn {
        Conn {
            n: index + 1,
            journal,
            opened,
        }
    }

    /// The first connection is the one a fault applies to.
    pub(super) fn first(&self) -> bool {
        self.n == 1
    }

    pub(super) fn note(&self, what: &str) {
        let ms = self.opened.elapsed().as_millis();
        self.journal.push(format!("conn {}: {what} at {ms} ms", self.n));
    }
}
