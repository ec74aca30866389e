//! A small network of our own for `ping` and `traceroute`: five network
//! namespaces — a client, three routers, a server — joined in a line by
//! veth pairs, with `ip_forward` on in the routers and routes both ways:
//!
//! ```text
//! client 10.91.1.1 — 10.91.1.2 r1 10.91.2.1 — 10.91.2.2 r2 10.91.3.1 —
//!     10.91.3.2 r3 10.91.4.1 — 10.91.4.2 server
//! ```
//!
//! and the same over IPv6, link N on fd91:N::/64 (`::1` and `::2` as
//! above), the addresses without duplicate address detection so they
//! work at once.
//!
//! Only root may build it; [`Lab::new`] says why it skips otherwise. Every
//! namespace is deleted on `Drop`, whatever the test did. The addresses
//! exist only inside these namespaces: nothing leaves the machine.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server's address, as the client reaches it.
pub const SERVER: &str = "10.91.4.2";
/// Each router's address facing the client, hop by hop, then the server.
pub const HOPS: [&str; 4] = ["10.91.1.2", "10.91.2.2", "10.91.3.2", SERVER];
/// The server's IPv6 address.
pub const SERVER6: &str = "fd91:4::2";
/// [`HOPS`] over IPv6.
pub const HOPS6: [&str; 4] = ["fd91:1::2", "fd91:2::2", "fd91:3::2", SERVER6];

/// The names [`Lab::in_client_named`] gives the hops, in [`HOPS`]' order.
pub const NAMES: [&str; 4] = [
    "r1.lab.test",
    "r2.lab.test",
    "r3.lab.test",
    "server.lab.test",
];

pub struct Lab {
    /// The namespaces, client first, server last.
    names: Vec<String>,
}

fn sh(script: &str) -> Result<(), String> {
    let out = Command::new("sh")
        .args(["-ec", script])
        .output()
        .map_err(|e| format!("sh: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Lab {
    /// Builds the lab, or `None` (having said why the test skips) when
    /// the tests do not run as root. As root, failing to build it fails.
    pub fn new(test: &str) -> Option<Lab> {
        if !super::is_root() {
            super::skip(test, "the namespace lab needs root (ip netns, veth)");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let names: Vec<String> = ["c", "r1", "r2", "r3", "s"]
            .iter()
            .map(|n| format!("nl{tag}{n}"))
            .collect();
        let lab = Lab { names };
        let n = &lab.names;
        let mut script = String::new();
        for ns in n {
            script += &format!("ip netns add {ns}\nip -n {ns} link set lo up\n");
        }
        // Link i joins namespace i (its end `right`) and i+1 (`left`),
        // on 10.91.(i+1).0/24: .1 on the client side, .2 on the server side.
        for i in 0..4 {
            let (a, b) = (&n[i], &n[i + 1]);
            let net = i + 1;
            script += &format!(
                "ip -n {a} link add right type veth peer name left netns {b}\n\
                 ip -n {a} addr add 10.91.{net}.1/24 dev right\n\
                 ip -n {b} addr add 10.91.{net}.2/24 dev left\n\
                 ip -n {a} addr add fd91:{net}::1/64 dev right nodad\n\
                 ip -n {b} addr add fd91:{net}::2/64 dev left nodad\n\
                 ip -n {a} link set right up\n\
                 ip -n {b} link set left up\n"
            );
        }
        for r in &n[1..4] {
            script += &format!(
                "ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1\n\
                 ip netns exec {r} sysctl -qw net.ipv4.icmp_ratelimit=0\n\
                 ip netns exec {r} sysctl -qw net.ipv6.conf.all.forwarding=1\n\
                 ip netns exec {r} sysctl -qw net.ipv6.icmp.ratelimit=0\n"
            );
        }
        script += &format!(
            "ip netns exec {0} sysctl -qw net.ipv4.icmp_ratelimit=0\n\
             ip netns exec {0} sysctl -qw net.ipv6.icmp.ratelimit=0\n",
            n[4]
        );
        // The client and server send everything down the line; each router
        // sends what is beyond its own links onward.
        script += &format!("ip -n {} route add default via 10.91.1.2\n", n[0]);
        script += &format!("ip -n {} route add default via 10.91.4.1\n", n[4]);
        script += &format!("ip -n {} -6 route add default via fd91:1::2\n", n[0]);
        script += &format!("ip -n {} -6 route add default via fd91:4::1\n", n[4]);
        for (i, r) in n[1..4].iter().enumerate() {
            let hop = i + 1; // router i+1 has links hop (left) and hop+1 (right)
            for net in 1..=4 {
                if net < hop {
                    script += &format!("ip -n {r} route add 10.91.{net}.0/24 via 10.91.{hop}.1\n");
                    script +=
                        &format!("ip -n {r} -6 route add fd91:{net}::/64 via fd91:{hop}::1\n");
                } else if net > hop + 1 {
                    script += &format!(
                        "ip -n {r} route add 10.91.{net}.0/24 via 10.91.{0}.2\n\
                         ip -n {r} -6 route add fd91:{net}::/64 via fd91:{0}::2\n",
                        hop + 1
                    );
                }
            }
        }
        if let Err(e) = sh(&script) {
            panic!("building the namespace lab failed as root:\n{e}");
        }
        Some(lab)
    }

    /// Waits (up to 10 s) until the client reaches the server over IPv6:
    /// the first neighbour solicitations on fresh veth links go unanswered
    /// for about a second, and would make the first hops look silent.
    pub fn wait_for_ipv6(&self) {
        let client = self.client();
        super::wait_until(
            std::time::Duration::from_secs(10),
            "IPv6 across the lab",
            || {
                Command::new("ip")
                    .args([
                        "netns", "exec", client, "ping", "-6", "-n", "-q", "-c", "1", "-W", "0.2",
                    ])
                    .arg(SERVER6)
                    .output()
                    .is_ok_and(|o| o.status.success())
            },
        );
    }

    /// The client's namespace.
    pub fn client(&self) -> &str {
        &self.names[0]
    }

    /// Router `i` (1–3)'s namespace.
    pub fn router(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Runs `script` (sh) as root inside namespace `ns`.
    pub fn run_in(&self, ns: &str, script: &str) {
        if let Err(e) = sh(&format!("ip netns exec {ns} sh -ec \"{script}\"")) {
            panic!("in {ns}: {e}");
        }
    }

    /// The wrapper that runs a command in the client's namespace.
    pub fn in_client(&self) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.client().into(),
        ]
    }
}

impl Lab {
    /// As [`Lab::in_client`], but in a mount namespace of its own where
    /// `/etc/hosts` (a file written in `dir`) names each hop as [`NAMES`]
    /// does: the system's /etc/hosts is not touched, and the names resolve
    /// from that file alone (no DNS server is asked).
    pub fn in_client_named(&self, dir: &std::path::Path) -> Vec<String> {
        let hosts = dir.join("hosts");
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (addr, name) in HOPS.iter().zip(NAMES) {
            text += &format!("{addr} {name}\n");
        }
        std::fs::write(&hosts, text).expect("writing the lab's hosts file");
        let mut wrapper = self.in_client();
        wrapper.extend([
            "unshare".into(),
            "-m".into(),
            "sh".into(),
            "-c".into(),
            super::private_hosts(&hosts),
        ]);
        wrapper
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
