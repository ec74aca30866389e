//! The event shape of `serve`: many connections, a few threads.
//!
//! Each server gets a tokio runtime of its own with `workers` threads (the
//! number of cores unless told). A connection is a tokio task, which holds
//! no read buffer while it waits; when data arrives it is read into a
//! buffer on the worker's stack and the script's handler is called right
//! there, on the worker, with each line (`on_line`) or chunk (`on_data`).
//! Handlers may not wait — [`runtime::ensure_may_block`] refuses on these
//! threads — so one slow connection never stalls the others for long, and
//! no thread is needed per connection. What a handler sends is buffered in
//! its [`EventConn`] and written when it returns; while the peer does not
//! read, the connection is not read either (backpressure).
//!
//! A runtime of its own keeps a busy event server from delaying the rest of
//! netsh's I/O, and lets `stop()` end its threads.

use std::{net::SocketAddr, sync::Arc};

use rhai::{Blob, Dynamic, FnPtr, Map, NativeCallContext};
use std::io::{Read, Write};

use tokio::{io::unix::AsyncFd, net::TcpStream};

use super::{Active, Server, ServerState, Settings, peer::EventConn};
use crate::error::{Error, Result, describe};
use crate::limits::MAX_LINE;
use crate::net::tcp::{Accepted, Bind};
use crate::runtime::{self, closure::Callback};

/// The script's handlers.
#[derive(Clone)]
pub struct Handlers {
    on_open: Option<Callback>,
    on_line: Option<Callback>,
    on_data: Option<Callback>,
    on_close: Option<Callback>,
}

impl Handlers {
    /// The handlers in `serve`'s map, checked: at least one, not both
    /// `on_line` and `on_data`, each with the right parameters.
    pub fn from_options(ctx: &NativeCallContext, options: &Map) -> Result<Handlers> {
        let take = |key: &str, params: &[&str]| -> Result<Option<Callback>> {
            match options.get(key) {
                None => Ok(None),
                Some(value) => match value.clone().try_cast::<FnPtr>() {
                    Some(f) => Callback::new(ctx, f, key, params).map(Some),
                    None => Err(Error::invalid(format!(
                        "{key} must be a closure like |{}| {{ … }}, not {}",
                        params.join(", "),
                        value.type_name()
                    ))),
                },
            }
        };
        let handlers = Handlers {
            on_open: take("on_open", &["conn"])?,
            on_line: take("on_line", &["conn", "line"])?,
            on_data: take("on_data", &["conn", "bytes"])?,
            on_close: take("on_close", &["conn"])?,
        };
        if handlers.on_line.is_some() && handlers.on_data.is_some() {
            return Err(Error::invalid(
                "give on_line (text, a line at a time) or on_data (bytes as they arrive), not both",
            ));
        }
        if handlers.on_open.is_none() && handlers.on_line.is_none() && handlers.on_data.is_none() {
            return Err(Error::invalid(
                "an event server needs a handler: on_line, on_data or on_open (and maybe on_close)",
            ));
        }
        Ok(handlers)
    }
}

/// Binds `bind` and serves it with `handlers` on a runtime of its own.
pub fn start(bind: SocketAddr, settings: &Settings, handlers: Handlers) -> Result<Server> {
    let workers = settings.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    // Handlers run under the server's token; stop() cancels it, which ends
    // a handler's Rhai loop through on_progress.
    let token = runtime::child_token();
    let thread_token = token.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("netsh-events")
        .thread_stack_size(runtime::RHAI_THREAD_STACK)
        .on_thread_start(move || {
            runtime::adopt(thread_token.clone());
            runtime::set_event_handler_thread();
        })
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the event server's threads", None, e))?;
    let handlers = Arc::new(handlers);
    Server::start(
        &Bind::Ip(bind),
        settings,
        token,
        Some(rt),
        move |state, stream, active| {
            // Only TCP gets here: `serve` refuses a Unix bind for the
            // event shape.
            if let Accepted::Tcp(stream) = stream {
                let handlers = handlers.clone();
                tokio::spawn(serve_peer(state.clone(), handlers, stream, active));
            }
        },
    )
}

thread_local! {
    /// Where a worker reads a connection's data: one buffer per worker, so
    /// an idle connection holds none.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 16 * 1024]);
}

/// Why a connection's loop ended.
enum End {
    /// The peer closed, or the script called `c.close()`.
    Closed,
    /// The server is stopping.
    Stopped,
    /// A handler failed or the peer broke the protocol; already reported.
    Failed,
}

