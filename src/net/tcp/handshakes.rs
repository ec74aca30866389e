//! The TLS handshakes a listener runs while it goes on accepting.
//!
//! A handshake takes a round trip or two with a well-behaved client, and
//! up to [`ACCEPT_HANDSHAKE_TIMEOUT`] with one that connects and sends
//! nothing. Run inside `accept()`, one at a time, such a client held every
//! client behind it. So each accepted connection's handshake is a task on
//! the runtime, bounded by its own timeout; `accept()` keeps taking new
//! connections meanwhile and returns whichever handshake finishes first
//! (a failed one too: its error says which client and why).
//!
//! At most [`MAX_PENDING_HANDSHAKES`] run or wait to be taken at once; a
//! flood of silent clients beyond that waits in the kernel's backlog, as
//! any client does while nobody accepts, instead of costing memory.
//! A handshake that finishes while nobody calls `accept()` waits, with its
//! slot, for the next call.

use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard, OwnedSemaphorePermit, Semaphore, mpsc};

use super::{ACCEPT_HANDSHAKE_TIMEOUT, Conn};
use crate::error::Result;
use crate::runtime::{self, CancellationToken};

/// Handshakes one listener (or server) runs or holds finished at once.
/// Each holds a descriptor and a rustls session: a few KiB while the client
/// is silent, about 70 KiB once it sends, so this bounds a flood at about
/// 5 MiB and 64 descriptors.
pub const MAX_PENDING_HANDSHAKES: usize = 64;

/// A handshake's outcome, holding its slot until `accept()` takes it.
struct Outcome {
    result: Result<Conn>,
    _slot: OwnedSemaphorePermit,
}

/// One listener's handshakes in progress, and those finished but not yet
/// taken by `accept()`.
pub struct Handshakes {
    slots: Arc<Semaphore>,
    done: mpsc::UnboundedSender<Outcome>,
    finished: Mutex<mpsc::UnboundedReceiver<Outcome>>,
}

impl Default for Handshakes {
    fn default() -> Self {
        let (done, finished) = mpsc::unbounded_channel();
        Handshakes {
            slots: Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)),
            done,
            finished: Mutex::new(finished),
        }
    }
}

impl Handshakes {
    /// A slot for one more handshake; waits while the pool is full.
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed, so this cannot fail; were it
        // closed, waiting forever (the caller races close and timeout) is
        // the safe reading.
        match self.slots.clone().acquire_owned().await {
            Ok(slot) => slot,
            Err(_) => std::future::pending().await,
        }
    }

    /// Runs `conn`'s handshake on the runtime; `stop` (the listener's
    /// close) ends it early and drops the connection.
    pub fn run(&self, conn: Conn, slot: OwnedSemaphorePermit, stop: CancellationToken) {
        let done = self.done.clone();
        runtime::handle().spawn(async move {
            let result = tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    conn.close();
                    return;
                }
                result = conn.handshake_on_runtime(ACCEPT_HANDSHAKE_TIMEOUT) => result,
            };
            if result.is_err() {
                conn.close();
            }
            let outcome = Outcome {
                result: result.map(|()| conn),
                _slot: slot,
            };
            // The listener is gone when nobody receives: the connection
            // closes as it is dropped.
            if let Err(unsent) = done.send(outcome)
                && let Ok(conn) = unsent.0.result
            {
                conn.close();
            }
        });
    }

    /// The receiving end of finished handshakes, for one `accept()` at a
    /// time.
    pub async fn outcomes(&self) -> Outcomes<'_> {
        Outcomes(self.finished.lock().await)
    }

    /// The listener is closed: closes the connections whose handshakes
    /// finished but that no `accept()` took, and makes the handshakes
    /// still running close theirs (their outcome can no longer be sent).
    /// Without this they stayed open, clients and descriptors, for as long
    /// as the listener's variable lived. Does nothing while an `accept()`
    /// holds the outcomes; that `accept()` calls it again as it ends.
    pub fn close(&self) {
        let Ok(mut finished) = self.finished.try_lock() else {
            return;
        };
        finished.close();
        while let Ok(outcome) = finished.try_recv() {
            if let Ok(conn) = outcome.result {
                conn.close();
            }
        }
    }

    /// Handshakes running or finished and not yet taken.
    pub fn pending(&self) -> usize {
        MAX_PENDING_HANDSHAKES.saturating_sub(self.slots.available_permits())
    }
}

/// The outcomes of finished handshakes, held by one `accept()`.
pub struct Outcomes<'a>(MutexGuard<'a, mpsc::UnboundedReceiver<Outcome>>);

impl Outcomes<'_> {
    /// The next handshake to finish, success or failure.
    pub async fn next(&mut self) -> Result<Conn> {
        match self.0.recv().await {
            Some(outcome) => outcome.result,
            // The pool holds a sender, so the channel never ends while it
            // is borrowed here.
            None => std::future::pending().await,
        }
    }
}
