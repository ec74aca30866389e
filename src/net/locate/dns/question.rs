//! What a `dns()` call asks, checked before anything is sent: the name
//! (strict: letters, digits, `-`, `_`; an IP literal becomes its reverse
//! name for PTR), the record type (a name or a number), and the options
//! (`server`, `tcp`, `tls`, `https`, `timeout`, `recurse`, `dnssec`).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::rr::{Name, RecordType};
use rhai::{Dynamic, Map};

use super::https::Doh;
use crate::error::{Error, Result};
use crate::net::addr;
use crate::net::options::Options;
use crate::net::tls::ClientTls;

/// How long one question waits for its answer unless told (dig waits 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// DNS over TLS's port (RFC 7858), for `tls` without a `server`.
pub const DOT_PORT: u16 = 853;

/// DNS over HTTPS's port and path unless told (RFC 8484's example).
pub const DOH_PORT: u16 = 443;
pub const DOH_PATH: &str = "/dns-query";

/// The options every `dns` and `dns_many` call knows.
pub const KNOWN: &[&str] = &[
    "server", "tcp", "tls", "https", "timeout", "recurse", "dnssec",
];

/// How to ask: which server, over what, how long, which header bits.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: SocketAddr,
    pub tcp: bool,
    /// DNS over TLS (RFC 7858): TCP's framing inside a TLS session.
    pub tls: Option<ClientTls>,
    /// DNS over HTTPS (RFC 8484), with `tls`'s trust settings.
    pub https: Option<Doh>,
    /// `None`: no limit (the one timeout rule's 0).
    pub timeout: Option<Duration>,
    pub recurse: bool,
    pub dnssec: bool,
}

impl Settings {
    /// Reads the options map (`known` names the keys the function takes),
    /// falling back to the first nameserver of /etc/resolv.conf.
    pub fn from_options(map: &Map, known: &[&str]) -> Result<Settings> {
        let options = Options::new(map, known)?;
        let tls = match options.value("tls") {
            Some(value) => ClientTls::from_option(value)?,
            None => None,
        };
        let https_path = match options.value("https") {
            None => None,
            Some(v) => match (v.as_bool(), v.read_lock::<rhai::ImmutableString>()) {
                (Ok(true), _) => Some(DOH_PATH.to_string()),
                (Ok(false), _) => None,
                (_, Some(path)) => Some(path.to_string()),
                _ => return Err(options.wrong("https", "true or a path like \"/dns-query\"", v)),
            },
        };
        let server = match options.text("server")? {
            Some(text) => parse_server(&text)?,
            // The system's server at the protocol's own port, as dig does.
            None if https_path.is_some() => SocketAddr::new(system_server()?.ip(), DOH_PORT),
            None if tls.is_some() => SocketAddr::new(system_server()?.ip(), DOT_PORT),
            None => system_server()?,
        };
        let https = https_path
            .map(|path| Doh::new(server, tls.as_ref(), &path))
            .transpose()?;
        Ok(Settings {
            server,
            tcp: options.flag("tcp", false)?,
            tls,
            https,
            timeout: options.timeout("timeout")?.unwrap_or(Some(DEFAULT_TIMEOUT)),
            recurse: options.flag("recurse", true)?,
            dnssec: options.flag("dnssec", false)?,
        })
    }
}

/// A server is an IP address and a port (`127.0.0.1:5353`, `[::1]:53`):
/// no name (asking DNS where DNS is would be circular) and no implied port.
pub fn parse_server(text: &str) -> Result<SocketAddr> {
    let target =
        addr::parse_target(text).map_err(|e| Error::invalid(format!("option 'server': {e}")))?;
    let ip: IpAddr = target.host.parse().map_err(|_| {
        Error::invalid(format!(
            "option 'server': {:?} is not an IP address (a DNS server is given as IP:PORT, like 127.0.0.1:53)",
            crate::error::printable(&target.host)
        ))
    })?;
    if target.port == 0 {
        return Err(Error::invalid(
            "option 'server': port 0 is not a server's port".to_string(),
        ));
    }
    Ok(SocketAddr::new(ip, target.port))
}

/// The first `nameserver` of /etc/resolv.conf, port 53, as the system's
/// stub resolver would ask.
fn system_server() -> Result<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| Error::io("reading /etc/resolv.conf", None, e))?;
    first_nameserver(&text).ok_or_else(|| {
        Error::NotFound(
            "/etc/resolv.conf names no nameserver: give one as #{server: \"IP:PORT\"}".into(),
        )
    })
}

/// The first usable `nameserver` line (a link-local IPv6 with a `%zone`
/// is skipped: it needs a scope this parser does not keep).
pub fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next())
            .flatten()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// A record type from a script: a name (`"MX"`, `"aaaa"`, `"TYPE65280"`)
