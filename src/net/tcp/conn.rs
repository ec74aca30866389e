//! An open connection as a script uses it: reads that return lines, text
//! or bytes, sends, half-close and close, from any thread. One type for
//! TCP and Unix-domain sockets, plain or TLS.
//!
//! A [`Conn`] is shared (`Clone` is an `Arc`), because Rhai copies values and
//! a script hands connections to tasks. Its read and write halves have
//! separate locks, so one thread can block in `recv()` while another sends.
//!
//! Reads and sends run on the calling (Rhai) thread: a non-blocking syscall
//! first, and when the socket is not ready, `poll(2)` on it and on the
//! thread's cancellation eventfd ([`runtime::wait_fd`]). That is one thread
//! wake-up per message, as in a thread-per-connection server, and still
//! obeys Ctrl-C, `.stop()`, timeouts and `close()` from another thread
//! (which shuts the socket down, waking any blocked poll). The socket is not
//! registered with tokio meanwhile: tokio's reactor would wake on every
//! message for nothing, and that second wake-up halved a server's rate.
//! A closure server's own thread goes one step further: it reads its
//! connection with plain blocking `recv`s, with no `poll` before them, as
//! the thread-per-connection baseline does ([`Conn::own_reads`]). The
//! server wakes such a read by shutting the reading side down when it
//! stops ([`Conn::wake_owner`]).
//! Whole-connection work (a file transfer) takes both halves with
//! [`Conn::lock_io`], which lends tokio a duplicate of the socket for as
//! long as it runs.
//!
//! Reads are built on one primitive, `fill`: bytes move from the socket into
//! the read side's `pending` bytes, and each read takes what it returns out
//! of `pending`. A read that times out or is interrupted halfway (a line
//! without its newline yet) leaves what it gathered in `pending`, so the next
//! read sees it: a timeout never loses data.
//!
//! A TLS connection keeps its rustls session beside the socket
//! ([`tls::Session`]). Its reads and sends take the same path with a step
//! of the session in place of the syscall: the step moves what it can
//! without blocking and says what it waits for, and the wait is the same
//! `wait_fd`. A plain connection checks one `Option` and goes on as before.
//!
//! This file holds the connection, its sends and its close; `conn/read.rs`
//! its reads, `conn/lend.rs` the loan to tokio ([`Conn::lock_io`]),
//! `conn/handshake.rs` the TLS handshake (on the calling thread, or on the
//! runtime for a server that goes on accepting meanwhile).

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::ThreadId,
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    poll::PollFlags,
    sys::socket::{MsgFlags, Shutdown},
};

use tokio::sync::{Mutex, MutexGuard};

use super::stream::{Endpoint, Stream};
use crate::error::{Error, Result};
use crate::net::tls::{self, Fault, Session, Wait};
use crate::runtime::{self, CancellationToken, Ready};

mod handshake;
mod lend;
mod read;

pub use lend::{ConnIo, PendingThenSocket};

/// An open connection (TCP or Unix-domain, plain or TLS).
#[derive(Clone)]
pub struct Conn(Arc<ConnState>);

struct ReadSide {
    socket: Socket,
    /// Bytes already taken off the socket but not yet returned to the script
    /// (the rest of a chunk after a line, or a read cut short by a timeout).
    pending: Vec<u8>,
}

/// The socket, shared by the two halves (and `info()`): it closes when the
/// last of them lets go, never while a read or send waits on it.
type Socket = Arc<Stream>;

struct ConnState {
    local: Endpoint,
    peer: Endpoint,
    /// The TLS session of a TLS connection.
    tls: Option<Session>,
    /// The socket for reading, and what was read ahead; `None` once closed.
    reader: Mutex<Option<ReadSide>>,
    /// The socket for sending; `None` once closed or after `shutdown()`.
    writer: Mutex<Option<Socket>>,
    /// Timeout in milliseconds for reads, and for sends that cannot make
    /// progress; 0 means wait forever (Ctrl-C still works).
    timeout_ms: AtomicU64,
    /// Set by `close()`: checked on every read and send.
    is_closed: AtomicBool,
    /// Cancelled by `close()`, for waits on tokio (a transfer, a lock).
    closed: CancellationToken,
    /// Set by `shutdown()`: sending is over, reading goes on.
    shut_down: AtomicBool,
    /// The socket for `info()` and for `close()` to shut it down, without
    /// waiting for a read or send in progress. Dropped by `close()`.
    socket: std::sync::Mutex<Option<Socket>>,
    /// The one thread that reads with blocking `recv`s, once set by
    /// [`Conn::own_reads`]; the socket is then in blocking mode.
    owner: OnceLock<ThreadId>,
}

