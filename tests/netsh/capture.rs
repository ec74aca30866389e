//! `capture` on real loopback traffic: the handshake and the close as
//! tcpdump shows them, IPv4 and IPv6, a refused connect, UDP, the kernel
//! filter, pcap files tcpdump reads, watching until a count, a timeout or
//! Ctrl-C, and the clear refusal without CAP_NET_RAW.
//!
//! Capturing needs CAP_NET_RAW (CI runs as root). Where it is missing, each
//! test says so on the terminal and returns; as root, a capture that fails
//! for any other reason fails the test.

use std::{
    net::{TcpListener, TcpStream},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{self, Netsh, Peer, skip};

/// Skips the calling test (saying why) when packets cannot be captured here.
macro_rules! need_capture {
    ($test:expr) => {
        support::skip_if!($test, support::capture_unavailable())
    };
}

/// Runs `code`, whose value is an array of packets, and returns them as JSON maps.
fn packets(code: &str) -> Vec<Value> {
    let out = Netsh::eval(&format!("to_json({{ {code} }})"));
    serde_json::from_str::<Vec<Value>>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn flags(packets: &[Value]) -> Vec<String> {
    packets
        .iter()
        .map(|p| p["flags"].as_str().unwrap_or("()").to_string())
        .collect()
}

/// The packets of one connect/send/close between a netsh client and server.
fn conversation(bind: &str, host: &str) -> (u16, Vec<Value>) {
    let out = Netsh::eval(&format!(
        r#"
        let l = listen("{bind}");
        let port = l.port;
        let p = capture(#{{port: port}}, || {{
            let c = connect("{host}", port);
            let s = l.accept();
            c.send("hello");
            s.read(5);
            c.close();
            sleep(100);
            s.close();
        }});
        to_json(#{{port: port, packets: p}})
        "#
    ));
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let port = v["port"].as_u64().unwrap() as u16;
    (port, v["packets"].as_array().unwrap().clone())
}

/// Checks a captured connect/send/close: one SYN, one SYN-ACK, one ACK, in
/// that order, numbered 0/1 as tcpdump shows them, the data, and a FIN from
/// each side; every packet on the port, once, in time order.
fn check_conversation(port: u16, packets: &[Value]) {
    let all = format!("{packets:#?}");
    let server = format!(":{port}");
    let from_client = |p: &Value| p["dst"].as_str().unwrap().ends_with(&server);
    assert!(
        packets
            .iter()
            .all(|p| { p["src"].as_str().unwrap().ends_with(&server) || from_client(p) }),
        "a packet not on port {port}: {all}"
    );
    let names = flags(packets);
    assert_eq!(&names[..3], ["SYN", "SYN-ACK", "ACK"], "{all}");
    assert_eq!(names.iter().filter(|f| *f == "SYN").count(), 1, "{all}");
    assert_eq!(names.iter().filter(|f| *f == "SYN-ACK").count(), 1, "{all}");
    let (syn, syn_ack, ack) = (&packets[0], &packets[1], &packets[2]);
    assert!(
        from_client(syn) && !from_client(syn_ack) && from_client(ack),
        "{all}"
    );
    assert_eq!((syn["seq"].as_i64(), syn["ack"].as_i64()), (Some(0), None));
    assert_eq!(
        (syn_ack["seq"].as_i64(), syn_ack["ack"].as_i64()),
        (Some(0), Some(1))
    );
    assert_eq!(
        (ack["seq"].as_i64(), ack["ack"].as_i64()),
        (Some(1), Some(1))
    );
    let data: Vec<&Value> = packets.iter().filter(|p| p["len"] != 0).collect();
    assert_eq!(data.len(), 1, "one data segment: {all}");
    assert!(from_client(data[0]), "{all}");
    assert_eq!(
        (data[0]["len"].as_i64(), data[0]["seq"].as_i64()),
        (Some(5), Some(1))
    );
    assert_eq!(data[0]["flags"], "PSH-ACK", "{all}");
    let fins = |client: bool| {
        packets
            .iter()
            .filter(|p| from_client(p) == client && p["flags"].as_str().unwrap().contains("FIN"))
            .count()
    };
    assert_eq!(
        (fins(true), fins(false)),
        (1, 1),
        "a FIN from each side: {all}"
    );
    let times: Vec<i64> = packets
        .iter()
        .map(|p| p["time"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{all}");
    assert!(
        packets
            .iter()
            .all(|p| p["proto"] == "tcp" && p["window"].is_i64()),
        "{all}"
    );
}

/// On 127.0.0.1: the handshake, the data and the close, as tcpdump shows them.
#[test]
fn handshake_and_close_on_ipv4() {
    need_capture!("handshake_and_close_on_ipv4");
    let (port, packets) = conversation("127.0.0.1:0", "127.0.0.1");
    check_conversation(port, &packets);
    assert!(
        packets[0]["src"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}

/// On ::1: the same, with IPv6 addresses written `[::1]:port`.
#[test]
fn handshake_and_close_on_ipv6() {
    need_capture!("handshake_and_close_on_ipv6");
    let (port, packets) = conversation("[::1]:0", "::1");
    check_conversation(port, &packets);
    assert_eq!(packets[1]["src"], format!("[::1]:{port}"));
}

/// A connect to a port nobody listens on: the SYN is answered by RST.
#[test]
fn closed_port_answers_syn_with_rst() {
    need_capture!("closed_port_answers_syn_with_rst");
    let port = support::closed_port();
    let p = packets(&format!(
        "capture(#{{port: {port}}}, || {{ try {{ connect(\"127.0.0.1\", {port}); }} catch {{ }} }})"
    ));
    assert_eq!(flags(&p), ["SYN", "RST-ACK"], "{p:#?}");
    assert_eq!(p[1]["src"], format!("127.0.0.1:{port}"));
    assert_eq!(p[1]["ack"], 1);
}

/// A UDP datagram is one packet with its length and no TCP fields, and
/// `proto: "udp"` leaves out TCP on the same port number.
#[test]
fn udp_datagram_and_the_proto_filter() {
    need_capture!("udp_datagram_and_the_proto_filter");
    // One port number held for both TCP and UDP by this test.
    let (_tcp, udp, port) = (0..50)
        .find_map(|_| {
            let tcp = TcpListener::bind("127.0.0.1:0").ok()?;
            let port = tcp.local_addr().ok()?.port();
            let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).ok()?;
            Some((tcp, udp, port))
        })
        .expect("a port number free for both TCP and UDP");
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let out = Netsh::eval(&format!(
        r#"
        let p = capture(#{{port: {port}, proto: "udp", stats: true}}, || {{
            udp_send("127.0.0.1:{port}", "hello");
            let c = connect("127.0.0.1", {port});
            c.close();
            c.peer
        }});
        to_json(p)
        "#
    ));
    let mut buf = [0u8; 16];
    let (n, _) = udp.recv_from(&mut buf).expect("the datagram arrived");
    assert_eq!(&buf[..n], b"hello");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["result"],
        format!("127.0.0.1:{port}"),
        "the TCP connect happened: {out}"
    );
    let p = v["packets"].as_array().unwrap();
    assert_eq!(p.len(), 1, "{out}");
    assert_eq!(
        (p[0]["proto"].as_str(), p[0]["len"].as_i64()),
        (Some("udp"), Some(5))
    );
    assert!(p[0]["flags"].is_null() && p[0]["seq"].is_null(), "{out}");
}

/// The kernel filter keeps only the port (and host) asked for: traffic to
/// another port, and to the other address family, stays out.
#[test]
fn the_filter_keeps_only_what_was_asked_for() {
    need_capture!("the_filter_keeps_only_what_was_asked_for");
    let out = Netsh::eval(
        r#"
        let wanted = listen(0);
        let other = listen(0);
        let w = wanted.port;
        let o = other.port;
        let p = capture(#{port: w, host: "::1"}, || {
            connect("127.0.0.1", o).close();
            connect("127.0.0.1", w).close();
            connect("::1", o).close();
            connect("::1", w).close();
            sleep(50);
        });
        to_json(#{port: w, packets: p})
        "#,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let port = v["port"].as_i64().unwrap();
    let p = v["packets"].as_array().unwrap();
    assert!(!p.is_empty(), "{out}");
    for packet in p {
        let (src, dst) = (
            packet["src"].as_str().unwrap(),
            packet["dst"].as_str().unwrap(),
        );
        assert!(
            src.starts_with("[::1]:") && dst.starts_with("[::1]:"),
            "{out}"
        );
        assert!(
            src.ends_with(&format!(":{port}")) || dst.ends_with(&format!(":{port}")),
            "{out}"
        );
    }
    assert_eq!(flags(p).iter().filter(|f| *f == "SYN").count(), 1, "{out}");
}

/// `pcap: FILE` writes a file that `tcpdump -r` reads, with the same
/// packets; `stats: true` reports what the kernel passed and dropped.
#[test]
fn pcap_file_reads_back_in_tcpdump() {
    need_capture!("pcap_file_reads_back_in_tcpdump");
    if !support::has_tool(
        "pcap_file_reads_back_in_tcpdump",
        "tcpdump",
        &["--version"],
        "tcpdump",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conversation.pcap");
    let out = Netsh::eval(&format!(
        r#"
        let l = listen("127.0.0.1:0");
        let port = l.port;
        let r = capture(#{{port: port, pcap: {file:?}, stats: true}}, || {{
            let c = connect("127.0.0.1", port);
            let s = l.accept();
            c.send_line("over the wire");
            s.recv_line();
            c.close();
            s.close();
        }});
        [r.packets.len(), r.seen, r.dropped, port]
        "#
    ));
    let numbers: Vec<u64> = serde_json::from_str(&out).unwrap();
    let (count, seen, dropped, port) = (numbers[0], numbers[1], numbers[2], numbers[3]);
    assert!(count >= 7, "{out}");
    assert_eq!((seen, dropped), (count, 0), "{out}");
    let tcpdump = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tcpdump.stdout);
    assert!(
        tcpdump.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&tcpdump.stderr)
    );
    assert_eq!(text.lines().count() as u64, count, "{text}");
    let first = text.lines().next().unwrap();
    assert!(
        first.contains(&format!("127.0.0.1.{port}: Flags [S]")),
        "{text}"
    );
    assert!(
        text.contains("length 14"),
        "the data segment keeps its real length: {text}"
    );
}

