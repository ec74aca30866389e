//! The sending side of an upload: framed (header, resume offer, body, SHA-256,
//! wait for the receiver's confirmation) or raw (bytes, then half-close).
//!
//! Raw mode hands the socket to the kernel with `sendfile(2)`, so file pages
//! go to the socket without passing through this process; framed mode reads
//! and hashes in one pass on a blocking thread instead, because its bytes
//! must be hashed anyway and reading them twice costs more than it saves.

use std::{
    fs::File,
    ops::Range,
    os::unix::fs::OpenOptionsExt,
    path::Path,
    sync::{Arc, atomic::Ordering, mpsc as std_mpsc},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

use super::{
    disk::{self, CHUNK, IN_FLIGHT},
    protocol::{self, Code, Header, Reply},
};
use crate::error::{Error, Result};
use crate::net::progress::Progress;
use crate::net::tcp::{Conn, Endpoint, IoWriter, ZeroCopy};

/// How a sender behaves; built from the Rhai options map.
#[derive(Debug, Clone)]
pub struct SendOptions {
    pub raw: bool,
    /// Offer to continue an interrupted upload (framed mode).
    pub resume: bool,
    /// The longest any single wait may take (connect, a reply, a write).
    pub timeout: Duration,
    /// The name to send instead of the file's own.
    pub name: Option<String>,
    /// Bytes per second at most, like curl's `--limit-rate`.
    pub rate_limit: Option<u64>,
    /// Use `sendfile(2)` in raw mode.
    pub zero_copy: bool,
    /// Compute the SHA-256 in raw mode (framed mode always does); off by default.
    pub hash: bool,
    /// Raw mode: send the file from this byte on (like `dd skip=`).
    pub offset: u64,
    /// Raw mode: send at most this many bytes (like `dd count=`).
    pub length: Option<u64>,
    /// Connect with TLS (a connection given to `send_file` is as it is).
    pub tls: Option<crate::net::tls::ClientTls>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            raw: false,
            resume: true,
            timeout: Duration::from_secs(30),
            name: None,
            rate_limit: None,
            zero_copy: true,
            // Raw mode is nc's job: bytes only, at full speed. Hashing on the
            // side costs a core, which on a 2-core machine is 30% of the rate.
            hash: false,
            offset: 0,
            length: None,
            tls: None,
        }
    }
}

/// The longest the sender waits for the receiver's confirmation after the
/// last byte: the receiver fsyncs the whole file first, which on a slow disk
/// takes a while for a big file.
const MIN_CONFIRM_WAIT: Duration = Duration::from_secs(120);

/// What a finished upload reports.
#[derive(Debug, Clone)]
pub struct Sent {
    pub name: String,
    /// The file's size.
    pub bytes: u64,
    /// The bytes of file data put on the wire this time.
    pub sent: u64,
    /// Where the body started (non-zero when an earlier upload was resumed).
    pub resumed_from: u64,
    /// `None` in raw mode with `hash: false`.
    pub sha256: Option<[u8; 32]>,
    pub seconds: f64,
    /// True when the receiver confirmed the same SHA-256 (framed mode).
    pub verified: bool,
}

/// The file an upload sends: open, its size known, its name checked.
#[derive(Debug)]
pub struct Source {
    file: File,
    size: u64,
    name: String,
}