impl Conn {
    /// A plain connection over a TCP socket tokio accepted or connected; it
    /// leaves tokio's reactor here.
    pub fn new(stream: tokio::net::TcpStream) -> Result<Conn> {
        let stream = stream
            .into_std()
            .map_err(|e| Error::io("taking over the socket", None, e))?;
        let _ = stream.set_nodelay(true);
        Conn::over(Stream::Tcp(stream), None)
    }

    /// A connection over a connected socket, with a TLS session to drive
    /// over it (see [`Conn::handshake`]) or none.
    pub fn over(stream: Stream, tls: Option<Session>) -> Result<Conn> {
        let (local, peer) = stream.endpoints()?;
        // Reads and sends never block in a syscall (they poll first) until
        // a thread takes the reads over with `own_reads`; a transfer's
        // tokio copy needs the mode too.
        stream
            .set_nonblocking(true)
            .map_err(|e| Error::io("setting up the socket", None, e))?;
        let socket = Arc::new(stream);
        Ok(Conn(Arc::new(ConnState {
            local,
            peer,
            tls,
            reader: Mutex::new(Some(ReadSide {
                socket: socket.clone(),
                pending: Vec::new(),
            })),
            writer: Mutex::new(Some(socket.clone())),
            timeout_ms: AtomicU64::new(0),
            is_closed: AtomicBool::new(false),
            closed: CancellationToken::new(),
            shut_down: AtomicBool::new(false),
            socket: std::sync::Mutex::new(Some(socket)),
            owner: OnceLock::new(),
        })))
    }

    /// The TLS session of a TLS connection.
    pub fn tls(&self) -> Option<&Session> {
        self.0.tls.as_ref()
    }

    /// The socket, while the connection is open.
    fn socket(&self) -> Result<Socket> {
        let guard = self
            .0
            .socket
            .lock()
            .map_err(|_| Error::invalid("the connection's state is unavailable"))?;
        guard.clone().ok_or_else(|| self.closed_error())
    }

    pub fn local(&self) -> &Endpoint {
        &self.0.local
    }

    pub fn peer(&self) -> &Endpoint {
        &self.0.peer
    }

