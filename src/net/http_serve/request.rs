//! What a handler is given: the `req` value (`req.method`, `req.path`,
//! `req.query`, `req.params`, `req.headers`, `req.body`, `req.json`,
//! `req.peer`), and the context every part of a request's answer shares
//! ([`RequestCtx`]: who asked, on which server, under which permissions).
//!
//! `req` is a type of its own rather than a map so that `req.json` parses
//! the body only when a handler asks, and fails then with words that say
//! why, instead of every request paying for a parse nobody reads.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::http::request::Parts;
use rhai::{Blob, Dynamic, ImmutableString, Map};

use super::server::Shared;
use crate::error::{Error, Result};

/// The far end of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The connection is TLS.
    pub tls: bool,
}

/// What every part of one request's answer shares.
#[derive(Clone)]
pub struct RequestCtx {
    pub peer: Peer,
    /// The server: its settings (options) and counters.
    pub server: Arc<Shared>,
    /// The permissions of the script that started the server; checks made
    /// for a request (a `file:` reply, a folder's file) go through them.
    pub permit: crate::permit::Context,
    /// The connection, as the watchdog of running handlers sees it.
    pub conn: Arc<super::running::Conn>,
    /// On a plain HTTP/1.1 connection, what lets its file replies go by
    /// sendfile.
    pub sendfile: Option<super::sendfile::Slot>,
}

/// A request as a handler sees it. Its parts stay as hyper read them, and
/// each getter makes its Rhai value when a handler asks: a handler that
/// reads only `req.query` pays for no header map.
#[derive(Clone)]
pub struct Request {
    pub method: hyper::Method,
    pub uri: hyper::Uri,
    pub version: hyper::Version,
    pub header_map: hyper::HeaderMap,
    pub params: Map,
    /// The raw body.
    pub bytes: Bytes,
    pub peer: SocketAddr,
}

impl Request {
    /// The `req` of a request whose body has been read.
    pub fn new(parts: Parts, params: Map, bytes: Bytes, peer: SocketAddr) -> Request {
        Request {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            header_map: parts.headers,
            params,
            bytes,
            peer,
        }
    }

    /// The path, percent-decoded.
    pub fn path(&self) -> String {
        percent_encoding::percent_decode_str(self.uri.path())
            .decode_utf8_lossy()
            .into_owned()
    }

    pub fn query(&self) -> Map {
        query_map(self.uri.query())
    }

    pub fn headers(&self) -> Map {
        header_map(&self.header_map)
    }

    /// `HTTP/1.1`, `HTTP/2.0`…
    pub fn version(&self) -> &'static str {
        match self.version {
            hyper::Version::HTTP_09 => "HTTP/0.9",
            hyper::Version::HTTP_10 => "HTTP/1.0",
            hyper::Version::HTTP_2 => "HTTP/2.0",
            hyper::Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP/1.1",
        }
    }

    /// The body: text when it is UTF-8 (as nearly every API's is), else a
    /// blob.
    pub fn body(&self) -> Dynamic {
        match std::str::from_utf8(&self.bytes) {
            Ok(text) => text.into(),
            Err(_) => Dynamic::from_blob(Blob::from(self.bytes.to_vec())),
        }
    }

    /// The body read as JSON.
    pub fn json(&self) -> Result<Dynamic> {
        if self.bytes.is_empty() {
            return Err(Error::invalid(
                "the request has no body (send JSON with Content-Type: application/json)",
            ));
        }
        match serde_json::from_slice::<serde_json::Value>(&self.bytes) {
            Ok(value) => Ok(crate::net::helpers::from_json_value(value)),
            Err(e) => Err(Error::invalid(format!(
                "the request body is not JSON ({e})"
            ))),
        }
    }

    /// Everything at once, for printing and `req.to_map()`; `json` left
    /// out (it may not parse).
    pub fn to_map(&self) -> Map {
        let mut map = Map::new();
        map.insert("method".into(), self.method.as_str().into());
        map.insert("path".into(), self.path().into());
        map.insert("query".into(), self.query().into());
        map.insert("params".into(), self.params.clone().into());
        map.insert("headers".into(), self.headers().into());
        map.insert("body".into(), self.body());
        map.insert("peer".into(), self.peer.to_string().into());
        map.insert("version".into(), self.version().into());
        map
    }
}

