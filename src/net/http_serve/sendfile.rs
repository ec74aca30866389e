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
//! pending span (reordered or split), a marker with no span pending,
//! bytes ahead of a marker other than its body's head (before a later
//! span, or the rest of a partly sent one). The
//! region's pages are read-only zeros, so even a copy would be zeros,
//! never other memory.
//!
//! A file system that refuses sendfile (EINVAL, ENOSYS, EOPNOTSUPP from
//! a warming step, which runs before the span's marker is yielded, or
//! for a first span that needs none from sending its first byte to
//! `/dev/null`) turns the body to the read path (`files::send`) from
//! there on.
//!
//! A file that shrinks while being sent ends in `sendfile` returning 0
//! before the span is done: the write fails, hyper cuts the connection,
//! and the client sees a body shorter than its `Content-Length`.
//!
//! `sendfile` reads a page that is not in the page cache inside the
//! call, on the runtime's worker (nginx without `aio` does the same). So
//! that a slow disk does not stall a worker's other connections, each
//! span not wholly in the cache already (`warm::cached`, cachestat(2))
//! is first pulled into it on the blocking pool (`warm`: sendfile to
//! `/dev/null`, no copy); a marker is yielded only once its span is
//! warm. Reading ahead costs disk for bytes a client may never
//! take, so it follows the client: the first span is small
//! ([`FIRST_SPAN`]: its first byte waits on little disk) and each next
//! one twice as long up to [`SPAN`]; the next span is warmed only once
//! the socket has taken most of the current one, and then by the IO
//! ([`Ahead`]), so the disk works while the rest goes out (hyper asks
//! the body for nothing while it writes a marker); and a warming step
//! reads in `PIECE`s, stopping between them once the body is dropped.
//! The blocking task waits on the disk, never on the client. Pages the
//! kernel evicts in between are read inside `sendfile` after all; the
//! bytes sent are right either way.

use std::fs::File;
use std::future::Future;
use std::io::{self, IoSlice};
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker, ready};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::body::Body;

mod warm;
use warm::{Warmed, cached, warm};

/// The longest span one marker stands for.
const SPAN: usize = 8 * 1024 * 1024;
/// The first span of a body: small, so its first byte waits on little
/// disk and a client that leaves after the head costs little reading.
const FIRST_SPAN: usize = 512 * 1024;
/// The reserved address space markers are cut from, as long as the
/// longest marker. It is only address space: its pages are never
/// touched, so they take no memory.
const REGION: usize = SPAN;

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
    /// Whether it is its body's first span, the only one a head may
    /// come before.
    first: bool,
}

#[derive(Default)]
struct Shared {
    /// The span whose marker hyper holds, until all of it is sent.
    pending: Option<Span>,
    /// The same body's next span, which the IO starts warming once the
    /// socket has taken most of the pending one.
    ahead: Option<Ahead>,
    /// The body waiting to yield its next marker.
    waiting: Option<Waker>,
}

/// The span after the pending one. hyper asks a body for its next frame
/// only once it has written all of the last (it flushes a marker before
/// it buffers more), so a body that started warming its next span when
/// asked would leave the socket idle for the whole of it: the IO starts
/// it instead, while the rest of the pending span goes out.
struct Ahead {
    file: Arc<File>,
    at: u64,
    len: usize,
    cancel: Arc<AtomicBool>,
    warmed: [Arc<AtomicU64>; 2],
    step: Step,
}

/// How far the IO has got with warming the span ahead.
enum Step {
    /// Not started: the socket has not taken most of the pending span.
    Waiting,
    /// Nothing to do: it is all in the page cache already.
    Cached,
    /// Being warmed on the blocking pool.
    Warming(tokio::task::JoinHandle<Warmed>),
}

impl Ahead {
    /// Starts warming the span unless it is cached already.
    fn start(&mut self) {
        if !matches!(self.step, Step::Waiting) {
            return;
        }
        self.step = if cached(&self.file, self.at, self.len) {
            Step::Cached
        } else {
            Step::Warming(warm(
                self.file.clone(),
                self.at,
                self.len,
                self.cancel.clone(),
                self.warmed.clone(),
            ))
        };
    }
}

/// What a connection's [`Io`] and the file bodies of its responses
/// share: at most one pending span. A request on a connection that can
/// send files so carries one in its extensions.
#[derive(Clone)]
pub struct Slot {
    shared: Arc<Mutex<Shared>>,
    /// The server's count of bytes warming steps read (`stats().warmed`).
    warmed: Arc<AtomicU64>,
}

