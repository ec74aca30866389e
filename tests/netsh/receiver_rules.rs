//! The upload receiver's answers where `docs/PROTOCOL.md` had gaps an
//! outside client could not resolve (issue 17), each pinned by a raw wire
//! client: a sender that leaves before START leaves nothing, a part file
//! swapped mid-upload is never stored, when an upload is "in progress",
//! when a wrong message type is refused, a half-close, a final name that
//! appears meanwhile, what a post-error wait counts towards, and which
//! refusal wins when several apply.

use std::{
    io::{ErrorKind, Read, Write},
    net::{Shutdown, TcpStream},
    os::unix::fs::MetadataExt,
    path::Path,
    time::{Duration, Instant},
};

use netsh::net::transfer::{self, FileServer, ReceiveOptions};

use crate::support::{
    self,
    wire::{
        connect, connect_from, cut_off_upload, hash, header, header_version, read_done, read_go,
        read_ready, read_reply, refusal_for, serve, sha256, start, start_proving,
    },
};

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `leave` on a fresh connection and waits until the receiver has
/// counted the upload as refused (so whatever it does at the end is done).
fn and_wait_for_the_end(server: &FileServer, leave: impl FnOnce(TcpStream)) {
    let refused = server.refused();
    leave(connect(server));
    support::wait_until(
        Duration::from_secs(10),
        "the receiver to end the upload",
        || server.refused() > refused,
    );
}

/// A sender that leaves after READY, before START, or right after GO
/// without a body byte, leaves no part file behind (it used to leave an
/// empty `.NAME.netsh-part` for any name it sent).
#[test]
fn a_sender_that_leaves_before_start_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    and_wait_for_the_end(&server, |mut stream| {
        stream.write_all(&header(b"gone.bin", 8)).unwrap();
        assert_eq!(read_ready(&mut stream), 0);
    });
    assert_eq!(names_in(&inbox), Vec::<String>::new());
    and_wait_for_the_end(&server, |mut stream| {
        stream.write_all(&header(b"gone.bin", 8)).unwrap();
        assert_eq!(read_ready(&mut stream), 0);
        stream.write_all(&start(0)).unwrap();
        assert_eq!(read_go(&mut stream), 0);
    });
    assert_eq!(names_in(&inbox), Vec::<String>::new());
    let error = server.last_error().unwrap();
    assert!(
        error.contains("closed after 0 of 8 bytes; nothing was kept"),
        "{error}"
    );
    server.stop();
}

/// A part file that was there before (a resumable prefix, or an empty
/// one) is left exactly as it was by a sender that leaves before START:
/// same file, same bytes, same modification time.
#[test]
fn a_sender_that_leaves_before_start_leaves_a_held_part_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    cut_off_upload(&server, "kept.bin", 10, b"abcd");
    let part = inbox.join(".kept.bin.netsh-part");
    let empty = inbox.join(".empty.bin.netsh-part");
    std::fs::write(&empty, "").unwrap();
    let before = |path: &Path| {
        let meta = std::fs::symlink_metadata(path).unwrap();
        (meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.len())
    };
    let (part_before, empty_before) = (before(&part), before(&empty));

    and_wait_for_the_end(&server, |mut stream| {
        stream.write_all(&header(b"kept.bin", 10)).unwrap();
        assert_eq!(read_ready(&mut stream), 4, "the prefix is offered");
    });
    and_wait_for_the_end(&server, |mut stream| {
        stream.write_all(&header(b"empty.bin", 10)).unwrap();
        assert_eq!(read_ready(&mut stream), 0);
    });
    assert_eq!(before(&part), part_before);
    assert_eq!(std::fs::read(&part).unwrap(), b"abcd");
    assert_eq!(before(&empty), empty_before);
    let error = server.last_error().unwrap();
    assert!(
        error.contains("closed before START; nothing was changed"),
        "{error}"
    );
    server.stop();
}

