//! The one error type every capability returns, and the one place it becomes
//! a Rhai error with a plain-words message.
//!
//! Capabilities say *what* went wrong (`Error::Refused`, `Error::Timeout`…);
//! [`fail`] adds *which function* it happened in, so every message a user sees
//! reads `connect: connection refused by 127.0.0.1:9`. Rhai then adds the line
//! and column of the call.

use std::{fmt::Display, io, net::SocketAddr, time::Duration};

use rhai::{EvalAltResult, Position};

/// What went wrong, in terms a user of nc or curl would recognise.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller passed something unusable: a bad port, a malformed address…
    #[error("{0}")]
    InvalidArgument(String),
    /// A host name could not be turned into addresses.
    #[error("cannot resolve '{host}': {reason}")]
    Resolve { host: String, reason: String },
    /// Nobody listens there: the peer answered with RST.
    #[error("connection refused by {0}")]
    Refused(SocketAddr),
    /// No route, or the network said the host is unreachable.
    #[error("{addr} is unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The peer dropped an established connection.
    #[error("connection reset by {0}")]
    Reset(String),
    /// Nothing happened within the allowed time.
    #[error("timed out after {} while {what}", human_duration(*after))]
    Timeout { what: String, after: Duration },
    /// The user pressed Ctrl-C (or the task was stopped).
    #[error("interrupted")]
    Interrupted,
    /// The object was used after `.close()` or after the peer went away.
    #[error("{0}")]
    Closed(String),
    /// A port or address is already taken.
    #[error("{0}")]
    InUse(String),
    /// The operating system refused for lack of privilege.
    #[error("{0}")]
    Permission(String),
    /// A thing that was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The other side broke the protocol or sent something we refuse.
    #[error("{0}")]
    Protocol(String),
    /// A background task's closure failed; the text says where and why.
    #[error("the task failed: {0}")]
    TaskFailed(String),
    /// Fetching a URL failed: which URL, and why (refused, timeout, TLS…).
    #[error("{url}: {source}")]
    Fetch {
        url: String,
        #[source]
        source: Box<Error>,
    },
    /// Any other operating-system error, with what we were doing.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a Rhai-callable function returns.
pub type ScriptResult<T> = std::result::Result<T, Box<EvalAltResult>>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// Classifies an I/O error from talking to `peer` while doing `context`.
    ///
    /// Refused, reset and unreachable get their own variants so the message
    /// says what nmap's `--reason` would; the rest keep the OS wording.
    pub fn io(context: impl Display, peer: Option<SocketAddr>, source: io::Error) -> Self {
        use io::ErrorKind::*;
        let raw = source.raw_os_error();
        match (source.kind(), peer) {
            (ConnectionRefused, Some(addr)) => Error::Refused(addr),
            (ConnectionReset | ConnectionAborted | BrokenPipe, Some(addr)) => {
                Error::Reset(addr.to_string())
            }
            (HostUnreachable | NetworkUnreachable, Some(addr)) => Error::Unreachable {
                addr: addr.to_string(),
                reason: strip_os_suffix(&source),
            },
            _ if matches!(raw, Some(libc::EHOSTUNREACH | libc::ENETUNREACH)) => {
                Error::Unreachable {
                    addr: peer.map(|a| a.to_string()).unwrap_or_default(),
                    reason: strip_os_suffix(&source),
                }
            }
            (TimedOut, _) => Error::Timeout {
                what: context.to_string(),
                after: Duration::ZERO,
            },
            (AddrInUse, _) => Error::InUse(format!("{context}: address already in use")),
            (PermissionDenied, _) => Error::Permission(format!("{context}: permission denied")),
            _ => Error::Io {
                context: context.to_string(),
                source,
            },
        }
    }
}

/// Turns an [`Error`] raised inside the Rhai function `op` into the Rhai error
/// the user sees: `op: message`. Use as `.map_err(fail("connect"))`.
pub fn fail(op: &'static str) -> impl Fn(Error) -> Box<EvalAltResult> {
    move |err| rhai_error(format!("{op}: {err}"))
}

/// A Rhai runtime error carrying `message`; Rhai fills in the position.
pub fn rhai_error(message: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(message.into().into(), Position::NONE).into()
}

/// `1.5 s`, `200 ms`: how long, the way a person writes it.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "the system limit".to_string()
    } else if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The OS message without Rust's ` (os error 113)` tail.
fn strip_os_suffix(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_names_the_peer() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let err = Error::io(
            "connect",
            Some(addr),
            io::ErrorKind::ConnectionRefused.into(),
        );
        assert_eq!(err.to_string(), "connection refused by 127.0.0.1:9");
    }

    #[test]
    fn timeout_says_how_long() {
        let err = Error::Timeout {
            what: "connecting to 127.0.0.1:1".into(),
            after: Duration::from_millis(2500),
        };
        assert_eq!(
            err.to_string(),
            "timed out after 2.5 s while connecting to 127.0.0.1:1"
        );
    }
}
