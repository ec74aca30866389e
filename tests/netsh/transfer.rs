//! File upload (issue 4): framed uploads that never lose or corrupt a byte,
//! resume after a killed sender, refuse hostile clients, and raw mode that
//! interoperates with plain sockets the way `nc` does. Real sockets on
//! loopback, real files in temporary folders.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use netsh::net::{
    addr,
    transfer::{self, FileServer, ProgressReport, ReceiveOptions, SendOptions},
};
use rhai::{Dynamic, Map};

use crate::support::{
    self, Peer, Terminal, closed_port, has_tool, pseudo_random, sha256_hex, sink_on,
    wire::{
        hash, header, header_version, read_go, read_ready, read_reply, refusal_for, serve, start,
    },
};

/// SHA-256 of exactly 1 GiB of zero bytes.
const SHA256_OF_1GIB_OF_ZEROS: &str =
    "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Runs Rhai code in this process with a fresh shell; its value, or the error text.
fn eval(code: &str) -> Result<Dynamic, String> {
    use netsh::shell::{Outcome, Setup, Shell};
    match Shell::new(Setup::for_code(code)).eval(code, &[])? {
        Outcome::Value(value) => Ok(value),
        Outcome::Exit(status) => Err(format!("exit({status})")),
    }
}

fn eval_map(code: &str) -> Map {
    eval(code)
        .unwrap_or_else(|e| panic!("{code}\nfailed: {e}"))
        .try_cast::<Map>()
        .unwrap_or_else(|| panic!("{code}\ndid not return a map"))
}

fn field(map: &Map, key: &str) -> String {
    map.get(key)
        .map(|v| v.to_string())
        .unwrap_or_else(|| panic!("no '{key}' in {map:?}"))
}

fn send(
    server: &FileServer,
    path: &Path,
    options: SendOptions,
) -> netsh::error::Result<transfer::Sent> {
    let target = addr::parse_target(&server.addr().to_string()).unwrap();
    transfer::send_to(&target, path, options, ProgressReport::Off)
}

/// Empty, 1-byte and odd-sized files (around the 256 KiB chunk size) arrive intact through the Rhai API.
#[test]
fn small_and_odd_sized_files_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    for (i, len) in [0usize, 1, 7, 262_143, 262_144, 262_151, 1_000_003]
        .into_iter()
        .enumerate()
    {
        let data = pseudo_random(len, i as u64);
        let path = tmp.path().join(format!("file-{len}.bin"));
        std::fs::write(&path, &data).unwrap();
        let sent = eval_map(&format!(
            r#"send_file("{}", "{}", #{{progress: false}})"#,
            server.addr(),
            path.display()
        ));
        assert_eq!(field(&sent, "bytes"), len.to_string());
        assert_eq!(field(&sent, "sha256"), sha256_hex(&data));
        assert_eq!(field(&sent, "verified"), "true");
        let stored = std::fs::read(inbox.join(format!("file-{len}.bin"))).unwrap();
        assert_eq!(stored, data, "{len}-byte file differs");
    }
    assert_eq!(server.received(), 7);
    server.stop();
}

/// A 1 GiB sparse file goes over IPv6 loopback with its SHA-256 checked, and stays sparse on arrival.
#[test]
fn a_sparse_gigabyte_round_trips_over_ipv6() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sparse.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let inbox = tmp.path().join("in");
    let server = transfer::serve(
        "[::1]:0".parse().unwrap(),
        &inbox,
        ReceiveOptions::default(),
        false,
    )
    .expect("serve_files on ::1");
    let sent = eval_map(&format!(
        r#"send_file("[::1]:{}", "{}", #{{progress: false}})"#,
        server.addr().port(),
        path.display()
    ));
    assert_eq!(field(&sent, "sha256"), SHA256_OF_1GIB_OF_ZEROS);
    assert_eq!(field(&sent, "bytes"), (1u64 << 30).to_string());
    let received = server.last().expect("a received file");
    assert_eq!(hex::encode(received.sha256), SHA256_OF_1GIB_OF_ZEROS);
    let meta = std::fs::metadata(inbox.join("sparse.img")).unwrap();
    assert_eq!(meta.len(), 1 << 30);
    use std::os::unix::fs::MetadataExt;
    assert!(meta.blocks() * 512 < 1 << 20, "the copy should be sparse");
    server.stop();
}

