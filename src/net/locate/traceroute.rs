//! `traceroute(host, opts)`: which routers lie on the way. Probes (UDP to
//! ports 33434 and up, as traceroute; ICMP echo; or TCP SYN to `port`) go
//! out with TTLs 1, 2, 3… — a window of TTLs at once, not one after the
//! other — and each router where a TTL runs out answers with ICMP "time
//! exceeded", quoting our probe, so the quote tells which probe it was.
//! The destination answers UDP with "port unreachable", ICMP with an echo
//! reply, TCP with SYN-ACK or RST.
//!
//! IPv6 the same way, with ICMPv6: "time exceeded" is type 3, the
//! destination's "port unreachable" type 1, and the raw socket hands over
//! the ICMPv6 message without the IP header in front.
//!
//! Hearing those ICMP errors takes a raw ICMP socket (CAP_NET_RAW); without
//! one it fails at once with the words `ping` uses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Map};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::net::options::Options;
use crate::runtime;

pub const KNOWN: &[&str] = &["proto", "port", "max_hops", "queries", "timeout", "names"];

/// The first UDP port traceroute probes (each probe the next one).
const UDP_BASE: u16 = 33434;
/// How many TTLs are probed at once.
const WINDOW: u8 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Icmp,
    Tcp,
}

/// A checked `traceroute` call: nothing has been sent.
pub struct Plan {
    pub dest: IpAddr,
    pub proto: Proto,
    pub port: u16,
    pub max_hops: u8,
    pub queries: u8,
    pub timeout: Duration,
    pub names: bool,
}

impl Plan {
    pub fn new(host: &str, options: &Map) -> Result<Plan> {
        let o = Options::new(options, KNOWN)?;
        let proto = match o.text("proto")?.as_deref() {
            None | Some("udp") => Proto::Udp,
            Some("icmp") => Proto::Icmp,
            Some("tcp") => Proto::Tcp,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "option 'proto': expected \"udp\", \"icmp\" or \"tcp\", not {:?}",
                    crate::error::printable(other)
                )));
            }
        };
        let port = match o.count_in("port", 1, 65535)? {
            Some(p) => p as u16,
            None if proto == Proto::Tcp => 80,
            None => UDP_BASE,
        };
        let max_hops = o.count_in("max_hops", 1, 255)?.unwrap_or(30) as u8;
        let queries = o.count_in("queries", 1, 10)?.unwrap_or(3) as u8;
        let timeout = o
            .timeout("timeout")?
            .map(|t| t.unwrap_or(Duration::from_secs(3600)))
            .unwrap_or(Duration::from_secs(2));
        let names = o.flag("names", false)?;
        let dest = super::ping::target_ip(host)?;
        if proto == Proto::Udp && u32::from(port) + u32::from(max_hops) * u32::from(queries) > 65535
        {
            return Err(Error::invalid(
                "option 'port': the probes' ports would run past 65535".to_string(),
            ));
        }
        Ok(Plan {
            dest,
            proto,
            port,
            max_hops,
            queries,
            timeout,
            names,
        })
    }
}

/// The raw ICMP socket every trace listens on; opening it is the
/// privilege check, before anything is sent.
pub fn open(plan: &Plan) -> Result<Socket> {
    let v6 = plan.dest.is_ipv6();
    let (domain, protocol) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let socket =
        Socket::new(domain, Type::RAW, Some(protocol)).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => super::icmp::refused(v6),
            _ => Error::io("opening a raw ICMP socket", None, e),
        })?;
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("setting up the ICMP socket", None, e))?;
    Ok(socket)
}

/// What was heard about a probe, and when.
#[derive(Debug)]
enum Heard {
    /// An ICMP error quoting a probe: `key` is the quoted UDP destination
    /// port, echo sequence number or TCP source port.
    Quoted {
        from: IpAddr,
        icmp_type: u8,
        code: u8,
        key: u16,
        at: Instant,
    },
    EchoReply {
        from: IpAddr,
        seq: u16,
        at: Instant,
    },
    /// A TCP probe's connect finished: SYN-ACK or RST from the destination.
    TcpDone {
        probe: usize,
        at: Instant,
    },
}

/// One probe's outcome.
#[derive(Debug, Clone)]
struct Outcome {
    from: IpAddr,
    ms: f64,
    /// The destination (or an unreachable) answered: the trace ends here.
    last: bool,
}

