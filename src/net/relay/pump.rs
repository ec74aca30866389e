//! What every relay shares, whatever moves its bytes: the byte counts and
//! the last moment anything moved ([`Ends`]), running both directions
//! until both have ended or one fails ([`both`]), and the watch over a
//! running relay for `idle`, `stop()` and Ctrl-C ([`supervise`]).

use std::{
    future::Future,
    io,
    os::fd::BorrowedFd,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::runtime::CancellationToken;

/// One direction's byte count.
#[derive(Default)]
pub struct Meter {
    pub bytes: AtomicU64,
}

/// The two directions of one relay, and when bytes last moved.
pub struct Ends {
    pub a_to_b: Meter,
    pub b_to_a: Meter,
    started: Instant,
    /// Milliseconds after `started` of the last move, for `idle`.
    last: AtomicU64,
}

impl Default for Ends {
    fn default() -> Self {
        Ends {
            a_to_b: Meter::default(),
            b_to_a: Meter::default(),
            started: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Ends {
    /// Counts `n` bytes moved in one direction.
    pub fn moved(&self, meter: &Meter, n: usize) {
        meter.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    pub fn totals(&self) -> (u64, u64) {
        (
            self.a_to_b.bytes.load(Ordering::Relaxed),
            self.b_to_a.bytes.load(Ordering::Relaxed),
        )
    }

    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// How long since bytes last moved (or since the start).
    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Runs both directions; returns when both have ended, or at the first
/// failure of either (the other is dropped with it).
pub async fn both(
    x: impl Future<Output = io::Result<()>>,
    y: impl Future<Output = io::Result<()>>,
) -> io::Result<()> {
    tokio::pin!(x, y);
    let (mut x_done, mut y_done) = (false, false);
    while !(x_done && y_done) {
        tokio::select! {
            r = &mut x, if !x_done => { r?; x_done = true; }
            r = &mut y, if !y_done => { r?; y_done = true; }
        }
    }
    Ok(())
}

/// How a relay ended.
#[derive(Debug)]
pub enum End {
    /// Both directions ended with a close.
    Done,
    /// A side reset, or a read or write failed: both sides are reset.
    Failed(io::Error),
    /// Nothing moved for the `idle` span.
    Idle,
    /// `stop()` or Ctrl-C.
    Stopped,
}

/// Runs `work` (both directions) until it ends, nothing moves for `idle`,
/// or `token` is cancelled.
pub async fn supervise(
    work: impl Future<Output = io::Result<()>>,
    ends: &Ends,
    idle: Option<Duration>,
    token: &CancellationToken,
) -> End {
    let idle_watch = async {
        let Some(idle) = idle else {
            return std::future::pending::<()>().await;
        };
        loop {
            let quiet = ends.quiet_for();
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    };
    tokio::select! {
        r = work => match r {
            Ok(()) => End::Done,
            Err(e) => End::Failed(e),
        },
        _ = idle_watch => End::Idle,
        _ = token.cancelled() => End::Stopped,
    }
}

/// Makes the coming close of `fd` send RST instead of FIN (`SO_LINGER`
/// with a zero time), so a reset on one side reaches the other.
pub fn reset_on_close(fd: BorrowedFd<'_>) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::Linger, &linger);
}
