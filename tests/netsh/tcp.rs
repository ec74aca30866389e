//! TCP, `task` and `serve` from scripts, against real peers on 127.0.0.1
//! and ::1: std sockets in test threads, or netsh talking to itself.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    thread,
    time::Duration,
};

use crate::support::{self, Netsh, Peer, ask, closed_port, line_client, many_clients, peer_on};

/// `netsh -e CODE` with `ADDR` replaced by `addr`; returns stdout lines.
fn eval_lines(code: &str, addr: SocketAddr) -> Vec<String> {
    Netsh::eval(&code.replace("ADDR", &addr.to_string()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// recv_line, recv_until, read(n), read_all and recv cut the byte stream where they say, and end of stream reads as `()` / `""`.
#[test]
fn reads_split_the_stream_as_asked() {
    let (addr, peer) = peer_on("127.0.0.1:0", |mut s| {
        s.write_all(b"one\r\ntwo\nabc|").unwrap();
        s.write_all(&[1, 2, 3, 4, 5]).unwrap();
    });
    let out = eval_lines(
        r#"let c = connect("ADDR");
           print(c.recv_line()); print(c.recv_line()); print(c.recv_until("|"));
           print(hex(c.read(2))); print(hex(c.read_all()));
           print(c.recv_line() == ()); print(c.recv() == ""); print(c.recv_until("x") == ());"#,
        addr,
    );
    peer.join().unwrap();
    assert_eq!(
        out,
        [
            "one", "two", "abc", "0102", "030405", "true", "true", "true"
        ]
    );
}

/// send(str), send(blob) and send_line arrive byte for byte at an IPv6 peer; recv returns what the peer sent.
#[test]
fn sends_reach_an_ipv6_peer() {
    let (addr, peer) = peer_on("[::1]:0", |mut s| {
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        s.write_all(b"ack").unwrap();
        line
    });
    let out = eval_lines(
        r#"let c = connect("ADDR");
           print(c.send("ab")); print(c.send(blob(2, 0x43))); print(c.send_line("d"));
           print(c.recv()); print(c.peer == "ADDR"); print(c.local.starts_with("[::1]:"));"#,
        addr,
    );
    assert_eq!(peer.join().unwrap(), "abCCd\n");
    assert_eq!(out, ["2", "2", "2", "ack", "true", "true"]);
}

/// After shutdown() the peer reads end of stream, and the reply it sends afterwards is still read.
#[test]
fn half_close_lets_the_reply_through() {
    let (addr, peer) = peer_on("127.0.0.1:0", |mut s| {
        let mut request = Vec::new();
        s.read_to_end(&mut request).unwrap(); // returns only at netsh's FIN
        thread::sleep(Duration::from_millis(300)); // while netsh looks at FIN_WAIT2
        s.write_all(format!("got {} bytes", request.len()).as_bytes())
            .unwrap();
        s.shutdown(Shutdown::Write).unwrap();
    });
    let out = eval_lines(
        r#"let c = connect("ADDR");
           c.send("request"); c.shutdown(); c.shutdown(); sleep(100);
           print(c.info().state);
           print(c.recv_line());
           try { c.send("more") } catch (e) { print(e) }"#,
        addr,
    );
    peer.join().unwrap();
    assert_eq!(out[0], "FIN_WAIT2", "{out:?}");
    assert_eq!(out[1], "got 7 bytes");
    assert!(out[2].contains("shut down with shutdown()"), "{out:?}");
}

/// listen + accept(ms) serve a std client; .local and .peer name both ends.
#[test]
fn accept_serves_a_std_client() {
    let port = closed_port();
    let client = thread::spawn(move || {
        for _ in 0..200 {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                s.write_all(b"hi\n").unwrap();
                let mut reply = String::new();
                BufReader::new(&s).read_line(&mut reply).unwrap();
                return (s.local_addr().unwrap(), reply);
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("netsh never listened on {port}");
    });
    let out = Netsh::eval(&format!(
        r#"let l = listen("127.0.0.1:{port}"); let c = l.accept(5000);
           c.send_line(c.recv_line().to_upper()); c.close(); l.close();
           print(c.local); print(c.peer);"#
    ));
    let (client_addr, reply) = client.join().unwrap();
    assert_eq!(reply, "HI\n");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [format!("127.0.0.1:{port}"), client_addr.to_string()]
    );
}

/// connect(host, port) and connect(addr, #{timeout}) both work; info() reports ESTABLISHED, an RTT and CLOSE_WAIT / FIN_WAIT2 after a half-close.
#[test]
fn connect_forms_and_tcp_info() {
    let out = Netsh::eval(
        r#"let l = listen("127.0.0.1:0");
           let a = connect("localhost", l.port); let sa = l.accept(5000);
           let b = connect(l.addr, #{timeout: 2000}); let sb = l.accept(5000);
           let i = a.info();
           print(i.state); print(type_of(i.rtt_us)); print(i.total_retrans);
           a.shutdown(); sleep(100);
           print(a.info().state); print(sa.info().state); print(b.info().state);"#,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "ESTABLISHED",
            "i64",
            "0",
            "FIN_WAIT2",
            "CLOSE_WAIT",
            "ESTABLISHED"
        ]
    );
}

/// A read that times out says so and leaves the connection usable: the partial line read before the timeout is not lost.
#[test]
fn read_timeout_keeps_the_connection_and_its_data() {
    let (addr, peer) = peer_on("127.0.0.1:0", |mut s| {
        s.write_all(b"par").unwrap();
        thread::sleep(Duration::from_millis(700));
        s.write_all(b"tial\n").unwrap();
    });
    let out = eval_lines(
        r#"let c = connect("ADDR"); c.timeout = 200; print(c.timeout);
           try { c.recv_line() } catch (e) { print(e) }
           c.set_timeout(5000); print(c.recv_line());"#,
        addr,
    );
    peer.join().unwrap();
    assert_eq!(out[0], "200");
    assert!(
        out[1].contains("recv_line: timed out after 200 ms") && out[1].contains("still open"),
        "{out:?}"
    );
    assert_eq!(out[2], "partial");
}

/// Text reads refuse bytes that are not UTF-8 and point to read(n), which still gets them; a character split across packets is reassembled.
#[test]
fn text_reads_check_utf8() {
    let (addr, peer) = peer_on("127.0.0.1:0", |mut s| {
        s.write_all(&[0xff, 0xfe]).unwrap();
        thread::sleep(Duration::from_millis(100));
        s.write_all(&[0xc3]).unwrap(); // first byte of 'é'
        thread::sleep(Duration::from_millis(100));
        s.write_all(&[0xa9]).unwrap();
    });
    let out = eval_lines(
        r#"let c = connect("ADDR"); sleep(50);
           try { c.recv() } catch (e) { print(e) }
           print(hex(c.read(2))); print(c.recv());"#,
        addr,
    );
    peer.join().unwrap();
    assert!(out[0].contains("not UTF-8 text; use read(n)"), "{out:?}");
    assert_eq!(out[1..], ["fffe", "é"]);
}

/// close() while another task is blocked in recv() on the same connection (captured by the task) wakes it with a "closed" error; the task was still waiting just before.
#[test]
fn close_wakes_a_blocked_reader() {
    let out = Netsh::eval(
        r#"let l = listen("[::1]:0"); let c = connect(l.addr); let s = l.accept(5000);
           let t = task(|| c.recv());
           sleep(200); print(t.done);
           c.close(); print(c.closed);
           try { t.join(5000) } catch (e) { print(e) }"#,
    );
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines[..2], ["false", "true"], "{out}");
    assert!(lines[2].contains("is closed"), "{out}");
}

/// task(|| …).join() returns the closure's value; a failing closure's error is re-raised with its place; join(ms) times out; .done flips.
#[test]
fn task_join_returns_values_and_errors() {
    let out = Netsh::eval(
        r#"let t = task(|| { sleep(50); 6 * 7 });
           print(t.join()); print(t.done);
           let bad = task(|| throw "boom");
           try { bad.join() } catch (e) { print(e) }
           let slow = task(|| sleep(5000));
           try { slow.join(50) } catch (e) { print(e) }
           print(slow.done); slow.stop();"#,
    );
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines[..2], ["42", "true"]);
    assert!(
        lines[2].contains("join: the task failed: -e:3:30: boom"),
        "{out}"
    );
    assert!(lines[3].contains("join: timed out after 50 ms"), "{out}");
    assert_eq!(lines[4], "false");
}

/// stop() ends a task blocked in accept() and one spinning in a Rhai loop, both still running just before; join then says it was stopped.
#[test]
fn task_stop_interrupts_blocking_calls_and_loops() {
    let out = Netsh::eval(
        r#"let l = listen("127.0.0.1:0");
           let waiting = task(|| l.accept());
           let spinning = task(|| { let n = 0; loop { n += 1 } });
           sleep(200); print(waiting.done); print(spinning.done);
           waiting.stop(); spinning.stop();
           for t in [waiting, spinning] { try { t.join(5000) } catch (e) { print(e) } }"#,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "false",
            "false",
            "join: the task was stopped with stop()",
            "join: the task was stopped with stop()"
        ]
    );
}