/// Runs the trace and returns its hops.
pub fn run(plan: &Plan, raw: Socket) -> Result<Array> {
    let outcomes = runtime::block_on(trace(plan, raw))?;
    let mut hops = Array::new();
    let per = usize::from(plan.queries);
    let reached = (0..usize::from(plan.max_hops)).find(|hop| {
        outcomes[hop * per..(hop + 1) * per]
            .iter()
            .any(|o| o.as_ref().is_some_and(|o| o.last))
    });
    let shown = reached.map_or(usize::from(plan.max_hops), |h| h + 1);
    for hop in 0..shown {
        let probes = &outcomes[hop * per..(hop + 1) * per];
        let addr = probes.iter().flatten().map(|o| o.from).next();
        let ms: Array = probes
            .iter()
            .flatten()
            .map(|o| Dynamic::from_float(o.ms))
            .collect();
        let name = match (addr, plan.names) {
            // A hop's name is a question to the resolver about it: asked
            // only where the grant allows, else the hop has no name.
            (Some(a), true) if crate::permit::lookup(&a.to_string()).is_ok() => {
                dns_lookup::lookup_addr(&a).map_or(Dynamic::UNIT, Dynamic::from)
            }
            _ => Dynamic::UNIT,
        };
        let mut m = Map::new();
        m.insert("hop".into(), Dynamic::from((hop + 1) as i64));
        m.insert(
            "addr".into(),
            addr.map_or(Dynamic::UNIT, |a| a.to_string().into()),
        );
        m.insert("ms".into(), ms.into());
        m.insert("name".into(), name);
        hops.push(m.into());
    }
    Ok(hops)
}

async fn trace(plan: &Plan, raw: Socket) -> Result<Vec<Option<Outcome>>> {
    let per = usize::from(plan.queries);
    let total = usize::from(plan.max_hops) * per;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; total];
    let mut sent_at: Vec<Option<Instant>> = vec![None; total];
    // SAFETY: a socket2 Socket owns its descriptor and always reports that
    // same one; it stays open until the AsyncFd (which owns it) is dropped.
    let raw = unsafe { AsyncFd::register(raw) }
        .map_err(|e| Error::io("watching the ICMP socket", None, e.into_parts().1))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Heard>();
    let mut tasks = tokio::task::JoinSet::new();
    let any: IpAddr = if plan.dest.is_ipv6() {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let udp = match plan.proto {
        Proto::Udp => Some(
            std::net::UdpSocket::bind((any, 0))
                .map_err(|e| Error::io("opening a UDP socket", None, e))?,
        ),
        _ => None,
    };
    let echo_id = (std::process::id() as u16) ^ 0x5a5a;
    // TCP probes are told apart by their source ports.
    let mut tcp_ports: HashMap<u16, usize> = HashMap::new();
    let mut lo: u8 = 1;
    loop {
        let hi = lo.saturating_add(WINDOW - 1).min(plan.max_hops);
        for ttl in lo..=hi {
            for q in 0..per {
                let probe = usize::from(ttl - 1) * per + q;
                send(
                    plan,
                    &raw,
                    udp.as_ref(),
                    ttl,
                    probe,
                    echo_id,
                    &tx,
                    &mut tasks,
                    &mut tcp_ports,
                )?;
                sent_at[probe] = Some(Instant::now());
            }
        }
        let deadline = tokio::time::Instant::now() + plan.timeout;
        let mut buf = [0u8; 1500];
        loop {
            // Done when every probe up to the first answering destination
            // (or up to the window's end) has an outcome.
            let last_hop = (0..usize::from(hi))
                .find(|h| {
                    outcomes[h * per..(h + 1) * per]
                        .iter()
                        .flatten()
                        .any(|o| o.last)
                })
                .map_or(usize::from(hi), |h| h + 1);
            if outcomes[..last_hop * per].iter().all(Option::is_some) {
                break;
            }
            let heard = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                Some(h) = rx.recv() => h,
                ready = raw.readable() => {
                    let mut guard = ready.map_err(|e| Error::io("reading ICMP", None, e))?;
                    let got = guard.try_io(|s| {
                        nix::sys::socket::recvfrom::<nix::sys::socket::SockaddrStorage>(s.as_raw_fd(), &mut buf)
                            .map_err(std::io::Error::from)
                    });
                    let Ok(got) = got else { continue };
                    let (n, from) = got.map_err(|e| Error::io("reading ICMP", None, e))?;
                    let Some(from) = from.as_ref().and_then(storage_ip) else { continue };
                    match parse(&buf[..n], from, echo_id, plan.proto) {
                        Some(h) => h,
                        None => continue,
                    }
                }
            };
            let (probe, from, at, last) = match heard {
                Heard::TcpDone { probe, at } => (probe, plan.dest, at, true),
                Heard::EchoReply { from, seq, at } => (usize::from(seq), from, at, true),
                Heard::Quoted {
                    from,
                    icmp_type,
                    code,
                    key,
                    at,
                } => {
                    let probe = match plan.proto {
                        Proto::Udp => usize::from(key.wrapping_sub(plan.port)),
                        Proto::Icmp => usize::from(key),
                        Proto::Tcp => match tcp_ports.get(&key) {
                            Some(p) => *p,
                            None => continue,
                        },
                    };
                    // Time exceeded is a router on the way; an unreachable
                    // (the destination's port unreachable, or a router's
                    // host unreachable) ends the trace.
                    let _ = code;
                    let unreachable = if plan.dest.is_ipv6() { 1 } else { 3 };
                    (probe, from, at, icmp_type == unreachable)
                }
            };
            let Some(Some(sent)) = sent_at.get(probe) else {
                continue;
            };
            if outcomes[probe].is_none() {
                outcomes[probe] = Some(Outcome {
                    from,
                    ms: at.saturating_duration_since(*sent).as_secs_f64() * 1000.0,
                    last,
                });
            }
        }
        let reached = outcomes.iter().flatten().any(|o| o.last);
        if reached || hi == plan.max_hops {
            break;
        }
        lo = hi + 1;
    }
    tasks.abort_all();
    Ok(outcomes)
}

