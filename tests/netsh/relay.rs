//! Relays: `forward` and `relay` against real peers on loopback — nc,
//! curl, openssl s_client and s_server, socat — and netsh's own servers
//! where the peer does not matter (counts, limits, datagrams).

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{Netsh, Peer, closed_port, has_tool};

/// A plain backend on a thread: reads until the client's FIN, then answers
/// `got N bytes: …` and closes. It can only answer if the FIN reached it.
fn answer_after_fin() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        let reply = format!(
            "got {} bytes: {}\n",
            got.len(),
            String::from_utf8_lossy(&got)
        );
        c.write_all(reply.as_bytes()).unwrap();
    });
    (port, handle)
}

/// A plain backend that answers one line with `hello from plain` and closes.
fn greeter() -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while c.read(&mut byte).map(|n| n == 1).unwrap_or(false) && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        c.write_all(b"hello from plain\n").unwrap();
        String::from_utf8_lossy(&line).into_owned()
    });
    (port, handle)
}

/// A forward in a netsh process of its own, printing its port.
fn forward_peer(target: &str, options: &str) -> (Peer, u16) {
    let mut peer = Peer::netsh(&format!(
        r#"let f = forward("127.0.0.1:0", "{target}", {options}); print(f.port); f.wait();"#
    ));
    let port = peer.port();
    (peer, port)
}

/// `printf 'req' | nc -N`: nc's FIN reaches the server through the
/// forward, and the server's answer, sent after it, still comes back.
#[test]
fn nc_half_close_passes_through_a_forward() {
    if !has_tool(
        "nc_half_close_passes_through_a_forward",
        "nc",
        &["-h"],
        "netcat-openbsd",
    ) {
        return;
    }
    let (backend, server) = answer_after_fin();
    let (_f, port) = forward_peer(&format!("127.0.0.1:{backend}"), "#{quiet: true}");
    let out = Command::new("timeout")
        .args([
            "20",
            "sh",
            "-c",
            &format!("printf 'req' | nc -N 127.0.0.1 {port}"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got 3 bytes: req\n");
    server.join().unwrap();
}

/// curl fetches a page through a forward, and through a TLS-terminating
/// forward (`curl -k https://…`) in front of the same plain HTTP server.
#[test]
fn curl_through_plain_and_tls_terminating_forwards() {
    if !has_tool(
        "curl_through_plain_and_tls_terminating_forwards",
        "curl",
        &["--version"],
        "curl",
    ) {
        return;
    }
    let server = crate::support::http::HttpServer::start();
    let backend = server
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let (_plain, port) = forward_peer(&backend, "#{quiet: true}");
    let (_tls, tls_port) = forward_peer(&backend, "#{quiet: true, tls: #{self_signed: true}}");
    for url in [
        format!("http://127.0.0.1:{port}/hello"),
        format!("https://localhost:{tls_port}/hello"),
    ] {
        let out = Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ])
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(code == "200" || code == "404", "curl {url} got {code:?}");
    }
    let paths: Vec<String> = server.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        paths.iter().filter(|p| *p == "/hello").count(),
        2,
        "{paths:?}"
    );
}

