//! UDP datagrams (lesson 1.7): `udp_send` fires one datagram, `udp_bind`
//! opens a socket that receives them and answers.
//!
//! UDP has no connection: a datagram to a port nobody listens on is simply
//! lost (the ICMP "port unreachable" that comes back is not reported to an
//! unconnected socket), where TCP's connect would be refused. So `recv(ms)`
//! returns `()` when nothing arrives in time: silence is a normal outcome
//! here, not an error.
//!
//! A socket bound to a bare port is dual-stack (`[::]:port`), so it talks to
//! IPv4 peers through IPv4-mapped addresses; [`Udp::send_to`] maps and
//! `from` unmaps them, and users only ever see plain `1.2.3.4:port`.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use rhai::plugin::*;
use rhai::{Blob, Map};
use tokio::net::UdpSocket;

use crate::error::{Error, Result};
use crate::net::addr;
use crate::runtime::{self, CancellationToken};

/// The largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
pub const MAX_DATAGRAM_V4: usize = 65_507;
/// The largest UDP payload over IPv6: 65,535 − 8 (the IPv6 header is not counted).
pub const MAX_DATAGRAM_V6: usize = 65_527;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<Udp>("Udp");
}

/// A bound UDP socket.
#[derive(Clone)]
pub struct Udp(Arc<UdpState>);

struct UdpState {
    addr: SocketAddr,
    /// `None` once closed.
    socket: std::sync::Mutex<Option<Arc<UdpSocket>>>,
    /// Cancelled by `close()`, so a blocked `recv()` elsewhere returns.
    closed: CancellationToken,
}

/// One received datagram.
pub struct Datagram {
    pub from: SocketAddr,
    pub data: Vec<u8>,
}

impl Udp {
    /// Binds `bind`; a bare port becomes `[::]:port`, which also receives IPv4.
    pub fn bind(bind: SocketAddr) -> Result<Udp> {
        let socket = runtime::block_on(async move { bind_socket(bind) })?;
        let addr = socket
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", None, e))?;
        Ok(Udp(Arc::new(UdpState {
            addr,
            socket: std::sync::Mutex::new(Some(Arc::new(socket))),
            closed: CancellationToken::new(),
        })))
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    fn socket(&self) -> Result<Arc<UdpSocket>> {
        self.0
            .socket
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or_else(|| Error::Closed(format!("the UDP socket on {} is closed", self.0.addr)))
    }

    /// The next datagram; `None` if `timeout` passes first.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Option<Datagram>> {
        let socket = self.socket()?;
        let state = self.0.clone();
        runtime::block_on(async move {
            // 64 KiB holds any datagram; a larger buffer would be wasted.
            let mut buf = vec![0u8; 65_536];
            let receive = async {
                tokio::select! {
                    biased;
                    _ = state.closed.cancelled() => Err(Error::Closed(format!("the UDP socket on {} was closed", state.addr))),
                    got = socket.recv_from(&mut buf) => got.map_err(|e| Error::io("receiving a datagram", None, e)),
                }
            };
            let got = match timeout {
                Some(after) => match tokio::time::timeout(after, receive).await {
                    Ok(got) => got?,
                    Err(_) => return Ok(None),
                },
                None => receive.await?,
            };
            let (n, from) = got;
            buf.truncate(n);
            Ok(Some(Datagram {
                from: unmapped(from),
                data: buf,
            }))
        })
    }

    /// Sends one datagram to `target`; returns the bytes sent.
    pub fn send_to(&self, target: &addr::Target, data: &[u8]) -> Result<usize> {
        check_before_sending(target, data)?;
        let socket = self.socket()?;
        let local = self.0.addr;
        runtime::block_on(async move {
            let to = pick_address(&addr::reach(target).await?, local)?;
            check_size(data.len(), to)?;
            socket
                .send_to(data, to)
                .await
                .map_err(|e| Error::io(format!("sending a datagram to {to}"), Some(to), e))
        })
    }

    pub fn close(&self) {
        self.0.closed.cancel();
        if let Ok(mut socket) = self.0.socket.lock() {
            socket.take();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.is_cancelled()
    }
}

impl std::fmt::Debug for Udp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Udp({})", self.0.addr)
    }
}

