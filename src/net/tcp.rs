//! TCP client and server (lessons 1.5, 1.6): `listen`, `accept`, `connect`,
//! and the `Conn` methods to talk over a connection.
//!
//! A [`Conn`] is shared (`Clone` is an `Arc`), because Rhai copies values and
//! a script may hand one connection to a `task`. Its read and write halves
//! have separate locks so one thread can block in `recv()` while another
//! sends. Every wait goes through [`runtime::block_on`] and so obeys Ctrl-C.
//!
//! Reads are built on one primitive, [`fill`]: bytes move from the socket's
//! buffer into the connection's `pending` bytes, and each read function takes
//! what it returns out of `pending`. A read that times out or is interrupted
//! halfway (a line without its newline yet) leaves what it gathered in
//! `pending`, so the next read sees it: a timeout never loses data.

use std::{
    net::SocketAddr,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use rhai::plugin::*;
use rhai::{Blob, Map};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{Mutex, MutexGuard},
};

use crate::error::{Error, Result};
use crate::net::addr::{self, Target};
use crate::runtime::{self, CancellationToken};

/// How long `connect` waits unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket read buffer of each connection. Small enough that a thousand
/// idle connections stay cheap, large enough for one `recv()` of a full
/// loopback segment.
const READ_BUFFER: usize = 16 * 1024;

/// The longest line or `recv_until` piece kept in memory: a peer that never
/// sends the delimiter must not be able to exhaust memory.
pub const MAX_LINE: usize = 1024 * 1024;

/// The Rhai module of this capability.
pub fn module() -> Module {
    let mut module = exported_module!(api);
    module.set_custom_type::<Conn>("Conn");
    module.set_custom_type::<Listener>("Listener");
    module
}

/// An open TCP connection.
#[derive(Clone)]
pub struct Conn(Arc<ConnState>);

pub struct ConnState {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// `None` once closed (or, for the writer, after `shutdown()`).
    pub reader: Mutex<Option<BufReader<OwnedReadHalf>>>,
    pub writer: Mutex<Option<OwnedWriteHalf>>,
    /// Read timeout in milliseconds; 0 means wait forever (Ctrl-C still works).
    read_timeout_ms: AtomicU64,
    /// Bytes already taken off the socket but not yet returned to the script
    /// (the rest of a chunk after a line, or a read cut short by a timeout).
    /// Only touched while `reader` is locked.
    pending: std::sync::Mutex<Vec<u8>>,
    /// Cancelled by `close()`, so a read or send blocked in another thread
    /// lets go of its half at once.
    closed: CancellationToken,
    /// Set by `shutdown()`: sending is over, reading goes on.
    shut_down: AtomicBool,
    /// A duplicate of the socket's descriptor for `info()`, which must not
    /// wait for a read or send in progress to release its half. Dropped by
    /// `close()` so the socket really closes.
    info_fd: std::sync::Mutex<Option<OwnedFd>>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Result<Conn> {
        let local = stream
            .local_addr()
            .map_err(|e| Error::io("reading the local address", None, e))?;
        let peer = stream
            .peer_addr()
            .map_err(|e| Error::io("reading the peer address", None, e))?;
        // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`; show
        // them as the IPv4 addresses they are.
        let local = SocketAddr::new(local.ip().to_canonical(), local.port());
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let _ = stream.set_nodelay(true);
        // Without a duplicate, `info()` could not tell a closed socket from
        // a busy one; it costs one descriptor per connection.
        let info_fd = stream.as_fd().try_clone_to_owned().ok();
        let (read, write) = stream.into_split();
        Ok(Conn(Arc::new(ConnState {
            local,
            peer,
            reader: Mutex::new(Some(BufReader::with_capacity(READ_BUFFER, read))),
            writer: Mutex::new(Some(write)),
            read_timeout_ms: AtomicU64::new(0),
            pending: std::sync::Mutex::new(Vec::new()),
            closed: CancellationToken::new(),
            shut_down: AtomicBool::new(false),
            info_fd: std::sync::Mutex::new(info_fd),
        })))
    }

    pub fn state(&self) -> &ConnState {
        &self.0
    }

    pub fn local(&self) -> SocketAddr {
        self.0.local
    }

    pub fn peer(&self) -> SocketAddr {
        self.0.peer
    }

    /// The read timeout, if one is set.
    pub fn read_timeout(&self) -> Option<Duration> {
        match self.0.read_timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        let ms = timeout.map_or(0, |d| d.as_millis().max(1) as u64);
        self.0.read_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// The error for using a closed connection.
    pub fn closed_error(&self) -> Error {
        Error::Closed(format!("the connection to {} is closed", self.0.peer))
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
    /// (none: wait as long as it takes), under Ctrl-C and `close()`. `None`
    /// means end of stream with nothing left to return.
    fn take(&self, want: Want<'_>, timeout: Option<Duration>) -> Result<Option<Vec<u8>>> {
        let state = &self.0;
        let peer = state.peer;
        runtime::block_on(async {
            let read = async {
                let mut guard = state.reader.lock().await;
                let reader = guard.as_mut().ok_or_else(|| self.closed_error())?;
                let mut carry = Carry::new(&state.pending);
                gather(reader, &mut carry.bytes, &want, peer).await
            };
            let read =
                async {
                    match timeout {
                        Some(after) => runtime::within(
                            after,
                            || {
                                format!(
                                    "waiting for data from {peer} (the connection is still open)"
                                )
                            },
                            read,
                        )
                        .await,
                        None => read.await,
                    }
                };
            tokio::select! {
                biased;
                _ = state.closed.cancelled() => Err(self.closed_error()),
                result = read => result,
            }
        })
    }

    /// Reads text: the bytes `want` selects, which must be UTF-8.
    fn take_text(&self, want: Want<'_>, timeout: Option<Duration>) -> Result<Option<String>> {
        match self.take(want, timeout)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| not_text(self.0.peer)),
        }
    }

