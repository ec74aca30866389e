//! The bridge between blocking Rhai and async tokio.
//!
//! Rhai is synchronous; networking is async. Every registered function that
//! waits calls [`block_on`], which drives a future on the one multi-thread
//! tokio runtime *and* races it against the calling thread's cancellation
//! token. That race is how Ctrl-C stops a blocking `accept()` or `sleep(60000)`:
//! Rhai's own `on_progress` hook only runs between Rhai operations, never
//! while a native function waits.
//!
//! Each thread that runs Rhai code has its own token (a thread-local). The
//! REPL's foreground thread gets a fresh one per command, which the SIGINT
//! handler cancels; a background `task`/`serve` thread gets one of its own,
//! cancelled by `.stop()`, so Ctrl-C at the prompt never kills servers the
//! user left running.
//!
//! The runtime is created on first use rather than in `main`, so
//! `netsh -e '1+1'` and scripts that never touch the network start without
//! spawning worker threads.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use tokio::runtime::{Handle, Runtime};
pub use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The process-wide tokio runtime, created on first use.
///
/// Its workers do the I/O of calls made on script threads (connects,
/// downloads, TLS, timers) while the script threads run Rhai themselves,
/// so it gets half the cores, at least one. (A fetch into memory runs on
/// the script thread's own runtime instead: [`local`].) A worker per core measured
/// slower on two cores: each request a script thread hands over woke the
/// idle second worker too (1,000 small fetches: 0.136 s with two workers,
/// 0.124 s with one, curl 0.139 s; TLS throughput the same).
pub fn handle() -> &'static Handle {
    RUNTIME
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads((cores / 2).max(1))
                .enable_all()
                .thread_name("netsh-io")
                .build()
                .expect("the operating system refused to start the I/O runtime threads")
        })
        .handle()
}

pub mod closure;
pub mod jobs;
pub mod local;
mod own;
mod wake;

pub use local::block_on_here;
pub use own::Own;
pub use wake::{Ready, wait_fd};

thread_local! {
    static CANCEL: RefCell<CancellationToken> = RefCell::new(CancellationToken::new());
    /// Counts token changes on this thread, so [`wake`] knows when the
    /// token it watches is stale.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    /// The token under which work this thread starts (`task`, `serve`) runs:
    /// a task's own token, so stopping a task stops what it started; on the
    /// main thread, the process's root, so Ctrl-C never stops background work.
    static PARENT: RefCell<Option<CancellationToken>> = const { RefCell::new(None) };
    /// Set on the threads that run event handlers, which must never block.
    static EVENT_HANDLER: Cell<bool> = const { Cell::new(false) };
    /// Set on the worker threads of an `http_serve` runtime: handlers run
    /// there and may block, each wait handing the worker's other tasks to
    /// another thread first ([`blocking`]).
    static BLOCK_IN_PLACE: Cell<bool> = const { Cell::new(false) };
}

/// The root of every background job's token.
static ROOT: OnceLock<CancellationToken> = OnceLock::new();

fn root() -> &'static CancellationToken {
    ROOT.get_or_init(CancellationToken::new)
}

/// The token of the command in the foreground, which Ctrl-C cancels.
static FOREGROUND: Mutex<Option<CancellationToken>> = Mutex::new(None);

/// The cancellation token of the current thread.
pub fn cancel_token() -> CancellationToken {
    CANCEL.with(|c| c.borrow().clone())
}

/// Makes `token` the current thread's cancellation token and hands back
/// the one it replaces: no clone of it made (a token's clone and drop
/// each take its tree's lock).
pub fn replace_cancel_token(token: CancellationToken) -> CancellationToken {
    let old = CANCEL.with(|c| std::mem::replace(&mut *c.borrow_mut(), token));
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
    old
}

/// Makes `token` the current thread's cancellation token.
pub fn set_cancel_token(token: CancellationToken) {
    CANCEL.with(|c| *c.borrow_mut() = token);
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
}

fn generation() -> u64 {
    GENERATION.with(Cell::get)
}

/// A token for background work started from this thread: a child of the
/// starting task's token (so `stop()` on a task also stops the tasks and
/// servers it started), or of the process root on the main thread.
pub fn child_token() -> CancellationToken {
    PARENT.with(|p| match p.borrow().as_ref() {
        Some(parent) => parent.child_token(),
        None => root().child_token(),
    })
}

/// Is this thread running background work (a task, a server's handler),
/// not the script's main body or the REPL?
pub fn in_background() -> bool {
    PARENT.with(|p| p.borrow().is_some())
}

/// Makes `token` this thread's token, and the parent of the work it starts.
pub fn adopt(token: CancellationToken) {
    PARENT.with(|p| *p.borrow_mut() = Some(token.clone()));
    set_cancel_token(token);
}

/// Marks this thread as one that runs event handlers: every wait refuses.
pub fn set_event_handler_thread() {
    EVENT_HANDLER.with(|e| e.set(true));
}

/// Marks this thread (a worker of a multi-thread runtime of its own) as
/// one whose Rhai code may wait: every wait goes through [`blocking`].
pub fn set_block_in_place_thread() {
    BLOCK_IN_PLACE.with(|e| e.set(true));
}

