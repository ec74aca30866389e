//! One captured packet as a script sees it: who sent it to whom, the TCP
//! flags by name, sequence numbers relative to each side's first one (as
//! tcpdump and Wireshark show them), the window and the payload length —
//! and how it prints: one tcpdump-like line, or a table for many.
//!
//! Headers are read by etherparse's lax slicer, which accepts packets cut
//! short by the capture's snap length, and its header slices; the payload
//! length comes from the IP and UDP length fields, not from the bytes kept.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::{Duration, SystemTime},
};

use etherparse::{
    IpNumber, LaxIpPayloadSlice, LaxNetSlice, LaxSlicedPacket, TcpHeaderSlice, UdpHeaderSlice,
};
use rhai::{Dynamic, Map};

pub use super::filter::Proto;

/// The TCP flags of a segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub urg: bool,
    pub ece: bool,
    pub cwr: bool,
    pub ack: bool,
}

impl Flags {
    /// `SYN`, `SYN-ACK`, `PSH-ACK`, `FIN-ACK`, `RST`… ACK comes last, as
    /// people say it; a segment with no flag at all is `NONE`.
    pub fn name(&self) -> String {
        let names: Vec<&str> = [
            (self.syn, "SYN"),
            (self.fin, "FIN"),
            (self.rst, "RST"),
            (self.psh, "PSH"),
            (self.urg, "URG"),
            (self.ece, "ECE"),
            (self.cwr, "CWR"),
            (self.ack, "ACK"),
        ]
        .iter()
        .filter_map(|&(set, name)| set.then_some(name))
        .collect();
        if names.is_empty() {
            "NONE".into()
        } else {
            names.join("-")
        }
    }
}

/// What a TCP segment says beyond its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    pub flags: Flags,
    /// Relative to the sender's first sequence number.
    pub seq: u32,
    /// Relative to the receiver's first sequence number; only with ACK.
    pub ack: Option<u32>,
    /// The window field as sent (not scaled), as tcpdump shows it.
    pub window: u16,
}

/// A captured TCP segment or UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Microseconds since the capture started.
    pub time_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// `None` for UDP.
    pub tcp: Option<Tcp>,
    /// Payload bytes (TCP data or the UDP datagram's contents).
    pub len: u32,
}

impl Packet {
    pub fn proto(&self) -> Proto {
        if self.tcp.is_some() {
            Proto::Tcp
        } else {
            Proto::Udp
        }
    }

    pub fn proto_name(&self) -> &'static str {
        match self.proto() {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// The packet as a script sees it: a map `time, src, dst, proto, flags,
    /// seq, ack, window, len` (the TCP fields are `()` for UDP, `ack`
    /// without ACK).
    pub fn to_map(&self) -> Map {
        let tcp = self.tcp.as_ref();
        let mut m = Map::new();
        m.insert("time".into(), self.time_us.into());
        m.insert("src".into(), self.src.to_string().into());
        m.insert("dst".into(), self.dst.to_string().into());
        m.insert("proto".into(), self.proto_name().into());
        m.insert(
            "flags".into(),
            tcp.map_or(Dynamic::UNIT, |t| t.flags.name().into()),
        );
        m.insert(
            "seq".into(),
            tcp.map_or(Dynamic::UNIT, |t| i64::from(t.seq).into()),
        );
        m.insert(
            "ack".into(),
            tcp.and_then(|t| t.ack)
                .map_or(Dynamic::UNIT, |a| i64::from(a).into()),
        );
        m.insert(
            "window".into(),
            tcp.map_or(Dynamic::UNIT, |t| i64::from(t.window).into()),
        );
        m.insert("len".into(), i64::from(self.len).into());
        m
    }

    /// `+0.000041 127.0.0.1:53211 → 127.0.0.1:9000 SYN seq 0 win 65495`
    pub fn line(&self) -> String {
        Shown::from(self).line()
    }
}

/// A packet as printed, read from a [`Packet`] or recognised in a map of
/// exactly a packet's shape (the REPL prints captured packets from their
/// maps, so a script's own copy or filter of them prints the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    time_us: i64,
    src: String,
    dst: String,
    /// Flags, seq, ack and window; `None` for UDP.
    tcp: Option<(String, i64, Option<i64>, i64)>,
    len: i64,
}

/// The keys of a packet's map.
const KEYS: [&str; 9] = [
    "time", "src", "dst", "proto", "flags", "seq", "ack", "window", "len",
];

