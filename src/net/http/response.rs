//! The value `fetch(url)` returns: status, headers and the whole body in
//! memory, with getters that decide late what the body is (text, blob,
//! JSON), and a printed form a person can read at the REPL.
//!
//! Headers keep their order and repeats; `headers` joins repeated ones with
//! `", "` (RFC 9110 §5.3), except `set-cookie`, whose values may contain
//! commas and are joined with `"\n"` instead.

use std::{sync::Arc, time::Instant};

use futures_util::StreamExt;
use reqwest::Url;
use rhai::{Dynamic, Map};

use super::client::explain;
use super::follow::Hop;
use super::request::Request;
use super::stream::{Decoder, OverLimit};
use crate::error::{Error, Result};
use crate::limits::MAX_STRING_BYTES;
use crate::net::helpers;

/// A finished HTTP exchange (or a file read through a `file://` URL).
#[derive(Clone)]
pub struct Response(Arc<Inner>);

struct Inner {
    status: u16,
    reason: String,
    url: String,
    version: String,
    /// Lower-case names, in the order received, repeats kept.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    seconds: f64,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.0.status
    }

    /// 2xx, as the browser `fetch` API has it.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.0.status)
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }

    pub fn version(&self) -> &str {
        &self.0.version
    }

    pub fn reason(&self) -> &str {
        &self.0.reason
    }

    pub fn seconds(&self) -> f64 {
        self.0.seconds
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0.body
    }

    /// The value of one header (repeats joined), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        let values: Vec<&str> = self
            .0
            .headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        if values.is_empty() {
            return None;
        }
        let separator = if name == "set-cookie" { "\n" } else { ", " };
        Some(values.join(separator))
    }

    /// Every header as a map, names lower-case.
    pub fn headers_map(&self) -> Map {
        let mut map = Map::new();
        for (name, _) in &self.0.headers {
            if !map.contains_key(name.as_str())
                && let Some(value) = self.header(name)
            {
                map.insert(name.as_str().into(), value.into());
            }
        }
        map
    }

    /// The body as text when it is text and its charset decodes.
    pub fn text(&self) -> Option<String> {
        let content_type = self.header("content-type");
        decode_text(&self.0.body, content_type.as_deref())
    }

    /// `body`: text when possible, otherwise a blob.
    pub fn body(&self) -> Dynamic {
        match self.text() {
            Some(text) => text.into(),
            None => Dynamic::from_blob(self.0.body.clone()),
        }
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Dynamic> {
        let parsed: serde_json::Value = serde_json::from_slice(&self.0.body).map_err(|e| {
            let kind = self
                .header("content-type")
                .map(|t| format!(", content-type {}", crate::error::printable(&t)))
                .unwrap_or_default();
            Error::invalid(format!(
                "the body of {} is not JSON: {e} ({} bytes{kind})",
                self.0.url,
                self.0.body.len()
            ))
        })?;
        Ok(helpers::from_json_value(parsed))
    }
}

/// Is this content type text (so a charset applies)?
fn is_text_type(mime: &str) -> bool {
    let (kind, sub) = mime.split_once('/').unwrap_or((mime, ""));
    kind == "text"
        || sub == "json"
        || sub.ends_with("+json")
        || sub == "xml"
        || sub.ends_with("+xml")
        || sub == "javascript"
        || sub == "ecmascript"
        || sub == "x-www-form-urlencoded"
        || sub == "yaml"
        || sub == "x-yaml"
        || sub == "toml"
}

/// The body as text, or `None` when it is not text or does not decode.
/// Without a content type (a `file://` URL, a bare server), text means
/// valid UTF-8 without NUL bytes.
fn decode_text(body: &[u8], content_type: Option<&str>) -> Option<String> {
    let Some(content_type) = content_type else {
        return (!body.contains(&0))
            .then(|| std::str::from_utf8(body).ok().map(str::to_string))
            .flatten();
    };
    let mut parts = content_type.split(';');
    let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !is_text_type(&mime) {
        return None;
    }
    let charset = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| "utf-8".to_string());
    let encoding = encoding_rs::Encoding::for_label(charset.as_bytes())?;
    encoding
        .decode_without_bom_handling_and_without_replacement(body)
        .map(|text| text.into_owned())
}

