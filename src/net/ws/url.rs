//! A WebSocket URL (`ws://host:port/path?query`, `wss://…`), read strictly
//! before anything is sent.
//!
//! A `ws://` URL is an `http://` URL under another name (RFC 6455 §3), so
//! it is checked by the very reader `fetch` uses (`net::http::strict`):
//! the host's spelling through `net::addr`, the url crate's reading held to
//! it, the text where parsers disagree refused. What is added here is what
//! differs: the two schemes, no fragment (§3: "fragment identifiers are
//! meaningless in the context of WebSocket URIs"), no user and password.

use crate::error::{Error, Result};
use crate::net::addr::Target;
use crate::net::http::strict;

/// A checked WebSocket URL.
#[derive(Debug, Clone)]
pub struct WsUrl {
    /// `wss://`: TLS first.
    pub secure: bool,
    /// Where to connect (host as written, the port or the scheme's default).
    pub target: Target,
    /// The path and query to ask for, `/` at least.
    pub resource: String,
    /// The URL as given, for messages and `.url`.
    pub text: String,
}

impl WsUrl {
    /// Reads `text`: `ws://` or `wss://` (any case), a host netsh's address
    /// parser accepts, an optional port (not 0), a path and query.
    pub fn parse(text: &str) -> Result<WsUrl> {
        let shown = crate::error::printable(text);
        let scheme_end = text.find("://").ok_or_else(|| {
            Error::invalid(format!(
                "'{shown}' is not a WebSocket URL (write it like ws://host:port/path or wss://…)"
            ))
        })?;
        let (scheme, rest) = text.split_at(scheme_end);
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" => false,
            "wss" => true,
            _ => {
                return Err(Error::invalid(format!(
                    "'{shown}': the scheme must be ws:// or wss://, not {}://",
                    crate::error::printable(scheme)
                )));
            }
        };
        if text.contains('#') {
            return Err(Error::invalid(format!(
                "'{shown}': a WebSocket URL has no #fragment (RFC 6455 §3)"
            )));
        }
        let as_http = format!("{}{rest}", if secure { "https" } else { "http" });
        let checked = strict::check(&as_http).map_err(|e| match e {
            Error::InvalidArgument(words) => Error::invalid(words.replace(&as_http, text)),
            other => other,
        })?;
        let url = checked.url;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid(format!(
                "'{shown}': a WebSocket URL carries no user or password (send an Authorization header with #{{headers: …}})"
            )));
        }
        let host = match checked.host {
            Some(host) => host.to_string(),
            None => return Err(Error::invalid(format!("'{shown}' names no host"))),
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if secure { 443 } else { 80 });
        let mut resource = url.path().to_string();
        if let Some(query) = url.query() {
            resource.push('?');
            resource.push_str(query);
        }
        Ok(WsUrl {
            secure,
            target: Target { host, port },
            resource,
            text: text.to_string(),
        })
    }

    /// The URI sent in the request line and `Host` header: the host in
    /// brackets when it is an IPv6 address.
    pub fn request_uri(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.target, self.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both schemes, default ports, IPv6, path and query are read as written.
    #[test]
    fn reads_ws_and_wss() {
        let u = WsUrl::parse("ws://127.0.0.1:9000/chat?room=1").unwrap();
        assert!(!u.secure);
        assert_eq!(u.target.to_string(), "127.0.0.1:9000");
        assert_eq!(u.resource, "/chat?room=1");
        let u = WsUrl::parse("WSS://[::1]/").unwrap();
        assert!(u.secure);
        assert_eq!(u.target.port, 443);
        assert_eq!(u.request_uri(), "wss://[::1]:443/");
        let u = WsUrl::parse("ws://localhost").unwrap();
        assert_eq!(u.resource, "/");
        assert_eq!(u.target.port, 80);
    }

    /// What is not a WebSocket URL, or is spelled loosely, is refused.
    #[test]
    fn refuses_what_is_not_strict() {
        for bad in [
            "http://127.0.0.1/",
            "127.0.0.1:9000",
            "ws://127.1:9000/",
            "ws://1.2.3/",
            "ws://127.0.0.1:0/",
            "ws://127.0.0.1:70000/",
            "ws://127.0.0.1/#frag",
            "ws://user:pw@127.0.0.1/",
            "ws://[::1/",
            " ws://127.0.0.1/",
            "ws:/127.0.0.1/",
            "",
        ] {
            let err = WsUrl::parse(bad).expect_err(bad);
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err:?}");
        }
    }
}
