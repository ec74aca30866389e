//! `fetch(url, path)` against real servers on loopback: big downloads
//! checked by SHA-256, cut-off bodies resumed, servers that ignore Range,
//! resources that change between attempts, parts already complete, hostile
//! file names, non-regular destinations, progress closures, nginx's Range
//! and ETag, and Ctrl-C in the REPL.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bytes::Bytes;

use crate::support::{
    self, Netsh, Terminal,
    http::{HttpServer, Resource},
    nginx::Nginx,
    pseudo_random, sha256_file, sha256_hex,
};

/// A value from a printed result map: `key: value`.
fn field(out: &str, key: &str) -> String {
    out.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no '{key}' in:\n{out}"))
        .trim_end_matches(',')
        .trim_matches('"')
        .to_string()
}

/// The Rhai call downloading `url` to `path` without a progress bar.
fn fetch_code(url: &str, path: &Path) -> String {
    format!(
        r#"fetch("{url}", "{}", #{{progress: false, hash: true}})"#,
        path.display()
    )
}

fn part_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// A temp folder on tmpfs when there is one (big files cost no disk).
fn scratch() -> tempfile::TempDir {
    if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn resource(data: Vec<u8>) -> Resource {
    Resource {
        data: Bytes::from(data),
        ..Resource::default()
    }
}

/// 256 MiB, mostly zeros with pseudo-random blocks every 4 MiB: quick to
/// make, and every block must land in the right place for the hash to match.
#[test]
fn a_256_mib_download_is_checked_by_sha256() {
    let mut data = vec![0u8; 256 << 20];
    for (i, block) in data.chunks_mut(4 << 20).enumerate() {
        block[..64 * 1024].copy_from_slice(&pseudo_random(64 * 1024, i as u64 + 1));
    }
    let expected = sha256_hex(&data);
    let server = HttpServer::start();
    server.put("big.bin", resource(data));
    let dir = scratch();
    let path = dir.path().join("big.bin");
    let out = Netsh::eval(&fetch_code(&server.url("files/big.bin"), &path));
    assert_eq!(field(&out, "bytes"), (256u64 << 20).to_string(), "{out}");
    assert_eq!(
        field(&out, "sha256"),
        expected,
        "the hash computed while streaming"
    );
    assert_eq!(sha256_file(&path), expected, "the file on disk");
    assert_eq!(field(&out, "resumed_from"), "0");
    assert!(!part_of(&path).exists(), "no .part left behind");
}

/// Serves `data` as `/files/NAME` cut off after `cut` bytes and runs a
/// download of it, which must fail leaving `cut` bytes in the `.part`.
/// Returns the folder, the path and the Rhai call, to run again.
fn cut_off_download(
    server: &HttpServer,
    name: &str,
    data: &[u8],
    cut: u64,
) -> (tempfile::TempDir, PathBuf, String) {
    server.put(
        name,
        Resource {
            cut_after: Some(cut),
            ..resource(data.to_vec())
        },
    );
    let dir = scratch();
    let path = dir.path().join(name);
    let code = fetch_code(&server.url(&format!("files/{name}")), &path);
    let err = Netsh::eval_err(&code);
    assert!(
        err.contains(&format!("files/{name}")),
        "names the URL: {err}"
    );
    assert!(!path.exists(), "nothing under the final name");
    let kept = std::fs::metadata(part_of(&path)).unwrap().len();
    assert_eq!(kept, cut, "the part holds what arrived");
    assert!(
        err.contains(&format!("after {cut} of {} bytes, kept in", data.len())),
        "says how far it got and where the bytes are: {err}"
    );
    (dir, path, code)
}

/// A `.part` that is a symbolic link or has another hard link (planted in
/// a shared folder) is refused: the file it leads to is left as it was.
#[test]
fn a_part_file_linked_elsewhere_is_refused() {
    let server = HttpServer::start();
    server.put("l.bin", resource(pseudo_random(1 << 16, 5)));
    let dir = scratch();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "victim").unwrap();
    let path = dir.path().join("l.bin");
    let code = fetch_code(&server.url("files/l.bin"), &path);
    std::os::unix::fs::symlink(&victim, part_of(&path)).unwrap();
    let err = Netsh::eval_err(&code);
    assert!(
        err.contains("is a symbolic link; refusing to write through it"),
        "{err}"
    );
    std::fs::remove_file(part_of(&path)).unwrap();
    std::fs::hard_link(&victim, part_of(&path)).unwrap();
    let err = Netsh::eval_err(&code);
    assert!(
        err.contains("has other hard links; refusing to write through it"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim");
    assert!(!path.exists(), "nothing under the final name");
}

/// Two downloads of different files to one path at once: each that
/// reports success reports its own bytes, and the file is one of them
/// whole (the last to finish), never a mix or the other's bytes under a
/// success that claims its own.
#[test]
fn two_downloads_to_one_path_never_mix() {
    let server = HttpServer::start();
    let a = pseudo_random(16 << 20, 1);
    let b = pseudo_random(24 << 20, 2);
    server.put("a.bin", resource(a.clone()));
    server.put("b.bin", resource(b.clone()));
    let expected = [sha256_hex(&a), sha256_hex(&b)];
    for round in 0..3 {
        let dir = scratch();
        let path = dir.path().join("same.bin");
        let runs: Vec<_> = ["a.bin", "b.bin"]
            .map(|name| {
                let code = fetch_code(&server.url(&format!("files/{name}")), &path) + ".sha256";
                std::thread::spawn(move || Netsh::new().args(["-e", &code]).output())
            })
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let mut claimed = Vec::new();
        for (run, own) in runs.iter().zip(&expected) {
            if run.code() == Some(0) {
                assert_eq!(run.stdout().trim_matches('"'), own, "round {round}");
                claimed.push(own.clone());
            } else {
                let err = run.stderr();
                assert!(
                    err.contains("another download is writing"),
                    "round {round}: {err}"
                );
            }
        }
        let on_disk = sha256_file(&path);
        assert!(
            claimed.contains(&on_disk),
            "round {round}: the file ({on_disk}) is none of the successes {claimed:?}"
        );
        assert!(!part_of(&path).exists(), "round {round}: no part left");
    }
}

/// A body cut off half-way leaves only the `.part`; fetching again resumes
/// with Range and If-Range and gives the identical file.
#[test]
fn a_cut_off_download_resumes_to_the_identical_file() {
    let data = pseudo_random(8 << 20, 7);
    let server = HttpServer::start();
    let (_dir, path, code) = cut_off_download(&server, "f.bin", &data, 3 << 20);
    let kept: u64 = 3 << 20;

    server.update("f.bin", |r| r.cut_after = None);
    let out = Netsh::eval(&code);
    assert_eq!(field(&out, "resumed_from"), kept.to_string(), "{out}");
    assert_eq!(field(&out, "status"), "206");
    assert_eq!(field(&out, "sha256"), sha256_hex(&data));
    assert!(std::fs::read(&path).unwrap() == data, "the identical file");
    assert!(!part_of(&path).exists());
    assert_eq!(
        server.last_header("/files/f.bin", "range").as_deref(),
        Some(format!("bytes={kept}-").as_str())
    );
    assert_eq!(
        server.last_header("/files/f.bin", "if-range").as_deref(),
        Some(format!("\"v0-{:x}\"", data.len()).as_str()),
        "the ETag of the first response guards the resume"
    );
}

/// A server that ignores Range sends everything again: the part is cut and
/// rewritten, not appended to.
#[test]
fn a_server_ignoring_range_starts_over_cleanly() {
    let data = pseudo_random(4 << 20, 11);
    let server = HttpServer::start();
    let (_dir, path, code) = cut_off_download(&server, "g.bin", &data, 1 << 20);
    server.update("g.bin", |r| {
        r.cut_after = None;
        r.ignore_range = true;
    });
    let out = Netsh::eval(&code);
    assert_eq!(field(&out, "status"), "200");
    assert_eq!(field(&out, "resumed_from"), "0");
    assert!(std::fs::read(&path).unwrap() == data);
    assert!(
        server.last_header("/files/g.bin", "range").is_some(),
        "a range was asked for"
    );
}

/// When the resource changed between attempts, If-Range gets the whole new
/// version and the file is the new one, never a splice of both.
#[test]
fn a_changed_resource_is_downloaded_afresh() {
    let old = pseudo_random(4 << 20, 21);
    let new = pseudo_random(4 << 20, 22);
    let server = HttpServer::start();
    let (_dir, path, code) = cut_off_download(&server, "h.bin", &old, 2 << 20);
    server.update("h.bin", |r| {
        r.cut_after = None;
        r.data = Bytes::from(new.clone());
        r.version = 1;
    });
    let out = Netsh::eval(&code);
    assert_eq!(
        field(&out, "status"),
        "200",
        "If-Range did not match: {out}"
    );
    assert_eq!(field(&out, "resumed_from"), "0");
    assert!(
        std::fs::read(&path).unwrap() == new,
        "the new version, whole"
    );
}

/// A `.part` that is already complete is finished (416 with the full
/// length), not an error.
#[test]
fn a_complete_part_is_finished_not_failed() {
    let data = pseudo_random(1 << 20, 31);
    let server = HttpServer::start();
    server.put("c.bin", resource(data.clone()));
    let dir = scratch();
    let path = dir.path().join("c.bin");
    std::fs::write(part_of(&path), &data).unwrap();
    let out = Netsh::eval(&fetch_code(&server.url("files/c.bin"), &path));
    assert_eq!(field(&out, "status"), "416", "{out}");
    assert_eq!(field(&out, "bytes"), data.len().to_string());
    assert_eq!(field(&out, "resumed_from"), data.len().to_string());
    assert_eq!(field(&out, "sha256"), sha256_hex(&data));
    assert!(std::fs::read(&path).unwrap() == data);
    assert!(!part_of(&path).exists());
}

/// Into a folder, a hostile Content-Disposition name (`../../x`, absolute,
/// control characters, hidden) never leaves the folder or hides a file;
/// a plain one is used as given.
#[test]
fn hostile_content_disposition_names_stay_in_the_folder() {
    let server = HttpServer::start();
    let cases = [
        ("attachment; filename=\"../../x\"", "cd"),
        ("attachment; filename=\"/etc/passwd\"", "cd"),
        ("attachment; filename*=UTF-8''%1b%5b31mred.txt", "cd"),
        ("attachment; filename*=UTF-8''..%2F..%2Fescape", "cd"),
        ("attachment; filename=\".bashrc\"", "_bashrc"),
        ("attachment; filename=\"report.pdf\"", "report.pdf"),
    ];
    for (disposition, stored) in cases {
        let root = scratch();
        let inner = root.path().join("a/b");
        std::fs::create_dir_all(&inner).unwrap();
        let url = format!(
            "{}?name={}",
            server.url("cd"),
            url::form_urlencoded::byte_serialize(disposition.as_bytes()).collect::<String>()
        );
        let out = Netsh::eval(&format!(
            r#"fetch("{url}", "{}", #{{progress: false, hash: true}}).path"#,
            inner.display()
        ));
        assert_eq!(
            out,
            inner.join(stored).display().to_string(),
            "{disposition}"
        );
        let listing: Vec<String> = std::fs::read_dir(&inner)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(listing, vec![stored.to_string()], "{disposition}");
        let above: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(
            above.len(),
            1,
            "nothing written above the folder: {disposition}"
        );
    }
}

/// An error status saves nothing: no file, no empty `.part`.
#[test]
fn an_error_status_saves_nothing() {
    let server = HttpServer::start();
    let dir = scratch();
    let path = dir.path().join("missing.bin");
    let err = Netsh::eval_err(&format!(
        r#"fetch("{}", "{}", #{{hash: true}})"#,
        server.url("files/missing.bin"),
        path.display()
    ));
    assert!(
        err.contains("the server answered 404 Not Found; nothing was saved"),
        "{err}"
    );
    let listing: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(listing.is_empty(), "{listing:?}");
}

/// A file the folder already has is not replaced by a download into the
/// folder; the error's kind is `exists`, as README's table says.
#[test]
fn a_folder_download_never_replaces_a_file() {
    let server = HttpServer::start();
    server.put("kept.txt", resource(b"new".to_vec()));
    let dir = scratch();
    std::fs::write(dir.path().join("kept.txt"), "old").unwrap();
    let err = Netsh::eval(&format!(
        r#"let f = || {{ try {{ fetch("{}", "{}", #{{progress: false, hash: true}}); }} catch (e) {{ return `${{e.kind}} | ${{e}}` }} }}; f.call()"#,
        server.url("files/kept.txt"),
        dir.path().display()
    ));
    assert!(
        err.starts_with("exists | ") && err.contains("kept.txt already exists"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("kept.txt")).unwrap(),
        "old"
    );
}

/// `/dev/null` and a FIFO are written straight into: no `.part` anywhere.
#[test]
fn non_regular_paths_are_streamed_into_without_a_part() {
    let data = pseudo_random(3 << 20, 41);
    let server = HttpServer::start();
    server.put("n.bin", resource(data.clone()));
    let out = Netsh::eval(&format!(
        r#"fetch("{}", "/dev/null", #{{progress: false, hash: true}})"#,
        server.url("files/n.bin")
    ));
    assert_eq!(field(&out, "bytes"), data.len().to_string());
    assert_eq!(field(&out, "path"), "/dev/null");
    assert_eq!(field(&out, "sha256"), sha256_hex(&data));
    assert!(!Path::new("/dev/null.part").exists());
    let unhashed = Netsh::eval(&format!(
        r#"let d = fetch("{}", "/dev/null", #{{progress: false, hash: false}}); [d.bytes, d.sha256]"#,
        server.url("files/n.bin")
    ));
    assert_eq!(
        unhashed,
        format!("[{}, ()]", data.len()),
        "hash: false skips the SHA-256"
    );

    let dir = scratch();
    let fifo = dir.path().join("pipe");
    support::mkfifo(&fifo);
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::read(reader_path).unwrap());
    Netsh::eval(&fetch_code(&server.url("files/n.bin"), &fifo));
    assert!(reader.join().unwrap() == data, "the reader got every byte");
    let listing: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(listing.len(), 1, "only the FIFO: no .part");
}

/// A progress closure sees the figures; one that throws stops the download
/// with the `.part` kept, and the next fetch resumes from it.
#[test]
fn a_progress_closure_can_stop_a_download_and_it_resumes() {
    let data = pseudo_random(6 << 20, 51);
    let server = HttpServer::start();
    server.put(
        "p.bin",
        Resource {
            stall_after: Some(2 << 20),
            ..resource(data.clone())
        },
    );
    let dir = scratch();
    let path = dir.path().join("p.bin");
    let err = Netsh::eval_err(&format!(
        r#"fetch("{}", "{}", #{{progress: |p| if p.bytes >= 2097152 {{ throw `enough at ${{p.bytes}} of ${{p.total}}` }}}})"#,
        server.url("files/p.bin"),
        path.display()
    ));
    assert!(
        err.contains("the progress callback failed: enough at 2097152 of 6291456"),
        "{err}"
    );
    // The writer finishes its queue just after the error returns.
    let started = Instant::now();
    while std::fs::metadata(part_of(&path)).map_or(0, |m| m.len()) < 2 << 20 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the part never reached 2 MiB"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.update("p.bin", |r| r.stall_after = None);
    let out = Netsh::eval(&format!(
        r#"let seen = share([]); let r = fetch("{}", "{}", #{{progress: |p| seen.add(p.percent)}}); r.seen = seen.get().len(); r.last = seen.get()[-1]; r"#,
        server.url("files/p.bin"),
        path.display()
    ));
    assert_eq!(
        field(&out, "resumed_from"),
        (2u64 << 20).to_string(),
        "{out}"
    );
    assert_eq!(
        field(&out, "last"),
        "100.0",
        "the last call reports completion"
    );
    assert!(std::fs::read(&path).unwrap() == data);
}

/// Compressed bodies are decoded into the file (gzip, brotli, deflate);
/// `decode: false` saves them as sent.
#[test]
fn compressed_downloads_are_decoded_unless_told_not_to() {
    let server = HttpServer::start();
    let dir = scratch();
    for route in ["gzip", "br", "deflate"] {
        let path = dir.path().join(route);
        Netsh::eval(&format!(
            r#"fetch("{}", "{}", #{{progress: false, hash: true}})"#,
            server.url(route),
            path.display()
        ));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            support::http::TEXT.repeat(20),
            "{route}"
        );
    }
    let raw = dir.path().join("raw.gz");
    Netsh::eval(&format!(
        r#"fetch("{}", "{}", #{{progress: false, decode: false, hash: true}})"#,
        server.url("gzip"),
        raw.display()
    ));
    assert_eq!(
        &std::fs::read(&raw).unwrap()[..2],
        &[0x1f, 0x8b],
        "gzip as sent"
    );
}

