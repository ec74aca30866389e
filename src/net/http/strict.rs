//! A URL read once, strictly, with the parser the connection uses.
//!
//! reqwest connects to what the `url` crate reads (the WHATWG URL
//! standard), and that standard is lenient where netsh is not: it takes
//! `127.1`, `0x7f.0.0.1`, `0177.0.0.1` and `2130706433` for 127.0.0.1 and
//! `1.2.3` for 1.2.0.3, skips any number of slashes, treats `\` as `/`,
//! and drops tabs and newlines anywhere. So a URL is parsed here by the url
//! crate, the host's spelling is recovered from the text by the same rules
//! (authority after `//`, ended by `/`, `?` or `#`; userinfo before the
//! last `@`; `[…]` for IPv6), that spelling goes through [`addr::parse_host`]
//! (the strict parser every netsh function uses), and the two readings must
//! name the same host. Text where parsers are known to disagree (a
//! backslash, two `@`, control characters) is refused outright rather than
//! read one way. The checked [`Url`] is what is sent: nothing parses the
//! text a second time.
//!
//! Every URL a fetch goes to is checked here: the one typed, each redirect's
//! `Location` ([`next_hop`]) and the proxy from the environment (`proxy.rs`).

use reqwest::Url;

use crate::error::{Error, Result};
use crate::net::addr::{self, Host};

/// A URL that passed the strict check, and the host as netsh read it.
#[derive(Debug, Clone)]
pub struct Checked {
    pub url: Url,
    /// `None` for a `file://` URL (no host is contacted).
    pub host: Option<Host>,
}

/// Parses and checks a URL: http, https or file, absolute, with a host for
/// http(s) spelled as netsh's address parser accepts it.
pub fn check(text: &str) -> Result<Checked> {
    check_as(text, true)
}

/// [`check`], naming the URL in a refused host's message or not (a
/// redirect's refusal names the hop itself).
fn check_as(text: &str, named: bool) -> Result<Checked> {
    let shown = without_userinfo(text);
    if text.is_empty() || text.trim() != text {
        return Err(Error::invalid(format!(
            "'{shown}' is not a URL (no spaces around it; write it like http://host/path)"
        )));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "'{}' contains the control character {c:?}, which a URL cannot",
            crate::error::printable(&shown)
        )));
    }
    let before_query = text.split(['?', '#']).next().unwrap_or_default();
    if before_query.contains('\\') {
        return Err(Error::invalid(format!(
            "'{shown}' contains a backslash: URL parsers disagree on what it means (write / or %5C)"
        )));
    }
    let url = Url::parse(text).map_err(|e| {
        Error::invalid(format!(
            "'{shown}' is not a URL: {e} (write it like http://host/path)"
        ))
    })?;
    match url.scheme() {
        "http" | "https" => {
            let host = check_host(text, &shown, &url).map_err(|e| match e {
                Refusal::Host(e) if named => Error::invalid(format!("'{shown}': {e}")),
                Refusal::Host(e) | Refusal::Other(e) => e,
            })?;
            if url.port() == Some(0) {
                return Err(Error::invalid(format!(
                    "'{shown}': port 0 cannot be sent to (0 means \"any free port\" only when binding)"
                )));
            }
            Ok(Checked {
                url,
                host: Some(host),
            })
        }
        "file" => {
            if url
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(Error::invalid(format!(
                    "'{shown}' names a file on another host; file URLs read this machine's files (file:///path)"
                )));
            }
            Ok(Checked { url, host: None })
        }
        other => Err(Error::invalid(format!(
            "unsupported scheme '{other}' in '{shown}' (fetch reads http, https and file URLs)"
        ))),
    }
}

/// The parts of an http(s) URL's authority, as the URL standard splits
/// them (for text already free of backslashes and control characters).
struct Authority<'a> {
    host: &'a str,
    port: Option<&'a str>,
}

/// The authority of `text` (after `scheme://`), or `None` when there is
/// none where the standard would go looking for one (`http:x`, `http:///x`).
fn authority(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once(':')?;
    let rest = rest.strip_prefix("//")?;
    // The standard skips any further slashes and reads a host after them;
    // curl calls `http:///x` what it is: no host.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let found = &rest[..end];
    (!found.is_empty()).then_some(found)
}

fn split_authority(authority: &str) -> std::result::Result<Authority<'_>, String> {
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    if userinfo.is_some_and(|u| u.contains('@')) {
        return Err(
            "it has more than one '@' before the host: parsers disagree on which is the host (write %40 in a user name or password)".into(),
        );
    }
    let (host, port) = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(close) => {
                let after = &host_port[close + 1..];
                match after.strip_prefix(':') {
                    Some(port) => (&host_port[..=close], Some(port)),
                    None if after.is_empty() => (host_port, None),
                    None => return Err(format!("'{after}' follows the ']' of the host")),
                }
            }
            None => return Err("'[' without a closing ']'".into()),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if let Some(port) = port
        && !port.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("'{port}' is not a port number"));
    }
    Ok(Authority { host, port })
}

