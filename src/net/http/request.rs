//! What a `fetch` call asks for: the URL checked strictly, and its options
//! map read and validated in full before anything is sent.
//!
//! A URL that does not parse exactly is refused rather than guessed at
//! (`http://1.2.3/` is not quietly `1.2.0.3`), so a typo can never send
//! traffic somewhere unintended; `strict.rs` says how.

use std::{path::PathBuf, sync::Arc, time::Duration};

use reqwest::{
    Method, Url,
    header::{self, HeaderMap, HeaderName, HeaderValue},
};
use rhai::{Array, Dynamic, Map};

use super::client::{ClientKey, Limits};
use super::strict;
use crate::error::{Error, Result};
use crate::net::{helpers, options::Options, progress::Wanted};

/// Every option `fetch` knows.
pub const OPTIONS: &[&str] = &[
    "method",
    "headers",
    "body",
    "json",
    "form",
    "query",
    "timeout",
    "connect_timeout",
    "follow_redirects",
    "max_redirects",
    "user_agent",
    "insecure",
    "ca",
    "basic_auth",
    "bearer",
    "output",
    "progress",
    "resume",
    "hash",
    "decode",
    "proxy",
];

/// The options that only make sense when saving to a file.
const DOWNLOAD_ONLY: &[&str] = &["progress", "resume", "hash"];

/// A fetch, checked and ready to send.
pub struct Request {
    pub url: Url,
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    pub client: ClientKey,
    /// The whole exchange, headers to last byte (`timeout:`).
    pub timeout: Option<Duration>,
    /// Set when the response goes to a file.
    pub download: Option<Download>,
    /// The permissions of the code that asked (a plugin's are narrower):
    /// every hop is checked against them, on whichever thread sends it.
    pub permit: crate::permit::Context,
}

/// Where and how a download is saved.
pub struct Download {
    pub path: PathBuf,
    pub progress: Wanted,
    pub resume: bool,
    /// Compute the SHA-256 while streaming (default true).
    pub hash: bool,
}

impl Request {
    /// The limits this request runs under, for timeout messages.
    pub fn limits(&self) -> Limits {
        Limits {
            connect: self.client.connect_timeout,
            total: self.timeout,
            idle: self.client.idle_timeout,
        }
    }
}

/// Checks a URL: http, https or file, absolute, with a host for http(s)
/// spelled as netsh's address parser accepts it ([`strict::check`]).
pub fn parse_url(text: &str) -> Result<Url> {
    strict::check(text).map(|checked| checked.url)
}

