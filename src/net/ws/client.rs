//! `ws_connect`: options read in full, then TCP (directly or through a
//! proxy), TLS for `wss://`, and the opening handshake, all within one
//! time limit.
//!
//! netsh makes the TCP and TLS streams itself rather than letting
//! tokio-tungstenite connect: the host goes through `addr::reach` (strict
//! spelling, permissions), the proxy through `net::proxy` and trust
//! through the same `tls` option as `connect` and `fetch`, so a WebSocket
//! is held to every rule a raw connection is.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use rhai::Map;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, protocol::WebSocketConfig};

use super::socket::{About, Io, WebSocket, words};
use super::url::WsUrl;
use crate::error::{Error, Result};
use crate::net::addr;
use crate::net::options::Options;
use crate::net::proxy::ProxyUrl;
use crate::net::tls::ClientTls;
use crate::runtime;

/// How long the whole connect (TCP, TLS, handshake) may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The keys `ws_connect`'s options map may have.
pub const OPTIONS: &[&str] = &[
    "headers",
    "protocols",
    "tls",
    "proxy",
    "timeout",
    "max_message",
];

/// Headers the handshake itself sets: a script's value would break it.
const HANDSHAKE_HEADERS: &[&str] = &[
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// `ws_connect`'s settings, checked.
pub struct Settings {
    headers: Vec<(HeaderName, HeaderValue)>,
    protocols: Vec<String>,
    tls: Option<ClientTls>,
    proxy: Option<ProxyUrl>,
    timeout: Duration,
    pub config: WebSocketConfig,
}

/// The largest message accepted unless `max_message` says otherwise.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

impl Settings {
    /// Reads the options map for `url`; nothing is sent.
    pub fn read(url: &WsUrl, map: &Map) -> Result<Settings> {
        let o = Options::new(map, OPTIONS)?;
        let proxy = o.text("proxy")?.map(|t| ProxyUrl::parse(&t)).transpose()?;
        let timeout = match o.timeout("timeout")? {
            None => DEFAULT_TIMEOUT,
            Some(None) => Duration::from_secs(24 * 3600),
            Some(Some(t)) => t,
        };
        let tls = match (o.value("tls"), url.secure) {
            (Some(value), true) => ClientTls::from_option(value)?,
            (None, true) => ClientTls::from_option(&rhai::Dynamic::TRUE)?,
            (Some(_), false) => {
                return Err(Error::invalid(
                    "option 'tls' needs a wss:// URL (ws:// is plain TCP)",
                ));
            }
            (None, false) => None,
        };
        let tls = match (url.secure, tls) {
            (true, None) => {
                return Err(Error::invalid(
                    "a wss:// URL is TLS: option 'tls' cannot be false there (use ws://)",
                ));
            }
            (_, tls) => tls,
        };
        let mut headers = Vec::new();
        if let Some(v) = o.value("headers") {
            let given = v
                .read_lock::<Map>()
                .ok_or_else(|| o.wrong("headers", "a map like #{\"x-token\": \"abc\"}", v))?;
            for (name, value) in given.iter() {
                let header = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| Error::invalid(format!("'{name}' is not a valid header name")))?;
                if HANDSHAKE_HEADERS.contains(&header.as_str()) {
                    return Err(Error::invalid(format!(
                        "header '{name}' is set by the WebSocket handshake itself (subprotocols go in option 'protocols')"
                    )));
                }
                let text = if value.is_string() || value.is_int() || value.is_float() {
                    value.to_string()
                } else {
                    return Err(Error::invalid(format!(
                        "header '{name}' must be a string or a number"
                    )));
                };
                let value = HeaderValue::from_str(&text).map_err(|_| {
                    Error::invalid(format!(
                        "the value of header '{name}' has characters a header cannot carry (newlines, control characters)"
                    ))
                })?;
                headers.push((header, value));
            }
        }
        let mut protocols = Vec::new();
        if let Some(v) = o.value("protocols") {
            let list = v
                .read_lock::<rhai::Array>()
                .ok_or_else(|| o.wrong("protocols", "an array of names like [\"chat\"]", v))?;
            for item in list.iter() {
                let name = item
                    .clone()
                    .into_string()
                    .map_err(|_| o.wrong("protocols", "an array of names like [\"chat\"]", item))?;
                let token = is_token(&name);
                if !token {
                    return Err(Error::invalid(format!(
                        "option 'protocols': '{}' is not a subprotocol name (letters, digits and !#$%&'*+-.^_`|~, no spaces)",
                        crate::error::printable(&name)
                    )));
                }
                protocols.push(name);
            }
        }
        let max = o
            .count_in("max_message", 1, 1 << 30)?
            .map_or(DEFAULT_MAX_MESSAGE, |n| n as usize);
        let config = super::socket::config(max);
        Ok(Settings {
            headers,
            protocols,
            tls,
            proxy,
            timeout,
            config,
        })
    }
}

