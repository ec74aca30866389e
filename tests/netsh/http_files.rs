//! Folder serving (`http_serve(addr, "./folder")`) against real clients:
//! curl and wget for the listing, ranges, 304, gzip, uploads, auth and
//! CORS; a hostile raw-socket client for the path escapes; headless
//! Chromium for the listing page; and the `netsh http` scenario.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{self, Netsh, Peer, has_tool, pseudo_random};

/// A folder served by `http_serve` in a background netsh, with `options`
/// (Rhai map text).
fn serve(dir: &Path, options: &str) -> (Peer, u16) {
    let code = format!(
        "let s = http_serve(\"127.0.0.1:0\", {dir:?}, {options}); print(s.port); s.wait();",
        dir = dir.display().to_string()
    );
    let mut peer = Peer::netsh(&code);
    let port = peer.port();
    (peer, port)
}

/// A folder to serve, inside a scratch folder that also holds a secret
/// beside it (what an escape would reach).
struct Site {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

const SECRET: &str = "SECRET-OUTSIDE-THE-FOLDER";

fn site() -> Site {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("site");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(tmp.path().join("secret.txt"), SECRET).unwrap();
    Site {
        outside: tmp.path().to_path_buf(),
        root,
        _tmp: tmp,
    }
}

/// curl with `args`, its output (`-s` always).
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .arg("-sS")
        .args(args)
        .output()
        .expect("running curl")
}

fn has_curl(test: &str) -> bool {
    has_tool(test, "curl", &["--version"], "curl")
}

/// The status code and headers (lower-case names) of curl's `-D -` output.
fn head_of(out: &[u8]) -> (u16, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(out);
    // The last header block (after a 100 Continue, say).
    let block = text
        .split("\r\n\r\n")
        .filter(|b| b.starts_with("HTTP/"))
        .last()
        .unwrap_or("");
    support::status_and_headers(block)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Status, headers and body of one request by curl (`-D` to a file).
fn fetch(args: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let heads = tempfile::NamedTempFile::new().unwrap();
    let mut all = vec!["-D", heads.path().to_str().unwrap()];
    all.extend_from_slice(args);
    let out = curl(&all);
    let (status, headers) = head_of(&std::fs::read(heads.path()).unwrap());
    (status, headers, out.stdout)
}

/// One raw request over a socket (no client normalising the path), the
/// whole answer as bytes.
fn raw(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn status_of(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn the_listing_is_sorted_escaped_and_hides_dotfiles() {
    if !has_curl("http_files::the_listing_is_sorted_escaped_and_hides_dotfiles") {
        return;
    }
    let s = site();
    std::fs::write(s.root.join("b.txt"), "bee").unwrap();
    std::fs::write(s.root.join("a <x>&.txt"), vec![b'a'; 1536]).unwrap();
    std::fs::write(s.root.join(".hidden"), "dot").unwrap();
    std::fs::create_dir(s.root.join("sub")).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true}");
    let (status, headers, body) = fetch(&[&format!("http://127.0.0.1:{port}/")]);
    let html = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{html}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let at = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in {html}"))
    };
    // Folders first, then by name; the odd name escaped in text, encoded in its link.
    assert!(at("href=\"sub/\"") < at("href=\"a%20%3Cx%3E%26.txt\""));
    assert!(at("a &lt;x&gt;&amp;.txt</a>") < at("href=\"b.txt\""));
    assert!(html.contains("1.5 KiB"), "{html}");
    assert!(!html.contains("hidden"), "{html}");
    // The dotfile is not served either, unless asked.
    assert_eq!(fetch(&[&format!("http://127.0.0.1:{port}/.hidden")]).0, 404);
    let (_open, open_port) = serve(&s.root, "#{quiet: true, dotfiles: true}");
    let (status, _, body) = fetch(&[&format!("http://127.0.0.1:{open_port}/.hidden")]);
    assert_eq!((status, body.as_slice()), (200, b"dot".as_slice()));
    // A folder without its slash is sent to it.
    let (status, headers, _) = fetch(&[&format!("http://127.0.0.1:{port}/sub")]);
    assert_eq!((status, header(&headers, "location")), (301, Some("/sub/")));
}

#[test]
fn wget_mirrors_the_folder_through_its_listing_links() {
    let test = "http_files::wget_mirrors_the_folder_through_its_listing_links";
    if !has_tool(test, "wget", &["--version"], "wget") {
        return;
    }
    let s = site();
    std::fs::create_dir(s.root.join("deep dir")).unwrap();
    std::fs::write(s.root.join("deep dir/ünï #1?.txt"), "one").unwrap();
    std::fs::write(s.root.join("100%.bin"), pseudo_random(70_000, 3)).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true}");
    let into = tempfile::tempdir().unwrap();
    let out = Command::new("wget")
        .args([
            "-q",
            "-r",
            "-np",
            "-nH",
            "-R",
            "index.html*",
            "--restrict-file-names=nocontrol",
        ])
        .arg("-P")
        .arg(into.path())
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wget: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(into.path().join("deep dir/ünï #1?.txt")).unwrap(),
        b"one"
    );
    assert_eq!(
        std::fs::read(into.path().join("100%.bin")).unwrap(),
        pseudo_random(70_000, 3)
    );
}

