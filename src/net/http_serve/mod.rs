//! `http_serve`: an HTTP server scripted with Rhai closures, in one line —
//! `http_serve(8000, |req| "hello")`, or a map of routes
//! `#{"GET /items/:id": |req| …, "POST /items": |req| …}`.
//!
//! The parts: [`routes`] (route keys, matching, params), [`request`] (the
//! `req` a handler gets, and [`RequestCtx`], what one request's answer
//! shares), [`reply`] (a handler's value made into a response; [`file`]
//! for a `file:` reply), [`body`] (the one body type), [`log`] (the access
//! log), [`server`] (the runtime, the accept loop, hyper, TLS, the job),
//! and the limits that keep a client or a handler from holding the server:
//! [`intake`] (a request body: size, pauses, a budget for all),
//! [`running`] (handlers stopped when their client leaves or they run too
//! long), [`streams`] (idle HTTP/2 connections closed).
//! Why handlers run inline on the server's workers, and how they may
//! still block, is in [`server`].

use std::net::SocketAddr;

use rhai::plugin::*;
use rhai::{FnPtr, Map};

use crate::error::{Error, Result};
use crate::net::{addr, options::Options};
use crate::runtime::closure::Callback;

pub mod answer;
pub mod body;
pub mod file;
pub mod files;
pub mod guard;
pub mod intake;
pub mod log;
pub mod reply;
pub mod request;
pub mod routes;
pub mod running;
pub mod sendfile;
pub mod server;
pub mod streams;

pub use request::{Peer, Request, RequestCtx};
pub use server::HttpServer;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<HttpServer>("HttpServer");
    module.set_custom_type::<Request>("Request");
}

/// Every option `http_serve` takes.
const OPTIONS: &[&str] = &[
    "quiet",
    "log",
    "tls",
    "workers",
    "max_connections",
    "max_body",
    "max_body_total",
    // Folder serving (files::Folder).
    "upload",
    "compress",
    "follow_links",
    "dotfiles",
    "rate_limit",
    "max_upload",
    // guard::Guard, for every route.
    "auth",
    "cors",
    "hosts",
    "header_timeout",
    "handler_timeout",
];

/// Where `http_serve` listens: a port (every address) or `"ip:port"`.
fn bind_of(bind: &Dynamic) -> Result<SocketAddr> {
    if let Ok(port) = bind.as_int() {
        return addr::port(port).map(addr::any_addr);
    }
    if let Some(text) = bind.read_lock::<rhai::ImmutableString>() {
        return addr::parse_bind(&text);
    }
    Err(crate::error::wrong_type(
        "a port number or an address like \"127.0.0.1:8000\"",
        bind,
    ))
}

/// Starts a server: every argument checked before the port is bound.
fn start(
    ctx: &NativeCallContext,
    bind: &Dynamic,
    handler: &Dynamic,
    options: &Map,
) -> Result<HttpServer> {
    let bind = bind_of(bind)?;
    let o = Options::new(options, OPTIONS)?;
    let routes = if let Some(f) = handler.clone().try_cast::<FnPtr>() {
        routes::Routes::single(routes::Target::Closure(Callback::new(
            ctx,
            f,
            "the handler",
            &["req"],
        )?))
    } else if let Some(map) = handler.read_lock::<Map>() {
        routes::Routes::from_map(ctx, &map, &o)?
    } else if let Some(dir) = handler.read_lock::<rhai::ImmutableString>() {
        routes::Routes::single(routes::Target::Folder(std::sync::Arc::new(
            files::Folder::new(&dir, &o)?,
        )))
    } else {
        return Err(crate::error::wrong_type(
            "a closure like |req| { … } or a map of routes like #{\"GET /\": |req| …}",
            handler,
        ));
    };
    let log = match o.value("log") {
        Some(value) => match value.clone().try_cast::<FnPtr>() {
            Some(f) => log::Log::Closure(Callback::new(ctx, f, "log", &["entry"])?),
            None => return Err(o.wrong("log", "a closure like |entry| { … }", value)),
        },
        None if o.flag("quiet", false)? => log::Log::Quiet,
        None => log::Log::Terminal,
    };
    let header_timeout = match o.timeout("header_timeout")? {
        None => server::HEADER_TIMEOUT,
        Some(None) => {
            return Err(Error::invalid(
                "option 'header_timeout' must be more than 0 ms: a client that never finishes its headers would hold its connection forever",
            ));
        }
        Some(Some(limit)) => limit,
    };
    let max_body = o.positive("max_body")?.unwrap_or(server::DEFAULT_MAX_BODY);
    let max_body_total = match o.positive("max_body_total")? {
        None => intake::DEFAULT_BUDGET.max(max_body),
        Some(total) if total < max_body => {
            return Err(Error::invalid(format!(
                "option 'max_body_total' ({total}) is less than max_body ({max_body}): \
                 a body as large as max_body could never be read"
            )));
        }
        Some(total) => total,
    };
    let settings = server::Settings {
        options: options.clone(),
        routes,
        guard: guard::Guard::from_options(&o, bind)?,
        header_timeout,
        log,
        max_body,
        max_body_total,
        handler_timeout: o
            .timeout("handler_timeout")?
            .unwrap_or(Some(server::HANDLER_TIMEOUT)),
        workers: o.positive("workers")?.map(|n| n.min(256)),
        max_connections: o.positive("max_connections")?,
        tls: match o.value("tls") {
            Some(value) => crate::net::tls::ServerTls::from_option(value)?,
            None => None,
        },
    };
    HttpServer::start(bind, settings)
}

