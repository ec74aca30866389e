//! A table of bad inputs: each gives a clear error that names the function
//! and the cause, exits 1, and never panics.

use crate::support::{self, Netsh};

/// Every entry: the code, and words the error must contain.
const CASES: &[(&str, &str)] = &[
    (
        "resolve(42)",
        "resolve: wrong arguments (int); expected resolve(host: string)",
    ),
    (
        "resolve()",
        "resolve: wrong arguments (); expected resolve(host: string)",
    ),
    ("resolve(\"\")", "resolve: the host is empty"),
    (
        "resolve(\"nohost.invalid\")",
        "resolve: cannot resolve 'nohost.invalid'",
    ),
    (
        "reverse(\"not-an-ip\")",
        "reverse: \"not-an-ip\" is not an IPv4 or IPv6 address",
    ),
    (
        "ip_info(\"999.1.1.1\")",
        "ip_info: \"999.1.1.1\" is not an IPv4 address: 999 is larger than 255",
    ),
    (
        "ip_info(\"\")",
        "ip_info: \"\" is not an IPv4 or IPv6 address",
    ),
    ("ip_info(1234)", "ip_info: wrong arguments (int)"),
    (
        "port_info(-1)",
        "port_info: port -1 is out of range (0–65535)",
    ),
    (
        "port_info(65536)",
        "port_info: port 65536 is out of range (0–65535)",
    ),
    (
        "port_info(\"80\")",
        "port_info: wrong arguments (string); expected port_info(port: int)",
    ),
    (
        "service_port(\"no-such-service\")",
        "service_port: no TCP service named 'no-such-service'",
    ),
    (
        "service_port(\"ssh\", \"icmp\")",
        "service_port: protocol must be \"tcp\" or \"udp\"",
    ),
    (
        "sockets(#{bogus: 1})",
        "sockets: unknown option 'bogus' (known: port, proto, state, pid)",
    ),
    (
        "sockets(#{port: 70000})",
        "sockets: port 70000 is out of range",
    ),
    (
        "sockets(#{port: \"x\"})",
        "sockets: option 'port': expected a port number, not a string",
    ),
    (
        "sockets(#{proto: \"icmp\"})",
        "sockets: option 'proto' must be \"tcp\" or \"udp\"",
    ),
    ("sleep(-5)", "sleep: ms must be 0 or more, not -5"),
    (
        "read_file(\"/no/such/file\")",
        "read_file: \"/no/such/file\": no such file or folder",
    ),
    (
        "read_file(\"/proc/self/exe\")",
        "is not UTF-8 text; use read_blob",
    ),
    (
        "write_file(\"/no/such/dir/x\", \"a\")",
        "write_file: \"/no/such/dir/x\": no such file or folder",
    ),
    ("parse_json(\"{\")", "parse_json: not valid JSON"),
    (
        "help(\"no_such_function\")",
        "help: no function or topic named 'no_such_function'",
    ),
    (
        "listen(70000)",
        "listen: port 70000 is out of range (0–65535)",
    ),
    (
        "listen(\"example.com:80\")",
        "listen: \"example.com\" is not a local IP address",
    ),
    (
        "connect(\"localhost\")",
        "connect: \"localhost\" has no port",
    ),
    ("connect(\"::1:80\")", "write it as [::1]:PORT"),
    (
        "connect(\"nohost.invalid:80\")",
        "connect: cannot resolve 'nohost.invalid'",
    ),
    (
        "connect(\"localhost\", 99999)",
        "connect: port 99999 is out of range",
    ),
    (
        "connect(\"127.0.0.1:9\", 5)",
        "connect: the host \"127.0.0.1:9\" already carries a port",
    ),
    (
        "scan(\"127.0.0.1:80\", [80])",
        "scan: the host \"127.0.0.1:80\" already carries a port",
    ),
    (
        "udp_send(\"127.0.0.1:0\", \"x\")",
        "udp_send: 127.0.0.1:0: port 0 cannot be sent to",
    ),
    (
        "serve_files(\"127.0.0.1:0\", \"\")",
        "serve_files: \"\" is not a folder",
    ),
    (
        "serve_files(\"127.0.0.1:0\", \"in\").wait(-1)",
        "wait: the count of uploads must be 0 or more, not -1",
    ),
    (
        "let l = listen(\"127.0.0.1:0\"); let c = connect(l.addr); c.timeout = 1.5",
        "set_timeout: expected a whole number of milliseconds, not a decimal number (1.5 s is 1500)",
    ),
    (
        "udp_bind(\"127.0.0.1:0\").recv(-1)",
        "recv: a timeout is 0 or more milliseconds (0 means no limit), not -1",
    ),
    (
        "scan(\"127.0.0.1\", [1], #{timeout: -5})",
        "scan: option 'timeout': expected 0 or more milliseconds (0 means no limit), not -5",
    ),
    (
        "send_file(\"127.0.0.1:1\", \"/proc\")",
        "send_file: \"/proc\" is a folder",
    ),
    (
        "send_file(\"127.0.0.1:1\", \"/no/such\")",
        "send_file: \"/no/such\": no such file or folder",
    ),
    (
        "write_file(\"f.txt\", \"x\"); send_file(\"127.0.0.1:1\", \"f.txt\", #{name: \"../x\"})",
        "send_file: cannot send as '../x': the name contains '..'",
    ),
    (
        "connect(\"127.0.0.1:0\")",
        "connect: 127.0.0.1:0: port 0 cannot be sent to",
    ),
    (
        "connect(\"127.0.0.1\", 0)",
        "connect: 127.0.0.1:0: port 0 cannot be sent to",
    ),
    (
        "connect(\"127.0.0.1:-0\")",
        "connect: \"-0\" in \"127.0.0.1:-0\" is not a port number",
    ),
    (
        "scan(\"127.0.0.1\", [0, 80])",
        "scan: port 0 cannot be scanned",
    ),
    (
        "scan(\"127.0.0.1\", 0..10)",
        "scan: port 0 cannot be scanned",
    ),
    (
        "resolve(\"-\")",
        "resolve: \"-\" is not a host name: the label \"-\" starts or ends with '-'",
    ),
    (
        "resolve(\"-a-.b-\")",
        "resolve: \"-a-.b-\" is not a host name: the label \"-a-\" starts or ends with '-'",
    ),
    (
        "resolve(\"_\")",
        "resolve: \"_\" is not a host name: the label \"_\" has no letter or digit",
    ),
    (
        "connect(\"127.0.0.1:80\\n\")",
        "connect: \"127.0.0.1:80\\n\" has white space around it",
    ),
    ("no_such_function(1)", "no function no_such_function(int)"),
    ("fn f(x) { f(x) } f(1)", "stack overflow"),
    ("let x = ;", "syntax error"),
    // A closure is checked when it is given, before anything is sent: port
    // 9 has no listener, so a check made later would say "refused".
    (
        "send_file(\"127.0.0.1:9\", \"/etc/hostname\", #{progress: || 1})",
        "send_file: the progress closure takes 1 parameter (p), this one takes 0",
    ),
    (
        "fetch(\"http://127.0.0.1:9/x\", \"/tmp/netsh-never-written\", #{progress: |a, b| 1})",
        "fetch: the progress closure takes 1 parameter (p), this one takes 2",
    ),
    (
        "share(1).update(|| 2)",
        "update: update's closure takes 1 parameter (value), this one takes 0",
    ),
    (
        "task(|| wait()).join()",
        "wait: it waits for all background work, so it cannot be called from inside a task",
    ),
    ("fetch(\"http:///x\")", "fetch: 'http:///x' has no host"),
    (
        "fetch(\"http://127.0.0.1:0/\")",
        "fetch: 'http://127.0.0.1:0/': port 0 cannot be sent to",
    ),
    (
        "fetch(\"http://127.0.0.1:9/x\", \"/netsh-no-such-folder/\")",
        "fetch: the folder /netsh-no-such-folder/ does not exist",
    ),
    (
        "fetch(\"http://127.0.0.1:9/\", #{max_redirects: -1})",
        "fetch: option 'max_redirects': expected a whole number, 0 or more, not -1",
    ),
    (
        "connect(\"127.0.0.1\", 9, #{bogus: 1})",
        "connect: unknown option 'bogus' (known: timeout, tls, proxy)",
    ),
];

