//! WebSocket routes of `http_serve` against real clients: python3-websockets
//! (text, binary, 1 MiB, fragments, ping, close codes both ways, many
//! connections on the event shape, a handler that throws), curl (a plain
//! request gets 426), netsh's own `ws_connect`, and headless Chromium (a
//! page served by `http_serve` opens a WebSocket to it and shows the echo
//! in its DOM).

use std::{process::Command, time::Duration};

use crate::support::{Netsh, Peer, skip};

const PYTHON: &str = "/usr/bin/python3";

/// The netsh server every test here talks to: `/echo` (a closure per
/// connection, echoing until "bye", on which it closes with 4006),
/// `/events` (the event shape, echoing; "boom" throws), `/proto` (offers
/// the subprotocol "chat"), and `/` a page whose script opens `/echo`.
/// The page's image `/wait` is answered only once a WebSocket on `/echo`
/// has closed (the page closes it after writing the echo into its DOM),
/// so the page's load, after which `--dump-dom` prints the DOM, cannot
/// come before the echo, however busy the machine. (`--virtual-time-budget`
/// was tried: the budget ran out before the echo on a busy machine, and a
/// pending fetch pauses the page's scripts as well as the clock.)
const SERVER: &str = r#"
let page = `<!doctype html><html><body><div id="out">waiting</div><script>
const ws = new WebSocket("ws://" + location.host + "/echo");
ws.onopen = () => ws.send("hello from chromium");
ws.onmessage = (e) => { document.getElementById("out").textContent = "echo: " + e.data; ws.close(1000); };
ws.onerror = () => { document.getElementById("out").textContent = "error"; };
</script><img src="/wait"></body></html>`;
let closed = channel();
let s = http_serve("127.0.0.1:0", #{
  "/echo": #{websocket: |ws| {
      loop {
          let m = ws.recv();
          if m == () { print(`closed ${ws.close_code} ${ws.close_reason}`); closed.send(1); break }
          if m == "bye" { ws.close(4006, "server done"); break }
          if type_of(m) == "string" && m.len() < 100 { print(`got ${m}`) }
          ws.send(m);
      }
  }},
  "/events": #{
      on_open: |ws| ws.send("welcome"),
      on_message: |ws, m| { if m == "boom" { throw "handler boom" } ws.send(m) },
      on_close: |ws| print(`event close ${ws.close_code}`),
  },
  "/proto": #{protocols: ["chat"], websocket: |ws| ws.send(`${ws.protocol}`)},
  "/small": #{max_message: 100, websocket: |ws| {
      try { loop { let m = ws.recv(); if m == () { break } ws.send(m) } }
      catch (e) { print(`small failed ${e.kind}`) }
  }},
  "/small_events": #{max_message: 100, on_message: |ws, m| ws.send(m)},
  "/busy": #{websocket: |ws| { ws.send("ready"); sleep(4000); ws.send(ws.recv()) }},
  "GET /": |req| #{headers: #{"content-type": "text/html"}, body: page},
  "GET /wait": |req| { closed.recv(20000); #{status: 204} },
}, #{quiet: true});
print(s.port);
s.wait();
"#;

