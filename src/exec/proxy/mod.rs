//! The fault proxy: a TCP listener on 127.0.0.1 that forwards each
//! connection to a server (TCP, or a Unix socket `unix:/PATH`), below TLS (so it works in every TLS mode), doing
//! to the bytes what a case's `fault` asks (`model::fault`). It stops, with
//! every connection through it, when dropped. Its `journal` says what it did
//! (`journal`), for the report of a test that failed through it.
use crate::model::fault::{Action, Fault, Shaper};
use journal::{Conn, Journal};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

mod journal;

/// A running proxy; `addr` is what the client dials instead of the server.
pub struct Proxy {
    pub addr: String,
    pub journal: Journal,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
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
            ));
            while conns.try_join_next().is_some() {}
        }
    });
    Ok(Proxy { addr, journal, task })
}

enum Item {
    Act(Action),
    Eof,
}

enum End {
    Eof,
    Cut { reset: bool },
}

/// The half of a connection the proxy writes to.
trait WriteHalf: AsyncWrite + Unpin + Send {
    /// Closes it with a reset where the transport has one (TCP's RST, the
    /// socket set to zero linger), else as it can.
    fn reset(self: Box<Self>);
    /// Bytes written that the peer has not acknowledged yet (TCP's send
    /// queue), where the transport says.
    fn unacked(&self) -> Option<usize> {
        None
    }
    /// Closes it with a FIN, then reads and drops what the peer still sends
    /// until it closes too (or `DRAIN_WITHIN` passed): a socket closed with
    /// unread bytes would send an RST instead, and the close would be a reset
    /// or not depending on what the peer had sent by then.
    fn close(self: Box<Self>) -> futures::future::BoxFuture<'static, ()>;
}

/// A socket a close drains: TCP or Unix.
trait Drained: Sync {
    fn ready(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
    fn read_now(&self, buf: &mut [u8]) -> std::io::Result<usize>;
}

impl Drained for TcpStream {
    fn ready(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        self.readable()
    }
    fn read_now(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.try_read(buf)
    }
}

impl Drained for UnixStream {
    fn ready(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        self.readable()
    }
    fn read_now(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.try_read(buf)
    }
}

/// Reads and drops what `socket` receives until the end of its stream, an
/// error, or `DRAIN_WITHIN`.
async fn drain(socket: &impl Drained) {
    let mut buf = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(DRAIN_WITHIN, async {
        while socket.ready().await.is_ok() {
            match socket.read_now(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

impl WriteHalf for tokio::net::tcp::OwnedWriteHalf {
    fn reset(self: Box<Self>) {
        self.forget();
    }

    fn close(mut self: Box<Self>) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = self.shutdown().await;
            drain(AsRef::<TcpStream>::as_ref(&*self)).await;
        })
    }

    fn unacked(&self) -> Option<usize> {
        use std::os::fd::AsRawFd;
        let fd = AsRef::<TcpStream>::as_ref(self).as_raw_fd();
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ on a socket writes one int to the pointer given.
        (unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) } == 0).then_some(n.max(0) as usize)
    }
}

impl WriteHalf for tokio::net::unix::OwnedWriteHalf {
    fn reset(self: Box<Self>) {}

    fn close(mut self: Box<Self>) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = self.shutdown().await;
            drain(AsRef::<UnixStream>::as_ref(&*self)).await;
        })
    }
}

/// How long a reset waits for the bytes before it to be acknowledged.
const DELIVERED_WITHIN: Duration = Duration::from_millis(500);

/// How long a close waits for the peer to close its side too.
const DRAIN_WITHIN: Duration = Duration::from_secs(5);

type Read = Box<dyn AsyncRead + Unpin + Send>;
type Write = Box<dyn WriteHalf>;

/// Connects to the server, both halves.
async fn dial(target: &str, zero_linger: bool) -> std::io::Result<(Read, Write)> {
    if let Some(path) = target.strip_prefix("unix:") {
        let (r, w) = UnixStream::connect(path).await?.into_split();
        return Ok((Box::new(r), Box::new(w)));
    }
    let s = TcpStream::connect(target).await?;
    let _ = s.set_nodelay(true);
    if zero_linger {
        let _ = s.set_zero_linger();
    }
    let (r, w) = s.into_split();
    Ok((Box::new(r), Box::new(w)))
}

async fn connection(client: TcpStream, target: String, fault: Fault, seed: u64, conn: Conn) {
    let first = conn.first();
    conn.note("accepted");
    // Closing with a zero linger sends RST instead of FIN.
    let zero_linger = first && fault.resets();
    let (sr, sw) = match dial(&target, zero_linger).await {
        Ok(halves) => halves,
        Err(e) => return conn.note(&format!("could not reach the server: {e}")),
    };
    conn.note("reached the server");
    let _ = client.set_nodelay(true);
    if zero_linger {
        let _ = client.set_zero_linger();
    }
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
    let [up, down] = sent.map(|n| n.load(Ordering::Relaxed));
    conn.note(&format!("done: {up} bytes to the server, {down} to the client"));
}

/// One direction's writer: where it writes, and what it has written.
struct Side {
    conn: Arc<Conn>,
    toward: &'static str,
    sent: Arc<AtomicU64>,
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
            Item::Act(Action::Reset { at_ms }) => {
                until(at_ms).await;
                // The bytes before the reset reach the peer before it: a reset
                // that overtook them in the peer's receive queue would make
                // what the client saw depend on how fast it read.
                let since = Instant::now();
                while w.lock().await.unacked().is_some_and(|n| n > 0) && since.elapsed() < DELIVERED_WITHIN {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let unacked = w.lock().await.unacked().map_or("unknown".into(), |n| n.to_string());
                let waited = since.elapsed().as_millis();
                side.conn.note(&format!(
                    "resetting both sides after {} bytes to {toward} ({unacked} not acknowledged after waiting {waited} ms)",
                    sent()
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
