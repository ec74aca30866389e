//! Where connections come from: `listen` and `accept` on the server side,
//! `connect` on the client side, over TCP or a Unix-domain socket, with a
//! TLS handshake when asked for (a listener's run concurrently, see
//! `handshakes`).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::Mutex,
};

use super::Conn;
use super::handshakes::Handshakes;
use super::stream::{Endpoint, Stream};
use super::unix::{self, UnixSocketFile};
use crate::error::{Error, Result};
use crate::net::addr::{self, Target, UnixAddr};
use crate::net::tls::{ClientTls, ServerTls};
use crate::runtime::{self, CancellationToken};

/// How long `connect` waits unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `accept` gives a TLS client to finish its handshake.
pub const ACCEPT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect or listen: a host and port, or a Unix-domain socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Net(Target),
    Unix(UnixAddr),
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Net(target) => write!(f, "{target}"),
            Dest::Unix(path) => write!(f, "{path}"),
        }
    }
}

impl From<&Target> for Dest {
    fn from(target: &Target) -> Dest {
        Dest::Net(target.clone())
    }
}

/// Parses `"unix:/path"`, `"unix:@name"` or `"host:port"`.
pub fn parse_dest(text: &str) -> Result<Dest> {
    match addr::parse_unix(text) {
        Some(unix) => unix.map(Dest::Unix),
        None => addr::parse_target(text).map(Dest::Net),
    }
}

/// A listening socket.
#[derive(Clone)]
pub struct Listener(Arc<ListenerState>);

pub struct ListenerState {
    pub addr: Endpoint,
    pub socket: Mutex<Option<ListenSocket>>,
    /// Cancelled by `close()`, so a blocked `accept()` elsewhere returns.
    pub closed: CancellationToken,
    /// The certificate a TLS listener presents.
    pub tls: Option<Arc<ServerTls>>,
    /// A TLS listener's handshakes under way.
    handshakes: Handshakes,
}

impl Drop for ListenerState {
    /// Handshakes still under way end with the listener.
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// A bound, listening socket, registered with tokio.
pub enum ListenSocket {
    Tcp(TcpListener),
    /// The socket file goes when this does.
    Unix(tokio::net::UnixListener, Option<UnixSocketFile>),
}

/// A connection a [`ListenSocket`] accepted, still registered with tokio.
pub enum Accepted {
    Tcp(TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Accepted {
    /// The socket for a [`Conn`], out of tokio's reactor.
    pub fn into_stream(self) -> std::io::Result<Stream> {
        Ok(match self {
            Accepted::Tcp(s) => {
                let stream = s.into_std()?;
                let _ = stream.set_nodelay(true);
                Stream::Tcp(stream)
            }
            Accepted::Unix(s) => Stream::Unix(s.into_std()?),
        })
    }
}

impl ListenSocket {
    /// Binds `bind` and listens. Must run inside a runtime, which registers
    /// the socket.
    pub fn bind(bind: &Bind) -> Result<(ListenSocket, Endpoint)> {
        match bind {
            Bind::Ip(ip) => {
                crate::permit::bind(*ip)?;
                let socket = bind_listener(*ip)?;
                let addr = socket
                    .local_addr()
                    .map_err(|e| Error::io("reading the bound address", None, e))?;
                Ok((ListenSocket::Tcp(socket), Endpoint::Ip(addr)))
            }
            Bind::Unix(path) => {
                path.permitted()?;
                let (socket, file) = unix::bind(path)?;
                Ok((
                    ListenSocket::Unix(socket, file),
                    Endpoint::Unix(path.to_string()),
                ))
            }
        }
    }

    /// The next connection.
    pub async fn accept(&self) -> std::io::Result<Accepted> {
        Ok(match self {
            ListenSocket::Tcp(l) => Accepted::Tcp(l.accept().await?.0),
            ListenSocket::Unix(l, _) => Accepted::Unix(l.accept().await?.0),
        })
    }
}

impl Listener {
    pub fn addr(&self) -> &Endpoint {
        &self.0.addr
    }

    pub fn state(&self) -> &ListenerState {
        &self.0
    }

    /// Waits for the next connection, up to `timeout` if given. On a TLS
    /// listener, the first connection whose handshake finishes, or fails
    /// (when the client does not speak TLS or refuses the certificate):
    /// handshakes run concurrently, so a silent client delays nobody, and
    /// `timeout` is kept exactly whatever they do.
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
                    conn = state.next_conn(socket) => conn,
                }
            };
            let accepted = match timeout {
                Some(after) => runtime::within(after, || state.waited_for(), accept).await,
                None => accept.await,
            };
            // `close()` could not take the socket while this wait held the
            // lock; drop it here so the port is released as the wait ends.
            if state.closed.is_cancelled() {
                guard.take();
                state.handshakes.close();
            }
            accepted
        })
    }

    pub fn close(&self) {
        self.0.closed.cancel();
        if let Ok(mut socket) = self.0.socket.try_lock() {
            socket.take();
        }
        self.0.handshakes.close();
    }
}

