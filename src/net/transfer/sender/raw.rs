//! Raw mode's sending: bytes then half-close, as `nc` expects, with
//! `sendfile(2)` so file pages go to the socket without entering this
//! process, and a reset instead of FIN when a raw send does not finish
//! (a raw receiver takes FIN as the end of the file).

use std::{fs::File, ops::Range, sync::atomic::Ordering};

use sha2::{Digest, Sha256};

use super::super::disk::{self, CHUNK};
use super::{Outgoing, Pacer, send_chunks, stalled};
use crate::error::{Error, Result};
use crate::net::tcp::{Conn, IoWriter, ZeroCopy};

/// Raw mode: bytes `start..end` of the file and nothing else. Returns
/// their SHA-256 unless told not to compute it.
pub(super) async fn send_raw(
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
pub(super) struct ResetUnlessFinished<'a>(pub(super) Option<&'a Conn>);

impl ResetUnlessFinished<'_> {
    pub(super) fn finished(mut self) {
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
