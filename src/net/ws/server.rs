//! The server side: a route `#{"/ws": #{websocket: |ws| …}}` (or the event
//! shape `#{on_message: |ws, m| …, on_open, on_close}`) in `http_serve`.
//!
//! `http_serve` finds the route and hands the request here
//! ([`ServerRoute::accept`]). The request is checked as RFC 6455 §4.2.1
//! asks (GET over HTTP/1.1, `Upgrade: websocket`, `Connection: upgrade`,
//! version 13, a key of 16 bytes); a request that is not an upgrade gets
//! 426 (or 400 for a broken one) and the script never sees it. Otherwise
//! the answer is the 101 with `Sec-WebSocket-Accept` and the subprotocol
//! chosen, and a task on the server's runtime takes the upgraded
//! connection once hyper has sent that answer.
//!
//! Two shapes, as `serve` has:
//! - `websocket: |ws| …` runs on a thread of its own for the connection's
//!   whole life (Rhai cannot pause a closure part-way), under a child of
//!   the server's token, so `stop()` interrupts its `recv`. Blocking
//!   calls are fine there. When the closure returns the WebSocket is closed
//!   with 1000, or 1011 when it threw.
//!   On plain TCP the connection leaves the server's runtime for one of
//!   its own that the thread drives while it waits (`Taken::Plain`), so
//!   a message wakes that thread alone.
//! - `on_open`/`on_message`/`on_close` are called on the server's worker
//!   threads by the connection's one task (`events`), in order, right
//!   where each message was read; their sends are queued and written when
//!   they return, so a handler that only computes and sends never waits.
//!   Thousands of connections then cost tasks, not threads.

use std::sync::Arc;

use hyper::{Request, Response, StatusCode, Version, body::Incoming, header};
use hyper_util::rt::TokioIo;
use rhai::{Dynamic, FnPtr, Map, NativeCallContext};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};

use super::events::Events;
use super::socket::{About, Arrival, DEFAULT_CLOSE_WAIT, Io, WebSocket};
use crate::error::{Error, Kind, Result, describe, kind_of};
use crate::net::http_serve::{
    RequestCtx,
    body::{self, Body},
    sendfile,
};
use crate::net::options::Options;
use crate::runtime::{self, CancellationToken, closure::Callback};

/// The keys of a WebSocket route's map.
pub const ROUTE_KEYS: &[&str] = &[
    "websocket",
    "on_open",
    "on_message",
    "on_close",
    "protocols",
    "max_message",
];

/// Whether a route's map asks for a WebSocket (rather than something a
/// later kind of route will take).
pub fn is_websocket_route(map: &Map) -> bool {
    ["websocket", "on_open", "on_message", "on_close"]
        .iter()
        .any(|k| map.contains_key(*k))
}

/// What runs a connection.
enum Shape {
    Closure(Callback),
    Events {
        on_open: Option<Callback>,
        on_message: Option<Callback>,
        on_close: Option<Callback>,
    },
}

/// A WebSocket route of `http_serve`.
pub struct ServerRoute {
    /// The route's key, for messages.
    key: String,
    shape: Shape,
    /// The subprotocols this route speaks, in its order of preference.
    protocols: Vec<String>,
    config: WebSocketConfig,
}

