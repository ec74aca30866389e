//! The upload receiver against a raw wire client written from
//! `docs/PROTOCOL.md` (issue 11): hard-linked part files and final names,
//! names without a file part, oversized name fields, a break before HASH,
//! sending ahead of READY, bytes after HASH, the cut-off message, files
//! that do not report their size, the upload cap, abandoned part files;
//! and (protocol version 2) that nobody can finish another's upload, that
//! other versions are refused at once, that silent, refused, slow or
//! numerous connections cannot take every place, and what the cleanup of
//! abandoned part files may touch.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use netsh::net::transfer::{self, ReceiveOptions};
use sha2::{Digest, Sha256};

use crate::support::{
    self, Netsh,
    wire::{
        connect, connect_from, cut_off_upload, hash, header, read_done, read_go, read_ready,
        read_reply, refusal_for, serve, sha256, start, start_proving,
    },
};

/// A part file hard-linked to a file outside the folder is refused: never
/// written through, and its length and prefix hash never offered.
#[test]
fn a_hard_linked_part_file_is_refused_and_never_offered() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, "the secret").unwrap();
    std::fs::hard_link(&secret, inbox.join(".x.bin.netsh-part")).unwrap();
    let server = serve(&inbox, ReceiveOptions::default());

    let (code, message) = refusal_for(server.addr(), &header(b"x.bin", 100));
    assert_eq!(code, 3, "{message}");
    assert!(message.contains("other hard links"), "{message}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "the secret");
    assert!(!inbox.join("x.bin").exists());
    server.stop();
}

/// With overwriting allowed, a final name that has other hard links is not
/// replaced; the file and its other name keep their content.
#[test]
fn a_hard_linked_final_name_is_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, "keep me").unwrap();
    std::fs::hard_link(&outside, inbox.join("x.bin")).unwrap();
    let server = serve(
        &inbox,
        ReceiveOptions {
            overwrite: true,
            ..ReceiveOptions::default()
        },
    );
    let (code, message) = refusal_for(server.addr(), &header(b"x.bin", 3));
    assert_eq!(code, 3, "{message}");
    assert!(message.contains("other hard links"), "{message}");
    assert_eq!(
        std::fs::read_to_string(inbox.join("x.bin")).unwrap(),
        "keep me"
    );
    server.stop();
}

/// A name ending in `/` (or `/.`) has no file name part and is refused, as
/// PROTOCOL.md says, instead of being stored under its folder's name.
#[test]
fn names_ending_in_a_slash_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    for name in [&b"dir/"[..], b"a//", b"a/."] {
        let (code, message) = refusal_for(server.addr(), &header(name, 1));
        assert_eq!(code, 3, "{}: {message}", String::from_utf8_lossy(name));
        assert!(message.contains("no file name part"), "{message}");
    }
    assert!(!inbox.join("dir").exists() && !inbox.join("a").exists());
    server.stop();
}

/// A name field over 4,096 bytes gets code 3 with the real limit, as soon
/// as the fixed header is in (the name's bytes are never needed).
#[test]
fn an_oversized_name_field_gets_bad_name_with_the_real_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("in"), ReceiveOptions::default());
    let long = vec![b'a'; 5000];
    // Only the 16 fixed bytes: the refusal must not wait for the name.
    let (code, message) = refusal_for(server.addr(), &header(&long, 1)[..16]);
    assert_eq!(code, 3, "{message}");
    assert!(
        message.contains("the name field is 5000 bytes long") && message.contains("at most 4096"),
        "{message}"
    );
    server.stop();
}

/// A connection broken after the whole body but before HASH keeps every
/// byte; the next upload is offered the full size and needs only START and HASH.
#[test]
fn a_break_after_the_body_resumes_with_only_the_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let body = b"0123456789";

    cut_off_upload(&server, "whole.bin", 10, body);
    assert!(
        server
            .last_error()
            .unwrap()
            .contains("before the SHA-256 trailer")
    );
    assert!(!inbox.join("whole.bin").exists());

    let mut second = connect(&server);
    second.write_all(&header(b"whole.bin", 10)).unwrap();
    assert_eq!(read_ready(&mut second), 10);
    second.write_all(&start_proving(10, &sha256(body))).unwrap();
    assert_eq!(read_go(&mut second), 10, "the proof holds: continue at 10");
    second.write_all(&hash(body)).unwrap();
    let (size, sha) = read_done(&mut second);
    assert_eq!((size, sha.to_vec()), (10, Sha256::digest(body).to_vec()));
    assert_eq!(std::fs::read(inbox.join("whole.bin")).unwrap(), body);
    server.stop();
}

