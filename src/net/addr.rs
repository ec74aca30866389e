//! Host, port and `host:port` parsing shared by every capability.
//!
//! Users write addresses as `"host:port"`, `"[v6]:port"`, a bare port
//! (`9000`, meaning every local address), or `(host, port)`. These helpers
//! turn all of them into a checked [`Target`] and then into socket addresses,
//! with messages that say exactly what was wrong.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{Error, Result};

/// A host (name or literal IP) and a port, checked but not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
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

/// A Unix-domain socket: `unix:/path` (or a path relative to the working
/// folder), or `unix:@name` in Linux's abstract namespace (no file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixAddr {
    Path(std::path::PathBuf),
    Abstract(String),
}

impl std::fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnixAddr::Path(path) => write!(f, "unix:{}", path.display()),
            UnixAddr::Abstract(name) => write!(f, "unix:@{name}"),
        }
    }
}

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

/// Parses `"host:port"`, `"[v6]:port"` or a literal socket address.
pub fn parse_target(text: &str) -> Result<Target> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Target {
            host: addr.ip().to_string(),
            port: addr.port(),
        });
    }
    let (host, port_text) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| Error::invalid(format!("'{text}' has '[' without a closing ']'")))?;
        let port_text = after.strip_prefix(':').ok_or_else(|| {
            Error::invalid(format!(
                "'{text}' needs a port after the ']', like [::1]:9000"
            ))
        })?;
        (host, port_text)
    } else {
        match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(Error::invalid(format!(
                    "'{text}' looks like an IPv6 address: write it as [{host}]:PORT"
                )));
            }
            Some(pair) => pair,
            None => {
                return Err(Error::invalid(format!(
                    "'{text}' has no port: write host:port, like 127.0.0.1:9000"
                )));
            }
        }
    };
    if host.is_empty() {
        return Err(Error::invalid(format!(
            "'{text}' has no host before the port"
        )));
    }
    Ok(Target {
        host: host.to_string(),
        port: parse_port_text(port_text, text)?,
    })
}

/// Parses the port part of `whole`.
fn parse_port_text(port_text: &str, whole: &str) -> Result<u16> {
    let number: i64 = port_text
        .parse()
        .map_err(|_| Error::invalid(format!("'{port_text}' in '{whole}' is not a port number")))?;
    port(number)
}

/// A local address to bind: a bare port (`"9000"`), `"host:port"` or `"[v6]:port"`.
/// A bare port binds every IPv4 and IPv6 address where the OS allows it.
pub fn parse_bind(text: &str) -> Result<SocketAddr> {
    let text = text.trim();
    // `9000`, `:9000` and `*:9000` all mean every address.
    let bare = text
        .strip_prefix("*:")
        .or_else(|| text.strip_prefix(':'))
        .unwrap_or(text);
    if let Ok(number) = bare.parse::<i64>() {
        return Ok(any_addr(port(number)?));
    }
    let target = parse_target(text)?;
    let ip = match target.host.as_str() {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        host => host.parse::<IpAddr>().map_err(|_| {
            Error::invalid(format!(
                "'{host}' is not a local IP address to listen on (use 0.0.0.0, ::, 127.0.0.1 or ::1)"
            ))
        })?,
    };
    Ok(SocketAddr::new(ip, target.port))
}

/// `[::]:port`, which on Linux also accepts IPv4 (dual-stack).
pub fn any_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
}

/// Resolves a target to socket addresses through the system resolver
/// (so `/etc/hosts` is honoured), without blocking a runtime thread.
/// IPv4 addresses come first.
pub async fn lookup(target: &Target) -> Result<Vec<SocketAddr>> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    // RFC 6761: resolvers should answer `.invalid` names negatively at once,
    // without asking a DNS server.
    let lower = target.host.trim_end_matches('.').to_ascii_lowercase();
    if lower == "invalid" || lower.ends_with(".invalid") {
        return Err(Error::Resolve {
            host: target.host.clone(),
            reason: "no such host (.invalid names never exist, RFC 6761)".into(),
        });
    }
    let found = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| Error::Resolve {
            host: target.host.clone(),
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
            host: target.host.clone(),
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
mod tests {
    use super::*;

    #[test]
    fn targets_in_every_spelling() {
        let cases = [
            ("127.0.0.1:9000", "127.0.0.1", 9000),
            ("localhost:80", "localhost", 80),
            ("[::1]:9000", "::1", 9000),
            (" example.com:0 ", "example.com", 0),
            ("[fe80::1]:65535", "fe80::1", 65535),
        ];
        for (text, host, port) in cases {
            let t = parse_target(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((t.host.as_str(), t.port), (host, port), "{text}");
        }
    }

    #[test]
    fn bad_targets_say_why() {
        let cases = [
            ("localhost", "has no port"),
            ("localhost:70000", "port 70000 is out of range"),
            ("localhost:-1", "port -1 is out of range"),
            ("::1:80", "write it as [::1]:PORT"),
            ("[::1]80", "needs a port after the ']'"),
            (":80", "no host"),
            ("host:http", "'http' in 'host:http' is not a port number"),
        ];
        for (text, expected) in cases {
            let err = parse_target(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: got '{err}'");
        }
    }

    #[test]
    fn unix_addresses() {
        assert!(parse_unix("127.0.0.1:80").is_none());
        assert_eq!(
            parse_unix("unix:/tmp/a.sock").unwrap().unwrap(),
            UnixAddr::Path("/tmp/a.sock".into())
        );
        assert_eq!(
            parse_unix("unix:@netsh").unwrap().unwrap().to_string(),
            "unix:@netsh"
        );
        let long = format!("unix:/{}", "x".repeat(200));
        for (text, expected) in [
            ("unix:", "names no socket"),
            ("unix:@", "no name after the '@'"),
            ("unix:/a\0b", "NUL"),
            (long.as_str(), "at most 107"),
        ] {
            let err = parse_unix(text).unwrap().unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: got '{err}'");
        }
    }

    #[test]
    fn bind_addresses() {
        assert_eq!(parse_bind("9000").unwrap(), any_addr(9000));
        assert_eq!(parse_bind(":9000").unwrap(), any_addr(9000));
        assert_eq!(parse_bind("*:9000").unwrap(), any_addr(9000));
        assert_eq!(
            parse_bind("127.0.0.1:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(parse_bind("[::1]:5").unwrap().to_string(), "[::1]:5");
        assert!(parse_bind("example.com:80").is_err());
    }
}
