//! Unix-domain stream sockets: `listen("unix:/tmp/app.sock")` and
//! `connect("unix:/run/app.sock")`, as `ncat -U` and socat's `UNIX-LISTEN`
//! and `UNIX-CONNECT` do, plus Linux's abstract names (`unix:@name`).
//!
//! Listening creates the socket file and removes it when the listener
//! closes (if it is still the file we made). A path that exists is
//! handled as a careful server does: a file that is not a socket is never
//! touched; a socket someone listens on is in use; a socket nobody
//! listens on (left by a server that died) is stale, and is replaced.

use std::{
    fs,
    io::ErrorKind,
    os::unix::fs::{FileTypeExt, MetadataExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use socket2::{Domain, Socket, Type};

use super::stream::Stream;
use crate::error::{Error, Result};
use crate::net::addr::UnixAddr;
use crate::runtime;

/// The socket file of a listener, removed when the listener goes, if it
/// is still the same file (another server may have replaced it).
pub struct UnixSocketFile {
    path: PathBuf,
    id: (u64, u64),
}

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        if file_id(&self.path) == Some(self.id) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Device and inode: which file a path names right now.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    fs::symlink_metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

fn new_socket() -> Result<Socket> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)
        .map_err(|e| Error::io("creating a Unix socket", None, e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("setting up a Unix socket", None, e))?;
    Ok(socket)
}

/// Binds and listens on `addr`. Must run inside the runtime, which
/// registers the socket.
pub fn bind(addr: &UnixAddr) -> Result<(tokio::net::UnixListener, Option<UnixSocketFile>)> {
    if let UnixAddr::Path(path) = addr {
        clear_stale(addr, path)?;
    }
    let socket = new_socket()?;
    let failed = |e: std::io::Error| match e.kind() {
        ErrorKind::AddrInUse => Error::InUse(format!("{addr} is already in use")),
        ErrorKind::NotFound => {
            Error::NotFound(format!("cannot create {addr}: its folder does not exist"))
        }
        _ => Error::io(format!("listening on {addr}"), None, e),
    };
    socket.bind(&addr.sockaddr()?).map_err(failed)?;
    // Bound: from here on, the file is ours to remove.
    let file = match addr {
        UnixAddr::Path(path) => file_id(path).map(|id| UnixSocketFile {
            path: path.clone(),
            id,
        }),
        UnixAddr::Abstract(_) => None,
    };
    socket.listen(1024).map_err(failed)?;
    let listener = tokio::net::UnixListener::from_std(socket.into()).map_err(failed)?;
    Ok((listener, file))
}

/// Makes room at `path` for a new socket: nothing there is fine; a stale
/// socket (nobody accepts on it) is removed; anything else is refused.
fn clear_stale(addr: &UnixAddr, path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(crate::net::helpers::file_error("checking", path, e));
        }
    };
    if !meta.file_type().is_socket() {
        return Err(Error::InUse(format!(
            "{} exists and is not a socket; netsh will not replace it",
            crate::net::helpers::quoted(path)
        )));
    }
    let probe = new_socket()?;
    match probe.connect(&addr.sockaddr()?) {
        // Accepted, or the backlog is full: either way a server is there.
        Ok(()) => Err(in_use(addr)),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Err(in_use(addr)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => fs::remove_file(path)
            .map_err(|e| crate::net::helpers::file_error("removing the stale socket", path, e)),
        Err(e) => Err(Error::io(
            format!("checking whether {addr} is in use"),
            None,
            e,
        )),
    }
}

fn in_use(addr: &UnixAddr) -> Error {
    Error::InUse(format!(
        "{addr} is already in use: a server is listening on it"
    ))
}

/// Connects to `addr`, waiting up to `timeout` while the server's backlog
/// is full.
pub fn connect(addr: &UnixAddr, timeout: Duration) -> Result<Stream> {
    let target = addr.sockaddr()?;
    let deadline = Instant::now() + timeout;
    loop {
        let socket = new_socket()?;
        match socket.connect(&target) {
            Ok(()) => return Ok(Stream::Unix(socket.into())),
            // The listener's backlog is full: it may make room.
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                runtime::sleep(Duration::from_millis(10))?;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                return Err(Error::Timeout {
                    what: format!("connecting to {addr} (its backlog stayed full)"),
                    after: timeout,
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::NotFound(format!("no socket at {addr}")));
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                return Err(Error::io(
                    format!(
                        "connecting to {addr} (nothing listens there: a socket file left by a server that stopped?)"
                    ),
                    None,
                    e,
                ));
            }
            Err(e) => return Err(Error::io(format!("connecting to {addr}"), None, e)),
        }
    }
}
