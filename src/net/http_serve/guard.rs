//! What stands before every route of an `http_serve`: `auth: "user:pass"`
//! (HTTP Basic; anything else gets 401 with a `WWW-Authenticate` challenge)
//! and `cors: true` (or an origin: the `Access-Control-*` headers on every
//! answer, and CORS preflights answered here, before auth, since a browser
//! sends no credentials with a preflight).
//!
//! And, for a server on a loopback address, the `Host` check against DNS
//! rebinding: a web page on `evil.example` whose name the attacker then
//! points at 127.0.0.1 reaches the server as "same origin" with
//! `Host: evil.example`. Only an IP literal, `localhost`, a `*.localhost`
//! name or a name given in `hosts` is answered; anything else is a 421.

use std::cell::RefCell;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::body::{Body, empty, full};
use crate::error::{Error, Result};
use crate::net::options::Options;

/// The checks of one server, read from its options.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// The `Authorization` value that is let in: `Basic base64(user:pass)`.
    expected: Option<Vec<u8>>,
    /// The `Access-Control-Allow-Origin` value, when CORS is on.
    origin: Option<HeaderValue>,
    /// On a loopback server, the host names answered besides IP literals
    /// and `localhost` (lower-case); `None` when any Host is answered.
    hosts: Option<Vec<String>>,
}

/// What the guard says about a request before it is routed.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Route it.
    Pass,
    /// Answer with this status and these headers, no body of interest.
    Answer(StatusCode, HeaderMap),
}

impl Guard {
    /// Reads `auth`, `cors` and `hosts` from a server's options (already
    /// checked for unknown keys by the caller's `Options::new`); `bind` is
    /// where the server listens (a loopback one checks `Host`).
    pub fn from_options(options: &Options, bind: std::net::SocketAddr) -> Result<Guard> {
        let expected = match options.text("auth")? {
            None => None,
            Some(pair) => {
                if !pair.contains(':') || pair.starts_with(':') {
                    return Err(Error::invalid(
                        "option 'auth' is \"user:password\" (a user, a colon, a password)",
                    ));
                }
                use base64::Engine;
                let token = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
                Some(token.into_bytes())
            }
        };
        let origin = match options.value("cors") {
            None => None,
            Some(v) if v.is_bool() => v
                .as_bool()
                .unwrap_or(false)
                .then(|| HeaderValue::from_static("*")),
            Some(v) if v.is_string() => {
                let text = v.clone().into_string().unwrap_or_default();
                Some(HeaderValue::from_str(&text).map_err(|_| {
                    Options::bad(
                        "cors",
                        "true or an origin such as \"https://example.com\"",
                        v,
                    )
                })?)
            }
            Some(v) => return Err(Options::bad("cors", "true or an origin", v)),
        };
        let mut extra = Vec::new();
        if let Some(value) = options.value("hosts") {
            let Some(list) = value.read_lock::<rhai::Array>() else {
                return Err(Options::bad(
                    "hosts",
                    "an array of host names such as [\"myapp.test\"]",
                    value,
                ));
            };
            for name in list.iter() {
                match name.clone().into_string() {
                    Ok(name) if !name.is_empty() && !name.contains([':', '/', ' ']) => {
                        extra.push(name.to_ascii_lowercase())
                    }
                    _ => {
                        return Err(Options::bad(
                            "hosts",
                            "an array of host names (no port, no scheme)",
                            name,
                        ));
                    }
                }
            }
        }
        let hosts = bind.ip().is_loopback().then_some(extra);
        Ok(Guard {
            expected,
            origin,
            hosts,
        })
    }

    /// Is anything checked at all? (A server without auth or cors, not on
    /// a loopback address, skips the guard.)
    pub fn is_open(&self) -> bool {
        self.expected.is_none() && self.origin.is_none() && self.hosts.is_none()
    }

