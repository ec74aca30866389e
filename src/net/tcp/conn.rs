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

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    poll::PollFlags,
    sys::socket::{MsgFlags, Shutdown},
};

use tokio::sync::{Mutex, MutexGuard};

use super::io::{IoReader, IoWriter};
use super::stream::{Endpoint, Stream};
use crate::error::{Error, Result};
use crate::limits::{MAX_LINE, MAX_STRING_BYTES};
use crate::net::tls::{self, Fault, Session, Wait};
use crate::runtime::{self, CancellationToken, Ready};

/// How much one read syscall may take off the socket.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// Where a read lands before it joins the connection's pending bytes:
    /// one buffer per thread, not zeroed again for every read.
    static CHUNK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_CHUNK]);
}

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
        // Reads and sends never block in a syscall (they poll first); a
        // transfer's tokio copy needs the mode too.
        let nonblocking = match &stream {
            Stream::Tcp(s) => s.set_nonblocking(true),
            Stream::Unix(s) => s.set_nonblocking(true),
        };
        nonblocking.map_err(|e| Error::io("setting up the socket", None, e))?;
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
        })))
    }

    /// Runs the TLS handshake (nothing for a plain connection) on this
    /// thread, within `timeout`, under Ctrl-C: certificate errors surface
    /// here, in `connect` and `accept`.
    pub fn handshake(&self, timeout: Duration) -> Result<()> {
        let Some(tls) = &self.0.tls else {
            return Ok(());
        };
        let socket = self.socket()?;
        let fd = socket.as_fd();
        let deadline = Instant::now() + timeout;
        let peer = &self.0.peer;
        loop {
            let wait = match tls.handshake_step(fd) {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => wait,
                Err(Fault::Tls(e)) => {
                    return Err(Error::Protocol(format!(
                        "TLS handshake with {peer} failed: {}",
                        tls::words(&e)
                    )));
                }
                Err(Fault::Eof) => {
                    return Err(Error::Protocol(format!(
                        "TLS handshake with {peer} failed: it closed the connection (it does not speak TLS, or refused our hello)"
                    )));
                }
                Err(Fault::Io(e)) => {
                    return Err(Error::io(
                        format!("TLS handshake with {peer}"),
                        peer.ip(),
                        e,
                    ));
                }
            };
            if runtime::wait_fd(fd, poll_flags(wait), Some(deadline))? == Ready::TimedOut {
                return Err(Error::Timeout {
                    what: format!(
                        "the TLS handshake with {peer} (does it speak TLS on this port?)"
                    ),
                    after: timeout,
                });
            }
        }
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

/// What a read wants from the byte stream; see [`gather`].
enum Want<'a> {
    /// Whatever arrives next, cut at a UTF-8 character boundary (`recv`).
    Text,
    /// Everything up to `delim`, which is consumed but not returned.
    Until(&'a [u8]),
    /// `n` bytes, or fewer at end of stream.
    Exactly(usize),
    /// Everything until the peer closes its side.
    All,
    /// Whatever bytes are there or arrive next, at least one.
    Some,
}

impl Conn {
    /// Takes bytes off the connection as `want` says, within `timeout`
    /// (`None`: as long as it takes), under Ctrl-C and `close()`. `None`
    /// means end of stream with nothing left to return.
    fn take(&self, want: Want<'_>, timeout: Option<Duration>) -> Result<Option<Vec<u8>>> {
        runtime::ensure_may_block()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let waited = || Error::Timeout {
            what: format!(
                "waiting for data from {} (the connection is still open)",
                self.0.peer
            ),
            after: timeout.unwrap_or_default(),
        };
        let mut guard = self.lock_half(&self.0.reader, deadline, waited)?;
        let side = guard.as_mut().ok_or_else(|| self.closed_error())?;
        let fd = side.socket.as_fd();
        gather(&mut side.pending, &want, &self.0.peer, |acc| {
            self.fill(fd, acc, deadline, waited)
        })
    }

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

    /// Moves the next chunk from the socket into `acc`; 0 means end of stream.
    ///
    /// It waits first and reads second: when data is already there the wait
    /// returns at once, and when it is not, this saves a read that would
    /// only say so (a syscall per message, in a ping-pong).
    fn fill(
        &self,
        fd: BorrowedFd<'_>,
        acc: &mut Vec<u8>,
        deadline: Option<Instant>,
        waited: impl Fn() -> Error,
    ) -> Result<usize> {
        if let Some(tls) = &self.0.tls {
            return self.fill_tls(tls, fd, acc, deadline, waited);
        }
        let peer = &self.0.peer;
        loop {
            if self.is_closed() {
                return Err(self.closed_error());
            }
            if runtime::wait_fd(fd, PollFlags::POLLIN, deadline)? == Ready::TimedOut {
                return Err(waited());
            }
            let received = CHUNK.with_borrow_mut(|chunk| {
                let n = nix::sys::socket::recv(fd.as_raw_fd(), chunk, MsgFlags::MSG_DONTWAIT)?;
                acc.extend_from_slice(&chunk[..n]);
                Ok(n)
            });
            match received {
                // `close()` elsewhere shuts the socket down: that reads as
                // end of stream, but it is a close.
                Ok(0) if self.is_closed() => return Err(self.closed_error()),
                Ok(n) => return Ok(n),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => {
                    return Err(Error::io(
                        format!("receiving from {peer}"),
                        peer.ip(),
                        e.into(),
                    ));
                }
            }
        }
    }

    /// `fill` for a TLS connection: decrypted bytes first (the session
    /// may hold some already), then a wait for the socket when it needs
    /// more.
    fn fill_tls(
        &self,
        tls: &Session,
        fd: BorrowedFd<'_>,
        acc: &mut Vec<u8>,
        deadline: Option<Instant>,
        waited: impl Fn() -> Error,
    ) -> Result<usize> {
        let peer = &self.0.peer;
        loop {
            if self.is_closed() {
                return Err(self.closed_error());
            }
            let step = CHUNK.with_borrow_mut(|chunk| {
                let step = tls.read_step(fd, chunk);
                if let Ok(Some(n)) = step {
                    acc.extend_from_slice(&chunk[..n]);
                }
                step
            });
            match step {
                Ok(Some(0)) if self.is_closed() => return Err(self.closed_error()),
                Ok(Some(n)) => return Ok(n),
                Ok(None) => {}
                Err(_) if self.is_closed() => return Err(self.closed_error()),
                Err(Fault::Tls(e)) => {
                    return Err(Error::Protocol(format!(
                        "receiving from {peer}: {}",
                        tls::words(&e)
                    )));
                }
                Err(Fault::Io(e)) => {
                    return Err(Error::io(format!("receiving from {peer}"), peer.ip(), e));
                }
                Err(Fault::Eof) => return Ok(0),
            }
            if runtime::wait_fd(fd, PollFlags::POLLIN, deadline)? == Ready::TimedOut {
                return Err(waited());
            }
        }
    }

    /// Reads text: the bytes `want` selects, which must be UTF-8.
    fn take_text(&self, want: Want<'_>, timeout: Option<Duration>) -> Result<Option<String>> {
        match self.take(want, timeout)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| not_text(&self.0.peer)),
        }
    }

    /// Whatever arrives next as text; `""` at end of stream.
    pub fn recv(&self) -> Result<String> {
        self.recv_within(self.timeout())
    }

    /// [`Conn::recv`] waiting at most `timeout` (`None`: no limit).
    pub fn recv_within(&self, timeout: Option<Duration>) -> Result<String> {
        Ok(self.take_text(Want::Text, timeout)?.unwrap_or_default())
    }

    /// The text before `delim` (which is consumed); what is left at end of
    /// stream if the delimiter never comes; `None` at end of stream.
    pub fn recv_until(&self, delim: &str) -> Result<Option<String>> {
        self.recv_until_within(delim, self.timeout())
    }

    /// [`Conn::recv_until`] waiting at most `timeout` (`None`: no limit).
    pub fn recv_until_within(
        &self,
        delim: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<String>> {
        if delim.is_empty() {
            return Err(Error::invalid("the delimiter is empty"));
        }
        self.take_text(Want::Until(delim.as_bytes()), timeout)
    }

    /// One line without its `\n` (or `\r\n`); `None` at end of stream.
    pub fn recv_line(&self) -> Result<Option<String>> {
        self.recv_line_within(self.timeout())
    }

    /// [`Conn::recv_line`] waiting at most `timeout` (`None`: no limit).
    pub fn recv_line_within(&self, timeout: Option<Duration>) -> Result<Option<String>> {
        let line = self.recv_until_within("\n", timeout)?;
        Ok(line.map(|mut l| {
            if l.ends_with('\r') {
                l.pop();
            }
            l
        }))
    }

    /// Exactly `n` bytes, or fewer if the peer closes first.
    pub fn read(&self, n: usize) -> Result<Vec<u8>> {
        self.read_within(n, self.timeout())
    }

    /// [`Conn::read`] waiting at most `timeout` (`None`: no limit).
    pub fn read_within(&self, n: usize, timeout: Option<Duration>) -> Result<Vec<u8>> {
        Ok(self.take(Want::Exactly(n), timeout)?.unwrap_or_default())
    }

    /// Every byte until the peer closes its side.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        self.read_all_within(self.timeout())
    }

    /// [`Conn::read_all`] waiting at most `timeout` (`None`: no limit)
    /// between two chunks.
    pub fn read_all_within(&self, timeout: Option<Duration>) -> Result<Vec<u8>> {
        Ok(self.take(Want::All, timeout)?.unwrap_or_default())
    }

    /// Whatever bytes arrive next (at least one), text or not; empty at end
    /// of stream. For relaying a connection as it comes (`interact`).
    pub fn read_some(&self, timeout: Option<Duration>) -> Result<Vec<u8>> {
        Ok(self.take(Want::Some, timeout)?.unwrap_or_default())
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
        let state = self.0.clone();
        state.is_closed.store(true, Ordering::Relaxed);
        state.closed.cancel();
        if let Ok(mut socket) = state.socket.lock()
            && let Some(socket) = socket.take()
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

    /// Locks both halves for an exchange that owns the whole connection (a
    /// file transfer), taking any bytes an earlier read fetched ahead. The
    /// exchange runs on tokio, over a duplicate of the socket that tokio
    /// lets go of when the exchange ends (on TLS, through the connection's
    /// own session: see `tls::stream`). Call it inside the runtime.
    pub async fn lock_io(&self) -> Result<ConnIo<'_>> {
        let mut reader = self.0.reader.lock().await;
        let writer = self.0.writer.lock().await;
        let (Some(side), Some(_)) = (reader.as_mut(), writer.as_ref()) else {
            return Err(self.closed_error());
        };
        let (read, write) = super::io::lend(&side.socket, self.0.tls.as_ref())
            .map_err(|e| Error::io("lending the socket to the transfer", None, e))?;
        let pending = std::mem::take(&mut side.pending);
        Ok(ConnIo {
            _reader: reader,
            writer,
            read,
            write: Some(write),
            pending,
            shut_down: &self.0.shut_down,
        })
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

/// The error for text methods given bytes that are not UTF-8.
fn not_text(peer: &Endpoint) -> Error {
    Error::Protocol(format!(
        "the data from {peer} is not UTF-8 text; use read(n) or read_all() to get bytes"
    ))
}

/// Reads (with `fill`, which appends a chunk and returns its length, 0 at
/// end of stream) until `acc` holds what `want` asks for, and takes that
/// out of it.
fn gather(
    acc: &mut Vec<u8>,
    want: &Want<'_>,
    peer: &Endpoint,
    mut fill: impl FnMut(&mut Vec<u8>) -> Result<usize>,
) -> Result<Option<Vec<u8>>> {
    // Splits `acc` at `at`: returns the front, keeps the rest for later.
    fn split_front(acc: &mut Vec<u8>, at: usize) -> Vec<u8> {
        let rest = acc.split_off(at.min(acc.len()));
        std::mem::replace(acc, rest)
    }
    match *want {
        Want::Text => loop {
            if !acc.is_empty() {
                match std::str::from_utf8(acc) {
                    Ok(_) => return Ok(Some(std::mem::take(acc))),
                    Err(e) if e.valid_up_to() > 0 => {
                        return Ok(Some(split_front(acc, e.valid_up_to())));
                    }
                    // Invalid from the first byte: leave it for read(n).
                    Err(e) if e.error_len().is_some() => return Err(not_text(peer)),
                    // The start of a character whose other bytes are still
                    // in flight: wait for them.
                    Err(_) => {}
                }
            }
            if fill(acc)? == 0 {
                return if acc.is_empty() {
                    Ok(None)
                } else {
                    Err(not_text(peer))
                };
            }
        },
        Want::Until(delim) => {
            let mut searched = 0;
            loop {
                if let Some(found) = acc[searched..]
                    .windows(delim.len())
                    .position(|w| w == delim)
                {
                    let at = searched + found;
                    let piece = split_front(acc, at + delim.len());
                    return Ok(Some(piece[..at].to_vec()));
                }
                if acc.len() > MAX_LINE {
                    return Err(Error::Protocol(format!(
                        "{peer} sent over {} KiB without the delimiter; use read(n) for data this long",
                        MAX_LINE / 1024
                    )));
                }
                // The delimiter may straddle the old end and the next chunk.
                searched = acc.len().saturating_sub(delim.len() - 1);
                if fill(acc)? == 0 {
                    return Ok((!acc.is_empty()).then(|| std::mem::take(acc)));
                }
            }
        }
        Want::Exactly(n) => {
            if n > MAX_STRING_BYTES {
                return Err(too_big(peer));
            }
            while acc.len() < n {
                if fill(acc)? == 0 {
                    break;
                }
            }
            Ok(Some(split_front(acc, n)))
        }
        Want::Some => {
            if acc.is_empty() && fill(acc)? == 0 {
                return Ok(None);
            }
            Ok(Some(std::mem::take(acc)))
        }
        Want::All => {
            while fill(acc)? > 0 {
                // A peer that never stops must not eat all memory.
                if acc.len() > MAX_STRING_BYTES {
                    return Err(too_big(peer));
                }
            }
            Ok(Some(std::mem::take(acc)))
        }
    }
}

/// The error for reading more than a script value may hold.
fn too_big(peer: &Endpoint) -> Error {
    Error::TooBig(format!(
        "reading over {} MiB from {peer} at once is more than a blob may hold; read in parts with read(n), or receive it as a file with recv_file",
        MAX_STRING_BYTES >> 20
    ))
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({} → {})", self.0.local, self.0.peer)
    }
}

/// A connection's reading side: bytes read ahead earlier, then the socket.
pub type PendingThenSocket<'a, 'c> = tokio::io::Chain<&'a [u8], &'a mut IoReader<'c>>;

/// Both halves of a connection, locked by [`Conn::lock_io`], and the
/// socket's tokio copy.
pub struct ConnIo<'a> {
    _reader: MutexGuard<'a, Option<ReadSide>>,
    writer: MutexGuard<'a, Option<Socket>>,
    read: IoReader<'a>,
    /// `None` once [`ConnIo::close_writer`] dropped it.
    write: Option<IoWriter<'a>>,
    /// Read ahead by an earlier `recv_line()`: the first bytes of this exchange.
    pending: Vec<u8>,
    /// The connection's half-closed flag, so later sends say "shut down".
    shut_down: &'a AtomicBool,
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
    }
}