#[export_module(manifest)]
mod api {
    use super::{HttpServer, Request};
    use crate::error::{ScriptResult, fail};

    /// Serves HTTP in the background: `handler` is a closure `|req| …`
    /// called for every request, or a map of routes
    /// `#{"GET /items/:id": |req| …, "POST /items": |req| …, "/*": |req| …}`
    /// (a method, or none for any, then a path whose `:name` segments land
    /// in `req.params` and whose final `*` takes the rest). `req` has
    /// `method`, `path`, `query` (a map), `params`, `headers` (lower-case
    /// names), `body` (text, or a blob when not UTF-8), `json` (the body
    /// parsed, an error if it is not JSON), `peer`. The handler returns a
    /// string (200, text/plain), a map or array (200, JSON), a blob
    /// (application/octet-stream), `()` (204), or
    /// `#{status, headers, body | json | file}`. A handler that fails is a
    /// 500, its error printed, and the server goes on; so is a reply whose
    /// `status` is outside 200–599 or whose `headers` set one the server
    /// frames the response with (`content-length`, `transfer-encoding`,
    /// `connection`, `keep-alive`, `proxy-connection`, `upgrade`, `te`,
    /// `trailer`). A handler still running when its client leaves, or
    /// after `handler_timeout`, is stopped (a 503). HTTP/1.1 with
    /// keep-alive and HTTP/2 (h2c) on one port; each request is logged in
    /// the common log format with the time it took. `handler` may also be
    /// a folder (`"./public"`), served like `python3 -m http.server` (a
    /// listing page, Range, ETag and 304; nothing outside the folder), and
    /// so may a route's value (`"/static/*": "./public"`).
    ///
    /// ```rhai
    /// let s = http_serve(8000, |req| `hello ${req.query.name}`);
    /// let files = http_serve("127.0.0.1:8001", ".");
    /// let api = http_serve("127.0.0.1:8080", #{
    ///     "GET /items/:id": |req| #{id: req.params.id},
    ///     "POST /items": |req| #{status: 201, json: req.json},
    /// });
    /// ```
    ///
    /// Fails when: the port is out of range or in use, the address is
    /// malformed or not local, a route key does not parse (the error says
    /// "route" and quotes it), a handler does not take one parameter, a
    /// route's value is not a closure or a folder, or a folder does not
    /// exist, is not a folder or may not be read. A request fails (the
    /// client gets the status, the log the reason) when the handler
    /// throws or its reply cannot be made (500: a status outside 200–599,
    /// a framing header, a bad header name or value), when the handler
    /// runs past `handler_timeout` or its client leaves first (503), when
    /// the body is over `max_body` (413), pauses longer than
    /// `header_timeout` (408), or does not fit in `max_body_total` beside
    /// the bodies being handled (503 with `Retry-After: 1`).
    #[rhai_fn(return_raw)]
    pub fn http_serve(
        ctx: NativeCallContext,
        bind: Dynamic,
        handler: Dynamic,
    ) -> ScriptResult<HttpServer> {
        super::start(&ctx, &bind, &handler, &rhai::Map::new()).map_err(fail("http_serve"))
    }

