//! `lab_network()`: the lab netsh builds itself (namespaces held by file
//! descriptors, veth pairs, routes), crossed by `ping` and `traceroute`
//! from its client (`lab.ping`, `lab.traceroute`), hop for hop against `traceroute -n` run in the same
//! client namespace (entered through `lab.ns.client`); nothing of it in
//! the machine's own namespace; gone after `.close()` and after netsh is
//! killed; `netsh locate` shows it as root and says why not as nobody.
//!
//! Every address the lab's packets go to exists only inside its
//! namespaces: nothing here sends to 10.91.x.x from the root namespace.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use crate::support::{self, Netsh, Peer};

/// The four hops from the client, as the lab is documented to be built.
const HOPS: [&str; 4] = ["10.91.1.2", "10.91.2.2", "10.91.3.2", "10.91.4.2"];

/// Whether the test can run (root, as CI, and nsenter); says why it
/// skips otherwise.
fn root(test: &str) -> bool {
    if !support::is_root() {
        support::skip(test, "lab_network() needs root (network namespaces)");
        return false;
    }
    // nsenter enters the lab's namespaces from outside, through `lab.ns`.
    support::has_tool(test, "nsenter", &["--version"], "util-linux")
}

/// The lines of `peer`'s output starting with `tag `, the tag taken off.
fn tagged(output: &str, tag: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{tag} ")))
        .map(str::to_string)
        .collect()
}

/// The `net:[inode]` a namespace path (`/proc/PID/fd/N`) stands for.
fn inode_of(path: &str) -> String {
    std::fs::read_link(path)
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .display()
        .to_string()
}

/// Where anything on this machine still holds the namespace `inode`
/// (`net:[N]`) of a lab: a process standing in it, an open descriptor, a
/// mount. Namespace inodes are reused at once, so a namespace found with
/// the same number counts only if it is a lab's too (it has a `to-…`
/// interface): the tests' own lab (`support/lab.rs`, run in parallel)
/// names its links `left` and `right`, and netsh's labs here take turns
/// ([`one_lab_at_a_time`]).
fn holders(inode: &str) -> Vec<String> {
    let mut found = Vec::new();
    for proc_entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = proc_entry.path();
        if !pid
            .file_name()
            .is_some_and(|n| n.to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let mut links = vec![];
        if let Ok(tasks) = std::fs::read_dir(pid.join("task")) {
            links.extend(tasks.flatten().map(|t| t.path().join("ns/net")));
        }
        if let Ok(fds) = std::fs::read_dir(pid.join("fd")) {
            links.extend(fds.flatten().map(|f| f.path()));
        }
        for link in links {
            if std::fs::read_link(&link).is_ok_and(|l| l.display().to_string() == inode) {
                found.push(link.display().to_string());
            }
        }
        // A bind mount of the namespace: its root is `net:[N]`.
        if let Ok(mounts) = std::fs::read_to_string(pid.join("mountinfo")) {
            for line in mounts.lines() {
                let fields: Vec<&str> = line.split(' ').collect();
                if fields.get(3) == Some(&inode)
                    && let Some(point) = fields.get(4)
                {
                    found.push(point.to_string());
                }
            }
        }
    }
    found.retain(|path| is_a_lab(path));
    found.sort();
    found.dedup();
    found
}

/// Whether the namespace at `path` has a lab's links (`to-r1`…).
fn is_a_lab(path: &str) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={path}"))
        .args(["ip", "-o", "link"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(": to-"))
}

/// netsh's labs in these tests take turns, so a namespace number one of
/// them frees is not taken by another's while a test looks for it.
fn one_lab_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The names of the root namespace's interfaces that look like a lab's.
fn lab_links_here() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("running ip -o link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with("to-"))
        .collect()
}

/// `traceroute -n` (one probe per hop, `args` for the probe kind) to the
/// server, run in the namespace at `ns`: each hop's address, or `*`.
fn theirs(ns: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net={ns}"))
        .args(["traceroute", "-n", "-q", "1", "-w", "1"])
        .args(args)
        .arg(HOPS[3])
        .output()
        .expect("running nsenter traceroute");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1) // "traceroute to …"
        .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        .collect()
}

