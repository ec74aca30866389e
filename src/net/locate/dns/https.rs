//! DNS over HTTPS (RFC 8484): the question POSTed as
//! `application/dns-message` over HTTP/2 inside TLS, the answer the
//! response's body. The TLS settings are `connect`'s (`ClientTls`); the URL
//! names the server's IP address, or the `sni` name pinned to that address
//! so no resolver is asked.

use std::net::SocketAddr;

use hickory_proto::op::{Message, Query};

use super::wire::matching;
use crate::error::{Error, Result, printable};
use crate::net::tls::ClientTls;

/// The media type of a DNS message in HTTP.
const DNS_MESSAGE: &str = "application/dns-message";

/// A client for DNS over HTTPS to `server` at `path`: built once per call,
/// before anything is sent, and shared by all its questions.
#[derive(Clone, Debug)]
pub struct Doh {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl Doh {
    pub fn new(server: SocketAddr, tls: Option<&ClientTls>, path: &str) -> Result<Doh> {
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(format!(
                "option 'https': {:?} is not a path like \"/dns-query\"",
                printable(path)
            )));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let alpn = vec![b"h2".to_vec()];
        let system;
        let tls = match tls {
            Some(tls) => tls,
            None => {
                system = ClientTls::from_option(&true.into())?
                    .ok_or_else(|| Error::invalid("no TLS settings"))?;
                &system
            }
        };
        let (config, sni) = tls.with_alpn(alpn);
        let host = match (sni, server) {
            (Some(name), _) => name.to_string(),
            (None, SocketAddr::V4(v4)) => v4.ip().to_string(),
            (None, SocketAddr::V6(v6)) => format!("[{}]", v6.ip()),
        };
        let url = reqwest::Url::parse(&format!("https://{host}:{}{path}", server.port()))
            .map_err(|e| Error::invalid(format!("option 'https': {e}")))?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("netsh/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .http2_prior_knowledge()
            .tls_backend_preconfigured(config);
        if let Some(name) = sni {
            builder = builder.resolve(name, server);
        }
        let client = builder
            .build()
            .map_err(|e| Error::Protocol(format!("cannot set up DNS over HTTPS: {e}")))?;
        Ok(Doh { client, url })
    }

    /// Asks one question; the answer must be ours (ID and question).
    pub async fn ask(
        &self,
        server: SocketAddr,
        id: u16,
        query: &Query,
        bytes: &[u8],
    ) -> Result<Message> {
        let failed = |e: reqwest::Error| {
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            let refused = cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
            match cause.downcast_ref::<rustls::Error>() {
                _ if refused => Error::Refused(server),
                Some(tls) => Error::Protocol(format!(
                    "DNS over HTTPS with {server}: {}",
                    crate::net::tls::words(tls)
                )),
                None => Error::Protocol(format!("DNS over HTTPS with {server}: {cause}")),
            }
        };
        let response = self
            .client
            .post(self.url.clone())
            .header("content-type", DNS_MESSAGE)
            .header("accept", DNS_MESSAGE)
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Protocol(format!(
                "{server} answered the DNS over HTTPS question with HTTP {status}"
            )));
        }
        let body = response.bytes().await.map_err(failed)?;
        matching(&body, server, id, query)?.ok_or_else(|| {
            Error::Protocol(format!(
                "{server} answered over HTTPS with another question's answer"
            ))
        })
    }
}
