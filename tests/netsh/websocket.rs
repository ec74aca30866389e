//! WebSocket against python3-websockets (Debian's `python3-websockets`)
//! as the server: text, binary, a 1 MiB message, fragmented messages,
//! ping/pong both ways, close codes both ways, headers and subprotocols,
//! wss with a self-signed certificate and `ca`, a SOCKS5 proxy,
//! `max_message`, a dropped handle's 1001, `interact()` on a pipe and at
//! the REPL in a real terminal, and bad input refused before anything is
//! sent.

use std::{net::TcpListener, path::Path, process::Command, time::Duration};

use crate::support::{Netsh, Peer, closed_port, skip};

const PYTHON: &str = "/usr/bin/python3";

/// The python peer: one server, what it does chosen by the path asked for.
/// It prints its port, then `closed PATH CODE REASON` as each connection
/// ends (the close the netsh side sent).
const SERVER: &str = r#"
import asyncio, json, ssl, sys, websockets
async def handler(ws, path=None):
    path = ws.path
    if path == "/frag":
        await ws.send(["frag", "mented ", "text"])
        await ws.send([b"\x01\x02", b"\x03"])
        await ws.send(["after"])
    elif path == "/pingme":
        waiter = await ws.ping(b"x")
        await asyncio.wait_for(waiter, 5)
        await ws.send("pong came")
    elif path == "/badframe":
        # RSV1 set with no extension agreed: the client must fail the
        # connection, and say so with 1002.
        ws.transport.write(b"\xc1\x02hi")
    elif path == "/close":
        await ws.close(4001, "bye now")
    elif path == "/info":
        await ws.send(json.dumps({"token": ws.request_headers.get("x-token"), "protocol": ws.subprotocol}))
    else:
        try:
            async for m in ws:
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass
    await ws.wait_closed()
    print(f"closed {path} {ws.close_code} {ws.close_reason}", flush=True)
async def main():
    ctx = None
    if len(sys.argv) > 2:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    async with websockets.serve(handler, "127.0.0.1", 0, ssl=ctx, max_size=None, subprotocols=["chat", "other"]) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"#;

/// Whether Debian's python with websockets is here; says why not if not.
fn have_websockets(test: &str) -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import websockets"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(
            test,
            "/usr/bin/python3 with websockets is not installed (apt-get install python3-websockets)",
        );
    }
    ok
}

/// The python server, plain or with TLS (`cert`, `key`).
fn python_server(tls: Option<(&Path, &Path)>) -> (Peer, u16) {
    let mut cmd = Command::new(PYTHON);
    cmd.args(["-c", SERVER]);
    if let Some((cert, key)) = tls {
        cmd.arg(cert).arg(key);
    }
    let mut peer = Peer::start(cmd);
    let port = peer.port();
    (peer, port)
}

