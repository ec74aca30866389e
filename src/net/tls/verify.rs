//! Whom a TLS client trusts, as rustls settings: the one place every
//! client (`connect`, `send_file`, `fetch`, and later `forward`'s
//! `target_tls` and `ws_connect`) gets its [`ClientConfig`] from, so they
//! all trust exactly the same certificates.
//!
//! A `ca` file trusts what curl's `--cacert` and `openssl s_client -CAfile`
//! trust. webpki alone refuses a server that presents a CA certificate
//! (`basicConstraints CA:TRUE`) as its own, and that is what the usual
//! `openssl req -x509 …` makes; curl and openssl accept it when it is in
//! the trusted file. So a certificate that is byte for byte one of the
//! file's is trusted as itself: its name (or `sni`), its dates and its
//! purpose are still checked here, and the handshake's signature by
//! rustls, as for any other. Every other certificate takes webpki's usual
//! path to a root.

use std::{sync::Arc, time::Duration};

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::WebPkiSupportedAlgorithms,
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::ParsedCertificate,
};
use sha2::{Digest, Sha256};

use super::config::{provider, system_roots};
use crate::error::{Error, Result};

/// Whom a client trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The system's roots (`tls: true`, fetch's default).
    System,
    /// These certificates only, as roots or as the server's own (`connect`'s
    /// `ca`, like curl's `--cacert`).
    Only(Vec<CertificateDer<'static>>),
    /// The system's roots and these certificates (`fetch`'s `ca`).
    Also(Vec<CertificateDer<'static>>),
    /// Exactly the certificate with this SHA-256 (`pin`): name and issuer
    /// do not matter.
    Pinned([u8; 32]),
    /// Any certificate (`insecure: true`); the session is still encrypted.
    Anything,
}

/// A client's settings for `trust`, offering the `alpn` protocols.
pub fn client_config(trust: Trust, alpn: Vec<Vec<u8>>) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid(format!("TLS set-up failed: {e}")))?;
    let algorithms = provider().signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::System => webpki(system_roots()?)?,
        Trust::Only(listed) => listed_verifier(RootCertStore::empty(), listed, algorithms)?,
        Trust::Also(listed) => {
            // No system roots is no reason to refuse the listed ones.
            let roots = system_roots().map_or_else(|_| RootCertStore::empty(), |r| (*r).clone());
            listed_verifier(roots, listed, algorithms)?
        }
        Trust::Pinned(sha256) => Arc::new(Exempt {
            pin: Some(sha256),
            algorithms,
        }),
        Trust::Anything => Arc::new(Exempt {
            pin: None,
            algorithms,
        }),
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    Ok(config)
}

fn webpki(roots: Arc<RootCertStore>) -> Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| Error::invalid(format!("TLS set-up failed: {e}")))
}

/// `listed` trusted as roots on top of `roots`, and each as itself.
fn listed_verifier(
    mut roots: RootCertStore,
    listed: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
) -> Result<Arc<dyn ServerCertVerifier>> {
    // A certificate webpki cannot take as a root may still be trusted as
    // the server's own.
    roots.add_parsable_certificates(listed.iter().cloned());
    let chains = if roots.is_empty() {
        None
    } else {
        Some(webpki(Arc::new(roots))?)
    };
    Ok(Arc::new(Listed {
        listed,
        chains,
        algorithms,
    }))
}

/// Trusts a certificate in `listed` as itself, and others by webpki.
#[derive(Debug)]
struct Listed {
    listed: Vec<CertificateDer<'static>>,
    /// Chains to the roots; `None` when there are none.
    chains: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Listed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if self
            .listed
            .iter()
            .any(|cert| cert.as_ref() == end_entity.as_ref())
        {
            return check_listed(end_entity, server_name, now);
        }
        let Some(webpki) = &self.chains else {
            return Err(CertificateError::UnknownIssuer.into());
        };
        webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                // A CA certificate that is not among the trusted ones is
                // as unknown as any other: webpki only says so first.
                rustls::Error::InvalidCertificate(CertificateError::Other(other))
                    if other.to_string().contains("CaUsedAsEndEntity") =>
                {
                    CertificateError::UnknownIssuer.into()
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What is left to check of a certificate trusted as itself: its dates,
/// its purpose (when it names any), and that it is for `server_name`.
fn check_listed(
    der: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> std::result::Result<ServerCertVerified, rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|_| CertificateError::BadEncoding)?;
    let at = |secs: i64| UnixTime::since_unix_epoch(Duration::from_secs(secs.max(0) as u64));
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let time = now.as_secs() as i64;
    if time < not_before {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before: at(not_before),
        }
        .into());
    }
    if time > not_after {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after: at(not_after),
        }
        .into());
    }
    if let Ok(Some(usage)) = cert.extended_key_usage()
        && !(usage.value.server_auth || usage.value.any)
    {
        return Err(CertificateError::InvalidPurpose.into());
    }
    let parsed = ParsedCertificate::try_from(der)?;
    rustls::client::verify_server_name(&parsed, server_name)?;
    Ok(ServerCertVerified::assertion())
}

/// A verifier for `pin` (exactly one certificate) and `insecure` (any).
/// The handshake's signatures are still checked either way, so the session
/// is encrypted with whoever holds the certificate's key.
#[derive(Debug)]
struct Exempt {
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The certificate the server presented is not the pinned one.
#[derive(Debug)]
pub struct PinMismatch {
    pub presented: [u8; 32],
    pub pinned: [u8; 32],
}

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the pin did not match: the server's certificate has SHA-256 {}, the pin is {}",
            super::colon_hex(&self.presented),
            super::colon_hex(&self.pinned)
        )
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for Exempt {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(pinned) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let presented: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if presented == pinned {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = PinMismatch { presented, pinned };
        Err(CertificateError::Other(OtherError(Arc::new(mismatch))).into())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