/// Sends `request` and reads the whole response into memory.
pub async fn fetch(request: &Request) -> Result<Response> {
    if request.url.scheme() == "file" {
        return read_file_url(&request.url).await;
    }
    let started = Instant::now();
    let client = super::client::client(&request.client)?;
    let limits = request.limits();
    // netsh decodes bodies itself (as downloads do), so reqwest is built
    // without its decoders; it asks for what it can decode, as reqwest did.
    let decode = request.client.decode;
    let mut extra = reqwest::header::HeaderMap::new();
    if decode
        && !request
            .headers
            .contains_key(reqwest::header::ACCEPT_ENCODING)
    {
        extra.insert(
            reqwest::header::ACCEPT_ENCODING,
            reqwest::header::HeaderValue::from_static(ACCEPTED_ENCODINGS),
        );
    }
    let (response, hop) = super::follow::send(&client, request, extra).await?;
    let final_url = response.url().clone();
    if let Some(length) = response.content_length()
        && length > MAX_STRING_BYTES as u64
    {
        return Err(hop.fail(too_big(Some(length))));
    }
    let status = response.status();
    let version = match response.version() {
        reqwest::Version::HTTP_2 => "HTTP/2".to_string(),
        reqwest::Version::HTTP_3 => "HTTP/3".to_string(),
        other => format!("{other:?}"),
    };
    let mut decoder = match encoding_of(response.headers()) {
        // Capped, so a small body that expands to gigabytes stops at the
        // limit instead of being decoded whole first.
        Some(name) if decode => Decoder::for_encoding(&name, MAX_STRING_BYTES, MAX_STRING_BYTES),
        _ => None,
    };
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .map_or(0, |n| n.min(64 << 20) as usize),
    );
    let mut sent = 0;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| explain(&e, &hop, limits))?;
        sent += chunk.len();
        let plain = match decoder.as_mut() {
            Some(decoder) => &decoder.feed(&chunk).map_err(undecodable(&hop))?,
            None => &chunk[..],
        };
        if body.len() + plain.len() > MAX_STRING_BYTES {
            return Err(hop.fail(too_big(None)));
        }
        body.extend_from_slice(plain);
    }
    // An empty body (HEAD, 204, 304) has nothing to decode.
    if let Some(decoder) = decoder.filter(|_| sent > 0) {
        let rest = decoder.finish().map_err(undecodable(&hop))?;
        if body.len() + rest.len() > MAX_STRING_BYTES {
            return Err(hop.fail(too_big(None)));
        }
        body.extend_from_slice(&rest);
        // What the headers said of the bytes sent is not true of the
        // decoded body (reqwest's decoders dropped these two as well).
        headers.retain(|(name, _)| name != "content-encoding" && name != "content-length");
    }
    Ok(Response(Arc::new(Inner {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or_default().to_string(),
        url: final_url.to_string(),
        version,
        headers,
        body,
        seconds: started.elapsed().as_secs_f64(),
    })))
}

/// What a fetch into memory says it can decode (`decode: true`).
const ACCEPTED_ENCODINGS: &str = "gzip, br, deflate";

/// The body's `Content-Encoding`, lower-case, unless there is none.
fn encoding_of(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get(reqwest::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty() && v != "identity")
}

/// A body that does not decode, in fetch's words.
fn undecodable(hop: &Hop) -> impl Fn(std::io::Error) -> Error + '_ {
    move |err| {
        if OverLimit::caused(&err) {
            return hop.fail(too_big(None));
        }
        hop.fail(Error::Protocol(format!(
            "the body could not be decoded: {err} (pass #{{decode: false}} to keep it as sent)"
        )))
    }
}

fn too_big(length: Option<u64>) -> Error {
    let size = length.map_or_else(|| "more".to_string(), |n| format!("{n} bytes, more"));
    Error::TooBig(format!(
        "the body is {size} than a script value may hold ({MAX_STRING_BYTES} bytes); save it to a file with fetch(url, path)"
    ))
}

