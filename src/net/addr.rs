//! Host, port and `host:port` parsing shared by every capability: the one
//! strict parser every function that takes an address goes through.
//!
//! Users write addresses as `"host:port"`, `"[v6]:port"`, a bare port
//! (`9000`, meaning every local address), or `(host, port)`. These helpers
//! turn all of them into a checked [`Target`] and then into socket addresses,
//! with messages that say exactly what was wrong.
//!
//! Strict means nothing is silently reinterpreted, because a reinterpreted
//! address sends packets to a host nobody named:
//!
//! - IPv4 is the canonical dotted quad only. The C resolver would take
//!   `1.2.3` as 1.2.0.3, `127.1` as 127.0.0.1, `0x7f.1` in hex and
//!   `010.0.0.1` in octal (inet_aton's shorthand); here a host whose last
//!   label is a number must be a dotted quad, and is refused otherwise. No
//!   top-level domain is numeric (RFC 3696 §2), so no real name is lost.
//! - Brackets are balanced and hold an IPv6 address: `[::1` is an error.
//! - Nothing is trimmed, anywhere: `" 127.0.0.1"` is an error that says so,
//!   rather than a guess at what was meant.
//! - A host given apart from its port must not carry one:
//!   `connect("127.0.0.1:9", 5)` says so instead of failing to resolve.
//!
//! [`lookup`], the only way from a [`Target`] to the resolver, checks the
//! host again, so no path can send anything for a host that does not parse.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{Error, Result};

/// A host (name or literal IP) and a port, checked but not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A checked host: an IP address in its canonical form, or a host name
    /// as written.
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A host as a user wrote it, checked: an IP literal or a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// A Unix-domain socket: `unix:/path` (or a path relative to the working
/// folder), or `unix:@name` in Linux's abstract namespace (no file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixAddr {
    Path(std::path::PathBuf),
    Abstract(String),
}

impl UnixAddr {
    /// A socket file is written to (connecting or binding, as Deno has
    /// it); an abstract name reaches any local service, so it needs the
    /// whole network granted.
    pub fn permitted(&self) -> Result<()> {
        match self {
            UnixAddr::Path(path) => crate::permit::write(path),
            UnixAddr::Abstract(_) => crate::permit::whole_net(&self.to_string()),
        }
    }
}

impl std::fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnixAddr::Path(path) => write!(f, "unix:{}", path.display()),
            UnixAddr::Abstract(name) => write!(f, "unix:@{name}"),
        }
    }
}

/// The longest host name DNS can carry (RFC 1035), without a trailing dot.
const MAX_NAME: usize = 253;
/// The longest label of a host name (RFC 1035).
const MAX_LABEL: usize = 63;

impl UnixAddr {
    /// The socket address to bind or connect (an abstract name starts with
    /// a NUL byte there).
    pub fn sockaddr(&self) -> Result<socket2::SockAddr> {
        let raw = match self {
            UnixAddr::Path(path) => path.clone(),
            UnixAddr::Abstract(name) => format!("\0{name}").into(),
        };
        socket2::SockAddr::unix(raw)
            .map_err(|_| Error::invalid(format!("'{self}' is too long for a socket address")))
    }
}

/// The longest `sun_path` Linux takes: 108 bytes with the path's final NUL.
const MAX_UNIX_PATH: usize = 107;

/// `Some` when `text` names a Unix-domain socket (it starts with `unix:`),
/// checked; `None` when it does not, so it is a host and port.
pub fn parse_unix(text: &str) -> Option<Result<UnixAddr>> {
    let rest = text.strip_prefix("unix:")?;
    let checked = if rest.is_empty() {
        Err(Error::invalid(format!(
            "'{text}' names no socket: write unix:/path/to.sock (or unix:@name for an abstract one)"
        )))
    } else if rest.contains('\0') {
        Err(Error::invalid(format!(
            "'{}' contains a NUL byte",
            text.escape_debug()
        )))
    } else if rest.len() > MAX_UNIX_PATH {
        Err(Error::invalid(format!(
            "'{text}' is {} bytes long; a Unix socket's name may have at most {MAX_UNIX_PATH}",
            rest.len()
        )))
    } else if let Some(name) = rest.strip_prefix('@') {
        if name.is_empty() {
            Err(Error::invalid(format!(
                "'{text}' has no name after the '@'"
            )))
        } else {
            Ok(UnixAddr::Abstract(name.to_string()))
        }
    } else {
        Ok(UnixAddr::Path(rest.into()))
    };
    Some(checked)
}

