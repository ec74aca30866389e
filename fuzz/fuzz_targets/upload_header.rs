//! Fuzzes what a receiver and a sender read off the wire before trusting
//! it: the upload header, START, the receiver's replies and the sent file
//! name (with the part file named after it).
//! Beyond "never panics", it checks that whatever decodes re-encodes to the
//! same bytes, and that an accepted name is one plain, safe file name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsh::net::transfer::protocol::{
    Decoded, Header, MAX_NAME_BYTES, PART_SUFFIX, Reply, START_LEN, Start, is_part_name, part_name,
    safe_name,
};

fuzz_target!(|data: &[u8]| {
    match Header::decode(data) {
        Ok(Decoded::Done(header, used)) => {
            assert_eq!(header.encode(), data[..used]);
            if let Ok(name) = safe_name(&header.name) {
                assert!(!name.is_empty() && name.len() <= MAX_NAME_BYTES);
                assert!(!name.contains(['/', '\\', '\0']) && name != "." && name != "..");
                assert!(!name.chars().any(char::is_control));
                assert!(!name.chars().any(netsh::error::is_invisible));
                assert!(!name.ends_with(PART_SUFFIX));
                assert_eq!(safe_name(name.as_bytes()).ok(), Some(name.clone()));
                let part = part_name(&name);
                assert!(part.len() <= MAX_NAME_BYTES && is_part_name(&part));
            }
        }
        Ok(Decoded::Need(n)) => assert!(n > data.len()),
        Err(_) => {}
    }
    match Reply::decode(data) {
        Ok(Decoded::Done(reply, used)) => {
            let encoded = reply.encode();
            match reply {
                // Exact for fixed-size replies; an ERROR's text may have been
                // cut or made valid UTF-8, but decodes to itself from then on.
                Reply::Ready { .. } | Reply::Go { .. } | Reply::Done { .. } => {
                    assert_eq!(encoded, data[..used])
                }
                Reply::Error(..) => assert_eq!(
                    Reply::decode(&encoded).ok(),
                    Some(Decoded::Done(reply, encoded.len()))
                ),
            }
        }
        Ok(Decoded::Need(n)) => assert!(n > data.len()),
        Err(_) => {}
    }
    if let Some(bytes) = data.first_chunk::<START_LEN>()
        && let Ok(start) = Start::decode(bytes)
    {
        assert_eq!(&start.encode(), bytes);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        // A name the cleanup would remove is exactly a part file's name.
        if is_part_name(text) && !text.ends_with(".netsh-part.netsh-part") {
            let inner = &text[1..text.len() - PART_SUFFIX.len()];
            assert_eq!(part_name(inner), text);
        }
    }
});
