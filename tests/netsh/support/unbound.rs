//! A real DNS server for the `dns` tests: `unbound` on 127.0.0.1, on a
//! free port below 32768, from a generated config and zone file, stopped
//! on `Drop`. It serves `lab.test.` (every record type, a CNAME chain, a
//! TXT set too big for UDP), reverse names for 10.0.0.1 and 2001:db8::1,
//! and `dead.test.`, forwarded to a port where nothing listens (SERVFAIL).

use std::{
    fmt::Write as _,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How many TXT records `big.lab.test` has: about 3 KB, over the 1232
/// bytes of a UDP answer, so the answer comes back truncated.
pub const BIG_TXT: usize = 40;

pub struct Unbound {
    child: Child,
    pub port: u16,
    /// DNS over TLS's port, when started with [`Unbound::start_tls`].
    pub tls_port: Option<u16>,
    /// DNS over HTTPS's port (`/dns-query`), likewise.
    pub https_port: Option<u16>,
    /// The server's self-signed certificate (PEM) for DNS over TLS, for
    /// `dns`'s `ca`: it names `dns.lab.test` and 127.0.0.1.
    pub tls_cert: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl Unbound {
    /// Starts unbound, or `None` (the test skips, saying why) when it is
    /// not installed.
    pub fn start(test: &str) -> Option<Unbound> {
        Self::start_with(test, false)
    }

    /// As [`Unbound::start`], also answering DNS over TLS and DNS over
    /// HTTPS on ports of their own, with a certificate made here.
    pub fn start_tls(test: &str) -> Option<Unbound> {
        Self::start_with(test, true)
    }

    fn start_with(test: &str, tls: bool) -> Option<Unbound> {
        if !super::has_tool(test, "unbound", &["-V"], "unbound")
            || !super::has_tool(test, "dig", &["-v"], "bind9-dnsutils")
        {
            return None;
        }
        let dir = tempfile::tempdir().expect("a temp dir for unbound");
        std::fs::write(dir.path().join("lab.zone"), zone()).expect("writing the zone");
        let cert = dir.path().join("dns.pem");
        if tls {
            let made = rcgen::generate_simple_self_signed(vec![
                "dns.lab.test".to_string(),
                "127.0.0.1".to_string(),
            ])
            .expect("a self-signed certificate");
            std::fs::write(&cert, made.cert.pem()).expect("writing the certificate");
            std::fs::write(dir.path().join("dns.key"), made.signing_key.serialize_pem())
                .expect("writing the key");
        }
        for attempt in 0..20 {
            let port = super::fixed_port(attempt);
            let tls_port = tls.then(|| super::fixed_port(attempt + 40));
            let https_port = tls.then(|| super::fixed_port(attempt + 80));
            let dead = super::closed_port();
            let conf = dir.path().join("unbound.conf");
            let mut text = config(dir.path(), port, dead);
            if let (Some(tls_port), Some(https_port)) = (tls_port, https_port) {
                let dir = dir.path().display();
                text = text.replacen(
                    "server:\n",
                    &format!(
                        "server:\n  interface: 127.0.0.1@{tls_port}\n  tls-port: {tls_port}\n  interface: 127.0.0.1@{https_port}\n  https-port: {https_port}\n  tls-service-key: \"{dir}/dns.key\"\n  tls-service-pem: \"{dir}/dns.pem\"\n"
                    ),
                    1,
                );
            }
            std::fs::write(&conf, text).expect("writing unbound.conf");
            let mut child = Command::new("unbound")
                .args(["-d", "-c"])
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting unbound");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken: try another
                }
                if dig_short(port, &["www.lab.test", "A"]) == "10.0.0.1" {
                    return Some(Unbound {
                        child,
                        port,
                        tls_port,
                        https_port,
                        tls_cert: tls.then(|| cert.clone()),
                        _dir: dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let out = child.wait_with_output().expect("unbound's output");
            if attempt == 19 {
                panic!(
                    "unbound did not start: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        unreachable!()
    }

    /// `server` for netsh.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `dig @127.0.0.1 -p PORT ARGS`'s output.
    pub fn dig(&self, args: &[&str]) -> String {
        dig(self.port, args)
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dig @127.0.0.1 -p PORT +tries=1 +timeout=3 ARGS`'s output, trimmed:
/// for any DNS server a test runs on loopback.
pub fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+tries=1",
            "+timeout=3",
        ])
        .args(args)
        .output()
        .expect("running dig");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn dig_short(port: u16, args: &[&str]) -> String {
    let mut all = vec!["+short"];
    all.extend_from_slice(args);
    dig(port, &all)
}

fn config(dir: &Path, port: u16, dead: u16) -> String {
    let dir = dir.display();
    // The infra-cache and retry limits make unbound give up on the dead
    // forwarder in a fraction of a second instead of minutes.
    format!(
        r#"server:
  interface: 127.0.0.1
  port: {port}
  do-daemonize: no
  use-syslog: no
  logfile: ""
  chroot: ""
  username: ""
  directory: "{dir}"
  pidfile: ""
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  do-not-query-localhost: no
  infra-cache-max-rtt: 100
  outbound-msg-retry: 1
  max-sent-count: 2
  unknown-server-time-limit: 50
  local-zone: "lab.test." transparent
  local-zone: "dead.test." transparent
  local-data-ptr: "10.0.0.1 www.lab.test."
  local-data-ptr: "2001:db8::1 www.lab.test."
auth-zone:
  name: "lab.test."
  zonefile: "{dir}/lab.zone"
  for-downstream: yes
  for-upstream: no
forward-zone:
  name: "dead.test."
  forward-addr: 127.0.0.1@{dead}
remote-control:
  control-enable: no
"#
    )
}

fn zone() -> String {
    let mut z = String::from(
        r#"$ORIGIN lab.test.
@ 3600 IN SOA ns1 admin 2024010101 7200 3600 1209600 300
@ 3600 IN NS ns1
ns1 300 IN A 10.0.0.53
www 300 IN A 10.0.0.1
www 300 IN AAAA 2001:db8::1
@ 300 IN MX 10 mail
@ 300 IN MX 20 backup.mail
@ 300 IN TXT "v=spf1 -all" "second \"quoted\" part"
_sip._tcp 300 IN SRV 0 5 5060 sip
@ 300 IN CAA 0 issue "letsencrypt.org"
odd 300 IN TYPE65280 \# 4 0A000001
alias 300 IN CNAME alias2
alias2 300 IN CNAME www
"#,
    );
    for i in 0..BIG_TXT {
        let _ = writeln!(z, "big 300 IN TXT \"record {i:02} {}\"", "x".repeat(60));
    }
    z
}
