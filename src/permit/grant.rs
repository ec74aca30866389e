//! What a grant holds and how its words read: the values of `--allow-net`,
//! `--allow-read`, `--allow-write`, `--allow-env`, `--allow-capture`, and a
//! plugin's or scenario's `//! permissions:` line, parsed strictly (a rule
//! that does not parse is an error, never a wider or narrower rule).
//!
//! A net rule is an address, a CIDR block, a name or `*.suffix`, with an
//! optional port or port range. A name stands for what it resolved to when
//! the grant was made (`resolve_names`), so a connection is judged by the
//! addresses it goes to, whatever it was spelled; `*.suffix` rules match
//! spelled names only (their addresses cannot be known ahead).

use std::{
    fmt,
    net::{IpAddr, SocketAddr, ToSocketAddrs},
    path::{Component, Path, PathBuf},
};

/// Everything, or only what is listed (an empty list: nothing).
#[derive(Debug, Clone, PartialEq)]
pub enum List<T> {
    All,
    Only(Vec<T>),
}

impl<T> List<T> {
    fn none() -> Self {
        List::Only(Vec::new())
    }

    fn add(&mut self, items: Option<Vec<T>>) {
        match (items, &mut *self) {
            (None, _) => *self = List::All,
            (Some(_), List::All) => {}
            (Some(new), List::Only(old)) => old.extend(new),
        }
    }
}

/// What a host part of a net rule names.
#[derive(Debug, Clone, PartialEq)]
pub enum HostRule {
    Ip(IpAddr),
    Cidr(IpAddr, u8),
    /// A name, lower case, and the addresses it resolved to.
    Name(String, Vec<IpAddr>),
    /// `*.example.test`, kept as `.example.test`.
    Suffix(String),
}

/// One `--allow-net` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NetRule {
    pub host: HostRule,
    /// Inclusive; `None` means every port.
    pub ports: Option<(u16, u16)>,
}

/// What a session, a plugin or a scenario may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub net: List<NetRule>,
    pub read: List<PathBuf>,
    pub write: List<PathBuf>,
    pub env: List<String>,
    pub capture: bool,
}

impl Grant {
    /// Everything: netsh without a permission flag.
    pub fn all() -> Grant {
        Grant {
            net: List::All,
            read: List::All,
            write: List::All,
            env: List::All,
            capture: true,
        }
    }

    /// Nothing: `--sandbox`.
    pub fn none() -> Grant {
        Grant {
            net: List::none(),
            read: List::none(),
            write: List::none(),
            env: List::none(),
            capture: false,
        }
    }

