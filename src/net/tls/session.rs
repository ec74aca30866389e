//! A TLS session over a non-blocking socket, driven one step at a time.
//!
//! Connections read and send on the calling Rhai thread and wait with
//! `poll(2)` (see `tcp::conn`), so TLS must never block either: each step
//! here moves what it can between the socket and rustls and then says what
//! it would wait for (readable or writable). The caller does the waiting,
//! with the same waits as a plain connection, so Ctrl-C, `stop()`,
//! timeouts and `close()` from another thread work on TLS as they do on
//! TCP. The same steps drive the async adapter a file transfer uses.
//!
//! The rustls state sits behind a mutex held only for the length of a
//! step, never across a wait: a read in one thread and a send in another
//! both need it (a read may have to answer a key update; a send encrypts).

use std::{
    io::{self, IoSlice, Read, Write},
    os::fd::{AsRawFd, BorrowedFd},
    sync::{Mutex, MutexGuard},
};

use nix::sys::socket::MsgFlags;

/// What a step is waiting for before it can go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Readable,
    Writable,
}

/// Why a step failed.
#[derive(Debug)]
pub enum Fault {
    /// The socket failed (reset, broken pipe…).
    Io(io::Error),
    /// The TLS layer failed: a bad record, an alert, a refused certificate.
    Tls(rustls::Error),
    /// The peer closed the connection before the handshake finished.
    Eof,
}

impl Fault {
    /// As an `io::Error`, for the async adapter.
    pub fn into_io(self) -> io::Error {
        match self {
            Fault::Io(e) => e,
            Fault::Tls(e) => io::Error::new(io::ErrorKind::InvalidData, super::words(&e)),
            Fault::Eof => io::ErrorKind::UnexpectedEof.into(),
        }
    }
}

/// One TLS session (client or server side) and what `tls_info()` reports
/// that rustls does not keep.
pub struct Session {
    state: Mutex<State>,
    /// The name a client asked for (sent as SNI unless it is an IP).
    sni: Option<String>,
}

/// The rustls state, and encrypted bytes read off the socket that rustls
/// has not taken yet.
pub struct State {
    pub tls: rustls::Connection,
    /// rustls reads at most 4 KiB at a time, four syscalls for each 16 KiB
    /// record of a bulk transfer; one large read here feeds it instead.
    inbound: Box<[u8]>,
    start: usize,
    end: usize,
}

/// How much one read takes off the socket for rustls.
const INBOUND: usize = 64 * 1024;

impl State {
    /// Gives rustls encrypted bytes, reading the socket when none are
    /// left over; `Ok(0)` at end of stream.
    fn receive(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        if self.inbound.is_empty() {
            // Made on first use: a server's session waiting for a silent
            // client (see `tcp::handshakes`) costs no buffer.
            self.inbound = vec![0; INBOUND].into_boxed_slice();
        }
        if self.start == self.end {
            let n = FdIo(fd).read(&mut self.inbound)?;
            (self.start, self.end) = (0, n);
            if n == 0 {
                // Tells rustls the stream ended.
                return self.tls.read_tls(&mut io::empty());
            }
        }
        let mut left = &self.inbound[self.start..self.end];
        let n = self.tls.read_tls(&mut left)?;
        self.start += n;
        Ok(n)
    }
}

/// Encrypted data in flight may reach this before a send waits for the
/// socket: bigger than rustls's 64 KiB default, so a bulk send makes fewer
/// rounds through the lock.
const OUTGOING_LIMIT: usize = 256 * 1024;

impl Session {
    pub fn new(tls: impl Into<rustls::Connection>, sni: Option<String>) -> Session {
        let mut tls = tls.into();
        tls.set_buffer_limit(Some(OUTGOING_LIMIT));
        Session {
            state: Mutex::new(State {
                tls,
                inbound: Box::default(),
                start: 0,
                end: 0,
            }),
            sni,
        }
    }