/// Starts a real `netsh` child uploading `file` slowly, and SIGKILLs it once
/// the receiver's part file holds at least `at_least` bytes.
fn kill_sender_midway(server: &FileServer, file: &Path, part: &Path, at_least: u64) {
    let code = format!(
        r#"send_file("{}", "{}", #{{rate_limit: 4000000, progress: false}})"#,
        server.addr(),
        file.display()
    );
    let mut sender = Peer::netsh(&code);
    let refused_before = server.refused();
    let started = Instant::now();
    loop {
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        if have >= at_least {
            break;
        }
        assert!(
            sender.running(),
            "netsh ended before it was killed: {}",
            sender.output()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the upload never got going"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(sender); // SIGKILL
    // The receiver notices the closed connection and gives up on it.
    support::wait_until(
        Duration::from_secs(10),
        "the receiver to drop the upload",
        || server.refused() > refused_before,
    );
}

/// A sender killed half-way leaves no file under the final name; sending again resumes and the result is byte-identical.
#[test]
fn killed_sender_leaves_nothing_and_the_retry_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pseudo_random(12 << 20, 42);
    let file = tmp.path().join("video.bin");
    std::fs::write(&file, &data).unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let part = inbox.join(".video.bin.netsh-part");

    kill_sender_midway(&server, &file, &part, 2 << 20);
    assert!(
        !inbox.join("video.bin").exists(),
        "a cut-off upload appeared under its final name"
    );
    let kept = std::fs::metadata(&part)
        .expect("the part file is kept")
        .len();
    assert!(
        kept >= 2 << 20 && kept < data.len() as u64,
        "part has {kept} bytes"
    );

    let sent = send(&server, &file, SendOptions::default()).expect("the retry");
    assert!(sent.verified);
    assert_eq!(
        sent.resumed_from, kept,
        "the retry should continue where the part ends"
    );
    assert!(
        sent.sent < data.len() as u64,
        "sent {} of {}",
        sent.sent,
        data.len()
    );
    assert_eq!(std::fs::read(inbox.join("video.bin")).unwrap(), data);
    assert!(!part.exists(), "the part file should be gone after success");
    server.stop();
}

/// A part file whose bytes differ from the sender's file is detected; the upload starts over and arrives intact.
#[test]
fn corrupted_part_file_restarts_the_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pseudo_random(8 << 20, 7);
    let file = tmp.path().join("archive.tar");
    std::fs::write(&file, &data).unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let part = inbox.join(".archive.tar.netsh-part");

    kill_sender_midway(&server, &file, &part, 1 << 20);
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&part, &bytes).unwrap();

    let sent = send(&server, &file, SendOptions::default()).expect("the retry");
    assert_eq!(
        sent.resumed_from, 0,
        "a corrupt prefix must not be resumed from"
    );
    assert_eq!(sent.sent, data.len() as u64);
    assert_eq!(std::fs::read(inbox.join("archive.tar")).unwrap(), data);
    server.stop();
}

/// A stale part file from a different upload of the same name never leaks
/// into the new file, even under runs of zeros (which are written as holes).
#[test]
fn stale_part_bytes_never_survive_under_zeros() {
    let tmp = tempfile::tempdir().unwrap();
    let data = vec![0u8; 1 << 20];
    let file = tmp.path().join("zeros.bin");
    std::fs::write(&file, &data).unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join(".zeros.bin.netsh-part"), vec![0xffu8; 300_000]).unwrap();
    let server = serve(&inbox, ReceiveOptions::default());
    let sent = send(&server, &file, SendOptions::default()).expect("the upload");
    assert_eq!(
        sent.resumed_from, 0,
        "a foreign prefix must not be resumed from"
    );
    let stored = std::fs::read(inbox.join("zeros.bin")).unwrap();
    assert!(stored == data, "the stored file differs from the sent one");
    server.stop();
}

