//! Reaching a forward's target from the runtime: TCP (each resolved
//! address in turn, within the timeout) or a Unix socket. A connection
//! that reached the forward's own listening socket (a target that is,
//! under another name, its own address) is recognised as soon as it is
//! made, so the forward stops there instead of relaying into a storm.

use std::{
    io::ErrorKind,
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::net::addr::{self, UnixAddr};
use crate::net::tcp::{Accepted, Dest};

/// Connects to `dest` within `timeout`; returns the socket and, for TCP,
/// whether it reached this host's `listening` address (the forward itself).
/// Only the addresses `permit` grants are tried (the name's spelling was
/// checked when the forward started).
pub async fn connect(
    dest: &Dest,
    timeout: Duration,
    listening: Option<SocketAddr>,
    permit: &crate::permit::Context,
) -> Result<(Accepted, bool)> {
    match dest {
        Dest::Net(target) => {
            let addrs = addr::lookup(target).await?;
            let addrs = permit.granted_addrs(&target.host, &addrs)?;
            let mut last = None;
            for addr in addrs {
                match tcp(addr, timeout, listening).await {
                    Ok(done) => return Ok(done),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| Error::Resolve {
                host: target.host.clone(),
                reason: "the name has no addresses".into(),
            }))
        }
        Dest::Unix(path) => unix(path, timeout).await.map(|s| (s, false)),
    }
}

async fn tcp(
    addr: SocketAddr,
    timeout: Duration,
    listening: Option<SocketAddr>,
) -> Result<(Accepted, bool)> {
    let stream = crate::runtime::within(timeout, || format!("connecting to {addr}"), async {
        TcpStream::connect(addr)
            .await
            .map_err(|e| Error::io(format!("connecting to {addr}"), Some(addr), e))
    })
    .await?;
    let _ = stream.set_nodelay(true);
    let looped = match (listening, stream.local_addr(), stream.peer_addr()) {
        (Some(listening), Ok(local), Ok(remote)) => is_own(listening, local, remote),
        _ => false,
    };
    Ok((Accepted::Tcp(stream), looped))
}

/// Did a connection from `local` to `remote` reach `listening`, this
/// forward's own listening socket? It went to this host (the two ends
/// share an address) and to the listening port, on its address or on
/// any address when the forward listens on all of them.
fn is_own(listening: SocketAddr, local: SocketAddr, remote: SocketAddr) -> bool {
    let (local_ip, remote_ip) = (local.ip().to_canonical(), remote.ip().to_canonical());
    let bound = listening.ip().to_canonical();
    remote.port() == listening.port()
        && local_ip == remote_ip
        && (bound.is_unspecified() || bound == remote_ip)
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
