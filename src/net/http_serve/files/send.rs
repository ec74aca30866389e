//! A file's bytes as a response body. Small ones are read at once (one
//! `pread`, answered from the page cache faster than any hand-off);
//! larger ones are read one 256 KiB chunk at a time, each read a short
//! `spawn_blocking`, one chunk ahead of what hyper has taken. No
//! thread ever waits on the client: a client that stops reading costs its
//! socket and the chunk hyper holds for it, not a blocking thread (with
//! one thread per response, 512 clients that never read used up tokio's
//! blocking pool and every other download stalled). A disk that stalls
//! still never stalls the runtime's workers. `rate_limit` is kept by a
//! timer between chunks, also without a thread. On a plain HTTP/1.1
//! connection without `rate_limit`, a larger file's span goes by
//! sendfile instead (`sendfile.rs`); this read path is for TLS, HTTP/2,
//! gzip and several ranges. (1 MiB chunks were tried for it: a noisy
//! 0.80-1.47x nginx against 0.60-0.99x for 256 KiB in the same runs,
//! at four times the memory a client that stops reading holds.)

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use tokio::task::JoinHandle;

use super::super::body::{Body, full};
use super::super::sendfile::{self, Slot};

/// Files up to this size are read in one call on the runtime thread.
pub const SMALL: u64 = 64 * 1024;
/// The size of each read of a larger file on the read path.
const CHUNK: usize = 256 * 1024;
/// Chunks of input a gzip step reads at most before handing back what it
/// has (a file of zeros compresses a thousandfold: without a cap one step
/// would read the whole file).
const GZIP_STEP_CHUNKS: usize = 4;

/// `len` bytes of `file` from `start`, at most `rate` bytes a second if
/// given; by sendfile through the connection's `slot` if it has one and
/// no rate is set.
pub fn range(
    file: File,
    start: u64,
    len: u64,
    rate: Option<u64>,
    slot: Option<Slot>,
) -> std::io::Result<Body> {
    if len <= SMALL && rate.is_none() {
        let mut buf = vec![0; len as usize];
        file.read_exact_at(&mut buf, start).map_err(shrank)?;
        return Ok(full(buf));
    }
    if let (Some(slot), None) = (slot, rate) {
        return Ok(sendfile::body(file, start, len, slot));
    }
    let chunk = chunk_for(rate);
    let mut queue = VecDeque::new();
    queue.push_back(Piece::Read(start, start + len));
    Ok(stream(Pieces { file, queue, chunk }, rate))
}

/// Several parts of `file` as one `multipart/byteranges` body: each
/// `[start, end)` after its own head (`heads[i]`), then `tail`.
pub fn pieces(file: File, parts: Vec<(Bytes, u64, u64)>, tail: Bytes, rate: Option<u64>) -> Body {
    let mut queue = VecDeque::with_capacity(parts.len() * 2 + 1);
    for (head, start, end) in parts {
        queue.push_back(Piece::Ready(head));
        queue.push_back(Piece::Read(start, end));
    }
    queue.push_back(Piece::Ready(tail));
    stream(
        Pieces {
            file,
            queue,
            chunk: chunk_for(rate),
        },
        rate,
    )
}

/// The whole of `file`, gzip-compressed as it is read.
pub fn gzip(file: File, len: u64, rate: Option<u64>) -> Body {
    stream(
        Gzip {
            file,
            at: 0,
            len,
            chunk: chunk_for(rate),
            encoder: Some(flate2::write::GzEncoder::new(
                Vec::with_capacity(CHUNK),
                flate2::Compression::fast(),
            )),
        },
        rate,
    )
}

/// A rate limit sends about twenty chunks a second, so progress is smooth.
fn chunk_for(rate: Option<u64>) -> usize {
    rate.map_or(CHUNK, |rate| CHUNK.min((rate / 20).max(1024) as usize))
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

/// What makes a body's chunks, one blocking step at a time: `Ok(None)`
/// when it is done.
trait Producer: Send + Sync + 'static {
    fn next(&mut self) -> std::io::Result<Option<Bytes>>;
}

/// Bytes ready to send, or a span of the file still to read.
enum Piece {
    Ready(Bytes),
    Read(u64, u64),
}

struct Pieces {
    file: File,
    queue: VecDeque<Piece>,
    chunk: usize,
}

