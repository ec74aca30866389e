//! ICMP echo on a socket this process may open: a raw socket with
//! CAP_NET_RAW, else one of Linux's ping sockets (SOCK_DGRAM +
//! IPPROTO_ICMP, allowed to the groups in `net.ipv4.ping_group_range`),
//! else a `permission` error that says how to allow one. IPv4 and IPv6.
//!
//! What comes back is an [`Event`]: an echo reply (with the TTL it
//! arrived with), or an ICMP error about one of our requests
//! (unreachable, TTL exceeded) — never confused with a reply. A raw socket
//! sees every ICMP packet of the host, so replies are matched on our ID;
//! a ping socket's kernel does that itself and reports errors on the
//! socket's error queue (IP_RECVERR).
//!
//! Replies carry the kernel's receive time (SO_TIMESTAMPNS), as iputils
//! measures: the round trip then ends when the packet arrived, not when
//! this process woke up to read it.

use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime};

use nix::poll::PollFlags;
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, SockaddrStorage, sockopt};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};
use crate::runtime::{self, Ready};

/// Which kind of socket this process was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A raw socket: CAP_NET_RAW.
    Raw,
    /// A ping socket: the group is in `net.ipv4.ping_group_range`.
    Ping,
}

/// Something that arrived about one of our echo requests.
#[derive(Debug, Clone)]
pub enum Event {
    Reply {
        from: IpAddr,
        seq: u16,
        ttl: Option<u8>,
        /// When the kernel received it (wall clock), if it said.
        at: Option<SystemTime>,
    },
    /// An ICMP error (`what` in ping's words) sent by `from` about our
    /// request `seq`.
    Error {
        from: IpAddr,
        seq: u16,
        icmp_type: u8,
        code: u8,
        what: String,
    },
}

pub struct IcmpSocket {
    socket: Socket,
    v6: bool,
    pub access: Access,
    /// The echo ID a raw socket's replies carry (a ping socket's kernel
    /// sets and checks its own).
    id: u16,
}

/// The words for when neither socket may be opened.
pub fn refused(v6: bool) -> Error {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());
    // SAFETY: getegid has no preconditions and cannot fail.
    let gid = unsafe { libc::getegid() };
    let family = if v6 { "ICMPv6" } else { "ICMP" };
    Error::Permission(format!(
        "cannot open an {family} socket: a raw socket needs CAP_NET_RAW, and a ping socket \
         needs this group ({gid}) inside net.ipv4.ping_group_range (now \"{range}\"). \
         Allow one: sysctl -w net.ipv4.ping_group_range=\"0 2147483647\", \
         or setcap cap_net_raw+ep on the netsh binary"
    ))
}

