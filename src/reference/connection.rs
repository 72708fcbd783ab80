//! The connections the reference server serves: TCP streams a call can close
//! (the `close-on-big-headers` fault closes the whole connection, as some
//! stacks do, instead of refusing one call).
use super::frames::Scanner;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TlsConnectInfo};

/// An accepted connection, with a handle that can close it.
pub struct Conn {
    io: TcpStream,
    closer: Closer,
    /// The `punish-pings` fault: the client's frames, to count its PINGs.
    pings: Option<(Scanner, usize)>,
}

/// Closes one connection from inside a call (found in the call's extensions).
#[derive(Clone)]
pub struct Closer(Option<Arc<std::net::TcpStream>>);

impl Conn {
    pub fn new(io: TcpStream) -> Conn {
        // A duplicate of the socket: shutting it down ends the connection
        // for the server's HTTP/2 task too.
        let dup = std::os::fd::AsFd::as_fd(&io)
            .try_clone_to_owned()
            .ok()
            .map(|fd| Arc::new(std::net::TcpStream::from(fd)));
        Conn {
            io,
            closer: Closer(dup),
            pings: None,
        }
    }

    /// The connection closes at the client's third PING.
    pub fn punishing_pings(mut self) -> Conn {
        self.pings = Some((Scanner::from_client(), 0));
        self
    }
}

impl Closer {
    /// The closer of the connection a request came on (plaintext or TLS).
    pub fn of<B>(req: &http::Request<B>) -> Option<Closer> {
        let ext = req.extensions();
        ext.get::<Closer>()
            .or_else(|| ext.get::<TlsConnectInfo<Closer>>().map(TlsConnectInfo::get_ref))
            .cloned()
    }

    /// Shuts the connection down both ways (no GOAWAY: the peer sees it end).
    pub fn close(&self) {
        if let Some(s) = &self.0 {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Connected for Conn {
    type ConnectInfo = Closer;
    fn connect_info(&self) -> Closer {
        self.closer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some((scanner, pings)) = &mut this.pings {
            scanner.filter(&buf.filled()[before..], |f| {
                *pings += usize::from(f.is_ping());
                true
            });
            if *pings >= 3 {
                this.closer.close();
            }
        }
        r
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
