//! Fuzzes what a receiver and a sender read off the wire before trusting
//! it: the upload header, the receiver's replies and the sent file name.
//! Beyond "never panics", it checks that whatever decodes re-encodes to the
//! same bytes, and that an accepted name is one plain, safe file name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsh::net::transfer::protocol::{
    Decoded, Header, MAX_NAME_BYTES, PART_SUFFIX, Reply, part_name, safe_name,
};

fuzz_target!(|data: &[u8]| {
    match Header::decode(data) {
        Ok(Decoded::Done(header, used)) => {
            assert_eq!(header.encode(), data[..used]);
            if let Ok(name) = safe_name(&header.name) {
                assert!(!name.is_empty() && name.len() <= MAX_NAME_BYTES);
                assert!(!name.contains(['/', '\\', '\0']) && name != "." && name != "..");
                assert!(!name.chars().any(char::is_control));
                assert!(!name.ends_with(PART_SUFFIX));
                assert_eq!(safe_name(name.as_bytes()).ok(), Some(name.clone()));
                assert!(part_name(&name).len() <= MAX_NAME_BYTES);
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
                Reply::Ready { .. } | Reply::Done { .. } => assert_eq!(encoded, data[..used]),
                Reply::Error(..) => assert_eq!(
                    Reply::decode(&encoded).ok(),
                    Some(Decoded::Done(reply, encoded.len()))
                ),
            }
        }
        Ok(Decoded::Need(n)) => assert!(n > data.len()),
        Err(_) => {}
    }
});