#[allow(clippy::too_many_arguments)]
fn send(
    plan: &Plan,
    raw: &AsyncFd<Socket>,
    udp: Option<&std::net::UdpSocket>,
    ttl: u8,
    probe: usize,
    echo_id: u16,
    tx: &mpsc::UnboundedSender<Heard>,
    tasks: &mut tokio::task::JoinSet<()>,
    tcp_ports: &mut HashMap<u16, usize>,
) -> Result<()> {
    let io = |what: &str, e| Error::io(format!("{what} (TTL {ttl})"), None, e);
    match plan.proto {
        Proto::Udp => {
            let Some(udp) = udp else { return Ok(()) };
            socket2::SockRef::from(udp)
                .set_hops(plan.dest, ttl)
                .map_err(|e| io("setting the TTL", e))?;
            let port = plan.port + probe as u16;
            udp.send_to(&[0u8; 32], (plan.dest, port))
                .map_err(|e| io("sending a UDP probe", e))?;
        }
        Proto::Icmp => {
            let s = raw.get_ref();
            socket2::SockRef::from(s)
                .set_hops(plan.dest, ttl)
                .map_err(|e| io("setting the TTL", e))?;
            let v6 = plan.dest.is_ipv6();
            let mut packet = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
            packet.extend_from_slice(&echo_id.to_be_bytes());
            packet.extend_from_slice(&(probe as u16).to_be_bytes());
            packet.extend_from_slice(&[0u8; 32]);
            if !v6 {
                // ICMPv6's checksum covers a pseudo-header: the kernel fills it.
                let sum = super::icmp::checksum(&packet);
                packet[2..4].copy_from_slice(&sum.to_be_bytes());
            }
            s.send_to(&packet, &SocketAddr::new(plan.dest, 0).into())
                .map_err(|e| io("sending an ICMP probe", e))?;
        }
        Proto::Tcp => {
            let domain = if plan.dest.is_ipv6() {
                Domain::IPV6
            } else {
                Domain::IPV4
            };
            let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))
                .map_err(|e| io("opening a TCP socket", e))?;
            socket2::SockRef::from(&s)
                .set_hops(plan.dest, ttl)
                .map_err(|e| io("setting the TTL", e))?;
            s.set_nonblocking(true)
                .map_err(|e| io("setting up a TCP probe", e))?;
            let dest = SocketAddr::new(plan.dest, plan.port);
            match s.connect(&dest.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(io("sending a TCP probe", e)),
            }
            let port = s
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| a.port())
                .unwrap_or(0);
            tcp_ports.insert(port, probe);
            let tx = tx.clone();
            // SAFETY: as for the raw socket: the AsyncFd owns the Socket.
            let fd = unsafe { AsyncFd::register(s) }
                .map_err(|e| io("watching a TCP probe", e.into_parts().1))?;
            tasks.spawn(async move {
                // One wake-up settles the connect: SYN-ACK or RST from the
                // destination, or a router's ICMP error, which ends a
                // SYN_SENT connect with EHOSTUNREACH (the raw socket has
                // the router's address). Waiting again on a dead socket
                // would spin: it stays writable.
                let Ok(_guard) = fd.writable().await else {
                    return;
                };
                let at = Instant::now();
                let answered = match fd.get_ref().take_error() {
                    Ok(Some(e)) => e.raw_os_error() == Some(libc::ECONNREFUSED),
                    Ok(None) => fd.get_ref().peer_addr().is_ok(),
                    Err(_) => false,
                };
                if answered {
                    let _ = tx.send(Heard::TcpDone { probe, at });
                }
            });
        }
    }
    Ok(())
}