    /// Whatever arrives next as text; `""` at end of stream.
    pub fn recv(&self) -> Result<String> {
        self.recv_within(self.read_timeout())
    }

    /// [`Conn::recv`] waiting at most `timeout` (`None`: no limit).
    pub fn recv_within(&self, timeout: Option<Duration>) -> Result<String> {
        Ok(self.take_text(Want::Text, timeout)?.unwrap_or_default())
    }

    /// The text before `delim` (which is consumed); what is left at end of
    /// stream if the delimiter never comes; `None` at end of stream.
    pub fn recv_until(&self, delim: &str) -> Result<Option<String>> {
        self.recv_until_within(delim, self.read_timeout())
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
        self.recv_line_within(self.read_timeout())
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
        self.read_within(n, self.read_timeout())
    }

    /// [`Conn::read`] waiting at most `timeout` (`None`: no limit).
    pub fn read_within(&self, n: usize, timeout: Option<Duration>) -> Result<Vec<u8>> {
        Ok(self.take(Want::Exactly(n), timeout)?.unwrap_or_default())
    }

    /// Every byte until the peer closes its side.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        self.read_all_within(self.read_timeout())
    }

    /// [`Conn::read_all`] waiting at most `timeout` (`None`: no limit).
    pub fn read_all_within(&self, timeout: Option<Duration>) -> Result<Vec<u8>> {
        Ok(self.take(Want::All, timeout)?.unwrap_or_default())
    }

    /// Whatever bytes arrive next (at least one), text or not; empty at end
    /// of stream. For relaying a connection as it comes (`interact`).
    pub fn read_some(&self, timeout: Option<Duration>) -> Result<Vec<u8>> {
        Ok(self.take(Want::Some, timeout)?.unwrap_or_default())
    }

    /// Sends all of `data`; returns how many bytes that was.
    pub fn send(&self, data: &[u8]) -> Result<usize> {
        let state = &self.0;
        let peer = state.peer;
        // Fast path: the kernel usually takes the bytes at once, and then
        // there is nothing to wait for, so skip the runtime altogether. The
        // writer lock taken here is held until every byte is out, so two
        // threads sending on one connection never interleave their data.
        let mut held = if state.closed.is_cancelled() {
            None
        } else {
            state.writer.try_lock().ok()
        };
        let done = held.as_ref().map_or(0, |guard| send_now(guard, data));
        if done == data.len() && !data.is_empty() {
            return Ok(done);
        }
        // A peer that stops reading fills its window and then ours: with a
        // timeout set, give up when no byte has gone out for that long.
        let timeout = self.read_timeout();
        runtime::block_on(async {
            let write = async {
                let mut guard = match held.take() {
                    Some(guard) => guard,
                    None => state.writer.lock().await,
                };
                let writer = guard.as_mut().ok_or_else(|| self.cannot_send_error())?;
                let mut sent = done;
                while sent < data.len() {
                    let step = async {
                        writer.write(&data[sent..]).await.map_err(|e| {
                            // The usual cause: the peer closed its socket, so
                            // the kernel answered our earlier bytes with RST.
                            match e.kind() {
                                std::io::ErrorKind::BrokenPipe
                                | std::io::ErrorKind::ConnectionReset => Error::Reset(format!(
                                    "{peer} (the peer has closed the connection)"
                                )),
                                _ => Error::io(format!("sending to {peer}"), Some(peer), e),
                            }
                        })
                    };
                    let n = match timeout {
                        Some(after) => {
                            runtime::within(
                                after,
                                || {
                                    format!(
                                        "sending to {peer}, which took no more data ({sent} of {} bytes sent; the connection is still open)",
                                        data.len()
                                    )
                                },
                                step,
                            )
                            .await?
                        }
                        None => step.await?,
                    };
                    if n == 0 {
                        return Err(Error::Reset(format!(
                            "{peer} (the connection took no more data)"
                        )));
                    }
                    sent += n;
                }
                Ok(data.len())
            };
            tokio::select! {
                biased;
                _ = state.closed.cancelled() => Err(self.closed_error()),
                result = write => result,
            }
        })
    }
}