impl Source {
    /// Opens `path` and settles everything about it before any connection
    /// is made: a missing file or an unusable name must not cost the
    /// receiver a refused upload. A file whose size the kernel does not
    /// know (`/proc`, `/sys`) is read ahead, so what is sent is exactly
    /// what a read returns.
    pub fn open(path: &Path, options: &SendOptions) -> Result<Source> {
        let shown = crate::net::helpers::quoted(path);
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
        // refused below); regular files ignore the flag.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| crate::net::helpers::file_error("reading", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| crate::net::helpers::file_error("reading", path, e))?;
        if meta.is_dir() {
            return Err(Error::invalid(format!(
                "{shown} is a folder; send_file sends one file (send each file in it)"
            )));
        }
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "{shown} is not a regular file, so its size is unknown"
            )));
        }
        let (file, size) = if disk::size_is_unreliable(&file, meta.len()) {
            disk::snapshot(&mut file)
                .map_err(|e| crate::net::helpers::file_error("reading", path, e))?
                .ok_or_else(|| {
                    Error::TooBig(format!(
                        "{shown} does not report its size (a /proc or /sys file?) and holds more than {} MiB; copy it to a regular file and send that",
                        disk::MAX_SNAPSHOT >> 20
                    ))
                })?
        } else {
            (file, meta.len())
        };
        if !options.raw && (options.offset > 0 || options.length.is_some()) {
            return Err(Error::invalid(
                "'offset' and 'length' send part of a file, which only raw mode can (add raw: true)",
            ));
        }
        if options.offset > size {
            return Err(Error::invalid(format!(
                "offset {} is past the end of {shown} ({size} bytes)",
                options.offset
            )));
        }
        let name = match &options.name {
            Some(name) => name.clone(),
            None => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| Error::invalid(format!("{shown} has no file name")))?,
        };
        // Raw mode sends no name; framed mode checks it here too, since a
        // clear local error beats a refusal.
        let name = if options.raw {
            name
        } else {
            protocol::safe_name(name.as_bytes())
                .map_err(|r| Error::invalid(format!("cannot send as '{name}': {}", r.message)))?
        };
        Ok(Source { file, size, name })
    }
}

/// Sends `source` over `conn`. With `wait_close` (a connection this upload
/// opened itself), raw mode waits briefly for the peer to close after the
/// half-close, so the caller returns once the receiver has everything.
pub async fn send(
    conn: Conn,
    source: Source,
    options: SendOptions,
    progress: Arc<Progress>,
    wait_close: bool,
) -> Result<Sent> {
    // `close()` from another task ends the upload, as it ends a blocked read.
    tokio::select! {
        biased;
        _ = conn.until_closed() => Err(conn.closed_error()),
        sent = send_on(&conn, source, options, progress, wait_close) => sent,
    }
}

async fn send_on(
    conn: &Conn,
    source: Source,
    options: SendOptions,
    progress: Arc<Progress>,
    wait_close: bool,
) -> Result<Sent> {
    let started = Instant::now();
    let Source { file, size, name } = source;
    progress.total.store(size, Ordering::Relaxed);
    let mut io = conn.lock_io().await?;
    let (mut reader, writer) = io.halves(conn)?;
    let peer = conn.peer();
    let out = Outgoing {
        options: &options,
        progress: &progress,
        peer,
    };
    let mut sent = if options.raw {
        // Source::open checked that the offset lies within the file.
        let end = options
            .length
            .map_or(size, |n| options.offset.saturating_add(n).min(size));
        let size = end - options.offset;
        progress.total.store(size, Ordering::Relaxed);
        // A raw receiver takes FIN as the end of the file, so a send that
        // fails (or is dropped: Ctrl-C, a progress callback that throws)
        // must end in RST instead, or the part sent is stored as complete.
        let reset = ResetUnlessFinished(Some(conn));
        let sha256 = send_raw(writer, file, options.offset..end, out).await?;
        reset.finished();
        // Half-close: the receiver sees EOF, which is where a raw file ends.
        let _ = writer.shutdown().await;
        if wait_close {
            let _ = wait_for_close(&mut reader, Duration::from_secs(2).min(options.timeout)).await;
        }
        io.close_writer();
        Sent {
            name,
            bytes: size,
            sent: size,
            resumed_from: 0,
            sha256,
            seconds: 0.0,
            verified: false,
        }
    } else {
        send_framed(&mut reader, writer, file, size, name, out).await?
    };
    sent.seconds = started.elapsed().as_secs_f64();
    Ok(sent)
}

/// What every stage of one send shares: its options, the progress it
/// counts, and the peer its errors name.
#[derive(Clone, Copy)]
struct Outgoing<'a> {
    options: &'a SendOptions,
    progress: &'a Progress,
    peer: &'a Endpoint,
}

impl<'a> Outgoing<'a> {
    fn parts(self) -> (&'a SendOptions, &'a Progress, &'a Endpoint) {
        (self.options, self.progress, self.peer)
    }
}

