//! `http_serve` against real clients (curl, wget, raw sockets) on
//! loopback: routes and params, JSON in and out, status codes, handler
//! errors, keep-alive, HTTP/2 (h2c and TLS with ALPN), the access log, and
//! the bad input a hostile client or a careless script sends.

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::{Duration, Instant},
};

use crate::support::{Netsh, Peer, has_tool};

mod hostile;

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

/// curl's verbose lines (stderr) and its output, for what it says about
/// the connection.
fn curl_verbose(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sSv", "--max-time", "10", "--noproxy", "*"])
        .args(args)
        .output()
        .expect("running curl");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

/// A request written by hand on a raw socket, and everything the server
/// sent back until it closed or 5 s passed.
fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).expect("sending");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A closure answers every path with a string: 200, text/plain.
#[test]
fn a_closure_answers_with_text() {
    let (_s, port) = server("|req| `hello ${req.method} ${req.path}`", "#{quiet: true}");
    let out = curl(&["-i", &url(port, "/some/where")]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("content-type: text/plain; charset=utf-8"),
        "{out}"
    );
    assert!(out.ends_with("hello GET /some/where"), "{out}");
}

const API: &str = r#"#{
    "GET /items/:id": |req| #{id: req.params.id, route: "one"},
    "GET /items/new": |req| "the form",
    "POST /items": |req| #{status: 201, json: #{made: req.json, n: req.query.n}},
    "/files/*": |req| `rest of ${req.path}`,
}"#;

