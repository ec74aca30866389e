//! The receiving side of an upload, framed or raw, over any connection:
//! `recv_file` runs it once, `serve_files` once per accepted connection.
//!
//! The rule it keeps: a file appears under its final name only after every
//! byte has arrived, the SHA-256 matches the sender's, and the data is
//! fsync'd. Until then it lives in `.NAME.netsh-part` beside it, which is
//! also what an interrupted upload resumes from.

use std::{
    fs::{File, OpenOptions},
    net::IpAddr,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
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
    protocol::{self, Code, Header, ReadFail, Refusal, Reply},
};
use crate::error::{Error, Result};
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
    /// Client addresses allowed to upload; empty means everyone.
    pub allow: Vec<Cidr>,
    /// `serve_files`: how many uploads are received at once; more wait
    /// (connected, unanswered) until one ends.
    pub max_uploads: usize,
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
            part_max_age: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

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

/// Receives one upload from `peer` into `dir`.
pub async fn receive<R, W>(
    reader: &mut R,
    writer: &mut W,
    peer: &Endpoint,
    dir: &Path,
    options: &ReceiveOptions,
    on_stored: OnStored<'_>,
) -> Result<Received>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let started = Instant::now();
    let outcome =
        // An allow list names IP addresses: a Unix-socket peer is not on it.
        if !options.allow.is_empty()
            && !peer
                .ip()
                .is_some_and(|ip| options.allow.iter().any(|c| c.contains(ip.ip())))
        {
            Err(Refusal::new(
                Code::NotAllowed,
                format!(
                    "uploads from {} are not allowed here",
                    peer.ip().map_or(peer.to_string(), |ip| ip.ip().to_canonical().to_string())
                ),
            ))
        } else if options.raw {
            receive_raw(reader, peer, dir, options, started)
                .await
                .inspect(|received| on_stored(received))
        } else {
            receive_framed(reader, writer, peer, dir, options, started, on_stored).await
        };
    match outcome {
        Ok(received) => Ok(received),
        Err(refusal) => {
            if !options.raw {
                tell_sender(reader, writer, &refusal).await;
            }
            Err(Error::Upload {
                kind: refusal.code.kind(),
                message: format!(
                    "upload from {peer} failed: {} ({})",
                    refusal.message,
                    refusal.code.name()
                ),
            })
        }
    }
}

/// Sends the error reply, half-closes, then reads and discards what the
/// sender still has in flight for a moment. Closing with unread data would
/// make the kernel send RST, which can destroy the reply before the sender
/// reads it.
async fn tell_sender<R, W>(reader: &mut R, writer: &mut W, refusal: &Refusal)
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

