//! What a handler returns, made into a response:
//!
//! - a string → 200, `text/plain; charset=utf-8`;
//! - a map or an array → 200, JSON;
//! - a blob → 200, `application/octet-stream`;
//! - `()` → 204 No Content;
//! - a map of only `status`, `headers`, `body`, `json`, `file` → that
//!   response (`status` 200 unless given; `body` as above, `json` any
//!   value as JSON, `file` a path sent with its length, ETag and
//!   Last-Modified, 304 and `Range`/`If-Range` honoured for a 200);
//! - anything else (a number, `true`) → its text.
//!
//! A reply that cannot be made (a status of 1000, a header with a newline,
//! a file that is not there) is the handler's error: a 500, and the reason
//! in the log. So is a status outside 200–599 (a 1xx is not a final
//! answer, and 101 would hand the connection over) and a header that
//! frames the response ([`FRAMING`]): hyper writes those from the body it
//! sends, and one from the handler as well would make the response say
//! one length and carry another, so a keep-alive client would read the
//! rest as the next response.

use std::path::Path;

use bytes::Bytes;
use hyper::{HeaderMap, Response, StatusCode, header};
use rhai::{Array, Blob, Dynamic, Map};

use super::body::{self, Body};
use crate::error::{Error, Result};

/// Headers a handler may not set: they say how the response is framed
/// or how the connection goes on, which is the server's to say (HTTP/2
/// forbids the connection-specific ones outright). Refused, not dropped:
/// a header the script asked for and the client never gets would be a
/// silent change of what the script said.
pub const FRAMING: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
];

/// The keys of a map that describes a response rather than being JSON.
const REPLY_KEYS: &[&str] = &["status", "headers", "body", "json", "file"];

/// The response for a handler's return value. `range` says what the
/// request asked of a file (`Range`, conditionals), for a `file` reply
/// (called only for one).
pub fn response(
    value: Dynamic,
    range: impl FnOnce() -> super::file::Asked,
) -> Result<Response<Body>> {
    let describes = value
        .read_lock::<Map>()
        .is_some_and(|map| !map.is_empty() && map.keys().all(|k| REPLY_KEYS.contains(&k.as_str())));
    if describes {
        return described(value.try_cast::<Map>().unwrap_or_default(), range);
    }
    let mut response = Response::new(body::empty());
    let (bytes, content_type) = content(value)?;
    match bytes {
        None => *response.status_mut() = StatusCode::NO_CONTENT,
        Some(bytes) => {
            set(response.headers_mut(), header::CONTENT_TYPE, content_type);
            *response.body_mut() = body::full(bytes);
        }
    }
    Ok(response)
}

/// A value as bytes and their type; `None` for `()`.
fn content(value: Dynamic) -> Result<(Option<Bytes>, &'static str)> {
    if value.is_unit() {
        return Ok((None, ""));
    }
    if value.is_string() {
        let text = value.into_string().unwrap_or_default();
        return Ok((Some(Bytes::from(text)), "text/plain; charset=utf-8"));
    }
    if value.is_blob() {
        let blob = value.cast::<Blob>();
        return Ok((Some(Bytes::from(blob)), "application/octet-stream"));
    }
    if value.is_map() || value.is::<Array>() {
        return json(&value).map(|b| (Some(b), "application/json"));
    }
    Ok((
        Some(Bytes::from(value.to_string())),
        "text/plain; charset=utf-8",
    ))
}

/// A value as JSON, written straight from it (no `serde_json::Value` in
/// between).
fn json(value: &Dynamic) -> Result<Bytes> {
    // Room for a small object's answer without growing.
    let mut out = Vec::with_capacity(128);
    crate::net::helpers::write_json(value, &mut out)?;
    Ok(Bytes::from(out))
}

/// `#{status, headers, body | json | file}`.
fn described(map: Map, range: impl FnOnce() -> super::file::Asked) -> Result<Response<Body>> {
    let status = match map.get("status") {
        None => StatusCode::OK,
        Some(v) => status(v)?,
    };
    let given = ["body", "json", "file"]
        .iter()
        .filter(|k| map.contains_key(**k))
        .count();
    if given > 1 {
        return Err(Error::invalid(
            "a reply has one of body, json or file, not several",
        ));
    }
    let mut response = if let Some(path) = map.get("file") {
        let path = path
            .clone()
            .into_string()
            .map_err(|_| crate::error::wrong_type("a path as the reply's file", path))?;
        // Only a 200 is made partial or 304; another status goes whole.
        let range = range();
        let asked = if status == StatusCode::OK {
            range
        } else {
            range.whole()
        };
        let mut r = file(Path::new(&path), &asked)?;
        if status != StatusCode::OK {
            *r.status_mut() = status;
        }
        r
    } else {
        let (bytes, content_type) = match map.get("json") {
            Some(v) => (Some(json(v)?), "application/json"),
            None => content(map.get("body").cloned().unwrap_or(Dynamic::UNIT))?,
        };
        let mut r = Response::new(match bytes {
            Some(b) => body::full(b),
            None => body::empty(),
        });
        *r.status_mut() = status;
        if !content_type.is_empty() {
            set(r.headers_mut(), header::CONTENT_TYPE, content_type);
        }
        r
    };
    if let Some(headers) = map.get("headers") {
        let Some(headers) = headers.read_lock::<Map>().map(|m| m.clone()) else {
            return Err(crate::error::wrong_type(
                "a map like #{\"x-thing\": \"value\"} as the reply's headers",
                headers,
            ));
        };
        for (name, value) in headers {
            let name = header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::invalid(format!("'{name}' is not a header name")))?;
            if FRAMING.contains(&name.as_str()) {
                return Err(Error::invalid(format!(
                    "the reply sets header '{name}', which the server sets itself \
                     (it frames the response): leave it out"
                )));
            }
            let text = if value.is_string() {
                value.into_string().unwrap_or_default()
            } else {
                value.to_string()
            };
            let value = header::HeaderValue::from_str(&text).map_err(|_| {
                Error::invalid(format!(
                    "the value of header '{name}' holds a character a header cannot"
                ))
            })?;
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// A final status a handler may answer with: 200–599. A 1xx is an
/// interim answer (and 101 switches protocols), which no reply map can
/// finish; 600 and up mean nothing to a client.
fn status(value: &Dynamic) -> Result<StatusCode> {
    let n = value
        .as_int()
        .map_err(|_| crate::error::wrong_type("a status number like 404", value))?;
    if !(200..=599).contains(&n) {
        return Err(Error::invalid(format!(
            "status {n} is not one a handler may answer with (200-599)"
        )));
    }
    u16::try_from(n)
        .ok()
        .and_then(|n| StatusCode::from_u16(n).ok())
        .ok_or_else(|| Error::invalid(format!("{n} is not an HTTP status (200-599)")))
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &'static str) {
    // The usual types are made at compile time: `from_static` checks
    // every byte when it runs, ~0.2 K instructions a request.
    let value = match value {
        "application/json" => const { header::HeaderValue::from_static("application/json") },
        "text/plain; charset=utf-8" => {
            const { header::HeaderValue::from_static("text/plain; charset=utf-8") }
        }
        other => header::HeaderValue::from_static(other),
    };
    headers.insert(name, value);
}

/// A file, whole or the one range asked for.
fn file(path: &Path, range: &super::file::Asked) -> Result<Response<Body>> {
    super::file::send(path, range)
}
