//! An HTTP/2 connection's open streams, counted so that a connection with
//! none is closed after `header_timeout`, as an idle HTTP/1.1 keep-alive
//! connection is by hyper's header timer. hyper's HTTP/2 server has no
//! idle limit of its own: a client that sent the preface and nothing
//! more, or one that stays connected and silent, held its connection
//! (and a `max_connections` slot) forever.
//!
//! A stream counts from its request until its response body is sent or
//! dropped ([`Counted`] wraps the body), so a long download is not idle.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::body::Body;

/// The streams of one connection.
pub struct Streams {
    open: AtomicUsize,
    /// When a stream last opened or closed, in ms since `start`.
    last: AtomicU64,
    start: Instant,
}

impl Streams {
    pub fn new() -> Arc<Streams> {
        Arc::new(Streams {
            open: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            start: Instant::now(),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Release);
    }

    /// A stream opens; it is open until the returned guard drops.
    pub fn open(self: &Arc<Streams>) -> Open {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Open(self.clone())
    }

    /// Resolves once the connection has had no open stream for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            if self.open.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(limit).await;
                continue;
            }
            let last = Duration::from_millis(self.last.load(Ordering::Acquire));
            let deadline = self.start + last + limit;
            if Instant::now() >= deadline {
                // Looked again: a stream may have opened meanwhile.
                if self.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                continue;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// An open stream; closes it when dropped.
pub struct Open(Arc<Streams>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.touch();
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its stream open until it is done.
pub struct Counted {
    inner: Body,
    _open: Open,
}

impl Counted {
    pub fn wrap(inner: Body, open: Open) -> Body {
        Counted { inner, _open: open }.boxed()
    }
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