/// A sender may send START 0, the body and HASH without waiting for READY,
/// even when the receiver would have offered to resume: it starts over.
#[test]
fn a_sender_may_send_ahead_of_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    // A part file from an earlier, cut-off upload, so READY offers 4.
    cut_off_upload(&server, "ahead.bin", 8, b"zzzz");

    let body = b"abcdefgh";
    let mut everything = header(b"ahead.bin", 8);
    everything.extend_from_slice(&start(0));
    everything.extend_from_slice(body);
    everything.extend_from_slice(&hash(body));
    let mut stream = connect(&server);
    stream.write_all(&everything).unwrap();
    assert_eq!(
        read_ready(&mut stream),
        4,
        "the receiver offers what it holds"
    );
    assert_eq!(read_go(&mut stream), 0);
    let (size, _) = read_done(&mut stream);
    assert_eq!(size, 8);
    assert_eq!(std::fs::read(inbox.join("ahead.bin")).unwrap(), body);
    server.stop();
}

/// Bytes after HASH are not part of the file: DONE still arrives and the
/// stored file is exactly the body.
#[test]
fn bytes_after_the_hash_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let body = b"the file";
    let mut stream = connect(&server);
    stream
        .write_all(&header(b"tail.bin", body.len() as u64))
        .unwrap();
    read_ready(&mut stream);
    let mut rest = start(0);
    rest.extend_from_slice(body);
    rest.extend_from_slice(&hash(body));
    rest.extend_from_slice(b"and some trailing garbage");
    stream.write_all(&rest).unwrap();
    assert_eq!(read_go(&mut stream), 0);
    let (size, sha) = read_done(&mut stream);
    assert_eq!((size, sha.to_vec()), (8, Sha256::digest(body).to_vec()));
    assert_eq!(std::fs::read(inbox.join("tail.bin")).unwrap(), body);
    server.stop();
}

/// A cut-off upload is reported in one punctuated sentence.
#[test]
fn a_cut_off_upload_says_so_in_a_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("in"), ReceiveOptions::default());
    cut_off_upload(&server, "cut.bin", 10, b"abcd");
    let error = server.last_error().unwrap();
    assert!(
        error.contains(
            "the upload of 'cut.bin' was cut off: the connection closed after 4 of 10 bytes; the part received is kept to resume (protocol)"
        ),
        "{error}"
    );
    server.stop();
}