/// Against nginx: a part resumes with a real 206; a stale ETag in If-Range
/// gets the whole file; a complete part gets nginx's 416 and is finished.
#[test]
fn nginx_range_and_etag() {
    let root = tempfile::tempdir().unwrap();
    let data = pseudo_random(5 << 20, 61);
    std::fs::write(root.path().join("n.bin"), &data).unwrap();
    let Some(nginx) = Nginx::start("nginx_range_and_etag", root.path()) else {
        return;
    };
    let url = nginx.url("n.bin");
    let dir = scratch();
    let code = |path: &Path| {
        format!(
            r#"fetch("{url}", "{}", #{{progress: false, hash: true}})"#,
            path.display()
        )
    };
    let etag = Netsh::eval(&format!(
        r#"fetch("{url}", #{{method: "HEAD"}}).headers.etag"#
    ));

    // A part with the right validator resumes with nginx's 206.
    let resumed = dir.path().join("resumed.bin");
    std::fs::write(part_of(&resumed), &data[..2 << 20]).unwrap();
    set_validator(&part_of(&resumed), &format!("etag:{etag}"));
    let out = Netsh::eval(&code(&resumed));
    assert_eq!(field(&out, "status"), "206", "{out}");
    assert_eq!(field(&out, "resumed_from"), (2u64 << 20).to_string());
    assert!(std::fs::read(&resumed).unwrap() == data);

    // A stale validator: nginx answers 200 with everything.
    let stale = dir.path().join("stale.bin");
    std::fs::write(part_of(&stale), vec![b'x'; 1 << 20]).unwrap();
    set_validator(&part_of(&stale), "etag:\"0-stale\"");
    let out = Netsh::eval(&code(&stale));
    assert_eq!(field(&out, "status"), "200", "{out}");
    assert_eq!(field(&out, "resumed_from"), "0");
    assert!(
        std::fs::read(&stale).unwrap() == data,
        "no stale bytes kept"
    );

    // Text nginx gzips on the fly arrives decoded.
    let text = "nginx gzips text/plain for clients that accept it.\n".repeat(200);
    std::fs::write(root.path().join("t.txt"), &text).unwrap();
    let saved = dir.path().join("t.txt");
    Netsh::eval(&format!(
        r#"fetch("{}", "{}", #{{progress: false, hash: true}})"#,
        nginx.url("t.txt"),
        saved.display()
    ));
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), text);

    // A complete part: nginx's 416 with `bytes */SIZE`.
    let complete = dir.path().join("complete.bin");
    std::fs::write(part_of(&complete), &data).unwrap();
    let out = Netsh::eval(&code(&complete));
    assert_eq!(field(&out, "status"), "416", "{out}");
    assert_eq!(field(&out, "sha256"), sha256_hex(&data));
    assert!(!part_of(&complete).exists());
}

