//! One request's answer: the guard, the route, the body, the handler, its
//! reply, the count and the log line.
//!
//! Made in hyper's call of the service, at once, whenever nothing has to
//! be awaited: a handler's request without a body (nearly every GET), a
//! guard's refusal, a 404, a WebSocket's 101. Only a request body to read
//! or a folder's file to send makes a future, boxed ([`Answer::Later`]).
//! hyper keeps a connection's service future for the connection's whole
//! life, and an `async fn` chain holding the request at every level was
//! 2.4 KB, so each request paid a large allocation, copies of it, and the
//! free: a fifth of what netsh added to a JSON handler's request, counted
//! in instructions.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use hyper::{Request, Response, StatusCode, body::Incoming, header, http::request::Parts};
use rhai::{Dynamic, Map};

use super::{
    body::{self, Body},
    intake,
    log::{Entry, Log},
    reply,
    request::{Request as Req, RequestCtx},
    routes::{Lookup, Target},
    running::Stopped,
    server::Stats,
};
use crate::runtime::closure::Callback;

/// The rest of a request's answer, boxed.
type Rest = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// A request's answer as hyper awaits it.
pub enum Answer {
    /// Answered in the call.
    Ready(Response<Body>),
    /// A body to read or a file to send first.
    Later(Rest),
}

impl Future for Answer {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            // hyper polls a ready future once; should it ask again, it
            // gets an empty answer rather than a panic.
            Answer::Ready(response) => Poll::Ready(Ok(std::mem::replace(
                response,
                Response::new(body::empty()),
            ))),
            Answer::Later(rest) => rest.as_mut().poll(cx).map(Ok),
        }
    }
}

/// What a log line needs of a request, noted before the request is used.
struct Noted {
    started: Instant,
    method: hyper::Method,
    target: String,
    version: hyper::Version,
}

impl Noted {
    fn of(req: &Request<Incoming>) -> Noted {
        Noted {
            started: Instant::now(),
            method: req.method().clone(),
            target: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string()),
            version: req.version(),
        }
    }
}

/// The answer to one request, counted and logged (the log line only
/// when the server logs).
pub fn answer(req: Request<Incoming>, ctx: &Arc<RequestCtx>) -> Answer {
    let noted = (!matches!(ctx.server.log, Log::Quiet)).then(|| Noted::of(&req));
    let guard = &ctx.server.guard;
    // The guard's own answer (401, a preflight, 421) is final; a routed
    // one gets the guard's headers (CORS).
    let (step, routed) = match (!guard.is_open()).then(|| guard.check(&req)).flatten() {
        Some(refused) => (Step::Done(refused), false),
        None => (route(req, ctx), true),
    };
    match step {
        Step::Done(mut response) => {
            done(ctx, routed, noted.as_ref(), &mut response);
            Answer::Ready(response)
        }
        Step::Wait(rest) => {
            let ctx = ctx.clone();
            Answer::Later(Box::pin(async move {
                let mut response = rest.await;
                done(&ctx, routed, noted.as_ref(), &mut response);
                response
            }))
        }
    }
}

/// A response made or to come.
enum Step {
    Done(Response<Body>),
    Wait(Rest),
}

/// What every answer gets at the end: the guard's headers on a routed
/// one, the count, the log line.
fn done(ctx: &RequestCtx, routed: bool, noted: Option<&Noted>, response: &mut Response<Body>) {
    if routed {
        ctx.server.guard.finish(response);
    }
    count(&ctx.server.stats, response);
    if let Some(noted) = noted {
        let bytes = hyper::body::Body::size_hint(response.body()).exact();
        ctx.server.log.record(&Entry {
            peer: ctx.peer.addr,
            method: noted.method.as_str(),
            target: &noted.target,
            version: noted.version,
            status: response.status().as_u16(),
            bytes,
            took: noted.started.elapsed(),
        });
    }
}