/// Creates the socket with socket2 so dual-stack is explicit. Must run
/// inside the runtime (tokio registers it with its reactor).
fn bind_socket(bind: SocketAddr) -> Result<UdpSocket> {
    crate::permit::bind(bind)?;
    use socket2::{Domain, Protocol, Socket, Type};
    let in_use = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            Error::InUse(format!("UDP port {} is already in use", bind.port()))
        } else {
            Error::io(format!("binding UDP {bind}"), None, e)
        }
    };
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| Error::io("creating a UDP socket", None, e))?;
    if bind.is_ipv6() && bind.ip().is_unspecified() {
        let _ = socket.set_only_v6(false);
    }
    socket.set_nonblocking(true).map_err(in_use)?;
    socket.bind(&bind.into()).map_err(in_use)?;
    UdpSocket::from_std(socket.into()).map_err(in_use)
}

/// Of the resolved addresses, the first this socket can reach: IPv4 ones
/// from an IPv6 socket are mapped (`::ffff:a.b.c.d`), which Linux sends as IPv4.
fn pick_address(candidates: &[SocketAddr], local: SocketAddr) -> Result<SocketAddr> {
    let dual_stack = local.is_ipv6() && local.ip().is_unspecified();
    candidates
        .iter()
        .find_map(|&to| match (local, to) {
            (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
                Some(to)
            }
            (SocketAddr::V6(_), SocketAddr::V4(v4)) if dual_stack => Some(SocketAddr::new(
                IpAddr::V6(v4.ip().to_ipv6_mapped()),
                v4.port(),
            )),
            _ => None,
        })
        .ok_or_else(|| {
            let family = if local.is_ipv4() { "IPv4" } else { "IPv6" };
            Error::invalid(format!(
                "this socket is bound to {local} ({family} only) and cannot reach {}",
                candidates
                    .first()
                    .map_or_else(String::new, ToString::to_string)
            ))
        })
}

/// `::ffff:1.2.3.4` shown as the `1.2.3.4` it is.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Refuses a datagram larger than one IP packet can carry, before the OS
/// answers with a bare "message too long".
fn check_size(len: usize, to: SocketAddr) -> Result<()> {
    let over_v4 = match to {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().is_some(),
    };
    let (limit, family) = if over_v4 {
        (MAX_DATAGRAM_V4, "IPv4")
    } else {
        (MAX_DATAGRAM_V6, "IPv6")
    };
    if len > limit {
        return Err(too_big(len, limit, family));
    }
    Ok(())
}

fn too_big(len: usize, limit: usize, family: &str) -> Error {
    Error::TooBig(format!(
        "a UDP datagram over {family} holds at most {} bytes; this one has {} (split it, or use TCP)",
        thousands(limit),
        thousands(len)
    ))
}

/// 65507 → "65,507".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What can be refused before a name is resolved or a socket made: port 0,
/// and data no datagram of either family holds.
fn check_before_sending(target: &addr::Target, data: &[u8]) -> Result<()> {
    addr::destination(target)?;
    match target.host.parse::<IpAddr>() {
        Ok(ip) => check_size(data.len(), SocketAddr::new(ip, target.port)),
        // A name: its family is known once resolved; nothing fits either.
        Err(_) if data.len() > MAX_DATAGRAM_V6 => Err(too_big(data.len(), MAX_DATAGRAM_V6, "IPv6")),
        Err(_) => Ok(()),
    }
}

/// Sends one datagram from a fresh socket of the target's family.
pub fn send_once(target: &addr::Target, data: &[u8]) -> Result<usize> {
    check_before_sending(target, data)?;
    let target = target.clone();
    runtime::block_on(async move {
        let to = *addr::reach(&target)
            .await?
            .first()
            .ok_or_else(|| Error::Resolve {
                host: target.host.clone(),
                reason: "the name has no addresses".into(),
            })?;
        check_size(data.len(), to)?;
        let local: SocketAddr = if to.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| Error::io("creating a UDP socket", None, e))?;
        socket
            .send_to(data, to)
            .await
            .map_err(|e| Error::io(format!("sending a datagram to {to}"), Some(to), e))
    })
}

