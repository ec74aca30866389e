//! `dns()` and `dns_many()` against a real `unbound` started by the test
//! (support/unbound.rs), each answer compared field by field with what
//! `dig @127.0.0.1 -p PORT` gets from the same server; and the failures
//! (refused, timeout, malformed answer, bad input) against sockets the
//! test holds.

use std::{net::UdpSocket, time::Duration};

use crate::support::{self, Netsh, unbound::Unbound};

/// One record as both tools show it: name, TTL, type, data.
type Row = (String, String, String, String);

/// The records of `dig +noall +answer` (or of another section).
fn dig_rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|line| {
            let mut rest = line;
            let mut fields = Vec::new();
            for _ in 0..4 {
                rest = rest.trim_start();
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                fields.push(rest[..end].to_string());
                rest = &rest[end..];
            }
            assert_eq!(fields[2], "IN", "dig line {line:?}");
            (
                fields[0].clone(),
                fields[1].clone(),
                fields[3].clone(),
                rest.trim().to_string(),
            )
        })
        .collect()
}

/// netsh's records of `section` for each question, one block per question.
fn netsh_rows(server: &str, questions: &[(&str, &str)], section: &str) -> Vec<Vec<Row>> {
    let code: String = questions
        .iter()
        .map(|(name, rtype)| {
            format!(
                r#"for a in dns("{name}", "{rtype}", #{{server: "{server}"}}).{section} {{ print(`${{a.name}}|${{a.ttl}}|${{a.type}}|${{a.data}}`) }} print("--");"#
            )
        })
        .collect();
    let out = Netsh::eval(&code);
    out.split("--")
        .take(questions.len())
        .map(|block| {
            block
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let f: Vec<&str> = l.splitn(4, '|').collect();
                    (f[0].into(), f[1].into(), f[2].into(), f[3].into())
                })
                .collect()
        })
        .collect()
}

/// Every record type (A, AAAA, CNAME, MX, NS, TXT, SOA, SRV, CAA, a type by
/// number) answers with the same name, TTL, type and data as dig shows.
#[test]
fn every_record_type_matches_dig() {
    let Some(server) = Unbound::start("dns::every_record_type_matches_dig") else {
        return;
    };
    let questions = [
        ("www.lab.test", "A"),
        ("www.lab.test", "AAAA"),
        ("alias2.lab.test", "CNAME"),
        ("lab.test", "MX"),
        ("lab.test", "NS"),
        ("lab.test", "TXT"),
        ("lab.test", "SOA"),
        ("_sip._tcp.lab.test", "SRV"),
        ("lab.test", "CAA"),
        ("odd.lab.test", "TYPE65280"),
        ("alias.lab.test", "A"),
    ];
    let ours = netsh_rows(&server.server(), &questions, "answers");
    for ((name, rtype), mine) in questions.iter().zip(ours) {
        let mut theirs = dig_rows(&server.dig(&["+noall", "+answer", name, rtype]));
        let mut mine = mine;
        assert!(!theirs.is_empty(), "dig found no {rtype} for {name}");
        theirs.sort();
        mine.sort();
        assert_eq!(mine, theirs, "{name} {rtype}");
    }
}

