//! The one response body type of `http_serve`, so a closure's reply, a
//! folder's file and a WebSocket's 101 all travel the same way through
//! hyper.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};

/// A response body: any stream of bytes, boxed.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// No body at all (a 204, a 304, an answer to HEAD).
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}