/// Every file under `root`, recursively (symlinks not followed).
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A hand-written hostile client (bad names, too big, lying size, garbage, stalls) is refused each time, nothing lands outside the folder, and the server keeps serving.
#[test]
fn hostile_clients_are_refused_and_the_server_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir_all(inbox.join("folder")).unwrap();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, "keep me").unwrap();
    std::os::unix::fs::symlink(&outside, inbox.join("link")).unwrap();
    let before = files_under(tmp.path());
    let server = serve(
        &inbox,
        ReceiveOptions {
            max_size: Some(1 << 20),
            header_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_millis(1000),
            ..ReceiveOptions::default()
        },
    );

    let long = vec![b'a'; 256];
    let bad_names: [&[u8]; 15] = [
        b"../escape.txt",
        b"a/../../escape.txt",
        b"/etc/passwd",
        b"..\\..\\escape.txt",
        b"..",
        b"",
        b"nul\0byte",
        b"new\nline",
        b"\x1b[2Jclear",
        &long,
        b"folder",
        b"link",
        b"\xc3\x28",
        "report\u{202E}fdp.exe".as_bytes(),
        "zero\u{200B}width".as_bytes(),
    ];
    for name in bad_names {
        let (code, message) = refusal_for(server.addr(), &header(name, 10));
        assert_eq!(
            code,
            3,
            "name {:?}: {message}",
            String::from_utf8_lossy(name)
        );
    }
    let (code, message) = refusal_for(server.addr(), &header(b"huge.bin", 2 << 20));
    assert_eq!(code, 4, "{message}");
    assert!(message.contains("at most 1048576"), "{message}");
    let (code, message) = refusal_for(server.addr(), &header_version(b"v9.bin", 10, 9));
    assert_eq!(code, 2, "{message}");
    let (code, message) = refusal_for(server.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(code, 1, "{message}");
    // Stalls mid-header: the header timeout answers.
    let started = Instant::now();
    let (code, message) = refusal_for(server.addr(), &header(b"slow.bin", 10)[..9]);
    assert_eq!(code, 10, "{message}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Stalls mid-body: the idle timeout answers.
    let mut staller = TcpStream::connect(server.addr()).unwrap();
    staller.write_all(&header(b"stall.bin", 10)).unwrap();
    assert_eq!(read_ready(&mut staller), 0);
    staller.write_all(&start(0)).unwrap();
    staller.write_all(b"ab").unwrap();
    assert_eq!(read_go(&mut staller), 0);
    let (code, message) = read_reply(&mut staller).unwrap();
    assert_eq!(code, 10, "{message}");

    // Lies about the size: 10 bytes promised, 4 sent, then close.
    let mut liar = TcpStream::connect(server.addr()).unwrap();
    liar.write_all(&header(b"liar.bin", 10)).unwrap();
    assert_eq!(read_ready(&mut liar), 0);
    liar.write_all(&start(0)).unwrap();
    liar.write_all(b"abcd").unwrap();
    liar.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = liar.read_to_end(&mut rest);
    drop(liar);
    // Sends the body but a wrong checksum.
    let mut wrong = TcpStream::connect(server.addr()).unwrap();
    wrong.write_all(&header(b"wrong.bin", 4)).unwrap();
    assert_eq!(read_ready(&mut wrong), 0);
    wrong.write_all(&start(0)).unwrap();
    wrong.write_all(b"abcd").unwrap();
    wrong.write_all(&hash(b"not abcd")).unwrap();
    assert_eq!(read_go(&mut wrong), 0);
    let (code, message) = read_reply(&mut wrong).unwrap();
    assert_eq!(code, 7, "{message}");

    support::wait_until(
        Duration::from_secs(5),
        "every refusal to be counted",
        || server.refused() >= 22,
    );
    assert_eq!(server.received(), 0);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep me");
    assert!(!inbox.join("liar.bin").exists() && !inbox.join("wrong.bin").exists());
    let mut after = files_under(tmp.path());
    after.retain(|p| !before.contains(p));
    assert_eq!(
        after,
        vec![
            inbox.join(".liar.bin.netsh-part"),
            inbox.join(".stall.bin.netsh-part")
        ],
        "only the part files of cut-off uploads (kept for a resume) may be new"
    );

    // And a good upload still goes through.
    let good = tmp.path().join("good.txt");
    std::fs::write(&good, "fine").unwrap();
    let sent =
        send(&server, &good, SendOptions::default()).expect("a good upload after the hostile ones");
    assert!(sent.verified);
    assert_eq!(
        std::fs::read_to_string(inbox.join("good.txt")).unwrap(),
        "fine"
    );
    server.stop();
}

/// Refusals reach `send_file` as errors with the receiver's reason: file exists, too large, address not allowed.
#[test]
fn refusals_are_raised_by_send_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("doc.txt");
    std::fs::write(&file, "hello").unwrap();
    let dir = tmp.path().join("in");
    let code = format!(
        r#"
        let s = serve_files("127.0.0.1:0", "{dir}", #{{max_size: 3}});
        send_file(`127.0.0.1:${{s.port}}`, "{file}")
        "#,
        dir = dir.display(),
        file = file.display()
    );
    let err = eval(&code).unwrap_err();
    assert!(
        err.contains("send_file: the receiver refused the upload: 'doc.txt' is 5 bytes")
            && err.contains("at most 3"),
        "{err}"
    );

    let code = format!(
        r#"
        let s = serve_files("127.0.0.1:0", "{dir}", #{{allow: ["10.0.0.0/8"]}});
        send_file(`127.0.0.1:${{s.port}}`, "{file}")
        "#,
        dir = dir.display(),
        file = file.display()
    );
    let err = eval(&code).unwrap_err();
    assert!(err.contains("not allowed"), "{err}");

    let code = format!(
        r#"
        let s = serve_files("127.0.0.1:0", "{dir}");
        send_file(`127.0.0.1:${{s.port}}`, "{file}");
        send_file(`127.0.0.1:${{s.port}}`, "{file}")
        "#,
        dir = dir.display(),
        file = file.display()
    );
    let err = eval(&code).unwrap_err();
    assert!(err.contains("already exists"), "{err}");
    let code = format!(
        r#"
        let s = serve_files("127.0.0.1:0", "{dir}", #{{overwrite: true}});
        send_file(`127.0.0.1:${{s.port}}`, "{file}").verified
        "#,
        dir = dir.display(),
        file = file.display()
    );
    assert_eq!(eval(&code).unwrap().to_string(), "true");
}

/// Twenty uploads at once to one `serve_files` all arrive verified.
#[test]
fn twenty_concurrent_uploads_all_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let mut originals = Vec::new();
    for i in 0..20u64 {
        let data = pseudo_random(100_000 + 37_000 * i as usize, 100 + i);
        let path = tmp.path().join(format!("upload-{i}.dat"));
        std::fs::write(&path, &data).unwrap();
        originals.push((path, data));
    }
    let senders: Vec<_> = originals
        .iter()
        .map(|(path, _)| {
            let (path, server) = (path.clone(), server.clone());
            std::thread::spawn(move || send(&server, &path, SendOptions::default()))
        })
        .collect();
    for handle in senders {
        let sent = handle.join().unwrap().expect("a concurrent upload");
        assert!(sent.verified);
    }
    assert_eq!(server.received(), 20);
    for (path, data) in &originals {
        let stored = std::fs::read(inbox.join(path.file_name().unwrap())).unwrap();
        assert!(stored == *data, "{} differs", path.display());
    }
    server.stop();
}

/// Raw `send_file` to a plain listener that reads until EOF (like `nc -l 9000 > f`) delivers the exact bytes.
#[test]
fn raw_send_to_a_plain_listener_like_nc() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pseudo_random(3_000_017, 9);
    let file = tmp.path().join("raw.bin");
    std::fs::write(&file, &data).unwrap();
    let (addr, nc) = sink_on("[::1]:0");
    let sent = eval_map(&format!(
        r#"send_file("{addr}", "{}", #{{raw: true, progress: false, hash: true}})"#,
        file.display()
    ));
    assert_eq!(field(&sent, "sha256"), sha256_hex(&data));
    assert_eq!(field(&sent, "verified"), "false");
    assert!(
        nc.join().unwrap() == data,
        "the plain listener got different bytes"
    );
}

/// By default raw mode only moves bytes, as nc does: no SHA-256 is computed.
#[test]
fn raw_send_skips_the_hash_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pseudo_random(100_003, 5);
    let file = tmp.path().join("plain.bin");
    std::fs::write(&file, &data).unwrap();
    let (addr, sink) = sink_on("127.0.0.1:0");
    let sent = eval_map(&format!(
        r#"send_file("{addr}", "{}", #{{raw: true, progress: false}})"#,
        file.display()
    ));
    assert_eq!(field(&sent, "sha256"), "");
    assert_eq!(field(&sent, "bytes"), data.len().to_string());
    assert!(
        sink.join().unwrap() == data,
        "the listener got different bytes"
    );
}

