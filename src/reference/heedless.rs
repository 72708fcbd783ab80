//! A connection that misses a reset arriving behind bytes it had not read
//! yet (the reference client's `reset-behind-unread-missed` fault): when
//! the read that drains those bytes is followed, with no wait between, by
//! the reset, the connection goes quiet instead of failing. Reads never
//! end and writes vanish, so its calls (and the channel's next ones) wait
//! for their deadlines, as a stack that loses the error does.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct Heedless<T> {
    io: T,
    /// The fault is on (else every error passes).
    on: bool,
    /// The last read brought bytes, and no read has waited since.
    draining: bool,
    /// The reset was missed: nothing comes or goes any more.
    deaf: bool,
}

impl<T> Heedless<T> {
    pub fn new(io: T, on: bool) -> Heedless<T> {
        Heedless {
            io,
            on,
            draining: false,
            deaf: false,
        }
    }

    /// Whether `e` is the reset to miss (then the connection goes deaf).
    fn misses(&mut self, e: &io::Error) -> bool {
        let reset = matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe);
        self.deaf = self.on && reset && self.draining;
        self.deaf
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Heedless<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.deaf {
            return Poll::Pending;
        }
        let before = out.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, out) {
            Poll::Pending => {
                self.draining = false;
                Poll::Pending
            }
            Poll::Ready(Ok(())) => {
                self.draining = out.filled().len() > before;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) if self.misses(&e) => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Heedless<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.deaf {
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Ready(Err(e)) if self.misses(&e) => Poll::Ready(Ok(buf.len())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.deaf {
            true => Poll::Ready(Ok(())),
            false => Pin::new(&mut self.io).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.deaf {
            true => Poll::Ready(Ok(())),
            false => Pin::new(&mut self.io).poll_shutdown(cx),
        }
    }
}