/// A connection's socket as the event loop drives it. `AsyncFd` rather than
/// tokio's `TcpStream` because its readiness guard can be cleared after a
/// short read: tokio's stream keeps saying "readable" until a read fails
/// with "would block", a wasted syscall per message in a ping-pong.
pub type Socket = AsyncFd<std::net::TcpStream>;

/// One connection, from `on_open` to `on_close`.
async fn serve_peer(
    state: Arc<ServerState>,
    handlers: Arc<Handlers>,
    stream: TcpStream,
    active: Active,
) {
    let _ = stream.set_nodelay(true);
    let registered = stream.into_std().and_then(|stream| {
        // SAFETY: a std TcpStream owns its descriptor and always reports
        // that same one; it stays open until the AsyncFd (which owns the
        // stream) is dropped.
        unsafe { AsyncFd::register(stream) }.map_err(|e| e.into_parts().1)
    });
    let stream = match registered {
        Ok(socket) => Arc::new(socket),
        Err(e) => {
            return state
                .announce
                .error(&Error::io("taking over a connection", None, e).to_string());
        }
    };
    let conn = match EventConn::new(&stream) {
        Ok(conn) => conn,
        Err(e) => return state.announce.error(&e.to_string()),
    };
    let peer = conn.peer();
    state.announce.event(&format!("{peer} connected"));
    let mut partial = Vec::new();
    let mut end = match call(&state, &conn, handlers.on_open.as_ref(), Vec::new()) {
        true => End::Closed,
        false => End::Failed,
    };
    if matches!(end, End::Closed) {
        // Made once and polled again each turn: registering a waiter anew
        // on every message costs more than the handler call. The server's
        // stop needs no branch here: it shuts this runtime down, which
        // drops every connection's task where it waits.
        let woken = conn.woken();
        tokio::pin!(woken);
        end = loop {
            if !write_unsent(&state, &stream, &conn).await {
                break End::Stopped;
            }
            if conn.is_closing() {
                break End::Closed;
            }
            let ready = tokio::select! {
                biased;
                _ = &mut woken => {
                    woken.set(conn.woken());
                    continue;
                }
                ready = stream.readable() => ready,
            };
            let Ok(ready) = ready else {
                break End::Closed;
            };
            match drain(&state, &handlers, ready, &conn, &mut partial) {
                Some(end) => break end,
                None => continue,
            }
        };
    }
    if !matches!(end, End::Stopped) {
        let _ = write_unsent(&state, &stream, &conn).await;
        conn.close();
        call(&state, &conn, handlers.on_close.as_ref(), Vec::new());
        let word = if matches!(end, End::Failed) {
            "closed after an error"
        } else {
            "closed"
        };
        state.announce.event(&format!("{peer} {word}"));
    }
    drop(stream);
    drop(active);
}

/// Reads what has arrived and hands it to the handlers; `Some` when the
/// connection is done. The read buffer lives on this worker's stack only
/// for the call, so an idle connection holds none.
fn drain(
    state: &Arc<ServerState>,
    handlers: &Handlers,
    mut ready: tokio::io::unix::AsyncFdReadyGuard<'_, std::net::TcpStream>,
    conn: &EventConn,
    partial: &mut Vec<u8>,
) -> Option<End> {
    // A handler cannot poll this worker's tasks, so the buffer is never
    // borrowed twice; a fresh one would do if it were.
    READ_BUFFER.with(|cell| {
        let mut own;
        let mut shared = cell.try_borrow_mut();
        let buf: &mut Vec<u8> = match shared.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => {
                own = vec![0; 16 * 1024];
                &mut own
            }
        };
        // A few reads per wake-up, then the others get their turn.
        for _ in 0..4 {
            let n = match ready.get_inner().read(buf) {
                Ok(0) => return Some(last_line(state, handlers, conn, partial)),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                    return None;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Some(End::Closed),
            };
            // A short read drained the socket: clear the readiness this
            // guard saw, so the next wait sleeps instead of reading once
            // more to hear "nothing". Data that arrived after that event
            // raised readiness anew, which this clear leaves alone.
            if n < buf.len() {
                ready.clear_ready();
            }
            if let Some(end) = dispatch(state, handlers, conn, partial, &buf[..n]) {
                return Some(end);
            }
            if n < buf.len() {
                return None;
            }
        }
        None
    })
}