async fn send_framed<R: AsyncRead + Unpin>(
    reader: &mut R,
    writer: &mut IoWriter<'_>,
    file: File,
    size: u64,
    name: String,
    out: Outgoing<'_>,
) -> Result<Sent> {
    let (options, progress, peer) = out.parts();
    let header = Header {
        flags: if options.resume {
            protocol::FLAG_RESUME
        } else {
            0
        },
        size,
        name: name.clone().into_bytes(),
    };
    write_within(writer, &header.encode(), options.timeout, peer).await?;
    let offered = match protocol::read_reply(reader, Some(options.timeout)).await? {
        Reply::Ready { offset } => offset,
        Reply::Error(code, message) => return Err(refused(code, &message)),
        other => {
            return Err(Error::Protocol(format!(
                "the receiver sent {} where READY was due",
                other.name()
            )));
        }
    };
    if offered > size {
        return Err(Error::Protocol(format!(
            "the receiver offered to resume at byte {offered} of a {size}-byte file"
        )));
    }
    // To continue, prove we hold the bytes the receiver kept: the SHA-256
    // of our own first `offered` bytes. The hash state carries on from
    // there, so the file is still read only once in all.
    let (prefix, ours) = if offered > 0 {
        let mut prefix_file = file
            .try_clone()
            .map_err(|e| Error::io("reading the file", None, e))?;
        let (hasher, read) =
            tokio::task::spawn_blocking(move || disk::hash_prefix(&mut prefix_file, offered))
                .await
                .map_err(|e| Error::Protocol(format!("hashing failed: {e}")))?
                .map_err(|e| Error::io("reading the file", None, e))?;
        if read == offered {
            (Some(disk::digest_of(&hasher)), hasher)
        } else {
            (None, Sha256::new())
        }
    } else {
        (None, Sha256::new())
    };
    let start_message = protocol::Start {
        offset: if prefix.is_some() { offered } else { 0 },
        prefix: prefix.unwrap_or_default(),
    };
    write_within(writer, &start_message.encode(), options.timeout, peer).await?;
    // Starting at 0 needs no answer first: GO 0 is read later, before the
    // final reply. Continuing waits for GO, which follows the receiver's
    // hashing of its part file (so the longer wait).
    let (start, hasher) = if start_message.offset > 0 {
        let wait = options.timeout.max(MIN_CONFIRM_WAIT);
        match protocol::read_reply(reader, Some(wait)).await? {
            Reply::Go { offset } if offset == offered => (offered, ours),
            Reply::Go { offset: 0 } => (0, Sha256::new()),
            Reply::Go { offset } => {
                return Err(Error::Protocol(format!(
                    "the receiver said to send from byte {offset}, neither 0 nor the {offered} it offered"
                )));
            }
            Reply::Error(code, message) => return Err(refused(code, &message)),
            other => {
                return Err(Error::Protocol(format!(
                    "the receiver sent {} where GO was due",
                    other.name()
                )));
            }
        }
    } else {
        (0, Sha256::new())
    };
    progress.resumed_from.store(start, Ordering::Relaxed);
    progress.done.store(start, Ordering::Relaxed);

    // The receiver may refuse in the middle (disk full, stalled too long):
    // listen for its reply while sending, so its reason is what the user
    // sees rather than "broken pipe".
    let go_pending = start_message.offset == 0;
    let mut reply = std::pin::pin!(async {
        if go_pending {
            match protocol::read_reply(reader, None).await? {
                Reply::Go { offset: 0 } => {}
                Reply::Go { offset } => {
                    return Err(Error::Protocol(format!(
                        "the receiver said to send from byte {offset} after START at 0"
                    )));
                }
                other => return Ok(other),
            }
        }
        protocol::read_reply(reader, None).await
    });
    let body = async {
        let hash = send_chunks(writer, file, Some(hasher), start..size, out)
            .await?
            .ok_or_else(|| Error::Protocol("the file was not hashed".into()))?;
        let mut trailer = vec![protocol::MSG_HASH];
        trailer.extend_from_slice(&hash);
        write_within(writer, &trailer, options.timeout, peer).await?;
        Ok::<_, Error>(hash)
    };
    let sha256 = tokio::select! {
        biased;
        early = &mut reply => {
            return Err(match early {
                Ok(Reply::Error(code, message)) => refused(code, &message),
                Ok(other) => Error::Protocol(format!(
                    "the receiver sent {} before the file was sent",
                    other.name()
                )),
                Err(e) => e,
            });
        }
        hash = body => match hash {
            Ok(hash) => hash,
            Err(e) => {
                // A write failed: the receiver probably said why first.
                return Err(match tokio::time::timeout(Duration::from_secs(1), &mut reply).await {
                    Ok(Ok(Reply::Error(code, message))) => refused(code, &message),
                    _ => e,
                });
            }
        }
    };
    let wait = options.timeout.max(MIN_CONFIRM_WAIT);
    let answer = tokio::time::timeout(wait, &mut reply)
        .await
        .map_err(|_| Error::Timeout {
            what: format!("waiting for the receiver to confirm '{name}'"),
            after: wait,
        })??;
    match answer {
        Reply::Done {
            size: their_size,
            sha256: theirs,
        } if their_size == size && theirs == sha256 => Ok(Sent {
            name,
            bytes: size,
            sent: size - start,
            resumed_from: start,
            sha256: Some(sha256),
            seconds: 0.0,
            verified: true,
        }),
        Reply::Done { sha256: theirs, .. } => Err(Error::Protocol(format!(
            "the receiver confirmed '{name}' with SHA-256 {} but ours is {}",
            hex::encode(theirs),
            hex::encode(sha256)
        ))),
        Reply::Error(code, message) => Err(refused(code, &message)),
        other => Err(Error::Protocol(format!(
            "the receiver sent {} where a confirmation was due",
            other.name()
        ))),
    }
}

