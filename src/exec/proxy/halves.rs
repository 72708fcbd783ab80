//! The halves of a connection the proxy writes to, TCP or Unix: how each
//! resets, closes (draining what the peer still sends) and says what it has
//! not had acknowledged yet.
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// How long a close waits for the peer to close its side too.
const DRAIN_WITHIN: Duration = Duration::from_secs(5);

pub(super) type Read = Box<dyn AsyncRead + Unpin + Send>;
pub(super) type Write = Box<dyn WriteHalf>;

/// The half of a connection the proxy writes to.
pub(super) trait WriteHalf: AsyncWrite + Unpin + Send {
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