/// Checks that a Rhai integer is a port number (0–65535).
pub fn port(value: i64) -> Result<u16> {
    u16::try_from(value)
        .map_err(|_| Error::invalid(format!("port {value} is out of range (0–65535)")))
}

/// A host and a port given apart, as in `connect(host, port)`; the host may
/// be an IPv6 address in brackets, and must not carry a port of its own.
pub fn target(host: &str, port_number: i64) -> Result<Target> {
    let port = port(port_number)?;
    Ok(Target {
        host: parse_host(host)?.to_string(),
        port,
    })
}

/// Refuses text with spaces, tabs or newlines around it: nothing is trimmed.
fn untrimmed(text: &str) -> Result<()> {
    if text.trim() != text {
        return Err(Error::invalid(format!(
            "{text:?} has white space around it; addresses are taken exactly as written (trim it first)"
        )));
    }
    Ok(())
}

/// Parses a host on its own: `"example.com"`, `"127.0.0.1"`, `"::1"` or
/// `"[::1]"`.
pub fn parse_host(text: &str) -> Result<Host> {
    untrimmed(text)?;
    if text.is_empty() {
        return Err(Error::invalid("the host is empty"));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(Error::invalid(format!(
                "{text:?} has '[' without a closing ']'"
            )));
        };
        let port_after = after.strip_prefix(':').unwrap_or("");
        if !port_after.is_empty() && port_after.bytes().all(|b| b.is_ascii_digit()) {
            return Err(carries_a_port(text, &format!("[{inside}]")));
        }
        if !after.is_empty() {
            return Err(Error::invalid(format!(
                "{text:?} has {after:?} after the ']'"
            )));
        }
        return match inside.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(Host::Ip(IpAddr::V6(ip))),
            Err(_) => Err(Error::invalid(format!(
                "{text:?}: brackets hold an IPv6 address, and {inside:?} is not one"
            ))),
        };
    }
    if text.contains(']') {
        return Err(Error::invalid(format!(
            "{text:?} has ']' without an opening '['"
        )));
    }
    if text.contains(':') {
        if let Ok(ip) = text.parse::<Ipv6Addr>() {
            return Ok(Host::Ip(IpAddr::V6(ip)));
        }
        if let Some((host, port_text)) = text.rsplit_once(':')
            && !host.contains(':')
            && parse_host(host).is_ok()
            && !port_text.is_empty()
            && port_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(carries_a_port(text, host));
        }
        if text.contains('%') {
            return Err(Error::invalid(format!(
                "{text:?}: IPv6 zone indexes (%eth0) are not supported"
            )));
        }
        return Err(Error::invalid(format!(
            "{text:?} is neither an IPv6 address nor a host name"
        )));
    }
    if looks_like_ipv4(text) {
        return parse_ipv4(text).map(|ip| Host::Ip(IpAddr::V4(ip)));
    }
    check_name(text)?;
    Ok(Host::Name(text.to_string()))
}

fn carries_a_port(text: &str, host: &str) -> Error {
    Error::invalid(format!(
        "the host {text:?} already carries a port; give the host alone ({host:?}) with the port apart, or the whole \"host:port\" on its own"
    ))
}

/// Would the C resolver read this as an IPv4 address? It does whenever the
/// last label is a number (decimal, octal or hex), which no real top-level
/// domain is.
fn looks_like_ipv4(text: &str) -> bool {
    let last = text.rsplit('.').find(|l| !l.is_empty()).unwrap_or("");
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    hex || (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
}

/// A canonical dotted quad, or the reason the text is not one.
fn parse_ipv4(text: &str) -> Result<Ipv4Addr> {
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Ok(ip);
    }
    let not = |why: String| Error::invalid(format!("{text:?} is not an IPv4 address: {why}"));
    if text.ends_with('.') {
        return Err(not("it ends with a dot".into()));
    }
    let parts: Vec<&str> = text.split('.').collect();
    if let Some(part) = parts
        .iter()
        .find(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(not(format!(
            "{part:?} is not a decimal number from 0 to 255"
        )));
    }
    if parts.len() != 4 {
        let parts = match parts.len() {
            1 => "1 part".to_string(),
            n => format!("{n} parts"),
        };
        return Err(not(format!(
            "it has {parts}, not 4 (shorthand like 127.1 is not accepted)"
        )));
    }
    if let Some(big) = parts
        .iter()
        .find(|p| p.parse::<u64>().map_or(true, |n| n > 255))
    {
        return Err(not(format!("{big} is larger than 255")));
    }
    // Like inet_pton, refuse leading zeros: 010 could mean octal 8.
    Err(not("leading zeros are ambiguous (octal?)".into()))
}