impl ServerRoute {
    /// The route value `#{websocket: |ws| …}` or `#{on_message: …}` of the
    /// route `key`, checked.
    pub fn from_map(ctx: &NativeCallContext, key: &str, map: &Map) -> Result<ServerRoute> {
        let o = Options::nested(map, "websocket route option", ROUTE_KEYS)
            .map_err(|e| Error::invalid(format!("route \"{key}\": {e}")))?;
        let take = |name: &str, params: &[&str]| -> Result<Option<Callback>> {
            match o.value(name) {
                None => Ok(None),
                Some(value) => match value.clone().try_cast::<FnPtr>() {
                    Some(f) => {
                        let role = format!("{name} of route \"{key}\"");
                        Callback::new(ctx, f, &role, params).map(Some)
                    }
                    None => Err(Error::invalid(format!(
                        "route \"{key}\": {name} must be a closure like |{}| {{ … }}, not {}",
                        params.join(", "),
                        value.type_name()
                    ))),
                },
            }
        };
        let closure = take("websocket", &["ws"])?;
        let on_open = take("on_open", &["ws"])?;
        let on_message = take("on_message", &["ws", "message"])?;
        let on_close = take("on_close", &["ws"])?;
        let events = on_open.is_some() || on_message.is_some() || on_close.is_some();
        let shape = match (closure, events) {
            (Some(_), true) => {
                return Err(Error::invalid(format!(
                    "route \"{key}\": give websocket: |ws| … (a thread per connection) or the event handlers on_open/on_message/on_close, not both"
                )));
            }
            (Some(f), false) => Shape::Closure(f),
            (None, true) => Shape::Events {
                on_open,
                on_message,
                on_close,
            },
            (None, false) => {
                return Err(Error::invalid(format!(
                    "route \"{key}\": a WebSocket route needs websocket: |ws| … or on_message: |ws, m| …"
                )));
            }
        };
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
                if !super::client::is_token(&name) {
                    return Err(Error::invalid(format!(
                        "route \"{key}\": '{}' is not a subprotocol name",
                        crate::error::printable(&name)
                    )));
                }
                protocols.push(name);
            }
        }
        let max = o
            .count_in("max_message", 1, 1 << 30)?
            .map_or(super::client::DEFAULT_MAX_MESSAGE, |n| n as usize);
        Ok(ServerRoute {
            key: key.to_string(),
            shape,
            protocols,
            config: super::socket::config(max),
        })
    }

    /// Answers an upgrade request: the 101, and the connection taken over
    /// once it is sent; or why not.
    pub fn accept(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        ctx: &RequestCtx,
    ) -> Response<Body> {
        let (accept_key, protocol) = match self.check(&req) {
            Ok(answer) => answer,
            Err(refusal) => return refusal,
        };
        let upgrade = hyper::upgrade::on(&mut req);
        let about = About {
            url: req.uri().path().to_string(),
            peer: ctx.peer.addr.to_string(),
            protocol: protocol.clone(),
        };
        // This runs on a worker of the server's runtime, which adopted the
        // server's token: stop() reaches the connection through it.
        let token = runtime::cancel_token().child_token();
        let route = self.clone();
        let tasks = tokio::runtime::Handle::current();
        tasks.clone().spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let upgraded = match &route.shape {
                Shape::Closure(handler) => match plain_tcp(upgraded) {
                    Ok((tcp, read)) => {
                        // Off this runtime, onto the closure thread's own.
                        let Ok(tcp) = tcp.into_std() else {
                            return;
                        };
                        let taken = Taken::Plain(tcp, read);
                        route.thread(handler.clone(), taken, about, token);
                        return;
                    }
                    Err(upgraded) => upgraded,
                },
                Shape::Events { .. } => upgraded,
            };
            let io: Box<dyn Io> = Box::new(TokioIo::new(upgraded));
            let stream =
                WebSocketStream::from_raw_socket(io, Role::Server, Some(route.config)).await;
            match &route.shape {
                Shape::Closure(handler) => {
                    let ws = WebSocket::start_on(tasks, stream, about.clone());
                    route.thread(handler.clone(), Taken::Started(ws), about, token);
                }
                Shape::Events { .. } => {
                    let events: Arc<dyn Events> = route.clone();
                    WebSocket::start_events(tasks, stream, about, events, token);
                }
            }
        });
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(
            header::UPGRADE,
            header::HeaderValue::from_static("websocket"),
        );
        headers.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("Upgrade"),
        );
        if let Ok(value) = header::HeaderValue::from_str(&accept_key) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        if let Some(value) = protocol.and_then(|p| header::HeaderValue::from_str(&p).ok()) {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        response
    }

    /// RFC 6455 §4.2.1's checks: the accept key and the subprotocol chosen,
    /// or the answer refusing the request.
    #[allow(clippy::result_large_err)]
    fn check(
        &self,
        req: &Request<Incoming>,
    ) -> std::result::Result<(String, Option<String>), Response<Body>> {
        let headers = req.headers();
        let has_token = |name: header::HeaderName, token: &str| {
            headers.get_all(name).iter().any(|v| {
                v.to_str().is_ok_and(|v| {
                    v.split(',')
                        .any(|part| part.trim().eq_ignore_ascii_case(token))
                })
            })
        };
        if !has_token(header::UPGRADE, "websocket") {
            let mut refusal = refuse(
                StatusCode::UPGRADE_REQUIRED,
                "this is a WebSocket endpoint: connect with a WebSocket client (ws://)",
            );
            refusal.headers_mut().insert(
                header::UPGRADE,
                header::HeaderValue::from_static("websocket"),
            );
            return Err(refusal);
        }
        if req.version() != Version::HTTP_11 {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "a WebSocket opens over HTTP/1.1",
            ));
        }
        if req.method() != hyper::Method::GET {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "a WebSocket opens with GET",
            ));
        }
        if !has_token(header::CONNECTION, "upgrade") {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "the upgrade request lacks Connection: Upgrade",
            ));
        }
        let version = headers.get(header::SEC_WEBSOCKET_VERSION);
        if version.is_none_or(|v| v.as_bytes() != b"13") {
            let mut refusal = refuse(
                StatusCode::UPGRADE_REQUIRED,
                "this server speaks WebSocket version 13",
            );
            refusal.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                header::HeaderValue::from_static("13"),
            );
            return Err(refusal);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .map(|k| k.as_bytes())
            .filter(|k| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(k)
                    .is_ok_and(|raw| raw.len() == 16)
            })
            .ok_or_else(|| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "the upgrade request lacks a valid Sec-WebSocket-Key",
                )
            })?;
        let offered: Vec<&str> = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let chosen = self
            .protocols
            .iter()
            .find(|ours| offered.contains(&ours.as_str()))
            .cloned();
        Ok((derive_accept_key(key), chosen))
    }

    /// Calls an event handler on this worker; when it throws, says so.
    /// Whether the connection goes on (if not, `events::run` closes it
    /// with 1011).
    fn call(&self, f: &Callback, args: Vec<Dynamic>, ws: &WebSocket) -> bool {
        match f.call(args) {
            Ok(_) => true,
            Err(err) => {
                self.alert(ws, &describe(&err, f.source()));
                false
            }
        }
    }

    /// The closure shape: a thread for the connection's whole life.
    fn thread(&self, handler: Callback, taken: Taken, about: About, token: CancellationToken) {
        let name = format!("netsh-ws-{}", about.peer);
        let key = self.key.clone();
        let config = self.config;
        let thread_token = token.clone();
        let peer = about.peer.clone();
        let failed_peer = peer.clone();
        let started = runtime::spawn_rhai_thread(name, token, move || {
            let thread_ws = match taken.start(config, about) {
                Ok(ws) => ws,
                Err(e) => {
                    crate::console::alert(&format!("http_serve: websocket {key} {peer}: {e}"));
                    return;
                }
            };
            let result = handler.call1(Dynamic::from(thread_ws.clone()));
            let (code, reason) = match result {
                Err(err) if thread_token.is_cancelled() && stopped_by_it(&err) => {
                    (1001, "the server is stopping")
                }
                Err(err) => {
                    crate::console::alert(&format!(
                        "http_serve: websocket {key} {}: {}",
                        thread_ws.about().peer,
                        describe(&err, handler.source())
                    ));
                    (1011, "the handler failed")
                }
                Ok(_) => (1000, ""),
            };
            if thread_ws.is_ended() {
                thread_ws.settle();
            } else {
                // Under a cancelled token block_on refuses at once: the
                // connection then just goes with the handle.
                let _ = thread_ws.close(code, reason, DEFAULT_CLOSE_WAIT);
            }
        });
        if let Err(e) = started {
            crate::console::alert(&format!(
                "http_serve: websocket {} {}: {e}",
                self.key, failed_peer
            ));
        }
    }

    fn alert(&self, ws: &WebSocket, why: &str) {
        crate::console::alert(&format!(
            "http_serve: websocket {} {}: {why}",
            self.key,
            ws.about().peer
        ));
    }
}