/// Files that report size 0 (`/proc`) or a page (`/sys`) arrive as a read
/// gives them, the same bytes as `read_blob`, verified.
#[test]
fn files_without_a_reliable_size_send_what_a_read_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let mut sources = vec!["/proc/version"];
    if Path::new("/sys/class/net/lo/address").exists() {
        sources.push("/sys/class/net/lo/address");
    } else {
        support::skip(
            "files_without_a_reliable_size_send_what_a_read_gives (the /sys case)",
            "/sys/class/net/lo/address does not exist here",
        );
    }
    for source in sources {
        let code = format!(
            r#"
            let s = serve_files("127.0.0.1:0", "{inbox}", #{{overwrite: true}});
            let r = send_file(`127.0.0.1:${{s.port}}`, "{source}", #{{progress: false}});
            let name = r.name;
            let got = read_blob("{inbox}/" + name);
            let want = read_blob("{source}");
            [r.verified, r.bytes, got == want, got.len()]
            "#,
            inbox = inbox.display()
        );
        let out = Netsh::eval(&code);
        let fields: Vec<&str> = out.trim_matches(['[', ']']).split(", ").collect();
        assert_eq!(fields[0], "true", "{source}: {out}");
        assert_eq!(fields[2], "true", "{source}: stored bytes differ: {out}");
        assert_eq!(fields[1], fields[3], "{source}: {out}");
        assert_ne!(fields[1], "0", "{source} arrived empty: {out}");
    }
}

/// With `max_uploads: 2`, a third sender is not answered while two uploads
/// are in progress, and is answered as soon as one of them ends.
#[test]
fn serve_files_receives_at_most_max_uploads_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(
        &inbox,
        ReceiveOptions {
            max_uploads: 2,
            ..ReceiveOptions::default()
        },
    );
    let mut first = connect(&server);
    first.write_all(&header(b"one.bin", 3)).unwrap();
    read_ready(&mut first);
    let mut second = connect(&server);
    second.write_all(&header(b"two.bin", 3)).unwrap();
    read_ready(&mut second);

    let mut third = connect(&server);
    third.write_all(&header(b"three.bin", 3)).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = third.read(&mut byte);
    assert!(
        waited.is_err(),
        "the third upload was answered while two were running: {waited:?}"
    );

    first.write_all(&start(0)).unwrap();
    first.write_all(b"111").unwrap();
    first.write_all(&hash(b"111")).unwrap();
    read_go(&mut first);
    read_done(&mut first);
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(read_reply(&mut third), Err(b'R'), "the third upload's turn");
    server.stop();
}

/// A receiver starting on a folder removes part files untouched for 7 days
/// (saying so on stderr) and leaves fresh ones, links and other files alone.
#[test]
fn abandoned_part_files_are_removed_when_a_receiver_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    let eight_days_ago = SystemTime::now() - Duration::from_secs(8 * 24 * 3600);
    let age = |path: &Path| {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(eight_days_ago)
            .unwrap();
    };
    let old = inbox.join(".old.bin.netsh-part");
    let fresh = inbox.join(".fresh.bin.netsh-part");
    let plain = inbox.join("old-but-mine.txt");
    let target = tmp.path().join("linked-target");
    for path in [&old, &fresh, &plain, &target] {
        std::fs::write(path, "x").unwrap();
    }
    age(&old);
    age(&plain);
    age(&target);
    let link = inbox.join(".link.bin.netsh-part");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let run = Netsh::new()
        .arg("-e")
        .arg(format!(
            r#"serve_files("127.0.0.1:0", "{}").stop()"#,
            inbox.display()
        ))
        .ok();
    assert!(!old.exists(), "{}", run.explain());
    assert!(fresh.exists() && plain.exists() && target.exists());
    assert!(
        link.symlink_metadata().is_ok(),
        "a symlink must be left alone"
    );
    assert!(
        run.stderr().contains(&format!(
            "serve_files: removed the part file of an upload abandoned 8 days ago: \"{}\"",
            old.display()
        )),
        "{}",
        run.explain()
    );
}

/// A progress closure that fails after the last byte does not hide that
/// the file was stored: the error says so, with the closure's own error and kind.
#[test]
fn a_progress_closure_failing_after_the_last_byte_reports_the_stored_file() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let file = tmp.path().join("small.txt");
    std::fs::write(&file, "hello").unwrap();
    // A port nobody listens on, for the closure's own failure.
    let closed_port = support::closed_port();
    let code = format!(
        r#"
        let s = serve_files("127.0.0.1:0", "{inbox}");
        let out = "no error";
        try {{
            send_file(`127.0.0.1:${{s.port}}`, "{file}", #{{progress: |p| {{
                if s.received > 0 {{ connect("127.0.0.1:{closed_port}") }}
            }}}});
        }} catch (e) {{
            out = `${{e.kind}}|${{e.op}}|${{e}}`
        }}
        out
        "#,
        inbox = inbox.display(),
        file = file.display()
    );
    let out = Netsh::eval(&code);
    let parts: Vec<&str> = out.splitn(3, '|').collect();
    assert_eq!(parts.len(), 3, "{out}");
    assert_eq!(parts[0], "refused", "the closure's kind: {out}");
    assert_eq!(parts[1], "send_file", "{out}");
    assert!(
        parts[2].starts_with(
            "send_file: 'small.txt' was stored and verified by the receiver (5 bytes), but the progress callback failed: connect: connection refused"
        ),
        "{out}"
    );
    assert_eq!(std::fs::read(inbox.join("small.txt")).unwrap(), b"hello");
}