impl Producer for Pieces {
    fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            match self.queue.pop_front() {
                None => return Ok(None),
                Some(Piece::Ready(bytes)) => return Ok(Some(bytes)),
                Some(Piece::Read(start, end)) if start >= end => continue,
                Some(Piece::Read(start, end)) => {
                    let want = self.chunk.min((end - start) as usize);
                    let mut buf = vec![0; want];
                    self.file.read_exact_at(&mut buf, start).map_err(shrank)?;
                    if start + (want as u64) < end {
                        self.queue.push_front(Piece::Read(start + want as u64, end));
                    }
                    return Ok(Some(Bytes::from(buf)));
                }
            }
        }
    }
}

struct Gzip {
    file: File,
    at: u64,
    len: u64,
    chunk: usize,
    /// `None` once finished.
    encoder: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl Producer for Gzip {
    fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(None);
        };
        let mut buf = vec![0; self.chunk];
        for _ in 0..GZIP_STEP_CHUNKS {
            if self.at >= self.len {
                break;
            }
            let want = self.chunk.min((self.len - self.at) as usize);
            self.file
                .read_exact_at(&mut buf[..want], self.at)
                .map_err(shrank)?;
            self.at += want as u64;
            encoder.write_all(&buf[..want])?;
            if encoder.get_ref().len() >= self.chunk / 2 {
                break;
            }
        }
        if self.at < self.len {
            return Ok(Some(Bytes::from(std::mem::take(encoder.get_mut()))));
        }
        let Some(encoder) = self.encoder.take() else {
            return Ok(None);
        };
        encoder.finish().map(|rest| Some(Bytes::from(rest)))
    }
}

/// A body whose chunks `producer` makes on the blocking pool, one read per
/// frame hyper asks for, paced to `rate` bytes a second if given.
fn stream(producer: impl Producer, rate: Option<u64>) -> Body {
    Stream {
        producer: Some(Box::new(producer)),
        reading: None,
        pace: rate.map(|rate| Pace {
            rate,
            began: Instant::now(),
            sent: 0,
            timer: None,
        }),
        done: false,
    }
    .boxed()
}

type Step = (Box<dyn Producer>, std::io::Result<Option<Bytes>>);

struct Stream {
    /// `None` while a read has it on the blocking pool.
    producer: Option<Box<dyn Producer>>,
    reading: Option<JoinHandle<Step>>,
    pace: Option<Pace>,
    done: bool,
}

/// `rate_limit`'s clock: a chunk is not read before its time.
struct Pace {
    rate: u64,
    began: Instant,
    sent: u64,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Pace {
    /// Ready when the bytes sent so far are due.
    fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let due = self.began + Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        if due <= Instant::now() {
            self.timer = None;
            return Poll::Ready(());
        }
        let due = tokio::time::Instant::from_std(due);
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        ready!(timer.as_mut().poll(cx));
        self.timer = None;
        Poll::Ready(())
    }
}

impl hyper::body::Body for Stream {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(reading) = this.reading.as_mut() {
                let step = ready!(Pin::new(reading).poll(cx));
                this.reading = None;
                let (producer, made) = match step {
                    Ok(step) => step,
                    Err(_) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(std::io::Error::other(
                            "the file reader stopped",
                        ))));
                    }
                };
                this.producer = Some(producer);
                match made {
                    // An empty chunk (gzip still gathering): read on.
                    Ok(Some(bytes)) if bytes.is_empty() => continue,
                    Ok(Some(bytes)) => {
                        if let Some(pace) = this.pace.as_mut() {
                            pace.sent += bytes.len() as u64;
                        } else if let Some(producer) = this.producer.take() {
                            // Read ahead: the next chunk comes off the disk
                            // while this one goes out (one read at a time
                            // left the socket idle during each read: a
                            // 1 GiB download fell from about 1.0x to 0.73x
                            // nginx). The read ends on its own; it never
                            // waits for the client.
                            this.reading = Some(read_next(producer));
                        }
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                    Ok(None) => {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            if let Some(pace) = this.pace.as_mut() {
                ready!(pace.poll_due(cx));
            }
            let Some(producer) = this.producer.take() else {
                this.done = true;
                return Poll::Ready(None);
            };
            this.reading = Some(read_next(producer));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// The producer's next chunk, made on the blocking pool.
fn read_next(mut producer: Box<dyn Producer>) -> JoinHandle<Step> {
    tokio::task::spawn_blocking(move || {
        let made = producer.next();
        (producer, made)
    })
}
