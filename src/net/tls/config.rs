//! What a `tls` option says, checked before anything is sent, as rustls
//! settings: for a client, which certificates to trust and which name to
//! ask for; for a server, which certificate to present.
//!
//! A client trusts the system's roots (read once, through
//! rustls-native-certs: `/etc/ssl/certs` on Debian) unless told otherwise:
//! `ca` trusts one PEM file's certificates instead (as curl's `--cacert`),
//! `pin` trusts exactly one certificate by its SHA-256 (as ssh's known
//! hosts: the name and issuer then do not matter), `insecure` trusts
//! anything; `verify` turns that into rustls settings. A server presents a certificate from PEM files, or one made on
//! the spot with rcgen for `localhost`, `127.0.0.1` and `::1`, whose
//! fingerprint it prints so a client can pin it.

use std::{
    path::Path,
    sync::{Arc, OnceLock},
};

use rhai::{Dynamic, Map};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};

use super::Session;
use super::verify::{Trust, client_config};
use crate::error::{Error, Result};
use crate::net::helpers::file_error;
use crate::net::options::{self, Options};

const CLIENT_OPTIONS: &[&str] = &["insecure", "ca", "pin", "sni", "alpn"];
const SERVER_OPTIONS: &[&str] = &["cert", "key", "self_signed", "alpn"];

/// The names a self-signed certificate is made for.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// ring, the one crypto provider of every TLS session netsh makes.
pub(super) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A client's TLS settings, from `connect(addr, #{tls: …})`.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    /// The name to ask for and check, instead of the host connected to.
    sni: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientTls(sni: {:?})", self.sni)
    }
}

impl ClientTls {
    /// Reads a client's `tls` option: `true`, `false`, or a map of
    /// `insecure`, `ca`, `pin`, `sni`, `alpn`.
    pub fn from_option(value: &Dynamic) -> Result<Option<ClientTls>> {
        let Some(map) = option_map(value, CLIENT_OPTIONS)? else {
            return Ok(None);
        };
        let insecure = flag(&map, "insecure")?;
        let ca = text(&map, "ca")?;
        let pin = text(&map, "pin")?.map(|p| parse_pin(&p)).transpose()?;
        let sni = text(&map, "sni")?;
        if let Some(name) = &sni {
            ServerName::try_from(name.as_str()).map_err(|_| {
                Error::invalid(format!(
                    "option 'sni': '{name}' is not a host name or IP address"
                ))
            })?;
        }
        let chosen = [insecure, ca.is_some(), pin.is_some()];
        if chosen.iter().filter(|c| **c).count() > 1 {
            return Err(Error::invalid(
                "options 'insecure', 'ca' and 'pin' each decide whom to trust: give one of them",
            ));
        }
        let trust = match (pin, ca) {
            (Some(sha256), _) => Trust::Pinned(sha256),
            (None, Some(path)) => Trust::Only(certificates_in(&path)?),
            (None, None) if insecure => Trust::Anything,
            (None, None) => Trust::System,
        };
        let config = client_config(trust, alpn(&map)?)?;
        Ok(Some(ClientTls {
            config: Arc::new(config),
            sni,
        }))
    }

    /// What an async TLS client (tokio-rustls) needs for a connection to
    /// `host`, or to the `sni` name when one was given: the configuration
    /// and the name to ask for and check.
    pub fn for_async(&self, host: &str) -> Result<(Arc<ClientConfig>, ServerName<'static>)> {
        let name = self.sni.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string()).map_err(|_| {
            Error::invalid(format!(
                "'{name}' is not a name a certificate can be checked against; give one with #{{tls: #{{sni: \"name\"}}}}"
            ))
        })?;
        Ok((self.config.clone(), server_name))
    }

    /// The configuration with `alpn` offered instead (HTTP/2 for DNS over
    /// HTTPS), and the `sni` name if one was given.
    pub fn with_alpn(&self, alpn: Vec<Vec<u8>>) -> (ClientConfig, Option<&str>) {
        let mut config = (*self.config).clone();
        config.alpn_protocols = alpn;
        (config, self.sni.as_deref())
    }

    /// A new session for a connection to `host` (a name or an IP; `None`
    /// for a Unix socket, which asks for `localhost`), or to the `sni`
    /// name when one was given.
    pub fn session(&self, host: Option<&str>) -> Result<Session> {
        let name = self.sni.as_deref().or(host).unwrap_or("localhost");
        let server_name = ServerName::try_from(name.to_string()).map_err(|_| {
            Error::invalid(format!(
                "'{name}' is not a name a certificate can be checked against; give one with #{{tls: #{{sni: \"name\"}}}}"
            ))
        })?;
        let tls = rustls::ClientConnection::new(self.config.clone(), server_name)
            .map_err(|e| Error::Protocol(super::words(&e)))?;
        Ok(Session::new(tls, Some(name.to_string())))
    }

    /// The rustls settings and the name to check, for a TLS stream driven
    /// by tokio-rustls rather than by a [`Session`] (a WebSocket's).
    pub fn for_stream(&self, host: &str) -> Result<(Arc<ClientConfig>, ServerName<'static>)> {
        let name = self.sni.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string()).map_err(|_| {
            Error::invalid(format!(
                "'{name}' is not a name a certificate can be checked against; give one with #{{tls: #{{sni: \"name\"}}}}"
            ))
        })?;
        Ok((self.config.clone(), server_name))
    }
}

