//! The one error type every capability returns, and the one place it becomes
//! a Rhai error with a plain-words message.
//!
//! Capabilities say *what* went wrong (`Error::Refused`, `Error::Timeout`…);
//! [`fail`] adds *which function* it happened in, so every message a user sees
//! reads `connect: connection refused by 127.0.0.1:9`. Rhai then adds the line
//! and column of the call.
//!
//! What a script catches is data, not only text: a [`NetError`] with
//! `e.kind` (one word of a small fixed set, [`Kind`]), `e.op` and
//! `e.message`, whose string form (`"" + e`, `print(e)`) is exactly the
//! `op: cause` text.
//!
//! - `describe.rs` — an uncaught error as `FILE:LINE:COL: message`.
//! - `script.rs` — the Rhai functions of a caught error, and `help("errors")`.

use std::{fmt::Display, io, net::SocketAddr, time::Duration};

use rhai::plugin::*;
use rhai::{EvalAltResult, Position};

mod describe;
mod script;

pub use describe::{describe, explain_missing_functions_with, message_of};
pub use script::{help_text, register_into};

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
    /// A file (or an upload of it) that would be created already exists.
    #[error("{0}")]
    Exists(String),
    /// More data than a limit allows: a datagram, a script value, `max_size`.
    #[error("{0}")]
    TooBig(String),
    /// An upload refused or abandoned, on either side; its kind follows the
    /// wire code (`docs/PROTOCOL.md`), its message is the receiver's reason.
    #[error("{message}")]
    Upload { kind: Kind, message: String },
    /// The operating system refused for lack of privilege.
    #[error("{0}")]
    Permission(String),
    /// A thing that was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The other side broke the protocol or sent something we refuse.
    #[error("{0}")]
    Protocol(String),
    /// A script's own check failed: `assert`, `expect_eq`.
    #[error("{0}")]
    Assertion(String),
    /// A closure the script handed over (a progress callback) failed; the
    /// kind is that of its error.
    #[error("{message}")]
    Script { kind: Kind, message: String },
    /// A background task's closure failed; the text says where and why, and
    /// the kind is that of the closure's error.
    #[error("the task failed: {message}")]
    TaskFailed { kind: Kind, message: String },
    /// Fetching a URL failed: which URL, and why (refused, timeout, TLS…);
    /// the kind is that of the cause.
    #[error("{url}: {source}")]
    Fetch {
        url: String,
        #[source]
        source: Box<Error>,
    },
    /// Any other operating-system error, with what we were doing. The
    /// OS wording is kept, without Rust's ` (os error N)` tail.
    #[error("{context}: {}", os_words(source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a Rhai-callable function returns.
pub type ScriptResult<T> = std::result::Result<T, Box<EvalAltResult>>;

/// The small fixed set of error kinds a script branches on (`e.kind`),
/// documented in README and `help("errors")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Refused,
    Timeout,
    NotFound,
    Invalid,
    Closed,
    Reset,
    Exists,
    TooBig,
    Permission,
    Interrupted,
    Protocol,
    Io,
}

impl Kind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [Kind; 12] = [
        Kind::Refused,
        Kind::Timeout,
        Kind::NotFound,
        Kind::Invalid,
        Kind::Closed,
        Kind::Reset,
        Kind::Exists,
        Kind::TooBig,
        Kind::Permission,
        Kind::Interrupted,
        Kind::Protocol,
        Kind::Io,
    ];

    /// The word a script compares `e.kind` with.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Refused => "refused",
            Kind::Timeout => "timeout",
            Kind::NotFound => "not_found",
            Kind::Invalid => "invalid",
            Kind::Closed => "closed",
            Kind::Reset => "reset",
            Kind::Exists => "exists",
            Kind::TooBig => "too_big",
            Kind::Permission => "permission",
            Kind::Interrupted => "interrupted",
            Kind::Protocol => "protocol",
            Kind::Io => "io",
        }
    }

    /// When a kind is raised, in a user's words.
    pub fn meaning(self) -> &'static str {
        match self {
            Kind::Refused => "nobody listens there: the host answered the connect with RST",
            Kind::Timeout => "nothing happened within the time allowed",
            Kind::NotFound => {
                "a name does not resolve, or a file, service or help topic does not exist"
            }
            Kind::Invalid => {
                "an argument or option is wrong: a malformed address, a port out of range, an unknown option, the wrong type"
            }
            Kind::Closed => {
                "the connection, listener, socket, task or server was closed or stopped"
            }
            Kind::Reset => "the peer dropped the connection (RST, broken pipe)",
            Kind::Exists => {
                "a file of that name exists (or is being uploaded), or the port is in use"
            }
            Kind::TooBig => "more data than a limit allows: a datagram, a script value, max_size",
            Kind::Permission => {
                "the system or the receiver does not allow it (a privileged port, an allow-list)"
            }
            Kind::Interrupted => "Ctrl-C, or stop() on the task doing it",
            Kind::Protocol => {
                "the other side broke the protocol, refused, or sent data that is not what was expected (not UTF-8, a checksum mismatch)"
            }
            Kind::Io => {
                "any other failure: the disk, an unreachable network, out of file handles, a failed task"
            }
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// Which of the fixed [`Kind`]s this error is.
    pub fn kind(&self) -> Kind {
        match self {
            // A failed assert is the script saying a value was not valid.
            Error::InvalidArgument(_) | Error::Assertion(_) => Kind::Invalid,
            Error::Resolve { .. } | Error::NotFound(_) => Kind::NotFound,
            Error::Refused(_) => Kind::Refused,
            Error::Reset(_) => Kind::Reset,
            Error::Timeout { .. } => Kind::Timeout,
            Error::Interrupted => Kind::Interrupted,
            Error::Closed(_) => Kind::Closed,
            Error::InUse(_) | Error::Exists(_) => Kind::Exists,
            Error::TooBig(_) => Kind::TooBig,
            Error::Permission(_) => Kind::Permission,
            Error::Protocol(_) => Kind::Protocol,
            Error::Upload { kind, .. }
            | Error::Script { kind, .. }
            | Error::TaskFailed { kind, .. } => *kind,
            Error::Fetch { source, .. } => source.kind(),
            Error::Unreachable { .. } => Kind::Io,
            Error::Io { source, .. } => io_kind(source),
        }
    }

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

/// The kind of an OS error that no variant of [`Error`] took.
fn io_kind(err: &io::Error) -> Kind {
    use io::ErrorKind::*;
    match err.kind() {
        NotFound => Kind::NotFound,
        AlreadyExists | AddrInUse => Kind::Exists,
        PermissionDenied => Kind::Permission,
        TimedOut => Kind::Timeout,
        ConnectionRefused => Kind::Refused,
        ConnectionReset | ConnectionAborted | BrokenPipe => Kind::Reset,
        InvalidInput | InvalidData => Kind::Invalid,
        FileTooLarge => Kind::TooBig,
        _ => Kind::Io,
    }
}

/// A failure as a script sees it: thrown by every netsh function, caught as
/// `catch (e)`, read as `e.kind`, `e.op`, `e.message`. Printed, it is
/// `op: message`, the text netsh has always shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetError {
    pub op: String,
    pub kind: Kind,
    pub message: String,
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.op.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.op, self.message)
        }
    }
}