/// At end of stream, a last line without a newline is still a line (as
/// `recv_line` returns it in the closure shape): `on_line` gets it.
fn last_line(
    state: &Arc<ServerState>,
    handlers: &Handlers,
    conn: &EventConn,
    partial: &mut Vec<u8>,
) -> End {
    let unfinished = handlers.on_data.is_none() && !partial.is_empty();
    if unfinished && !lines(state, handlers, conn, partial, b"\n") {
        return End::Failed;
    }
    End::Closed
}

/// Hands what one read brought to the handlers; `Some` when the connection
/// is done.
fn dispatch(
    state: &Arc<ServerState>,
    handlers: &Handlers,
    conn: &EventConn,
    partial: &mut Vec<u8>,
    data: &[u8],
) -> Option<End> {
    let ok = if let Some(on_data) = &handlers.on_data {
        let bytes = Dynamic::from_blob(Blob::from(data));
        call(state, conn, Some(on_data), vec![bytes])
    } else if handlers.on_line.is_some() {
        lines(state, handlers, conn, partial, data)
    } else {
        // Only on_open/on_close: what the peer sends is ignored.
        true
    };
    if !ok {
        Some(End::Failed)
    } else if conn.is_closing() {
        Some(End::Closed)
    } else {
        None
    }
}

/// Calls `on_line` for each complete line in `data` (after what `partial`
/// held); keeps an unfinished last line in `partial`.
fn lines(
    state: &Arc<ServerState>,
    handlers: &Handlers,
    conn: &EventConn,
    partial: &mut Vec<u8>,
    mut data: &[u8],
) -> bool {
    while let Some(at) = data.iter().position(|&b| b == b'\n') {
        let (head, rest) = (&data[..at], &data[at + 1..]);
        data = rest;
        let line = if partial.is_empty() {
            head
        } else {
            partial.extend_from_slice(head);
            partial.as_slice()
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let ok = match std::str::from_utf8(line) {
            Ok(text) => call(state, conn, handlers.on_line.as_ref(), vec![text.into()]),
            Err(_) => {
                report(
                    state,
                    conn,
                    &format!(
                        "a line from {} is not UTF-8 text; use on_data for bytes",
                        conn.peer()
                    ),
                );
                false
            }
        };
        partial.clear();
        if !ok || conn.is_closing() {
            return ok;
        }
    }
    partial.extend_from_slice(data);
    if partial.len() > MAX_LINE {
        report(
            state,
            conn,
            &format!(
                "{} sent over {} KiB without a newline; use on_data for data like this",
                conn.peer(),
                MAX_LINE / 1024
            ),
        );
        return false;
    }
    true
}

/// Calls `handler` (if any) with the connection and `args`; reports an
/// error and returns `false` when it fails.
fn call(
    state: &Arc<ServerState>,
    conn: &EventConn,
    handler: Option<&Callback>,
    args: Vec<Dynamic>,
) -> bool {
    let Some(handler) = handler else {
        return true;
    };
    let mut all = Vec::with_capacity(args.len() + 1);
    all.push(Dynamic::from(conn.clone()));
    all.extend(args);
    match conn.in_handler(|| handler.call(all)) {
        Ok(_) => true,
        Err(_) if state.life.token().is_cancelled() => false,
        Err(err) => {
            report(state, conn, &describe(&err, handler.source()));
            false
        }
    }
}

fn report(state: &Arc<ServerState>, conn: &EventConn, message: &str) {
    state.announce.error(&format!("{}: {message}", conn.peer()));
}

/// Writes what the handlers sent. `false` when the server stopped first;
/// a peer that went away just loses the data (its read side will say so).
async fn write_unsent(state: &Arc<ServerState>, stream: &Socket, conn: &EventConn) -> bool {
    loop {
        let unsent = conn.take_unsent();
        if unsent.is_empty() {
            return true;
        }
        let mut written = 0;
        while written < unsent.len() {
            match stream.get_ref().write(&unsent[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let ready = tokio::select! {
                        biased;
                        _ = state.life.token().cancelled() => return false,
                        ready = stream.writable() => ready,
                    };
                    match ready {
                        // Full a moment ago: forget that, and try again.
                        Ok(mut guard) => guard.clear_ready(),
                        Err(_) => return true,
                    }
                }
                Err(_) => {
                    conn.close();
                    return true;
                }
            }
        }
    }
}