/// Writes as much of `data` as the socket takes without waiting; returns how
/// much that was (0 when busy, closed or failing: the waiting path then sends
/// the rest and reports any error in full).
fn send_now(guard: &MutexGuard<'_, Option<OwnedWriteHalf>>, data: &[u8]) -> usize {
    let Some(writer) = guard.as_ref() else {
        return 0;
    };
    let fd = writer.as_ref().as_raw_fd();
    let mut sent = 0;
    while sent < data.len() {
        let rest = &data[sent..];
        // SAFETY: `fd` is the open socket that `guard` keeps alive, and
        // the pointer and length describe `rest`, which outlives the call.
        let n = unsafe {
            libc::send(
                fd,
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n <= 0 {
            break;
        }
        sent += n as usize;
    }
    sent
}

impl Conn {
    /// Half-close: sends FIN, so the peer reads end of stream, while this
    /// side can still read the peer's reply. Doing it twice is harmless.
    pub fn shutdown(&self) -> Result<()> {
        let state = &self.0;
        let peer = state.peer;
        runtime::block_on(async {
            let shut = async {
                let mut guard = state.writer.lock().await;
                if state.shut_down.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let mut writer = guard.take().ok_or_else(|| self.closed_error())?;
                state.shut_down.store(true, Ordering::Relaxed);
                writer.shutdown().await.map_err(|e| {
                    Error::io(
                        format!("shutting down the connection to {peer}"),
                        Some(peer),
                        e,
                    )
                })
            };
            tokio::select! {
                biased;
                _ = state.closed.cancelled() => Err(self.closed_error()),
                result = shut => result,
            }
        })
    }

    /// Closes both directions. A read or send blocked in another thread
    /// returns with a "closed" error. Closing twice is harmless.
    pub fn close(&self) {
        let state = self.0.clone();
        state.closed.cancel();
        if let Ok(mut fd) = state.info_fd.lock() {
            fd.take();
        }
        if let Ok(mut pending) = state.pending.lock() {
            pending.clear();
        }
        // The usual case: nobody holds a half, so it closes right here and
        // the FIN leaves before `close()` returns.
        let reader_free = state.reader.try_lock().map(|mut r| r.take()).is_ok();
        let writer_free = state.writer.try_lock().map(|mut w| w.take()).is_ok();
        if !(reader_free && writer_free) {
            // A read or send elsewhere is letting go after the cancel
            // above; finish the close as soon as it has.
            runtime::handle().spawn(async move {
                state.reader.lock().await.take();
                state.writer.lock().await.take();
            });
        }
    }

    /// Bytes a text read already took off the socket but has not returned
    /// (what followed a line, say). Code that reads `state().reader`
    /// directly, like file transfer over a connection, must use these first.
    pub fn take_pending(&self) -> Vec<u8> {
        self.0
            .pending
            .lock()
            .map(|mut pending| std::mem::take(&mut *pending))
            .unwrap_or_default()
    }

    /// Locks both halves for an exchange that owns the whole connection (a
    /// file transfer), taking any bytes an earlier read fetched ahead.
    pub async fn lock_io(&self) -> Result<ConnIo<'_>> {
        let reader = self.0.reader.lock().await;
        let writer = self.0.writer.lock().await;
        if reader.is_none() || writer.is_none() {
            return Err(self.closed_error());
        }
        Ok(ConnIo {
            reader,
            writer,
            pending: self.take_pending(),
            shut_down: &self.0.shut_down,
        })
    }

    /// Resolves when `close()` is called, so whole-connection work (a file
    /// transfer) can stop as a blocked read would.
    pub async fn until_closed(&self) {
        self.0.closed.cancelled().await;
    }

    /// Has `close()` been called?
    pub fn is_closed(&self) -> bool {
        self.0.closed.is_cancelled()
    }

    /// The kernel's view of the connection (Linux `TCP_INFO`).
    pub fn info(&self) -> Result<Map> {
        let guard = self
            .0
            .info_fd
            .lock()
            .map_err(|_| Error::invalid("the connection's state is unavailable"))?;
        let fd = guard.as_ref().ok_or_else(|| self.closed_error())?;
        let info = tcp_info(fd.as_raw_fd())
            .map_err(|e| Error::io("reading TCP_INFO", Some(self.0.peer), e))?;
        let mut map = Map::new();
        let mut put = |key: &str, value: Dynamic| {
            map.insert(key.into(), value);
        };
        put("state", tcp_state_name(info.tcpi_state).into());
        put("local", self.0.local.to_string().into());
        put("peer", self.0.peer.to_string().into());
        let numbers: [(&str, u64); 24] = [
            ("rtt_us", info.tcpi_rtt.into()),
            ("rttvar_us", info.tcpi_rttvar.into()),
            ("min_rtt_us", info.tcpi_min_rtt.into()),
            ("rto_us", info.tcpi_rto.into()),
            ("retransmits", info.tcpi_retransmits.into()),
            ("total_retrans", info.tcpi_total_retrans.into()),
            ("lost", info.tcpi_lost.into()),
            ("unacked", info.tcpi_unacked.into()),
            ("sacked", info.tcpi_sacked.into()),
            ("snd_cwnd", info.tcpi_snd_cwnd.into()),
            ("snd_ssthresh", info.tcpi_snd_ssthresh.into()),
            ("snd_mss", info.tcpi_snd_mss.into()),
            ("rcv_mss", info.tcpi_rcv_mss.into()),
            ("pmtu", info.tcpi_pmtu.into()),
            ("rcv_space", info.tcpi_rcv_space.into()),
            ("notsent_bytes", info.tcpi_notsent_bytes.into()),
            ("bytes_acked", info.tcpi_bytes_acked),
            ("bytes_received", info.tcpi_bytes_received),
            ("segs_out", info.tcpi_segs_out.into()),
            ("segs_in", info.tcpi_segs_in.into()),
            ("last_data_sent_ms", info.tcpi_last_data_sent.into()),
            ("last_data_recv_ms", info.tcpi_last_data_recv.into()),
            ("last_ack_recv_ms", info.tcpi_last_ack_recv.into()),
            ("probes", info.tcpi_probes.into()),
        ];
        for (key, value) in numbers {
            put(key, (value.min(i64::MAX as u64) as i64).into());
        }
        Ok(map)
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

/// The error for text methods given bytes that are not UTF-8.
fn not_text(peer: SocketAddr) -> Error {
    Error::Protocol(format!(
        "the data from {peer} is not UTF-8 text; use read(n) or read_all() to get bytes"
    ))
}

/// The bytes a read is working on, taken out of `pending` and put back when
/// the read ends for any reason (finished, timed out, interrupted), so what
/// it did not return is there for the next read.
struct Carry<'a> {
    bytes: Vec<u8>,
    slot: &'a std::sync::Mutex<Vec<u8>>,
}

impl<'a> Carry<'a> {
    fn new(slot: &'a std::sync::Mutex<Vec<u8>>) -> Self {
        let bytes = slot
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        Carry { bytes, slot }
    }
}

impl Drop for Carry<'_> {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.slot.lock() {
            *pending = std::mem::take(&mut self.bytes);
        }
    }
}

/// Moves the next chunk from the socket into `acc`; 0 means end of stream.
/// It is cancel-safe: after the one await, nothing else can be interrupted.
async fn fill(
    reader: &mut BufReader<OwnedReadHalf>,
    acc: &mut Vec<u8>,
    peer: SocketAddr,
) -> Result<usize> {
    let chunk = reader
        .fill_buf()
        .await
        .map_err(|e| Error::io(format!("receiving from {peer}"), Some(peer), e))?;
    let n = chunk.len();
    acc.extend_from_slice(chunk);
    reader.consume(n);
    Ok(n)
}