impl From<&Packet> for Shown {
    fn from(p: &Packet) -> Shown {
        Shown {
            time_us: p.time_us,
            src: p.src.to_string(),
            dst: p.dst.to_string(),
            tcp: p.tcp.as_ref().map(|t| {
                (
                    t.flags.name(),
                    i64::from(t.seq),
                    t.ack.map(i64::from),
                    i64::from(t.window),
                )
            }),
            len: i64::from(p.len),
        }
    }
}

impl Shown {
    /// The packet `m` is, if it has exactly a packet's keys and types:
    /// `time` and `len` numbers, `src` and `dst` socket addresses, `proto`
    /// `"tcp"` with `flags`, `seq`, `window` (and `ack` or `()`), or
    /// `"udp"` with those four `()`.
    pub fn from_map(m: &Map) -> Option<Shown> {
        if m.len() != KEYS.len() || !KEYS.iter().all(|k| m.contains_key(*k)) {
            return None;
        }
        let int = |k: &str| m.get(k)?.as_int().ok();
        let text = |k: &str| m.get(k)?.clone().into_string().ok();
        let unit = |k: &str| m.get(k).is_some_and(Dynamic::is_unit);
        let address = |k: &str| text(k).filter(|a| a.parse::<SocketAddr>().is_ok());
        let tcp = match text("proto")?.as_str() {
            "tcp" => Some((
                text("flags")?,
                int("seq")?,
                if unit("ack") { None } else { Some(int("ack")?) },
                int("window")?,
            )),
            "udp" if ["flags", "seq", "ack", "window"].iter().all(|k| unit(k)) => None,
            _ => return None,
        };
        Some(Shown {
            time_us: int("time")?,
            src: address("src")?,
            dst: address("dst")?,
            tcp,
            len: int("len")?,
        })
    }

    /// The flags by name (`SYN-ACK`), or `UDP` for a datagram.
    fn flags_name(&self) -> &str {
        self.tcp.as_ref().map_or("UDP", |t| t.0.as_str())
    }

    /// `+0.000041 127.0.0.1:53211 → 127.0.0.1:9000 SYN seq 0 win 65495`
    pub fn line(&self) -> String {
        let mut out = format!(
            "{} {} → {} {}",
            seconds(self.time_us),
            self.src,
            self.dst,
            self.flags_name()
        );
        if let Some((_, seq, ack, window)) = &self.tcp {
            out.push_str(&format!(" seq {seq}"));
            if let Some(ack) = ack {
                out.push_str(&format!(" ack {ack}"));
            }
            out.push_str(&format!(" win {window}"));
        }
        if self.len > 0 || self.tcp.is_none() {
            out.push_str(&format!(" len {}", self.len));
        }
        out
    }
}

