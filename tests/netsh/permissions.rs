//! Permissions (issue 22): with `--sandbox` or any `--allow-*` flag, every
//! function that sends, accepts, reads, writes, reads the environment or
//! captures asks `permit` first, and a refusal (kind `permission`) leaves
//! nothing behind: listeners and folders here prove nothing was sent or
//! created. Grants by host, block, range and name; redirects; symlinks and
//! `..`; plugins held to their statements; the prompt in a real terminal.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::ErrorKind,
    net::{TcpListener, UdpSocket},
    path::Path,
    time::Duration,
};

use crate::support::{self, Netsh, http::HttpServer};

/// The functions that need no permission, each with the reason it was
/// let through. A new function that is in neither this list nor
/// [`checked_calls`] fails [`every_function_is_checked_or_reviewed`]: it
/// must be classified, and if it touches the network or the disk, checked.
const REVIEWED: &[(&str, &str)] = &[
    // Local facts, no packet and no file named by the script.
    ("hostname", "reads the kernel's host name"),
    ("interfaces", "lists this machine's interfaces (netlink)"),
    (
        "local_ip",
        "a UDP socket connected without sending: no packet",
    ),
    ("ip_info", "computes on an address"),
    (
        "port_info",
        "the services database, like getaddrinfo's /etc/hosts",
    ),
    ("service_port", "the services database"),
    // Methods and properties of a handle: it was checked when it was made
    // (connect, listen, serve, udp_bind, serve_files, fetch, task…).
    ("accept", "on a listener that was checked when bound"),
    ("close", "closes a handle"),
    ("info", "TCP_INFO of a checked connection"),
    ("interact", "a checked connection joined to the terminal"),
    ("read", "reads a checked connection"),
    ("read_all", "reads a checked connection"),
    ("recv", "reads a checked connection, socket or channel"),
    ("recv_blob", "reads a checked socket"),
    ("recv_line", "reads a checked connection"),
    ("recv_until", "reads a checked connection"),
    ("send", "writes to a checked connection or channel"),
    ("send_line", "writes to a checked connection"),
    ("set_timeout", "a setting of a handle"),
    ("shutdown", "half-closes a checked connection"),
    ("tls_info", "about a checked connection"),
    ("close_code", "about a checked WebSocket"),
    ("close_reason", "about a checked WebSocket"),
    ("protocol", "about a checked WebSocket"),
    ("url", "about a checked WebSocket"),
    ("stop", "stops a job"),
    (
        "relay",
        "joins two connections, each checked when it was made",
    ),
    ("stats", "a job's counters"),
    ("wait", "waits for jobs"),
    ("join", "waits for a task"),
    ("jobs", "lists jobs"),
    ("stop_all", "stops jobs"),
    ("to_string", "prints a value"),
    ("to_map", "an HTTP request's fields as a map"),
    ("to_debug", "prints a value"),
    // Running code: what the closure does is checked where it does it,
    // with the permissions of the code that made it.
    ("task", "runs a closure, whose calls are checked"),
    ("share", "a shared value"),
    ("channel", "a channel between tasks"),
    ("get", "a shared value"),
    ("set", "a shared value"),
    ("add", "a shared value"),
    ("update", "a shared value"),
    // Computation.
    ("sleep", "waits"),
    ("now", "the clock"),
    ("sha256", "computes"),
    ("parse_json", "computes"),
    ("to_json", "computes"),
    ("hex", "computes"),
    ("from_hex", "computes"),
    ("base64", "computes"),
    ("from_base64", "computes"),
    // The shell.
    ("help", "reads netsh's own docs"),
    ("plugins", "lists the plugins found at start"),
    ("permissions", "what the session holds"),
    ("exit", "ends the script"),
    ("assert", "a check"),
    ("expect_eq", "a check"),
    ("show", "prints a value"),
    // Operators and string functions netsh adds for its own values.
    ("==", "compares values"),
    ("!=", "compares values"),
    ("contains", "computes on a value"),
    ("ends_with", "computes on a value"),
    ("starts_with", "computes on a value"),
    ("index_of", "computes on a value"),
    ("is_empty", "computes on a value"),
    ("len", "computes on a value"),
    ("split", "computes on a value"),
    ("sub_string", "computes on a value"),
    ("to_lower", "computes on a value"),
    ("to_upper", "computes on a value"),
];

