//! Ports (lesson 1.4): which range a port is in and which service usually
//! lives there — for TCP and UDP separately, because TCP 80 and UDP 80 are
//! different ports that merely share a number.
//!
//! Names come from the system services database (`/etc/services`), with a
//! built-in table for machines that lack it.

use std::{collections::HashMap, sync::OnceLock};

use rhai::Map;
use rhai::plugin::*;

use crate::error::{Error, Result};
use crate::net::addr;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};

    /// What a port number means: a map with `port`, `range`
    /// (`"well-known"` 0–1023, `"registered"` 1024–49151, `"dynamic"` 49152–65535),
    /// and the usual service on it for `tcp` and for `udp` (or `()` if none).
    ///
    /// ```rhai
    /// port_info(80);      // #{port: 80, range: "well-known", tcp: "http", udp: "http"}
    /// port_info(5432).tcp // "postgresql"
    /// ```
    ///
    /// Fails when: the number is outside 0–65535.
    #[rhai_fn(return_raw)]
    pub fn port_info(port: i64) -> ScriptResult<Map> {
        let port = addr::port(port).map_err(fail("port_info"))?;
        Ok(super::info(port))
    }

    /// The port number of a service name (`"ssh"` → 22), TCP unless
    /// `proto` says `"udp"`.
    ///
    /// ```rhai
    /// service_port("https")   // 443
    /// ```
    ///
    /// Fails when: the name is unknown.
    #[rhai_fn(return_raw, name = "service_port")]
    pub fn service_port(name: &str) -> ScriptResult<i64> {
        super::lookup_service(name, "tcp").map_err(fail("service_port"))
    }

    /// The port number of a service name for a protocol (`"tcp"` or `"udp"`).
    ///
    /// ```rhai
    /// service_port("domain", "udp")   // 53
    /// ```
    ///
    /// Fails when: the name is unknown, or `proto` is neither "tcp" nor "udp".
    #[rhai_fn(return_raw, name = "service_port")]
    pub fn service_port_proto(name: &str, proto: &str) -> ScriptResult<i64> {
        super::lookup_service(name, proto).map_err(fail("service_port"))
    }
}

/// The port of a named service, or an error that says what is unknown.
fn lookup_service(name: &str, proto: &str) -> Result<i64> {
    let proto = proto.to_ascii_lowercase();
    if proto != "tcp" && proto != "udp" {
        return Err(Error::invalid(format!(
            "protocol must be \"tcp\" or \"udp\", not \"{proto}\""
        )));
    }
    port_of(name, &proto).map(i64::from).ok_or_else(|| {
        Error::NotFound(format!(
            "no {} service named '{name}'",
            proto.to_uppercase()
        ))
    })
}

/// Which of IANA's three ranges a port is in.
pub fn range(port: u16) -> &'static str {
    match port {
        0..=1023 => "well-known",
        1024..=49151 => "registered",
        _ => "dynamic",
    }
}

/// The `port_info` map for one port.
pub fn info(port: u16) -> Map {
    let mut m = Map::new();
    m.insert("port".into(), (port as i64).into());
    m.insert("range".into(), range(port).into());
    for proto in ["tcp", "udp"] {
        let name = service_name(port, proto).map_or(Dynamic::UNIT, Dynamic::from);
        m.insert(proto.into(), name);
    }
    m
}

/// The service usually found on `port`/`proto`, if any.
pub fn service_name(port: u16, proto: &str) -> Option<String> {
    services().by_port.get(&(port, proto.to_string())).cloned()
}

/// The port of a service name (or alias) for `proto`.
pub fn port_of(name: &str, proto: &str) -> Option<u16> {
    services()
        .by_name
        .get(&(name.to_ascii_lowercase(), proto.to_string()))
        .copied()
}

#[derive(Default)]
struct Services {
    by_port: HashMap<(u16, String), String>,
    by_name: HashMap<(String, String), u16>,
}

