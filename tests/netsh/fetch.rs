//! `fetch(url)` against real HTTP servers on loopback: a hyper server
//! started by each test (status codes, redirects, headers, JSON, compressed
//! and chunked bodies, slow servers, HTTPS with a self-signed certificate,
//! a proxy) and nginx (gzip as a real server does it).

use std::time::{Duration, Instant};

use crate::support::{
    self, Netsh,
    http::{HttpServer, TEXT},
    nginx::Nginx,
};

/// A printed value on one line, however wide (the REPL wraps long arrays).
fn one_line(out: &str) -> String {
    out.lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .replace("[ ", "[")
        .replace(", ]", "]")
}

/// `netsh -e CODE`, its value on one line.
fn eval(code: &str) -> String {
    one_line(&Netsh::eval(code))
}

/// An address on 127.0.0.1 where nothing listens.
fn closed_addr() -> std::net::SocketAddr {
    ([127, 0, 0, 1], support::closed_port()).into()
}

/// Each status code comes back as a normal result, `ok` only for 2xx.
#[test]
fn status_codes_are_results_with_the_right_ok() {
    let server = HttpServer::start();
    let codes = [200, 201, 204, 301, 302, 304, 404, 500];
    let calls: Vec<String> = codes
        .iter()
        .map(|c| {
            format!(
                r#"{{ let r = fetch("{}", #{{follow_redirects: false}}); `${{r.status}}:${{r.ok}}` }}"#,
                server.url(&format!("status/{c}"))
            )
        })
        .collect();
    let out = eval(&format!("[{}]", calls.join(", ")));
    assert_eq!(
        out,
        r#"["200:true", "201:true", "204:true", "301:false", "302:false", "304:false", "404:false", "500:false"]"#
    );
}