/// A closure error in one connection is printed on stderr with the peer and place, and the server goes on serving the next client (the report comes from the server's thread, so no line order is assumed).
#[test]
fn serve_reports_a_closure_error_and_keeps_serving() {
    let run = Netsh::new()
        .args([
            "-e",
            r#"let s = serve("127.0.0.1:0", |c| { let l = c.recv_line(); if l == "bad" { throw "bad input" } c.send_line(l) });
           print(`port ${s.port}`);
           let a = connect(s.addr); a.send_line("bad"); print(`bad: ${a.recv_line() == ()}`);
           let b = connect(s.addr); b.send_line("good"); print(`good: ${b.recv_line()}`);
           // Each handler reports before it stops counting as active.
           while s.active > 0 { sleep(10) }
           print(`served ${s.served}`); s.stop(); print(s);"#,
        ])
        .ok();
    let (out, err) = (run.stdout(), run.stderr());
    let lines: Vec<&str> = out.lines().collect();
    let port = lines
        .iter()
        .find_map(|l| l.strip_prefix("port "))
        .unwrap_or_else(|| panic!("no port in: {out}"));
    let report = format!("serve {port}: 127.0.0.1:");
    assert!(
        err.lines()
            .any(|l| l.starts_with(&report) && l.contains("-e:1:") && l.contains("bad input")),
        "no error report on stderr: {}",
        run.explain()
    );
    for expected in ["bad: true", "good: good", "served 2"] {
        assert!(lines.contains(&expected), "no {expected:?} in: {out}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Server #") && l.contains("stopped")),
        "{out}"
    );
}

