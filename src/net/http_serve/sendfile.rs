//! A file's bytes sent by `sendfile(2)` on a plain HTTP/1.1 connection,
//! from the page cache to the socket without passing through netsh:
//! a 1 GiB download read into buffers and written through hyper ran at
//! 0.75x nginx, which uses sendfile.
//!
//! hyper writes a response's head and body through the connection's IO
//! object, so that is where sendfile goes in. The body of a file reply
//! ([`body`]) yields *markers*: slices of [`region`], address space that
//! netsh reserves once and no allocator can hand out, each as long as
//! the span of the file it stands for, so hyper's `Content-Length`
//! framing counts them as the file's bytes. The connection's IO
//! ([`Io`]) sees each slice hyper writes: one inside the region is the
//! marker of the file span its [`Slot`] holds, and the IO sends that span
//! with sendfile instead of the slice's bytes; any other slice is written
//! as it is.
//!
//! This holds only while hyper hands the marker's own memory to the IO
//! (its `Queue` write strategy, which `http_serve` asks for with
//! `writev(true)` on the plain HTTP/1.1 builder) and never copies it
//! (the `Flatten` strategy does). Every way it could fail is caught
//! before a byte of it is sent and cuts the connection with an error:
//! a write while a marker is pending that does not carry the marker (it
//! was copied), a marker slice that is not the next unsent byte of the
//! pending span (reordered or split), a marker with no span pending. The
//! region's pages are read-only zeros, so even a copy would be zeros,
//! never other memory.
//!
//! A file that shrinks while being sent ends in `sendfile` returning 0
//! before the span is done: the write fails, hyper cuts the connection,
//! and the client sees a body shorter than its `Content-Length`.
//!
//! `sendfile` reads a page that is not in the page cache inside the
//! call, on the runtime's worker (nginx without `aio` does the same). So
//! that a slow disk does not stall a worker's other connections, each
//! span is first pulled into the cache on the blocking pool (`warm`:
//! sendfile to `/dev/null`, no copy), and the next span is warmed while
//! this one goes out; a marker is yielded only once its span is warm.
//! The blocking task waits on the disk, never on the client. Pages the
//! kernel evicts in between are read inside `sendfile` after all; the
//! bytes sent are right either way.

use std::fs::File;
use std::future::Future;
use std::io::{self, IoSlice};
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker, ready};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::body::Body;

/// The reserved address space markers are cut from. It is only address
/// space: its pages are never touched, so they take no memory.
const REGION: usize = 64 * 1024 * 1024;
/// The longest span one marker stands for, warmed in one blocking step.
const SPAN: usize = 8 * 1024 * 1024;

/// The region, mapped once for the process; `None` if it could not be.
fn region() -> Option<&'static [u8]> {
    static MAPPED: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    *MAPPED.get_or_init(|| {
        let len = NonZeroUsize::new(REGION)?;
        // SAFETY: a fresh private anonymous mapping at an address the
        // kernel picks aliases no other memory. It is readable and
        // zero-filled, never written (read-only, and no one holds a
        // mutable pointer to it), never unmapped: a shared `'static`
        // slice over it is valid for the life of the process.
        unsafe {
            let at = nix::sys::mman::mmap_anonymous(
                None,
                len,
                nix::sys::mman::ProtFlags::PROT_READ,
                nix::sys::mman::MapFlags::MAP_PRIVATE | nix::sys::mman::MapFlags::MAP_NORESERVE,
            )
            .ok()?;
            Some(std::slice::from_raw_parts(at.as_ptr().cast::<u8>(), REGION))
        }
    })
}

/// Whether `buf` lies in the region: `Some(offset)` if wholly inside,
/// `None` if wholly outside, an error if it straddles its edge (no slice
/// netsh makes does).
fn place(buf: &[u8]) -> io::Result<Option<usize>> {
    let Some(region) = region() else {
        return Ok(None);
    };
    let base = region.as_ptr() as usize;
    let (start, end) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
    // An empty slice carries nothing, wherever it points.
    if buf.is_empty() || end <= base || start >= base + REGION {
        return Ok(None);
    }
    if start < base || end > base + REGION {
        return Err(out_of_turn("a slice straddles the marker region"));
    }
    Ok(Some(start - base))
}

/// The span of a file that the marker hyper holds stands for.
struct Span {
    file: Arc<File>,
    /// Where in the file the marker's first byte is.
    at: u64,
    len: usize,
    /// How much of it the socket has taken.
    sent: usize,
}

#[derive(Default)]
struct Shared {
    /// The span whose marker hyper holds, until all of it is sent.
    pending: Option<Span>,
    /// The body waiting to yield its next marker.
    waiting: Option<Waker>,
}

/// What a connection's [`Io`] and the file bodies of its responses
/// share: at most one pending span. A request on a connection that can
/// send files so carries one in its extensions.
#[derive(Clone, Default)]
pub struct Slot(Arc<Mutex<Shared>>);

