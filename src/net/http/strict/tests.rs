//! The strict URL reading against the url crate's: a table of the
//! spellings parsers disagree on, and a property over generated URLs.

use super::*;

/// The typed-URL cases: what is accepted, and what is refused and why.
#[test]
fn urls_are_read_once_and_strictly() {
    for good in [
        "http://127.0.0.1:8080/x",
        "https://example.com",
        "http://[::1]:80/",
        "file:///etc/hosts",
        "HTTP://127.0.0.1/",
        "http://LocalHost./a?b#c",
        "http://user:pw@127.0.0.1:8/x",
        "http://127.0.0.1/a?c\\d",
        "http://127.0.0.1/x@127.1",
        "http://127.0.0.1:/x",
    ] {
        let checked = check(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(checked.url, Url::parse(good).unwrap(), "{good}");
    }
    let bad = [
        ("not a url", "is not a URL"),
        ("ftp://example.com/x", "unsupported scheme 'ftp'"),
        ("http://1.2.3/", "'1.2.3' is not an address"),
        ("http://0x7f.1/", "'0x7f.1' is not an address"),
        (
            "http://127.1:80/",
            "'127.1' is not an address (it has 2 parts",
        ),
        ("http://0177.0.0.1/", "'0177.0.0.1' is not an address"),
        ("http://0x7f.0.0.1/", "'0x7f.0.0.1' is not an address"),
        ("http://2130706433/", "'2130706433' is not an address"),
        ("http://127.0.0.1./", "'127.0.0.1.' is not an address"),
        (
            "http://%31%32%37.0.0.1/",
            "'%31%32%37.0.0.1' is not an address",
        ),
        ("http://a!b/", "'a!b' is not a host name"),
        // The url crate reads 127.1:B as the authority (the backslash ends
        // it); a reader stopping at '/' would check 127.0.0.1:A instead.
        ("http://127.1:9\\@127.0.0.1:8/x", "contains a backslash"),
        ("http://a@b@127.0.0.1/", "more than one '@'"),
        ("http://127.0.0.1\t/", "control character"),
        ("http://127.\n0.0.1/", "control character"),
        (" http://a.b/", "no spaces"),
        ("http://a.b:99999/", "is not a URL"),
        ("file://other/etc/hosts", "another host"),
        ("", "is not a URL"),
        ("http:///x", "has no host"),
        ("http:////127.1/x", "has no host"),
        ("http:x", "has no host"),
        ("http:/127.1/", "has no host"),
        ("https:\\\\x/", "backslash"),
        ("http://127.0.0.1:0/", "port 0 cannot be sent to"),
        ("http://münchen.example/", "xn--"),
    ];
    for (text, expected) in bad {
        let err = check(text).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

/// A password in a URL never shows in an error about it.
#[test]
fn credentials_stay_out_of_messages() {
    let err = check("http://user:secret@127.1/").unwrap_err().to_string();
    assert!(
        !err.contains("secret") && err.contains("http://127.1/"),
        "{err}"
    );
    let url = Url::parse("http://user:secret@127.0.0.1/x").unwrap();
    assert_eq!(shown(&url), "http://127.0.0.1/x");
    assert_eq!(
        without_userinfo("https://u:p@h/x@y"),
        "https://h/x@y",
        "only the authority's userinfo goes"
    );
}

/// A redirect's Location meets the same check, and the refusal names it.
#[test]
fn redirect_targets_are_checked_as_written() {
    let here = Url::parse("http://127.0.0.1:8000/a/b?q").unwrap();
    for (location, expected) in [
        ("/c", "http://127.0.0.1:8000/c"),
        ("c", "http://127.0.0.1:8000/a/c"),
        ("?z", "http://127.0.0.1:8000/a/b?z"),
        ("//localhost:9/x", "http://localhost:9/x"),
        ("https://[::1]/", "https://[::1]/"),
        ("127.1:80/x", "http://127.0.0.1:8000/a/127.1:80/x"),
    ] {
        let next = next_hop(&here, location).unwrap_or_else(|e| panic!("{location}: {e}"));
        assert_eq!(next.as_str(), expected, "{location}");
    }
    for (location, expected) in [
        (
            "http://127.1:9/again",
            "redirect to http://127.1:9/again refused: '127.1' is not an address",
        ),
        ("//0x7f.0.0.1/", "'0x7f.0.0.1' is not an address"),
        ("http://2130706433/", "'2130706433' is not an address"),
        ("HTTP://0177.0.0.1/", "'0177.0.0.1' is not an address"),
        (
            "file:///etc/passwd",
            "redirect to file:///etc/passwd refused: fetch follows redirects to http and https URLs only",
        ),
        ("ftp://127.0.0.1/", "http and https URLs only"),
        ("\\\\127.1/", "backslash"),
        ("/\\127.1/", "backslash"),
        (" //127.1/", "spaces or control characters"),
        ("/\t/127.1/", "spaces or control characters"),
        ("http:127.1", "has no host"),
        (
            "http://u:secret@127.1/",
            "redirect to http://127.1/ refused",
        ),
        ("", "empty Location"),
    ] {
        let err = next_hop(&here, location).unwrap_err().to_string();
        assert!(err.contains(expected), "{location:?}: {err}");
        assert!(!err.contains("secret"), "{err}");
    }
}

proptest::proptest! {
    /// Whatever a generated URL looks like, when netsh accepts it the host
    /// it checked is the host the url crate (and so the connection) reads.
    #[test]
    fn the_host_checked_is_the_host_contacted(
        scheme in "(http|https|HTTP)",
        slashes in "(//|/|///|)",
        user in "([a-z:@\\\\]{0,4}@)?",
        host in "(127\\.0\\.0\\.1|127\\.1|0x7f\\.0\\.0\\.1|0177\\.0\\.0\\.1|2130706433|localhost|LOCALHOST\\.|\\[::1\\]|a_b|[a-z0-9.%\\\\]{1,6})",
        port in "(:[0-9]{0,5})?",
        rest in "[/?#@a-z0-9\\\\.:]{0,8}",
    ) {
        let text = format!("{scheme}:{slashes}{user}{host}{port}{rest}");
        if let Ok(checked) = check(&text) {
            let theirs = Url::parse(&text).expect("accepted, so it parses");
            proptest::prop_assert_eq!(&checked.url, &theirs);
            let agrees = match (checked.host, theirs.host()) {
                (Some(Host::Ip(std::net::IpAddr::V4(a))), Some(url::Host::Ipv4(b))) => a == b,
                (Some(Host::Ip(std::net::IpAddr::V6(a))), Some(url::Host::Ipv6(b))) => a == b,
                (Some(Host::Name(a)), Some(url::Host::Domain(b))) => a.eq_ignore_ascii_case(b),
                _ => false,
            };
            proptest::prop_assert!(agrees, "{}", text);
        }
    }
}