fn count(stats: &Stats, response: &Response<Body>) {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    if response.status().is_server_error() {
        stats.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// A plain answer: the status and its reason as text.
pub fn status_page(status: StatusCode) -> Response<Body> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The request handed to the route its path and method find.
fn route(req: Request<Incoming>, ctx: &Arc<RequestCtx>) -> Step {
    let found = ctx
        .server
        .routes
        .find(req.method().as_str(), req.uri().path());
    let matched = match found {
        Lookup::Found(matched) => matched,
        Lookup::NotFound => return Step::Done(status_page(StatusCode::NOT_FOUND)),
        Lookup::WrongMethod(allowed) => {
            let mut response = status_page(StatusCode::METHOD_NOT_ALLOWED);
            if let Ok(value) = header::HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            return Step::Done(response);
        }
    };
    match &matched.route.target {
        Target::Closure(handler) => closure(req, matched.params, handler, ctx),
        Target::Folder(folder) => {
            let rest = matched.rest(req.uri().path());
            let mut req = req;
            if let Some(slot) = &ctx.sendfile {
                // Read by `files::get` for a file's body.
                req.extensions_mut().insert(slot.clone());
            }
            let folder = folder.clone();
            Step::Wait(Box::pin(async move { folder.respond(req, &rest).await }))
        }
        Target::WebSocket(route) => Step::Done(route.accept(req, ctx)),
    }
}

/// A handler's request: its body read first (boxed, awaited) if it has
/// one, else the handler called right away.
fn closure(req: Request<Incoming>, params: Map, handler: &Callback, ctx: &Arc<RequestCtx>) -> Step {
    let (parts, body) = req.into_parts();
    if hyper::body::Body::is_end_stream(&body) {
        return Step::Done(handle(parts, params, Bytes::new(), handler, ctx));
    }
    let (handler, ctx) = (handler.clone(), ctx.clone());
    Step::Wait(Box::pin(async move {
        let server = &ctx.server;
        match intake::collect(body, server.max_body, server.idle, &server.budget).await {
            // `_held`: the body's bytes stay counted until the handler
            // returns.
            Ok((bytes, _held)) => handle(parts, params, bytes, &handler, &ctx),
            Err(refused) => {
                let mut response = status_page(refused.status());
                if refused == intake::Refused::Busy {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                }
                response
            }
        }
    }))
}

/// Calls the handler on this worker, makes its reply.
fn handle(
    parts: Parts,
    params: Map,
    bytes: Bytes,
    handler: &Callback,
    ctx: &RequestCtx,
) -> Response<Body> {
    // What a `file:` reply would honour; most requests ask none of it,
    // and one look at the few headers they carry says so.
    let asks = parts.headers.keys().any(|name| {
        [
            &header::RANGE,
            &header::IF_RANGE,
            &header::IF_NONE_MATCH,
            &header::IF_MODIFIED_SINCE,
        ]
        .contains(&name)
    });
    let asked = asks.then(|| super::file::Asked::of(&parts.headers, ctx.sendfile.clone()));
    // Made only for a `file:` reply.
    let range = || {
        asked.unwrap_or_else(|| {
            super::file::Asked::of(&hyper::HeaderMap::new(), ctx.sendfile.clone())
        })
    };
    let (method, path) = (parts.method.clone(), parts.uri.clone());
    let request = Req::new(parts, params, bytes, ctx.peer.addr);
    let (called, stopped) = ctx
        .server
        .running
        .run(&ctx.conn, || handler.call1(Dynamic::from(request)));
    let outcome = match stopped {
        // The watchdog stopped it: say why, not "interrupted".
        Some(stopped) => Err((StatusCode::SERVICE_UNAVAILABLE, stopped_why(stopped))),
        None => called
            .map_err(|e| crate::error::message_of(&e))
            .and_then(|value| {
                ctx.permit
                    .enter(|| reply::response(value, range))
                    .map_err(|e| e.to_string())
            })
            .map_err(|why| (StatusCode::INTERNAL_SERVER_ERROR, why)),
    };
    match outcome {
        Ok(response) => response,
        Err((status, why)) => {
            crate::console::alert(&format!(
                "http_serve: {method} {}: {why}",
                crate::error::printable(path.path())
            ));
            status_page(status)
        }
    }
}

fn stopped_why(stopped: Stopped) -> String {
    match stopped {
        Stopped::ClientGone => "the client left before the handler returned; it was stopped".into(),
        Stopped::TimedOut(limit) => format!(
            "the handler ran past handler_timeout ({} ms) and was stopped",
            limit.as_millis()
        ),
    }
}
