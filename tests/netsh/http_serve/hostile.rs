//! `http_serve` against what a hostile client or a careless handler does
//! to the server's core: framing headers and statuses a handler must not
//! send, connections that go quiet (before a byte, after HTTP/2's
//! preface, in the middle of a body), handlers that never return, and
//! request bodies that together would take all memory.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use super::{curl, server, url};
use crate::support::Netsh;

/// A handler's header that frames the response (`content-length`,
/// `transfer-encoding`, `connection`…) is refused: a 500 over HTTP/1.1
/// and HTTP/2, the header named in the log, and the keep-alive
/// connection carries the next answer intact.
#[test]
fn framing_headers_from_a_handler_are_refused() {
    let routes = r#"#{
        "/cl": |req| #{headers: #{"content-length": "5"}, body: "hello, and more that a client would read as the next response"},
        "/te": |req| #{headers: #{"Transfer-Encoding": "chunked"}, body: "x"},
        "/conn": |req| #{headers: #{"connection": "upgrade", "upgrade": "websocket"}, body: "x"},
        "/trailer": |req| #{headers: #{"trailer": "x-sum"}, body: "x"},
        "/ok": |req| "fine",
    }"#;
    let (mut s, port) = server(routes, "#{quiet: true}");
    for path in ["/cl", "/te", "/conn", "/trailer"] {
        let h1 = curl(&["-i", &url(port, path), &url(port, "/ok")]);
        assert!(h1.starts_with("HTTP/1.1 500"), "{path}: {h1}");
        assert!(h1.ends_with("fine"), "{path}: {h1}");
        let h2 = curl(&["-i", "--http2-prior-knowledge", &url(port, path)]);
        assert!(h2.starts_with("HTTP/2 500"), "{path}: {h2}");
    }
    s.expect("GET /cl: the reply sets header 'content-length'");
    s.expect("GET /te: the reply sets header 'transfer-encoding'");
    s.expect("GET /trailer: the reply sets header 'trailer'");
}

/// A status outside 200–599 is the handler's error (a 500, the reason in
/// the log): 101 would hand the connection over, a 1xx is no final answer.
#[test]
fn a_status_outside_200_to_599_is_refused() {
    let (mut s, port) = server(
        "|req| #{status: parse_int(req.query.s), body: \"x\"}",
        "#{quiet: true}",
    );
    for status in ["100", "101", "103", "199", "600", "999"] {
        let out = curl(&[
            "-i",
            "--max-time",
            "3",
            &url(port, &format!("/?s={status}")),
        ]);
        assert!(out.starts_with("HTTP/1.1 500"), "{status}: {out}");
        s.expect(&format!(
            "status {status} is not one a handler may answer with (200-599)"
        ));
    }
    for status in ["200", "599"] {
        let out = curl(&["-i", &url(port, &format!("/?s={status}"))]);
        assert!(out.starts_with(&format!("HTTP/1.1 {status}")), "{out}");
    }
}

/// Reads `s` until the server closes it or `limit` passes: what came, and
/// when it closed (`None`: still open).
fn until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (got, Some(started.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (got, Some(started.elapsed())),
        }
    }
    (got, None)
}

/// With `header_timeout: 500`, a connection that never sends a byte, one
/// that sends only HTTP/2's preface, and a request whose body stops after
/// 3 of its 1000 bytes are all closed within a few seconds (the body's
/// with a 408); the server answers others meanwhile.
#[test]
fn quiet_connections_are_closed() {
    let (_s, port) = server(
        "|req| `got ${req.body.len()}`",
        "#{quiet: true, header_timeout: 500}",
    );
    let limit = Duration::from_secs(6);

    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut preface = TcpStream::connect(("127.0.0.1", port)).unwrap();
    preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stalled
        .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nabc")
        .unwrap();
    assert_eq!(curl(&["--data", "abc", &url(port, "/")]), "got 3");

    let (_, closed) = until_closed(&mut silent, limit);
    assert!(closed.is_some(), "a silent connection stayed open");
    let (_, closed) = until_closed(&mut preface, limit);
    assert!(
        closed.is_some(),
        "a preface-only HTTP/2 connection stayed open"
    );
    let (got, closed) = until_closed(&mut stalled, limit);
    let got = String::from_utf8_lossy(&got);
    assert!(
        closed.is_some(),
        "a stalled body kept its connection: {got:?}"
    );
    assert!(got.starts_with("HTTP/1.1 408"), "{got:?}");
}

