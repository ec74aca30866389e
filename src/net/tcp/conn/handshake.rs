//! The TLS handshake of a connection, in two ways: on the calling thread
//! (`connect`, which waits for it anyway), or as a task on the runtime, so
//! that a server goes on accepting while a slow or silent client takes its
//! time (`accept` and `serve` on a TLS listener; see `tcp::handshakes`).
//! Both drive the same non-blocking steps of the session and say the same
//! things when it fails.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, RawFd},
    time::{Duration, Instant},
};

use tokio::io::{Interest, unix::AsyncFd};

use super::{Conn, poll_flags};
use crate::error::{Error, Result};
use crate::net::tcp::Endpoint;
use crate::net::tls::{self, Fault, Wait};
use crate::runtime::{self, Ready};

impl Conn {
    /// Runs the TLS handshake (nothing for a plain connection) on this
    /// thread, within `timeout`, under Ctrl-C: certificate errors surface
    /// here, in `connect`.
    pub fn handshake(&self, timeout: Duration) -> Result<()> {
        let Some(tls) = &self.0.tls else {
            return Ok(());
        };
        let socket = self.socket()?;
        let fd = socket.as_fd();
        let deadline = Instant::now() + timeout;
        let peer = &self.0.peer;
        loop {
            let wait = match tls.handshake_step(fd) {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => wait,
                Err(fault) => return Err(failed(peer, fault)),
            };
            if runtime::wait_fd(fd, poll_flags(wait), Some(deadline))? == Ready::TimedOut {
                return Err(Error::Timeout {
                    what: format!(
                        "waiting for the TLS handshake with {peer} to finish (does it speak TLS on this port?)"
                    ),
                    after: timeout,
                });
            }
        }
    }

    /// The server's side of the handshake as a task on the runtime, within
    /// `timeout`. The socket is registered with tokio only while it runs.
    pub async fn handshake_on_runtime(&self, timeout: Duration) -> Result<()> {
        let Some(tls) = &self.0.tls else {
            return Ok(());
        };
        let socket = self.socket()?;
        let fd = socket.as_fd();
        let peer = &self.0.peer;
        // SAFETY: `socket` holds the descriptor open (a `close()` elsewhere
        // only shuts it down) until after `registered`, declared later, is
        // dropped; `Unowned` always reports that one descriptor.
        let registered = unsafe {
            AsyncFd::register_with_interest(
                Unowned(fd.as_raw_fd()),
                Interest::READABLE | Interest::WRITABLE,
            )
        }
        .map_err(|e| Error::io("waiting for the TLS handshake", None, e.into_parts().1))?;
        let steps = async {
            let mut wait = match tls.handshake_step(fd) {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => wait,
                Err(fault) => return Err(failed(peer, fault)),
            };
            loop {
                let ready = match wait {
                    Wait::Readable => registered.readable().await,
                    Wait::Writable => registered.writable().await,
                };
                let mut ready = ready.map_err(|e| failed(peer, Fault::Io(e)))?;
                // A step that would block again in the same direction
                // clears the readiness tokio saw, so the next wait sleeps.
                let step = ready.try_io(|_| match tls.handshake_step(fd) {
                    Ok(Some(again)) if again == wait => Err(io::ErrorKind::WouldBlock.into()),
                    other => Ok(other),
                });
                match step {
                    Ok(Ok(Ok(None))) => return Ok(()),
                    Ok(Ok(Ok(Some(next)))) => wait = next,
                    Ok(Ok(Err(fault))) => return Err(failed(peer, fault)),
                    // Only the would-block above reaches here.
                    Ok(Err(_)) | Err(_) => {}
                }
            }
        };
        match tokio::time::timeout(timeout, steps).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                what: format!(
                    "waiting for {peer} to finish the TLS handshake (it connected but did not complete it)"
                ),
                after: timeout,
            }),
        }
    }
}

/// A failed handshake step in words.
fn failed(peer: &Endpoint, fault: Fault) -> Error {
    match fault {
        Fault::Tls(e) => Error::Protocol(format!(
            "TLS handshake with {peer} failed: {}",
            tls::words(&e)
        )),
        Fault::Eof => Error::Protocol(format!(
            "TLS handshake with {peer} failed: it closed the connection (it does not speak TLS, or refused our hello)"
        )),
        Fault::Io(e) => Error::io(format!("TLS handshake with {peer}"), peer.ip(), e),
    }
}

/// A descriptor tokio watches but does not own: the connection's socket
/// stays the connection's, and outlives this registration.
struct Unowned(RawFd);

impl AsRawFd for Unowned {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}