    /// Adds one flag: `kind` is `net`, `read`, `write`, `env` or `capture`,
    /// `value` what follows `=` (none: everything of that kind). Paths are
    /// made absolute against `base` (the starting folder) and resolved.
    pub fn allow(&mut self, kind: &str, value: Option<&str>, base: &Path) -> Result<(), String> {
        let items = |value: &str| -> Vec<String> {
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        match kind {
            "net" => {
                // `$HOSTNAME` is this machine's name, for statements.
                let rules = value
                    .map(|v| {
                        items(v)
                            .iter()
                            .map(|r| match r.strip_prefix("$HOSTNAME") {
                                Some(rest) => parse_net(&format!("{}{rest}", this_host())),
                                None => parse_net(r),
                            })
                            .collect()
                    })
                    .transpose()?;
                self.net.add(rules);
            }
            "read" | "write" => {
                // `$TMP` is the temporary folder (`TMPDIR`, else /tmp),
                // for statements that cannot know it.
                let paths = value.map(|v| {
                    items(v)
                        .iter()
                        .map(|p| match p.strip_prefix("$TMP") {
                            Some(rest) => std::env::temp_dir().join(rest.trim_start_matches('/')),
                            None => base.join(p),
                        })
                        .map(|p| canonical(&p))
                        .collect::<Vec<_>>()
                });
                if kind == "read" {
                    self.read.add(paths)
                } else {
                    self.write.add(paths)
                }
            }
            "env" => {
                let names = value.map(items);
                if let Some(bad) = names.iter().flatten().find(|n| n.contains('=')) {
                    return Err(format!("'{bad}' is not an environment variable name"));
                }
                self.env.add(names)
            }
            "capture" => {
                if value.is_some_and(|v| !v.is_empty()) {
                    return Err("capture takes no value".into());
                }
                self.capture = true;
            }
            other => {
                return Err(format!(
                    "'{other}' is not a permission (net, read, write, env, capture)"
                ));
            }
        }
        Ok(())
    }

    /// A `//! permissions: net=127.0.0.1, read=.` statement: `none`, or
    /// `KIND[=VALUE]` items separated by `,`, each adding one value (`net=a,
    /// net=b` lists two; a bare `net` is every host). Paths are relative to
    /// `base`; `$TMP` is the temporary folder, `$HOSTNAME` this machine.
    pub fn parse_statement(text: &str, base: &Path) -> Result<Grant, String> {
        let mut grant = Grant::none();
        let text = text.trim();
        if text == "none" || text.is_empty() {
            return Ok(grant);
        }
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (kind, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            grant.allow(kind, value, base)?;
        }
        Ok(grant)
    }

    /// Adds everything `other` grants.
    pub fn merge(&mut self, other: Grant) {
        fn join<T>(list: &mut List<T>, other: List<T>) {
            match other {
                List::All => *list = List::All,
                List::Only(items) => list.add(Some(items)),
            }
        }
        join(&mut self.net, other.net);
        join(&mut self.read, other.read);
        join(&mut self.write, other.write);
        join(&mut self.env, other.env);
        self.capture |= other.capture;
    }

    /// Looks every name rule up now, so it stands for those addresses.
    pub fn resolve_names(&mut self) {
        if let List::Only(rules) = &mut self.net {
            for rule in rules {
                if let HostRule::Name(name, addrs) = &mut rule.host
                    && addrs.is_empty()
                {
                    *addrs = lookup(name);
                }
            }
        }
    }

    /// Whether this grant lets a connection to `addr` through (the port
    /// too unless `any_port`), the target having been spelled `spelled`.
    pub fn allows_addr(&self, spelled: &str, addr: SocketAddr, any_port: bool) -> bool {
        let rules = match &self.net {
            List::All => return true,
            List::Only(rules) => rules,
        };
        let ip = canonical_ip(addr.ip());
        rules.iter().any(|rule| {
            (any_port || port_in(rule.ports, addr.port()))
                && match &rule.host {
                    HostRule::Ip(allowed) => *allowed == ip,
                    HostRule::Cidr(net, bits) => in_cidr(ip, *net, *bits),
                    HostRule::Name(_, addrs) => addrs.contains(&ip),
                    HostRule::Suffix(suffix) => suffix_matches(spelled, suffix),
                }
        })
    }

    /// Whether a name (not resolved here: a proxy resolves it) is granted
    /// by its spelling, with this port.
    pub fn allows_name(&self, name: &str, port: u16) -> bool {
        let rules = match &self.net {
            List::All => return true,
            List::Only(rules) => rules,
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        rules.iter().any(|rule| {
            port_in(rule.ports, port)
                && match &rule.host {
                    HostRule::Name(allowed, _) => *allowed == name,
                    HostRule::Suffix(suffix) => suffix_matches(&name, suffix),
                    _ => false,
                }
        })
    }

    /// Whether a rule names `name` (or a `*.suffix` of it), any port.
    pub fn allows_name_any_port(&self, name: &str) -> bool {
        let rules = match &self.net {
            List::All => return true,
            List::Only(rules) => rules,
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        rules.iter().any(|rule| match &rule.host {
            HostRule::Name(allowed, _) => *allowed == name,
            HostRule::Suffix(suffix) => suffix_matches(&name, suffix),
            _ => false,
        })
    }

    /// Whether a name might be granted once resolved: some rule has this
    /// port (the addresses decide later).
    pub fn may_allow_port(&self, port: u16) -> bool {
        match &self.net {
            List::All => true,
            List::Only(rules) => rules.iter().any(|r| port_in(r.ports, port)),
        }
    }

    /// Whether any net rule covers this port, whatever the host (capture).
    pub fn allows_port_anywhere(&self, port: u16) -> bool {
        self.may_allow_port(port)
    }

    /// Whether `path` (canonical) is inside a granted folder or is a
    /// granted file.
    pub fn allows_path(list: &List<PathBuf>, path: &Path) -> bool {
        match list {
            List::All => true,
            List::Only(paths) => paths.iter().any(|p| path.starts_with(p)),
        }
    }

    pub fn allows_env(&self, name: &str) -> bool {
        match &self.env {
            List::All => true,
            List::Only(names) => names.iter().any(|n| n == name),
        }
    }

    /// What both grants allow: a plugin's statement held to the session's.
    /// Only list intersections of simple shape are computed; the session
    /// grant is always checked as well, so this is for showing.
    pub fn is_everything(&self) -> bool {
        *self == Grant::all()
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let mut list = |kind: &str, shown: Option<Vec<String>>| match shown {
            None => parts.push(kind.to_string()),
            Some(items) => parts.extend(items.into_iter().map(|i| format!("{kind}={i}"))),
        };
        list(
            "net",
            match &self.net {
                List::All => None,
                List::Only(r) => Some(r.iter().map(ToString::to_string).collect()),
            },
        );
        for (kind, paths) in [("read", &self.read), ("write", &self.write)] {
            list(
                kind,
                match paths {
                    List::All => None,
                    List::Only(p) => Some(p.iter().map(|p| p.display().to_string()).collect()),
                },
            );
        }
        list(
            "env",
            match &self.env {
                List::All => None,
                List::Only(n) => Some(n.clone()),
            },
        );
        if self.capture {
            parts.push("capture".into());
        }
        if parts.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", parts.join(", "))
        }
    }
}

impl fmt::Display for NetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            HostRule::Ip(IpAddr::V6(ip)) if self.ports.is_some() => format!("[{ip}]"),
            HostRule::Ip(ip) => ip.to_string(),
            HostRule::Cidr(ip, bits) => format!("{ip}/{bits}"),
            HostRule::Name(name, _) => name.clone(),
            HostRule::Suffix(suffix) => format!("*{suffix}"),
        };
        match self.ports {
            None => write!(f, "{host}"),
            Some((a, b)) if a == b => write!(f, "{host}:{a}"),
            Some((a, b)) => write!(f, "{host}:{a}-{b}"),
        }
    }
}