    /// On a loopback server, is `host` (a `Host` header or an HTTP/2
    /// `:authority`, port and all) one it answers to?
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(extra) = &self.hosts else {
            return true;
        };
        // A client that names no host is no browser (every browser sends one).
        let Some(host) = host else {
            return true;
        };
        // Compared without case, in place: this runs for every request.
        let name = host_name(host);
        let name = name.strip_suffix('.').unwrap_or(name);
        // An IP literal or a localhost name is never a rebound one.
        is_local(name)
            // The extra names were lowered when the server started.
            || extra.iter().any(|h| h.as_bytes().eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The verdict on a request's method and headers.
    pub fn verdict(&self, method: &Method, headers: &HeaderMap) -> Verdict {
        if self.origin.is_some()
            && method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let mut out = HeaderMap::new();
            out.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"),
            );
            if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            out.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            self.add_cors(&mut out);
            return Verdict::Answer(StatusCode::NO_CONTENT, out);
        }
        if let Some(expected) = &self.expected {
            let given = headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes)
                .unwrap_or(b"");
            // The scheme's name is case-insensitive (RFC 9110 §11.1).
            let token = match given.split_at_checked(6) {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"basic ") => {
                    token.trim_ascii()
                }
                _ => b"",
            };
            if !same(token, expected) {
                let mut out = HeaderMap::new();
                out.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"netsh\", charset=\"UTF-8\""),
                );
                self.add_cors(&mut out);
                return Verdict::Answer(StatusCode::UNAUTHORIZED, out);
            }
        }
        Verdict::Pass
    }

    /// The answer to a request the guard stops (401, a preflight's 204),
    /// or `None` to route it.
    pub fn check<B>(&self, req: &http::Request<B>) -> Option<http::Response<Body>> {
        let host = req
            .headers()
            .get(header::HOST)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
            .or_else(|| req.uri().authority().map(http::uri::Authority::as_str));
        if !self.host_allowed(host) {
            let mut response = http::Response::new(full(
                "421 Misdirected Request: this server is on a loopback address and answers only to localhost or an IP address as Host (a guard against DNS rebinding; the option hosts: [\"name\"] adds names)\n",
            ));
            *response.status_mut() = StatusCode::MISDIRECTED_REQUEST;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Some(response);
        }
        match self.verdict(req.method(), req.headers()) {
            Verdict::Pass => None,
            Verdict::Answer(status, headers) => {
                let mut response = if status == StatusCode::UNAUTHORIZED {
                    http::Response::new(full(
                        "401 Unauthorized: this server asks for a user and password\n",
                    ))
                } else {
                    http::Response::new(empty())
                };
                *response.status_mut() = status;
                response.headers_mut().extend(headers);
                if status == StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                }
                Some(response)
            }
        }
    }

    /// Adds what every routed answer carries (the CORS headers).
    pub fn finish(&self, response: &mut http::Response<Body>) {
        self.add_cors(response.headers_mut());
    }

    /// Adds the CORS headers an answer carries when CORS is on.
    pub fn add_cors(&self, headers: &mut HeaderMap) {
        if let Some(origin) = &self.origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("Content-Length, Content-Range, ETag, Last-Modified"),
            );
            if origin != "*" {
                headers.append(header::VARY, HeaderValue::from_static("Origin"));
            }
        }
    }
}

/// The host part of a `Host` value: `[::1]:80` → `::1`, `a.b:80` → `a.b`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.bytes().rposition(|b| b == b':') {
        Some(colon) if host.as_bytes()[colon + 1..].iter().all(u8::is_ascii_digit) => {
            &host[..colon]
        }
        _ => host,
    }
}

/// Whether `name` is an IP literal or a `localhost` name, which every
/// guard answers: a fact of the name alone. The last name found so is
/// kept per thread, since a connection sends the same `Host` with every
/// request and comparing it costs a fraction of parsing it again.
fn is_local(name: &str) -> bool {
    /// Longer names are not kept.
    const KEPT: usize = 64;
    thread_local! {
        static LAST: RefCell<(usize, [u8; KEPT])> = const { RefCell::new((0, [0; KEPT])) };
    }
    let bytes = name.as_bytes();
    let known = LAST.with(|last| {
        let last = last.borrow();
        last.0 == bytes.len() && last.1[..last.0] == *bytes
    });
    if known {
        return true;
    }
    let localhost = b"localhost";
    let local = name.parse::<std::net::IpAddr>().is_ok()
        || bytes.eq_ignore_ascii_case(localhost)
        || (bytes.len() > localhost.len()
            && bytes[bytes.len() - localhost.len() - 1] == b'.'
            && bytes[bytes.len() - localhost.len()..].eq_ignore_ascii_case(localhost));
    if local && bytes.len() <= KEPT {
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            last.1[..bytes.len()].copy_from_slice(bytes);
            last.0 = bytes.len();
        });
    }
    local
}