/// Connects and opens the WebSocket.
pub fn connect(url: &WsUrl, settings: Settings) -> Result<WebSocket> {
    addr::destination(&url.target)?;
    let mut request = url
        .request_uri()
        .into_client_request()
        .map_err(|e| words(e, &url.target.to_string()))?;
    for (name, value) in &settings.headers {
        request.headers_mut().append(name.clone(), value.clone());
    }
    if !settings.protocols.is_empty() {
        let joined = settings.protocols.join(", ");
        let value = HeaderValue::from_str(&joined)
            .map_err(|_| Error::invalid("option 'protocols' cannot be sent as a header"))?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", value);
    }
    let url = url.clone();
    let timeout = settings.timeout;
    runtime::block_on(async move {
        let shown = url.text.clone();
        runtime::within(timeout, || format!("opening {shown}"), async move {
            let (tcp, peer) = match &settings.proxy {
                Some(proxy) => {
                    let stream = crate::net::proxy::connect(proxy, &url.target, timeout).await?;
                    let crate::net::tcp::Stream::Tcp(std) = stream else {
                        return Err(Error::invalid("a proxy gives a TCP stream"));
                    };
                    std.set_nonblocking(true)
                        .map_err(|e| Error::io("taking over the socket", None, e))?;
                    let tcp = TcpStream::from_std(std)
                        .map_err(|e| Error::io("taking over the socket", None, e))?;
                    (tcp, url.target.to_string())
                }
                None => {
                    let tcp = connect_tcp(&url).await?;
                    let peer = tcp
                        .peer_addr()
                        .map_or_else(|_| url.target.to_string(), |a| a.to_string());
                    (tcp, peer)
                }
            };
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = match &settings.tls {
                None => Box::new(tcp),
                Some(tls) => {
                    let (config, name) = tls.for_stream(&url.target.host)?;
                    let stream = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(|e| tls_failure(e, &peer))?;
                    Box::new(stream)
                }
            };
            let (stream, response) =
                tokio_tungstenite::client_async_with_config(request, io, Some(settings.config))
                    .await
                    .map_err(|e| words(e, &peer))?;
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok(WebSocket::start(
                stream,
                About {
                    url: url.text.clone(),
                    peer,
                    protocol,
                },
            ))
        })
        .await
    })
}

/// A TCP connection to the URL's host, each resolved address in turn.
async fn connect_tcp(url: &WsUrl) -> Result<TcpStream> {
    let addrs = addr::reach(&url.target).await?;
    let mut last = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(Error::io(format!("connecting to {a}"), Some(a), e)),
        }
    }
    Err(last.unwrap_or_else(|| Error::Resolve {
        host: url.target.host.clone(),
        reason: "the name has no addresses".into(),
    }))
}

/// tokio-rustls hands rustls's error back inside an `io::Error`.
fn tls_failure(err: std::io::Error, peer: &str) -> Error {
    let rustls_error = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match rustls_error {
        Some(e) => Error::Protocol(format!(
            "TLS with {peer} failed: {}",
            crate::net::tls::words(&e)
        )),
        None => Error::io(format!("TLS with {peer}"), None, err),
    }
}

/// Whether `name` is an HTTP token, as a subprotocol name must be.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}
