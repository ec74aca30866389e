//! The receiving side of an upload, framed or raw, over any connection:
//! `recv_file` runs it once, `serve_files` once per accepted connection.
//!
//! The rule it keeps: a file appears under its final name only after every
//! byte has arrived, the SHA-256 matches the sender's, and the data is
//! fsync'd. Until then it lives in `.NAME.netsh-part` beside it, which is
//! also what an interrupted upload resumes from, and only for a sender that
//! proves it has the same first bytes (protocol version 2).

use std::{
    fs::{File, OpenOptions},
    net::IpAddr,
    os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::mpsc as std_mpsc,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::mpsc,
};

use super::{
    disk::{self, CHUNK, IN_FLIGHT},
    protocol::{self, Code, Header, ReadFail, Refusal, Reply, Start},
};
use crate::error::{Error, Result, os_words};
use crate::net::tcp::Endpoint;

/// How a receiver behaves; built from the Rhai options map.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// Plain bytes until EOF instead of the framed protocol.
    pub raw: bool,
    /// The file name in raw mode (framed mode takes the sender's).
    pub name: Option<String>,
    pub overwrite: bool,
    pub max_size: Option<u64>,
    /// The whole header must arrive within this time.
    pub header_timeout: Duration,
    /// Any later wait for the sender (between chunks) is at most this.
    pub idle_timeout: Duration,
    /// `serve_files`: client addresses allowed to upload, checked as a
    /// connection is accepted (see `gate.rs`); empty means everyone.
    pub allow: Vec<Cidr>,
    /// `serve_files`: how many uploads are received at once; more wait
    /// (their senders wait for READY) until one ends.
    pub max_uploads: usize,
    /// `serve_files`: how many of those one client address (an IPv6 /64)
    /// may hold; its further uploads wait for one of its own to end.
    pub max_per_ip: usize,
    /// A framed body slower than this (bytes per second, averaged over
    /// each stretch of `idle_timeout`, at most 30 s) is dropped, so a
    /// sender dribbling a byte now and then cannot hold a slot forever.
    pub min_rate: Option<u64>,
    /// Part files untouched this long are abandoned uploads, removed when a
    /// receiver starts on the folder; `None` keeps them forever.
    pub part_max_age: Option<Duration>,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            raw: false,
            name: None,
            overwrite: false,
            max_size: None,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            allow: Vec::new(),
            max_uploads: 64,
            max_per_ip: 8,
            min_rate: Some(1024),
            part_max_age: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// The longest stretch a body's rate is averaged over.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// A file that arrived and is on disk under its final name.
#[derive(Debug, Clone)]
pub struct Received {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: [u8; 32],
    /// True when the sender's SHA-256 was checked (framed mode).
    pub verified: bool,
    /// Bytes that were already here from an earlier, interrupted upload.
    pub resumed_from: u64,
    pub peer: Endpoint,
    pub seconds: f64,
}

/// Called once a file is on disk under its final name, before the sender
/// hears so: whoever counts uploads is up to date when `send_file` returns.
pub type OnStored<'a> = &'a mut (dyn FnMut(&Received) + Send);

/// What an upload holds while it runs once its header is accepted (a slot
/// of `serve_files`), released when the upload ends, before any refusal
/// is told to the sender.
pub type Admission = Box<dyn Send>;

/// Receives one upload from `peer` into `dir`. `admit` runs once a valid
/// header has arrived and waits for the upload's turn (or refuses it).
pub async fn receive<R, W>(
    reader: &mut R,
    writer: &mut W,
    peer: &Endpoint,
    dir: &Path,
    options: &ReceiveOptions,
    admit: impl AsyncFnOnce() -> std::result::Result<Admission, Refusal>,
    on_stored: OnStored<'_>,
) -> Result<Received>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let incoming = Incoming {
        peer,
        dir,
        options,
        started: Instant::now(),
    };
    let outcome = if options.raw {
        receive_raw(reader, incoming)
            .await
            .inspect(|received| on_stored(received))
    } else {
        receive_framed(reader, writer, incoming, admit, on_stored).await
    };
    match outcome {
        Ok(received) => Ok(received),
        Err(refusal) => {
            if !options.raw {
                tell_sender(reader, writer, &refusal).await;
            }
            Err(refused_upload(peer, &refusal))
        }
    }
}

