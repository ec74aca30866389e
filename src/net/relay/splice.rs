//! Plain stream socket to plain stream socket (TCP or Unix), both ways,
//! through `splice(2)` and a pipe per direction: the kernel moves the pages,
//! nothing is copied into this process. Readiness comes from tokio
//! (`async_io` on the registration tokio made when it accepted or
//! connected the socket; an `AsyncFd` for a `Conn`'s descriptor), so a
//! relayed connection is a task, not a thread.
//!
//! A FIN read on one side becomes `shutdown(SHUT_WR)` on the other (the
//! half-close passes through). A direction holds a pipe only while bytes
//! are in flight: waiting for the source, it gives its (empty) pipe back
//! to a small per-thread pool, so thousands of idle relays hold two
//! sockets each and no pipes.

use std::{
    cell::RefCell,
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::sys::socket::{Shutdown, shutdown};
use tokio::io::{Interest, unix::AsyncFd};

use crate::net::tcp::Accepted;

use super::pump::{Ends, Meter};

/// How much one `splice` call moves at most; the pipe is made this big
/// where the kernel allows, so one call can empty a socket's receive queue.
const CHUNK: usize = 256 * 1024;

/// The send buffer of a relayed TCP socket whose peer is a loopback address
/// (the kernel doubles it, so 512 KiB may wait unacknowledged).
/// Autotuning grows it to 4 MiB on a fast stream, which on loopback holds
/// nothing back (no round trip to cover) but keeps megabytes of pages in
/// flight, gone cold by the time the receiver copies them and too long to
/// be reused hot by the sender: one iperf3 stream through `forward` ran
/// 12% faster with it (17.7 against 15.7 Gbit/s, the mean of 8
/// alternating runs, the buffer set from the start; 128 KiB gained
/// nothing). To other addresses (this host's LAN address included) the
/// buffer is left to autotuning, which needs the room for a round trip.
const LOCAL_SEND_BUFFER: usize = 256 * 1024;

/// Bytes a direction moves before its destination's send buffer is
/// capped: only a stream pays the two system calls, not a short exchange
/// (short connections through `forward` are counted by the thousand).
const STREAM: u64 = 1024 * 1024;

/// Empty pipes kept per runtime thread for the next burst.
const POOL: usize = 32;

/// One direction's pipe: what was read from the source and not yet written.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

thread_local! {
    static PIPES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

impl Pipe {
    /// An empty pipe, from the pool or new.
    fn take() -> io::Result<Pipe> {
        if let Some(pipe) = PIPES.with(|p| p.borrow_mut().pop()) {
            return Ok(pipe);
        }
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // A bigger pipe means fewer wake-ups on a fast stream; the default
        // (64 KiB) still works when pipe-max-size refuses it.
        let _ = fcntl(write.as_fd(), FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
        Ok(Pipe { read, write })
    }

    /// Gives an empty pipe back (closes it when the pool is full).
    fn give_back(self) {
        PIPES.with(|p| {
            let mut pool = p.borrow_mut();
            if pool.len() < POOL {
                pool.push(self);
            }
        });
    }
}

/// A connected, non-blocking stream socket registered with tokio: as
/// tokio accepted or connected it (no second registration), or a
/// descriptor of a script's `Conn` registered for the relay.
pub enum Socket {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
    Fd(AsyncFd<OwnedFd>),
}

impl From<Accepted> for Socket {
    fn from(stream: Accepted) -> Socket {
        match stream {
            Accepted::Tcp(s) => Socket::Tcp(s),
            Accepted::Unix(s) => Socket::Unix(s),
        }
    }
}

impl Socket {
    /// Runs `f` on the descriptor when tokio says it is ready for
    /// `interest`, again after each would-block, until it does not.
    async fn io<R>(
        &self,
        interest: Interest,
        mut f: impl FnMut(BorrowedFd<'_>) -> io::Result<R>,
    ) -> io::Result<R> {
        match self {
            Socket::Tcp(s) => s.async_io(interest, || f(s.as_fd())).await,
            Socket::Unix(s) => s.async_io(interest, || f(s.as_fd())).await,
            Socket::Fd(a) => a.async_io(interest, |fd| f(fd.as_fd())).await,
        }
    }

    /// Caps the send buffer when the peer is a loopback address (see
    /// [`LOCAL_SEND_BUFFER`]), once a direction writing to it has moved
    /// [`STREAM`]; a Unix socket or a remote peer is left as is.
    fn cap_local_send_buffer(&self) {
        let fd = self.fd();
        let socket = socket2::SockRef::from(&fd);
        let local = socket
            .peer_addr()
            .ok()
            .and_then(|peer| peer.as_socket())
            .is_some_and(|peer| peer.ip().to_canonical().is_loopback());
        if local {
            // Only speed depends on it: a refusal leaves autotuning on.
            let _ = socket.set_send_buffer_size(LOCAL_SEND_BUFFER);
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Unix(s) => s.as_fd(),
            Socket::Fd(a) => a.get_ref().as_fd(),
        }
    }
}

/// Registers `fd` (a connected stream socket) with the runtime, in
/// non-blocking mode. Call it inside the runtime.
pub fn register(fd: OwnedFd) -> io::Result<Socket> {
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags))?;
    // SAFETY: an `OwnedFd` is a valid open descriptor that stays open, and
    // names the same open file, until the `AsyncFd` owning it is dropped;
    // its `as_raw_fd` always returns that one number.
    unsafe { AsyncFd::register(fd) }
        .map(Socket::Fd)
        .map_err(|e| e.into_parts().1)
}

const FLAGS: SpliceFFlags = SpliceFFlags::SPLICE_F_MOVE.union(SpliceFFlags::SPLICE_F_NONBLOCK);

/// Moves bytes from `from` to `to` until `from` ends, then sends FIN on
/// `to`. Counts each byte written in `meter`.
async fn pump(from: &Socket, to: &Socket, ends: &Ends, meter: &Meter) -> io::Result<()> {
    let mut until_capped = Some(STREAM);
    loop {
        // A pipe only for a read that moves something: a would-block gives
        // it straight back, so a waiting direction holds none.
        let mut held: Option<Pipe> = None;
        let n = from
            .io(Interest::READABLE, |fd| {
                let pipe = Pipe::take()?;
                match splice(fd, None, &pipe.write, None, CHUNK, FLAGS) {
                    Ok(n) => {
                        held = Some(pipe);
                        Ok(n)
                    }
                    Err(e) => {
                        pipe.give_back();
                        Err(io::Error::from(e))
                    }
                }
            })
            .await?;
        let Some(pipe) = held else {
            return Err(io::Error::other("splice moved bytes without a pipe"));
        };
        if n == 0 {
            pipe.give_back();
            // End of stream: pass the half-close on. The other side may
            // already be gone (it reset): nothing is lost by ignoring that.
            let _ = shutdown(to.fd().as_raw_fd(), Shutdown::Write);
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            let moved = to
                .io(Interest::WRITABLE, |fd| {
                    splice(&pipe.read, None, fd, None, left, FLAGS).map_err(io::Error::from)
                })
                .await?;
            left -= moved;
            ends.moved(meter, moved);
        }
        pipe.give_back();
        until_capped = match until_capped.map(|u| u.saturating_sub(n as u64)) {
            Some(0) => {
                to.cap_local_send_buffer();
                None
            }
            other => other,
        };
    }
}

/// Relays `a` and `b` both ways until both directions end or one fails.
/// Returns when done; the caller closes (or resets) the sockets.
pub async fn join(a: &Socket, b: &Socket, ends: &Ends) -> io::Result<()> {
    super::pump::both(
        pump(a, b, ends, &ends.a_to_b),
        pump(b, a, ends, &ends.b_to_a),
    )
    .await
}
