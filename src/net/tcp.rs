//! TCP client and server (lessons 1.5, 1.6): `listen`, `accept`, `connect`,
//! and the `Conn` methods to talk over a connection.
//!
//! A [`Conn`] is shared (`Clone` is an `Arc`), because Rhai copies values and
//! a script may hand one connection to a `task`. Its read and write halves
//! have separate locks so one thread can block in `recv()` while another
//! sends. Every wait goes through [`runtime::block_on`] and so obeys Ctrl-C.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rhai::plugin::*;
use tokio::{
    io::BufReader,
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::Mutex,
};

use crate::error::{Error, Result};
use crate::net::addr::{self, Target};
use crate::runtime::{self, CancellationToken};

/// How long `connect` waits unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Rhai module of this capability.
pub fn module() -> Module {
    let mut module = exported_module!(api);
    module.set_custom_type::<Conn>("Conn");
    module.set_custom_type::<Listener>("Listener");
    module
}

/// An open TCP connection.
#[derive(Clone)]
pub struct Conn(Arc<ConnState>);

pub struct ConnState {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// `None` once closed (or, for the writer, after `shutdown()`).
    pub reader: Mutex<Option<BufReader<OwnedReadHalf>>>,
    pub writer: Mutex<Option<OwnedWriteHalf>>,
    /// Read timeout in milliseconds; 0 means wait forever (Ctrl-C still works).
    read_timeout_ms: AtomicU64,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Result<Conn> {
        let local = stream
            .local_addr()
            .map_err(|e| Error::io("reading the local address", None, e))?;
        let peer = stream
            .peer_addr()
            .map_err(|e| Error::io("reading the peer address", None, e))?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Ok(Conn(Arc::new(ConnState {
            local,
            peer,
            reader: Mutex::new(Some(BufReader::with_capacity(64 * 1024, read))),
            writer: Mutex::new(Some(write)),
            read_timeout_ms: AtomicU64::new(0),
        })))
    }

    pub fn state(&self) -> &ConnState {
        &self.0
    }

    pub fn local(&self) -> SocketAddr {
        self.0.local
    }

    pub fn peer(&self) -> SocketAddr {
        self.0.peer
    }

