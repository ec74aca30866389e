//! `ping()` against the kernel's own echo replies on 127.0.0.1 and ::1,
//! compared with iputils `ping`; the ping-socket path as `nobody` in a
//! namespace whose `ping_group_range` the test sets; the refusal when
//! neither socket is allowed; ICMP errors (an nft reject) counted, not
//! taken for replies.

use std::process::Command;

use crate::support::{self, Netsh, skip_if};

/// The `icmp_seq=N ttl=T` pairs of iputils ping's reply lines.
fn iputils(host: &str, count: u32) -> Vec<(u32, u32)> {
    let out = Command::new("ping")
        .args(["-n", "-c", &count.to_string(), "-i", "0.2", host])
        .output()
        .expect("running iputils ping");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let seq = l
                .split("icmp_seq=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            let ttl = l.split("ttl=").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((seq, ttl))
        })
        .collect()
}

/// Three echo requests to 127.0.0.1 and to ::1 get three replies, seq 1–3,
/// with the TTL iputils ping sees, and statistics that add up.
#[test]
fn loopback_replies_match_iputils() {
    if !support::has_tool(
        "ping::loopback_replies_match_iputils",
        "ping",
        &["-V"],
        "iputils-ping",
    ) {
        return;
    }
    let probe = Netsh::new()
        .args([
            "-e",
            r#"ping("127.0.0.1", #{count: 1, interval: 200}).sent"#,
        ])
        .output();
    skip_if!(
        "ping::loopback_replies_match_iputils",
        support::skip_unless_broken("ping", &probe, support::is_root(), "ping_group_range")
    );
    for host in ["127.0.0.1", "::1"] {
        let out = Netsh::eval(&format!(
            r#"let p = ping("{host}", #{{count: 3, interval: 200}});
               print(`${{p.sent}} ${{p.received}} ${{p.errors}} ${{p.loss}}`);
               for r in p.replies {{ print(`${{r.seq}} ${{r.ttl}} ${{r.from}}`) }}
               print(p.min_ms <= p.avg_ms && p.avg_ms <= p.max_ms && p.mdev_ms >= 0.0);"#
        ));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "3 3 0 0.0", "{host}: {out}");
        let theirs = iputils(host, 3);
        assert_eq!(theirs.len(), 3, "iputils ping {host}");
        let ours: Vec<(u32, u32)> = lines[1..4]
            .iter()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                assert_eq!(f[2], host);
                (f[0].parse().unwrap(), f[1].parse().unwrap())
            })
            .collect();
        assert_eq!(ours, theirs, "{host}");
        assert_eq!(lines[4], "true", "{out}");
    }
}

/// With `live: true` each reply is a line as it arrives, then ping's summary.
#[test]
fn live_lines_like_ping() {
    let probe = Netsh::new()
        .args([
            "-e",
            r#"ping("127.0.0.1", #{count: 1, interval: 200}).sent"#,
        ])
        .output();
    skip_if!(
        "ping::live_lines_like_ping",
        support::skip_unless_broken("ping", &probe, support::is_root(), "ping_group_range")
    );
    let out = Netsh::eval(r#"ping("127.0.0.1", #{count: 2, interval: 200, live: true}); ()"#);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "PING 127.0.0.1 (127.0.0.1) 56 data bytes",
        "{out}"
    );
    assert!(
        lines[1].starts_with("64 bytes from 127.0.0.1: seq=1 ttl=64 time="),
        "{out}"
    );
    assert!(
        lines[2].starts_with("64 bytes from 127.0.0.1: seq=2 ttl=64 time="),
        "{out}"
    );
    assert_eq!(lines[3], "--- 127.0.0.1 ping statistics ---");
    assert!(
        lines[4].starts_with("2 packets transmitted, 2 received, 0% packet loss"),
        "{out}"
    );
    assert!(lines[5].starts_with("rtt min/avg/max/mdev = "), "{out}");
}