impl Slot {
    /// A slot for a new connection, if markers can be made here.
    pub fn new() -> Option<Slot> {
        region().map(|_| Slot::default())
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Nothing holding the lock panics; if it did, the state is still whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sendfile::Slot")
    }
}

/// `len` bytes of `file` from `start`, sent by the connection's IO.
pub fn body(file: File, start: u64, len: u64, slot: Slot) -> Body {
    Markers {
        file: Arc::new(file),
        next: start,
        end: start + len,
        slot,
        warming: None,
        warm: false,
    }
    .boxed()
}

/// A file body as markers, one span at a time: the next marker is made
/// only once its span is warm and the socket has taken the last one's.
struct Markers {
    file: Arc<File>,
    next: u64,
    end: u64,
    slot: Slot,
    /// The blocking step warming the span from `next`, until it ends.
    warming: Option<tokio::task::JoinHandle<()>>,
    /// Whether the span from `next` has been warmed.
    warm: bool,
}

impl Markers {
    fn span_len(&self) -> usize {
        (self.end - self.next).min(SPAN as u64) as usize
    }
}

/// Pulls `[at, at + len)` of `file` into the page cache: sendfile to
/// `/dev/null` reads the pages without copying them anywhere. Best
/// effort: an error, or a file that ends early, leaves the rest to the
/// socket's sendfile, which reports it.
fn warm(file: Arc<File>, at: u64, len: usize) -> tokio::task::JoinHandle<()> {
    static NULL: OnceLock<Option<File>> = OnceLock::new();
    tokio::task::spawn_blocking(move || {
        let Some(null) = NULL
            .get_or_init(|| File::options().write(true).open("/dev/null").ok())
            .as_ref()
        else {
            return;
        };
        let Ok(mut from) = i64::try_from(at) else {
            return;
        };
        let mut left = len;
        while left > 0 {
            match nix::sys::sendfile::sendfile(null.as_fd(), file.as_fd(), Some(&mut from), left) {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
}

impl hyper::body::Body for Markers {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.next >= this.end {
            return Poll::Ready(None);
        }
        let Some(region) = region() else {
            return Poll::Ready(Some(Err(io::Error::other("no sendfile region"))));
        };
        let len = this.span_len();
        if !this.warm {
            let warming = this
                .warming
                .get_or_insert_with(|| warm(this.file.clone(), this.next, len));
            // Warming is best effort: a step that failed to finish changes
            // nothing the socket's sendfile would not find itself.
            let _ = ready!(Pin::new(warming).poll(cx));
            // A finished task is not polled again.
            this.warming = None;
            this.warm = true;
        }
        let mut shared = this.slot.lock();
        if shared.pending.is_some() {
            shared.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        shared.pending = Some(Span {
            file: this.file.clone(),
            at: this.next,
            len,
            sent: 0,
        });
        drop(shared);
        this.next += len as u64;
        this.warm = false;
        // The next span comes off the disk while this one goes out.
        this.warming =
            (this.next < this.end).then(|| warm(this.file.clone(), this.next, this.span_len()));
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&region[..len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end.saturating_sub(self.next))
    }
}

/// A plain TCP connection that sends a marker's span with sendfile.
pub struct Io {
    stream: TcpStream,
    slot: Slot,
}

impl Io {
    pub fn new(stream: TcpStream, slot: Slot) -> Io {
        Io { stream, slot }
    }

    fn write_bufs(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut first = None;
        for (i, buf) in bufs.iter().enumerate() {
            if let Some(offset) = place(buf)? {
                first = Some((i, offset));
                break;
            }
        }
        match first {
            None => {
                if self.slot.lock().pending.is_some() {
                    // The marker hyper was given is not among what it
                    // writes: it copied or dropped it.
                    return Poll::Ready(Err(out_of_turn("a write without the pending marker")));
                }
                Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
            }
            Some((0, offset)) => self.send_span(cx, offset, bufs[0].len()),
            Some((i, _)) => {
                if self.slot.lock().pending.is_none() {
                    return Poll::Ready(Err(out_of_turn("a marker with no span pending")));
                }
                // The head (or anything before the marker) first.
                Pin::new(&mut self.stream).poll_write_vectored(cx, &bufs[..i])
            }
        }
    }

    /// Sends what the marker slice `[offset, offset + len)` stands for.
    fn send_span(
        &mut self,
        cx: &mut Context<'_>,
        offset: usize,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let slot = self.slot.clone();
        let mut shared = slot.lock();
        let Some(span) = shared.pending.as_mut() else {
            return Poll::Ready(Err(out_of_turn("a marker with no span pending")));
        };
        if offset != span.sent || offset + len > span.len {
            return Poll::Ready(Err(out_of_turn(
                "a marker slice that is not the next unsent part",
            )));
        }
        let sent = loop {
            ready!(self.stream.poll_write_ready(cx))?;
            let mut from = i64::try_from(span.at + span.sent as u64)
                .map_err(|_| io::Error::other("a file offset past 2^63"))?;
            let stream = &self.stream;
            let file = &span.file;
            match stream.try_io(Interest::WRITABLE, || {
                nix::sys::sendfile::sendfile(stream.as_fd(), file.as_fd(), Some(&mut from), len)
                    .map_err(io::Error::from)
            }) {
                Ok(sent) => break sent,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        };
        if sent == 0 {
            // The file ends before the span does.
            return Poll::Ready(Err(io::Error::other(
                "the file got shorter while it was being sent",
            )));
        }
        span.sent += sent;
        if span.sent == span.len {
            shared.pending = None;
            if let Some(waker) = shared.waiting.take() {
                waker.wake();
            }
        }
        Poll::Ready(Ok(sent))
    }
}

/// The loud end of a broken assumption: the connection is cut, never
/// sent bytes that are not the file's.
fn out_of_turn(what: &str) -> io::Error {
    let message = format!("http_serve: sendfile stopped, {what}; the connection is cut");
    crate::console::alert(&message);
    io::Error::other(message)
}

impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bufs(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write_bufs(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    //! The checks that keep a marker's bytes off the wire, driven on a
    //! real loopback socket: each broken assumption is an error, and the
    //! peer receives nothing of it.

    use std::time::Duration;

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair: the server side as an [`Io`] with a fresh slot,
    /// and the client side.
    async fn pair() -> (Io, Slot, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let slot = Slot::new().expect("the region maps");
        (Io::new(server, slot.clone()), slot, client)
    }

    /// A span of a 100-byte file, pending as a marker hyper was given.
    fn pending(slot: &Slot, data: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), data).unwrap();
        slot.lock().pending = Some(Span {
            file: Arc::new(File::open(file.path()).unwrap()),
            at: 10,
            len: 50,
            sent: 0,
        });
        file
    }

    /// What the client has received within a short while.
    async fn received(client: &mut TcpStream) -> Vec<u8> {
        let mut got = vec![0; 4096];
        match tokio::time::timeout(Duration::from_millis(200), client.read(&mut got)).await {
            Ok(Ok(n)) => got[..n].to_vec(),
            _ => Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_marker_is_sent_as_its_span() {
        let (mut io, slot, mut client) = pair().await;
        let data: Vec<u8> = (0..100).collect();
        let _file = pending(&slot, &data);
        let marker = &region().unwrap()[..50];
        let head = b"HEAD";
        let bufs = [IoSlice::new(head), IoSlice::new(marker)];
        // The head first, then the span, one kind of write at a time.
        assert_eq!(io.write_vectored(&bufs).await.unwrap(), 4);
        let mut sent = 0;
        while sent < 50 {
            sent += io
                .write_vectored(&[IoSlice::new(&marker[sent..])])
                .await
                .unwrap();
        }
        assert!(slot.lock().pending.is_none());
        let mut got = vec![0; 54];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..4], head);
        assert_eq!(&got[4..], &data[10..60]);
    }

    #[tokio::test]
    async fn a_copied_marker_is_refused() {
        let (mut io, slot, mut client) = pair().await;
        let _file = pending(&slot, &[7; 100]);
        // What hyper's `Flatten` strategy would write: the head and a
        // copy of the marker's zeros in one buffer of its own.
        let mut flat = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        flat.extend_from_slice(&region().unwrap()[..50]);
        assert!(io.write(&flat).await.is_err());
        assert!(received(&mut client).await.is_empty());
    }

    #[tokio::test]
    async fn a_marker_out_of_turn_is_refused() {
        let (mut io, slot, mut client) = pair().await;
        let marker = &region().unwrap()[..50];
        // No span pending.
        assert!(io.write(marker).await.is_err());
        assert!(
            io.write_vectored(&[IoSlice::new(b"x"), IoSlice::new(marker)])
                .await
                .is_err()
        );
        // Not the next unsent byte, or past the span's end.
        let _file = pending(&slot, &[7; 100]);
        assert!(io.write(&marker[1..]).await.is_err());
        assert!(io.write(&region().unwrap()[..51]).await.is_err());
        assert!(received(&mut client).await.is_empty());
    }

    #[tokio::test]
    async fn a_file_cut_short_fails_the_write() {
        let (mut io, slot, mut client) = pair().await;
        // The span wants bytes 10..60 of a 30-byte file.
        let _file = pending(&slot, &[7; 30]);
        let marker = &region().unwrap()[..50];
        assert_eq!(io.write(marker).await.unwrap(), 20);
        assert!(io.write(&marker[20..]).await.is_err());
        assert_eq!(received(&mut client).await, vec![7; 20]);
    }
}
