//! A script thread's own runtime, for exchanges that are short and many.
//!
//! [`block_on`](super::block_on) drives a future from a script thread while
//! the shared runtime's worker does the I/O: each wait hands the work to the
//! worker and back, two cross-thread wake-ups. For a small HTTP request that
//! hand-off is a large part of the whole (1,000 sequential fetches ran at
//! 0.9× one curl process). [`block_on_here`] instead drives the future on a
//! current-thread tokio runtime that belongs to the calling thread: the
//! thread sleeps in `epoll_wait` on its own sockets and is woken by the
//! kernel, nobody else.
//!
//! What is made on this runtime lives on it: a connection task spawned
//! while it is driven (hyper's, for a pooled HTTP connection) runs only
//! while this thread is inside [`block_on_here`]. So whatever is cached for
//! reuse (reqwest's clients and their pools) must be cached per thread too;
//! [`driving`] says whether the code asking runs on this runtime.
//!
//! The race against the thread's cancellation token is the same as in
//! [`block_on`](super::block_on): the token's waker is this runtime's, and a
//! cancel from another thread (the SIGINT task, `.stop()`) unparks it.
//! [`release`] drops the runtime before its thread ends, so its descriptors
//! and blocking-pool threads never outlive the script thread.

use std::{
    cell::{Cell, RefCell},
    future::Future,
};

use tokio::runtime::Runtime;

use crate::error::{Error, Result};

thread_local! {
    static LOCAL: RefCell<Option<Runtime>> = const { RefCell::new(None) };
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `fut` to completion on this thread's own runtime (made on first
/// use), unless the thread's token is cancelled first.
pub fn block_on_here<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    super::ensure_may_block()?;
    let token = super::cancel_token();
    if token.is_cancelled() {
        return Err(Error::Interrupted);
    }
    LOCAL.with(|slot| {
        // `ensure_may_block` refused a nested call (it sees a runtime
        // context), so the slot is free here.
        let mut slot = slot
            .try_borrow_mut()
            .map_err(|_| Error::invalid("a blocking network call was made from inside another"))?;
        if slot.is_none() {
            *slot = Some(build()?);
        }
        let Some(rt) = slot.as_ref() else {
            return Err(Error::Protocol(
                "this thread's I/O runtime is missing".into(),
            ));
        };
        let _driving = Driving::start();
        super::blocking(|| {
            rt.block_on(async move {
                tokio::select! {
                    biased;
                    _ = token.cancelled() => Err(Error::Interrupted),
                    result = fut => result,
                }
            })
        })
    })
}

/// Is the current code running on this thread's own runtime (inside
/// [`block_on_here`])? Things cached for reuse must then be this thread's.
pub fn driving() -> bool {
    DRIVING.with(Cell::get)
}

/// Drops this thread's runtime, if it has one, with whatever it holds
/// (idle pooled connections). A script thread calls this before it ends.
/// It does not wait for the runtime's blocking threads: one may still be in
/// `getaddrinfo` for a name whose fetch was interrupted, and the thread's
/// end must not wait out the resolver.
pub fn release() {
    let rt = LOCAL.with(|slot| slot.try_borrow_mut().ok().and_then(|mut s| s.take()));
    if let Some(rt) = rt {
        rt.shutdown_background();
    }
}

fn build() -> Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("netsh-local-io")
        .build()
        .map_err(|e| Error::io("starting this thread's I/O runtime", None, e))
}

/// Sets [`driving`] for as long as it lives, even if the future panics.
struct Driving;

impl Driving {
    fn start() -> Driving {
        DRIVING.with(|d| d.set(true));
        Driving
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        DRIVING.with(|d| d.set(false));
    }
}
