//! `dns_serve`: a DNS server for a script's own names, checked with dig
//! (bind9-dnsutils) and with netsh's own `dns()`, on 127.0.0.1 only.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::support::{self, Netsh};

/// A netsh process serving `records` (Rhai text) until dropped, and the
/// port it answers on.
struct Served {
    child: Child,
    port: u16,
}

impl Served {
    fn start(records: &str) -> Served {
        let code =
            format!("let d = dns_serve(0, {records}, #{{quiet: true}}); print(d.port); d.wait();");
        let mut child = Command::new(support::netsh_bin())
            .args(["-e", &code])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("netsh starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("netsh's stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("netsh prints the port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("netsh printed {line:?}, not a port: did dns_serve start?")
        });
        Served { child, port }
    }

    /// `dig +short` for `name`/`rtype` against this server, one line each.
    fn dig_short(&self, name: &str, rtype: &str) -> Vec<String> {
        let out = self.dig(&["+short", name, rtype]);
        out.lines().map(str::to_string).collect()
    }

    fn dig(&self, args: &[&str]) -> String {
        support::unbound::dig(self.port, args)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have_dig() -> bool {
    Command::new("dig").arg("-v").output().is_ok()
}

const LAB: &str = r#"#{
    "www.lab.test": ["127.0.0.1", "::1"],
    "lab.test": #{MX: ["10 mail.lab.test.", "20 backup.lab.test."], TXT: "\"v=spf1 -all\""},
    "alias.lab.test": #{CNAME: "web.lab.test."},
    "web.lab.test": #{CNAME: "www.lab.test."},
    "_http._tcp.lab.test": #{SRV: "0 5 8080 www.lab.test."},
    "Mixed.Lab.Test": "10.0.0.7"
}"#;

/// What dig reads from the server is what the script gave, type by type;
/// CNAMEs are followed inside the records; case does not matter.
#[test]
fn dig_reads_what_the_script_serves() {
    if !have_dig() {
        return support::skip(
            "dig_reads_what_the_script_serves",
            "dig is not installed (bind9-dnsutils)",
        );
    }
    let served = Served::start(LAB);
    assert_eq!(served.dig_short("www.lab.test", "A"), ["127.0.0.1"]);
    assert_eq!(served.dig_short("www.lab.test", "AAAA"), ["::1"]);
    let mut mx = served.dig_short("lab.test", "MX");
    mx.sort();
    assert_eq!(mx, ["10 mail.lab.test.", "20 backup.lab.test."]);
    assert_eq!(served.dig_short("lab.test", "TXT"), ["\"v=spf1 -all\""]);
    assert_eq!(
        served.dig_short("alias.lab.test", "A"),
        ["web.lab.test.", "www.lab.test.", "127.0.0.1"]
    );
    assert_eq!(
        served.dig_short("_http._tcp.lab.test", "SRV"),
        ["0 5 8080 www.lab.test."]
    );
    assert_eq!(served.dig_short("mixed.lab.TEST", "A"), ["10.0.0.7"]);
    // An answer is authoritative; a name not there is NXDOMAIN, a type
    // not there is an empty NOERROR.
    let full = served.dig(&["www.lab.test", "A"]);
    assert!(
        full.contains("status: NOERROR") && full.contains(" aa"),
        "{full}"
    );
    let none = served.dig(&["nope.lab.test", "A"]);
    assert!(none.contains("status: NXDOMAIN"), "{none}");
    let nodata = served.dig(&["lab.test", "A"]);
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );
}

