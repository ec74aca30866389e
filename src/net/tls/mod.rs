//! TLS for raw connections (`connect(addr, #{tls: …})`, `listen(addr,
//! #{tls: …})`), on rustls with the ring provider: the same rustls that
//! `fetch` uses through reqwest, so the binary carries one TLS stack.
//!
//! - [`config`] — what a `tls` option says, checked, as rustls settings:
//!   trusted roots, a CA file, a pinned fingerprint, SNI, ALPN, the
//!   server's certificate (from PEM files, or made on the spot).
//! - [`verify`] — whom a client trusts, as the rustls settings every TLS
//!   client in netsh (`fetch` too) is built from.
//! - [`session`] — a session driven in non-blocking steps, so the caller
//!   waits as it does for plain TCP (and Ctrl-C and timeouts still work).
//! - [`stream`] — the same session as tokio's `AsyncRead`/`AsyncWrite`,
//!   for file transfers.
//!
//! This module knows nothing of connections; `tcp::conn` holds a
//! [`Session`] and drives it.

use rhai::{Dynamic, Map};
use rustls::{AlertDescription, CertificateError};
use sha2::{Digest, Sha256};

pub mod config;
pub mod session;
pub mod stream;
pub mod verify;

pub use config::{ClientTls, ServerTls, certificates_from_pem};
pub use session::{Fault, Session, Wait};
pub use verify::{Trust, client_config};

/// A rustls error in words a user can act on.
pub fn words(err: &rustls::Error) -> String {
    use rustls::Error as E;
    match err {
        E::InvalidCertificate(cert) => certificate_words(cert),
        E::AlertReceived(alert) => alert_words(*alert),
        E::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
        | E::InvalidMessage(rustls::InvalidMessage::UnknownProtocolVersion) => {
            "the peer does not speak TLS: what it sent is not a TLS record (a plain-text service on this port?)".into()
        }
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            format!("the peer sent a malformed or unexpected TLS message ({err})")
        }
        E::InappropriateHandshakeMessage { .. } => format!(
            "the peer answered with a handshake message TLS does not allow here (is it a TLS server, or an echo service?): {err}"
        ),
        E::PeerIncompatible(_) => format!(
            "handshake failure: the peer's TLS has nothing in common with ours (TLS 1.2 and 1.3, modern ciphers): {err}"
        ),
        E::NoCertificatesPresented => "the peer presented no certificate".into(),
        E::DecryptError => {
            "a record failed to decrypt: the data was corrupted or not sent by the peer".into()
        }
        other => format!("TLS failed: {other}"),
    }
}

fn certificate_words(err: &CertificateError) -> String {
    use CertificateError as C;
    match err {
        C::UnknownIssuer => "the certificate is not trusted: unknown issuer (self-signed, or signed by a CA that is not among the trusted roots; trust it with #{tls: #{ca: \"ca.pem\"}} or pin it with #{tls: #{pin: \"SHA-256 fingerprint\"}})".into(),
        C::Expired => "the certificate has expired".into(),
        C::ExpiredContext { time, not_after } => format!(
            "the certificate has expired: it was valid until {}, and it is now {}",
            iso_time(not_after.as_secs() as i64),
            iso_time(time.as_secs() as i64)
        ),
        C::NotValidYet => "the certificate is not valid yet".into(),
        C::NotValidYetContext { not_before, .. } => format!(
            "the certificate is not valid yet: it is valid from {}",
            iso_time(not_before.as_secs() as i64)
        ),
        C::NotValidForName => "name mismatch: the certificate is not for this name (give the name it is for with #{tls: #{sni: \"name\"}})".into(),
        C::NotValidForNameContext { expected, presented } => format!(
            "name mismatch: the certificate is for {}, not {} (give the name it is for with #{{tls: #{{sni: \"name\"}}}})",
            if presented.is_empty() {
                "no name at all".to_string()
            } else {
                presented
                    .iter()
                    .map(|n| presented_name(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            expected.to_str()
        ),
        C::BadSignature => "the certificate's signature does not verify".into(),
        C::Revoked => "the certificate has been revoked".into(),
        C::BadEncoding => "the certificate is malformed".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "the certificate is not meant for this use (it lacks server or client authentication)".into()
        }
        C::Other(other) if other.0.is::<verify::PinMismatch>() => other.0.to_string(),
        C::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            "the server presents a CA certificate (basicConstraints CA:TRUE) as its own; it must present one that a CA issued, or be trusted as itself by giving that very certificate as #{tls: #{ca: \"cert.pem\"}} (or pin it with #{tls: #{pin: \"SHA-256 fingerprint\"}})".into()
        }
        other => format!("the certificate was refused: {other}"),
    }
}

/// rustls lists a certificate's names as `DnsName("a.org")` and
/// `IpAddress(127.0.0.1)`; a person wants `a.org` and `127.0.0.1`.
fn presented_name(name: &str) -> &str {
    for prefix in ["DnsName(\"", "IpAddress(", "URI(\""] {
        if let Some(inner) = name.strip_prefix(prefix) {
            return inner.trim_end_matches(')').trim_end_matches('"');
        }
    }
    name
}

fn alert_words(alert: AlertDescription) -> String {
    use AlertDescription as A;
    let why = match alert {
        A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::UnsupportedCertificate => {
            "it does not accept our certificate"
        }
        A::CertificateExpired => "it says our certificate has expired",
        A::HandshakeFailure => "handshake failure: no TLS version or cipher in common",
        A::ProtocolVersion => "no TLS version in common",
        A::UnrecognisedName => "it does not serve the name we asked for (SNI)",
        A::NoApplicationProtocol => "no ALPN protocol in common",
        A::CertificateRequired => "it requires a client certificate",
        _ => "it sent an alert",
    };
    format!("the peer refused the TLS session: {why} (alert: {alert:?})")
}

/// Seconds since 1970 as `2026-01-31T12:00:00Z`.
pub fn iso_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} s after 1970"))
}

