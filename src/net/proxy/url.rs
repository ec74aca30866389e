//! A proxy URL read strictly: `socks5://`, `socks5h://` or `http://`, an
//! optional `user:pass@`, a host the strict address parser accepts, and a
//! port (1080 when none is written, as curl). A path, a query, an unknown
//! scheme or port 0 is an error before anything is sent.

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};
use crate::net::addr::{self, Target};

/// How a proxy is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SOCKS5, names resolved here.
    Socks5,
    /// SOCKS5, names resolved by the proxy.
    Socks5h,
    /// HTTP `CONNECT`.
    Http,
}

/// A checked proxy URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub kind: Kind,
    pub server: Target,
    /// `user:pass@`, decoded.
    pub credentials: Option<(String, String)>,
    /// The URL as written, for reqwest (which speaks all three itself).
    pub text: String,
}

impl std::fmt::Debug for ProxyUrl {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for ProxyUrl {
    /// `socks5://127.0.0.1:1080`, without credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.kind {
            Kind::Socks5 => "socks5",
            Kind::Socks5h => "socks5h",
            Kind::Http => "http",
        };
        write!(f, "{scheme}://{}", self.server)
    }
}

/// The port a proxy URL without one means (curl's choice for every kind).
const DEFAULT_PORT: u16 = 1080;

impl ProxyUrl {
    pub fn parse(text: &str) -> Result<ProxyUrl> {
        let shown = crate::error::printable(&crate::net::http::strict::without_userinfo(text));
        let bad = |why: &str| {
            Error::invalid(format!(
                "'{shown}' is not a proxy URL: {why} (write it like socks5://127.0.0.1:1080, socks5h://user:pass@host:1080 or http://127.0.0.1:3128)"
            ))
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(bad("it has no scheme"));
        };
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "socks5" => Kind::Socks5,
            "socks5h" => Kind::Socks5h,
            "http" => Kind::Http,
            "https" => {
                return Err(bad(
                    "a TLS connection to the proxy itself (https://) is not supported",
                ));
            }
            _ => {
                return Err(bad(&format!(
                    "the scheme '{scheme}' is not socks5, socks5h or http"
                )));
            }
        };
        // One trailing slash is harmless; anything after it is a path.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '\\']) {
            return Err(bad("a proxy URL has no path, query or fragment"));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((user, hp)) => (Some(user), hp),
            None => (None, rest),
        };
        let credentials = match userinfo {
            None => None,
            Some(info) => {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                let decode = |s: &str| {
                    percent_decode_str(s)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| bad("the user name or password is not UTF-8 once decoded"))
                };
                let (user, pass) = (decode(user)?, decode(pass)?);
                if user.is_empty() || user.len() > 255 || pass.len() > 255 {
                    return Err(bad("a user name is 1 to 255 bytes, a password at most 255"));
                }
                Some((user, pass))
            }
        };
        if hostport.is_empty() {
            return Err(bad("it names no host"));
        }
        let has_port = match hostport.rfind(']') {
            Some(close) => hostport[close..].contains(':'),
            None => hostport.contains(':'),
        };
        let server = if has_port {
            addr::parse_target(hostport)?
        } else {
            let host = hostport
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(hostport);
            addr::target(host, DEFAULT_PORT as i64)?
        };
        if server.port == 0 {
            return Err(bad("port 0 cannot be connected to"));
        }
        Ok(ProxyUrl {
            kind,
            server,
            credentials,
            text: text.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_urls() {
        let p = ProxyUrl::parse("socks5h://al%40ice:s3cret@127.0.0.1:1080").unwrap();
        assert_eq!(p.kind, Kind::Socks5h);
        assert_eq!(p.server.to_string(), "127.0.0.1:1080");
        assert_eq!(p.credentials, Some(("al@ice".into(), "s3cret".into())));
        assert_eq!(p.to_string(), "socks5h://127.0.0.1:1080");
        let p = ProxyUrl::parse("http://[::1]:3128/").unwrap();
        assert_eq!((p.kind, p.server.port), (Kind::Http, 3128));
        assert_eq!(
            ProxyUrl::parse("socks5://localhost").unwrap().server.port,
            1080
        );
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, words) in [
            ("socks4://127.0.0.1:1080", "scheme 'socks4'"),
            ("127.0.0.1:1080", "no scheme"),
            ("http://127.0.0.1:3128/path", "no path"),
            ("http://127.0.0.1:3128?q", "no path"),
            ("socks5://127.0.0.1:0", "port 0"),
            ("socks5://127.1:1080", "127.1"),
            ("socks5://127.0.0.1:99999", "99999"),
            ("socks5://:pw@127.0.0.1:1", "user name"),
            ("https://127.0.0.1:1", "https"),
        ] {
            let err = ProxyUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains(words), "{url}: {err}");
        }
        // The password never shows in an error.
        let err = ProxyUrl::parse("socks5://u:hunter2@127.0.0.1:1/x").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
