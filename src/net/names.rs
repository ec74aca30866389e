//! Names and addresses (lesson 1.3): what this host is called, which
//! addresses it has, what a name resolves to, and what kind of address an IP is.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use rhai::plugin::*;
use rhai::{Array, Map};

use crate::error::{Error, Result};
use crate::net::addr;
use crate::runtime;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};

    /// The name of this host, as `hostname` prints it.
    ///
    /// ```rhai
    /// print(hostname());
    /// ```
    ///
    /// Fails when: the OS cannot report it (practically never).
    #[rhai_fn(return_raw)]
    pub fn hostname() -> ScriptResult<String> {
        super::hostname().map_err(fail("hostname"))
    }

    /// The local address this machine would use for outbound traffic.
    /// Worked out from the routing table; no packet is sent.
    /// Falls back to the first non-loopback interface address, then 127.0.0.1.
    ///
    /// ```rhai
    /// local_ip()          // "192.168.4.24"
    /// ```
    ///
    /// Fails when: never (with no route, it answers 127.0.0.1).
    #[rhai_fn()]
    pub fn local_ip() -> String {
        super::local_ip().to_string()
    }

    /// The network interfaces: an array of maps `#{name, addresses, up, loopback}`.
    ///
    /// ```rhai
    /// for i in interfaces() { print(`${i.name}: ${i.addresses}`) }
    /// ```
    ///
    /// Fails when: the OS refuses to list interfaces.
    #[rhai_fn(return_raw)]
    pub fn interfaces() -> ScriptResult<Array> {
        super::interfaces().map_err(fail("interfaces"))
    }

    /// Every address a host name resolves to, through the system resolver
    /// (so `/etc/hosts` is honoured). IPv4 addresses come first.
    ///
    /// ```rhai
    /// resolve("localhost")    // ["127.0.0.1", "::1"]
    /// ```
    ///
    /// Fails when: the name does not exist, or DNS cannot be reached.
    #[rhai_fn(return_raw)]
    pub fn resolve(host: &str) -> ScriptResult<Array> {
        super::resolve(host).map_err(fail("resolve"))
    }

    /// The host name an IP address maps back to (reverse DNS, `/etc/hosts`).
    ///
    /// ```rhai
    /// reverse("127.0.0.1")    // "localhost"
    /// ```
    ///
    /// Fails when: the text is not an IP address, or the address has no name.
    #[rhai_fn(return_raw)]
    pub fn reverse(ip: &str) -> ScriptResult<String> {
        super::reverse(ip).map_err(fail("reverse"))
    }

    /// What kind of address an IP is: a map with `version` (4 or 6),
    /// `class` (A–E, IPv4 only), `private`, `loopback`, `link_local`,
    /// `multicast`, `documentation`, `unspecified`, `broadcast`, `global`,
    /// and a one-word `kind`. (`private` is a Rhai keyword: read it as
    /// `info["private"]`.)
    ///
    /// ```rhai
    /// ip_info("192.168.4.24").kind;   // "private"
    /// ip_info("8.8.8.8").class        // "A"
    /// ```
    ///
    /// Fails when: the text is not an IPv4 or IPv6 address.
    #[rhai_fn(return_raw)]
    pub fn ip_info(ip: &str) -> ScriptResult<Map> {
        crate::net::addr::parse_ip(ip)
            .map(|ip| super::classify(ip).into_map())
            .map_err(fail("ip_info"))
    }
}

pub fn hostname() -> Result<String> {
    nix::unistd::gethostname()
        .map_err(|e| Error::io("reading the host name", None, e.into()))
        .map(|name| name.to_string_lossy().into_owned())
}

/// The source address the kernel would pick for a packet to a public address.
/// `connect` on a UDP socket only consults the routing table; nothing is sent.
pub fn local_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?; // TEST-NET-1: never routed anywhere real
        Ok(socket.local_addr()?.ip())
    };
    if let Ok(ip) = probe()
        && !ip.is_unspecified()
    {
        return ip;
    }
    first_interface_address().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn first_interface_address() -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    addrs
        .filter_map(|ifa| ifa.address.and_then(|a| sockaddr_ip(&a)))
        .find(|ip| !ip.is_loopback() && ip.is_ipv4())
}

