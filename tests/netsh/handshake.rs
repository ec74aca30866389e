//! `scripts/handshake.rhai`, the lesson 1.5 demo: with CAP_NET_RAW it pairs
//! each real segment with the seed's words; without it (as `nobody`) it
//! still runs and shows the TCP states; a port argument is honoured and a
//! wrong one gets the usage line.

use crate::support::{self, Netsh, skip};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/handshake.rhai");

/// The lines every run shows: the seed's dialogue and the kernel's states.
fn check_dialogue(out: &str) {
    for words in [
        "A: 你愁啥？",
        "B: 瞅你咋滴？",
        "A: 干一场！",
        "A: 我要走了",
        "B: 你真的要走了吗？",
        "B: 你真的真的要走了吗？",
        "A: 我真的真的要走了",
        "What are you looking at?",
        "kernel: client ESTABLISHED, server ESTABLISHED",
        "kernel: client FIN_WAIT2, server CLOSE_WAIT",
        "kernel: client TIME_WAIT, server CLOSED",
        "connect() fails: connect: connection refused by 127.0.0.1:",
        "发短信",
        "the receiver got \"在吗？\"",
    ] {
        assert!(out.contains(words), "missing {words:?} in:\n{out}");
    }
}

/// With CAP_NET_RAW: the real segments, numbered as tcpdump does, each
/// paired with its sentence, four separate segments for the close, the RST
/// of a closed port and the lone UDP datagram.
#[test]
fn handshake_demo_shows_the_real_segments() {
    support::skip_if!(
        "handshake_demo_shows_the_real_segments",
        support::capture_unavailable()
    );
    let out = Netsh::new().arg(SCRIPT).ok().stdout();
    check_dialogue(&out);
    let lines: Vec<&str> = out.lines().collect();
    let after = |segment: &str, words: &str| {
        let at = lines
            .iter()
            .position(|l| l.contains(segment))
            .unwrap_or_else(|| panic!("no segment {segment:?} in:\n{out}"));
        assert!(
            lines[at + 1].contains(words),
            "{segment:?} is not paired with {words:?}:\n{out}"
        );
    };
    after("client → server  SYN seq 0", "你愁啥？");
    after("server → client  SYN-ACK seq 0 ack 1", "瞅你咋滴？");
    after("client → server  ACK seq 1 ack 1", "干一场！");
    // "你好\n" is 7 bytes and "你好!\n" 8: the close's numbers follow.
    after("client → server  FIN-ACK seq 8 ack 9", "我要走了");
    after("server → client  ACK seq 9 ack 9", "你真的要走了吗？");
    after(
        "server → client  FIN-ACK seq 9 ack 9",
        "你真的真的要走了吗？",
    );
    after("client → server  ACK seq 9 ack 10", "我真的真的要走了");
    assert!(out.contains("RST-ACK"), "{out}");
    assert!(out.contains("UDP len 9"), "{out}");
    assert!(!out.contains("CAP_NET_RAW"), "{out}");
}

/// Without privileges the demo still runs: the dialogue and the states,
/// one line on how to see the packets, and no packet lines.
#[test]
fn handshake_demo_without_privileges_shows_the_states() {
    support::skip_if!(
        "handshake_demo_without_privileges_shows_the_states",
        support::nobody_unavailable()
    );
    let cmd = Netsh::nobody();
    // A copy in the home nobody may read: the checkout may not be.
    let script = cmd.home().join("handshake.rhai");
    std::fs::copy(SCRIPT, &script).unwrap();
    let out = cmd.arg(&script).ok().stdout();
    check_dialogue(&out);
    assert!(
        out.contains("to see the real packets run it as root, or once: sudo setcap cap_net_raw+ep $(which netsh)"),
        "{out}"
    );
    assert!(
        !out.contains(" seq "),
        "no packets without privileges:\n{out}"
    );
    assert!(out.contains("client → server  SYN\n"), "{out}");
}

/// `handshake.rhai PORT` serves on that port; a wrong argument prints the usage.
#[test]
fn handshake_demo_takes_a_port_and_explains_its_arguments() {
    let mut tries = 0;
    let out = loop {
        // A fixed port below the ephemeral range, retried if taken.
        let port = support::fixed_port(tries);
        let run = Netsh::new().args([SCRIPT, &port.to_string()]).output();
        if run.code() == Some(0) {
            let out = run.stdout();
            assert!(
                out.contains(&format!("listens on 127.0.0.1:{port}.")),
                "{out}"
            );
            break out;
        }
        tries += 1;
        assert!(
            tries < 5 && run.stderr().contains("in use"),
            "{}",
            run.explain()
        );
    };
    assert!(out.contains("A: 干一场！"), "{out}");
    for wrong in ["abc", "70000", "0"] {
        let run = Netsh::new().args([SCRIPT, wrong]).output();
        run.expect_code(1);
        assert!(
            run.stderr().contains("usage: netsh handshake [PORT]"),
            "{wrong}: {}",
            run.explain()
        );
    }
    let run = Netsh::new().args([SCRIPT, "1", "2"]).output();
    assert!(run.stderr().contains("usage:"), "{}", run.explain());
}

/// The demo captures its own connection only: traffic to the same port
/// number on ::1, going on all through the run, never shows up in it.
#[test]
fn handshake_demo_ignores_the_same_port_on_another_address() {
    support::skip_if!(
        "handshake_demo_ignores_the_same_port_on_another_address",
        support::capture_unavailable()
    );
    let mut tries = 0;
    let (port, other) = loop {
        let port = support::fixed_port(tries);
        match std::net::TcpListener::bind(("::1", port)) {
            Ok(other) => break (port, other),
            Err(e) => {
                tries += 1;
                assert!(tries < 5, "no free port on ::1: {e}");
            }
        }
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut connections = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(c) = std::net::TcpStream::connect(("::1", port)) {
                    connections += 1;
                    drop(c);
                    let _ = other.accept();
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            connections
        })
    };
    let run = Netsh::new().args([SCRIPT, &port.to_string()]).output();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let connections = noise.join().unwrap();
    let out = run.stdout();
    if run.code() != Some(0) && run.stderr().contains("in use") {
        skip(
            "handshake_demo_ignores_the_same_port_on_another_address",
            &format!("127.0.0.1:{port} is taken: {}", run.stderr()),
        );
        return;
    }
    run.expect_code(0);
    assert!(connections > 5, "the noise never ran ({connections})");
    check_dialogue(&out);
    assert!(!out.contains("[::1]"), "traffic on ::1 got in:\n{out}");
    assert_eq!(
        out.matches(" SYN seq 0").count(),
        2,
        "one SYN for the conversation, one for the closed port:\n{out}"
    );
}