impl Slot {
    /// A slot for a new connection, if markers can be made here; its
    /// bodies' warming is counted in `warmed`.
    pub fn new(warmed: Arc<AtomicU64>) -> Option<Slot> {
        region().map(|_| Slot {
            shared: Arc::default(),
            warmed,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Nothing holding the lock panics; if it did, the state is still whole.
        self.shared
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
    Markers::new(file, start, len, slot).boxed()
}

/// A file body as markers, one span at a time: the next marker is made
/// only once its span is warm and the socket has taken the last one's.
struct Markers {
    file: Arc<File>,
    /// Where the body starts in the file.
    start: u64,
    next: u64,
    end: u64,
    slot: Slot,
    /// How long the span from `next` is at most: it grows from
    /// [`FIRST_SPAN`] to [`SPAN`] as the client keeps taking them.
    span: usize,
    /// The blocking step warming the span from `next`, until it ends.
    warming: Option<tokio::task::JoinHandle<Warmed>>,
    /// Whether the span from `next` has been warmed.
    warm: bool,
    /// Set when the body is dropped: a warming step stops at its next piece.
    cancel: Arc<AtomicBool>,
    /// Bytes this body's warming steps have pulled through; the server's
    /// count is the slot's.
    warmed: Arc<AtomicU64>,
    /// The read path this body turned to when the file system refused
    /// sendfile.
    fallback: Option<Body>,
}

impl Markers {
    fn new(file: File, start: u64, len: u64, slot: Slot) -> Markers {
        Markers {
            file: Arc::new(file),
            start,
            next: start,
            end: start + len,
            slot,
            span: FIRST_SPAN,
            warming: None,
            warm: false,
            cancel: Arc::new(AtomicBool::new(false)),
            warmed: Arc::new(AtomicU64::new(0)),
            fallback: None,
        }
    }

    fn span_len(&self) -> usize {
        (self.end - self.next).min(self.span as u64) as usize
    }

    /// The rest of the body from `next` by the read path, if the file
    /// can be opened again.
    fn read_path(&self) -> io::Result<Body> {
        let file = self.file.try_clone()?;
        super::files::send::range(file, self.next, self.end - self.next, None, None)
    }

    /// Turns the body to the read path for the rest of it: the file
    /// system refused sendfile. Bytes hyper queues after a pending
    /// marker go out after its span, so it may take over mid-body too.
    fn turn(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let fallback = match self.read_path() {
            Ok(fallback) => self.fallback.insert(fallback),
            Err(e) => return Poll::Ready(Some(Err(e))),
        };
        hyper::body::Body::poll_frame(Pin::new(fallback), cx)
    }
}

impl Drop for Markers {
    fn drop(&mut self) {
        // The client is gone (or the response is done): pieces not yet
        // read are not read, and no span of this body is warmed ahead.
        self.cancel.store(true, Ordering::Relaxed);
        let mut shared = self.slot.lock();
        if shared
            .ahead
            .as_ref()
            .is_some_and(|ahead| Arc::ptr_eq(&ahead.cancel, &self.cancel))
        {
            shared.ahead = None;
        }
    }
}

/// Whether the socket has taken most of `span`, so the next one may be
/// read off the disk while the rest goes out.
fn taken_most(span: &Span) -> bool {
    span.sent >= span.len - span.len / 4
}

impl hyper::body::Body for Markers {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(fallback) = this.fallback.as_mut() {
            return Pin::new(fallback).poll_frame(cx);
        }
        if this.next >= this.end {
            return Poll::Ready(None);
        }
        let Some(region) = region() else {
            return Poll::Ready(Some(Err(io::Error::other("no sendfile region"))));
        };
        let len = this.span_len();
        if !this.warm {
            if this.warming.is_none() {
                // Read ahead only what the client is about to take: the
                // next span once the socket has taken most of this one.
                let mut shared = this.slot.lock();
                if shared
                    .pending
                    .as_ref()
                    .is_some_and(|span| !taken_most(span))
                {
                    shared.waiting = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                // The IO may have started on this span already.
                match shared.ahead.take() {
                    Some(ahead)
                        if Arc::ptr_eq(&ahead.cancel, &this.cancel)
                            && ahead.at == this.next
                            && ahead.len == len =>
                    {
                        match ahead.step {
                            Step::Cached => this.warm = true,
                            Step::Warming(step) => this.warming = Some(step),
                            Step::Waiting => {}
                        }
                    }
                    _ => {}
                }
                drop(shared);
                if this.warm || this.warming.is_some() {
                    // Started by the IO.
                } else if cached(&this.file, this.next, len) {
                    // Nothing to pull, so no trip to the blocking pool;
                    // but a first span still learns, from one byte,
                    // whether the file system does sendfile at all.
                    this.warm = true;
                    if this.next == this.start && warm::refused(&this.file, this.next) {
                        return this.turn(cx);
                    }
                } else {
                    this.warming = Some(warm(
                        this.file.clone(),
                        this.next,
                        len,
                        this.cancel.clone(),
                        [this.warmed.clone(), this.slot.warmed.clone()],
                    ));
                }
            }
            if let Some(warming) = this.warming.as_mut() {
                let outcome = ready!(Pin::new(warming).poll(cx));
                // A finished task is not polled again.
                this.warming = None;
                this.warm = true;
                if let Ok(Warmed::Refused) = outcome {
                    return this.turn(cx);
                }
                // Otherwise warming is best effort: a step that failed to
                // finish changes nothing the socket's sendfile would not find.
            }
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
            first: this.next == this.start,
        });
        this.next += len as u64;
        this.warm = false;
        this.span = (this.span * 2).min(SPAN);
        shared.ahead = (this.next < this.end).then(|| Ahead {
            file: this.file.clone(),
            at: this.next,
            len: this.span_len(),
            cancel: this.cancel.clone(),
            warmed: [this.warmed.clone(), this.slot.warmed.clone()],
            step: Step::Waiting,
        });
        drop(shared);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&region[..len])))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.fallback {
            Some(fallback) => fallback.is_end_stream(),
            None => self.next >= self.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.fallback {
            Some(fallback) => fallback.size_hint(),
            None => SizeHint::with_exact(self.end.saturating_sub(self.next)),
        }
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

    /// The connection, for a WebSocket route's closure to take over after
    /// the upgrade (a 101 has no body, so no span is pending).
    pub fn into_stream(self) -> TcpStream {
        self.stream
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
            Some((i, offset)) => {
                match self.slot.lock().pending.as_ref() {
                    None => return Poll::Ready(Err(out_of_turn("a marker with no span pending"))),
                    // Part of the span is on the wire: any byte before
                    // the rest of it would land inside the file's bytes.
                    Some(span) if span.sent > 0 => {
                        return Poll::Ready(Err(out_of_turn(
                            "a write before the rest of a partly sent span",
                        )));
                    }
                    // Only a body's head precedes its first span; bytes
                    // before a later one (hyper's 400 for a pipelined
                    // request that does not parse) would land inside it.
                    Some(span) if !span.first => {
                        return Poll::Ready(Err(out_of_turn(
                            "a write before a span that is not its body's first",
                        )));
                    }
                    // Checked before the bytes ahead of it go out.
                    Some(span) if offset != 0 || bufs[i].len() > span.len => {
                        return Poll::Ready(Err(out_of_turn(
                            "a marker slice that is not the next unsent part",
                        )));
                    }
                    Some(_) => {}
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
            // sendfile has no MSG_NOSIGNAL: a peer that reset the
            // connection would raise SIGPIPE, which would kill netsh were
            // it not ignored. Rust's runtime sets SIGPIPE to SIG_IGN before
            // `main` (netsh does not opt out with `-Zon-broken-pipe`), so
            // this is EPIPE instead.
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
        // The body waits for the span to be mostly taken (to warm the
        // next) or wholly (to yield the next marker); the next is warmed
        // from here, since hyper does not ask the body before then.
        let wake = taken_most(span);
        if span.sent == span.len {
            shared.pending = None;
        }
        if wake && let Some(ahead) = shared.ahead.as_mut() {
            ahead.start();
        }
        if wake && let Some(waker) = shared.waiting.take() {
            waker.wake();
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
        let slot = Slot::new(Arc::default()).expect("the region maps");
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
            first: true,
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

    #[tokio::test]
    async fn a_write_before_a_partly_sent_span_is_refused() {
        let (mut io, slot, mut client) = pair().await;
        let data: Vec<u8> = (0..100).collect();
        let _file = pending(&slot, &data);
        let marker = &region().unwrap()[..50];
        // A marker slice that is not the span's start is refused before
        // the head ahead of it goes out.
        let ahead = [IoSlice::new(b"HEAD"), IoSlice::new(&marker[5..])];
        assert!(io.write_vectored(&ahead).await.is_err());
        assert!(received(&mut client).await.is_empty());
        // Part of the span on the wire: nothing may come between it and
        // the rest (a `100 Continue` hyper put in its head buffer).
        assert_eq!(io.write(&marker[..20]).await.unwrap(), 20);
        let between = [
            IoSlice::new(b"HTTP/1.1 100 Continue\r\n\r\n"),
            IoSlice::new(&marker[20..]),
        ];
        assert!(io.write_vectored(&between).await.is_err());
        assert_eq!(received(&mut client).await, &data[10..30]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_gone_after_the_head_costs_little_warming() {
        // 40 MiB of file; the client takes the head and leaves, so the
        // socket never takes the first marker's span.
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(40 << 20).unwrap();
        let slot = Slot::new(Arc::default()).unwrap();
        let mut body = Markers::new(File::open(file.path()).unwrap(), 0, 40 << 20, slot);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), FIRST_SPAN);
        // hyper polls again for the next frame, and gets none yet.
        let again = tokio::time::timeout(Duration::from_millis(200), body.frame()).await;
        assert!(again.is_err(), "no next marker while the first is unsent");
        let warmed = body.warmed.clone();
        drop(body);
        // Every warming step holds the counter: wait for them to end.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while Arc::strong_count(&warmed) > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(Arc::strong_count(&warmed), 1, "a warming step never ended");
        let read = warmed.load(Ordering::Relaxed);
        assert!(
            read <= 1 << 20,
            "{read} bytes warmed for a client that left"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cached_span_is_not_warmed_and_a_dropped_one_is() {
        let file = warm::tests::on_disk(3 << 20);
        let first =
            |slot: &Slot| Markers::new(File::open(file.path()).unwrap(), 0, 3 << 20, slot.clone());
        // Just written: every page cached, the marker comes at once.
        let slot = Slot::new(Arc::default()).unwrap();
        let mut body = first(&slot);
        let marker = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(marker.len(), FIRST_SPAN);
        assert_eq!(
            body.warmed.load(Ordering::Relaxed),
            0,
            "a cached span was warmed"
        );
        assert!(body.fallback.is_none());
        // Dropped from the cache: warmed first, and counted.
        warm::tests::drop_cache(&File::open(file.path()).unwrap());
        let slot = Slot::new(Arc::default()).unwrap();
        let mut body = first(&slot);
        let marker = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(marker.len(), FIRST_SPAN);
        assert_eq!(body.warmed.load(Ordering::Relaxed), FIRST_SPAN as u64);
        assert_eq!(slot.warmed.load(Ordering::Relaxed), FIRST_SPAN as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_next_span_is_warmed_while_the_last_goes_out() {
        let file = warm::tests::on_disk(4 << 20);
        let opened = File::open(file.path()).unwrap();
        warm::tests::drop_cache(&opened);
        // No kernel readahead on this descriptor: what is cached is what
        // a warming step read.
        nix::fcntl::posix_fadvise(
            opened.as_fd(),
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_RANDOM,
        )
        .unwrap();
        let (mut io, slot, mut client) = pair().await;
        let mut body = Markers::new(opened, 0, 4 << 20, slot.clone());
        let marker = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(body.warmed.load(Ordering::Relaxed), FIRST_SPAN as u64);
        let reader = tokio::spawn(async move {
            let mut sink = vec![0; 1 << 20];
            let mut got = 0;
            while let Ok(n) = client.read(&mut sink).await {
                if n == 0 {
                    break;
                }
                got += n;
            }
            got
        });
        io.write_all(&marker).await.unwrap();
        // hyper asks the body for nothing until the marker is all written:
        // the IO has started the next span (twice as long) by then.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let want = 3 * FIRST_SPAN as u64;
        while body.warmed.load(Ordering::Relaxed) < want && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(body.warmed.load(Ordering::Relaxed), want);
        // The body takes that step up rather than warming it again.
        let marker = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(marker.len(), 2 * FIRST_SPAN);
        assert_eq!(body.warmed.load(Ordering::Relaxed), want);
        io.write_all(&marker).await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), want as usize);
    }

    #[tokio::test]
    async fn bytes_before_a_later_span_are_refused() {
        let (mut io, slot, mut client) = pair().await;
        let _file = pending(&slot, &[7; 100]);
        if let Some(span) = slot.lock().pending.as_mut() {
            span.first = false;
        }
        // hyper's 400 for a pipelined request that does not parse, put in
        // its head buffer ahead of a body's last marker.
        let marker = &region().unwrap()[..50];
        let bufs = [
            IoSlice::new(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            IoSlice::new(marker),
        ];
        assert!(io.write_vectored(&bufs).await.is_err());
        assert!(received(&mut client).await.is_empty());
    }

    #[tokio::test]
    async fn a_file_refusing_sendfile_turns_to_the_read_path() {
        // procfs does not splice: sendfile from it is EINVAL, as from a
        // file system without it; reading it works.
        let slot = Slot::new(Arc::default()).unwrap();
        let file = File::open("/proc/self/status").unwrap();
        let mut body = Markers::new(file, 0, 100_000, slot.clone());
        let frame = body.frame().await.expect("a frame");
        assert!(body.fallback.is_some(), "the body did not turn");
        assert!(slot.lock().pending.is_none(), "a marker was made");
        // The read path's bytes (or its error at the short file's end).
        if let Ok(frame) = frame {
            let data = frame.into_data().unwrap();
            assert!(place(&data).unwrap().is_none());
            assert!(data.starts_with(b"Name:"), "{data:?}");
        }
    }
}
