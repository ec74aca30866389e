//! UDP from scripts against real sockets on 127.0.0.1 and ::1.

use std::{net::UdpSocket, thread, time::Duration};

use crate::support::{self, Netsh};

/// udp_send delivers a datagram to a std socket over IPv4 and IPv6 and returns the bytes sent.
#[test]
fn udp_send_reaches_std_sockets_on_both_families() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let socket = UdpSocket::bind(bind).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let out = Netsh::eval(&format!(
            r#"print(udp_send("{addr}", "hello")); print(udp_send("{addr}", blob(3, 0x7f)));"#
        ));
        assert_eq!(out, "5\n3", "{bind}");
        let mut buf = [0u8; 64];
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], [0x7f; 3]);
    }
}

/// udp_bind + recv gives #{from, data, size}: data is a string for UTF-8 text and a blob otherwise; recv_blob always gives a blob; send_to answers the sender's port.
#[test]
fn bound_socket_receives_and_answers() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let sender = thread::spawn(move || {
        let mut buf = [0u8; 64];
        // netsh tells us its port with a first datagram, then we talk.
        let (_, netsh) = peer.recv_from(&mut buf).unwrap();
        peer.send_to("text".as_bytes(), netsh).unwrap();
        peer.send_to(&[0xff, 0x00], netsh).unwrap();
        peer.send_to("again".as_bytes(), netsh).unwrap();
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    });
    let out = Netsh::eval(&format!(
        r#"let u = udp_bind(0);
           u.send_to("{peer_addr}", "ready");
           let a = u.recv(); print(a.data); print(a.from == "{peer_addr}"); print(a.size);
           let b = u.recv(); print(type_of(b.data)); print(hex(b.data));
           let c = u.recv_blob(); print(type_of(c.data));
           print(u.send_to(c.from, "thanks"));"#
    ));
    assert_eq!(sender.join().unwrap(), "thanks");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["text", "true", "4", "blob", "ff00", "blob", "6"]
    );
}

/// A datagram to a port nobody listens on is simply lost: udp_send succeeds, and recv(ms) returns () when nothing arrives.
#[test]
fn datagrams_to_nobody_are_lost_silently() {
    // A port outside the ephemeral range: a socket bound to port 0 by a
    // test running meanwhile cannot be given it.
    let port = support::closed_port();
    let out = Netsh::eval(&format!(
        r#"print(udp_send("127.0.0.1:{port}", "anyone?"));
           let u = udp_bind("[::1]:0"); print(u.recv(100) == ());
           print(u.port > 0); print(u.addr.starts_with("[::1]:"));"#
    ));
    assert_eq!(out, "7\ntrue\ntrue\ntrue");
}

/// recv and recv_blob take a per-call timeout as `ms` or `#{timeout: ms}`
/// and give `()` when nothing comes; `0` means no limit, so a datagram sent
/// later still arrives.
#[test]
fn per_call_timeouts_on_recv() {
    let out = Netsh::eval(
        r#"let u = udp_bind("127.0.0.1:0");
           print(u.recv(#{timeout: 100}) == ()); print(u.recv_blob(100) == ());
           print(u.recv_blob(#{timeout: 100}) == ());
           let to = u.addr;
           let sender = task(|| { sleep(200); udp_send(to, "late"); sleep(200); udp_send(to, "late") });
           print(u.recv(0).data); print(hex(u.recv_blob(#{timeout: 0}).data));
           sender.join();
           try { u.recv(#{wait: 1}) } catch (e) { print(e) }"#,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "true",
            "true",
            "true",
            "late",
            "6c617465",
            "recv: unknown option 'wait' (known: timeout)"
        ]
    );
}

/// close() wakes a recv() blocked in a task and later use says the socket is closed.
/// "was closed" is what a recv that was waiting says; on a loaded machine
/// the task may not have reached its recv before close() ("is closed"),
/// which proves nothing, so the test tries again with a longer wait.
#[test]
fn close_ends_a_blocked_recv() {
    let out = Netsh::eval(
        r#"let said = "";
           for wait in [100, 400, 1600, 3000] {
               let u = udp_bind("127.0.0.1:0"); let mine = u;
               let t = task(|| mine.recv());
               sleep(wait); u.close();
               try { t.join(5000) } catch (e) { said = `${e}` }
               if said.contains("was closed") { break }
           }
           print(said);
           let u = udp_bind("127.0.0.1:0"); u.close();
           try { u.send_to("127.0.0.1:9", "x") } catch (e) { print(e) }"#,
    );
    let lines: Vec<_> = out.lines().collect();
    assert!(lines[0].contains("was closed"), "{out}");
    assert!(
        lines[1].contains("send_to: the UDP socket on 127.0.0.1:"),
        "{out}"
    );
}

/// scripts/udp.rhai with no arguments shows delivery and the silent loss, next to TCP's refusal.
#[test]
fn udp_script_runs_on_loopback() {
    let out = Netsh::in_checkout().arg("scripts/udp.rhai").ok().stdout();
    assert!(out.contains("receiver: 14 bytes from 127.0.0.1:"), "{out}");
    assert!(out.contains("the datagram is simply lost"), "{out}");
    assert!(out.contains("connection refused"), "{out}");
}

/// Oversized datagrams, bad addresses and wrong types fail with clear messages, exit code 1, no panic.
#[test]
fn bad_input_gives_clear_errors() {
    let cases = [
        (
            r#"udp_send("127.0.0.1:9", blob(65508))"#,
            "udp_send: a UDP datagram over IPv4 holds at most 65,507 bytes; this one has 65,508",
        ),
        (
            r#"udp_send("[::1]:9", blob(65528))"#,
            "udp_send: a UDP datagram over IPv6 holds at most 65,527 bytes",
        ),
        (
            r#"udp_bind(0).send_to("127.0.0.1:9", blob(70000))"#,
            "send_to: a UDP datagram over IPv4 holds at most 65,507 bytes",
        ),
        (
            r#"udp_send("127.0.0.1:70000", "x")"#,
            "udp_send: port 70000 is out of range",
        ),
        (
            r#"udp_send("nohost.invalid:53", "x")"#,
            "cannot resolve 'nohost.invalid'",
        ),
        (
            r#"udp_send("127.0.0.1:9", 1.5)"#,
            "udp_send: expected a string or a blob, not a decimal number",
        ),
        ("udp_bind(-1)", "udp_bind: port -1 is out of range"),
        (
            r#"udp_bind("127.0.0.1:0").send_to("[::1]:9", "x")"#,
            "cannot reach [::1]:9",
        ),
        (
            "udp_bind(0).recv(-5)",
            "recv: a timeout is 0 or more milliseconds (0 means no limit), not -5",
        ),
    ];
    for (code, expected) in cases {
        let err = Netsh::eval_err(code);
        assert!(
            err.contains(expected),
            "{code}\n  expected: {expected}\n  got: {err}"
        );
        assert!(!err.contains("panicked"), "{code}: {err}");
    }
}