/// Raw `recv_file` takes an upload from a plain client that writes and half-closes (like `nc -N host 9000 < f`).
#[test]
fn raw_receive_from_a_plain_sender_like_nc() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pseudo_random(1_500_001, 11);
    let inbox = tmp.path().join("in");
    let listener = netsh::net::tcp::listen(loopback()).unwrap();
    let addr = listener.addr().ip().expect("a TCP listener");
    let payload = data.clone();
    let nc = std::thread::spawn(move || {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(&payload).unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
    });
    let options = ReceiveOptions {
        raw: true,
        name: Some("f".into()),
        ..ReceiveOptions::default()
    };
    let received =
        transfer::receive_once(&listener, &inbox, options, Some(Duration::from_secs(10)))
            .expect("raw recv_file");
    nc.join().unwrap();
    assert_eq!(received.bytes, data.len() as u64);
    assert!(!received.verified);
    assert_eq!(hex::encode(received.sha256), sha256_hex(&data));
    assert!(std::fs::read(inbox.join("f")).unwrap() == data);
}

/// A progress closure sees the figures and a final 100 percent; like every
/// callback it works on copies, so it collects them in a `share()`.
#[test]
fn progress_closure_gets_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.bin");
    std::fs::write(&file, pseudo_random(2_000_000, 3)).unwrap();
    let code = format!(
        r#"
        let s = serve_files("127.0.0.1:0", "{dir}");
        let seen = share([]);
        send_file(`127.0.0.1:${{s.port}}`, "{file}", #{{progress: |p| seen.add(p.percent)}});
        seen.get()
        "#,
        dir = tmp.path().join("in").display(),
        file = file.display()
    );
    let seen = eval(&code).unwrap().into_array().unwrap();
    assert!(!seen.is_empty());
    assert_eq!(seen.last().unwrap().as_float().unwrap(), 100.0);
}