/// A handler that computes forever is stopped once its client leaves:
/// two of them (one over HTTP/1.1, one over h2c) on a server of two
/// workers, whose clients give up after a second, leave the server free
/// to answer the next request. (`handler_timeout: 0`: no time limit, so
/// only the client's leaving can stop them.)
#[test]
fn a_handler_whose_client_left_is_stopped() {
    let routes = r#"#{
        "/spin": |req| { print(`spinning ${req.query.n}`); loop {} },
        "/ok": |req| "fine",
    }"#;
    let (mut s, port) = server(routes, "#{quiet: true, workers: 2, handler_timeout: 0}");
    // One after the other: a task that a worker had queued for itself
    // (its LIFO slot) before its handler began to spin waits for that
    // handler, so the second client connects once the first spins.
    let mut spinners = Vec::new();
    for (n, version) in ["--http1.1", "--http2-prior-knowledge"]
        .into_iter()
        .enumerate()
    {
        let u = url(port, &format!("/spin?n={n}"));
        spinners.push(std::thread::spawn(move || {
            curl(&[version, "--max-time", "1", &u])
        }));
        s.expect(&format!("spinning {n}"));
    }
    for spinner in spinners {
        assert_eq!(spinner.join().unwrap(), "");
    }
    assert_eq!(curl(&[&url(port, "/ok")]), "fine");
    s.expect("GET /spin: the client left before the handler returned");
}

/// `handler_timeout` stops a handler that computes or waits too long: a
/// 503, the reason in the log.
#[test]
fn a_handler_past_handler_timeout_is_stopped() {
    let routes = r#"#{
        "/spin": |req| { loop {} },
        "/sleep": |req| { sleep(20000); "woke" },
    }"#;
    let (mut s, port) = server(routes, "#{quiet: true, handler_timeout: 300}");
    for path in ["/spin", "/sleep"] {
        let started = Instant::now();
        let out = curl(&["-i", &url(port, path)]);
        assert!(out.starts_with("HTTP/1.1 503"), "{path}: {out}");
        assert!(started.elapsed() < Duration::from_secs(5), "{path}");
        s.expect(&format!(
            "GET {path}: the handler ran past handler_timeout (300 ms) and was stopped"
        ));
    }
}

/// All bodies held at once share `max_body_total`: while one request's
/// 1000 bytes are in its handler, another of 1000 (declared, or chunked)
/// does not fit in 1500 and is a 503 with `Retry-After`; once the first
/// is answered, it fits again. `max_body_total` below `max_body` fails
/// at once.
#[test]
fn bodies_share_max_body_total() {
    let routes = r#"#{
        "POST /hold": |req| { print("holding"); sleep(1500); `held ${req.body.len()}` },
        "POST /": |req| `got ${req.body.len()}`,
    }"#;
    let (mut s, port) = server(
        routes,
        "#{quiet: true, max_body: 1000, max_body_total: 1500}",
    );
    let body = "x".repeat(1000);
    let holder = {
        let (u, body) = (url(port, "/hold"), body.clone());
        std::thread::spawn(move || curl(&["--data", &body, &u]))
    };
    s.expect("holding");
    let busy = curl(&["-i", "--data", &body, &url(port, "/")]);
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(busy.contains("retry-after: 1"), "{busy}");
    let mut chunked = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request =
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        request.extend_from_slice(format!("fa\r\n{}\r\n", "y".repeat(250)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    chunked.write_all(&request).unwrap();
    let (got, _) = until_closed(&mut chunked, Duration::from_secs(5));
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 503"), "{got:?}");
    assert_eq!(holder.join().unwrap(), "held 1000");
    assert_eq!(curl(&["--data", &body, &url(port, "/")]), "got 1000");

    let err = Netsh::eval_err("http_serve(0, |req| 1, #{max_body: 2000, max_body_total: 1000})");
    assert!(
        err.contains("'max_body_total' (1000) is less than max_body (2000)"),
        "{err}"
    );
}

/// A handler that computes holds up no other request: with one of two
/// workers spinning (its client waiting), another request is answered at
/// once, not when the spinner ends.
#[test]
fn a_computing_handler_holds_up_no_other_request() {
    let routes = r#"#{
        "/spin": |req| { print("spinning"); loop {} },
        "/ok": |req| "fine",
    }"#;
    let (mut s, port) = server(routes, "#{quiet: true, workers: 2, handler_timeout: 0}");
    let u = url(port, "/spin");
    let spinner = std::thread::spawn(move || curl(&["--max-time", "5", &u]));
    s.expect("spinning");
    let started = Instant::now();
    assert_eq!(curl(&["--max-time", "3", &url(port, "/ok")]), "fine");
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert_eq!(spinner.join().unwrap(), "");
}
