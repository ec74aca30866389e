//! The kernel-side filter of a capture: a classic BPF program, attached to
//! the packet socket, that keeps only the packets a user asked for (port,
//! host, protocol), so a busy machine does not flood the script, and cuts
//! each kept packet to its headers.
//!
//! No crate compiles pcap-style filter expressions without libpcap, and the
//! programs we need are a few dozen instructions of one shape, so they are
//! assembled here. The socket is `SOCK_DGRAM`, so offsets count from the IP
//! header on every link type; the link layer is reached through the kernel's
//! ancillary loads (`SKF_AD_*`). Like tcpdump's `port`, IPv6 extension headers
//! are not walked and IPv4 fragments after the first are dropped (they carry
//! no ports).

use std::net::IpAddr;

use socket2::SockFilter;

use crate::error::{Error, Result};

/// Which packets a capture keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Either end's port.
    pub port: Option<u16>,
    /// Either end's address is one of these (empty: any address).
    pub hosts: Vec<IpAddr>,
    /// TCP or UDP only (`None`: both).
    pub proto: Option<Proto>,
}

/// The transport protocols a capture understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn number(self) -> u32 {
        match self {
            Proto::Tcp => libc::IPPROTO_TCP as u32,
            Proto::Udp => libc::IPPROTO_UDP as u32,
        }
    }
}

/// One classic BPF instruction, readable (socket2's `SockFilter` is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Insn {
    pub fn to_sock_filter(self) -> SockFilter {
        SockFilter::new(self.code, self.jt, self.jf, self.k)
    }
}

// Opcodes, as in <linux/filter.h>.
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
const LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
const LDX_B_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Ancillary loads: facts about the packet the kernel knows, not its bytes.
const AD_PROTOCOL: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
const AD_PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;
const AD_HATYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_HATYPE) as u32;

const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86dd;

/// Where a jump goes: the next instruction, a label, or one of the two ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Next,
    Accept,
    Drop,
    Label(usize),
}

/// A program being written: instructions with symbolic jump targets,
/// resolved to relative offsets by [`Assembler::finish`].
#[derive(Default)]
struct Assembler {
    code: Vec<(u16, Target, Target, u32)>,
    labels: Vec<Option<usize>>,
}

impl Assembler {
    fn op(&mut self, code: u16, k: u32) {
        self.code.push((code, Target::Next, Target::Next, k));
    }

    fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.code.push((code, jt, jf, k));
    }

    fn new_label(&mut self) -> Target {
        self.labels.push(None);
        Target::Label(self.labels.len() - 1)
    }

    fn place(&mut self, label: Target) {
        if let Target::Label(i) = label {
            self.labels[i] = Some(self.code.len());
        }
    }

    /// Resolves jumps. Classic BPF jumps only forward, at most 255
    /// instructions; a program that needs more is refused rather than
    /// given a jump to the wrong place (the programs built here are far
    /// shorter, so this would be a bug in netsh).
    fn finish(self, snaplen: u32) -> Result<Vec<Insn>> {
        let accept = self.code.len();
        let drop = accept + 1;
        let resolve = |at: usize, target: Target| -> Result<u8> {
            let to = match target {
                Target::Next => Some(at + 1),
                Target::Accept => Some(accept),
                Target::Drop => Some(drop),
                Target::Label(i) => self.labels.get(i).copied().flatten(),
            };
            to.and_then(|to| to.checked_sub(at + 1))
                .and_then(|offset| u8::try_from(offset).ok())
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "the packet filter needs a jump it cannot make at instruction {at} (a bug in netsh)"
                    ))
                })
        };
        let mut out: Vec<Insn> = self
            .code
            .iter()
            .enumerate()
            .map(|(at, &(code, jt, jf, k))| {
                Ok(Insn {
                    code,
                    jt: resolve(at, jt)?,
                    jf: resolve(at, jf)?,
                    k,
                })
            })
            .collect::<Result<_>>()?;
        out.push(Insn {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: snaplen,
        });
        out.push(Insn {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: 0,
        });
        Ok(out)
    }
}