/// Streams `start..end` of `file` to the socket, reading and hashing (when
/// given a hasher) on a blocking thread; returns the SHA-256 of the whole file.
async fn send_chunks(
    writer: &mut IoWriter<'_>,
    file: File,
    hasher: Option<Sha256>,
    Range { start, end }: Range<u64>,
    out: Outgoing<'_>,
) -> Result<Option<[u8; 32]>> {
    let (options, progress, peer) = out.parts();
    let (to_socket, mut chunks) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let (give_back, spare) = std_mpsc::channel::<Vec<u8>>();
    let reading = tokio::task::spawn_blocking(move || {
        disk::read_chunks(file, hasher, start, end, to_socket, spare)
    });
    let pacer = Pacer::new(options.rate_limit);
    let mut sent = 0u64;
    while let Some(chunk) = chunks.recv().await {
        write_within(writer, &chunk, options.timeout, peer).await?;
        sent += chunk.len() as u64;
        progress
            .done
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        pacer.pace(sent).await;
        let _ = give_back.send(chunk);
    }
    let hasher = reading
        .await
        .map_err(|e| Error::Protocol(format!("the file reader failed: {e}")))?
        .map_err(|e| Error::io("reading the file", None, e))?;
    Ok(hasher.map(|h| h.finalize().into()))
}

/// Raw mode: bytes `start..end` of the file and nothing else. Returns
/// their SHA-256 unless told not to compute it.
async fn send_raw(
    writer: &mut IoWriter<'_>,
    file: File,
    Range { start, end }: Range<u64>,
    out: Outgoing<'_>,
) -> Result<Option<[u8; 32]>> {
    let options = out.options;
    // Hashing on the side reads the whole file, so a part of it is hashed
    // as it is read instead; TLS has no zero-copy path (every byte is
    // encrypted on its way).
    let part = start > 0 || options.length.is_some();
    let socket = match writer.zero_copy() {
        Some(socket) if options.zero_copy && !(options.hash && part) => socket,
        _ => {
            let hasher = options.hash.then(Sha256::new);
            return send_chunks(writer, file, hasher, start..end, out).await;
        }
    };
    // The bytes never enter this process, so hash them on the other core
    // from the page cache while the kernel sends them.
    let hashing = if options.hash {
        let hash_file = file
            .try_clone()
            .map_err(|e| Error::io("reading the file", None, e))?;
        Some(tokio::task::spawn_blocking(move || {
            disk::hash_file(hash_file)
        }))
    } else {
        None
    };
    sendfile_all(socket, &file, start..end, out).await?;
    match hashing {
        Some(hashing) => hashing
            .await
            .map_err(|e| Error::Protocol(format!("hashing failed: {e}")))?
            .map_err(|e| Error::io("reading the file", None, e))
            .map(Some),
        None => Ok(None),
    }
}

