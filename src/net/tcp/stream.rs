//! What a connection runs over: a TCP socket or a Unix-domain stream
//! socket, and how each names its two ends.
//!
//! Reads and sends go through the descriptor with the same syscalls for
//! both (`recv`/`send` work on any stream socket), so [`Stream`] is only
//! the socket's owner; what differs is how it is named, how tokio borrows
//! it for a file transfer, and whether the kernel has `TCP_INFO` for it.

use std::{
    net::SocketAddr,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
        linux::net::SocketAddrExt,
        unix::net::{self as unix, UnixStream},
    },
};

use crate::error::{Error, Result};

/// A connected, non-blocking stream socket.
pub enum Stream {
    Tcp(std::net::TcpStream),
    Unix(UnixStream),
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

/// One end of a connection, as scripts see it in `.local` and `.peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Ip(SocketAddr),
    /// `unix:/path`, `unix:@abstract`, or for an unnamed socket (a client's
    /// end, usually) `unix:(pid N)`, the process that holds it.
    Unix(String),
}

impl Endpoint {
    /// The IP address and port, for a TCP end.
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Endpoint::Ip(addr) => Some(*addr),
            Endpoint::Unix(_) => None,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Ip(addr) => write!(f, "{addr}"),
            Endpoint::Unix(name) => f.write_str(name),
        }
    }
}

impl Stream {
    /// Sets whether reads and writes on the socket (every descriptor of
    /// it: the mode belongs to the open socket, not the number) block.
    pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(nonblocking),
            Stream::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }

    /// The local and the peer end.
    pub fn endpoints(&self) -> Result<(Endpoint, Endpoint)> {
        let local_failed = |e| Error::io("reading the local address", None, e);
        let peer_failed = |e| Error::io("reading the peer address", None, e);
        match self {
            Stream::Tcp(s) => {
                // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`;
                // show them as the IPv4 addresses they are.
                let canonical =
                    |a: SocketAddr| Endpoint::Ip(SocketAddr::new(a.ip().to_canonical(), a.port()));
                Ok((
                    canonical(s.local_addr().map_err(local_failed)?),
                    canonical(s.peer_addr().map_err(peer_failed)?),
                ))
            }
            Stream::Unix(s) => {
                let peer_pid =
                    nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials)
                        .ok()
                        .map(|c| c.pid());
                let own_pid = Some(std::process::id() as i32);
                Ok((
                    Endpoint::Unix(unix_name(&s.local_addr().map_err(local_failed)?, own_pid)),
                    Endpoint::Unix(unix_name(&s.peer_addr().map_err(peer_failed)?, peer_pid)),
                ))
            }
        }
    }
}

/// How a Unix socket address prints: its path, `@` and its abstract name,
/// or for an unnamed socket the process holding it.
pub fn unix_name(addr: &unix::SocketAddr, pid: Option<i32>) -> String {
    if let Some(path) = addr.as_pathname() {
        format!("unix:{}", path.display())
    } else if let Some(name) = addr.as_abstract_name() {
        format!("unix:@{}", String::from_utf8_lossy(name))
    } else {
        match pid {
            Some(pid) => format!("unix:(pid {pid})"),
            None => "unix:(unnamed)".into(),
        }
    }
}
