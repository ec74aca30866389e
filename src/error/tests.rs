//! Unit tests of the error type: messages, kinds, and errors as data.

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

/// A panicked thread's words reach the error, whichever way it panicked.
#[test]
fn a_panicked_thread_says_why() {
    let from_str = std::thread::spawn(|| panic!("static words"))
        .join()
        .unwrap_err();
    let from_string = std::thread::spawn(|| panic!("{} words", "formatted"))
        .join()
        .unwrap_err();
    let err = super::thread_failed("the builder", &*from_str);
    assert_eq!(
        err.to_string(),
        "the builder failed (a bug in netsh): static words"
    );
    assert_eq!(err.kind(), super::Kind::Invalid);
    let err = super::thread_failed("the builder", &*from_string);
    assert!(err.to_string().ends_with(": formatted words"), "{err}");
}