/// As `nobody` (no CAP_NET_RAW) in a namespace whose ping_group_range
/// admits every group, ping uses a ping socket, on IPv4 and IPv6; an
/// interval under 200 ms is refused there, as iputils refuses it.
#[test]
fn unprivileged_ping_socket_as_nobody() {
    skip_if!(
        "ping::unprivileged_ping_socket_as_nobody",
        support::nobody_unavailable()
    );
    skip_if!(
        "ping::unprivileged_ping_socket_as_nobody",
        support::netns_unavailable()
    );
    let allow = "sysctl -qw net.ipv4.ping_group_range='0 2147483647'";
    let run = Netsh::nobody_in_netns(&[allow])
        .args([
            "-e",
            r#"for h in ["127.0.0.1", "::1"] { let p = ping(h, #{count: 2, interval: 200}); print(`${p.socket} ${p.received} ${p.replies.map(|r| r.seq)}`) }
               try { ping("127.0.0.1", #{count: 2, interval: 10}) } catch (e) { print(e.kind); print(e.message) }"#,
        ])
        .ok();
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        ["ping 2 [1, 2]", "ping 2 [1, 2]", "permission"],
        "{}",
        run.explain()
    );
    assert!(lines[3].contains("CAP_NET_RAW"), "{out}");
}

/// As `nobody` where ping_group_range admits no group (a new namespace's
/// default), ping fails at once, saying which sysctl or setcap allows it.
#[test]
fn refused_without_privilege_says_how_to_allow() {
    skip_if!(
        "ping::refused_without_privilege_says_how_to_allow",
        support::nobody_unavailable()
    );
    skip_if!(
        "ping::refused_without_privilege_says_how_to_allow",
        support::netns_unavailable()
    );
    let deny = "sysctl -qw net.ipv4.ping_group_range='1 0'";
    let run = Netsh::nobody_in_netns(&[deny])
        .args([
            "-e",
            r#"try { ping("127.0.0.1") } catch (e) { print(e.kind); print(e.message) }"#,
        ])
        .ok();
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "permission", "{}", run.explain());
    for words in [
        "CAP_NET_RAW",
        "net.ipv4.ping_group_range",
        "setcap cap_net_raw+ep",
    ] {
        assert!(lines[1].contains(words), "{words}: {out}");
    }
}

/// nft rejects echo requests on input with host/address unreachable: ping
/// counts the ICMP errors and no reply, as iputils does, on a raw socket
/// (root) and on a ping socket (nobody), IPv4 and IPv6.
#[test]
fn icmp_errors_are_counted_not_replies() {
    skip_if!(
        "ping::icmp_errors_are_counted_not_replies",
        support::nobody_unavailable()
    );
    skip_if!(
        "ping::icmp_errors_are_counted_not_replies",
        support::netns_unavailable()
    );
    if !support::has_tool(
        "ping::icmp_errors_are_counted_not_replies",
        "nft",
        &["-v"],
        "nftables",
    ) {
        return;
    }
    let setup = [
        "nft add table inet t",
        "nft add chain inet t inp '{ type filter hook input priority 0; }'",
        "nft add rule inet t inp icmp type echo-request reject with icmp type host-unreachable",
        "nft add rule inet t inp icmpv6 type echo-request reject with icmpv6 type addr-unreachable",
        "sysctl -qw net.ipv4.ping_group_range='0 2147483647'",
    ];
    let code = r#"for h in ["127.0.0.1", "::1"] {
            let p = ping(h, #{count: 2, interval: 200});
            print(`${p.socket} ${p.sent} ${p.received} ${p.errors} ${p.loss} ${p.icmp_errors.map(|e| e.error)}`)
        }"#;
    let root = Netsh::in_netns(&setup).args(["-e", code]).ok().stdout();
    assert_eq!(
        root.lines().collect::<Vec<_>>(),
        [
            r#"raw 2 0 2 100.0 ["Destination Host Unreachable", "Destination Host Unreachable"]"#,
            r#"raw 2 0 2 100.0 ["Destination unreachable: Address unreachable", "Destination unreachable: Address unreachable"]"#,
        ]
    );
    let nobody = Netsh::nobody_in_netns(&setup)
        .args(["-e", code])
        .ok()
        .stdout();
    assert_eq!(nobody, root.replace("raw ", "ping "));
}

