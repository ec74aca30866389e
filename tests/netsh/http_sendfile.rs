//! Files that `http_serve` sends by sendfile on plain HTTP/1.1 (its
//! `sendfile` module), checked byte for byte against the file: whole
//! downloads by curl (sha256), ranges that cross the span one marker
//! stands for (8 MiB) and a range's own spans (they start at its start
//! and grow from 512 KiB), several ranges, HEAD, several answers on one
//! keep-alive connection, a `file:` reply from a handler, and a file cut
//! short while it is being sent. Big files are sparse, with patches of
//! pseudo-random bytes, so the tests stay fast and small on disk.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{Peer, has_tool, pseudo_random};

const MIB: u64 = 1 << 20;
/// The most one marker stands for (`sendfile::SPAN`): big files cross it.
const SPAN: u64 = 8 * MIB;

fn has_curl(test: &str) -> bool {
    has_tool(test, "curl", &["--version"], "curl")
}

/// A sparse file of `len` bytes with 64 KiB of pseudo-random bytes every
/// `every` bytes and around each span's edge, so a byte out of place shows.
fn sparse(path: &Path, len: u64, every: u64) {
    let f = File::create(path).unwrap();
    f.set_len(len).unwrap();
    let mut at = 0;
    let mut seed = 1;
    let mut put = |at: u64| {
        let patch = pseudo_random(64 * 1024, seed);
        seed += 1;
        let end = (at + patch.len() as u64).min(len);
        f.write_all_at(&patch[..(end - at) as usize], at).unwrap();
    };
    while at < len {
        put(at);
        at += every;
    }
    let mut edge = SPAN;
    while edge < len {
        put(edge - 32 * 1024);
        edge += SPAN;
    }
    put(len.saturating_sub(1000));
}

