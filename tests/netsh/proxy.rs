//! Going through proxies: `connect` and `fetch` through microsocks
//! (SOCKS5, with and without a password) and tinyproxy (HTTP CONNECT),
//! curl through `socks_serve`, the refusals in words, and malformed proxy
//! URLs refused before anything is sent. All on loopback.

use std::{net::TcpStream, process::Command, time::Duration};

use crate::support::{Netsh, Peer, closed_port, has_tool, wait_until};

/// A proxy program on a free port below 32768, running until dropped.
fn start_on_free_port(test: &str, build: impl Fn(u16) -> Command) -> Option<(Peer, u16)> {
    let port = closed_port();
    let peer = Peer::start(build(port));
    wait_until(Duration::from_secs(10), test, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Some((peer, port))
}

fn microsocks(test: &str, auth: Option<(&str, &str)>) -> Option<(Peer, u16)> {
    if !has_tool(test, "microsocks", &["-h"], "microsocks")
        && !std::path::Path::new("/usr/bin/microsocks").exists()
    {
        return None;
    }
    start_on_free_port(test, |port| {
        let mut cmd = Command::new("microsocks");
        cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((user, pass)) = auth {
            cmd.args(["-u", user, "-P", pass]);
        }
        cmd
    })
}

fn tinyproxy(test: &str, dir: &std::path::Path) -> Option<(Peer, u16)> {
    if !std::path::Path::new("/usr/bin/tinyproxy").exists() {
        crate::support::skip(
            test,
            "tinyproxy is not installed (apt-get install tinyproxy)",
        );
        return None;
    }
    start_on_free_port(test, |port| {
        let conf = dir.join(format!("tinyproxy-{port}.conf"));
        std::fs::write(
            &conf,
            format!("Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nMaxClients 20\n"),
        )
        .unwrap();
        let mut cmd = Command::new("tinyproxy");
        cmd.arg("-d").arg("-c").arg(&conf);
        cmd
    })
}

/// An HTTP server for the far side, and a line server.
const FAR_SIDE: &str = r#"let web = serve("127.0.0.1:0", |c| {
        let line = c.recv_line();
        while c.recv_line() != "" {}
        c.send("HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\nhello, proxy");
    }, #{quiet: true});"#;