/// One `--allow-net` entry: `127.0.0.1`, `127.0.0.1:8000-8100`,
/// `10.0.0.0/8`, `[::1]:22`, `::1`, `localhost`, `*.example.test`.
pub fn parse_net(text: &str) -> Result<NetRule, String> {
    let bad =
        |why: &str| format!("'{text}' is not a host, address or CIDR block for --allow-net: {why}");
    let (host, ports) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("a '[' without ']'"))?;
        let ports = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("text after ']'"))?),
        };
        let ip: std::net::Ipv6Addr = inside
            .parse()
            .map_err(|_| bad("not an IPv6 address inside [ ]"))?;
        (HostRule::Ip(IpAddr::V6(ip)), ports)
    } else if text.matches(':').count() >= 2 {
        // A bare IPv6 address or block: no port can follow it.
        (host_rule(text).map_err(|w| bad(&w))?, None)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (host_rule(h).map_err(|w| bad(&w))?, Some(p)),
            None => (host_rule(text).map_err(|w| bad(&w))?, None),
        }
    };
    let ports = ports
        .map(|p| parse_ports(p).map_err(|w| bad(&w)))
        .transpose()?;
    Ok(NetRule { host, ports })
}

fn host_rule(text: &str) -> Result<HostRule, String> {
    if let Some((ip, bits)) = text.split_once('/') {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("'{ip}' is not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| *b <= max && !bits.starts_with('+'))
            .ok_or_else(|| format!("'/{bits}' is not a prefix length (0–{max})"))?;
        // `::ffff:10.0.0.0/104` is 10.0.0.0/8: addresses are compared in
        // their IPv4 form, so the block is too (its length less the 96
        // bits of the mapped prefix). A shorter block stays IPv6.
        return Ok(match ip {
            IpAddr::V6(v6) if bits >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => HostRule::Cidr(IpAddr::V4(v4), bits - 96),
                None => HostRule::Cidr(ip, bits),
            },
            _ => HostRule::Cidr(ip, bits),
        });
    }
    // std's parser is strict: no `127.1`, no octal, no hex.
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(HostRule::Ip(canonical_ip(ip)));
    }
    let (suffix, name) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !l.starts_with('-')
    };
    // A last label of digits reads as an address to inet_aton (`127.1`,
    // `0x7f.0.0.1`): never a name.
    let numeric_end = name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()));
    if name.is_empty() || !name.split('.').all(label_ok) || numeric_end {
        return Err(format!("'{text}' is not a host name"));
    }
    Ok(if suffix {
        HostRule::Suffix(format!(".{name}"))
    } else {
        HostRule::Name(name, Vec::new())
    })
}