/// Sets the TTL (IPv4) or hop limit (IPv6) of what a socket sends to `dest`.
trait Hops {
    fn set_hops(&self, dest: IpAddr, ttl: u8) -> std::io::Result<()>;
}

impl Hops for socket2::SockRef<'_> {
    fn set_hops(&self, dest: IpAddr, ttl: u8) -> std::io::Result<()> {
        match dest {
            IpAddr::V4(_) => self.set_ttl_v4(u32::from(ttl)),
            IpAddr::V6(_) => self.set_unicast_hops_v6(u32::from(ttl)),
        }
    }
}

fn storage_ip(a: &nix::sys::socket::SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// An ICMP packet about one of our probes: ICMPv4 with its IPv4 header in
/// front, ICMPv6 without.
fn parse(packet: &[u8], from: IpAddr, echo_id: u16, proto: Proto) -> Option<Heard> {
    let at = Instant::now();
    let v6 = from.is_ipv6();
    let icmp = if v6 {
        packet
    } else {
        let ihl = usize::from(*packet.first()? & 0x0f) * 4;
        packet.get(ihl..)?
    };
    let (icmp_type, code) = (*icmp.first()?, *icmp.get(1)?);
    // Echo reply, time exceeded, destination unreachable; echo request.
    let (reply, exceeded, unreachable, request) = if v6 { (129, 3, 1, 128) } else { (0, 11, 3, 8) };
    if icmp_type == reply && proto == Proto::Icmp {
        let id = u16::from_be_bytes([*icmp.get(4)?, *icmp.get(5)?]);
        let seq = u16::from_be_bytes([*icmp.get(6)?, *icmp.get(7)?]);
        return (id == echo_id).then_some(Heard::EchoReply { from, seq, at });
    }
    if icmp_type != exceeded && icmp_type != unreachable {
        return None;
    }
    // The quote: our probe's IP header, then at least 8 bytes after it.
    let inner = icmp.get(8..)?;
    let (inner_len, inner_proto) = if v6 {
        (40, *inner.get(6)?)
    } else {
        (usize::from(*inner.first()? & 0x0f) * 4, *inner.get(9)?)
    };
    let quoted = inner.get(inner_len..inner_len + 8)?;
    let key = match (proto, inner_proto) {
        (Proto::Udp, 17) => u16::from_be_bytes([quoted[2], quoted[3]]),
        (Proto::Tcp, 6) => u16::from_be_bytes([quoted[0], quoted[1]]),
        (Proto::Icmp, 1) | (Proto::Icmp, 58) if (inner_proto == 58) == v6 => {
            let id = u16::from_be_bytes([quoted[4], quoted[5]]);
            if quoted[0] != request || id != echo_id {
                return None;
            }
            u16::from_be_bytes([quoted[6], quoted[7]])
        }
        _ => return None,
    };
    Some(Heard::Quoted {
        from,
        icmp_type,
        code,
        key,
        at,
    })
}

/// A trace's hops as `traceroute -n` prints them (`*` for a silent hop),
/// if every item has a hop's shape (`#{hop, addr, ms, name}`).
pub fn hops_text(items: &Array) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let mut lines = Vec::new();
    for item in items {
        let m = item.read_lock::<Map>()?;
        if m.len() != 4
            || !["hop", "addr", "ms", "name"]
                .iter()
                .all(|k| m.contains_key(*k))
        {
            return None;
        }
        let hop = m.get("hop")?.as_int().ok()?;
        let addr = m.get("addr")?;
        let times = m.get("ms")?.read_lock::<Array>()?.clone();
        let mut line = format!("{hop:2}  ");
        if addr.is_unit() {
            line.push('*');
        } else {
            let name = m.get("name").filter(|n| !n.is_unit());
            match name {
                Some(n) => line.push_str(&format!("{n} ({addr})")),
                None => line.push_str(&addr.to_string()),
            }
            for t in &times {
                line.push_str(&format!("  {:.3} ms", t.as_float().unwrap_or(0.0)));
            }
        }
        lines.push(line);
    }
    Some(lines.join("\n"))
}