/// A refusal as the receiving side reports it.
pub fn refused_upload(peer: &Endpoint, refusal: &Refusal) -> Error {
    Error::Upload {
        kind: refusal.code.kind(),
        message: format!(
            "upload from {peer} failed: {} ({})",
            refusal.message,
            refusal.code.name()
        ),
    }
}

/// Sends the error reply, half-closes, then reads and discards what the
/// sender still has in flight for a moment. Closing with unread data would
/// make the kernel send RST, which can destroy the reply before the sender
/// reads it.
pub async fn tell_sender<R, W>(reader: &mut R, writer: &mut W, refusal: &Refusal)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let reply = Reply::Error(refusal.code, refusal.message.clone()).encode();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = protocol::write_all(writer, &reply).await;
        let _ = writer.shutdown().await;
    })
    .await;
    let mut sink = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(n) = reader.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// What both modes of one upload share: who sends it, where it goes, the
/// options it runs under, and when it began.
#[derive(Clone, Copy)]
struct Incoming<'a> {
    peer: &'a Endpoint,
    dir: &'a Path,
    options: &'a ReceiveOptions,
    started: Instant,
}

impl<'a> Incoming<'a> {
    fn parts(self) -> (&'a Endpoint, &'a Path, &'a ReceiveOptions, Instant) {
        (self.peer, self.dir, self.options, self.started)
    }
}

/// The framed protocol, receiving side (see `docs/PROTOCOL.md`).
async fn receive_framed<R, W>(
    reader: &mut R,
    writer: &mut W,
    incoming: Incoming<'_>,
    admit: impl AsyncFnOnce() -> std::result::Result<Admission, Refusal>,
    on_stored: OnStored<'_>,
) -> std::result::Result<Received, Refusal>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (peer, dir, options, started) = incoming.parts();
    let header = match tokio::time::timeout(options.header_timeout, read_header(reader)).await {
        Ok(header) => header?,
        Err(_) => {
            return Err(Refusal::new(
                Code::Timeout,
                format!(
                    "no complete header within {}",
                    crate::error::human_duration(options.header_timeout)
                ),
            ));
        }
    };
    let name = protocol::safe_name(&header.name)?;
    if let Some(limit) = options.max_size
        && header.size > limit
    {
        return Err(Refusal::new(
            Code::TooLarge,
            format!(
                "'{name}' is {} bytes; this receiver accepts at most {limit}",
                header.size
            ),
        ));
    }
    // Held until this function returns: the upload's place among the
    // receiver's uploads at once.
    let _admission = admit().await?;
    let target = Target::new(dir, &name);
    let resume = header.flags & protocol::FLAG_RESUME != 0;
    let size = header.size;
    let (file, held) = {
        let (target, overwrite) = (target.clone(), options.overwrite);
        run_blocking(move || target.prepare(overwrite)).await?
    };
    // Offer what is held only to a sender that may resume; the part file
    // is untouched until START says how this upload begins.
    let offered = if resume && held > 0 && held <= size {
        held
    } else {
        0
    };
    answer(writer, Reply::Ready { offset: offered }, &name).await?;

    let mut start_message = [0u8; protocol::START_LEN];
    protocol::read_exact_idle(reader, &mut start_message, options.idle_timeout)
        .await
        .map_err(|f| read_refusal(f, &name, "the start message", options.idle_timeout))?;
    let start = Start::decode(&start_message)?;
    if start.offset != 0 && start.offset != offered {
        return Err(Refusal::new(
            Code::Protocol,
            format!(
                "START asked for offset {}, but only 0 or {offered} can be used",
                start.offset
            ),
        ));
    }
    // Continue the part file only for a sender that has the same first
    // bytes; anyone else starts over.
    let (file, from, hasher) = if start.offset > 0 {
        let (file, ours) = {
            let name = name.clone();
            run_blocking(move || {
                let mut file = file;
                let hashed =
                    disk::hash_prefix(&mut file, offered).map_err(|e| storage_error(&name, e))?;
                Ok((file, hashed))
            })
            .await?
        };
        match ours {
            (hasher, read)
                if read == offered && same_digest(&disk::digest_of(&hasher), &start.prefix) =>
            {
                (file, offered, hasher)
            }
            _ => (file, 0, Sha256::new()),
        }
    } else {
        (file, 0, Sha256::new())
    };
    answer(writer, Reply::Go { offset: from }, &name).await?;

    let written = receive_body(reader, file, hasher, from, size, options, &name).await?;
    let mut trailer = [0u8; 33];
    protocol::read_exact_idle(reader, &mut trailer, options.idle_timeout)
        .await
        .map_err(|f| read_refusal(f, &name, "the SHA-256 trailer", options.idle_timeout))?;
    if trailer[0] != protocol::MSG_HASH {
        return Err(Refusal::new(
            Code::Protocol,
            format!("expected the SHA-256 trailer after {size} bytes of '{name}'"),
        ));
    }
    let ours: [u8; 32] = written.hasher.finalize().into();
    if trailer[1..] != ours {
        // Wrong bytes must not be resumed from either. Removed while still
        // locked, so no other upload can have opened it in between.
        let _ = std::fs::remove_file(&target.part);
        drop(written.file);
        return Err(Refusal::new(
            Code::Checksum,
            format!(
                "SHA-256 mismatch for '{name}': received {}, sender says {}; nothing was kept, send it again",
                hex::encode(ours),
                hex::encode(&trailer[1..])
            ),
        ));
    }
    {
        let (target, overwrite) = (target.clone(), options.overwrite);
        run_blocking(move || target.finish(written.file, overwrite)).await?;
    }
    let received = Received {
        name,
        path: target.path,
        bytes: size,
        sha256: ours,
        verified: true,
        resumed_from: from,
        peer: peer.clone(),
        seconds: started.elapsed().as_secs_f64(),
    };
    on_stored(&received);
    let done = Reply::Done { size, sha256: ours };
    // The file is safe on disk; a sender that vanished now is its problem.
    let _ = protocol::write_all(writer, &done.encode()).await;
    let _ = writer.shutdown().await;
    Ok(received)
}

