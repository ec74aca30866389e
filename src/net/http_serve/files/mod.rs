//! Serving a folder over HTTP, as `python3 -m http.server` done right.
//!
//! - [`path`]: request path to a file inside the folder, or a refusal.
//! - [`listing`]: the directory listing page.
//! - [`range`]: `Range` requests.
//! - [`cache`]: ETag, Last-Modified and conditional requests.
//! - [`mime`]: Content-Type by extension.
//! - [`multipart`]: the upload form's body, read as it streams.

pub mod cache;
pub mod listing;
pub mod mime;
pub mod multipart;
pub mod path;
pub mod range;