fn parse_ports(text: &str) -> Result<(u16, u16), String> {
    let one = |p: &str| -> Result<u16, String> {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("'{p}' is not a port"));
        }
        p.parse::<u16>()
            .map_err(|_| format!("port {p} is out of range (0–65535)"))
    };
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (one(a)?, one(b)?),
        None => {
            let p = one(text)?;
            (p, p)
        }
    };
    if a > b {
        return Err(format!("the port range {text} runs backwards"));
    }
    Ok((a, b))
}

fn port_in(ports: Option<(u16, u16)>, port: u16) -> bool {
    ports.is_none_or(|(a, b)| (a..=b).contains(&port))
}

fn suffix_matches(name: &str, suffix: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.ends_with(suffix) && name.len() > suffix.len()
}

/// `::ffff:127.0.0.1` is 127.0.0.1: a mapped address reaches the same host.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// This machine's name, as `hostname()` reports it.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn lookup(name: &str) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = (name, 0)
        .to_socket_addrs()
        .map(|found| found.map(|a| canonical_ip(a.ip())).collect())
        .unwrap_or_default();
    addrs.dedup();
    addrs
}

/// `path` absolute, with symlinks and `..` resolved as far as it exists;
/// the part that does not exist yet is added as written, with `.` and
/// `..` taken out (nothing below a missing folder can be a link).
pub fn canonical(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                match Path::new(part).components().next() {
                    Some(Component::ParentDir) => {
                        out.pop();
                    }
                    Some(Component::CurDir) | None => {}
                    _ => out.push(part),
                }
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => {
                // `..` at the end, or nothing left: resolve the parent.
                match existing.parent() {
                    Some(parent) if existing.ends_with("..") => {
                        rest.push("..".into());
                        existing = parent.to_path_buf();
                    }
                    _ => return path.to_path_buf(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_rules_parse_strictly() {
        for good in [
            "127.0.0.1",
            "127.0.0.1:8000-8100",
            "10.0.0.0/8",
            "[::1]:22",
            "::1",
            "localhost",
            "*.example.test",
            "fe80::/10",
        ] {
            assert!(parse_net(good).is_ok(), "{good}");
        }
        for bad in [
            "127.1",
            "1.2.3",
            "[::1",
            "host:70000",
            "host:9-1",
            "10.0.0.0/33",
            "",
            "*.",
            "a b",
            "0x7f.0.0.1",
        ] {
            assert!(parse_net(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_match_hosts_blocks_and_ranges() {
        let mut g = Grant::none();
        g.allow(
            "net",
            Some("127.0.0.1:8000-8100,10.0.0.0/8,[::1]:22"),
            Path::new("/"),
        )
        .unwrap();
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(g.allows_addr("x", a("127.0.0.1:8050"), false));
        assert!(!g.allows_addr("x", a("127.0.0.1:8101"), false));
        assert!(g.allows_addr("x", a("10.200.0.1:1"), false));
        assert!(!g.allows_addr("x", a("11.0.0.1:1"), false));
        assert!(g.allows_addr("x", a("[::1]:22"), false));
        assert!(!g.allows_addr("x", a("[::1]:23"), false));
        assert!(g.allows_addr("x", a("[::ffff:127.0.0.1]:8000"), false));
    }

    #[test]
    fn a_mapped_block_is_the_ipv4_block_it_names() {
        // `::ffff:10.0.0.0/104` is 10.0.0.0/8 written in IPv6: it must
        // neither panic nor grant every IPv4 address.
        let mut g = Grant::none();
        g.allow("net", Some("::ffff:10.0.0.0/104"), Path::new("/"))
            .unwrap();
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(g.allows_addr("x", a("10.1.2.3:80"), false));
        assert!(!g.allows_addr("x", a("192.0.2.1:80"), false));
        assert!(!g.allows_addr("x", a("[::ffff:192.0.2.1]:80"), false));
        // A block wider than the mapped range stays IPv6.
        let mut wide = Grant::none();
        wide.allow("net", Some("::ffff:0:0/95"), Path::new("/"))
            .unwrap();
        assert!(!wide.allows_addr("x", a("192.0.2.1:80"), false));
    }

    #[test]
    fn dotdot_is_resolved_in_missing_parts() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(canonical(&dir.path().join("a/b/../c")), real.join("a/c"));
        assert_eq!(
            canonical(&dir.path().join("a/../..")),
            real.parent().unwrap()
        );
    }
}
