//! `traceroute()` across the namespace lab (support/lab.rs: a client,
//! three routers, a server), hop for hop against `traceroute -n` run in the
//! same namespace, for UDP, ICMP and TCP probes; a router that sends no
//! ICMP shows as a silent hop and the trace still completes.

use std::process::Command;

use crate::support::{
    self, Netsh,
    lab::{self, Lab},
};

/// The hop list `traceroute -n ARGS SERVER` prints in the client's namespace:
/// each hop's address, or `*`.
fn theirs(lab: &Lab, args: &[&str]) -> Vec<String> {
    theirs_to(lab, args, lab::SERVER)
}

/// As [`theirs`], to `server`.
fn theirs_to(lab: &Lab, args: &[&str], server: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.client(),
            "traceroute",
            "-n",
            "-q",
            "1",
            "-w",
            "1",
        ])
        .args(args)
        .arg(server)
        .output()
        .expect("running traceroute");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1) // "traceroute to …"
        .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        .collect()
}

/// netsh's hop list for `opts`, in the client's namespace.
fn ours(lab: &Lab, opts: &str) -> Vec<String> {
    ours_to(lab, opts, lab::SERVER)
}

/// As [`ours`], to `server`.
fn ours_to(lab: &Lab, opts: &str, server: &str) -> Vec<String> {
    let wrapper = lab.in_client();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let run = Netsh::wrapped(&wrapper)
        .args([
            "-e",
            &format!(
                r#"for h in traceroute("{server}", {opts}) {{ print(if h.addr == () {{ "*" }} else {{ h.addr }}) }}"#
            ),
        ])
        .ok();
    run.stdout().lines().map(String::from).collect()
}

