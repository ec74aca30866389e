//! Fuzzes the one address parser every netsh function uses. Beyond "never
//! panics", it checks strictness: an accepted host is exactly as written
//! (nothing trimmed), an IPv4 host is its canonical dotted quad, a name is
//! never one that glibc's getaddrinfo reads as an address, and an accepted
//! "host:port" prints back to text that parses to the same target.
#![no_main]

use std::net::{IpAddr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use netsh::net::{
    addr::{self, Host},
    transfer::Cidr,
};

/// Would the C resolver take this name for an address? Asks glibc's own
/// `getaddrinfo` with AI_NUMERICHOST (which never touches DNS), so the
/// check does not trust netsh's idea of inet_aton's shorthand.
fn c_reads_as_an_address(name: &str) -> bool {
    let numeric_only = dns_lookup::AddrInfoHints {
        flags: libc::AI_NUMERICHOST,
        ..dns_lookup::AddrInfoHints::default()
    };
    dns_lookup::getaddrinfo(Some(name), None, Some(numeric_only)).is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(host) = addr::parse_host(text) {
        assert_eq!(text.trim(), text);
        match host {
            Host::Ip(IpAddr::V4(ip)) => assert_eq!(ip.to_string(), text),
            Host::Ip(IpAddr::V6(ip)) => {
                let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
                assert_eq!(bare.unwrap_or(text).parse::<Ipv6Addr>().ok(), Some(ip));
            }
            Host::Name(name) => {
                assert_eq!(name, text);
                assert!(name.parse::<IpAddr>().is_err());
                assert!(
                    !c_reads_as_an_address(&name),
                    "{name} reaches the resolver as an address"
                );
                assert!(name.is_ascii() && !name.contains([':', '[', ']', '%', ' ']));
            }
        }
    }
    if let Ok(target) = addr::parse_target(text) {
        assert_eq!(text.trim(), text);
        assert_eq!(
            addr::parse_target(&target.to_string()).ok(),
            Some(target.clone())
        );
        assert!(addr::parse_host(&target.host).is_ok());
    }
    if let Ok(target) = addr::target(text, 80) {
        assert_eq!(
            addr::parse_host(&target.host).map(|h| h.to_string()).ok(),
            Some(target.host)
        );
    }
    let _ = addr::parse_bind(text);
    let _ = addr::parse_ip(text);
    let _ = Cidr::parse(text);
});