/// `openssl s_client` in front of a TLS-terminating forward, a plain
/// server behind it: the line goes in clear to the server, the answer back.
#[test]
fn openssl_s_client_through_tls_termination() {
    if !has_tool(
        "openssl_s_client_through_tls_termination",
        "openssl",
        &["version"],
        "openssl",
    ) {
        return;
    }
    let (backend, server) = greeter();
    let (_f, port) = forward_peer(
        &format!("127.0.0.1:{backend}"),
        "#{quiet: true, tls: #{self_signed: true}}",
    );
    let mut client = Command::new("timeout")
        .args([
            "20", "openssl", "s_client", "-quiet", "-ign_eof", "-connect",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"hi in clear\n")
        .unwrap();
    let out = client.wait_with_output().unwrap();
    assert_eq!(server.join().unwrap(), "hi in clear");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from plain\n");
}

/// Bytes no two of which repeat within a TLS record or a read buffer's
/// length, so a chunk lost, doubled or moved shows.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Megabytes through a TLS-terminating forward, one way and then the
/// other, with socat as the TLS client: every byte arrives, in order, as
/// the copy's buffer grows from 64 to 256 KiB on the way.
#[test]
fn bulk_streams_cross_tls_termination_intact() {
    if !has_tool(
        "bulk_streams_cross_tls_termination_intact",
        "socat",
        &["-V"],
        "socat",
    ) {
        return;
    }
    const LEN: usize = 8 << 20;
    let down = pattern(LEN, 7);
    let up = pattern(LEN, 11);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = listener.local_addr().unwrap().port();
    let sent = down.clone();
    let server = std::thread::spawn(move || {
        // First client: the download, closed when all is written.
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(&sent).unwrap();
        drop(c);
        // Second client: the upload, read to its end.
        let (mut c, _) = listener.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        got
    });
    let (_f, port) = forward_peer(
        &format!("127.0.0.1:{backend}"),
        "#{quiet: true, tls: #{self_signed: true}}",
    );
    let tls = format!("OPENSSL:127.0.0.1:{port},verify=0");
    let got = Command::new("timeout")
        .args(["30", "socat", "-u", &tls, "STDOUT"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(got.stdout.len(), LEN, "the download's length");
    assert!(got.stdout == down, "the download's bytes differ");
    let mut client = Command::new("timeout")
        .args(["30", "socat", "-u", "STDIN", &tls])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    client.stdin.take().unwrap().write_all(&up).unwrap();
    client.wait().unwrap();
    let received = server.join().unwrap();
    assert_eq!(received.len(), LEN, "the upload's length");
    assert!(received == up, "the upload's bytes differ");
}

/// A plain client, `openssl s_server -rev` behind a forward that
/// originates TLS (`target_tls`): the server's reversed line comes back.
#[test]
fn target_tls_reaches_openssl_s_server() {
    if !has_tool(
        "target_tls_reaches_openssl_s_server",
        "openssl",
        &["version"],
        "openssl",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir.path()).args([
        "s_server",
        "-accept",
        "127.0.0.1:0",
        "-cert",
        "cert.pem",
        "-key",
        "key.pem",
        "-rev",
    ]);
    let mut s_server = Peer::start(cmd);
    let line = s_server.expect("ACCEPT");
    let backend: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    let ca = dir.path().join("cert.pem");
    let out = Netsh::eval(&format!(
        r#"let f = forward("127.0.0.1:0", "localhost:{backend}", #{{quiet: true, target_tls: #{{ca: "{}"}}}});
           let c = connect(`127.0.0.1:${{f.port}}`);
           c.send_line("stressed"); print(c.recv_line(#{{timeout: 10000}}));"#,
        ca.display()
    ));
    assert_eq!(out.trim(), "desserts");
}

/// The backend resets its connection; the client on the other side of
/// the forward sees a reset too, not an orderly end.
#[test]
fn a_reset_passes_through() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);
    });
    let (_f, port) = forward_peer(&format!("127.0.0.1:{backend}"), "#{quiet: true}");
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    client.write_all(b"x").unwrap();
    server.join().unwrap();
    let mut buf = [0u8; 16];
    let got = client.read(&mut buf);
    assert!(
        matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "expected a reset, got {got:?}"
    );
}

/// A target that refuses: each client is closed at once, the forward
/// counts them, and says so once, not once per client.
#[test]
fn a_refused_target_closes_clients_and_says_so_once() {
    let dead = closed_port();
    let run = Netsh::new()
        .arg("-e")
        .arg(format!(
            r#"let f = forward("127.0.0.1:0", "127.0.0.1:{dead}");
               for i in 0..20 {{
                   let c = connect(`127.0.0.1:${{f.port}}`);
                   let rest = c.read_all(#{{timeout: 5000}});
                   if rest.len() != 0 {{ print("bytes from nowhere") }}
               }}
               sleep(100);
               print(f.stats().failed);"#
        ))
        .ok();
    assert_eq!(run.stdout().trim(), "20");
    let told = run.stderr().matches("cannot relay").count();
    assert_eq!(told, 1, "stderr: {}", run.stderr());
    assert!(run.stderr().contains("refused"), "{}", run.stderr());
}

/// With `max_connections: 1`, a second client waits until the first ends.
#[test]
fn max_connections_holds_back_the_second_client() {
    let out = Netsh::eval(
        r#"let s = serve("127.0.0.1:0", |c| { loop { let l = c.recv_line(); if l == () { break } c.send_line(l) } }, #{quiet: true});
           let f = forward("127.0.0.1:0", `127.0.0.1:${s.port}`, #{max_connections: 1, quiet: true});
           let a = connect(`127.0.0.1:${f.port}`);
           a.send_line("a"); print(a.recv_line(#{timeout: 5000}));
           let b = connect(`127.0.0.1:${f.port}`);
           b.send_line("b");
           try { b.recv_line(#{timeout: 500}); print("b was not held back") } catch (e) { print(e.kind) }
           a.close();
           print(b.recv_line(#{timeout: 5000}));"#,
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["a", "timeout", "b"]);
}

/// `allow` turns away clients outside its blocks before the target is
/// reached, and lets those inside through.
#[test]
fn allow_turns_away_other_clients() {
    let out = Netsh::eval(
        r#"let s = serve("127.0.0.1:0", |c| c.send_line("inside"), #{quiet: true});
           let no = forward("127.0.0.1:0", `127.0.0.1:${s.port}`, #{allow: ["10.0.0.0/8"], quiet: true});
           let yes = forward("127.0.0.1:0", `127.0.0.1:${s.port}`, #{allow: "127.0.0.0/8", quiet: true});
           let c = connect(`127.0.0.1:${no.port}`);
           print(c.read_all(#{timeout: 5000}).len());
           print(no.stats().turned_away);
           print(connect(`127.0.0.1:${yes.port}`).recv_line(#{timeout: 5000}));
           print(s.served);"#,
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["0", "1", "inside", "1"]);
}

/// Two UDP clients through one forward each get their own replies.
#[test]
fn udp_forward_keeps_clients_replies_apart() {
    let out = Netsh::eval(
        r#"let srv = udp_bind("127.0.0.1:0");
           let t = task(|| { for i in 0..4 { let m = srv.recv(); srv.send_to(m.from, `echo ${m.data}`); } });
           let f = forward("127.0.0.1:0", `127.0.0.1:${srv.port}`, #{udp: true, quiet: true});
           let one = udp_bind("127.0.0.1:0");
           let two = udp_bind("127.0.0.1:0");
           one.send_to(`127.0.0.1:${f.port}`, "one-1");
           two.send_to(`127.0.0.1:${f.port}`, "two-1");
           print(one.recv(5000).data); print(two.recv(5000).data);
           two.send_to(`127.0.0.1:${f.port}`, "two-2");
           one.send_to(`127.0.0.1:${f.port}`, "one-2");
           print(one.recv(5000).data); print(two.recv(5000).data);
           print(f.stats().served);"#,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["echo one-1", "echo two-1", "echo one-2", "echo two-2", "2"]
    );
}

/// A Unix socket forwarded to TCP and TCP forwarded to a Unix socket,
/// with socat as the Unix-side client.
#[test]
fn unix_and_tcp_both_ways() {
    if !has_tool("unix_and_tcp_both_ways", "socat", &["-V"], "socat") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("front.sock");
    let back = dir.path().join("back.sock");
    let mut peer = Peer::netsh(&format!(
        r#"let s = serve("127.0.0.1:0", |c| c.send_line(`tcp got ${{c.recv_line()}}`), #{{quiet: true}});
           let u = serve("unix:{back}", |c| c.send_line(`unix got ${{c.recv_line()}}`), #{{quiet: true}});
           let to_tcp = forward("unix:{sock}", `127.0.0.1:${{s.port}}`, #{{quiet: true}});
           let to_unix = forward("127.0.0.1:0", "unix:{back}", #{{quiet: true}});
           print(to_unix.port);
           to_tcp.wait();"#,
        back = back.display(),
        sock = sock.display()
    ));
    let port = peer.port();
    let out = Command::new("timeout")
        .args(["20", "sh", "-c"])
        .arg(format!("echo hi | socat - UNIX-CONNECT:{}", sock.display()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tcp got hi\n");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"there\n").unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "unix got there\n");
}

/// `stop()` closes the connections the forward holds (the client reads
/// the end) and frees the port.
#[test]
fn stop_closes_what_it_holds() {
    let out = Netsh::eval(
        r#"let s = serve("127.0.0.1:0", |c| { c.send_line(c.recv_line()); c.recv_line(); }, #{quiet: true});
           let f = forward("127.0.0.1:0", `127.0.0.1:${s.port}`, #{quiet: true});
           let c = connect(`127.0.0.1:${f.port}`);
           c.send_line("held");
           c.recv_line(#{timeout: 5000});
           print(f.active);
           f.stop();
           print(c.read_all(#{timeout: 5000}).len());
           print(f.active);
           let l = listen(`127.0.0.1:${f.port}`); print("port free");"#,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["1", "0", "0", "port free"]
    );
}

/// A relayed stream to a peer on this machine gets a fixed send buffer
/// on the socket it writes to (256 KiB, which the kernel doubles) once
/// it has moved a MiB: autotuning would grow it to megabytes of pages in
/// flight that a loopback stream does not need (left alone it read 4 MiB
/// here).
#[test]
fn a_loopback_stream_caps_its_send_buffer() {
    if !has_tool(
        "a_loopback_stream_caps_its_send_buffer",
        "ss",
        &["-V"],
        "iproute2",
    ) {
        return;
    }
    let (backend, answered) = answer_after_fin();
    let (_fwd, port) = forward_peer(&format!("127.0.0.1:{backend}"), "#{quiet: true}");
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(&vec![b'x'; 2 << 20]).unwrap();
    let max = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let want = 2 * max.min(256 * 1024);
    // The forward's socket to the backend, which the stream is written to.
    let filter = format!("dst 127.0.0.1:{backend}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let buffer = loop {
        let out = Command::new("ss")
            .args(["-tmnH", "state", "established"])
            .args(filter.split(' '))
            .output()
            .expect("ss (iproute2) runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let tb = text
            .split([',', '(', ')'])
            .find_map(|field| field.strip_prefix("tb")?.parse::<u64>().ok());
        match tb {
            Some(tb) if tb == want || Instant::now() > deadline => break tb,
            _ if Instant::now() > deadline => panic!("ss found no socket for {filter}: {text}"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    assert_eq!(
        buffer, want,
        "the forward's socket to the backend has a send buffer of {buffer}"
    );
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    client.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("got 2097152 bytes: xxx"),
        "{}",
        &reply[..reply.len().min(80)]
    );
    answered.join().unwrap();
}

/// `relay(a, b)` joins a connection from nc (which half-closes) to a
/// backend; the counts come back.
#[test]
fn relay_joins_two_conns_with_nc() {
    if !has_tool(
        "relay_joins_two_conns_with_nc",
        "nc",
        &["-h"],
        "netcat-openbsd",
    ) {
        return;
    }
    let (backend, server) = answer_after_fin();
    let mut peer = Peer::netsh(&format!(
        r#"let l = listen("127.0.0.1:0"); print(l.port);
           let c = l.accept();
           let r = relay(c, connect("127.0.0.1:{backend}"));
           print(`counts ${{r.a_to_b}} ${{r.b_to_a}} ${{r.end}}`);"#
    ));
    let port = peer.port();
    let out = Command::new("timeout")
        .args([
            "20",
            "sh",
            "-c",
            &format!("printf 'hello' | nc -N 127.0.0.1 {port}"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got 5 bytes: hello\n");
    assert_eq!(peer.expect("counts"), "counts 5 19 closed");
    server.join().unwrap();
}

/// A forward to its own address: refused up front when the target is the
/// address itself, and when it is the same port by name, the connection
/// that comes back is refused (bounded: no storm).
#[test]
fn a_forward_to_itself_is_refused_or_bounded() {
    let err = Netsh::eval_err(
        r#"let f = forward("127.0.0.1:0", "127.0.0.1:1"); let p = f.port; f.stop();
           forward(`127.0.0.1:${p}`, `127.0.0.1:${p}`)"#,
    );
    assert!(err.contains("own listening address"), "{err}");
    let port = closed_port();
    let started = Instant::now();
    let run = Netsh::new()
        .arg("-e")
        .arg(format!(
            r#"let f = forward("127.0.0.1:{port}", "localhost:{port}", #{{quiet: true}});
               let c = connect("127.0.0.1:{port}");
               print(c.read_all(#{{timeout: 5000}}).len());
               let d = connect("127.0.0.1:{port}");
               print(d.read_all(#{{timeout: 5000}}).len());
               sleep(300);
               let s = f.stats(); print(s.served); print(s.turned_away);"#
        ))
        .ok();
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["0", "0"], "{out}");
    // The first client's connection came back once or twice before the
    // loop was seen; after that, clients are closed without a connect.
    let served: u64 = lines[2].parse().unwrap();
    let turned_away: u64 = lines[3].parse().unwrap();
    assert!((2..=4).contains(&served), "{out}");
    assert!(turned_away >= 1, "{out}");
    assert!(
        run.stderr()
            .contains("leads back to this forward's own address"),
        "{}",
        run.stderr()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Malformed input fails before anything binds or connects.
#[test]
fn bad_input_is_refused_before_anything_is_sent() {
    for (code, words) in [
        (r#"forward("127.0.0.1:0", "1.2.3")"#, "forward:"),
        (r#"forward("127.0.0.1:0", "127.0.0.1:0")"#, "port 0"),
        (
            r#"forward("127.0.0.1:0", "127.0.0.1:80", #{idle: "x"})"#,
            "option 'idle'",
        ),
        (
            r#"forward("127.0.0.1:0", "127.0.0.1:80", #{tiemout: 1})"#,
            "unknown option 'tiemout'",
        ),
        (
            r#"forward("127.0.0.1:0", "127.0.0.1:80", #{on_open: 3})"#,
            "option 'on_open'",
        ),
        (
            r#"forward("127.0.0.1:0", "127.0.0.1:80", #{allow: ["nope"]})"#,
            "address block",
        ),
        (
            r#"forward("127.0.0.1:0", "127.0.0.1:80", #{udp: true, tls: #{self_signed: true}})"#,
            "UDP",
        ),
        (r#"forward(70000, "127.0.0.1:80")"#, "out of range"),
    ] {
        let err = Netsh::eval_err(code);
        assert!(err.contains(words), "{code}: {err}");
        assert!(!err.contains("panick"), "{code}: {err}");
    }
}

/// `netsh forward`: the bundled demo shows what passes each way and the
/// half-close going through, by a forward and by `socks_serve`.
#[test]
fn the_forward_scenario_runs() {
    let out = Netsh::new().arg("forward").ok().stdout();
    let replies = out
        .matches("the reply: server got 24 bytes: hello through the middle")
        .count();
    assert_eq!(replies, 2, "{out}");
    assert!(out.contains("24 bytes in, 46 bytes back"), "{out}");
    assert!(out.contains("asked for localhost:"), "{out}");
}

/// `netsh forward LISTEN TARGET` is a ready port forward until stopped.
#[test]
fn netsh_forward_listen_target_forwards() {
    let (backend, server) = answer_after_fin();
    let mut cmd = Command::new(crate::support::netsh_bin());
    cmd.args(["forward", "127.0.0.1:0", &format!("127.0.0.1:{backend}")]);
    let mut peer = Peer::start(cmd);
    let line = peer.expect("forwarding 127.0.0.1:");
    let port: u16 = line
        .trim_start_matches("forwarding 127.0.0.1:")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"via rinetd-style forward").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "got 24 bytes: via rinetd-style forward\n");
    server.join().unwrap();
}

/// `idle` closes a relayed connection nothing moved on for that long;
/// one that keeps talking stays open.
#[test]
fn idle_closes_a_quiet_connection() {
    let out = Netsh::eval(
        r#"let s = serve("127.0.0.1:0", |c| { loop { let l = c.recv_line(); if l == () { break } c.send_line(l) } }, #{quiet: true});
           let f = forward("127.0.0.1:0", `127.0.0.1:${s.port}`, #{idle: 400, quiet: true});
           let busy = connect(`127.0.0.1:${f.port}`);
           let quiet = connect(`127.0.0.1:${f.port}`);
           quiet.send_line("once"); print(quiet.recv_line(#{timeout: 5000}));
           for i in 0..6 { busy.send_line(`${i}`); busy.recv_line(#{timeout: 5000}); sleep(150); }
           print(quiet.read_all(#{timeout: 5000}).len());
           busy.send_line("still"); print(busy.recv_line(#{timeout: 5000}));"#,
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["once", "0", "still"]);
}