impl ListenerState {
    /// The next connection: a plain one as accepted, a TLS one once its
    /// handshake has finished (see `handshakes`).
    async fn next_conn(&self, socket: &ListenSocket) -> Result<Conn> {
        let accepting = |e| Error::io("accepting", None, e);
        let Some(tls) = &self.tls else {
            let stream = socket.accept().await.and_then(Accepted::into_stream);
            return Conn::over(stream.map_err(accepting)?, None);
        };
        let mut outcomes = self.handshakes.outcomes().await;
        loop {
            tokio::select! {
                conn = outcomes.next() => return conn,
                (slot, accepted) = async {
                    let slot = self.handshakes.slot().await;
                    (slot, socket.accept().await)
                } => {
                    let stream = accepted.and_then(Accepted::into_stream).map_err(accepting)?;
                    let conn = Conn::over(stream, Some(tls.session()?))?;
                    self.handshakes.run(conn, slot, self.closed.clone());
                }
            }
        }
    }

    /// What an `accept` that timed out was waiting for.
    fn waited_for(&self) -> String {
        match self.handshakes.pending() {
            0 => format!("waiting for a connection on {}", self.addr),
            1 => format!(
                "waiting for a connection on {} (1 client connected but has not finished its TLS handshake)",
                self.addr
            ),
            n => format!(
                "waiting for a connection on {} ({n} clients connected but have not finished their TLS handshakes)",
                self.addr
            ),
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tls = if self.0.tls.is_some() { ", TLS" } else { "" };
        write!(f, "Listener({}{tls})", self.0.addr)
    }
}

/// What to listen on: a local address and port, or a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Ip(SocketAddr),
    Unix(UnixAddr),
}

/// Parses `"unix:/path"`, `"unix:@name"`, or what [`addr::parse_bind`] takes.
pub fn parse_listen(text: &str) -> Result<Bind> {
    match addr::parse_unix(text) {
        Some(unix) => unix.map(Bind::Unix),
        None => addr::parse_bind(text).map(Bind::Ip),
    }
}

/// Binds a plain TCP listening socket. A bare port listens on every
/// address, IPv4 and IPv6.
pub fn listen(bind: SocketAddr) -> Result<Listener> {
    listen_on(&Bind::Ip(bind), None)
}

/// Binds a listening socket on a local address or a Unix socket, TLS when
/// `tls` says so.
pub fn listen_on(bind: &Bind, tls: Option<Arc<ServerTls>>) -> Result<Listener> {
    let bind = bind.clone();
    let (socket, addr) = runtime::block_on(async move { ListenSocket::bind(&bind) })?;
    Ok(Listener(Arc::new(ListenerState {
        addr,
        socket: Mutex::new(Some(socket)),
        closed: CancellationToken::new(),
        tls,
        handshakes: Handshakes::default(),
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

/// Connects to `target` over TCP, trying each resolved address in turn
/// (IPv4 first when a name has both), each within `timeout`.
pub fn connect(target: &Target, timeout: Duration) -> Result<Conn> {
    connect_to(&Dest::Net(target.clone()), timeout, None)
}

/// Connects to `dest`, each attempt within `timeout`; with `tls`, the
/// handshake follows (within `timeout` too), so a certificate the client
/// refuses fails the connect.
pub fn connect_to(dest: &Dest, timeout: Duration, tls: Option<&ClientTls>) -> Result<Conn> {
    let (stream, host) = match dest {
        Dest::Net(target) => (connect_tcp(target, timeout)?, Some(target.host.as_str())),
        Dest::Unix(path) => {
            path.permitted()?;
            (unix::connect(path, timeout)?, None)
        }
    };
    let session = tls.map(|tls| tls.session(host)).transpose()?;
    let conn = Conn::over(stream, session)?;
    conn.handshake(timeout)?;
    Ok(conn)
}

fn connect_tcp(target: &Target, timeout: Duration) -> Result<Stream> {
    addr::destination(target)?;
    let target = target.clone();
    runtime::block_on(async move {
        let addrs = addr::reach(&target).await?;
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
                Ok(stream) => {
                    let stream = stream
                        .into_std()
                        .map_err(|e| Error::io("taking over the socket", None, e))?;
                    let _ = stream.set_nodelay(true);
                    return Ok(Stream::Tcp(stream));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Resolve {
            host: target.host.clone(),
            reason: "the name has no addresses".into(),
        }))
    })
}
