//! A table of bad inputs: each gives a clear error that names the function
//! and the cause, exits 1, and never panics.

mod support;

use support::Netsh;

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
    ("resolve(\"\")", "resolve: the host name is empty"),
    (
        "resolve(\"nohost.invalid\")",
        "resolve: cannot resolve 'nohost.invalid'",
    ),
    (
        "reverse(\"not-an-ip\")",
        "reverse: 'not-an-ip' is not an IPv4 or IPv6 address",
    ),
    (
        "ip_info(\"999.1.1.1\")",
        "ip_info: '999.1.1.1' is not an IPv4 address: 999 is larger than 255",
    ),
    (
        "ip_info(\"\")",
        "ip_info: '' is not an IPv4 or IPv6 address",
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
        "sockets: unknown filter key 'bogus'",
    ),
    (
        "sockets(#{port: 70000})",
        "sockets: port 70000 is out of range",
    ),
    (
        "sockets(#{port: \"x\"})",
        "sockets: filter 'port' must be a number",
    ),
    (
        "sockets(#{proto: \"icmp\"})",
        "sockets: filter 'proto' must be \"tcp\" or \"udp\"",
    ),
    ("sleep(-5)", "sleep: ms must be 0 or more, not -5"),
    (
        "read_file(\"/no/such/file\")",
        "read_file: /no/such/file: no such file or folder",
    ),
    (
        "read_file(\"/proc/self/exe\")",
        "is not UTF-8 text; use read_blob",
    ),
    (
        "write_file(\"/no/such/dir/x\", \"a\")",
        "write_file: /no/such/dir/x: no such file or folder",
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
        "listen: 'example.com' is not a local IP address",
    ),
    ("connect(\"localhost\")", "connect: 'localhost' has no port"),
    ("connect(\"::1:80\")", "write it as [::1]:PORT"),
    (
        "connect(\"nohost.invalid:80\")",
        "connect: cannot resolve 'nohost.invalid'",
    ),
    (
        "connect(\"localhost\", 99999)",
        "connect: port 99999 is out of range",
    ),
    ("no_such_function(1)", "no function no_such_function(int)"),
    ("fn f(x) { f(x) } f(1)", "stack overflow"),
    ("let x = ;", "syntax error"),
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
