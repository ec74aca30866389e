//! The packet socket a capture reads from: `AF_PACKET`, `SOCK_DGRAM`
//! ("cooked": every packet starts at its IP header whatever the link type),
//! the kernel filter from [`super::filter`], and a `TPACKET_V2` ring shared
//! with the kernel.
//!
//! Why a ring rather than `recvfrom`: a queued packet is charged to the
//! socket's receive buffer at its full size even when the filter kept only
//! its headers, and loopback segments are up to 64 KiB, so a plain socket
//! overflows after a handful of them unless the process may raise its buffer
//! (which needs CAP_NET_ADMIN, not just CAP_NET_RAW). The ring holds copies
//! of the kept bytes only, so 16,384 frames of 256 bytes absorb a burst of
//! a 1 GiB transfer. `PACKET_STATISTICS` says whether any packet was lost
//! anyway.
//!
//! No crate in the tree sets up `PACKET_RX_RING`, so the few system calls
//! are made here, each with a SAFETY note.

use std::{
    ffi::c_void,
    num::NonZeroUsize,
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, SystemTime},
};

use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
use socket2::{Domain, Socket, Type};

use super::filter::Insn;
use crate::error::{Error, Result};

/// Bytes of ring per frame, header included.
const FRAME_SIZE: usize = 256;
const BLOCK_SIZE: usize = 1 << 18;
const BLOCK_COUNT: usize = 16;
const FRAME_COUNT: usize = BLOCK_SIZE / FRAME_SIZE * BLOCK_COUNT;

/// Where the kernel puts a cooked packet in a `TPACKET_V2` frame: after the
/// frame header and its `sockaddr_ll`, aligned, plus 16 bytes it reserves
/// for a link header (`tpacket_rcv` in net/packet/af_packet.c).
const DATA_OFFSET: usize = align(libc::TPACKET2_HDRLEN) + 16;

/// How many bytes of each packet are kept: all that fit in a frame, which
/// covers IPv6 (40) with extension headers and a TCP header with options (60).
pub const SNAPLEN: u32 = (FRAME_SIZE - DATA_OFFSET) as u32;

// The ring's shape is checked where it is defined: the kernel wants whole
// frames per block, aligned frames and page-sized blocks, and a frame must
// hold an IPv6 header (40) and a TCP header with every option (60).
const _: () = {
    assert!(BLOCK_SIZE.is_multiple_of(FRAME_SIZE));
    assert!(FRAME_SIZE.is_multiple_of(libc::TPACKET_ALIGNMENT));
    assert!(BLOCK_SIZE.is_multiple_of(4096));
    assert!(SNAPLEN >= 40 + 60);
};

const fn align(n: usize) -> usize {
    (n + libc::TPACKET_ALIGNMENT - 1) & !(libc::TPACKET_ALIGNMENT - 1)
}

/// What a user without CAP_NET_RAW is told.
pub const NEED_PRIVILEGE: &str = "capturing packets needs the CAP_NET_RAW capability: run netsh as root, or grant it once with `sudo setcap cap_net_raw+ep $(which netsh)`";

/// One packet as the kernel handed it over: its first bytes (from the IP
/// header on) and what the kernel knows about it.
pub struct Frame<'a> {
    /// The kept bytes (at most [`SNAPLEN`]).
    pub data: &'a [u8],
    /// The packet's full length from its IP header on.
    pub wire_len: u32,
    /// When the kernel saw it.
    pub time: SystemTime,
    status: &'a AtomicU32,
}

impl Drop for Frame<'_> {
    /// Hands the frame back to the kernel for the next packet.
    fn drop(&mut self) {
        self.status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }
}

/// A bound, filtered packet socket and its ring.
pub struct PacketSocket {
    socket: Socket,
    /// The interface it is bound to, if one (for messages).
    iface: Option<String>,
    ring: NonNull<c_void>,
    ring_len: usize,
    next: usize,
}

// SAFETY: the ring is owned by this value alone (mapped in `open`, unmapped
// in `drop`); moving it to another thread moves that ownership with it.
unsafe impl Send for PacketSocket {}

