//! The body of a framed upload: bytes from the socket to the part file on
//! a disk thread, hashed on the way, under the idle timeout and the minimum
//! rate a slow sender must keep.

use std::{
    fs::File,
    sync::mpsc as std_mpsc,
    time::{Duration, Instant},
};

use sha2::Sha256;
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    sync::mpsc,
};

use super::super::{
    disk::{self, CHUNK, IN_FLIGHT},
    protocol::{Code, Refusal},
};
use super::{KEPT, ReceiveOptions, cut_off_leaving, part::storage_error};
use crate::error::os_words;

/// The longest stretch a body's rate is averaged over.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// Streams `size - start` bytes from the socket into the part file.
/// The disk thread's result is returned even when the socket failed, so the
/// part file is left at exactly the bytes that arrived (ready to resume).
pub(super) async fn receive_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    file: File,
    hasher: Sha256,
    start: u64,
    size: u64,
    options: &ReceiveOptions,
    name: &str,
) -> std::result::Result<disk::Written, Refusal> {
    let idle = options.idle_timeout;
    let (to_disk, chunks) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let (give_back, spare) = std_mpsc::channel::<Vec<u8>>();
    let writer = tokio::task::spawn_blocking(move || {
        disk::write_chunks(file, hasher, start, chunks, give_back)
    });
    let mut rate = RateFloor::new(options.min_rate, idle, start, Instant::now());
    let mut position = start;
    let mut failure = None;
    while position < size {
        let want = (size - position).min(CHUNK as u64) as usize;
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(want, 0);
        // A short read is fine: pass on what came, keep the pipe moving.
        let n = match tokio::time::timeout(idle, reader.read(&mut buf)).await {
            Err(_) => {
                failure = Some(Refusal::new(
                    Code::Timeout,
                    format!(
                        "the sender went quiet for {} after {position} of {size} bytes of '{name}'",
                        crate::error::human_duration(idle)
                    ),
                ));
                break;
            }
            Ok(Ok(0)) => {
                failure = Some(cut_off_leaving(
                    name,
                    format!("the connection closed after {position} of {size} bytes"),
                    left(position),
                ));
                break;
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                failure = Some(cut_off_leaving(
                    name,
                    format!(
                        "the connection broke after {position} of {size} bytes ({})",
                        os_words(&e)
                    ),
                    left(position),
                ));
                break;
            }
        };
        buf.truncate(n);
        position += n as u64;
        if to_disk.send(buf).await.is_err() {
            break; // the disk thread stopped on an error; it reports it below
        }
        if let Err(slow) = rate.check(position, Instant::now(), name) {
            failure = Some(slow);
            break;
        }
    }
    drop(to_disk);
    let written = writer
        .await
        .map_err(|e| Refusal::new(Code::Storage, format!("the disk writer failed: {e}")))?;
    if let Some(e) = written.error {
        return Err(storage_error(name, e));
    }
    match failure {
        Some(refusal) => Err(refusal),
        None => Ok(written),
    }
}

/// What a body cut off at `position` leaves: an empty part file is
/// removed (see `part::Held`).
fn left(position: u64) -> &'static str {
    if position == 0 {
        "nothing was kept"
    } else {
        KEPT
    }
}

/// The minimum rate of a body: bytes per second averaged over stretches of
/// the idle timeout (at most [`RATE_WINDOW`], at least 100 ms). The first
/// stretch starts when the body does (right after GO); each ends at the
/// first arrival of bytes once it is that long, is judged over its real
/// length, and the next starts there. (A stretch in which nothing arrives
/// is the idle timeout's business.)
struct RateFloor {
    min: Option<u64>,
    window: Duration,
    since: Instant,
    at: u64,
}

impl RateFloor {
    fn new(min: Option<u64>, idle: Duration, position: u64, now: Instant) -> RateFloor {
        RateFloor {
            min: min.filter(|m| *m > 0),
            window: idle.min(RATE_WINDOW).max(Duration::from_millis(100)),
            since: now,
            at: position,
        }
    }

    /// Bytes up to `position` have arrived at `now`: at the end of a
    /// stretch, refuses a body that moved too little in it.
    fn check(
        &mut self,
        position: u64,
        now: Instant,
        name: &str,
    ) -> std::result::Result<(), Refusal> {
        let Some(min) = self.min else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < self.window {
            return Ok(());
        }
        let moved = position - self.at;
        if (moved as f64) < min as f64 * elapsed.as_secs_f64() {
            return Err(Refusal::new(
                Code::Timeout,
                format!(
                    "'{name}' arrived too slowly: {moved} bytes in {}, under the minimum of {min} bytes per second; the part received is kept to resume",
                    crate::error::human_duration(elapsed)
                ),
            ));
        }
        self.since = now;
        self.at = position;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stretches of the minimum rate: the first starts with the body,
    /// each ends at the first arrival once it is a window long and is
    /// judged over its real length, and the next starts there; a burst
    /// early in one stretch does not carry over into the next.
    #[test]
    fn the_rate_is_judged_over_back_to_back_stretches_from_the_body_start() {
        let body_start = Instant::now();
        let at = |ms: u64| body_start + Duration::from_millis(ms);
        // 1000 bytes/s over windows of the idle timeout, 1 s; resumed at 500.
        let mut rate = RateFloor::new(Some(1000), Duration::from_secs(1), 500, body_start);
        // Not judged before a window has passed, however little moved.
        assert!(rate.check(501, at(999), "f").is_ok());
        // Judged at 1.2 s over 1.2 s: 1300 bytes ≥ 1200 needed.
        assert!(rate.check(1800, at(1200), "f").is_ok());
        // The next stretch began at 1.2 s: at 2.1 s it is not yet judged...
        assert!(rate.check(1801, at(2100), "f").is_ok());
        // ...at 2.4 s it is, over 1.2 s: 1199 bytes < 1200 needed.
        let slow = rate.check(2999, at(2400), "f").unwrap_err();
        assert_eq!(slow.code, Code::Timeout);
        assert!(
            slow.message.contains("1199 bytes in 1.2 s"),
            "{}",
            slow.message
        );
        // No minimum: never refused.
        let mut none = RateFloor::new(Some(0), Duration::from_secs(1), 0, body_start);
        assert!(none.check(0, at(60_000), "f").is_ok());
    }

    /// The window is the idle timeout, but at most 30 s and at least 100 ms.
    #[test]
    fn the_rate_window_is_the_idle_timeout_within_bounds() {
        let now = Instant::now();
        let window = |idle| RateFloor::new(Some(1), idle, 0, now).window;
        assert_eq!(window(Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(window(Duration::from_secs(300)), RATE_WINDOW);
        assert_eq!(window(Duration::from_millis(1)), Duration::from_millis(100));
    }
}