#[test]
fn ranges_and_conditional_requests() {
    if !has_curl("http_files::ranges_and_conditional_requests") {
        return;
    }
    let s = site();
    let data = pseudo_random(300_000, 7);
    std::fs::write(s.root.join("f.bin"), &data).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true}");
    let url = format!("http://127.0.0.1:{port}/f.bin");
    let (status, headers, body) = fetch(&["-r", "100-199", &url]);
    assert_eq!(status, 206);
    assert_eq!(
        header(&headers, "content-range"),
        Some("bytes 100-199/300000")
    );
    assert_eq!(body, &data[100..200]);
    // Several ranges: one multipart/byteranges body, each part with its
    // own Content-Range, the length exact.
    std::fs::write(s.root.join("abc.txt"), "abcdefghijklmnopqrstuvwxyz").unwrap();
    let (status, headers, body) = fetch(&[
        "-r",
        "0-2,10-12",
        &format!("http://127.0.0.1:{port}/abc.txt"),
    ]);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 206, "{text}");
    let kind = header(&headers, "content-type").unwrap_or("");
    let boundary = kind
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{kind}"));
    assert_eq!(
        header(&headers, "content-length"),
        Some(body.len().to_string().as_str())
    );
    let parts: Vec<&str> = text.split(&format!("--{boundary}")).collect();
    assert_eq!(parts.len(), 4, "{text}");
    assert!(
        parts[1].contains("Content-Range: bytes 0-2/26\r\n\r\nabc\r\n"),
        "{text}"
    );
    assert!(
        parts[2].contains("Content-Range: bytes 10-12/26\r\n\r\nklm\r\n"),
        "{text}"
    );
    assert_eq!(parts[3], "--\r\n");
    // The same over HTTP/2 (h2c).
    let (status, _, body) = fetch(&["--http2-prior-knowledge", "-r", "100-199", &url]);
    assert_eq!((status, body.as_slice()), (206, &data[100..200]));
    let (status, _, body) = fetch(&["-r", "-1000", &url]);
    assert_eq!((status, body.as_slice()), (206, &data[299_000..]));
    let (status, headers, _) = fetch(&["-r", "300000-", &url]);
    assert_eq!(
        (status, header(&headers, "content-range")),
        (416, Some("bytes */300000"))
    );
    // The whole file, with its validators; then 304 for each kind of condition.
    let (status, headers, body) = fetch(&[&url]);
    assert_eq!((status, body.len()), (200, data.len()));
    assert_eq!(body, data);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/octet-stream")
    );
    let etag = header(&headers, "etag").expect("an ETag").to_string();
    let modified = header(&headers, "last-modified")
        .expect("a Last-Modified")
        .to_string();
    let (status, _, body) = fetch(&["-H", &format!("If-None-Match: {etag}"), &url]);
    assert_eq!((status, body.len()), (304, 0));
    let (status, _, _) = fetch(&["-H", &format!("If-Modified-Since: {modified}"), &url]);
    assert_eq!(status, 304);
    let (status, _, _) = fetch(&["-H", "If-None-Match: \"stale\"", &url]);
    assert_eq!(status, 200);
    // A stale If-Range gets the whole file instead of a part.
    let (status, _, body) = fetch(&["-r", "0-9", "-H", "If-Range: \"stale\"", &url]);
    assert_eq!((status, body.len()), (200, data.len()));
    // HEAD: the length, no body.
    let (status, headers, body) = fetch(&["-I", &url]);
    assert_eq!(
        (
            status,
            header(&headers, "content-length"),
            body.starts_with(b"HTTP/")
        ),
        (200, Some("300000"), true)
    );
    // A cut download resumed by wget -c (Range from its length).
    if has_tool(
        "http_files::ranges_and_conditional_requests",
        "wget",
        &["--version"],
        "wget",
    ) {
        let into = tempfile::tempdir().unwrap();
        std::fs::write(into.path().join("f.bin"), &data[..123_456]).unwrap();
        let out = Command::new("wget")
            .args(["-q", "-c", &url])
            .current_dir(into.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(into.path().join("f.bin")).unwrap(), data);
    }
}

#[test]
fn text_is_gzipped_only_when_asked() {
    if !has_curl("http_files::text_is_gzipped_only_when_asked") {
        return;
    }
    let s = site();
    let text = "the same line of text, again and again\n".repeat(5_000);
    std::fs::write(s.root.join("t.txt"), &text).unwrap();
    std::fs::write(s.root.join("p.png"), pseudo_random(100_000, 5)).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, compress: true}");
    let (status, headers, body) =
        fetch(&["--compressed", &format!("http://127.0.0.1:{port}/t.txt")]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    assert_eq!(body, text.as_bytes(), "curl decoded it back to the text");
    let (_, headers, body) = fetch(&["--compressed", &format!("http://127.0.0.1:{port}/p.png")]);
    assert_eq!(
        (header(&headers, "content-encoding"), body.len()),
        (None, 100_000)
    );
    let (_plain, plain_port) = serve(&s.root, "#{quiet: true}");
    let (_, headers, body) = fetch(&[
        "--compressed",
        &format!("http://127.0.0.1:{plain_port}/t.txt"),
    ]);
    assert_eq!(
        (header(&headers, "content-encoding"), body.len()),
        (None, text.len())
    );
}

#[test]
fn uploads_by_put_and_by_form() {
    if !has_curl("http_files::uploads_by_put_and_by_form") {
        return;
    }
    let s = site();
    let data = pseudo_random(1_000_000, 11);
    let local = s.outside.join("local.bin");
    std::fs::write(&local, &data).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, upload: true}");
    let base = format!("http://127.0.0.1:{port}");
    let (status, _, body) = fetch(&["-T", local.to_str().unwrap(), &format!("{base}/put.bin")]);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(std::fs::read(s.root.join("put.bin")).unwrap(), data);
    // The form, as curl -F sends it (two files in one form).
    let form = |path: &Path, name: &str| format!("file=@{};filename={name}", path.display());
    let (status, _, body) = fetch(&[
        "-F",
        &form(&local, "one.bin"),
        "-F",
        &form(&local, "two.bin"),
        &format!("{base}/"),
    ]);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(std::fs::read(s.root.join("one.bin")).unwrap(), data);
    assert_eq!(std::fs::read(s.root.join("two.bin")).unwrap(), data);
    // An existing name is not replaced; hostile names are refused by the
    // serve_files rules; nothing is left behind.
    assert_eq!(
        fetch(&["-T", local.to_str().unwrap(), &format!("{base}/put.bin")]).0,
        409
    );
    assert_eq!(
        fetch(&["-F", &form(&local, "x.netsh-part"), &format!("{base}/")]).0,
        400
    );
    assert_eq!(
        fetch(&[
            "-T",
            local.to_str().unwrap(),
            &format!("{base}/a.netsh-part")
        ])
        .0,
        400
    );
    let mut names: Vec<String> = std::fs::read_dir(&s.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["one.bin", "put.bin", "two.bin"]);
    // Without `upload`, no method writes.
    let (_ro, ro_port) = serve(&s.root, "#{quiet: true}");
    assert_eq!(
        fetch(&[
            "-T",
            local.to_str().unwrap(),
            &format!("http://127.0.0.1:{ro_port}/new.bin")
        ])
        .0,
        405
    );
    assert!(!s.root.join("new.bin").exists());
}