impl IcmpSocket {
    /// A raw socket if allowed, else a ping socket, else the error saying how.
    pub fn open(v6: bool) -> Result<IcmpSocket> {
        let (domain, protocol) = if v6 {
            (Domain::IPV6, Protocol::ICMPV6)
        } else {
            (Domain::IPV4, Protocol::ICMPV4)
        };
        let denied = |e: &std::io::Error| {
            matches!(
                e.raw_os_error(),
                Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::EPROTONOSUPPORT)
            )
        };
        let (socket, access) = match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(s) => (s, Access::Raw),
            Err(e) if denied(&e) => match Socket::new(domain, Type::DGRAM, Some(protocol)) {
                Ok(s) => (s, Access::Ping),
                Err(e) if denied(&e) => return Err(refused(v6)),
                Err(e) => return Err(Error::io("opening a ping socket", None, e)),
            },
            Err(e) => return Err(Error::io("opening a raw ICMP socket", None, e)),
        };
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::io("setting up the ICMP socket", None, e))?;
        let fd = socket.as_fd();
        let setup = if v6 {
            socket::setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true).and_then(|_| {
                if access == Access::Ping {
                    socket::setsockopt(&fd, sockopt::Ipv6RecvErr, &true)
                } else {
                    Ok(())
                }
            })
        } else {
            socket::setsockopt(&fd, sockopt::Ipv4RecvTtl, &true).and_then(|_| {
                if access == Access::Ping {
                    socket::setsockopt(&fd, sockopt::Ipv4RecvErr, &true)
                } else {
                    Ok(())
                }
            })
        };
        if access == Access::Raw {
            filter(&socket, v6)?;
        }
        setup
            .and_then(|_| socket::setsockopt(&fd, sockopt::ReceiveTimestampns, &true))
            .map_err(|e| Error::io("setting up the ICMP socket", None, e.into()))?;
        let id = (std::process::id() as u16) ^ (rand_u16());
        Ok(IcmpSocket {
            socket,
            v6,
            access,
            id,
        })
    }

    /// Sets the TTL (hop limit) of the requests sent from now on.
    pub fn set_ttl(&self, ttl: u32) -> Result<()> {
        let r = if self.v6 {
            self.socket.set_unicast_hops_v6(ttl)
        } else {
            self.socket.set_ttl_v4(ttl)
        };
        r.map_err(|e| Error::io("setting the TTL", None, e))
    }

    /// Sends echo request `seq` with `payload` to `to`; returns the wall
    /// and monotonic clocks read just before it left (the wall clock to set
    /// against the reply's kernel receive time).
    pub fn send_echo(&self, to: IpAddr, seq: u16, payload: &[u8]) -> Result<(SystemTime, Instant)> {
        let mut packet = Vec::with_capacity(8 + payload.len());
        packet.push(if self.v6 { 128 } else { 8 });
        packet.push(0);
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(&self.id.to_be_bytes());
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(payload);
        if !self.v6 {
            // ICMPv6's checksum covers a pseudo-header: the kernel fills it.
            let sum = checksum(&packet);
            packet[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        let dest = SocketAddr::new(to, 0).into();
        let at = (SystemTime::now(), Instant::now());
        match self.socket.send_to(&packet, &dest) {
            Ok(_) => Ok(at),
            Err(e) => Err(Error::io(
                format!("sending an echo request to {to}"),
                None,
                e,
            )),
        }
    }

    /// The next event, or `None` once `deadline` passes. Ctrl-C ends the
    /// wait with [`Error::Interrupted`].
    pub fn next_event(&self, deadline: Option<Instant>) -> Result<Option<Event>> {
        loop {
            if let Some(event) = self.try_read()? {
                return Ok(Some(event));
            }
            match runtime::wait_fd(self.socket.as_fd(), PollFlags::POLLIN, deadline)? {
                Ready::TimedOut => return Ok(None),
                Ready::Yes => {}
            }
        }
    }

    /// Drains what is readable now until something of ours turns up.
    fn try_read(&self) -> Result<Option<Event>> {
        loop {
            match self.read_one(MsgFlags::MSG_DONTWAIT)? {
                Some(Some(event)) => return Ok(Some(event)),
                Some(None) => continue, // someone else's packet
                None => {}
            }
            if self.access == Access::Ping {
                match self.read_one(MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_ERRQUEUE)? {
                    Some(Some(event)) => return Ok(Some(event)),
                    Some(None) => continue,
                    None => {}
                }
            }
            return Ok(None);
        }
    }

    /// One datagram: `None` when there is none, `Some(None)` when it is
    /// not about our requests.
    fn read_one(&self, flags: MsgFlags) -> Result<Option<Option<Event>>> {
        let mut buf = [0u8; 2048];
        let mut cmsg = nix::cmsg_space!(
            libc::sock_extended_err,
            libc::sockaddr_in6,
            i32,
            libc::timespec
        );
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.socket);
        let (len, from, ttl, error, at) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match socket::recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), flags)
            {
                Ok(msg) => msg,
                Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                // An error from the queue also fails plain reads on some kernels.
                Err(e)
                    if !flags.contains(MsgFlags::MSG_ERRQUEUE) && self.access == Access::Ping =>
                {
                    let _ = e;
                    return Ok(None);
                }
                Err(e) => return Err(Error::io("reading ICMP", None, e.into())),
            };
            let from = msg.address.and_then(|a| storage_ip(&a));
            let mut ttl = None;
            let mut error = None;
            let mut at = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::ScmTimestampns(ts) => {
                            let (secs, nanos) = (ts.tv_sec(), ts.tv_nsec());
                            if let (Ok(secs), Ok(nanos)) =
                                (u64::try_from(secs), u32::try_from(nanos))
                            {
                                at = SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
                            }
                        }
                        ControlMessageOwned::Ipv4Ttl(t) => ttl = u8::try_from(t).ok(),
                        ControlMessageOwned::Ipv6HopLimit(t) => ttl = u8::try_from(t).ok(),
                        ControlMessageOwned::Ipv4RecvErr(e, addr) => {
                            let from = addr.map(|a| {
                                IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)))
                            });
                            error = Some((e, from));
                        }
                        ControlMessageOwned::Ipv6RecvErr(e, addr) => {
                            let from =
                                addr.map(|a| IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)));
                            error = Some((e, from));
                        }
                        _ => {}
                    }
                }
            }
            (msg.bytes, from, ttl, error, at)
        };
        let data = &buf[..len];
        if flags.contains(MsgFlags::MSG_ERRQUEUE) {
            // The datagram is our own request; the cmsg says what befell it.
            let Some((e, offender)) = error else {
                return Ok(Some(None));
            };
            let icmp_origin =
                e.ee_origin == libc::SO_EE_ORIGIN_ICMP || e.ee_origin == libc::SO_EE_ORIGIN_ICMP6;
            if !icmp_origin || data.len() < 8 {
                return Ok(Some(None));
            }
            let seq = u16::from_be_bytes([data[6], data[7]]);
            let from = offender
                .or(from)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            return Ok(Some(Some(error_event(
                self.v6, from, seq, e.ee_type, e.ee_code,
            ))));
        }
        let Some(from) = from else {
            return Ok(Some(None));
        };
        Ok(Some(self.parse(data, from, ttl, at)))
    }

    /// An ICMP packet as the socket delivers it (a raw IPv4 socket with the
    /// IP header in front).
    fn parse(
        &self,
        data: &[u8],
        from: IpAddr,
        ttl: Option<u8>,
        at: Option<SystemTime>,
    ) -> Option<Event> {
        let (icmp, ttl) = if !self.v6 && self.access == Access::Raw {
            let ihl = usize::from(*data.first()? & 0x0f) * 4;
            (data.get(ihl..)?, data.get(8).copied())
        } else {
            (data, ttl)
        };
        if icmp.len() < 8 {
            return None;
        }
        let (reply, errors): (u8, &[u8]) = if self.v6 {
            (129, &[1, 2, 3, 4])
        } else {
            (0, &[3, 11, 12, 4, 5])
        };
        let id = u16::from_be_bytes([icmp[4], icmp[5]]);
        let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
        if icmp[0] == reply {
            if self.access == Access::Raw && id != self.id {
                return None;
            }
            return Some(Event::Reply { from, seq, ttl, at });
        }
        if errors.contains(&icmp[0]) {
            // The error quotes our request: its IP header, then 8 bytes of ICMP.
            let inner = icmp.get(8..)?;
            let header = if self.v6 {
                40
            } else {
                usize::from(*inner.first()? & 0x0f) * 4
            };
            let quoted = inner.get(header..header + 8)?;
            let request = if self.v6 { 128 } else { 8 };
            let qid = u16::from_be_bytes([quoted[4], quoted[5]]);
            if quoted[0] != request || (self.access == Access::Raw && qid != self.id) {
                return None;
            }
            let qseq = u16::from_be_bytes([quoted[6], quoted[7]]);
            return Some(error_event(self.v6, from, qseq, icmp[0], icmp[1]));
        }
        None
    }
}