/// Compares in time that depends only on the lengths, so a wrong password
/// is not found out byte by byte from the answer's timing.
fn same(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::{Array, Dynamic, Map};

    fn guard(pairs: &[(&str, Dynamic)]) -> Result<Guard> {
        let mut map = Map::new();
        for (k, v) in pairs {
            map.insert((*k).into(), v.clone());
        }
        let options = Options::new(&map, &["auth", "cors", "hosts"])?;
        Guard::from_options(&options, "0.0.0.0:0".parse().unwrap())
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn basic_auth_lets_in_only_the_pair() {
        let g = guard(&[("auth", "ann:s3cret".into())]).unwrap();
        // base64("ann:s3cret") = YW5uOnMzY3JldA==
        assert_eq!(
            g.verdict(
                &Method::GET,
                &headers(&[("authorization", "Basic YW5uOnMzY3JldA==")])
            ),
            Verdict::Pass
        );
        // The scheme's name in any case.
        assert_eq!(
            g.verdict(
                &Method::GET,
                &headers(&[("authorization", "bAsIc YW5uOnMzY3JldA==")])
            ),
            Verdict::Pass
        );
        for wrong in [
            "Basic YW5uOnMzY3JldB==",
            "Basic ",
            "Bearer YW5uOnMzY3JldA==",
        ] {
            let Verdict::Answer(status, h) =
                g.verdict(&Method::GET, &headers(&[("authorization", wrong)]))
            else {
                panic!("{wrong} was let in");
            };
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert!(
                h.get("www-authenticate")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("Basic realm=")
            );
        }
        assert!(matches!(
            g.verdict(&Method::GET, &HeaderMap::new()),
            Verdict::Answer(StatusCode::UNAUTHORIZED, _)
        ));
    }

    #[test]
    fn preflight_is_answered_before_auth() {
        let g = guard(&[("auth", "a:b".into()), ("cors", true.into())]).unwrap();
        let pre = headers(&[
            ("origin", "http://x.test"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type"),
        ]);
        let Verdict::Answer(status, h) = g.verdict(&Method::OPTIONS, &pre) else {
            panic!()
        };
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(h.get("access-control-allow-origin").unwrap(), "*");
        assert_eq!(
            h.get("access-control-allow-headers").unwrap(),
            "content-type"
        );
        assert!(
            h.get("access-control-allow-methods")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("PUT")
        );
        // Without cors, OPTIONS is just another request (here: unauthorised).
        let closed = guard(&[("auth", "a:b".into())]).unwrap();
        assert!(matches!(
            closed.verdict(&Method::OPTIONS, &pre),
            Verdict::Answer(StatusCode::UNAUTHORIZED, _)
        ));
    }

    #[test]
    fn a_loopback_server_answers_only_local_host_names() {
        let mut map = Map::new();
        map.insert("hosts".into(), vec![Dynamic::from("MyApp.test")].into());
        let options = Options::new(&map, &["auth", "cors", "hosts"]).unwrap();
        let g = Guard::from_options(&options, "127.0.0.1:8000".parse().unwrap()).unwrap();
        assert!(!g.is_open());
        for ok in [
            "localhost",
            "localhost:8000",
            "LOCALHOST.",
            "app.localhost:1",
            "127.0.0.1",
            "127.0.0.1:8000",
            "[::1]:8000",
            "[::1]",
            "myapp.test:8000",
        ] {
            assert!(g.host_allowed(Some(ok)), "{ok}");
        }
        for bad in [
            "rebind.evil.example",
            "evil.example:8000",
            "localhost.evil.example",
            "x",
        ] {
            assert!(!g.host_allowed(Some(bad)), "{bad}");
        }
        assert!(g.host_allowed(None));
        // On every address, any Host is answered.
        let open = guard(&[]).unwrap();
        assert!(open.is_open() && open.host_allowed(Some("evil.example")));
        let mut map = Map::new();
        map.insert("hosts".into(), vec![Dynamic::from("a:80")].into());
        let options = Options::new(&map, &["hosts"]).unwrap();
        assert!(Guard::from_options(&options, "127.0.0.1:0".parse().unwrap()).is_err());
    }

    #[test]
    fn a_kept_local_name_lets_in_only_itself() {
        let mut map = Map::new();
        map.insert("hosts".into(), Array::new().into());
        let options = Options::new(&map, &["hosts"]).unwrap();
        let g = Guard::from_options(&options, "127.0.0.1:0".parse().unwrap()).unwrap();
        // Each name after a local one kept on this thread: none of the
        // foreign ones passes for it (a prefix, an extension, a case).
        for (local, foreign) in [
            ("127.0.0.1", "127.0.0.1.evil.example"),
            ("127.0.0.1", "127.0.0.12x"),
            ("localhost", "localhost.evil"),
            ("app.localhost", "app.localhos"),
            ("[::1]", "[::1x]"),
        ] {
            assert!(g.host_allowed(Some(local)), "{local}");
            assert!(g.host_allowed(Some(local)), "{local}, kept");
            assert!(!g.host_allowed(Some(foreign)), "{foreign} after {local}");
            assert!(g.host_allowed(Some(local)), "{local} again");
        }
        let long = format!("{}.localhost", "a".repeat(80));
        assert!(g.host_allowed(Some(&long)) && g.host_allowed(Some(&long)));
        assert!(!g.host_allowed(Some(&format!("{}.evil", "a".repeat(80)))));
    }

    #[test]
    fn bad_options_fail() {
        assert!(guard(&[("auth", "nocolon".into())]).is_err());
        assert!(guard(&[("auth", ":pass".into())]).is_err());
        assert!(guard(&[("cors", 3_i64.into())]).is_err());
        assert!(guard(&[("cors", "bad\nvalue".into())]).is_err());
        assert!(guard(&[]).unwrap().is_open());
        assert!(
            !guard(&[("cors", false.into()), ("auth", "a:b".into())])
                .unwrap()
                .is_open()
        );
    }
}
