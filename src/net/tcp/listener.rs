//! Where connections come from: `listen` and `accept` on the server side,
//! `connect` on the client side.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::Mutex,
};

use super::Conn;
use crate::error::{Error, Result};
use crate::net::addr::{self, Target};
use crate::runtime::{self, CancellationToken};

/// How long `connect` waits unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A listening TCP socket.
#[derive(Clone)]
pub struct Listener(Arc<ListenerState>);

pub struct ListenerState {
    pub addr: SocketAddr,
    pub socket: Mutex<Option<TcpListener>>,
    /// Cancelled by `close()`, so a blocked `accept()` elsewhere returns.
    pub closed: CancellationToken,
}

impl Listener {
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    pub fn state(&self) -> &ListenerState {
        &self.0
    }

    /// Waits for the next connection, up to `timeout` if given.
    pub fn accept(&self, timeout: Option<Duration>) -> Result<Conn> {
        let state = self.0.clone();
        runtime::block_on(async move {
            let mut guard = state.socket.lock().await;
            let Some(socket) = guard.as_ref() else {
                return Err(Error::Closed(format!(
                    "the listener on {} is closed",
                    state.addr
                )));
            };
            let accept = async {
                tokio::select! {
                    _ = state.closed.cancelled() => Err(Error::Closed(format!("the listener on {} was closed", state.addr))),
                    accepted = socket.accept() => accepted.map_err(|e| Error::io("accepting", None, e)),
                }
            };
            let accepted = match timeout {
                Some(after) => {
                    runtime::within(
                        after,
                        || format!("waiting for a connection on port {}", state.addr.port()),
                        accept,
                    )
                    .await
                }
                None => accept.await,
            };
            // `close()` could not take the socket while this wait held the
            // lock; drop it here so the port is released as the wait ends.
            if state.closed.is_cancelled() {
                guard.take();
            }
            let (stream, _) = accepted?;
            Conn::new(stream)
        })
    }

    pub fn close(&self) {
        self.0.closed.cancel();
        if let Ok(mut socket) = self.0.socket.try_lock() {
            socket.take();
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Listener({})", self.0.addr)
    }
}

/// Binds a listening socket. A bare port listens on every address, IPv4 and IPv6.
pub fn listen(bind: SocketAddr) -> Result<Listener> {
    let socket = runtime::block_on(async move { bind_listener(bind) })?;
    let addr = socket
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", None, e))?;
    Ok(Listener(Arc::new(ListenerState {
        addr,
        socket: Mutex::new(Some(socket)),
        closed: CancellationToken::new(),
    })))
}

/// Creates the socket with socket2 so SO_REUSEADDR and dual-stack are explicit.
/// Must run inside the runtime (tokio registers the socket with its reactor).
pub fn bind_listener(bind: SocketAddr) -> Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let in_use = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            let holder = crate::net::sockets::holder_of(bind.port())
                .map(|h| format!(", held by {h}"))
                .unwrap_or_default();
            Error::InUse(format!("port {} is already in use{holder}", bind.port()))
        } else {
            Error::io(format!("listening on {bind}"), None, e)
        }
    };
    let socket = Socket::new(Domain::for_address(bind), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| Error::io("creating a socket", None, e))?;
    if bind.is_ipv6() && bind.ip().is_unspecified() {
        let _ = socket.set_only_v6(false);
    }
    socket
        .set_reuse_address(true)
        .map_err(|e| Error::io("setting SO_REUSEADDR", None, e))?;
    socket.set_nonblocking(true).map_err(in_use)?;
    socket.bind(&bind.into()).map_err(in_use)?;
    socket.listen(1024).map_err(in_use)?;
    TcpListener::from_std(socket.into()).map_err(in_use)
}

/// Connects to `target`, trying each resolved address in turn (IPv4 first
/// when a name has both), each within `timeout`.
pub fn connect(target: &Target, timeout: Duration) -> Result<Conn> {
    let target = target.clone();
    runtime::block_on(async move {
        let addrs = addr::lookup(&target).await?;
        let mut last = None;
        for addr in addrs {
            let attempt =
                runtime::within(timeout, || format!("connecting to {addr}"), async move {
                    TcpStream::connect(addr)
                        .await
                        .map_err(|e| Error::io(format!("connecting to {addr}"), Some(addr), e))
                })
                .await;
            match attempt {
                Ok(stream) => return Conn::new(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Resolve {
            host: target.host.clone(),
            reason: "the name has no addresses".into(),
        }))
    })
}