/// `send_file(conn, …)` on a connection the script opened, and `recv_file(listener, …)` from Rhai; a typo'd option is caught.
#[test]
fn send_file_on_a_conn_and_recv_file_on_a_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.txt");
    std::fs::write(&file, "over a conn").unwrap();
    let inbox = tmp.path().join("in");

    let listener = netsh::net::tcp::listen(loopback()).unwrap();
    let addr = listener.addr().ip().expect("a TCP listener");
    let dir = inbox.clone();
    let receiver = std::thread::spawn(move || {
        let conn = listener.accept(Some(Duration::from_secs(10)))?;
        transfer::receive_over(conn, &dir, ReceiveOptions::default())
    });
    let sent = eval_map(&format!(
        r#"let c = connect("{addr}"); send_file(c, "{}", #{{progress: false}})"#,
        file.display()
    ));
    let received = receiver.join().unwrap().expect("receive_over");
    assert_eq!(field(&sent, "sha256"), hex::encode(received.sha256));
    assert_eq!(
        std::fs::read_to_string(inbox.join("c.txt")).unwrap(),
        "over a conn"
    );

    // recv_file(listener, dir, options) in Rhai, fed by the Rust sender.
    let port = closed_port();
    let dir = tmp.path().join("in2");
    let code = format!(
        r#"recv_file(listen("127.0.0.1:{port}"), "{}", #{{timeout: 10000}})"#,
        dir.display()
    );
    let script = std::thread::spawn(move || eval(&code).map(|v| v.to_string()));
    let target = addr::parse_target(&format!("127.0.0.1:{port}")).unwrap();
    let started = Instant::now();
    let sent = loop {
        match transfer::send_to(&target, &file, SendOptions::default(), ProgressReport::Off) {
            Ok(sent) => break sent,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("sending to recv_file: {e}"),
        }
    };
    assert!(sent.verified);
    let map = script.join().unwrap().expect("recv_file in Rhai");
    assert!(map.contains("\"verified\": true"), "{map}");

    let err = eval(r#"send_file("127.0.0.1:9", "x", #{overwite: true})"#).unwrap_err();
    assert!(err.contains("unknown option 'overwite'"), "{err}");
}

/// The README's main command: `netsh scripts/upload.rhai` with no arguments runs the loopback demo and reports success.
#[test]
fn upload_script_demo_runs() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/upload.rhai");
    let run = support::Netsh::new().arg(&script).ok();
    let out = run.stdout();
    assert!(out.contains("verified"), "{}", run.explain());
    assert!(out.contains("identical"), "{}", run.explain());
}

/// A client written by hand from docs/PROTOCOL.md's example uploads `hi.txt` and gets exactly the documented replies.
#[test]
fn a_client_following_protocol_md_gets_the_documented_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let unhex = |s: &str| hex::decode(s.replace([' ', '|'], "")).unwrap();
    let hello_sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    let mut client = TcpStream::connect(server.addr()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .write_all(&unhex(
            "4E534654 | 02 | 01 | 0006 | 0000000000000005 | 68692E747874",
        ))
        .unwrap();
    let mut ready = [0u8; 9];
    client.read_exact(&mut ready).unwrap();
    assert_eq!(ready.to_vec(), unhex("52 | 0000000000000000"));
    client
        .write_all(&unhex(&format!(
            "53 | 0000000000000000 | {}",
            "00".repeat(32)
        )))
        .unwrap();
    let mut go = [0u8; 9];
    client.read_exact(&mut go).unwrap();
    assert_eq!(go.to_vec(), unhex("47 | 0000000000000000"));
    client.write_all(b"hello").unwrap();
    client
        .write_all(&unhex(&format!("48 | {hello_sha}")))
        .unwrap();
    let mut done = [0u8; 41];
    client.read_exact(&mut done).unwrap();
    assert_eq!(
        done.to_vec(),
        unhex(&format!("4B | 0000000000000005 | {hello_sha}"))
    );
    assert_eq!(
        std::fs::read_to_string(inbox.join("hi.txt")).unwrap(),
        "hello"
    );

    // The documented refusal, byte for byte.
    let mut again = TcpStream::connect(server.addr()).unwrap();
    again
        .write_all(&unhex(
            "4E534654 | 02 | 01 | 0006 | 0000000000000005 | 68692E747874",
        ))
        .unwrap();
    let mut reply = Vec::new();
    again
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    again.read_to_end(&mut reply).unwrap();
    let mut expected = unhex("45 | 0005 | 0042");
    expected
        .extend_from_slice(b"'hi.txt' already exists and this receiver does not overwrite files");
    assert_eq!(reply, expected);
    server.stop();
}

