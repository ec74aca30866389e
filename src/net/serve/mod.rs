//! Servers in the background, in two shapes.
//!
//! - The closure shape, the lesson's: `serve(port, |c| { … })` runs the
//!   closure on a thread of its own for each connection, so it may block
//!   (`c.recv_line()`, `sleep`, `connect`…) as a thread-per-connection
//!   server does ([`threads`]).
//! - The event shape, for many connections: `serve(port, #{on_line: |c,
//!   line| …})` calls handlers on a few worker threads only when data is
//!   ready; `c.send` buffers and never blocks ([`events`], [`peer`]).
//!
//! Both accept on a tokio task ([`accept_loop`]), honour `max_connections`
//! (extra clients wait in the listen backlog), count what they serve, are
//! listed in `jobs()`, and announce connections in the REPL through a
//! rate-limited [`Announcer`] that `quiet: true` silences.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rhai::plugin::*;
use rhai::{FnPtr, Map};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::error::{Error, Result};
use crate::net::tcp::{Accepted, Bind, Endpoint, ListenSocket, MAX_PENDING_HANDSHAKES};
use crate::net::tls::ServerTls;
use crate::net::{addr, options::Options};
use crate::runtime::{
    self, CancellationToken,
    closure::Callback,
    jobs::{self, Job},
};

mod announce;
mod events;
mod peer;
mod threads;

pub use announce::Announcer;
pub use peer::EventConn;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<Server>("Server");
    peer::register_into(module, docs);
}

/// A background server.
#[derive(Clone)]
pub struct Server(Arc<ServerState>);

pub struct ServerState {
    id: u64,
    addr: Endpoint,
    /// Cancelled by `stop()`; each connection's token is a child of it.
    life: runtime::jobs::Lifecycle,
    served: AtomicU64,
    active: AtomicU64,
    /// Flips to `true` when the accept loop has ended and the port is free.
    announce: Arc<Announcer>,
    /// The event shape's own runtime, shut down when the server stops.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    /// The certificate a TLS server presents.
    tls: Option<Arc<ServerTls>>,
}

/// What `serve`'s options map may say, for both shapes.
#[derive(Debug, Clone, Default)]
struct Settings {
    max_connections: Option<usize>,
    quiet: bool,
    /// Event shape only: threads that run handlers.
    workers: Option<usize>,
    /// Closure shape only: every connection is TLS, with this certificate.
    tls: Option<Arc<ServerTls>>,
}

const CLOSURE_OPTIONS: &[&str] = &["max_connections", "quiet", "tls"];
const EVENT_OPTIONS: &[&str] = &[
    "on_open",
    "on_line",
    "on_data",
    "on_close",
    "max_connections",
    "workers",
    "quiet",
];

impl Settings {
    fn parse(options: &Map, known: &[&str]) -> Result<Settings> {
        let o = Options::new(options, known)?;
        Ok(Settings {
            max_connections: o.positive("max_connections")?,
            workers: o.positive("workers")?.map(|n| n.min(256)),
            quiet: o.flag("quiet", false)?,
            tls: match o.value("tls") {
                Some(value) => ServerTls::from_option(value)?,
                None => None,
            },
        })
    }
}

/// Which addresses `serve` binds: a port (every address), `"ip:port"` or
/// `"unix:/path"`.
fn bind_of(bind: &Dynamic) -> Result<Bind> {
    if let Ok(port) = bind.as_int() {
        return addr::port(port).map(|port| Bind::Ip(addr::any_addr(port)));
    }
    if let Some(text) = bind.read_lock::<rhai::ImmutableString>() {
        return crate::net::tcp::parse_listen(&text);
    }
    Err(crate::net::tcp::wrong_type(
        "a port number or an address like \"127.0.0.1:9000\"",
        bind,
    ))
}