/// The python client, one mode per test; prints what it saw.
const CLIENT: &str = r#"
import asyncio, base64, os, socket, struct, sys, urllib.parse, websockets
def raw(url, bad):
    # A handshake by hand, then one frame websockets would never send.
    u = urllib.parse.urlsplit(url)
    host, port, path = u.hostname, u.port, u.path
    s = socket.create_connection((host, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, data = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    # rsv: a text frame with RSV1 set (no extension was agreed);
    # utf8: a text frame that is not UTF-8. Both masked, as a client's.
    first, payload = {"rsv": (0xC1, b"hi"), "utf8": (0x81, b"\xff\xfe")}[bad]
    mask = b"\x01\x02\x03\x04"
    s.sendall(bytes([first, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    while True:
        chunk = s.recv(4096)  # a reset here fails the run
        if not chunk:
            break
        data += chunk
    assert data[0] == 0x88 and data[1] < 126, data
    code = struct.unpack("!H", data[2:4])[0]
    print("raw close", code, data[4:2 + data[1]].decode(), "then eof", flush=True)

async def main():
    url, mode = sys.argv[1], sys.argv[2]
    if mode == "raw":
        raw(url, sys.argv[3])
        return
    if mode == "many":
        async def one(i):
            async with websockets.connect(url) as c:
                assert await c.recv() == "welcome"
                for j in range(20):
                    await c.send(f"{i}-{j}")
                    assert await c.recv() == f"{i}-{j}"
        await asyncio.gather(*(one(i) for i in range(int(sys.argv[3]))))
        print("many ok", flush=True)
        return
    protocols = ["other", "chat"] if mode == "proto" else None
    async with websockets.connect(url, max_size=None, subprotocols=protocols) as ws:
        if mode == "echo":
            await ws.send("hello")
            print("text", await ws.recv())
            await ws.send(b"\x00\xff")
            print("binary", (await ws.recv()).hex())
            big = bytes(range(256)) * 4096
            await ws.send(big)
            back = await ws.recv()
            print("big", len(back), back == big)
            await ws.send(["frag", "mented"])
            print("frag", await ws.recv())
            await ws.send([b"\x01", b"\x02\x03"])
            print("fragbin", (await ws.recv()).hex())
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)
            print("pong")
            await ws.close(4005, "client done")
        elif mode == "bye":
            await ws.send("bye")
            try:
                await ws.recv()
            except websockets.ConnectionClosed:
                pass
        elif mode == "boom":
            assert await ws.recv() == "welcome"
            await ws.send("boom")
            try:
                await ws.recv()
            except websockets.ConnectionClosed:
                pass
        elif mode == "busy":
            assert await ws.recv() == "ready"
            pong = await ws.ping()
            await asyncio.wait_for(pong, 2.5)
            print("pong while busy")
            await ws.send("after")
            print("echo", await ws.recv())
        elif mode == "big":
            await ws.send("small")
            print("echo", await ws.recv())
            await ws.send("x" * 1000)
            try:
                await ws.recv()
            except websockets.ConnectionClosed:
                pass
        elif mode == "proto":
            print("protocol", ws.subprotocol, await ws.recv())
    print("closed", ws.close_code, ws.close_reason, flush=True)
asyncio.run(main())
"#;

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

fn server() -> (Peer, u16) {
    let mut peer = Peer::netsh(SERVER);
    let port = peer.port();
    (peer, port)
}

/// Runs the python client in `mode` against `path`; its output.
fn client(port: u16, path: &str, mode: &str, extra: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["30", PYTHON, "-c", CLIENT])
        .arg(format!("ws://127.0.0.1:{port}{path}"))
        .arg(mode)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python client ({mode}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The closure shape echoes text, binary, 1 MiB and fragmented messages
/// back to python, answers its ping, and sees the client's close code.
#[test]
fn python_client_against_the_closure_shape() {
    if !have_websockets("python_client_against_the_closure_shape") {
        return;
    }
    let (mut srv, port) = server();
    let out = client(port, "/echo", "echo", &[]);
    assert_eq!(
        out,
        "text hello\nbinary 00ff\nbig 1048576 True\nfrag fragmented\nfragbin 010203\npong\nclosed 4005 client done\n"
    );
    srv.expect("closed 4005 client done");
}

/// A close the server's closure starts reaches python with its code and
/// reason.
#[test]
fn the_server_closes_with_its_code() {
    if !have_websockets("the_server_closes_with_its_code") {
        return;
    }
    let (_srv, port) = server();
    assert_eq!(
        client(port, "/echo", "bye", &[]),
        "closed 4006 server done\n"
    );
}

/// The event shape serves 50 concurrent connections, each greeted by
/// `on_open` and echoed in order by `on_message`; a handler that throws
/// closes its connection with 1011, is reported, and the server goes on.
#[test]
fn the_event_shape_serves_many_and_survives_a_throw() {
    if !have_websockets("the_event_shape_serves_many_and_survives_a_throw") {
        return;
    }
    let (mut srv, port) = server();
    assert_eq!(client(port, "/events", "many", &["50"]), "many ok\n");
    assert_eq!(
        client(port, "/events", "boom", &[]),
        "closed 1011 the handler failed\n"
    );
    srv.expect("handler boom");
    assert_eq!(client(port, "/events", "many", &["3"]), "many ok\n");
}

/// A ping that comes while the closure sleeps (not waiting on its
/// WebSocket) is answered long before the closure's next `recv`: its
/// plain connection, on a runtime of its own, is driven by a keeper then.
#[test]
fn a_busy_closure_still_answers_pings() {
    if !have_websockets("a_busy_closure_still_answers_pings") {
        return;
    }
    let (_srv, port) = server();
    assert_eq!(
        client(port, "/busy", "busy", &[]),
        "pong while busy\necho after\nclosed 1000 \n"
    );
}

/// A plain connection's closure reads its own socket: the server's
/// workers (`netsh-http`) sleep through the echoes, where a connection
/// left on the server's runtime has a worker read each message and wake
/// the closure's thread (two wake-ups a message; it happened unnoticed
/// once hyper's IO on plain HTTP/1.1 became sendfile's wrapper, which the
/// route did not know how to take over).
#[test]
fn a_closure_reads_its_own_socket() {
    let (srv, port) = server();
    let switched = worker_switches_over_300_echoes(srv.pid(), port, "/echo");
    let woken: u64 = switched.iter().map(|s| s.voluntary).sum();
    assert!(
        woken < 60,
        "the server's workers waited {woken} times over 300 echoes"
    );
}

/// An event handler's `ws.send` is written by the connection's task when
/// the handler returns, with no wake-up, so one worker does all the
/// echoes and the other sleeps. When the send woke the task it ran on,
/// tokio handed the task to the idle second worker time and again: the
/// quieter worker switched 250–330 times over 300 echoes (now 0–2).
#[test]
fn an_event_handlers_send_wakes_no_other_worker() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipped: one CPU, so http_serve runs one worker and there is no other to wake");
        return;
    }
    let (srv, port) = server();
    let switched = worker_switches_over_300_echoes(srv.pid(), port, "/small_events");
    let quietest = switched.iter().map(|s| s.all).min().unwrap_or(0);
    assert!(
        switched.len() >= 2 && quietest < 50,
        "every worker took part in the echoes (context switches over 300: {switched:?})"
    );
}

/// Context switches of one thread: waits (`voluntary`) and all.
#[derive(Debug, Clone, Copy, Default)]
struct Switches {
    voluntary: u64,
    all: u64,
}

/// Echoes 320 binary messages through `path`; the context switches of
/// each of the server's workers over the last 300.
fn worker_switches_over_300_echoes(pid: u32, port: u16, path: &str) -> Vec<Switches> {
    use tokio_tungstenite::tungstenite::{self, Message};
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), tcp).unwrap();
    // Binary: the closure route prints each text message.
    let mut echo = |i: u32| {
        let message = Message::binary(i.to_be_bytes().to_vec());
        ws.send(message.clone()).unwrap();
        assert_eq!(ws.read().unwrap(), message);
    };
    (0..20).for_each(&mut echo);
    let before = worker_switches(pid);
    (20..320).for_each(&mut echo);
    worker_switches(pid)
        .into_iter()
        .map(|(tid, after)| {
            let was = before.get(&tid).copied().unwrap_or_default();
            Switches {
                voluntary: after.voluntary - was.voluntary,
                all: after.all - was.all,
            }
        })
        .collect()
}

/// The context switches so far of each `http_serve` worker
/// (`netsh-http`) of process `pid`, by thread id.
fn worker_switches(pid: u32) -> std::collections::BTreeMap<String, Switches> {
    let mut workers = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if name.trim() != "netsh-http" {
            continue;
        }
        let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
        let count = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let voluntary = count("voluntary_ctxt_switches:");
        let tid = task.file_name().unwrap().to_string_lossy().into_owned();
        workers.insert(
            tid,
            Switches {
                voluntary,
                all: voluntary + count("nonvoluntary_ctxt_switches:"),
            },
        );
    }
    workers
}