/// A serve closure can recurse to Rhai's call-depth limit: 60 levels work, and going past 64 is a Rhai error, not a stack overflow.
#[test]
fn serve_closures_reach_the_call_depth_limit_safely() {
    let run = Netsh::new()
        .args([
            "-e",
            r#"fn deep(n) { if n == 0 { 0 } else { let a = [1]; for x in a { return x + deep(n - 1) } } }
           let s = serve("127.0.0.1:0", |c| c.send_line(`${deep(parse_int(c.recv_line()))}`));
           for n in [60, 100] { let c = connect(s.addr); c.send_line(`${n}`); print(c.recv_line()); }
           // The failed handler reports from its own thread; wait for it.
           while s.active > 0 { sleep(10) }
           print(task(|| deep(60)).join());"#,
        ])
        .ok();
    let out = run.stdout();
    assert_eq!(out, "60\n\n60", "{}", run.explain());
    assert!(
        run.stderr().to_lowercase().contains("stack overflow"),
        "{}",
        run.explain()
    );
}

/// The echo plugin, built only on serve/connect, answers over IPv4 and IPv6.
#[test]
fn echo_plugin_serves_both_families() {
    let out = Netsh::in_checkout()
        .arg("-e")
        .arg(
            r#"let s = echo::serve(0);
               print(echo::ask(`127.0.0.1:${s.port}`, "four")); print(echo::ask(`[::1]:${s.port}`, "six"));"#,
        )
        .ok()
        .stdout();
    assert_eq!(out, "four\nsix");
}