/// Sends the sender a message it needs before going on (READY, GO).
async fn answer<W: AsyncWrite + Unpin>(
    writer: &mut W,
    reply: Reply,
    name: &str,
) -> std::result::Result<(), Refusal> {
    protocol::write_all(writer, &reply.encode())
        .await
        .map_err(|e| {
            cut_off(
                name,
                format!("the answer to the sender failed ({})", os_words(&e)),
            )
        })
}

/// Compares two digests in time that does not depend on where they differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads and checks the header, but not yet the name (see `safe_name`),
/// refusing as soon as the bytes so far cannot begin a header.
async fn read_header<R: AsyncRead + Unpin>(reader: &mut R) -> std::result::Result<Header, Refusal> {
    protocol::read_decoded(reader, Duration::MAX, Header::decode, |fail, have| {
        let what = if have >= protocol::HEADER_FIXED_LEN {
            "the name"
        } else {
            "the header"
        };
        match fail {
            ReadFail::Closed { .. } => Refusal::new(
                Code::BadHeader,
                format!("the sender closed the connection in the middle of {what}"),
            ),
            ReadFail::TimedOut => Refusal::new(Code::Timeout, format!("timed out reading {what}")),
            ReadFail::Io(e) => Refusal::new(Code::Protocol, format!("reading {what}: {e}")),
        }
    })
    .await
}