/// Swaps the part file of an upload in progress between two body chunks:
/// renames it away and puts `replace` in its place. The receiver must
/// refuse with code 9 instead of storing what is at the part file's name,
/// and remove nothing: not the replacement, not the file it wrote.
fn swap_mid_upload(replace: impl FnOnce(&Path)) {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let body = b"abcdefgh";
    let mut stream = connect(&server);
    stream.write_all(&header(b"s.bin", 8)).unwrap();
    assert_eq!(read_ready(&mut stream), 0);
    stream.write_all(&start(0)).unwrap();
    assert_eq!(read_go(&mut stream), 0);
    stream.write_all(&body[..4]).unwrap();
    let part = inbox.join(".s.bin.netsh-part");
    support::wait_until(Duration::from_secs(10), "the first chunk on disk", || {
        std::fs::metadata(&part).is_ok_and(|meta| meta.len() == 4)
    });
    let away = inbox.join("moved-away");
    std::fs::rename(&part, &away).unwrap();
    replace(&part);
    let replacement = std::fs::symlink_metadata(&part).unwrap();

    stream.write_all(&body[4..]).unwrap();
    stream.write_all(&hash(body)).unwrap();
    let (code, message) = read_reply(&mut stream).expect("an ERROR, not DONE");
    assert_eq!(code, 9, "{message}");
    assert!(
        message.contains("was replaced while it was being received"),
        "{message}"
    );
    assert!(
        std::fs::symlink_metadata(inbox.join("s.bin")).is_err(),
        "something was stored under the final name"
    );
    let now = std::fs::symlink_metadata(&part).expect("the replacement is still there");
    assert_eq!(
        (now.ino(), now.len()),
        (replacement.ino(), replacement.len())
    );
    assert_eq!(std::fs::read(&away).unwrap(), body, "the file written");
    server.stop();
}

/// A symlink swapped in for the part file mid-upload is not renamed to
/// the final name (it used to be, and DONE said the file was stored).
#[test]
fn a_symlink_swapped_in_for_the_part_file_is_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, "not the upload").unwrap();
    swap_mid_upload(|part| std::os::unix::fs::symlink(&outside, part).unwrap());
    assert_eq!(std::fs::read(&outside).unwrap(), b"not the upload");
}

/// Another regular file swapped in for the part file mid-upload is not
/// stored either, and keeps its bytes.
#[test]
fn another_file_swapped_in_for_the_part_file_is_not_stored() {
    swap_mid_upload(|part| std::fs::write(part, "someone else's").unwrap());
}

/// An upload is in progress (a second of its name is refused as busy,
/// code 6) from READY on, before START; once its sender leaves, the name
/// is free again.
#[test]
fn an_upload_is_in_progress_from_ready_on() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("in"), ReceiveOptions::default());
    let mut first = connect(&server);
    first.write_all(&header(b"busy.bin", 3)).unwrap();
    assert_eq!(read_ready(&mut first), 0);
    let refused = server.refused();
    let (code, message) = refusal_for(server.addr(), &header(b"busy.bin", 3));
    assert_eq!(code, 6, "{message}");
    assert!(message.contains("in progress"), "{message}");
    drop(first);
    support::wait_until(Duration::from_secs(10), "both to end", || {
        server.refused() >= refused + 2
    });
    let mut third = connect(&server);
    third.write_all(&header(b"busy.bin", 3)).unwrap();
    assert_eq!(read_ready(&mut third), 0);
    server.stop();
}

/// A byte that cannot begin START, or HASH, is refused with code 11 as
/// soon as it arrives, not after the idle timeout (30 s) waiting for the
/// rest of a message that length.
#[test]
fn a_wrong_message_type_is_refused_at_its_first_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("in"), ReceiveOptions::default());

    let mut stream = connect(&server);
    stream.write_all(&header(b"a.bin", 3)).unwrap();
    assert_eq!(read_ready(&mut stream), 0);
    let sent = Instant::now();
    stream.write_all(b"X").unwrap();
    let (code, message) = read_reply(&mut stream).expect("an ERROR");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(code, 11, "{message}");
    assert!(message.contains("expected START (0x53)"), "{message}");

    let mut stream = connect(&server);
    stream.write_all(&header(b"b.bin", 3)).unwrap();
    assert_eq!(read_ready(&mut stream), 0);
    stream.write_all(&start(0)).unwrap();
    assert_eq!(read_go(&mut stream), 0);
    stream.write_all(b"abc").unwrap();
    let sent = Instant::now();
    stream.write_all(b"X").unwrap();
    let (code, message) = read_reply(&mut stream).expect("an ERROR");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(code, 11, "{message}");
    assert!(
        message.contains("expected the SHA-256 trailer (0x48)"),
        "{message}"
    );
    server.stop();
}

