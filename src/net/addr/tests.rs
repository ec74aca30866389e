//! Unit tests of the strict address parser.

use super::*;

#[test]
fn targets_in_every_spelling() {
    let cases = [
        ("127.0.0.1:9000", "127.0.0.1", 9000),
        ("localhost:80", "localhost", 80),
        ("[::1]:9000", "::1", 9000),
        ("example.com:0", "example.com", 0),
        ("example.com.:1", "example.com.", 1),
        ("[fe80::1]:65535", "fe80::1", 65535),
        ("[::ffff:127.0.0.1]:5", "::ffff:127.0.0.1", 5),
        ("_srv.example:5", "_srv.example", 5),
    ];
    for (text, host, port) in cases {
        let t = parse_target(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!((t.host.as_str(), t.port), (host, port), "{text}");
    }
}

#[test]
fn bad_targets_say_why() {
    let cases = [
        ("localhost", "has no port"),
        ("localhost:70000", "port 70000 is out of range"),
        ("localhost:-1", "port -1 is out of range"),
        ("localhost:99999999999999999999", "is out of range"),
        ("::1:80", "write it as [::1]:PORT"),
        ("[::1]80", "needs a port after the ']'"),
        ("[::1", "without a closing ']'"),
        ("::1]:80", "']' without an opening '['"),
        (":80", "no host"),
        ("host:", "has no port after the ':'"),
        ("host:+80", "\"+80\" in \"host:+80\" is not a port number"),
        (
            "host:http",
            "\"http\" in \"host:http\" is not a port number",
        ),
        ("host:-0", "\"-0\" in \"host:-0\" is not a port number"),
        ("host:-00", "is not a port number"),
        ("127.0.0.1:80\n", "\"127.0.0.1:80\\n\" has white space"),
        (" example.com:0", "white space around it"),
        ("127.0.0.1:80\n", "white space around it"),
        ("[127.0.0.1]:80", "brackets hold an IPv6 address"),
        ("a b:80", "contains ' '"),
    ];
    for (text, expected) in cases {
        let err = parse_target(text).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: got '{err}'");
    }
}

/// inet_aton's shorthand and octal/hex forms are refused, each with its reason.
#[test]
fn only_canonical_dotted_quads() {
    let cases = [
        ("1.2.3", "it has 3 parts, not 4"),
        ("127.1", "it has 2 parts, not 4"),
        ("2130706433", "it has 1 part, not 4"),
        ("0x7f.1", "\"0x7f\" is not a decimal number"),
        ("0x7f000001", "\"0x7f000001\" is not a decimal number"),
        ("1.2.3.0x4", "\"0x4\" is not a decimal number"),
        ("010.0.0.1", "leading zeros are ambiguous"),
        ("0177.0.0.1", "leading zeros are ambiguous"),
        ("999.1.1.1", "999 is larger than 255"),
        ("1.2.3.4.", "it ends with a dot"),
        ("1..2.3", "\"\" is not a decimal number"),
        ("1.2.3.4.5", "it has 5 parts, not 4"),
        ("a.1", "\"a\" is not a decimal number"),
    ];
    for (text, why) in cases {
        let err = parse_host(text).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{text:?} is not an IPv4 address: {why}")),
            "{text}: got '{err}'"
        );
        let with_port = format!("{text}:80");
        assert!(parse_target(&with_port).is_err(), "{with_port}");
        assert!(target(text, 80).is_err(), "{text}, 80");
    }
    assert_eq!(
        parse_host("1.2.3.4").unwrap(),
        Host::Ip("1.2.3.4".parse().unwrap())
    );
    // A name that merely contains digits is still a name.
    assert_eq!(
        parse_host("1.2.3.example").unwrap(),
        Host::Name("1.2.3.example".into())
    );
}

#[test]
fn a_host_given_apart_must_not_carry_a_port() {
    for text in ["127.0.0.1:9", "localhost:80", "[::1]:80"] {
        let err = target(text, 5).unwrap_err().to_string();
        assert!(err.contains("already carries a port"), "{text}: {err}");
    }
    // `::1:80` is a valid IPv6 address (::0.1.0.128), not ::1 and a port.
    assert!(matches!(parse_host("::1:80"), Ok(Host::Ip(_))));
    assert_eq!(target("[::1]", 5).unwrap().host, "::1");
}