/// Without a closure, `count` ends the watch after that many packets and
/// `timeout` after that long, with what was seen (nothing, here).
#[test]
fn watching_ends_at_count_or_timeout() {
    need_capture!("watching_ends_at_count_or_timeout");
    let out = Netsh::eval(
        r#"
        let l = listen("127.0.0.1:0");
        let port = l.port;
        let t = task(|| { sleep(300); connect("127.0.0.1", port) });
        let p = capture(#{port: port, count: 3});
        t.join();
        let quiet = capture(#{port: port, timeout: 200});
        [p.map(|x| x.flags), quiet.len()]
        "#,
    );
    assert_eq!(out, "[[\"SYN\", \"SYN-ACK\", \"ACK\"], 0]");
}

/// Packets print as tcpdump-like lines, and an array of them as a table
/// (in the REPL and with `-e`).
#[test]
fn packets_print_as_lines_and_tables() {
    need_capture!("packets_print_as_lines_and_tables");
    let code = r#"
        let l = listen("127.0.0.1:0");
        let port = l.port;
        capture(#{port: port}, || connect("127.0.0.1", port))
    "#;
    let table = Netsh::eval(code);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("time "), "{table}");
    for column in ["src", "dst", "flags", "seq", "ack", "win", "len"] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(
        lines[1].starts_with("+0.") && lines[1].contains(" SYN "),
        "{table}"
    );
    let line = Netsh::eval(&format!("let p = {{ {code} }}; p[1]"));
    assert!(line.starts_with("+0."), "{line}");
    assert!(line.contains(" → 127.0.0.1:"), "{line}");
    assert!(line.contains(" SYN-ACK seq 0 ack 1 win "), "{line}");
}

/// Runs `netsh -e code`, whose watch of `port` prints live, connects to
/// that port until the watch shows a SYN (so it is running and blocked),
/// then sends SIGINT; returns how netsh ended and the lines it printed.
fn interrupt_a_watch(code: &str, port: u16) -> (Option<i32>, Vec<String>) {
    let mut netsh = Peer::netsh(code);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        let _ = TcpStream::connect(("127.0.0.1", port));
        seen = netsh
            .wait_for(" SYN seq 0", Duration::from_millis(200))
            .is_some();
    }
    assert!(seen, "the watch never printed a SYN:\n{}", netsh.output());
    netsh.interrupt();
    let code = netsh.wait_exit(Duration::from_secs(20));
    (code, netsh.output().lines().map(str::to_string).collect())
}

/// In `netsh -e`, Ctrl-C (SIGINT) ends a watch and the packets seen are
/// still printed, instead of netsh dying with them.
#[test]
fn ctrl_c_ends_a_watch_and_keeps_the_packets() {
    need_capture!("ctrl_c_ends_a_watch_and_keeps_the_packets");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (status, lines) =
        interrupt_a_watch(&format!("capture(#{{port: {port}, live: true}})"), port);
    let text = lines.join("\n");
    assert_eq!(status, Some(0), "{text}");
    // The live lines, then the returned packets as a table.
    let header = lines
        .iter()
        .position(|l| l.starts_with("time "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        lines[header + 1..].iter().any(|l| l.contains(" SYN ")),
        "{text}"
    );
}

/// Without CAP_NET_RAW the error says so and how to grant it, at once,
/// before the closure runs.
#[test]
fn without_cap_net_raw_the_error_says_how_to_grant_it() {
    support::skip_if!(
        "without_cap_net_raw_the_error_says_how_to_grant_it",
        support::nobody_unavailable()
    );
    let run = Netsh::nobody()
        .args(["-e", "capture(#{port: 9}, || print(\"the closure ran\"))"])
        .output();
    run.expect_code(1);
    assert_eq!(
        run.stderr(),
        "-e:1:1: capture: capturing packets needs the CAP_NET_RAW capability: run netsh as root, or grant it once with `sudo setcap cap_net_raw+ep $(which netsh)`"
    );
    assert!(
        !run.stdout().contains("the closure ran"),
        "{}",
        run.explain()
    );
    let run = Netsh::nobody()
        .args(["-e", "capture(#{port: 9, count: 1})"])
        .output();
    run.expect_code(1);
    assert!(run.stderr().contains("CAP_NET_RAW"), "{}", run.explain());
}

/// Bad options fail with what was wrong, before any socket is opened.
#[test]
fn bad_options_say_what_is_wrong() {
    for (code, message) in [
        (
            "capture(#{prot: 80})",
            "capture: unknown option 'prot' (known: port, host, proto, iface, count, timeout, pcap, live, stats)",
        ),
        (
            "capture(9000)",
            "capture: expected a map of options like #{port: 9000}",
        ),
        (
            "capture(#{port: 80}, 5)",
            "capture: expected a closure like || { … } as the second argument",
        ),
        (
            "capture(#{port: 80, iface: \"nosuch0\"})",
            "capture: no network interface named 'nosuch0'",
        ),
        (
            "capture(#{port: -1})",
            "capture: port -1 is out of range (0–65535)",
        ),
        (
            "capture(#{port: 0})",
            "capture: option 'port': no packet is sent to or from port 0; leave 'port' out to see every port",
        ),
    ] {
        let err = Netsh::eval_err(code);
        assert!(err.contains(message), "{code}: {err}");
    }
}

/// In the REPL, Ctrl-C ends a watch that was blocked (its live lines show
/// it running) and the packets seen are the command's value.
#[test]
fn ctrl_c_in_the_repl_ends_a_watch_with_its_packets() {
    use expectrl::Expect;
    need_capture!("ctrl_c_in_the_repl_ends_a_watch_with_its_packets");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    let mut pty = support::repl(home.path());
    pty.send_line(format!("let p = capture(#{{port: {port}, live: true}})"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let connector = std::thread::spawn(move || {
        for _ in 0..3 {
            let _ = TcpStream::connect(("127.0.0.1", port));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    pty.expect(" SYN seq 0")
        .expect("the watch shows the SYN while it runs");
    connector.join().unwrap();
    pty.send("\x03").unwrap();
    pty.expect("netsh> ").expect("Ctrl-C ends the watch");
    pty.send_line("[p.len() >= 3, p[0].flags]").unwrap();
    pty.expect("[true, \"SYN\"]")
        .expect("p holds the packets seen");
}

/// After Ctrl-C ends a watch in `netsh -e`, a later closure capture in the
/// same run still sees its packets (the Ctrl-C belonged to the watch alone).
#[test]
fn a_closure_capture_after_a_ctrl_c_watch_sees_its_packets() {
    need_capture!("a_closure_capture_after_a_ctrl_c_watch_sees_its_packets");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        r#"
        let watched = capture(#{{port: {port}, timeout: 30000, live: true}});
        print(`watch ended with ${{watched.len()}} packets`);
        let l = listen("127.0.0.1:0");
        let p = capture(#{{port: l.port}}, || connect("127.0.0.1", l.port).close());
        print(`closure capture: ${{p.map(|x| x.flags)}}`);
        "#
    );
    let (status, lines) = interrupt_a_watch(&code, port);
    let text = lines.join("\n");
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains("watch ended with "), "{text}");
    let closure = text
        .lines()
        .find(|l| l.starts_with("closure capture: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        closure.starts_with("closure capture: [\"SYN\", \"SYN-ACK\", \"ACK\""),
        "the closure capture lost its packets: {text}"
    );
}

/// The closure works on copies of what it captured, like every callback:
/// its value comes back through `stats: true`'s `result`, the script's
/// variable stays as it was.
#[test]
fn the_closure_captures_by_value() {
    need_capture!("the_closure_captures_by_value");
    let out = Netsh::eval(
        "let n = 0; let r = capture(#{port: 1, stats: true}, || { n += 1; n }); [n, r.result]",
    );
    assert_eq!(out, "[0, 1]");
}

/// Packets are plain maps: `to_json` writes their fields, they index by
/// key, list their keys, and compare with `==`.
#[test]
fn packets_are_maps() {
    need_capture!("packets_are_maps");
    let out = Netsh::eval(
        r#"
        let l = listen("127.0.0.1:0");
        let port = l.port;
        let p = capture(#{port: port}, || connect("127.0.0.1", port).close());
        let keys = p[0].keys();
        keys.sort();
        to_json(#{
            json: parse_json(to_json(p)),
            flags: p[0]["flags"],
            keys: keys,
            same: p[0] == p[0],
            different: p[0] == p[1],
            kind: type_of(p[0]),
            port: port,
        })
        "#,
    );
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["flags"], "SYN", "{out}");
    assert_eq!(
        v["keys"],
        serde_json::json!([
            "ack", "dst", "flags", "len", "proto", "seq", "src", "time", "window"
        ]),
        "{out}"
    );
    assert_eq!(
        (v["same"].as_bool(), v["different"].as_bool()),
        (Some(true), Some(false)),
        "{out}"
    );
    assert_eq!(v["kind"], "map", "{out}");
    let first = &v["json"][0];
    assert_eq!(first["flags"], "SYN", "{out}");
    assert_eq!(first["proto"], "tcp", "{out}");
    assert_eq!(first["seq"], 0, "{out}");
    assert!(first["ack"].is_null(), "{out}");
    assert_eq!(first["dst"], format!("127.0.0.1:{}", v["port"]), "{out}");
    assert!(first["time"].is_i64() && first["window"].is_i64(), "{out}");
}

/// Only a missing privilege lets a capture test skip: as root, a capture
/// that fails for any other reason fails the test (CI runs as root).
#[test]
fn only_a_missing_privilege_skips_a_capture_test() {
    use std::os::unix::process::ExitStatusExt;
    let failed = |stderr: &str| support::Run {
        description: "netsh -e capture(…)".into(),
        output: std::process::Output {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: Vec::new(),
            stderr: stderr.into(),
        },
    };
    let check = |run: &support::Run, root: bool| {
        support::skip_unless_broken("capturing packets", run, root, "CAP_NET_RAW")
    };
    let unprivileged =
        failed("-e:1:1: capture: capturing packets needs the CAP_NET_RAW capability: …");
    assert!(check(&unprivileged, true).is_some());
    assert!(check(&unprivileged, false).is_some());
    let broken = failed("-e:1:1: capture: attaching the packet filter: Invalid argument");
    assert!(
        check(&broken, false).is_some(),
        "not root: any failure skips"
    );
    let as_root = std::panic::catch_unwind(|| check(&broken, true));
    assert!(
        as_root.is_err(),
        "as root, a broken capture must fail the test"
    );
}

/// A UDP datagram bigger than the MTU leaves in IPv4 fragments (here in a
/// private namespace whose loopback has an MTU of 1280): capture shows it
/// once with its whole length, and the pcap file holds its first fragment,
/// the one with the ports.
#[test]
fn a_fragmented_udp_datagram_is_seen_whole() {
    need_capture!("a_fragmented_udp_datagram_is_seen_whole");
    support::skip_if!(
        "a_fragmented_udp_datagram_is_seen_whole",
        support::netns_unavailable()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fragments.pcap");
    let out = Netsh::in_netns(&["ip link set lo mtu 1280"])
        .args([
            "-e",
            &format!(
                r#"
                let u = udp_bind("127.0.0.1:0");
                let r = capture(#{{port: u.port, pcap: {file:?}, stats: true}}, || {{
                    udp_send(u.addr, blob(3000, 65));
                    u.recv(2000).data.len()
                }});
                to_json(r)
                "#
            ),
        ])
        .ok()
        .stdout();
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["result"], 3000, "the datagram arrived whole: {out}");
    let p = v["packets"].as_array().unwrap();
    assert_eq!(p.len(), 1, "{out}");
    assert_eq!(
        (p[0]["proto"].as_str(), p[0]["len"].as_i64()),
        (Some("udp"), Some(3000)),
        "{out}"
    );
    if !support::has_tool(
        "a_fragmented_udp_datagram_is_seen_whole (the pcap part)",
        "tcpdump",
        &["--version"],
        "tcpdump",
    ) {
        return;
    }
    let tcpdump = Command::new("tcpdump")
        .args(["-n", "-v", "-r"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tcpdump.stdout);
    assert!(tcpdump.status.success(), "{text}");
    assert!(text.contains("flags [+]"), "the first fragment: {text}");
    assert!(text.contains("UDP, "), "{text}");
}

/// A watch on an interface that goes down ends with an error saying so
/// (before, the reader spun on the socket's error until the timeout).
/// In a private namespace, on one end of a veth pair.
#[test]
fn a_watch_ends_when_its_interface_goes_down() {
    need_capture!("a_watch_ends_when_its_interface_goes_down");
    support::skip_if!(
        "a_watch_ends_when_its_interface_goes_down",
        support::netns_unavailable()
    );
    let veth = [
        "ip link add v0 type veth peer name v1",
        "ip link set v0 up",
        "ip link set v1 up",
    ];
    let probe = Netsh::in_netns(&veth).args(["-e", "1"]).output();
    if probe.code() != Some(0) {
        skip(
            "a_watch_ends_when_its_interface_goes_down",
            &format!("no veth interfaces here: {}", probe.stderr()),
        );
        return;
    }
    let mut setup = veth.to_vec();
    setup.push("sh -c '(sleep 1; ip link set v0 down) &'");
    let started = Instant::now();
    let run = Netsh::in_netns(&setup)
        .args(["-e", "capture(#{port: 1, iface: \"v0\", timeout: 30000})"])
        .output();
    let took = started.elapsed();
    run.expect_code(1);
    assert_eq!(
        run.stderr(),
        "-e:1:1: capture: interface v0 went down",
        "{}",
        run.explain()
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(20),
        "the watch ran {took:?}: {}",
        run.explain()
    );
}

/// `pcap` never writes through a symbolic link at its name (capture runs
/// as root: a planted link would overwrite its target) nor into a FIFO;
/// the target is untouched and the error says why.
#[test]
fn a_pcap_file_that_is_a_symlink_is_refused() {
    need_capture!("a_pcap_file_that_is_a_symlink_is_refused");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious.txt");
    std::fs::write(&target, "keep me\n").unwrap();
    let link = dir.path().join("trap.pcap");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = dir.path().join("fifo.pcap");
    support::mkfifo(&fifo);
    for (file, what) in [
        (&link, "is a symbolic link"),
        (&fifo, "is not a regular file"),
    ] {
        let err = Netsh::eval_err(&format!(r#"capture(#{{port: 9, pcap: {file:?}}}, || 1)"#));
        assert!(
            err.contains(&format!(
                "capture: the pcap file {file:?} {what}; refusing to write through it"
            )),
            "{err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    let kind = Netsh::eval(&format!(
        r#"let kind = "none"; try {{ capture(#{{port: 9, pcap: {link:?}}}, || 1) }} catch (e) {{ kind = e.kind }} kind"#
    ));
    assert_eq!(kind, "permission");
}
