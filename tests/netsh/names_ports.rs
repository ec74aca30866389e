//! Names, addresses and ports on real data: the system resolver, this
//! machine's interfaces and its live socket table.

use std::net::{TcpListener, UdpSocket};

use crate::support::{self, Netsh};

/// `resolve("localhost")` goes through the system resolver and finds 127.0.0.1.
#[test]
fn resolve_localhost() {
    let out = Netsh::eval("resolve(\"localhost\")");
    assert!(out.contains("\"127.0.0.1\""), "{out}");
    assert_eq!(Netsh::eval("resolve(\"127.0.0.1\")"), "[\"127.0.0.1\"]");
    assert_eq!(Netsh::eval("resolve(\"::1\")"), "[\"::1\"]");
}

/// An unknown name is a clear error, not an empty list.
#[test]
fn resolve_unknown_name() {
    let err = Netsh::eval_err("resolve(\"nohost.invalid\")");
    assert!(
        err.contains("resolve: cannot resolve 'nohost.invalid'"),
        "{err}"
    );
}

/// `hostname()` agrees with the kernel.
#[test]
fn hostname_matches_the_kernel() {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(Netsh::eval("hostname()"), kernel.trim());
}

/// `interfaces()` lists the loopback interface as up, with 127.0.0.1.
#[test]
fn interfaces_include_loopback() {
    let out = Netsh::eval(
        "let lo = interfaces().filter(|i| i.loopback); [lo.len() > 0, lo[0].up, lo[0].addresses.contains(\"127.0.0.1\")]",
    );
    assert_eq!(out, "[true, true, true]");
}

/// `local_ip()` is an address of one of this machine's interfaces.
#[test]
fn local_ip_is_one_of_ours() {
    let out = Netsh::eval(
        "let ip = local_ip(); interfaces().some(|i| i.addresses.contains(ip)) || ip == \"127.0.0.1\"",
    );
    assert_eq!(out, "true");
}

/// `reverse` maps 127.0.0.1 back to a name (localhost on this machine's /etc/hosts).
#[test]
fn reverse_loopback() {
    let name = Netsh::eval("reverse(\"127.0.0.1\")");
    assert!(!name.is_empty());
    let resolved = Netsh::eval(&format!("resolve({name:?})"));
    assert!(resolved.contains("127.0.0.1"), "{name} → {resolved}");
}

/// `ip_info` through the binary, on the lesson's table of addresses.
#[test]
fn ip_info_table() {
    let table = [
        ("127.0.0.1", "4 A loopback"),
        ("192.168.4.24", "4 C private"),
        ("10.1.2.3", "4 A private"),
        ("8.8.8.8", "4 A global"),
        ("224.0.0.1", "4 D multicast"),
        ("fe80::1", "6  link-local"),
        ("::1", "6  loopback"),
    ];
    for (ip, expected) in table {
        let out = Netsh::eval(&format!(
            "let i = ip_info({ip:?}); `${{i.version}} ${{i.class}} ${{i.kind}}`"
        ));
        assert_eq!(out, expected, "{ip}");
    }
    assert_eq!(Netsh::eval("ip_info(\"10.0.0.1\")[\"private\"]"), "true");
    assert_eq!(
        Netsh::eval("ip_info(\"2001:db8::1\").documentation"),
        "true"
    );
}

/// Port ranges at every boundary, and both ends of the valid range.
#[test]
fn port_info_boundaries() {
    for (port, range) in [
        (0, "well-known"),
        (1023, "well-known"),
        (1024, "registered"),
        (49151, "registered"),
        (49152, "dynamic"),
        (65535, "dynamic"),
    ] {
        assert_eq!(
            Netsh::eval(&format!("port_info({port}).range")),
            range,
            "port {port}"
        );
    }
    for bad in [-1, 65536] {
        let err = Netsh::eval_err(&format!("port_info({bad})"));
        assert!(
            err.contains(&format!("port_info: port {bad} is out of range (0–65535)")),
            "{err}"
        );
    }
}

/// Service names for TCP and UDP are looked up separately.
#[test]
fn port_info_services() {
    assert_eq!(Netsh::eval("port_info(22).tcp"), "ssh");
    assert_eq!(Netsh::eval("port_info(53).udp"), "domain");
    assert_eq!(Netsh::eval("port_info(5900).tcp"), "vnc");
    assert_eq!(Netsh::eval("port_info(6379).tcp"), "redis");
    assert_eq!(Netsh::eval("service_port(\"https\")"), "443");
}

/// `sockets()` finds a TCP listener this test opened, with this test's pid.
#[test]
fn sockets_finds_our_listener_and_pid() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = Netsh::eval(&format!(
        "let s = sockets(#{{port: {port}, proto: \"tcp\", state: \"LISTEN\"}}); [s.len(), s[0].pid, s[0].local]"
    ));
    assert_eq!(
        out,
        format!("[1, {}, \"127.0.0.1:{port}\"]", std::process::id())
    );
}

/// UDP and IPv6 sockets are listed too, and the process name is reported.
#[test]
fn sockets_lists_udp_and_ipv6() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let v6 = TcpListener::bind("[::1]:0").unwrap();
    let v6_port = v6.local_addr().unwrap().port();
    let out = Netsh::eval(&format!(
        "let u = sockets(#{{port: {udp_port}, proto: \"udp\"}}); let t = sockets(#{{port: {v6_port}, state: \"listen\"}}); [u[0].proto, u[0].pid, t[0].proto, t[0].local]"
    ));
    assert_eq!(
        out,
        format!(
            "[\"udp\", {}, \"tcp6\", \"[::1]:{v6_port}\"]",
            std::process::id()
        )
    );
    // With the protocol too: a TCP socket of a concurrent test (the scan's
    // TIME_WAIT connections have no owner) may hold the same port number.
    let name = Netsh::eval(&format!(
        "sockets(#{{port: {udp_port}, proto: \"udp\"}})[0].process"
    ));
    assert!(!name.is_empty() && name != "()", "{name}");
}

/// `scan` finds exactly the listeners this test opened among a port range,
/// in all three spellings of a port list, and reports closed ports in detail mode.
#[test]
fn scan_finds_our_listeners() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let closed = support::closed_port();
    let out = Netsh::eval(&format!("scan(\"127.0.0.1\", [{pa}, {pb}, {closed}])"));
    let mut expected = [pa, pb];
    expected.sort();
    assert_eq!(out, format!("[{}, {}]", expected[0], expected[1]));
    let out = Netsh::eval(&format!("scan(\"localhost\", \"{pa},{closed}\")"));
    assert_eq!(out, format!("[{pa}]"));
    let out = Netsh::eval(&format!("scan(\"127.0.0.1\", {pa}..{})", pa + 1));
    assert_eq!(out, format!("[{pa}]"));
    let out = Netsh::eval(&format!(
        "scan(\"127.0.0.1\", [{pa}, {closed}], #{{detail: true}}).map(|p| p.state)"
    ));
    assert_eq!(out, "[\"open\"]");
}