/// A client that never had a victim's bytes cannot finish the victim's
/// cut-off upload (the protocol-version-1 hijack, by SHA-256 length
/// extension of the prefix hash READY used to carry): READY now tells only
/// the length, a START that cannot prove the first bytes is answered GO 0,
/// and what gets stored is that client's own bytes, never the victim's.
#[test]
fn another_client_cannot_finish_a_cut_off_upload_with_its_own_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let secret = b"the victim's first bytes, which nobody else has".to_vec();
    cut_off_upload(&server, "victim.bin", 1000, &secret);
    let held = secret.len() as u64;

    let own: Vec<u8> = b"EVIL".repeat(100);
    let mut attacker = connect(&server);
    attacker
        .write_all(&header(b"victim.bin", own.len() as u64))
        .unwrap();
    assert_eq!(
        read_ready(&mut attacker),
        held,
        "READY says how much is held"
    );
    // READY is those 9 bytes and no more: nothing about the bytes themselves.
    attacker
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut more = [0u8; 1];
    assert!(
        attacker.read(&mut more).is_err(),
        "READY carried more than the offset"
    );
    attacker
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The best guess it can make at the proof: the hash of its own bytes.
    attacker
        .write_all(&start_proving(held, &sha256(&own[..held as usize])))
        .unwrap();
    assert_eq!(read_go(&mut attacker), 0, "an unproven START starts over");
    attacker.write_all(&own).unwrap();
    attacker.write_all(&hash(&own)).unwrap();
    read_done(&mut attacker);
    let stored = std::fs::read(inbox.join("victim.bin")).unwrap();
    assert_eq!(
        stored, own,
        "the stored file is the sender's own bytes only"
    );
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));
    server.stop();
}

/// A sender of another protocol version is refused with code 2 as soon as
/// the version byte arrives (not after a header timeout), and told which
/// side to upgrade.
#[test]
fn another_protocol_version_is_refused_at_the_fifth_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("in"), ReceiveOptions::default());
    for (version, words) in [(1u8, "upgrade the sender"), (9, "upgrade the receiver")] {
        let started = Instant::now();
        let (code, message) = refusal_for(server.addr(), &[b'N', b'S', b'F', b'T', version]);
        assert_eq!(code, 2, "{message}");
        assert!(message.contains(words), "{message}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "it waited for the rest of the header"
        );
    }
    server.stop();
}

/// How long `stream` waits for READY after sending a header for `name`.
fn time_to_ready(stream: &mut TcpStream, name: &[u8]) -> Duration {
    let started = Instant::now();
    stream.write_all(&header(name, 3)).unwrap();
    read_ready(stream);
    started.elapsed()
}

/// Connections that have sent no header, and refusals waiting for their
/// sender to read the reply, hold no upload place: with room for one
/// upload, a real sender gets READY at once meanwhile.
#[test]
fn silent_and_refused_connections_hold_no_upload_place() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(inbox.join("taken.bin"), "x").unwrap();
    let server = serve(
        &inbox,
        ReceiveOptions {
            max_uploads: 1,
            allow: vec![transfer::Cidr::parse("127.0.0.1").unwrap()],
            ..ReceiveOptions::default()
        },
    );
    // Silent: connected, nothing sent (it would hold a place for the 10 s
    // header timeout).
    let _silent = connect(&server);
    // Refused for a name that exists, and never reads the reply (the
    // receiver waits 2 s for it).
    let mut refused = connect(&server);
    refused.write_all(&header(b"taken.bin", 3)).unwrap();
    // Refused by the allow-list, likewise unread.
    let mut outsider = connect_from(&server, "127.0.0.2");
    outsider.write_all(&header(b"other.bin", 3)).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let mut real = connect(&server);
    let waited = time_to_ready(&mut real, b"real.bin");
    assert!(waited < Duration::from_secs(1), "READY took {waited:?}");
    assert_eq!(read_reply(&mut refused).map(|r| r.0), Ok(5));
    assert_eq!(read_reply(&mut outsider).map(|r| r.0), Ok(8));
    server.stop();
}

