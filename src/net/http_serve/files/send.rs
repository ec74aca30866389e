//! A file's bytes as a response body. Small ones are read at once (one
//! `pread`, answered from the page cache faster than any hand-off);
//! larger ones are read on a blocking thread in 256 KiB chunks into a
//! short channel, so a slow client holds back the reader, not memory, and
//! a disk that stalls never stalls the runtime's workers.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::super::body::{Body, full};

/// Files up to this size are read in one call on the runtime thread.
pub const SMALL: u64 = 64 * 1024;
/// The size of each read of a larger file.
const CHUNK: usize = 256 * 1024;
/// Chunks read ahead of the socket.
const AHEAD: usize = 4;

/// `len` bytes of `file` from `start`, at most `rate` bytes a second if given.
pub fn range(file: File, start: u64, len: u64, rate: Option<u64>) -> std::io::Result<Body> {
    if len <= SMALL && rate.is_none() {
        let mut buf = vec![0; len as usize];
        file.read_exact_at(&mut buf, start).map_err(shrank)?;
        return Ok(full(buf));
    }
    Ok(produced(move |tx| {
        let mut at = start;
        let end = start + len;
        let began = std::time::Instant::now();
        // A rate limit sends about twenty chunks a second, so progress is smooth.
        let chunk = rate.map_or(CHUNK, |rate| CHUNK.min((rate / 20).max(1024) as usize));
        while at < end {
            if let Some(rate) = rate {
                let due = std::time::Duration::from_secs_f64((at - start) as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(began.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let want = chunk.min((end - at) as usize);
            let mut buf = vec![0; want];
            if let Err(e) = file.read_exact_at(&mut buf, at) {
                let _ = tx.blocking_send(Err(shrank(e)));
                return;
            }
            at += want as u64;
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // The client went away.
            }
        }
    }))
}

/// Several parts of `file` as one `multipart/byteranges` body: each
/// `[start, end)` after its own head (`heads[i]`), then `tail`.
pub fn pieces(file: File, parts: Vec<(Bytes, u64, u64)>, tail: Bytes) -> Body {
    produced(move |tx| {
        for (head, start, end) in parts {
            if tx.blocking_send(Ok(head)).is_err() {
                return;
            }
            let mut at = start;
            while at < end {
                let want = CHUNK.min((end - at) as usize);
                let mut buf = vec![0; want];
                if let Err(e) = file.read_exact_at(&mut buf, at) {
                    let _ = tx.blocking_send(Err(shrank(e)));
                    return;
                }
                at += want as u64;
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return;
                }
            }
        }
        let _ = tx.blocking_send(Ok(tail));
    })
}

/// The whole of `file`, gzip-compressed as it is read.
pub fn gzip(file: File, len: u64) -> Body {
    produced(move |tx| {
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::with_capacity(CHUNK), flate2::Compression::fast());
        let mut at = 0;
        let mut buf = vec![0; CHUNK];
        while at < len {
            let want = CHUNK.min((len - at) as usize);
            if let Err(e) = file.read_exact_at(&mut buf[..want], at) {
                let _ = tx.blocking_send(Err(shrank(e)));
                return;
            }
            at += want as u64;
            if let Err(e) = encoder.write_all(&buf[..want]) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            if encoder.get_ref().len() >= CHUNK / 2 {
                let out = std::mem::take(encoder.get_mut());
                if tx.blocking_send(Ok(Bytes::from(out))).is_err() {
                    return;
                }
            }
        }
        match encoder.finish() {
            Ok(rest) => {
                let _ = tx.blocking_send(Ok(Bytes::from(rest)));
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
            }
        }
    })
}

/// A file that got shorter while being sent: the response is cut (the
/// connection ends), never padded or passed off as complete.
fn shrank(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        std::io::Error::other("the file got shorter while it was being sent")
    } else {
        e
    }
}

type Chunk = std::io::Result<Bytes>;

/// A body whose chunks a blocking thread makes.
fn produced(make: impl FnOnce(mpsc::Sender<Chunk>) + Send + 'static) -> Body {
    let (tx, rx) = mpsc::channel(AHEAD);
    tokio::task::spawn_blocking(move || make(tx));
    Channel(rx).boxed()
}

struct Channel(mpsc::Receiver<Chunk>);

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|next| next.map(|chunk| chunk.map(Frame::data)))
    }
}
