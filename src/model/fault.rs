//! Network faults a case can ask for, and what they do to the bytes of one
//! direction of a connection (pure: the runner's proxy, `exec::proxy`,
//! carries the actions out).
//!
//! Shaping (latency, jitter, bandwidth, slicing) applies to every connection
//! through the proxy; the destructive faults (reset, close, black hole,
//! corruption) only to the first one, so that a later call on the same
//! channel, which opens a new connection, shows whether the client recovers.
use serde::{Deserialize, Serialize};

/// The faults of a case's faulty connection, per direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Client → server.
    #[serde(default)]
    pub up: Direction,
    /// Server → client.
    #[serde(default)]
    pub down: Direction,
}

/// What happens to the bytes of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Direction {
    /// Every chunk is held this long.
    #[serde(default)]
    pub latency_ms: u64,
    /// ± this much, per chunk (order is kept).
    #[serde(default)]
    pub jitter_ms: u64,
    /// At most this many bytes per second.
    #[serde(default)]
    pub bytes_per_s: Option<u64>,
    /// Bytes are forwarded in segments of at most this many bytes...
    #[serde(default)]
    pub slice_bytes: Option<usize>,
    /// ...this many ms apart.
    #[serde(default)]
    pub slice_delay_ms: u64,
    /// The connection is reset (TCP RST, both ways) once this many bytes went through.
    #[serde(default)]
    pub reset_after_bytes: Option<u64>,
    /// The connection is closed (FIN, both ways) once this many bytes went
    /// through; the proxy reads on until each side closes too (never an RST).
    #[serde(default)]
    pub close_after_bytes: Option<u64>,
    /// Nothing more goes through once this many bytes did; the sockets stay open.
    #[serde(default)]
    pub blackhole_after_bytes: Option<u64>,
    /// Nothing more goes through this many ms after the connection opened.
    #[serde(default)]
    pub blackhole_after_ms: Option<u64>,
    /// The byte at this offset is flipped (every bit).
    #[serde(default)]
    pub corrupt_at: Option<u64>,
    /// With `reset_after_bytes`, `down` only: the client process is paused
    /// for the last this many bytes before the reset (once it has read every
    /// byte before them) and resumed after it, so the reset reaches it behind
    /// bytes it has not read yet (as a client busy elsewhere meets one);
    /// without it, the reset waits until each side has read what it was sent.
    #[serde(default)]
    pub pause_reader_bytes: Option<u64>,
}

impl Fault {
    /// Whether the first connection is reset (its sockets then close with RST).
    pub fn resets(&self) -> bool {
        self.up.reset_after_bytes.is_some() || self.down.reset_after_bytes.is_some()
    }

    /// What is wrong with it, if anything.
    pub fn check(&self) -> Result<(), String> {
        for (name, d) in [("up", &self.up), ("down", &self.down)] {
            let cuts = [d.reset_after_bytes, d.close_after_bytes, d.blackhole_after_bytes];
            if cuts.iter().flatten().count() > 1 {
                return Err(format!(
                    "fault.{name}: at most one of reset_after_bytes, close_after_bytes, blackhole_after_bytes"
                ));
            }
            if d.slice_bytes == Some(0) {
                return Err(format!("fault.{name}.slice_bytes must be at least 1"));
            }
            if d.bytes_per_s == Some(0) {
                return Err(format!("fault.{name}.bytes_per_s must be at least 1"));
            }
            if d.jitter_ms > d.latency_ms {
                return Err(format!("fault.{name}.jitter_ms must not exceed latency_ms"));
            }
            match (d.pause_reader_bytes, d.reset_after_bytes) {
                (None, _) => {}
                (Some(_), _) if name == "up" => {
                    return Err("fault.up.pause_reader_bytes: only the client (fault.down) can be paused".into())
                }
                (Some(p), Some(r)) if p > 0 && p <= r => {}
                (Some(_), _) => {
                    return Err(format!(
                        "fault.{name}.pause_reader_bytes needs reset_after_bytes, and must be between 1 and it"
                    ))
                }
            }
        }
        if *self == Fault::default() {
            return Err("fault: names no fault".into());
        }
        Ok(())
    }
}