/// ping across the three routers gets 3 replies whose TTL the routers
/// lowered by three; UDP, ICMP and TCP traces list exactly `.hops`, and the
/// same hops `traceroute -n` finds in the client's namespace; nothing of
/// the lab is in the machine's own namespace; and after netsh is killed
/// (SIGKILL) mid-lab, nothing holds any of its namespaces.
#[test]
fn crossed_by_ping_and_traceroute_and_gone_when_netsh_is_killed() {
    let test = "lab::crossed_by_ping_and_traceroute_and_gone_when_netsh_is_killed";
    if !root(test) || !support::has_tool(test, "traceroute", &["--version"], "traceroute") {
        return;
    }
    let _turn = one_lab_at_a_time();
    let mut netsh = Peer::netsh(
        r#"
        let lab = lab_network();
        let p = lab.ping(#{count: 3, interval: 200, live: false});
        print(`ping ${p.received}`);
        for r in p.replies { print(`ttl ${r.ttl}`) }
        for h in lab.hops { print(`hop ${h.addr}`) }
        for proto in ["udp", "icmp", "tcp"] {
            for h in lab.traceroute(#{proto: proto, queries: 1}) {
                print(`${proto} ${if h.addr == () { "*" } else { h.addr }}`)
            }
        }
        for name in lab.ns.keys() { print(`ns ${name} ${lab.ns[name]}`) }
        print("ready");
        sleep(120000);
        "#,
    );
    netsh.expect("ready");
    let out = netsh.output();
    assert_eq!(tagged(&out, "ping"), ["3"], "{out}");
    assert_eq!(tagged(&out, "ttl"), ["61", "61", "61"], "{out}");
    assert_eq!(tagged(&out, "hop"), HOPS, "{out}");
    assert_eq!(tagged(&out, "udp"), HOPS, "{out}");
    assert_eq!(tagged(&out, "icmp"), HOPS, "{out}");
    assert_eq!(tagged(&out, "tcp"), HOPS, "{out}");
    let ns: Vec<(String, String)> = tagged(&out, "ns")
        .iter()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, p)| (n.to_string(), p.to_string()))
        .collect();
    assert_eq!(ns.len(), 5, "client, r1–r3, server: {out}");
    let client = &ns.iter().find(|(n, _)| n == "client").expect("client").1;
    assert_eq!(theirs(client, &[]), HOPS, "traceroute -n in the client");
    assert_eq!(
        theirs(client, &["-I"]),
        HOPS,
        "traceroute -n -I in the client"
    );
    assert_eq!(
        lab_links_here(),
        Vec::<String>::new(),
        "lab links in the root namespace"
    );
    let inodes: Vec<String> = ns.iter().map(|(_, p)| inode_of(p)).collect();
    let own = inode_of("/proc/self/ns/net");
    assert!(!inodes.contains(&own), "a lab node is the root namespace");
    for inode in &inodes {
        assert!(
            !holders(inode).is_empty(),
            "{inode} is held while the lab runs"
        );
    }
    let pid = netsh.pid();
    // SIGKILL: no destructor runs; only the kernel closing the descriptors.
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = netsh.wait_exit(Duration::from_secs(10));
    assert!(!netsh.running(), "netsh survived SIGKILL");
    for inode in &inodes {
        assert_eq!(
            holders(inode),
            Vec::<String>::new(),
            "{inode} outlived netsh"
        );
    }
    assert_eq!(lab_links_here(), Vec::<String>::new());
}