/// Services every user of the lessons expects, whatever the system file says.
/// Where the system database has a name for the port, that name wins.
const FALLBACK: &[(u16, &str, &str)] = &[
    (20, "ftp-data", "tcp"),
    (21, "ftp", "tcp"),
    (22, "ssh", "tcp"),
    (23, "telnet", "tcp"),
    (25, "smtp", "tcp"),
    (53, "domain", "tcp"),
    (53, "domain", "udp"),
    (67, "bootps", "udp"),
    (68, "bootpc", "udp"),
    (69, "tftp", "udp"),
    (80, "http", "tcp"),
    (80, "http", "udp"),
    (110, "pop3", "tcp"),
    (123, "ntp", "udp"),
    (143, "imap2", "tcp"),
    (161, "snmp", "udp"),
    (443, "https", "tcp"),
    (443, "https", "udp"),
    (445, "microsoft-ds", "tcp"),
    (465, "submissions", "tcp"),
    (587, "submission", "tcp"),
    (993, "imaps", "tcp"),
    (995, "pop3s", "tcp"),
    (1433, "ms-sql-s", "tcp"),
    (1521, "oracle", "tcp"),
    (3306, "mysql", "tcp"),
    (3389, "ms-wbt-server", "tcp"),
    (5432, "postgresql", "tcp"),
    (5900, "vnc", "tcp"),
    (6379, "redis", "tcp"),
    (8080, "http-alt", "tcp"),
    (27017, "mongodb", "tcp"),
];

/// Extra names for the fallback ports, so `service_port("dns")` works too.
const ALIASES: &[(&str, &str)] = &[
    ("dns", "domain"),
    ("postgres", "postgresql"),
    ("tomcat", "http-alt"),
    ("rdp", "ms-wbt-server"),
    ("imap", "imap2"),
];

fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let mut db = Services::default();
        if let Ok(text) = std::fs::read_to_string("/etc/services") {
            parse_services(&text, &mut db);
        }
        for &(port, name, proto) in FALLBACK {
            db.by_port
                .entry((port, proto.into()))
                .or_insert_with(|| name.into());
            db.by_name
                .entry((name.into(), proto.into()))
                .or_insert(port);
        }
        for &(alias, name) in ALIASES {
            for proto in ["tcp", "udp"] {
                if let Some(&port) = db.by_name.get(&(name.to_string(), proto.to_string())) {
                    db.by_name
                        .entry((alias.into(), proto.into()))
                        .or_insert(port);
                }
            }
        }
        db
    })
}

/// Reads lines like `http  80/tcp  www  # WorldWideWeb HTTP`.
fn parse_services(text: &str, db: &mut Services) {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let (Some(name), Some(port_proto)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((port, proto)) = port_proto.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let proto = proto.to_ascii_lowercase();
        db.by_port
            .entry((port, proto.clone()))
            .or_insert_with(|| name.to_string());
        for alias in std::iter::once(name).chain(fields) {
            db.by_name
                .entry((alias.to_ascii_lowercase(), proto.clone()))
                .or_insert(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_at_their_boundaries() {
        for (port, expected) in [
            (0, "well-known"),
            (1023, "well-known"),
            (1024, "registered"),
            (49151, "registered"),
            (49152, "dynamic"),
            (65535, "dynamic"),
        ] {
            assert_eq!(range(port), expected, "port {port}");
        }
    }

    #[test]
    fn lesson_services_are_always_known() {
        for (port, proto) in [
            (80, "tcp"),
            (443, "tcp"),
            (21, "tcp"),
            (23, "tcp"),
            (22, "tcp"),
            (25, "tcp"),
            (53, "udp"),
            (8080, "tcp"),
            (3306, "tcp"),
            (1521, "tcp"),
            (5432, "tcp"),
            (6379, "tcp"),
            (5900, "tcp"),
        ] {
            assert!(service_name(port, proto).is_some(), "{port}/{proto}");
        }
        assert_eq!(port_of("dns", "udp"), Some(53));
        assert_eq!(port_of("ssh", "tcp"), Some(22));
    }

    #[test]
    fn parses_the_services_format() {
        let mut db = Services::default();
        parse_services(
            "# comment\nhttp\t80/tcp\twww # web\nfoo 7777/udp bar\nbroken line\n",
            &mut db,
        );
        assert_eq!(db.by_port.get(&(80, "tcp".into())).unwrap(), "http");
        assert_eq!(db.by_name.get(&("www".into(), "tcp".into())), Some(&80));
        assert_eq!(db.by_name.get(&("bar".into(), "udp".into())), Some(&7777));
        assert!(!db.by_port.contains_key(&(7777, "tcp".into())));
    }
}
