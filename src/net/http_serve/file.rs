//! A `file:` reply, answered as a served folder's file is (the same
//! `files::` parts): its length, a `Content-Type` from its extension, an
//! `ETag` and `Last-Modified` (a matching `If-None-Match` or
//! `If-Modified-Since` is a 304), one `Range` honoured unless a stale
//! `If-Range` says otherwise (206, or 416 past the end; several ranges get
//! the whole file, which RFC 9110 allows), the bytes read a chunk at a
//! time as hyper asks for them. Only a 200 reply is made partial or 304:
//! `#{status: 201, file}` is sent whole with its status.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use hyper::{HeaderMap, Response, StatusCode, header};

use super::body::{self, Body};
use super::files::{cache::Validators, mime, range, send};
use super::sendfile::Slot;
use crate::error::{Error, Result};
use crate::net::helpers::file_error;

/// What the request asked of a file: its `Range` and conditional headers.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    range: Option<Vec<u8>>,
    if_range: Option<Vec<u8>>,
    if_none_match: Option<Vec<u8>>,
    if_modified_since: Option<Vec<u8>>,
    /// The connection's sendfile slot, on a plain HTTP/1.1 connection.
    sendfile: Option<Slot>,
}

impl Asked {
    /// The headers of a request that bear on a file reply, and the
    /// connection's sendfile slot if it has one.
    pub fn of(headers: &HeaderMap, sendfile: Option<Slot>) -> Asked {
        let get = |name| {
            headers
                .get(name)
                .map(|v: &header::HeaderValue| v.as_bytes().to_vec())
        };
        Asked {
            range: get(header::RANGE),
            if_range: get(header::IF_RANGE),
            if_none_match: get(header::IF_NONE_MATCH),
            if_modified_since: get(header::IF_MODIFIED_SINCE),
            sendfile,
        }
    }

    /// The file whole and unconditionally, still by sendfile if it could be.
    pub fn whole(&self) -> Asked {
        Asked {
            sendfile: self.sendfile.clone(),
            ..Asked::default()
        }
    }
}

/// The response that sends `path`, as `asked` allows.
pub fn send(path: &Path, asked: &Asked) -> Result<Response<Body>> {
    crate::permit::read(path)?;
    let file = std::fs::File::open(path).map_err(|e| file_error("opening", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| file_error("reading", path, e))?;
    if !meta.is_file() {
        return Err(Error::invalid(format!(
            "{} is not a file",
            crate::net::helpers::quoted(path)
        )));
    }
    let len = meta.len();
    let validators = Validators::new(len, meta.modified().unwrap_or(std::time::UNIX_EPOCH));
    let name = path.file_name().map_or(&[][..], |n| n.as_bytes());
    let mut response = Response::new(body::empty());
    let headers = response.headers_mut();
    insert(headers, header::ETAG, &validators.etag);
    insert(headers, header::LAST_MODIFIED, &validators.last_modified());
    headers.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    if validators.not_modified(
        asked.if_none_match.as_deref(),
        asked.if_modified_since.as_deref(),
    ) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(response);
    }
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(mime::content_type(name)),
    );
    let wanted = if validators.range_still_valid(asked.if_range.as_deref()) {
        range::wanted(asked.range.as_deref(), len)
    } else {
        range::Wanted::Whole
    };
    let (start, count) = match wanted {
        range::Wanted::Whole | range::Wanted::Parts(_) => (0, len),
        range::Wanted::Unsatisfiable => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            insert(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{len}"),
            );
            return Ok(response);
        }
        range::Wanted::Part(start, end) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            insert(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes {start}-{}/{len}", end - 1),
            );
            (start, end - start)
        }
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(count));
    *response.body_mut() = send::range(file, start, count, None, asked.sendfile.clone())
        .map_err(|e| file_error("reading", path, e))?;
    Ok(response)
}

fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = header::HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}
