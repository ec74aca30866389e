//! TLS on raw connections, against real peers on 127.0.0.1: netsh talking
//! to itself, `openssl s_client` and `openssl s_server` in both directions,
//! and certificates this file makes with rcgen (a CA, a server certificate
//! it signed, an expired one, an unrelated CA).

use std::{
    io::{Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};

use crate::support::{self, Netsh, Peer, Run, has_tool, netsh_peer, peer_on};

/// Certificates for the tests, as PEM files in a temporary folder.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        let (ca_params, ca_key) = ca("netsh test CA");
        write("ca.pem", &ca_params.self_signed(&ca_key).unwrap().pem());
        let issuer = Issuer::new(ca_params, ca_key);
        let now = time::OffsetDateTime::now_utc();
        let leaf = |name: &str, not_before, not_after| {
            let key = KeyPair::generate().unwrap();
            let mut params =
                CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                    .unwrap();
            params.not_before = not_before;
            params.not_after = not_after;
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, name);
            params.distinguished_name = dn;
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let day = time::Duration::days(1);
        let (cert, key) = leaf("netsh test server", now - day, now + 30 * day);
        write("server.pem", &cert);
        write("server.key", &key);
        let (cert, key) = leaf("netsh expired server", now - 400 * day, now - 35 * day);
        write("expired.pem", &cert);
        write("expired.key", &key);
        let (other, other_key) = ca("some other CA");
        write(
            "other-ca.pem",
            &other.self_signed(&other_key).unwrap().pem(),
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `code` with `DIR` replaced by the folder of the PEM files.
    fn script(&self, code: &str) -> String {
        code.replace("DIR", &self.dir.path().display().to_string())
    }
}

fn ca(name: &str) -> (CertificateParams, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    (params, key)
}

/// `code` after Rhai that opens `l`, a TLS listener on 127.0.0.1 with a
/// self-signed certificate (written to `server.pem`, for a client's `ca`),
/// and names its `port` and its fingerprint `pin`.
fn self_signed(code: &str) -> String {
    format!(
        r#"let l = listen("127.0.0.1:0", #{{tls: #{{self_signed: true}}}});
           write_file("server.pem", l.cert);
           let port = l.port; let pin = l.fingerprint;
           {code}"#
    )
}

/// `openssl` is installed (CI installs it); tests that need it say why
/// they skip without it.
pub fn has_openssl(test: &str) -> bool {
    has_tool(test, "openssl", &["version"], "openssl")
}

/// A netsh TLS server with a self-signed certificate and a netsh client trusting it with `ca`: lines, read(n), read_all and a half-close cross the session, and tls_info() on both ends says what was agreed (no SNI: the client connected to an IP address).
#[test]
fn netsh_server_and_client_with_a_self_signed_certificate() {
    let home = tempfile::tempdir().unwrap();
    let out = Netsh::new()
        .current_dir(home.path())
        .arg("-e")
        .arg(self_signed(
            r#"let t = task(|| {
                   let c = l.accept();
                   let line = c.recv_line();
                   c.send_line(`echo ${line}`);
                   c.send(blob(3, 0x41));
                   let rest = c.read_all();     // until the client's close_notify + FIN
                   c.send_line(`got ${rest.len()} bytes after the line`);
                   let i = c.tls_info();
                   c.close();
                   i
               });
               let c = connect(`127.0.0.1:${port}`, #{tls: #{ca: "server.pem"}});
               c.send_line("hello");
               print(c.recv_line());
               print(c.read(3).as_string());
               c.send(blob(70000, 7)); c.shutdown();
               print(c.recv_line());
               print(c.recv_line() == ());
               let i = c.tls_info();
               print(i.version); print(i.sni == ()); print(i.peer_names);
               print(i.peer_fingerprint == pin);
               print(i.peer_subject);
               let s = t.join();
               print(s.sni == ()); print(s.peer_subject == ());"#,
        ))
        .ok();
    let out = out.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "echo hello",
            "AAA",
            "got 70000 bytes after the line",
            "true",
            "TLSv1.3",
            "true", // an IP address is never sent as SNI
            r#"["localhost", "127.0.0.1", "::1"]"#,
            "true",
            "CN=netsh self-signed (localhost)",
            "true",
            "true",
        ]
    );
}