/// `len` bytes of the file at `path` from `at`.
fn bytes_of(path: &Path, at: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0; len as usize];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, at)
        .unwrap();
    buf
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("running sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// curl's exit code, status and headers, its body written to `out`.
fn curl_to(args: &[&str], out: &Path) -> (i32, u16, Vec<(String, String)>) {
    let heads = tempfile::NamedTempFile::new().unwrap();
    let run = Command::new("curl")
        .arg("-sS")
        .args(["-D", heads.path().to_str().unwrap()])
        .args(["-o", out.to_str().unwrap()])
        .args(args)
        .output()
        .expect("running curl");
    let text = std::fs::read_to_string(heads.path()).unwrap_or_default();
    let (status, headers) = crate::support::status_and_headers(&text);
    (run.status.code().unwrap_or(-1), status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One keep-alive connection, requests sent by hand and answers read by
/// their `Content-Length`.
struct Client {
    s: TcpStream,
    /// Read past the last answer's head.
    spare: Vec<u8>,
}

impl Client {
    fn new(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client {
            s,
            spare: Vec::new(),
        }
    }

    /// Sends `method target` (with `extra` header lines), reads the head:
    /// the status and the Content-Length.
    fn ask(&mut self, method: &str, target: &str, extra: &str) -> (u16, u64) {
        let request = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n");
        self.s.write_all(request.as_bytes()).unwrap();
        let mut head = std::mem::take(&mut self.spare);
        let end = loop {
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut buf = [0u8; 4096];
            let n = self.s.read(&mut buf).unwrap();
            assert!(n > 0, "the connection closed before the head ended");
            head.extend_from_slice(&buf[..n]);
        };
        self.spare = head.split_off(end);
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let length = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        (status, length)
    }

    /// Up to `len` bytes of the body, fewer if the connection ends first.
    fn body(&mut self, len: u64) -> Vec<u8> {
        let mut body = std::mem::take(&mut self.spare);
        if body.len() as u64 > len {
            self.spare = body.split_off(len as usize);
        }
        let mut rest = (&mut self.s).take(len - body.len() as u64);
        let _ = rest.read_to_end(&mut body);
        body
    }

    /// `method target`'s status and whole body.
    fn get(&mut self, method: &str, target: &str, extra: &str) -> (u16, Vec<u8>) {
        let (status, len) = self.ask(method, target, extra);
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            self.body(len)
        };
        (status, body)
    }
}

fn serve(code: &str) -> (Peer, u16) {
    let mut peer = Peer::netsh(code);
    let port = peer.port();
    (peer, port)
}

/// A served folder: a whole sparse file of a little over two spans by
/// curl (sha256), ranges across a span's edge, a suffix, several ranges.
#[test]
fn folder_files_whole_and_in_ranges() {
    let test = "http_sendfile::folder_files_whole_and_in_ranges";
    if !has_curl(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir(&site).unwrap();
    let big = site.join("big.bin");
    let len = 5 * SPAN + 12_345;
    sparse(&big, len, MIB);
    let (_server, port) = serve(&format!(
        "let s = http_serve(\"127.0.0.1:0\", {:?}, #{{quiet: true}}); print(s.port); s.wait();",
        site.display().to_string()
    ));
    let url = format!("http://127.0.0.1:{port}/big.bin");
    let out = tmp.path().join("out");

    let (code, status, headers) = curl_to(&[&url], &out);
    assert_eq!((code, status), (0, 200));
    assert_eq!(
        header(&headers, "content-length"),
        Some(len.to_string().as_str())
    );
    assert_eq!(sha256_of(&out), sha256_of(&big), "the whole file differs");

    for (from, to) in [
        (SPAN - 40_000, SPAN + 40_000),
        (0, SPAN + 1),
        (2 * SPAN - 1, len - 1),
        // One byte: the read path (64 KiB or less).
        (len - 1, len - 1),
    ] {
        let (code, status, headers) = curl_to(&["-r", &format!("{from}-{to}"), &url], &out);
        assert_eq!((code, status), (0, 206), "range {from}-{to}");
        assert_eq!(
            header(&headers, "content-range"),
            Some(format!("bytes {from}-{to}/{len}").as_str())
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            bytes_of(&big, from, to - from + 1),
            "range {from}-{to} differs"
        );
    }
    let (code, status, _) = curl_to(&["-r", "-70000", &url], &out);
    assert_eq!((code, status), (0, 206));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        bytes_of(&big, len - 70_000, 70_000)
    );

    // Several ranges: one multipart body, each part the file's bytes.
    let parts = [(100, 199), (SPAN - 10, SPAN + 9), (len - 5, len - 1)];
    let spec: Vec<String> = parts.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    let (code, status, headers) = curl_to(&["-r", &spec.join(","), &url], &out);
    assert_eq!((code, status), (0, 206));
    assert!(
        header(&headers, "content-type").is_some_and(|t| t.starts_with("multipart/byteranges")),
        "{headers:?}"
    );
    let body = std::fs::read(&out).unwrap();
    for (a, b) in parts {
        let marker = format!("Content-Range: bytes {a}-{b}/{len}\r\n\r\n");
        let at = body
            .windows(marker.len())
            .position(|w| w == marker.as_bytes())
            .unwrap_or_else(|| panic!("no part {a}-{b}"))
            + marker.len();
        assert_eq!(
            &body[at..at + (b - a + 1) as usize],
            bytes_of(&big, a, b - a + 1)
        );
    }
}

/// One keep-alive connection: a file by sendfile, then a small file, a
/// HEAD, a range and the file again, each intact (a marker left behind
/// by one answer would break the next).
#[test]
fn answers_after_a_sendfile_on_one_connection_are_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir(&site).unwrap();
    let data = pseudo_random(5 * MIB as usize + 7, 9);
    std::fs::write(site.join("a.bin"), &data).unwrap();
    let small = pseudo_random(1000, 10);
    std::fs::write(site.join("small.bin"), &small).unwrap();
    let other = pseudo_random(3 * MIB as usize, 11);
    std::fs::write(site.join("b.bin"), &other).unwrap();
    let (_server, port) = serve(&format!(
        "let s = http_serve(\"127.0.0.1:0\", {:?}, #{{quiet: true}}); print(s.port); s.wait();",
        site.display().to_string()
    ));
    let mut c = Client::new(port);
    assert_eq!(c.get("GET", "/a.bin", ""), (200, data.clone()));
    assert_eq!(c.get("GET", "/small.bin", ""), (200, small.clone()));
    let (status, len) = c.ask("HEAD", "/a.bin", "");
    assert_eq!((status, len), (200, data.len() as u64));
    assert_eq!(c.get("GET", "/b.bin", ""), (200, other.clone()));
    let (status, body) = c.get("GET", "/a.bin", "Range: bytes=100000-3000000\r\n");
    assert_eq!((status, body.as_slice()), (206, &data[100_000..3_000_001]));
    assert_eq!(c.get("GET", "/a.bin", ""), (200, data));
    assert_eq!(c.get("GET", "/small.bin", ""), (200, small));
}

/// A handler's `file:` reply: whole by curl (sha256), a range across a
/// span's edge, HEAD, and another status sent whole.
#[test]
fn file_replies_go_whole_and_in_ranges() {
    let test = "http_sendfile::file_replies_go_whole_and_in_ranges";
    if !has_curl(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("f.bin");
    let len = 3 * SPAN + 777;
    sparse(&big, len, MIB);
    let p = big.display().to_string();
    let (_server, port) = serve(&format!(
        "let s = http_serve(\"127.0.0.1:0\", #{{\"GET /f\": |req| #{{file: {p:?}}}, \"GET /made\": |req| #{{status: 201, file: {p:?}}}}}, #{{quiet: true}}); print(s.port); s.wait();"
    ));
    let out = tmp.path().join("out");
    let url = format!("http://127.0.0.1:{port}/f");
    let (code, status, _) = curl_to(&[&url], &out);
    assert_eq!((code, status), (0, 200));
    assert_eq!(sha256_of(&out), sha256_of(&big));
    // 11 bytes go the read path (64 KiB or less), still right.
    let (code, status, _) = curl_to(&["-r", &format!("{}-{}", SPAN - 5, SPAN + 5), &url], &out);
    assert_eq!((code, status), (0, 206));
    assert_eq!(std::fs::read(&out).unwrap(), bytes_of(&big, SPAN - 5, 11));
    // Ranges past 64 KiB go by sendfile, in spans that start at the
    // range's start (512 KiB, then twice as long each up to 8 MiB): from
    // 512 KiB + 1000, each of those edges falls in a patch of random
    // bytes (one every MiB), and the long one crosses the file's spans too.
    let expected = tmp.path().join("expected");
    for (from, count) in [
        (SPAN - 50_000, 100_000),
        (MIB / 2 + 1000, 17 * MIB + 3),
        (MIB / 2 + 1000, len - (MIB / 2 + 1000)),
    ] {
        let to = from + count - 1;
        let (code, status, _) = curl_to(&["-r", &format!("{from}-{to}"), &url], &out);
        assert_eq!((code, status), (0, 206), "range {from}-{to}");
        std::fs::write(&expected, bytes_of(&big, from, count)).unwrap();
        assert_eq!(
            sha256_of(&out),
            sha256_of(&expected),
            "range {from}-{to} differs"
        );
    }
    let (code, status, headers) = curl_to(&["-I", &url], &out);
    assert_eq!((code, status), (0, 200));
    assert_eq!(
        header(&headers, "content-length"),
        Some(len.to_string().as_str())
    );
    let (code, status, _) = curl_to(
        &["-r", "0-9", &format!("http://127.0.0.1:{port}/made")],
        &out,
    );
    assert_eq!((code, status), (0, 201));
    assert_eq!(sha256_of(&out), sha256_of(&big));
}

/// A file cut short while it is sent: the client gets the bytes the file
/// still has, exactly, then the connection ends (short of the length its
/// head promised); the server goes on answering.
#[test]
fn a_file_cut_short_mid_download_ends_the_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir(&site).unwrap();
    let path = site.join("cut.bin");
    let len = 8 * SPAN;
    sparse(&path, len, MIB);
    const KEPT: u64 = 4 * SPAN;
    let kept = bytes_of(&path, 0, KEPT);
    let (_server, port) = serve(&format!(
        "let s = http_serve(\"127.0.0.1:0\", {:?}, #{{quiet: true}}); print(s.port); s.wait();",
        site.display().to_string()
    ));
    let mut c = Client::new(port);
    let (status, promised) = c.ask("GET", "/cut.bin", "");
    assert_eq!((status, promised), (200, len));
    // A little of it, then the file shrinks under the download (the
    // socket's buffers hold far less than what is kept).
    let mut body = c.body(MIB);
    assert_eq!(body.len() as u64, MIB);
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(KEPT)
        .unwrap();
    // The connection must end at once, well before this timeout: a
    // server that kept it open short of its length would hang clients.
    c.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    body.extend(c.body(len - MIB));
    assert_eq!(body.len() as u64, KEPT, "not the bytes the file still had");
    assert!(body == kept, "the bytes sent are not the file's");
    match c.s.read(&mut [0u8; 1]) {
        Ok(0) => {}
        Ok(_) => panic!("bytes after the file's end"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the connection did not end: {e}"
        ),
    }

    let mut c = Client::new(port);
    let (status, body) = c.get("GET", "/cut.bin", "");
    assert_eq!((status, body.len() as u64), (200, KEPT));
    assert!(body == kept);
}

/// The bytes go by sendfile on plain HTTP/1.1, not read into netsh:
/// strace, attached to the server, sees `sendfile` calls to the socket
/// carrying the whole file and no `pread64` of it (the read path's
/// calls).
#[test]
fn plain_http1_files_go_by_sendfile() {
    let test = "http_sendfile::plain_http1_files_go_by_sendfile";
    if !has_tool(test, "strace", &["-V"], "strace") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir(&site).unwrap();
    // Past one span, so warming steps (sendfile to /dev/null) run on
    // other threads while the socket's sendfile goes on.
    let data = pseudo_random(2 * SPAN as usize + 12_345, 12);
    std::fs::write(site.join("a.bin"), &data).unwrap();
    let (server, port) = serve(&format!(
        "let s = http_serve(\"127.0.0.1:0\", {:?}, #{{quiet: true}}); print(s.port); s.wait();",
        site.display().to_string()
    ));
    let trace = tmp.path().join("trace");
    // `-ff`: each thread's calls in a file of its own, so a call is never
    // split into `<unfinished ...>` and `resumed>` lines by another
    // thread's call (the split line would carry no result to count).
    let mut strace = Command::new("strace")
        .args(["-ff", "-y", "-e", "trace=sendfile,pread64", "-o"])
        .arg(&trace)
        .args(["-p", &server.pid().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting strace");
    // strace says on stderr once it has attached every thread ("Process
    // N attached with T threads"), or why it cannot; later threads are
    // followed (`-f`).
    let (lines, said) = std::sync::mpsc::channel();
    if let Some(err) = strace.stderr.take() {
        std::thread::spawn(move || {
            let err = std::io::BufReader::new(err);
            for line in std::io::BufRead::lines(err).map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let first = said
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_default();
    if !first.contains("attached") {
        let _ = strace.kill();
        let _ = strace.wait();
        crate::support::skip(test, &format!("strace could not attach: {first}"));
        return;
    }
    let mut c = Client::new(port);
    assert_eq!(c.get("GET", "/a.bin", ""), (200, data.clone()));
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(strace.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = strace.wait();
    // `trace.<tid>` for each thread.
    let mut text = String::new();
    for entry in std::fs::read_dir(tmp.path()).unwrap().map_while(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with("trace.") {
            text += &std::fs::read_to_string(entry.path()).unwrap_or_default();
        }
    }
    assert!(
        !text.contains("unfinished") && !text.contains("resumed>"),
        "a call split over two lines:\n{text}"
    );
    assert!(
        text.contains("</dev/null>"),
        "no warming step was traced:\n{text}"
    );
    let sent: u64 = text
        .lines()
        // `-y` names each descriptor: the socket's, not the warming
        // step's `/dev/null`.
        .filter(|l| l.contains("sendfile(") && l.contains("<socket:"))
        .filter_map(|l| {
            l.rsplit("= ")
                .next()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(
        sent,
        data.len() as u64,
        "sendfile did not carry the file:\n{text}"
    );
    assert!(
        !text.contains("pread64("),
        "the file was read into netsh:\n{text}"
    );
}

/// Clients that leave right after the head cost little disk: ten of them
/// on ten 40 MiB files make the server read ahead (`stats().warmed`) at
/// most 2 MiB each (about 0.25 MiB here), not the 8 MiB span and the
/// next one each that it once read regardless (80–160 MiB).
#[test]
fn clients_gone_after_the_head_cost_little_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir(&site).unwrap();
    for i in 0..10 {
        File::create(site.join(format!("{i}.bin")))
            .unwrap()
            .set_len(40 * MIB)
            .unwrap();
    }
    let mut server = Peer::netsh(&format!(
        r#"let s = http_serve("127.0.0.1:0", {:?}, #{{quiet: true}}); print(s.port);
        while s.stats().requests < 10 || s.stats().active > 0 {{ sleep(20) }}
        sleep(500);
        print(`warmed ${{s.stats().warmed}}`);
        s.wait();"#,
        site.display().to_string()
    ));
    let port = server.port();
    for i in 0..10 {
        let mut c = Client::new(port);
        let (status, len) = c.ask("GET", &format!("/{i}.bin"), "");
        assert_eq!((status, len), (200, 40 * MIB));
    }
    let line = server.expect("warmed ");
    let warmed: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    assert!(warmed > 0, "nothing was warmed: the test shows nothing");
    assert!(
        warmed <= 20 * MIB,
        "{} MiB read ahead for 10 clients that left",
        warmed / MIB
    );
}

/// A file already in the page cache is sent without being read ahead a
/// second time (cachestat says so), while one dropped from the cache is
/// still read ahead on the blocking pool first (`stats().warmed`).
#[test]
fn only_a_file_not_in_the_page_cache_is_read_ahead() {
    // Whether a span is cached is asked of cachestat(2), Linux 6.5 on.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut version = release
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().unwrap_or(0));
    if (version.next().unwrap_or(0), version.next().unwrap_or(0)) < (6, 5) {
        crate::support::skip(
            "http_sendfile::only_a_file_not_in_the_page_cache_is_read_ahead",
            &format!(
                "cachestat(2) needs Linux 6.5 or later, this is {}",
                release.trim()
            ),
        );
        return;
    }
    // A disk-backed folder (the build's): a tmpfs `/tmp` keeps every page.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir(&site).unwrap();
    let len = 3 * SPAN + 4321;
    let data = pseudo_random(len as usize, 7);
    let path = site.join("cold.bin");
    let file = File::create(&path).unwrap();
    (&file).write_all(&data).unwrap();
    file.sync_all().unwrap();
    let mut server = Peer::netsh(&format!(
        r#"let s = http_serve("127.0.0.1:0", {:?}, #{{quiet: true}}); print(s.port);
        for n in 1..=2 {{
            while s.stats().requests < n || s.stats().active > 0 {{ sleep(20) }}
            print(`warmed ${{s.stats().warmed}}`);
        }}
        s.wait();"#,
        site.display().to_string()
    ));
    let port = server.port();
    let warmed = |server: &mut Peer| -> u64 {
        let line = server.expect("warmed ");
        line.rsplit(' ')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no count in {line:?}"))
    };
    // Out of the cache: its pages were written back, so they drop.
    nix::fcntl::posix_fadvise(
        &file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .unwrap();
    drop(file);
    let (status, body) = Client::new(port).get("GET", "/cold.bin", "");
    assert_eq!(status, 200);
    assert!(body == data, "the cold file's bytes differ");
    let cold = warmed(&mut server);
    assert!(cold > 0, "a file out of the page cache was not read ahead");
    // Now every page is cached: nothing more is read ahead.
    let (status, body) = Client::new(port).get("GET", "/cold.bin", "");
    assert_eq!(status, 200);
    assert!(body == data, "the cached file's bytes differ");
    assert_eq!(
        warmed(&mut server),
        cold,
        "a file in the page cache was read ahead again"
    );
}
