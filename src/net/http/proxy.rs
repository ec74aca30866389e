//! The proxy a fetch goes through, from `http_proxy`, `https_proxy`,
//! `all_proxy` and `no_proxy` (upper case first, as curl), held to the
//! strict address check like every other URL a fetch goes to.
//!
//! reqwest reads these variables through hyper-util's matcher; netsh asks
//! the same matcher which proxy a URL will use, so the proxy checked (and
//! named when it refuses a connection) is the one contacted. Its host is
//! kept as written (`http::Uri` does not rewrite `127.1`), so the strict
//! parser sees exactly what the connector will.

use hyper_util::client::proxy::matcher::Matcher;
use reqwest::Url;

use crate::error::{Error, Result};
use crate::net::addr;

/// The proxy settings of this process, read once per fetch.
pub struct Proxies {
    matcher: Matcher,
}

/// A proxy a request goes through, as messages name it.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// `host:port` of the proxy.
    pub authority: String,
    /// The variable it came from (`http_proxy`…).
    pub variable: &'static str,
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the proxy {} (from {})", self.authority, self.variable)
    }
}

const HTTP: [&str; 2] = ["HTTP_PROXY", "http_proxy"];
const HTTPS: [&str; 2] = ["HTTPS_PROXY", "https_proxy"];
const ALL: [&str; 2] = ["ALL_PROXY", "all_proxy"];

impl Proxies {
    pub fn from_env() -> Proxies {
        Proxies {
            matcher: Matcher::from_env(),
        }
    }

    /// The proxy a request to `url` goes through, if any, checked.
    pub fn for_url(&self, url: &Url) -> Result<Option<Proxy>> {
        let Ok(uri) = url.as_str().parse::<::http::Uri>() else {
            return Ok(None);
        };
        // Under CGI a request's `Proxy:` header becomes HTTP_PROXY, so
        // hyper-util (and curl) use no proxy there at all.
        if std::env::var_os("REQUEST_METHOD").is_some() {
            return Ok(None);
        }
        let variables = if url.scheme() == "https" { HTTPS } else { HTTP };
        let Some(intercept) = self.matcher.intercept(&uri) else {
            // A variable that is set but unusable would quietly send the
            // request direct; say so instead.
            if let Some((name, value)) = first_set(&variables).or_else(|| first_set(&ALL))
                && !value.is_empty()
                && Matcher::builder()
                    .all(value.clone())
                    .build()
                    .intercept(&uri)
                    .is_none()
                && !no_proxy_applies(&uri)
            {
                return Err(Error::invalid(format!(
                    "{name}={} is not a proxy URL (write it like http://127.0.0.1:3128)",
                    crate::error::printable(&super::strict::without_userinfo(&value))
                )));
            }
            return Ok(None);
        };
        let variable = match first_set(&variables) {
            Some((name, value))
                if Matcher::builder()
                    .all(value.as_str())
                    .build()
                    .intercept(&uri)
                    .is_some() =>
            {
                name
            }
            _ => first_set(&ALL).map_or(variables[1], |(name, _)| name),
        };
        let proxy_uri = intercept.uri();
        let host = proxy_uri.host().unwrap_or_default();
        // hyper-util takes the credentials up to the first `@` out of the
        // URI; whatever of a password lies past it is still in the authority.
        let authority = proxy_uri.authority().map_or_else(
            || host.to_string(),
            |a| {
                let text = a.as_str();
                text.rsplit_once('@').map_or(text, |(_, hp)| hp).to_string()
            },
        );
        if let Err(e) = addr::parse_host(host) {
            return Err(Error::invalid(format!(
                "the proxy {authority} (from {variable}) refused: {}",
                super::strict::not_an_address(host, &e)
            )));
        }
        Ok(Some(Proxy {
            authority,
            variable,
        }))
    }
}

impl Proxies {
    /// The proxy of a `proxy:` option (already read strictly), unless
    /// `no_proxy` exempts the URL's host.
    pub fn for_option(&self, text: &str, url: &Url) -> Option<Proxy> {
        let uri = url.as_str().parse::<::http::Uri>().ok()?;
        if no_proxy_applies(&uri) {
            return None;
        }
        let proxy = crate::net::proxy::ProxyUrl::parse(text).ok()?;
        Some(Proxy {
            authority: proxy.server.to_string(),
            variable: "the proxy option",
        })
    }
}

/// The first of `names` that is set, with its value (as hyper-util reads them).
fn first_set(names: &[&'static str]) -> Option<(&'static str, String)> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().map(|value| (*name, value)))
}

/// Does `no_proxy` exempt this URL's host (so no proxy was wanted)?
fn no_proxy_applies(uri: &::http::Uri) -> bool {
    Matcher::builder()
        .all("http://127.0.0.1:1")
        .no(first_set(&["NO_PROXY", "no_proxy"]).map_or_else(String::new, |(_, v)| v))
        .build()
        .intercept(uri)
        .is_none()
}