/// With the real OpenBSD `nc` installed, raw mode works both ways: `nc -l > f` receives, `nc -N host port < f` sends (skipped, saying so, without nc).
#[test]
fn raw_mode_interoperates_with_real_nc() {
    if !has_tool(
        "raw_mode_interoperates_with_real_nc",
        "nc",
        &["-h"],
        "netcat-openbsd",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = pseudo_random(2_000_003, 5);
    let file = tmp.path().join("to-nc.bin");
    std::fs::write(&file, &data).unwrap();

    // netsh → `nc -l 127.0.0.1 PORT > out`
    let port = closed_port();
    let out = tmp.path().join("from-netsh.bin");
    let mut nc = Command::new("nc")
        .args(["-l", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    let target = addr::parse_target(&format!("127.0.0.1:{port}")).unwrap();
    let raw = SendOptions {
        raw: true,
        ..SendOptions::default()
    };
    let started = Instant::now();
    loop {
        match transfer::send_to(&target, &file, raw.clone(), ProgressReport::Off) {
            Ok(_) => break,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("sending to nc -l: {e}"),
        }
    }
    let _ = nc.wait();
    assert!(
        std::fs::read(&out).unwrap() == data,
        "nc -l received different bytes"
    );

    // `nc -N 127.0.0.1 PORT < file` → recv_file raw
    let listener = netsh::net::tcp::listen(loopback()).unwrap();
    let port = listener
        .addr()
        .ip()
        .expect("a TCP listener")
        .port()
        .to_string();
    let sender = Command::new("nc")
        .args(["-N", "127.0.0.1", &port])
        .stdin(std::fs::File::open(&file).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let options = ReceiveOptions {
        raw: true,
        name: Some("from-nc.bin".into()),
        ..ReceiveOptions::default()
    };
    let inbox = tmp.path().join("in");
    let received =
        transfer::receive_once(&listener, &inbox, options, Some(Duration::from_secs(10)))
            .expect("raw recv_file from nc");
    let _ = { sender }.wait();
    assert_eq!(received.bytes, data.len() as u64);
    assert!(std::fs::read(inbox.join("from-nc.bin")).unwrap() == data);
}

/// A receiver script that ends right after `wait(1)` still confirms the upload to its sender first.
#[test]
fn a_receiver_that_exits_after_wait_still_confirms() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("last.bin");
    std::fs::write(&file, pseudo_random(3_000_000, 1)).unwrap();
    for round in 0..3 {
        let port = closed_port();
        let dir = tmp.path().join(format!("in{round}"));
        let mut receiver = Peer::netsh(&format!(
            r#"let s = serve_files("127.0.0.1:{port}", "{}"); s.wait(1, 20000)"#,
            dir.display()
        ));
        let target = addr::parse_target(&format!("127.0.0.1:{port}")).unwrap();
        let started = Instant::now();
        let sent = loop {
            match transfer::send_to(&target, &file, SendOptions::default(), ProgressReport::Off) {
                Ok(sent) => break sent,
                Err(netsh::error::Error::Refused(_))
                    if started.elapsed() < Duration::from_secs(10) =>
                {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        };
        assert!(sent.verified);
        assert_eq!(
            receiver.wait_exit(Duration::from_secs(30)),
            Some(0),
            "round {round}: {}",
            receiver.output()
        );
    }
}

/// While one upload of a name is in progress, a second upload of the same name is refused as busy.
#[test]
fn a_second_upload_of_the_same_name_is_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("same.bin");
    std::fs::write(&file, pseudo_random(8 << 20, 2)).unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let slow = SendOptions {
        rate_limit: Some(4_000_000),
        ..SendOptions::default()
    };
    let (first_server, first_file) = (server.clone(), file.clone());
    let first = std::thread::spawn(move || send(&first_server, &first_file, slow));
    let part = inbox.join(".same.bin.netsh-part");
    support::wait_until(Duration::from_secs(10), "the first upload to start", || {
        std::fs::metadata(&part)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    });
    let err = send(&server, &file, SendOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("in progress") && err.contains("(busy)"),
        "{err}"
    );
    let sent = first.join().unwrap().expect("the first upload");
    assert!(sent.verified);
    server.stop();
}

/// On a terminal, `send_file` draws a progress bar with rate and ETA on stderr.
#[test]
fn a_terminal_gets_a_progress_bar() {
    use expectrl::Expect;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bar.bin");
    std::fs::write(&file, pseudo_random(4 << 20, 8)).unwrap();
    let server = serve(&tmp.path().join("in"), ReceiveOptions::default());
    let code = format!(
        r#"send_file("{}", "{}", #{{rate_limit: 2000000}}).verified"#,
        server.addr(),
        file.display()
    );
    let mut pty = Terminal::new(tmp.path()).args(["-e", &code]).spawn();
    pty.expect("ETA").expect("a progress bar with an ETA");
    pty.expect("true").expect("the upload to finish verified");
    server.stop();
}

/// Ctrl-C in the REPL stops an upload (nothing under the final name), the prompt comes back, and sending again resumes.
#[test]
fn ctrl_c_stops_an_upload_and_the_retry_resumes() {
    use expectrl::{ControlCode, Expect};
    use std::io::Read as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = pseudo_random(8 << 20, 13);
    let file = tmp.path().join("ctrl-c.bin");
    std::fs::write(&file, &data).unwrap();
    let inbox = tmp.path().join("in");
    let server = serve(&inbox, ReceiveOptions::default());
    let part = inbox.join(".ctrl-c.bin.netsh-part");

    let mut pty = support::repl(tmp.path());
    pty.set_expect_timeout(Some(Duration::from_secs(20)));
    let addr = server.addr();
    pty.send_line(format!(
        r#"send_file("{addr}", "{}", #{{rate_limit: 2000000, progress: false}})"#,
        file.display()
    ))
    .unwrap();
    support::wait_until(
        Duration::from_secs(15),
        "part of the upload to arrive",
        || {
            std::fs::metadata(&part)
                .map(|m| m.len() >= 1 << 20)
                .unwrap_or(false)
        },
    );
    pty.send(ControlCode::EndOfText).unwrap();
    pty.expect("interrupted")
        .expect("the upload to say it was interrupted");
    pty.expect("netsh> ").expect("the prompt back");
    support::wait_until(
        Duration::from_secs(10),
        "the receiver to drop the upload",
        || server.refused() >= 1,
    );
    assert!(!inbox.join("ctrl-c.bin").exists());

    pty.send_line(format!(
        r#"let r = send_file("{addr}", "{}", #{{progress: false}}); print(`OFFSET:${{r.resumed_from}}`)"#,
        file.display()
    ))
    .unwrap();
    // The typed line echoes as `OFFSET:${…}`; only the printed one has digits.
    let resumed = match pty.expect(expectrl::Regex("OFFSET:[0-9]+")) {
        Ok(found) => found,
        Err(e) => {
            let mut rest = String::new();
            let _ = pty.read_to_string(&mut rest);
            panic!("no OFFSET line ({e}); the REPL showed: {rest}");
        }
    };
    let printed = String::from_utf8_lossy(resumed.get(0).unwrap()).to_string();
    let offset: u64 = printed.trim_start_matches("OFFSET:").parse().unwrap();
    assert!(offset >= 1 << 20, "resumed from {offset}");
    assert!(std::fs::read(inbox.join("ctrl-c.bin")).unwrap() == data);
    server.stop();
}

/// `close()` on a connection ends a `recv_file` waiting on it in another task.
#[test]
fn closing_the_connection_ends_a_transfer_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let code = format!(
        r#"let l = listen("127.0.0.1:0"); let idle_sender = connect(l.addr);
           let c = l.accept(); let mine = c;
           let t = task(|| {{ try {{ recv_file(mine, "{}"); return "finished"; }} catch (e) {{ return `${{e}}`; }} }});
           sleep(200); c.close(); t.join()"#,
        tmp.path().display()
    );
    let outcome = eval(&code).expect("the script").to_string();
    assert!(outcome.contains("closed"), "{outcome}");
}

/// A raw receiver of either kind: netsh's own `recv_file` (raw), or a
/// plain socket reading to the end, like `nc -l > f`.
enum RawReceiver {
    Netsh(std::thread::JoinHandle<netsh::error::Result<transfer::Received>>),
    Plain(std::thread::JoinHandle<std::io::Result<usize>>),
}

impl RawReceiver {
    /// Starts one on loopback; returns it with its address.
    fn start(netsh_side: bool, inbox: &Path) -> (RawReceiver, SocketAddr) {
        if netsh_side {
            let listener = netsh::net::tcp::listen(loopback()).unwrap();
            let addr = listener.addr().ip().expect("a TCP listener");
            let inbox = inbox.to_path_buf();
            let options = ReceiveOptions {
                raw: true,
                name: Some("raw.bin".into()),
                ..ReceiveOptions::default()
            };
            let receiving = std::thread::spawn(move || {
                transfer::receive_once(&listener, &inbox, options, Some(Duration::from_secs(20)))
            });
            (RawReceiver::Netsh(receiving), addr)
        } else {
            let listener = TcpListener::bind(loopback()).unwrap();
            let addr = listener.local_addr().unwrap();
            let receiving = std::thread::spawn(move || {
                let mut conn = support::accept_within(&listener, Duration::from_secs(20));
                conn.set_read_timeout(Some(Duration::from_secs(20)))?;
                let mut got = Vec::new();
                conn.read_to_end(&mut got)
            });
            (RawReceiver::Plain(receiving), addr)
        }
    }

    /// Asserts the receiver saw a broken upload, not a finished one.
    fn assert_not_complete(self, inbox: &Path, what: &str) {
        match self {
            RawReceiver::Netsh(receiving) => {
                let outcome = receiving.join().unwrap();
                assert!(outcome.is_err(), "{what}: recv_file stored {outcome:?}");
                assert!(!inbox.join("raw.bin").exists(), "{what}: a file was stored");
                assert!(
                    !inbox.join(".raw.bin.netsh-part").exists(),
                    "{what}: the part file stayed"
                );
            }
            RawReceiver::Plain(receiving) => {
                let outcome = receiving.join().unwrap();
                let err =
                    outcome.expect_err(&format!("{what}: the plain receiver saw a clean end"));
                assert_eq!(
                    err.kind(),
                    std::io::ErrorKind::ConnectionReset,
                    "{what}: {err}"
                );
            }
        }
    }
}

/// A raw send whose file shrinks part-way (with `sendfile` or without)
/// fails with kind `io`, and resets the connection: neither netsh's raw
/// `recv_file` nor a plain nc-like socket takes the part sent as the file.
#[test]
fn a_raw_send_of_a_shrinking_file_resets_the_connection() {
    let tmp = tempfile::tempdir().unwrap();
    for netsh_side in [true, false] {
        for zero_copy in [true, false] {
            let what = format!("netsh receiver: {netsh_side}, zero_copy: {zero_copy}");
            let file = tmp.path().join("shrinking.bin");
            std::fs::write(&file, pseudo_random(8 << 20, 21)).unwrap();
            let inbox = tmp.path().join("in");
            let (receiver, addr) = RawReceiver::start(netsh_side, &inbox);
            let options = SendOptions {
                raw: true,
                zero_copy,
                rate_limit: Some(2_000_000),
                ..SendOptions::default()
            };
            let target = addr::parse_target(&addr.to_string()).unwrap();
            let source = file.clone();
            let sending = std::thread::spawn(move || {
                transfer::send_to(&target, &source, options, ProgressReport::Off)
            });
            // Well into the send (and far from its end), the file shrinks.
            std::thread::sleep(Duration::from_millis(700));
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_len(100_000)
                .unwrap();
            let err = sending.join().unwrap().expect_err(&what);
            assert_eq!(err.kind().as_str(), "io", "{what}: {err}");
            assert!(err.to_string().contains("the file shrank"), "{what}: {err}");
            receiver.assert_not_complete(&inbox, &what);
        }
    }
}

/// A progress closure that throws part-way through a raw send stops it
/// with a reset: the receiver, netsh's or a plain socket, keeps nothing.
#[test]
fn a_raw_send_stopped_by_its_progress_closure_resets_the_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("stopped.bin");
    std::fs::write(&file, pseudo_random(8 << 20, 22)).unwrap();
    for netsh_side in [true, false] {
        let what = format!("netsh receiver: {netsh_side}");
        let inbox = tmp.path().join("in");
        let (receiver, addr) = RawReceiver::start(netsh_side, &inbox);
        let err = eval(&format!(
            r#"send_file("{addr}", "{}", #{{raw: true, rate_limit: 2000000,
                progress: |p| if p.bytes > 500000 {{ throw "enough" }}}})"#,
            file.display()
        ))
        .expect_err(&what);
        assert!(err.contains("enough"), "{what}: {err}");
        receiver.assert_not_complete(&inbox, &what);
    }
}

