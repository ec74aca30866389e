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

use std::{fmt::Display, io, net::SocketAddr, time::Duration};

use std::sync::OnceLock;

use rhai::plugin::*;
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
            message: err.to_string(),
        }
        .throw()
    }
}

/// How a "function not found" signature becomes words: the shell knows every
/// function's help and registers its explainer here, once.
static EXPLAIN_NOT_FOUND: OnceLock<fn(&str) -> String> = OnceLock::new();

/// Sets how a call to a missing function is explained (see [`describe`]).
pub fn explain_missing_functions_with(explain: fn(&str) -> String) {
    let _ = EXPLAIN_NOT_FOUND.set(explain);
}

/// An error as `FILE:LINE:COL: message`, naming the innermost place it
/// happened (inside a called function or plugin if that is where it was).
pub fn describe(err: &EvalAltResult, file: &str) -> String {
    let (file, message, pos) = innermost(err, file);
    match (pos.line(), pos.position()) {
        (Some(line), Some(col)) => format!("{file}:{line}:{col}: {message}"),
        (Some(line), None) => format!("{file}:{line}: {message}"),
        _ => format!("{file}: {message}"),
    }
}

/// The message of an error without Rhai's framing and position suffix.
pub fn message_of(err: &EvalAltResult) -> String {
    innermost(err, "").1
}

fn innermost(err: &EvalAltResult, file: &str) -> (String, String, rhai::Position) {
    let mut err = err;
    let mut file = file.to_string();
    let mut called = Vec::new();
    loop {
        match err {
            EvalAltResult::ErrorInFunctionCall(name, source, inner, _) => {
                if !source.is_empty() {
                    file = source.clone();
                }
                if !name.starts_with("anon$") {
                    called.push(name.clone());
                }
                err = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, _) => {
                if !name.is_empty() {
                    file = name.clone();
                }
                err = inner;
            }
            _ => break,
        }
    }
    let mut message = match err {
        EvalAltResult::ErrorRuntime(value, _) if value.is_string() => value.to_string(),
        EvalAltResult::ErrorRuntime(value, _) if value.is::<NetError>() => value
            .read_lock::<NetError>()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        EvalAltResult::ErrorTerminated(..) => "interrupted".to_string(),
        EvalAltResult::ErrorFunctionNotFound(signature, _) => match EXPLAIN_NOT_FOUND.get() {
            Some(explain) => explain(signature),
            None => format!("no function {signature}"),
        },
        EvalAltResult::ErrorDataRace(name, _) => {
            let what = if name.is_empty() {
                "a variable".to_string()
            } else {
                format!("'{name}'")
            };
            format!(
                "{what} is in use by a call still in progress (on another thread, or a method on it that runs this closure); closures given to task and serve get their own copies of what they capture, and a value meant to change under several tasks goes in share(v) or a channel()"
            )
        }
        EvalAltResult::ErrorStackOverflow(_) => {
            "stack overflow: functions nested more than 64 calls deep".to_string()
        }
        EvalAltResult::ErrorParsing(kind, _) => format!("syntax error: {kind}"),
        // `exit` inside a callback that cannot end the script (a progress
        // closure): say what happened rather than Rhai's "NOT AN ERROR".
        EvalAltResult::Exit(value, _) => format!("exit({value}) cannot end the script from here"),
        other => strip_position(&other.to_string()),
    };
    if let Some(name) = called.last() {
        message.push_str(&format!(" (in function '{name}')"));
    }
    (file, message, err.position())
}

