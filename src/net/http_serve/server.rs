//! The server: a tokio runtime of its own, its accept loop, and each
//! connection served by hyper in HTTP/1.1 (with keep-alive) or HTTP/2 on
//! the same port — h2c when a client opens with HTTP/2's preface (`curl
//! --http2-prior-knowledge`), or over TLS when ALPN picks `h2`.
//!
//! Handlers run where their request is: on the runtime's worker, called
//! inline from the connection's task, so a handler that only computes
//! costs one function call and no thread hand-off. The workers are marked
//! ([`runtime::set_block_in_place_thread`]) so that a handler that waits
//! (`fetch`, `sleep`, `connect`…) first hands the worker's other tasks to
//! another thread (`tokio::task::block_in_place`): a slow handler holds
//! up its own request only, never the server.
//!
//! The bad input a client can send is hyper's to refuse, with the limits
//! set here: a malformed request line is a 400, a head over
//! [`MAX_HEAD`] a 431, a head not complete within [`HEADER_TIMEOUT`]
//! (a slowloris client trickling headers) closes the connection, and a
//! body over `max_body` is a 413 before the handler runs.
//!
//! No connection waits on its client forever. The header timeout also
//! bounds the wait for a connection's first byte (before the protocol is
//! known: [`sniff`]), the idle time of an HTTP/1.1 keep-alive connection
//! (hyper's header timer) and of an HTTP/2 connection with no open
//! stream ([`streams`](super::streams); a GOAWAY, then the socket closed),
//! and the pause between two pieces of a request body
//! ([`intake`](super::intake)); HTTP/2 pings a connection as often, and
//! closes it when a ping goes unanswered as long. A handler is stopped
//! when its client leaves or it passes `handler_timeout`
//! ([`running`](super::running)), and all bodies held at once share
//! `max_body_total`.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rhai::{Dynamic, Map};
use tokio::{net::TcpStream, sync::watch};

use super::{
    answer::{Answer, answer},
    body::Body,
    guard::Guard,
    intake::Budget,
    log::Log,
    request::{Peer, RequestCtx},
    routes::Routes,
    running::{self, Running},
    sendfile,
    streams::{Counted, Streams},
};
use crate::error::{Error, Result};
use crate::net::tcp::{Bind, ListenSocket};
use crate::net::tls::ServerTls;
use crate::runtime::{
    self,
    jobs::{self, Job},
};

/// The most a request's head (request line and headers) may take.
pub const MAX_HEAD: usize = 64 * 1024;
/// How long a client has to send a whole request head unless
/// `header_timeout` says: hyper's own default. It is also how long a
/// keep-alive connection may sit idle, since hyper starts the clock when
/// it starts waiting for the next head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS client has to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body read for a handler unless `max_body` says.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;
/// How long a handler may run unless `handler_timeout` says.
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server was asked to do, and what it has counted.
pub struct Shared {
    /// The options map as given, for the parts that read their own keys.
    pub options: Map,
    pub routes: Routes,
    /// `auth` and `cors`, checked before routing.
    pub guard: Guard,
    pub log: Log,
    pub max_body: usize,
    /// The longest pause between two pieces of a request body
    /// (`header_timeout`).
    pub idle: Duration,
    /// The bytes all request bodies held at once may take.
    pub budget: Arc<Budget>,
    /// The handlers running now, watched.
    pub running: Arc<Running>,
    pub stats: Stats,
}

/// The counters behind `.stats()`.
#[derive(Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub active: AtomicU64,
    pub requests: AtomicU64,
    /// Answers with a 5xx status.
    pub errors: AtomicU64,
    /// Bytes of files read ahead into the page cache for sendfile.
    pub warmed: Arc<AtomicU64>,
}

/// How the server was asked to run (its options).
pub struct Settings {
    pub options: Map,
    pub routes: Routes,
    pub guard: Guard,
    pub header_timeout: Duration,
    pub log: Log,
    pub max_body: usize,
    pub max_body_total: usize,
    pub handler_timeout: Option<Duration>,
    pub workers: Option<usize>,
    pub max_connections: Option<usize>,
    pub tls: Option<Arc<ServerTls>>,
}

/// A running `http_serve`, as `jobs()` lists it.
#[derive(Clone)]
pub struct HttpServer(Arc<State>);