/// Tells the kernel to hand a raw socket only echo replies and the errors
/// `parse` reads (as iputils does): without it every ICMP packet of the
/// host, our own requests on loopback included, is copied to us, and that
/// copying is inside each round trip.
fn filter(socket: &Socket, v6: bool) -> Result<()> {
    use std::os::fd::AsRawFd;
    // From <linux/icmp.h> and <netinet/icmp6.h>: a set bit blocks a type.
    const SOL_RAW: libc::c_int = 255;
    const ICMP_FILTER: libc::c_int = 1;
    const ICMP6_FILTER: libc::c_int = 1;
    let (level, name, mask): (libc::c_int, libc::c_int, [u32; 8]) = if v6 {
        let mut mask = [u32::MAX; 8];
        for t in [1u8, 2, 3, 4, 129] {
            mask[usize::from(t >> 5)] &= !(1 << (t & 31));
        }
        (libc::IPPROTO_ICMPV6, ICMP6_FILTER, mask)
    } else {
        let pass = [0u8, 3, 4, 5, 11, 12]
            .iter()
            .fold(0u32, |m, t| m | (1 << t));
        (SOL_RAW, ICMP_FILTER, [!pass, 0, 0, 0, 0, 0, 0, 0])
    };
    let len = if v6 { 32 } else { 4 };
    // SAFETY: `mask` lives across the call and is at least `len` bytes;
    // the descriptor is the socket's own, open.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            mask.as_ptr().cast(),
            len as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(Error::io(
            "filtering the ICMP socket",
            None,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn error_event(v6: bool, from: IpAddr, seq: u16, icmp_type: u8, code: u8) -> Event {
    Event::Error {
        from,
        seq,
        icmp_type,
        code,
        what: describe(v6, icmp_type, code).to_string(),
    }
}

/// ICMP errors in ping's words.
pub fn describe(v6: bool, icmp_type: u8, code: u8) -> &'static str {
    match (v6, icmp_type, code) {
        (false, 3, 0) => "Destination Net Unreachable",
        (false, 3, 1) => "Destination Host Unreachable",
        (false, 3, 2) => "Destination Protocol Unreachable",
        (false, 3, 3) => "Destination Port Unreachable",
        (false, 3, 4) => "Frag needed",
        (false, 3, 13) => "Packet filtered",
        (false, 3, _) => "Destination Unreachable",
        (false, 11, 0) => "Time to live exceeded",
        (false, 11, _) => "Frag reassembly time exceeded",
        (true, 1, 0) => "Destination unreachable: No route",
        (true, 1, 1) => "Destination unreachable: Administratively prohibited",
        (true, 1, 3) => "Destination unreachable: Address unreachable",
        (true, 1, 4) => "Destination unreachable: Port unreachable",
        (true, 1, _) => "Destination unreachable",
        (true, 2, _) => "Packet too big",
        (true, 3, _) => "Time exceeded: Hop limit",
        _ => "ICMP error",
    }
}

fn storage_ip(a: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A little randomness for the echo ID, from the clock.
fn rand_u16() -> u16 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_an_echo_request() {
        // type 8, id 1, seq 1, no payload: 0xf7fd, as tcpdump shows it.
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
    }
}
