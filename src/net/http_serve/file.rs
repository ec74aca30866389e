//! A `file:` reply: the file's bytes streamed from disk in 64 KiB pieces,
//! with its length, a `Content-Type` from its extension, and one `Range`
//! honoured (206, or 416 when it lies past the end). Several ranges in one
//! request are answered with the whole file, which RFC 9110 allows.

use std::{
    io,
    path::Path,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{
    Response, StatusCode,
    body::{Frame, SizeHint},
    header,
};
use std::io::Seek;
use tokio::io::{AsyncRead, ReadBuf};

use super::body::{self, Body};
use crate::error::{Error, Result};
use crate::net::helpers::file_error;

/// How much of the file one piece of the body carries.
const PIECE: usize = 64 * 1024;

/// The response that sends `path`, the part `range` asks for if it can.
pub fn send(path: &Path, range: Option<&str>) -> Result<Response<Body>> {
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
    let mut response = Response::new(body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type(path)),
    );
    headers.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    let (start, count) = match range.map(|r| parse_range(r, len)) {
        None | Some(Range::Ignored) => (0, len),
        Some(Range::Unsatisfiable) => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            insert(
                &mut response,
                header::CONTENT_RANGE,
                format!("bytes */{len}"),
            );
            return Ok(response);
        }
        Some(Range::Part(start, end)) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            insert(
                &mut response,
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{len}"),
            );
            (start, end - start + 1)
        }
    };
    insert(&mut response, header::CONTENT_LENGTH, count.to_string());
    // A seek is one system call that never waits for the disk.
    let mut file = file;
    file.seek(io::SeekFrom::Start(start))
        .map_err(|e| file_error("reading", path, e))?;
    let body = FileBody {
        file: tokio::fs::File::from_std(file),
        left: count,
        buf: Vec::new(),
    };
    *response.body_mut() = body.boxed();
    Ok(response)
}

fn insert(response: &mut Response<Body>, name: header::HeaderName, value: String) {
    if let Ok(value) = header::HeaderValue::from_str(&value) {
        response.headers_mut().insert(name, value);
    }
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// One range, first and last byte, inclusive.
    Part(u64, u64),
    /// Past the end: 416.
    Unsatisfiable,
    /// Not one byte range we take (several, another unit, malformed):
    /// the whole file.
    Ignored,
}

fn parse_range(header: &str, len: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Range::Ignored;
    };
    if spec.contains(',') {
        return Range::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Ignored;
    };
    let number = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(last) {
            Some(0) => Range::Unsatisfiable,
            Some(n) if len > 0 => Range::Part(len.saturating_sub(n), len - 1),
            Some(_) => Range::Unsatisfiable,
            None => Range::Ignored,
        },
        (false, _) => {
            let Some(start) = number(first) else {
                return Range::Ignored;
            };
            let end = if last.is_empty() {
                Some(len.saturating_sub(1))
            } else {
                number(last)
            };
            match end {
                None => Range::Ignored,
                Some(_) if start >= len => Range::Unsatisfiable,
                Some(end) if end < start => Range::Ignored,
                Some(end) => Range::Part(start, end.min(len - 1)),
            }
        }
        (true, true) => Range::Ignored,
    }
}

/// A few common types; anything else is `application/octet-stream`.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "md" | "rhai") => "text/plain; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("wasm") => "application/wasm",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// `left` bytes of a file, read as hyper asks for them.
struct FileBody {
    file: tokio::fs::File,
    left: u64,
    buf: Vec<u8>,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = &mut *self;
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.left).unwrap_or(PIECE).min(PIECE);
        this.buf.resize(want, 0);
        let mut read = ReadBuf::new(&mut this.buf[..want]);
        ready!(Pin::new(&mut this.file).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        if n == 0 {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file became shorter while it was sent",
            ))));
        }
        this.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(read.filled())))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-9", 100), Range::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Range::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Range::Part(90, 99));
        assert_eq!(parse_range("bytes=-200", 100), Range::Part(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Range::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Range::Ignored);
        assert_eq!(parse_range("items=0-1", 100), Range::Ignored);
        assert_eq!(parse_range("bytes=9-1", 100), Range::Ignored);
        assert_eq!(parse_range("bytes=x-1", 100), Range::Ignored);
    }
}
