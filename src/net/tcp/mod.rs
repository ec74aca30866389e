//! TCP client and server (lessons 1.5, 1.6): `listen`, `accept`, `connect`,
//! and the `Conn` methods to talk over a connection, as Rhai functions.
//! The same functions speak TLS (`#{tls: …}`) and Unix-domain sockets
//! (`"unix:/path"`), with the same `Conn`.
//!
//! - [`conn`] — an open connection: reads, sends, half-close, close.
//! - `conn_api` — the `Conn` methods as Rhai functions.
//! - [`listener`] — `listen`/`accept` and `connect`.
//! - [`handshakes`] — a TLS listener's handshakes, run while it accepts.
//! - [`stream`] — what a connection runs over (TCP or Unix) and its ends.
//! - [`unix`] — Unix-domain sockets: socket files, stale ones, abstract names.
//! - [`io`] — a connection lent to tokio for a file transfer.
//! - [`info`] — the kernel's view of a connection (`TCP_INFO`).

use std::time::Duration;

use rhai::Map;
use rhai::plugin::*;

use crate::error::Result;
use crate::net::addr;
use crate::net::options::Options;

mod conn;
mod conn_api;
mod handshakes;
mod info;
mod io;
mod listener;
mod stream;
mod unix;

pub use conn::{Conn, ConnIo, PendingThenSocket};
pub use handshakes::MAX_PENDING_HANDSHAKES;
pub use info::info_map;
pub use io::{IoReader, IoWriter, ZeroCopy};
pub use listener::{
    ACCEPT_HANDSHAKE_TIMEOUT, Accepted, Bind, DEFAULT_CONNECT_TIMEOUT, Dest, ListenSocket,
    Listener, ListenerState, bind_listener, connect, connect_to, listen, listen_on, parse_dest,
    parse_listen,
};
pub use stream::{Endpoint, Stream};

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    conn_api::register_into(module, docs);
    module.set_custom_type::<Conn>("Conn");
    module.set_custom_type::<Listener>("Listener");
}

/// `listen` with its options map (`tls`). A self-signed certificate's
/// fingerprint is printed, so whoever connects can check or pin it.
pub fn listen_with_options(bind: &Bind, options: &Map) -> Result<Listener> {
    let tls = match Options::new(options, &["tls"])?.value("tls") {
        Some(value) => crate::net::tls::ServerTls::from_option(value)?,
        None => None,
    };
    let listener = listen_on(bind, tls)?;
    if let Some(tls) = &listener.state().tls {
        tls.tell_self_signed("listen", listener.addr());
    }
    Ok(listener)
}

/// Kept here too, where the other capabilities first found it.
pub use crate::error::wrong_type;