/// `sendfile(2)` of bytes `start..end` of `file` to the socket, waiting
/// for tokio's write readiness whenever the socket buffer is full.
async fn sendfile_all(
    socket: ZeroCopy<'_>,
    file: &File,
    Range { start, end }: Range<u64>,
    out: Outgoing<'_>,
) -> Result<()> {
    let (options, progress, peer) = out.parts();
    // Smaller steps when pacing, so the rate limit is smooth.
    let step = if options.rate_limit.is_some() {
        CHUNK
    } else {
        16 << 20
    };
    let pacer = Pacer::new(options.rate_limit);
    let mut offset = start;
    while offset < end {
        let want = (end - offset).min(step as u64) as usize;
        tokio::time::timeout(options.timeout, socket.writable())
            .await
            .map_err(|_| stalled(peer, options.timeout))?
            .map_err(|e| Error::io("sending", peer.ip(), e))?;
        let result = socket.try_write(|| {
            let mut at = libc::off_t::try_from(offset).unwrap_or(libc::off_t::MAX);
            nix::sys::sendfile::sendfile(socket, file, Some(&mut at), want)
                .map_err(std::io::Error::from)
        });
        match result {
            Ok(0) => return Err(Error::io("reading the file", None, disk::shrank(offset))),
            Ok(n) => {
                offset += n as u64;
                progress.done.fetch_add(n as u64, Ordering::Relaxed);
                pacer.pace(offset - start).await;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(Error::io("sending", peer.ip(), e)),
        }
    }
    Ok(())
}

/// Resets the connection when dropped, unless [`ResetUnlessFinished::finished`]
/// was called: a raw send that did not finish must not look finished.
struct ResetUnlessFinished<'a>(Option<&'a Conn>);

impl ResetUnlessFinished<'_> {
    fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for ResetUnlessFinished<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0 {
            conn.abort();
        }
    }
}

/// Reads and discards until the peer closes (or `wait` passes).
async fn wait_for_close<R: AsyncRead + Unpin>(reader: &mut R, wait: Duration) -> Result<()> {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(wait, async {
        while let Ok(n) = reader.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    Ok(())
}

async fn write_within(
    writer: &mut IoWriter<'_>,
    bytes: &[u8],
    timeout: Duration,
    peer: &Endpoint,
) -> Result<()> {
    // The flush matters on TLS, where written bytes may wait in the
    // session until flushed; on plain TCP it does nothing.
    let write = async {
        writer.write_all(bytes).await?;
        writer.flush().await
    };
    tokio::time::timeout(timeout, write)
        .await
        .map_err(|_| stalled(peer, timeout))?
        .map_err(|e| Error::io("sending", peer.ip(), e))
}

fn stalled(peer: &Endpoint, after: Duration) -> Error {
    Error::Timeout {
        what: format!("sending to {peer} (the receiver stopped reading)"),
        after,
    }
}

/// A receiver's refusal as the sender reports it; `message` is the
/// receiver's own words, already made printable by the decoder.
fn refused(code: Code, message: &str) -> Error {
    let hint = if code == Code::Version {
        " (the two sides run netsh versions that speak different upload protocols)"
    } else {
        ""
    };
    Error::Upload {
        kind: code.kind(),
        message: format!(
            "the receiver refused the upload: {message} ({}){hint}",
            code.name()
        ),
    }
}

/// Keeps an average rate at or under a limit by sleeping when ahead.
struct Pacer {
    rate: Option<u64>,
    started: Instant,
}

impl Pacer {
    fn new(rate: Option<u64>) -> Pacer {
        Pacer {
            rate: rate.filter(|r| *r > 0),
            started: Instant::now(),
        }
    }

    async fn pace(&self, sent: u64) {
        if let Some(rate) = self.rate {
            let due =
                Duration::try_from_secs_f64(sent as f64 / rate as f64).unwrap_or(Duration::MAX);
            let elapsed = self.started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
}