/// A message over the route's `max_message` fails the connection with a
/// close frame saying 1009 (RFC 6455 §7.4.1), on both shapes, not a bare
/// TCP close (which python reports as 1006); the closure's `recv` throws
/// `too_big`.
#[test]
fn a_message_over_the_limit_closes_with_1009() {
    if !have_websockets("a_message_over_the_limit_closes_with_1009") {
        return;
    }
    let (mut srv, port) = server();
    for path in ["/small", "/small_events"] {
        assert_eq!(
            client(port, path, "big", &[]),
            "echo small\nclosed 1009 message too big\n",
            "{path}"
        );
    }
    srv.expect("small failed too_big");
}

/// A frame that breaks the protocol (RSV1 set with no extension agreed)
/// is answered with 1002 and one with text that is not UTF-8 with 1007,
/// each a close frame the client reads before the server's clean end of
/// the stream (no reset), on both shapes.
#[test]
fn a_broken_frame_closes_with_1002_or_1007() {
    if !have_websockets("a_broken_frame_closes_with_1002_or_1007") {
        return;
    }
    let (mut srv, port) = server();
    for path in ["/small", "/small_events"] {
        assert_eq!(
            client(port, path, "raw", &["rsv"]),
            "raw close 1002 protocol error then eof\n",
            "{path}"
        );
        assert_eq!(
            client(port, path, "raw", &["utf8"]),
            "raw close 1007 text that is not UTF-8 then eof\n",
            "{path}"
        );
    }
    srv.expect("small failed protocol");
}

