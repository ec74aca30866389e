//! The reqwest clients `fetch` sends through, and how their errors read.
//!
//! A client owns the connection pool, so one shared client per process is
//! what lets 1,000 fetches in a loop reuse one connection. Some options can
//! only be set on a client (certificates, redirect policy, decoding, the
//! connect and idle timeouts); each distinct set of those gets its own
//! client, kept in a small cache so a loop with `#{insecure: true}` still
//! reuses its connections. Per-request settings (method, headers, body, the
//! total `timeout`) go on the request.
//!
//! Names resolve through [`addr::lookup`], the resolver every other netsh
//! function uses: `/etc/hosts` is honoured and `.invalid` names fail without
//! a DNS query. Proxies come from `http_proxy`, `https_proxy` and `no_proxy`
//! (reqwest reads them when a client is built).

use std::{
    cell::RefCell,
    collections::HashMap,
    error::Error as StdError,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use reqwest::{Client, Url, redirect};

use super::follow::Hop;
use crate::error::{Error, Result};
use crate::net::addr::{self, Target};
use crate::net::tls;
use crate::runtime;

/// How long to wait for a connection unless told otherwise (as `connect`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response may go without a byte before it counts as stalled,
/// unless a `timeout` is given.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed unless `max_redirects` says otherwise (curl's `-L`
/// follows 50, browsers about 20; reqwest's default is 10).
pub const DEFAULT_MAX_REDIRECTS: usize = 10;
/// Distinct option sets kept before the cache starts over.
const MAX_CACHED_CLIENTS: usize = 16;

/// The options that need a client of their own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub insecure: bool,
    /// PEM text of extra trusted certificates (`ca:`).
    pub ca: Option<Arc<Vec<u8>>>,
    pub follow_redirects: bool,
    pub max_redirects: usize,
    pub connect_timeout: Duration,
    /// `None` when a total `timeout` was given (it covers stalls too).
    pub idle_timeout: Option<Duration>,
    /// Ask for and decode gzip, brotli and deflate. netsh decodes bodies
    /// itself (`response.rs`, `stream.rs`), so this is not the client's:
    /// [`client`] serves both values with one client and its pool.
    pub decode: bool,
    /// `proxy:` — a checked proxy URL every request goes through (except
    /// where `no_proxy` says not), instead of the environment's.
    pub proxy: Option<String>,
    /// The plugin whose code sends (under permissions): its connections
    /// are pooled apart, or it could be sent over one the script opened
    /// to an address outside the plugin's statement.
    pub plugin: Option<String>,
}

impl Default for ClientKey {
    fn default() -> Self {
        ClientKey {
            insecure: false,
            ca: None,
            follow_redirects: true,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            decode: true,
            proxy: None,
            plugin: None,
        }
    }
}

/// The client for these options, built on first use and then shared.
///
/// A client's connections live on the runtime that made them: on a script
/// thread's own runtime ([`runtime::local`]) they run only while that
/// thread waits, so such a thread keeps clients of its own.
pub fn client(key: &ClientKey) -> Result<Client> {
    let normalized;
    let key = if key.decode {
        key
    } else {
        normalized = ClientKey {
            decode: true,
            ..key.clone()
        };
        &normalized
    };
    if runtime::local::driving() {
        return this_threads_client(key);
    }
    static DEFAULT: OnceLock<Client> = OnceLock::new();
    static OTHERS: OnceLock<Mutex<HashMap<ClientKey, Client>>> = OnceLock::new();
    if *key == ClientKey::default() {
        if let Some(client) = DEFAULT.get() {
            return Ok(client.clone());
        }
        let built = build(key)?;
        return Ok(DEFAULT.get_or_init(|| built).clone());
    }
    let cache = OTHERS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(cache) = cache.lock()
        && let Some(client) = cache.get(key)
    {
        return Ok(client.clone());
    }
    let built = build(key)?;
    if let Ok(mut cache) = cache.lock() {
        if cache.len() >= MAX_CACHED_CLIENTS {
            cache.clear();
        }
        cache.insert(key.clone(), built.clone());
    }
    Ok(built)
}

thread_local! {
    static THIS_THREAD: RefCell<HashMap<ClientKey, Client>> = RefCell::new(HashMap::new());
}

/// The client for these options on this thread's own runtime.
fn this_threads_client(key: &ClientKey) -> Result<Client> {
    if let Some(client) = THIS_THREAD.with(|c| c.borrow().get(key).cloned()) {
        return Ok(client);
    }
    let built = build(key)?;
    THIS_THREAD.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.len() >= MAX_CACHED_CLIENTS {
            cache.clear();
        }
        cache.insert(key.clone(), built.clone());
    });
    Ok(built)
}

