//! Moving a body to disk: the socket's bytes handed to the writer thread
//! ([`disk::write_chunks`], which hashes as it writes) without a copy when
//! they come in big pieces, gathered when small, and decoded on the way
//! when the server compressed them.

use std::{
    fs::File,
    sync::{atomic::Ordering, mpsc as std_mpsc},
};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::net::{
    helpers::file_error,
    progress::Progress,
    transfer::disk::{self, CHUNK, IN_FLIGHT},
};

/// Moves bytes from `stream` to `file` (from `offset`) through the writer
/// thread, decoding them first if asked; returns the end position and the
/// hash. Whatever arrived before an error is written, so a resume starts
/// after it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn pump(
    mut stream: impl Stream<Item = Result<Bytes>> + Unpin,
    mut decoder: Option<Decoder>,
    file: File,
    hasher: Option<Sha256>,
    offset: u64,
    seekable: bool,
    progress: &Progress,
    shown: &str,
) -> Result<(u64, Option<Sha256>)> {
    let (to_disk, chunks) = mpsc::channel::<Bytes>(IN_FLIGHT);
    // Buffers are not handed back: a `Bytes` from the socket is not ours to reuse.
    let (give_back, _) = std_mpsc::channel::<Bytes>();
    let writer = tokio::task::spawn_blocking(move || {
        if seekable {
            disk::write_chunks(file, hasher, offset, chunks, give_back)
        } else {
            disk::write_stream(file, hasher, chunks, give_back)
        }
    });
    let mut batch = Batch {
        buf: BytesMut::new(),
        to_disk,
        progress,
    };
    let mut failure = None;
    loop {
        // Before waiting on the network, the bytes gathered so far go to
        // disk: a stalled or interrupted download keeps all it received.
        let item = match stream.next().now_or_never() {
            Some(item) => item,
            None => {
                if !batch.send_buffered().await {
                    break;
                }
                stream.next().await
            }
        };
        let Some(item) = item else {
            break;
        };
        let sent = match (item, decoder.as_mut()) {
            (Ok(bytes), None) => batch.push(bytes).await,
            (Ok(bytes), Some(decoder)) => {
                // A slice at a time, each slice's output on its way to disk
                // before the next is decoded: memory stays bounded however
                // far the body expands.
                let mut sent = true;
                for piece in bytes.chunks(FEED_SLICE) {
                    match decoder.feed(piece).map_err(Decoder::broken) {
                        Ok(plain) => sent = batch.push(Bytes::from(plain)).await,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                    if !sent {
                        break;
                    }
                }
                if failure.is_some() {
                    break;
                }
                sent
            }
            (Err(e), _) => {
                failure = Some(e);
                break;
            }
        };
        // A closed channel means the writer failed; it says why below.
        if !sent {
            break;
        }
    }
    if failure.is_none()
        && let Some(decoder) = decoder
    {
        match decoder.finish().map_err(Decoder::broken) {
            Ok(rest) => {
                batch.push(Bytes::from(rest)).await;
            }
            Err(e) => failure = Some(e),
        }
    }
    batch.flush().await;
    let written = writer
        .await
        .map_err(|e| Error::Protocol(format!("the file writer failed: {e}")))?;
    if let Some(e) = written.error {
        return Err(file_error("writing", shown, e));
    }
    match failure {
        Some(e) => Err(e),
        None => Ok((written.position, written.hasher)),
    }
}

/// Sends bytes to the writer thread: big pieces as they came (no copy),
/// small ones gathered into [`CHUNK`]-sized buffers so the disk sees few,
/// large writes.
struct Batch<'a> {
    buf: BytesMut,
    to_disk: mpsc::Sender<Bytes>,
    progress: &'a Progress,
}

/// Pieces at least this big go to the writer as they are.
const PASS_THROUGH: usize = CHUNK / 4;