/// `openssl s_client` verifies a netsh TLS server's certificate (signed by a test CA, loaded from PEM files) and exchanges a line with it.
#[test]
fn openssl_s_client_talks_to_a_netsh_server() {
    if !has_openssl("openssl_s_client_talks_to_a_netsh_server") {
        return;
    }
    let pki = Pki::new();
    let mut server = netsh_peer(
        &pki.script(
            r#"let l = listen("127.0.0.1:0", #{tls: #{cert: "DIR/server.pem", key: "DIR/server.key"}});
               print(`port ${l.port}`);
               let c = l.accept(20000);
               let line = c.recv_line();
               c.send_line(`netsh heard: ${line}`);
               print(`tls ${c.tls_info().version}`);
               c.close();"#,
        ),
        pki.dir.path(),
    );
    let port = server
        .expect("port ")
        .trim_start_matches("port ")
        .to_string();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-verify_return_error"])
        .arg("-CAfile")
        .arg(pki.path("ca.pem"));
    let mut client = Peer::start(cmd);
    client.expect("Verify return code: 0 (ok)");
    client.write("hello from openssl\n");
    client.expect("netsh heard: hello from openssl");
    server.expect("tls TLSv1.3");
}

/// A netsh client checks `openssl s_server`'s certificate against a CA file and exchanges lines with it both ways.
#[test]
fn netsh_client_talks_to_openssl_s_server() {
    if !has_openssl("netsh_client_talks_to_openssl_s_server") {
        return;
    }
    let pki = Pki::new();
    let (mut server, port) = s_server(&pki, "server");
    let mut client = netsh_peer(
        &pki.script(&format!(
            r#"let c = connect("localhost:{port}", #{{tls: #{{ca: "DIR/ca.pem"}}}});
               c.send_line("hello from netsh");
               print(`reply ${{c.recv_line()}}`);
               let i = c.tls_info();
               print(`info ${{i.sni}} ${{i.peer_subject}} ${{i.peer_issuer}}`);"#
        )),
        pki.dir.path(),
    );
    server.expect("hello from netsh");
    server.write("hello from openssl\n");
    client.expect("reply hello from openssl");
    client.expect("info localhost CN=netsh test server CN=netsh test CA");
}

/// Starts `openssl s_server` with `NAME.pem`/`NAME.key` on a free fixed port (retrying on a clash); returns it once it accepts.
fn s_server(pki: &Pki, name: &str) -> (Peer, u16) {
    let (cert, key) = (
        pki.path(&format!("{name}.pem")),
        pki.path(&format!("{name}.key")),
    );
    openssl_server(&cert, &key, &[])
}

/// Starts `openssl s_server` with the certificate `cert` and key `key` (and
/// `extra` arguments, like `-www`) on a free fixed port, retrying on a
/// clash; returns it and its port once it accepts.
pub fn openssl_server(cert: &Path, key: &Path, extra: &[&str]) -> (Peer, u16) {
    for attempt in 0..20 {
        let port = support::fixed_port(attempt);
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut cmd = Command::new("openssl");
        cmd.args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .args(extra);
        let mut server = Peer::start(cmd);
        if server.wait_for("ACCEPT", Duration::from_secs(10)).is_some() {
            return (server, port);
        }
        if !server.output().contains("in use") {
            panic!("openssl s_server did not start:\n{}", server.output());
        }
    }
    panic!("no free port for openssl s_server");
}

/// `netsh -e CODE` (run in the PKI folder) that must fail (exit 1).
fn refused(pki: &Pki, code: &str) -> Run {
    let run = Netsh::new()
        .current_dir(pki.dir.path())
        .arg("-e")
        .arg(pki.script(code))
        .output();
    run.expect_code(1);
    run
}

/// `code` after Rhai that opens `l`, a TLS listener on 127.0.0.1 with the
/// certificate `NAME.pem` and key `NAME.key`, names its `port`, and starts
/// `t`, a task whose value says how one accept ended: "accepted", or why not.
fn tls_server(name: &str, code: &str) -> String {
    format!(
        r#"let l = listen("127.0.0.1:0", #{{tls: #{{cert: "{name}.pem", key: "{name}.key"}}}});
           let port = l.port;
           let t = task(|| {{ let r = "accepted"; try {{ l.accept(10000) }} catch (e) {{ r = `${{e}}` }} r }});
           {code}"#
    )
}

/// [`refused`] for `code` after [`tls_server`] with the certificate `name`.
fn refused_with(name: &str, code: &str) -> Run {
    refused(&Pki::new(), &tls_server(name, code))
}