/// The event shape: the route's handlers, called by `events::run` on the
/// server's workers.
impl Events for ServerRoute {
    fn open(&self, ws: &WebSocket) -> bool {
        match &self.shape {
            Shape::Events {
                on_open: Some(f), ..
            } => self.call(f, vec![Dynamic::from(ws.clone())], ws),
            _ => true,
        }
    }

    fn message(&self, ws: &WebSocket, message: Arrival) -> bool {
        match &self.shape {
            Shape::Events {
                on_message: Some(f),
                ..
            } => {
                let value = super::arrival_value(Some(message));
                self.call(f, vec![Dynamic::from(ws.clone()), value], ws)
            }
            _ => true,
        }
    }

    fn close(&self, ws: &WebSocket) {
        if let Shape::Events {
            on_close: Some(f), ..
        } = &self.shape
        {
            self.call(f, vec![Dynamic::from(ws.clone())], ws);
        }
    }
}

/// The plain TCP connection under an upgrade, with the bytes hyper read
/// past the request; the upgrade back when it is not plain TCP (TLS).
/// hyper holds whatever IO `http_serve` gave it: the sendfile-capable
/// [`sendfile::Io`] on a plain HTTP/1.1 connection, a bare `TcpStream`
/// when that could not be set up. Missing one here is silent: the
/// connection then stays on the server's runtime, whose worker reads each
/// message and wakes the closure's thread (`tests/netsh/websocket_server.rs`
/// counts the workers' wake-ups to catch it).
fn plain_tcp(
    upgraded: hyper::upgrade::Upgraded,
) -> std::result::Result<(TcpStream, Vec<u8>), hyper::upgrade::Upgraded> {
    let upgraded = match upgraded.downcast::<TokioIo<sendfile::Io>>() {
        Ok(parts) => return Ok((parts.io.into_inner().into_stream(), parts.read_buf.to_vec())),
        Err(upgraded) => upgraded,
    };
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => Ok((parts.io.into_inner(), parts.read_buf.to_vec())),
        Err(upgraded) => Err(upgraded),
    }
}