fn build(key: &ClientKey) -> Result<Client> {
    // reqwest is built without a crypto provider of its own (the default
    // one, aws-lc, needs cmake and a C toolchain); ring is installed once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = Client::builder()
        .user_agent(concat!("netsh/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(key.connect_timeout)
        .redirect(policy(key.follow_redirects, key.max_redirects))
        .tcp_nodelay(true)
        .dns_resolver(Arc::new(Resolver))
        .tls_danger_accept_invalid_certs(key.insecure);
    if let Some(timeout) = key.idle_timeout {
        builder = builder.read_timeout(timeout);
    }
    if let Some(url) = &key.proxy {
        let proxy = reqwest::Proxy::all(url.as_str())
            .map_err(|e| Error::invalid(format!("option 'proxy': {}", chain(&e))))?
            .no_proxy(reqwest::NoProxy::from_env());
        builder = builder.proxy(proxy);
    }
    // A `ca` trusts exactly what `connect`'s does (a certificate in the
    // file is trusted as itself, as curl does), on top of the system's
    // roots: the rustls settings come from the one place every netsh TLS
    // client gets them. `insecure` wins, as it did.
    if let Some(pem) = key.ca.as_ref().filter(|_| !key.insecure) {
        let certs = crate::net::tls::certificates_from_pem(pem, "option 'ca'")?;
        let alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let config = crate::net::tls::client_config(crate::net::tls::Trust::Also(certs), alpn)?;
        builder = builder.tls_backend_preconfigured(config);
    }
    builder
        .build()
        .map_err(|e| Error::Protocol(format!("cannot set up the HTTP client: {}", chain(&e))))
}

/// reqwest follows no redirect itself: netsh follows them hop by hop
/// (`follow.rs`), so each `Location` meets the strict URL check as written,
/// before the url crate rewrites it. (`follow` and `max` are read there;
/// they stay part of the client's key and this signature.)
fn policy(_follow: bool, _max: usize) -> redirect::Policy {
    redirect::Policy::none()
}

/// reqwest's resolver hook, answered by netsh's own lookup.
struct Resolver;

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let target = Target {
            host: name.as_str().to_string(),
            port: 0,
        };
        Box::pin(async move {
            let addrs = addr::lookup(&target)
                .await
                // Each hop was checked before it was sent (follow.rs);
                // what reqwest resolves again is held to the grant too, so
                // neither an address outside it nor an answer that changed
                // in between (DNS rebinding) is connected to.
                .and_then(|addrs| crate::permit::granted_again(&target.host, addrs))
                .map_err(|e| Box::new(e) as Box<dyn StdError + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// What a request was waiting under, so a timeout can say which limit hit.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect: Duration,
    pub total: Option<Duration>,
    pub idle: Option<Duration>,
}

/// A reqwest error in plain words, naming the URL asked for, where
/// redirects had led, and who failed (the server or the proxy).
pub fn explain(err: &reqwest::Error, hop: &Hop, limits: Limits) -> Error {
    hop.fail(cause(err, hop, limits))
}

fn cause(err: &reqwest::Error, hop: &Hop, limits: Limits) -> Error {
    let url = &hop.url;
    // Our own errors (the resolver's) come back wrapped; they already say
    // the right thing.
    if let Some(ours) = find::<Error>(err) {
        return copy_of(ours);
    }
    // Who a connection was made to: the proxy when there is one.
    let party = match &hop.proxy {
        Some(proxy) => proxy.to_string(),
        None => host_port(url),
    };
    if err.is_timeout() {
        let (what, after) = if err.is_connect() {
            (format!("connecting to {party}"), limits.connect)
        } else if let Some(total) = limits.total {
            ("fetching".to_string(), total)
        } else {
            (
                format!("waiting for data from {party}"),
                limits.idle.unwrap_or_default(),
            )
        };
        return Error::Timeout { what, after };
    }
    if let Some(tls) = find::<rustls::Error>(err) {
        return Error::Protocol(tls_words(tls));
    }
    if let Some(parse) = find::<hyper::Error>(err)
        && parse.is_parse()
    {
        return Error::Protocol(format!(
            "{party} did not answer in HTTP ({parse}); is it an HTTP server (or a TLS one: https://)?"
        ));
    }
    if let Some(io) = find::<std::io::Error>(err) {
        // hyper's "end of file before message length reached".
        if io.kind() == std::io::ErrorKind::UnexpectedEof {
            return Error::Protocol(
                "the server closed the connection before the whole body arrived".into(),
            );
        }
        if io.kind() == std::io::ErrorKind::ConnectionRefused && err.is_connect() {
            return Error::Script {
                kind: crate::error::Kind::Refused,
                message: format!("connection refused by {party}"),
            };
        }
        let peer = match &hop.proxy {
            Some(_) => None,
            None => url
                .host_str()
                .and_then(|h| h.trim_matches(['[', ']']).parse().ok())
                .zip(url.port_or_known_default())
                .map(|(ip, port)| SocketAddr::new(ip, port)),
        };
        return Error::io(format!("talking to {party}"), peer, copy_io(io));
    }
    if err.is_decode() {
        return Error::Protocol(format!(
            "the body could not be decoded: {} (pass #{{decode: false}} to keep it as sent)",
            chain(err)
        ));
    }
    let text = chain(err);
    if text.contains("connection closed before message completed")
        || text.contains("end of file before message length reached")
        || text.contains("IncompleteMessage")
        || text.contains("incomplete")
    {
        return Error::Protocol(format!(
            "the server closed the connection before the response was complete ({text})"
        ));
    }
    Error::Protocol(text)
}

/// A TLS failure in the words `connect` uses ([`tls::words`]), with its
/// advice given as fetch's options: fetch has `ca` and `insecure` where a
/// connection has `#{tls: #{ca, pin, sni}}`.
fn tls_words(err: &rustls::Error) -> String {
    let words = tls::words(err);
    // Connect's advice, in the last parenthesis, names options fetch does
    // not have: keep the reason before it, replace the advice.
    let (plain, reason) = match words.rfind(" (") {
        Some(at) if words[at..].contains("#{tls:") => {
            let inner = words[at + 2..].trim_end_matches(')');
            let reason = inner
                .split_once("; trust it with")
                .map(|(reason, _)| reason.to_string());
            (words[..at].to_string(), reason)
        }
        _ => (words.clone(), None),
    };
    if matches!(
        err,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    ) {
        let reason = reason.map(|r| format!("{r}; ")).unwrap_or_default();
        format!(
            "{plain} ({reason}trust it with #{{ca: \"cert.pem\"}}, or skip the check with #{{insecure: true}})"
        )
    } else if plain.starts_with("name mismatch") {
        format!("{plain} (fetch it by a name the certificate is for)")
    } else {
        plain
    }
}

/// `host:port` of a URL, for messages.
pub fn host_port(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        _ => url.to_string(),
    }
}

/// The first error of type `T` in `err`'s chain of causes.
fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        // An io::Error's `source()` skips the error it wraps; look inside.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(found) = find::<T>(inner)
        {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// The whole chain of causes, without repeats, as one line.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// An owned copy of one of our errors found by reference in a chain.
fn copy_of(err: &Error) -> Error {
    match err {
        Error::Resolve { host, reason } => Error::Resolve {
            host: host.clone(),
            reason: reason.clone(),
        },
        Error::InvalidArgument(text) => Error::InvalidArgument(text.clone()),
        Error::Permission(text) => Error::Permission(text.clone()),
        other => Error::Protocol(other.to_string()),
    }
}

fn copy_io(err: &std::io::Error) -> std::io::Error {
    match err.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(err.kind(), err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{CertificateError as C, Error as E};

    /// Each TLS failure reads as connect's words, with advice only in
    /// fetch's own options (connect's `#{tls: …}` would not work here).
    #[test]
    fn tls_failures_use_connects_words_and_fetchs_options() {
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let cases = [
            (
                E::InvalidCertificate(C::UnknownIssuer),
                "the certificate is not trusted: unknown issuer (self-signed, or signed by a CA that is not among the trusted roots; trust it with #{ca: \"cert.pem\"}, or skip the check with #{insecure: true})",
            ),
            (
                E::InvalidCertificate(C::NotValidForNameContext {
                    expected: name,
                    presented: vec!["DnsName(\"localhost\")".into()],
                }),
                "name mismatch: the certificate is for localhost, not 127.0.0.1 (fetch it by a name the certificate is for)",
            ),
            (
                E::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                "the peer does not speak TLS: what it sent is not a TLS record (a plain-text service on this port?)",
            ),
            (
                E::InvalidCertificate(C::Expired),
                "the certificate has expired",
            ),
        ];
        for (err, expected) in cases {
            let said = tls_words(&err);
            assert_eq!(said, expected);
            assert!(!said.contains("#{tls:"), "{said}");
        }
    }
}