/// A subprotocol both sides know is chosen and is `ws.protocol`.
#[test]
fn the_route_picks_a_subprotocol() {
    if !have_websockets("the_route_picks_a_subprotocol") {
        return;
    }
    let (_srv, port) = server();
    assert_eq!(
        client(port, "/proto", "proto", &[]),
        "protocol chat chat\nclosed 1000 \n"
    );
}

/// netsh's client and server together, and a plain HTTP request to a
/// WebSocket route: 426 with `Upgrade: websocket`, no call of the script.
#[test]
fn netsh_client_and_a_plain_request() {
    let (mut srv, port) = server();
    let out = Netsh::eval(&format!(
        r#"let ws = ws_connect("ws://127.0.0.1:{port}/echo");
           ws.send("from netsh"); let m = ws.recv(); ws.close(4010, "bye now"); m"#
    ));
    assert_eq!(out.trim(), "from netsh");
    srv.expect("closed 4010 bye now");
    let plain = Netsh::eval(&format!(
        r#"let r = fetch("http://127.0.0.1:{port}/echo"); `${{r.status}} ${{r.headers.upgrade}}`"#
    ));
    assert_eq!(plain.trim(), "426 websocket");
    assert!(
        srv.wait_for("got ", Duration::from_millis(300))
            .is_some_and(|l| l.contains("from netsh"))
    );
}