/// For each function that must refuse under `--sandbox`: extra flags (a
/// listener it needs made first), and a call. `{P}` is a TCP listener's
/// port, `{U}` a UDP socket's, `{D}` a folder holding `src.txt`, `{H}`
/// an HTTP server's port.
fn checked_calls() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("resolve", "", r#"resolve("localhost")"#),
        ("reverse", "", r#"reverse("127.0.0.1")"#),
        ("scan", "", r#"scan("127.0.0.1", [{P}])"#),
        ("sockets", "", "sockets()"),
        ("capture", "", "capture(#{port: {P}}, || 1)"),
        ("lab_network", "", "lab_network()"),
        ("lab_network", "--allow-net=127.0.0.1:{P}", "lab_network()"),
        ("connect", "", r#"connect("127.0.0.1:{P}")"#),
        ("listen", "", r#"listen("127.0.0.1:0")"#),
        ("serve", "", r#"serve("127.0.0.1:0", |c| c.send("x"))"#),
        ("udp_bind", "", r#"udp_bind("127.0.0.1:0")"#),
        ("udp_send", "", r#"udp_send("127.0.0.1:{U}", "x")"#),
        (
            "send_file",
            "",
            r#"send_file("127.0.0.1:{P}", "{D}/src.txt")"#,
        ),
        (
            "send_file",
            "--allow-read={D}",
            r#"send_file("127.0.0.1:{P}", "{D}/src.txt")"#,
        ),
        (
            "recv_file",
            "--allow-net=127.0.0.1:0",
            r#"recv_file(listen("127.0.0.1:0"), "{D}/in")"#,
        ),
        (
            "serve_files",
            "--allow-net=127.0.0.1:0",
            r#"serve_files("127.0.0.1:0", "{D}/in")"#,
        ),
        (
            "send_to",
            "--allow-net=127.0.0.1:0",
            r#"udp_bind("127.0.0.1:0").send_to("127.0.0.1:{U}", "x")"#,
        ),
        ("fetch", "", r#"fetch("http://127.0.0.1:{H}/a")"#),
        ("ws_connect", "", r#"ws_connect("ws://127.0.0.1:{P}/")"#),
        (
            "ws_connect",
            "--allow-net=127.0.0.1:{P}",
            r#"ws_connect("ws://127.0.0.1:9/", #{proxy: "socks5://127.0.0.1:{P}"})"#,
        ),
        (
            "fetch",
            "--allow-net=127.0.0.1:{H}",
            r#"fetch("http://127.0.0.1:{H}/a", "{D}/got")"#,
        ),
        ("env", "", r#"env("HOME")"#),
        ("file_info", "", r#"file_info("{D}/src.txt")"#),
        ("read_file", "", r#"read_file("{D}/src.txt")"#),
        ("read_blob", "", r#"read_blob("{D}/src.txt")"#),
        ("write_file", "", r#"write_file("{D}/new.txt", "x")"#),
        ("make_dir", "", r#"make_dir("{D}/in")"#),
        ("remove", "", r#"remove("{D}/src.txt")"#),
        ("temp_dir", "", "temp_dir()"),
        ("record", "", r#"record("{D}/rec.rhai")"#),
        // Relays and proxies: the address bound, and where they lead.
        ("forward", "", r#"forward("127.0.0.1:0", "127.0.0.1:{P}")"#),
        (
            "forward",
            "--allow-net=127.0.0.1:0",
            r#"forward("127.0.0.1:0", "127.0.0.1:{P}")"#,
        ),
        (
            "forward",
            "--allow-net=127.0.0.1:0",
            r#"forward("127.0.0.1:0", "127.0.0.1:{U}", #{udp: true})"#,
        ),
        (
            "forward",
            "--allow-net=127.0.0.1:0",
            r#"forward("127.0.0.1:0", "unix:{D}/sock")"#,
        ),
        ("socks_serve", "", r#"socks_serve("127.0.0.1:0")"#),
        ("http_serve", "", r#"http_serve("127.0.0.1:0", |req| "x")"#),
        (
            "http_serve",
            "--allow-net=127.0.0.1:0",
            r#"http_serve("127.0.0.1:0", "{D}")"#,
        ),
        (
            "connect",
            "--allow-net=127.0.0.1:9",
            r#"connect("127.0.0.1:9", #{proxy: "socks5://127.0.0.1:{P}"})"#,
        ),
        (
            "connect",
            "--allow-net=127.0.0.1:{P}",
            r#"connect("127.0.0.1:9", #{proxy: "socks5h://127.0.0.1:{P}"})"#,
        ),
        (
            "connect",
            "--allow-net=127.0.0.1:{P}",
            r#"connect("nowhere.test:9", #{proxy: "http://127.0.0.1:{P}"})"#,
        ),
        (
            "fetch",
            "--allow-net=127.0.0.1:{H}",
            r#"fetch("http://127.0.0.1:{H}/a", #{proxy: "socks5://127.0.0.1:{P}"})"#,
        ),
        // Locating a host: the DNS server asked, the host pinged or traced.
        (
            "dns",
            "",
            r#"dns("x.test", "A", #{server: "127.0.0.1:{U}"})"#,
        ),
        (
            "dns_many",
            "",
            r#"dns_many(["x.test"], "A", #{server: "127.0.0.1:{U}"})"#,
        ),
        (
            "dns_serve",
            "",
            r#"dns_serve("127.0.0.1:0", #{"a.test": "127.0.0.1"})"#,
        ),
        ("dns_serve", "", r#"dns_serve(0, |q| "127.0.0.1")"#),
        ("ping", "", r#"ping("127.0.0.1", #{count: 1})"#),
        (
            "ping",
            "--allow-net=127.0.0.2",
            r#"ping("localhost", #{count: 1})"#,
        ),
        (
            "traceroute",
            "",
            r#"traceroute("127.0.0.1", #{max_hops: 1})"#,
        ),
    ]
}

/// The names of every function netsh registers (its own, not Rhai's
/// standard library, not plugins'), read from the engine's metadata.
fn registered_names() -> BTreeSet<String> {
    let shell = netsh::shell::Shell::new(netsh::shell::Setup::for_code(""));
    let standard: BTreeSet<String> = rhai::Engine::new()
        .gen_fn_signatures(true)
        .into_iter()
        .collect();
    shell
        .engine
        .gen_fn_signatures(true)
        .into_iter()
        .filter(|s| !standard.contains(s))
        .filter_map(|s| s.split('(').next().map(str::to_string))
        .filter(|n| !n.contains("::"))
        .map(|n| {
            // Properties: `get$addr` is the `.addr` of a handle.
            if n.starts_with("get$") || n.starts_with("set$") {
                "property".to_string()
            } else {
                n
            }
        })
        .collect()
}

/// Every registered function is either checked (and refuses under
/// `--sandbox`, below) or on the reviewed list with its reason.
#[test]
fn every_function_is_checked_or_reviewed() {
    let checked: BTreeSet<&str> = checked_calls().iter().map(|c| c.0).collect();
    let reviewed: BTreeSet<&str> = REVIEWED.iter().map(|r| r.0).collect();
    let unclassified: Vec<String> = registered_names()
        .into_iter()
        .filter(|n| n != "property")
        .filter(|n| !checked.contains(n.as_str()) && !reviewed.contains(n.as_str()))
        .filter(|n| !is_error_accessor(n))
        .collect();
    assert!(
        unclassified.is_empty(),
        "functions neither checked for permission nor reviewed (add a call to checked_calls, \
         or a reason to REVIEWED): {unclassified:?}"
    );
}

/// The functions of a caught error (`e.kind`…) and the "wrong type"
/// catchers are about values, not I/O.
fn is_error_accessor(name: &str) -> bool {
    matches!(name, "kind" | "op" | "message")
}

/// Every checked function refuses under `--sandbox` with kind
/// `permission`, and nothing reaches a listener, a UDP socket, an HTTP
/// server or the folder.
#[test]
fn every_checked_function_refuses_under_the_sandbox_and_leaves_no_trace() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let http = HttpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    std::fs::write(d.join("src.txt"), "secret").unwrap();
    let before = listing(&d);
    let fill = |text: &str| {
        text.replace("{P}", &tcp.local_addr().unwrap().port().to_string())
            .replace("{U}", &udp.local_addr().unwrap().port().to_string())
            .replace("{H}", &http.addr.port().to_string())
            .replace("{D}", &d.display().to_string())
    };
    // One run per set of flags: each call in a try, printing its kind.
    let mut runs: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (name, flags, call) in checked_calls() {
        runs.entry(flags).or_default().push((name, call));
    }
    for (flags, calls) in runs {
        let code: String = calls
            .iter()
            .map(|(name, call)| {
                format!(
                    "let f = || {{ try {{ {}; }} catch (e) {{ return `${{e.kind}} ${{e}}` }} \"allowed\" }}; print(`{name}: ${{f.call()}}`);\n",
                    fill(call)
                )
            })
            .collect();
        let mut netsh = Netsh::new().arg("--sandbox");
        if !flags.is_empty() {
            netsh = netsh.arg(fill(flags));
        }
        let run = netsh.arg("-e").arg(&code).ok();
        let out = run.stdout();
        for (name, _) in &calls {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("{name} printed nothing\n{}", run.explain()));
            assert!(
                line.starts_with(&format!("{name}: permission {name}: "))
                    && line.contains(": permission denied: "),
                "under --sandbox {flags}: {line}\n{}",
                run.explain()
            );
        }
    }
    match tcp.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the TCP listener was reached: {other:?}"),
    }
    let mut buf = [0u8; 64];
    match udp.recv_from(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("a datagram arrived: {other:?}"),
    }
    assert!(
        http.seen().is_empty(),
        "the HTTP server was asked: {:?}",
        http.seen().len()
    );
    assert_eq!(listing(&d), before, "the folder changed");
    assert_eq!(
        std::fs::read_to_string(d.join("src.txt")).unwrap(),
        "secret"
    );
}

/// The names under `dir`, recursively.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(entry.path().display().to_string());
        if entry.path().is_dir() {
            out.extend(listing(&entry.path()));
        }
    }
    out.sort();
    out
}

/// What `code` throws under `flags`, as `KIND | MESSAGE`, or `allowed`.
fn under(flags: &[&str], code: &str) -> String {
    let wrapped = format!(
        r#"let f = || {{ try {{ {code}; }} catch (e) {{ return `${{e.kind}} | ${{e}}` }} "allowed" }}; f.call()"#
    );
    Netsh::new()
        .args(flags)
        .arg("-e")
        .arg(wrapped)
        .ok()
        .stdout()
}

/// The refusal says what was refused and the flag that allows it, in the
/// issue's words, and the process fails with it when uncaught.
#[test]
fn a_refusal_names_what_and_the_flag_that_allows_it() {
    let closed = support::closed_port();
    let run = Netsh::new()
        .args([
            "--sandbox",
            "-e",
            &format!(r#"connect("127.0.0.1:{closed}")"#),
        ])
        .output();
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "connect: permission denied: 127.0.0.1:{closed} is not in --allow-net (run with --allow-net=127.0.0.1:{closed} to allow it)"
        )),
        "{}",
        run.explain()
    );
    // Without any flag, nothing is enforced: the same call is refused by
    // the port, not by netsh.
    assert!(under(&[], &format!(r#"connect("127.0.0.1:{closed}")"#)).starts_with("refused | "));
}

/// Grants by address and port, port range, CIDR block and name: what is
/// inside connects, what is outside is refused before anything is sent.
#[test]
fn grants_by_host_range_block_and_name() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let other = support::closed_port();
    let connect = |host: &str, p: u16| format!(r#"connect("{host}:{p}").close()"#);
    for grant in [
        format!("--allow-net=127.0.0.1:{port}"),
        format!("--allow-net=127.0.0.1:{}-{}", port.saturating_sub(1), port),
        "--allow-net=127.0.0.0/8".to_string(),
        format!("--allow-net=localhost:{port}"),
        "--allow-net".to_string(),
    ] {
        assert_eq!(
            under(&[&grant], &connect("127.0.0.1", port)),
            "allowed",
            "{grant}"
        );
        assert_eq!(
            under(&[&grant], &connect("localhost", port)),
            "allowed",
            "{grant}"
        );
    }
    for (grant, host, p) in [
        (format!("--allow-net=127.0.0.1:{port}"), "127.0.0.1", other),
        (
            format!(
                "--allow-net=127.0.0.1:{}-{}",
                port.saturating_sub(2),
                port.saturating_sub(1)
            ),
            "127.0.0.1",
            port,
        ),
        ("--allow-net=10.0.0.0/8".to_string(), "127.0.0.1", port),
        (format!("--allow-net=[::1]:{port}"), "127.0.0.1", port),
        ("--allow-net=localhost".to_string(), "127.0.0.2", port),
    ] {
        let out = under(&[&grant], &connect(host, p));
        assert!(
            out.starts_with(&format!(
                "permission | connect: permission denied: {host}:{p} is not in --allow-net"
            )),
            "{grant} {host}:{p}: {out}"
        );
    }
    // A name that resolves outside the grant: localhost is 127.0.0.1 here,
    // not 127.0.0.2, whatever it is spelled.
    let out = under(&["--allow-net=127.0.0.2"], &connect("localhost", port));
    assert!(out.starts_with("permission | "), "{out}");
    // A bad grant is a usage error, not a wider one.
    for bad in [
        "--allow-net=127.1",
        "--allow-net=host:70000",
        "--allow-net=10.0.0.0/40",
    ] {
        Netsh::new().args([bad, "-e", "1"]).output().expect_code(2);
    }
    listener.set_nonblocking(true).unwrap();
    let mut reached = 0;
    while listener.accept().is_ok() {
        reached += 1;
    }
    assert_eq!(reached, 10, "only the granted connects arrive");
}

/// A redirect that leaves the grant is refused at that hop, and the
/// server it pointed to sees nothing.
#[test]
fn a_redirect_out_of_the_grant_is_refused() {
    let origin = HttpServer::start();
    let target = HttpServer::start();
    let hop = format!("http://127.0.0.1:{}/a", target.addr.port());
    let grant = format!("--allow-net=127.0.0.1:{}", origin.addr.port());
    let out = under(
        &[&grant],
        &format!(r#"fetch("{}")"#, origin.url(&format!("to?url={hop}"))),
    );
    assert!(
        out.starts_with("permission | fetch: ")
            && out.contains(&format!(
                "permission denied: 127.0.0.1:{} is not in --allow-net",
                target.addr.port()
            )),
        "{out}"
    );
    assert!(target.seen().is_empty(), "the redirect target was reached");
    assert!(!origin.seen().is_empty(), "the granted origin was asked");
    // By name: granted by its name, or by the address it resolves to;
    // refused when that address is outside the grant.
    let by_name = format!(r#"fetch("http://localhost:{}/a")"#, origin.addr.port());
    for grant in [
        format!("--allow-net=localhost:{}", origin.addr.port()),
        format!("--allow-net=127.0.0.1:{}", origin.addr.port()),
    ] {
        assert_eq!(under(&[&grant], &by_name), "allowed", "{grant}");
    }
    let out = under(
        &[&format!("--allow-net=127.0.0.2:{}", origin.addr.port())],
        &by_name,
    );
    assert!(out.starts_with("permission | fetch: "), "{out}");
}

/// Paths are checked where they lead: a symlink out of an allowed folder
/// and a `..` out of it are refused; a relative path is the starting
/// folder's.
#[test]
fn paths_are_checked_where_they_lead() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let allowed = root.join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::write(root.join("secret.txt"), "secret").unwrap();
    std::fs::write(allowed.join("ok.txt"), "ok").unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), allowed.join("link.txt")).unwrap();
    let grant = format!("--allow-read={}", allowed.display());
    let read = |p: &str| under(&[&grant], &format!(r#"read_file("{p}")"#));
    assert_eq!(read(&format!("{}/ok.txt", allowed.display())), "allowed");
    for escape in [
        format!("{}/link.txt", allowed.display()),
        format!("{}/../secret.txt", allowed.display()),
        format!("{}/./x/../../secret.txt", allowed.display()),
    ] {
        let out = read(&escape);
        assert!(
            out.starts_with(&format!(
                "permission | read_file: permission denied: {} is not in --allow-read",
                root.join("secret.txt").display()
            )),
            "{escape}: {out}"
        );
    }
    // Relative: `--allow-read=allowed` and `allowed/ok.txt`, from the root.
    let run = Netsh::new()
        .current_dir(&root)
        .args([
            "--allow-read=allowed",
            "-e",
            r#"read_file("allowed/ok.txt") + read_file("./allowed/../allowed/ok.txt")"#,
        ])
        .ok();
    assert_eq!(run.stdout(), "okok");
    let run = Netsh::new()
        .current_dir(&root)
        .args(["--allow-read=allowed", "-e", r#"read_file("secret.txt")"#])
        .output();
    run.expect_code(1);
    // Writes: a file created in an allowed folder, none outside it.
    let grant = format!("--allow-write={}", allowed.display());
    assert_eq!(
        under(
            &[&grant],
            &format!(r#"write_file("{}/new.txt", "x")"#, allowed.display())
        ),
        "allowed"
    );
    let out = under(
        &[&grant],
        &format!(r#"write_file("{}/new.txt", "x")"#, root.display()),
    );
    assert!(out.starts_with("permission | write_file: "), "{out}");
    assert!(!root.join("new.txt").exists());
}

/// `--allow-env` names the variables a script may read.
#[test]
fn environment_variables_are_granted_by_name() {
    let run = Netsh::new()
        .env("PERMIT_TEST_A", "a")
        .env("PERMIT_TEST_B", "b")
        .args(["--allow-env=PERMIT_TEST_A", "-e", r#"let f = || { try { env("PERMIT_TEST_B"); } catch (e) { return e.kind } "allowed" }; env("PERMIT_TEST_A") + " " + f.call()"#])
        .ok();
    assert_eq!(run.stdout(), "a permission");
}

/// A plugin is held to its `//! permissions:` statement: stating less
/// than the script holds, it gets less (its tasks too); stating more, it
/// gets no more than the session.
#[test]
fn plugins_are_held_to_their_statements() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("narrow.rhai"),
        format!(
            "//! A plugin that only needs one port.\n//! permissions: net=127.0.0.1:{pa}\n\
             fn reach(addr) {{ connect(addr).close(); \"reached\" }}\n\
             fn later(addr) {{ task(|| {{ connect(addr).close(); \"reached\" }}).join() }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("wide.rhai"),
        "//! permissions: net\nfn reach(addr) { connect(addr).close(); \"reached\" }\n",
    )
    .unwrap();
    let plugins = dir.path().display().to_string();
    let call = |grant: &str, code: &str| {
        let wrapped = format!(
            r#"let f = || {{ try {{ return {code}; }} catch (e) {{ return `${{e.kind}} | ${{e}}` }} }}; f.call()"#
        );
        Netsh::new()
            .args(["--plugins", &plugins, grant, "-e", &wrapped])
            .ok()
            .stdout()
    };
    let script_grant = "--allow-net=127.0.0.1";
    assert_eq!(
        call(script_grant, &format!(r#"narrow::reach("127.0.0.1:{pa}")"#)),
        "reached"
    );
    let out = call(script_grant, &format!(r#"narrow::reach("127.0.0.1:{pb}")"#));
    assert!(
        out.starts_with("permission | ") && out.contains("plugin narrow may not use 127.0.0.1:"),
        "{out}"
    );
    // Its task keeps its permissions on the task's thread.
    let out = call(script_grant, &format!(r#"narrow::later("127.0.0.1:{pb}")"#));
    assert!(out.contains("plugin narrow may not use"), "{out}");
    assert_eq!(
        call(script_grant, &format!(r#"narrow::later("127.0.0.1:{pa}")"#)),
        "reached"
    );
    // The script itself holds the whole of 127.0.0.1.
    assert_eq!(
        call(
            script_grant,
            &format!(r#"{{ connect("127.0.0.1:{pb}").close(); "reached" }}"#)
        ),
        "reached"
    );
    // A plugin that states more gets only the session's.
    let session = format!("--allow-net=127.0.0.1:{pa}");
    assert_eq!(
        call(&session, &format!(r#"wide::reach("127.0.0.1:{pa}")"#)),
        "reached"
    );
    let out = call(&session, &format!(r#"wide::reach("127.0.0.1:{pb}")"#));
    assert!(
        out.starts_with(&format!(
            "permission | connect: permission denied: 127.0.0.1:{pb} is not in --allow-net"
        )),
        "{out}"
    );
    // plugins() shows what each states.
    let shown = Netsh::new()
        .args([
            "--plugins",
            &plugins,
            "-e",
            r#"plugins().filter(|p| p.name == "narrow")[0].permissions"#,
        ])
        .ok()
        .stdout();
    assert_eq!(shown, format!("net=127.0.0.1:{pa}"));
    // Without a flag, nothing is enforced, plugins included.
    let out = Netsh::new()
        .args([
            "--plugins",
            &plugins,
            "-e",
            &format!(r#"narrow::reach("127.0.0.1:{pb}")"#),
        ])
        .ok()
        .stdout();
    assert_eq!(out, "reached");
}

/// Every bundled scenario and plugin states its permissions, `--show`
/// prints them, and `--sandbox NAME` runs a scenario with exactly those.
#[test]
fn scenarios_state_their_permissions_and_run_with_them() {
    let bundled = netsh::shell::bundled::scripts()
        .into_iter()
        .chain(netsh::shell::bundled::plugins());
    let mut count = 0;
    for b in bundled {
        let name = b.name;
        count += 1;
        // Each statement reads (a typo would leave a plugin with nothing).
        assert!(
            netsh::shell::permissions::grant_of(b.text).is_ok()
                && netsh::shell::permissions::stated(b.text).is_some(),
            "{name} states no readable permissions"
        );
        let run = Netsh::new().args(["--show", name]).ok();
        assert!(
            run.stderr()
                .contains(&format!("netsh: {name} states its permissions: ")),
            "{}",
            run.explain()
        );
    }
    assert!(count >= 11, "only {count} bundled files found");
    let run = Netsh::new().args(["--sandbox", "tcp_chat"]).ok();
    assert!(
        run.stderr().contains(
            "netsh:scripts/tcp_chat.rhai states its permissions: net=127.0.0.1; --sandbox grants exactly those"
        ) && run.stdout().contains("server: got"),
        "{}",
        run.explain()
    );
    // A permission flag after the scenario's name would be its argument,
    // and it would run unsandboxed: refused instead.
    let run = Netsh::new().args(["tcp_chat", "--sandbox"]).output();
    run.expect_code(2);
    assert!(
        run.stderr()
            .contains("put it before: netsh --sandbox tcp_chat"),
        "{}",
        run.explain()
    );
    // Its statement is all it gets: the client mode to another address is refused.
    let run = Netsh::new()
        .args(["--sandbox", "tcp_chat", "client", "127.0.0.2:9"])
        .output();
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains("permission denied: 127.0.0.2:9 is not in --allow-net"),
        "{}",
        run.explain()
    );
}

/// `permissions()` says what the session holds.
#[test]
fn permissions_reports_the_session() {
    assert_eq!(Netsh::eval("permissions().enforced"), "false");
    let run = Netsh::new()
        .args([
            "--allow-net=127.0.0.1:80,10.0.0.0/8",
            "--allow-env=HOME",
            "-e",
            "let p = permissions(); `${p.net} ${p.env} ${p.read} ${p.capture}`",
        ])
        .ok();
    assert_eq!(
        run.stdout(),
        r#"["127.0.0.1:80", "10.0.0.0/8"] ["HOME"] [] false"#
    );
}

/// On a terminal netsh asks; `y` allows once, `a` always, anything else
/// refuses; `--no-prompt` refuses without asking.
#[test]
fn the_prompt_asks_once_always_or_no() {
    use expectrl::Expect;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    let question = format!(
        "netsh: the script wants to connect to 127.0.0.1:{port}. Allow? [y]es once / [a]lways / [N]o"
    );
    let mut pty = support::repl_in(home.path(), &["--sandbox"]);
    let line = format!(r#"connect("127.0.0.1:{port}").close(); "done""#);
    for answer in ["y", "a"] {
        pty.send_line(&line).unwrap();
        pty.expect(question.as_str())
            .unwrap_or_else(|e| panic!("no question ({e}): {}", support::shown(&mut pty)));
        pty.send_line(answer).unwrap();
        support::expect_value(&mut pty, "done");
        pty.expect("netsh> ").unwrap();
    }
    // After "always", no question.
    support::enter_value(&mut pty, &line, "done");
    let other = format!(r#"connect("127.0.0.1:{}")"#, support::closed_port());
    pty.send_line(&other).unwrap();
    pty.expect("Allow? [y]es once / [a]lways / [N]o").unwrap();
    pty.send_line("").unwrap();
    pty.expect("permission denied").unwrap();
    pty.expect("netsh> ").unwrap();
    // A task is refused without a question: it would fight the prompt.
    let in_task = format!(
        r#"task(|| {{ try {{ connect("127.0.0.1:{}"); }} catch (e) {{ return e.kind }} "reached" }}).join()"#,
        support::closed_port()
    );
    support::enter_value(&mut pty, &in_task, "permission");
    drop(pty);

    let mut pty = support::repl_in(home.path(), &["--sandbox", "--no-prompt"]);
    pty.send_line(&line).unwrap();
    pty.expect(
        format!("connect: permission denied: 127.0.0.1:{port} is not in --allow-net").as_str(),
    )
    .unwrap_or_else(|e| panic!("no refusal ({e}): {}", support::shown(&mut pty)));
    pty.expect("netsh> ").unwrap();
    assert!(!support::shown(&mut pty).contains("Allow?"));
    listener.set_nonblocking(true).unwrap();
    let mut reached = 0;
    while listener.accept().is_ok() {
        reached += 1;
    }
    assert_eq!(reached, 3, "once, always, and the call after always");
    let _ = Duration::ZERO;
}

/// Rhai's own `import` reads a file too: it is held to `--allow-read`.
/// And `--allow-net=` with nothing after it grants nothing, not everything.
#[test]
fn imports_are_reads_and_an_empty_grant_is_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.rhai"), r#"fn hi() { "hi" }"#).unwrap();
    let code = r#"import "m" as m; m::hi()"#;
    let run = Netsh::new()
        .current_dir(dir.path())
        .args(["--sandbox", "-e", code])
        .output();
    run.expect_code(1);
    assert!(
        run.stderr().contains("import: permission denied: "),
        "{}",
        run.explain()
    );
    let real = dir.path().canonicalize().unwrap();
    let grant = format!("--allow-read={}", real.display());
    let run = Netsh::new()
        .current_dir(dir.path())
        .args([grant.as_str(), "-e", code])
        .ok();
    assert_eq!(run.stdout(), "hi");
    let net = |flag: &str| {
        Netsh::new()
            .args([flag, "-e", "permissions().net"])
            .ok()
            .stdout()
    };
    assert_eq!(net("--allow-net="), "[]");
    assert_eq!(net("--allow-net"), "all");
}

/// `capture` needs `--allow-capture` besides the port in `--allow-net`,
/// and its `pcap` file is a write: each refused before a socket is opened
/// (so this runs without CAP_NET_RAW too).
#[test]
fn capture_needs_its_own_flag_and_its_pcap_a_write() {
    let out = under(
        &["--allow-net=127.0.0.1"],
        "capture(#{port: 9, count: 1, timeout: 1})",
    );
    assert_eq!(
        out,
        "permission | capture: permission denied: capturing packets needs --allow-capture (run with --allow-capture to allow it)"
    );
    let out = under(
        &["--allow-capture", "--allow-net=127.0.0.1:80"],
        "capture(#{port: 9, count: 1, timeout: 1})",
    );
    assert!(
        out.starts_with(
            "permission | capture: permission denied: 0.0.0.0/0:9 is not in --allow-net"
        ),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("x.pcap");
    let out = under(
        &["--allow-capture", "--allow-net=127.0.0.1"],
        &format!(
            r#"capture(#{{port: 9, count: 1, timeout: 1, pcap: "{}"}})"#,
            pcap.display()
        ),
    );
    assert!(
        out.starts_with("permission | capture: permission denied: "),
        "{out}"
    );
    assert!(out.contains("--allow-write"), "{out}");
    assert!(!pcap.exists());
}

/// A server a plugin starts keeps the plugin's permissions in its
/// handler, on the server's own threads.
#[test]
fn a_plugins_server_handler_keeps_its_permissions() {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("relay.rhai"),
        "//! permissions: net=127.0.0.1:0\n\
         fn start(to) { serve(\"127.0.0.1:0\", |c| { try { connect(to); c.send_line(\"reached\"); } catch (e) { c.send_line(e.kind); } }, #{quiet: true}) }\n",
    )
    .unwrap();
    let code = format!(
        r#"let s = relay::start("127.0.0.1:{port}"); let c = connect(`127.0.0.1:${{s.port}}`); c.recv_line()"#
    );
    let run = Netsh::new()
        .args([
            "--plugins",
            &dir.path().display().to_string(),
            "--allow-net=127.0.0.1",
            "-e",
            &code,
        ])
        .ok();
    assert_eq!(run.stdout(), "permission", "{}", run.explain());
    target.set_nonblocking(true).unwrap();
    assert!(target.accept().is_err(), "the handler reached the target");
}

/// A name is judged by where it leads, in a mount namespace whose
/// /etc/hosts says `localhost` is 127.0.0.1 and ::1 (as Debian's does) and
/// `other.test` is 127.0.0.3: `--allow-net=localhost` does not let
/// `other.test` through, and `--allow-net=127.0.0.1:P` reaches `localhost`
/// at 127.0.0.1 only, for a connect and a fetch alike.
#[test]
fn names_are_judged_by_the_addresses_they_resolve_to() {
    if !support::is_root() {
        support::skip(
            "names_are_judged_by_the_addresses_they_resolve_to",
            "a private /etc/hosts needs a mount namespace (root)",
        );
        return;
    }
    let http = HttpServer::start();
    let port = http.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n::1 localhost\n127.0.0.3 other.test\n",
    )
    .unwrap();
    let run = |grant: &str, code: &str| {
        let wrapped = format!(
            r#"let f = || {{ try {{ return {code}; }} catch (e) {{ return `${{e.kind}} | ${{e}}` }} }}; f.call()"#
        );
        Netsh::with_hosts(&hosts)
            .args([grant, "-e", &wrapped])
            .ok()
            .stdout()
    };
    let out = run(
        "--allow-net=localhost",
        &format!(r#"connect("other.test:{port}")"#),
    );
    assert!(
        out.starts_with(&format!(
            "permission | connect: permission denied: 127.0.0.3:{port} is not in --allow-net"
        )),
        "{out}"
    );
    let grant = format!("--allow-net=127.0.0.1:{port}");
    assert_eq!(
        run(&grant, &format!(r#"connect("localhost:{port}").peer"#)),
        format!("127.0.0.1:{port}")
    );
    assert_eq!(
        run(
            &grant,
            &format!(r#"fetch("http://localhost:{port}/a").url"#)
        ),
        format!("http://localhost:{port}/a")
    );
    let out = run(
        &grant,
        &format!(r#"fetch("http://other.test:{port}/a").url"#),
    );
    assert!(out.starts_with("permission | fetch: "), "{out}");
}

/// `remove` takes a link away, not what it leads to: a link outside the
/// write grant that leads into it is outside the grant, and one inside the
/// grant that leads out is inside it.
#[test]
fn remove_is_checked_on_the_link_it_removes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let allowed = root.join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::write(allowed.join("inside.txt"), "x").unwrap();
    std::fs::write(root.join("outside.txt"), "x").unwrap();
    let way_in = root.join("way_in");
    std::os::unix::fs::symlink(allowed.join("inside.txt"), &way_in).unwrap();
    let way_out = allowed.join("way_out");
    std::os::unix::fs::symlink(root.join("outside.txt"), &way_out).unwrap();
    let grant = format!("--allow-write={}", allowed.display());
    let out = under(&[&grant], &format!(r#"remove("{}")"#, way_in.display()));
    assert!(out.starts_with("permission | remove: "), "{out}");
    assert!(
        way_in.symlink_metadata().is_ok(),
        "the link outside was removed"
    );
    let out = under(&[&grant], &format!(r#"remove("{}")"#, way_out.display()));
    assert_eq!(out, "allowed");
    assert!(way_out.symlink_metadata().is_err());
    assert!(root.join("outside.txt").exists());
}

/// Only a bundled scenario's statement is granted by `--sandbox`: a script
/// file (or stdin) is what someone shared, and stating `read` or `net` in
/// its own opening comment must not let it out of the sandbox.
#[test]
fn a_script_file_cannot_grant_itself_under_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("shared.rhai");
    std::fs::write(
        &script,
        "//! permissions: env, read\nprint(env(\"HOME\"));\n",
    )
    .unwrap();
    let run = Netsh::new()
        .args(["--sandbox", script.to_str().unwrap()])
        .output();
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains("env: permission denied: HOME is not in --allow-env"),
        "{}",
        run.explain()
    );
    // Given the flag, it runs.
    Netsh::new()
        .args(["--sandbox", "--allow-env=HOME", script.to_str().unwrap()])
        .ok();
}

/// A module a plugin imports is the plugin's code: `leak::inner::peek()`
/// is held to leak's statement as `leak::peek()` would be, not run with
/// the script's wider grant.
#[test]
fn a_module_a_plugin_imports_is_held_to_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("lib")).unwrap();
    std::fs::write(root.join("lib/inner.rhai"), "fn peek() { env(\"HOME\") }\n").unwrap();
    std::fs::write(
        root.join("leak.rhai"),
        format!(
            "//! permissions: read={root}\n\
             import \"{root}/lib/inner\" as inner;\n\
             fn peek() {{ env(\"HOME\") }}\n",
            root = root.display()
        ),
    )
    .unwrap();
    let plugins = root.display().to_string();
    let read = format!("--allow-read={plugins}");
    for code in ["leak::peek()", "leak::inner::peek()"] {
        let wrapped = format!(
            r#"let f = || {{ try {{ {code}; }} catch (e) {{ return `${{e.kind}} | ${{e}}` }} "allowed" }}; f.call()"#
        );
        let out = Netsh::new()
            .args(["--plugins", &plugins, "--allow-env", &read, "-e", &wrapped])
            .ok()
            .stdout();
        assert!(
            out.starts_with("permission | ") && out.contains("plugin leak may not use HOME"),
            "{code}: {out}"
        );
    }
}

/// A closure a plugin returns stays the plugin's code: called by the
/// script, on a task, or handed to a server as a handler, it is held to
/// the plugin's statement, not run with the script's wider grant.
#[test]
fn a_closure_a_plugin_returns_is_held_to_the_plugin() {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sneak.rhai"),
        "//! permissions: net=127.0.0.1:0\n\
         fn attempt(to) { try { connect(to); return \"reached\"; } catch (e) { return e.kind; } }\n\
         fn reach(to) { || attempt(to) }\n\
         fn handler(to) { |c| c.send_line(attempt(to)) }\n",
    )
    .unwrap();
    let code = format!(
        r#"let to = "127.0.0.1:{port}";
           let f = sneak::reach(to);
           let direct = f.call();
           let t = task(|| f.call());
           let s = serve("127.0.0.1:0", sneak::handler(to), #{{quiet: true}});
           let c = connect(`127.0.0.1:${{s.port}}`);
           [direct, t.join(), c.recv_line()]"#
    );
    let run = Netsh::new()
        .args([
            "--plugins",
            &dir.path().display().to_string(),
            "--allow-net=127.0.0.1",
            "-e",
            &code,
        ])
        .ok();
    assert_eq!(
        run.stdout(),
        r#"["permission", "permission", "permission"]"#,
        "{}",
        run.explain()
    );
    target.set_nonblocking(true).unwrap();
    assert!(
        target.accept().is_err(),
        "a closure of the plugin reached the target"
    );
}

/// A name that resolves both inside and outside a plugin's statement: the
/// fetch's hop is checked on the plugin's grant, and the addresses reqwest
/// resolves again are held to it too. Here `dual.test` is 127.0.0.1
/// (granted to the plugin, nothing listening) and 127.0.0.3 (listening,
/// not granted): falling back to 127.0.0.3 would leave the statement.
#[test]
fn a_plugin_fetch_never_falls_back_to_an_address_outside_its_statement() {
    if !support::is_root() {
        support::skip(
            "a_plugin_fetch_never_falls_back_to_an_address_outside_its_statement",
            "a private /etc/hosts needs a mount namespace (root)",
        );
        return;
    }
    let target = TcpListener::bind("127.0.0.3:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let port = target.local_addr().unwrap().port();
    // Nothing may listen on 127.0.0.1 at that port: it must refuse.
    let Ok(probe) = TcpListener::bind(("127.0.0.1", port)) else {
        support::skip(
            "a_plugin_fetch_never_falls_back_to_an_address_outside_its_statement",
            "the port is taken on 127.0.0.1",
        );
        return;
    };
    drop(probe);
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 dual.test\n127.0.0.3 dual.test\n").unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::write(
        plugins.join("narrow.rhai"),
        "//! permissions: net=127.0.0.1\nfn get(url) { fetch(url, #{timeout: 2000}).status }\n",
    )
    .unwrap();
    let code = format!(
        r#"let f = || {{ try {{ return narrow::get("http://dual.test:{port}/a"); }} catch (e) {{ return e.kind }} }}; f.call()"#
    );
    let out = Netsh::with_hosts(&hosts)
        .args([
            "--plugins",
            plugins.to_str().unwrap(),
            "--allow-net",
            "-e",
            &code,
        ])
        .ok()
        .stdout();
    assert!(
        target.accept().is_err(),
        "the plugin's fetch reached 127.0.0.3, outside its statement ({out})"
    );
}

/// What was typed (or pasted) before the question is not its answer: a
/// `y` waiting on the terminal while the call ran is thrown away, and only
/// what is typed after the question counts (as Deno does).
#[test]
fn the_prompt_is_not_answered_by_what_was_typed_before_it() {
    use expectrl::Expect;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    let mut pty = support::repl_in(home.path(), &["--sandbox"]);
    // The line runs for a second before it asks; `y` is typed meanwhile.
    let line = format!(r#"sleep(1000); connect("127.0.0.1:{port}").close(); "done""#);
    pty.send_line(&line).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    pty.send_line("y").unwrap();
    pty.expect("Allow? [y]es once / [a]lways / [N]o")
        .unwrap_or_else(|e| panic!("no question ({e}): {}", support::shown(&mut pty)));
    std::thread::sleep(Duration::from_millis(300));
    pty.send_line("n").unwrap();
    pty.expect("permission denied")
        .unwrap_or_else(|e| panic!("not refused ({e}): {}", support::shown(&mut pty)));
    pty.expect("netsh> ").unwrap();
    assert!(listener.accept().is_err(), "the type-ahead answered yes");
}

/// The script's fetch to `dual.test` (127.0.0.1 refusing, 127.0.0.3
/// answering) leaves a kept-alive connection to 127.0.0.3 in the pool; a
/// plugin granted 127.0.0.1 only, fetching the same URL next, must not
/// be sent over it.
#[test]
fn a_plugin_fetch_never_reuses_a_connection_outside_its_statement() {
    if !support::is_root() {
        support::skip(
            "a_plugin_fetch_never_reuses_a_connection_outside_its_statement",
            "a private /etc/hosts needs a mount namespace (root)",
        );
        return;
    }
    let http = HttpServer::start_at("127.0.0.3");
    let port = http.addr.port();
    let Ok(probe) = TcpListener::bind(("127.0.0.1", port)) else {
        support::skip(
            "a_plugin_fetch_never_reuses_a_connection_outside_its_statement",
            "the port is taken on 127.0.0.1",
        );
        return;
    };
    drop(probe);
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 dual.test\n127.0.0.3 dual.test\n").unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::write(
        plugins.join("narrow.rhai"),
        "//! permissions: net=127.0.0.1\nfn get(url) { fetch(url).status }\n",
    )
    .unwrap();
    let code = format!(
        r#"let url = "http://dual.test:{port}/a"; let mine = fetch(url).status; let f = || {{ try {{ return narrow::get(url); }} catch (e) {{ return e.kind }} }}; `${{mine}} ${{f.call()}}`"#
    );
    let out = Netsh::with_hosts(&hosts)
        .args([
            "--plugins",
            plugins.to_str().unwrap(),
            "--allow-net",
            "-e",
            &code,
        ])
        .ok()
        .stdout();
    assert!(out.starts_with("404 "), "the script's own fetch: {out}");
    assert_eq!(
        http.seen().len(),
        1,
        "the plugin's request went to 127.0.0.3 ({out})"
    );
}