impl NetError {
    /// The error `op` failed with, as a thrown Rhai value.
    pub fn throw(self) -> Box<EvalAltResult> {
        EvalAltResult::ErrorRuntime(Dynamic::from(self), Position::NONE).into()
    }

    /// The netsh error inside a Rhai error, if it is one (through the
    /// function calls and modules it passed on its way out).
    pub fn of(err: &EvalAltResult) -> Option<NetError> {
        match err.unwrap_inner() {
            EvalAltResult::ErrorRuntime(value, _) => {
                value.read_lock::<NetError>().map(|e| e.clone())
            }
            _ => None,
        }
    }
}

/// The kind of any Rhai error: a netsh error keeps its own; Rhai's errors
/// and a script's own `throw` get the nearest of the fixed set.
pub fn kind_of(err: &EvalAltResult) -> Kind {
    if let Some(ours) = NetError::of(err) {
        return ours.kind;
    }
    match err.unwrap_inner() {
        EvalAltResult::ErrorTerminated(..) => Kind::Interrupted,
        EvalAltResult::ErrorDataTooLarge(..) => Kind::TooBig,
        EvalAltResult::ErrorVariableNotFound(..)
        | EvalAltResult::ErrorPropertyNotFound(..)
        | EvalAltResult::ErrorModuleNotFound(..) => Kind::NotFound,
        EvalAltResult::ErrorSystem(..) => Kind::Io,
        // Function not found, wrong types, a script's `throw`…: the
        // script asked for something that cannot be done.
        _ => Kind::Invalid,
    }
}

/// Turns an [`Error`] raised inside the Rhai function `op` into the Rhai error
/// the user sees: `op: message`. Use as `.map_err(fail("connect"))`.
pub fn fail(op: &'static str) -> impl Fn(Error) -> Box<EvalAltResult> {
    move |err| {
        NetError {
            op: op.to_string(),
            kind: err.kind(),
            // Messages quote what peers sent (a receiver's refusal, a
            // server's header): whatever slipped through unescaped, it
            // must not drive the user's terminal.
            message: printable(&err.to_string()),
        }
        .throw()
    }
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

/// An I/O error's text for a user: an OS error in lower-case words without
/// its number (`invalid argument`), any other exactly as it was written.
pub fn os_words(err: &io::Error) -> String {
    if err.raw_os_error().is_some() {
        strip_os_suffix(err)
    } else {
        err.to_string()
    }
}

/// Characters that change how text shows without being seen: zero-width
/// spaces and joiners, text-direction marks and overrides, the BOM. In a
/// file name, `report\u{202E}fdp.exe` shows as `reportexe.pdf`.
pub fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Text from a peer (a receiver's refusal, a name, a server's words) made
/// safe to print: control characters (a terminal's escape codes, newlines)
/// and invisible ones are written as escapes like `\u{1b}`, the rest kept.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_invisible(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The error for an argument or option of the wrong type: what was
/// expected, what came (`expected true or false, not a number`).
pub fn wrong_type(expected: &str, got: &Dynamic) -> Error {
    let got = match got.type_name() {
        "i64" => "a number",
        "f64" => "a decimal number",
        "bool" => "true/false",
        "()" => "()",
        "char" => "a character",
        "array" => "an array",
        "map" => "a map",
        "blob" => "a blob",
        "string" => "a string",
        other => other.rsplit("::").next().unwrap_or(other),
    };
    Error::invalid(format!("expected {expected}, not {got}"))
}

/// The error for a thread of netsh's own that panicked (`join`'s error):
/// `what` failed, with the panic's message, so the words reach the script
/// and not only the terminal.
pub fn thread_failed(what: &str, payload: &(dyn std::any::Any + Send)) -> Error {
    let words = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    Error::invalid(format!("{what} failed (a bug in netsh): {words}"))
}

#[cfg(test)]
mod tests;