/// Reads until `acc` holds what `want` asks for, and takes that out of it.
async fn gather(
    reader: &mut BufReader<OwnedReadHalf>,
    acc: &mut Vec<u8>,
    want: &Want<'_>,
    peer: SocketAddr,
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
            if fill(reader, acc, peer).await? == 0 {
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
                if fill(reader, acc, peer).await? == 0 {
                    return Ok((!acc.is_empty()).then(|| std::mem::take(acc)));
                }
            }
        }
        Want::Exactly(n) => {
            if n > crate::shell::MAX_STRING_BYTES {
                return Err(too_big(peer));
            }
            while acc.len() < n {
                if fill(reader, acc, peer).await? == 0 {
                    break;
                }
            }
            Ok(Some(split_front(acc, n)))
        }
        Want::Some => {
            if acc.is_empty() && fill(reader, acc, peer).await? == 0 {
                return Ok(None);
            }
            Ok(Some(std::mem::take(acc)))
        }
        Want::All => {
            while fill(reader, acc, peer).await? > 0 {
                // A peer that never stops must not eat all memory.
                if acc.len() > crate::shell::MAX_STRING_BYTES {
                    return Err(too_big(peer));
                }
            }
            Ok(Some(std::mem::take(acc)))
        }
    }
}

/// The error for reading more than a script value may hold.
fn too_big(peer: SocketAddr) -> Error {
    Error::invalid(format!(
        "reading over {} MiB from {peer} at once is more than a blob may hold; read in parts with read(n), or receive it as a file with recv_file",
        crate::shell::MAX_STRING_BYTES >> 20
    ))
}

/// Linux `TCP_INFO` for the socket `fd`.
fn tcp_info(fd: std::os::fd::RawFd) -> std::io::Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain integers, for which all-zero is valid; the
    // kernel writes at most `len` bytes into it, and fields a kernel too old
    // to know them does not write stay zero.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a live, writable tcp_info and `len` its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(info)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The kernel's TCP state numbers (include/net/tcp_states.h), as `ss` names them.
fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({} → {})", self.0.local, self.0.peer)
    }
}

/// A connection's reading side: bytes read ahead earlier, then the socket.
pub type PendingThenSocket<'a> = tokio::io::Chain<&'a [u8], &'a mut BufReader<OwnedReadHalf>>;

/// Both halves of a connection, locked by [`Conn::lock_io`].
pub struct ConnIo<'a> {
    reader: MutexGuard<'a, Option<BufReader<OwnedReadHalf>>>,
    writer: MutexGuard<'a, Option<OwnedWriteHalf>>,
    /// Read ahead by an earlier `recv_line()`: the first bytes of this exchange.
    pending: Vec<u8>,
    /// The connection's half-closed flag, so later sends say "shut down".
    shut_down: &'a AtomicBool,
}

impl ConnIo<'_> {
    /// The reading side (pending bytes first) and the writing side, or the
    /// closed error once the writer was dropped by [`ConnIo::close_writer`].
    pub fn halves(&mut self, conn: &Conn) -> Result<(PendingThenSocket<'_>, &mut OwnedWriteHalf)> {
        let (Some(reader), Some(writer)) = (self.reader.as_mut(), self.writer.as_mut()) else {
            return Err(conn.closed_error());
        };
        let reader = tokio::io::AsyncReadExt::chain(self.pending.as_slice(), reader);
        Ok((reader, writer))
    }

    /// Drops the write half, which sends FIN once the shutdown went out.
    pub fn close_writer(&mut self) {
        self.writer.take();
        self.shut_down.store(true, Ordering::Relaxed);
    }
}

/// A listening TCP socket.
#[derive(Clone)]
pub struct Listener(Arc<ListenerState>);

pub struct ListenerState {
    pub addr: SocketAddr,
    pub socket: Mutex<Option<TcpListener>>,
    /// Cancelled by `close()`, so a blocked `accept()` elsewhere returns.
    pub closed: CancellationToken,
}

impl Listener {
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    pub fn state(&self) -> &ListenerState {
        &self.0
    }

    /// Waits for the next connection, up to `timeout` if given.
    pub fn accept(&self, timeout: Option<Duration>) -> Result<Conn> {
        let state = self.0.clone();
        runtime::block_on(async move {
            let mut guard = state.socket.lock().await;
            let Some(socket) = guard.as_ref() else {
                return Err(Error::Closed(format!(
                    "the listener on {} is closed",
                    state.addr
                )));
            };
            let accept = async {
                tokio::select! {
                    _ = state.closed.cancelled() => Err(Error::Closed(format!("the listener on {} was closed", state.addr))),
                    accepted = socket.accept() => accepted.map_err(|e| Error::io("accepting", None, e)),
                }
            };
            let accepted = match timeout {
                Some(after) => {
                    runtime::within(
                        after,
                        || format!("waiting for a connection on port {}", state.addr.port()),
                        accept,
                    )
                    .await
                }
                None => accept.await,
            };
            // `close()` could not take the socket while this wait held the
            // lock; drop it here so the port is released as the wait ends.
            if state.closed.is_cancelled() {
                guard.take();
            }
            let (stream, _) = accepted?;
            Conn::new(stream)
        })
    }