/// or a number from 1 to 65535.
pub fn parse_type(value: &Dynamic) -> Result<RecordType> {
    if let Ok(n) = value.as_int() {
        return match u16::try_from(n) {
            Ok(n) if n > 0 => Ok(RecordType::from(n)),
            _ => Err(Error::invalid(format!(
                "record type {n} is out of range (1–65535)"
            ))),
        };
    }
    let Some(text) = value
        .read_lock::<rhai::ImmutableString>()
        .map(|s| s.to_string())
    else {
        return Err(Error::invalid(format!(
            "a record type is a name like \"MX\" or a number, not {}",
            value.type_name()
        )));
    };
    type_from_text(&text)
}

fn type_from_text(text: &str) -> Result<RecordType> {
    let upper = text.to_ascii_uppercase();
    if let Some(number) = upper.strip_prefix("TYPE")
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
    {
        return number
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .map(RecordType::from)
            .ok_or_else(|| {
                Error::invalid(format!("record type {text:?} is out of range (1–65535)"))
            });
    }
    match RecordType::from_str(&upper) {
        Ok(RecordType::Unknown(_)) | Err(_) => Err(Error::invalid(format!(
            "unknown record type {:?} (known: A, AAAA, CNAME, MX, NS, TXT, SOA, SRV, PTR, CAA, …, or a number, or TYPEnnn)",
            crate::error::printable(text)
        ))),
        Ok(t) => Ok(t),
    }
}

/// The name to ask about, as a fully qualified DNS name. An IP literal
/// asked for PTR becomes its reverse name (`4.3.2.1.in-addr.arpa.`,
/// nibbles under `ip6.arpa.`), as `dig -x` builds it.
pub fn parse_name(text: &str, rtype: RecordType) -> Result<Name> {
    if rtype == RecordType::PTR
        && let Ok(ip) = addr::parse_ip(text)
    {
        let mut name = Name::from(ip);
        name.set_fqdn(true);
        return Ok(name);
    }
    check_name(text)?;
    let mut name = Name::from_ascii(text).map_err(|e| {
        Error::invalid(format!(
            "{:?} is not a DNS name: {e}",
            crate::error::printable(text)
        ))
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// The strict shape of a name: dot-separated labels of 1–63 letters,
/// digits, `-` or `_` (`_sip._tcp` for SRV), 253 characters at most, an
/// optional final dot; `.` alone is the root.
fn check_name(text: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(format!(
            "{:?} is not a DNS name: {why}",
            crate::error::printable(text)
        )))
    };
    if text == "." {
        return Ok(());
    }
    let body = text.strip_suffix('.').unwrap_or(text);
    if body.is_empty() {
        return bad("it is empty");
    }
    if body.len() > 253 {
        return bad("it is longer than 253 characters");
    }
    for label in body.split('.') {
        if label.is_empty() {
            return bad("it has an empty label (two dots, or a leading dot)");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return bad(&format!(
                "{:?} is not allowed (letters, digits, '-' and '_' only)",
                c
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_for_ptr() {
        let v4 = parse_name("1.2.3.4", RecordType::PTR).unwrap();
        assert_eq!(v4.to_string(), "4.3.2.1.in-addr.arpa.");
        let v6 = parse_name("2001:db8::1", RecordType::PTR).unwrap();
        assert_eq!(
            v6.to_string(),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
        // Not PTR: the text is a name, as dig takes it.
        assert_eq!(
            parse_name("1.2.3.4", RecordType::A).unwrap().to_string(),
            "1.2.3.4."
        );
    }

    #[test]
    fn names_are_strict() {
        for bad in [
            "",
            "a..b",
            ".a",
            "a b",
            "a/b",
            "ä.example",
            &"x".repeat(64),
            "a.b..",
        ] {
            assert!(parse_name(bad, RecordType::A).is_err(), "{bad:?}");
        }
        for good in ["example.test", "example.test.", "_sip._tcp.x", ".", "a-b.c"] {
            assert!(parse_name(good, RecordType::A).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn types_by_name_or_number() {
        assert_eq!(parse_type(&Dynamic::from("mx")).unwrap(), RecordType::MX);
        assert_eq!(
            parse_type(&Dynamic::from(28_i64)).unwrap(),
            RecordType::AAAA
        );
        assert_eq!(
            parse_type(&Dynamic::from("TYPE65280")).unwrap(),
            RecordType::Unknown(65280)
        );
        assert!(parse_type(&Dynamic::from("NOPE")).is_err());
        assert!(parse_type(&Dynamic::from(0_i64)).is_err());
        assert!(parse_type(&Dynamic::from(65536_i64)).is_err());
    }

    #[test]
    fn servers_need_an_ip_and_a_port() {
        assert_eq!(
            parse_server("127.0.0.1:5353").unwrap().to_string(),
            "127.0.0.1:5353"
        );
        assert!(parse_server("[::1]:53").is_ok());
        for bad in [
            "127.0.0.1",
            "localhost:53",
            "1.2.3:53",
            "127.0.0.1:0",
            "::1:53",
        ] {
            assert!(parse_server(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            first_nameserver("# x\nsearch lan\nnameserver 10.0.0.1\nnameserver ::1\n"),
            Some("10.0.0.1:53".parse().unwrap())
        );
    }
}