/// Each bad input fails with its own clear message and exit code 1.
#[test]
fn bad_inputs_give_clear_errors() {
    let mut failures = Vec::new();
    for (code, expected) in CASES {
        let run = Netsh::new().args(["-e", code]).output();
        let err = run.stderr();
        if run.code() != Some(1) || !err.contains(expected) || err.contains("panicked") {
            failures.push(format!(
                "{code}\n  expected: {expected}\n  got ({:?}): {err}",
                run.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every function that takes an address reads it with the same strict
/// parser: inet_aton shorthand, unbalanced brackets and untrimmed text are
/// refused with the same words everywhere, as `invalid`, before anything is sent.
#[test]
fn every_address_taking_function_refuses_the_same_bad_addresses() {
    // (bad address, words of the error); each is tried in every function.
    // Every spelling means loopback to the C resolver, so should the parser
    // ever let one through, nothing leaves this machine.
    let bad = [
        (
            "127.1",
            "\"127.1\" is not an IPv4 address: it has 2 parts, not 4",
        ),
        (
            "2130706433",
            "\"2130706433\" is not an IPv4 address: it has 1 part, not 4",
        ),
        ("0x7f.1", "\"0x7f\" is not a decimal number from 0 to 255"),
        ("0177.0.0.1", "leading zeros are ambiguous (octal?)"),
        ("[::1", "has '[' without a closing ']'"),
        (" 127.0.0.1", "has white space around it"),
    ];
    // `ADDR` is a host:port, `HOST` a host alone.
    let functions = [
        "connect(\"ADDR\")",
        "connect(\"HOST\", 80)",
        "connect(\"ADDR\", #{timeout: 100})",
        "listen(\"ADDR\")",
        "serve(\"ADDR\", |c| c)",
        "scan(\"HOST\", [80])",
        "resolve(\"HOST\")",
        "ip_info(\"HOST\")",
        "reverse(\"HOST\")",
        "udp_send(\"ADDR\", \"x\")",
        "udp_bind(\"ADDR\")",
        "udp_bind(0).send_to(\"ADDR\", \"x\")",
        "send_file(\"ADDR\", \"FILE\")",
        "serve_files(\"ADDR\", \"in\")",
        "serve_files(0, \"in\", #{allow: [\"HOST\"]})",
    ];
    // What send_file would send: nothing of this machine's.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("harmless.txt");
    std::fs::write(&file, "harmless").unwrap();
    let mut failures = Vec::new();
    for function in functions {
        let mut script = String::from("let out = [];\n");
        for (address, _) in bad {
            let call = function
                .replace("ADDR", &format!("{address}:80"))
                .replace("HOST", address)
                .replace("FILE", &file.display().to_string());
            script.push_str(&format!(
                "try {{ {call}; out.push(\"ACCEPTED\") }} catch (e) {{ out.push(`${{e.kind}} ${{e}}`) }}\n"
            ));
        }
        script.push_str("for line in out { print(line) }");
        let run = Netsh::new().args(["-e", &script]).output();
        let lines: Vec<String> = run.stdout().lines().map(String::from).collect();
        if lines.len() != bad.len() {
            failures.push(format!("{function}: {}", run.explain()));
            continue;
        }
        for ((address, words), line) in bad.iter().zip(&lines) {
            if !line.starts_with("invalid ") || !line.contains(words) {
                failures.push(format!(
                    "{function} with {address:?}\n  expected: {words}\n  got: {line}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// recv_file checks its options before it waits for a sender: a bad raw
/// name is refused at once, not after a connection (or the timeout).
#[test]
fn recv_file_checks_its_name_before_waiting() {
    let started = std::time::Instant::now();
    let err = Netsh::eval_err(
        r#"let l = listen("127.0.0.1:0"); recv_file(l, "in", #{raw: true, name: "../x", timeout: 5000})"#,
    );
    assert!(
        err.contains("recv_file: option 'name': '../x' cannot be used: the name contains '..'"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "it waited"
    );
}

/// send_file refuses a FIFO at once: opening it does not wait for a writer.
#[test]
fn send_file_refuses_a_fifo_without_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe");
    support::mkfifo(&fifo);
    // Should the open ever block again, a writer turns up after 10 s, so
    // the test fails on the elapsed time instead of hanging.
    let unblock = fifo.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(10));
        let _ = std::fs::OpenOptions::new().write(true).open(unblock);
    });
    let started = std::time::Instant::now();
    let err = Netsh::eval_err(&format!(
        r#"send_file("127.0.0.1:1", "{}")"#,
        fifo.display()
    ));
    assert!(err.contains("is not a regular file"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "it waited"
    );
}