/// A certificate's SHA-256 as `AB:CD:…`, the way `openssl x509 -fingerprint
/// -sha256` prints it.
pub fn fingerprint(der: &[u8]) -> String {
    colon_hex(&Sha256::digest(der))
}

/// Bytes as `AB:CD:…`.
pub fn colon_hex(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// What `tls_info()` returns: the negotiated version, cipher, ALPN and SNI,
/// and the peer's certificate (subject, issuer, expiry, names, SHA-256), or
/// `()` for fields the session does not have (a client that sent no
/// certificate).
pub fn info_map(session: &Session) -> Map {
    let state = session.lock();
    let tls = &state.tls;
    let mut map = Map::new();
    let text = |value: Option<String>| value.map_or(Dynamic::UNIT, Dynamic::from);
    let version = tls.protocol_version().map(|v| match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
        other => format!("{other:?}"),
    });
    map.insert("version".into(), text(version));
    let cipher = tls
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()));
    map.insert("cipher".into(), text(cipher));
    let alpn = tls
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    map.insert("alpn".into(), text(alpn));
    let sni = match tls {
        rustls::Connection::Server(server) => server.server_name().map(str::to_string),
        // An IP address is never sent as SNI (RFC 6066), so a client that
        // connected to one sent none.
        rustls::Connection::Client(_) => session
            .sni()
            .filter(|name| name.parse::<std::net::IpAddr>().is_err())
            .map(str::to_string),
    };
    map.insert("sni".into(), text(sni));
    let leaf = tls.peer_certificates().and_then(|chain| chain.first());
    let cert = leaf.and_then(|der| {
        x509_parser::parse_x509_certificate(der.as_ref())
            .ok()
            .map(|(_, cert)| cert)
    });
    map.insert(
        "peer_subject".into(),
        text(cert.as_ref().map(|c| c.subject().to_string())),
    );
    map.insert(
        "peer_issuer".into(),
        text(cert.as_ref().map(|c| c.issuer().to_string())),
    );
    map.insert(
        "peer_not_before".into(),
        text(
            cert.as_ref()
                .map(|c| iso_time(c.validity().not_before.timestamp())),
        ),
    );
    map.insert(
        "peer_not_after".into(),
        text(
            cert.as_ref()
                .map(|c| iso_time(c.validity().not_after.timestamp())),
        ),
    );
    let names = cert.as_ref().map(|c| {
        c.subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .map(|n| Dynamic::from(general_name(n)))
                    .collect::<rhai::Array>()
            })
            .unwrap_or_default()
    });
    map.insert(
        "peer_names".into(),
        names.map_or(Dynamic::UNIT, Dynamic::from_array),
    );
    map.insert(
        "peer_fingerprint".into(),
        text(leaf.map(|der| fingerprint(der.as_ref()))),
    );
    map
}

/// A subject alternative name as text: `example.org`, `127.0.0.1`.
fn general_name(name: &x509_parser::extensions::GeneralName<'_>) -> String {
    use x509_parser::extensions::GeneralName as N;
    match name {
        N::DNSName(dns) => dns.to_string(),
        N::IPAddress(bytes) => match bytes.len() {
            4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default())
                .to_string(),
            16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default())
                .to_string(),
            _ => hex::encode(bytes),
        },
        N::RFC822Name(mail) => mail.to_string(),
        N::URI(uri) => uri.to_string(),
        other => format!("{other:?}"),
    }
}