#[test]
fn hosts_have_balanced_brackets_and_no_spaces() {
    let cases = [
        ("[::1", "without a closing ']'"),
        ("::1]", "']' without an opening '['"),
        ("[::1]x", "has \"x\" after the ']'"),
        ("[::1]:abc", "has \":abc\" after the ']'"),
        ("[]", "\"\" is not one"),
        (" 127.0.0.1 ", "white space around it"),
        ("", "the host is empty"),
        ("fe80::1%eth0", "zone indexes"),
        ("a..b", "empty label"),
        ("bücher.de", "xn--"),
        ("a/b", "contains '/'"),
        ("-", "starts or ends with '-'"),
        ("-a-.b-", "the label \"-a-\" starts or ends with '-'"),
        ("a.b-", "the label \"b-\" starts or ends with '-'"),
        ("-oProxyCommand", "starts or ends with '-'"),
        ("_", "the label \"_\" has no letter or digit"),
        ("a._.b", "has no letter or digit"),
        ("line\nbreak", "\"line\\nbreak\" contains '\\n'"),
    ];
    for (text, expected) in cases {
        let err = parse_host(text).unwrap_err().to_string();
        assert!(err.contains(expected), "{text:?}: got '{err}'");
    }
    let long_label = format!("{}.com", "a".repeat(64));
    assert!(parse_host(&long_label).is_err());
    let long_name = ["abcdefghi"; 26].join(".");
    assert!(parse_host(&long_name).is_err());
}

#[test]
fn ip_addresses() {
    assert_eq!(parse_ip("[::1]").unwrap().to_string(), "::1");
    assert_eq!(parse_ip("10.0.0.1").unwrap().to_string(), "10.0.0.1");
    for bad in ["hello", "", "[::1", "127.1", " ::1", "a b"] {
        assert!(parse_ip(bad).is_err(), "{bad}");
    }
    assert!(
        parse_ip("hello")
            .unwrap_err()
            .to_string()
            .contains("\"hello\" is not an IPv4 or IPv6 address")
    );
}

#[test]
fn unix_addresses() {
    assert!(parse_unix("127.0.0.1:80").is_none());
    assert_eq!(
        parse_unix("unix:/tmp/a.sock").unwrap().unwrap(),
        UnixAddr::Path("/tmp/a.sock".into())
    );
    assert_eq!(
        parse_unix("unix:@netsh").unwrap().unwrap().to_string(),
        "unix:@netsh"
    );
    let long = format!("unix:/{}", "x".repeat(200));
    for (text, expected) in [
        ("unix:", "names no socket"),
        ("unix:@", "no name after the '@'"),
        ("unix:/a\0b", "NUL"),
        (long.as_str(), "at most 107"),
    ] {
        let err = parse_unix(text).unwrap().unwrap_err().to_string();
        assert!(err.contains(expected), "{text:?}: got '{err}'");
    }
}

#[test]
fn bind_addresses() {
    assert_eq!(parse_bind("9000").unwrap(), any_addr(9000));
    assert_eq!(parse_bind(":9000").unwrap(), any_addr(9000));
    assert_eq!(parse_bind("*:9000").unwrap(), any_addr(9000));
    assert_eq!(
        parse_bind("127.0.0.1:0").unwrap().to_string(),
        "127.0.0.1:0"
    );
    assert_eq!(parse_bind("[::1]:5").unwrap().to_string(), "[::1]:5");
    assert!(parse_bind("example.com:80").is_err());
    assert!(parse_bind("70000").is_err());
    assert!(parse_bind(" 9000").is_err());
    assert!(parse_bind("127.1:80").is_err());
}

/// Ports are decimal: leading zeros read as nc reads them, `-0` is no port.
#[test]
fn ports_are_plain_decimal() {
    assert_eq!(parse_target("127.0.0.1:080").unwrap().port, 80);
    assert_eq!(parse_target("127.0.0.1:00").unwrap().port, 0);
    assert!(parse_target("127.0.0.1:-0").is_err());
    assert!(parse_bind("-0").is_err());
    let zero = parse_target("127.0.0.1:0").unwrap();
    assert!(
        destination(&zero)
            .unwrap_err()
            .to_string()
            .contains("port 0 cannot be sent to")
    );
}

/// Names a DNS server would refuse never reach the resolver; the usual
/// ones (with `_` for service labels) still parse.
#[test]
fn host_names_follow_the_dns_label_rules() {
    for good in [
        "a",
        "a-b.c",
        "_srv._tcp.example",
        "x1.invalid",
        "example.com.",
        "0a.b",
    ] {
        assert!(matches!(parse_host(good), Ok(Host::Name(_))), "{good}");
    }
}