/// Reads a whole options map. `output` (a path given as the second
/// argument, or the `output` option) makes it a download.
pub fn from_options(url: &str, path: Option<&str>, map: &Map) -> Result<Request> {
    let o = Options::new(map, OPTIONS)?;
    let get = |key: &str| o.value(key);
    let mut url = parse_url(url)?;
    // A file: URL reads a file, checked before anything is opened.
    if url.scheme() == "file"
        && let Ok(path) = url.to_file_path()
    {
        crate::permit::read(&path)?;
    }

    let output = match (path, get("output")) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "the path is given twice (as an argument and as 'output')",
            ));
        }
        (Some(p), None) => Some(p.to_string()),
        (None, Some(v)) => Some(text(v, "output")?),
        (None, None) => None,
    };
    if output.is_none()
        && let Some(key) = DOWNLOAD_ONLY.iter().find(|k| get(k).is_some())
    {
        return Err(Error::invalid(format!(
            "option '{key}' applies to downloads: give a path, fetch(url, path, #{{{key}: …}})"
        )));
    }
    if output.as_deref() == Some("") {
        return Err(Error::invalid("the download path is empty"));
    }

    let method = match get("method") {
        None => Method::GET,
        Some(v) => {
            let name = text(v, "method")?.to_ascii_uppercase();
            Method::from_bytes(name.as_bytes())
                .map_err(|_| Error::invalid(format!("'{name}' is not an HTTP method")))?
        }
    };

    let mut headers = HeaderMap::new();
    if let Some(v) = get("headers") {
        let given = v
            .read_lock::<Map>()
            .ok_or_else(|| Options::bad("headers", "a map like #{\"x-token\": \"abc\"}", v))?;
        for (name, value) in given.iter() {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::invalid(format!("'{name}' is not a valid header name")))?;
            let value = scalar_text(value).ok_or_else(|| {
                Error::invalid(format!("header '{name}' must be a string or a number"))
            })?;
            let value = HeaderValue::from_str(&value).map_err(|_| {
                Error::invalid(format!(
                    "the value of header '{name}' has characters a header cannot carry (newlines, control characters)"
                ))
            })?;
            headers.append(header, value);
        }
    }
    if let Some(v) = get("user_agent") {
        headers.insert(
            header::USER_AGENT,
            header_value(&text(v, "user_agent")?, "user_agent")?,
        );
    }
    match (get("basic_auth"), get("bearer")) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "give either 'basic_auth' or 'bearer', not both",
            ));
        }
        (Some(v), None) => {
            let (user, password) = basic_auth(v)?;
            let token = base64_encode(format!("{user}:{password}").as_bytes());
            headers.insert(
                header::AUTHORIZATION,
                header_value(&format!("Basic {token}"), "basic_auth")?,
            );
        }
        (None, Some(v)) => {
            let token = text(v, "bearer")?;
            headers.insert(
                header::AUTHORIZATION,
                header_value(&format!("Bearer {token}"), "bearer")?,
            );
        }
        (None, None) => {}
    }

    if let Some(v) = get("query") {
        let pairs = pairs(v, "query", "a map like #{q: \"rust\", page: 2}")?;
        url.query_pairs_mut().extend_pairs(pairs);
    }

    let bodies: Vec<&str> = ["body", "json", "form"]
        .into_iter()
        .filter(|k| get(k).is_some())
        .collect();
    if bodies.len() > 1 {
        return Err(Error::invalid(format!(
            "give one of 'body', 'json' and 'form', not {}",
            bodies.join(" and ")
        )));
    }
    let mut body = None;
    if let Some(v) = get("body") {
        body = Some(if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
            s.as_bytes().to_vec()
        } else if let Some(b) = v.read_lock::<rhai::Blob>() {
            b.to_vec()
        } else {
            return Err(Options::bad("body", "a string or a blob", v));
        });
    }
    if let Some(v) = get("json") {
        body = Some(helpers::to_json_value(v, 0)?.to_string().into_bytes());
        headers
            .entry(header::CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
    }
    if let Some(v) = get("form") {
        let mut encoded = url::form_urlencoded::Serializer::new(String::new());
        encoded.extend_pairs(pairs(v, "form", "a map like #{name: \"x\"}")?);
        body = Some(encoded.finish().into_bytes());
        headers
            .entry(header::CONTENT_TYPE)
            .or_insert(HeaderValue::from_static(
                "application/x-www-form-urlencoded",
            ));
    }
    // A body means a POST unless a method was named (as curl -d does).
    let method = if body.is_some() && get("method").is_none() {
        Method::POST
    } else {
        method
    };
    let mut client = ClientKey {
        plugin: crate::permit::Context::current().plugin_name(),
        ..ClientKey::default()
    };
    let timeout = match o.timeout("timeout")? {
        None => None,
        Some(t) => {
            // A total limit covers stalls too; 0 means no limit at all.
            client.idle_timeout = None;
            t
        }
    };
    if let Some(t) = o.timeout("connect_timeout")? {
        client.connect_timeout = t.unwrap_or(Duration::from_secs(24 * 3600));
    }
    if let Some(v) = get("follow_redirects") {
        client.follow_redirects = flag(v, "follow_redirects")?;
    }
    if let Some(n) = o.count("max_redirects")? {
        client.max_redirects = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(v) = get("insecure") {
        client.insecure = flag(v, "insecure")?;
    }
    if let Some(v) = get("decode") {
        client.decode = flag(v, "decode")?;
    }
    if let Some(v) = get("proxy") {
        // Read strictly first (a path, an unknown scheme, port 0 fail here).
        let url = crate::net::proxy::ProxyUrl::parse(&text(v, "proxy")?)?;
        client.proxy = Some(url.text);
    }
    if let Some(v) = get("ca") {
        let path = text(v, "ca")?;
        crate::permit::read(std::path::Path::new(&path))?;
        let pem = std::fs::read(&path).map_err(|e| helpers::file_error("reading", &path, e))?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(Error::invalid(format!(
                "option 'ca': {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            )));
        }
        client.ca = Some(Arc::new(pem));
    }
    let download = match output {
        None => None,
        Some(path) => Some(Download {
            path: PathBuf::from(path),
            progress: Wanted::from_option(get("progress"))?,
            resume: match get("resume") {
                Some(v) => flag(v, "resume")?,
                None => true,
            },
            // Off unless asked, as for raw send_file: curl's speed first.
            // Hashing costs a core, which on two cores is half the rate.
            hash: match get("hash") {
                Some(v) => flag(v, "hash")?,
                None => false,
            },
        }),
    };
    if let Some(download) = &download {
        crate::permit::write(&download.path)?;
    }
    Ok(Request {
        url,
        method,
        headers,
        body,
        client,
        timeout,
        download,
        permit: crate::permit::Context::current(),
    })
}

fn text(v: &Dynamic, key: &str) -> Result<String> {
    v.read_lock::<rhai::ImmutableString>()
        .map(|s| s.to_string())
        .ok_or_else(|| Options::bad(key, "a string", v))
}

fn flag(v: &Dynamic, key: &str) -> Result<bool> {
    v.as_bool()
        .map_err(|_| Options::bad(key, "true or false", v))
}

/// A map of strings, numbers and bools (`query`, `form`) as name/value pairs.
fn pairs(v: &Dynamic, key: &str, expected: &str) -> Result<Vec<(String, String)>> {
    let map = v
        .read_lock::<Map>()
        .ok_or_else(|| Options::bad(key, expected, v))?;
    map.iter()
        .map(|(name, value)| {
            scalar_text(value)
                .map(|text| (name.to_string(), text))
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "option '{key}': '{name}' must be a string, number or bool"
                    ))
                })
        })
        .collect()
}

/// A string, number or bool as text (header values, query and form fields).
fn scalar_text(v: &Dynamic) -> Option<String> {
    if v.is_string() || v.is_int() || v.is_float() || v.is_bool() || v.is_char() {
        Some(v.to_string())
    } else {
        None
    }
}

fn header_value(text: &str, key: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(text).map_err(|_| {
        Error::invalid(format!(
            "option '{key}' has characters a header cannot carry (newlines, control characters)"
        ))
    })
}

/// `basic_auth`: `"user:password"` or `["user", "password"]`.
fn basic_auth(v: &Dynamic) -> Result<(String, String)> {
    if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        return match s.split_once(':') {
            Some((user, password)) => Ok((user.to_string(), password.to_string())),
            None => Ok((s.to_string(), String::new())),
        };
    }
    if let Some(pair) = v.read_lock::<Array>()
        && pair.len() == 2
        && pair.iter().all(Dynamic::is_string)
    {
        return Ok((pair[0].to_string(), pair[1].to_string()));
    }
    Err(Options::bad(
        "basic_auth",
        "\"user:password\" or [\"user\", \"password\"]",
        v,
    ))
}

/// Standard base64 with padding (RFC 4648), for the Basic auth header.
pub(super) fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
        }
    }
}