impl Server {
    /// Binds `bind` on `runtime` and starts accepting; `on_conn` is given
    /// each connection (already counted as active).
    fn start(
        bind: &Bind,
        settings: &Settings,
        token: CancellationToken,
        runtime: Option<tokio::runtime::Runtime>,
        on_conn: impl FnMut(&Arc<ServerState>, Accepted, Active) + Send + 'static,
    ) -> Result<Server> {
        raise_open_file_limit();
        let handle = match &runtime {
            Some(rt) => rt.handle().clone(),
            None => runtime::handle().clone(),
        };
        let (listener, addr) = {
            let _entered = handle.enter();
            ListenSocket::bind(bind)?
        };
        let label = match addr.ip() {
            Some(ip) => format!("serve {}", ip.port()),
            None => format!("serve {addr}"),
        };
        let state = Arc::new(ServerState {
            id: jobs::next_id(),
            addr,
            life: jobs::Lifecycle::new(token),
            served: AtomicU64::new(0),
            active: AtomicU64::new(0),
            announce: Arc::new(Announcer::new(label, settings.quiet)),
            runtime: Mutex::new(runtime),
            tls: settings.tls.clone(),
        });
        let limit = settings
            .max_connections
            .map(|n| Arc::new(Semaphore::new(n)));
        let handshakes = settings
            .tls
            .as_ref()
            .map(|_| Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)));
        let slots = Slots { limit, handshakes };
        handle.spawn(accept_loop(state.clone(), listener, slots, on_conn));
        state
            .announce
            .event(&format!("listening on {}", state.addr));
        if let Some(tls) = &state.tls
            && !settings.quiet
        {
            tls.tell_self_signed("serve", &state.addr);
        }
        let server = Server(state);
        jobs::add(Arc::new(server.clone()));
        Ok(server)
    }

    pub fn addr(&self) -> &Endpoint {
        &self.0.addr
    }

    pub fn served(&self) -> u64 {
        self.0.served.load(Ordering::Relaxed)
    }

    pub fn active(&self) -> u64 {
        self.0.active.load(Ordering::Relaxed)
    }

    pub fn is_stopped(&self) -> bool {
        self.0.life.is_stopped()
    }

    /// Stops accepting and interrupts every connection's work; waits (up to
    /// 2 s) until the listening port is free again.
    pub fn stop(&self) {
        self.0.life.stop();
        // An event server's runtime ends on a thread of its own: a runtime
        // cannot be shut down from one of its own workers.
        if let Some(rt) = self.0.runtime.lock().ok().and_then(|mut rt| rt.take()) {
            let _ = std::thread::Builder::new()
                .name("netsh-serve-end".into())
                .spawn(move || rt.shutdown_timeout(Duration::from_secs(2)));
        }
    }

    /// Blocks until the server is stopped (by `stop()` from a connection
    /// closure or a task), or Ctrl-C.
    pub fn wait(&self) -> Result<()> {
        self.0.life.wait()
    }
}

impl Job for Server {
    fn stop(&self) {
        Server::stop(self);
    }

    fn ended(&self) -> watch::Receiver<bool> {
        self.0.life.ended()
    }

    fn handle(&self) -> Dynamic {
        Dynamic::from(self.clone())
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_stopped() {
            "stopped"
        } else {
            "running"
        };
        write!(
            f,
            "Server #{} ({}, {state}, {} served, {} active)",
            self.0.id,
            self.0.addr,
            self.served(),
            self.active()
        )
    }
}

/// A connection counted as active (and holding its `max_connections` slot)
/// until dropped.
pub struct Active {
    state: Arc<ServerState>,
    _slot: Option<OwnedSemaphorePermit>,
    /// On a TLS server, one of [`MAX_PENDING_HANDSHAKES`] slots, given back
    /// when the handshake ends.
    handshake: Option<OwnedSemaphorePermit>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.state.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a connection must get before it is accepted: a `max_connections`
/// slot, and on a TLS server a slot among the handshakes under way.
struct Slots {
    limit: Option<Arc<Semaphore>>,
    handshakes: Option<Arc<Semaphore>>,
}

/// A slot of `slots` (if any), or `None` when the server stops first.
async fn take(
    token: &CancellationToken,
    slots: &Option<Arc<Semaphore>>,
) -> Option<Option<OwnedSemaphorePermit>> {
    match slots {
        Some(slots) => tokio::select! {
            biased;
            _ = token.cancelled() => None,
            slot = slots.clone().acquire_owned() => Some(slot.ok()),
        },
        None => Some(None),
    }
}

/// Accepts until stopped, handing each connection to `on_conn`. Slots are
/// taken before accepting (see [`Slots`]), so extra clients wait in the
/// listen backlog rather than being refused.
async fn accept_loop(
    state: Arc<ServerState>,
    listener: ListenSocket,
    slots: Slots,
    mut on_conn: impl FnMut(&Arc<ServerState>, Accepted, Active),
) {
    loop {
        let Some(slot) = take(state.life.token(), &slots.limit).await else {
            break;
        };
        let Some(handshake) = take(state.life.token(), &slots.handshakes).await else {
            break;
        };
        let accepted = tokio::select! {
            biased;
            _ = state.life.token().cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(stream) => {
                state.served.fetch_add(1, Ordering::Relaxed);
                state.active.fetch_add(1, Ordering::Relaxed);
                let active = Active {
                    state: state.clone(),
                    _slot: slot,
                    handshake,
                };
                on_conn(&state, stream, active);
            }
            Err(e) => {
                // Usually out of file descriptors: say so, and pause rather
                // than spin, since the pending connection stays queued.
                state.announce.error(&accept_error(e));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    state.life.finish();
    state.announce.event("stopped");
}

/// Why accepting failed, in words; running out of descriptors says how
/// many this process may have.
fn accept_error(e: std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::EMFILE) {
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft.to_string())
            .unwrap_or_else(|_| "?".into());
        return format!(
            "cannot accept more connections: this process has all the files it may open ({limit}); \
             clients wait until some close (raise the limit with ulimit -n)"
        );
    }
    Error::io("accepting", None, e).to_string()
}

/// Lifts the soft limit on open files to the hard limit, once, so a server
/// can hold thousands of connections (the soft limit is often 1024).
pub fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
            && soft < hard
            && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
        {
            crate::console::warn(&format!(
                "netsh: could not raise the open-file limit from {soft} to {hard}: {e}"
            ));
        }
    });
}