/// `connect` and `fetch` through microsocks, by address (`socks5://`) and
/// by name resolved at the proxy (`socks5h://localhost`), with and without
/// a password; a wrong password and a closed port are refused in words.
#[test]
fn connect_and_fetch_through_microsocks() {
    let Some((_open, open)) = microsocks("connect_and_fetch_through_microsocks", None) else {
        return;
    };
    let Some((_locked, locked)) = microsocks(
        "connect_and_fetch_through_microsocks",
        Some(("alice", "s3cret")),
    ) else {
        return;
    };
    let dead = closed_port();
    let out = Netsh::eval(&format!(
        r#"{FAR_SIDE}
           for p in ["socks5://127.0.0.1:{open}", "socks5h://127.0.0.1:{open}", "socks5h://alice:s3cret@127.0.0.1:{locked}"] {{
               let c = connect(`localhost:${{web.port}}`, #{{proxy: p}});
               c.send("GET / HTTP/1.0\r\n\r\n");
               print(c.recv_line());
               print(fetch(`http://localhost:${{web.port}}/`, #{{proxy: p}}).body);
           }}
           try {{ connect(`127.0.0.1:${{web.port}}`, #{{proxy: "socks5://alice:wrong@127.0.0.1:{locked}"}}) }} catch (e) {{ print(e) }}
           try {{ connect(`127.0.0.1:${{web.port}}`, #{{proxy: "socks5://127.0.0.1:{locked}"}}) }} catch (e) {{ print(e) }}
           try {{ connect("127.0.0.1:{dead}", #{{proxy: "socks5://127.0.0.1:{open}"}}) }} catch (e) {{ print(e) }}
           try {{ fetch(`http://127.0.0.1:${{web.port}}/`, #{{proxy: "socks5://alice:wrong@127.0.0.1:{locked}"}}) }} catch (e) {{ print(e.kind) }}"#
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "HTTP/1.0 200 OK",
            "hello, proxy",
            "HTTP/1.0 200 OK",
            "hello, proxy",
            "HTTP/1.0 200 OK",
            "hello, proxy"
        ],
        "{out}"
    );
    assert!(
        lines[6].ends_with("refused: authentication failed"),
        "{out}"
    );
    assert!(lines[7].contains("needs a user name and password"), "{out}");
    assert!(
        lines[8].ends_with(&format!(
            "refused 127.0.0.1:{dead}: connection refused by the destination"
        )),
        "{out}"
    );
    assert_eq!(lines[9], "protocol", "{out}");
}

/// `connect` and `fetch` through tinyproxy (HTTP CONNECT, and a plain
/// proxied GET for fetch); a CONNECT it refuses shows its status line.
#[test]
fn connect_and_fetch_through_tinyproxy() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_proxy, port)) = tinyproxy("connect_and_fetch_through_tinyproxy", dir.path()) else {
        return;
    };
    let dead = closed_port();
    let out = Netsh::eval(&format!(
        r#"{FAR_SIDE}
           let c = connect(`127.0.0.1:${{web.port}}`, #{{proxy: "http://127.0.0.1:{port}"}});
           c.send("GET / HTTP/1.0\r\n\r\n");
           print(c.recv_line());
           print(fetch(`http://127.0.0.1:${{web.port}}/`, #{{proxy: "http://127.0.0.1:{port}"}}).body);
           try {{ connect("127.0.0.1:{dead}", #{{proxy: "http://127.0.0.1:{port}"}}) }} catch (e) {{ print(e) }}"#
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["HTTP/1.0 200 OK", "hello, proxy"], "{out}");
    assert!(
        lines[2].contains(&format!("refused CONNECT 127.0.0.1:{dead}: HTTP/1.")),
        "{out}"
    );
}

/// curl `--socks5-hostname` and `--socks5` through `socks_serve` to a
/// local HTTP server; with `users`, a wrong password is rejected and the
/// right one passes; `destinations` refuses what it does not list.
#[test]
fn curl_through_socks_serve() {
    if !has_tool("curl_through_socks_serve", "curl", &["--version"], "curl") {
        return;
    }
    let mut server = Peer::netsh(&format!(
        r#"{FAR_SIDE}
           let s = socks_serve("127.0.0.1:0", #{{quiet: true}});
           let a = socks_serve("127.0.0.1:0", #{{users: #{{alice: "s3cret"}}, destinations: ["127.0.0.1/32"], quiet: true}});
           print(web.port); print(`socks ${{s.port}} ${{a.port}}`);
           s.wait();"#
    ));
    let web = server.port();
    let ports = server.expect("socks ");
    let ports: Vec<&str> = ports.split_whitespace().skip(1).collect();
    let (open, locked) = (ports[0], ports[1]);
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(args)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let url = format!("http://localhost:{web}/");
    assert_eq!(
        curl(&["--socks5-hostname", &format!("127.0.0.1:{open}"), &url]).0,
        "hello, proxy"
    );
    assert_eq!(
        curl(&["--socks5", &format!("127.0.0.1:{open}"), &url]).0,
        "hello, proxy"
    );
    assert_eq!(
        curl(&[
            "-x",
            &format!("socks5h://alice:s3cret@127.0.0.1:{locked}"),
            &url
        ])
        .0,
        "hello, proxy"
    );
    let (out, err) = curl(&[
        "-x",
        &format!("socks5h://alice:nope@127.0.0.1:{locked}"),
        &url,
    ]);
    assert_eq!(out, "");
    assert!(err.contains("rejected") || err.contains("auth"), "{err}");
    let out = Netsh::eval(&format!(
        r#"try {{ connect("127.0.0.2:{web}", #{{proxy: "socks5://alice:s3cret@127.0.0.1:{locked}"}}) }} catch (e) {{ print(e) }}"#
    ));
    assert!(out.trim().ends_with("not allowed by ruleset"), "{out}");
}

/// Malformed proxy URLs and options of the wrong type fail before
/// anything is sent (no proxy listens on these ports, and it would not
/// matter: the URL is refused first).
#[test]
fn malformed_proxy_urls_are_refused_first() {
    for (proxy, words) in [
        (r#""socks5://127.0.0.1:1080/path""#, "no path"),
        (r#""socks4://127.0.0.1:1080""#, "scheme 'socks4'"),
        (r#""socks5://127.0.0.1:0""#, "port 0"),
        (r#""socks5://127.1:1080""#, "127.1"),
        (r#""127.0.0.1:1080""#, "no scheme"),
        ("1080", "option 'proxy'"),
    ] {
        for call in [
            "connect(\"127.0.0.1:9\", ",
            "fetch(\"http://127.0.0.1:9/\", ",
        ] {
            let code = format!("{call}#{{proxy: {proxy}}})");
            let err = Netsh::eval_err(&code);
            assert!(err.contains(words), "{code}: {err}");
        }
    }
    let err = Netsh::eval_err(r#"socks_serve("127.0.0.1:0", #{users: ["alice"]})"#);
    assert!(err.contains("option 'users'"), "{err}");
}

/// A port alone makes a SOCKS server on 127.0.0.1 only, as `ssh -D`: open
/// on every interface it would hand the network this machine's loopback.
#[test]
fn socks_serve_on_a_bare_port_listens_on_loopback_only() {
    let out = Netsh::eval("let s = socks_serve(0, #{quiet: true}); let a = s.addr; s.stop(); a");
    assert!(
        out.starts_with("127.0.0.1:"),
        "socks_serve(0) listens on {out}"
    );
    let out = Netsh::eval(
        r#"let s = socks_serve("[::1]:0", #{quiet: true}); let a = s.addr; s.stop(); a"#,
    );
    assert!(
        out.starts_with("[::1]:"),
        "an address given whole is used: {out}"
    );
}