/// The most hosts a selector may name (each costs a few instructions, and
/// jumps in classic BPF reach only 255 ahead).
pub const MAX_HOSTS: usize = 8;

/// The program that keeps the packets `selector` wants, each cut to
/// `snaplen` bytes. Loopback shows every packet twice (as it leaves and as
/// it arrives); the leaving copy is dropped so each appears once.
pub fn program(selector: &Selector, snaplen: u32) -> Result<Vec<Insn>> {
    let mut a = Assembler::default();
    let ip = a.new_label();
    let v4 = a.new_label();
    let v6 = a.new_label();

    a.op(LD_W_ABS, AD_HATYPE);
    let lo = a.new_label();
    a.jump(JEQ_K, u32::from(libc::ARPHRD_LOOPBACK), lo, ip);
    a.place(lo);
    a.op(LD_W_ABS, AD_PKTTYPE);
    a.jump(
        JEQ_K,
        u32::from(libc::PACKET_OUTGOING),
        Target::Drop,
        Target::Next,
    );
    a.place(ip);
    a.op(LD_W_ABS, AD_PROTOCOL);
    a.jump(JEQ_K, ETH_P_IP, v4, Target::Next);
    a.jump(JEQ_K, ETH_P_IPV6, v6, Target::Drop);

    // IPv4: protocol at 9, addresses at 12 and 16, ports after the header.
    a.place(v4);
    a.op(LD_B_ABS, 9);
    transport_check(&mut a, selector.proto);
    // Later fragments have no transport header to match.
    a.op(LD_H_ABS, 6);
    a.jump(JSET_K, 0x1fff, Target::Drop, Target::Next);
    let v4_hosts: Vec<[u8; 4]> = selector
        .hosts
        .iter()
        .filter_map(|h| match h {
            IpAddr::V4(v4) => Some(v4.octets()),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(|m| m.octets()),
        })
        .collect();
    if !selector.hosts.is_empty() {
        let host_ok = a.new_label();
        for offset in [12, 16] {
            for host in &v4_hosts {
                a.op(LD_W_ABS, offset);
                a.jump(JEQ_K, u32::from_be_bytes(*host), host_ok, Target::Next);
            }
        }
        a.jump(JEQ_K, 0, Target::Drop, Target::Drop);
        a.place(host_ok);
    }
    match selector.port {
        Some(port) => {
            a.op(LDX_B_MSH, 0);
            a.op(LD_H_IND, 0);
            a.jump(JEQ_K, u32::from(port), Target::Accept, Target::Next);
            a.op(LD_H_IND, 2);
            a.jump(JEQ_K, u32::from(port), Target::Accept, Target::Drop);
        }
        None => a.jump(JEQ_K, 0, Target::Accept, Target::Accept),
    }

    // IPv6: next header at 6, addresses at 8 and 24, ports at 40.
    a.place(v6);
    a.op(LD_B_ABS, 6);
    transport_check(&mut a, selector.proto);
    let v6_hosts: Vec<[u8; 16]> = selector
        .hosts
        .iter()
        .filter_map(|h| match h {
            IpAddr::V6(v6) => Some(v6.octets()),
            IpAddr::V4(_) => None,
        })
        .collect();
    if !selector.hosts.is_empty() {
        let host_ok = a.new_label();
        for offset in [8, 24] {
            for host in &v6_hosts {
                let next_host = a.new_label();
                for (i, word) in host.chunks_exact(4).enumerate() {
                    let word = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
                    a.op(LD_W_ABS, offset + 4 * i as u32);
                    let on_match = if i == 3 { host_ok } else { Target::Next };
                    a.jump(JEQ_K, word, on_match, next_host);
                }
                a.place(next_host);
            }
        }
        a.jump(JEQ_K, 0, Target::Drop, Target::Drop);
        a.place(host_ok);
    }
    match selector.port {
        Some(port) => {
            a.op(LD_H_ABS, 40);
            a.jump(JEQ_K, u32::from(port), Target::Accept, Target::Next);
            a.op(LD_H_ABS, 42);
            a.jump(JEQ_K, u32::from(port), Target::Accept, Target::Drop);
        }
        None => a.jump(JEQ_K, 0, Target::Accept, Target::Accept),
    }
    a.finish(snaplen)
}

