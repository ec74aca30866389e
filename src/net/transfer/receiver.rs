//! The receiving side of an upload, framed or raw, over any connection:
//! `recv_file` runs it once, `serve_files` once per accepted connection.
//!
//! The rule it keeps: a file appears under its final name only after every
//! byte has arrived, the SHA-256 matches the sender's, and the data is
//! fsync'd. Until then it lives in `.NAME.netsh-part` beside it, which is
//! also what an interrupted upload resumes from, and only for a sender that
//! proves it has the same first bytes (protocol version 2).
//!
//! `receiver/part.rs` holds the part files, `receiver/body.rs` the body's
//! stream to disk.

use std::{
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

mod body;
mod part;

use super::cidr::Cidr;
use body::receive_body;
pub use part::remove_abandoned_parts;
use part::{Target, run_blocking, storage_error};

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

/// Receives one upload from `peer` into `dir`, and tells a framed sender
/// why not if it fails. `admit` runs once a valid header has arrived and
/// waits for the upload's turn (or refuses it).
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
    let outcome = receive_untold(reader, writer, peer, dir, options, admit, on_stored).await;
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

/// Like [`receive`], but a refusal is returned untold: the caller decides
/// whether there is leave to tell the sender (`serve_files` bounds how many
/// refused connections wait for their senders at once).
pub async fn receive_untold<R, W>(
    reader: &mut R,
    writer: &mut W,
    peer: &Endpoint,
    dir: &Path,
    options: &ReceiveOptions,
    admit: impl AsyncFnOnce() -> std::result::Result<Admission, Refusal>,
    on_stored: OnStored<'_>,
) -> std::result::Result<Received, Refusal>
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
    if options.raw {
        receive_raw(reader, incoming)
            .await
            .inspect(|received| on_stored(received))
    } else {
        receive_framed(reader, writer, incoming, admit, on_stored).await
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
    // From here until this function returns, the upload is in progress:
    // another of the same name is refused as busy (the part file's lock).
    let (file, mut held, length) = {
        let (target, overwrite) = (target.clone(), options.overwrite);
        run_blocking(move || target.prepare(overwrite)).await?
    };
    // Offer what is held only to a sender that may resume; the part file
    // is untouched until START says how this upload begins.
    let offered = if resume && length > 0 && length <= size {
        length
    } else {
        0
    };
    answer(writer, Reply::Ready { offset: offered }, &name).await?;

    // Nothing was written yet: a sender that leaves now changes nothing.
    let start_message: [u8; protocol::START_LEN] =
        read_message(reader, (protocol::MSG_START, "START"), &name, options)
            .await
            .map_err(|broken| broken.refusal(&name, "nothing was changed"))?;
    let start = Start::decode(&start_message)?;
    if start.offset != 0 && start.offset != offered {
        let usable = if offered == 0 {
            "READY offered 0, so only 0 can be used".to_string()
        } else {
            format!("only 0 or the {offered} READY offered can be used")
        };
        return Err(Refusal::new(
            Code::Protocol,
            format!("START asked for offset {}, but {usable}", start.offset),
        ));
    }
    // The upload now owns the part file's content (see `Held::started`).
    held.started();
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
    let trailer: [u8; 33] = read_message(
        reader,
        (protocol::MSG_HASH, "the SHA-256 trailer"),
        &name,
        options,
    )
    .await
    .map_err(|broken| broken.refusal(&name, KEPT))?;
    let ours: [u8; 32] = written.hasher.finalize().into();
    if trailer[1..] != ours {
        // Wrong bytes must not be resumed from either.
        held.remove();
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
    let (file, held, _) = {
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
        // failed raw upload leaves nothing behind.
        held.remove();
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

/// What a cut-off upload leaves once its body has begun.
const KEPT: &str = "the part received is kept to resume";

/// An upload that ended early: `how` is a clause saying what happened.
fn cut_off(name: &str, how: String) -> Refusal {
    cut_off_leaving(name, how, KEPT)
}

/// Likewise, `left` saying what became of the part file.
fn cut_off_leaving(name: &str, how: String, left: &str) -> Refusal {
    Refusal::new(
        Code::Protocol,
        format!("the upload of '{name}' was cut off: {how}; {left}"),
    )
}

/// Reads one fixed-length message of type `kind` (START or HASH), refusing
/// a wrong type as soon as its first byte arrives rather than after the
/// message's length.
async fn read_message<R: AsyncRead + Unpin, const N: usize>(
    reader: &mut R,
    (kind, what): (u8, &'static str),
    name: &str,
    options: &ReceiveOptions,
) -> std::result::Result<[u8; N], Broken> {
    let idle = options.idle_timeout;
    let mut message = [0u8; N];
    let (first, rest) = message.split_at_mut(1);
    let read = |fail| Broken::Read { fail, what, idle };
    protocol::read_exact_idle(reader, first, idle)
        .await
        .map_err(read)?;
    if first[0] != kind {
        return Err(Broken::Refused(Refusal::new(
            Code::Protocol,
            format!(
                "expected {what} (0x{kind:02x}) of '{name}', got a message of type 0x{:02x}",
                first[0]
            ),
        )));
    }
    protocol::read_exact_idle(reader, rest, idle)
        .await
        .map_err(read)?;
    Ok(message)
}

/// Why a message did not arrive whole.
enum Broken {
    Refused(Refusal),
    Read {
        fail: ReadFail,
        what: &'static str,
        idle: Duration,
    },
}

impl Broken {
    /// In words; `left` says what a cut-off leaves of the part file.
    fn refusal(self, name: &str, left: &str) -> Refusal {
        let (fail, what, idle) = match self {
            Broken::Refused(refusal) => return refusal,
            Broken::Read { fail, what, idle } => (fail, what, idle),
        };
        match fail {
            ReadFail::Closed { .. } => {
                cut_off_leaving(name, format!("the connection closed before {what}"), left)
            }
            ReadFail::TimedOut => Refusal::new(
                Code::Timeout,
                format!(
                    "the sender went quiet for {} waiting for {what} of '{name}'",
                    crate::error::human_duration(idle)
                ),
            ),
            ReadFail::Io(e) => cut_off_leaving(
                name,
                format!("the connection broke before {what} ({})", os_words(&e)),
                left,
            ),
        }
    }
}
