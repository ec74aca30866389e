//! `fetch` where the network, not the user, supplies the URL or the answer
//! (issue 17): a redirect's `Location`, a URL's authority read two ways, a
//! proxy from the environment, certificates and replies that are not HTTP.
//! Each is held to what a typed URL meets, and each failure names who failed.
//! Loose address spellings are all loopback ones (`127.1`, `0x7f.0.0.1`…).

use std::{
    io::{Read, Write},
    process::Command,
    time::Duration,
};

use crate::support::{self, Netsh, Peer, has_tool, http::HttpServer, peer_on};

/// What `CODE` throws, as `KIND | MESSAGE` (or `no error`).
fn caught(code: &str) -> String {
    Netsh::eval(&format!(
        r#"let f = || {{ try {{ {code}; }} catch (e) {{ return `${{e.kind}} | ${{e}}` }} "no error" }}; f.call()"#
    ))
}

/// A redirect to a loosely spelled address is refused before anything is
/// sent to it, and the refusal names the hop and the host.
#[test]
fn a_redirect_to_a_loose_address_is_refused_naming_the_hop() {
    let origin = HttpServer::start();
    let target = HttpServer::start();
    let port = target.addr.port();
    for spelling in ["127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433"] {
        for hop in [
            format!("http://{spelling}:{port}/again"),
            format!("//{spelling}:{port}/again"),
        ] {
            let out = caught(&format!(
                r#"fetch("{}")"#,
                origin.url(&format!("to?url={hop}"))
            ));
            let shown = if hop.starts_with("//") {
                format!("http:{hop}")
            } else {
                hop.clone()
            };
            assert!(
                out.starts_with("protocol | fetch: ")
                    && out.contains(&format!(
                        "redirect to {hop} refused: '{spelling}' is not an address ("
                    )),
                "{shown}: {out}"
            );
        }
    }
    assert!(
        target.seen().is_empty(),
        "nothing reached the redirect target"
    );
}

