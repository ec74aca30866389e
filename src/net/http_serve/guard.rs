//! What stands before every route of an `http_serve`: `auth: "user:pass"`
//! (HTTP Basic; anything else gets 401 with a `WWW-Authenticate` challenge)
//! and `cors: true` (or an origin: the `Access-Control-*` headers on every
//! answer, and CORS preflights answered here, before auth, since a browser
//! sends no credentials with a preflight).

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
    /// Reads `auth` and `cors` from a server's options (already checked for
    /// unknown keys by the caller's `Options::new`).
    pub fn from_options(options: &Options) -> Result<Guard> {
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
                Some(format!("Basic {token}").into_bytes())
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
        Ok(Guard { expected, origin })
    }

    /// Is anything checked at all? (A server without auth or cors skips the guard.)
    pub fn is_open(&self) -> bool {
        self.expected.is_none() && self.origin.is_none()
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
            if !same(given, expected) {
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
    use rhai::{Dynamic, Map};

    fn guard(pairs: &[(&str, Dynamic)]) -> Result<Guard> {
        let mut map = Map::new();
        for (k, v) in pairs {
            map.insert((*k).into(), v.clone());
        }
        let options = Options::new(&map, &["auth", "cors"])?;
        Guard::from_options(&options)
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