/// START at an offset READY did not offer is refused with code 11, in
/// words that fit the offer: "only 0" when READY offered 0 (it used to
/// say "only 0 or 0"); and it changes nothing: the empty part file made
/// for it is gone, an empty one that was there before stays.
#[test]
fn start_at_an_offset_not_offered_says_which_can_be_used() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    std::fs::write(inbox.join(".pre.bin.netsh-part"), "").unwrap();
    let mut stream = connect(&server);
    stream.write_all(&header(b"pre.bin", 10)).unwrap();
    assert_eq!(read_ready(&mut stream), 0);
    stream
        .write_all(&start_proving(5, &sha256(b"abcde")))
        .unwrap();
    assert_eq!(read_reply(&mut stream).map(|r| r.0), Ok(11));
    assert!(inbox.join(".pre.bin.netsh-part").exists());
    let mut stream = connect(&server);
    stream.write_all(&header(b"fresh.bin", 10)).unwrap();
    assert_eq!(read_ready(&mut stream), 0);
    stream
        .write_all(&start_proving(5, &sha256(b"abcde")))
        .unwrap();
    let (code, message) = read_reply(&mut stream).expect("an ERROR");
    assert_eq!(code, 11, "{message}");
    assert!(!message.contains("0 or 0"), "{message}");
    assert!(
        message.contains("START asked for offset 5, but READY offered 0, so only 0 can be used"),
        "{message}"
    );
    // The ERROR comes once the upload has let go of its part file.
    assert_eq!(names_in(&inbox), [".pre.bin.netsh-part"]);

    cut_off_upload(&server, "held.bin", 10, b"abcd");
    let mut stream = connect(&server);
    stream.write_all(&header(b"held.bin", 10)).unwrap();
    assert_eq!(read_ready(&mut stream), 4);
    stream.write_all(&start_proving(2, &sha256(b"ab"))).unwrap();
    let (code, message) = read_reply(&mut stream).expect("an ERROR");
    assert_eq!(code, 11, "{message}");
    assert!(
        message.contains("only 0 or the 4 READY offered can be used"),
        "{message}"
    );
    server.stop();
}

/// A sender that half-closes mid-body or mid-HASH gets ERROR 11 (it can
/// still read), and the part file keeps every byte that arrived.
#[test]
fn a_half_close_mid_body_or_mid_hash_gets_error_11() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let body = b"0123456789";

    let mut stream = connect(&server);
    stream.write_all(&header(b"body.bin", 10)).unwrap();
    assert_eq!(read_ready(&mut stream), 0);
    stream.write_all(&start(0)).unwrap();
    assert_eq!(read_go(&mut stream), 0);
    stream.write_all(&body[..4]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let (code, message) = read_reply(&mut stream).expect("an ERROR");
    assert_eq!(code, 11, "{message}");
    assert!(
        message.contains("cut off: the connection closed after 4 of 10 bytes"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(inbox.join(".body.bin.netsh-part")).unwrap(),
        b"0123"
    );

    let mut stream = connect(&server);
    stream.write_all(&header(b"hash.bin", 10)).unwrap();
    assert_eq!(read_ready(&mut stream), 0);
    stream.write_all(&start(0)).unwrap();
    assert_eq!(read_go(&mut stream), 0);
    stream.write_all(body).unwrap();
    stream.write_all(&hash(body)[..10]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let (code, message) = read_reply(&mut stream).expect("an ERROR");
    assert_eq!(code, 11, "{message}");
    assert!(
        message.contains("closed before the SHA-256 trailer"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(inbox.join(".hash.bin.netsh-part")).unwrap(),
        body
    );
    assert!(!inbox.join("hash.bin").exists());
    server.stop();
}

/// A file that appears under the final name during an upload is not
/// replaced: ERROR 5 (exists), and the part file keeps the verified bytes,
/// so once the name is free the upload resumes with only START and HASH
/// (the part file used to be deleted).
#[test]
fn a_final_name_that_appears_meanwhile_gets_exists_and_keeps_the_part() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let body = b"abcdefgh";
    let mut stream = connect(&server);
    stream.write_all(&header(b"late.bin", 8)).unwrap();
    assert_eq!(read_ready(&mut stream), 0);
    stream.write_all(&start(0)).unwrap();
    assert_eq!(read_go(&mut stream), 0);
    stream.write_all(&body[..4]).unwrap();
    let part = inbox.join(".late.bin.netsh-part");
    support::wait_until(Duration::from_secs(10), "the first chunk on disk", || {
        std::fs::metadata(&part).is_ok_and(|meta| meta.len() == 4)
    });
    std::fs::write(inbox.join("late.bin"), "came first").unwrap();
    stream.write_all(&body[4..]).unwrap();
    stream.write_all(&hash(body)).unwrap();
    let (code, message) = read_reply(&mut stream).expect("an ERROR");
    assert_eq!(code, 5, "{message}");
    assert!(
        message.contains("appeared while it was being received"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(inbox.join("late.bin")).unwrap(),
        b"came first"
    );
    assert_eq!(std::fs::read(&part).unwrap(), body, "the part file is kept");

    std::fs::remove_file(inbox.join("late.bin")).unwrap();
    let mut stream = connect(&server);
    stream.write_all(&header(b"late.bin", 8)).unwrap();
    assert_eq!(read_ready(&mut stream), 8);
    stream.write_all(&start_proving(8, &sha256(body))).unwrap();
    assert_eq!(read_go(&mut stream), 8);
    stream.write_all(&hash(body)).unwrap();
    assert_eq!(read_done(&mut stream).0, 8);
    assert_eq!(std::fs::read(inbox.join("late.bin")).unwrap(), body);
    server.stop();
}

/// A connection still counts towards its address's limit (4 ×
/// `max_per_ip`) while it waits for its sender to read an ERROR, so
/// refused connections cannot be opened without end; once they close,
/// the address may connect again.
#[test]
fn connections_waiting_after_an_error_count_towards_the_address_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(
        &tmp.path().join("in"),
        ReceiveOptions {
            max_per_ip: 1,
            ..ReceiveOptions::default()
        },
    );
    // Four refused (not a netsh upload) that read the reply and stay
    // open: each receiver side then waits up to 2 s for its sender.
    let draining: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = connect_from(&server, "127.0.0.5");
            stream.write_all(b"XXXX").unwrap();
            assert_eq!(read_reply(&mut stream).map(|r| r.0), Ok(1));
            stream
        })
        .collect();
    let mut fifth = connect_from(&server, "127.0.0.5");
    let (code, message) = read_reply(&mut fifth).expect("an ERROR");
    assert_eq!(code, 6, "{message}");
    assert!(message.contains("4 connections open here"), "{message}");
    drop(draining);
    support::wait_until(Duration::from_secs(10), "room for 127.0.0.5", || {
        let mut stream = connect_from(&server, "127.0.0.5");
        stream.write_all(&header(b"ok.bin", 3)).is_ok()
            && matches!(read_reply(&mut stream), Err(b'R'))
    });
    server.stop();
}

