//! The upload receiver against a raw wire client written from
//! `docs/PROTOCOL.md` (issue 11): hard-linked part files and final names,
//! names without a file part, oversized name fields, a break before HASH,
//! sending ahead of READY, bytes after HASH, the cut-off message, files
//! that do not report their size, the upload cap, abandoned part files.

mod support;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use netsh::net::transfer::{self, FileServer, ReceiveOptions};
use sha2::{Digest, Sha256};
use support::{
    Netsh,
    wire::{hash, header, read_number_and_digest, read_reply, refusal_for, start},
};

fn serve(dir: &Path, options: ReceiveOptions) -> FileServer {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    transfer::serve(any, dir, options, false).expect("starting serve_files")
}

fn connect(server: &FileServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Waits until `check` holds, up to 10 s.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An upload of `size` bytes cut off after `sent` bytes of body (the
/// connection simply closes); waits until the receiver has counted it.
fn cut_off_upload(server: &FileServer, name: &str, size: u64, sent: &[u8]) {
    let refused = server.refused();
    let mut stream = connect(server);
    stream.write_all(&header(name.as_bytes(), size, 1)).unwrap();
    read_number_and_digest(&mut stream, b'R');
    stream.write_all(&start(0)).unwrap();
    stream.write_all(sent).unwrap();
    drop(stream);
    wait_until("the cut-off upload to be counted", || {
        server.refused() > refused
    });
}

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

    let (code, message) = refusal_for(server.addr(), &header(b"x.bin", 100, 1));
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
    let (code, message) = refusal_for(server.addr(), &header(b"x.bin", 3, 1));
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
        let (code, message) = refusal_for(server.addr(), &header(name, 1, 1));
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
    let (code, message) = refusal_for(server.addr(), &header(&long, 1, 1)[..16]);
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
    second.write_all(&header(b"whole.bin", 10, 1)).unwrap();
    let (offset, prefix) = read_number_and_digest(&mut second, b'R');
    assert_eq!(offset, 10);
    assert_eq!(prefix.to_vec(), Sha256::digest(body).to_vec());
    second.write_all(&start(10)).unwrap();
    second.write_all(&hash(body)).unwrap();
    let (size, sha) = read_number_and_digest(&mut second, b'K');
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
    let mut everything = header(b"ahead.bin", 8, 1);
    everything.extend_from_slice(&start(0));
    everything.extend_from_slice(body);
    everything.extend_from_slice(&hash(body));
    let mut stream = connect(&server);
    stream.write_all(&everything).unwrap();
    let (offered, _) = read_number_and_digest(&mut stream, b'R');
    assert_eq!(offered, 4, "the receiver offers what it holds");
    let (size, _) = read_number_and_digest(&mut stream, b'K');
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
        .write_all(&header(b"tail.bin", body.len() as u64, 1))
        .unwrap();
    read_number_and_digest(&mut stream, b'R');
    let mut rest = start(0);
    rest.extend_from_slice(body);
    rest.extend_from_slice(&hash(body));
    rest.extend_from_slice(b"and some trailing garbage");
    stream.write_all(&rest).unwrap();
    let (size, sha) = read_number_and_digest(&mut stream, b'K');
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
        eprintln!("skipping the /sys case: /sys/class/net/lo/address does not exist here");
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
    first.write_all(&header(b"one.bin", 3, 1)).unwrap();
    read_number_and_digest(&mut first, b'R');
    let mut second = connect(&server);
    second.write_all(&header(b"two.bin", 3, 1)).unwrap();
    read_number_and_digest(&mut second, b'R');

    let mut third = connect(&server);
    third.write_all(&header(b"three.bin", 3, 1)).unwrap();
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
    read_number_and_digest(&mut first, b'K');
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
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
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