/// A certificate for another name is refused with "name mismatch", naming the names it is for; the server's accept() hears that the client refused it.
#[test]
fn a_wrong_name_is_refused() {
    let run = refused_with(
        "server",
        r#"try { connect(`127.0.0.1:${port}`, #{tls: #{ca: "ca.pem", sni: "example.org"}}) }
           catch (e) { print(`server: ${t.join()}`); throw e }"#,
    );
    let err = run.stderr();
    let server = run.stdout();
    assert!(
        server.starts_with("server: accept: TLS handshake with 127.0.0.1:")
            && server.contains("it does not accept our certificate"),
        "{}",
        run.explain()
    );
    assert!(
        err.contains("connect: TLS handshake with 127.0.0.1:")
            && err.contains(
                "name mismatch: the certificate is for localhost, 127.0.0.1, not example.org"
            ),
        "{err}"
    );
}

/// An expired certificate is refused with a message saying it expired and when.
#[test]
fn an_expired_certificate_is_refused() {
    let err = refused_with(
        "expired",
        r#"connect(`127.0.0.1:${port}`, #{tls: #{ca: "ca.pem"}})"#,
    )
    .stderr();
    assert!(
        err.contains("the certificate has expired: it was valid until"),
        "{err}"
    );
}

/// A certificate from a CA the client does not trust is refused as "unknown issuer", and the server's accept() fails saying the client refused its certificate.
#[test]
fn an_untrusted_certificate_is_refused() {
    let pki = Pki::new();
    let out = Netsh::new()
        .current_dir(pki.dir.path())
        .arg("-e")
        .arg(tls_server(
            "server",
            r#"try { connect(`127.0.0.1:${port}`, #{tls: #{ca: "other-ca.pem"}}) } catch (e) { print(e) }
               print(t.join());"#,
        ))
        .ok()
        .stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("the certificate is not trusted: unknown issuer"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("accept: TLS handshake with 127.0.0.1:")
            && lines[1].contains("it does not accept our certificate"),
        "{out}"
    );
}