/// With the protocol number in A: go on for the wanted transport, drop the rest.
fn transport_check(a: &mut Assembler, proto: Option<Proto>) {
    match proto {
        Some(p) => a.jump(JEQ_K, p.number(), Target::Next, Target::Drop),
        None => {
            let ok = a.new_label();
            a.jump(JEQ_K, Proto::Tcp.number(), ok, Target::Next);
            a.jump(JEQ_K, Proto::Udp.number(), ok, Target::Drop);
            a.place(ok);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// What the kernel knows about a packet besides its bytes.
    struct Meta {
        protocol: u32,
        pkttype: u32,
        hatype: u32,
    }

    /// Runs a program the way the kernel does, for the instructions this
    /// module emits, and returns what it keeps (0 = dropped). An
    /// out-of-bounds load drops the packet, as in the kernel.
    fn run(prog: &[Insn], packet: &[u8], meta: &Meta) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let load = |at: usize, size: usize| -> Option<u32> {
            let bytes = packet.get(at..at + size)?;
            Some(bytes.iter().fold(0, |acc, b| (acc << 8) | u32::from(*b)))
        };
        loop {
            let insn = prog[pc];
            pc += 1;
            match insn.code {
                LD_W_ABS if insn.k >= AD_PROTOCOL => {
                    a = match insn.k {
                        AD_PROTOCOL => meta.protocol,
                        AD_PKTTYPE => meta.pkttype,
                        AD_HATYPE => meta.hatype,
                        other => panic!("unexpected ancillary load {other:#x}"),
                    }
                }
                LD_W_ABS | LD_H_ABS | LD_B_ABS => {
                    let size = match insn.code {
                        LD_W_ABS => 4,
                        LD_H_ABS => 2,
                        _ => 1,
                    };
                    match load(insn.k as usize, size) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                LD_H_IND => match load((x + insn.k) as usize, 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LDX_B_MSH => match load(insn.k as usize, 1) {
                    Some(v) => x = (v & 0xf) * 4,
                    None => return 0,
                },
                JEQ_K | JSET_K => {
                    let hit = if insn.code == JEQ_K {
                        a == insn.k
                    } else {
                        a & insn.k != 0
                    };
                    pc += usize::from(if hit { insn.jt } else { insn.jf });
                }
                RET_K => return insn.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    const HOST_IN: Meta = Meta {
        protocol: ETH_P_IP,
        pkttype: libc::PACKET_HOST as u32,
        hatype: libc::ARPHRD_LOOPBACK as u32,
    };

    fn tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(src, dst, 64)
            .tcp(sport, dport, 1000, 65535)
            .syn()
            .write(&mut out, &[])
            .unwrap();
        out
    }

    fn udp6(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv6(src, dst, 64)
            .udp(sport, dport)
            .write(&mut out, b"hi")
            .unwrap();
        out
    }

    fn v6meta() -> Meta {
        Meta {
            protocol: ETH_P_IPV6,
            ..HOST_IN
        }
    }

    const LOOP6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    #[test]
    fn port_matches_either_end_and_nothing_else() {
        let prog = program(
            &Selector {
                port: Some(9000),
                ..Selector::default()
            },
            160,
        )
        .unwrap();
        let lo = [127, 0, 0, 1];
        assert_eq!(run(&prog, &tcp4(lo, 50000, lo, 9000), &HOST_IN), 160);
        assert_eq!(run(&prog, &tcp4(lo, 9000, lo, 50000), &HOST_IN), 160);
        assert_eq!(run(&prog, &tcp4(lo, 50000, lo, 9001), &HOST_IN), 0);
        assert_eq!(run(&prog, &udp6(LOOP6, 9000, LOOP6, 1), &v6meta()), 160);
        assert_eq!(run(&prog, &udp6(LOOP6, 8999, LOOP6, 1), &v6meta()), 0);
    }

    #[test]
    fn loopback_keeps_one_copy_other_links_keep_outgoing() {
        let prog = program(&Selector::default(), 96).unwrap();
        let packet = tcp4([127, 0, 0, 1], 1, [127, 0, 0, 1], 2);
        let out_lo = Meta {
            pkttype: libc::PACKET_OUTGOING as u32,
            ..HOST_IN
        };
        assert_eq!(run(&prog, &packet, &out_lo), 0);
        assert_eq!(run(&prog, &packet, &HOST_IN), 96);
        let out_eth = Meta {
            hatype: 1,
            ..out_lo
        };
        assert_eq!(run(&prog, &packet, &out_eth), 96);
    }

    #[test]
    fn proto_and_host_narrow_it_down() {
        let tcp_only = program(
            &Selector {
                proto: Some(Proto::Tcp),
                ..Selector::default()
            },
            96,
        )
        .unwrap();
        assert_eq!(run(&tcp_only, &udp6(LOOP6, 1, LOOP6, 2), &v6meta()), 0);
        let a = [127, 0, 0, 1];
        let b = [127, 0, 0, 2];
        assert_eq!(run(&tcp_only, &tcp4(a, 1, b, 2), &HOST_IN), 96);

        let host_b = program(
            &Selector {
                hosts: vec!["127.0.0.2".parse().unwrap(), "::1".parse().unwrap()],
                ..Selector::default()
            },
            96,
        )
        .unwrap();
        assert_eq!(run(&host_b, &tcp4(a, 1, b, 2), &HOST_IN), 96);
        assert_eq!(run(&host_b, &tcp4(b, 1, a, 2), &HOST_IN), 96);
        assert_eq!(run(&host_b, &tcp4(a, 1, a, 2), &HOST_IN), 0);
        assert_eq!(run(&host_b, &udp6(LOOP6, 1, LOOP6, 2), &v6meta()), 96);
        let mut other6 = LOOP6;
        other6[15] = 2;
        assert_eq!(run(&host_b, &udp6(other6, 1, other6, 2), &v6meta()), 0);
        // Differs from ::1 only in the first word: every word is compared.
        let mut far6 = LOOP6;
        far6[0] = 0x20;
        assert_eq!(run(&host_b, &udp6(far6, 1, far6, 2), &v6meta()), 0);
    }

    #[test]
    fn later_fragments_and_other_protocols_are_dropped() {
        let prog = program(
            &Selector {
                port: Some(9000),
                ..Selector::default()
            },
            96,
        )
        .unwrap();
        let mut fragment = tcp4([127, 0, 0, 1], 1, [127, 0, 0, 1], 9000);
        fragment[7] = 0x10; // fragment offset 16 (× 8 bytes)
        assert_eq!(run(&prog, &fragment, &HOST_IN), 0);
        let arp = Meta {
            protocol: 0x0806,
            ..HOST_IN
        };
        assert_eq!(run(&prog, &[0; 40], &arp), 0);
    }

    #[test]
    fn the_largest_program_still_reaches_its_ends() {
        let hosts: Vec<IpAddr> = (0..MAX_HOSTS)
            .map(|i| format!("2001:db8::{i}").parse().unwrap())
            .collect();
        let prog = program(
            &Selector {
                port: Some(1),
                hosts,
                proto: None,
            },
            96,
        )
        .unwrap();
        for (at, insn) in prog.iter().enumerate() {
            if insn.code == JEQ_K || insn.code == JSET_K {
                assert!(at + 1 + usize::from(insn.jt.max(insn.jf)) < prog.len());
                assert!(
                    insn.jt < u8::MAX && insn.jf < u8::MAX,
                    "jump too far at {at}"
                );
            }
        }
    }

    #[test]
    fn a_jump_out_of_reach_is_an_error_not_a_wrong_jump() {
        let mut a = Assembler::default();
        let far = a.new_label();
        a.jump(JEQ_K, 0, far, Target::Next);
        for _ in 0..300 {
            a.op(LD_B_ABS, 0);
        }
        a.place(far);
        assert!(a.finish(96).is_err());
        let mut a = Assembler::default();
        let never = a.new_label();
        a.jump(JEQ_K, 0, never, Target::Next);
        assert!(a.finish(96).is_err(), "a label never placed");
    }
}
