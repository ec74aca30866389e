//! `http_serve` against real clients (curl, wget, raw sockets) on
//! loopback: routes and params, JSON in and out, status codes, handler
//! errors, keep-alive, HTTP/2 (h2c and TLS with ALPN), the access log, and
//! the bad input a hostile client or a careless script sends.

use std::process::Command;

use crate::support::Peer;

/// Starts `netsh -e` serving `handler` (Rhai: a closure or a map of
/// routes) with `options`, and returns it with its port.
fn server(handler: &str, options: &str) -> (Peer, u16) {
    let code = format!(
        "let s = http_serve(\"127.0.0.1:0\", {handler}, {options}); print(s.port); s.wait()"
    );
    let mut peer = Peer::netsh(&code);
    let port = peer.port();
    (peer, port)
}

/// curl with these arguments; its stdout. The exit status is curl's to
/// report: a test asserts on what it printed.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--noproxy", "*"])
        .args(args)
        .output()
        .expect("running curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A closure answers every path with a string: 200, text/plain.
#[test]
fn a_closure_answers_with_text() {
    let (_s, port) = server("|req| `hello ${req.method} ${req.path}`", "#{quiet: true}");
    let out = curl(&["-i", &format!("http://127.0.0.1:{port}/some/where")]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("content-type: text/plain; charset=utf-8"),
        "{out}"
    );
    assert!(out.ends_with("hello GET /some/where"), "{out}");
}
