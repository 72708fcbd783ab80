//! The fault proxy: a TCP listener on 127.0.0.1 that forwards each
//! connection to a server (TCP, or a Unix socket `unix:/PATH`), below TLS (so it works in every TLS mode), doing
//! to the bytes what a case's `fault` asks (`model::fault`). It stops, with
//! every connection through it, when dropped. Its `journal` says what it did
//! (`journal`), for the report of a test that failed through it.
use crate::model::fault::{Action, Fault, Shaper};
use halves::{Read, Write};
use journal::{Conn, Journal};
pub use pause::Pauser;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

mod halves;
mod journal;
mod pause;
mod queue;

/// A running proxy; `addr` is what the client dials instead of the server.
pub struct Proxy {
    pub addr: String,
    pub journal: Journal,
    /// The client a `pause_reader_bytes` fault pauses: set once it runs.
    pub pauser: Pauser,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.pauser.resume();
    }
}

/// Starts a proxy to `target` (`host:port` or `unix:/PATH`). Must be called inside the runtime.
pub fn start(target: &str, fault: &Fault, seed: u64) -> std::io::Result<Proxy> {
    let std = std::net::TcpListener::bind("127.0.0.1:0")?;
    std.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std)?;
    let addr = listener.local_addr()?.to_string();
    let (target, fault) = (target.to_string(), fault.clone());
    let journal = Journal::default();
    let opened = Instant::now();
    let notes = journal.clone();
    let pauser = Pauser::default();
    let paused = pauser.clone();
    let task = tokio::spawn(async move {
        // Dropped with the task: every connection stops with the proxy.
        let mut conns = JoinSet::new();
        for n in 0u64.. {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let conn = Conn::new(n, notes.clone(), opened);
            conns.spawn(connection(
                client,
                target.clone(),
                fault.clone(),
                seed.wrapping_add(n),
                conn,
                paused.clone(),
            ));
            while conns.try_join_next().is_some() {}
        }
    });
    Ok(Proxy {
        addr,
        journal,
        pauser,
        task,
    })
}

enum Item {
    Act(Action),
    Eof,
}

enum End {
    Eof,
    Cut { reset: bool },
}

/// How long a reset (or a pause) waits for the bytes before it to be
/// acknowledged, and read where it asks.
const DELIVERED_WITHIN: Duration = Duration::from_secs(2);

/// How long the bytes must stay delivered (and read) before a reset: a
/// client that read them all reads again (and meets no bytes) before the
/// reset comes.
const SETTLED: Duration = Duration::from_millis(20);