/// A server's TLS settings, from `listen(addr, #{tls: …})`.
pub struct ServerTls {
    config: Arc<ServerConfig>,
    /// The certificate presented, as PEM: what a client passes as `ca`.
    pub cert_pem: String,
    /// Its SHA-256, what a client passes as `pin`.
    pub fingerprint: String,
    /// Made on the spot (`self_signed: true`) rather than read from files.
    pub self_signed: bool,
}

impl ServerTls {
    /// Reads a server's `tls` option: a map with `cert` and `key` (PEM
    /// files) or `self_signed: true`, and `alpn`.
    pub fn from_option(value: &Dynamic) -> Result<Option<Arc<ServerTls>>> {
        if value.as_bool() == Ok(true) {
            return Err(Error::invalid(
                "a TLS server needs a certificate: #{tls: #{cert: \"cert.pem\", key: \"key.pem\"}} or #{tls: #{self_signed: true}}",
            ));
        }
        let Some(map) = option_map(value, SERVER_OPTIONS)? else {
            return Ok(None);
        };
        let self_signed = flag(&map, "self_signed")?;
        let (cert, key) = (text(&map, "cert")?, text(&map, "key")?);
        let (chain, key, cert_pem) = match (self_signed, cert, key) {
            (true, None, None) => make_self_signed()?,
            (true, _, _) => {
                return Err(Error::invalid(
                    "give either self_signed or cert and key, not both",
                ));
            }
            (false, Some(cert), Some(key)) => certificate_from_files(&cert, &key)?,
            (false, _, _) => {
                return Err(Error::invalid(
                    "a TLS server needs both 'cert' and 'key' (PEM files), or self_signed: true",
                ));
            }
        };
        let fingerprint = super::fingerprint(chain[0].as_ref());
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid(format!("TLS set-up failed: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                Error::invalid(format!(
                    "the certificate and key cannot be used together: {}",
                    super::words(&e)
                ))
            })?;
        config.alpn_protocols = alpn(&map)?;
        Ok(Some(Arc::new(ServerTls {
            config: Arc::new(config),
            cert_pem,
            fingerprint,
            self_signed,
        })))
    }

    /// Prints, for a certificate made on the spot, what it is for and its
    /// SHA-256, so whoever connects can check or pin it: above the prompt
    /// in the REPL, on stderr from a script (whose output stays its own).
    /// `op` is the function that serves it (`listen`, `serve`), `addr`
    /// where.
    pub fn tell_self_signed(&self, op: &str, addr: &dyn std::fmt::Display) {
        if !self.self_signed {
            return;
        }
        let note = format!(
            "{op}: {addr} uses a self-signed certificate for localhost, 127.0.0.1 and ::1, SHA-256 {}",
            self.fingerprint
        );
        if crate::console::is_interactive() {
            crate::console::line(&note);
        } else {
            crate::console::warn(&note);
        }
    }

    /// The rustls settings, for a server that drives TLS through tokio
    /// (`http_serve`).
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// A new session for an accepted connection.
    pub fn session(&self) -> Result<Session> {
        let tls = rustls::ServerConnection::new(self.config.clone())
            .map_err(|e| Error::Protocol(super::words(&e)))?;
        Ok(Session::new(tls, None))
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerTls(sha256 {})", self.fingerprint)
    }
}

/// `true` → an empty map, `false` / `()` → `None`, a map → its keys checked.
fn option_map(value: &Dynamic, known: &[&str]) -> Result<Option<Map>> {
    if value.is_unit() {
        return Ok(None);
    }
    if let Ok(on) = value.as_bool() {
        return Ok(on.then(Map::new));
    }
    let Some(map) = value.clone().try_cast::<Map>() else {
        return Err(Options::bad(
            "tls",
            "true or a map like #{ca: \"ca.pem\"}",
            value,
        ));
    };
    Options::nested(&map, "tls option", known)?;
    Ok(Some(map))
}