/// A pinned fingerprint is trusted whatever the name and issuer; another fingerprint is refused, saying the pin did not match and naming both (no "unexpected error").
#[test]
fn a_pinned_fingerprint_decides_trust() {
    let out = Netsh::eval(&self_signed(
        r#"task(|| { loop { try { l.accept(10000).send_line("pinned ok") } catch { break } } });
           let c = connect(`127.0.0.1:${port}`, #{tls: #{pin: pin, sni: "not-the-name.example"}});
           print(c.recv_line());
           let wrong = "00" + pin.sub_string(2);
           try { connect(`127.0.0.1:${port}`, #{tls: #{pin: wrong}}) } catch (e) { print(e) }
           print(pin); print(wrong);"#,
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pinned ok");
    let (pin, wrong) = (lines[2], lines[3]);
    assert!(
        lines[1].ends_with(&format!(
            "failed: the pin did not match: the server's certificate has SHA-256 {pin}, the pin is {wrong}"
        )) && !lines[1].contains("unexpected error"),
        "{out}"
    );
}

/// A client that does not speak TLS fails the server's accept() with words that say so; a TLS client meeting a plain service fails connect() the same way.
#[test]
fn plain_peers_are_recognised() {
    let (addr, banner) = peer_on("127.0.0.1:0", |mut s| {
        s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
        let mut sink = [0u8; 1024];
        let _ = s.read(&mut sink);
    });
    let out = Netsh::eval(&format!(
        r#"try {{ connect("{addr}", #{{tls: #{{insecure: true}}}}) }} catch (e) {{ print(e) }}
           let l = listen("127.0.0.1:0", #{{tls: #{{self_signed: true}}}});
           let p = l.port;
           let t = task(|| {{ let r = "accepted"; try {{ l.accept(10000) }} catch (e) {{ r = `${{e}}` }} r }});
           let plain = connect(`127.0.0.1:${{p}}`); plain.send_line("GET / HTTP/1.0");
           print(t.join());"#
    ));
    banner.join().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("connect: TLS handshake with 127.0.0.1:")
            && lines[0].contains("does not speak TLS"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("accept: ") && lines[1].contains("does not speak TLS"),
        "{out}"
    );
}

/// send_file and recv_file run over TLS when both sides say so: framed (verified) and raw uploads arrive byte for byte, and so does one over an open TLS connection.
#[test]
fn send_file_over_tls() {
    let home = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_017u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(home.path().join("data.bin"), &data).unwrap();
    let out = Netsh::new()
        .current_dir(home.path())
        .arg("-e")
        .arg(self_signed(
            r#"let t = task(|| [recv_file(l, "framed"), recv_file(l, "raw", #{raw: true, name: "raw.bin"})]);
               let a = send_file(`127.0.0.1:${port}`, "data.bin", #{tls: #{ca: "server.pem"}, progress: false});
               let b = send_file(`127.0.0.1:${port}`, "data.bin", #{tls: #{ca: "server.pem"}, raw: true, progress: false});
               let got = t.join();
               print(a.verified); print(got[0].verified); print(got[1].bytes);
               // Over connections already open: a line first, then the file.
               let l2 = listen("127.0.0.1:0", #{tls: #{self_signed: true}});
               let p2 = l2.port; let pin = l2.fingerprint;
               let t2 = task(|| { let c = l2.accept(); let hello = c.recv_line(); let r = recv_file(c, "conn"); [hello, r.verified] });
               let c = connect(`127.0.0.1:${p2}`, #{tls: #{pin: pin}});
               c.send_line("hello"); print(send_file(c, "data.bin", #{progress: false}).verified);
               print(c.recv_line() == ());   // the receiver's close_notify, after its answer
               print(t2.join());"#,
        ))
        .ok();
    let stdout = out.stdout();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "true",
            "true",
            "3000017",
            "true",
            "true",
            r#"["hello", true]"#
        ],
        "{}",
        out.explain()
    );
    for file in ["framed/data.bin", "raw/raw.bin", "conn/data.bin"] {
        assert!(
            std::fs::read(home.path().join(file)).unwrap() == data,
            "{file} differs"
        );
    }
}

/// A blocked TLS read obeys the connection's timeout (and the data that came later is still read), and close() from another task wakes it.
#[test]
fn tls_reads_time_out_and_close_wakes_them() {
    let out = Netsh::eval(&self_signed(
        r#"let t = task(|| { let c = l.accept(); sleep(600); c.send_line("late"); sleep(3000); });
           let c = connect(`127.0.0.1:${port}`, #{tls: #{pin: pin}});
           c.timeout = 200;
           try { c.recv_line() } catch (e) { print(e) }
           c.timeout = 5000;
           print(c.recv_line());
           c.timeout = 0;
           let closer = task(|| { sleep(300); c.close(); });
           let started = timestamp();
           try { c.recv_line() } catch (e) { print(e) }
           print(started.elapsed < 2.5);"#,
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("recv_line: timed out after 200 ms"),
        "{out}"
    );
    assert_eq!(lines[1], "late");
    assert!(lines[2].contains("is closed"), "{out}");
    assert_eq!(lines[3], "true");
}

/// serve's closure shape with `tls` runs the handshake, then the closure.
#[test]
fn serve_speaks_tls() {
    let out = Netsh::eval(
        r#"let s = serve("127.0.0.1:0", |c| c.send_line(`hello ${c.tls_info().version}`), #{tls: #{self_signed: true}, quiet: true});
           let port = s.port;
           let c = connect(`127.0.0.1:${port}`, #{tls: #{insecure: true}});
           print(c.recv_line());
           s.stop();"#,
    );
    assert_eq!(out, "hello TLSv1.3");
}

/// A silent plain client at the head of a TLS listener's queue does not hold up the TLS client behind it: accept() returns that client at once, since handshakes run side by side.
#[test]
fn a_silent_client_does_not_hold_up_the_tls_clients_behind_it() {
    let out = Netsh::eval(&self_signed(
        r#"let silent = connect(`127.0.0.1:${port}`);   // plain TCP, sends nothing
           let t = task(|| connect(`127.0.0.1:${port}`, #{tls: #{pin: pin}}).recv_line());
           let started = timestamp();
           let c = l.accept(8000);
           c.send_line("welcome");
           print(t.join());
           print(started.elapsed < 3.0);"#,
    ));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["welcome", "true"]);
}

/// accept(ms) on a TLS listener with only a silent client keeps its limit: it times out after 1.5 s (not the handshake's 10 s), saying a client has not finished its handshake.
#[test]
fn accept_keeps_its_timeout_while_a_handshake_stalls() {
    let out = Netsh::eval(&self_signed(
        r#"let silent = connect(`127.0.0.1:${port}`);
           let started = timestamp();
           try { l.accept(1500); print("accepted") } catch (e) { print(e.kind); print(e) }
           let took = started.elapsed;
           print(took > 1.3 && took < 2.5);"#,
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "timeout", "{out}");
    assert!(
        lines[1].starts_with(
            "accept: timed out after 1.5 s while waiting for a connection on 127.0.0.1:"
        ) && lines[1].ends_with("(1 client connected but has not finished its TLS handshake)"),
        "{out}"
    );
    assert_eq!(lines[2], "true", "{out}");
}

/// Closing a TLS listener ends the handshakes still under way: the silent client behind an accept() that timed out reads end of stream at once, not after the 10 s handshake limit.
#[test]
fn closing_a_tls_listener_ends_its_pending_handshakes() {
    let out = Netsh::eval(&self_signed(
        r#"let silent = connect(`127.0.0.1:${port}`);
           try { l.accept(300) } catch (e) { print(e.kind) }
           l.close();
           let started = timestamp();
           silent.timeout = 5000;
           silent.read_all();   // to the end of stream, or a timeout error
           print(started.elapsed < 2.0);"#,
    ));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["timeout", "true"]);
}

/// A silent client's handshake ends after its 10 s limit, and the next accept() reports it in plain words naming the client.
#[test]
fn a_silent_clients_handshake_times_out_in_plain_words() {
    let out = Netsh::eval(&self_signed(
        r#"let silent = connect(`127.0.0.1:${port}`);
           print(silent.local);
           try { l.accept(15000) } catch (e) { print(e.kind); print(e) }"#,
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "timeout", "{out}");
    assert_eq!(
        lines[2],
        format!(
            "accept: timed out after 10 s while waiting for {} to finish the TLS handshake (it connected but did not complete it)",
            lines[0]
        ),
        "{out}"
    );
}

/// A flood of silent clients is bounded: at most 64 handshakes are under way at once, and the rest wait in the listen backlog.
#[test]
fn a_flood_of_silent_clients_is_capped_at_64_handshakes() {
    let out = Netsh::eval(&self_signed(
        r#"let silent = [];
           for i in 0..80 { silent.push(connect(`127.0.0.1:${port}`)); }
           try { l.accept(1500) } catch (e) { print(e) }"#,
    ));
    assert!(
        out.ends_with("(64 clients connected but have not finished their TLS handshakes)"),
        "{out}"
    );
}

/// serve with tls serves a TLS client at once while a silent client sits in its handshake, and stop() closes the silent one.
#[test]
fn serve_is_not_held_up_by_a_silent_client() {
    let out = Netsh::eval(
        r#"let s = serve("127.0.0.1:0", |c| c.send_line("hello"), #{tls: #{self_signed: true}, quiet: true});
           let silent = connect(`127.0.0.1:${s.port}`);
           let started = timestamp();
           let c = connect(`127.0.0.1:${s.port}`, #{tls: #{insecure: true}, timeout: 5000});
           print(c.recv_line());
           print(started.elapsed < 3.0);
           s.stop();
           silent.timeout = 3000;
           silent.read_all();   // to the end of stream, or a timeout error
           print("closed");"#,
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["hello", "true", "closed"]);
}

/// serve with a self-signed certificate prints its SHA-256 (on stderr from a script) unless quiet, and gives it as .fingerprint, with the certificate as .cert, which a client can trust with `ca`.
#[test]
fn serve_tells_its_self_signed_fingerprint() {
    let run = Netsh::new()
        .arg("-e")
        .arg(
            r#"let s = serve("127.0.0.1:0", |c| c.send_line("trusted"), #{tls: #{self_signed: true}});
               write_file("serve.pem", s.cert);
               let c = connect(`localhost:${s.port}`, #{tls: #{ca: "serve.pem"}});
               print(c.recv_line());
               let q = serve("127.0.0.1:0", |c| (), #{tls: #{self_signed: true}, quiet: true});
               print(s.port); print(s.fingerprint); print(q.fingerprint);
               print(serve("127.0.0.1:0", |c| (), #{quiet: true}).fingerprint == ());
               s.stop(); q.stop();"#,
        )
        .ok();
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().collect();
    let [trusted, port, loud, quiet, plain] = lines[..] else {
        panic!("{}", run.explain());
    };
    assert_eq!((trusted, plain), ("trusted", "true"), "{}", run.explain());
    let err = run.stderr();
    assert!(
        err.contains(&format!(
            "serve: 127.0.0.1:{port} uses a self-signed certificate for localhost, 127.0.0.1 and ::1, SHA-256 {loud}"
        )) && !err.contains(quiet),
        "{}",
        run.explain()
    );
}

/// A TLS client whose server never answers the hello times out with words that read as English and name the handshake.
#[test]
fn a_handshake_timeout_reads_plainly() {
    let (addr, silent) = peer_on("127.0.0.1:0", |s| {
        std::thread::sleep(Duration::from_secs(3));
        drop(s);
    });
    let err = Netsh::eval_err(&format!(
        r#"connect("{addr}", #{{tls: #{{insecure: true}}, timeout: 500}})"#
    ));
    silent.join().unwrap();
    assert!(
        err.contains(&format!(
            "connect: timed out after 500 ms while waiting for the TLS handshake with {addr} to finish"
        )),
        "{err}"
    );
}

/// Bad tls options fail with what was wrong, before anything is sent.
#[test]
fn bad_tls_options_say_what_is_wrong() {
    let pki = Pki::new();
    let cases = [
        (
            r#"connect("127.0.0.1:9", #{tls: #{verify: false}})"#,
            "unknown tls option 'verify' (known: insecure, ca, pin, sni, alpn)",
        ),
        (
            r#"connect("127.0.0.1:9", #{tls: 1})"#,
            "option 'tls': expected true or a map like #{ca: \"ca.pem\"}, not a number",
        ),
        (
            r#"connect("127.0.0.1:9", #{tls: #{ca: "missing.pem"}})"#,
            "\"missing.pem\": no such file",
        ),
        (
            r#"connect("127.0.0.1:9", #{tls: #{ca: "server.key"}})"#,
            "holds no certificate",
        ),
        (
            r#"connect("127.0.0.1:9", #{tls: #{pin: "abc"}})"#,
            "must be a SHA-256 fingerprint",
        ),
        (
            r#"connect("127.0.0.1:9", #{tls: #{insecure: true, ca: "ca.pem"}})"#,
            "give one of them",
        ),
        (
            r#"listen("127.0.0.1:0", #{tls: true})"#,
            "a TLS server needs a certificate",
        ),
        (
            r#"listen("127.0.0.1:0", #{tls: #{cert: "server.pem"}})"#,
            "needs both 'cert' and 'key'",
        ),
        (
            r#"listen("127.0.0.1:0", #{tls: #{cert: "server.pem", key: "expired.key"}})"#,
            "cannot be used together",
        ),
        (
            r#"serve("127.0.0.1:0", #{on_line: |c, l| c.send(l), tls: #{self_signed: true}})"#,
            "the event shape does not speak TLS",
        ),
    ];
    for (code, expected) in cases {
        let err = refused(&pki, code).stderr();
        assert!(err.contains(expected), "{code}: {err}");
    }
}

/// Closing a TLS listener closes the connections whose handshakes finished
/// after an accept() gave up and that no accept() took: the client reads
/// end of stream at once, instead of staying connected to a closed
/// listener for as long as its variable lives. (The client reaches the
/// listener, a Unix socket, through a relay here that holds its first
/// bytes back 800 ms, so its handshake finishes after accept(300) ends.)
#[test]
fn closing_a_tls_listener_closes_finished_handshakes_nobody_took() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tls.sock");
    let upstream = socket.clone();
    let (relay, relay_thread) = peer_on("127.0.0.1:0", move |client| {
        let server = std::os::unix::net::UnixStream::connect(&upstream).unwrap();
        let (mut from_client, mut to_server) =
            (client.try_clone().unwrap(), server.try_clone().unwrap());
        let forward = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            let _ = std::io::copy(&mut from_client, &mut to_server);
        });
        let (mut from_server, mut to_client) = (server, client);
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Both);
        drop(forward);
    });
    let code = format!(
        r#"let l = listen("unix:{}", #{{tls: #{{self_signed: true}}}});
           let pin = l.fingerprint;
           let t = task(|| {{
               let c = connect("127.0.0.1:{}", #{{tls: #{{pin: pin}}}});
               c.timeout = 8000;
               let started = timestamp();
               let ended = "";
               try {{ c.read_all(); ended = `end of stream ${{started.elapsed < 3.0}}` }} catch (e) {{ ended = e.kind }}
               ended
           }});
           try {{ l.accept(300); print("accepted") }} catch (e) {{ print(e.kind) }}
           sleep(1500);
           l.close();
           print(t.join());"#,
        socket.display(),
        relay.port()
    );
    let out = Netsh::eval(&code);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["timeout", "end of stream true"],
        "{out}"
    );
    drop(relay_thread.join());
}