/// A connection the closure's thread takes over.
enum Taken {
    /// Plain TCP, taken off the server's runtime (with what hyper read
    /// past the request): the thread puts it on a runtime of its own.
    Plain(std::net::TcpStream, Vec<u8>),
    /// Anything else (TLS), started on the server's runtime.
    Started(WebSocket),
}

impl Taken {
    /// The handle, on the thread that will wait on it.
    fn start(self, config: WebSocketConfig, about: About) -> Result<WebSocket> {
        match self {
            Taken::Started(ws) => Ok(ws),
            Taken::Plain(tcp, read) => {
                let own = runtime::Own::new()?;
                let stream = own.wait(async move {
                    let tcp = tokio::net::TcpStream::from_std(tcp)
                        .map_err(|e| Error::io("taking over the connection", None, e))?;
                    let io: Box<dyn Io> = Box::new(tcp);
                    Ok(
                        WebSocketStream::from_partially_read(io, read, Role::Server, Some(config))
                            .await,
                    )
                })?;
                WebSocket::start_own(own, stream, about)
            }
        }
    }
}

/// Did this error come from the server being stopped?
fn stopped_by_it(err: &rhai::EvalAltResult) -> bool {
    matches!(kind_of(err), Kind::Interrupted | Kind::Closed)
}

/// A refusal with its reason as text.
fn refuse(status: StatusCode, why: &str) -> Response<Body> {
    let mut response = Response::new(body::full(format!("{why}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