/// Redirect chains are followed to the final URL; `max_redirects` limits
/// them; `follow_redirects: false` returns the redirect itself.
#[test]
fn redirects_are_followed_and_limited() {
    let server = HttpServer::start();
    let out = Netsh::eval(&format!(
        r#"let r = fetch("{}"); [r.status, r.body, r.url]"#,
        server.url("redirect/3")
    ));
    assert_eq!(
        out,
        format!(r#"[200, "landed", "{}"]"#, server.url("redirect/0"))
    );
    let err = Netsh::eval_err(&format!(
        r#"fetch("{}", #{{max_redirects: 2}})"#,
        server.url("redirect/3")
    ));
    assert!(err.contains("too many redirects (more than 2"), "{err}");
    assert!(
        err.contains(&server.url("redirect/3")),
        "names the URL: {err}"
    );
    let out = Netsh::eval(&format!(
        r#"let r = fetch("{}", #{{follow_redirects: false}}); [r.status, r.headers.location]"#,
        server.url("redirect/1")
    ));
    assert_eq!(out, r#"[302, "/redirect/0"]"#);
}

/// A redirect to a scheme fetch does not follow, or to port 0, is an error
/// that says where it led; saving to a file says the same.
#[test]
fn redirects_off_http_are_refused_with_their_target() {
    let server = HttpServer::start();
    for (to, why) in [
        (
            "ftp://127.0.0.1/x",
            "fetch follows redirects to http and https URLs only",
        ),
        ("http://127.0.0.1:0/x", "port 0 cannot be sent to"),
    ] {
        let err = Netsh::eval_err(&format!(
            r#"fetch("{}")"#,
            server.url(&format!("to?url={to}"))
        ));
        assert!(
            err.contains(&format!("redirect to {to} refused: ")) && err.contains(why),
            "{err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let err = Netsh::eval_err(&format!(
        r#"fetch("{}", "{}")"#,
        server.url("to?url=file:///etc/passwd"),
        path.display()
    ));
    assert!(
        err.contains("redirect to file:///etc/passwd refused: fetch follows redirects to http and https URLs only"),
        "{err}"
    );
    assert!(!path.exists());
    // Not following, a download says where the redirect led.
    let err = Netsh::eval_err(&format!(
        r#"fetch("{}", "{}", #{{follow_redirects: false}})"#,
        server.url("to?url=/elsewhere"),
        path.display()
    ));
    assert!(
        err.contains("the server answered 302 Found (a redirect to '/elsewhere', not followed); nothing was saved"),
        "{err}"
    );
}

/// A redirect loop is an error that shows the loop, found at once.
#[test]
fn a_redirect_loop_is_an_error() {
    let server = HttpServer::start();
    let err = Netsh::eval_err(&format!(r#"fetch("{}")"#, server.url("loop/a")));
    assert!(err.contains("redirect loop"), "{err}");
    assert!(
        err.contains(&format!(
            "{} → {} → {}",
            server.url("loop/a"),
            server.url("loop/b"),
            server.url("loop/a")
        )),
        "{err}"
    );
    let loop_requests = server
        .seen()
        .iter()
        .filter(|s| s.path.starts_with("/loop"))
        .count();
    assert_eq!(
        loop_requests, 2,
        "stopped as soon as a URL came round again"
    );
}

/// Headers go out as given (plus user agent, auth) and come back with
/// lower-case names, repeats joined.
#[test]
fn headers_both_ways() {
    let server = HttpServer::start();
    let out = eval(&format!(
        r#"let h = fetch("{echo}", #{{headers: #{{"X-Token": "abc", "x-num": 5}}, user_agent: "tester/1", bearer: "tok"}}).json.headers;
           let d = fetch("{echo}").json.headers;
           let b = fetch("{echo}", #{{basic_auth: "user:pw"}}).json.headers;
           let r = fetch("{headers}");
           [h["x-token"], h["x-num"], h["user-agent"], h.authorization, d["user-agent"].starts_with("netsh/"),
            b.authorization, r.headers["x-one"], r.headers["x-multi"], r.headers["set-cookie"]]"#,
        echo = server.url("echo"),
        headers = server.url("headers"),
    ));
    assert_eq!(
        out,
        r#"["abc", "5", "tester/1", "Bearer tok", true, "Basic dXNlcjpwdw==", "1", "a, b", "a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT\nb=2"]"#
    );
}

/// `json:` is sent as JSON (a POST), `form:` url-encoded, `query:` on the
/// URL; a JSON response parses with `.json`, and a body that is not JSON
/// says so.
#[test]
fn json_form_and_query() {
    let server = HttpServer::start();
    let out = eval(&format!(
        r#"let j = fetch("{echo}", #{{json: #{{a: 1, b: [true, ()]}}}}).json;
           let f = fetch("{echo}", #{{form: #{{name: "x y", n: 1}}, method: "put"}}).json;
           let q = fetch("{echo}", #{{query: #{{q: "a&b"}}}}).json;
           let doc = fetch("{json}").json;
           [j.method, j.headers["content-type"], parse_json(j.body).b, f.method, f.body, f.headers["content-type"], q.query, doc.nested.ok, doc.nested.none, doc.list]"#,
        echo = server.url("echo"),
        json = server.url("json"),
    ));
    assert_eq!(
        out,
        r#"["POST", "application/json", [true, ()], "PUT", "n=1&name=x+y", "application/x-www-form-urlencoded", "q=a%26b", true, (), [1, 2, 3]]"#
    );
    let err = Netsh::eval_err(&format!(r#"fetch("{}").json"#, server.url("headers")));
    assert!(
        err.contains("json: the body of") && err.contains("is not JSON"),
        "{err}"
    );
}

/// gzip, brotli and deflate bodies are decoded; `decode: false` keeps them as sent.
#[test]
fn compressed_bodies_are_decoded() {
    let server = HttpServer::start();
    let expected = TEXT.repeat(20);
    for route in ["gzip", "br", "deflate"] {
        let out = Netsh::eval(&format!(r#"fetch("{}").body"#, server.url(route)));
        assert_eq!(out, expected.trim_end(), "{route}");
    }
    let sent = server
        .last_header("/deflate", "accept-encoding")
        .unwrap_or_default();
    assert!(sent.contains("gzip") && sent.contains("br"), "{sent}");
    let out = Netsh::eval(&format!(
        r#"let r = fetch("{}", #{{decode: false}}); [r.headers["content-encoding"], r.bytes[0], r.bytes[1]]"#,
        server.url("gzip")
    ));
    assert_eq!(out, "[\"gzip\", 31, 139]");
}

/// A decoded body drops the headers that described the bytes sent; an empty
/// one (HEAD) decodes to nothing; a body that claims gzip and is not fails
/// in plain words, and `decode: false` gets its bytes as sent.
#[test]
fn decoding_in_memory_is_netshs_own() {
    let server = HttpServer::start();
    let out = eval(&format!(
        r#"let r = fetch("{0}"); let h = fetch("{0}", #{{method: "HEAD"}});
           [r.headers["content-encoding"], r.headers["content-length"], h.status, h.bytes.len()]"#,
        server.url("gzip")
    ));
    assert_eq!(out, "[(), (), 200, 0]");
    let err = Netsh::eval_err(&format!(r#"fetch("{}")"#, server.url("bad-gzip")));
    assert!(
        err.contains("could not be decoded") && err.contains("#{decode: false}"),
        "{err}"
    );
    assert!(err.contains("bad-gzip"), "names the URL: {err}");
    let out = Netsh::eval(&format!(
        r#"fetch("{}", #{{decode: false}}).body"#,
        server.url("bad-gzip")
    ));
    assert_eq!(out, "this was never gzip");
}

/// A loopback server that answers one request with a brotli body of 3 KB
/// that expands to 4 GiB of zeros; its port.
fn serve_a_decompression_bomb() -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    // 4 GiB of zeros, brotli at quality 5 with a 16 MiB window.
    let bomb: &[u8] = include_bytes!("support/zeros-4gib.br");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
    let port = listener.local_addr().expect("local addr").port();
    let server = std::thread::spawn(move || {
        let Ok((mut peer, _)) = listener.accept() else {
            return;
        };
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match peer.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: br\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bomb.len()
        );
        let _ = peer.write_all(head.as_bytes());
        let _ = peer.write_all(bomb);
    });
    (port, server)
}

/// A brotli body of 3 KB that expands to 4 GiB stops at the size limit
/// with a clear `too_big` error, instead of being decoded whole first.
#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    let (port, server) = serve_a_decompression_bomb();
    // An address-space limit the limit itself fits in (1 GiB decoded) and
    // the whole bomb does not: without a bound netsh aborts on allocation.
    let run = Netsh::wrapped(&["prlimit", "--as=3758096384", "--"])
        .args([
            "-e",
            &format!(
                r#"try {{ fetch("http://127.0.0.1:{port}/bomb") }} catch (e) {{ print(e.kind + " | " + e) }}"#
            ),
        ])
        .output();
    let _ = server.join();
    let out = run.stdout();
    assert_eq!(run.code(), Some(0), "{}", run.explain());
    assert!(
        out.starts_with("too_big | ")
            && out.contains("than a script value may hold")
            && out.contains("fetch(url, path)"),
        "{}",
        run.explain()
    );
}

/// The same bomb downloaded to a file: decoded a slice at a time, each
/// slice's output bounded, so it fails in words (under an address-space
/// limit a 4 GiB allocation would abort) instead of taking the process.
#[test]
fn a_decompression_bomb_in_a_download_fails_in_words() {
    let (port, server) = serve_a_decompression_bomb();
    let dir = tempfile::tempdir().expect("temp dir");
    let dest = dir.path().join("bomb.txt");
    let run = Netsh::wrapped(&["prlimit", "--as=3758096384", "--"])
        .args([
            "-e",
            &format!(
                r#"try {{ fetch("http://127.0.0.1:{port}/bomb", "{}", #{{progress: false}}) }} catch (e) {{ print(e.kind + " | " + e) }}"#,
                dest.display()
            ),
        ])
        .output();
    let _ = server.join();
    let out = run.stdout();
    assert_eq!(run.code(), Some(0), "{}", run.explain());
    assert!(
        out.starts_with("protocol | ")
            && out.contains("decompression bomb")
            && out.contains("decode: false"),
        "{}",
        run.explain()
    );
    assert!(!dest.exists(), "the bomb reached its final name");
}

/// A chunked body without Content-Length arrives whole.
#[test]
fn a_chunked_body_arrives_whole() {
    let server = HttpServer::start();
    let out = Netsh::eval(&format!(
        r#"let r = fetch("{}"); [r.headers["transfer-encoding"], r.headers["content-length"], r.body]"#,
        server.url("chunked")
    ));
    assert_eq!(
        out,
        r#"["chunked", (), "piece 0\npiece 1\npiece 2\npiece 3\npiece 4\n"]"#
    );
}

/// A server slower than `timeout` fails with a timeout naming the URL,
/// promptly; with a longer timeout the same server answers.
#[test]
fn a_slow_server_against_timeout() {
    let server = HttpServer::start();
    let started = Instant::now();
    let err = Netsh::eval_err(&format!(
        r#"fetch("{}", #{{timeout: 300}})"#,
        server.url("slow-body?ms=10000")
    ));
    assert!(err.contains("timed out after 300 ms"), "{err}");
    assert_eq!(
        err.matches("slow-body").count(),
        1,
        "names the URL once: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let out = Netsh::eval(&format!(
        r#"fetch("{}", #{{timeout: 5000}}).body"#,
        server.url("slow-body?ms=100")
    ));
    assert_eq!(out, "finally");
}

/// HTTPS to a self-signed server is refused by default, and works with
/// `ca:` (over HTTP/2) or `insecure: true`.
#[test]
fn https_with_a_self_signed_certificate() {
    let server = HttpServer::start_tls();
    let url = server.url("json");
    let err = Netsh::eval_err(&format!(r#"fetch("{url}")"#));
    assert!(err.contains("the certificate is not trusted"), "{err}");
    assert!(
        err.contains("#{ca: \"cert.pem\"}") && err.contains("#{insecure: true}"),
        "says how to fix it with fetch's options: {err}"
    );
    let pem = server.cert_pem.as_ref().unwrap().display().to_string();
    let out = Netsh::eval(&format!(
        r#"let r = fetch("{url}", #{{ca: "{pem}"}}); [r.status, r.version, r.json.name]"#
    ));
    assert_eq!(out, r#"[200, "HTTP/2", "netsh"]"#);
    let out = Netsh::eval(&format!(r#"fetch("{url}", #{{insecure: true}}).status"#));
    assert_eq!(out, "200");
}

/// Bad input fails with a clear error before anything is sent; nothing panics.
#[test]
fn bad_input_gets_clear_errors() {
    let closed = closed_addr();
    let server = HttpServer::start();
    let url = server.url("json");
    let cases = [
        (
            r#"fetch("not a url")"#.to_string(),
            "'not a url' is not a URL".to_string(),
        ),
        (
            r#"fetch("ftp://127.0.0.1/x")"#.into(),
            "unsupported scheme 'ftp'".into(),
        ),
        (
            format!(r#"fetch("http://{closed}/")"#),
            format!("http://{closed}/: connection refused by {closed}"),
        ),
        (
            r#"fetch("http://nohost.invalid/")"#.into(),
            "cannot resolve 'nohost.invalid'".into(),
        ),
        (
            r#"fetch("http://127.1/")"#.into(),
            "'127.1' is not an address (".into(),
        ),
        (
            format!(r#"fetch("{url}", #{{timeout: "soon"}})"#),
            "option 'timeout': expected a number of milliseconds, not a string".into(),
        ),
        (
            format!(r#"fetch("{url}", #{{headers: 5}})"#),
            "option 'headers': expected a map".into(),
        ),
        (
            format!(r#"fetch("{url}", #{{tiemout: 5}})"#),
            "unknown option 'tiemout' (known: method,".into(),
        ),
        (
            format!(r#"fetch("{url}", #{{body: "a", json: 1}})"#),
            "give one of 'body', 'json' and 'form'".into(),
        ),
        (
            format!(r#"fetch("{url}", #{{progress: false}})"#),
            "option 'progress' applies to downloads".into(),
        ),
        (
            format!(r#"fetch("{url}", #{{method: "BAD METHOD"}})"#),
            "is not an HTTP method".into(),
        ),
        (
            format!(r#"fetch("{url}", #{{headers: #{{"x": "a\nb"}}}})"#),
            "characters a header cannot carry".into(),
        ),
        (
            format!(r#"fetch("{url}", #{{ca: "/nonexistent.pem"}})"#),
            "\"/nonexistent.pem\": no such file".into(),
        ),
        (r#"fetch(8080)"#.into(), "expected a URL string".into()),
        (
            format!(r#"fetch("{url}", 5)"#),
            "a path string or an options map".into(),
        ),
        (
            r#"fetch("file:///nonexistent/x")"#.into(),
            "\"/nonexistent/x\": no such file".into(),
        ),
    ];
    for (code, expected) in cases {
        let err = Netsh::eval_err(&code);
        assert!(
            err.contains(&format!("fetch: {expected}")) || err.contains(&expected),
            "{code}\n  said: {err}\n  wanted: {expected}"
        );
        assert!(!err.contains("panicked"), "{code}: {err}");
    }
    let json_requests = server.seen().len();
    assert_eq!(json_requests, 0, "nothing was sent for bad input");
}

/// A body bigger than a script value may hold is refused up front, with a
/// pointer to downloading it instead.
#[test]
fn a_body_over_the_limit_says_to_download_it() {
    let server = HttpServer::start();
    let err = Netsh::eval_err(&format!(r#"fetch("{}")"#, server.url("huge")));
    assert!(
        err.contains("2147483648 bytes, more than a script value may hold"),
        "{err}"
    );
    assert!(err.contains("fetch(url, path)"), "{err}");
}

/// A response prints as a status line, headers and a short body preview.
#[test]
fn a_response_prints_readably() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let file = dir.path().join("long.txt");
    std::fs::write(&file, &text).unwrap();
    let out = Netsh::eval(&format!(r#"fetch("file://{}")"#, file.display()));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("file 200 OK  file://"), "{out}");
    assert!(
        out.contains(&format!("content-length: {}", text.len())),
        "{out}"
    );
    assert!(out.contains("line 0\nline 1\n"), "{out}");
    assert!(
        out.contains(&format!("({} bytes in all: .body)", text.len())),
        "{out}"
    );
    assert!(
        out.len() < 1000,
        "a preview, not the whole body: {} chars",
        out.len()
    );

    let server = HttpServer::start();
    let out = Netsh::eval(&format!(r#"fetch("{}")"#, server.url("status/404")));
    assert!(out.starts_with("HTTP/1.1 404 Not Found  http://"), "{out}");
    assert!(out.ends_with("status 404"), "{out}");
}

/// file:// URLs read local files, as text or blob, and download like any URL.
#[test]
fn file_urls_work() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "hello file\n").unwrap();
    std::fs::write(dir.path().join("b.bin"), [0u8, 159, 146, 150]).unwrap();
    let out = Netsh::eval(&format!(
        r#"let a = fetch("file://{d}/a.txt"); let b = fetch("file://{d}/b.bin");
           let c = fetch("file://{d}/a.txt", "{d}/copy.txt", #{{hash: true}});
           [a.status, a.body, type_of(b.body), b.bytes.len(), c.bytes, c.sha256 == sha256("hello file\n")]"#,
        d = dir.path().display()
    ));
    assert_eq!(out, r#"[200, "hello file\n", "blob", 4, 11, true]"#);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("copy.txt")).unwrap(),
        "hello file\n"
    );
}

/// `http_proxy` sends requests through the proxy; `no_proxy` exempts hosts.
#[test]
fn proxies_come_from_the_environment() {
    let proxy = HttpServer::start();
    let closed = closed_addr();
    let target = format!("http://{closed}/through");
    let out = Netsh::new()
        .env("http_proxy", format!("http://{}", proxy.addr))
        .args(["-e", &format!(r#"fetch("{target}").body"#)])
        .ok()
        .stdout();
    assert_eq!(out, format!("proxied {target}"));
    let run = Netsh::new()
        .env("http_proxy", format!("http://{}", proxy.addr))
        .env("no_proxy", "127.0.0.1")
        .args(["-e", &format!(r#"fetch("{target}").body"#)])
        .output();
    run.expect_code(1);
    assert!(
        run.stderr().contains("connection refused"),
        "{}",
        run.explain()
    );
}

/// Many fetches in one script reuse one connection. (hyper may open a
/// second while the first is on its way back to the pool; never more.)
#[test]
fn fetches_in_a_loop_reuse_one_connection() {
    let server = HttpServer::start();
    let out = Netsh::eval(&format!(
        r#"let n = 0; for i in 0..50 {{ if fetch("{}").ok {{ n += 1 }} }} n"#,
        server.url("json")
    ));
    assert_eq!(out, "50");
    let connections = server
        .state
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(connections <= 2, "{connections} connections for 50 fetches");
}

/// nginx's gzip is decoded like any other; `decode: false` (asking for
/// gzip explicitly) shows what it sends.
#[test]
fn nginx_gzip_is_decoded() {
    let root = tempfile::tempdir().unwrap();
    let text = "nginx compresses text/plain when the client accepts gzip.\n".repeat(100);
    std::fs::write(root.path().join("notes.txt"), &text).unwrap();
    let Some(nginx) = Nginx::start("nginx_gzip_is_decoded", root.path()) else {
        return;
    };
    let url = nginx.url("notes.txt");
    let out = Netsh::eval(&format!(
        r#"let r = fetch("{url}"); let raw = fetch("{url}", #{{decode: false, headers: #{{"accept-encoding": "gzip"}}}});
           [r.body.len(), r.body == read_file("{}"), raw.headers["content-encoding"], raw.bytes.len() < 400]"#,
        root.path().join("notes.txt").display()
    ));
    assert_eq!(out, format!("[{}, true, \"gzip\", true]", text.len()));
}

/// Ctrl-C in the REPL stops a fetch waiting on a server that has not sent
/// its body yet, and the next line works.
#[test]
fn ctrl_c_stops_a_waiting_fetch() {
    use expectrl::{ControlCode, Expect};
    let server = HttpServer::start();
    let home = tempfile::tempdir().unwrap();
    let mut pty = support::repl(home.path());
    pty.send_line(format!(
        r#"fetch("{}").body"#,
        server.url("slow-body?ms=60000")
    ))
    .unwrap();
    support::wait_until(Duration::from_secs(10), "the request to arrive", || {
        server.seen().iter().any(|s| s.path == "/slow-body")
    });
    std::thread::sleep(Duration::from_millis(300));
    let early = pty.check(expectrl::Regex("fetch:|finally")).unwrap();
    assert!(
        early.is_empty(),
        "the fetch returned before Ctrl-C: it was not blocked"
    );
    let started = Instant::now();
    pty.send(ControlCode::EndOfText).unwrap();
    pty.expect("fetch: interrupted")
        .expect("the fetch to say it was interrupted");
    pty.expect("netsh> ").expect("the prompt back");
    assert!(started.elapsed() < Duration::from_secs(5));
    pty.send_line(format!(r#"fetch("{}").status"#, server.url("status/201")))
        .unwrap();
    pty.expect("201").expect("the next fetch to work");
}

/// `stop()` ends a task's fetch that is waiting for a slow body (the task
/// still running half a second in, the request seen by the server), promptly.
#[test]
fn stop_ends_a_fetch_in_a_task() {
    let server = HttpServer::start();
    let run = Netsh::new()
        .arg("-e")
        .arg(format!(
            r#"let t = task(|| fetch("{}").body);
               sleep(500);
               print(t.done);
               let started = timestamp();
               t.stop();
               try {{ t.join(5000); print("joined") }} catch (e) {{ print(e) }}
               print(started.elapsed < 3.0);"#,
            server.url("slow-body?ms=60000"),
        ))
        .output();
    let out = run.stdout();
    let lines: Vec<_> = out.lines().collect();
    assert!(
        server.seen().iter().any(|s| s.path == "/slow-body"),
        "the request never arrived: {}",
        run.explain()
    );
    assert_eq!(lines.first(), Some(&"false"), "{}", run.explain());
    assert!(
        lines
            .get(1)
            .is_some_and(|l| l.contains("stopped with stop()")),
        "{}",
        run.explain()
    );
    assert_eq!(lines.get(2), Some(&"true"), "{}", run.explain());
}

/// Fetches in two tasks at once each get their answers, each task reusing
/// its own connection, and the tasks end cleanly (nothing on stderr).
#[test]
fn fetches_in_tasks_reuse_their_connections() {
    let server = HttpServer::start();
    let run = Netsh::new()
        .arg("-e")
        .arg(format!(
            r#"let work = || {{ let n = 0; for i in 0..30 {{ if fetch("{}").status == 201 {{ n += 1 }} }} n }};
               let a = task(work); let b = task(work);
               print(a.join(10000) + b.join(10000));"#,
            server.url("status/201"),
        ))
        .output();
    assert_eq!(run.stdout().trim(), "60", "{}", run.explain());
    assert_eq!(run.stderr().trim(), "", "{}", run.explain());
    let connections = server
        .state
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(connections <= 4, "{connections} connections for 2 tasks");
}