/// Route values that cannot be a WebSocket route are refused when the
/// server starts, naming the route.
#[test]
fn bad_websocket_routes_are_refused() {
    let cases = [
        (
            r#"#{"/ws": #{websocket: 5}}"#,
            "websocket must be a closure",
        ),
        (r#"#{"/ws": #{websocket: |a, b| 1}}"#, "ws"),
        (
            r#"#{"/ws": #{websocket: |ws| 1, on_message: |ws, m| 1}}"#,
            "not both",
        ),
        (
            r#"#{"/ws": #{websocket: |ws| 1, colour: 1}}"#,
            "unknown websocket route option 'colour'",
        ),
        (
            r#"#{"/ws": #{protocols: ["chat"]}}"#,
            "a map route is a WebSocket",
        ),
        (
            r#"#{"/ws": #{websocket: |ws| 1, protocols: ["a b"]}}"#,
            "not a subprotocol name",
        ),
    ];
    for (routes, words) in cases {
        let err = Netsh::eval_err(&format!(r#"http_serve("127.0.0.1:0", {routes})"#));
        assert!(
            err.contains("route \"/ws\"") && err.contains(words),
            "{routes}: expected {words:?} in {err}"
        );
    }
}

/// Headless Chromium loads a page from `http_serve`; the page's script
/// opens a WebSocket to the same server, sends a message, and writes the
/// echo into its DOM, which `--dump-dom` shows.
#[test]
fn chromium_page_echoes_through_a_websocket() {
    let test = "chromium_page_echoes_through_a_websocket";
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        skip(test, "chromium is not installed (apt-get install chromium)");
        return;
    };
    let (mut srv, port) = server();
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args([
            "60",
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args([
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
        ])
        .args(["--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains(r#"<div id="out">echo: hello from chromium</div>"#),
        "the DOM:\n{dom}\nchromium's stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    srv.expect("got hello from chromium");
}

/// The python client over wss, trusting the test's certificate: text and
/// binary echo on both shapes, then the closure's close code.
const TLS_CLIENT: &str = r#"
import asyncio, ssl, sys, websockets
async def main():
    port, cert = sys.argv[1], sys.argv[2]
    ctx = ssl.create_default_context(cafile=cert)
    for path in ["/echo", "/events"]:
        async with websockets.connect(f"wss://127.0.0.1:{port}{path}", ssl=ctx) as ws:
            await ws.send("over tls")
            print(path, "text", await ws.recv())
            await ws.send(b"\x00\x01\xfe")
            print(path, "binary", (await ws.recv()).hex())
            if path == "/echo":
                await ws.send("bye")
                try:
                    await ws.recv()
                except websockets.ConnectionClosed:
                    pass
        print(path, "closed", ws.close_code, ws.close_reason, flush=True)
asyncio.run(main())
"#;

/// WebSocket routes over TLS (`wss://`, the certificate and key from
/// files): python3-websockets, trusting that certificate and nothing
/// else, gets its text and binary echoed by both shapes and the
/// closure's close code (4007) with its reason.
#[test]
fn wss_routes_with_a_certificate() {
    if !have_websockets("wss_routes_with_a_certificate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = crate::websocket::self_signed(dir.path()) else {
        skip(
            "wss_routes_with_a_certificate",
            "openssl could not make a certificate (apt-get install openssl)",
        );
        return;
    };
    let mut srv = Peer::netsh(&format!(
        r#"let s = http_serve("127.0.0.1:0", #{{
             "/echo": #{{websocket: |ws| {{
                 loop {{
                     let m = ws.recv();
                     if m == () {{ break }}
                     if m == "bye" {{ ws.close(4007, "tls done"); break }}
                     ws.send(m);
                 }}
             }}}},
             "/events": #{{on_message: |ws, m| ws.send(m)}},
           }}, #{{tls: #{{cert: "{}", key: "{}"}}, quiet: true}});
           print(s.port); s.wait();"#,
        cert.display(),
        key.display()
    ));
    let port = srv.port();
    let out = Command::new("timeout")
        .args(["30", PYTHON, "-c", TLS_CLIENT])
        .arg(port.to_string())
        .arg(&cert)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python wss client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "/echo text over tls\n/echo binary 0001fe\n/echo closed 4007 tls done\n\
         /events text over tls\n/events binary 0001fe\n/events closed 1000 \n"
    );
}