    /// The timeout of reads (and of sends that cannot progress), if set.
    pub fn timeout(&self) -> Option<Duration> {
        match self.0.timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub fn set_timeout(&self, timeout: Option<Duration>) {
        let ms = timeout.map_or(0, |d| d.as_millis().clamp(1, u64::MAX as u128) as u64);
        self.0.timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// The error for using a closed connection.
    pub fn closed_error(&self) -> Error {
        Error::Closed(format!("the connection to {} is closed", self.0.peer))
    }

    /// Has `close()` been called?
    pub fn is_closed(&self) -> bool {
        self.0.is_closed.load(Ordering::Relaxed)
    }

    /// Runs `f` with the socket's descriptor (for `info()`), or fails when
    /// the connection is closed.
    pub fn with_socket<T>(&self, f: impl FnOnce(BorrowedFd<'_>) -> Result<T>) -> Result<T> {
        f(self.socket()?.as_fd())
    }
}

impl Conn {
    /// Locks one half: at once when it is free (the usual case), else waits
    /// for the other reader or sender, as long as the read itself would.
    fn lock_half<'a, T>(
        &self,
        half: &'a Mutex<Option<T>>,
        deadline: Option<Instant>,
        waited: impl FnOnce() -> Error,
    ) -> Result<MutexGuard<'a, Option<T>>> {
        if let Ok(guard) = half.try_lock() {
            return Ok(guard);
        }
        runtime::block_on(async {
            let lock = async { Ok(half.lock().await) };
            let lock = async {
                match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline.into(), lock)
                        .await
                        .unwrap_or_else(|_| Err(waited())),
                    None => lock.await,
                }
            };
            tokio::select! {
                biased;
                _ = self.0.closed.cancelled() => Err(self.closed_error()),
                guard = lock => guard,
            }
        })
    }

    /// Sends all of `data`; returns how many bytes that was. The
    /// connection's timeout counts from the last progress: a peer that reads
    /// slowly is fine, one that stops reading is not.
    pub fn send(&self, data: &[u8]) -> Result<usize> {
        let peer = &self.0.peer;
        let timeout = self.timeout();
        let stuck = |sent: usize| Error::Timeout {
            what: format!(
                "sending to {peer}: it is not reading ({sent} of {} bytes sent; the connection is still open)",
                data.len()
            ),
            after: timeout.unwrap_or_default(),
        };
        if self.is_closed() {
            return Err(self.closed_error());
        }
        // The writer lock is held until every byte is out, so two threads
        // sending on one connection never interleave their data.
        let deadline = timeout.map(|t| Instant::now() + t);
        let guard = self.lock_half(&self.0.writer, deadline, || stuck(0))?;
        let socket = guard.as_ref().ok_or_else(|| self.cannot_send_error())?;
        let fd = socket.as_fd();
        let mut sent = 0;
        let mut deadline = deadline;
        loop {
            // A TLS session takes what it can encrypt and writes what the
            // socket takes; a plain socket is written directly.
            let (taken, blocked) = match &self.0.tls {
                Some(tls) => tls
                    .write_step(fd, &data[sent..])
                    .map_err(|fault| match fault {
                        Fault::Io(e) => self.send_failed(e),
                        Fault::Tls(e) => {
                            Error::Protocol(format!("sending to {peer}: {}", tls::words(&e)))
                        }
                        Fault::Eof => self.send_failed(io::ErrorKind::BrokenPipe.into()),
                    })?,
                None if sent == data.len() => (0, false),
                None => {
                    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
                    match nix::sys::socket::send(fd.as_raw_fd(), &data[sent..], flags) {
                        Ok(n) => (n, false),
                        Err(Errno::EAGAIN) => (0, true),
                        Err(Errno::EINTR) => continue,
                        Err(e) => return Err(self.send_failed(e.into())),
                    }
                }
            };
            if taken > 0 {
                sent += taken;
                deadline = timeout.map(|t| Instant::now() + t);
            }
            if !blocked {
                if sent == data.len() {
                    return Ok(sent);
                }
                continue;
            }
            if runtime::wait_fd(fd, PollFlags::POLLOUT, deadline)? == Ready::TimedOut {
                return Err(stuck(sent));
            }
            if self.is_closed() {
                return Err(self.closed_error());
            }
        }
    }

    /// Why a send failed, from the socket's error.
    fn send_failed(&self, e: io::Error) -> Error {
        let peer = &self.0.peer;
        if self.is_closed() {
            return self.closed_error();
        }
        match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
            // The usual cause: the peer closed its socket, so the kernel
            // answered our earlier bytes with RST. Say so.
            Errno::EPIPE | Errno::ECONNRESET => {
                Error::Reset(format!("{peer} (the peer has closed the connection)"))
            }
            _ => Error::io(format!("sending to {peer}"), peer.ip(), e),
        }
    }

    /// Half-close: sends FIN (after close_notify on TLS), so the peer reads
    /// end of stream, while this side can still read the peer's reply.
    /// Doing it twice is harmless.
    pub fn shutdown(&self) -> Result<()> {
        let peer = &self.0.peer;
        let guard = self.lock_half(&self.0.writer, None, || self.closed_error());
        let mut guard = guard?;
        if self.0.shut_down.load(Ordering::Relaxed) {
            return Ok(());
        }
        let socket = guard.as_ref().ok_or_else(|| self.closed_error())?;
        if let Some(tls) = &self.0.tls {
            // close_notify must reach the socket before FIN, and may have
            // to wait for room there, as a send does.
            tls.close_notify();
            let deadline = self.timeout().map(|t| Instant::now() + t);
            while !tls
                .flush_step(socket.as_fd())
                .map_err(|f| self.send_failed(f.into_io()))?
            {
                if runtime::wait_fd(socket.as_fd(), PollFlags::POLLOUT, deadline)?
                    == Ready::TimedOut
                {
                    return Err(Error::Timeout {
                        what: format!("sending close_notify to {peer}: it is not reading"),
                        after: self.timeout().unwrap_or_default(),
                    });
                }
            }
        }
        let socket = guard.take().ok_or_else(|| self.closed_error())?;
        self.0.shut_down.store(true, Ordering::Relaxed);
        nix::sys::socket::shutdown(socket.as_raw_fd(), Shutdown::Write).map_err(|e| {
            Error::io(
                format!("shutting down the connection to {peer}"),
                peer.ip(),
                e.into(),
            )
        })
    }

    /// Closes both directions: the FIN leaves at once, and a read or send
    /// blocked in another thread returns with a "closed" error. Closing twice
    /// is harmless. A TLS connection sends close_notify first when that can
    /// be done without waiting.
    pub fn close(&self) {
        self.end(true);
    }

    /// Ends the connection with a reset (RST) rather than a FIN: the peer
    /// sees the stream broken, not finished. A raw upload that fails
    /// part-way ends so, since for a raw receiver a FIN means "that was the
    /// whole file". Reads and sends on it then fail as closed.
    pub fn abort(&self) {
        if let Ok(socket) = self.0.socket.lock()
            && let Some(socket) = socket.as_ref()
        {
            // SO_LINGER 0: the last close of the socket sends RST.
            let _ = socket2::SockRef::from(&**socket).set_linger(Some(Duration::ZERO));
        }
        // No shutdown first: that would send the FIN this is here to avoid.
        self.end(false);
    }

    /// Marks the connection closed and lets go of its socket; `shut` first
    /// shuts it down both ways, which also wakes every poll on it.
    fn end(&self, shut: bool) {
        let state = self.0.clone();
        state.is_closed.store(true, Ordering::Relaxed);
        state.closed.cancel();
        if let Ok(mut socket) = state.socket.lock()
            && let Some(socket) = socket.take()
            && shut
        {
            if let Some(tls) = &state.tls {
                tls.try_close_notify(socket.as_fd());
            }
            // Wakes every poll on this socket, in any thread.
            let _ = nix::sys::socket::shutdown(socket.as_raw_fd(), Shutdown::Both);
        }
        // The usual case: nobody holds a half, so the socket is released
        // right here.
        let reader_free = state.reader.try_lock().map(|mut r| r.take()).is_ok();
        let writer_free = state.writer.try_lock().map(|mut w| w.take()).is_ok();
        if !(reader_free && writer_free) {
            // A read or send elsewhere is letting go after the shutdown
            // above; release the socket as soon as it has.
            runtime::handle().spawn(async move {
                state.reader.lock().await.take();
                state.writer.lock().await.take();
            });
        }
    }

    /// Resolves when `close()` is called, so whole-connection work (a file
    /// transfer) can stop as a blocked read would.
    pub async fn until_closed(&self) {
        self.0.closed.cancelled().await;
    }

    /// Why a send cannot happen: shut down by us, or closed.
    fn cannot_send_error(&self) -> Error {
        if self.0.shut_down.load(Ordering::Relaxed) && !self.is_closed() {
            Error::Closed(format!(
                "cannot send to {}: this side was shut down with shutdown() (reading still works)",
                self.0.peer
            ))
        } else {
            self.closed_error()
        }
    }
}

/// What `poll(2)` waits for, for a TLS step that waits.
fn poll_flags(wait: Wait) -> PollFlags {
    match wait {
        Wait::Readable => PollFlags::POLLIN,
        Wait::Writable => PollFlags::POLLOUT,
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({} → {})", self.0.local, self.0.peer)
    }
}