/// Rhai's Display appends ` (line L, position P)`; we print our own.
fn strip_position(text: &str) -> String {
    match text.rfind(" (line ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text.to_string(),
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
fn os_words(err: &io::Error) -> String {
    if err.raw_os_error().is_some() {
        strip_os_suffix(err)
    } else {
        err.to_string()
    }
}

/// The Rhai functions of [`NetError`]: what a script reads off a caught error.
pub fn module() -> Module {
    let mut module = exported_module!(api);
    module.set_custom_type::<NetError>("NetError");
    module
}

/// `help("errors")`: what a caught error holds, and every kind.
pub fn help_text() -> String {
    let mut out = String::from(
        "Every netsh function fails by throwing a NetError that a script can catch\n\
         and branch on without matching text:\n\n\
         \x20   try { connect(\"127.0.0.1:9\") }\n\
         \x20   catch (e) { if e.kind == \"refused\" { print(`nobody there: ${e.message}`) } }\n\n\
         e.kind is one word of the list below, e.op the function that failed, e.message\n\
         the cause; \"\" + e and print(e) give \"op: message\". Errors of Rhai itself\n\
         (a function that does not exist, a wrong type) are maps with a message.\n\nKinds:\n",
    );
    for kind in Kind::ALL {
        out.push_str(&format!("  {:<12} {}\n", kind.as_str(), kind.meaning()));
    }
    out.trim_end().to_string()
}

#[export_module]
mod api {
    use super::NetError;

    /// One word saying what kind of failure this is: `refused`, `timeout`,
    /// `not_found`, `invalid`, `closed`, `reset`, `exists`, `too_big`,
    /// `permission`, `interrupted`, `protocol` or `io` (`help("errors")`).
    ///
    /// ```rhai
    /// try { connect("127.0.0.1:9") } catch (e) { if e.kind == "refused" { print("closed port") } }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "kind", pure)]
    pub fn kind(e: &mut NetError) -> String {
        e.kind.as_str().to_string()
    }

    /// The function that failed, like `"connect"`.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { print(e.op) }   // listen
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "op", pure)]
    pub fn op(e: &mut NetError) -> String {
        e.op.clone()
    }

    /// What went wrong, without the function's name.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { print(e.message) }   // port 70000 is out of range (0–65535)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "message", pure)]
    pub fn message(e: &mut NetError) -> String {
        e.message.clone()
    }

    /// How an error prints: `op: message`, as netsh has always shown it.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { print(e) }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn error_to_string(e: &mut NetError) -> String {
        e.to_string()
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

    /// Every variant has its kind; the words are the documented set.
    #[test]
    fn kinds_of_every_variant() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let cases = [
            (Error::invalid("x"), "invalid"),
            (
                Error::Resolve {
                    host: "h".into(),
                    reason: "r".into(),
                },
                "not_found",
            ),
            (Error::Refused(addr), "refused"),
            (
                Error::Unreachable {
                    addr: "a".into(),
                    reason: "r".into(),
                },
                "io",
            ),
            (Error::Reset("p".into()), "reset"),
            (
                Error::Timeout {
                    what: "w".into(),
                    after: Duration::ZERO,
                },
                "timeout",
            ),
            (Error::Interrupted, "interrupted"),
            (Error::Closed("c".into()), "closed"),
            (Error::InUse("u".into()), "exists"),
            (Error::Exists("e".into()), "exists"),
            (Error::TooBig("t".into()), "too_big"),
            (Error::Permission("p".into()), "permission"),
            (Error::NotFound("n".into()), "not_found"),
            (Error::Protocol("p".into()), "protocol"),
            (
                Error::Upload {
                    kind: Kind::TooBig,
                    message: "m".into(),
                },
                "too_big",
            ),
            (
                Error::Script {
                    kind: Kind::Refused,
                    message: "m".into(),
                },
                "refused",
            ),
            (
                Error::TaskFailed {
                    kind: Kind::Refused,
                    message: "f".into(),
                },
                "refused",
            ),
            (
                Error::io("doing", None, io::ErrorKind::NotFound.into()),
                "not_found",
            ),
            (
                Error::io("doing", None, io::Error::from_raw_os_error(libc::EINVAL)),
                "invalid",
            ),
        ];
        for (err, kind) in cases {
            assert_eq!(err.kind().as_str(), kind, "{err:?}");
        }
        let mut words: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        words.sort();
        words.dedup();
        assert_eq!(words.len(), 12);
    }

    /// A thrown error carries kind, op and message; printed, it is `op: message`.
    #[test]
    fn thrown_errors_are_data_and_print_as_before() {
        let thrown = fail("listen")(Error::invalid("port 70000 is out of range (0–65535)"));
        let caught = NetError::of(&thrown).unwrap();
        assert_eq!(caught.kind, Kind::Invalid);
        assert_eq!(caught.op, "listen");
        assert_eq!(
            caught.to_string(),
            "listen: port 70000 is out of range (0–65535)"
        );
        assert_eq!(kind_of(&thrown), Kind::Invalid);
        let stopped = EvalAltResult::ErrorTerminated(Dynamic::UNIT, Position::NONE);
        assert_eq!(kind_of(&stopped), Kind::Interrupted);
        let missing = EvalAltResult::ErrorFunctionNotFound("f ()".into(), Position::NONE);
        assert_eq!(kind_of(&missing), Kind::Invalid);
    }

    /// OS errors read as words, without Rust's `(os error N)`.
    #[test]
    fn os_errors_lose_their_number() {
        let err = Error::io(
            "sending a datagram to 127.0.0.1:0",
            None,
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert_eq!(
            err.to_string(),
            "sending a datagram to 127.0.0.1:0: invalid argument"
        );
    }
}