    /// The read timeout, if one is set.
    pub fn read_timeout(&self) -> Option<Duration> {
        match self.0.read_timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        let ms = timeout.map_or(0, |d| d.as_millis().max(1) as u64);
        self.0.read_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// The error for using a closed connection.
    pub fn closed_error(&self) -> Error {
        Error::Closed(format!("the connection to {} is closed", self.0.peer))
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({} → {})", self.0.local, self.0.peer)
    }
}

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
            let guard = state.socket.lock().await;
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
            let (stream, _) = match timeout {
                Some(after) => {
                    runtime::within(
                        after,
                        || format!("waiting for a connection on port {}", state.addr.port()),
                        accept,
                    )
                    .await?
                }
                None => accept.await?,
            };
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
fn bind_listener(bind: SocketAddr) -> Result<TcpListener> {
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
/// when a name has both), within `timeout` overall.
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

#[export_module]
mod api {
    use crate::error::{ScriptResult, fail};

    /// Opens a TCP listening socket on a port, on every address (IPv4 and IPv6).
    /// Port 0 picks a free port; read it from `.port`.
    ///
    /// ```rhai
    /// let l = listen(9000);
    /// let c = l.accept();
    /// ```
    ///
    /// Fails when: the port is out of range or already in use (the message
    /// names the process holding it when it can be found).
    #[rhai_fn(return_raw)]
    pub fn listen(port: i64) -> ScriptResult<Listener> {
        addr::port(port)
            .map(addr::any_addr)
            .and_then(super::listen)
            .map_err(fail("listen"))
    }

    /// Opens a TCP listening socket on one local address.
    ///
    /// ```rhai
    /// let l = listen("127.0.0.1:0"); print(l.port);
    /// let l6 = listen("[::1]:9000");
    /// ```
    ///
    /// Fails when: the address is malformed or not local, or the port is in use.
    #[rhai_fn(return_raw, name = "listen")]
    pub fn listen_addr(addr: &str) -> ScriptResult<Listener> {
        addr::parse_bind(addr)
            .and_then(super::listen)
            .map_err(fail("listen"))
    }

    /// The port a listener is bound to.
    ///
    /// ```rhai
    /// listen(0).port
    /// ```
    #[rhai_fn(get = "port", pure)]
    pub fn listener_port(l: &mut Listener) -> i64 {
        l.addr().port() as i64
    }

    /// The address a listener is bound to, as `"ip:port"`.
    ///
    /// ```rhai
    /// listen("127.0.0.1:0").addr    // "127.0.0.1:40123"
    /// ```
    #[rhai_fn(get = "addr", pure)]
    pub fn listener_addr(l: &mut Listener) -> String {
        l.addr().to_string()
    }

    /// Waits for the next connection and returns it. Ctrl-C stops the wait.
    ///
    /// ```rhai
    /// let c = listen(9000).accept();
    /// ```
    ///
    /// Fails when: the listener was closed, or the wait is interrupted.
    #[rhai_fn(return_raw, pure)]
    pub fn accept(l: &mut Listener) -> ScriptResult<Conn> {
        l.accept(None).map_err(fail("accept"))
    }

    /// Waits at most `timeout_ms` milliseconds for the next connection.
    ///
    /// ```rhai
    /// let c = l.accept(5000);
    /// ```
    ///
    /// Fails when: nobody connects in time, the listener was closed, or the
    /// wait is interrupted.
    #[rhai_fn(return_raw, pure, name = "accept")]
    pub fn accept_timeout(l: &mut Listener, timeout_ms: i64) -> ScriptResult<Conn> {
        crate::net::helpers::millis(timeout_ms, "timeout")
            .and_then(|t| l.accept(Some(t)))
            .map_err(fail("accept"))
    }

    /// Stops listening; a blocked `accept()` returns with an error.
    ///
    /// ```rhai
    /// l.close();
    /// ```
    #[rhai_fn(pure, name = "close")]
    pub fn close_listener(l: &mut Listener) {
        l.close();
    }

    /// Connects to `"host:port"` or `"[v6]:port"` (10 s timeout).
    ///
    /// ```rhai
    /// let c = connect("127.0.0.1:9000");
    /// ```
    ///
    /// Fails when: the name does not resolve, the port is closed (refused),
    /// the host is unreachable, or nothing answers in time.
    #[rhai_fn(return_raw)]
    pub fn connect(addr: &str) -> ScriptResult<Conn> {
        addr::parse_target(addr)
            .and_then(|t| super::connect(&t, super::DEFAULT_CONNECT_TIMEOUT))
            .map_err(fail("connect"))
    }

    /// Connects to a host and port given separately.
    ///
    /// ```rhai
    /// let c = connect("localhost", 9000);
    /// ```
    ///
    /// Fails when: as `connect(addr)`, or the port is out of range.
    #[rhai_fn(return_raw, name = "connect")]
    pub fn connect_host_port(host: &str, port: i64) -> ScriptResult<Conn> {
        addr::port(port)
            .map(|port| Target {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port,
            })
            .and_then(|t| super::connect(&t, super::DEFAULT_CONNECT_TIMEOUT))
            .map_err(fail("connect"))
    }

    /// The local end of a connection, as `"ip:port"`.
    ///
    /// ```rhai
    /// c.local
    /// ```
    #[rhai_fn(get = "local", pure)]
    pub fn local(c: &mut Conn) -> String {
        c.local().to_string()
    }

    /// The remote end of a connection, as `"ip:port"`.
    ///
    /// ```rhai
    /// c.peer
    /// ```
    #[rhai_fn(get = "peer", pure)]
    pub fn peer(c: &mut Conn) -> String {
        c.peer().to_string()
    }

    /// How a connection prints: `Conn(127.0.0.1:50000 → 127.0.0.1:9000)`.
    ///
    /// ```rhai
    /// print(c)
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn conn_to_string(c: &mut Conn) -> String {
        format!("{c:?}")
    }

    /// How a listener prints: `Listener(0.0.0.0:9000)`.
    ///
    /// ```rhai
    /// print(l)
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn listener_to_string(l: &mut Listener) -> String {
        format!("{l:?}")
    }
}