/// Runs `wait`, a wait that blocks this thread. On an `http_serve` worker
/// it runs inside `tokio::task::block_in_place`: the worker's other tasks
/// (every other connection) move to another thread for as long as it
/// waits, and the wait may drive a runtime of its own. A handler that
/// never waits costs nothing more than the call.
pub fn blocking<R>(wait: impl FnOnce() -> R) -> R {
    if BLOCK_IN_PLACE.with(Cell::get) && Handle::try_current().is_ok() {
        tokio::task::block_in_place(wait)
    } else {
        wait()
    }
}

/// Fails when this thread must not block: an event handler (which would
/// stall every connection of its server) or a runtime thread (where tokio
/// would panic), unless it is an `http_serve` worker, whose waits go
/// through [`blocking`].
pub fn ensure_may_block() -> Result<()> {
    if EVENT_HANDLER.with(Cell::get) {
        return Err(Error::invalid(
            "cannot wait inside an event handler (on_line, on_data, on_open, on_close): \
             handlers run only when data is ready and must return quickly; \
             use the closure shape serve(port, |c| { … }) for code that waits",
        ));
    }
    if Handle::try_current().is_ok() && !BLOCK_IN_PLACE.with(Cell::get) {
        // Rhai code never runs on a runtime thread; if it somehow did,
        // tokio would panic. Say so instead.
        return Err(Error::invalid(
            "a blocking network call was made from inside the I/O runtime",
        ));
    }
    Ok(())
}

/// Has the current thread's work been cancelled (Ctrl-C or `.stop()`)?
pub fn is_cancelled() -> bool {
    CANCEL.with(|c| c.borrow().is_cancelled())
}

/// Starts a foreground command on this thread: a fresh token that
/// [`interrupt_foreground`] (Ctrl-C) will cancel.
pub fn begin_foreground() {
    let token = CancellationToken::new();
    set_cancel_token(token.clone());
    if let Ok(mut slot) = FOREGROUND.lock() {
        *slot = Some(token);
    }
}

/// Cancels whatever the foreground command is doing.
pub fn interrupt_foreground() {
    if let Ok(slot) = FOREGROUND.lock()
        && let Some(token) = slot.as_ref()
    {
        token.cancel();
    }
}

/// Routes SIGINT to [`interrupt_foreground`] instead of killing the process.
/// Only the REPL does this; a script keeps the default (Ctrl-C ends it).
pub fn install_ctrl_c_handler() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let _guard = handle().enter();
    // Registered here, synchronously, so no Ctrl-C slips through before the
    // task below is first polled.
    let mut sigint = signal(SignalKind::interrupt())?;
    handle().spawn(async move {
        while sigint.recv().await.is_some() {
            interrupt_foreground();
        }
    });
    Ok(())
}

/// Runs `fut` to completion on the runtime, blocking this (non-runtime)
/// thread, unless the thread's token is cancelled first.
pub fn block_on<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    ensure_may_block()?;
    let token = cancel_token();
    if token.is_cancelled() {
        return Err(Error::Interrupted);
    }
    blocking(|| {
        handle().block_on(async move {
            tokio::select! {
                biased;
                _ = token.cancelled() => Err(Error::Interrupted),
                result = fut => result,
            }
        })
    })
}

/// `fut`, or [`Error::Timeout`] saying `what` was being waited for.
pub async fn within<T>(
    after: Duration,
    what: impl FnOnce() -> String,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(after, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            what: what(),
            after,
        }),
    }
}

/// Blocks for `ms` milliseconds; Ctrl-C ends the wait early with an error.
pub fn sleep(duration: Duration) -> Result<()> {
    block_on(async move {
        tokio::time::sleep(duration).await;
        Ok(())
    })
}

/// The stack of each thread that runs Rhai code. Rhai evaluates
/// recursively, so this bounds the script's call depth: the engine allows 64
/// nested calls, and a test checks that reaching that limit is a Rhai error,
/// not a stack overflow. Measured: a call level with a loop in it takes about
/// 16 KiB of stack in debug builds and more in release builds, where inlining
/// makes frames larger (512 KiB overflowed at depth 62 in both). Untouched
/// stack pages cost no memory, so this is reserved address space, not RSS.
pub const RHAI_THREAD_STACK: usize = 2 * 1024 * 1024;

/// Starts an OS thread that runs Rhai code under `token`; work it starts
/// in turn (tasks, servers) runs under children of `token`.
pub fn spawn_rhai_thread<T: Send + 'static>(
    name: impl Into<String>,
    token: CancellationToken,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(RHAI_THREAD_STACK)
        .spawn(move || {
            adopt(token);
            let result = work();
            local::release();
            result
        })
        .map_err(|e| Error::io("starting a thread", None, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_token_interrupts_a_long_wait() {
        let token = CancellationToken::new();
        set_cancel_token(token.clone());
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            token.cancel();
        });
        let started = std::time::Instant::now();
        let result = sleep(Duration::from_secs(30));
        assert!(matches!(result, Err(Error::Interrupted)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        canceller.join().unwrap();
        set_cancel_token(CancellationToken::new());
    }

    #[test]
    fn within_reports_a_timeout() {
        let result: Result<()> = block_on(within(
            Duration::from_millis(20),
            || "waiting for nothing".into(),
            std::future::pending(),
        ));
        assert_eq!(
            result.unwrap_err().to_string(),
            "timed out after 20 ms while waiting for nothing"
        );
    }
}