/// At most 64 refused connections wait for their senders at once,
/// whatever refused them (here: not a netsh upload): past that, a refused
/// connection is closed without a reply; once they end, refusals are told
/// again.
#[test]
fn at_most_64_refused_connections_wait_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("in"), ReceiveOptions::default());
    // 64 refused that read the reply and stay open (32 from each of two
    // addresses: within their limit), each kept waiting up to 2 s.
    let draining: Vec<TcpStream> = (0..64)
        .map(|i| {
            let mut stream = connect_from(&server, &format!("127.0.3.{}", i / 32 + 1));
            stream.write_all(b"XXXX").unwrap();
            assert_eq!(read_reply(&mut stream).map(|r| r.0), Ok(1));
            stream
        })
        .collect();
    let mut one_more = connect_from(&server, "127.0.3.9");
    one_more.write_all(b"XXXX").unwrap();
    let mut byte = [0u8; 1];
    let read = one_more.read(&mut byte);
    assert!(
        matches!(&read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
        "the 65th refusal was not simply closed: {read:?}"
    );
    drop(draining);
    // Their waits end as the receiver sees them close: until then a
    // refusal may still be closed without a reply.
    support::wait_until(Duration::from_secs(10), "refusals told again", || {
        let mut stream = connect(&server);
        let mut kind = [0u8; 1];
        stream.write_all(b"XXXX").is_ok()
            && matches!(stream.read(&mut kind), Ok(1))
            && kind == *b"E"
    });
    server.stop();
}

/// When several refusals apply, the first in PROTOCOL.md's order wins:
/// not-allowed (8) before anything the sender sends, the version (2)
/// before the name field, a bad name (3) before the size (4), the size
/// before an existing file (5).
#[test]
fn when_several_refusals_apply_the_first_in_order_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(inbox.join("taken.bin"), "x").unwrap();
    let server = serve(
        &inbox,
        ReceiveOptions {
            max_size: Some(10),
            allow: vec![transfer::Cidr::parse("127.0.0.1").unwrap()],
            ..ReceiveOptions::default()
        },
    );
    let mut outsider = connect_from(&server, "127.0.0.6");
    outsider.write_all(&header(b"../taken.bin", 100)).unwrap();
    assert_eq!(read_reply(&mut outsider).map(|r| r.0), Ok(8));

    let mut long_name_v1 = header_version(&[b'a'; 5000], 100, 1);
    long_name_v1.truncate(16);
    assert_eq!(refusal_for(server.addr(), &long_name_v1).0, 2);
    assert_eq!(refusal_for(server.addr(), &header(b"../x", 100)).0, 3);
    assert_eq!(refusal_for(server.addr(), &header(b"taken.bin", 100)).0, 4);
    assert_eq!(refusal_for(server.addr(), &header(b"taken.bin", 5)).0, 5);
    server.stop();
}