/// Streams `size - start` bytes from the socket into the part file.
/// The disk thread's result is returned even when the socket failed, so the
/// part file is left at exactly the bytes that arrived (ready to resume).
async fn receive_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    file: File,
    hasher: Sha256,
    start: u64,
    size: u64,
    options: &ReceiveOptions,
    name: &str,
) -> std::result::Result<disk::Written, Refusal> {
    let idle = options.idle_timeout;
    let (to_disk, chunks) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let (give_back, spare) = std_mpsc::channel::<Vec<u8>>();
    let writer = tokio::task::spawn_blocking(move || {
        disk::write_chunks(file, hasher, start, chunks, give_back)
    });
    let mut rate = RateFloor::new(options.min_rate, idle, start);
    let mut position = start;
    let mut failure = None;
    while position < size {
        let want = (size - position).min(CHUNK as u64) as usize;
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(want, 0);
        // A short read is fine: pass on what came, keep the pipe moving.
        let n = match tokio::time::timeout(idle, reader.read(&mut buf)).await {
            Err(_) => {
                failure = Some(Refusal::new(
                    Code::Timeout,
                    format!(
                        "the sender went quiet for {} after {position} of {size} bytes of '{name}'",
                        crate::error::human_duration(idle)
                    ),
                ));
                break;
            }
            Ok(Ok(0)) => {
                failure = Some(cut_off(
                    name,
                    format!("the connection closed after {position} of {size} bytes"),
                ));
                break;
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                failure = Some(cut_off(
                    name,
                    format!(
                        "the connection broke after {position} of {size} bytes ({})",
                        os_words(&e)
                    ),
                ));
                break;
            }
        };
        buf.truncate(n);
        position += n as u64;
        if to_disk.send(buf).await.is_err() {
            break; // the disk thread stopped on an error; it reports it below
        }
        if let Err(slow) = rate.check(position, name) {
            failure = Some(slow);
            break;
        }
    }
    drop(to_disk);
    let written = writer
        .await
        .map_err(|e| Refusal::new(Code::Storage, format!("the disk writer failed: {e}")))?;
    if let Some(e) = written.error {
        return Err(storage_error(name, e));
    }
    match failure {
        Some(refusal) => Err(refusal),
        None => Ok(written),
    }
}

/// The minimum rate of a body: bytes per second averaged over stretches of
/// the idle timeout (at most [`RATE_WINDOW`]).
struct RateFloor {
    min: Option<u64>,
    window: Duration,
    since: Instant,
    at: u64,
}

impl RateFloor {
    fn new(min: Option<u64>, idle: Duration, position: u64) -> RateFloor {
        RateFloor {
            min: min.filter(|m| *m > 0),
            window: idle.min(RATE_WINDOW).max(Duration::from_millis(100)),
            since: Instant::now(),
            at: position,
        }
    }

    /// At the end of each stretch, refuses a body that moved too little in it.
    fn check(&mut self, position: u64, name: &str) -> std::result::Result<(), Refusal> {
        let Some(min) = self.min else {
            return Ok(());
        };
        let elapsed = self.since.elapsed();
        if elapsed < self.window {
            return Ok(());
        }
        let moved = position - self.at;
        if (moved as f64) < min as f64 * elapsed.as_secs_f64() {
            return Err(Refusal::new(
                Code::Timeout,
                format!(
                    "'{name}' arrived too slowly: {moved} bytes in {}, under the minimum of {min} bytes per second; the part received is kept to resume",
                    crate::error::human_duration(elapsed)
                ),
            ));
        }
        self.since = Instant::now();
        self.at = position;
        Ok(())
    }
}