    pub fn close(&self) {
        self.0.closed.cancel();
        if let Ok(mut socket) = self.0.socket.try_lock() {
            socket.take();
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Listener({})", self.0.addr)
    }
}

/// Binds a listening socket. A bare port listens on every address, IPv4 and IPv6.
pub fn listen(bind: SocketAddr) -> Result<Listener> {
    let socket = runtime::block_on(async move { bind_listener(bind) })?;
    let addr = socket
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", None, e))?;
    Ok(Listener(Arc::new(ListenerState {
        addr,
        socket: Mutex::new(Some(socket)),
        closed: CancellationToken::new(),
    })))
}

/// Creates the socket with socket2 so SO_REUSEADDR and dual-stack are explicit.
/// Must run inside the runtime (tokio registers the socket with its reactor).
pub fn bind_listener(bind: SocketAddr) -> Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let in_use = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            let holder = crate::net::sockets::holder_of(bind.port())
                .map(|h| format!(", held by {h}"))
                .unwrap_or_default();
            Error::InUse(format!("port {} is already in use{holder}", bind.port()))
        } else {
            Error::io(format!("listening on {bind}"), None, e)
        }
    };
    let socket = Socket::new(Domain::for_address(bind), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| Error::io("creating a socket", None, e))?;
    if bind.is_ipv6() && bind.ip().is_unspecified() {
        let _ = socket.set_only_v6(false);
    }
    socket
        .set_reuse_address(true)
        .map_err(|e| Error::io("setting SO_REUSEADDR", None, e))?;
    socket.set_nonblocking(true).map_err(in_use)?;
    socket.bind(&bind.into()).map_err(in_use)?;
    socket.listen(1024).map_err(in_use)?;
    TcpListener::from_std(socket.into()).map_err(in_use)
}

