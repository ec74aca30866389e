//! Unit tests of the wire format and the name checks.

use super::*;

#[test]
fn names_keep_only_the_last_part() {
    assert_eq!(safe_name(b"report.pdf").unwrap(), "report.pdf");
    assert_eq!(safe_name(b"docs/report.pdf").unwrap(), "report.pdf");
    assert_eq!(safe_name(b"./a.txt").unwrap(), "a.txt");
    assert_eq!(safe_name(b".bashrc").unwrap(), ".bashrc");
}

#[test]
fn escaping_names_are_refused() {
    let long = "x".repeat(256);
    let cases: [&[u8]; 12] = [
        b"",
        b"..",
        b"../etc/passwd",
        b"a/../../b",
        b"/etc/passwd",
        b"..\\..\\x",
        b"a\0b",
        b"a\nb",
        b"\x1b[31mred",
        b"\xff\xfe",
        long.as_bytes(),
        b"x.netsh-part",
    ];
    for case in cases {
        let refusal = safe_name(case).expect_err(&String::from_utf8_lossy(case));
        assert_eq!(refusal.code, Code::BadName);
    }
    for no_file_part in [&b"."[..], b"dir/", b"a//", b"a/.", b"./"] {
        let refusal = safe_name(no_file_part).expect_err(&String::from_utf8_lossy(no_file_part));
        assert!(
            refusal.message.contains("no file name part"),
            "{}",
            refusal.message
        );
    }
}

#[test]
fn part_names_fit_the_limit() {
    assert_eq!(part_name("a.txt"), ".a.txt.netsh-part");
    assert!(part_name(&"y".repeat(255)).len() <= MAX_NAME_BYTES);
}

/// The hashed form of a long name's part file is never the plain form
/// of another name (a 32-hex-digit name, say).
#[test]
fn hashed_part_names_cannot_collide_with_plain_ones() {
    let long = "y".repeat(250);
    let hashed = part_name(&long);
    assert!(hashed.ends_with(".netsh-part.netsh-part"), "{hashed}");
    let hex = &hashed[1..33];
    assert_ne!(part_name(hex), hashed);
    assert_eq!(part_name(hex), format!(".{hex}.netsh-part"));
    assert!(is_part_name(&hashed) && is_part_name(&part_name(hex)));
}

/// Only names this code makes count as part files: not `.netsh-part`,
/// `..netsh-part`, nor a name no upload could have.
#[test]
fn part_names_are_recognised_exactly() {
    for ours in [".a.txt.netsh-part", ".my-notes.netsh-part"] {
        assert!(is_part_name(ours), "{ours}");
    }
    let not_ours = [
        ".netsh-part",
        "..netsh-part",
        "a.netsh-part",
        ".a\nb.netsh-part",
        ".x.netsh-part.netsh-part",
        ".0123456789abcdef0123456789ABCDEF.netsh-part.netsh-part",
        ".a.txt.netsh-part~",
    ];
    for name in not_ours {
        assert!(!is_part_name(name), "{name}");
    }
    // A plain-form name too long for the plain form is the hashed one's.
    assert!(!is_part_name(&format!(".{}.netsh-part", "y".repeat(244))));
}

/// Invisible and text-direction characters are refused in names.
#[test]
fn names_with_invisible_characters_are_refused() {
    for c in [
        '\u{202E}', '\u{202A}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{200F}', '\u{FEFF}',
    ] {
        let name = format!("report{c}fdp.exe");
        let refusal = safe_name(name.as_bytes()).expect_err(&name);
        assert!(
            refusal.message.contains(&format!("U+{:04X}", u32::from(c))),
            "{}",
            refusal.message
        );
    }
    assert!(safe_name("naïve café.txt".as_bytes()).is_ok());
}

/// The version byte is judged as soon as it arrives, not after 16 bytes.
#[test]
fn the_version_is_checked_at_the_fifth_byte() {
    assert_eq!(Header::decode(b"NSFT").ok(), Some(Decoded::Need(5)));
    let future = Header::decode(b"NSFT\x09").unwrap_err();
    assert_eq!(future.code, Code::Version);
    assert!(
        future.message.contains("upgrade the receiver"),
        "{}",
        future.message
    );
    let old = Header::decode(b"NSFT\x01").unwrap_err();
    assert!(
        old.message.contains("upgrade the sender"),
        "{}",
        old.message
    );
    assert_eq!(
        Header::decode(b"NSFT\x02").ok(),
        Some(Decoded::Need(HEADER_FIXED_LEN))
    );
}

/// START round-trips, and anything else in its place is refused.
#[test]
fn start_messages() {
    let start = Start {
        offset: 9,
        prefix: [7; 32],
    };
    assert_eq!(Start::decode(&start.encode()).unwrap(), start);
    let mut other = start.encode();
    other[0] = b'H';
    assert_eq!(Start::decode(&other).unwrap_err().code, Code::Protocol);
}

