//! `socks_serve`'s UDP ASSOCIATE against a real client: PySocks (Debian's
//! `python3-socks`), whose `socksocket(AF_INET, SOCK_DGRAM)` asks for the
//! association and wraps each datagram in the SOCKS header.

use std::{net::UdpSocket, process::Command, thread};

use crate::support::{Peer, skip};

/// A UDP server on `ip` answering each datagram with `NAME got …`.
fn udp_echo(ip: &str, name: &'static str) -> u16 {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    let port = s.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let reply = format!("{name} got {}", String::from_utf8_lossy(&buf[..n]));
            let _ = s.send_to(reply.as_bytes(), from);
        }
    });
    port
}

/// The client: datagrams to each server through the proxy, one line per
/// answer (`from PORT: TEXT`, or `none` when none came in 1.5 s).
const CLIENT: &str = r#"
import socket, sys, socks
proxy, targets = int(sys.argv[1]), sys.argv[2:]
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, "127.0.0.1", proxy)
s.settimeout(1.5)
for t in targets:
    host, port, text = t.split(",")
    s.sendto(text.encode(), (host, int(port)))
    try:
        data, src = s.recvfrom(2048)
        print(f"from {src[1]}: {data.decode()}", flush=True)
    except socket.timeout:
        print("none", flush=True)
"#;

/// Two UDP servers through one association each answer, and each answer
/// comes back labelled with its own server's address; a destination
/// outside `destinations` gets nothing through, and the association
/// still works after it. The job counts the bytes each way.
#[test]
fn pysocks_udp_associate_reaches_two_servers() {
    // Debian's python, which has Debian's packages (a python3 earlier on
    // PATH, as pyenv's, may not).
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let has = Command::new(python)
        .args(["-c", "import socks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        skip(
            "pysocks_udp_associate_reaches_two_servers",
            "python3 with PySocks is not installed (apt-get install python3-socks)",
        );
        return;
    }
    let (a, b) = (udp_echo("127.0.0.1", "a"), udp_echo("127.0.0.1", "b"));
    let outside = udp_echo("127.0.0.2", "outside");
    let mut proxy = Peer::netsh(
        r#"let s = socks_serve("127.0.0.1:0", #{destinations: ["127.0.0.1/32"], quiet: true}); print(s.port);
           while s.stats().b_to_a < 18 { sleep(20) }
           let st = s.stats(); print(`counted ${st.a_to_b} ${st.b_to_a}`); s.stop();"#,
    );
    let port = proxy.port();
    let out = Command::new("timeout")
        .args(["30", python, "-c", CLIENT, &port.to_string()])
        .arg(format!("127.0.0.1,{a},one"))
        .arg(format!("127.0.0.2,{outside},lost"))
        .arg(format!("127.0.0.1,{b},two"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            format!("from {a}: a got one"),
            "none".to_string(),
            format!("from {b}: b got two"),
        ],
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "one" and "two" out; "a got one" and "b got two" back.
    assert_eq!(proxy.expect("counted"), "counted 6 18");
}