/// `connect(…, options)`: `timeout` and `tls` read, then the connection.
fn connect_with_options(dest: &Dest, options: &Map) -> Result<Conn> {
    let o = Options::new(options, &["timeout", "tls", "proxy"])?;
    // The proxy URL is read first: a malformed one fails before anything is sent.
    let proxy = o
        .text("proxy")?
        .map(|text| crate::net::proxy::ProxyUrl::parse(&text))
        .transpose()?;
    let timeout = match o.timeout("timeout")? {
        None => DEFAULT_CONNECT_TIMEOUT,
        // 0: no limit of ours; the kernel gives up after its SYN retries
        // (about two minutes on Linux).
        Some(None) => Duration::from_secs(24 * 3600),
        Some(Some(t)) => t,
    };
    let tls = match o.value("tls") {
        Some(value) => crate::net::tls::ClientTls::from_option(value)?,
        None => None,
    };
    match proxy {
        None => connect_to(dest, timeout, tls.as_ref()),
        Some(proxy) => {
            let Dest::Net(target) = dest else {
                return Err(crate::error::Error::invalid(
                    "a proxy reaches hosts and ports, not a Unix socket",
                ));
            };
            let target_owned = target.clone();
            let stream = crate::runtime::block_on(async move {
                crate::net::proxy::connect(&proxy, &target_owned, timeout).await
            })?;
            let session = tls.map(|tls| tls.session(Some(&target.host))).transpose()?;
            let conn = Conn::over(stream, session)?;
            conn.handshake(timeout)?;
            Ok(conn)
        }
    }
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};
    use crate::net::options::{timeout as wait_limit, wait_option};

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

    /// Opens a listening socket on one local address, or on a Unix-domain
    /// socket: `"unix:/path"` creates the socket file (replacing a stale
    /// one nobody listens on, never anything else) and removes it on
    /// `close()`; `"unix:@name"` is a Linux abstract socket (no file).
    ///
    /// ```rhai
    /// let l = listen("127.0.0.1:0"); print(l.port);
    /// let l6 = listen("[::1]:9000");
    /// let u = listen("unix:/tmp/app.sock");
    /// ```
    ///
    /// Fails when: the address is malformed or not local, the port or
    /// socket is in use, or the path exists and is not a socket.
    #[rhai_fn(return_raw, name = "listen")]
    pub fn listen_addr(addr: &str) -> ScriptResult<Listener> {
        super::parse_listen(addr)
            .and_then(|bind| super::listen_on(&bind, None))
            .map_err(fail("listen"))
    }

    /// Listens with options: `tls` makes every accepted connection TLS,
    /// with `#{cert: "cert.pem", key: "key.pem"}` (PEM files) or
    /// `#{self_signed: true}` (a certificate for localhost, 127.0.0.1 and
    /// ::1 made now; its SHA-256 is printed, and is `.fingerprint`), and
    /// `alpn` (protocols offered, like `["h2", "http/1.1"]`). Handshakes
    /// then run side by side (at most 64 at once) and `accept()` returns
    /// the first client to finish one, so a silent client delays nobody.
    ///
    /// ```rhai
    /// let l = listen("127.0.0.1:8443", #{tls: #{self_signed: true}});
    /// write_file("ca.pem", l.cert);   // what a client passes as ca
    /// let c = l.accept();
    /// ```
    ///
    /// Fails when: as `listen(addr)`, or an option is unknown, a PEM file
    /// is missing or holds no certificate or key, or the key does not
    /// belong to the certificate.
    #[rhai_fn(return_raw, name = "listen")]
    pub fn listen_with(addr: &str, options: Map) -> ScriptResult<Listener> {
        super::parse_listen(addr)
            .and_then(|bind| super::listen_with_options(&bind, &options))
            .map_err(fail("listen"))
    }

    /// Listens on a port (every address) with options, as
    /// `listen(addr, options)`.
    ///
    /// ```rhai
    /// let l = listen(8443, #{tls: #{cert: "cert.pem", key: "key.pem"}});
    /// ```
    ///
    /// Fails when: as `listen(addr, options)`.
    #[rhai_fn(return_raw, name = "listen")]
    pub fn listen_port_with(port: i64, options: Map) -> ScriptResult<Listener> {
        addr::port(port)
            .map(|port| super::Bind::Ip(addr::any_addr(port)))
            .and_then(|bind| super::listen_with_options(&bind, &options))
            .map_err(fail("listen"))
    }

    /// The port a listener is bound to; `()` for a Unix socket.
    ///
    /// ```rhai
    /// listen(0).port
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "port", pure)]
    pub fn listener_port(l: &mut Listener) -> Dynamic {
        l.addr()
            .ip()
            .map_or(Dynamic::UNIT, |a| Dynamic::from_int(a.port() as i64))
    }

    /// The address a listener is bound to, as `"ip:port"` or `"unix:/path"`.
    ///
    /// ```rhai
    /// listen("127.0.0.1:0").addr    // "127.0.0.1:40123"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "addr", pure)]
    pub fn listener_addr(l: &mut Listener) -> String {
        l.addr().to_string()
    }

    /// The SHA-256 of a TLS listener's certificate (`AB:CD:…`), which a
    /// client can pin with `#{tls: #{pin: …}}`; `()` for a plain listener.
    ///
    /// ```rhai
    /// print(listen("127.0.0.1:0", #{tls: #{self_signed: true}}).fingerprint)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "fingerprint", pure)]
    pub fn listener_fingerprint(l: &mut Listener) -> Dynamic {
        l.state()
            .tls
            .as_ref()
            .map_or(Dynamic::UNIT, |t| t.fingerprint.clone().into())
    }

    /// A TLS listener's certificate as PEM text, which a client can trust
    /// with `#{tls: #{ca: "file.pem"}}` once written to a file; `()` for a
    /// plain listener.
    ///
    /// ```rhai
    /// let l = listen("127.0.0.1:0", #{tls: #{self_signed: true}});
    /// write_file("server.pem", l.cert);
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "cert", pure)]
    pub fn listener_cert(l: &mut Listener) -> Dynamic {
        l.state()
            .tls
            .as_ref()
            .map_or(Dynamic::UNIT, |t| t.cert_pem.clone().into())
    }

    /// Waits for the next connection and returns it. Ctrl-C stops the wait.
    ///
    /// ```rhai
    /// let c = listen(9000).accept();
    /// ```
    ///
    /// Fails when: the listener was closed, the wait is interrupted, or
    /// (TLS) the first client to end its handshake failed it.
    #[rhai_fn(return_raw, pure)]
    pub fn accept(l: &mut Listener) -> ScriptResult<Conn> {
        l.accept(None).map_err(fail("accept"))
    }

    /// Waits at most `timeout_ms` milliseconds for the next connection
    /// (0: no limit).
    ///
    /// ```rhai
    /// let c = l.accept(5000);
    /// ```
    ///
    /// Fails when: `timeout_ms` is negative, nobody connects in time, the
    /// listener was closed, the wait is interrupted, or (TLS) the first
    /// client to end its handshake failed it.
    #[rhai_fn(return_raw, pure, name = "accept")]
    pub fn accept_timeout(l: &mut Listener, timeout_ms: i64) -> ScriptResult<Conn> {
        wait_limit(timeout_ms)
            .and_then(|t| l.accept(t))
            .map_err(fail("accept"))
    }

    /// Stops listening; a blocked `accept()` returns with an error.
    ///
    /// ```rhai
    /// l.close();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "close")]
    pub fn close_listener(l: &mut Listener) {
        l.close();
    }

    /// Connects to `"host:port"`, `"[v6]:port"` or a Unix-domain socket
    /// `"unix:/path"` (or `"unix:@name"`), 10 s timeout.
    ///
    /// ```rhai
    /// let c = connect("127.0.0.1:9000");
    /// let u = connect("unix:/run/app.sock");
    /// ```
    ///
    /// Fails when: the name does not resolve, the port is closed (refused),
    /// the host is unreachable, nothing answers in time, or no socket
    /// listens at the Unix path.
    #[rhai_fn(return_raw)]
    pub fn connect(addr: &str) -> ScriptResult<Conn> {
        super::parse_dest(addr)
            .and_then(|d| super::connect_to(&d, super::DEFAULT_CONNECT_TIMEOUT, None))
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
        addr::target(host, port)
            .and_then(|t| super::connect(&t, super::DEFAULT_CONNECT_TIMEOUT))
            .map_err(fail("connect"))
    }

    /// Connects with options: `timeout` (milliseconds to wait for the
    /// connection, and then for the TLS handshake; default 10000; 0 leaves
    /// it to the kernel, about 2 min) and `tls`: `true` checks the server's
    /// certificate against the system's trusted roots and the host name;
    /// a map may say `ca` (trust this PEM file's certificates instead),
    /// `pin` (trust exactly the certificate with this SHA-256), `insecure:
    /// true` (trust anything), `sni` (the name to ask for and check, e.g.
    /// when connecting by IP), `alpn` (protocols to offer). `c.tls_info()`
    /// tells what was agreed. `proxy` goes through a proxy:
    /// `"socks5://host:1080"` (names resolved here), `"socks5h://…"` (the
    /// proxy resolves them), `"http://host:3128"` (HTTP CONNECT), with
    /// `user:pass@` for authentication; every Conn method then works as
    /// usual, TLS included.
    ///
    /// ```rhai
    /// let c = connect("[::1]:9000", #{timeout: 2000});
    /// let t = connect("example.org:443", #{tls: true});
    /// let s = connect("127.0.0.1:8443", #{tls: #{ca: "server.pem", sni: "localhost"}});
    /// let p = connect("db.internal:5432", #{proxy: "socks5h://127.0.0.1:1080"});
    /// ```
    ///
    /// Fails when: as `connect(addr)`, or an option is unknown or of the
    /// wrong type, or the TLS handshake fails (the message says why:
    /// unknown issuer, expired, name mismatch, not TLS on the other side…),
    /// or the proxy URL is malformed (a path, an unknown scheme, port 0),
    /// or the proxy refuses (in its words: "connection refused by the
    /// destination", "not allowed by ruleset", "authentication failed",
    /// or the CONNECT status line).
    #[rhai_fn(return_raw, name = "connect")]
    pub fn connect_with(addr: &str, options: Map) -> ScriptResult<Conn> {
        super::parse_dest(addr)
            .and_then(|dest| connect_with_options(&dest, &options))
            .map_err(fail("connect"))
    }

    /// Connects to a host and port given separately, with options (as
    /// `connect(addr, options)`).
    ///
    /// ```rhai
    /// let c = connect("localhost", 8443, #{tls: #{insecure: true}});
    /// ```
    ///
    /// Fails when: as `connect(addr, options)`, or the port is out of range.
    #[rhai_fn(return_raw, name = "connect")]
    pub fn connect_host_port_with(host: &str, port: i64, options: Map) -> ScriptResult<Conn> {
        addr::target(host, port)
            .and_then(|t| connect_with_options(&super::Dest::Net(t), &options))
            .map_err(fail("connect"))
    }

    /// Catches `connect` with arguments of the wrong type, to say what it takes.
    ///
    /// ```rhai
    /// connect("127.0.0.1:9000")   // not connect(9000)
    /// ```
    ///
    /// Fails when: always: the argument is not an address string.
    #[rhai_fn(return_raw, name = "connect")]
    pub fn connect_wrong_type(addr: Dynamic) -> ScriptResult<Conn> {
        Err(fail("connect")(super::wrong_type(
            "an address string like \"127.0.0.1:9000\" or \"[::1]:9000\"",
            &addr,
        )))
    }

    /// `accept()` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let c = l.accept(#{timeout: 5000});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, nobody connects in
    /// time, the listener was closed, or the wait is interrupted.
    #[rhai_fn(return_raw, pure, name = "accept")]
    pub fn accept_options(l: &mut Listener, options: Map) -> ScriptResult<Conn> {
        wait_option(&options, None)
            .and_then(|t| l.accept(t))
            .map_err(fail("accept"))
    }

    /// How a listener prints: `Listener(0.0.0.0:9000)`.
    ///
    /// ```rhai
    /// print(l)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn listener_to_string(l: &mut Listener) -> String {
        format!("{l:?}")
    }
}