/// A type given by number asks the same question as its name; the number of a
/// type with no name prints as TYPEnnn, data in RFC 3597's form as dig prints it.
#[test]
fn types_by_number_and_typed_fields() {
    let Some(server) = Unbound::start("dns::types_by_number_and_typed_fields") else {
        return;
    };
    let s = server.server();
    let out = Netsh::eval(&format!(
        r#"let o = #{{server: "{s}"}};
           print(dns("www.lab.test", 28, o).answers[0].data);
           let odd = dns("odd.lab.test", 65280, o).answers[0]; print(odd.type); print(odd.data);
           let mx = dns("lab.test", "mx", o).answers; mx.sort(|a, b| a.preference - b.preference);
           print(`${{mx[0].preference}} ${{mx[0].exchange}} ${{mx[1].preference}} ${{mx[1].exchange}}`);
           let srv = dns("_sip._tcp.lab.test", "SRV", o).answers[0];
           print(`${{srv.priority}} ${{srv.weight}} ${{srv.port}} ${{srv.target}}`);
           let soa = dns("lab.test", "SOA", o).answers[0];
           print(`${{soa.mname}} ${{soa.rname}} ${{soa.serial}} ${{soa.minimum}}`);
           print(dns("lab.test", "TXT", o).answers[0].strings);
           let caa = dns("lab.test", "CAA", o).answers[0]; print(`${{caa.flags}} ${{caa.tag}} ${{caa.value}}`);"#
    ));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "2001:db8::1",
            "TYPE65280",
            "\\# 4 0A000001",
            "10 mail.lab.test. 20 backup.mail.lab.test.",
            "0 5 5060 sip.lab.test.",
            "ns1.lab.test. admin.lab.test. 2024010101 300",
            r#"["v=spf1 -all", "second \"quoted\" part"]"#,
            "0 issue letsencrypt.org",
        ]
    );
}

/// PTR of an IPv4 or IPv6 address asks its reverse name, as `dig -x` does.
#[test]
fn reverse_names_for_ptr_match_dig_x() {
    let Some(server) = Unbound::start("dns::reverse_names_for_ptr_match_dig_x") else {
        return;
    };
    let ours = netsh_rows(
        &server.server(),
        &[("10.0.0.1", "PTR"), ("2001:db8::1", "PTR")],
        "answers",
    );
    for (ip, mine) in ["10.0.0.1", "2001:db8::1"].iter().zip(ours) {
        let theirs = dig_rows(&server.dig(&["+noall", "+answer", "-x", ip]));
        assert_eq!(theirs.len(), 1, "dig -x {ip}");
        assert_eq!(mine, theirs, "{ip}");
        assert_eq!(mine[0].3, "www.lab.test.");
    }
}

/// A CNAME chain comes back whole, in the server's order: two CNAMEs, then the A.
#[test]
fn cname_chain_in_order() {
    let Some(server) = Unbound::start("dns::cname_chain_in_order") else {
        return;
    };
    let ours = netsh_rows(&server.server(), &[("alias.lab.test", "A")], "answers");
    let theirs = dig_rows(&server.dig(&["+noall", "+answer", "alias.lab.test", "A"]));
    assert_eq!(ours[0], theirs);
    let types: Vec<&str> = ours[0].iter().map(|r| r.2.as_str()).collect();
    assert_eq!(types, ["CNAME", "CNAME", "A"]);
}

/// dig's status line: `status: NXDOMAIN`.
fn dig_status(server: &Unbound, name: &str) -> String {
    let out = server.dig(&["+noall", "+comments", name, "A"]);
    let at = out.find("status: ").expect("dig shows a status") + 8;
    out[at..].split(',').next().unwrap().to_string()
}

/// NXDOMAIN and SERVFAIL (a zone forwarded to a dead port) are results with
/// an rcode, as dig reports them, not errors; NXDOMAIN carries the zone's SOA.
#[test]
fn nxdomain_and_servfail_are_results() {
    let Some(server) = Unbound::start("dns::nxdomain_and_servfail_are_results") else {
        return;
    };
    let s = server.server();
    let out = Netsh::eval(&format!(
        r#"let n = dns("nope.lab.test", "A", #{{server: "{s}"}});
           print(n.rcode); print(n.answers.len()); print(n.authority[0].type); print(n.flags.aa);
           let f = dns("x.dead.test", "A", #{{server: "{s}"}});
           print(f.rcode); print(f.answers.len());"#
    ));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["NXDOMAIN", "0", "SOA", "true", "SERVFAIL", "0"]
    );
    assert_eq!(dig_status(&server, "nope.lab.test"), "NXDOMAIN");
    assert_eq!(dig_status(&server, "y.dead.test"), "SERVFAIL");
}

