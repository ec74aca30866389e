//! A connection lent to tokio for whole-connection work (a file transfer):
//! one reading and one writing half, whatever the connection runs over —
//! tokio's own halves of a TCP or Unix socket, or the TLS adapter over the
//! connection's session.

use std::{
    io,
    os::fd::AsFd,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, Interest, ReadBuf},
    net::{TcpStream, UnixStream, tcp, unix},
};

use super::stream::Stream;
use crate::net::tls::{
    Session,
    stream::{TlsReader, TlsWriter},
};

/// The reading half of a lent connection.
pub enum IoReader<'a> {
    Tcp(tcp::OwnedReadHalf),
    Unix(unix::OwnedReadHalf),
    Tls(TlsReader<'a>),
}

/// The writing half of a lent connection.
pub enum IoWriter<'a> {
    Tcp(tcp::OwnedWriteHalf),
    Unix(unix::OwnedWriteHalf),
    Tls(TlsWriter<'a>),
}

/// Both halves over a duplicate of `socket`, registered with tokio (so
/// call it inside the runtime).
pub fn lend<'a>(
    socket: &Stream,
    tls: Option<&'a Session>,
) -> io::Result<(IoReader<'a>, IoWriter<'a>)> {
    if let Some(session) = tls {
        let (read, write) =
            crate::net::tls::stream::split(session, socket.as_fd().try_clone_to_owned()?)?;
        return Ok((IoReader::Tls(read), IoWriter::Tls(write)));
    }
    Ok(match socket {
        Stream::Tcp(s) => {
            let (read, write) = TcpStream::from_std(s.try_clone()?)?.into_split();
            (IoReader::Tcp(read), IoWriter::Tcp(write))
        }
        Stream::Unix(s) => {
            let (read, write) = UnixStream::from_std(s.try_clone()?)?.into_split();
            (IoReader::Unix(read), IoWriter::Unix(write))
        }
    })
}

impl IoWriter<'_> {
    /// The plain socket under this half, for `sendfile(2)`; `None` on TLS,
    /// where every byte must pass through the session to be encrypted.
    pub fn zero_copy(&self) -> Option<ZeroCopy<'_>> {
        match self {
            IoWriter::Tcp(w) => Some(ZeroCopy::Tcp(w.as_ref())),
            IoWriter::Unix(w) => Some(ZeroCopy::Unix(w.as_ref())),
            IoWriter::Tls(_) => None,
        }
    }

    /// Lets go without shutting the socket's sending side down (tokio's
    /// halves would on drop): the connection goes on after the transfer.
    pub fn forget(self) {
        match self {
            IoWriter::Tcp(w) => w.forget(),
            IoWriter::Unix(w) => w.forget(),
            IoWriter::Tls(_) => {}
        }
    }
}

/// A plain socket that the kernel can be asked to write a file to.
#[derive(Clone, Copy)]
pub enum ZeroCopy<'a> {
    Tcp(&'a TcpStream),
    Unix(&'a UnixStream),
}

impl ZeroCopy<'_> {
    pub async fn writable(&self) -> io::Result<()> {
        match self {
            ZeroCopy::Tcp(s) => s.writable().await,
            ZeroCopy::Unix(s) => s.writable().await,
        }
    }

    /// Runs a write syscall, clearing tokio's readiness when it would block.
    pub fn try_write<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            ZeroCopy::Tcp(s) => s.try_io(Interest::WRITABLE, f),
            ZeroCopy::Unix(s) => s.try_io(Interest::WRITABLE, f),
        }
    }
}

impl AsFd for ZeroCopy<'_> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            ZeroCopy::Tcp(s) => s.as_fd(),
            ZeroCopy::Unix(s) => s.as_fd(),
        }
    }
}

impl AsyncRead for IoReader<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            IoReader::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            IoReader::Unix(r) => Pin::new(r).poll_read(cx, buf),
            IoReader::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for IoWriter<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            IoWriter::Tcp(w) => Pin::new(w).poll_write(cx, data),
            IoWriter::Unix(w) => Pin::new(w).poll_write(cx, data),
            IoWriter::Tls(w) => Pin::new(w).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            IoWriter::Tcp(w) => Pin::new(w).poll_flush(cx),
            IoWriter::Unix(w) => Pin::new(w).poll_flush(cx),
            IoWriter::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            IoWriter::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            IoWriter::Unix(w) => Pin::new(w).poll_shutdown(cx),
            IoWriter::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
