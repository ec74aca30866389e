//! A closure request's body, read whole before its handler runs, within
//! three limits:
//!
//! - `max_body` for one request (more is a 413);
//! - an idle limit between two pieces of it (`header_timeout`): a client
//!   that announces 1000 bytes and sends 3 is a 408, not a connection
//!   and a buffer held forever;
//! - a [`Budget`] for all requests at once (`max_body_total`): every body
//!   being read or handled holds its bytes from it until its handler
//!   returns, and a body that does not fit is a 503 with `Retry-After`,
//!   at once, so forty clients sending 15 MB each cannot make the server
//!   hold 600 MB. Refused rather than queued: a request waiting for room
//!   while holding half a body could wait on others doing the same.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::{StatusCode, body::Incoming};

/// The default of `max_body_total`: room for eight bodies of the
/// default `max_body` at once.
pub const DEFAULT_BUDGET: usize = 128 * 1024 * 1024;

/// The bytes all request bodies held at once may take.
pub struct Budget {
    cap: usize,
    used: AtomicUsize,
}

impl Budget {
    pub fn new(cap: usize) -> Arc<Budget> {
        Arc::new(Budget {
            cap,
            used: AtomicUsize::new(0),
        })
    }

    /// Takes `n` more bytes for `held`, if they fit.
    fn take(self: &Arc<Budget>, held: &mut Held, n: usize) -> bool {
        let fits = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.cap)
            })
            .is_ok();
        if fits {
            held.bytes += n;
        }
        fits
    }
}

/// Bytes taken from a [`Budget`], given back when dropped.
pub struct Held {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Over `max_body`: 413.
    TooLarge,
    /// Nothing came for the idle limit: 408.
    Stalled,
    /// No room in the budget: 503.
    Busy,
    /// The client broke off or sent a malformed body: 400.
    Broken,
}

impl Refused {
    pub fn status(&self) -> StatusCode {
        match self {
            Refused::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refused::Stalled => StatusCode::REQUEST_TIMEOUT,
            Refused::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Refused::Broken => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads `body` whole: its bytes, and the budget they hold.
pub async fn collect(
    mut body: Incoming,
    max: usize,
    idle: Duration,
    budget: &Arc<Budget>,
) -> Result<(Bytes, Held), Refused> {
    let mut held = Held {
        budget: budget.clone(),
        bytes: 0,
    };
    // A declared length is taken whole before a byte is read, so a body
    // that cannot fit is refused before it is sent.
    if let Some(length) = hyper::body::Body::size_hint(&body).exact() {
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length > max {
            return Err(Refused::TooLarge);
        }
        if length == 0 {
            return Ok((Bytes::new(), held));
        }
        if !budget.take(&mut held, length) {
            return Err(Refused::Busy);
        }
    }
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(Refused::Stalled),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(Refused::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.len());
        if total > max {
            return Err(Refused::TooLarge);
        }
        if total > held.bytes {
            let more = total - held.bytes;
            if !budget.take(&mut held, more) {
                return Err(Refused::Busy);
            }
        }
        if !data.is_empty() {
            pieces.push(data);
        }
    }
    let bytes = match pieces.len() {
        0 => Bytes::new(),
        1 => pieces.pop().unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(total);
            for piece in pieces {
                all.extend_from_slice(&piece);
            }
            all.freeze()
        }
    };
    Ok((bytes, held))
}
