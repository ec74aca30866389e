//! Reaching a forward's target from the runtime: TCP (each resolved
//! address in turn, within the timeout) or a Unix socket. Each outgoing TCP
//! socket is bound before it connects and its local address noted, so the
//! forward can recognise a connection that comes back to itself (a target
//! that is, under another name, its own listening address) and refuse it
//! instead of relaying it into a connection storm.

use std::{
    collections::HashMap,
    io::ErrorKind,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::net::TcpSocket;

use crate::error::{Error, Result};
use crate::net::addr::{self, UnixAddr};
use crate::net::tcp::{Accepted, Dest};

/// The local ports (and, once connected, addresses) of a forward's
/// outgoing connections still open. Keyed by port because a socket bound
/// to "any" knows its address only once connected: until then a loopback
/// peer with that port is taken for one of ours, so the check has no
/// window in which a connection coming back slips through.
#[derive(Default)]
pub struct Own(Mutex<HashMap<u16, Option<IpAddr>>>);

impl Own {
    pub fn contains(&self, peer: SocketAddr) -> bool {
        let ip = peer.ip().to_canonical();
        self.0
            .lock()
            .map(|own| match own.get(&peer.port()) {
                Some(Some(local)) => *local == ip,
                Some(None) => ip.is_loopback(),
                None => false,
            })
            .unwrap_or(false)
    }

    fn insert(&self, port: u16, ip: Option<IpAddr>) {
        if let Ok(mut own) = self.0.lock() {
            own.insert(port, ip.map(|ip| ip.to_canonical()));
        }
    }

    pub fn remove(&self, addr: Option<SocketAddr>) {
        if let (Some(addr), Ok(mut own)) = (addr, self.0.lock()) {
            own.remove(&addr.port());
        }
    }
}

/// Connects to `dest` within `timeout`; returns the socket and, for TCP,
/// its local address (noted in `own` until the caller removes it).
pub async fn connect(
    dest: &Dest,
    timeout: Duration,
    own: &Own,
) -> Result<(Accepted, Option<SocketAddr>)> {
    match dest {
        Dest::Net(target) => {
            let addrs = addr::lookup(target).await?;
            let mut last = None;
            for addr in addrs {
                match tcp(addr, timeout, own).await {
                    Ok(done) => return Ok(done),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| Error::Resolve {
                host: target.host.clone(),
                reason: "the name has no addresses".into(),
            }))
        }
        Dest::Unix(path) => unix(path, timeout).await.map(|s| (s, None)),
    }
}

async fn tcp(
    addr: SocketAddr,
    timeout: Duration,
    own: &Own,
) -> Result<(Accepted, Option<SocketAddr>)> {
    let failed = |e| Error::io(format!("connecting to {addr}"), Some(addr), e);
    let any = match addr {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    // A port bound before connecting may make, with this destination, a
    // pair still in use (TIME_WAIT): connect then says "address in use",
    // and another port is tried.
    let mut tries = 0;
    let (attempt, local) = loop {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(failed)?;
        let _ = socket.set_reuseaddr(true);
        socket.bind(SocketAddr::new(any, 0)).map_err(failed)?;
        let local = socket.local_addr().map_err(failed)?;
        own.insert(local.port(), None);
        let attempt = crate::runtime::within(timeout, || format!("connecting to {addr}"), async {
            Ok(socket.connect(addr).await)
        })
        .await;
        match attempt {
            Err(Error::Timeout { .. }) | Ok(Ok(_)) => break (attempt, local),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 8 => {
                own.remove(Some(local));
                tries += 1;
            }
            _ => break (attempt, local),
        }
    };
    let attempt = attempt.and_then(|r| r.map_err(failed));
    let stream = match attempt {
        Ok(stream) => stream,
        Err(e) => {
            own.remove(Some(local));
            return Err(e);
        }
    };
    let _ = stream.set_nodelay(true);
    // Bound to "any", the local address is known now.
    let local_now = stream.local_addr().unwrap_or(local);
    own.insert(local_now.port(), Some(local_now.ip()));
    Ok((Accepted::Tcp(stream), Some(local_now)))
}

/// A non-blocking connect to a Unix socket; a full backlog is retried
/// until `timeout`, as `connect("unix:…")` does.
async fn unix(path: &UnixAddr, timeout: Duration) -> Result<Accepted> {
    let target = path.sockaddr()?;
    let deadline = Instant::now() + timeout;
    loop {
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
            .map_err(|e| Error::io("creating a socket", None, e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::io("creating a socket", None, e))?;
        match socket.connect(&target) {
            Ok(()) => {
                return tokio::net::UnixStream::from_std(socket.into())
                    .map(Accepted::Unix)
                    .map_err(|e| Error::io(format!("connecting to {path}"), None, e));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::NotFound(format!("no socket at {path}")));
            }
            Err(e) => return Err(Error::io(format!("connecting to {path}"), None, e)),
        }
    }
}

/// Is `target` (an address literal) the listening address `bind` itself?
/// Names are caught later, when a connection comes back ([`Own`]).
pub fn is_self(bind: SocketAddr, dest: &Dest) -> bool {
    let Dest::Net(target) = dest else {
        return false;
    };
    let Ok(ip) = addr::parse_ip(&target.host) else {
        return false;
    };
    if target.port != bind.port() {
        return false;
    }
    let ip = ip.to_canonical();
    let bound = bind.ip().to_canonical();
    ip == bound || (bound.is_unspecified() && (ip.is_loopback() || ip.is_unspecified()))
}
