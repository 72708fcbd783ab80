//! The fault proxy: a TCP listener on 127.0.0.1 that forwards each
//! connection to a server (TCP, or a Unix socket `unix:/PATH`), below TLS (so it works in every TLS mode), doing
//! to the bytes what a case's `fault` asks (`model::fault`). It stops, with
//! every connection through it, when dropped.
use crate::model::fault::{Action, Fault, Shaper};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

/// A running proxy; `addr` is what the client dials instead of the server.
pub struct Proxy {
    pub addr: String,
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
    let task = tokio::spawn(async move {
        // Dropped with the task: every connection stops with the proxy.
        let mut conns = JoinSet::new();
        for n in 0u64.. {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            conns.spawn(connection(
                client,
                target.clone(),
                fault.clone(),
                n == 0,
                seed.wrapping_add(n),
            ));
            while conns.try_join_next().is_some() {}
        }
    });
    Ok(Proxy { addr, task })
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
async fn dial(target: &str, zero_linger: bool) -> Option<(Read, Write)> {
    if let Some(path) = target.strip_prefix("unix:") {
        let (r, w) = UnixStream::connect(path).await.ok()?.into_split();
        return Some((Box::new(r), Box::new(w)));
    }
    let s = TcpStream::connect(target).await.ok()?;
    let _ = s.set_nodelay(true);
    if zero_linger {
        let _ = s.set_zero_linger();
    }
    let (r, w) = s.into_split();
    Some((Box::new(r), Box::new(w)))
}

async fn connection(client: TcpStream, target: String, fault: Fault, first: bool, seed: u64) {
    // Closing with a zero linger sends RST instead of FIN.
    let zero_linger = first && fault.resets();
    let Some((sr, sw)) = dial(&target, zero_linger).await else {
        return;
    };
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
    let halves = [
        (cr, sw.clone(), &fault.up, seed),
        (sr, cw.clone(), &fault.down, seed.rotate_left(32)),
    ];
    for (r, w, dir, seed) in halves {
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.spawn(read_side(r, Shaper::new(dir, first, seed), start, tx));
        tasks.spawn(write_side(w, rx, start, end_tx.clone()));
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
) {
    let until = |at_ms: u64| tokio::time::sleep_until((start + Duration::from_millis(at_ms)).into());
    while let Some(item) = rx.recv().await {
        match item {
            Item::Act(Action::Send { at_ms, bytes }) => {
                until(at_ms).await;
                if w.lock().await.write_all(&bytes).await.is_err() {
                    let _ = end.send(End::Cut { reset: false }).await;
                    return;
                }
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
                let _ = end.send(End::Cut { reset: true }).await;
                return;
            }
            Item::Act(Action::Close { at_ms }) => {
                until(at_ms).await;
                let _ = end.send(End::Cut { reset: false }).await;
                return;
            }
            Item::Eof => {
                let _ = w.lock().await.shutdown().await;
                let _ = end.send(End::Eof).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fault::Direction;

    /// An echo server; returns its address.
    async fn echo() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn shaping_keeps_every_byte_and_the_latency_shows() {
        let fault = Fault {
            up: Direction {
                latency_ms: 50,
                slice_bytes: Some(3),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = start(&echo().await, &fault, 1).unwrap();
        let mut c = TcpStream::connect(&p.addr).await.unwrap();
        let t = Instant::now();
        c.write_all(b"hello, world").await.unwrap();
        let mut got = vec![0; 12];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello, world");
        assert!(t.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_server_on_a_unix_socket_is_reached_and_a_reset_still_reaches_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        reset_then_clean(&format!("unix:{}", path.display())).await;
    }

    #[tokio::test]
    async fn a_reset_reaches_the_client_as_rst_and_the_next_connection_is_clean() {
        reset_then_clean(&echo().await).await;
    }

    /// Through a proxy to the echo server at `target` that resets the first
    /// connection after 4 bytes down: the client gets those 4 bytes, then an
    /// RST; the next connection (not faulty) echoes everything.
    async fn reset_then_clean(target: &str) {
        let fault = Fault {
            down: Direction {
                reset_after_bytes: Some(4),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = start(target, &fault, 1).unwrap();
        let mut c = TcpStream::connect(&p.addr).await.unwrap();
        c.write_all(b"abcdefgh").await.unwrap();
        let mut got = Vec::new();
        let err = c.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(&got, b"abcd");
        let mut c = TcpStream::connect(&p.addr).await.unwrap();
        c.write_all(b"abcdefgh").await.unwrap();
        let mut got = vec![0; 8];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcdefgh");
    }

    #[tokio::test]
    async fn a_black_hole_keeps_the_socket_open_and_silent() {
        let fault = Fault {
            down: Direction {
                blackhole_after_bytes: Some(2),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = start(&echo().await, &fault, 1).unwrap();
        let mut c = TcpStream::connect(&p.addr).await.unwrap();
        c.write_all(b"abcd").await.unwrap();
        let mut got = vec![0; 2];
        c.read_exact(&mut got).await.unwrap();
        let mut more = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_millis(200), c.read(&mut more)).await;
        assert!(r.is_err(), "the black hole let something through: {r:?}");
    }

    /// A client of an echo server behind a proxy that closes after 3 bytes
    /// down, with "abcdef" sent (the proxy is returned to keep it running).
    async fn closing_after_three_bytes() -> (Proxy, TcpStream) {
        let fault = Fault {
            down: Direction {
                close_after_bytes: Some(3),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = start(&echo().await, &fault, 1).unwrap();
        let mut c = TcpStream::connect(&p.addr).await.unwrap();
        c.write_all(b"abcdef").await.unwrap();
        (p, c)
    }

    #[tokio::test]
    async fn a_close_ends_the_stream_cleanly() {
        let (_p, mut c) = closing_after_three_bytes().await;
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(&got, b"abc");
    }

    #[tokio::test]
    async fn a_close_stays_a_fin_when_the_client_sends_after_it() {
        let (_p, mut c) = closing_after_three_bytes().await;
        let mut got = [0u8; 3];
        c.read_exact(&mut got).await.unwrap();
        // What a gRPC client sends while a response arrives (WINDOW_UPDATE,
        // PING acks): a socket closed with it unread would answer with RST.
        for _ in 0..3 {
            c.write_all(b"more").await.expect("the proxy reads on after its FIN");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.expect("a FIN, not a reset");
        assert_eq!(rest, b"");
    }
}