    /// `http_serve` with options: `quiet: true` (no access log), `log:
    /// |entry| …` (each request to the closure instead: `peer`, `method`,
    /// `path`, `status`, `bytes`, `ms`, `line`), `tls` (as `listen`'s:
    /// `#{cert, key}` or `#{self_signed: true}`; ALPN offers h2 and
    /// http/1.1), `workers` (threads running handlers; the number of cores
    /// by default), `max_connections`, `max_body` (bytes; 16 MiB by
    /// default, more is a 413), `max_body_total` (bytes all request bodies
    /// read for handlers at once may take; 128 MiB or `max_body` if
    /// larger by default; a body that does not fit is a 503),
    /// `header_timeout` (ms a client has to send a request's head or its
    /// first byte, a keep-alive or HTTP/2 connection may stay idle, and a
    /// request body may pause; 30000 by default), `handler_timeout` (ms a
    /// handler may run before it is stopped and the client gets a 503;
    /// 30000 by default, 0 for no limit). For every route: `auth:
    /// "user:pass"` (HTTP Basic; 401 otherwise) and `cors: true` or an
    /// origin (CORS headers, preflights answered). For folders: `upload:
    /// true` (PUT and the listing's form; names by `serve_files`'s rules,
    /// `.part` then rename, never replacing), `compress: true` (gzip for
    /// text), `follow_links: true` (symbolic links may lead out of the
    /// folder), `dotfiles: true` (names starting with `.` listed and
    /// served), `rate_limit` (bytes a second
    /// per response), `max_upload` (bytes one upload may carry; 1 GiB by
    /// default, more is a 413). Uploads never follow links out and refuse
    /// a browser's request from another site's page (403) unless `cors`
    /// names that origin. On a loopback address the server answers only to
    /// a `Host` that is an IP, `localhost` or a name in `hosts: ["…"]`
    /// (421 otherwise: a guard against DNS rebinding).
    ///
    /// ```rhai
    /// let s = http_serve(8443, |req| "secret", #{tls: #{self_signed: true}, quiet: true});
    /// let share = http_serve("127.0.0.1:8000", ".", #{upload: true, auth: "me:pw"});
    /// ```
    ///
    /// Fails when: as `http_serve(bind, handler)`, or an option is unknown
    /// or has the wrong type (`hosts` not an array of names without port),
    /// or `max_body_total` is less than `max_body`.
    #[rhai_fn(return_raw, name = "http_serve")]
    pub fn http_serve_with(
        ctx: NativeCallContext,
        bind: Dynamic,
        handler: Dynamic,
        options: rhai::Map,
    ) -> ScriptResult<HttpServer> {
        super::start(&ctx, &bind, &handler, &options).map_err(fail("http_serve"))
    }