pub struct State {
    id: u64,
    addr: SocketAddr,
    life: runtime::jobs::Lifecycle,
    /// Flips to `true` when the accept loop has ended and the port is free.
    /// The server's runtime, shut down when it stops.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    shared: Arc<Shared>,
    tls: Option<Arc<ServerTls>>,
}

impl HttpServer {
    /// Binds `bind` and starts serving.
    pub fn start(bind: SocketAddr, settings: Settings) -> Result<HttpServer> {
        crate::net::serve::raise_open_file_limit();
        let workers = settings.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        });
        let token = runtime::child_token();
        let thread_token = token.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("netsh-http")
            .thread_stack_size(runtime::RHAI_THREAD_STACK)
            .on_thread_start(move || {
                runtime::adopt(thread_token.clone());
                runtime::set_block_in_place_thread();
            })
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the HTTP server's threads", None, e))?;
        let listener = {
            let _entered = rt.enter();
            ListenSocket::bind(&Bind::Ip(bind))?.0
        };
        let ListenSocket::Tcp(listener) = listener else {
            return Err(Error::invalid("http_serve listens on TCP"));
        };
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", None, e))?;
        let shared = Arc::new(Shared {
            options: settings.options,
            routes: settings.routes,
            guard: settings.guard,
            log: settings.log,
            max_body: settings.max_body,
            idle: settings.header_timeout,
            budget: Budget::new(settings.max_body_total),
            running: Running::new(settings.handler_timeout, token.clone()),
            stats: Stats::default(),
        });
        shared.running.watch(rt.handle().clone());
        let acceptor = settings.tls.as_ref().map(|tls| {
            let mut config = (*tls.config()).clone();
            if config.alpn_protocols.is_empty() {
                config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            }
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let state = Arc::new(State {
            id: jobs::next_id(),
            addr,
            life: runtime::jobs::Lifecycle::new(token),
            runtime: Mutex::new(None),
            shared,
            tls: settings.tls.clone(),
        });
        let limit = settings
            .max_connections
            .map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
        let builder = Builders::new(settings.header_timeout);
        // The permissions of the script that starts the server (a plugin's
        // own, inside a plugin), for what a request's answer reads.
        let permit = crate::permit::Context::current();
        rt.spawn(accept_loop(
            state.clone(),
            listener,
            builder,
            acceptor,
            limit,
            permit,
        ));
        if let Ok(mut slot) = state.runtime.lock() {
            *slot = Some(rt);
        }
        if let Some(tls) = &state.tls
            && !matches!(state.shared.log, Log::Quiet)
        {
            tls.tell_self_signed("http_serve", &state.addr);
        }
        let server = HttpServer(state);
        jobs::add(Arc::new(server.clone()));
        Ok(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    pub fn tls(&self) -> Option<&Arc<ServerTls>> {
        self.0.tls.as_ref()
    }

    pub fn is_stopped(&self) -> bool {
        self.0.life.is_stopped()
    }

    /// `#{connections, active, requests, errors, warmed}`.
    pub fn stats(&self) -> Map {
        let s = &self.0.shared.stats;
        let mut map = Map::new();
        for (key, n) in [
            ("connections", &s.connections),
            ("active", &s.active),
            ("requests", &s.requests),
            ("errors", &s.errors),
            ("warmed", &*s.warmed),
        ] {
            map.insert(
                key.into(),
                Dynamic::from_int(n.load(Ordering::Relaxed) as i64),
            );
        }
        map
    }

    /// Stops accepting, ends every connection and interrupts running
    /// handlers; waits (up to 2 s) until the port is free.
    pub fn stop(&self) {
        self.0.life.stop();
        // A runtime cannot be shut down from one of its own workers (a
        // handler stopping its server): a thread of its own does it.
        if let Some(rt) = self.0.runtime.lock().ok().and_then(|mut rt| rt.take()) {
            let _ = std::thread::Builder::new()
                .name("netsh-http-end".into())
                .spawn(move || rt.shutdown_timeout(Duration::from_secs(2)));
        }
    }

    /// Blocks until the server stops, or Ctrl-C.
    pub fn wait(&self) -> Result<()> {
        self.0.life.wait()
    }
}

impl Job for HttpServer {
    fn stop(&self) {
        HttpServer::stop(self);
    }

    fn ended(&self) -> watch::Receiver<bool> {
        self.0.life.ended()
    }

    fn handle(&self) -> Dynamic {
        Dynamic::from(self.clone())
    }
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_stopped() {
            "stopped"
        } else {
            "running"
        };
        let s = &self.0.shared.stats;
        let scheme = if self.0.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        write!(
            f,
            "HttpServer #{} ({scheme}://{}, {state}, {}, {})",
            self.0.id,
            self.0.addr,
            plural(s.requests.load(Ordering::Relaxed), "request"),
            plural(s.connections.load(Ordering::Relaxed), "connection"),
        )
    }
}

/// A connection counted as active until dropped.
struct Active {
    shared: Arc<Shared>,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.shared.stats.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts until stopped; a task per connection.
async fn accept_loop(
    state: Arc<State>,
    listener: tokio::net::TcpListener,
    builder: Builders,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limit: Option<Arc<tokio::sync::Semaphore>>,
    permit: crate::permit::Context,
) {
    let builder = Arc::new(builder);
    loop {
        let slot = match &limit {
            Some(limit) => tokio::select! {
                biased;
                _ = state.life.token().cancelled() => break,
                slot = limit.clone().acquire_owned() => slot.ok(),
            },
            None => None,
        };
        let accepted = tokio::select! {
            biased;
            _ = state.life.token().cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, addr)) => {
                // On a dual-stack socket an IPv4 client is ::ffff:a.b.c.d:
                // say it as people write it.
                let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                let stats = &state.shared.stats;
                stats.connections.fetch_add(1, Ordering::Relaxed);
                stats.active.fetch_add(1, Ordering::Relaxed);
                let active = Active {
                    shared: state.shared.clone(),
                    _slot: slot,
                };
                let ctx = RequestCtx {
                    peer: Peer {
                        addr,
                        tls: tls.is_some(),
                    },
                    server: state.shared.clone(),
                    permit: permit.clone(),
                    conn: running::Conn::new(std::os::fd::AsRawFd::as_raw_fd(&stream)),
                    sendfile: None,
                };
                let _ = stream.set_nodelay(true);
                // Two tasks of their own size: the plain one does not carry
                // a TLS session's room while it idles.
                match &tls {
                    None => {
                        tokio::spawn(plain(stream, ctx, builder.clone(), active));
                    }
                    Some(acceptor) => {
                        tokio::spawn(secure(
                            stream,
                            ctx,
                            builder.clone(),
                            acceptor.clone(),
                            active,
                        ));
                    }
                }
            }
            Err(e) => {
                crate::console::alert(&format!("http_serve: {}", Error::io("accepting", None, e)));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    state.life.finish();
}

/// hyper's HTTP/1.1 and HTTP/2 builders with netsh's limits.
///
/// Not hyper-util's "auto" builder, which serves both from one task: that
/// task has room for an HTTP/2 connection, which an idle HTTP/1.1
/// keep-alive connection then carries for nothing (10,000 idle ones
/// measured 19.1 KiB each with it). A connection's first bytes say which
/// it is ([`sniff`]), and the task made for it has only its protocol's
/// state.
pub struct Builders {
    h1: hyper::server::conn::http1::Builder,
    /// HTTP/1.1 on a plain socket, where files go by sendfile: hyper must
    /// hand body buffers to the IO as they are, never copied
    /// (`writev(true)`: its `Queue` strategy; see `sendfile`).
    h1_plain: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
    header_timeout: Duration,
}

impl Builders {
    fn new(header_timeout: Duration) -> Builders {
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_HEAD)
            .keep_alive(true);
        let mut h1_plain = h1.clone();
        h1_plain.writev(true).pipeline_flush(false);
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        // A ping when the connection has been quiet for the header
        // timeout, and the connection closed if the answer takes as long:
        // a peer that vanished mid-stream is noticed.
        h2.timer(TokioTimer::new())
            .max_header_list_size(MAX_HEAD as u32)
            .max_concurrent_streams(256)
            .keep_alive_interval(header_timeout)
            .keep_alive_timeout(header_timeout);
        Builders {
            h1,
            h1_plain,
            h2,
            header_timeout,
        }
    }
}

/// HTTP/2's connection preface, which an h2c client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plain connection speaks HTTP/2 (`Some(true)`), read off its
/// first bytes without taking them; `None` when it closes or sends
/// nothing within the header timeout.
async fn sniff(stream: &TcpStream, limit: Duration) -> Option<bool> {
    let mut buf = [0u8; 24];
    let look = async {
        loop {
            let n = stream.peek(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            if buf[..n] != H2_PREFACE[..n] {
                return Some(false);
            }
            if n == H2_PREFACE.len() {
                return Some(true);
            }
            // A preface cut short: the rest is on its way.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(limit, look).await.ok().flatten()
}

/// What answers each request of a connection: [`answer`], which answers
/// in the call when nothing is to be awaited.
fn service(
    ctx: RequestCtx,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = Answer,
> + Clone
+ Send {
    // Shared by the connection's requests: one count to take per boxed
    // answer.
    let ctx = Arc::new(ctx);
    hyper::service::service_fn(move |req| answer(req, &ctx))
}

/// One plain connection: HTTP/1.1 or h2c, as its first bytes say.
async fn plain(stream: TcpStream, ctx: RequestCtx, builders: Arc<Builders>, active: Active) {
    match sniff(&stream, builders.header_timeout).await {
        Some(true) => {
            tokio::spawn(http2(TokioIo::new(stream), ctx, builders, active));
        }
        Some(false) => match sendfile::Slot::new(ctx.server.stats.warmed.clone()) {
            Some(slot) => {
                let io = TokioIo::new(sendfile::Io::new(stream, slot.clone()));
                let ctx = RequestCtx {
                    sendfile: Some(slot),
                    ..ctx
                };
                tokio::spawn(http1(io, ctx, builders, active));
            }
            None => {
                tokio::spawn(http1(TokioIo::new(stream), ctx, builders, active));
            }
        },
        None => {}
    }
}

/// One TLS connection: the handshake, then the protocol ALPN chose.
async fn secure(
    stream: TcpStream,
    ctx: RequestCtx,
    builders: Arc<Builders>,
    acceptor: tokio_rustls::TlsAcceptor,
    active: Active,
) {
    let Ok(Ok(stream)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
    else {
        return;
    };
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        tokio::spawn(http2(TokioIo::new(stream), ctx, builders, active));
    } else {
        tokio::spawn(http1(TokioIo::new(stream), ctx, builders, active));
    }
}

/// An HTTP/1.1 connection until it closes (upgrades allowed, for
/// WebSocket). A client that resets or times out is no error of the
/// server's. A plain connection's IO sends files (`ctx.sendfile`).
async fn http1<I>(io: TokioIo<I>, ctx: RequestCtx, builders: Arc<Builders>, active: Active)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let builder = if ctx.sendfile.is_some() {
        &builders.h1_plain
    } else {
        &builders.h1
    };
    let _ = builder
        .serve_connection(io, service(ctx))
        .with_upgrades()
        .await;
    drop(active);
}

/// An HTTP/2 connection until it closes; each stream is a task of its own.
async fn http2<I>(io: TokioIo<I>, ctx: RequestCtx, builders: Arc<Builders>, active: Active)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let streams = Streams::new();
    let conn = builders
        .h2
        .serve_connection(io, counted(ctx.clone(), streams.clone()));
    tokio::pin!(conn);
    // Dropped before `conn` (and its socket): see `running::Conn`.
    let _closing = running::Closing(ctx.conn.clone());
    let limit = builders.header_timeout;
    tokio::select! {
        _ = conn.as_mut() => {}
        () = streams.idle_for(limit) => {
            // No stream for the header timeout: GOAWAY, then a last
            // while for the client to see it (a stream it opened just
            // now still ends), then the socket closes.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limit, conn.as_mut()).await;
        }
    }
    drop(active);
}

/// [`service`] for an HTTP/2 connection: each stream counted open until
/// its response body is done.
fn counted(
    ctx: RequestCtx,
    streams: Arc<Streams>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = std::result::Result<Response<Body>, Infallible>> + Send,
> + Clone
+ Send {
    let ctx = Arc::new(ctx);
    hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        let open = streams.open();
        async move {
            let response = answer(req, &ctx).await?;
            Ok::<_, Infallible>(response.map(|body| Counted::wrap(body, open)))
        }
    })
}