/// Checks a host name: labels of letters, digits, `-` and `_`, each 1–63
/// bytes, 253 in all, with at most one final dot. A label neither starts
/// nor ends with `-` (RFC 952/1123; it would also read as a command-line
/// option to tools a name is passed on to) and holds at least one letter
/// or digit (`_` alone is no name).
fn check_name(text: &str) -> Result<()> {
    let bare = text.strip_suffix('.').unwrap_or(text);
    if let Some(c) = bare.chars().find(|c| !c.is_ascii()) {
        return Err(Error::invalid(format!(
            "{text:?} contains {c:?}; write an international name in its xn-- (punycode) form"
        )));
    }
    if let Some(c) = bare
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(Error::invalid(format!(
            "{text:?} contains {c:?}, which a host name cannot"
        )));
    }
    if bare.len() > MAX_NAME {
        return Err(Error::invalid(format!(
            "the host name is {} bytes long; at most {MAX_NAME} are allowed",
            bare.len()
        )));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(Error::invalid(format!("{text:?} has an empty label (..)")));
        }
        if label.len() > MAX_LABEL {
            return Err(Error::invalid(format!(
                "{text:?} has a label of {} bytes; at most {MAX_LABEL} are allowed",
                label.len()
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(Error::invalid(format!(
                "{text:?} is not a host name: the label {label:?} starts or ends with '-'"
            )));
        }
        if !label.bytes().any(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::invalid(format!(
                "{text:?} is not a host name: the label {label:?} has no letter or digit"
            )));
        }
    }
    Ok(())
}

/// Parses an IP address, `"127.0.0.1"`, `"::1"` or `"[::1]"`, explaining
/// what is wrong with text that is not one.
pub fn parse_ip(text: &str) -> Result<IpAddr> {
    untrimmed(text)?;
    let not_an_ip = || Error::invalid(format!("{text:?} is not an IPv4 or IPv6 address"));
    if text.contains([':', '[', ']']) {
        return match parse_host(text)? {
            Host::Ip(ip) => Ok(ip),
            Host::Name(_) => Err(not_an_ip()),
        };
    }
    if looks_like_ipv4(text) {
        return parse_ipv4(text).map(IpAddr::V4);
    }
    Err(not_an_ip())
}

/// Parses `"host:port"` or `"[v6]:port"`.
pub fn parse_target(text: &str) -> Result<Target> {
    untrimmed(text)?;
    let (host, port_text) = if text.starts_with('[') {
        let Some(close) = text.find(']') else {
            return Err(Error::invalid(format!(
                "{text:?} has '[' without a closing ']'"
            )));
        };
        let port_text = text[close + 1..].strip_prefix(':').ok_or_else(|| {
            Error::invalid(format!(
                "{text:?} needs a port after the ']', like [::1]:9000"
            ))
        })?;
        (&text[..=close], port_text)
    } else if text.contains(']') {
        return Err(Error::invalid(format!(
            "{text:?} has ']' without an opening '['"
        )));
    } else {
        match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(Error::invalid(format!(
                    "{text:?} looks like an IPv6 address: write it as [{}]:PORT",
                    crate::error::printable(host)
                )));
            }
            Some(pair) => pair,
            None => {
                return Err(Error::invalid(format!(
                    "{text:?} has no port: write host:port, like 127.0.0.1:9000"
                )));
            }
        }
    };
    if host.is_empty() {
        return Err(Error::invalid(format!(
            "{text:?} has no host before the port"
        )));
    }
    let port = parse_port_text(port_text, text)?;
    Ok(Target {
        host: parse_host(host)?.to_string(),
        port,
    })
}

/// Parses the port part of `whole`: decimal digits, perhaps a minus sign
/// (so `-1` is called out of range rather than not a number). Leading
/// zeros are read as decimal, as nc and getaddrinfo read them (`:080` is
/// port 80); `-0` is not a port.
fn parse_port_text(port_text: &str, whole: &str) -> Result<u16> {
    if port_text.is_empty() {
        return Err(Error::invalid(format!(
            "{whole:?} has no port after the ':'"
        )));
    }
    let digits = port_text.strip_prefix('-').unwrap_or(port_text);
    let negative_zero = digits.len() < port_text.len() && digits.bytes().all(|b| b == b'0');
    if digits.is_empty() || negative_zero || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(format!(
            "{port_text:?} in {whole:?} is not a port number"
        )));
    }
    match port_text.parse::<i64>() {
        Ok(n) => port(n),
        Err(_) => Err(Error::invalid(format!(
            "port {port_text} is out of range (0–65535)"
        ))),
    }
}