    /// The session's state. A panic while it was held cannot leave it half
    /// written in a way that matters here (the connection fails next).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn sni(&self) -> Option<&str> {
        self.sni.as_deref()
    }

    /// Advances the handshake: `None` once it is complete (and everything
    /// it produced is on the wire), else what to wait for.
    pub fn handshake_step(&self, fd: BorrowedFd<'_>) -> Result<Option<Wait>, Fault> {
        let state = &mut *self.lock();
        loop {
            if flush(&mut state.tls, fd)? {
                return Ok(Some(Wait::Writable));
            }
            if !state.tls.is_handshaking() {
                return Ok(None);
            }
            match state.receive(fd) {
                Ok(0) => return Err(Fault::Eof),
                Ok(_) => process(&mut state.tls, fd)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Some(Wait::Readable));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fault::Io(e)),
            }
        }
    }

    /// Decrypted bytes into `buf`: `Some(n)` (0 at end of stream: the peer
    /// sent close_notify or closed the socket), or `None` when nothing can
    /// be had until the socket is readable.
    ///
    /// A peer that closes its socket without close_notify reads as end of
    /// stream, as with socat and ncat: for a script that is what a closed
    /// connection looks like.
    pub fn read_step(&self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<usize>, Fault> {
        let state = &mut *self.lock();
        loop {
            match state.tls.reader().read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Some(0)),
                Err(e) => return Err(Fault::Io(e)),
            }
            // Whatever reading produced (a key update answer, an alert)
            // goes out when the socket takes it; a send flushes the rest.
            if state.tls.wants_write() {
                let _ = state.tls.write_tls(&mut FdIo(fd));
            }
            match state.receive(fd) {
                Ok(_) => process(&mut state.tls, fd)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fault::Io(e)),
            }
        }
    }

    /// Encrypts as much of `data` as the session takes and writes what it
    /// can to the socket. Returns how many bytes of `data` were taken, and
    /// whether encrypted bytes are still waiting for the socket.
    pub fn write_step(&self, fd: BorrowedFd<'_>, data: &[u8]) -> Result<(usize, bool), Fault> {
        let tls = &mut self.lock().tls;
        let mut taken = 0;
        loop {
            if flush(tls, fd)? {
                return Ok((taken, true));
            }
            if taken == data.len() {
                return Ok((taken, false));
            }
            let n = tls.writer().write(&data[taken..]).map_err(Fault::Io)?;
            if n == 0 {
                // Cannot happen with the outgoing buffer just emptied, but a
                // loop that makes no progress must not spin.
                return Err(Fault::Io(io::Error::other("the TLS session took no data")));
            }
            taken += n;
        }
    }

    /// Writes pending encrypted bytes; `true` once none are left.
    pub fn flush_step(&self, fd: BorrowedFd<'_>) -> Result<bool, Fault> {
        Ok(!flush(&mut self.lock().tls, fd)?)
    }

    /// Sends close_notify if that can be done at once (`close()` never
    /// waits): the session is free and the socket takes it.
    pub fn try_close_notify(&self, fd: BorrowedFd<'_>) {
        if let Ok(mut state) = self.state.try_lock() {
            state.tls.send_close_notify();
            let _ = flush(&mut state.tls, fd);
        }
    }

    /// Queues close_notify (once): the peer reads end of stream after the
    /// bytes before it. [`Session::flush_step`] sends it.
    pub fn close_notify(&self) {
        self.lock().tls.send_close_notify();
    }
}

/// Writes pending encrypted bytes until none are left (`false`) or the
/// socket is full (`true`).
fn flush(tls: &mut rustls::Connection, fd: BorrowedFd<'_>) -> Result<bool, Fault> {
    while tls.wants_write() {
        match tls.write_tls(&mut FdIo(fd)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Fault::Io(e)),
        }
    }
    Ok(false)
}

/// Processes received records; on failure, sends the alert rustls queued
/// (so the peer learns why) before reporting it.
fn process(tls: &mut rustls::Connection, fd: BorrowedFd<'_>) -> Result<(), Fault> {
    tls.process_new_packets().map(drop).map_err(|e| {
        let _ = tls.write_tls(&mut FdIo(fd));
        Fault::Tls(e)
    })
}

/// The socket as rustls reads and writes it: never blocking, and never
/// raising SIGPIPE.
struct FdIo<'a>(BorrowedFd<'a>);

impl Read for FdIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        nix::sys::socket::recv(self.0.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT).map_err(Into::into)
    }
}

impl Write for FdIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    /// rustls hands over every pending record at once; one `sendmsg` sends
    /// them all.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        nix::sys::socket::sendmsg::<()>(
            self.0.as_raw_fd(),
            bufs,
            &[],
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(Into::into)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