/// A refused upload's body is read to its end (up to 4 MiB), so the
/// refusal reaches the client and the connection stays open. Closing with
/// the body unread would reset the connection, and a reset can overtake the
/// answer: curl said "connection reset" instead of showing the 409.
#[test]
fn a_refused_upload_still_answers_on_a_kept_connection() {
    let s = site();
    std::fs::write(s.root.join("taken.bin"), b"first").unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, upload: true}");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = vec![7u8; 1_000_000];
    for (name, status) in [
        ("taken.bin", "409"),
        (".hidden", "403"),
        ("a.netsh-part", "400"),
    ] {
        let head = format!(
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&body).unwrap();
        let answer = read_answer(&mut c);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{name}: {answer}"
        );
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    // The same connection still serves.
    c.write_all(b"GET /taken.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let answer = read_answer(&mut c);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("first"),
        "{answer}"
    );
    assert_eq!(std::fs::read(s.root.join("taken.bin")).unwrap(), b"first");
}

/// One answer with a Content-Length body, read off a kept connection.
fn read_answer(c: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match c.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            other => panic!(
                "the answer's head ended early ({other:?}): {}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    let head = String::from_utf8_lossy(&got).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    c.read_exact(&mut body).expect("the answer's body");
    head + String::from_utf8_lossy(&body).as_ref()
}

#[test]
fn a_cut_upload_leaves_no_file() {
    let s = site();
    let (_server, port) = serve(&s.root, "#{quiet: true, upload: true}");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"PUT /cut.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    c.write_all(&[7; 100_000]).unwrap();
    // The part file is there while the upload runs, the real name is not.
    support::wait_until(Duration::from_secs(10), "the part file", || {
        s.root.join(".cut.bin.netsh-part").exists()
    });
    assert!(!s.root.join("cut.bin").exists());
    drop(c);
    support::wait_until(Duration::from_secs(10), "the part file to go", || {
        !s.root.join(".cut.bin.netsh-part").exists()
    });
    assert!(!s.root.join("cut.bin").exists());
}

#[test]
fn basic_auth_and_cors() {
    if !has_curl("http_files::basic_auth_and_cors") {
        return;
    }
    let s = site();
    std::fs::write(s.root.join("f.txt"), "private").unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, auth: \"ann:s3cret\", cors: true}");
    let url = format!("http://127.0.0.1:{port}/f.txt");
    let (status, headers, body) = fetch(&[&url]);
    assert_eq!(status, 401);
    assert!(
        header(&headers, "www-authenticate").is_some_and(|v| v.starts_with("Basic realm=")),
        "{headers:?}"
    );
    assert!(!String::from_utf8_lossy(&body).contains("private"));
    assert_eq!(fetch(&["-u", "ann:wrong", &url]).0, 401);
    // The scheme's name is case-insensitive (RFC 9110 §11.1).
    let (status, _, _) = fetch(&["-H", "Authorization: bAsIc YW5uOnMzY3JldA==", &url]);
    assert_eq!(status, 200);
    let (status, headers, body) = fetch(&["-u", "ann:s3cret", &url]);
    assert_eq!((status, body.as_slice()), (200, b"private".as_slice()));
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    // A browser's preflight carries no credentials and is answered.
    let (status, headers, _) = fetch(&[
        "-X",
        "OPTIONS",
        "-H",
        "Origin: http://app.test",
        "-H",
        "Access-Control-Request-Method: PUT",
        "-H",
        "Access-Control-Request-Headers: content-type",
        &url,
    ]);
    assert_eq!(status, 204);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&headers, "access-control-allow-headers"),
        Some("content-type")
    );
    assert!(header(&headers, "access-control-allow-methods").is_some_and(|m| m.contains("PUT")));
}

