//! The name a download gets in a folder: from `Content-Disposition` when
//! it is safe, otherwise from the URL, checked with the same rules as an
//! upload's name (`transfer::protocol::safe_name`), since both come from
//! the network and must never leave the folder.

use reqwest::{Url, header};

use crate::error::{Error, Result};
use crate::net::transfer::protocol;

/// A file name from the network, checked with the upload rules (no
/// folders, no `..`, no control characters) and never hidden: a leading
/// dot becomes `_`, so a server cannot plant `.bashrc`.
pub(super) fn network_name(sent: &[u8]) -> std::result::Result<String, String> {
    let name = protocol::safe_name(sent).map_err(|r| r.message)?;
    Ok(match name.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None => name,
    })
}

/// The file name a URL suggests: its last path segment, decoded
/// (`index.html` for a path ending in `/`, as wget does).
pub(super) fn name_from_url(url: &Url) -> Result<String> {
    let last = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or_default();
    if last.is_empty() {
        return Ok("index.html".into());
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(last).collect();
    network_name(&decoded).map_err(|why| {
        Error::invalid(format!(
            "cannot name a file after '{url}': {why}; give a file path instead of a folder"
        ))
    })
}

/// The name a response gives its file: Content-Disposition's when it is
/// safe, otherwise the (final) URL's.
pub(super) fn name_from_response(response: &reqwest::Response, url: &Url) -> Result<String> {
    let offered = response
        .headers()
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| disposition_name(v.as_bytes()));
    match offered.map(|name| network_name(&name)) {
        Some(Ok(name)) => Ok(name),
        _ => name_from_url(url),
    }
}

/// The file name in a Content-Disposition header (RFC 6266): `filename*`
/// (RFC 8187, UTF-8) over `filename`.
fn disposition_name(value: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(value);
    let mut plain = None;
    let mut extended = None;
    for param in split_params(&text).into_iter().skip(1) {
        let Some((key, raw)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let raw = raw.trim();
        if key == "filename*" {
            let mut pieces = raw.splitn(3, '\'');
            if let (Some(charset), Some(_lang), Some(encoded)) =
                (pieces.next(), pieces.next(), pieces.next())
                && charset.eq_ignore_ascii_case("utf-8")
            {
                extended = Some(percent_encoding::percent_decode_str(encoded).collect());
            }
        } else if key == "filename" {
            plain = Some(unquote(raw).into_bytes());
        }
    }
    extended.or(plain)
}

/// Splits at `;` outside double quotes.
fn split_params(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// A quoted-string's content (`"a\"b"` → `a"b`), or a token as it is.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"') else {
        return raw.to_string();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '"' => break,
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_names() {
        let name = |v: &str| {
            disposition_name(v.as_bytes()).map(|n| String::from_utf8_lossy(&n).into_owned())
        };
        assert_eq!(
            name("attachment; filename=\"a b.txt\"").as_deref(),
            Some("a b.txt")
        );
        assert_eq!(
            name("attachment; filename=plain.bin").as_deref(),
            Some("plain.bin")
        );
        assert_eq!(
            name("attachment; filename=\"x.txt\"; filename*=UTF-8''caf%C3%A9.txt").as_deref(),
            Some("café.txt")
        );
        assert_eq!(
            name("attachment; filename=\"semi;colon\\\"q.txt\"").as_deref(),
            Some("semi;colon\"q.txt")
        );
        assert_eq!(name("inline"), None);
    }

    #[test]
    fn hostile_names_are_refused_and_dots_defused() {
        for bad in ["../../x", "/etc/passwd", "a\nb", "..", "x\u{1b}[2J"] {
            assert!(network_name(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert_eq!(network_name(b".bashrc").unwrap(), "_bashrc");
        assert_eq!(network_name(b"dir/report.pdf").unwrap(), "report.pdf");
    }

    #[test]
    fn url_names() {
        let name = |u: &str| name_from_url(&Url::parse(u).unwrap());
        assert_eq!(name("http://h/a/b%20c.txt").unwrap(), "b c.txt");
        assert_eq!(name("http://h/").unwrap(), "index.html");
        assert_eq!(name("http://h/dir/").unwrap(), "index.html");
        assert!(name("http://h/..%2Fetc%2Fpasswd").is_err());
        assert!(name("http://h/x%00y").is_err());
    }
}