/// A sender that dribbles a byte now and then (never quiet long enough
/// for the idle timeout) is dropped for being under the minimum rate, and
/// its place goes to the next upload.
#[test]
fn a_dribbling_sender_is_dropped_below_the_minimum_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(
        &tmp.path().join("in"),
        ReceiveOptions {
            max_uploads: 1,
            idle_timeout: Duration::from_millis(1000),
            ..ReceiveOptions::default()
        },
    );
    let mut dribbler = connect(&server);
    dribbler.write_all(&header(b"slow.bin", 1_000_000)).unwrap();
    read_ready(&mut dribbler);
    dribbler.write_all(&start(0)).unwrap();
    assert_eq!(read_go(&mut dribbler), 0);
    let started = Instant::now();
    let refusal = loop {
        // One byte every 400 ms: never 1 s of silence.
        if dribbler.write_all(b"x").is_err() {
            break read_reply(&mut dribbler);
        }
        dribbler
            .set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        let mut kind = [0u8; 1];
        if let Ok(1) = dribbler.peek(&mut kind) {
            dribbler
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            break read_reply(&mut dribbler);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the dribbler was never dropped"
        );
    };
    let (code, message) = refusal.expect("an ERROR");
    assert_eq!(code, 10, "{message}");
    assert!(message.contains("arrived too slowly"), "{message}");
    let mut next = connect(&server);
    let waited = time_to_ready(&mut next, b"next.bin");
    assert!(waited < Duration::from_secs(1), "READY took {waited:?}");
    server.stop();
}

/// One address holds at most `max_per_ip` upload places (its next upload
/// waits) while another address is served at once; one address cannot keep
/// more than 4 × `max_per_ip` connections open.
#[test]
fn one_address_cannot_take_every_place() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(
        &tmp.path().join("in"),
        ReceiveOptions {
            max_uploads: 8,
            max_per_ip: 1,
            ..ReceiveOptions::default()
        },
    );
    let mut first = connect_from(&server, "127.0.0.3");
    time_to_ready(&mut first, b"a.bin");
    let mut second = connect_from(&server, "127.0.0.3");
    second.write_all(&header(b"b.bin", 3)).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        second.read(&mut byte).is_err(),
        "a second upload from the same address was answered"
    );
    let mut elsewhere = connect_from(&server, "127.0.0.4");
    let waited = time_to_ready(&mut elsewhere, b"c.bin");
    assert!(waited < Duration::from_secs(1), "READY took {waited:?}");

    // 4 connections per place: the fourth more from 127.0.0.3 is refused.
    let _idle: Vec<TcpStream> = (0..2).map(|_| connect_from(&server, "127.0.0.3")).collect();
    let mut one_too_many = connect_from(&server, "127.0.0.3");
    let (code, message) = read_reply(&mut one_too_many).expect("an ERROR");
    assert_eq!(code, 6, "{message}");
    assert!(message.contains("connections open here"), "{message}");
    server.stop();
}

/// Connections that hold no place are bounded: when 64 wait and another
/// arrives, the one that waited longest is told "busy" and closed.
#[test]
fn the_longest_waiting_connection_makes_room_for_a_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("in"), ReceiveOptions::default());
    // 64 silent connections from 16 addresses (4 each: within their cap).
    let mut silent: Vec<TcpStream> = (0..64)
        .map(|i| connect_from(&server, &format!("127.0.1.{}", i / 4 + 1)))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let _newcomer = connect_from(&server, "127.0.2.1");
    let (code, message) = read_reply(&mut silent[0]).expect("an ERROR");
    assert_eq!(code, 6, "{message}");
    assert!(message.contains("waited longest"), "{message}");
    // The newest is untouched (the oldest go first, even should a stranger
    // probing loopback ports arrive meanwhile and take one more place).
    silent[63]
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        silent[63].read(&mut byte).is_err(),
        "the newest was closed too"
    );
    server.stop();
}