/// An ERROR's text reaches the user without terminal escapes.
#[test]
fn error_text_is_made_printable() {
    let reply = Reply::Error(Code::Exists, "a\x1b[2Jb\nc\u{202E}d".into()).encode();
    let Ok(Decoded::Done(Reply::Error(_, text), _)) = Reply::decode(&reply) else {
        panic!("not an ERROR");
    };
    assert_eq!(text, "a\\u{1b}[2Jb\\nc\\u{202e}d");
}

#[test]
fn replies_round_trip() {
    let replies = [
        Reply::Ready { offset: 7 },
        Reply::Go { offset: 7 },
        Reply::Done {
            size: 1 << 40,
            sha256: [2; 32],
        },
        Reply::Error(Code::Exists, "already there".into()),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for reply in replies {
        let bytes = reply.encode();
        let got = rt
            .block_on(read_reply(
                &mut bytes.as_slice(),
                Some(Duration::from_secs(1)),
            ))
            .unwrap();
        assert_eq!(got, reply);
    }
}

mod properties {
    use super::super::*;
    use proptest::prelude::*;

    fn reply() -> impl Strategy<Value = Reply> {
        prop_oneof![
            any::<u64>().prop_map(|offset| Reply::Ready { offset }),
            any::<u64>().prop_map(|offset| Reply::Go { offset }),
            (any::<u64>(), any::<[u8; 32]>())
                .prop_map(|(size, sha256)| Reply::Done { size, sha256 }),
            (1u16..=11, "\\PC{0,60}").prop_map(|(code, message)| {
                Reply::Error(Code::from_u16(code).unwrap(), message)
            }),
        ]
    }

    proptest! {
        /// Any bytes: the header decoder never panics, and what it
        /// decodes is exactly what encoding gives back.
        #[test]
        fn header_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(Decoded::Done(header, used)) = Header::decode(&bytes) {
                prop_assert_eq!(header.encode(), bytes[..used].to_vec());
            }
        }

        /// Bytes that start like a header reach every later check.
        #[test]
        fn header_like_bytes_never_panic(
            version in 0u8..3, flags in any::<u8>(), len in 0u16..5000,
            size in any::<u64>(), tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend([version, flags]);
            bytes.extend(len.to_be_bytes());
            bytes.extend(size.to_be_bytes());
            bytes.extend(tail);
            let _ = Header::decode(&bytes);
        }

        /// A header round-trips, and every strict prefix of it asks for
        /// more bytes rather than failing.
        #[test]
        fn headers_round_trip(
            flags in any::<u8>(), size in any::<u64>(),
            name in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let header = Header { flags, size, name };
            let bytes = header.encode();
            prop_assert_eq!(Header::decode(&bytes).unwrap(), Decoded::Done(header, bytes.len()));
            for cut in 0..bytes.len() {
                match Header::decode(&bytes[..cut]) {
                    Ok(Decoded::Need(n)) => prop_assert!(n > cut && n <= bytes.len()),
                    other => prop_assert!(false, "prefix {} gave {:?}", cut, other),
                }
            }
        }

        /// Replies round-trip (messages cut to 1024 bytes), their prefixes
        /// ask for more, and arbitrary bytes never panic the decoder.
        #[test]
        fn replies_round_trip(reply in reply(), noise in proptest::collection::vec(any::<u8>(), 0..60)) {
            let bytes = reply.encode();
            prop_assert_eq!(Reply::decode(&bytes).unwrap(), Decoded::Done(reply, bytes.len()));
            for cut in 0..bytes.len() {
                prop_assert!(matches!(Reply::decode(&bytes[..cut]), Ok(Decoded::Need(n)) if n > cut));
            }
            let _ = Reply::decode(&noise);
        }

        /// A name the receiver accepts is one plain file name, kept as it is.
        #[test]
        fn accepted_names_are_plain_file_names(name in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(kept) = safe_name(&name) {
                prop_assert!(!kept.is_empty() && kept.len() <= MAX_NAME_BYTES);
                prop_assert!(!kept.contains(['/', '\\', '\0']));
                prop_assert!(kept != "." && kept != "..");
                prop_assert!(!kept.chars().any(char::is_control));
                prop_assert!(!kept.ends_with(PART_SUFFIX));
                prop_assert_eq!(safe_name(kept.as_bytes()).unwrap(), kept.clone());
                prop_assert!(part_name(&kept).len() <= MAX_NAME_BYTES);
            }
        }

        /// Path-like names: never a `..` or an empty last part gets through.
        #[test]
        fn path_like_names_never_escape(name in "[a./\\\\]{0,12}") {
            if let Ok(kept) = safe_name(name.as_bytes()) {
                prop_assert!(kept != ".." && !kept.is_empty() && !kept.contains('/'));
                prop_assert!(!name.split('/').any(|p| p == ".."));
            }
        }
    }
}