impl Batch<'_> {
    /// Adds `data`; false once the writer has gone away.
    async fn push(&mut self, data: Bytes) -> bool {
        self.progress
            .done
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if data.len() >= PASS_THROUGH {
            return self.send_buffered().await && self.to_disk.send(data).await.is_ok();
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve(CHUNK);
        }
        self.buf.extend_from_slice(&data);
        if self.buf.len() >= CHUNK - PASS_THROUGH {
            return self.send_buffered().await;
        }
        true
    }

    async fn send_buffered(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let full = self.buf.split().freeze();
        self.to_disk.send(full).await.is_ok()
    }

    /// Sends what is left; dropping the sender then closes the channel.
    async fn flush(mut self) {
        self.send_buffered().await;
    }
}

/// A streaming decoder for a `Content-Encoding` (gzip, deflate, br).
pub(super) enum Decoder {
    Gzip(flate2::write::MultiGzDecoder<Capped>),
    Deflate(flate2::write::ZlibDecoder<Capped>),
    Brotli(Box<brotli::DecompressorWriter<Capped>>),
}

/// Where a [`Decoder`] writes: a buffer that refuses to grow past what the
/// caller can hold. A few kilobytes of brotli (or a chunk of gzip) can
/// stand for gigabytes, all of which one `write_all` would produce before
/// its caller could look at the size.
pub(super) struct Capped {
    out: Vec<u8>,
    /// Decoded bytes still allowed, over the whole body.
    room: usize,
    /// Decoded bytes held at once, between two takes of `out`.
    burst: usize,
}

/// Compressed bytes a download decodes at a time ([`pump`]); with
/// [`MAX_PIECE_OUTPUT`], no real body is refused (gzip and deflate expand
/// at most about 1,032×) while a bomb (3 KB of brotli standing for 4 GiB)
/// stops at 64 MiB held instead of aborting on a 4 GiB allocation.
pub(super) const FEED_SLICE: usize = 4 << 10;
/// The most one slice of a download's body may decode to.
pub(super) const MAX_PIECE_OUTPUT: usize = 64 << 20;

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.room {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                OverLimit,
            ));
        }
        if self.out.len() + buf.len() > self.burst {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!(
                    "{} KiB of it expand past {} MiB, which no real body does (a decompression bomb)",
                    FEED_SLICE >> 10,
                    self.burst >> 20
                ),
            ));
        }
        self.room -= buf.len();
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The error a [`Capped`] buffer gives when the decoded body outgrows it.
#[derive(Debug)]
pub(super) struct OverLimit;

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the decoded body is larger than allowed")
    }
}

impl std::error::Error for OverLimit {}

impl OverLimit {
    /// Did decoding stop because the decoded body outgrew its limit?
    pub(super) fn caused(e: &std::io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<OverLimit>())
    }
}

impl Decoder {
    /// A decoder for `name`, producing at most `limit` bytes in all and
    /// holding at most `burst` of them at once (between two `feed`s).
    pub(super) fn for_encoding(name: &str, limit: usize, burst: usize) -> Option<Decoder> {
        let out = || Capped {
            out: Vec::new(),
            room: limit,
            burst,
        };
        Some(match name {
            "gzip" | "x-gzip" => Decoder::Gzip(flate2::write::MultiGzDecoder::new(out())),
            "deflate" => Decoder::Deflate(flate2::write::ZlibDecoder::new(out())),
            "br" => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(out(), 64 * 1024))),
            _ => return None,
        })
    }

    /// Decodes `data`; returns what came out of it so far.
    pub(super) fn feed(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Write;
        let (written, out) = match self {
            Decoder::Gzip(d) => (d.write_all(data), d.get_mut()),
            Decoder::Deflate(d) => (d.write_all(data), d.get_mut()),
            Decoder::Brotli(d) => (d.write_all(data), d.get_mut()),
        };
        written?;
        Ok(std::mem::take(&mut out.out))
    }

    /// The last decoded bytes, once the body has ended.
    pub(super) fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => d.finish().map(|c| c.out),
            Decoder::Deflate(d) => d.finish().map(|c| c.out),
            Decoder::Brotli(d) => d.into_inner().map(|c| c.out).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the brotli stream is incomplete",
                )
            }),
        }
    }

    /// A download's body that does not decode, in words.
    fn broken(e: std::io::Error) -> Error {
        Error::Protocol(format!(
            "the compressed body could not be decoded: {e} (pass #{{decode: false}} to save it as sent)"
        ))
    }
}