/// Bad options fail before anything is sent, with the option named.
#[test]
fn bad_options_are_clear_errors() {
    for (code, words) in [
        (r#"ping("127.0.0.1", #{count: 0})"#, "option 'count'"),
        (r#"ping("127.0.0.1", #{count: -3})"#, "option 'count'"),
        (r#"ping("127.0.0.1", #{interval: -1})"#, "option 'interval'"),
        (r#"ping("127.0.0.1", #{ttl: 256})"#, "option 'ttl'"),
        (
            r#"ping("127.0.0.1", #{cuont: 2})"#,
            "unknown option 'cuont'",
        ),
        (r#"ping("1.2.3")"#, "1.2.3"),
    ] {
        let err = Netsh::eval_err(code);
        assert!(err.contains(words), "{code}: {err}");
    }
}

/// In the REPL each reply is shown as it arrives, and Ctrl-C ends the run
/// with ping's summary, then the prompt comes back.
#[test]
fn ctrl_c_ends_with_the_summary_in_the_repl() {
    let probe = Netsh::new()
        .args([
            "-e",
            r#"ping("127.0.0.1", #{count: 1, interval: 200}).sent"#,
        ])
        .output();
    skip_if!(
        "ping::ctrl_c_ends_with_the_summary_in_the_repl",
        support::skip_unless_broken("ping", &probe, support::is_root(), "ping_group_range")
    );
    use expectrl::Expect;
    let home = tempfile::tempdir().unwrap();
    let mut pty = support::repl(home.path());
    pty.send_line(r#"ping("127.0.0.1", #{count: 1000, interval: 200})"#)
        .unwrap();
    pty.expect("64 bytes from 127.0.0.1: seq=3 ttl=64").unwrap();
    pty.send("\x03").unwrap();
    pty.expect("--- 127.0.0.1 ping statistics ---").unwrap();
    let m = pty
        .expect(expectrl::Regex(
            r"(\d+) packets transmitted, (\d+) received",
        ))
        .unwrap();
    let received: u32 = String::from_utf8_lossy(&m[2]).parse().unwrap();
    assert!(
        (3..20).contains(&received),
        "received {received} of 1000 before Ctrl-C"
    );
    pty.expect("netsh> ").unwrap();
    support::enter_value(&mut pty, "1 + 1", "2");
}

/// Answers one echo request in its network namespace, and keeps the
/// pinging process (argv[1]) stopped from just after the request until
/// 0.5 s after the reply: the reply arrives 0.3 s after the request, but
/// ping cannot read it before 0.8 s. The kernel stopped echoing itself
/// (icmp_echo_ignore_all); argv[2] is created once the socket listens.
const LATE_READER: &str = r#"
import os, signal, socket, sys, time
pid = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
open(sys.argv[2], "w").close()
while True:
    data, addr = s.recvfrom(2048)
    icmp = bytearray(data[(data[0] & 15) * 4:])
    if icmp[0] != 8:
        continue
    os.kill(pid, signal.SIGSTOP)
    time.sleep(0.3)
    icmp[0] = 0
    icmp[2:4] = b"\0\0"
    if len(icmp) % 2:
        icmp.append(0)
    total = sum(int.from_bytes(icmp[i:i + 2], "big") for i in range(0, len(icmp), 2))
    while total > 0xffff:
        total = (total & 0xffff) + (total >> 16)
    icmp[2:4] = (~total & 0xffff).to_bytes(2, "big")
    s.sendto(bytes(icmp[:len(data) - (data[0] & 15) * 4]), addr)
    time.sleep(0.5)
    os.kill(pid, signal.SIGCONT)
    break
"#;

/// The round trip ends when the kernel received the reply (SO_TIMESTAMPNS,
/// as iputils measures), not when ping got round to reading it: a reply
/// sent 0.3 s after the request but read 0.8 s after it measures about
/// 0.3 s, on a raw socket (root) and on a ping socket (nobody).
#[test]
fn the_round_trip_ends_when_the_kernel_received_the_reply() {
    let test = "ping::the_round_trip_ends_when_the_kernel_received_the_reply";
    skip_if!(test, support::netns_unavailable());
    skip_if!(test, support::nobody_unavailable());
    if !support::has_tool(test, "python3", &["--version"], "python3") {
        return;
    }
    for as_nobody in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("late.py");
        std::fs::write(&script, LATE_READER).unwrap();
        let ready = dir.path().join("ready");
        // `$$` is the shell that execs netsh (through setpriv as nobody):
        // the same process.
        let start = format!(
            "(python3 {} $$ {} &) && while [ ! -e {} ]; do sleep 0.01; done",
            script.display(),
            ready.display(),
            ready.display()
        );
        let setup = [
            "sysctl -qw net.ipv4.icmp_echo_ignore_all=1",
            "sysctl -qw net.ipv4.ping_group_range='0 2147483647'",
            start.as_str(),
        ];
        let netsh = if as_nobody {
            Netsh::nobody_in_netns(&setup)
        } else {
            Netsh::in_netns(&setup)
        };
        let run = netsh
            .args([
                "-e",
                r#"let p = ping("127.0.0.1", #{count: 1, interval: 200, timeout: 5000});
                   print(`${p.socket} ${p.received}`); print(p.replies[0].ms)"#,
            ])
            .ok();
        let out = run.stdout();
        let lines: Vec<&str> = out.lines().collect();
        let socket = if as_nobody { "ping 1" } else { "raw 1" };
        assert_eq!(lines.first(), Some(&socket), "{}", run.explain());
        let ms: f64 = lines[1].parse().unwrap();
        assert!(
            (290.0..700.0).contains(&ms),
            "{socket}: the reply took {ms} ms by our clock; it arrived after 300 ms, was read after 800 ms"
        );
    }
}