/// Routes pick by method and path, the most specific first; `:id` is a
/// param, percent-decoded; an unknown path is 404, a known path with
/// another method 405 with `Allow`.
#[test]
fn routes_params_and_methods() {
    let (_s, port) = server(API, "#{quiet: true}");
    assert_eq!(
        curl(&[&url(port, "/items/a%20b")]),
        r#"{"id":"a b","route":"one"}"#
    );
    assert_eq!(curl(&[&url(port, "/items/new")]), "the form");
    assert_eq!(
        curl(&[&url(port, "/files/x/y.txt")]),
        "rest of /files/x/y.txt"
    );
    let missing = curl(&["-i", &url(port, "/nothing")]);
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let wrong = curl(&["-i", "-X", "DELETE", &url(port, "/items/3")]);
    assert!(wrong.starts_with("HTTP/1.1 405"), "{wrong}");
    assert!(wrong.contains("allow: GET, HEAD"), "{wrong}");
    let head = curl(&["-I", &url(port, "/items/3")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// JSON in (`req.json`) and out (a map); a body that is not JSON makes
/// `req.json` fail, which is the client's 500 and the server's log line.
#[test]
fn json_in_and_out() {
    let (mut s, port) = server(API, "#{quiet: true}");
    let out = curl(&[
        "-i",
        "-H",
        "content-type: application/json",
        "--data",
        r#"{"name": "lamp", "tags": [1, 2]}"#,
        &url(port, "/items?n=7"),
    ]);
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    assert!(out.contains("content-type: application/json"), "{out}");
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(body).expect(body);
    assert_eq!(
        value,
        serde_json::json!({"made": {"name": "lamp", "tags": [1, 2]}, "n": "7"})
    );
    let bad = curl(&["-i", "--data", "{nope", &url(port, "/items")]);
    assert!(bad.starts_with("HTTP/1.1 500"), "{bad}");
    s.expect("POST /items: req.json: the request body is not JSON");
}

/// A reply map sets status, headers and body; `()` is 204; a blob is
/// octet-stream; a number is its text.
#[test]
fn replies_set_status_headers_and_type() {
    let routes = r#"#{
        "/made": |req| #{status: 418, headers: #{"x-thing": "yes"}, body: "teapot"},
        "/none": |req| (),
        "/blob": |req| blob(3, 0x41),
        "/number": |req| 42,
    }"#;
    let (_s, port) = server(routes, "#{quiet: true}");
    let made = curl(&["-i", &url(port, "/made")]);
    assert!(made.starts_with("HTTP/1.1 418"), "{made}");
    assert!(made.contains("x-thing: yes"), "{made}");
    assert!(made.ends_with("teapot"), "{made}");
    let none = curl(&["-i", &url(port, "/none")]);
    assert!(none.starts_with("HTTP/1.1 204"), "{none}");
    let blob = curl(&["-i", &url(port, "/blob")]);
    assert!(
        blob.contains("content-type: application/octet-stream"),
        "{blob}"
    );
    assert!(blob.ends_with("AAA"), "{blob}");
    assert_eq!(curl(&[&url(port, "/number")]), "42");
}

/// A handler that throws is a 500 for its request, its error in the log;
/// the next request is served, and `.stats()` counts both.
#[test]
fn a_failing_handler_is_a_500_and_the_server_goes_on() {
    let code = r#"
        let s = http_serve("127.0.0.1:0", #{
            "/boom": |req| throw "the handler broke",
            "/ok": |req| "fine",
        }, #{quiet: true});
        print(s.port);
        while s.stats().requests < 2 { sleep(20) }
        print(`stats ${s.stats().requests} ${s.stats().errors}`);
        s.wait()
    "#;
    let mut s = Peer::netsh(code);
    let port = s.port();
    let boom = curl(&["-i", &url(port, "/boom")]);
    assert!(boom.starts_with("HTTP/1.1 500"), "{boom}");
    assert!(
        !boom.contains("the handler broke"),
        "the error leaked to the client: {boom}"
    );
    s.expect("GET /boom: the handler broke");
    assert_eq!(curl(&[&url(port, "/ok")]), "fine");
    s.expect("stats 2 1");
}

/// curl given several URLs sends them all on one connection.
#[test]
fn keep_alive_reuses_one_connection() {
    let (_s, port) = server(API, "#{quiet: true}");
    let (out, verbose) = curl_verbose(&[
        "-w",
        "[%{num_connects}]",
        &url(port, "/items/1"),
        &url(port, "/items/2"),
        &url(port, "/items/new"),
    ]);
    assert!(
        verbose.contains("Re-using existing connection"),
        "{verbose}"
    );
    assert!(
        out.contains("[1]") && out.matches("[0]").count() == 2,
        "{out}"
    );
}

/// `curl --http2-prior-knowledge` speaks HTTP/2 in clear text (h2c), and
/// the handler sees it.
#[test]
fn http2_in_clear_text() {
    let (_s, port) = server("|req| req.version", "#{quiet: true}");
    let out = curl(&[
        "--http2-prior-knowledge",
        "-w",
        " %{http_version}",
        &url(port, "/"),
    ]);
    assert_eq!(out, "HTTP/2.0 2");
    // The same port still speaks HTTP/1.1.
    assert_eq!(curl(&[&url(port, "/")]), "HTTP/1.1");
}

/// Over TLS, ALPN picks h2 for `curl --http2` and HTTP/1.1 for
/// `--http1.1`; the certificate is the server's own.
#[test]
fn http2_and_http1_over_tls() {
    let (_s, port) = server(
        "|req| `${req.version} ${req.path}`",
        "#{tls: #{self_signed: true}, quiet: true}",
    );
    let https = format!("https://127.0.0.1:{port}/secret");
    let h2 = curl(&["-k", "--http2", "-w", " %{http_version}", &https]);
    assert_eq!(h2, "HTTP/2.0 /secret 2");
    let h1 = curl(&["-k", "--http1.1", "-w", " %{http_version}", &https]);
    assert_eq!(h1, "HTTP/1.1 /secret 1.1");
    // Plain HTTP to a TLS port gets nothing useful back.
    let plain = curl(&[&url(port, "/secret")]);
    assert!(!plain.contains("/secret"), "{plain}");
}

/// wget GETs and POSTs too.
#[test]
fn wget_gets_and_posts() {
    if !has_tool(
        "http_serve::wget_gets_and_posts",
        "wget",
        &["--version"],
        "wget",
    ) {
        return;
    }
    let (_s, port) = server(
        r#"|req| `${req.method} ${req.body} ${req.headers["user-agent"].starts_with("Wget")}`"#,
        "#{quiet: true}",
    );
    let run = |args: &[&str]| {
        let out = Command::new("wget")
            .args(["-q", "-O", "-", "--no-proxy", "--tries=1", "--timeout=10"])
            .args(args)
            .output()
            .expect("running wget");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(run(&[&url(port, "/")]), "GET  true");
    assert_eq!(run(&["--post-data=a=1", &url(port, "/")]), "POST a=1 true");
}

/// Handlers that wait (`sleep`) run side by side, more of them than the
/// server has workers: four requests are all inside their handler at
/// once, on a server of two workers.
#[test]
fn waiting_handlers_run_side_by_side() {
    let code = r#"
        let inside = share(0);
        let s = http_serve("127.0.0.1:0", |req| {
            inside.add(1);
            let waited = 0;
            while inside.get() < 4 && waited < 10000 { sleep(10); waited += 10; }
            if inside.get() >= 4 { "all in" } else { "alone" }
        }, #{quiet: true, workers: 2});
        print(s.port);
        s.wait()
    "#;
    let mut s = Peer::netsh(code);
    let port = s.port();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let u = url(port, "/");
            std::thread::spawn(move || curl(&[&u]))
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), "all in");
    }
}

/// The access log: a common-log-format line per request with the time
/// taken, on stderr; or the entry handed to `log: |entry|`.
#[test]
fn the_access_log_in_common_log_format() {
    let (mut s, port) = server("|req| \"hi\"", "#{}");
    curl(&[&url(port, "/path?q=1")]);
    let line = s.expect("\"GET /path?q=1 HTTP/1.1\"");
    // 127.0.0.1 - - [07/Dec/2026:18:50:21 +0000] "GET /path?q=1 HTTP/1.1" 200 2 0.41ms
    let re = regex_lite(&line);
    assert!(re, "not common log format: {line}");

    let (mut s, port) = server(
        "|req| \"hi\"",
        "#{log: |e| print(`entry ${e.method} ${e.path} ${e.status} ${e.bytes} ${type_of(e.ms)}`)}",
    );
    curl(&[&url(port, "/x")]);
    s.expect("entry GET /x 200 2 f64");
}

/// `127.0.0.1 - - [DD/Mon/YYYY:HH:MM:SS +0000] "…" 200 2 0.41ms`, checked
/// by hand (no regex crate in the tests).
fn regex_lite(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("127.0.0.1 - - [") else {
        return false;
    };
    let Some((when, rest)) = rest.split_once("] \"") else {
        return false;
    };
    let when_ok = when.len() == 26 && when.ends_with(" +0000") && when.as_bytes()[2] == b'/';
    let Some((_, tail)) = rest.split_once("\" ") else {
        return false;
    };
    let parts: Vec<&str> = tail.split(' ').collect();
    when_ok
        && parts.len() == 3
        && parts[0] == "200"
        && parts[1] == "2"
        && parts[2].ends_with("ms")
        && parts[2].trim_end_matches("ms").parse::<f64>().is_ok()
}

/// `quiet: true` logs nothing.
#[test]
fn quiet_logs_nothing() {
    let (mut s, port) = server("|req| \"hi\"", "#{quiet: true}");
    assert_eq!(curl(&[&url(port, "/x")]), "hi");
    s.interrupt();
    s.wait_exit(Duration::from_secs(5));
    let out = s.output();
    assert!(!out.contains("GET /x"), "{out}");
}

/// A `file:` reply sends the file with its length and type, honours one
/// `Range` (206) and refuses one past the end (416).
#[test]
fn a_file_reply_honours_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.txt");
    std::fs::write(&path, "0123456789").unwrap();
    let handler = format!(
        r#"#{{"/f": |req| #{{file: "{}"}}, "/missing": |req| #{{file: "{}/nope"}}}}"#,
        path.display(),
        dir.path().display()
    );
    let (_s, port) = server(&handler, "#{quiet: true}");
    let whole = curl(&["-i", &url(port, "/f")]);
    assert!(whole.contains("content-length: 10"), "{whole}");
    assert!(whole.contains("content-type: text/plain"), "{whole}");
    assert!(whole.ends_with("0123456789"), "{whole}");
    let part = curl(&["-i", "-r", "2-5", &url(port, "/f")]);
    assert!(part.starts_with("HTTP/1.1 206"), "{part}");
    assert!(part.contains("content-range: bytes 2-5/10"), "{part}");
    assert!(part.ends_with("2345"), "{part}");
    let past = curl(&["-i", "-r", "20-30", &url(port, "/f")]);
    assert!(past.starts_with("HTTP/1.1 416"), "{past}");
    let missing = curl(&["-i", &url(port, "/missing")]);
    assert!(missing.starts_with("HTTP/1.1 500"), "{missing}");
}

