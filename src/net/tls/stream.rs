//! A TLS session as tokio's `AsyncRead` and `AsyncWrite`, for work that
//! owns a whole connection on the runtime (a file transfer).
//!
//! The session stays where it is (in the connection); the transfer gets
//! two halves that drive it with the same non-blocking steps the
//! connection's own reads and sends use, and wait for the socket through
//! tokio's reactor instead of `poll(2)`. A duplicate of the socket is what
//! tokio registers, so nothing changes for the connection once the
//! transfer ends: no session is handed over and back, and bytes rustls
//! decrypted ahead stay in the session for the next read either way.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, unix::AsyncFd};

use super::Session;

/// The reading half.
pub struct TlsReader<'a> {
    session: &'a Session,
    socket: Arc<AsyncFd<OwnedFd>>,
}

/// The writing half; shutting it down sends close_notify, then FIN.
pub struct TlsWriter<'a> {
    session: &'a Session,
    socket: Arc<AsyncFd<OwnedFd>>,
    closing: bool,
}

/// Both halves over `socket` (a non-blocking duplicate of the session's
/// socket). Must be called inside the runtime, which registers it.
pub fn split(session: &Session, socket: OwnedFd) -> io::Result<(TlsReader<'_>, TlsWriter<'_>)> {
    // SAFETY: the `AsyncFd` owns the `OwnedFd`, so the descriptor stays
    // open, and names the same socket, for as long as it is registered.
    let socket = Arc::new(unsafe { AsyncFd::register(socket) }?);
    Ok((
        TlsReader {
            session,
            socket: socket.clone(),
        },
        TlsWriter {
            session,
            socket,
            closing: false,
        },
    ))
}

impl AsyncRead for TlsReader<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // Decrypted bytes may already be waiting in the session, with
            // nothing new on the socket: try before waiting.
            let fd = this.socket.get_ref().as_fd();
            match this.session.read_step(fd, buf.initialize_unfilled()) {
                Ok(Some(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(None) => {}
                Err(fault) => return Poll::Ready(Err(fault.into_io())),
            }
            ready!(this.socket.poll_read_ready(cx))?.clear_ready();
        }
    }
}

impl TlsWriter<'_> {
    fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.session.flush_step(self.socket.get_ref().as_fd()) {
                Ok(true) => return Poll::Ready(Ok(())),
                Ok(false) => {}
                Err(fault) => return Poll::Ready(Err(fault.into_io())),
            }
            ready!(self.socket.poll_write_ready(cx))?.clear_ready();
        }
    }
}

impl AsyncWrite for TlsWriter<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.session.write_step(self.socket.get_ref().as_fd(), data) {
                // Taken, though maybe not all on the wire yet: the next
                // write, a flush or a shutdown sends the rest.
                Ok((n, _)) if n > 0 || data.is_empty() => return Poll::Ready(Ok(n)),
                Ok(_) => {}
                Err(fault) => return Poll::Ready(Err(fault.into_io())),
            }
            ready!(self.socket.poll_write_ready(cx))?.clear_ready();
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flushed(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.session.close_notify();
            this.closing = true;
        }
        ready!(this.poll_flushed(cx))?;
        let fd = this.socket.get_ref().as_raw_fd();
        Poll::Ready(
            nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Write).map_err(Into::into),
        )
    }
}