/// A hostile receiver's refusal cannot drive the sender's terminal: its
/// escape codes, bell and newlines reach the user escaped, on one line.
#[test]
fn a_hostile_receivers_words_are_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f.txt");
    std::fs::write(&file, "data").unwrap();
    let listener = TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    let hostile = std::thread::spawn(move || {
        let mut conn = support::accept_within(&listener, Duration::from_secs(10));
        let mut header = [0u8; 16];
        conn.read_exact(&mut header).unwrap();
        let text = "\x1b[2J\x1b]0;pwned\x07 gone\nfake: prompt\u{202E}";
        let mut reply = vec![b'E', 0, 5];
        reply.extend_from_slice(&(text.len() as u16).to_be_bytes());
        reply.extend_from_slice(text.as_bytes());
        conn.write_all(&reply).unwrap();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
    });
    let run = support::Netsh::new()
        .arg("-e")
        .arg(format!(r#"send_file("{addr}", "{}")"#, file.display()))
        .output();
    hostile.join().unwrap();
    let stderr = &run.output.stderr;
    assert!(
        !stderr.iter().any(|b| *b == 0x1b || *b == 0x07),
        "raw escape codes reached the terminal: {}",
        run.explain()
    );
    let text = String::from_utf8_lossy(stderr);
    assert_eq!(text.trim_end().lines().count(), 1, "{}", run.explain());
    assert!(
        text.contains(r"\u{1b}[2J\u{1b}]0;pwned\u{7} gone\nfake: prompt\u{202e}"),
        "{}",
        run.explain()
    );
}
