//! Blocking waits on a file descriptor that still obey Ctrl-C and `.stop()`.
//!
//! [`block_on`](super::block_on) hands a wait to the tokio runtime: a worker
//! thread sees the socket become ready and wakes the Rhai thread. For a read
//! in a loop (`serve(port, |c| loop { c.recv_line() … })`) that is two thread
//! wake-ups per message where a plain blocking read has one, and on two cores
//! it shows: the closure-shaped `serve` lost a third of the throughput of a
//! thread-per-connection server. So connection reads and writes wait here
//! instead, on the Rhai thread itself, with `poll(2)` on the socket *and* on
//! an eventfd that becomes readable when the thread's cancellation token is
//! cancelled: one wake-up per message, and Ctrl-C still interrupts at once.
//!
//! The eventfd is made once per thread. A small tokio task watches the
//! thread's current token and writes to the eventfd when it is cancelled;
//! when the thread switches tokens (the REPL takes a fresh one per line), the
//! old watcher is aborted and the eventfd drained.

use std::{
    cell::RefCell,
    os::fd::{AsFd, BorrowedFd},
    sync::Arc,
    time::Instant,
};

use nix::{
    errno::Errno,
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::eventfd::{EfdFlags, EventFd},
};

use super::{CancellationToken, cancel_token, generation};
use crate::error::{Error, Result};

/// What a wait on a descriptor came to (cancellation is an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The descriptor is ready (or in error: the next syscall will say).
    Yes,
    /// The deadline passed first.
    TimedOut,
}

struct Watch {
    fd: Arc<EventFd>,
    /// The token generation the watcher below was started for.
    generation: u64,
    watcher: Option<tokio::task::AbortHandle>,
}

thread_local! {
    static WATCH: RefCell<Option<Watch>> = const { RefCell::new(None) };
}

/// The eventfd that is readable once the current thread's token is cancelled.
fn cancel_fd() -> Result<Arc<EventFd>> {
    WATCH.with(|slot| {
        let mut slot = slot.borrow_mut();
        let current = generation();
        if let Some(watch) = slot.as_ref()
            && watch.generation == current
        {
            return Ok(watch.fd.clone());
        }
        let fd = match slot.take() {
            Some(mut old) => {
                if let Some(watcher) = old.watcher.take() {
                    watcher.abort();
                }
                // A cancellation of the old token may have left a count.
                let _ = old.fd.read();
                old.fd
            }
            None => Arc::new(
                EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                    .map_err(|e| Error::io("creating an eventfd", None, e.into()))?,
            ),
        };
        let watcher = watch_token(cancel_token(), fd.clone());
        *slot = Some(Watch {
            fd: fd.clone(),
            generation: current,
            watcher: Some(watcher),
        });
        Ok(fd)
    })
}

fn watch_token(token: CancellationToken, fd: Arc<EventFd>) -> tokio::task::AbortHandle {
    super::handle()
        .spawn(async move {
            token.cancelled().await;
            let _ = fd.write(1);
        })
        .abort_handle()
}

/// Waits until `fd` is ready for `events`, or `deadline` passes. Fails with
/// [`Error::Interrupted`] when the thread's work is cancelled (Ctrl-C,
/// `.stop()`) and refuses to wait on a runtime thread (an event handler).
pub fn wait_fd(fd: BorrowedFd<'_>, events: PollFlags, deadline: Option<Instant>) -> Result<Ready> {
    super::ensure_may_block()?;
    let cancel = cancel_fd()?;
    super::blocking(|| poll_until(fd, events, deadline, &cancel))
}

/// [`wait_fd`]'s loop: `poll` on `fd` and the cancellation eventfd.
fn poll_until(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
    cancel: &impl AsFd,
) -> Result<Ready> {
    loop {
        if super::is_cancelled() {
            return Err(Error::Interrupted);
        }
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Ready::TimedOut);
                }
                // Round up, so a wait never ends a hair before its deadline.
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [
            PollFd::new(fd, events),
            PollFd::new(cancel.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(0) => continue, // the deadline check above decides
            Ok(_) => {
                if fds[1].any().unwrap_or(false) {
                    return Err(Error::Interrupted);
                }
                return Ok(Ready::Yes);
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::io("waiting on a socket", None, e.into())),
        }
    }
}