/// `.close()` lets go of every namespace while netsh runs on; `.ping()` on a
/// closed lab fails with kind `closed`.
#[test]
fn close_lets_go_of_every_namespace() {
    let test = "lab::close_lets_go_of_every_namespace";
    if !root(test) {
        return;
    }
    let _turn = one_lab_at_a_time();
    let go = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut netsh = Peer::netsh(&format!(
        r#"
        let c = connect("127.0.0.1:{}");
        let lab = lab_network(#{{routers: 2}});
        for name in lab.ns.keys() {{ print(`ns ${{lab.ns[name]}}`) }}
        print("built");
        c.recv_line();
        lab.close();
        print(`open ${{lab.is_open}} ${{lab.ns.len()}}`);
        try {{ lab.ping() }} catch (e) {{ print(`ping ${{e.kind}}`) }}
        print("closed");
        c.recv_line();
        "#,
        go.local_addr().unwrap().port()
    ));
    let mut conn = support::accept_within(&go, Duration::from_secs(20));
    netsh.expect("built");
    let out = netsh.output();
    let inodes: Vec<String> = tagged(&out, "ns").iter().map(|p| inode_of(p)).collect();
    assert_eq!(inodes.len(), 4, "client, r1, r2, server: {out}");
    for inode in &inodes {
        assert!(
            !holders(inode).is_empty(),
            "{inode} is held while the lab is open"
        );
    }
    use std::io::Write;
    conn.write_all(b"close\n").unwrap();
    netsh.expect("closed");
    let out = netsh.output();
    assert_eq!(tagged(&out, "open"), ["false 0"], "{out}");
    assert_eq!(tagged(&out, "ping"), ["closed"], "{out}");
    assert!(netsh.running(), "netsh still runs");
    for inode in &inodes {
        assert_eq!(
            holders(inode),
            Vec::<String>::new(),
            "{inode} outlived close()"
        );
    }
    conn.write_all(b"end\n").unwrap();
    assert_eq!(netsh.wait_exit(Duration::from_secs(10)), Some(0));
}

/// A lab's probes start from the client, and no thread of netsh's but the
/// probe's own (which ends) ever enters it: while the lab is up, after a
/// ping and a traceroute, a name lookup and a task, every thread of the
/// process stands in netsh's own namespace. A target outside the lab is
/// refused before anything is sent.
#[test]
fn probes_leave_no_thread_in_the_lab() {
    let test = "lab::probes_leave_no_thread_in_the_lab";
    if !root(test) {
        return;
    }
    let _turn = one_lab_at_a_time();
    let mut netsh = Peer::netsh(
        r#"
        let lab = lab_network(#{routers: 1});
        print(`ping ${lab.ping(#{count: 1, live: false}).received}`);
        print(`trace ${lab.traceroute(lab.server6, #{proto: "icmp", queries: 1}).map(|h| h.addr)}`);
        resolve("localhost");
        let t = task(|| { sleep(100); 1 });
        t.join();
        try { lab.ping("127.0.0.1", #{count: 1}) } catch (e) { print(`outside ${e.kind}`) }
        let errors = channel();
        let s = serve("127.0.0.1:0", #{on_line: |c, line| {
            try { lab.ping(#{count: 1}) } catch (e) { errors.send(`${e}`) }
            c.send_line("done")
        }, quiet: true});
        let c = connect(s.addr); c.send_line("x"); c.recv_line();
        print(`handler ${errors.recv(5000)}`);
        print("ready");
        sleep(120000);
        "#,
    );
    netsh.expect("ready");
    let out = netsh.output();
    assert!(out.contains("ping 1"), "{out}");
    assert!(out.contains(r#"trace ["fd91:1::2", "fd91:2::2"]"#), "{out}");
    assert!(out.contains("outside invalid"), "{out}");
    assert!(
        out.contains("handler ping: cannot wait inside an event handler"),
        "{out}"
    );
    let pid = netsh.pid();
    let own = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        // A thread that ended since the listing has no namespace to show.
        let Ok(ns) = std::fs::read_link(task.join("ns/net")) else {
            continue;
        };
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        assert_eq!(
            ns,
            own,
            "thread {} ({}) stands in the lab",
            task.display(),
            name.trim()
        );
        threads += 1;
    }
    assert!(threads > 1, "only {threads} thread seen");
}

/// `netsh locate` as root shows the lab section: each hop of both traces
/// beside what it is. Run in a namespace of its own holding only
/// loopback, so its DNS questions never leave the machine.
#[test]
fn locate_shows_the_lab_as_root() {
    let test = "lab::locate_shows_the_lab_as_root";
    if !root(test) {
        return;
    }
    let _turn = one_lab_at_a_time();
    let run = Netsh::in_netns(&[]).arg("locate").ok();
    let out = run.stdout();
    let section = out
        .split("5. A lab of our own")
        .nth(1)
        .unwrap_or_else(|| panic!("no lab section\n{}", run.explain()));
    assert!(
        section.contains("ping 10.91.4.2 from the client: 3/3 replies, ttl [61, 61, 61]"),
        "{section}"
    );
    for proto in ["udp", "icmp"] {
        let trace = section
            .split(&format!("({proto} probes)"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {proto} trace\n{section}"));
        let lines: Vec<&str> = trace.lines().skip(1).take(4).map(str::trim).collect();
        assert_eq!(
            lines,
            [
                "1  10.91.1.2  router r1: 10.91.1.2 faces client, 10.91.2.1 faces r2",
                "2  10.91.2.2  router r2: 10.91.2.2 faces r1, 10.91.3.1 faces r3",
                "3  10.91.3.2  router r3: 10.91.3.2 faces r2, 10.91.4.1 faces server",
                "4  10.91.4.2  the server, the destination",
            ],
            "{proto}\n{section}"
        );
    }
    assert!(section.contains("The lab is gone"), "{section}");
}

/// As `nobody` (no capability), `netsh locate` says in one line that the
/// lab needs root and how to run it, and still succeeds.
#[test]
fn locate_says_the_lab_needs_root_as_nobody() {
    let test = "lab::locate_says_the_lab_needs_root_as_nobody";
    support::skip_if!(test, support::nobody_unavailable());
    support::skip_if!(test, support::netns_unavailable());
    let run = Netsh::nobody_in_netns(&[]).arg("locate").ok();
    let out = run.stdout();
    let section = out
        .split("5. A lab of our own")
        .nth(1)
        .unwrap_or_else(|| panic!("no lab section\n{}", run.explain()));
    let lines: Vec<&str> = section.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "   building a lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN, to make network namespaces): run netsh as root, e.g. `sudo netsh locate`"
        ],
        "{}",
        run.explain()
    );
}

/// Not root, `lab_network()` fails at once with kind `permission`.
#[test]
fn not_root_is_a_permission_error() {
    let test = "lab::not_root_is_a_permission_error";
    support::skip_if!(test, support::nobody_unavailable());
    let run = Netsh::nobody()
        .args([
            "-e",
            r#"try { lab_network() } catch (e) { print(`${e.kind}: ${e}`) }"#,
        ])
        .ok();
    assert!(
        run.stdout()
            .starts_with("permission: lab_network: building a lab needs root"),
        "{}",
        run.explain()
    );
}

/// An event handler may not build a lab (it would stall its server while
/// the namespaces are made): refused before anything is built, root or not.
#[test]
fn an_event_handler_may_not_build_a_lab() {
    let out = Netsh::eval(
        r#"let errors = channel();
           let s = serve("127.0.0.1:0", #{on_line: |c, line| {
               try { lab_network(#{routers: 1}) } catch (e) { errors.send(`${e.kind}: ${e}`) }
               c.send_line("done")
           }, quiet: true});
           let c = connect(s.addr); c.send_line("x"); print(c.recv_line());
           print(errors.recv(5000));"#,
    );
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"done"), "{out}");
    assert!(
        lines.get(1).is_some_and(
            |l| l.starts_with("invalid: lab_network: cannot wait inside an event handler")
        ),
        "{out}"
    );
}

/// Options are checked before anything is built (and before privilege):
/// an unknown one, the wrong type, routers outside 1–8.
#[test]
fn bad_options_fail_before_anything_is_built() {
    for (call, expected) in [
        (
            "lab_network(#{rooters: 2})",
            "lab_network: unknown option 'rooters' (known: routers)",
        ),
        (
            "lab_network(#{routers: 0})",
            "lab_network: option 'routers': expected a whole number from 1 to 8, not 0",
        ),
        (
            "lab_network(#{routers: 9})",
            "lab_network: option 'routers': expected a whole number from 1 to 8, not 9",
        ),
        (
            r#"lab_network(#{routers: "2"})"#,
            "lab_network: option 'routers': expected a whole number from 1 to 8, not a string",
        ),
        (
            "lab_network(3)",
            "lab_network: expected a map of options like #{routers: 3}, not a number",
        ),
    ] {
        let err = Netsh::eval_err(call);
        assert!(err.contains(expected), "{call}: {err}");
    }
}

/// A lab's probe in an `http_serve` handler hands the worker's other
/// connections on while it waits, as `sleep` does: four pinging handlers
/// on two workers are all inside at once (without it, two workers held by
/// two pings kept the other requests out until a ping ended).
#[test]
fn probes_in_http_handlers_do_not_hold_their_worker() {
    let test = "lab::probes_in_http_handlers_do_not_hold_their_worker";
    if !root(test) {
        return;
    }
    let _turn = one_lab_at_a_time();
    let mut server = Peer::netsh(
        r#"
        let lab = lab_network(#{routers: 1});
        let inside = share(0);
        let s = http_serve("127.0.0.1:0", |req| {
            inside.add(1);
            lab.ping(#{count: 3, interval: 300, live: false});
            `${inside.get()}`
        }, #{quiet: true, workers: 2});
        print(s.port);
        s.wait()
        "#,
    );
    let port = server.port();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let out = Command::new("curl")
                    .args([
                        "-s",
                        "--max-time",
                        "20",
                        &format!("http://127.0.0.1:{port}/"),
                    ])
                    .output()
                    .expect("curl runs");
                String::from_utf8_lossy(&out.stdout).to_string()
            })
        })
        .collect();
    for client in clients {
        let seen = client.join().unwrap();
        assert_eq!(
            seen,
            "4",
            "a handler saw only {seen} inside: {}",
            server.output()
        );
    }
}