/// A `file://` URL read like a response: status 200, the file as body.
async fn read_file_url(url: &Url) -> Result<Response> {
    let started = Instant::now();
    let path = file_path(url)?;
    let shown = path.display().to_string();
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|e| helpers::file_error("reading", &shown, e))?;
    if !meta.is_file() {
        return Err(Error::invalid(format!(
            "{shown} is not a regular file (a folder, pipe or device)"
        )));
    }
    if meta.len() > MAX_STRING_BYTES as u64 {
        return Err(Error::Fetch {
            url: url.to_string(),
            source: Box::new(too_big(Some(meta.len()))),
        });
    }
    let body = tokio::fs::read(&path)
        .await
        .map_err(|e| helpers::file_error("reading", &shown, e))?;
    Ok(Response(Arc::new(Inner {
        status: 200,
        reason: "OK".into(),
        url: url.to_string(),
        version: "file".into(),
        headers: vec![("content-length".into(), body.len().to_string())],
        body,
        seconds: started.elapsed().as_secs_f64(),
    })))
}

/// The local path of a `file://` URL.
pub fn file_path(url: &Url) -> Result<std::path::PathBuf> {
    url.to_file_path()
        .map_err(|_| Error::invalid(format!("'{url}' is not a local file path")))
}

/// How many body lines and characters the printed form shows.
const PREVIEW_LINES: usize = 12;
const PREVIEW_CHARS: usize = 600;
/// How many headers the printed form shows.
const SHOWN_HEADERS: usize = 6;

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.0;
        writeln!(
            f,
            "{} {} {}  {}  ({:.3} s)",
            r.version, r.status, r.reason, r.url, r.seconds
        )?;
        for (name, value) in r.headers.iter().take(SHOWN_HEADERS) {
            writeln!(f, "{name}: {value}")?;
        }
        if r.headers.len() > SHOWN_HEADERS {
            writeln!(
                f,
                "… {} more headers in .headers",
                r.headers.len() - SHOWN_HEADERS
            )?;
        }
        writeln!(f)?;
        if r.body.is_empty() {
            return write!(f, "(no body)");
        }
        match self.text() {
            Some(text) => {
                let mut shown: String = text
                    .lines()
                    .take(PREVIEW_LINES)
                    .collect::<Vec<_>>()
                    .join("\n");
                if shown.chars().count() > PREVIEW_CHARS {
                    shown = shown.chars().take(PREVIEW_CHARS).collect();
                }
                write!(f, "{shown}")?;
                if shown.len() < text.trim_end().len() {
                    write!(f, "\n… ({} bytes in all: .body)", r.body.len())?;
                }
                Ok(())
            }
            None => {
                let hex: Vec<String> = r.body.iter().take(16).map(|b| format!("{b:02x}")).collect();
                let more = if r.body.len() > 16 { " …" } else { "" };
                write!(
                    f,
                    "(binary, {} bytes: {}{more}; .bytes)",
                    r.body.len(),
                    hex.join(" ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_needs_a_text_type_and_a_charset_that_decodes() {
        assert_eq!(
            decode_text(b"hi", Some("text/plain")).as_deref(),
            Some("hi")
        );
        assert_eq!(
            decode_text(b"{}", Some("application/problem+json")).as_deref(),
            Some("{}")
        );
        assert_eq!(
            decode_text(b"caf\xe9", Some("text/plain; charset=\"ISO-8859-1\"")).as_deref(),
            Some("café")
        );
        assert_eq!(decode_text(b"caf\xe9", Some("text/plain")), None);
        assert_eq!(decode_text(b"hi", Some("image/png")), None);
        assert_eq!(
            decode_text(b"hi", Some("text/plain; charset=nonsense")),
            None
        );
        assert_eq!(decode_text(b"plain", None).as_deref(), Some("plain"));
        assert_eq!(decode_text(b"a\0b", None), None);
    }
}