    /// The port the server listens on.
    ///
    /// ```rhai
    /// http_serve("127.0.0.1:0", |req| "hi").port
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "port", pure)]
    pub fn http_port(s: &mut HttpServer) -> i64 {
        s.addr().port() as i64
    }

    /// The address the server listens on, as `"ip:port"`.
    ///
    /// ```rhai
    /// s.addr   // "127.0.0.1:8000"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "addr", pure)]
    pub fn http_addr(s: &mut HttpServer) -> String {
        s.addr().to_string()
    }

    /// The SHA-256 of a TLS server's certificate (`AB:CD:…`); `()` for a
    /// plain server.
    ///
    /// ```rhai
    /// print(http_serve("127.0.0.1:0", |r| "", #{tls: #{self_signed: true}}).fingerprint)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "fingerprint", pure)]
    pub fn http_fingerprint(s: &mut HttpServer) -> Dynamic {
        s.tls()
            .map_or(Dynamic::UNIT, |t| t.fingerprint.clone().into())
    }

    /// A TLS server's certificate as PEM text (what a client trusts with
    /// `#{tls: #{ca: "file.pem"}}` once written to a file); `()` for a
    /// plain server.
    ///
    /// ```rhai
    /// write_file("server.pem", s.cert);
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "cert", pure)]
    pub fn http_cert(s: &mut HttpServer) -> Dynamic {
        s.tls().map_or(Dynamic::UNIT, |t| t.cert_pem.clone().into())
    }

    /// What the server has done: `#{connections, active, requests,
    /// errors, warmed}` (connections accepted, open now, requests
    /// answered, answers with a 5xx status, bytes of files read ahead
    /// into the page cache for sendfile).
    ///
    /// ```rhai
    /// s.stats().requests
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "stats")]
    pub fn http_stats(s: &mut HttpServer) -> rhai::Map {
        s.stats()
    }

    /// Stops the server: no more connections, open ones closed, running
    /// handlers interrupted; the port is free when this returns.
    ///
    /// ```rhai
    /// s.stop();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "stop")]
    pub fn http_stop(s: &mut HttpServer) {
        s.stop();
    }

    /// Blocks until the server stops (a handler or a task calls
    /// `.stop()`), or Ctrl-C. Keeps a script's server running.
    ///
    /// ```rhai
    /// http_serve(8000, |req| "hi").wait();
    /// ```
    ///
    /// Fails when: interrupted by Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "wait")]
    pub fn http_wait(s: &mut HttpServer) -> ScriptResult<()> {
        s.wait().map_err(fail("wait"))
    }

    /// How a server prints: `HttpServer #2 (http://127.0.0.1:8000, running, 3 requests, 1 connections)`.
    ///
    /// ```rhai
    /// print(s)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn http_to_string(s: &mut HttpServer) -> String {
        format!("{s:?}")
    }

    /// The request's method: `"GET"`, `"POST"`…
    ///
    /// ```rhai
    /// http_serve(8000, |req| req.method)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "method", pure)]
    pub fn req_method(r: &mut Request) -> String {
        r.method.as_str().to_string()
    }

    /// The request's path, percent-decoded, without the query.
    ///
    /// ```rhai
    /// http_serve(8000, |req| req.path)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "path", pure)]
    pub fn req_path(r: &mut Request) -> String {
        r.path()
    }

    /// The query string as a map: `?n=1&s=a%20b` → `#{n: "1", s: "a b"}`
    /// (a repeated key keeps its last value).
    ///
    /// ```rhai
    /// http_serve(8000, |req| req.query.n)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "query", pure)]
    pub fn req_query(r: &mut Request) -> Dynamic {
        // `from_map`: Rhai's `Dynamic::from` of a map rebuilds it entry by
        // entry (rhai 1.27's `From<BTreeMap>`).
        Dynamic::from_map(r.query())
    }

    /// What the route's `:name` segments matched, percent-decoded.
    ///
    /// ```rhai
    /// http_serve(8000, #{"GET /items/:id": |req| req.params.id})
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "params", pure)]
    pub fn req_params(r: &mut Request) -> Dynamic {
        Dynamic::from_map(r.params.clone())
    }

    /// The request's headers, names in lower case (`req.headers["user-agent"]`).
    ///
    /// ```rhai
    /// http_serve(8000, |req| req.headers["user-agent"])
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "headers", pure)]
    pub fn req_headers(r: &mut Request) -> Dynamic {
        Dynamic::from_map(r.headers())
    }

    /// The request's body: text when it is UTF-8, else a blob; `""` when
    /// there is none.
    ///
    /// ```rhai
    /// http_serve(8000, |req| req.body.len())
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "body", pure)]
    pub fn req_body(r: &mut Request) -> Dynamic {
        r.body()
    }

    /// The request's body parsed as JSON (objects become maps).
    ///
    /// ```rhai
    /// http_serve(8000, |req| #{got: req.json})
    /// ```
    ///
    /// Fails when: the body is empty or is not JSON (the handler fails,
    /// so the client gets a 500, unless it catches the error).
    #[rhai_fn(get = "json", pure, return_raw)]
    pub fn req_json(r: &mut Request) -> ScriptResult<Dynamic> {
        r.json().map_err(fail("req.json"))
    }

    /// Who sent the request, as `"ip:port"`.
    ///
    /// ```rhai
    /// http_serve(8000, |req| req.peer)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "peer", pure)]
    pub fn req_peer(r: &mut Request) -> String {
        r.peer.to_string()
    }

    /// The protocol version: `"HTTP/1.1"`, `"HTTP/2.0"`.
    ///
    /// ```rhai
    /// http_serve(8000, |req| req.version)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "version", pure)]
    pub fn req_version(r: &mut Request) -> String {
        r.version().to_string()
    }

    /// The whole request as a map (all of the above but `json`).
    ///
    /// ```rhai
    /// http_serve(8000, |req| req.to_map())
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "to_map")]
    pub fn req_to_map(r: &mut Request) -> rhai::Map {
        r.to_map()
    }

    /// How a request prints: its map.
    ///
    /// ```rhai
    /// http_serve(8000, |req| { print(req); "" })
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn req_to_string(r: &mut Request) -> String {
        format!("{:?}", r.to_map())
    }
}