/// `+1.000041`: seconds with microseconds, as tcpdump's `-ttttt`.
fn seconds(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "+" };
    let us = us.unsigned_abs();
    format!("{sign}{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// Many packets as aligned columns under a header, one packet a row.
pub fn table(packets: &[Shown]) -> String {
    let rows: Vec<[String; 8]> = packets
        .iter()
        .map(|p| {
            let tcp = p.tcp.as_ref();
            let num = |v: Option<i64>| v.map_or_else(|| "-".into(), |v| v.to_string());
            [
                seconds(p.time_us),
                p.src.clone(),
                p.dst.clone(),
                p.flags_name().to_string(),
                num(tcp.map(|t| t.1)),
                num(tcp.and_then(|t| t.2)),
                num(tcp.map(|t| t.3)),
                p.len.to_string(),
            ]
        })
        .collect();
    let header = ["time", "src", "dst", "flags", "seq", "ack", "win", "len"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let render = |row: &[String; 8]| -> String {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                let pad = " ".repeat(w - cell.chars().count());
                // Numbers line up on the right, words on the left.
                if i >= 4 {
                    format!("{pad}{cell}")
                } else {
                    format!("{cell}{pad}")
                }
            })
            .collect();
        cells.join("  ").trim_end().to_string()
    };
    std::iter::once(&header)
        .chain(&rows)
        .map(render)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Turns the bytes of captured packets into [`Packet`]s, remembering each
/// direction's first sequence number so later ones read as offsets from it.
pub struct Decoder {
    start: SystemTime,
    /// The first sequence number seen from `src` to `dst`.
    isn: HashMap<(SocketAddr, SocketAddr), u32>,
}

impl Decoder {
    pub fn new(start: SystemTime) -> Decoder {
        Decoder {
            start,
            isn: HashMap::new(),
        }
    }

    /// The packet in `data` (from its IP header on, possibly cut short),
    /// whose full length was `wire_len`; `None` for anything that is not a
    /// readable TCP or UDP packet, or the first fragment of one.
    ///
    /// The transport header is read from the IP payload here rather than by
    /// etherparse's slicer, which leaves a fragmented payload unparsed: the
    /// first fragment of a big UDP datagram carries the UDP header, whose
    /// length field gives the whole datagram's length. Later fragments
    /// carry no header (the kernel filter already drops them).
    pub fn decode(&mut self, data: &[u8], wire_len: u32, time: SystemTime) -> Option<Packet> {
        let parsed = LaxSlicedPacket::from_ip(data).ok()?;
        let (src_ip, dst_ip, ip_total, payload): (IpAddr, IpAddr, usize, &LaxIpPayloadSlice) =
            match parsed.net.as_ref()? {
                LaxNetSlice::Ipv4(v4) => {
                    let h = v4.header();
                    if h.fragments_offset().value() != 0 {
                        return None;
                    }
                    // A zero total length (a large segment handed over before
                    // segmentation) leaves the kernel's count as the length.
                    let total = match h.total_len() {
                        0 => wire_len as usize,
                        n => usize::from(n),
                    };
                    let ips = (h.source_addr().into(), h.destination_addr().into());
                    (ips.0, ips.1, total, v4.payload())
                }
                LaxNetSlice::Ipv6(v6) => {
                    // Fragments behind an IPv6 extension header are not
                    // followed (nor let through by the filter).
                    if v6.is_payload_fragmented() {
                        return None;
                    }
                    let h = v6.header();
                    let total = match h.payload_length() {
                        0 => wire_len as usize,
                        n => 40 + usize::from(n),
                    };
                    let ips = (h.source_addr().into(), h.destination_addr().into());
                    (ips.0, ips.1, total, v6.payload())
                }
                LaxNetSlice::Arp(_) => return None,
            };
        let time_us = time
            .duration_since(self.start)
            .unwrap_or(Duration::ZERO)
            .as_micros();
        let time_us = i64::try_from(time_us).unwrap_or(i64::MAX);
        // Bytes from the IP header to the transport header.
        let ip_header_len = payload.payload.as_ptr() as usize - data.as_ptr() as usize;
        match payload.ip_number {
            IpNumber::TCP => {
                let tcp = TcpHeaderSlice::from_slice(payload.payload).ok()?;
                let src = SocketAddr::new(src_ip, tcp.source_port());
                let dst = SocketAddr::new(dst_ip, tcp.destination_port());
                let flags = Flags {
                    syn: tcp.syn(),
                    fin: tcp.fin(),
                    rst: tcp.rst(),
                    psh: tcp.psh(),
                    urg: tcp.urg(),
                    ece: tcp.ece(),
                    cwr: tcp.cwr(),
                    ack: tcp.ack(),
                };
                let (seq, ack) = self.relative(
                    src,
                    dst,
                    flags,
                    tcp.sequence_number(),
                    tcp.acknowledgment_number(),
                );
                Some(Packet {
                    time_us,
                    src,
                    dst,
                    tcp: Some(Tcp {
                        flags,
                        seq,
                        ack,
                        window: tcp.window_size(),
                    }),
                    len: ip_total.saturating_sub(ip_header_len + tcp.slice().len()) as u32,
                })
            }
            IpNumber::UDP => {
                let udp = UdpHeaderSlice::from_slice(payload.payload).ok()?;
                Some(Packet {
                    time_us,
                    src: SocketAddr::new(src_ip, udp.source_port()),
                    dst: SocketAddr::new(dst_ip, udp.destination_port()),
                    tcp: None,
                    len: u32::from(udp.length()).saturating_sub(8),
                })
            }
            _ => None,
        }
    }

    /// Sequence and acknowledgment numbers relative to each side's first.
    /// A SYN starts a connection afresh (a port may be reused); a side first
    /// seen mid-connection counts from its first segment, and the other
    /// side from what that segment acknowledges, as tcpdump does.
    fn relative(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        flags: Flags,
        seq: u32,
        ack: u32,
    ) -> (u32, Option<u32>) {
        if flags.syn {
            self.isn.insert((src, dst), seq);
            if !flags.ack {
                self.isn.remove(&(dst, src));
            }
        }
        let mine = *self.isn.entry((src, dst)).or_insert(seq);
        let ack = flags.ack.then(|| {
            let theirs = *self
                .isn
                .entry((dst, src))
                .or_insert_with(|| ack.wrapping_sub(1));
            ack.wrapping_sub(theirs)
        });
        (seq.wrapping_sub(mine), ack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const C: [u8; 4] = [127, 0, 0, 1];

    fn segment(
        sport: u16,
        dport: u16,
        seq: u32,
        ack: Option<u32>,
        syn: bool,
        data: &[u8],
    ) -> Vec<u8> {
        let mut b = PacketBuilder::ipv4(C, C, 64).tcp(sport, dport, seq, 65495);
        if syn {
            b = b.syn();
        }
        if let Some(ack) = ack {
            b = b.ack(ack);
        }
        let mut out = Vec::new();
        b.write(&mut out, data).unwrap();
        out
    }

    #[test]
    fn handshake_reads_as_tcpdump_shows_it() {
        let start = SystemTime::UNIX_EPOCH;
        let mut d = Decoder::new(start);
        let at = |us| start + Duration::from_micros(us);
        let syn = d
            .decode(
                &segment(50000, 9000, 1_000_000, None, true, b""),
                60,
                at(41),
            )
            .unwrap();
        let syn_ack = d
            .decode(
                &segment(9000, 50000, u32::MAX - 1, Some(1_000_001), true, b""),
                60,
                at(60),
            )
            .unwrap();
        let ack = d
            .decode(
                &segment(50000, 9000, 1_000_001, Some(u32::MAX), false, b""),
                52,
                at(70),
            )
            .unwrap();
        let data = d
            .decode(
                &segment(50000, 9000, 1_000_001, Some(u32::MAX), false, b"hello"),
                57,
                at(90),
            )
            .unwrap();
        let t = |p: &Packet| p.tcp.clone().unwrap();
        assert_eq!(t(&syn).flags.name(), "SYN");
        assert_eq!(t(&syn_ack).flags.name(), "SYN-ACK");
        assert_eq!(t(&ack).flags.name(), "ACK");
        assert_eq!((t(&syn).seq, t(&syn).ack), (0, None));
        assert_eq!((t(&syn_ack).seq, t(&syn_ack).ack), (0, Some(1)));
        // The server's sequence numbers wrapped past 2^32 and still count from 0.
        assert_eq!((t(&ack).seq, t(&ack).ack), (1, Some(1)));
        assert_eq!(data.len, 5);
        assert_eq!(
            syn.line(),
            "+0.000041 127.0.0.1:50000 → 127.0.0.1:9000 SYN seq 0 win 65495"
        );
        assert_eq!(
            data.line(),
            "+0.000090 127.0.0.1:50000 → 127.0.0.1:9000 ACK seq 1 ack 1 win 65495 len 5"
        );
    }

    #[test]
    fn payload_length_comes_from_the_headers_not_the_bytes_kept() {
        let mut d = Decoder::new(SystemTime::UNIX_EPOCH);
        let full = segment(1, 2, 7, Some(9), false, &[0u8; 1000]);
        let cut = &full[..60];
        let p = d
            .decode(cut, full.len() as u32, SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(p.len, 1000);
        // Joined mid-connection: both sides count from what is first seen.
        assert_eq!(p.tcp.unwrap().seq, 0);

        let mut udp = Vec::new();
        PacketBuilder::ipv6([0; 16], [0; 16], 64)
            .udp(5, 6)
            .write(&mut udp, &[1; 300])
            .unwrap();
        let p = d
            .decode(&udp[..70], udp.len() as u32, SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(
            (p.proto_name(), p.len, p.src.to_string().as_str()),
            ("udp", 300, "[::]:5")
        );
        assert_eq!(p.line(), "+0.000000 [::]:5 → [::]:6 UDP len 300");
    }

    #[test]
    fn flag_names() {
        let f = |syn, fin, rst, psh, ack| Flags {
            syn,
            fin,
            rst,
            psh,
            ack,
            ..Flags::default()
        };
        assert_eq!(f(false, true, false, false, true).name(), "FIN-ACK");
        assert_eq!(f(false, false, true, false, true).name(), "RST-ACK");
        assert_eq!(f(false, false, true, false, false).name(), "RST");
        assert_eq!(f(false, false, false, true, true).name(), "PSH-ACK");
        assert_eq!(Flags::default().name(), "NONE");
    }

    #[test]
    fn garbage_is_not_a_packet() {
        let mut d = Decoder::new(SystemTime::UNIX_EPOCH);
        assert!(d.decode(&[], 0, SystemTime::UNIX_EPOCH).is_none());
        assert!(d.decode(&[0x45, 0, 0], 3, SystemTime::UNIX_EPOCH).is_none());
        assert!(d.decode(&[0xff; 64], 64, SystemTime::UNIX_EPOCH).is_none());
    }

    #[test]
    fn table_lines_up() {
        let mut d = Decoder::new(SystemTime::UNIX_EPOCH);
        let a = d
            .decode(
                &segment(50000, 9000, 5, None, true, b""),
                60,
                SystemTime::UNIX_EPOCH,
            )
            .unwrap();
        let text = table(&[Shown::from(&a), Shown::from(&a)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("time "), "{text}");
        assert_eq!(
            lines[1].find("127.0.0.1:9000"),
            lines[0].find("dst"),
            "{text}"
        );
    }

    #[test]
    fn packet_maps_are_recognised_by_their_shape_alone() {
        let mut d = Decoder::new(SystemTime::UNIX_EPOCH);
        let p = d
            .decode(
                &segment(50000, 9000, 5, Some(7), false, b"hi"),
                62,
                SystemTime::UNIX_EPOCH + Duration::from_micros(41),
            )
            .unwrap();
        let m = p.to_map();
        assert_eq!(Shown::from_map(&m), Some(Shown::from(&p)));
        assert_eq!(
            Shown::from_map(&m).unwrap().line(),
            "+0.000041 127.0.0.1:50000 → 127.0.0.1:9000 ACK seq 0 ack 1 win 65495 len 2"
        );
        let changed = |key: &str, value: Option<Dynamic>| {
            let mut m = m.clone();
            match value {
                Some(v) => m.insert(key.into(), v),
                None => m.remove(key),
            };
            Shown::from_map(&m)
        };
        assert!(changed("ack", Some(Dynamic::UNIT)).is_some());
        assert!(changed("len", None).is_none());
        assert!(changed("note", Some("x".into())).is_none());
        assert!(changed("src", Some("somewhere".into())).is_none());
        assert!(changed("seq", Some("0".into())).is_none());
        assert!(changed("proto", Some("icmp".into())).is_none());
        // UDP has no TCP fields at all.
        assert!(changed("proto", Some("udp".into())).is_none());
        let mut udp = Vec::new();
        PacketBuilder::ipv4(C, C, 64)
            .udp(5, 6)
            .write(&mut udp, b"abc")
            .unwrap();
        let u = d.decode(&udp, 31, SystemTime::UNIX_EPOCH).unwrap();
        let shown = Shown::from_map(&u.to_map()).unwrap();
        assert_eq!(
            shown.line(),
            "+0.000000 127.0.0.1:5 → 127.0.0.1:6 UDP len 3"
        );
    }

    #[test]
    fn the_first_fragment_of_a_big_datagram_shows_it_whole() {
        use etherparse::{IpFragOffset, Ipv4Header, UdpHeader};
        let udp = UdpHeader {
            source_port: 5,
            destination_port: 6,
            length: 8 + 3000,
            checksum: 0,
        };
        let mut ip = Ipv4Header::new(8 + 1000, 64, IpNumber::UDP, C, C).unwrap();
        ip.more_fragments = true;
        let mut first = Vec::new();
        ip.write(&mut first).unwrap();
        udp.write(&mut first).unwrap();
        first.extend([0u8; 1000]);
        let mut d = Decoder::new(SystemTime::UNIX_EPOCH);
        let p = d
            .decode(&first[..176], first.len() as u32, SystemTime::UNIX_EPOCH)
            .expect("the first fragment is a packet");
        assert_eq!(
            (p.proto_name(), p.len, p.dst.to_string().as_str()),
            ("udp", 3000, "127.0.0.1:6")
        );
        // A later fragment has no UDP header, only data.
        let mut later_ip = Ipv4Header::new(1000, 64, IpNumber::UDP, C, C).unwrap();
        later_ip.fragment_offset = IpFragOffset::try_new(1008 / 8).unwrap();
        let mut later = Vec::new();
        later_ip.write(&mut later).unwrap();
        later.extend([0u8; 1000]);
        assert!(
            d.decode(&later[..176], 1020, SystemTime::UNIX_EPOCH)
                .is_none()
        );
    }
}