/// Starts a server of the shape `handler` asks for.
fn serve(ctx: &NativeCallContext, bind: &Dynamic, handler: Handler) -> Result<Server> {
    let bind = bind_of(bind)?;
    match handler {
        Handler::Closure(f, options) => {
            let settings = Settings::parse(&options, CLOSURE_OPTIONS)?;
            let callback = Callback::new(ctx, f, "the handler", &["conn"])?;
            threads::start(&bind, &settings, callback)
        }
        Handler::Events(options) => {
            if options.contains_key("tls") {
                return Err(Error::invalid(
                    "the event shape does not speak TLS; use the closure shape: serve(addr, |c| …, #{tls: …})",
                ));
            }
            let Bind::Ip(bind) = bind else {
                return Err(Error::invalid(
                    "the event shape serves TCP; use the closure shape serve(\"unix:…\", |c| …) for a Unix socket",
                ));
            };
            let settings = Settings::parse(&options, EVENT_OPTIONS)?;
            let handlers = events::Handlers::from_options(ctx, &options)?;
            events::start(bind, &settings, handlers)
        }
    }
}

enum Handler {
    Closure(FnPtr, Map),
    Events(Map),
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};
    use crate::net::tcp::wrong_type;

    /// Serves a port in the background: accepts every connection and runs
    /// the closure with it on a thread of its own, so clients are served
    /// concurrently and the closure may block (`c.recv_line()`, `sleep`…).
    /// The connection is closed when the closure returns. An error in one
    /// connection is printed and the server goes on. `bind` is a port
    /// (every address) or `"ip:port"`.
    ///
    /// ```rhai
    /// let s = serve(9000, |c| { loop { let line = c.recv_line(); if line == () { break } c.send_line(line) } });
    /// ```
    ///
    /// Fails when: the port is out of range or in use, the address is
    /// malformed or not local, or the closure does not take one parameter.
    #[rhai_fn(return_raw)]
    pub fn serve(ctx: NativeCallContext, bind: Dynamic, f: FnPtr) -> ScriptResult<Server> {
        super::serve(&ctx, &bind, Handler::Closure(f, Map::new())).map_err(fail("serve"))
    }

    /// The closure shape with options: `max_connections` (more clients wait
    /// in the backlog until one ends), `quiet: true` (no announcements
    /// in the REPL) and `tls` (as `listen`'s: every connection is TLS; the
    /// handshakes run side by side, so a silent client delays nobody, and
    /// the closure gets the connection once its handshake is done; a
    /// self-signed certificate's SHA-256 is printed unless `quiet`, and is
    /// `.fingerprint`).
    /// `bind` may be `"unix:/path"` too.
    ///
    /// ```rhai
    /// let s = serve("127.0.0.1:0", |c| c.send_line("hi"), #{max_connections: 10, quiet: true});
    /// let t = serve(8443, |c| c.send_line("secret"), #{tls: #{self_signed: true}});
    /// ```
    ///
    /// Fails when: as `serve(bind, closure)`, or an option is unknown or
    /// has the wrong type.
    #[rhai_fn(return_raw, name = "serve")]
    pub fn serve_with(
        ctx: NativeCallContext,
        bind: Dynamic,
        f: FnPtr,
        options: Map,
    ) -> ScriptResult<Server> {
        super::serve(&ctx, &bind, Handler::Closure(f, options)).map_err(fail("serve"))
    }

    /// The event shape, for many connections: handlers are called on a few
    /// worker threads (`workers`, default the number of cores) only when
    /// something happens — `on_open: |c|`, `on_line: |c, line|` (each line,
    /// without its newline) or `on_data: |c, blob|` (bytes as they arrive),
    /// `on_close: |c|`. `c.send(…)` buffers and returns at once; keep state
    /// in `c.state`. Handlers must not wait (`recv`, `sleep`, `connect`…
    /// fail there; use the closure shape for that). Options:
    /// `max_connections`, `workers`, `quiet`. A handler that fails is
    /// reported and its connection closed; the server goes on.
    ///
    /// ```rhai
    /// let s = serve(9000, #{
    ///     on_open: |c| c.state = 0,
    ///     on_line: |c, line| { c.state += 1; c.send_line(`${c.state}: ${line}`) },
    /// });
    /// ```
    ///
    /// Fails when: the port is out of range or in use, no handler is
    /// given, both `on_line` and `on_data` are, a handler has the wrong
    /// number of parameters, or an option is unknown or has the wrong type.
    #[rhai_fn(return_raw, name = "serve")]
    pub fn serve_events(
        ctx: NativeCallContext,
        bind: Dynamic,
        handlers: Map,
    ) -> ScriptResult<Server> {
        super::serve(&ctx, &bind, Handler::Events(handlers)).map_err(fail("serve"))
    }

    /// Catches `serve` with arguments of the wrong type.
    ///
    /// ```rhai
    /// serve(9000, |c| c.send_line("hi"))
    /// ```
    ///
    /// Fails when: always: it needs a port or address, then a closure or a
    /// map of handlers.
    #[rhai_fn(return_raw, name = "serve")]
    pub fn serve_wrong_type(bind: Dynamic, f: Dynamic) -> ScriptResult<Server> {
        let err = match super::bind_of(&bind) {
            Err(e) => e,
            Ok(_) => wrong_type(
                "a closure like |conn| { … } or a map of handlers like #{on_line: |c, line| …} as the second argument",
                &f,
            ),
        };
        Err(fail("serve")(err))
    }

    /// The port the server listens on; `()` on a Unix socket.
    ///
    /// ```rhai
    /// serve(0, |c| ()).port
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "port", pure)]
    pub fn server_port(s: &mut Server) -> Dynamic {
        s.addr()
            .ip()
            .map_or(Dynamic::UNIT, |a| Dynamic::from_int(a.port() as i64))
    }

    /// The address the server listens on, as `"ip:port"`.
    ///
    /// ```rhai
    /// s.addr   // "[::]:9000"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "addr", pure)]
    pub fn server_addr(s: &mut Server) -> String {
        s.addr().to_string()
    }

    /// The SHA-256 of a TLS server's certificate (`AB:CD:…`), which a
    /// client can pin with `#{tls: #{pin: …}}`; `()` for a plain server.
    ///
    /// ```rhai
    /// print(serve("127.0.0.1:0", |c| (), #{tls: #{self_signed: true}}).fingerprint)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "fingerprint", pure)]
    pub fn server_fingerprint(s: &mut Server) -> Dynamic {
        s.0.tls
            .as_ref()
            .map_or(Dynamic::UNIT, |t| t.fingerprint.clone().into())
    }

    /// A TLS server's certificate as PEM text, which a client can trust
    /// with `#{tls: #{ca: "file.pem"}}` once written to a file; `()` for a
    /// plain server.
    ///
    /// ```rhai
    /// let s = serve("127.0.0.1:0", |c| (), #{tls: #{self_signed: true}});
    /// write_file("server.pem", s.cert);
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "cert", pure)]
    pub fn server_cert(s: &mut Server) -> Dynamic {
        s.0.tls
            .as_ref()
            .map_or(Dynamic::UNIT, |t| t.cert_pem.clone().into())
    }

    /// How many connections the server has accepted so far.
    ///
    /// ```rhai
    /// s.served
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "served", pure)]
    pub fn server_served(s: &mut Server) -> i64 {
        s.served() as i64
    }

    /// How many connections are being served right now.
    ///
    /// ```rhai
    /// s.active
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "active", pure)]
    pub fn server_active(s: &mut Server) -> i64 {
        s.active() as i64
    }

    /// Stops the server: no more connections are accepted, the running
    /// closures are interrupted, and the port is free when this returns.
    ///
    /// ```rhai
    /// s.stop();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "stop")]
    pub fn server_stop(s: &mut Server) {
        s.stop();
    }

    /// Blocks until the server stops (a closure or a task calls `.stop()`),
    /// or Ctrl-C. Lets a script keep its server running.
    ///
    /// ```rhai
    /// serve(9000, |c| c.send_line("hi")).wait();
    /// ```
    ///
    /// Fails when: interrupted by Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn wait(s: &mut Server) -> ScriptResult<()> {
        s.wait().map_err(fail("wait"))
    }

    /// How a server prints: `Server #2 ([::]:9000, running, 3 served, 1 active)`.
    ///
    /// ```rhai
    /// print(s)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn server_to_string(s: &mut Server) -> String {
        format!("{s:?}")
    }
}
