//! GET and HEAD of a served folder: a file (whole, a range, or 304 when
//! the client's copy is current; gzip when asked for and allowed), a
//! folder's `index.html` or its listing, or the refusal `path` gives.

use std::fs::File;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};

use super::cache::Validators;
use super::path::{self, Refused};
use super::range::{self, Wanted};
use super::{Folder, listing, mime, refused, send, text};
use crate::net::http_serve::body::{Body, empty, full};
use crate::net::http_serve::sendfile::Slot;

/// Answers a GET or HEAD for `rest` under the folder.
pub fn answer<B>(folder: &Folder, req: &Request<B>, rest: &str) -> Response<Body> {
    let segs = match path::segments(rest, folder.dotfiles) {
        Ok(segs) => segs,
        Err(why) => return refused(&why),
    };
    let real = match path::reach(&folder.root, &segs, folder.follow_links, folder.dotfiles) {
        Ok(real) => real,
        Err(why) => return refused(&why),
    };
    if folder.permit.read(&real).is_err() {
        return text(StatusCode::FORBIDDEN, "reading that is not permitted\n");
    }
    // Opening and stat'ing hit the page cache and take microseconds; done
    // here rather than on the blocking pool, whose hand-off costs more.
    let file = match path::open(&folder.root, &folder.root_dir, &real, folder.follow_links) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return text(StatusCode::FORBIDDEN, "permission denied\n");
        }
        Err(_) => return refused(&Refused::Missing),
    };
    let Ok(meta) = file.metadata() else {
        return refused(&Refused::Missing);
    };
    let head = req.method() == Method::HEAD;
    if meta.is_dir() {
        let full_path = req.uri().path();
        if !full_path.ends_with('/') {
            let mut response = text(
                StatusCode::MOVED_PERMANENTLY,
                "a folder: see the address ending in /\n",
            );
            // One leading slash only: `//host/x/` in a Location is another site.
            let to = format!("/{}/", full_path.trim_start_matches('/'));
            if let Ok(to) = HeaderValue::from_str(&to) {
                response.headers_mut().insert(header::LOCATION, to);
            }
            return response;
        }
        // index.html is a path like any other: a link named so that leads
        // out of the folder is not followed unless `follow_links`.
        let mut index = segs.clone();
        index.parts.push(b"index.html".to_vec());
        if let Ok(index) = path::reach(&folder.root, &index, folder.follow_links, folder.dotfiles)
            && folder.permit.read(&index).is_ok()
            && let Ok(file) =
                path::open(&folder.root, &folder.root_dir, &index, folder.follow_links)
            && let Ok(meta) = file.metadata()
            && meta.is_file()
        {
            return send_file(folder, req, file, &meta, b"index.html", head);
        }
        return folder_page(folder, &real, full_path, head);
    }
    if !meta.is_file() {
        return refused(&Refused::Missing);
    }
    let name = segs.parts.last().map(Vec::as_slice).unwrap_or(b"");
    send_file(folder, req, file, &meta, name, head)
}

fn folder_page(folder: &Folder, dir: &std::path::Path, shown: &str, head: bool) -> Response<Body> {
    let entries = match listing::entries(dir, folder) {
        Ok(entries) => entries,
        Err(_) => return text(StatusCode::FORBIDDEN, "that folder cannot be listed\n"),
    };
    let shown = percent_encoding::percent_decode_str(shown).decode_utf8_lossy();
    let html = listing::page(&shown, &entries, folder.upload);
    let mut response = Response::new(if head { empty() } else { full(html.clone()) });
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(html.len()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn send_file<B>(
    folder: &Folder,
    req: &Request<B>,
    file: File,
    meta: &std::fs::Metadata,
    name: &[u8],
    head: bool,
) -> Response<Body> {
    let asked = req.headers();
    let size = meta.len();
    let mut validators = Validators::new(size, meta.modified().unwrap_or(std::time::UNIX_EPOCH));
    let content_type = mime::content_type(name);
    let ranged = asked.get(header::RANGE).map(HeaderValue::as_bytes);
    let gzip = folder.compress
        && ranged.is_none()
        && size > 0
        && mime::compressible(content_type)
        && accepts_gzip(asked);
    if gzip {
        // Another representation, so another strong tag.
        validators.etag.insert_str(validators.etag.len() - 1, "-gz");
    }
    let mut response = Response::new(empty());
    let headers = response.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(&validators.etag) {
        headers.insert(header::ETAG, tag);
    }
    if let Ok(date) = HeaderValue::from_str(&validators.last_modified()) {
        headers.insert(header::LAST_MODIFIED, date);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if folder.compress && mime::compressible(content_type) {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    let get = |name| asked.get(name).map(HeaderValue::as_bytes);
    if validators.not_modified(get(header::IF_NONE_MATCH), get(header::IF_MODIFIED_SINCE)) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let wanted = if validators.range_still_valid(get(header::IF_RANGE)) {
        range::wanted(ranged, size)
    } else {
        Wanted::Whole
    };
    let (start, len) = match wanted {
        Wanted::Whole => (0, size),
        Wanted::Part(start, end) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let value = format!("bytes {start}-{}/{size}", end - 1);
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            (start, end - start)
        }
        Wanted::Parts(parts) => {
            return byteranges(
                response,
                file,
                content_type,
                size,
                parts,
                head,
                folder.rate_limit,
            );
        }
        Wanted::Unsatisfiable => {
            let mut response = text(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "that range starts past the end\n",
            );
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
    };
    let headers = response.headers_mut();
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        if !head {
            *response.body_mut() = send::gzip(file, size, folder.rate_limit);
        }
        return response;
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if !head {
        match send::range(
            file,
            start,
            len,
            folder.rate_limit,
            req.extensions().get::<Slot>().cloned(),
        ) {
            Ok(body) => *response.body_mut() = body,
            Err(_) => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the file could not be read\n",
                );
            }
        }
    }
    response
}

/// A 206 of several ranges: `multipart/byteranges` (RFC 9110 §14.6), each
/// part with its own Content-Type and Content-Range.
fn byteranges(
    mut response: Response<Body>,
    file: File,
    content_type: &str,
    size: u64,
    parts: Vec<(u64, u64)>,
    head: bool,
    rate: Option<u64>,
) -> Response<Body> {
    // Random enough that no file's bytes hold it by chance.
    let boundary = format!("netsh-{:016x}{:016x}", rand_u64(), rand_u64());
    let mut length = 0u64;
    let mut pieces = Vec::with_capacity(parts.len());
    for (start, end) in parts {
        let part_head = format!(
            "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {start}-{}/{size}\r\n\r\n",
            end - 1
        );
        length += part_head.len() as u64 + (end - start);
        pieces.push((bytes::Bytes::from(part_head), start, end));
    }
    let tail = format!("\r\n--{boundary}--\r\n");
    length += tail.len() as u64;
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
    {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if !head {
        *response.body_mut() = send::pieces(file, pieces, bytes::Bytes::from(tail), rate);
    }
    response
}

/// 64 unpredictable bits for a boundary (not a secret): std's hasher keys
/// are drawn from the system's random source.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Does the client take gzip (and not with `q=0`)?
fn accepts_gzip(asked: &HeaderMap) -> bool {
    asked.get_all(header::ACCEPT_ENCODING).iter().any(|value| {
        value.to_str().unwrap_or("").split(',').any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !zero
        })
    })
}