/// `http://127.1:B\@127.0.0.1:A/x` is refused: the URL standard reads its
/// host as 127.1 (the backslash ends the authority), so no check of
/// 127.0.0.1:A may let it through to B.
#[test]
fn the_host_checked_is_the_host_contacted() {
    let a = HttpServer::start();
    let b = HttpServer::start();
    let (a_port, b_port) = (a.addr.port(), b.addr.port());
    for url in [
        format!(r"http://127.1:{b_port}\\@127.0.0.1:{a_port}/x"),
        format!(r"http://127.0.0.1:{b_port}\\@127.0.0.1:{a_port}/x"),
        format!("http://x@127.0.0.1:{b_port}@127.0.0.1:{a_port}/x"),
    ] {
        let out = caught(&format!(r#"fetch("{url}")"#));
        assert!(
            out.starts_with("invalid | fetch: ")
                && (out.contains("contains a backslash") || out.contains("more than one '@'")),
            "{url}: {out}"
        );
    }
    assert!(
        a.seen().is_empty() && b.seen().is_empty(),
        "nothing was sent"
    );
}

/// A proxy from the environment meets the same check as a URL: a loose
/// spelling is refused naming the variable, and nothing reaches the proxy.
#[test]
fn a_proxy_with_a_loose_address_is_refused() {
    let proxy = HttpServer::start();
    let target = format!("http://127.0.0.1:{}/through", support::closed_port());
    let run = Netsh::new()
        .env("http_proxy", format!("http://127.1:{}", proxy.addr.port()))
        .args(["-e", &format!(r#"fetch("{target}").body"#)])
        .output();
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "the proxy 127.1:{} (from http_proxy) refused: '127.1' is not an address (",
            proxy.addr.port()
        )),
        "{}",
        run.explain()
    );
    assert!(proxy.seen().is_empty());
}

/// A refused connection after a redirect names the redirect target, and
/// through a proxy names the proxy, with kind `refused`.
#[test]
fn a_refusal_names_who_refused() {
    let origin = HttpServer::start();
    let closed = support::closed_port();
    let hop = format!("http://127.0.0.1:{closed}/gone");
    let out = caught(&format!(
        r#"fetch("{}")"#,
        origin.url(&format!("to?url={hop}"))
    ));
    assert!(
        out.contains(&format!(
            "→ {hop}: connection refused by 127.0.0.1:{closed}"
        )) && out.starts_with("refused | "),
        "{out}"
    );
    let proxy_port = support::closed_port();
    let run = Netsh::new()
        .env("http_proxy", format!("http://127.0.0.1:{proxy_port}"))
        .args(["-e", &format!(r#"fetch("{}")"#, origin.url("json"))])
        .output();
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "connection refused by the proxy 127.0.0.1:{proxy_port} (from http_proxy)"
        )),
        "{}",
        run.explain()
    );
    assert!(origin.seen().iter().all(|s| s.path != "/json"));
}

/// A proxy's password never reaches an error, even one with an `@` in it
/// that the proxy URL's reader splits at the first `@`.
#[test]
fn a_proxy_password_stays_out_of_errors() {
    let origin = HttpServer::start();
    let proxy_port = support::closed_port();
    let run = Netsh::new()
        .env(
            "http_proxy",
            format!("http://user:pass@word@127.0.0.1:{proxy_port}"),
        )
        .args(["-e", &format!(r#"fetch("{}")"#, origin.url("json"))])
        .output();
    run.expect_code(1);
    let err = run.stderr();
    assert!(
        err.contains(&format!(
            "connection refused by the proxy 127.0.0.1:{proxy_port} (from http_proxy)"
        )),
        "{}",
        run.explain()
    );
    assert!(!err.contains("word") && !err.contains("pass"), "{err}");
}

/// A cross-origin redirect carries no Referer and no Authorization; a
/// same-origin one keeps the Authorization.
#[test]
fn a_redirect_sends_no_referer_and_keeps_credentials_home() {
    let origin = HttpServer::start();
    let other = HttpServer::start();
    let out = Netsh::eval(&format!(
        r#"let h = fetch("{}", #{{basic_auth: "u:secret"}}).json.headers;
           let same = fetch("{}", #{{basic_auth: "u:secret"}}).json.headers;
           [h.referer, h.authorization, same.referer, same.authorization]"#,
        origin.url(&format!("to?url={}", other.url("echo?q=1"))),
        origin.url("to?url=/echo"),
    ));
    assert_eq!(out, r#"[(), (), (), "Basic dTpzZWNyZXQ="]"#);
}

/// A redirect to `file://` is refused naming the hop, for fetch and for a
/// download alike; nothing is read or saved.
#[test]
fn a_redirect_to_a_file_url_is_refused() {
    let server = HttpServer::start();
    let url = server.url("to?url=file:///etc/hostname");
    let out = caught(&format!(r#"fetch("{url}")"#));
    assert!(
        out.contains("redirect to file:///etc/hostname refused: fetch follows redirects to http and https URLs only"),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h");
    let out = caught(&format!(r#"fetch("{url}", "{}")"#, path.display()));
    assert!(
        out.contains("redirect to file:///etc/hostname refused"),
        "{out}"
    );
    assert!(!path.exists());
}

/// Credentials in a URL never appear in an error about it.
#[test]
fn url_credentials_stay_out_of_errors() {
    let closed = support::closed_port();
    let server = HttpServer::start();
    for url in [
        format!("http://user:hunter2@127.0.0.1:{closed}/x"),
        format!("http://user:hunter2@127.1:{closed}/x"),
        server
            .url("to?url=http://127.1/")
            .replacen("://", "://me:hunter2@", 1),
    ] {
        let out = caught(&format!(r#"fetch("{url}")"#));
        assert!(out.contains("fetch: "), "{out}");
        assert!(!out.contains("hunter2"), "{url}: {out}");
    }
}

/// Redirects followed by netsh still reuse the connection.
#[test]
fn redirect_chains_reuse_one_connection() {
    let server = HttpServer::start();
    let out = Netsh::eval(&format!(
        r#"let n = 0; for i in 0..20 {{ if fetch("{}").body == "landed" {{ n += 1 }} }} n"#,
        server.url("redirect/3")
    ));
    assert_eq!(out, "20");
    let connections = server
        .state
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        connections <= 2,
        "{connections} connections for 80 requests"
    );
}

/// https:// to a plain HTTP port says the peer does not speak TLS, as
/// `connect` says it.
#[test]
fn https_to_a_plain_port_says_so() {
    let server = HttpServer::start();
    let url = format!("https://{}/json", server.addr);
    let out = caught(&format!(r#"fetch("{url}")"#));
    assert!(
        out.contains("the peer does not speak TLS") && !out.contains("InvalidContentType"),
        "{out}"
    );
}

/// A reply that is not HTTP (an SSH banner) is called that, not "invalid
/// HTTP version parsed" alone.
#[test]
fn a_reply_that_is_not_http_says_so() {
    let (addr, peer) = peer_on("127.0.0.1:0", |mut stream| {
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
        std::thread::sleep(Duration::from_millis(200));
    });
    let out = caught(&format!(r#"fetch("http://{addr}/")"#));
    assert!(
        out.starts_with("protocol | ")
            && out.contains(&format!("{addr} did not answer in HTTP"))
            && out.contains("is it an HTTP server"),
        "{out}"
    );
    peer.join().unwrap();
}

/// Certificates for `openssl s_server`, made here: self-signed, for
/// `names`, valid from `from` to `to` days from now.
fn certificate(dir: &std::path::Path, name: &str, names: &[&str], from: i64, to: i64) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from);
    params.not_after = now + time::Duration::days(to);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// `openssl s_server -www` with `NAME.pem` on a free port below 32768.
fn s_server(dir: &std::path::Path, name: &str) -> (Peer, u16) {
    for attempt in 0..20 {
        let port = support::fixed_port(attempt);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut cmd = Command::new("openssl");
        cmd.args(["s_server", "-www", "-accept", &format!("127.0.0.1:{port}")])
            .arg("-cert")
            .arg(dir.join(format!("{name}.pem")))
            .arg("-key")
            .arg(dir.join(format!("{name}.key")));
        let mut server = Peer::start(cmd);
        if server.wait_for("ACCEPT", Duration::from_secs(10)).is_some() {
            return (server, port);
        }
        if !server.output().contains("in use") {
            panic!("openssl s_server did not start:\n{}", server.output());
        }
    }
    panic!("no free port for openssl s_server");
}

/// A folder with a self-signed certificate `name` for `names`, valid
/// `from`..`to` days from now, when openssl is installed to serve it.
fn pki(test: &str, name: &str, names: &[&str], from: i64, to: i64) -> Option<tempfile::TempDir> {
    if !has_tool(test, "openssl", &["version"], "openssl") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), name, names, from, to);
    Some(dir)
}

/// An expired certificate is refused in `connect`'s words (when it
/// expired), not rustls's UNIX times nor the self-signed hint.
#[test]
fn an_expired_certificate_reads_as_connect_says_it() {
    let Some(dir) = pki(
        "an_expired_certificate_reads_as_connect_says_it",
        "expired",
        &["127.0.0.1"],
        -400,
        -35,
    ) else {
        return;
    };
    let (_server, port) = s_server(dir.path(), "expired");
    let out = caught(&format!(
        r#"fetch("https://127.0.0.1:{port}/", #{{ca: "{}/expired.pem"}})"#,
        dir.path().display()
    ));
    assert!(
        out.contains("the certificate has expired: it was valid until")
            && !out.contains("(UNIX)")
            && !out.contains("self-signed"),
        "{out}"
    );
}

/// A certificate for another name is refused as a name mismatch naming
/// the names it is for, without the self-signed hint or connect's options.
#[test]
fn a_certificate_for_another_name_reads_as_connect_says_it() {
    let Some(dir) = pki(
        "a_certificate_for_another_name_reads_as_connect_says_it",
        "named",
        &["localhost"],
        -1,
        30,
    ) else {
        return;
    };
    let (_server, port) = s_server(dir.path(), "named");
    let out = caught(&format!(
        r#"fetch("https://127.0.0.1:{port}/", #{{ca: "{}/named.pem"}})"#,
        dir.path().display()
    ));
    assert!(
        out.contains("name mismatch: the certificate is for localhost, not 127.0.0.1")
            && !out.contains("self-signed")
            && !out.contains("#{tls:"),
        "{out}"
    );
}