/// An answer too big for a datagram comes back truncated, and dig (and
/// netsh's own `dns()`) ask again over TCP and get all of it.
#[test]
fn a_big_answer_is_truncated_and_retried_over_tcp() {
    let txt: Vec<String> = (0..40)
        .map(|i| format!("\"\\\"{i:02}{}\\\"\"", "x".repeat(100)))
        .collect();
    let records = format!("#{{\"big.lab.test\": #{{TXT: [{}]}}}}", txt.join(", "));
    let code = format!(
        r#"let d = dns_serve(0, {records}, #{{quiet: true}});
           let r = dns("big.lab.test", "TXT", #{{server: `127.0.0.1:${{d.port}}`}});
           let s = d.stats();
           [r.transport, r.answers.len(), s.truncated, s.tcp]"#
    );
    let run = Netsh::new().args(["-e", &code]).ok();
    assert_eq!(run.stdout(), r#"["tcp", 40, 1, 1]"#, "{}", run.explain());
    if have_dig() {
        let served = Served::start(&records);
        let lines = served.dig_short("big.lab.test", "TXT");
        assert_eq!(lines.len(), 40, "dig got {lines:?}");
    }
}

/// A closure answers each question; `()` is NXDOMAIN; a closure that
/// throws gives SERVFAIL, says why on stderr, and the server goes on.
#[test]
fn a_closure_answers_and_its_errors_are_servfail() {
    let code = r#"
        let d = dns_serve(0, |q| {
            if q.name == "boom.test" { throw "no answer for you" }
            if q.name.ends_with(".lab.test") { return #{A: "127.0.0.1", TXT: `"${q.type} ${q.tcp}"`} }
        }, #{quiet: true});
        let s = #{server: `127.0.0.1:${d.port}`};
        let a = dns("x.lab.test", "A", s);
        let t = dns("x.lab.test", "TXT", s);
        [a.answers[0].data, t.answers[0].data, dns("x.other", "A", s).rcode,
         dns("boom.test", "A", s).rcode, dns("y.lab.test", "A", s).rcode, d.stats().failed]"#;
    let run = Netsh::new().args(["-e", code]).ok();
    assert_eq!(
        run.stdout(),
        r#"["127.0.0.1", "\"TXT false\"", "NXDOMAIN", "SERVFAIL", "NOERROR", 1]"#,
        "{}",
        run.explain()
    );
    assert!(
        run.stderr().contains("no answer for you"),
        "{}",
        run.explain()
    );
}

/// Records that do not read, options that do not exist, a closure of the
/// wrong shape and a port in use fail before anything is served, saying
/// which.
#[test]
fn bad_input_fails_before_serving() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cases = [
        (
            r#"dns_serve(0, #{"a.test": "www.test"})"#.to_string(),
            "not an IP address",
        ),
        (
            r#"dns_serve(0, #{"a.test": #{A: "127.1"}})"#.into(),
            "not an IPv4 address",
        ),
        (
            r#"dns_serve(0, #{"a.test": #{MX: "mail.test"}})"#.into(),
            "MX",
        ),
        (
            r#"dns_serve(0, #{"a.test": #{BOGUS: "x"}})"#.into(),
            "unknown record type",
        ),
        (r#"dns_serve(0, #{"a test": "127.0.0.1"})"#.into(), "a test"),
        (r#"dns_serve(0, #{}, #{ttl: -1})"#.into(), "ttl"),
        (r#"dns_serve(0, #{}, #{colour: 1})"#.into(), "colour"),
        ("dns_serve(0, |a, b| 1)".into(), "takes 1 parameter"),
        (r#"dns_serve("example.com:53", #{})"#.into(), "example.com"),
        (format!(r#"dns_serve("127.0.0.1:{port}", #{{}})"#), "in use"),
    ];
    for (code, says) in cases {
        let err = Netsh::eval_err(&code);
        assert!(
            err.contains("dns_serve") && err.contains(says),
            "{code}: {err}"
        );
    }
}

/// Garbage sent to the server gets FORMERR or nothing, never a crash:
/// a real question right after is answered.
#[test]
fn garbage_does_not_stop_the_server() {
    let served = Served::start(r#"#{"a.lab.test": "127.0.0.1"}"#);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.connect(("127.0.0.1", served.port)).unwrap();
    let mut buf = [0u8; 2048];
    // Too short to be a header: no answer at all.
    socket.send(&[0x12]).unwrap();
    // A header whose question runs off the end: FORMERR, our ID.
    socket
        .send(&[
            0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 5, b'a', b'b',
        ])
        .unwrap();
    let n = socket
        .recv(&mut buf)
        .expect("an answer to the malformed question");
    let reply = Message::from_vec(&buf[..n]).expect("a DNS message");
    assert_eq!(reply.metadata.id, 0xabcd);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    // And a real question is still answered.
    let mut question = Message::query();
    question.add_query(Query::query(
        Name::from_ascii("a.lab.test.").unwrap(),
        RecordType::A,
    ));
    socket.send(&question.to_vec().unwrap()).unwrap();
    let n = socket.recv(&mut buf).expect("an answer");
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.metadata.id, question.metadata.id);
    assert_eq!(reply.answers.len(), 1);
}

/// `stop()` frees the port at once (a question after it is refused) and
/// the server leaves `jobs()`.
#[test]
fn stop_frees_the_port() {
    let code = r#"
        let d = dns_serve(0, #{"a.test": "127.0.0.1"}, #{quiet: true});
        let s = #{server: `127.0.0.1:${d.port}`, timeout: 2000};
        let before = dns("a.test", "A", s).rcode;
        d.stop();
        let after = (|| { try { dns("a.test", "A", s); return "answered" } catch (e) { return e.kind } }).call();
        [before, after, jobs().len()]"#;
    let run = Netsh::new().args(["-e", code]).ok();
    assert_eq!(
        run.stdout(),
        r#"["NOERROR", "refused", 0]"#,
        "{}",
        run.explain()
    );
}

/// `netsh locate` where no DNS server answers (a network namespace with
/// only loopback) starts its own with `dns_serve` and shows every record
/// type from it, under its own statement (`--sandbox`).
#[test]
fn locate_scenario_serves_its_own_zone_when_no_server_answers() {
    if let Some(why) = support::netns_unavailable() {
        return support::skip(
            "locate_scenario_serves_its_own_zone_when_no_server_answers",
            &why,
        );
    }
    let run = Netsh::in_netns(&[]).args(["--sandbox", "locate"]).ok();
    let out = run.stdout();
    assert!(
        out.contains("No DNS server answers here"),
        "{}",
        run.explain()
    );
    for line in [
        r#"lab.test A: NOERROR ["127.0.0.1"]"#,
        r#"lab.test MX: NOERROR ["10 mail.lab.test."]"#,
        r#"www.lab.test CNAME: NOERROR ["lab.test."]"#,
        r#"_http._tcp.lab.test SRV: NOERROR ["0 5 80 www.lab.test."]"#,
        "nope.lab.test A: NXDOMAIN",
    ] {
        assert!(out.contains(line), "{line}: {}", run.explain());
    }
}
