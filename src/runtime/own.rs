//! A runtime of one connection's own, driven by whichever thread waits on
//! that connection.
//!
//! A WebSocket route's closure runs on a thread of its own. With the
//! socket on the server's runtime, each message cost a hand-off: the
//! server's worker woke on the socket, read the frame, then woke the
//! closure's thread (3.5 context switches a message against the event
//! shape's 2 and python's 1; 1 connection at 1.4× python on a busy
//! machine). On a current-thread runtime of its own, the socket is
//! polled by the thread that waits for it: the closure's thread sleeps in
//! `epoll_wait` on its own socket and the kernel wakes it, nobody else.
//!
//! What runs on it (the connection's reading task) runs only while some
//! thread drives it. Any thread waiting in [`Own::wait`] does (a copy of
//! the handle used from a `task` too: a thread that finds it driven waits
//! for its own future while the driving one does the I/O). When nobody
//! has waited for a whole [`KEEP_TICK`], a keeper on the shared runtime's
//! blocking pool drives it until somebody waits again, so pings and the
//! peer's close are answered while the closure computes or sleeps.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};

use tokio::{
    runtime::{Handle, Runtime},
    sync::Notify,
};

use super::CancellationToken;
use crate::error::{Error, Result};

/// How often the keeper looks whether anybody waited since it last did.
const KEEP_TICK: Duration = Duration::from_millis(250);

/// A current-thread runtime; shut down in the background when the last
/// copy goes, so it may go anywhere (even on another runtime's worker).
struct Rt(Option<Runtime>);

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Who drives the runtime.
#[derive(Default)]
struct Drivers {
    /// Threads in [`Own::wait`] now.
    waiting: AtomicUsize,
    /// Waits begun, ever: unchanged over a tick means nobody waited.
    begun: AtomicU64,
    /// Told when a thread begins to wait while the keeper drives: it
    /// lets go.
    wanted: Notify,
    /// Whether the keeper drives (or is about to): only then is a wait's
    /// beginning told, which costs a lock.
    keeping: AtomicBool,
}

/// A connection's own runtime and its keeper.
pub struct Own {
    rt: Arc<Rt>,
    drivers: Arc<Drivers>,
    /// Ends the keeper.
    stop: CancellationToken,
}

impl Own {
    pub fn new() -> Result<Own> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting a connection's I/O runtime", None, e))?;
        let own = Own {
            rt: Arc::new(Rt(Some(rt))),
            drivers: Arc::new(Drivers::default()),
            stop: CancellationToken::new(),
        };
        super::handle().spawn(keep(own.rt.clone(), own.drivers.clone(), own.stop.clone()));
        Ok(own)
    }

    fn runtime(&self) -> Result<&Runtime> {
        self.rt
            .0
            .as_ref()
            .ok_or_else(|| Error::Protocol("the connection's I/O runtime is gone".into()))
    }

    /// Where the connection's tasks are spawned.
    pub fn handle(&self) -> Result<Handle> {
        self.runtime().map(|rt| rt.handle().clone())
    }

    /// [`super::block_on`] on this runtime: `fut` raced against the
    /// thread's token, driving the runtime meanwhile.
    pub fn wait<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        super::ensure_may_block()?;
        let token = super::cancel_token();
        if token.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let rt = self.runtime()?;
        let _driving = Driving::begin(&self.drivers);
        super::blocking(|| {
            rt.block_on(async move {
                tokio::select! {
                    biased;
                    _ = token.cancelled() => Err(Error::Interrupted),
                    result = fut => result,
                }
            })
        })
    }

    /// Last words on the way out (a close frame when the handle goes),
    /// whatever the token says; `None` on a thread that may not block
    /// here (inside a runtime), where nothing is run.
    pub fn finish<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        if Handle::try_current().is_ok() || super::ensure_may_block().is_err() {
            return None;
        }
        let rt = self.runtime().ok()?;
        let _driving = Driving::begin(&self.drivers);
        Some(rt.block_on(fut))
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Counts a thread as waiting for as long as it lives.
struct Driving<'a>(&'a Drivers);

impl<'a> Driving<'a> {
    fn begin(drivers: &'a Drivers) -> Driving<'a> {
        drivers.waiting.fetch_add(1, SeqCst);
        drivers.begun.fetch_add(1, SeqCst);
        // Counted as waiting before this look; the keeper says it keeps
        // before it looks at the count: one of the two sees the other.
        if drivers.keeping.load(SeqCst) {
            drivers.wanted.notify_waiters();
        }
        Driving(drivers)
    }
}

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, SeqCst);
    }
}

/// Every [`KEEP_TICK`]: if nobody began a wait since the last look and
/// nobody waits now, drives the runtime on a blocking thread until
/// somebody does (or the connection goes).
async fn keep(rt: Arc<Rt>, drivers: Arc<Drivers>, stop: CancellationToken) {
    let mut seen = drivers.begun.load(SeqCst);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(KEEP_TICK) => {}
        }
        let begun = drivers.begun.load(SeqCst);
        if begun != seen || drivers.waiting.load(SeqCst) > 0 {
            seen = begun;
            continue;
        }
        let (rt, drivers, stop) = (rt.clone(), drivers.clone(), stop.clone());
        let kept = tokio::task::spawn_blocking(move || {
            let Some(runtime) = rt.0.as_ref() else { return };
            runtime.block_on(async {
                let wanted = drivers.wanted.notified();
                tokio::pin!(wanted);
                // Listening, and saying so, before looking: a wait that
                // begins after the look is heard.
                wanted.as_mut().enable();
                drivers.keeping.store(true, SeqCst);
                if drivers.waiting.load(SeqCst) == 0 {
                    tokio::select! {
                        _ = wanted => {}
                        _ = stop.cancelled() => {}
                    }
                }
                drivers.keeping.store(false, SeqCst);
            });
        });
        let _ = kept.await;
    }
}