/// Raw mode: every byte until the sender half-closes is the file.
async fn receive_raw<R: AsyncRead + Unpin>(
    reader: &mut R,
    incoming: Incoming<'_>,
) -> std::result::Result<Received, Refusal> {
    let (peer, dir, options, started) = incoming.parts();
    let name = match &options.name {
        Some(name) => protocol::safe_name(name.as_bytes())?,
        None => format!(
            "upload-{}.bin",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        ),
    };
    let target = Target::new(dir, &name);
    let (file, _) = {
        let (target, overwrite) = (target.clone(), options.overwrite);
        run_blocking(move || target.prepare(overwrite)).await?
    };
    let (to_disk, chunks) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let (give_back, spare) = std_mpsc::channel::<Vec<u8>>();
    let writer = tokio::task::spawn_blocking(move || {
        disk::write_chunks(file, Sha256::new(), 0, chunks, give_back)
    });
    let mut position = 0u64;
    let mut failure = None;
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let n = match tokio::time::timeout(options.idle_timeout, reader.read(&mut buf)).await {
            Err(_) => {
                failure = Some(Refusal::new(
                    Code::Timeout,
                    format!(
                        "the sender went quiet for {} after {position} bytes without closing",
                        crate::error::human_duration(options.idle_timeout)
                    ),
                ));
                break;
            }
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                failure = Some(Refusal::new(
                    Code::Protocol,
                    format!(
                        "the raw upload of '{name}' broke after {position} bytes ({}); nothing was kept",
                        os_words(&e)
                    ),
                ));
                break;
            }
        };
        if let Some(limit) = options.max_size
            && position + n as u64 > limit
        {
            failure = Some(Refusal::new(
                Code::TooLarge,
                format!("'{name}' grew past the limit of {limit} bytes"),
            ));
            break;
        }
        buf.truncate(n);
        position += n as u64;
        if to_disk.send(buf).await.is_err() {
            break;
        }
    }
    drop(to_disk);
    let written = writer
        .await
        .map_err(|e| Refusal::new(Code::Storage, format!("the disk writer failed: {e}")))?;
    let failure = failure.or_else(|| written.error.map(|e| storage_error(&name, e)));
    if let Some(refusal) = failure {
        // Raw mode cannot resume (nothing says where the file ends), so a
        // failed raw upload leaves nothing behind. Removed while still
        // locked, so no other upload can have opened it in between.
        let _ = std::fs::remove_file(&target.part);
        drop(written.file);
        return Err(refusal);
    }
    let sha256: [u8; 32] = written.hasher.finalize().into();
    {
        let (target, overwrite, file) = (target.clone(), options.overwrite, written.file);
        run_blocking(move || target.finish(file, overwrite)).await?;
    }
    Ok(Received {
        name,
        path: target.path,
        bytes: position,
        sha256,
        verified: false,
        resumed_from: 0,
        peer: peer.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Where one upload goes: its final path and its part file.
#[derive(Debug, Clone)]
struct Target {
    name: String,
    dir: PathBuf,
    path: PathBuf,
    part: PathBuf,
}

impl Target {
    fn new(dir: &Path, name: &str) -> Target {
        Target {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            path: dir.join(name),
            part: dir.join(protocol::part_name(name)),
        }
    }

    /// Checks the final name, then opens and locks the part file; returns
    /// it with the number of bytes it holds. Nothing is cut or hashed here:
    /// that waits until the sender says how it begins.
    fn prepare(&self, overwrite: bool) -> std::result::Result<(File, u64), Refusal> {
        let name = &self.name;
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Refusal::new(
                    Code::BadName,
                    format!("'{name}' is a symbolic link here; refusing to write through it"),
                ));
            }
            Ok(meta) if meta.is_dir() => {
                return Err(Refusal::new(
                    Code::BadName,
                    format!("'{name}' is a folder here"),
                ));
            }
            Ok(meta) if !meta.is_file() => {
                return Err(Refusal::new(
                    Code::BadName,
                    format!("'{name}' exists here and is not a regular file"),
                ));
            }
            Ok(_) if !overwrite => {
                return Err(Refusal::new(
                    Code::Exists,
                    format!("'{name}' already exists and this receiver does not overwrite files"),
                ));
            }
            // Replaced, not written through, but another name would still
            // show the old file: refuse rather than half-replace.
            Ok(meta) if meta.nlink() > 1 => {
                return Err(hard_linked(&format!("'{name}'")));
            }
            _ => {}
        }
        let not_a_part_file = |what: &str| {
            Refusal::new(
                Code::BadName,
                format!("the part file of '{name}' is {what} here; refusing to use it"),
            )
        };
        // A folder, pipe or device at the part file's name is refused
        // before opening it (opening a device can have effects of its own)
        // and again after (it may have been swapped in between).
        if let Ok(meta) = std::fs::symlink_metadata(&self.part)
            && let Some(what) = not_regular(&meta)
        {
            return Err(not_a_part_file(what));
        }
        // O_NOFOLLOW: a symlink planted at the part file's name must not
        // redirect the write outside the folder. O_NONBLOCK: a FIFO swapped
        // in must not block the open.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.part)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => Refusal::new(
                    Code::BadName,
                    format!("the part file of '{name}' is a symbolic link; refusing"),
                ),
                Some(libc::EISDIR) => not_a_part_file("a folder"),
                Some(libc::ENXIO) => not_a_part_file("a socket or device"),
                _ => storage_error(name, e),
            })?;
        let meta = file.metadata().map_err(|e| storage_error(name, e))?;
        if let Some(what) = not_regular(&meta) {
            return Err(not_a_part_file(what));
        }
        match disk::try_lock(&file) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Refusal::new(
                    Code::Busy,
                    format!("another upload of '{name}' is in progress"),
                ));
            }
            Err(e) => return Err(storage_error(name, e)),
        }
        // The lock may have been won on a part file another upload renamed
        // into place (or removed) a moment ago: then this descriptor is not
        // the part file, and writing to it would damage the finished file.
        let still_the_part = std::fs::symlink_metadata(&self.part)
            .is_ok_and(|now| now.dev() == meta.dev() && now.ino() == meta.ino());
        if !still_the_part {
            return Err(Refusal::new(
                Code::Busy,
                format!("another upload of '{name}' just finished; send again to retry"),
            ));
        }
        // A hard link planted at the part file's name would have this
        // upload write into (and resume from) a file elsewhere.
        if meta.nlink() > 1 {
            return Err(hard_linked(&format!("the part file of '{name}'")));
        }
        Ok((file, meta.len()))
    }

    /// fsync, rename into place, fsync the folder.
    fn finish(&self, file: File, overwrite: bool) -> std::result::Result<(), Refusal> {
        let name = &self.name;
        file.sync_all().map_err(|e| storage_error(name, e))?;
        // The lock is kept until the rename (or the removal) is done, so
        // no second upload of this name can start writing the part file in
        // between.
        let renamed = disk::rename_into_place(&self.part, &self.path, overwrite);
        match renamed {
            Ok(()) => drop(file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&self.part);
                drop(file);
                return Err(Refusal::new(
                    Code::Exists,
                    format!("'{name}' appeared while it was being received; not overwritten"),
                ));
            }
            Err(e) => return Err(storage_error(name, e)),
        }
        disk::sync_dir(&self.dir).map_err(|e| storage_error(name, e))
    }
}