/// The framed protocol, receiving side (see `docs/PROTOCOL.md`).
async fn receive_framed<R, W>(
    reader: &mut R,
    writer: &mut W,
    peer: &Endpoint,
    dir: &Path,
    options: &ReceiveOptions,
    started: Instant,
    on_stored: OnStored<'_>,
) -> std::result::Result<Received, Refusal>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
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
    let target = Target::new(dir, &name);
    let resume = header.flags & protocol::FLAG_RESUME != 0;
    let size = header.size;
    let prepared = {
        let (target, overwrite) = (target.clone(), options.overwrite);
        run_blocking(move || target.prepare(overwrite, resume.then_some(size))).await?
    };
    let Prepared {
        file,
        offset,
        hasher,
    } = prepared;

    let ready = Reply::Ready {
        offset,
        prefix: if offset == 0 {
            [0; 32]
        } else {
            disk::digest_of(&hasher)
        },
    };
    protocol::write_all(writer, &ready.encode())
        .await
        .map_err(|e| cut_off(&name, format!("the answer to the sender failed ({e})")))?;

    let mut start_message = [0u8; 9];
    protocol::read_exact_idle(reader, &mut start_message, options.idle_timeout)
        .await
        .map_err(|f| read_refusal(f, &name, "the start message", options.idle_timeout))?;
    let mut start_bytes = [0u8; 8];
    start_bytes.copy_from_slice(&start_message[1..]);
    let start = u64::from_be_bytes(start_bytes);
    if start_message[0] != protocol::MSG_START || (start != 0 && start != offset) {
        return Err(Refusal::new(
            Code::Protocol,
            format!("expected START at offset 0 or {offset}, got something else"),
        ));
    }
    // The sender found our prefix differs from its file: start over.
    let hasher = if start == 0 { Sha256::new() } else { hasher };

    let written = receive_body(
        reader,
        file,
        hasher,
        start,
        size,
        options.idle_timeout,
        &name,
    )
    .await?;
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
        // Wrong bytes must not be resumed from either.
        let part = target.part.clone();
        drop(written.file);
        let _ = std::fs::remove_file(&part);
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
        resumed_from: start,
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
    idle: Duration,
    name: &str,
) -> std::result::Result<disk::Written, Refusal> {
    let (to_disk, chunks) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let (give_back, spare) = std_mpsc::channel::<Vec<u8>>();
    let writer = tokio::task::spawn_blocking(move || {
        disk::write_chunks(file, hasher, start, chunks, give_back)
    });
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
                    format!("the connection broke after {position} of {size} bytes ({e})"),
                ));
                break;
            }
        };
        buf.truncate(n);
        position += n as u64;
        if to_disk.send(buf).await.is_err() {
            break; // the disk thread stopped on an error; it reports it below
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

/// Raw mode: every byte until the sender half-closes is the file.
async fn receive_raw<R: AsyncRead + Unpin>(
    reader: &mut R,
    peer: &Endpoint,
    dir: &Path,
    options: &ReceiveOptions,
    started: Instant,
) -> std::result::Result<Received, Refusal> {
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
    let prepared = {
        let (target, overwrite) = (target.clone(), options.overwrite);
        run_blocking(move || target.prepare(overwrite, None)).await?
    };
    let (to_disk, chunks) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let (give_back, spare) = std_mpsc::channel::<Vec<u8>>();
    let writer = tokio::task::spawn_blocking(move || {
        disk::write_chunks(prepared.file, Sha256::new(), 0, chunks, give_back)
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
                failure = Some(cut_off(
                    &name,
                    format!("the connection broke after {position} bytes ({e})"),
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
        // failed raw upload leaves nothing behind.
        drop(written.file);
        let _ = std::fs::remove_file(&target.part);
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

/// An opened, locked part file and where the body starts.
struct Prepared {
    file: File,
    offset: u64,
    hasher: Sha256,
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

    /// Checks the final name, opens and locks the part file, and works out
    /// the resume offset: the bytes already in the part file when the sender
    /// allows resuming (`resume_size` = the file's size) and they do not
    /// exceed that size; otherwise the part file is emptied.
    fn prepare(
        &self,
        overwrite: bool,
        resume_size: Option<u64>,
    ) -> std::result::Result<Prepared, Refusal> {
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
        // O_NOFOLLOW: a symlink planted at the part file's name must not
        // redirect the write outside the folder.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.part)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    Refusal::new(
                        Code::BadName,
                        format!("the part file of '{name}' is a symbolic link; refusing"),
                    )
                } else {
                    storage_error(name, e)
                }
            })?;
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
        // into place a moment ago: then this descriptor is the finished file,
        // not a part file, and writing to it would damage it.
        let meta = file.metadata().map_err(|e| storage_error(name, e))?;
        let still_the_part = std::fs::symlink_metadata(&self.part)
            .is_ok_and(|now| now.dev() == meta.dev() && now.ino() == meta.ino());
        if !still_the_part {
            return Err(Refusal::new(
                Code::Busy,
                format!("another upload of '{name}' just finished; send again to retry"),
            ));
        }
        // A hard link planted at the part file's name would have this
        // upload write into (and offer to resume from) a file elsewhere.
        if meta.nlink() > 1 {
            return Err(hard_linked(&format!("the part file of '{name}'")));
        }
        let mut file = file;
        let have = meta.len();
        match resume_size {
            Some(size) if have > 0 && have <= size => {
                let (hasher, read) =
                    disk::hash_prefix(&mut file, have).map_err(|e| storage_error(name, e))?;
                Ok(Prepared {
                    file,
                    offset: read,
                    hasher,
                })
            }
            _ => {
                file.set_len(0).map_err(|e| storage_error(name, e))?;
                Ok(Prepared {
                    file,
                    offset: 0,
                    hasher: Sha256::new(),
                })
            }
        }
    }

    /// fsync, rename into place, fsync the folder.
    fn finish(&self, file: File, overwrite: bool) -> std::result::Result<(), Refusal> {
        let name = &self.name;
        file.sync_all().map_err(|e| storage_error(name, e))?;
        // Keep the lock until the rename is done, so no second upload of
        // this name can start writing the part file in between.
        let renamed = disk::rename_into_place(&self.part, &self.path, overwrite);
        drop(file);
        match renamed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&self.part);
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

/// Removes the part files in `dir` that nobody has written for `max_age`
/// and no upload holds (an upload in progress, here or in another process,
/// keeps its lock); returns each one removed with its age. Only names
/// this code makes (`.NAME.netsh-part`) and only regular files.
pub fn remove_abandoned_parts(dir: &Path, max_age: Duration) -> Vec<(PathBuf, Duration)> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_part = name
            .to_str()
            .is_some_and(|n| n.starts_with('.') && n.ends_with(protocol::PART_SUFFIX));
        let path = entry.path();
        let age = std::fs::symlink_metadata(&path)
            .ok()
            .filter(|meta| meta.is_file())
            .and_then(|meta| meta.modified().ok())
            .and_then(|modified| modified.elapsed().ok());
        let Some(age) = age.filter(|age| is_part && *age >= max_age) else {
            continue;
        };
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        else {
            continue;
        };
        if disk::try_lock(&file).unwrap_or(false) && std::fs::remove_file(&path).is_ok() {
            removed.push((path, age));
        }
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
    Refusal::new(Code::Storage, format!("cannot store '{name}': {err}"))
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
        ReadFail::Io(e) => cut_off(name, format!("the connection broke before {what} ({e})")),
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
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
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
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