/// A malformed request line is a 400, a head over the limit a 431, and
/// the server answers the next client.
#[test]
fn malformed_requests_are_refused() {
    let (_s, port) = server("|req| \"fine\"", "#{quiet: true}");
    let garbage = raw(port, b"GARBAGE\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");
    let nul = raw(port, b"GET /a\0b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(nul.starts_with("HTTP/1.1 400"), "{nul:?}");
    // A megabyte of header: refused once the head passes 64 KiB, never
    // read whole.
    let mut big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for i in 0..20_000 {
        big.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(40)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    let answer = {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The server may close while we still write: that is the point.
        let _ = s.write_all(&big);
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        String::from_utf8_lossy(&got).into_owned()
    };
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert_eq!(curl(&[&url(port, "/")]), "fine");
}

/// A client that trickles its headers (slowloris) is cut off after
/// `header_timeout`, and other clients are served meanwhile.
#[test]
fn a_slowloris_client_is_cut_off() {
    let (_s, port) = server("|req| \"fine\"", "#{quiet: true, header_timeout: 800}");
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut closed = false;
    // A header line every 200 ms, for up to 10 s: the server must close
    // long before.
    for i in 0..50 {
        assert_eq!(curl(&[&url(port, "/")]), "fine");
        if slow.write_all(format!("X-{i}: y\r\n").as_bytes()).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1024];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the slow client was never cut off");
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// What a script gets wrong fails at once, saying what: a route key that
/// does not parse (quoted), a handler with the wrong number of
/// parameters, a route value that is not a closure, an unknown option.
#[test]
fn bad_arguments_fail_before_serving() {
    for (code, expected) in [
        (
            r#"http_serve(0, #{"GETT /x": |req| 1})"#,
            r#"http_serve: route "GETT /x": 'GETT' is not a method"#,
        ),
        (
            r#"http_serve(0, #{"x": |req| 1})"#,
            r#"http_serve: route "x": the path must start with '/'"#,
        ),
        (
            r#"http_serve(0, #{"/a/*/b": |req| 1})"#,
            r#"route "/a/*/b": '*' may only end the path"#,
        ),
        (
            r#"http_serve(0, |a, b| 1)"#,
            "http_serve: the handler takes 1 parameter (req), this one takes 2",
        ),
        (
            r#"http_serve(0, #{"/x": || 1})"#,
            r#"the handler of route "/x" takes 1 parameter (req), this one takes 0"#,
        ),
        (
            r#"http_serve(0, #{"/x": 42})"#,
            r#"route "/x": expected a closure"#,
        ),
        (r#"http_serve(0, 42)"#, "http_serve: expected a closure"),
        (
            r#"http_serve(0, |req| 1, #{quite: true})"#,
            "unknown option 'quite'",
        ),
        (
            r#"http_serve(0, |req| 1, #{header_timeout: 0})"#,
            "header_timeout",
        ),
        (r#"http_serve(70000, |req| 1)"#, "70000"),
        (r#"http_serve("1.2.3:80", |req| 1)"#, "http_serve:"),
    ] {
        let err = Netsh::eval_err(code);
        assert!(err.contains(expected), "{code}\n-> {err}");
    }
}

/// The server is a job: listed in `jobs()`, gone after `stop()`, which
/// frees the port.
#[test]
fn the_server_is_a_job() {
    let out = Netsh::eval(
        r#"let s = http_serve("127.0.0.1:0", |req| "x", #{quiet: true});
           let listed = jobs().len();
           let shown = `${s}`;
           s.stop();
           let again = http_serve(`127.0.0.1:${s.port}`, |req| "y", #{quiet: true});
           again.stop();
           `${listed} ${jobs().len()} ${shown.starts_with("HttpServer #")}`"#,
    );
    assert_eq!(out, "1 0 true");
}

/// A body over `max_body` is a 413 before the handler runs; a HEAD gets
/// the GET route's headers and no body.
#[test]
fn a_body_over_the_limit_is_413_and_head_has_no_body() {
    let (_s, port) = server(
        "|req| `got ${req.body.len()}`",
        "#{quiet: true, max_body: 100}",
    );
    let small = curl(&["--data", &"x".repeat(100), &url(port, "/")]);
    assert_eq!(small, "got 100");
    let big = curl(&["-i", "--data", &"x".repeat(101), &url(port, "/")]);
    assert!(big.starts_with("HTTP/1.1 413"), "{big}");
    let head = raw(
        port,
        b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    assert!(head.contains("content-length: 5"), "{head:?}");
    assert!(
        head.ends_with("\r\n\r\n"),
        "a body came with HEAD: {head:?}"
    );
}

/// A `file:` reply reads with the permissions of the script that started
/// the server: refused (a 500, the reason in the log) without
/// `--allow-read` of its folder, sent with it.
#[test]
fn a_file_reply_asks_permission() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.txt");
    std::fs::write(&path, "secret").unwrap();
    let code = format!(
        r#"let s = http_serve("127.0.0.1:0", |req| #{{file: "{}"}}, #{{quiet: true}}); print(s.port); s.wait()"#,
        path.display()
    );
    let home = tempfile::tempdir().unwrap();
    let start = |flags: &[String]| {
        let mut cmd = Command::new(crate::support::netsh_bin());
        cmd.args(flags)
            .arg("-e")
            .arg(&code)
            .env("XDG_CONFIG_HOME", home.path())
            .env("XDG_DATA_HOME", home.path());
        let mut peer = Peer::start(cmd);
        let port = peer.port();
        (peer, port)
    };
    let (mut refused, port) = start(&["--allow-net=127.0.0.1".to_string()]);
    let answer = curl(&["-i", &url(port, "/")]);
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert!(!answer.contains("secret"), "{answer}");
    refused.expect("permission");
    let (_allowed, port) = start(&[
        "--allow-net=127.0.0.1".to_string(),
        format!("--allow-read={}", dir.path().display()),
    ]);
    assert_eq!(curl(&[&url(port, "/")]), "secret");
}