/// Connects to `target`, trying each resolved address in turn (IPv4 first
/// when a name has both), each within `timeout`.
pub fn connect(target: &Target, timeout: Duration) -> Result<Conn> {
    let target = target.clone();
    runtime::block_on(async move {
        let addrs = addr::lookup(&target).await?;
        let mut last = None;
        for addr in addrs {
            let attempt =
                runtime::within(timeout, || format!("connecting to {addr}"), async move {
                    TcpStream::connect(addr)
                        .await
                        .map_err(|e| Error::io(format!("connecting to {addr}"), Some(addr), e))
                })
                .await;
            match attempt {
                Ok(stream) => return Conn::new(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Resolve {
            host: target.host.clone(),
            reason: "the name has no addresses".into(),
        }))
    })
}

/// A millisecond option from an options map.
pub fn option_millis(name: &str, value: &Dynamic) -> Result<Duration> {
    let ms = value.as_int().map_err(|_| {
        Error::invalid(format!(
            "option '{name}' must be a number of milliseconds, not {}",
            value.type_name()
        ))
    })?;
    crate::net::helpers::millis(ms, name)
}

/// The error for an argument of the wrong type: what was expected, what came.
pub fn wrong_type(expected: &str, got: &Dynamic) -> Error {
    let got = match got.type_name() {
        "i64" => "a number",
        "f64" => "a decimal number",
        "bool" => "true/false",
        "()" => "()",
        "char" => "a character",
        "array" => "an array",
        "map" => "a map",
        "blob" => "a blob",
        "string" => "a string",
        other => other.rsplit("::").next().unwrap_or(other),
    };
    Error::invalid(format!("expected {expected}, not {got}"))
}

/// A byte count from a script: 0 or more.
fn byte_count(n: i64) -> Result<usize> {
    usize::try_from(n)
        .map_err(|_| Error::invalid(format!("the byte count must be 0 or more, not {n}")))
}

#[export_module]
mod api {
    use crate::error::{ScriptResult, fail};
    use crate::net::helpers::{wait_limit, wait_option};

    /// Opens a TCP listening socket on a port, on every address (IPv4 and IPv6).
    /// Port 0 picks a free port; read it from `.port`.
    ///
    /// ```rhai
    /// let l = listen(9000);
    /// let c = l.accept();
    /// ```
    ///
    /// Fails when: the port is out of range or already in use (the message
    /// names the process holding it when it can be found).
    #[rhai_fn(return_raw)]
    pub fn listen(port: i64) -> ScriptResult<Listener> {
        addr::port(port)
            .map(addr::any_addr)
            .and_then(super::listen)
            .map_err(fail("listen"))
    }

    /// Opens a TCP listening socket on one local address.
    ///
    /// ```rhai
    /// let l = listen("127.0.0.1:0"); print(l.port);
    /// let l6 = listen("[::1]:9000");
    /// ```
    ///
    /// Fails when: the address is malformed or not local, or the port is in use.
    #[rhai_fn(return_raw, name = "listen")]
    pub fn listen_addr(addr: &str) -> ScriptResult<Listener> {
        addr::parse_bind(addr)
            .and_then(super::listen)
            .map_err(fail("listen"))
    }

    /// The port a listener is bound to.
    ///
    /// ```rhai
    /// listen(0).port
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "port", pure)]
    pub fn listener_port(l: &mut Listener) -> i64 {
        l.addr().port() as i64
    }

    /// The address a listener is bound to, as `"ip:port"`.
    ///
    /// ```rhai
    /// listen("127.0.0.1:0").addr    // "127.0.0.1:40123"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "addr", pure)]
    pub fn listener_addr(l: &mut Listener) -> String {
        l.addr().to_string()
    }

    /// Waits for the next connection and returns it. Ctrl-C stops the wait.
    ///
    /// ```rhai
    /// let c = listen(9000).accept();
    /// ```
    ///
    /// Fails when: the listener was closed, or the wait is interrupted.
    #[rhai_fn(return_raw, pure)]
    pub fn accept(l: &mut Listener) -> ScriptResult<Conn> {
        l.accept(None).map_err(fail("accept"))
    }

    /// Waits at most `timeout_ms` milliseconds for the next connection
    /// (0: no limit).
    ///
    /// ```rhai
    /// let c = l.accept(5000);
    /// ```
    ///
    /// Fails when: `timeout_ms` is negative, nobody connects in time, the
    /// listener was closed, or the wait is interrupted.
    #[rhai_fn(return_raw, pure, name = "accept")]
    pub fn accept_timeout(l: &mut Listener, timeout_ms: i64) -> ScriptResult<Conn> {
        crate::net::helpers::wait_limit(timeout_ms)
            .and_then(|t| l.accept(t))
            .map_err(fail("accept"))
    }

    /// Stops listening; a blocked `accept()` returns with an error.
    ///
    /// ```rhai
    /// l.close();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "close")]
    pub fn close_listener(l: &mut Listener) {
        l.close();
    }

    /// Connects to `"host:port"` or `"[v6]:port"` (10 s timeout).
    ///
    /// ```rhai
    /// let c = connect("127.0.0.1:9000");
    /// ```
    ///
    /// Fails when: the name does not resolve, the port is closed (refused),
    /// the host is unreachable, or nothing answers in time.
    #[rhai_fn(return_raw)]
    pub fn connect(addr: &str) -> ScriptResult<Conn> {
        addr::parse_target(addr)
            .and_then(|t| super::connect(&t, super::DEFAULT_CONNECT_TIMEOUT))
            .map_err(fail("connect"))
    }

    /// Connects to a host and port given separately.
    ///
    /// ```rhai
    /// let c = connect("localhost", 9000);
    /// ```
    ///
    /// Fails when: as `connect(addr)`, or the port is out of range.
    #[rhai_fn(return_raw, name = "connect")]
    pub fn connect_host_port(host: &str, port: i64) -> ScriptResult<Conn> {
        addr::port(port)
            .map(|port| Target {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port,
            })
            .and_then(|t| super::connect(&t, super::DEFAULT_CONNECT_TIMEOUT))
            .map_err(fail("connect"))
    }

    /// Connects with options: `timeout` (milliseconds to wait for the
    /// connection, default 10000; 0 leaves it to the kernel, about 2 min).
    ///
    /// ```rhai
    /// let c = connect("[::1]:9000", #{timeout: 2000});
    /// ```
    ///
    /// Fails when: as `connect(addr)`, or an option is unknown or not a
    /// number of milliseconds.
    #[rhai_fn(return_raw, name = "connect")]
    pub fn connect_with(addr: &str, options: Map) -> ScriptResult<Conn> {
        let run = || -> Result<Conn> {
            let target = addr::parse_target(addr)?;
            let mut timeout = super::DEFAULT_CONNECT_TIMEOUT;
            for (key, value) in &options {
                match key.as_str() {
                    // 0: no limit of ours; the kernel gives up after its
                    // SYN retries (about two minutes on Linux).
                    "timeout" => {
                        timeout = super::option_millis("timeout", value)?;
                        if timeout.is_zero() {
                            timeout = Duration::from_secs(24 * 3600);
                        }
                    }
                    other => {
                        return Err(Error::invalid(format!(
                            "unknown option '{other}' (known: timeout)"
                        )));
                    }
                }
            }
            super::connect(&target, timeout)
        };
        run().map_err(fail("connect"))
    }

    /// Catches `connect` with arguments of the wrong type, to say what it takes.
    ///
    /// ```rhai
    /// connect("127.0.0.1:9000")   // not connect(9000)
    /// ```
    ///
    /// Fails when: always: the argument is not an address string.
    #[rhai_fn(return_raw, name = "connect")]
    pub fn connect_wrong_type(addr: Dynamic) -> ScriptResult<Conn> {
        Err(fail("connect")(super::wrong_type(
            "an address string like \"127.0.0.1:9000\" or \"[::1]:9000\"",
            &addr,
        )))
    }

    /// Sends a string (its UTF-8 bytes); returns the number of bytes sent.
    ///
    /// ```rhai
    /// c.send("GET / HTTP/1.0\r\n\r\n");
    /// ```
    ///
    /// Fails when: the connection is closed or was shut down for sending, or
    /// the peer reset it.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn send_str(c: &mut Conn, data: &str) -> ScriptResult<i64> {
        c.send(data.as_bytes())
            .map(|n| n as i64)
            .map_err(fail("send"))
    }

    /// Sends the bytes of a blob; returns the number of bytes sent.
    ///
    /// ```rhai
    /// c.send(read_blob("photo.jpg"));
    /// ```
    ///
    /// Fails when: the connection is closed or was shut down for sending, or
    /// the peer reset it.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn send_blob(c: &mut Conn, data: Blob) -> ScriptResult<i64> {
        c.send(&data).map(|n| n as i64).map_err(fail("send"))
    }

    /// Catches `send` with something that is neither a string nor a blob.
    ///
    /// ```rhai
    /// c.send(`${42}`)   // numbers must become text first
    /// ```
    ///
    /// Fails when: always: the data is not a string or a blob.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn send_wrong_type(_c: &mut Conn, data: Dynamic) -> ScriptResult<i64> {
        Err(fail("send")(super::wrong_type("a string or a blob", &data)))
    }

    /// Sends a string followed by `"\n"`; returns the bytes sent.
    ///
    /// ```rhai
    /// c.send_line("hello");
    /// ```
    ///
    /// Fails when: the connection is closed or was shut down for sending, or
    /// the peer reset it.
    #[rhai_fn(return_raw, pure)]
    pub fn send_line(c: &mut Conn, line: &str) -> ScriptResult<i64> {
        let mut data = Vec::with_capacity(line.len() + 1);
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
        c.send(&data).map(|n| n as i64).map_err(fail("send_line"))
    }

    /// Whatever arrives next, as a string (as much as has arrived, at least
    /// one byte); `""` when the peer has closed its side.
    ///
    /// ```rhai
    /// let reply = c.recv();
    /// if reply == "" { print("the peer closed") }
    /// ```
    ///
    /// Fails when: the data is not UTF-8 text (use `read`), the read timeout
    /// passes, the connection is closed or reset, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn recv(c: &mut Conn) -> ScriptResult<String> {
        c.recv().map_err(fail("recv"))
    }

    /// The next line, without its `"\n"` or `"\r\n"`; `()` at end of stream
    /// (so an empty line `""` and the end are told apart). A last line
    /// without a newline is returned as it is.
    ///
    /// ```rhai
    /// loop { let line = c.recv_line(); if line == () { break } print(line) }
    /// ```
    ///
    /// Fails when: the line is not UTF-8 text (its bytes are consumed), it is
    /// longer than 1 MiB, the read timeout passes, the connection is closed
    /// or reset, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn recv_line(c: &mut Conn) -> ScriptResult<Dynamic> {
        c.recv_line()
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_line"))
    }

    /// The text before `delim`, which is consumed and not returned; at end of
    /// stream without the delimiter, what arrived; `()` if nothing did.
    ///
    /// ```rhai
    /// let headers = c.recv_until("\r\n\r\n");
    /// ```
    ///
    /// Fails when: `delim` is empty, the text is not UTF-8, more than 1 MiB
    /// arrives without the delimiter, the read timeout passes, the connection
    /// is closed or reset, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn recv_until(c: &mut Conn, delim: &str) -> ScriptResult<Dynamic> {
        c.recv_until(delim)
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_until"))
    }

    /// Exactly `n` bytes as a blob, or fewer if the peer closes first (an
    /// empty blob at end of stream).
    ///
    /// ```rhai
    /// let header = c.read(4);
    /// ```
    ///
    /// Fails when: `n` is negative, the read timeout passes, the connection
    /// is closed or reset, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn read(c: &mut Conn, n: i64) -> ScriptResult<Blob> {
        byte_count(n).and_then(|n| c.read(n)).map_err(fail("read"))
    }

    /// Every byte until the peer closes its side, as a blob.
    ///
    /// ```rhai
    /// c.shutdown(); let reply = c.read_all();
    /// ```
    ///
    /// Fails when: the read timeout passes (between two chunks), the
    /// connection is closed or reset, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn read_all(c: &mut Conn) -> ScriptResult<Blob> {
        c.read_all().map_err(fail("read_all"))
    }

    /// Half-close: sends FIN so the peer reads end of stream; this side can
    /// still read the peer's answer. Calling it again does nothing.
    ///
    /// ```rhai
    /// c.send("request"); c.shutdown(); print(c.recv());
    /// ```
    ///
    /// Fails when: the connection is closed, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn shutdown(c: &mut Conn) -> ScriptResult<()> {
        c.shutdown().map_err(fail("shutdown"))
    }

    /// Closes the connection both ways; a read or send blocked in another
    /// task returns with an error. Closing twice does nothing.
    ///
    /// ```rhai
    /// c.close();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "close")]
    pub fn close_conn(c: &mut Conn) {
        c.close();
    }

    /// Whether `close()` was called on this connection.
    ///
    /// ```rhai
    /// c.closed   // false
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "closed", pure)]
    pub fn conn_closed(c: &mut Conn) -> bool {
        c.is_closed()
    }

    /// The kernel's view of the connection (Linux TCP_INFO): `state`
    /// (ESTABLISHED, FIN_WAIT2, CLOSE_WAIT…), `rtt_us`, `rttvar_us`,
    /// `retransmits`, `total_retrans`, `snd_cwnd`, `unacked`, bytes and
    /// segment counters, `local`, `peer`.
    ///
    /// ```rhai
    /// let i = c.info(); print(`${i.state} rtt ${i.rtt_us} µs`);
    /// ```
    ///
    /// Fails when: the connection is closed.
    #[rhai_fn(return_raw, pure)]
    pub fn info(c: &mut Conn) -> ScriptResult<Map> {
        c.info().map_err(fail("info"))
    }

    /// The timeout in milliseconds of reads, and of sends the peer takes no
    /// data for; 0 means they wait as long as it takes (Ctrl-C still stops
    /// them).
    ///
    /// ```rhai
    /// c.timeout   // 0
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "timeout", pure)]
    pub fn get_timeout(c: &mut Conn) -> i64 {
        c.read_timeout().map_or(0, |d| d.as_millis() as i64)
    }

    /// Sets the timeout in milliseconds (0 = none) of every read, and of a
    /// send while the peer takes no data. A read that times out fails with a
    /// message saying so, and the connection stays usable (a send that times
    /// out says how much of its data went out).
    ///
    /// ```rhai
    /// c.timeout = 2000;
    /// ```
    ///
    /// Fails when: `ms` is negative.
    #[rhai_fn(set = "timeout", return_raw)]
    pub fn set_timeout_property(c: &mut Conn, ms: i64) -> ScriptResult<()> {
        set_timeout(c, ms)
    }

    /// Sets the read timeout in milliseconds (0 = none), like `c.timeout = ms`.
    ///
    /// ```rhai
    /// c.set_timeout(2000);
    /// ```
    ///
    /// Fails when: `ms` is negative.
    #[rhai_fn(return_raw)]
    pub fn set_timeout(c: &mut Conn, ms: i64) -> ScriptResult<()> {
        let timeout = crate::net::helpers::millis(ms, "timeout").map_err(fail("set_timeout"))?;
        c.set_read_timeout((!timeout.is_zero()).then_some(timeout));
        Ok(())
    }

    /// The local end of a connection, as `"ip:port"`.
    ///
    /// ```rhai
    /// c.local
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "local", pure)]
    pub fn local(c: &mut Conn) -> String {
        c.local().to_string()
    }

    /// The remote end of a connection, as `"ip:port"`.
    ///
    /// ```rhai
    /// c.peer
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "peer", pure)]
    pub fn peer(c: &mut Conn) -> String {
        c.peer().to_string()
    }

    /// How a connection prints: `Conn(127.0.0.1:50000 → 127.0.0.1:9000)`.
    ///
    /// ```rhai
    /// print(c)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn conn_to_string(c: &mut Conn) -> String {
        format!("{c:?}")
    }

    // Per-call timeouts: `ms` (0 = no limit) or `#{timeout: ms}`, in place
    // of `c.timeout` for this one call.

    /// `recv()` waiting at most `ms` milliseconds (0: no limit), whatever
    /// `c.timeout` says.
    ///
    /// ```rhai
    /// let reply = c.recv(500);
    /// ```
    ///
    /// Fails when: `ms` is negative, nothing arrives in time (the connection
    /// stays usable), or as `recv()`.
    #[rhai_fn(return_raw, pure, name = "recv")]
    pub fn recv_ms(c: &mut Conn, ms: i64) -> ScriptResult<String> {
        wait_limit(ms)
            .and_then(|t| c.recv_within(t))
            .map_err(fail("recv"))
    }

    /// `recv()` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let reply = c.recv(#{timeout: 500});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, nothing arrives in
    /// time, or as `recv()`.
    #[rhai_fn(return_raw, pure, name = "recv")]
    pub fn recv_options(c: &mut Conn, options: Map) -> ScriptResult<String> {
        wait_option(&options, c.read_timeout())
            .and_then(|t| c.recv_within(t))
            .map_err(fail("recv"))
    }

    /// `recv_line()` waiting at most `ms` milliseconds (0: no limit).
    ///
    /// ```rhai
    /// let line = c.recv_line(500);
    /// ```
    ///
    /// Fails when: `ms` is negative, no whole line arrives in time (what did
    /// arrive is kept for the next read), or as `recv_line()`.
    #[rhai_fn(return_raw, pure, name = "recv_line")]
    pub fn recv_line_ms(c: &mut Conn, ms: i64) -> ScriptResult<Dynamic> {
        wait_limit(ms)
            .and_then(|t| c.recv_line_within(t))
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_line"))
    }

    /// `recv_line()` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let line = c.recv_line(#{timeout: 500});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, no whole line
    /// arrives in time, or as `recv_line()`.
    #[rhai_fn(return_raw, pure, name = "recv_line")]
    pub fn recv_line_options(c: &mut Conn, options: Map) -> ScriptResult<Dynamic> {
        wait_option(&options, c.read_timeout())
            .and_then(|t| c.recv_line_within(t))
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_line"))
    }

    /// `recv_until(delim)` waiting at most `ms` milliseconds (0: no limit).
    ///
    /// ```rhai
    /// let headers = c.recv_until("\r\n\r\n", 2000);
    /// ```
    ///
    /// Fails when: `ms` is negative, the delimiter does not arrive in time
    /// (what did is kept for the next read), or as `recv_until(delim)`.
    #[rhai_fn(return_raw, pure, name = "recv_until")]
    pub fn recv_until_ms(c: &mut Conn, delim: &str, ms: i64) -> ScriptResult<Dynamic> {
        wait_limit(ms)
            .and_then(|t| c.recv_until_within(delim, t))
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_until"))
    }

    /// `recv_until(delim)` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let headers = c.recv_until("\r\n\r\n", #{timeout: 2000});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, the delimiter does
    /// not arrive in time, or as `recv_until(delim)`.
    #[rhai_fn(return_raw, pure, name = "recv_until")]
    pub fn recv_until_options(c: &mut Conn, delim: &str, options: Map) -> ScriptResult<Dynamic> {
        wait_option(&options, c.read_timeout())
            .and_then(|t| c.recv_until_within(delim, t))
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_until"))
    }

    /// `read(n)` waiting at most `ms` milliseconds (0: no limit).
    ///
    /// ```rhai
    /// let header = c.read(4, 1000);
    /// ```
    ///
    /// Fails when: `n` or `ms` is negative, the `n` bytes do not arrive in
    /// time (those that did are kept for the next read), or as `read(n)`.
    #[rhai_fn(return_raw, pure, name = "read")]
    pub fn read_ms(c: &mut Conn, n: i64, ms: i64) -> ScriptResult<Blob> {
        byte_count(n)
            .and_then(|n| c.read_within(n, wait_limit(ms)?))
            .map_err(fail("read"))
    }

    /// `read(n)` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let header = c.read(4, #{timeout: 1000});
    /// ```
    ///
    /// Fails when: `n` is negative, an option is unknown or not a number, the
    /// bytes do not arrive in time, or as `read(n)`.
    #[rhai_fn(return_raw, pure, name = "read")]
    pub fn read_options(c: &mut Conn, n: i64, options: Map) -> ScriptResult<Blob> {
        byte_count(n)
            .and_then(|n| c.read_within(n, wait_option(&options, c.read_timeout())?))
            .map_err(fail("read"))
    }

    /// `read_all()` with at most `ms` milliseconds between two chunks (0: no
    /// limit).
    ///
    /// ```rhai
    /// c.shutdown(); let reply = c.read_all(5000);
    /// ```
    ///
    /// Fails when: `ms` is negative, the peer sends nothing for that long
    /// without closing, or as `read_all()`.
    #[rhai_fn(return_raw, pure, name = "read_all")]
    pub fn read_all_ms(c: &mut Conn, ms: i64) -> ScriptResult<Blob> {
        wait_limit(ms)
            .and_then(|t| c.read_all_within(t))
            .map_err(fail("read_all"))
    }

    /// `read_all()` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let reply = c.read_all(#{timeout: 5000});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, the peer sends
    /// nothing for that long without closing, or as `read_all()`.
    #[rhai_fn(return_raw, pure, name = "read_all")]
    pub fn read_all_options(c: &mut Conn, options: Map) -> ScriptResult<Blob> {
        wait_option(&options, c.read_timeout())
            .and_then(|t| c.read_all_within(t))
            .map_err(fail("read_all"))
    }

    /// `accept()` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let c = l.accept(#{timeout: 5000});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, nobody connects in
    /// time, the listener was closed, or the wait is interrupted.
    #[rhai_fn(return_raw, pure, name = "accept")]
    pub fn accept_options(l: &mut Listener, options: Map) -> ScriptResult<Conn> {
        wait_option(&options, None)
            .and_then(|t| l.accept(t))
            .map_err(fail("accept"))
    }

    /// How a listener prints: `Listener(0.0.0.0:9000)`.
    ///
    /// ```rhai
    /// print(l)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn listener_to_string(l: &mut Listener) -> String {
        format!("{l:?}")
    }
}
