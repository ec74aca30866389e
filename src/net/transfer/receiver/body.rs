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
    let mut rate = RateFloor::new(options.min_rate, idle, start);
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
        if let Err(slow) = rate.check(position, name) {
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
/// the idle timeout (at most [`RATE_WINDOW`]).
struct RateFloor {
    min: Option<u64>,
    window: Duration,
    since: Instant,
    at: u64,
}

impl RateFloor {
    fn new(min: Option<u64>, idle: Duration, position: u64) -> RateFloor {
        RateFloor {
            min: min.filter(|m| *m > 0),
            window: idle.min(RATE_WINDOW).max(Duration::from_millis(100)),
            since: Instant::now(),
            at: position,
        }
    }

    /// At the end of each stretch, refuses a body that moved too little in it.
    fn check(&mut self, position: u64, name: &str) -> std::result::Result<(), Refusal> {
        let Some(min) = self.min else {
            return Ok(());
        };
        let elapsed = self.since.elapsed();
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
        self.since = Instant::now();
        self.at = position;
        Ok(())
    }
}