/// A datagram as a Rhai map: `data` is a string when the bytes are UTF-8
/// text and a blob otherwise, unless `as_blob`.
fn datagram_map(datagram: Datagram, as_blob: bool) -> Map {
    let size = datagram.data.len() as i64;
    let data: Dynamic = if as_blob {
        Dynamic::from_blob(datagram.data)
    } else {
        match String::from_utf8(datagram.data) {
            Ok(text) => text.into(),
            Err(e) => Dynamic::from_blob(e.into_bytes()),
        }
    };
    let mut map = Map::new();
    map.insert("from".into(), datagram.from.to_string().into());
    map.insert("data".into(), data);
    map.insert("size".into(), size.into());
    map
}

/// The bytes of a string or blob argument.
fn bytes_of(data: &Dynamic) -> Result<Vec<u8>> {
    if let Some(text) = data.clone().try_cast::<rhai::ImmutableString>() {
        Ok(text.as_bytes().to_vec())
    } else if let Some(blob) = data.clone().try_cast::<Blob>() {
        Ok(blob)
    } else {
        Err(crate::net::tcp::wrong_type("a string or a blob", data))
    }
}

/// A datagram that may not have come in time: its map, or `()`.
fn maybe_datagram(datagram: Option<Datagram>, as_blob: bool) -> Dynamic {
    datagram.map_or(Dynamic::UNIT, |d| datagram_map(d, as_blob).into())
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};
    use crate::net::options::{timeout as wait_limit, wait_option};

    /// Sends one UDP datagram (a string or a blob) and returns the bytes
    /// sent. Nothing tells you whether it arrived: to a port nobody listens
    /// on, it is simply lost.
    ///
    /// ```rhai
    /// udp_send("127.0.0.1:9999", "hello")   // 5
    /// ```
    ///
    /// Fails when: the address is malformed, has port 0 or does not
    /// resolve, the data is larger than one datagram holds (65,507 bytes
    /// over IPv4, 65,527 over IPv6), or the data is not a string or blob.
    #[rhai_fn(return_raw)]
    pub fn udp_send(target: &str, data: Dynamic) -> ScriptResult<i64> {
        addr::parse_target(target)
            .and_then(|t| super::send_once(&t, &super::bytes_of(&data)?))
            .map(|n| n as i64)
            .map_err(fail("udp_send"))
    }

    /// Opens a UDP socket on a port on every address (IPv4 and IPv6).
    /// Port 0 picks a free port.
    ///
    /// ```rhai
    /// let u = udp_bind(9999); let m = u.recv(); print(`${m.from}: ${m.data}`);
    /// ```
    ///
    /// Fails when: the port is out of range or already in use.
    #[rhai_fn(return_raw)]
    pub fn udp_bind(port: i64) -> ScriptResult<Udp> {
        addr::port(port)
            .map(addr::any_addr)
            .and_then(Udp::bind)
            .map_err(fail("udp_bind"))
    }

    /// Opens a UDP socket on one local address.
    ///
    /// ```rhai
    /// let u = udp_bind("127.0.0.1:0"); print(u.port);
    /// ```
    ///
    /// Fails when: the address is malformed or not local, or the port is in use.
    #[rhai_fn(return_raw, name = "udp_bind")]
    pub fn udp_bind_addr(bind: &str) -> ScriptResult<Udp> {
        addr::parse_bind(bind)
            .and_then(Udp::bind)
            .map_err(fail("udp_bind"))
    }

    /// Waits for the next datagram: `#{from, data, size}`. `data` is a string
    /// when the bytes are UTF-8 text, otherwise a blob (see `recv_blob`).
    ///
    /// ```rhai
    /// let m = u.recv(); u.send_to(m.from, "got it");
    /// ```
    ///
    /// Fails when: the socket is closed, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn recv(u: &mut Udp) -> ScriptResult<Map> {
        u.recv(None)
            .map(|d| d.map(|d| super::datagram_map(d, false)).unwrap_or_default())
            .map_err(fail("recv"))
    }

    /// Waits at most `timeout_ms` for a datagram (0: no limit); `()` if
    /// none arrives (a lost datagram is normal for UDP, so this is not an
    /// error).
    ///
    /// ```rhai
    /// let m = u.recv(1000); if m == () { print("nothing arrived") }
    /// ```
    ///
    /// Fails when: `timeout_ms` is negative, the socket is closed, or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "recv")]
    pub fn recv_timeout(u: &mut Udp, timeout_ms: i64) -> ScriptResult<Dynamic> {
        wait_limit(timeout_ms)
            .and_then(|t| u.recv(t))
            .map(|d| super::maybe_datagram(d, false))
            .map_err(fail("recv"))
    }

    /// `recv()` with options: `timeout` (milliseconds, 0: no limit); `()`
    /// if nothing arrives in time.
    ///
    /// ```rhai
    /// let m = u.recv(#{timeout: 1000});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, the socket is
    /// closed, or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "recv")]
    pub fn recv_options(u: &mut Udp, options: Map) -> ScriptResult<Dynamic> {
        wait_option(&options, None)
            .and_then(|t| u.recv(t))
            .map(|d| super::maybe_datagram(d, false))
            .map_err(fail("recv"))
    }

    /// `recv_blob()` waiting at most `timeout_ms` (0: no limit); `()` if
    /// nothing arrives in time.
    ///
    /// ```rhai
    /// let m = u.recv_blob(1000);
    /// ```
    ///
    /// Fails when: `timeout_ms` is negative, the socket is closed, or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "recv_blob")]
    pub fn recv_blob_timeout(u: &mut Udp, timeout_ms: i64) -> ScriptResult<Dynamic> {
        wait_limit(timeout_ms)
            .and_then(|t| u.recv(t))
            .map(|d| super::maybe_datagram(d, true))
            .map_err(fail("recv_blob"))
    }

    /// `recv_blob()` with options: `timeout` (milliseconds, 0: no limit);
    /// `()` if nothing arrives in time.
    ///
    /// ```rhai
    /// let m = u.recv_blob(#{timeout: 1000});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, the socket is
    /// closed, or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "recv_blob")]
    pub fn recv_blob_options(u: &mut Udp, options: Map) -> ScriptResult<Dynamic> {
        wait_option(&options, None)
            .and_then(|t| u.recv(t))
            .map(|d| super::maybe_datagram(d, true))
            .map_err(fail("recv_blob"))
    }

    /// Like `recv()`, but `data` is always a blob.
    ///
    /// ```rhai
    /// let m = u.recv_blob(); print(hex(m.data));
    /// ```
    ///
    /// Fails when: the socket is closed, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn recv_blob(u: &mut Udp) -> ScriptResult<Map> {
        u.recv(None)
            .map(|d| d.map(|d| super::datagram_map(d, true)).unwrap_or_default())
            .map_err(fail("recv_blob"))
    }

    /// Sends a datagram (string or blob) from this socket; returns the bytes
    /// sent. The receiver sees this socket's port in `from`.
    ///
    /// ```rhai
    /// u.send_to("127.0.0.1:9999", "ping");
    /// ```
    ///
    /// Fails when: the address is malformed, does not resolve or is of the
    /// other IP family than the socket, the data is too large for one
    /// datagram or not a string or blob, or the socket is closed.
    #[rhai_fn(return_raw, pure)]
    pub fn send_to(u: &mut Udp, target: &str, data: Dynamic) -> ScriptResult<i64> {
        addr::parse_target(target)
            .and_then(|t| u.send_to(&t, &super::bytes_of(&data)?))
            .map(|n| n as i64)
            .map_err(fail("send_to"))
    }

    /// The port the socket is bound to.
    ///
    /// ```rhai
    /// udp_bind(0).port
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "port", pure)]
    pub fn udp_port(u: &mut Udp) -> i64 {
        u.addr().port() as i64
    }

    /// The address the socket is bound to, as `"ip:port"`.
    ///
    /// ```rhai
    /// udp_bind("127.0.0.1:0").addr
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "addr", pure)]
    pub fn udp_addr(u: &mut Udp) -> String {
        u.addr().to_string()
    }

    /// Closes the socket; a `recv()` blocked elsewhere returns with an error.
    ///
    /// ```rhai
    /// u.close();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "close")]
    pub fn udp_close(u: &mut Udp) {
        u.close();
    }

    /// How a UDP socket prints: `Udp(127.0.0.1:9999)`.
    ///
    /// ```rhai
    /// print(u)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn udp_to_string(u: &mut Udp) -> String {
        format!("{u:?}")
    }
}
