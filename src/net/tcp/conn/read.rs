//! A connection's reads, all built on one primitive: `fill` moves bytes
//! from the socket (or the TLS session) into the read side's pending
//! bytes, and `gather` takes out what a read asked for (text, a line, `n`
//! bytes, everything). What a read that times out gathered stays pending
//! for the next one. Apart from the connection itself because it is half
//! of it and needs none of the sending side.

use std::{
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    poll::PollFlags,
    sys::socket::{MsgFlags, Shutdown},
};

use super::Conn;
use crate::error::{Error, Result};
use crate::limits::{MAX_LINE, MAX_STRING_BYTES};
use crate::net::tcp::Endpoint;
use crate::net::tls::{self, Fault, Session};
use crate::runtime::{self, Ready};

/// How much one read syscall may take off the socket.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// Where a read lands before it joins the connection's pending bytes:
    /// one buffer per thread, not zeroed again for every read.
    static CHUNK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_CHUNK]);
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
        // The owner's read with no deadline sleeps in `recv` itself.
        let mut blocking = deadline.is_none() && self.owns_reads();
        loop {
            if self.is_closed() {
                return Err(self.closed_error());
            }
            if blocking {
                if runtime::is_cancelled() {
                    return Err(Error::Interrupted);
                }
            } else if runtime::wait_fd(fd, PollFlags::POLLIN, deadline)? == Ready::TimedOut {
                return Err(waited());
            }
            let flags = if blocking {
                MsgFlags::empty()
            } else {
                MsgFlags::MSG_DONTWAIT
            };
            let received = CHUNK.with_borrow_mut(|chunk| {
                let n = nix::sys::socket::recv(fd.as_raw_fd(), chunk, flags)?;
                acc.extend_from_slice(&chunk[..n]);
                Ok(n)
            });
            match received {
                // `close()` elsewhere shuts the socket down: that reads as
                // end of stream, but it is a close.
                Ok(0) if self.is_closed() => return Err(self.closed_error()),
                // So does `wake_owner()`, for an owner whose work is cancelled.
                Ok(0) if blocking && runtime::is_cancelled() => return Err(Error::Interrupted),
                Ok(n) => return Ok(n),
                // Not in blocking mode after all (a loan to tokio could not
                // restore it): wait as every other read does.
                Err(Errno::EAGAIN) => blocking = false,
                Err(Errno::EINTR) => {}
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

    /// Lets the calling thread read this connection with plain blocking
    /// `recv`s from now on (when it sets no timeout), with no `poll` before
    /// each: what a thread-per-connection server does, and a syscall and
    /// two wait-queue registrations less per message. Other threads, and
    /// reads with a timeout, go on as before. A TLS connection is left as
    /// it is (its reads step a session that must never block).
    ///
    /// Such a read does not see the thread's cancellation: whoever cancels
    /// this thread's work must then call [`Conn::wake_owner`] (closure
    /// `serve` does, when it stops). `false`: the reads stay as they were.
    pub fn own_reads(&self) -> Result<bool> {
        if self.0.tls.is_some() || self.0.owner.get().is_some() {
            return Ok(false);
        }
        let socket = self.socket()?;
        socket
            .set_nonblocking(false)
            .map_err(|e| Error::io("setting up the socket", None, e))?;
        Ok(self.0.owner.set(std::thread::current().id()).is_ok())
    }

    /// Wakes the owner's blocking read after its work was cancelled: the
    /// socket's reading side is shut down, so the read ends (as interrupted)
    /// while sends still go out, as they did before the cancellation.
    pub fn wake_owner(&self) {
        if let Ok(socket) = self.socket() {
            let _ = nix::sys::socket::shutdown(socket.as_raw_fd(), Shutdown::Read);
        }
    }

    /// Does this thread read with blocking `recv`s ([`Conn::own_reads`])?
    fn owns_reads(&self) -> bool {
        self.0
            .owner
            .get()
            .is_some_and(|owner| *owner == std::thread::current().id())
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

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        net::{TcpListener, TcpStream},
        sync::mpsc,
        time::{Duration, Instant},
    };

    use crate::net::tcp::{Conn, Stream};

    /// The syscall thread `tid` of this process is in, by number (-1 when
    /// it is running).
    fn syscall_of(tid: i32) -> i64 {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(-1)
    }

    /// The owner's read sleeps in `recv` itself; another thread's read
    /// waits in `poll` first (so Ctrl-C and `stop()` reach it). Seen from
    /// /proc while each is blocked, then each gets its byte.
    #[test]
    fn the_owner_sleeps_in_recv_and_other_threads_in_poll() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        let mut peer = TcpStream::connect(listener.local_addr().expect("its address"))
            .expect("connect on loopback");
        let (accepted, _) = listener.accept().expect("accept");
        let conn = Conn::over(Stream::Tcp(accepted), None).expect("a connection");
        let polls: &[i64] = &[
            libc::SYS_ppoll,
            #[cfg(target_arch = "x86_64")]
            libc::SYS_poll,
        ];
        for (owner, waits_in, byte) in [(false, polls, "a"), (true, &[libc::SYS_recvfrom][..], "b")]
        {
            let reader_conn = conn.clone();
            let (told, tid) = mpsc::channel();
            let reader = std::thread::spawn(move || {
                if owner {
                    assert!(reader_conn.own_reads().expect("own the reads"));
                }
                told.send(nix::unistd::gettid().as_raw())
                    .expect("the test waits");
                reader_conn.recv()
            });
            let tid = tid.recv().expect("the reader's thread id");
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut seen = -1;
            while !waits_in.contains(&seen) {
                assert!(
                    Instant::now() < deadline,
                    "the {} read waits in syscall {seen}, not in {waits_in:?}",
                    if owner { "owner's" } else { "other thread's" }
                );
                std::thread::sleep(Duration::from_millis(10));
                seen = syscall_of(tid);
            }
            peer.write_all(byte.as_bytes()).expect("send on loopback");
            let got = reader.join().expect("the reader panicked");
            assert_eq!(got.expect("the read"), byte);
        }
    }
}