/// What the proxy does next on one direction, `at_ms` after the connection opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send {
        at_ms: u64,
        bytes: Vec<u8>,
    },
    /// The reader of this direction is paused until the reset that follows.
    Pause {
        at_ms: u64,
    },
    Reset {
        at_ms: u64,
    },
    Close {
        at_ms: u64,
    },
}

/// One direction of one connection: turns the chunks read into actions.
#[derive(Debug, Clone)]
pub struct Shaper {
    dir: Direction,
    /// Bytes read so far (forwarded or not).
    seen: u64,
    /// No send may be scheduled before this (order, bandwidth, slices).
    next_ms: u64,
    holed: bool,
    cut: bool,
    rng: u64,
}

impl Shaper {
    /// `first`: the proxy's first connection, the only one with destructive faults.
    pub fn new(dir: &Direction, first: bool, seed: u64) -> Shaper {
        let mut dir = dir.clone();
        if !first {
            dir.reset_after_bytes = None;
            dir.close_after_bytes = None;
            dir.blackhole_after_bytes = None;
            dir.blackhole_after_ms = None;
            dir.corrupt_at = None;
            dir.pause_reader_bytes = None;
        }
        Shaper {
            dir,
            seen: 0,
            next_ms: 0,
            holed: false,
            cut: false,
            rng: seed | 1,
        }
    }

    /// Whether the direction is a black hole now (its end of stream is swallowed too).
    pub fn holed(&self, now_ms: u64) -> bool {
        self.holed || self.dir.blackhole_after_ms.is_some_and(|t| now_ms >= t)
    }

    /// xorshift64: jitter that is the same on every run.
    fn jitter(&mut self) -> i64 {
        let j = self.dir.jitter_ms as i64;
        if j == 0 {
            return 0;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % (2 * j as u64 + 1)) as i64 - j
    }

    /// The actions for a chunk read `now_ms` after the connection opened.
    pub fn feed(&mut self, chunk: &[u8], now_ms: u64) -> Vec<Action> {
        if self.cut || self.holed(now_ms) {
            return vec![];
        }
        let d = &self.dir;
        let limit = d.reset_after_bytes.or(d.close_after_bytes).or(d.blackhole_after_bytes);
        let take = match limit {
            Some(l) => (l.saturating_sub(self.seen) as usize).min(chunk.len()),
            None => chunk.len(),
        };
        let mut bytes = chunk[..take].to_vec();
        if let Some(at) = d
            .corrupt_at
            .filter(|at| (self.seen..self.seen + take as u64).contains(at))
        {
            bytes[(at - self.seen) as usize] ^= 0xff;
        }
        self.seen += take as u64;
        let latency = (d.latency_ms as i64 + self.jitter()).max(0) as u64;
        let mut at = (now_ms + latency).max(self.next_ms);
        // Where in `bytes` the reader is paused, if it is in this chunk.
        let pause = self
            .dir
            .pause_reader_bytes
            .zip(limit)
            .map(|(p, l)| l.saturating_sub(p))
            .filter(|b| (self.seen - take as u64..self.seen).contains(b))
            .map(|b| (b + take as u64 - self.seen) as usize);
        let mut out = Vec::new();
        let size = self.dir.slice_bytes.unwrap_or(usize::MAX);
        let (before, after) = bytes.split_at(pause.unwrap_or(bytes.len()));
        let mut first = true;
        for (half, part) in [before, after].into_iter().enumerate() {
            if half == 1 && pause.is_some() {
                out.push(Action::Pause { at_ms: at });
            }
            for piece in part.chunks(size) {
                if !first {
                    at += self.dir.slice_delay_ms;
                }
                first = false;
                out.push(Action::Send {
                    at_ms: at,
                    bytes: piece.to_vec(),
                });
                if let Some(bps) = self.dir.bytes_per_s {
                    at += (piece.len() as u64 * 1000).div_ceil(bps);
                }
            }
        }
        self.next_ms = at;
        if limit.is_some_and(|l| self.seen >= l) {
            let d = &self.dir;
            if d.reset_after_bytes.is_some() {
                out.push(Action::Reset { at_ms: at });
                self.cut = true;
            } else if d.close_after_bytes.is_some() {
                out.push(Action::Close { at_ms: at });
                self.cut = true;
            } else {
                self.holed = true;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