/// Whether `ip` is this machine's: loopback, or an address of one of its
/// interfaces (traffic to either never leaves the machine).
pub fn is_this_machine(ip: IpAddr) -> bool {
    ip.is_loopback()
        || nix::ifaddrs::getifaddrs().is_ok_and(|mut addrs| {
            addrs.any(|ifa| ifa.address.and_then(|a| sockaddr_ip(&a)) == Some(ip))
        })
}

fn sockaddr_ip(addr: &nix::sys::socket::SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

pub fn interfaces() -> Result<Array> {
    use nix::net::if_::InterfaceFlags;
    let mut by_name: Vec<(String, Array, bool, bool)> = Vec::new();
    let addrs =
        nix::ifaddrs::getifaddrs().map_err(|e| Error::io("listing interfaces", None, e.into()))?;
    for ifa in addrs {
        let index = match by_name.iter().position(|(n, ..)| *n == ifa.interface_name) {
            Some(i) => i,
            None => {
                by_name.push((
                    ifa.interface_name.clone(),
                    Array::new(),
                    ifa.flags.contains(InterfaceFlags::IFF_UP),
                    ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK),
                ));
                by_name.len() - 1
            }
        };
        if let Some(ip) = ifa.address.as_ref().and_then(sockaddr_ip) {
            by_name[index].1.push(ip.to_string().into());
        }
    }
    Ok(by_name
        .into_iter()
        .map(|(name, addresses, up, loopback)| {
            let mut m = Map::new();
            m.insert("name".into(), name.into());
            m.insert("addresses".into(), addresses.into());
            m.insert("up".into(), up.into());
            m.insert("loopback".into(), loopback.into());
            m.into()
        })
        .collect())
}

pub fn resolve(host: &str) -> Result<Array> {
    let target = addr::target(host, 0)?;
    crate::permit::lookup(&target.host)?;
    let addrs = runtime::block_on(async { addr::lookup(&target).await })?;
    Ok(addrs
        .into_iter()
        .map(|a: SocketAddr| a.ip().to_string().into())
        .collect())
}

pub fn reverse(ip: &str) -> Result<String> {
    let ip = addr::parse_ip(ip)?;
    crate::permit::lookup(&ip.to_string())?;
    runtime::block_on(async move {
        tokio::task::spawn_blocking(move || dns_lookup::lookup_addr(&ip))
            .await
            .map_err(|e| Error::invalid(format!("lookup task failed: {e}")))?
            .map_err(|e| Error::NotFound(format!("no name found for {ip} ({e})")))
    })
}

/// The facts `ip_info` reports about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpFacts {
    pub version: u8,
    pub class: Option<char>,
    pub private: bool,
    pub loopback: bool,
    pub link_local: bool,
    pub multicast: bool,
    pub documentation: bool,
    pub unspecified: bool,
    pub broadcast: bool,
    pub global: bool,
    pub kind: &'static str,
}

impl IpFacts {
    fn into_map(self) -> Map {
        let mut m = Map::new();
        m.insert("version".into(), (self.version as i64).into());
        m.insert(
            "class".into(),
            self.class.map_or(Dynamic::UNIT, |c| c.to_string().into()),
        );
        for (key, value) in [
            ("unspecified", self.unspecified),
            ("broadcast", self.broadcast),
            ("private", self.private),
            ("loopback", self.loopback),
            ("link_local", self.link_local),
            ("multicast", self.multicast),
            ("documentation", self.documentation),
            ("global", self.global),
        ] {
            m.insert(key.into(), value.into());
        }
        m.insert("kind".into(), self.kind.into());
        m
    }
}

