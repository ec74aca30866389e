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
//! thread is inside [`Own::wait`]: any thread may drive it (a copy of
//! the handle used from a `task`), and a thread that finds it driven
//! waits for its own future while the driving one does the I/O.

use std::future::Future;

use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, Result};

/// A current-thread runtime; shut down in the background when dropped, so
/// dropping it is allowed anywhere (even on another runtime's worker).
pub struct Own(Option<Runtime>);

impl Own {
    pub fn new() -> Result<Own> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| Own(Some(rt)))
            .map_err(|e| Error::io("starting a connection's I/O runtime", None, e))
    }

    fn runtime(&self) -> Result<&Runtime> {
        self.0
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
        Some(rt.block_on(fut))
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