/// scripts/tcp_chat.rhai with no arguments runs server and client in one process.
#[test]
fn tcp_chat_script_runs_on_loopback() {
    let run = Netsh::in_checkout().arg("scripts/tcp_chat.rhai").ok();
    let out = run.stdout();
    assert!(out.contains(r#"server: got "hi from the client""#), "{out}");
    assert!(out.contains(r#"client: reply "hello 127.0.0.1:"#), "{out}");
}

/// serve with an echo closure under 200 concurrent std clients doing 50 round trips each: every reply is right, and the server still answers afterwards.
#[test]
fn serve_echoes_for_200_concurrent_clients() {
    let mut server = Peer::netsh(
        r#"let s = serve("127.0.0.1:0", |c| { loop { let l = c.recv_line(); if l == () { break } c.send_line(l) } });
           print(s.port); s.wait();"#,
    );
    let port = server.port();
    many_clients(port, 200, 50, |line, _| line.to_string());
    assert_eq!(ask(&mut line_client(port), "still there?"), "still there?");
}

/// One serve holds 1,000 simultaneous idle connections (one thread each), counts them in .active, and stop() ends them all.
#[test]
fn serve_holds_1000_idle_connections() {
    let out = Netsh::eval(
        r#"let s = serve("127.0.0.1:0", |c| c.recv_line());
           let conns = [];
           for i in 0..1000 { conns.push(connect(s.addr)) }
           let waited = 0;
           while s.active < 1000 && waited < 10000 { sleep(20); waited += 20 }
           print(s.active); print(s.served);
           s.stop();
           let after = 0;
           while s.active > 0 && after < 5000 { sleep(20); after += 20 }
           print(s.active);"#,
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1000", "1000", "0"]);
}

/// Bad input gives a clear error naming the function and the cause, exit code 1, and never a panic.
#[test]
fn bad_input_gives_clear_errors() {
    let closed = closed_port();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    let pair = r#"let l = listen("127.0.0.1:0"); let c = connect(l.addr); let s = l.accept(5000);"#;
    let cases = [
        (
            "listen(70000)".to_string(),
            "listen: port 70000 is out of range",
        ),
        (
            r#"connect("127.0.0.1:70000")"#.to_string(),
            "connect: port 70000 is out of range",
        ),
        (
            r#"connect("nohost.invalid:80")"#.to_string(),
            "connect: cannot resolve 'nohost.invalid'",
        ),
        (
            format!(r#"connect("127.0.0.1:{closed}")"#),
            "connect: connection refused by 127.0.0.1:",
        ),
        (
            format!(r#"listen("127.0.0.1:{held_port}")"#),
            "is already in use",
        ),
        (
            format!("{pair} c.timeout = 100; c.recv()"),
            "recv: timed out after 100 ms while waiting for data",
        ),
        (
            format!(r#"{pair} c.close(); c.send("x")"#),
            "send: the connection to 127.0.0.1:",
        ),
        (
            format!("{pair} c.close(); c.info()"),
            "info: the connection",
        ),
        (
            format!("{pair} c.read(-1)"),
            "read: the byte count must be 0 or more",
        ),
        (
            format!(r#"{pair} c.recv_until("")"#),
            "recv_until: the delimiter is empty",
        ),
        (
            format!("{pair} c.send(42)"),
            "send: expected a string or a blob, not a number",
        ),
        (
            "connect(80)".to_string(),
            "connect: expected an address string",
        ),
        (
            r#"connect("127.0.0.1:1", #{timeout: "soon"})"#.to_string(),
            "option 'timeout': expected a number of milliseconds, not a string",
        ),
        (
            r#"connect("127.0.0.1:1", #{wait: 1})"#.to_string(),
            "unknown option 'wait'",
        ),
        ("task(1)".to_string(), "task: expected a closure"),
        (
            r#"serve("127.0.0.1:0", 1)"#.to_string(),
            "serve: expected a closure like |conn|",
        ),
        ("serve(1.5, 1)".to_string(), "serve: expected a port number"),
        (
            "serve(70000, |c| 1)".to_string(),
            "serve: port 70000 is out of range",
        ),
    ];
    for (code, expected) in cases {
        let err = Netsh::eval_err(&code);
        assert!(
            err.contains(expected),
            "{code}\n  expected: {expected}\n  got: {err}"
        );
        assert!(!err.contains("panicked"), "{code}: {err}");
    }
    drop(held);
}

/// In the REPL, Ctrl-C interrupts a blocking join(), accept() and recv(), while background tasks and servers keep running.
#[test]
fn ctrl_c_interrupts_waits_but_not_background_work() {
    use expectrl::Expect;
    let home = tempfile::tempdir().unwrap();
    let mut pty = support::repl(home.path());
    // rustyline drops typed-ahead input (its issue #690): wait for each prompt.
    // An interrupted line prints "blocking" (built at run time, so the echo
    // of the typed line cannot match) just before its blocking call, so
    // Ctrl-C is sent only once the line runs: sent while rustyline still
    // reads the line, it would be a keystroke, lost on a busy machine.
    let mut step = |input: &str, expected: &str, interrupt: bool| {
        pty.send_line(input).unwrap();
        if interrupt {
            pty.expect("blocking").unwrap();
            thread::sleep(Duration::from_millis(100));
            pty.send("\x03").unwrap();
        }
        if let Err(e) = pty.expect(expected) {
            panic!("after {input:?} the REPL never printed {expected:?}: {e}");
        }
        pty.expect("netsh> ").unwrap();
    };
    step(
        r#"let s = serve("127.0.0.1:0", |c| c.send_line("still up")); s.port > 0"#,
        "true",
        false,
    );
    step(
        "let t = task(|| sleep(60000)); print(\"block\" + \"ing\"); t.join()",
        "join: interrupted",
        true,
    );
    step(
        r#"let l = listen("127.0.0.1:0"); print("block" + "ing"); l.accept()"#,
        "accept: interrupted",
        true,
    );
    step(
        "let c = connect(l.addr); let a = l.accept(); print(\"block\" + \"ing\"); c.recv()",
        "recv: interrupted",
        true,
    );
    step("connect(s.addr).recv_line()", "still up", false);
    step("t.done", "false", false);
    step("t.stop(); t.join(5000)", "stopped with stop()", false);
}

/// Two tasks sending big blobs on one connection never interleave their bytes.
#[test]
fn concurrent_sends_do_not_interleave() {
    const EACH: usize = 4 << 20;
    let (addr, peer) = peer_on("127.0.0.1:0", |mut stream| {
        // Slow reader first, so the sends fill the socket buffer and wait.
        thread::sleep(Duration::from_millis(200));
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("reading both blobs");
        got
    });
    Netsh::eval(&format!(
        "let c = connect(\"{addr}\"); let a = c; let b = c;
         let t1 = task(|| a.send(blob({EACH}, 97)));
         let t2 = task(|| b.send(blob({EACH}, 98)));
         t1.join(); t2.join(); c.close();"
    ));
    let got = peer.join().expect("the peer thread");
    assert_eq!(got.len(), 2 * EACH);
    let (first, second) = got.split_at(EACH);
    assert!(
        first.iter().all(|b| *b == first[0]) && second.iter().all(|b| *b == second[0]),
        "the two blobs were interleaved"
    );
    assert_ne!(first[0], second[0]);
}

/// Every read takes a per-call timeout, as `ms` or `#{timeout: ms}`, in
/// place of `c.timeout` for that call: each times out while the peer is
/// silent, keeps what arrived, and `0` (or `#{timeout: 0}`) waits as long
/// as it takes even when `c.timeout` is short.
#[test]
fn per_call_timeouts_on_every_read() {
    let (addr, peer) = peer_on("127.0.0.1:0", |mut s| {
        s.write_all(b"par").unwrap();
        // Until netsh says it has seen every timeout.
        let mut go = [0u8; 1];
        s.read_exact(&mut go).unwrap();
        thread::sleep(Duration::from_millis(300));
        s.write_all(b"tial\nrest").unwrap();
    });
    let out = eval_lines(
        r#"let c = connect("ADDR"); c.timeout = 60000;
           for read in [|| c.recv_line(100), || c.recv_line(#{timeout: 100}), || c.recv_until("\n", 100),
                        || c.recv_until("\n", #{timeout: 100}), || c.read(10, 100), || c.read(10, #{timeout: 100}),
                        || c.read_all(100), || c.read_all(#{timeout: 100})] {
               try { read.call(); print("no timeout") } catch (e) { print(e) }
           }
           c.send("go"); c.timeout = 50;
           print(c.recv_line(0)); print(c.recv(#{timeout: 0}));"#,
        addr,
    );
    peer.join().unwrap();
    let (timeouts, rest) = out.split_at(8);
    for (line, op) in timeouts.iter().zip([
        "recv_line",
        "recv_line",
        "recv_until",
        "recv_until",
        "read",
        "read",
        "read_all",
        "read_all",
    ]) {
        assert!(
            line.starts_with(&format!("{op}: timed out after 100 ms")),
            "{line} ({out:?})"
        );
    }
    assert_eq!(rest, ["partial", "rest"]);
}

/// recv(ms) and recv(#{timeout}) time out on a silent peer; accept and
/// join take `#{timeout}` too; a misspelt option or a negative timeout is
/// refused before anything waits.
#[test]
fn per_call_timeouts_on_recv_accept_and_join() {
    let (addr, peer) = peer_on("127.0.0.1:0", |mut s| {
        let mut done = [0u8; 1];
        let _ = s.read(&mut done);
    });
    let out = eval_lines(
        r#"let c = connect("ADDR");
           try { c.recv(100) } catch (e) { print(e) }
           try { c.recv(#{timeout: 100}) } catch (e) { print(e) }
           try { c.recv(#{tiemout: 100}) } catch (e) { print(e) }
           try { c.recv_line(-1) } catch (e) { print(e) }
           try { c.read(1, #{timeout: "soon"}) } catch (e) { print(e) }
           try { listen("127.0.0.1:0").accept(#{timeout: 100}) } catch (e) { print(e) }
           let t = task(|| sleep(5000));
           try { t.join(#{timeout: 100}) } catch (e) { print(e) }
           t.stop(); c.close();"#,
        addr,
    );
    peer.join().unwrap();
    assert!(
        out[0].starts_with("recv: timed out after 100 ms"),
        "{out:?}"
    );
    assert!(
        out[1].starts_with("recv: timed out after 100 ms"),
        "{out:?}"
    );
    assert_eq!(out[2], "recv: unknown option 'tiemout' (known: timeout)");
    assert_eq!(
        out[3],
        "recv_line: a timeout is 0 or more milliseconds (0 means no limit), not -1"
    );
    assert_eq!(
        out[4],
        "read: option 'timeout': expected a number of milliseconds, not a string"
    );
    assert!(
        out[5].starts_with("accept: timed out after 100 ms"),
        "{out:?}"
    );
    assert!(
        out[6].starts_with("join: timed out after 100 ms"),
        "{out:?}"
    );
}

/// `c.timeout` applies to a send the peer takes no data for: 50 MB to a
/// peer that never reads fails with a timeout that says how much went out.
#[test]
fn send_timeout_when_the_peer_does_not_read() {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let (addr, peer) = peer_on("127.0.0.1:0", move |s| {
        // Never read; hold the connection until netsh has given up (or,
        // if it never does, 20 s, so the test fails instead of hanging).
        let _ = finished.recv_timeout(Duration::from_secs(20));
        drop(s);
    });
    let out = Netsh::new()
        .arg("-e")
        .arg(format!(
            r#"let c = connect("{addr}"); c.timeout = 300;
               try {{ c.send(blob(50000000)); print("sent it all") }} catch (e) {{ print(e) }}
               c.close();"#
        ))
        .ok()
        .stdout();
    done.send(()).unwrap();
    peer.join().unwrap();
    assert!(
        out.starts_with(&format!(
            "send: timed out after 300 ms while sending to {addr}"
        )),
        "{out}"
    );
    assert!(out.contains("of 50000000 bytes sent"), "{out}");
}