/// UDP (the default), ICMP and TCP probes find the same four hops as
/// traceroute -n, ending at the server.
#[test]
fn hops_match_traceroute_for_udp_icmp_and_tcp() {
    let test = "traceroute::hops_match_traceroute_for_udp_icmp_and_tcp";
    if !support::has_tool(test, "traceroute", &["--version"], "traceroute") {
        return;
    }
    let Some(lab) = Lab::new(test) else { return };
    let expected: Vec<String> = lab::HOPS.iter().map(|h| h.to_string()).collect();
    for (opts, args) in [
        (r#"#{queries: 1}"#, vec![]),
        (r#"#{proto: "udp"}"#, vec![]),
        (r#"#{proto: "icmp", queries: 2}"#, vec!["-I"]),
        (r#"#{proto: "tcp", port: 80}"#, vec!["-T", "-p", "80"]),
    ] {
        assert_eq!(theirs(&lab, &args), expected, "traceroute -n {args:?}");
        assert_eq!(ours(&lab, opts), expected, "traceroute({opts})");
    }
}

/// Over IPv6 (hop limits, ICMPv6 "time exceeded" and "port
/// unreachable") the same four hops, as `traceroute -6 -n` finds them, for
/// UDP, ICMPv6 and TCP probes.
#[test]
fn ipv6_hops_match_traceroute_for_udp_icmp_and_tcp() {
    let test = "traceroute::ipv6_hops_match_traceroute_for_udp_icmp_and_tcp";
    if !support::has_tool(test, "traceroute", &["--version"], "traceroute") {
        return;
    }
    let Some(lab) = Lab::new(test) else { return };
    lab.wait_for_ipv6();
    let expected: Vec<String> = lab::HOPS6.iter().map(|h| h.to_string()).collect();
    for (opts, args) in [
        (r#"#{queries: 1}"#, vec!["-6"]),
        (r#"#{proto: "icmp", queries: 2}"#, vec!["-6", "-I"]),
        (r#"#{proto: "tcp", port: 80}"#, vec!["-6", "-T", "-p", "80"]),
    ] {
        assert_eq!(
            theirs_to(&lab, &args, lab::SERVER6),
            expected,
            "traceroute -n {args:?}"
        );
        assert_eq!(
            ours_to(&lab, opts, lab::SERVER6),
            expected,
            "traceroute({opts})"
        );
    }
}

/// Each hop carries one time per query, and `hop` counts from 1.
#[test]
fn each_hop_has_its_times() {
    let Some(lab) = Lab::new("traceroute::each_hop_has_its_times") else {
        return;
    };
    let wrapper = lab.in_client();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let out = Netsh::wrapped(&wrapper)
        .args([
            "-e",
            &format!(
                r#"for h in traceroute("{}", #{{queries: 3}}) {{ print(`${{h.hop}} ${{h.ms.len()}} ${{h.ms.all(|t| t > 0.0 && t < 1000.0)}} ${{h.name == ()}}`) }}"#,
                lab::SERVER
            ),
        ])
        .ok()
        .stdout();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "1 3 true true",
            "2 3 true true",
            "3 3 true true",
            "4 3 true true"
        ]
    );
}

/// Router 2 drops the ICMP it would send: hop 2 is silent (`*`, as
/// traceroute shows it) and the trace still reaches the server.
#[test]
fn a_silent_router_is_a_star_and_the_trace_completes() {
    let test = "traceroute::a_silent_router_is_a_star_and_the_trace_completes";
    if !support::has_tool(test, "traceroute", &["--version"], "traceroute")
        || !support::has_tool(test, "nft", &["-v"], "nftables")
    {
        return;
    }
    let Some(lab) = Lab::new(test) else { return };
    lab.run_in(
        lab.router(2),
        "nft add table inet t; nft add chain inet t out '{ type filter hook output priority 0; }'; nft add rule inet t out icmp type time-exceeded drop",
    );
    let expected = ["10.91.1.2", "*", "10.91.3.2", lab::SERVER];
    assert_eq!(theirs(&lab, &[]), expected);
    assert_eq!(ours(&lab, r#"#{queries: 1, timeout: 500}"#), expected);
    assert_eq!(
        ours(&lab, r#"#{proto: "icmp", queries: 1, timeout: 500}"#),
        expected
    );
}

/// Without CAP_NET_RAW traceroute fails at once saying how to allow it;
/// bad options fail before anything is sent.
#[test]
fn refusals_and_bad_options() {
    for (code, words) in [
        (
            r#"traceroute("127.0.0.1", #{max_hops: 0})"#,
            "option 'max_hops'",
        ),
        (
            r#"traceroute("127.0.0.1", #{max_hops: 256})"#,
            "option 'max_hops'",
        ),
        (
            r#"traceroute("127.0.0.1", #{proto: "sctp"})"#,
            "option 'proto'",
        ),
        (
            r#"traceroute("127.0.0.1", #{queries: 0})"#,
            "option 'queries'",
        ),
        (r#"traceroute("1.2.3")"#, "1.2.3"),
    ] {
        let err = Netsh::eval_err(code);
        assert!(err.contains(words), "{code}: {err}");
    }
    support::skip_if!(
        "traceroute::refusals_and_bad_options",
        support::nobody_unavailable()
    );
    let run = Netsh::nobody()
        .args([
            "-e",
            r#"try { traceroute("127.0.0.1") } catch (e) { print(e.kind); print(e.message) }"#,
        ])
        .ok();
    let out = run.stdout();
    assert!(out.starts_with("permission\n"), "{}", run.explain());
    assert!(
        out.contains("CAP_NET_RAW") && out.contains("setcap"),
        "{out}"
    );
}

/// `-e` (and the REPL) print a trace as `traceroute -n` lays it out: the
/// hop number, the address, one time per query.
#[test]
fn printed_like_traceroute() {
    let Some(lab) = Lab::new("traceroute::printed_like_traceroute") else {
        return;
    };
    let wrapper = lab.in_client();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let out = Netsh::wrapped(&wrapper)
        .args([
            "-e",
            &format!(r#"traceroute("{}", #{{queries: 2}})"#, lab::SERVER),
        ])
        .ok()
        .stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for (line, (n, addr)) in lines.iter().zip(lab::HOPS.iter().enumerate()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[..2], [(n + 1).to_string().as_str(), addr], "{out}");
        assert_eq!(
            fields[2..].iter().filter(|f| **f == "ms").count(),
            2,
            "{out}"
        );
    }
}

/// `names: true` names each hop from the system's resolver (here the lab's
/// /etc/hosts), as traceroute without `-n` does, and prints
/// `name (addr)`; without it `name` is `()`.
#[test]
fn names_true_names_each_hop_like_traceroute() {
    let test = "traceroute::names_true_names_each_hop_like_traceroute";
    if !support::has_tool(test, "traceroute", &["--version"], "traceroute") {
        return;
    }
    let Some(lab) = Lab::new(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let wrapper = lab.in_client_named(dir.path());
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let out = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .args(["traceroute", "-q", "1", "-w", "1", lab::SERVER])
        .output()
        .expect("running traceroute");
    let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let expected: Vec<String> = lab::NAMES
        .iter()
        .zip(lab::HOPS)
        .enumerate()
        .map(|(i, (name, addr))| format!("{} {name} ({addr})", i + 1))
        .collect();
    assert_eq!(theirs, expected, "traceroute");
    let code = format!(
        r#"for h in traceroute("{0}", #{{names: true, queries: 1}}) {{ print(`${{h.hop}} ${{h.name}} (${{h.addr}})`) }}
           print(traceroute("{0}", #{{queries: 1}}).all(|h| h.name == ()));
           traceroute("{0}", #{{names: true, queries: 1}})"#,
        lab::SERVER
    );
    let run = Netsh::wrapped(&wrapper).args(["-e", &code]).ok();
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..4], expected, "{}", run.explain());
    assert_eq!(lines[4], "true", "{out}");
    // Printed as traceroute prints it: hop, name, (addr), the time.
    let printed: Vec<String> = lines[5..]
        .iter()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(printed, expected, "{out}");
}
