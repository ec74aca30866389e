//! The sending side of an upload: framed (header, resume offer, body, SHA-256,
//! wait for the receiver's confirmation) or raw (bytes, then half-close).
//!
//! Raw mode hands the socket to the kernel with `sendfile(2)`, so file pages
//! go to the socket without passing through this process; framed mode reads
//! and hashes in one pass on a blocking thread instead, because its bytes
//! must be hashed anyway and reading them twice costs more than it saves.
//!
//! `sender/source.rs` holds the options and the file to send, `sender/raw.rs`
//! raw mode's `sendfile(2)` path.

use std::{
    fs::File,
    ops::Range,
    sync::{Arc, atomic::Ordering, mpsc as std_mpsc},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

use super::{
    disk::{self, IN_FLIGHT},
    protocol::{self, Code, Header, Reply},
};
use crate::error::{Error, Result};
use crate::net::progress::Progress;
use crate::net::tcp::{Conn, Endpoint, IoWriter};

mod raw;
mod source;

use raw::{ResetUnlessFinished, send_raw};
pub use source::{SendOptions, Sent, Source};

/// The longest the sender waits for the receiver's confirmation after the
/// last byte: the receiver fsyncs the whole file first, which on a slow disk
/// takes a while for a big file.
const MIN_CONFIRM_WAIT: Duration = Duration::from_secs(120);

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