/// Requests a client that does not normalise paths can send, each an
/// attempt to reach the secret beside the folder or /etc: all refused,
/// the secret never in an answer, nothing written outside the folder.
#[test]
fn hostile_paths_never_leave_the_folder() {
    let s = site();
    std::fs::write(s.root.join("ok.txt"), "fine").unwrap();
    std::os::unix::fs::symlink("/etc", s.root.join("etc")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", s.root.join("leak.txt")).unwrap();
    std::fs::create_dir(s.root.join("idx")).unwrap();
    std::os::unix::fs::symlink("../../secret.txt", s.root.join("idx/index.html")).unwrap();
    std::fs::create_dir(s.root.join("evil.test")).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, upload: true}");
    let long = format!("/{}", "a/".repeat(3000));
    let targets: Vec<(&str, String)> = vec![
        ("dot-dot", "/../secret.txt".into()),
        ("deep dot-dot", "/sub/../../secret.txt".into()),
        ("encoded dot-dot", "/%2e%2e/secret.txt".into()),
        ("mixed-case encoding", "/%2E%2e/secret.txt".into()),
        ("encoded slash", "/..%2fsecret.txt".into()),
        ("backslash", "/..%5csecret.txt".into()),
        ("double slash", "//etc/passwd".into()),
        ("symlink to /etc", "/etc/passwd".into()),
        ("symlink to a file outside", "/leak.txt".into()),
        ("NUL byte", "/ok.txt%00.png".into()),
        ("overlong", long),
    ];
    for (what, target) in &targets {
        let answer = raw(
            port,
            format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let text = String::from_utf8_lossy(&answer);
        let status = status_of(&answer);
        assert!(
            ["400", "403", "404", "414"]
                .iter()
                .any(|code| status.contains(code)),
            "{what} ({target}): {status}"
        );
        assert!(
            !text.contains(SECRET) && !text.contains("root:"),
            "{what}: {text}"
        );
        // The same path as an upload writes nothing anywhere.
        let put = raw(port, format!("PUT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil").as_bytes());
        assert!(
            !status_of(&put).contains(" 201 "),
            "{what} upload: {}",
            String::from_utf8_lossy(&put)
        );
    }
    // A folder's index.html that is a link out is not followed: the
    // folder is listed instead.
    let listed = raw(
        port,
        b"GET /idx/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    let listed = String::from_utf8_lossy(&listed);
    assert!(
        listed.contains("Index of /idx/") && !listed.contains(SECRET),
        "{listed}"
    );
    // A folder asked for without its slash is redirected on this site,
    // never to `//evil.test/` (another host, to a browser).
    let moved = raw(
        port,
        b"GET //evil.test HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    let moved = String::from_utf8_lossy(&moved);
    assert!(
        moved
            .to_ascii_lowercase()
            .contains("location: /evil.test/\r\n"),
        "{moved}"
    );
    // A raw NUL byte in the request line is refused by the parser itself.
    let nul = raw(port, b"GET /ok.txt\0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(
        status_of(&nul).contains("400") || nul.is_empty(),
        "{}",
        String::from_utf8_lossy(&nul)
    );
    // An absolute-form target names this server's path, never the file system's.
    let absolute = raw(
        port,
        b"GET http://x/../secret.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(!String::from_utf8_lossy(&absolute).contains(SECRET));
    let mut outside: Vec<String> = std::fs::read_dir(&s.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outside.sort();
    assert_eq!(
        outside,
        ["secret.txt", "site"],
        "nothing new beside the folder"
    );
    assert_eq!(
        std::fs::read_to_string(s.outside.join("secret.txt")).unwrap(),
        SECRET
    );
    let mut inside: Vec<String> = std::fs::read_dir(&s.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert_eq!(
        inside,
        ["etc", "evil.test", "idx", "leak.txt", "ok.txt"],
        "nothing new inside either"
    );
    // The server goes on.
    let again = raw(
        port,
        b"GET /ok.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(
        again.ends_with(b"fine"),
        "{}",
        String::from_utf8_lossy(&again)
    );
    // follow_links serves through the links on purpose.
    let (_loose, loose_port) = serve(&s.root, "#{quiet: true, follow_links: true}");
    let answer = raw(
        loose_port,
        b"GET /leak.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(String::from_utf8_lossy(&answer).ends_with(SECRET));
}

#[test]
fn bad_folders_and_options_fail_before_listening() {
    let err = Netsh::eval_err(r#"http_serve("127.0.0.1:0", "/no/such/folder")"#);
    assert!(
        err.contains("http_serve") && err.contains("/no/such/folder"),
        "{err}"
    );
    let err = Netsh::eval_err(r#"http_serve("127.0.0.1:0", "/etc/hostname")"#);
    assert!(err.contains("not a folder"), "{err}");
    let err = Netsh::eval_err(r#"http_serve("127.0.0.1:0", ".", #{auth: "nocolon"})"#);
    assert!(err.contains("auth"), "{err}");
    let err = Netsh::eval_err(r#"http_serve("127.0.0.1:0", ".", #{upload: "yes"})"#);
    assert!(err.contains("upload"), "{err}");
}

/// Headless Chromium loads the listing page and its DOM shows the files.
#[test]
fn chromium_shows_the_listing() {
    let test = "http_files::chromium_shows_the_listing";
    if !has_tool(test, "chromium", &["--version"], "chromium") {
        return;
    }
    let s = site();
    std::fs::write(s.root.join("report <2026>.txt"), "r").unwrap();
    std::fs::write(s.root.join("notes.md"), "n").unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, upload: true}");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<title>Index of /</title>"),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The DOM holds the parsed links: the name as text, escaped again on output.
    assert!(dom.contains(">report &lt;2026&gt;.txt</a>"), "{dom}");
    assert!(dom.contains("href=\"report%20%3C2026%3E.txt\""), "{dom}");
    assert!(dom.contains(">notes.md</a>"), "{dom}");
    assert!(dom.contains("enctype=\"multipart/form-data\""), "{dom}");
}

/// `netsh http DIR PORT` serves DIR until stopped.
#[test]
fn the_http_scenario_serves_a_folder() {
    if !has_curl("http_files::the_http_scenario_serves_a_folder") {
        return;
    }
    let s = site();
    std::fs::write(s.root.join("hello.txt"), "hello").unwrap();
    let mut cmd = Command::new(support::netsh_bin());
    cmd.args(["http", s.root.to_str().unwrap(), "0"]);
    let mut peer = Peer::start(cmd);
    let line = peer.expect("Serving ");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line}"))
        .to_string();
    let (status, _, body) = fetch(&[&format!("{url}hello.txt")]);
    assert_eq!((status, body.as_slice()), (200, b"hello".as_slice()));
    // Each request is logged on the terminal.
    peer.expect("\"GET /hello.txt HTTP/1.1\" 200");
    peer.interrupt();
    support::wait_until(Duration::from_secs(10), "Ctrl-C to stop netsh http", || {
        !peer.running()
    });
}

/// Under permissions, serving needs read of the folder, uploads need write,
/// and a link followed out of the folder reaches only what the grant allows.
#[test]
fn served_files_are_held_to_the_permissions() {
    let s = site();
    std::fs::write(s.root.join("in.txt"), "inside").unwrap();
    std::os::unix::fs::symlink("../secret.txt", s.root.join("leak.txt")).unwrap();
    let root = s.root.to_str().unwrap();
    let read = format!("--allow-read={root}");
    let run = Netsh::new()
        .args(["--sandbox", "--allow-net=127.0.0.1:0", &read, "-e"])
        .arg(format!(
            "http_serve(\"127.0.0.1:0\", {root:?}, #{{upload: true}})"
        ))
        .output();
    assert!(
        run.stderr().contains("permission denied"),
        "{}",
        run.explain()
    );
    let mut cmd = Command::new(support::netsh_bin());
    cmd.args(["--sandbox", "--allow-net=127.0.0.1:0", &read, "-e"]).arg(format!(
        "let s = http_serve(\"127.0.0.1:0\", {root:?}, #{{quiet: true, follow_links: true}}); print(s.port); s.wait();"
    ));
    let mut server = Peer::start(cmd);
    let port = server.port();
    let inside = raw(
        port,
        b"GET /in.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(
        inside.ends_with(b"inside"),
        "{}",
        String::from_utf8_lossy(&inside)
    );
    let leak = raw(
        port,
        b"GET /leak.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(
        status_of(&leak).contains("403"),
        "{}",
        String::from_utf8_lossy(&leak)
    );
    assert!(!String::from_utf8_lossy(&leak).contains(SECRET));
}

/// A route whose value is a folder serves it under the route's prefix,
/// beside closure routes; `auth` guards the closures too.
#[test]
fn a_folder_route_beside_closures() {
    if !has_curl("http_files::a_folder_route_beside_closures") {
        return;
    }
    let s = site();
    std::fs::create_dir(s.root.join("css")).unwrap();
    std::fs::write(s.root.join("css/site.css"), "body{}").unwrap();
    let code = format!(
        "let s = http_serve(\"127.0.0.1:0\", #{{\"/static/*\": {dir:?}, \"GET /api\": |req| #{{ok: true}}}}, #{{quiet: true, auth: \"a:b\"}}); print(s.port); s.wait();",
        dir = s.root.display().to_string()
    );
    let mut server = Peer::netsh(&code);
    let port = server.port();
    let base = format!("http://127.0.0.1:{port}");
    let (status, headers, body) = fetch(&["-u", "a:b", &format!("{base}/static/css/site.css")]);
    assert_eq!((status, body.as_slice()), (200, b"body{}".as_slice()));
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/css; charset=utf-8")
    );
    let (status, _, body) = fetch(&["-u", "a:b", &format!("{base}/static/css/")]);
    let html = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(
        html.contains("Index of /static/css/") && html.contains("href=\"site.css\""),
        "{html}"
    );
    let (status, _, body) = fetch(&["-u", "a:b", &format!("{base}/api")]);
    assert_eq!(
        (status, body.as_slice()),
        (200, b"{\"ok\":true}".as_slice())
    );
    assert_eq!(fetch(&[&format!("{base}/api")]).0, 401);
    assert_eq!(fetch(&[&format!("{base}/static/css/site.css")]).0, 401);
    // The prefix is the folder's root: nothing above it through the route.
    let above = raw(port, b"GET /static/../secret.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic YTpi\r\nConnection: close\r\n\r\n");
    assert!(!String::from_utf8_lossy(&above).contains(SECRET));
    // A folder route that does not exist fails before anything listens.
    let err = Netsh::eval_err(r#"http_serve("127.0.0.1:0", #{"/files/*": "/no/such/dir"})"#);
    assert!(
        err.contains("route \"/files/*\"") && err.contains("/no/such/dir"),
        "{err}"
    );
    drop(server);
}

/// Headless Chromium's own multipart encoder: a page served from the
/// folder posts a FormData with two files to it, as the listing's form
/// does, and shows the answer; both files land on disk whole.
#[test]
fn chromium_uploads_through_a_form() {
    let test = "http_files::chromium_uploads_through_a_form";
    if !has_tool(test, "chromium", &["--version"], "chromium") {
        return;
    }
    let s = site();
    std::fs::create_dir(s.root.join("t")).unwrap();
    std::fs::write(
        s.root.join("t/page.html"),
        r#"<!DOCTYPE html><html><body><p id="out">waiting</p><script>
const form = new FormData();
form.append("file", new Blob(["first file\r\n--not a boundary\r\n"]), "one \"quoted\".txt");
form.append("file", new Blob([new Uint8Array(300000).map((_, i) => i % 251)]), "two.bin");
form.append("note", "a plain field");
fetch("/", {method: "POST", body: form})
  .then(r => r.text().then(t => { document.getElementById("out").textContent = r.status + " " + t; }))
  .catch(e => { document.getElementById("out").textContent = "failed " + e; });
</script></body></html>"#,
    )
    .unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, upload: true}");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://127.0.0.1:{port}/t/page.html"))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("201 saved"),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Chromium sends the quote as %22 in the file name.
    let saved: Vec<String> = std::fs::read_dir(&s.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "t")
        .collect();
    assert_eq!(saved.len(), 2, "{saved:?}");
    let first = saved
        .iter()
        .find(|n| n.starts_with("one"))
        .expect("the first file");
    assert_eq!(
        std::fs::read(s.root.join(first)).unwrap(),
        b"first file\r\n--not a boundary\r\n"
    );
    let want: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
    assert_eq!(std::fs::read(s.root.join("two.bin")).unwrap(), want);
}

/// Clients that never read their download cost the server a socket each,
/// not a thread: 600 of them (more than tokio's 512 blocking threads),
/// each paced by `rate_limit` so every response lasts long, and a normal
/// download still completes at once. (With a thread per streamed
/// response, the 513th waited for one of the others to finish.)
#[test]
fn clients_that_never_read_do_not_stop_other_downloads() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let test = "http_files::clients_that_never_read_do_not_stop_other_downloads";
    if !has_curl(test) {
        return;
    }
    const STUCK: usize = 600;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if hard < (STUCK as u64 + 200) {
        support::skip(
            test,
            &format!("the open-file hard limit is {hard}; {STUCK} clients need more"),
        );
        return;
    }
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raising the open-file limit");
    }
    let s = site();
    std::fs::write(s.root.join("big.bin"), vec![1u8; 2_000_000]).unwrap();
    std::fs::write(s.root.join("small.bin"), pseudo_random(20_000, 4)).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, rate_limit: 100000}");
    let mut stuck = Vec::with_capacity(STUCK);
    for _ in 0..STUCK {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        stuck.push(c);
    }
    // Each has its answer under way (its head read, its body not).
    for c in &mut stuck {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
    }
    let (status, _, body) = fetch(&[
        "--max-time",
        "15",
        &format!("http://127.0.0.1:{port}/small.bin"),
    ]);
    assert_eq!(
        (status, body.len()),
        (200, 20_000),
        "the download did not complete"
    );
    assert_eq!(body, pseudo_random(20_000, 4));
    drop(stuck);
}

/// The same without `rate_limit`, so the files go by sendfile: 50
/// clients that ask for a 64 MiB file and never read it (their sockets
/// full, the server's sendfile getting EAGAIN) do not stop another
/// client's downloads, a small file and a 4 MiB one by sendfile.
#[test]
fn clients_that_never_read_do_not_stop_other_sendfile_downloads() {
    let test = "http_files::clients_that_never_read_do_not_stop_other_sendfile_downloads";
    if !has_curl(test) {
        return;
    }
    const STUCK: usize = 50;
    let s = site();
    // Sparse: 64 MiB of file, no disk.
    std::fs::File::create(s.root.join("big.bin"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mid = pseudo_random(4 << 20, 5);
    std::fs::write(s.root.join("mid.bin"), &mid).unwrap();
    std::fs::write(s.root.join("small.bin"), pseudo_random(20_000, 4)).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true}");
    let mut stuck = Vec::with_capacity(STUCK);
    for _ in 0..STUCK {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        stuck.push(c);
    }
    for c in &mut stuck {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
    }
    let (status, _, body) = fetch(&[
        "--max-time",
        "15",
        &format!("http://127.0.0.1:{port}/small.bin"),
    ]);
    assert_eq!(
        (status, body.len()),
        (200, 20_000),
        "the small download did not complete"
    );
    assert_eq!(body, pseudo_random(20_000, 4));
    let (status, _, body) = fetch(&[
        "--max-time",
        "15",
        &format!("http://127.0.0.1:{port}/mid.bin"),
    ]);
    assert_eq!(
        (status, body.len()),
        (200, mid.len()),
        "the 4 MiB download did not complete"
    );
    assert!(body == mid, "the 4 MiB download differs");
    drop(stuck);
}

/// Writes are held to more than reads: a form's file name starting with
/// `.` is refused like a PUT's (`x/.bashrc` too); a browser's upload from
/// another site's page (its `Origin`, or `Sec-Fetch-Site: cross-site`) is
/// a 403, from this server's own page or the `cors` origin it is let in;
/// a loopback server answers only to a local `Host` (DNS rebinding), and
/// every folder answer says `nosniff`.
#[test]
fn uploads_refuse_dotfiles_and_other_sites() {
    if !has_curl("http_files::uploads_refuse_dotfiles_and_other_sites") {
        return;
    }
    let s = site();
    std::fs::create_dir(s.root.join("sub")).unwrap();
    let local = s.outside.join("local.txt");
    std::fs::write(&local, "[core]\n").unwrap();
    let form = |name: &str| format!("file=@{};filename={name}", local.display());
    let (_server, port) = serve(&s.root, "#{quiet: true, upload: true}");
    let base = format!("http://127.0.0.1:{port}");
    let (status, _, body) = fetch(&["-F", &form(".gitconfig"), &format!("{base}/")]);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = fetch(&["-F", &form("x/.bashrc"), &format!("{base}/sub/")]);
    assert_eq!(status, 403);
    assert!(!s.root.join(".gitconfig").exists() && !s.root.join("sub/.bashrc").exists());
    // Another site's page, by Origin or by Sec-Fetch-Site.
    let evil = "Origin: http://evil.example";
    let (status, _, body) = fetch(&["-H", evil, "-F", &form("evil.html"), &format!("{base}/")]);
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("another site"));
    let (status, _, _) = fetch(&[
        "-H",
        "Sec-Fetch-Site: cross-site",
        "-F",
        &form("evil.html"),
        &format!("{base}/"),
    ]);
    assert_eq!(status, 403);
    let (status, _, _) = fetch(&[
        "-H",
        evil,
        "-T",
        local.to_str().unwrap(),
        &format!("{base}/evil.txt"),
    ]);
    assert_eq!(status, 403);
    let (status, _, _) = fetch(&[
        "-H",
        "Origin: null",
        "-F",
        &form("evil.html"),
        &format!("{base}/"),
    ]);
    assert_eq!(status, 403);
    assert!(!s.root.join("evil.html").exists() && !s.root.join("evil.txt").exists());
    // This server's own page may upload, over HTTP/1.1 and HTTP/2.
    let own = format!("Origin: {base}");
    let (status, _, _) = fetch(&["-H", &own, "-F", &form("mine.txt"), &format!("{base}/")]);
    assert_eq!(status, 201);
    let (status, _, _) = fetch(&[
        "--http2-prior-knowledge",
        "-H",
        &own,
        "-H",
        "Sec-Fetch-Site: same-origin",
        "-F",
        &form("mine2.txt"),
        &format!("{base}/"),
    ]);
    assert_eq!(status, 201);
    // A Host that is not local: a rebound name, answered with 421.
    let (status, _, body) = fetch(&["-H", "Host: rebind.evil.example", &format!("{base}/")]);
    assert_eq!(status, 421, "{}", String::from_utf8_lossy(&body));
    assert!(!String::from_utf8_lossy(&body).contains("mine.txt"));
    let (status, headers, _) = fetch(&[&format!("http://localhost:{port}/mine.txt")]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    // The cors origin is let in to upload too.
    let (_open, open_port) = serve(
        &s.root,
        "#{quiet: true, upload: true, cors: \"http://app.test\"}",
    );
    let (status, _, _) = fetch(&[
        "-H",
        "Origin: http://app.test",
        "-F",
        &form("app.txt"),
        &format!("http://127.0.0.1:{open_port}/"),
    ]);
    assert_eq!(status, 201);
    let (status, _, _) = fetch(&[
        "-H",
        evil,
        "-F",
        &form("evil.html"),
        &format!("http://127.0.0.1:{open_port}/"),
    ]);
    assert_eq!(status, 403);
    let mut names: Vec<String> = std::fs::read_dir(&s.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["app.txt", "mine.txt", "mine2.txt", "sub"]);
}

/// A client that gives up mid-upload leaves no part file: over HTTP/1.1 a
/// connection reset, over HTTP/2 a cancelled stream (hyper then drops the
/// answer's future, so nothing after an `.await` runs).
#[test]
fn an_abandoned_upload_leaves_no_part_file() {
    let s = site();
    let (_server, port) = serve(&s.root, "#{quiet: true, upload: true}");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"PUT /cut.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    c.write_all(&[7; 100_000]).unwrap();
    support::wait_until(Duration::from_secs(10), "the part file", || {
        s.root.join(".cut.bin.netsh-part").exists()
    });
    // SO_LINGER 0: the close is a reset, not an end of stream.
    nix::sys::socket::setsockopt(
        &c,
        nix::sys::socket::sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .unwrap();
    drop(c);
    support::wait_until(Duration::from_secs(10), "the part file to go", || {
        !s.root.join(".cut.bin.netsh-part").exists()
    });
    assert!(!s.root.join("cut.bin").exists());
    if !has_curl("http_files::an_abandoned_upload_leaves_no_part_file") {
        return;
    }
    // curl gives up on a slow HTTP/2 upload: it resets the stream.
    let local = s.outside.join("local.bin");
    std::fs::write(&local, vec![3u8; 5_000_000]).unwrap();
    let out = curl(&[
        "--http2-prior-knowledge",
        "--limit-rate",
        "500k",
        "--max-time",
        "2",
        "-T",
        local.to_str().unwrap(),
        &format!("http://127.0.0.1:{port}/h2.bin"),
    ]);
    assert!(!out.status.success(), "the upload was to be cut");
    support::wait_until(
        Duration::from_secs(10),
        "the HTTP/2 part file to go",
        || !s.root.join(".h2.bin.netsh-part").exists(),
    );
    assert!(!s.root.join("h2.bin").exists());
}

/// A server stopped mid-upload drops the upload's future where it stands
/// (no error reaches it): the part file goes all the same.
#[test]
fn a_server_stopped_mid_upload_leaves_no_part_file() {
    let s = site();
    let code = format!(
        "let s = http_serve(\"127.0.0.1:0\", {dir:?}, #{{quiet: true, upload: true}}); print(s.port); sleep(3000); s.stop(); print(\"stopped\"); sleep(60000);",
        dir = s.root.display().to_string()
    );
    let mut peer = Peer::netsh(&code);
    let port = peer.port();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"PUT /cut.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    c.write_all(&[7; 100_000]).unwrap();
    support::wait_until(Duration::from_secs(10), "the part file", || {
        s.root.join(".cut.bin.netsh-part").exists()
    });
    peer.expect("stopped");
    support::wait_until(Duration::from_secs(10), "the part file to go", || {
        !s.root.join(".cut.bin.netsh-part").exists()
    });
    assert!(!s.root.join("cut.bin").exists());
    drop(c);
}

/// `max_upload`: a PUT or a form over it is a 413, announced by its
/// Content-Length or found while it streams, and leaves no file.
#[test]
fn uploads_over_max_upload_are_413() {
    if !has_curl("http_files::uploads_over_max_upload_are_413") {
        return;
    }
    let s = site();
    let big = s.outside.join("big.bin");
    std::fs::write(&big, vec![5u8; 5000]).unwrap();
    let small = s.outside.join("small.bin");
    std::fs::write(&small, vec![6u8; 500]).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, upload: true, max_upload: 1000}");
    let base = format!("http://127.0.0.1:{port}");
    let (status, _, body) = fetch(&["-T", big.to_str().unwrap(), &format!("{base}/big.bin")]);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("max_upload"));
    // Chunked (no Content-Length): cut off once past the limit.
    let (status, _, _) = fetch(&[
        "-H",
        "Transfer-Encoding: chunked",
        "-T",
        big.to_str().unwrap(),
        &format!("{base}/chunked.bin"),
    ]);
    assert_eq!(status, 413);
    let (status, _, _) = fetch(&[
        "-F",
        &format!("file=@{};filename=f.bin", big.display()),
        &format!("{base}/"),
    ]);
    assert_eq!(status, 413);
    let (status, _, _) = fetch(&["-T", small.to_str().unwrap(), &format!("{base}/small.bin")]);
    assert_eq!(status, 201);
    let names: Vec<String> = std::fs::read_dir(&s.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["small.bin"]);
    let err = Netsh::eval_err(r#"http_serve("127.0.0.1:0", ".", #{max_upload: 0})"#);
    assert!(err.contains("max_upload"), "{err}");
}

/// Uploads never go through a link out of the folder, even with
/// `follow_links: true` (that is for reading).
#[test]
fn uploads_never_follow_links_out() {
    if !has_curl("http_files::uploads_never_follow_links_out") {
        return;
    }
    let s = site();
    let away = s.outside.join("away");
    std::fs::create_dir(&away).unwrap();
    std::os::unix::fs::symlink(&away, s.root.join("out")).unwrap();
    let local = s.outside.join("local.txt");
    std::fs::write(&local, "x").unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, upload: true, follow_links: true}");
    let base = format!("http://127.0.0.1:{port}");
    let (status, _, _) = fetch(&["-T", local.to_str().unwrap(), &format!("{base}/out/x.txt")]);
    assert_eq!(status, 403);
    let (status, _, _) = fetch(&[
        "-F",
        &format!("file=@{};filename=y.txt", local.display()),
        &format!("{base}/out/"),
    ]);
    assert_eq!(status, 403);
    assert_eq!(std::fs::read_dir(&away).unwrap().count(), 0);
}

/// The 303 after a browser's form goes back to this site's folder, never
/// to `//evil.test/` (another host, to a browser).
#[test]
fn a_form_redirect_stays_on_this_site() {
    let s = site();
    std::fs::create_dir(s.root.join("evil.test")).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, upload: true}");
    let body = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\r\nhi\r\n--b--\r\n";
    let request = format!(
        "POST //evil.test/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = raw(port, request.as_bytes());
    let answer = String::from_utf8_lossy(&answer);
    assert!(status_of(answer.as_bytes()).contains("303"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("location: /evil.test/\r\n"),
        "{answer}"
    );
    assert_eq!(
        std::fs::read(s.root.join("evil.test/f.txt")).unwrap(),
        b"hi"
    );
}

/// A link inside the folder to a dotfile is as hidden as the dotfile; the
/// listing shows no size of what a refused link points to.
#[test]
fn links_to_dotfiles_and_outside_show_nothing() {
    let s = site();
    std::fs::write(s.root.join(".env"), "TOKEN=hunter2").unwrap();
    std::os::unix::fs::symlink(".env", s.root.join("visible")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", s.root.join("leak.txt")).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true}");
    let answer = raw(
        port,
        b"GET /visible HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(status_of(&answer).contains("404"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let listing = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    let listing = String::from_utf8_lossy(&listing);
    // The secret is 25 bytes, the dotfile 13: neither size is told.
    assert!(listing.contains("href=\"leak.txt\""), "{listing}");
    assert!(
        !listing.contains("25 bytes") && !listing.contains("13 bytes"),
        "{listing}"
    );
}

/// A file dated past the year 9999 is served (its date clamped), and its
/// folder listed: no panic, no dropped connection.
#[test]
fn dates_past_the_year_9999_are_clamped() {
    let test = "http_files::dates_past_the_year_9999_are_clamped";
    if !has_curl(test) {
        return;
    }
    // ext4 stops at the year 2446; tmpfs keeps 64-bit times.
    let Ok(tmp) = tempfile::tempdir_in("/dev/shm") else {
        support::skip(test, "no /dev/shm (tmpfs) to hold a file dated past 9999");
        return;
    };
    let far = tmp.path().join("far.txt");
    std::fs::write(&far, "future").unwrap();
    let touched = Command::new("touch")
        .arg("-d")
        .arg("@400000000000")
        .arg(&far)
        .status()
        .unwrap();
    assert!(touched.success());
    let year = std::fs::metadata(&far).unwrap().modified().unwrap();
    if year < std::time::UNIX_EPOCH + Duration::from_secs(253_402_300_800) {
        support::skip(test, "this file system cannot date a file past 9999");
        return;
    }
    let (_server, port) = serve(tmp.path(), "#{quiet: true}");
    let (status, headers, body) = fetch(&[&format!("http://127.0.0.1:{port}/far.txt")]);
    assert_eq!((status, body.as_slice()), (200, b"future".as_slice()));
    assert_eq!(
        header(&headers, "last-modified"),
        Some("Fri, 31 Dec 9999 23:59:59 GMT")
    );
    let (status, _, body) = fetch(&[&format!("http://127.0.0.1:{port}/")]);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("9999-12-31"));
}

/// `rate_limit` paces gzip and multi-range answers too (at 20 kB/s, some
/// 60 kB take about 3 s; the check is only that they are not immediate).
#[test]
fn rate_limit_paces_gzip_and_multiple_ranges() {
    if !has_curl("http_files::rate_limit_paces_gzip_and_multiple_ranges") {
        return;
    }
    let s = site();
    // Hex text compresses about in half: some 60 kB of gzip.
    let hex: String = pseudo_random(60_000, 9)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(s.root.join("t.txt"), &hex).unwrap();
    let (_server, port) = serve(&s.root, "#{quiet: true, compress: true, rate_limit: 20000}");
    let url = format!("http://127.0.0.1:{port}/t.txt");
    let started = std::time::Instant::now();
    let (status, headers, body) = fetch(&["--compressed", &url]);
    assert_eq!(
        (status, header(&headers, "content-encoding")),
        (200, Some("gzip"))
    );
    assert_eq!(body, hex.as_bytes());
    assert!(
        started.elapsed() > Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let (status, _, body) = fetch(&["-r", "0-29999,60000-89999", &url]);
    assert_eq!(status, 206);
    assert!(body.len() > 60_000);
    assert!(
        started.elapsed() > Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

/// A `file:` reply is answered as a served folder's file: ETag and
/// Last-Modified, 304 for a current copy, a stale If-Range gets the whole
/// file, and a reply with another status than 200 is never made partial.
#[test]
fn file_replies_have_validators_and_honour_if_range() {
    if !has_curl("http_files::file_replies_have_validators_and_honour_if_range") {
        return;
    }
    let s = site();
    let data = pseudo_random(100_000, 21);
    let path = s.root.join("f.bin");
    std::fs::write(&path, &data).unwrap();
    let code = format!(
        "let s = http_serve(\"127.0.0.1:0\", #{{\"GET /f\": |req| #{{file: {p:?}}}, \"GET /made\": |req| #{{status: 201, file: {p:?}}}}}, #{{quiet: true}}); print(s.port); s.wait();",
        p = path.display().to_string()
    );
    let mut server = Peer::netsh(&code);
    let port = server.port();
    let url = format!("http://127.0.0.1:{port}/f");
    let (status, headers, body) = fetch(&[&url]);
    assert_eq!((status, body.len()), (200, data.len()));
    let etag = header(&headers, "etag").expect("an ETag").to_string();
    let modified = header(&headers, "last-modified")
        .expect("a Last-Modified")
        .to_string();
    let (status, _, body) = fetch(&["-H", &format!("If-None-Match: {etag}"), &url]);
    assert_eq!((status, body.len()), (304, 0));
    let (status, _, _) = fetch(&["-H", &format!("If-Modified-Since: {modified}"), &url]);
    assert_eq!(status, 304);
    let (status, _, body) = fetch(&["-r", "10-19", "-H", &format!("If-Range: {etag}"), &url]);
    assert_eq!((status, body.as_slice()), (206, &data[10..20]));
    let (status, _, body) = fetch(&["-r", "10-19", "-H", "If-Range: \"stale\"", &url]);
    assert_eq!((status, body.len()), (200, data.len()));
    let (status, headers, body) = fetch(&["-r", "10-19", &format!("http://127.0.0.1:{port}/made")]);
    assert_eq!((status, body.len()), (201, data.len()));
    assert_eq!(header(&headers, "content-range"), None);
    drop(server);
}