/// The resolver is never asked about a host the parser refuses. Each
/// spelling would mean loopback (or no query at all) if the parser ever
/// let it through, so a regression sends nothing off this machine.
#[test]
fn lookup_refuses_what_the_parser_refuses() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for host in [
        "0177.0.0.1",
        "127.1",
        "2130706433",
        "[::1",
        " x.invalid",
        "-x.invalid",
    ] {
        let target = Target {
            host: host.into(),
            port: 80,
        };
        let err = rt.block_on(lookup(&target)).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{host}: {err}");
    }
}

mod properties {
    use super::super::*;
    use proptest::prelude::*;

    /// A host name the strict parser must accept.
    fn name() -> impl Strategy<Value = String> {
        "[a-z]([a-z0-9-]{0,10}[a-z0-9])?(\\._?[a-z0-9]([a-z0-9_-]{0,10}[a-z0-9_])?){0,3}\\.[a-z]([a-z-]{0,4}[a-z])?"
    }

    proptest! {
        /// No text makes any address parser panic.
        #[test]
        fn parsers_never_panic(text in "\\PC{0,40}") {
            let _ = parse_target(&text);
            let _ = parse_host(&text);
            let _ = parse_bind(&text);
            let _ = parse_ip(&text);
        }

        /// Address-like text (digits, dots, colons, brackets, hex) never panics either.
        #[test]
        fn address_like_text_never_panics(text in "[0-9a-fx.:\\[\\]% -]{0,30}") {
            let _ = parse_target(&text);
            let _ = parse_bind(&text);
            let _ = parse_ip(&text);
        }

        /// Every socket address, printed, parses back to itself.
        #[test]
        fn socket_addresses_round_trip(ip in any::<IpAddr>(), port in any::<u16>()) {
            let text = SocketAddr::new(ip, port).to_string();
            let target = parse_target(&text).unwrap();
            prop_assert_eq!(&target.host, &ip.to_string());
            prop_assert_eq!(target.port, port);
            prop_assert_eq!(target.to_string(), text);
        }

        /// Host names with a port round-trip through Display.
        #[test]
        fn names_round_trip(host in name(), port in any::<u16>()) {
            let target = parse_target(&format!("{host}:{port}")).unwrap();
            prop_assert_eq!(&target.host, &host);
            prop_assert_eq!(parse_target(&target.to_string()).unwrap(), target.clone());
            prop_assert_eq!(super::super::target(&host, i64::from(port)).unwrap(), target);
        }

        /// What is accepted is strict: an IPv4 host is exactly its
        /// canonical dotted quad, and a name never ends in a numeric label
        /// (so the C resolver cannot read it as an address).
        #[test]
        fn accepted_hosts_are_canonical(text in "[0-9a-z.x:_-]{1,24}") {
            match parse_host(&text) {
                Ok(Host::Ip(IpAddr::V4(ip))) => prop_assert_eq!(ip.to_string(), text),
                Ok(Host::Ip(IpAddr::V6(ip))) => prop_assert_eq!(text.parse::<Ipv6Addr>().ok(), Some(ip)),
                Ok(Host::Name(name)) => {
                    prop_assert!(!looks_like_ipv4(&name));
                    prop_assert!(name.parse::<IpAddr>().is_err());
                }
                Err(_) => {}
            }
        }

        /// inet_aton's shorthand (fewer than four parts) is never an address.
        #[test]
        fn shorthand_is_refused(parts in proptest::collection::vec(0u32..70000, 1..4)) {
            let text = parts.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            let with_port = format!("{text}:80");
            prop_assert!(parse_host(&text).is_err(), "{}", text);
            prop_assert!(parse_target(&with_port).is_err());
        }

        /// Text with white space around it is refused, never trimmed.
        #[test]
        fn nothing_is_trimmed(ip in any::<std::net::Ipv4Addr>(), pad in "[ \\t\\n]{1,3}") {
            let (before, after, port) = (format!("{pad}{ip}"), format!("{ip}{pad}"), format!("{ip}:80{pad}"));
            prop_assert!(parse_host(&before).is_err());
            prop_assert!(parse_target(&port).is_err());
            prop_assert!(parse_ip(&after).is_err());
        }
    }
}