/// A local address to bind: a bare port (`"9000"`), `"host:port"` or `"[v6]:port"`.
/// A bare port binds every IPv4 and IPv6 address where the OS allows it.
pub fn parse_bind(text: &str) -> Result<SocketAddr> {
    untrimmed(text)?;
    // `9000`, `:9000` and `*:9000` all mean every address.
    let bare = text
        .strip_prefix("*:")
        .or_else(|| text.strip_prefix(':'))
        .unwrap_or(text);
    if !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Ok(any_addr(parse_port_text(bare, text)?));
    }
    let target = parse_target(text)?;
    let ip = match target.host.as_str() {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        host => host.parse::<IpAddr>().map_err(|_| {
            Error::invalid(format!(
                "{host:?} is not a local IP address to listen on (use 0.0.0.0, ::, 127.0.0.1 or ::1)"
            ))
        })?,
    };
    Ok(SocketAddr::new(ip, target.port))
}

/// `[::]:port`, which on Linux also accepts IPv4 (dual-stack).
pub fn any_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
}

/// Refuses port 0 as a destination (`connect`, `send_file`, `udp_send`,
/// `send_to`, `scan`): it means "any free port" only when binding, and the
/// kernel answers a send to it with a bare EINVAL, or a remote host with
/// whatever it makes of a SYN to port 0.
pub fn destination(target: &Target) -> Result<()> {
    if target.port == 0 {
        return Err(Error::invalid(format!(
            "{target}: port 0 cannot be sent to (0 means \"any free port\" only when binding)"
        )));
    }
    Ok(())
}

/// Resolves a target this process is about to send to or connect to, held
/// to the permissions (`crate::permit`): the spelling before the resolver
/// is asked; of what it answered, the granted addresses only. Every capability that
/// reaches a host goes through here (or checks a bound address with
/// `permit::bind`).
pub async fn reach(target: &Target) -> Result<Vec<SocketAddr>> {
    crate::permit::net(&target.host, target.port)?;
    let addrs = lookup(target).await?;
    if matches!(parse_host(&target.host), Ok(Host::Ip(_))) {
        // An address was decided whole by its spelling.
        return Ok(addrs);
    }
    // Only the granted ones are tried: a name that also resolves outside
    // the grant still reaches its granted addresses, never the others.
    crate::permit::granted_addrs(&target.host, addrs)
}

/// Resolves a target to socket addresses through the system resolver
/// (so `/etc/hosts` is honoured), without blocking a runtime thread.
/// IPv4 addresses come first.
pub async fn lookup(target: &Target) -> Result<Vec<SocketAddr>> {
    // Checked again here, where names reach the resolver, so no caller can
    // hand it a host the strict parser would refuse.
    let host = match parse_host(&target.host)? {
        Host::Ip(ip) => return Ok(vec![SocketAddr::new(ip, target.port)]),
        Host::Name(name) => name,
    };
    // RFC 6761: resolvers should answer `.invalid` names negatively at once,
    // without asking a DNS server.
    let lower = host.trim_end_matches('.').to_ascii_lowercase();
    if lower == "invalid" || lower.ends_with(".invalid") {
        return Err(Error::Resolve {
            host,
            reason: "no such host (.invalid names never exist, RFC 6761)".into(),
        });
    }
    let found = tokio::net::lookup_host((host.as_str(), target.port))
        .await
        .map_err(|e| Error::Resolve {
            host: host.clone(),
            reason: resolver_reason(&e),
        })?;
    // getaddrinfo lists an address once per socket type; keep each once,
    // IPv4 first, as most services listen there.
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    addrs.sort_by_key(|a| a.is_ipv6());
    if addrs.is_empty() {
        return Err(Error::Resolve {
            host,
            reason: "the name has no addresses".into(),
        });
    }
    Ok(addrs)
}

/// The resolver's complaint in plain words.
fn resolver_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    if text.contains("Name or service not known") || text.contains("No address associated") {
        "no such host".to_string()
    } else if text.contains("Temporary failure") {
        "the DNS server could not be reached (temporary failure in name resolution)".to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests;
