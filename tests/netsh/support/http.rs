//! A real HTTP server for tests (hyper 1), on 127.0.0.1:0 in a thread of
//! its own, stopped on Drop; optionally HTTPS with a self-signed
//! certificate (rcgen, tokio-rustls) speaking HTTP/1.1 and HTTP/2.
//!
//! Routes:
//! - `/status/CODE` — that status, body `status CODE` (none for 204/304);
//! - `/redirect/N` — 302 to `/redirect/N-1`, `/redirect/0` says `landed`;
//!   `/loop/a` ⇄ `/loop/b` redirect to each other; `/to?url=U` — 302 to U;
//! - `/echo` — the request as JSON: method, path, query, headers, body;
//! - `/json` — a JSON document; `/headers` — repeated and custom headers;
//! - `/gzip`, `/br`, `/deflate` — `TEXT` compressed that way; `/bad-gzip`
//!   says gzip and is not;
//! - `/chunked` — a body in pieces without Content-Length;
//! - `/slow-body?ms=N` — headers at once, the body after N ms;
//! - `/huge` — claims 2 GiB, sends nothing;
//! - `/cd?name=RAW` — a file with `Content-Disposition` carrying RAW;
//! - `/files/NAME` — a [`Resource`] with Range, If-Range and ETag, and
//!   the misbehaviours a test switches on (ignore ranges, cut off, stall).
//! - any request in absolute form (`GET http://host/…`) is answered as a
//!   proxy would: `proxied URL`.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::{Frame, Incoming},
    header::{self, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;

/// The text `/gzip`, `/br` and `/deflate` serve, compressed.
pub const TEXT: &str = "netsh decodes compressed bodies transparently. ";

type Body = BoxBody<Bytes, std::io::Error>;

/// A file served under `/files/NAME`, and how the server misbehaves with it.
#[derive(Clone, Default)]
pub struct Resource {
    pub data: Bytes,
    /// Changes when the data changes, so ETags change.
    pub version: u64,
    /// Answer 200 with everything, whatever Range says.
    pub ignore_range: bool,
    /// Send only this many bytes of the body (Content-Length says all), then close.
    pub cut_after: Option<u64>,
    /// Send this many bytes, then stall until the server stops.
    pub stall_after: Option<u64>,
    /// A Content-Disposition header to send.
    pub disposition: Option<String>,
    /// Send no Content-Length (the body goes chunked): a size unknown in advance.
    pub unsized_body: bool,
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Default)]
pub struct State {
    resources: Mutex<HashMap<String, Resource>>,
    seen: Mutex<Vec<Seen>>,
    /// Connections accepted, to show that fetches reuse one.
    pub connections: AtomicU64,
    /// Body bytes sent for `/files/…`.
    pub file_bytes_sent: AtomicU64,
}

/// A running test server; stops when dropped.
pub struct HttpServer {
    pub addr: SocketAddr,
    tls: bool,
    pub state: Arc<State>,
    /// The self-signed certificate (HTTPS only), as a PEM file.
    pub cert_pem: Option<PathBuf>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl HttpServer {
    /// A plain HTTP/1.1 server.
    pub fn start() -> HttpServer {
        Self::launch(None, "127.0.0.1")
    }

    /// A plain HTTP/1.1 server on another loopback address (`127.0.0.3`).
    pub fn start_at(ip: &str) -> HttpServer {
        Self::launch(None, ip)
    }

    /// An HTTPS server with a fresh self-signed certificate for 127.0.0.1
    /// and localhost, offering HTTP/2 and HTTP/1.1.
    pub fn start_tls() -> HttpServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("generating a self-signed certificate");
        let dir = tempfile::tempdir().expect("a temp dir for the certificate");
        let pem = dir.path().join("cert.pem");
        std::fs::write(&pem, key.cert.pem()).expect("writing cert.pem");
        let cert = key.cert.der().clone();
        let private =
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], private)
            .expect("a TLS server config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut server = Self::launch(Some(Arc::new(config)), "127.0.0.1");
        server.cert_pem = Some(pem);
        server._dir = Some(dir);
        server
    }

    fn launch(tls: Option<Arc<rustls::ServerConfig>>, ip: &str) -> HttpServer {
        let std_listener =
            std::net::TcpListener::bind((ip, 0)).expect("binding the test HTTP server");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let (stop, stopped) = watch::channel(false);
        let is_tls = tls.is_some();
        let thread_state = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the test server's runtime");
            rt.block_on(serve(std_listener, tls, thread_state, stopped));
        });
        HttpServer {
            addr,
            tls: is_tls,
            state,
            cert_pem: None,
            stop,
            thread: Some(thread),
            _dir: None,
        }
    }

    /// `http://127.0.0.1:PORT/PATH` (or https).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Serves `resource` under `/files/NAME` (replacing what was there).
    pub fn put(&self, name: &str, resource: Resource) {
        self.state
            .resources
            .lock()
            .unwrap()
            .insert(name.to_string(), resource);
    }

    /// Changes how `/files/NAME` behaves.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut Resource)) {
        let mut resources = self.state.resources.lock().unwrap();
        change(resources.get_mut(name).expect("a resource put before"));
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The value of header `name` in the last request for `path`.
    pub fn last_header(&self, path: &str, name: &str) -> Option<String> {
        self.seen()
            .iter()
            .rev()
            .find(|s| s.path == path)
            .and_then(|s| {
                s.headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            })
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<State>,
    mut stopped: watch::Receiver<bool>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, _) = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let state = state.clone();
        let acceptor = acceptor.clone();
        let mut stop = stopped.clone();
        let handler_stop = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                let stop = handler_stop.clone();
                async move { Ok::<_, Infallible>(handle(req, state, stop).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let serving = async {
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            };
            tokio::select! {
                _ = stop.changed() => {}
                _ = serving => {}
            }
        });
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}

