//! `scan` over every port: exactly the listeners there are, run after run,
//! never a self-connect counted as open; why each port is what it is; a
//! port that stays silent; and the report plugin built on it.
//!
//! The exact tests run in a private network namespace (root, `unshare`,
//! `ip`), where nothing but the test's own listeners exists; the test on
//! this machine's loopback checks against `sockets()`, sampled while it
//! sweeps, and runs while no other test of this file holds a listener.

use std::{
    collections::BTreeSet,
    net::{TcpListener, TcpStream},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use serde_json::Value;

use crate::support::{self, Netsh, Peer};

/// Skips the calling test (saying why) when no network namespace can be
/// made because the tests are not root; as root, failing to make one fails.
macro_rules! need_netns {
    ($test:expr) => {
        support::skip_if!($test, support::netns_unavailable())
    };
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn ports(v: &Value) -> BTreeSet<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect()
}

/// In a namespace where only the test listens, five sweeps of all 65,535
/// ports of 127.0.0.1 and of ::1 each find exactly the test's listeners:
/// one on 127.0.0.1, one on ::1, one on every address.
#[test]
fn full_sweeps_find_exactly_our_listeners() {
    need_netns!("full_sweeps_find_exactly_our_listeners");
    let out = Netsh::in_netns(&[])
        .args([
            "-e",
            r#"
            let v4 = listen("127.0.0.1:0");
            let v6 = listen("[::1]:0");
            let both = listen(0);
            let runs = [];
            for i in 0..5 {
                runs.push([scan("127.0.0.1", 1..65536), scan("::1", 1..65536)]);
            }
            to_json(#{v4: v4.port, v6: v6.port, both: both.port, runs: runs})
            "#,
        ])
        .ok()
        .stdout();
    let v = json(&out);
    let (v4, v6, both) = (
        v["v4"].as_u64().unwrap(),
        v["v6"].as_u64().unwrap(),
        v["both"].as_u64().unwrap(),
    );
    for run in v["runs"].as_array().unwrap() {
        assert_eq!(
            ports(&run[0]),
            BTreeSet::from([v4, both]),
            "127.0.0.1: {out}"
        );
        assert_eq!(ports(&run[1]), BTreeSet::from([v6, both]), "::1: {out}");
    }
}

/// With a single pair of ephemeral ports, a connect to 40000 lands on its
/// own source port: the plain `connect` shows that self-connect happening,
/// and `scan` in the same situation reports the port closed, not open.
#[test]
fn a_self_connect_is_never_an_open_port() {
    need_netns!("a_self_connect_is_never_an_open_port");
    let narrow = "echo '40000 40001' > /proc/sys/net/ipv4/ip_local_port_range";
    // The hazard is real: in a fresh namespace the connect meets itself.
    let control = Netsh::in_netns(&[narrow])
        .args([
            "-e",
            "let c = connect(\"127.0.0.1:40000\"); c.local == c.peer",
        ])
        .ok()
        .stdout();
    assert_eq!(
        control, "true",
        "the setup no longer provokes a self-connect"
    );
    for host in ["127.0.0.1", "::1"] {
        let out = Netsh::in_netns(&[narrow])
            .args([
                "-e",
                &format!("to_json(scan(\"{host}\", 39990..40010, #{{reason: true}}).filter(|p| p.state != \"closed\"))"),
            ])
            .ok()
            .stdout();
        assert_eq!(out, "[]", "{host}: a port reported open or filtered");
    }
}

/// Listeners on this machine's loopback come and go with the other tests
/// of this file; the full sweep of it runs while none of them does. Those
/// of other files' tests, which share this process, and of other programs
/// are the sampler's to see.
static HOST_LISTENERS: Mutex<()> = Mutex::new(());

fn host_listeners() -> MutexGuard<'static, ()> {
    HOST_LISTENERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every port `sockets()` shows listening for 127.0.0.1 (bound to it, to
/// 0.0.0.0 or to [::]), sampled by a second netsh every few milliseconds
/// until finished, so that a listener another test or program holds only
/// briefly is seen too.
struct ListenSampler(Peer);

impl ListenSampler {
    fn start() -> ListenSampler {
        let mut sampler = Peer::netsh(
            r#"loop {
                let ports = sockets(#{state: "LISTEN"})
                    .filter(|s| s.local.starts_with("127.0.0.1:") || s.local.starts_with("0.0.0.0:") || s.local.starts_with("[::]:"))
                    .map(|s| parse_int(s.local.split(":").pop()));
                print(to_json(ports));
                sleep(2);
            }"#,
        );
        sampler.expect("[");
        ListenSampler(sampler)
    }

    /// Stops sampling: every port seen listening, and those seen in every sample.
    fn finish(mut self) -> (BTreeSet<u64>, BTreeSet<u64>) {
        let samples: Vec<BTreeSet<u64>> = self
            .0
            .output()
            .lines()
            .map(|line| ports(&json(line)))
            .collect();
        let ever = samples.iter().flatten().copied().collect();
        let always = samples.iter().skip(1).fold(samples[0].clone(), |acc, s| {
            acc.intersection(s).copied().collect()
        });
        (ever, always)
    }
}

/// On this machine's loopback, three sweeps in a row of the ports below the
/// ephemeral range find the test's listeners and every port `sockets()`
/// shows listening there throughout, and nothing `sockets()` did not show
/// listening while they ran. (Above 32767 live the other tests' listeners,
/// bound to port 0: a sweep there connects to them and upsets the tests
/// that count their connections. The namespace test above sweeps all.)
#[test]
fn full_sweeps_agree_with_sockets() {
    const BELOW: u64 = 32768;
    let _alone = host_listeners();
    let a = listener_below_ephemeral();
    let b = listener_below_ephemeral();
    let ours = BTreeSet::from([
        u64::from(a.local_addr().unwrap().port()),
        u64::from(b.local_addr().unwrap().port()),
    ]);
    let sampler = ListenSampler::start();
    let out = Netsh::eval(
        "let runs = []; for i in 0..3 { runs.push(scan(\"127.0.0.1\", 1..32768)) } to_json(runs)",
    );
    let (ever, always) = sampler.finish();
    let low =
        |set: BTreeSet<u64>| -> BTreeSet<u64> { set.into_iter().filter(|p| *p < BELOW).collect() };
    let (ever, always) = (low(ever), low(always));
    for run in json(&out).as_array().unwrap() {
        let open = ports(run);
        let required: BTreeSet<u64> = always.union(&ours).copied().collect();
        assert!(
            required.is_subset(&open),
            "missing {:?}",
            required.difference(&open)
        );
        let strays: Vec<&u64> = open.difference(&ever).collect();
        assert!(
            strays.is_empty(),
            "open, but sockets() never showed anyone listening there: {strays:?}\nopen: {open:?}\nlistening: {ever:?}"
        );
    }
}

/// A listener on 127.0.0.1 at a free port between 20000 and 32767, below
/// the ephemeral range where the other tests' listeners are.
fn listener_below_ephemeral() -> TcpListener {
    let start = 20000 + (std::process::id() % 12000) as u16;
    (0..12768u16)
        .map(|i| 20000 + (start - 20000 + i) % 12768)
        .find_map(|port| TcpListener::bind(("127.0.0.1", port)).ok())
        .expect("no free port between 20000 and 32767 on 127.0.0.1")
}

/// A listener on 127.0.0.1 whose accept queue is full: the kernel drops
/// further SYNs unanswered, as a firewall would.
struct FullListener {
    port: u16,
    _socket: socket2::Socket,
    _queued: Vec<TcpStream>,
}

impl FullListener {
    fn start() -> FullListener {
        // Backlog 0 takes one connection; later SYNs are dropped unanswered.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        socket.listen(0).unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        let queued = (0..3)
            .filter_map(|_| {
                TcpStream::connect_timeout(
                    &([127, 0, 0, 1], port).into(),
                    Duration::from_millis(300),
                )
                .ok()
            })
            .collect();
        FullListener {
            port,
            _socket: socket,
            _queued: queued,
        }
    }
}

/// A listener whose queue is full answers nothing: that port is
/// `filtered` (`no-response`), its neighbours `closed` (`reset`), an open
/// port `open` (`syn-ack`), and the sweep goes on past the silence, with a
/// timeout the sweep's own connects decide and with one they hand over.
#[test]
fn reasons_say_open_closed_or_filtered() {
    let _alone = host_listeners();
    let full = FullListener::start();
    let silent = full.port;
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    let closed = support::closed_port();
    // 100 ms: the sweep's own connect gives up and decides; 1000 ms: it
    // hands the silent port to the concurrent engine after 250 ms.
    for timeout in [100, 1000] {
        let out = Netsh::eval(&format!(
            "to_json(scan(\"127.0.0.1\", [{closed}, {silent}, {open_port}, {}], #{{reason: true, timeout: {timeout}}}))",
            silent + 1
        ));
        let v = json(&out);
        let outcome = |port: u16| {
            v.as_array()
                .unwrap()
                .iter()
                .find(|p| p["port"] == port)
                .map(|p| {
                    (
                        p["state"].as_str().unwrap().to_string(),
                        p["reason"].as_str().unwrap().to_string(),
                    )
                })
                .unwrap_or_else(|| panic!("port {port} missing (timeout {timeout}): {out}"))
        };
        assert_eq!(
            outcome(silent),
            ("filtered".into(), "no-response".into()),
            "{out}"
        );
        assert_eq!(
            outcome(open_port),
            ("open".into(), "syn-ack".into()),
            "{out}"
        );
        assert_eq!(outcome(closed), ("closed".into(), "reset".into()), "{out}");
        assert_eq!(v.as_array().unwrap().len(), 4, "{out}");
    }
}

/// `service: true` names the usual service of each open port; options are
/// checked before anything is sent.
#[test]
fn service_names_and_bad_options() {
    let _alone = host_listeners();
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let out = Netsh::eval(&format!(
        "scan(\"127.0.0.1\", [{port}], #{{service: true}})"
    ));
    assert_eq!(out, format!("[#{{port: {port}, service: ()}}]"));
    let out = Netsh::eval(&format!(
        "scan(\"127.0.0.1\", [{port}], #{{service: true, reason: true}})"
    ));
    assert_eq!(
        out,
        format!("[#{{port: {port}, reason: \"syn-ack\", service: (), state: \"open\"}}]")
    );
    for (code, message) in [
        (
            "scan(\"127.0.0.1\", [1], #{reasn: true})",
            "scan: unknown option 'reasn' (known: timeout, concurrency, reason, service, detail)",
        ),
        (
            "scan(\"127.0.0.1\", [1], #{reason: 1})",
            "scan: option 'reason': expected true or false, not a number",
        ),
        (
            "scan(\"127.0.0.1\", [1], #{timeout: -1})",
            "scan: option 'timeout': expected 0 or more milliseconds (0 means no limit), not -1",
        ),
        (
            "scan(\"nohost.invalid\", [1])",
            "scan: cannot resolve 'nohost.invalid'",
        ),
    ] {
        let err = Netsh::eval_err(code);
        assert!(err.contains(message), "{code}: {err}");
    }
}

/// `report::host` lists the open ports with their service and, on this
/// machine, the process and pid that listen there (here: this test).
#[test]
fn report_names_the_owning_process() {
    let _alone = host_listeners();
    let ours = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = ours.local_addr().unwrap().port();
    let closed = support::closed_port();
    let run = Netsh::in_checkout()
        .args([
            "-e",
            &format!("to_json(report::host(\"localhost\", [{port}, {closed}]))"),
        ])
        .ok();
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "1 open TCP port on localhost (127.0.0.1)",
        "{out}"
    );
    assert!(lines[1].starts_with("port   service"), "{out}");
    assert!(lines[2].starts_with(&format!("{port} ")), "{out}");
    assert!(
        lines[2].ends_with(&format!("(pid {})", std::process::id())),
        "{out}"
    );
    let rows = json(lines[3]);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(rows[0]["pid"], std::process::id(), "{out}");
    assert_eq!(rows[0]["port"], port, "{out}");
}

/// `timeout: 0` (no limit) on a port that never answers waits — here until
/// the kernel gives up, about two minutes — and Ctrl-C in the REPL ends
/// that wait at once.
#[test]
fn ctrl_c_ends_a_scan_without_a_time_limit() {
    use expectrl::Expect;
    let _alone = host_listeners();
    let full = FullListener::start();
    let home = tempfile::tempdir().unwrap();
    let mut pty = support::repl(home.path());
    // The words the line prints once the scan returns are not in its echo.
    pty.send_line(format!(
        "scan(\"127.0.0.1\", [{}], #{{timeout: 0}}); \"scan \" + \"returned\"",
        full.port
    ))
    .unwrap();
    pty.set_expect_timeout(Some(Duration::from_millis(1500)));
    assert!(
        pty.expect("scan returned").is_err(),
        "the scan of a silent port returned before Ctrl-C"
    );
    let interrupted = std::time::Instant::now();
    pty.send("\x03").unwrap();
    pty.set_expect_timeout(Some(Duration::from_secs(20)));
    pty.expect("scan: interrupted")
        .expect("Ctrl-C interrupts the scan");
    pty.expect("netsh> ").expect("and the prompt returns");
    let took = interrupted.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "Ctrl-C took {took:?} to end the scan"
    );
}

/// Port text is read strictly, as addresses are: a space, a sign, a stray
/// comma or a newline is refused, naming the part, never trimmed away.
#[test]
fn port_text_is_strict() {
    const FORM: &str =
        "(ports are written like \"22,80,8000-8100\": digits, commas and dashes only)";
    for (ports, message) in [
        (r#"" 80""#, format!(r#"scan: " 80" is not a port number {FORM}"#)),
        (r#""+80""#, format!(r#"scan: "+80" is not a port number {FORM}"#)),
        (r#""80\n""#, format!(r#"scan: "80\n" is not a port number {FORM}"#)),
        (
            r#""22, 80""#,
            format!(r#"scan: " 80" is not a port number in "22, 80" {FORM}"#),
        ),
        (
            r#""80,""#,
            r#"scan: "80," has an empty part (a comma at an end, or two together; ports are written like "22,80,8000-8100": digits, commas and dashes only)"#.to_string(),
        ),
        (
            r#""80-90 ""#,
            format!(r#"scan: "80-90 " is not a port number {FORM}"#),
        ),
    ] {
        let err = Netsh::eval_err(&format!("scan(\"127.0.0.1\", {ports})"));
        assert_eq!(err, format!("-e:1:1: {message}"), "{ports}");
    }
    // The strict form still reads.
    let closed = support::closed_port();
    let out = Netsh::eval(&format!(
        "scan(\"127.0.0.1\", \"{closed},{closed}-{closed}\")"
    ));
    assert_eq!(out, "[]");
}