/// An answer too big for UDP comes back truncated and is asked again over
/// TCP: every TXT record arrives, the same set dig gets; `tcp: true` asks
/// over TCP from the start.
#[test]
fn truncated_answer_is_retried_over_tcp() {
    let Some(server) = Unbound::start("dns::truncated_answer_is_retried_over_tcp") else {
        return;
    };
    let s = server.server();
    // The server does truncate this answer over UDP (dig +ignore keeps it).
    let udp = server.dig(&["+ignore", "+noall", "+comments", "big.lab.test", "TXT"]);
    assert!(udp.contains(" tc "), "unbound did not truncate: {udp}");
    let mut ours = netsh_rows(&s, &[("big.lab.test", "TXT")], "answers").remove(0);
    let mut theirs = dig_rows(&server.dig(&["+noall", "+answer", "big.lab.test", "TXT"]));
    assert_eq!(ours.len(), support::unbound::BIG_TXT);
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
    let out = Netsh::eval(&format!(
        r#"print(dns("big.lab.test", "TXT", #{{server: "{s}"}}).transport);
           print(dns("www.lab.test", "A", #{{server: "{s}"}}).transport);
           let t = dns("www.lab.test", "A", #{{server: "{s}", tcp: true}}); print(t.transport); print(t.answers[0].data);"#
    ));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["tcp", "udp", "tcp", "10.0.0.1"]
    );
}

/// dig's flags line for a question.
fn dig_flags(server: &Unbound, args: &[&str]) -> Vec<String> {
    let mut all = vec!["+noall", "+comments"];
    all.extend_from_slice(args);
    let out = server.dig(&all);
    let line = out.lines().find(|l| l.starts_with(";; flags:")).unwrap();
    let flags = line[";; flags:".len()..].split(';').next().unwrap();
    let mut v: Vec<String> = flags
        .split_whitespace()
        .filter(|f| *f != "qr")
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// The header flags match dig's, and `recurse: false` clears RD as `+norec` does.
#[test]
fn flags_match_dig_and_recurse_false_clears_rd() {
    let Some(server) = Unbound::start("dns::flags_match_dig_and_recurse_false_clears_rd") else {
        return;
    };
    let s = server.server();
    let flags = |opts: &str| {
        let out = Netsh::eval(&format!(
            r#"let f = dns("www.lab.test", "A", #{{server: "{s}"{opts}}}).flags;
               let on = []; for k in f.keys() {{ if f[k] {{ on.push(k) }} }} on.sort(); print(on);"#
        ));
        out.trim_matches(|c| c == '[' || c == ']')
            .split(", ")
            .map(|f| f.trim_matches('"').to_string())
            .filter(|f| !f.is_empty())
            .collect::<Vec<_>>()
    };
    assert_eq!(flags(""), dig_flags(&server, &["www.lab.test", "A"]));
    let norec = flags(", recurse: false");
    assert_eq!(norec, dig_flags(&server, &["+norec", "www.lab.test", "A"]));
    assert!(!norec.contains(&"rd".to_string()), "{norec:?}");
}

/// `-e` (and the REPL) print an answer like `dig +noall +answer`, the status
/// and server underneath.
#[test]
fn printed_like_dig_answer_section() {
    let Some(server) = Unbound::start("dns::printed_like_dig_answer_section") else {
        return;
    };
    let s = server.server();
    let out = Netsh::eval(&format!(
        r#"dns("alias.lab.test", "A", #{{server: "{s}"}})"#
    ));
    let (records, status): (Vec<&str>, Vec<&str>) = out.lines().partition(|l| !l.starts_with(";;"));
    let theirs = dig_rows(&server.dig(&["+noall", "+answer", "alias.lab.test", "A"]));
    assert_eq!(dig_rows(&records.join("\n")), theirs);
    assert_eq!(status.len(), 1, "{out}");
    assert!(
        status[0].starts_with(&format!(
            ";; status: NOERROR, flags: aa rd ra, server: {s} (udp), "
        )),
        "{out}"
    );
}

/// dns_many asks every name and returns the answers in the order asked,
/// NXDOMAIN included, with any concurrency.
#[test]
fn dns_many_answers_in_order() {
    let Some(server) = Unbound::start("dns::dns_many_answers_in_order") else {
        return;
    };
    let s = server.server();
    for concurrency in [1, 7, 500] {
        let out = Netsh::eval(&format!(
            r#"let names = [];
               for i in 0..300 {{ names.push(if i % 3 == 0 {{ "www.lab.test" }} else if i % 3 == 1 {{ `n${{i}}.lab.test` }} else {{ "ns1.lab.test" }}) }}
               let rs = dns_many(names, "A", #{{server: "{s}", concurrency: {concurrency}}});
               print(rs.len());
               for r in rs {{ print(`${{r.name}} ${{r.rcode}} ${{r.answers.map(|a| a.data)}}`) }}"#
        ));
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("300"));
        for (i, line) in lines.enumerate() {
            let expected = match i % 3 {
                0 => "www.lab.test. NOERROR [\"10.0.0.1\"]".to_string(),
                1 => format!("n{i}.lab.test. NXDOMAIN []"),
                _ => "ns1.lab.test. NOERROR [\"10.0.0.53\"]".to_string(),
            };
            assert_eq!(line, expected, "answer {i} with concurrency {concurrency}");
        }
    }
}

/// Nothing listens on the server's port: an error of kind `refused`.
#[test]
fn refused_port_is_an_error() {
    let port = support::closed_port();
    let out = Netsh::eval(&format!(
        r#"try {{ dns("www.lab.test", "A", #{{server: "127.0.0.1:{port}"}}); print("answered") }} catch (e) {{ print(e.kind); print(e.message) }}"#
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "refused", "{out}");
    assert!(lines[1].contains(&format!("127.0.0.1:{port}")), "{out}");
}

/// A server that reads the question and never answers: a `timeout` error
/// after the time given, which says whom it waited for; the question was
/// sent (and resent) meanwhile.
#[test]
fn silent_server_times_out() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let out = Netsh::eval(&format!(
        r#"try {{ dns("www.lab.test", "A", #{{server: "{addr}", timeout: 1500}}); print("answered") }} catch (e) {{ print(e.kind); print(e.message) }}"#
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "timeout", "{out}");
    assert!(lines[1].contains(&addr.to_string()), "{out}");
    let mut buf = [0u8; 512];
    let (first, _) = socket.recv_from(&mut buf).unwrap();
    assert!(first > 12, "a DNS question arrived");
    let (second, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(first, second, "the question was resent after a second");
}

/// An answer with our ID that is not DNS: a `protocol` error naming the server.
#[test]
fn malformed_answer_is_an_error() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (_, from) = socket.recv_from(&mut buf).unwrap();
        // Our ID, the response bit, one question claimed, and then nothing.
        let reply = [buf[0], buf[1], 0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0, 3, b'w'];
        socket.send_to(&reply, from).unwrap();
    });
    let out = Netsh::eval(&format!(
        r#"try {{ dns("www.lab.test", "A", #{{server: "{addr}", timeout: 3000}}); print("answered") }} catch (e) {{ print(e.kind); print(e.message) }}"#
    ));
    peer.join().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "protocol", "{out}");
    assert!(lines[1].contains("malformed answer"), "{out}");
}

/// Bad input fails with a clear error before anything is sent: the server
/// (a socket the test holds) receives nothing.
#[test]
fn bad_input_fails_before_sending() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let cases = [
        (
            format!(r#"dns("a b.test", "A", #{{server: "{addr}"}})"#),
            "is not a DNS name",
        ),
        (
            format!(r#"dns("a..test", "A", #{{server: "{addr}"}})"#),
            "empty label",
        ),
        (
            format!(r#"dns("x.test", "BOGUS", #{{server: "{addr}"}})"#),
            "unknown record type",
        ),
        (
            format!(r#"dns("x.test", 70000, #{{server: "{addr}"}})"#),
            "out of range",
        ),
        (
            r#"dns("x.test", "A", #{server: "127.0.0.1"})"#.to_string(),
            "has no port",
        ),
        (
            r#"dns("x.test", "A", #{server: "localhost:53"})"#.to_string(),
            "is not an IP address",
        ),
        (
            r#"dns("x.test", "A", #{server: "1.2.3:53"})"#.to_string(),
            "server",
        ),
        (
            format!(r#"dns("x.test", "A", #{{server: "{addr}", tiemout: 5}})"#),
            "unknown option 'tiemout'",
        ),
        (
            format!(r#"dns("x.test", "A", #{{server: "{addr}", timeout: -1}})"#),
            "timeout",
        ),
        (
            format!(r#"dns_many(["ok.test", "not ok"], "A", #{{server: "{addr}"}})"#),
            "\"not ok\" is not a DNS name",
        ),
        (
            format!(r#"dns_many(["ok.test", 5], "A", #{{server: "{addr}"}})"#),
            "names[1]",
        ),
        (
            format!(r#"dns_many(["ok.test"], "A", #{{server: "{addr}", concurrency: 0}})"#),
            "concurrency",
        ),
    ];
    for (code, words) in &cases {
        let err = Netsh::eval_err(code);
        assert!(err.contains(words), "{code}: {err}");
        assert!(!err.contains("panicked"), "{code}: {err}");
    }
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    assert!(socket.recv_from(&mut buf).is_err(), "something was sent");
}

/// The bundled `locate` scenario asks the DNS server it is given for each
/// record type and shows the answer, as dig would.
#[test]
fn locate_scenario_asks_each_record_type() {
    let Some(server) = Unbound::start("dns::locate_scenario_asks_each_record_type") else {
        return;
    };
    let run = Netsh::in_checkout()
        .args(["scripts/locate.rhai", "localhost", &server.server()])
        .ok();
    let out = run.stdout();
    assert!(
        out.contains(r#"localhost A: NOERROR ["127.0.0.1"]"#),
        "{}",
        run.explain()
    );
    for rtype in ["AAAA", "MX", "NS", "TXT", "SOA", "SRV", "CAA"] {
        assert!(
            out.contains(&format!("localhost {rtype}: ")),
            "{rtype}: {out}"
        );
    }
    assert!(out.contains(&format!("[{}, ", server.server())), "{out}");
}

/// `dnssec: true` sets the DO bit in the question's EDNS record (and the
/// default leaves it clear): read off the datagram a test socket receives.
#[test]
fn dnssec_sets_the_do_bit() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    for (opts, expected) in [(", dnssec: true", 0x80u8), ("", 0x00)] {
        let _ = Netsh::new()
            .args([
                "-e",
                &format!(r#"try {{ dns("x.test", "A", #{{server: "{addr}", timeout: 300{opts}}}) }} catch {{ }}"#),
            ])
            .output();
        let mut buf = [0u8; 512];
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        // The OPT record closes the question: root name, type 41, the UDP
        // size, extended RCODE, version, then the flags whose top bit is DO.
        let opt = &buf[n - 11..n];
        assert_eq!(
            opt[..3],
            [0, 0, 41],
            "no EDNS record at the end: {:02x?}",
            &buf[..n]
        );
        assert_eq!(opt[7], expected, "{opts:?}: {:02x?}", opt);
        // Drain the resends of that question.
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while socket.recv_from(&mut buf).is_ok() {}
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }
}

/// DNS over TLS (`tls`): the same answers as `dig +tls` from unbound's
/// TLS port, checked against the server's certificate given as `ca`;
/// a big answer comes whole (no truncation inside TLS).
#[test]
fn dns_over_tls_matches_dig_over_tls() {
    let Some(server) = Unbound::start_tls("dns::dns_over_tls_matches_dig_over_tls") else {
        return;
    };
    let (Some(port), Some(cert)) = (server.tls_port, &server.tls_cert) else {
        panic!("unbound started without TLS");
    };
    let code = format!(
        r#"let o = #{{server: "127.0.0.1:{port}", tls: #{{ca: "{cert}"}}}};
           let a = dns("www.lab.test", "A", o);
           let big = dns("big.lab.test", "TXT", o);
           [a.transport, a.answers.map(|r| r.data), big.transport, big.answers.len()]"#,
        cert = cert.display()
    );
    let run = Netsh::new().args(["-e", &code]).ok();
    let dig = support::unbound::dig(port, &["+tls", "+short", "www.lab.test", "A"]);
    assert_eq!(dig, "10.0.0.1", "dig +tls answered {dig:?}");
    assert_eq!(
        run.stdout(),
        format!(
            r#"["tls", ["{dig}"], "tls", {}]"#,
            support::unbound::BIG_TXT
        ),
        "{}",
        run.explain()
    );
}

/// DNS over TLS checks whom it talks to: a self-signed certificate is
/// not trusted without `ca`, and with it the name must match (the IP
/// address asked, or `sni`). A failed check is an error, not an answer.
#[test]
fn dns_over_tls_checks_the_certificate() {
    let Some(server) = Unbound::start_tls("dns::dns_over_tls_checks_the_certificate") else {
        return;
    };
    let (Some(port), Some(cert)) = (server.tls_port, &server.tls_cert) else {
        panic!("unbound started without TLS");
    };
    let ask = |tls: &str| {
        let code = format!(
            r#"let f = || {{ try {{ return dns("www.lab.test", "A", #{{server: "127.0.0.1:{port}", timeout: 3000, tls: {tls}}}).answers[0].data; }} catch (e) {{ return `${{e.kind}} | ${{e}}`; }} }}; f.call()"#
        );
        Netsh::new().args(["-e", &code]).ok().stdout()
    };
    let cert = cert.display();
    let untrusted = ask("true");
    assert!(
        untrusted.starts_with("protocol | ") && untrusted.contains("127.0.0.1"),
        "{untrusted}"
    );
    assert_eq!(ask(&format!(r#"#{{ca: "{cert}"}}"#)), "10.0.0.1");
    assert_eq!(
        ask(&format!(r#"#{{ca: "{cert}", sni: "dns.lab.test"}}"#)),
        "10.0.0.1"
    );
    let wrong_name = ask(&format!(r#"#{{ca: "{cert}", sni: "other.lab.test"}}"#));
    assert!(
        wrong_name.starts_with("protocol | ") && wrong_name.contains("other.lab.test"),
        "{wrong_name}"
    );
    // TLS to the plain DNS port is an error soon, not a hang.
    let plain = server.port;
    let code = format!(
        r#"let f = || {{ try {{ dns("www.lab.test", "A", #{{server: "127.0.0.1:{plain}", timeout: 3000, tls: #{{ca: "{cert}"}}}}); return "answered"; }} catch (e) {{ return e.kind; }} }}; f.call()"#
    );
    let out = Netsh::new().args(["-e", &code]).ok().stdout();
    assert_ne!(out, "answered");
}

/// DNS over HTTPS (`https`): the same answer as `dig +https` from
/// unbound's HTTPS port, over HTTP/2 with the certificate checked.
#[test]
fn dns_over_https_matches_dig_over_https() {
    let Some(server) = Unbound::start_tls("dns::dns_over_https_matches_dig_over_https") else {
        return;
    };
    let (Some(port), Some(cert)) = (server.https_port, &server.tls_cert) else {
        panic!("unbound started without HTTPS");
    };
    let cert = cert.display();
    let code = format!(
        r#"let o = #{{server: "127.0.0.1:{port}", https: true, tls: #{{ca: "{cert}"}}}};
           let a = dns("www.lab.test", "A", o);
           let named = dns("www.lab.test", "A", o + #{{tls: #{{ca: "{cert}", sni: "dns.lab.test"}}, https: "/dns-query"}});
           let untrusted = (|| {{ try {{ dns("www.lab.test", "A", #{{server: "127.0.0.1:{port}", https: true, timeout: 3000}}); return "answered" }} catch (e) {{ return e.kind }} }}).call();
           [a.transport, a.answers.map(|r| r.data), named.answers[0].data, untrusted]"#
    );
    let run = Netsh::new().args(["-e", &code]).ok();
    let dig = support::unbound::dig(port, &["+https", "+short", "www.lab.test", "A"]);
    assert_eq!(dig, "10.0.0.1", "dig +https answered {dig:?}");
    assert_eq!(
        run.stdout(),
        format!(r#"["https", ["{dig}"], "{dig}", "protocol"]"#),
        "{}",
        run.explain()
    );
}