/// Classifies an address by the IANA special-purpose registries
/// (RFC 1918, 3927, 4193, 5737, 3849, 6598, 4291).
pub fn classify(ip: IpAddr) -> IpFacts {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpFacts {
                version: 6,
                ..classify_v4(v4)
            },
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> IpFacts {
    let [a, b, ..] = ip.octets();
    let class = Some(match a {
        0..=127 => 'A',
        128..=191 => 'B',
        192..=223 => 'C',
        224..=239 => 'D',
        _ => 'E',
    });
    let shared = a == 100 && (64..128).contains(&b); // RFC 6598 carrier-grade NAT
    let facts = IpFacts {
        version: 4,
        class,
        private: ip.is_private(),
        loopback: ip.is_loopback(),
        link_local: ip.is_link_local(),
        multicast: ip.is_multicast(),
        documentation: ip.is_documentation(),
        unspecified: ip.is_unspecified(),
        broadcast: ip.is_broadcast(),
        global: false,
        kind: "",
    };
    let reserved = a >= 240 || a == 0;
    let global = !(facts.private
        || facts.loopback
        || facts.link_local
        || facts.multicast
        || facts.documentation
        || reserved
        || shared);
    let kind = if facts.loopback {
        "loopback"
    } else if facts.unspecified {
        "unspecified"
    } else if facts.broadcast {
        "broadcast"
    } else if facts.private {
        "private"
    } else if facts.link_local {
        "link-local"
    } else if facts.multicast {
        "multicast"
    } else if facts.documentation {
        "documentation"
    } else if shared {
        "shared"
    } else if reserved {
        "reserved"
    } else {
        "global"
    };
    IpFacts {
        global,
        kind,
        ..facts
    }
}

fn classify_v6(ip: Ipv6Addr) -> IpFacts {
    let first = ip.segments()[0];
    let link_local = (first & 0xffc0) == 0xfe80;
    let unique_local = (first & 0xfe00) == 0xfc00;
    let documentation = first == 0x2001 && ip.segments()[1] == 0x0db8;
    let facts = IpFacts {
        version: 6,
        class: None,
        private: unique_local,
        loopback: ip.is_loopback(),
        link_local,
        multicast: ip.is_multicast(),
        documentation,
        unspecified: ip.is_unspecified(),
        broadcast: false,
        global: false,
        kind: "",
    };
    let global = (first & 0xe000) == 0x2000 && !documentation;
    let kind = if facts.loopback {
        "loopback"
    } else if facts.unspecified {
        "unspecified"
    } else if link_local {
        "link-local"
    } else if unique_local {
        "private"
    } else if facts.multicast {
        "multicast"
    } else if documentation {
        "documentation"
    } else if global {
        "global"
    } else {
        "reserved"
    };
    IpFacts {
        global,
        kind,
        ..facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The address table from the lessons, plus the edges of each range.
    #[test]
    fn classifies_a_table_of_addresses() {
        let table = [
            ("127.0.0.1", 4, Some('A'), "loopback"),
            ("192.168.4.24", 4, Some('C'), "private"),
            ("10.1.2.3", 4, Some('A'), "private"),
            ("172.16.0.1", 4, Some('B'), "private"),
            ("172.31.255.255", 4, Some('B'), "private"),
            ("172.32.0.1", 4, Some('B'), "global"),
            ("8.8.8.8", 4, Some('A'), "global"),
            ("1.1.1.1", 4, Some('A'), "global"),
            ("169.254.1.1", 4, Some('B'), "link-local"),
            ("224.0.0.1", 4, Some('D'), "multicast"),
            ("239.255.255.250", 4, Some('D'), "multicast"),
            ("240.0.0.1", 4, Some('E'), "reserved"),
            ("255.255.255.255", 4, Some('E'), "broadcast"),
            ("0.0.0.0", 4, Some('A'), "unspecified"),
            ("192.0.2.7", 4, Some('C'), "documentation"),
            ("198.51.100.1", 4, Some('C'), "documentation"),
            ("203.0.113.9", 4, Some('C'), "documentation"),
            ("100.64.0.1", 4, Some('A'), "shared"),
            ("128.0.0.1", 4, Some('B'), "global"),
            ("191.255.0.1", 4, Some('B'), "global"),
            ("223.255.255.1", 4, Some('C'), "global"),
            ("::1", 6, None, "loopback"),
            ("::", 6, None, "unspecified"),
            ("fe80::1", 6, None, "link-local"),
            ("fd00::1", 6, None, "private"),
            ("ff02::1", 6, None, "multicast"),
            ("2001:db8::1", 6, None, "documentation"),
            ("2606:4700::1111", 6, None, "global"),
            ("::ffff:192.168.1.1", 6, Some('C'), "private"),
        ];
        for (text, version, class, kind) in table {
            let facts = classify(addr::parse_ip(text).unwrap());
            assert_eq!(
                (facts.version, facts.class, facts.kind),
                (version, class, kind),
                "{text}"
            );
            assert_eq!(facts.global, kind == "global", "{text}: global flag");
        }
    }

    #[test]
    fn invalid_ips_say_why() {
        for (text, why) in [
            ("999.1.1.1", "999 is larger than 255"),
            ("010.0.0.1", "leading zeros"),
            ("hello", "not an IPv4 or IPv6"),
            (" 127.0.0.1 ", "white space around it"),
            ("[::1", "without a closing ']'"),
        ] {
            let err = addr::parse_ip(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