/// Records a validator on a part file, as an interrupted download would.
fn set_validator(part: &Path, value: &str) {
    let file = std::fs::File::options().write(true).open(part).unwrap();
    rustix::fs::fsetxattr(
        &file,
        "user.netsh.validator",
        value.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap_or_else(|e| panic!("this filesystem has no user xattrs ({e})"));
}

/// Ctrl-C in the REPL during a download: first the fetch is shown to be
/// blocked mid-body (the server stalls after 1 MiB), then Ctrl-C brings
/// the prompt back, the `.part` stays, and the next fetch resumes to the
/// identical file.
#[test]
fn ctrl_c_stops_a_download_and_the_next_fetch_resumes() {
    use expectrl::{ControlCode, Expect};
    let data = pseudo_random(4 << 20, 71);
    let server = HttpServer::start();
    server.put(
        "r.bin",
        Resource {
            stall_after: Some(1 << 20),
            ..resource(data.clone())
        },
    );
    let home = scratch();
    let path = home.path().join("r.bin");
    let mut pty = support::repl(home.path());
    pty.send_line(format!(
        r#"fetch("{}", "r.bin", #{{progress: false, hash: true}})"#,
        server.url("files/r.bin")
    ))
    .unwrap();
    support::wait_until(Duration::from_secs(15), "1 MiB in the .part", || {
        std::fs::metadata(part_of(&path)).is_ok_and(|m| m.len() >= 1 << 20)
    });
    // Blocked: the server holds the rest, and the fetch has neither
    // returned a result nor failed.
    std::thread::sleep(Duration::from_millis(300));
    let early = pty.check(expectrl::Regex("fetch:|resumed_from")).unwrap();
    assert!(
        early.is_empty(),
        "the fetch returned before Ctrl-C: it was not blocked"
    );
    pty.send(ControlCode::EndOfText).unwrap();
    pty.expect("fetch: interrupted")
        .expect("the fetch to say it was interrupted");
    pty.expect("netsh> ").expect("the prompt back");
    assert!(!path.exists(), "nothing under the final name");
    assert_eq!(std::fs::metadata(part_of(&path)).unwrap().len(), 1 << 20);

    server.update("r.bin", |r| r.stall_after = None);
    pty.send_line(format!(
        r#"let d = fetch("{}", "r.bin", #{{progress: false, hash: true}}); print(`RESUMED:${{d.resumed_from}}:${{d.sha256}}`)"#,
        server.url("files/r.bin")
    ))
    .unwrap();
    let expected = format!("RESUMED:{}:{}", 1 << 20, sha256_hex(&data));
    pty.expect(expected.as_str())
        .expect("the resumed fetch's result");
    assert!(std::fs::read(&path).unwrap() == data, "the identical file");
}

/// plugins/http.rhai's `http::start` (http_serve on a folder): GET, HEAD,
/// one range, 416, 404, 405, and 400 for paths that would leave its folder
/// (sent raw, since URL parsers remove `..` themselves). An encoded `/` is
/// a separator like any other: `a%2fb` is `a/b`, which is not there.
#[test]
fn the_http_plugin_serves_a_folder() {
    let site = scratch();
    let data = pseudo_random(300_000, 81);
    std::fs::write(site.path().join("f.bin"), &data).unwrap();
    std::fs::write(site.path().join("a b.txt"), "spaced").unwrap();
    let code = format!(
        r#"let s = http::start("127.0.0.1:0", "{dir}");
           let u = `http://${{s.addr}}`;
           fn raw(addr, line) {{
               let c = connect(addr); c.send(line + "\r\nHost: x\r\n\r\n");
               let head = c.recv_line(); c.close(); head
           }}
           let r = fetch(`${{u}}/f.bin`, #{{headers: #{{range: "bytes=100-199"}}}});
           let h = fetch(`${{u}}/f.bin`, #{{method: "HEAD"}});
           let stale = fetch(`${{u}}/f.bin`, #{{headers: #{{range: "bytes=100-", "if-range": "\"old\""}}}});
           print(`${{r.status}} ${{r.headers["content-range"]}} ${{sha256(r.bytes)}}`);
           print(`${{h.status}} ${{h.headers["content-length"]}} ${{h.bytes.len()}} ${{h.headers.etag != ()}}`);
           print(`${{stale.status}} ${{stale.bytes.len()}}`);
           print(fetch(`${{u}}/f.bin`, #{{headers: #{{range: "bytes=300000-"}}}}).status);
           print(fetch(`${{u}}/a%20b.txt`).body);
           print(fetch(`${{u}}/missing`).status);
           print(fetch(`${{u}}/f.bin`, #{{method: "DELETE"}}).status);
           for target in ["/../f.bin", "/%2e%2e/f.bin", "/a%2fb", "/..%5cx"] {{ print(raw(s.addr, `GET ${{target}} HTTP/1.1`)); }}
           print(raw(s.addr, "NONSENSE"));
           s.stop();"#,
        dir = site.path().display()
    );
    let out = Netsh::in_checkout().args(["-e", &code]).ok().stdout();
    let expected = [
        format!("206 bytes 100-199/300000 {}", sha256_hex(&data[100..200])),
        "200 300000 0 true".to_string(),
        "200 300000".to_string(),
        "416".to_string(),
        "spaced".to_string(),
        "404".to_string(),
        "405".to_string(),
        "HTTP/1.1 400 Bad Request".to_string(),
        "HTTP/1.1 400 Bad Request".to_string(),
        "HTTP/1.1 404 Not Found".to_string(),
        "HTTP/1.1 400 Bad Request".to_string(),
        "HTTP/1.1 400 Bad Request".to_string(),
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");
}

/// scripts/download.rhai with no arguments: serves, downloads with
/// progress, interrupts and resumes, verifies, and cleans up after itself.
#[test]
fn the_download_script_runs_on_loopback() {
    let tmp = scratch();
    let run = Netsh::in_checkout()
        .env("TMPDIR", tmp.path())
        .arg("scripts/download.rhai")
        .output();
    run.expect_code(0);
    let out = run.stdout();
    // The closure stops it at the first report past 4 MiB; how far past
    // depends on the machine's load.
    let after = |marker: &str, end: &str| {
        let from = out
            .find(marker)
            .map(|i| i + marker.len())
            .unwrap_or_else(|| panic!("no '{marker}': {}", run.explain()));
        out[from..]
            .split(end)
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let stopped = after(
        "4. interrupted: fetch: the progress callback failed: stopped at ",
        "\n",
    );
    let kept = after("kept ", " in second.bin.part");
    let resumed = after("5. resumed at ", " with status 206");
    assert!(
        stopped.ends_with("MiB") && kept == resumed,
        "{}",
        run.explain()
    );
    assert!(
        out.contains("identical to the original"),
        "{}",
        run.explain()
    );
    assert_eq!(run.stderr(), "", "no server errors: {}", run.explain());
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the demo removes its folder: {left:?}");
}

/// scripts/download.rhai URL saves into the current folder under the URL's name.
#[test]
fn the_download_script_saves_a_url_here() {
    let server = HttpServer::start();
    let data = pseudo_random(100_000, 91);
    server.put("given.bin", resource(data.clone()));
    let here = scratch();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/download.rhai");
    let run = Netsh::new()
        .current_dir(here.path())
        .arg(&script)
        .arg(server.url("files/given.bin"))
        .output();
    run.expect_code(0);
    assert!(
        run.stdout().contains(&sha256_hex(&data)),
        "{}",
        run.explain()
    );
    assert!(std::fs::read(here.path().join("given.bin")).unwrap() == data);
}

/// On a terminal, a download draws a bar with size, rate and ETA; with no
/// Content-Length, a spinner with the bytes so far.
#[test]
fn a_terminal_gets_a_progress_bar_or_a_spinner() {
    use expectrl::Expect;
    let server = HttpServer::start();
    let data = pseudo_random(4 << 20, 101);
    for (name, unsized_body) in [("sized.bin", false), ("unsized.bin", true)] {
        server.put(
            name,
            Resource {
                stall_after: Some(1 << 20),
                unsized_body,
                ..resource(data.clone())
            },
        );
    }
    let dir = scratch();
    for (name, shows, never) in [("sized.bin", "ETA", ""), ("unsized.bin", "1.00 MiB", "ETA")] {
        let code = format!(
            r#"fetch("{}", "{}", #{{hash: true}})"#,
            server.url(&format!("files/{name}")),
            dir.path().join(name).display()
        );
        let mut pty = Terminal::new(dir.path()).args(["-e", &code]).spawn();
        let seen = pty
            .expect(shows)
            .unwrap_or_else(|e| panic!("{name}: no '{shows}' on the terminal: {e}"));
        let before = String::from_utf8_lossy(seen.before()).into_owned();
        if !never.is_empty() {
            assert!(
                !before.contains(never),
                "{name}: a size-less bar shows no {never}: {before}"
            );
        }
        drop(pty);
    }
}