/// Makes `path` look untouched for eight days (it may be a FIFO: opened
/// without waiting for a writer).
fn age_eight_days(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let eight_days_ago = SystemTime::now() - Duration::from_secs(8 * 24 * 3600);
    std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap()
        .set_modified(eight_days_ago)
        .unwrap();
}

/// `serve_files` starting on the folder (via the real binary), removing
/// abandoned part files; returns the run.
fn start_a_receiver_on(inbox: &Path) -> support::Run {
    Netsh::new()
        .arg("-e")
        .arg(format!(
            r#"serve_files("127.0.0.1:0", "{}").stop()"#,
            inbox.display()
        ))
        .ok()
}

/// The cleanup removes only part files of netsh's own forms: not
/// `.netsh-part`, `..netsh-part` or other look-alikes, not a hard-linked
/// one, not one an upload holds locked, and a FIFO does not hang it.
#[test]
fn the_cleanup_touches_only_netsh_part_files_nobody_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    let ours = inbox.join(".old.bin.netsh-part");
    let hashed = inbox.join(format!(".{}.netsh-part.netsh-part", "0f".repeat(16)));
    let look_alikes = [
        inbox.join(".netsh-part"),
        inbox.join("..netsh-part"),
        inbox.join(".a\tb.netsh-part"),
        inbox.join(".x.netsh-part.netsh-part"),
    ];
    let locked = inbox.join(".in-progress.bin.netsh-part");
    let linked = inbox.join(".linked.bin.netsh-part");
    let fifo = inbox.join(".fifo.bin.netsh-part");
    for path in [&ours, &hashed, &locked, &linked]
        .into_iter()
        .chain(&look_alikes)
    {
        std::fs::write(path, "x").unwrap();
    }
    std::fs::hard_link(&linked, tmp.path().join("elsewhere")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("running mkfifo");
    assert!(made.success());
    for path in [&ours, &hashed, &locked, &linked, &fifo]
        .into_iter()
        .chain(&look_alikes)
    {
        age_eight_days(path);
    }
    // An upload in another process holds this one (its lock is what counts).
    let holder = std::fs::File::open(&locked).unwrap();
    holder.lock().unwrap();

    let started = Instant::now();
    let run = start_a_receiver_on(&inbox);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{}",
        run.explain()
    );
    assert!(!ours.exists() && !hashed.exists(), "{}", run.explain());
    for kept in look_alikes.iter().chain([&locked, &linked]) {
        assert!(
            kept.exists(),
            "{} was removed: {}",
            kept.display(),
            run.explain()
        );
    }
    assert!(fifo.symlink_metadata().is_ok(), "the FIFO was removed");
    drop(holder);
}

/// A receiver that cannot start (its port is taken) removes nothing.
#[test]
fn a_receiver_that_cannot_start_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    let old = inbox.join(".old.bin.netsh-part");
    std::fs::write(&old, "x").unwrap();
    age_eight_days(&old);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let run = Netsh::new()
        .arg("-e")
        .arg(format!(
            r#"serve_files("{}", "{}")"#,
            taken.local_addr().unwrap(),
            inbox.display()
        ))
        .output();
    run.expect_code(1);
    assert!(run.stderr().contains("already in use"), "{}", run.explain());
    assert!(old.exists(), "a failed start removed a part file");
}

/// A folder or a FIFO at an upload's part-file name is refused with code 3
/// and says what it is; nothing waits on the FIFO.
#[test]
fn a_folder_or_fifo_at_the_part_file_name_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::create_dir(inbox.join(".dir.bin.netsh-part")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(inbox.join(".fifo.bin.netsh-part"))
        .status()
        .expect("running mkfifo");
    assert!(made.success());
    let server = serve(&inbox, ReceiveOptions::default());
    for (name, what) in [
        (&b"dir.bin"[..], "is a folder here"),
        (b"fifo.bin", "is a named pipe (FIFO) here"),
    ] {
        let started = Instant::now();
        let (code, message) = refusal_for(server.addr(), &header(name, 3));
        assert_eq!(code, 3, "{message}");
        assert!(message.contains(what), "{message}");
        assert!(!message.contains("os error"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    server.stop();
}
