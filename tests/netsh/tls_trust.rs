//! Trusting exactly what curl and openssl trust: a certificate made the
//! usual way (`openssl req -x509 …`, which marks it a CA) given as `ca` is
//! accepted by `connect` and `fetch` when the server presents that very
//! certificate, against a real `openssl s_server`; its name and dates are
//! still checked, and any other certificate still needs a chain.

use std::{path::Path, process::Command};

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

use crate::support::Netsh;
use crate::tls::{has_openssl, openssl_server};

/// Makes `NAME.pem` and `NAME.key` in `dir` with `openssl req -x509`, for
/// localhost, as a user following any tutorial does (basicConstraints
/// CA:TRUE, openssl's default).
fn openssl_req(dir: &Path, name: &str) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .args(["-days", "30", "-keyout", &format!("{name}.key")])
        .args(["-out", &format!("{name}.pem")])
        .current_dir(dir)
        .output()
        .expect("running openssl req");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", &format!("{name}.pem")])
        .current_dir(dir)
        .output()
        .expect("running openssl x509");
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "the test needs a certificate marked CA:TRUE, as openssl req makes by default"
    );
}

/// Writes `expired.pem`/`expired.key` to `dir`: like [`openssl_req`]'s
/// (a CA certificate for localhost) but valid only until 35 days ago.
fn expired(dir: &Path) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(400);
    params.not_after = now - time::Duration::days(35);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("expired.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("expired.key"), key.serialize_pem()).unwrap();
}

/// `netsh -e CODE` in `dir`, with `PORT` replaced by `port`; its stdout.
fn run_in(dir: &Path, port: u16, code: &str) -> String {
    Netsh::new()
        .current_dir(dir)
        .arg("-e")
        .arg(code.replace("PORT", &port.to_string()))
        .ok()
        .stdout()
}

/// A certificate from `openssl req -x509` (CA:TRUE), given as `ca`, is trusted by `connect` and by `fetch` when `openssl s_server -www` presents it, as curl --cacert and openssl -CAfile trust it.
#[test]
fn an_openssl_req_certificate_given_as_ca_is_trusted() {
    if !has_openssl("an_openssl_req_certificate_given_as_ca_is_trusted") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    openssl_req(dir.path(), "cert");
    let (_server, port) = openssl_server(
        &dir.path().join("cert.pem"),
        &dir.path().join("cert.key"),
        &["-www"],
    );
    let out = run_in(
        dir.path(),
        port,
        r#"let c = connect("localhost:PORT", #{tls: #{ca: "cert.pem"}});
           c.send("GET / HTTP/1.0\r\n\r\n");
           print(c.recv_line());
           print(c.tls_info().sni);
           c.close();   // s_server serves one connection at a time
           let r = fetch("https://localhost:PORT/", #{ca: "cert.pem"});
           print(r.status);"#,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["HTTP/1.0 200 ok", "localhost", "200"],
        "{out}"
    );
}

/// Another self-signed certificate than the one in the `ca` file is still refused, by `connect` (unknown issuer) and by `fetch`.
#[test]
fn a_different_self_signed_certificate_is_still_refused() {
    if !has_openssl("a_different_self_signed_certificate_is_still_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    openssl_req(dir.path(), "cert");
    openssl_req(dir.path(), "other");
    let (_server, port) = openssl_server(
        &dir.path().join("other.pem"),
        &dir.path().join("other.key"),
        &["-www"],
    );
    let out = run_in(
        dir.path(),
        port,
        r#"try { connect("localhost:PORT", #{tls: #{ca: "cert.pem"}}); print("connected") } catch (e) { print(e) }
           try { fetch("https://localhost:PORT/", #{ca: "cert.pem"}); print("fetched") } catch (e) { print(e.kind) }"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("connect: TLS handshake with 127.0.0.1:")
            && lines[0].contains("the certificate is not trusted: unknown issuer"),
        "{out}"
    );
    assert_ne!(lines[1], "fetched", "{out}");
}

/// The certificate in the `ca` file, presented for a name it is not for, is still refused, naming the name it is for; with `sni` set to that name it is accepted.
#[test]
fn the_trusted_certificate_is_refused_for_another_name() {
    if !has_openssl("the_trusted_certificate_is_refused_for_another_name") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    openssl_req(dir.path(), "cert");
    let (_server, port) = openssl_server(
        &dir.path().join("cert.pem"),
        &dir.path().join("cert.key"),
        &["-www"],
    );
    let out = run_in(
        dir.path(),
        port,
        r#"try { connect("127.0.0.1:PORT", #{tls: #{ca: "cert.pem"}}); print("connected") } catch (e) { print(e) }
           try { fetch("https://127.0.0.1:PORT/", #{ca: "cert.pem"}); print("fetched") } catch (e) { print(e) }
           let c = connect("127.0.0.1:PORT", #{tls: #{ca: "cert.pem", sni: "localhost"}});
           c.send("GET / HTTP/1.0\r\n\r\n");
           print(c.recv_line());"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("name mismatch: the certificate is for localhost, not 127.0.0.1"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("fetch: ") && lines[1].contains("localhost"),
        "{out}"
    );
    assert_eq!(lines[2], "HTTP/1.0 200 ok", "{out}");
}

/// The certificate in the `ca` file is still refused once it has expired, by `connect` saying until when it was valid, and by `fetch`.
#[test]
fn the_trusted_certificate_is_refused_once_expired() {
    if !has_openssl("the_trusted_certificate_is_refused_once_expired") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    expired(dir.path());
    let (_server, port) = openssl_server(
        &dir.path().join("expired.pem"),
        &dir.path().join("expired.key"),
        &["-www"],
    );
    let until = time::OffsetDateTime::now_utc() - time::Duration::days(35);
    let out = run_in(
        dir.path(),
        port,
        r#"try { connect("localhost:PORT", #{tls: #{ca: "expired.pem"}}); print("connected") } catch (e) { print(e) }
           try { fetch("https://localhost:PORT/", #{ca: "expired.pem"}); print("fetched") } catch (e) { print(e) }"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    let day = format!(
        "{:04}-{:02}-{:02}",
        until.year(),
        u8::from(until.month()),
        until.day()
    );
    assert!(
        lines[0].contains("the certificate has expired: it was valid until ")
            && lines[0].contains(&day),
        "{out}"
    );
    assert!(
        lines[1].starts_with("fetch: ") && lines[1].contains("expired"),
        "{out}"
    );
}