/// Why a host was refused: its spelling (which the caller may name the URL
/// of), or anything else (whose message names it already).
enum Refusal {
    Host(Error),
    Other(Error),
}

/// The host as written in `text`, checked with the strict address parser
/// and compared with what the url crate read from the same text.
fn check_host(text: &str, shown: &str, url: &Url) -> std::result::Result<Host, Refusal> {
    let no_host = || {
        Refusal::Other(Error::invalid(format!(
            "'{shown}' has no host (write it like http://host/path)"
        )))
    };
    let Some(found) = authority(text) else {
        return Err(no_host());
    };
    let parts = split_authority(found)
        .map_err(|why| Refusal::Other(Error::invalid(format!("'{shown}': {why}"))))?;
    if parts.host.is_empty() {
        return Err(no_host());
    }
    let host =
        addr::parse_host(parts.host).map_err(|e| Refusal::Host(not_an_address(parts.host, &e)))?;
    let agrees = match (&host, url.host()) {
        (Host::Ip(std::net::IpAddr::V4(ours)), Some(url::Host::Ipv4(theirs))) => *ours == theirs,
        (Host::Ip(std::net::IpAddr::V6(ours)), Some(url::Host::Ipv6(theirs))) => *ours == theirs,
        (Host::Name(ours), Some(url::Host::Domain(theirs))) => ours.eq_ignore_ascii_case(theirs),
        _ => false,
    };
    let port_agrees = match parts.port.filter(|p| !p.is_empty()) {
        None => url.port().is_none(),
        Some(p) => p.parse::<u16>().ok() == url.port_or_known_default(),
    };
    if !agrees || !port_agrees {
        return Err(Refusal::Other(Error::invalid(format!(
            "'{shown}': URL parsers read its host differently ('{}' here, '{}' by the URL standard); write it plainly",
            parts.host,
            url.host_str().unwrap_or_default()
        ))));
    }
    Ok(host)
}

/// `'127.1' is not an address (why)`: the host refused, in the words of
/// the address parser (less its own echo of the host).
pub(super) fn not_an_address(host: &str, err: &Error) -> Error {
    let text = err.to_string();
    let quoted = format!("{host:?} ");
    let why = text.strip_prefix(&quoted).unwrap_or(&text);
    let why = why.strip_prefix("is not an IPv4 address: ").unwrap_or(why);
    let what = if text.contains("IPv4") || text.contains("IPv6") || host.starts_with('[') {
        "an address"
    } else {
        "a host name"
    };
    Error::invalid(format!(
        "'{}' is not {what} ({why})",
        crate::error::printable(host)
    ))
}

/// The URL a redirect leads to: `location` read against `current`, held
/// to the same strict check as a typed URL, and to http or https.
pub fn next_hop(current: &Url, location: &str) -> Result<Url> {
    let refused = |why: String| {
        Error::Protocol(format!(
            "redirect to {} refused: {why}",
            crate::error::printable(&without_userinfo(location))
        ))
    };
    if location.is_empty() {
        return Err(Error::Protocol(
            "the server redirected without saying where (an empty Location)".into(),
        ));
    }
    // The standard strips spaces around a reference and drops tabs and
    // newlines anywhere in it; the strict check refuses them instead.
    if location.trim() != location || location.chars().any(char::is_control) {
        return Err(refused(
            "the Location has spaces or control characters, which parsers read differently".into(),
        ));
    }
    let before_query = location.split(['?', '#']).next().unwrap_or_default();
    if before_query.contains('\\') {
        return Err(refused(
            "it contains a backslash: URL parsers disagree on what it means".into(),
        ));
    }
    let absolute = if has_scheme(location) {
        location.to_string()
    } else if location.starts_with("//") {
        format!("{}:{location}", current.scheme())
    } else {
        // A path, query or fragment: the host stays the one already checked.
        let next = current
            .join(location)
            .map_err(|e| refused(format!("it is not a URL: {e}")))?;
        if next.host() != current.host()
            || next.port_or_known_default() != current.port_or_known_default()
        {
            return Err(refused(
                "URL parsers read its host differently; write it plainly".into(),
            ));
        }
        return Ok(next);
    };
    let scheme = absolute
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(refused(
            "fetch follows redirects to http and https URLs only".into(),
        ));
    }
    let checked = check_as(&absolute, false).map_err(|e| refused(e.to_string()))?;
    Ok(checked.url)
}

/// Does `text` begin with a scheme (`letter (letter | digit | + - .)* :`)?
fn has_scheme(text: &str) -> bool {
    let Some((scheme, _)) = text.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// A URL as messages show it: without a user name or password.
pub fn shown(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut bare = url.clone();
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    bare.to_string()
}

/// URL text as messages show it: any `user:password@` before the host cut
/// out, so an error never echoes a password.
pub fn without_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests;