/// Text, binary, and 1 MiB messages of each kind come back whole from
/// the python echo server; the close is clean (1000) on both sides.
#[test]
fn echo_text_binary_and_a_mebibyte() {
    if !have_websockets("echo_text_binary_and_a_mebibyte") {
        return;
    }
    let (mut server, port) = python_server(None);
    let out = Netsh::eval(&format!(
        r#"let ws = ws_connect("ws://127.0.0.1:{port}/echo");
           ws.send("héllo"); print(ws.recv());
           ws.send(from_hex("00ff10")); print(hex(ws.recv()));
           let big = blob(1048576, 7); big[1048575] = 9;
           ws.send(big); let back = ws.recv();
           print(`blob ${{type_of(back)}} ${{back.len()}} ${{sha256(back) == sha256(big)}}`);
           let text = blob(1048576, 120).as_string();
           ws.send(text); let t = ws.recv();
           print(`text ${{type_of(t)}} ${{t.len()}} ${{t == text}}`);
           ws.close(); print(`code ${{ws.close_code}}`); ws"#
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "héllo", "{out}");
    assert_eq!(lines[1], "00ff10", "{out}");
    assert_eq!(lines[2], "blob blob 1048576 true", "{out}");
    assert_eq!(lines[3], "text string 1048576 true", "{out}");
    assert_eq!(lines[4], "code 1000", "{out}");
    assert!(lines[5].contains("closed 1000"), "{out}");
    server.expect("closed /echo 1000");
}

/// Messages the server sends in fragments (continuation frames) arrive
/// joined, text as text and binary as binary, in order.
#[test]
fn fragmented_messages_are_reassembled() {
    if !have_websockets("fragmented_messages_are_reassembled") {
        return;
    }
    let (_server, port) = python_server(None);
    let out = Netsh::eval(&format!(
        r#"let ws = ws_connect("ws://127.0.0.1:{port}/frag");
           let a = ws.recv(); let b = ws.recv(); let c = ws.recv();
           `${{a}}|${{type_of(b)}} ${{hex(b)}}|${{c}}`"#
    ));
    assert_eq!(out.trim(), "fragmented text|blob 010203|after");
}

/// netsh's ping gets python's pong; python's ping gets netsh's pong while
/// the script is not reading (the reading task answers it).
#[test]
fn ping_and_pong_both_ways() {
    if !have_websockets("ping_and_pong_both_ways") {
        return;
    }
    let (_server, port) = python_server(None);
    let out = Netsh::eval(&format!(
        r#"let ws = ws_connect("ws://127.0.0.1:{port}/echo");
           let ms = ws.ping(); print(`rtt ${{type_of(ms)}} ${{ms >= 0.0 && ms < 5000.0}}`);
           let other = ws_connect("ws://127.0.0.1:{port}/pingme");
           sleep(300);
           print(other.recv(3000));"#
    ));
    assert_eq!(out.trim(), "rtt f64 true\npong came", "{out}");
}

/// A close from the server (4001, a reason) ends `recv` with `()` and
/// sets `.close_code`/`.close_reason`; a close from netsh with its own
/// code and reason reaches the server; sending afterwards is an error.
#[test]
fn close_codes_both_ways() {
    if !have_websockets("close_codes_both_ways") {
        return;
    }
    let (mut server, port) = python_server(None);
    let out = Netsh::eval(&format!(
        r#"let ws = ws_connect("ws://127.0.0.1:{port}/close");
           let m = ws.recv(5000);
           print(`${{m == ()}} ${{ws.close_code}} ${{ws.close_reason}}`);
           let e = ""; try {{ ws.send("late") }} catch (err) {{ e = err.kind }} print(e);
           let mine = ws_connect("ws://127.0.0.1:{port}/echo");
           mine.close(4002, "done here");
           print(`${{mine.close_code}} ${{mine.close_reason}}`);"#
    ));
    assert_eq!(
        out.trim(),
        "true 4001 bye now\nclosed\n4002 done here",
        "{out}"
    );
    server.expect("closed /close 4001 bye now");
    server.expect("closed /echo 4002 done here");
}

/// Headers go with the handshake; the subprotocol the server picked is
/// `.protocol`.
#[test]
fn headers_and_subprotocols() {
    if !have_websockets("headers_and_subprotocols") {
        return;
    }
    let (_server, port) = python_server(None);
    let out = Netsh::eval(&format!(
        r#"let ws = ws_connect("ws://127.0.0.1:{port}/info", #{{headers: #{{"x-token": "abc"}}, protocols: ["nope", "other"]}});
           let info = parse_json(ws.recv());
           `${{info.token}} ${{info.protocol}} ${{ws.protocol}}`"#
    ));
    assert_eq!(out.trim(), "abc other other");
}

/// A self-signed certificate for 127.0.0.1 made by openssl, in `dir`.
pub fn self_signed(dir: &Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .is_ok_and(|o| o.status.success());
    made.then_some((cert, key))
}

/// wss:// to a server with a self-signed certificate: refused as untrusted
/// by default, trusted with `#{tls: #{ca: cert}}`, and then messages flow.
#[test]
fn wss_with_a_self_signed_certificate_and_ca() {
    if !have_websockets("wss_with_a_self_signed_certificate_and_ca") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(dir.path()) else {
        skip(
            "wss_with_a_self_signed_certificate_and_ca",
            "openssl could not make a certificate (apt-get install openssl)",
        );
        return;
    };
    let (_server, port) = python_server(Some((&cert, &key)));
    let refused = Netsh::eval_err(&format!(r#"ws_connect("wss://127.0.0.1:{port}/echo")"#));
    assert!(
        refused.contains("ws_connect:") && refused.contains("certificate"),
        "{refused}"
    );
    let out = Netsh::eval(&format!(
        r#"let ws = ws_connect("wss://127.0.0.1:{port}/echo", #{{tls: #{{ca: "{}"}}}});
           ws.send("over tls"); let m = ws.recv(); ws.close(); m"#,
        cert.display()
    ));
    assert_eq!(out.trim(), "over tls");
}

/// `interact()` with stdin a pipe: each line is a message, each echo a
/// line, and the end of stdin closes with 1000.
#[test]
fn interact_sends_lines_and_prints_messages() {
    if !have_websockets("interact_sends_lines_and_prints_messages") {
        return;
    }
    let (mut server, port) = python_server(None);
    let mut cmd = Command::new(crate::support::netsh_bin());
    cmd.arg("-e").arg(format!(
        r#"ws_connect("ws://127.0.0.1:{port}/echo").interact()"#
    ));
    let mut client = Peer::start(cmd);
    client.write("first line\nsecond\n");
    client.expect("second");
    // The end of input closes the WebSocket (as websocat does), and
    // interact returns.
    client.close_stdin();
    assert_eq!(client.wait_exit(Duration::from_secs(10)), Some(0));
    assert_eq!(client.output(), "first line\nsecond");
    server.expect("closed /echo 1000");
}

/// Bad URLs, schemes, options and a refused port fail with clear words;
/// none of the bad inputs reaches the listener that stands where they
/// point.
#[test]
fn bad_input_fails_before_anything_is_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let cases = [
        (
            format!(r#"ws_connect("http://127.0.0.1:{port}/")"#),
            "must be ws:// or wss://",
        ),
        (
            format!(r#"ws_connect("127.0.0.1:{port}")"#),
            "is not a WebSocket URL",
        ),
        (format!(r#"ws_connect("ws://127.1:{port}/")"#), "127.1"),
        (
            format!(r#"ws_connect("ws://127.0.0.1:{port}/#x")"#),
            "fragment",
        ),
        (
            format!(r#"ws_connect("ws://127.0.0.1:{port}/", #{{colour: 1}})"#),
            "unknown option 'colour'",
        ),
        (
            format!(r#"ws_connect("ws://127.0.0.1:{port}/", #{{tls: true}})"#),
            "needs a wss:// URL",
        ),
        (
            format!(r#"ws_connect("ws://127.0.0.1:{port}/", #{{protocols: ["a b"]}})"#),
            "not a subprotocol name",
        ),
        (
            format!(r#"ws_connect("ws://127.0.0.1:{port}/", #{{headers: #{{"upgrade": "x"}}}})"#),
            "set by the WebSocket handshake",
        ),
        (
            format!(r#"ws_connect("ws://127.0.0.1:{port}/", #{{proxy: "ftp://x"}})"#),
            "proxy",
        ),
        (
            format!(r#"ws_connect("ws://127.0.0.1:{port}/", #{{timeout: -1}})"#),
            "timeout",
        ),
    ];
    for (code, words) in &cases {
        let err = Netsh::eval_err(code);
        assert!(
            err.contains("ws_connect:") && err.contains(words),
            "{code}: expected {words:?} in {err}"
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        listener.accept().is_err(),
        "a bad input reached the listener"
    );
    let refused = Netsh::eval_err(&format!(
        r#"ws_connect("ws://127.0.0.1:{}/")"#,
        closed_port()
    ));
    assert!(refused.contains("connection refused"), "{refused}");
    // A server that is not WebSocket at all: the handshake fails in words.
    let plain = Netsh::eval_err(
        r#"let l = listen("127.0.0.1:0"); let p = l.port;
           task(|| { let c = l.accept(); c.recv(); c.send("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"); sleep(500) });
           ws_connect(`ws://127.0.0.1:${p}/`)"#,
    );
    assert!(plain.contains("404"), "{plain}");
}

/// `#{proxy: "socks5://…"}`: the WebSocket goes through a SOCKS5 proxy
/// (netsh's own `socks_serve`, which counts what it relayed) to the
/// python server, and messages flow.
#[test]
fn through_a_socks5_proxy() {
    if !have_websockets("through_a_socks5_proxy") {
        return;
    }
    let (_server, port) = python_server(None);
    let mut proxy = Peer::netsh(
        r#"let s = socks_serve("127.0.0.1:0", #{quiet: true}); print(s.port);
           while s.stats().b_to_a == 0 { sleep(20) }
           print("relayed"); sleep(2000); s.stop();"#,
    );
    let proxy_port = proxy.port();
    let out = Netsh::eval(&format!(
        r#"let ws = ws_connect("ws://127.0.0.1:{port}/echo", #{{proxy: "socks5://127.0.0.1:{proxy_port}"}});
           ws.send("via socks"); let m = ws.recv(); ws.close(); m"#
    ));
    assert_eq!(out.trim(), "via socks");
    proxy.expect("relayed");
}

/// A message over `max_message` fails `recv` with kind `too_big` (and the
/// connection ends, 1006 on our side; the server hears 1009); a handle dropped while open tells the peer
/// "going away" (1001) rather than vanishing.
#[test]
fn too_big_and_a_dropped_handle() {
    if !have_websockets("too_big_and_a_dropped_handle") {
        return;
    }
    let (mut server, port) = python_server(None);
    let out = Netsh::eval(&format!(
        r#"let ws = ws_connect("ws://127.0.0.1:{port}/echo", #{{max_message: 1000}});
           ws.send(blob(5000));
           let kind = ""; try {{ ws.recv() }} catch (e) {{ kind = e.kind }}
           print(`${{kind}} ${{ws.recv() == ()}} ${{ws.close_code}}`);
           fn talk(p) {{ let w = ws_connect(`ws://127.0.0.1:${{p}}/echo`); w.send("x"); w.recv() }}
           print(talk({port})); sleep(200);"#
    ));
    assert_eq!(out.trim(), "too_big true 1006\nx", "{out}");
    server.expect("closed /echo 1009 message too big");
    server.expect("closed /echo 1001");
}

/// A frame from the server that breaks the protocol fails `recv` with
/// kind `protocol`, and the server hears why: a close frame with 1002
/// (RFC 6455 §7.4.1), not a bare TCP close.
#[test]
fn a_broken_frame_is_answered_with_1002() {
    if !have_websockets("a_broken_frame_is_answered_with_1002") {
        return;
    }
    let (mut server, port) = python_server(None);
    let out = Netsh::eval(&format!(
        r#"let ws = ws_connect("ws://127.0.0.1:{port}/badframe");
           let kind = ""; try {{ ws.recv() }} catch (e) {{ kind = e.kind }}
           print(`${{kind}} ${{ws.recv() == ()}}`); sleep(200);"#
    ));
    assert_eq!(out.trim(), "protocol true", "{out}");
    server.expect("closed /badframe 1002 protocol error");
}

/// `ws.interact()` at the REPL in a real terminal: a typed line goes as a
/// message, the reply is printed with its control characters escaped,
/// Ctrl-C returns to the prompt with the WebSocket open, and Ctrl-D
/// closes it (the server sees 1000) and returns.
#[test]
fn interact_at_the_repl() {
    use expectrl::Expect;
    let mut server = Peer::netsh(
        r#"let s = http_serve("127.0.0.1:0", #{"/t": #{websocket: |ws| {
               loop {
                   let m = ws.recv();
                   if m == () { print(`closed ${ws.close_code}`); break }
                   ws.send(`got: ${m} \x1b[1m`);
               }
           }}}, #{quiet: true}); print(s.port); s.wait()"#,
    );
    let port = server.port();
    let home = tempfile::tempdir().unwrap();
    let mut pty = crate::support::repl(home.path());
    pty.send_line(format!(
        r#"let ws = ws_connect("ws://127.0.0.1:{port}/t");"#
    ))
    .unwrap();
    // The prompt on a line of its own: a line with a `(` is redrawn with
    // its signature hint, `netsh> ` and all, before it runs (rustyline),
    // and a line typed during the connect would be discarded.
    let fresh = || expectrl::Regex(r"\r\n(?:\x1b\[[0-9;?]*[A-Za-z]|\r)*netsh> ");
    pty.expect(fresh()).unwrap();
    pty.send_line("ws.interact()").unwrap();
    pty.expect("each line you type is sent as a message")
        .unwrap();
    pty.send_line("hello").unwrap();
    pty.expect("got: hello \\x1b[1m").unwrap();
    pty.send("\x03").unwrap();
    pty.expect("interact: interrupted").unwrap();
    pty.expect(fresh()).unwrap();
    crate::support::enter_value(
        &mut pty,
        r#"ws.send("still open"); ws.recv(5000)"#,
        "got: still open \\x1b[1m",
    );
    pty.send_line(r#"ws.interact(); "interact returned""#)
        .unwrap();
    pty.expect("each line you type is sent as a message")
        .unwrap();
    pty.send("\x04").unwrap();
    pty.expect("interact returned").unwrap();
    pty.expect("netsh> ").unwrap();
    server.expect("closed 1000");
}