impl PacketSocket {
    /// Opens a packet socket on an interface (its name and index; `None`:
    /// every interface), keeping what `program` accepts. Nothing is
    /// received before the filter is in place.
    pub fn open(iface: Option<&(String, u32)>, program: &[Insn]) -> Result<PacketSocket> {
        // Protocol 0: the socket receives nothing until `bind` names one,
        // so no unfiltered packet slips in while it is being set up.
        let socket =
            Socket::new(Domain::PACKET, Type::DGRAM, None).map_err(|e| match e.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => Error::Permission(NEED_PRIVILEGE.into()),
                _ => Error::io("opening a packet socket", None, e),
            })?;
        let filter: Vec<_> = program.iter().map(|i| i.to_sock_filter()).collect();
        socket
            .attach_filter(&filter)
            .map_err(|e| Error::io("attaching the packet filter", None, e))?;
        set_packet_option(
            &socket,
            libc::PACKET_VERSION,
            &(libc::tpacket_versions::TPACKET_V2 as libc::c_int),
        )
        .map_err(|e| Error::io("choosing the ring format", None, e))?;
        let request = libc::tpacket_req {
            tp_block_size: BLOCK_SIZE as u32,
            tp_block_nr: BLOCK_COUNT as u32,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: FRAME_COUNT as u32,
        };
        set_packet_option(&socket, libc::PACKET_RX_RING, &request)
            .map_err(|e| Error::io("setting up the capture ring", None, e))?;
        let ring_len = BLOCK_SIZE * BLOCK_COUNT;
        // SAFETY: maps the ring the kernel just allocated for this socket,
        // shared, at a place of the kernel's choosing; the mapping is
        // unmapped exactly once, in `drop`, and only read through frames.
        let ring = unsafe {
            mmap(
                None,
                NonZeroUsize::new(ring_len).unwrap_or(NonZeroUsize::MIN),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                socket.as_fd(),
                0,
            )
        }
        .map_err(|e| Error::io("mapping the capture ring", None, e.into()))?;
        let mut this = PacketSocket {
            socket,
            iface: iface.map(|(name, _)| name.clone()),
            ring,
            ring_len,
            next: 0,
        };
        this.bind(iface.map_or(0, |(_, index)| *index))?;
        Ok(this)
    }

    /// Starts reception: every protocol, on `ifindex` (0: all interfaces).
    fn bind(&mut self, ifindex: u32) -> Result<()> {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll and the length says so.
        let rc = unsafe {
            libc::bind(
                self.socket.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(Error::io(
                "binding the packet socket",
                None,
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// The next packet, waiting at most `wait` for one.
    pub fn next(&mut self, wait: Duration) -> Result<Option<Frame<'_>>> {
        if !self.ready() {
            let mut fds = [nix::poll::PollFd::new(
                self.socket.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
            match nix::poll::poll(&mut fds, ms) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Error::io("waiting for packets", None, e.into())),
            }
            let failed = fds[0].revents().is_some_and(|r| {
                r.intersects(nix::poll::PollFlags::POLLERR | nix::poll::PollFlags::POLLNVAL)
            });
            if !self.ready() {
                // A pending error makes every poll return at once: end the
                // capture with it rather than spin.
                return if failed {
                    Err(self.failure())
                } else {
                    Ok(None)
                };
            }
        }
        let at = self.next * FRAME_SIZE;
        self.next = (self.next + 1) % FRAME_COUNT;
        // SAFETY: `at` is the start of a frame inside the mapped ring, and
        // the frame belongs to us (status USER) until `Frame` is dropped.
        // The kernel wrote the header and `tp_snaplen` bytes at `tp_net`,
        // which it keeps inside the frame.
        unsafe {
            let base = self.ring.as_ptr().cast::<u8>().add(at);
            let header = &*base.cast::<libc::tpacket2_hdr>();
            let start = usize::from(header.tp_net).min(FRAME_SIZE);
            let len = (header.tp_snaplen as usize).min(FRAME_SIZE - start);
            Ok(Some(Frame {
                data: std::slice::from_raw_parts(base.add(start), len),
                wire_len: header.tp_len,
                time: SystemTime::UNIX_EPOCH
                    + Duration::new(u64::from(header.tp_sec), header.tp_nsec),
                status: AtomicU32::from_ptr(base.cast::<u32>()),
            }))
        }
    }

    /// The error the kernel reported on the socket: for one bound to an
    /// interface, that the interface went down (or went away).
    fn failure(&self) -> Error {
        match (self.socket.take_error(), &self.iface) {
            (Ok(Some(e)), Some(name)) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                Error::Closed(format!("interface {name} went down"))
            }
            (Ok(Some(e)), _) | (Err(e), _) => Error::io("reading packets", None, e),
            (Ok(None), _) => Error::io(
                "reading packets",
                None,
                std::io::Error::other("the packet socket reported an error"),
            ),
        }
    }

    /// Whether the kernel has filled the next frame.
    fn ready(&self) -> bool {
        // SAFETY: the first field of every frame header is the u32 status
        // word the kernel and we hand back and forth; frames are 16-aligned.
        let status = unsafe {
            AtomicU32::from_ptr(
                self.ring
                    .as_ptr()
                    .cast::<u8>()
                    .add(self.next * FRAME_SIZE)
                    .cast::<u32>(),
            )
        };
        status.load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Packets the filter accepted and packets lost for want of ring space,
    /// since the last call (the kernel resets the counters when read).
    pub fn statistics(&self) -> Result<(u64, u64)> {
        let mut stats = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `stats`.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(Error::io(
                "reading the capture statistics",
                None,
                std::io::Error::last_os_error(),
            ));
        }
        // tp_packets counts drops too.
        let drops = u64::from(stats.tp_drops);
        Ok((u64::from(stats.tp_packets).saturating_sub(drops), drops))
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: the ring was mapped in `open` with this length and no
        // frame borrows it any more (frames borrow `self`).
        let _ = unsafe { munmap(self.ring, self.ring_len) };
    }
}

/// `setsockopt(SOL_PACKET, option, value)`.
fn set_packet_option<T>(socket: &Socket, option: libc::c_int, value: &T) -> std::io::Result<()> {
    // SAFETY: `value` points to a live T and the length is its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            option,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
