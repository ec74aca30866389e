//! Fuzzes the strict URL reading `fetch` does (issue 17): a URL typed by
//! the user and a redirect's `Location` read against a fixed base. Beyond
//! "never panics", whenever netsh accepts one:
//!
//! - the URL it hands on is the url crate's reading of the same text (the
//!   parser the connection uses), and the host it checked is that URL's host;
//! - the host contacted is spelled in the text as it will be contacted
//!   (no shorthand, no percent-encoding, no rewriting but lower case);
//! - the `http` crate's reading of the text (an RFC 3986 parser, as curl's
//!   is), where it has one, names the same host.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use netsh::net::{
    addr::{self, Host},
    http::strict,
};
use url::Url;

/// Does netsh's checked host name the url crate's host?
fn same_host(ours: &Host, theirs: Option<url::Host<&str>>) -> bool {
    match (ours, theirs) {
        (Host::Ip(IpAddr::V4(a)), Some(url::Host::Ipv4(b))) => *a == b,
        (Host::Ip(IpAddr::V6(a)), Some(url::Host::Ipv6(b))) => *a == b,
        (Host::Name(a), Some(url::Host::Domain(b))) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// The host of `url` is written in `text` as it is contacted (IPv6 aside,
/// whose text has many spellings of one address).
fn spelled_in(url: &Url, text: &str) -> bool {
    match url.host() {
        Some(url::Host::Ipv6(_)) | None => true,
        Some(_) => {
            let host = url.host_str().unwrap_or_default();
            text.to_ascii_lowercase().contains(&host.to_ascii_lowercase())
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(checked) = strict::check(text) {
        let theirs = Url::parse(text).expect("netsh accepted what the url crate refuses");
        assert_eq!(checked.url, theirs, "{text}");
        if let Some(host) = &checked.host {
            assert!(same_host(host, theirs.host()), "{text}: {host:?} vs {theirs}");
            assert!(spelled_in(&theirs, text), "{text}: contacts {theirs}");
            if let Ok(uri) = text.parse::<http::Uri>()
                && let Some(uri_host) = uri.host()
            {
                let read = addr::parse_host(uri_host);
                assert!(
                    read.as_ref().is_ok_and(|h| same_host(h, theirs.host())),
                    "{text}: the http crate reads {uri_host:?} ({read:?})"
                );
            }
        }
    }
    let base = Url::parse("http://127.0.0.1:8000/a/b?q").expect("a fixed base");
    if let Ok(next) = strict::next_hop(&base, text) {
        assert_eq!(Some(&next), base.join(text).ok().as_ref(), "{text}");
        assert!(matches!(next.scheme(), "http" | "https"), "{text}");
        if next.host() != base.host() || next.port_or_known_default() != base.port_or_known_default() {
            assert!(spelled_in(&next, text), "{text}: leads to {next}");
        }
    }
});