/// What a file that is not a regular file is, in words (`None` for a
/// regular file).
fn not_regular(meta: &std::fs::Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a folder")
    } else if kind.is_symlink() {
        Some("a symbolic link")
    } else if kind.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("a device")
    }
}

/// Removes the part files in `dir` that nobody has written for `max_age`
/// and no upload holds (an upload in progress, here or in another process,
/// keeps its lock); returns each one removed with its age. Only names of
/// the forms this code makes ([`protocol::is_part_name`]), and only
/// regular files with no other hard links.
pub fn remove_abandoned_parts(dir: &Path, max_age: Duration) -> Vec<(PathBuf, Duration)> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    let age_of = |meta: &std::fs::Metadata| meta.modified().ok().and_then(|m| m.elapsed().ok());
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_str()
            .is_some_and(protocol::is_part_name)
        {
            continue;
        }
        let path = entry.path();
        let old_regular_file = std::fs::symlink_metadata(&path)
            .ok()
            .filter(|meta| meta.is_file())
            .and_then(|meta| age_of(&meta))
            .is_some_and(|age| age >= max_age);
        if !old_regular_file {
            continue;
        }
        // O_NONBLOCK: a FIFO swapped in since the check must not block
        // the receiver's start; the opened file is checked again below.
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue;
        };
        let Ok(meta) = file.metadata() else {
            continue;
        };
        let age = age_of(&meta).filter(|age| *age >= max_age);
        let same_file = std::fs::symlink_metadata(&path)
            .is_ok_and(|now| now.dev() == meta.dev() && now.ino() == meta.ino());
        let Some(age) = age.filter(|_| meta.is_file() && meta.nlink() == 1 && same_file) else {
            continue;
        };
        // Removed while locked, so no upload can have opened it meanwhile.
        if disk::try_lock(&file).unwrap_or(false) && std::fs::remove_file(&path).is_ok() {
            removed.push((path, age));
        }
        drop(file);
    }
    removed
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, Refusal> + Send + 'static,
) -> std::result::Result<T, Refusal> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Refusal::new(Code::Storage, format!("a disk task failed: {e}")))?
}

/// The refusal for a name whose file has other hard links: writing or
/// replacing it would reach a file outside the folder's control.
fn hard_linked(what: &str) -> Refusal {
    Refusal::new(
        Code::BadName,
        format!("{what} has other hard links here; refusing to write through it"),
    )
}