fn flag(map: &Map, key: &str) -> Result<bool> {
    match map.get(key) {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .map_err(|_| options::wrong("tls option", key, "true or false", v)),
    }
}

fn text(map: &Map, key: &str) -> Result<Option<String>> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => match v.clone().into_string() {
            Ok(s) if !s.is_empty() => Ok(Some(s)),
            Ok(_) => Err(Error::invalid(format!("tls option '{key}' is empty"))),
            Err(_) => Err(options::wrong("tls option", key, "a string", v)),
        },
    }
}

/// `alpn`: one protocol name (`"h2"`) or an array of them, most wanted first.
fn alpn(map: &Map) -> Result<Vec<Vec<u8>>> {
    let bad =
        || Error::invalid("tls option 'alpn' must be a string like \"h2\" or an array of them");
    let names: Vec<String> = match map.get("alpn") {
        None => return Ok(Vec::new()),
        Some(v) if v.is_string() => vec![v.to_string()],
        Some(v) => v
            .clone()
            .try_cast::<rhai::Array>()
            .ok_or_else(bad)?
            .into_iter()
            .map(|item| item.into_string().map_err(|_| bad()))
            .collect::<Result<_>>()?,
    };
    if names.iter().any(|n| n.is_empty() || n.len() > 255) {
        return Err(Error::invalid(
            "tls option 'alpn': each protocol name has 1 to 255 bytes",
        ));
    }
    Ok(names.into_iter().map(String::into_bytes).collect())
}

/// A fingerprint as `openssl x509 -fingerprint -sha256` or netsh prints it
/// (colons and case do not matter).
fn parse_pin(text: &str) -> Result<[u8; 32]> {
    let digits: String = text
        .strip_prefix("sha256:")
        .unwrap_or(text)
        .chars()
        .filter(|c| *c != ':')
        .collect();
    hex::decode(&digits)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "tls option 'pin' must be a SHA-256 fingerprint (64 hex digits, colons allowed), not '{text}'"
            ))
        })
}

/// The system's trusted roots, read once.
pub(super) fn system_roots() -> Result<Arc<RootCertStore>> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        Arc::new(store)
    });
    if roots.is_empty() {
        return Err(Error::NotFound(
            "no trusted root certificates were found on this system (install the ca-certificates package), so no server can be checked; trust one with #{tls: #{ca: \"ca.pem\"}}".into(),
        ));
    }
    Ok(roots.clone())
}

fn read_file(path: &str) -> Result<Vec<u8>> {
    crate::permit::read(Path::new(path))?;
    std::fs::read(Path::new(path)).map_err(|e| file_error("reading", path, e))
}

fn certificates_in(path: &str) -> Result<Vec<CertificateDer<'static>>> {
    certificates_from_pem(&read_file(path)?, path)
}

/// The certificates in PEM text (`what` names it in errors): at least one.
pub fn certificates_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::invalid(format!("{what} is not a valid PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(Error::invalid(format!(
            "{what} holds no certificate (a PEM block '-----BEGIN CERTIFICATE-----')"
        )));
    }
    Ok(certs)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String);

fn certificate_from_files(cert: &str, key: &str) -> Result<Identity> {
    let chain = certificates_in(cert)?;
    let key_pem = read_file(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        Error::invalid(format!(
            "{key} holds no private key (a PEM block '-----BEGIN PRIVATE KEY-----' or an RSA or EC key)"
        ))
    })?;
    let pem = String::from_utf8_lossy(&read_file(cert)?).into_owned();
    Ok((chain, private, pem))
}

/// A fresh certificate for localhost, 127.0.0.1 and ::1, valid for a year
/// (from a day ago, so a peer whose clock is a little behind accepts it).
fn make_self_signed() -> Result<Identity> {
    let failed =
        |e: rcgen::Error| Error::invalid(format!("making a self-signed certificate failed: {e}"));
    let mut params = rcgen::CertificateParams::new(SELF_SIGNED_NAMES.map(String::from).to_vec())
        .map_err(failed)?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365);
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, "netsh self-signed (localhost)");
    params.distinguished_name = name;
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    let private = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| Error::invalid(format!("making a self-signed certificate failed: {e}")))?;
    Ok((vec![cert.der().clone()], private, cert.pem()))
}