/// A response whose body is the frames of `body`, sent as they come.
fn streamed(
    body: impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + Sync + 'static,
) -> Response<Body> {
    Response::new(BodyExt::boxed(StreamBody::new(body)))
}

fn with_header(mut response: Response<Body>, name: &str, value: &str) -> Response<Body> {
    response.headers_mut().append(
        header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_str(value).unwrap(),
    );
    response
}

fn query_param(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    })
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    state.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    });
    if req.uri().scheme().is_some() && req.version() < hyper::Version::HTTP_2 {
        return full(StatusCode::OK, format!("proxied {}", req.uri()));
    }
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(2, '/').collect();
    match (parts[0], parts.get(1).copied().unwrap_or("")) {
        ("status", code) => {
            let status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            let body = if matches!(status.as_u16(), 204 | 304) {
                String::new()
            } else {
                format!("status {}", status.as_u16())
            };
            let response = full(status, body);
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                with_header(response, "location", "/redirect/0")
            } else {
                response
            }
        }
        ("redirect", n) => match n.parse::<u32>() {
            Ok(0) => full(StatusCode::OK, "landed"),
            Ok(n) => with_header(
                full(StatusCode::FOUND, ""),
                "location",
                &format!("/redirect/{}", n - 1),
            ),
            Err(_) => full(StatusCode::BAD_REQUEST, "bad count"),
        },
        ("to", _) => {
            let to = query_param(&req, "url").unwrap_or_default();
            with_header(full(StatusCode::FOUND, ""), "location", &to)
        }
        ("loop", "a") => with_header(full(StatusCode::FOUND, ""), "location", "/loop/b"),
        ("loop", _) => with_header(full(StatusCode::FOUND, ""), "location", "/loop/a"),
        ("echo", _) => echo(req).await,
        ("json", _) => with_header(
            full(
                StatusCode::OK,
                r#"{"name":"netsh","list":[1,2,3],"nested":{"ok":true,"none":null}}"#,
            ),
            "content-type",
            "application/json",
        ),
        ("headers", _) => {
            let r = with_header(full(StatusCode::OK, "headers"), "x-one", "1");
            let r = with_header(r, "x-multi", "a");
            let r = with_header(r, "x-multi", "b");
            let r = with_header(
                r,
                "set-cookie",
                "a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
            );
            with_header(r, "set-cookie", "b=2")
        }
        ("gzip", _) => compressed(
            encoded(flate2::read::GzEncoder::new(
                TEXT.repeat(20).as_bytes(),
                flate2::Compression::default(),
            )),
            "gzip",
        ),
        ("bad-gzip", _) => compressed(b"this was never gzip".to_vec(), "gzip"),
        ("deflate", _) => compressed(
            encoded(flate2::read::ZlibEncoder::new(
                TEXT.repeat(20).as_bytes(),
                flate2::Compression::default(),
            )),
            "deflate",
        ),
        ("br", _) => {
            let mut out = Vec::new();
            brotli::BrotliCompress(
                &mut TEXT.repeat(20).as_bytes(),
                &mut out,
                &brotli::enc::BrotliEncoderParams::default(),
            )
            .unwrap();
            compressed(out, "br")
        }
        ("chunked", _) => {
            let pieces = stream::iter((0..5).map(|i| {
                Ok::<_, std::io::Error>(Frame::data(Bytes::from(format!("piece {i}\n"))))
            }))
            .then(|frame| async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                frame
            });
            with_header(streamed(pieces), "content-type", "text/plain")
        }
        ("slow-body", _) => {
            let ms: u64 = query_param(&req, "ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(5000);
            let body = stream::once(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"finally")))
            });
            with_header(streamed(body), "content-length", "7")
        }
        ("huge", _) => {
            // Claims 2 GiB and sends nothing: the client must refuse at once.
            let mut stop = stop;
            let body = stream::once(async move {
                let _ = stop.wait_for(|s| *s).await;
                Err::<Frame<Bytes>, _>(std::io::Error::other("stopped"))
            });
            with_header(streamed(body), "content-length", "2147483648")
        }
        ("cd", _) => {
            let name = query_param(&req, "name").unwrap_or_default();
            let mut response = full(StatusCode::OK, "from the cd route\n");
            response.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_bytes(name.as_bytes()).unwrap_or(HeaderValue::from_static("x")),
            );
            response
        }
        ("files", name) => {
            let resource = state.resources.lock().unwrap().get(name).cloned();
            match resource {
                Some(resource) => serve_file(&req, resource, state.clone(), stop),
                None => full(StatusCode::NOT_FOUND, "no such file"),
            }
        }
        _ => full(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Everything an encoder reading from memory gives.
fn encoded(mut encoder: impl std::io::Read) -> Vec<u8> {
    let mut out = Vec::new();
    encoder.read_to_end(&mut out).unwrap();
    out
}

fn compressed(body: Vec<u8>, encoding: &str) -> Response<Body> {
    let r = with_header(full(StatusCode::OK, body), "content-encoding", encoding);
    with_header(r, "content-type", "text/plain; charset=utf-8")
}

async fn echo(req: Request<Incoming>) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        headers.insert(
            name.as_str().to_string(),
            serde_json::Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        );
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = serde_json::json!({
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    with_header(
        full(StatusCode::OK, json.to_string()),
        "content-type",
        "application/json",
    )
}

/// A resource's ETag: its version and length, as nginx derives one from
/// mtime and size.
fn etag(resource: &Resource) -> String {
    format!("\"v{}-{:x}\"", resource.version, resource.data.len())
}

fn serve_file(
    req: &Request<Incoming>,
    resource: Resource,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
) -> Response<Body> {
    let len = resource.data.len() as u64;
    let tag = etag(&resource);
    let if_range_ok = req
        .headers()
        .get(header::IF_RANGE)
        .is_none_or(|v| v.as_bytes() == tag.as_bytes());
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|_| !resource.ignore_range && if_range_ok);
    let (status, start) = match range {
        Some(start) if start >= len => {
            let mut r = full(StatusCode::RANGE_NOT_SATISFIABLE, "");
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).unwrap(),
            );
            return r;
        }
        Some(start) => (StatusCode::PARTIAL_CONTENT, start),
        None => (StatusCode::OK, 0),
    };
    let body_len = len - start;
    let send_until = resource
        .cut_after
        .or(resource.stall_after)
        .map_or(len, |n| (start + n).min(len));
    let data = resource.data.slice(start as usize..send_until as usize);
    let pieces: Vec<Bytes> = (0..data.len())
        .step_by(256 * 1024)
        .map(|i| data.slice(i..(i + 256 * 1024).min(data.len())))
        .collect();
    let counter = state.clone();
    let sent = stream::iter(pieces).map(move |piece| {
        counter
            .file_bytes_sent
            .fetch_add(piece.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(Frame::data(piece))
    });
    let cut = resource.cut_after.is_some();
    let stall = resource.stall_after.is_some();
    let tail = stream::once(async move {
        if stall {
            let mut stop = stop;
            let _ = stop.wait_for(|s| *s).await;
        }
        if cut || stall {
            Err(std::io::Error::other("cut off by the test server"))
        } else {
            Ok(Frame::data(Bytes::new()))
        }
    });
    let mut response = streamed(sent.chain(tail));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if !resource.unsized_body {
        headers.insert(header::CONTENT_LENGTH, body_len.into());
    }
    headers.insert(header::ETAG, HeaderValue::from_str(&tag).unwrap());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{}/{len}", len - 1)).unwrap(),
        );
    }
    if let Some(cd) = &resource.disposition {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(cd).unwrap(),
        );
    }
    response
}
