//! Serving a folder over HTTP, as `python3 -m http.server` done right:
//! `http_serve(addr, "./folder"[, opts])` and a route whose value is a
//! folder. [`Folder`] is the route's state; [`Folder::respond`] answers one
//! request.
//!
//! - [`path`]: request path to a file inside the folder, or a refusal (the
//!   one place that decides what a client may reach).
//! - [`listing`]: the directory listing page.
//! - [`range`]: `Range` requests (one, or several as multipart/byteranges).
//! - [`cache`]: ETag, Last-Modified and conditional requests.
//! - [`mime`]: Content-Type by extension.
//! - [`send`]: a file's bytes as a body (gzip too).
//! - [`get`]: GET and HEAD.
//! - [`upload`]: PUT and the form's POST, through `serve_files`'s name rules.
//! - [`multipart`]: the upload form's body, read as it streams.

use std::path::PathBuf;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use super::body::{Body, full};
use crate::error::{Error, Result};
use crate::net::helpers::file_error;
use crate::net::options::Options;
use crate::permit;

pub mod cache;
pub mod get;
pub mod listing;
pub mod mime;
pub mod multipart;
pub mod path;
pub mod range;
pub mod send;
pub mod upload;

/// The option keys folder serving reads (the caller's `Options::new` list
/// includes them).
pub const OPTION_KEYS: [&str; 5] = [
    "upload",
    "compress",
    "follow_links",
    "dotfiles",
    "rate_limit",
];

/// A served folder and how.
pub struct Folder {
    /// Canonical: every path served is checked to be under it.
    pub root: PathBuf,
    /// PUT and the listing's upload form are accepted.
    pub upload: bool,
    /// Text types are gzip-compressed for clients that accept it.
    pub compress: bool,
    /// Symbolic links are followed out of the folder.
    pub follow_links: bool,
    /// Names starting with `.` are listed and served.
    pub dotfiles: bool,
    /// Each response body at most this many bytes a second (to watch a
    /// download's progress, or interrupt one).
    pub rate_limit: Option<u64>,
    /// The permissions of the script that started the server: every file
    /// read or written is checked against them.
    pub permit: permit::Context,
}

impl Folder {
    /// Checks that `dir` is a folder the script may read (and write, for
    /// uploads) and reads the folder options.
    pub fn new(dir: &str, options: &Options) -> Result<Folder> {
        let upload = options.flag("upload", false)?;
        let compress = options.flag("compress", false)?;
        let follow_links = options.flag("follow_links", false)?;
        let dotfiles = options.flag("dotfiles", false)?;
        let rate_limit = options.count_in("rate_limit", 1, u64::MAX)?;
        if dir.is_empty() {
            return Err(Error::invalid("the folder to serve is an empty string"));
        }
        let root = std::fs::canonicalize(dir).map_err(|e| file_error("serve", dir, e))?;
        if !root.is_dir() {
            return Err(Error::invalid(format!(
                "{} is not a folder",
                crate::net::helpers::quoted(std::path::Path::new(dir))
            )));
        }
        permit::read(&root)?;
        if upload {
            permit::write(&root)?;
        }
        Ok(Folder {
            root,
            upload,
            compress,
            follow_links,
            dotfiles,
            rate_limit,
            permit: permit::Context::current(),
        })
    }

    /// Answers one request; `rest` is the raw (still percent-encoded) path
    /// after the route's prefix.
    pub async fn respond<B>(&self, req: Request<B>, rest: &str) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let method = req.method().clone();
        if method == Method::GET || method == Method::HEAD {
            return get::answer(self, &req, rest);
        }
        if self.upload && (method == Method::PUT || method == Method::POST) {
            return upload::answer(self, req, rest).await;
        }
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        let allow = if self.upload {
            "GET, HEAD, PUT, POST"
        } else {
            "GET, HEAD"
        };
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        response
    }
}

/// A short plain-text answer.
pub fn text(status: StatusCode, words: impl Into<String>) -> Response<Body> {
    let words: String = words.into();
    let mut response = Response::new(full(words));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The answer to a refused path.
pub fn refused(why: &path::Refused) -> Response<Body> {
    text(
        StatusCode::from_u16(why.status()).unwrap_or(StatusCode::BAD_REQUEST),
        why.words(),
    )
}