/// `?a=1&b=x%20y` → `#{a: "1", b: "x y"}`; a repeated key keeps its last
/// value.
fn query_map(query: Option<&str>) -> Map {
    let mut map = Map::new();
    let Some(query) = query else {
        return map;
    };
    // Split as `form_urlencoded::parse` splits (at `&`, empty pairs
    // skipped, then at the first `=`); a pair with nothing to decode (no
    // `%`, no `+`, as most are) is taken as it is, which saves its
    // decoding and a copy: ~0.3 K instructions for `?n=5`.
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        if pair.contains(['%', '+']) {
            for (key, value) in url::form_urlencoded::parse(pair.as_bytes()) {
                map.insert(key.as_ref().into(), text(&value));
            }
        } else {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(key.into(), text(value));
        }
    }
    map
}

/// A Rhai string made straight from `text` (no `String` in between).
fn text(text: &str) -> Dynamic {
    Dynamic::from(ImmutableString::from(text))
}

/// Header names in lower case (as HTTP/2 sends them, and as hyper keeps
/// them); a repeated header's values joined with `, `.
fn header_map(headers: &hyper::HeaderMap) -> Map {
    let mut map = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match map.get_mut(name.as_str()) {
            Some(existing) => {
                let joined = format!("{existing}, {value}");
                *existing = joined.into();
            }
            None => {
                map.insert(name.as_str().into(), value.into_owned().into());
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_headers_read_as_maps() {
        let q = query_map(Some("n=1&s=a%20b&n=2&flag"));
        assert_eq!(q["n"].clone().into_string().unwrap(), "2");
        assert_eq!(q["s"].clone().into_string().unwrap(), "a b");
        assert_eq!(q["flag"].clone().into_string().unwrap(), "");
        let mut h = hyper::HeaderMap::new();
        h.append("X-Thing", "a".parse().unwrap());
        h.append("x-thing", "b".parse().unwrap());
        let m = header_map(&h);
        assert_eq!(m["x-thing"].clone().into_string().unwrap(), "a, b");
    }

    #[test]
    fn the_query_reads_as_form_urlencoded_reads_it() {
        for query in [
            "",
            "&&",
            "n=5",
            "a=1&b=2&a=3",
            "=x",
            "k=",
            "k",
            "k=v=w",
            "a+b=c+d",
            "x=%41%zz%",
            "&s=a%20b&&t=caf%C3%A9&u=%FF",
            "p%3Dq=r%26s",
            "é=ü&ok",
        ] {
            let mut expected = Map::new();
            for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
                expected.insert(key.as_ref().into(), value.into_owned().into());
            }
            let got = query_map(Some(query));
            assert_eq!(format!("{got:?}"), format!("{expected:?}"), "{query}");
        }
        assert!(query_map(None).is_empty());
    }

    #[test]
    fn json_fails_with_words() {
        let parts = hyper::Request::builder()
            .uri("/x?y=1")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let req = Request::new(
            parts.clone(),
            Map::new(),
            Bytes::from_static(b"{nope"),
            peer,
        );
        let err = req.json().unwrap_err().to_string();
        assert!(err.contains("not JSON"), "{err}");
        let req = Request::new(
            parts.clone(),
            Map::new(),
            Bytes::from_static(b"{\"a\": [1]}"),
            peer,
        );
        assert!(req.json().unwrap().is_map());
        assert!(req.body().is_string());
        let req = Request::new(parts, Map::new(), Bytes::from_static(b"\xff\x00"), peer);
        assert!(req.body().is_blob());
    }
}
