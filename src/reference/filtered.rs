//! A connection whose HTTP/2 frames pass a filter both ways (`frames`): the
//! peers count the PINGs they receive through it, and the reference client's
//! frame faults drop frames through it. It sees plaintext only, so it sits
//! above TLS (the peers) or works on plaintext connections (the client).
use super::frames::{Frame, Scanner};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Which way a frame travels, seen from the side that owns the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    In,
    Out,
}

/// Decides per frame header whether the frame passes.
pub type Rule = Box<dyn FnMut(Way, &Frame) -> bool + Send + Sync>;

pub struct Filtered<T> {
    io: T,
    rule: Rule,
    incoming: Scanner,
    outgoing: Scanner,
    /// Filtered incoming bytes not yet read.
    read_buf: Vec<u8>,
    /// Filtered outgoing bytes not yet written.
    write_buf: Vec<u8>,
}

impl<T> Filtered<T> {
    /// `client`: this side is the HTTP/2 client (it sends the preface).
    pub fn new(io: T, client: bool, rule: Rule) -> Filtered<T> {
        let (incoming, outgoing) = if client {
            (Scanner::from_server(), Scanner::from_client())
        } else {
            (Scanner::from_client(), Scanner::from_server())
        };
        Filtered {
            io,
            rule,
            incoming,
            outgoing,
            read_buf: Vec::new(),
            write_buf: Vec::new(),
        }
    }
}

impl<T: AsyncWrite + Unpin> Filtered<T> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.write_buf.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write_buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_buf.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Filtered<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.read_buf.is_empty() {
            let mut raw = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut raw);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            let rule = &mut this.rule;
            this.read_buf = this.incoming.filter(rb.filled(), |f| rule(Way::In, f));
        }
        let n = this.read_buf.len().min(out.remaining());
        out.put_slice(&this.read_buf[..n]);
        this.read_buf.drain(..n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Filtered<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        let rule = &mut this.rule;
        this.write_buf = this.outgoing.filter(buf, |f| rule(Way::Out, f));
        // Taken: what is left goes out on the next write or flush.
        let _ = this.drain(cx)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
