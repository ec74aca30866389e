//! `http_serve` against what a hostile client or a careless handler does
//! to the server's core: framing headers and statuses a handler must not
//! send, connections that go quiet (before a byte, after HTTP/2's
//! preface, in the middle of a body), handlers that never return, and
//! request bodies that together would take all memory.

use super::{curl, server, url};

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
