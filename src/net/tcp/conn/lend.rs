//! A connection lent whole to tokio for an exchange that owns it (a file
//! transfer): both halves locked, bytes read ahead handed over first, and
//! the socket given back, not closed, when the exchange ends.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::MutexGuard;

use super::{Conn, ReadSide, Socket};
use crate::error::{Error, Result};
use crate::net::tcp::io::{IoReader, IoWriter};

impl Conn {
    /// Locks both halves for an exchange that owns the whole connection (a
    /// file transfer), taking any bytes an earlier read fetched ahead. The
    /// exchange runs on tokio, over a duplicate of the socket that tokio
    /// lets go of when the exchange ends (on TLS, through the connection's
    /// own session: see `tls::stream`). Call it inside the runtime.
    ///
    /// A socket in blocking mode for its owner's reads is switched to
    /// non-blocking for the loan, which tokio needs, and back after it.
    pub async fn lock_io(&self) -> Result<ConnIo<'_>> {
        let mut reader = self.0.reader.lock().await;
        let writer = self.0.writer.lock().await;
        let (Some(side), Some(_)) = (reader.as_mut(), writer.as_ref()) else {
            return Err(self.closed_error());
        };
        let lending = |e| Error::io("lending the socket to the transfer", None, e);
        // tokio needs the socket non-blocking; an owner's blocking mode
        // comes back when the loan ends.
        let blocking = self.0.owner.get().is_some();
        if blocking {
            side.socket.set_nonblocking(true).map_err(lending)?;
        }
        let (read, write) = match crate::net::tcp::io::lend(&side.socket, self.0.tls.as_ref()) {
            Ok(halves) => halves,
            Err(e) => {
                if blocking {
                    let _ = side.socket.set_nonblocking(false);
                }
                return Err(lending(e));
            }
        };
        let pending = std::mem::take(&mut side.pending);
        Ok(ConnIo {
            reader,
            writer,
            read,
            write: Some(write),
            pending,
            shut_down: &self.0.shut_down,
            blocking,
        })
    }
}

/// A connection's reading side: bytes read ahead earlier, then the socket.
pub type PendingThenSocket<'a, 'c> = tokio::io::Chain<&'a [u8], &'a mut IoReader<'c>>;

/// Both halves of a connection, locked by [`Conn::lock_io`], and the
/// socket's tokio copy.
pub struct ConnIo<'a> {
    reader: MutexGuard<'a, Option<ReadSide>>,
    writer: MutexGuard<'a, Option<Socket>>,
    read: IoReader<'a>,
    /// `None` once [`ConnIo::close_writer`] dropped it.
    write: Option<IoWriter<'a>>,
    /// Read ahead by an earlier `recv_line()`: the first bytes of this exchange.
    pending: Vec<u8>,
    /// The connection's half-closed flag, so later sends say "shut down".
    shut_down: &'a AtomicBool,
    /// The socket was in blocking mode before the loan ([`Conn::own_reads`]).
    blocking: bool,
}

impl<'a> ConnIo<'a> {
    /// The reading side (pending bytes first) and the writing side, or the
    /// closed error once the writer was dropped by [`ConnIo::close_writer`].
    pub fn halves(
        &mut self,
        conn: &Conn,
    ) -> Result<(PendingThenSocket<'_, 'a>, &mut IoWriter<'a>)> {
        let Some(writer) = self.write.as_mut() else {
            return Err(conn.closed_error());
        };
        let reader = tokio::io::AsyncReadExt::chain(self.pending.as_slice(), &mut self.read);
        Ok((reader, writer))
    }

    /// The bytes an earlier read fetched ahead, taken out (a relay sends
    /// them on before it hands the socket itself to the kernel).
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Drops the write half, which sends FIN (tokio shuts the socket's
    /// sending side down; a TLS writer was shut down by its user, which
    /// sent close_notify and FIN); later sends on the connection say so.
    pub fn close_writer(&mut self) {
        self.write.take();
        self.writer.take();
        self.shut_down.store(true, Ordering::Relaxed);
    }
}

impl Drop for ConnIo<'_> {
    /// Gives the socket back: dropping tokio's write half would shut the
    /// connection's sending side down, so it is forgotten instead (closing
    /// only tokio's duplicate of the descriptor).
    fn drop(&mut self) {
        if let Some(write) = self.write.take() {
            write.forget();
        }
        if self.blocking
            && let Some(side) = self.reader.as_ref()
        {
            // On failure the owner's reads find EAGAIN and poll instead.
            let _ = side.socket.set_nonblocking(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use nix::fcntl::{FcntlArg, OFlag, fcntl};

    use super::*;
    use crate::net::tcp::Stream;

    fn is_nonblocking(conn: &Conn) -> bool {
        conn.with_socket(|fd| {
            let flags =
                fcntl(fd, FcntlArg::F_GETFL).map_err(|e| Error::io("F_GETFL", None, e.into()))?;
            Ok(OFlag::from_bits_truncate(flags).contains(OFlag::O_NONBLOCK))
        })
        .expect("the connection is open")
    }

    /// An owner's socket blocks; a loan to tokio (which needs it
    /// non-blocking) switches it for the loan's length and back after.
    #[test]
    fn a_loan_makes_an_owned_socket_nonblocking_for_its_length() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        let _client = TcpStream::connect(listener.local_addr().expect("its address"))
            .expect("connect on loopback");
        let (accepted, _) = listener.accept().expect("accept");
        let conn = Conn::over(Stream::Tcp(accepted), None).expect("a connection");
        assert!(is_nonblocking(&conn), "a new connection never blocks");
        conn.own_reads().expect("own the reads");
        assert!(!is_nonblocking(&conn), "the owner's reads block");
        let during = crate::runtime::block_on(async {
            let io = conn.lock_io().await?;
            let during = is_nonblocking(&conn);
            drop(io);
            Ok(during)
        })
        .expect("the loan");
        assert!(during, "tokio got a blocking socket");
        assert!(
            !is_nonblocking(&conn),
            "the loan did not give blocking mode back"
        );
    }
}