fn storage_error(name: &str, err: std::io::Error) -> Refusal {
    Refusal::new(
        Code::Storage,
        format!("cannot store '{name}': {}", os_words(&err)),
    )
}

/// An upload that ended early: `how` is a clause saying what happened.
fn cut_off(name: &str, how: String) -> Refusal {
    Refusal::new(
        Code::Protocol,
        format!("the upload of '{name}' was cut off: {how}; the part received is kept to resume"),
    )
}

fn read_refusal(fail: ReadFail, name: &str, what: &str, idle: Duration) -> Refusal {
    match fail {
        ReadFail::Closed { .. } => cut_off(name, format!("the connection closed before {what}")),
        ReadFail::TimedOut => Refusal::new(
            Code::Timeout,
            format!(
                "the sender went quiet for {} waiting for {what} of '{name}'",
                crate::error::human_duration(idle)
            ),
        ),
        ReadFail::Io(e) => cut_off(
            name,
            format!("the connection broke before {what} ({})", os_words(&e)),
        ),
    }
}

/// An address block like `10.0.0.0/8` or `::1/128`; a bare address is a
/// block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr> {
        let bad = || {
            Error::invalid(format!(
                "'{text}' is not an address block like 10.0.0.0/8 or ::1/128"
            ))
        };
        let (ip_text, prefix_text) = match text.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text, None),
        };
        let ip = crate::net::addr::parse_ip(ip_text)
            .map_err(|e| Error::invalid(format!("{}: {e}", bad())))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            // Digits only, without a leading zero: `/08` is no clearer than `/8`.
            Some(p)
                if !p.is_empty()
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (p == "0" || !p.starts_with('0')) =>
            {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        let network = ip.to_canonical();
        // `::ffff:10.0.0.0/104` is the IPv4 block 10.0.0.0/8: the first 96
        // bits are the mapping prefix. Shorter prefixes cover more than IPv4.
        let prefix = match (ip, network) {
            (IpAddr::V6(_), IpAddr::V4(_)) => prefix.checked_sub(96).ok_or_else(bad)?,
            _ => prefix,
        };
        Ok(Cidr { network, prefix })
    }

    /// Does the block hold `ip`? IPv4 clients of a dual-stack listener
    /// arrive as `::ffff:a.b.c.d` and are matched as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mask = |bits: u32, width: u32| -> u128 {
            match width.checked_sub(bits) {
                // /0 is every address.
                _ if bits == 0 => 0,
                Some(zeros) => (!0u128).checked_shl(zeros).unwrap_or(0),
                // More bits than the address has (parse prevents it): exact match.
                None => !0u128,
            }
        };
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask(u32::from(self.prefix), 32) as u32;
                u32::from(net) & m == u32::from(ip) & m
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask(u32::from(self.prefix), 128);
                u128::from(net) & m == u128::from(ip) & m
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let block = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(block.contains(ip("10.200.1.2")));
        assert!(block.contains(ip("::ffff:10.1.1.1")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.0.0.0/8").is_ok() && Cidr::parse("::/0").is_ok());
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Cidr::parse("::1/128").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("fe80::/10").unwrap().contains(ip("fe80::1")));
        assert!(!Cidr::parse("fe80::/10").unwrap().contains(ip("10.0.0.1")));
        // IPv4-mapped blocks are IPv4 blocks; they must not open everything.
        let mapped = Cidr::parse("::ffff:10.0.0.1").unwrap();
        assert!(mapped.contains(ip("10.0.0.1")));
        assert!(!mapped.contains(ip("10.0.0.2")));
        assert!(!mapped.contains(ip("192.168.1.1")));
        let mapped_block = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped_block.contains(ip("10.9.9.9")));
        assert!(!mapped_block.contains(ip("11.0.0.1")));
        for bad in [
            "10.0.0.0/33",
            "nonsense",
            "1.2.3.4/x",
            "::/129",
            "::ffff:10.0.0.0/64",
            "127.1",
            "10.0.0.0/+8",
            " 10.0.0.0/8",
            "[::1/128",
            "10.0.0.0/08",
            "::1/0128",
            "10.0.0.0/",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