/// Waits (at most `DELIVERED_WITHIN`) until the bytes written to `w` are
/// acknowledged and `read((client unread, server unread))` holds, twice
/// `SETTLED` apart; the ms it waited.
async fn delivered(w: &Mutex<Write>, ends: &Ends, read: impl Fn((u64, u64)) -> bool) -> u128 {
    let since = Instant::now();
    let mut quiet: Option<Instant> = None;
    while since.elapsed() < DELIVERED_WITHIN {
        let acked = w.lock().await.unacked().is_none_or(|n| n == 0);
        match (acked && read(ends.unread()), quiet) {
            (true, Some(t)) if t.elapsed() >= SETTLED => break,
            (true, Some(_)) => {}
            (true, None) => quiet = Some(Instant::now()),
            (false, _) => quiet = None,
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    since.elapsed().as_millis()
}

/// Connects to the server, both halves, and says where the server's end
/// of a TCP connection is (`Peer`).
async fn dial(target: &str, zero_linger: bool) -> std::io::Result<(Read, Write, Option<Peer>)> {
    if let Some(path) = target.strip_prefix("unix:") {
        let (r, w) = UnixStream::connect(path).await?.into_split();
        return Ok((Box::new(r), Box::new(w), None));
    }
    let s = TcpStream::connect(target).await?;
    let _ = s.set_nodelay(true);
    if zero_linger {
        let _ = s.set_zero_linger();
    }
    let peer = Peer::of(&s);
    let (r, w) = s.into_split();
    Ok((Box::new(r), Box::new(w), peer))
}

/// The other end of one of the proxy's TCP sockets: its own address and
/// its peer's (the proxy's), which name its socket in `queue::unread`.
#[derive(Debug, Clone, Copy)]
struct Peer {
    own: SocketAddr,
    proxy: SocketAddr,
}

impl Peer {
    fn of(s: &TcpStream) -> Option<Peer> {
        Some(Peer {
            own: s.peer_addr().ok()?,
            proxy: s.local_addr().ok()?,
        })
    }

    /// Bytes it has received and not read yet.
    fn unread(&self) -> Option<u64> {
        queue::unread(self.own, self.proxy)
    }
}

/// Both ends of a connection through the proxy, and the client's pauser.
struct Ends {
    client: Option<Peer>,
    server: Option<Peer>,
    pauser: Pauser,
}

impl Ends {
    /// Bytes the client and the server have not read yet (0 where unknown).
    fn unread(&self) -> (u64, u64) {
        let n = |p: Option<Peer>| p.and_then(|p| p.unread()).unwrap_or(0);
        (n(self.client), n(self.server))
    }
}

async fn connection(client: TcpStream, target: String, fault: Fault, seed: u64, conn: Conn, pauser: Pauser) {
    let first = conn.first();
    conn.note("accepted");
    // Closing with a zero linger sends RST instead of FIN.
    let zero_linger = first && fault.resets();
    let (sr, sw, server) = match dial(&target, zero_linger).await {
        Ok(halves) => halves,
        Err(e) => return conn.note(&format!("could not reach the server: {e}")),
    };
    conn.note("reached the server");
    let _ = client.set_nodelay(true);
    if zero_linger {
        let _ = client.set_zero_linger();
    }
    let ends = Arc::new(Ends {
        client: Peer::of(&client),
        server,
        pauser,
    });
    let start = Instant::now();
    let (cr, cw) = client.into_split();
    let (cr, cw): (Read, Write) = (Box::new(cr), Box::new(cw));
    let (end_tx, mut end_rx) = mpsc::channel(4);
    let mut tasks = JoinSet::new();
    let (sw, cw) = (Arc::new(Mutex::new(sw)), Arc::new(Mutex::new(cw)));
    let conn = Arc::new(conn);
    let sent = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let halves = [
        (cr, sw.clone(), &fault.up, seed, "the server", &sent[0]),
        (
            sr,
            cw.clone(),
            &fault.down,
            seed.rotate_left(32),
            "the client",
            &sent[1],
        ),
    ];
    for (r, w, dir, seed, toward, sent) in halves {
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.spawn(read_side(r, Shaper::new(dir, first, seed), start, tx));
        let side = Side {
            conn: conn.clone(),
            toward,
            sent: sent.clone(),
            ends: ends.clone(),
        };
        tasks.spawn(write_side(w, rx, start, end_tx.clone(), side));
    }
    drop(end_tx);
    let mut ended = 0;
    let mut reset = false;
    while let Some(end) = end_rx.recv().await {
        match end {
            End::Eof if ended == 0 => ended = 1,
            End::Eof => break,
            End::Cut { reset: r } => {
                reset = r;
                break;
            }
        }
    }
    tasks.shutdown().await;
    // The read halves are gone with their tasks; the sockets close when the
    // write halves go too. A reset forgets them, so the zero linger makes the
    // close an RST; else each side gets a FIN and what it still sends is read
    // (and dropped) until it closes too.
    let halves = [sw, cw].map(|w| Arc::try_unwrap(w).ok().map(Mutex::into_inner));
    let mut closing = Vec::new();
    for w in halves.into_iter().flatten() {
        match reset {
            true => w.reset(),
            false => closing.push(w.close()),
        }
    }
    futures::future::join_all(closing).await;
    if ends.pauser.paused() {
        // Let the resets land before the client reads again.
        tokio::time::sleep(Duration::from_millis(20)).await;
        ends.pauser.resume();
        conn.note("resumed the client");
    }
    let [up, down] = sent.map(|n| n.load(Ordering::Relaxed));
    conn.note(&format!("done: {up} bytes to the server, {down} to the client"));
}

/// One direction's writer: where it writes, and what it has written.
struct Side {
    conn: Arc<Conn>,
    toward: &'static str,
    sent: Arc<AtomicU64>,
    ends: Arc<Ends>,
}

fn ms_since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

async fn read_side(mut r: Read, mut shaper: Shaper, start: Instant, tx: mpsc::UnboundedSender<Item>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await.unwrap_or(0);
        let now = ms_since(start);
        if n == 0 {
            // A black hole swallows the end of the stream too.
            if !shaper.holed(now) {
                let _ = tx.send(Item::Eof);
            }
            return;
        }
        for a in shaper.feed(&buf[..n], now) {
            if tx.send(Item::Act(a)).is_err() {
                return;
            }
        }
    }
}

async fn write_side(
    w: Arc<Mutex<Write>>,
    mut rx: mpsc::UnboundedReceiver<Item>,
    start: Instant,
    end: mpsc::Sender<End>,
    side: Side,
) {
    let until = |at_ms: u64| tokio::time::sleep_until((start + Duration::from_millis(at_ms)).into());
    let toward = side.toward;
    let sent = || side.sent.load(Ordering::Relaxed);
    while let Some(item) = rx.recv().await {
        match item {
            Item::Act(Action::Send { at_ms, bytes }) => {
                until(at_ms).await;
                if let Err(e) = w.lock().await.write_all(&bytes).await {
                    side.conn.note(&format!("writing to {toward} failed ({e})"));
                    let _ = end.send(End::Cut { reset: false }).await;
                    return;
                }
                side.sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Item::Act(Action::Pause { at_ms }) => {
                until(at_ms).await;
                // The client has read every byte before the pause, so the
                // bytes behind it are exactly the case's, loaded or not (a
                // client slow to read would meet the reset behind far more).
                let waited = delivered(&w, &side.ends, |(client, _)| client == 0).await;
                let (unread, _) = side.ends.unread();
                match side.ends.pauser.pause() {
                    Ok(pgid) => {
                        // The bytes that follow must find it stopped.
                        let asked = Instant::now();
                        let stopped = loop {
                            let stopped = side.ends.pauser.stopped();
                            if stopped || asked.elapsed() >= DELIVERED_WITHIN {
                                break stopped;
                            }
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        };
                        side.conn.note(&format!(
                            "paused the client (process group {pgid}) after {} bytes to {toward} ({unread} of them unread, after waiting {waited} ms; {} in {} ms)",
                            sent(),
                            if stopped { "stopped" } else { "not yet stopped" },
                            asked.elapsed().as_millis()
                        ))
                    }
                    Err(why) => side.conn.note(&format!("could not pause the client: {why}")),
                }
            }
            Item::Act(Action::Reset { at_ms }) => {
                until(at_ms).await;
                // The bytes before the reset reach the peers before it, and
                // each has read them (unless the client is paused on
                // purpose): a reset behind unread bytes is a case of its own.
                let paused = side.ends.pauser.paused();
                let waited = delivered(&w, &side.ends, |(client, server)| {
                    server == 0 && (paused || client == 0)
                })
                .await;
                let unacked = w.lock().await.unacked().map_or("unknown".into(), |n| n.to_string());
                let (client, server) = side.ends.unread();
                side.conn.note(&format!(
                    "resetting both sides after {} bytes to {toward} ({unacked} not acknowledged, {client} unread by the client{}, {server} by the server, after waiting {waited} ms)",
                    sent(),
                    if paused { " (paused)" } else { "" }
                ));
                let _ = end.send(End::Cut { reset: true }).await;
                return;
            }
            Item::Act(Action::Close { at_ms }) => {
                until(at_ms).await;
                side.conn
                    .note(&format!("closing both sides after {} bytes to {toward}", sent()));
                let _ = end.send(End::Cut { reset: false }).await;
                return;
            }
            Item::Eof => {
                side.conn.note(&format!("end of stream passed on to {toward}"));
                let _ = w.lock().await.shutdown().await;
                let _ = end.send(End::Eof).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
